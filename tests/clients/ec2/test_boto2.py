"""boto 2.49 against `ec2bridge serve --sim-fast`, connected the way docs/ec2-wire.md "What each client sends" says:
`EC2Connection(ak, sk, region=RegionInfo(name, endpoint=host), port=port, is_secure=False,
path='/')`. boto 2 signs EC2 with SigV4 and derives the scope's region and service from the host
name (`127.0.0.1` -> `0/127`, `localhost` -> `localhost/localhost`), sends API version 2014-10-01
(the answer's namespace must echo it), and builds connections from DescribeRegions'
regionEndpoint."""
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import pytest

boto = pytest.importorskip("boto", reason="boto 2 is not installed in the test venv")
from boto.ec2.connection import EC2Connection  # noqa: E402
from boto.ec2.regioninfo import RegionInfo  # noqa: E402
from boto.exception import EC2ResponseError  # noqa: E402

BOTO2_VERSION = "2014-10-01"


def host_port(gateway):
    netloc = urllib.parse.urlsplit(gateway["endpoint"]).netloc
    host, port = netloc.rsplit(":", 1)
    return host, int(port)


@pytest.fixture(scope="module")
def connect(gateway, user, secrets_used):
    def make(host=None, secret=None, u=None, **kw):
        h, port = host_port(gateway)
        u = u or user
        secret = secret if secret is not None else u["secret_key"]
        secrets_used.add(secret)
        kw.setdefault("port", port)
        conn = EC2Connection(u["access_key"], secret, region=RegionInfo(name=gateway["region"], endpoint=host or h),
                             is_secure=False, path="/", **kw)
        conn.num_retries = 0
        return conn
    return make


@pytest.fixture(scope="module")
def conn(connect):
    return connect()


@pytest.fixture(scope="module")
def image_id(conn):
    images = conn.get_all_images(filters={"name": "Ubuntu*"})
    assert images, "the simulator seeds an Ubuntu image"
    return images[0].id


def openssh_public_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode() + " test@ec2bridge"


def ec2_error(call):
    with pytest.raises(EC2ResponseError) as e:
        call()
    return e.value


def wait_state(instance, want, timeout=60):
    deadline = time.time() + timeout
    while instance.update() != want:
        assert time.time() < deadline, "%s still %s, expected %s" % (instance.id, instance.state, want)
        time.sleep(0.3)


def test_defaults_are_what_the_protocol_notes_say(conn):
    assert conn.APIVersion == BOTO2_VERSION
    assert conn._required_auth_capability() == ["hmac-v4"]


def test_namespace_echoes_boto2_version(conn):
    # boto 2 ignores namespaces, but the answer must still name the version it asked for.
    r = conn.make_request("DescribeAvailabilityZones", {}, "/", "POST")
    body = r.read()
    assert r.status == 200, body
    root = ET.fromstring(body)
    assert root.tag == "{http://ec2.amazonaws.com/doc/%s/}DescribeAvailabilityZonesResponse" % BOTO2_VERSION
    assert r.getheader("x-amzn-RequestId")


def test_zones(conn, gateway):
    zones = conn.get_all_zones()
    assert zones and all(z.state == "available" for z in zones), zones
    assert {z.region_name for z in zones} == {gateway["region"]}
    one = conn.get_all_zones(zones=[zones[0].name])
    assert [z.name for z in one] == [zones[0].name]


def test_images(conn, image_id):
    images = conn.get_all_images()
    assert image_id in [i.id for i in images]
    img = conn.get_image(image_id)
    assert img.id.startswith("ami-") and img.state == "available"
    assert img.name.startswith("Ubuntu") and img.architecture in ("x86_64", "i386")
    assert img.root_device_type in ("ebs", "instance-store")
    by_filter = conn.get_all_images(filters={"image-id": image_id})
    assert [i.id for i in by_filter] == [image_id]
    e = ec2_error(lambda: conn.get_all_images(image_ids=["ami-0123456789abcdef0"]))
    assert e.error_code == "InvalidAMIID.NotFound" and e.status == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_regions_endpoint_is_the_host_used_and_connectable(connect, gateway, user, host):
    # Scopes `0/127` and `localhost/localhost` both verify; the endpoint names the host we used.
    c = connect(host=host)
    _, port = host_port(gateway)
    regions = c.get_all_regions()
    assert [r.name for r in regions] == [gateway["region"]]
    assert regions[0].endpoint == "%s:%d" % (host, port)
    # A connection built from the answer (boto 2 strips the port off the endpoint for the TCP
    # connection, so a gateway on a non-default port needs `port=`).
    c2 = regions[0].connect(aws_access_key_id=user["access_key"], aws_secret_access_key=user["secret_key"],
                            is_secure=False, port=port)
    c2.num_retries = 0
    assert c2.get_all_zones()
    # A region filter that matches nothing.
    assert c.get_all_regions(region_names=["nowhere-1"]) == []


