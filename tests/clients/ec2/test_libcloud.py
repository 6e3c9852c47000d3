"""Apache libcloud 3.9.1's EC2 driver against `ec2bridge serve --sim-fast`, pointed at the gateway as
docs/ec2-wire.md "What each client sends" says: `get_driver(Provider.EC2)(ak, sk, secure=False, host=..., port=...,
region='us-east-1', signature_version='2'|'4')` — SigV2 GETs by default for us-east-1, SigV4 GETs
when asked. libcloud only finds elements in exactly `http://ec2.amazonaws.com/doc/2016-11-15/`,
reads the first state name of TerminateInstancesResponse (currentState must come first), wants
`<return>true</return>` for reboots, and parses errors as un-namespaced `Response/Errors/Error` with
exactly Code and Message (auth codes -> InvalidCredsError, InvalidKeyPair.NotFound ->
KeyPairDoesNotExistError with the name taken from single quotes)."""
import time
import urllib.parse
import uuid

import pytest

pytest.importorskip("libcloud", reason="apache-libcloud is not installed in the test venv")
from libcloud.common.exceptions import BaseHTTPError  # noqa: E402
from libcloud.common.types import InvalidCredsError  # noqa: E402
from libcloud.compute.drivers.ec2 import NAMESPACE  # noqa: E402
from libcloud.compute.providers import get_driver  # noqa: E402
from libcloud.compute.types import KeyPairDoesNotExistError, NodeState, Provider  # noqa: E402

UNKNOWN_KEY = "AKIDEC2BRIDGENOSUCHUSER"


@pytest.fixture(scope="module", params=["2", "4"], ids=["sigv2", "sigv4"])
def sigver(request):
    return request.param


@pytest.fixture(scope="module")
def make_driver(gateway, user, secrets_used):
    host, port = urllib.parse.urlsplit(gateway["endpoint"]).netloc.rsplit(":", 1)

    def make(signature_version="2", key=None, secret=None):
        secret = secret if secret is not None else user["secret_key"]
        secrets_used.add(secret)
        return get_driver(Provider.EC2)(key or user["access_key"], secret, secure=False, host=host, port=int(port),
                                        region="us-east-1", signature_version=signature_version)
    return make


@pytest.fixture(scope="module")
def driver(make_driver, sigver):
    return make_driver(sigver)


@pytest.fixture(scope="module")
def image(driver):
    images = [i for i in driver.list_images() if i.name.startswith("Ubuntu")]
    assert images, "the simulator seeds an Ubuntu image"
    return images[0]


@pytest.fixture(scope="module")
def size(driver):
    return [s for s in driver.list_sizes() if s.id == "t2.micro"][0]


def describe_node(driver, node_id):
    """DescribeInstances parsed by libcloud itself (the namespace must match), without list_nodes'
    DescribeAddresses call."""
    obj = driver.connection.request(driver.path, params={"Action": "DescribeInstances", "InstanceId.1": node_id}).object
    nodes = driver._to_nodes(obj, "reservationSet/item/instancesSet/item")
    assert len(nodes) == 1, "libcloud found %d nodes in the answer (namespace %s?)" % (len(nodes), NAMESPACE)
    return nodes[0]


def wait_node(driver, node_id, want, timeout=60):
    deadline = time.time() + timeout
    while True:
        n = describe_node(driver, node_id)
        if n.state == want:
            return n
        assert time.time() < deadline, "%s still %s, expected %s" % (node_id, n.state, want)
        time.sleep(0.3)


def test_driver_defaults(make_driver):
    # What docs/ec2-wire.md "What each client sends" says this client sends: GET, 2016-11-15, SigV2 for us-east-1.
    d = make_driver()
    assert d.signature_version == "2" and d.connection.version == "2016-11-15"
    assert NAMESPACE == "http://ec2.amazonaws.com/doc/2016-11-15/"


def test_locations(driver, gateway):
    locs = driver.list_locations()
    assert locs, "no locations: zones missing or namespace not libcloud's"
    assert all(l.availability_zone.region_name == gateway["region"] for l in locs)
    assert all(l.availability_zone.zone_state == "available" for l in locs)
    assert len({l.name for l in locs}) == len(locs)


def test_images(driver, image):
    assert image.id.startswith("ami-")
    assert image.extra["state"] == "available" and image.extra["architecture"] in ("x86_64", "i386")
    assert [i.id for i in driver.list_images(ex_image_ids=[image.id])] == [image.id]
    assert driver.get_image(image.id).name == image.name
    with pytest.raises(BaseHTTPError) as e:
        driver.get_image("ami-0123456789abcdef0")
    assert "InvalidAMIID.NotFound" in str(e.value)


def test_sizes_are_libclouds_own_table(driver, size):
    # list_sizes makes no request; RunInstances must accept the ids it offers.
    assert size.ram > 0 and len(driver.list_sizes()) > 10


def test_node_lifecycle(driver, image, size, sigver):
    # A zone other than the default one that has security groups (the simulator's zone2; its
    # zone3 has none, so ex_securitygroup would be refused there).
    loc = driver.list_locations()[1]
    name = "lc-%s-%s" % (sigver, uuid.uuid4().hex[:6])
    node = driver.create_node(name=name, image=image, size=size, location=loc, ex_securitygroup="default")
    try:
        assert node.id.startswith("i-") and node.state == NodeState.PENDING, node
        assert node.name == name  # the Name tag, sent as TagSpecification with RunInstances
        assert node.extra["instance_type"] == "t2.micro" and node.extra["image_id"] == image.id
        assert node.extra["availability"] == loc.name
        groups = node.extra["groups"]
        assert [g["group_name"] for g in groups] == ["default"] and groups[0]["group_id"].startswith("sg-")
        assert node.extra["launch_time"].endswith("Z")
        assert node.created_at is not None  # libcloud parsed the launch time

        n = wait_node(driver, node.id, NodeState.RUNNING)
        assert n.name == name and n.private_ips and n.extra["tags"] == {"Name": name}

        assert driver.stop_node(node) is True
        wait_node(driver, node.id, NodeState.STOPPED)
        assert driver.start_node(node) is True
        wait_node(driver, node.id, NodeState.RUNNING)
        # <return>true</return> is what makes reboot_node() True.
        assert driver.reboot_node(node) is True
    finally:
        destroyed = driver.destroy_node(node)
    # True only if the first state name in the answer is shutting-down or terminated.
    assert destroyed is True
    wait_node(driver, node.id, NodeState.TERMINATED)


def test_list_nodes(driver, image, size):
    node = driver.create_node(name="lc-list", image=image, size=size)
    try:
        wait_node(driver, node.id, NodeState.RUNNING)
        nodes = driver.list_nodes()
        assert node.id in [n.id for n in nodes]
        assert [n.id for n in driver.list_nodes(ex_node_ids=[node.id])] == [node.id]
        found = driver.list_nodes(ex_filters={"instance-state-name": "running", "tag:Name": "lc-list"})
        assert node.id in [n.id for n in found]
        running = driver.wait_until_running([node], wait_period=0.5, timeout=60)
        assert running[0][0].id == node.id
    finally:
        driver.destroy_node(node)


def test_errors(driver, make_driver, sigver, image, size):
    # Bad secret and unknown key: auth codes libcloud turns into InvalidCredsError.
    with pytest.raises(InvalidCredsError) as e:
        make_driver(sigver, secret="not-the-secret").list_locations()
    assert "SignatureDoesNotMatch" in str(e.value)
    with pytest.raises(InvalidCredsError) as e:
        make_driver(sigver, key=UNKNOWN_KEY).list_locations()
    assert "AuthFailure" in str(e.value)
    # A missing key pair in RunInstances: KeyPairDoesNotExistError naming it (from '...').
    with pytest.raises(KeyPairDoesNotExistError) as e:
        driver.create_node(name="lc-nokey", image=image, size=size, ex_keyname="no-such-key")
    assert e.value.name == "no-such-key"
    # Anything else: "Code: Message".
    with pytest.raises(BaseHTTPError) as e:
        driver.create_node(name="lc-nogroup", image=image, size=size, ex_securitygroup="no-such-group")
    assert str(e.value).startswith("InvalidGroup.NotFound: ") and "'no-such-group'" in str(e.value)


def test_key_pairs(driver, sigver, image, size):
    name = "lc-%s-%s" % (sigver, uuid.uuid4().hex[:8])
    kp = driver.create_key_pair(name)
    try:
        assert kp.name == name and "PRIVATE KEY" in kp.private_key and kp.fingerprint
        assert driver.get_key_pair(name).fingerprint == kp.fingerprint
        assert name in [k.name for k in driver.list_key_pairs()]
        node = driver.create_node(name="lc-kp", image=image, size=size, ex_keyname=name)
        assert node.extra["key_name"] == name
        driver.destroy_node(node)
    finally:
        assert driver.delete_key_pair(kp) is True
    # get_key_pair sends a bare KeyName=: the gateway must read it as KeyName.1.
    with pytest.raises(KeyPairDoesNotExistError) as e:
        driver.get_key_pair(name)
    assert e.value.name == name
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    imported = driver.import_key_pair_from_string(name + "-imp", pub)
    assert imported.name == name + "-imp" and imported.fingerprint
    driver.delete_key_pair(imported)


def test_security_groups(driver, sigver):
    name = "lc-%s-%s" % (sigver, uuid.uuid4().hex[:8])
    created = driver.ex_create_security_group(name, "libcloud test group")
    try:
        assert created["group_id"].startswith("sg-")
        assert name in driver.ex_list_security_groups()
        assert driver.ex_authorize_security_group(name, 22, 22, "10.0.0.0/8") is True
        g = [g for g in driver.ex_get_security_groups(group_names=[name])][0]
        assert any(r["from_port"] == "22" and "10.0.0.0/8" in r["cidr_ips"] for r in g.ingress_rules), g.ingress_rules
    finally:
        assert driver.ex_delete_security_group(name) is True


def test_volumes_and_snapshots(driver, sigver, image, size):
    loc = driver.list_locations()[0]
    vol = driver.create_volume(1, "lc-vol-%s" % sigver, location=loc)
    node = driver.create_node(name="lc-vol", image=image, size=size, location=loc)
    try:
        assert vol.id.startswith("vol-") and vol.size == 1

        def vol_state(want, attachment=None):
            deadline = time.time() + 60
            while True:
                v = [v for v in driver.list_volumes() if v.id == vol.id][0]
                if v.extra["state"] == want and v.extra.get("attachment_status") == attachment:
                    return v
                assert time.time() < deadline, "%s still %s" % (vol.id, v.extra)
                time.sleep(0.3)

        vol_state("available")
        wait_node(driver, node.id, NodeState.RUNNING)
        assert driver.attach_volume(node, vol, "/dev/sdf") is True
        v = vol_state("in-use", "attached")
        assert (v.extra["instance_id"], v.extra["device"]) == (node.id, "/dev/sdf")
        assert driver.detach_volume(vol) is True
        vol_state("available")
        snap = driver.create_volume_snapshot(vol, "lc-snap")
        assert snap.id.startswith("snap-")
        assert snap.id in [s.id for s in driver.list_snapshots()]
        assert driver.destroy_volume_snapshot(snap) is True
    finally:
        driver.destroy_node(node)
        assert driver.destroy_volume(vol) is True