def test_instance_lifecycle(conn, image_id):
    zone = conn.get_all_zones()[0].name
    r = conn.run_instances(image_id, instance_type="t2.micro", placement=zone)
    assert r.id.startswith("r-") and len(r.instances) == 1
    inst = r.instances[0]
    assert inst.id.startswith("i-") and inst.state in ("pending", "running")
    assert inst.image_id == image_id and inst.instance_type == "t2.micro" and inst.placement == zone
    assert inst.launch_time.endswith("Z")  # boto 2 keeps the ISO 8601 string
    try:
        wait_state(inst, "running")
        assert inst.private_ip_address and inst.state_code == 16

        # Reservations and instances, by id and by filters.
        res = conn.get_all_reservations(instance_ids=[inst.id])
        assert [i.id for rr in res for i in rr.instances] == [inst.id]
        assert res[0].id == r.id
        running = conn.get_only_instances(filters={"instance-state-name": "running", "instance-type": "t2.micro"})
        assert inst.id in [i.id for i in running]
        assert conn.get_only_instances(filters={"instance-id": inst.id, "instance-state-name": "stopped"}) == []
        by_zone = conn.get_all_reservations(filters={"availability-zone": zone, "image-id": image_id})
        assert inst.id in [i.id for rr in by_zone for i in rr.instances]

        # Stop / start / reboot.
        stopping = conn.stop_instances([inst.id])
        assert [i.id for i in stopping] == [inst.id]
        wait_state(inst, "stopped")
        assert [i.id for i in conn.start_instances([inst.id])] == [inst.id]
        wait_state(inst, "running")
        assert conn.reboot_instances([inst.id]) is True
    finally:
        gone = conn.terminate_instances([inst.id])
    assert [i.id for i in gone] == [inst.id]
    # boto 2 reads the first state it meets: currentState must come first (shutting-down/terminated).
    assert gone[0].state in ("shutting-down", "terminated")
    wait_state(inst, "terminated")


def test_errors(connect, conn):
    e = ec2_error(lambda: conn.get_all_reservations(instance_ids=["i-0123456789abcdef0"]))
    assert (e.status, e.error_code) == (400, "InvalidInstanceID.NotFound")
    assert "i-0123456789abcdef0" in e.message and e.request_id
    e = ec2_error(lambda: conn.get_all_reservations(filters={"no-such-filter": "x"}))
    assert e.error_code == "InvalidParameterValue"
    e = ec2_error(lambda: connect(secret="not-the-secret").get_all_zones())
    assert (e.status, e.error_code) == (403, "SignatureDoesNotMatch")


# ---- key pairs, security groups, volumes, snapshots, addresses, tags ---------------------------

def test_key_pairs(conn):
    name = "boto2-%s" % uuid.uuid4().hex[:8]
    kp = conn.create_key_pair(name)
    try:
        assert kp.name == name and "PRIVATE KEY" in kp.material and kp.fingerprint
        assert [k.name for k in conn.get_all_key_pairs(keynames=[name])] == [name]
        e = ec2_error(lambda: conn.create_key_pair(name))
        assert e.error_code == "InvalidKeyPair.Duplicate"
    finally:
        assert conn.delete_key_pair(name) is True
    e = ec2_error(lambda: conn.get_all_key_pairs(keynames=[name]))
    assert e.error_code == "InvalidKeyPair.NotFound"
    imported = "boto2-imp-%s" % uuid.uuid4().hex[:8]
    kp = conn.import_key_pair(imported, openssh_public_key().encode())
    try:
        assert kp.name == imported and kp.fingerprint
        assert [k.name for k in conn.get_all_key_pairs(keynames=[imported])] == [imported]
    finally:
        conn.delete_key_pair(imported)


def test_security_groups(conn):
    name = "boto2-%s" % uuid.uuid4().hex[:8]
    sg = conn.create_security_group(name, "boto 2 test group")
    try:
        assert sg.name == name and sg.id.startswith("sg-")
        assert conn.authorize_security_group(group_name=name, ip_protocol="tcp", from_port=22, to_port=22,
                                             cidr_ip="10.0.0.0/8") is True
        got = conn.get_all_security_groups(groupnames=[name])[0]
        assert got.description == "boto 2 test group"
        rules = [(r.ip_protocol, str(r.from_port), str(r.to_port), [g.cidr_ip for g in r.grants]) for r in got.rules]
        assert ("tcp", "22", "22", ["10.0.0.0/8"]) in rules, rules
        assert conn.revoke_security_group(group_name=name, ip_protocol="tcp", from_port=22, to_port=22,
                                          cidr_ip="10.0.0.0/8") is True
        assert conn.get_all_security_groups(group_ids=[sg.id])[0].rules == []
        e = ec2_error(lambda: conn.create_security_group(name, "again"))
        assert e.error_code == "InvalidGroup.Duplicate"
    finally:
        assert conn.delete_security_group(name) is True
    e = ec2_error(lambda: conn.get_all_security_groups(groupnames=[name]))
    assert e.error_code == "InvalidGroup.NotFound"


def wait_volume(conn, vid, want, timeout=60):
    deadline = time.time() + timeout
    while True:
        v = conn.get_all_volumes(volume_ids=[vid])[0]
        if v.status == want:
            return v
        assert time.time() < deadline, "%s still %s" % (vid, v.status)
        time.sleep(0.3)


def test_volumes_and_snapshots(conn, image_id):
    zone = conn.get_all_zones()[0].name
    inst = conn.run_instances(image_id, instance_type="t2.micro", placement=zone).instances[0]
    vol = conn.create_volume(2, zone)
    try:
        assert vol.id.startswith("vol-") and vol.size == 2 and vol.zone == zone
        assert wait_volume(conn, vol.id, "available").create_time.endswith("Z")
        wait_state(inst, "running")
        # boto 2 returns the answer's <status> for these (its docstring says True).
        assert conn.attach_volume(vol.id, inst.id, "/dev/sdf") == "attaching"
        v = wait_volume(conn, vol.id, "in-use")
        assert (v.attach_data.instance_id, v.attach_data.device) == (inst.id, "/dev/sdf")
        deadline = time.time() + 60
        while v.attach_data.status != "attached":
            assert time.time() < deadline, v.attach_data.status
            time.sleep(0.3)
            v = conn.get_all_volumes(volume_ids=[vol.id])[0]
        assert conn.detach_volume(vol.id) == "detaching"
        wait_volume(conn, vol.id, "available")
        # This cloud allocates a volume on its first attach; only then can it be snapshotted.
        snap = conn.create_snapshot(vol.id, "boto 2 snapshot")
        assert snap.id.startswith("snap-") and snap.volume_id == vol.id
        deadline = time.time() + 60
        while conn.get_all_snapshots(snapshot_ids=[snap.id])[0].status != "completed":
            assert time.time() < deadline
            time.sleep(0.3)
        assert conn.delete_snapshot(snap.id) is True
    finally:
        conn.terminate_instances([inst.id])
        assert conn.delete_volume(vol.id) is True
    e = ec2_error(lambda: conn.get_all_volumes(volume_ids=["vol-0123456789abcdef0"]))
    assert e.error_code == "InvalidVolume.NotFound"


def test_addresses(conn, image_id):
    inst = conn.run_instances(image_id, instance_type="t2.micro").instances[0]
    addr = conn.allocate_address()
    try:
        assert addr.public_ip
        wait_state(inst, "running")
        assert conn.associate_address(instance_id=inst.id, public_ip=addr.public_ip) is True
        got = conn.get_all_addresses(addresses=[addr.public_ip])[0]
        assert got.instance_id == inst.id
        assert conn.disassociate_address(public_ip=addr.public_ip) is True
        assert not conn.get_all_addresses(addresses=[addr.public_ip])[0].instance_id
    finally:
        conn.release_address(public_ip=addr.public_ip)
        conn.terminate_instances([inst.id])
    assert addr.public_ip not in [a.public_ip for a in conn.get_all_addresses()]


def test_tags(conn, image_id):
    inst = conn.run_instances(image_id, instance_type="t2.micro").instances[0]
    try:
        assert conn.create_tags([inst.id], {"Name": "boto2 web", "env": "test"}) is True
        tags = conn.get_all_tags(filters={"resource-id": inst.id})
        assert {(t.name, t.value, t.res_type) for t in tags} == {("Name", "boto2 web", "instance"),
                                                                 ("env", "test", "instance")}
        inst.update()
        assert inst.tags == {"Name": "boto2 web", "env": "test"}
        found = conn.get_only_instances(filters={"tag:Name": "boto2 web"})
        assert [i.id for i in found] == [inst.id]
        assert conn.delete_tags([inst.id], {"env": None}) is True
        assert [t.name for t in conn.get_all_tags(filters={"resource-id": inst.id})] == ["Name"]
    finally:
        conn.terminate_instances([inst.id])
