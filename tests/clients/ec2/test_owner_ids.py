"""Owner ids and timestamps as EC2 writes them (issue 12 item 10, docs/accounts.md): every
ownerId-like element is the 12-digit number of the owning CloudStack account's uuid (computed
here from the seed with the documented formula), the owner-id filters and Owner parameters take
it, and every timestamp of every Describe answer is ISO 8601 with milliseconds and Z."""
import hashlib
import pathlib
import re
import tomllib
import xml.etree.ElementTree as ET

import pytest

from harness import local_name

SEED = pathlib.Path(__file__).resolve().parents[3] / "seeds" / "default.toml"
OWNER_ELEMENTS = {"ownerId", "imageOwnerId", "userId", "instanceOwnerId", "networkInterfaceOwnerId"}
EC2_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LOOKS_LIKE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def account_number(account_uuid):
    d = hashlib.sha256(("account:" + account_uuid).encode()).digest()
    return "%012d" % (int.from_bytes(d[:8], "big") % 10**12)


def seeded_number(name):
    for a in tomllib.loads(SEED.read_text())["accounts"]:
        if a["name"] == name:
            return account_number(a["id"])
    raise KeyError(name)


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def mine(user):
    return seeded_number(user["account"])


@pytest.fixture(scope="module")
def world(ec2):
    """One of each owned kind: an instance, a volume and its snapshot, a security group pair,
    a VPC with a subnet, an internet gateway, a DHCP options set, a network interface."""
    ami = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.small")["Instances"][0]
    iid = inst["InstanceId"]
    zone = inst["Placement"]["AvailabilityZone"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    vol = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    # Attached (an attach time to check) before it is snapshotted.
    ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    a = ec2.create_security_group(GroupName="owner-a", Description="a")["GroupId"]
    b = ec2.create_security_group(GroupName="owner-b", Description="b")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=a, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": b}]}])
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    dopt = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name", "Values": ["x.test"]}])[
        "DhcpOptions"]["DhcpOptionsId"]
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    yield dict(instance=iid, volume=vol, snapshot=snap, sg_a=a, sg_b=b, vpc=vpc, subnet=subnet, igw=igw,
               dopt=dopt, eni=eni)
    for f in (lambda: ec2.delete_network_interface(NetworkInterfaceId=eni),
              lambda: ec2.delete_dhcp_options(DhcpOptionsId=dopt),
              lambda: ec2.delete_internet_gateway(InternetGatewayId=igw),
              lambda: ec2.delete_subnet(SubnetId=subnet),
              lambda: ec2.delete_vpc(VpcId=vpc),
              lambda: ec2.detach_volume(VolumeId=vol),
              lambda: ec2.terminate_instances(InstanceIds=[iid]),
              lambda: ec2.revoke_security_group_ingress(GroupId=a, IpPermissions=[
                  {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": b}]}]),
              lambda: ec2.delete_security_group(GroupId=a),
              lambda: ec2.delete_security_group(GroupId=b)):
        try:
            f()
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def test_owner_ids_are_the_account_number(ec2, world, mine):
    r = ec2.describe_instances(InstanceIds=[world["instance"]])["Reservations"][0]
    assert r["OwnerId"] == mine
    sgs = ec2.describe_security_groups(GroupIds=[world["sg_a"], world["sg_b"]])["SecurityGroups"]
    assert {g["OwnerId"] for g in sgs} == {mine}
    a = [g for g in sgs if g["GroupId"] == world["sg_a"]][0]
    pairs = [p for perm in a["IpPermissions"] for p in perm["UserIdGroupPairs"]]
    assert [(p["GroupId"], p["UserId"]) for p in pairs] == [(world["sg_b"], mine)]
    snap = ec2.describe_snapshots(SnapshotIds=[world["snapshot"]])["Snapshots"][0]
    assert snap["OwnerId"] == mine
    assert ec2.describe_vpcs(VpcIds=[world["vpc"]])["Vpcs"][0]["OwnerId"] == mine
    assert ec2.describe_subnets(SubnetIds=[world["subnet"]])["Subnets"][0]["OwnerId"] == mine
    assert ec2.describe_internet_gateways(InternetGatewayIds=[world["igw"]])["InternetGateways"][0]["OwnerId"] == mine
    assert ec2.describe_dhcp_options(DhcpOptionsIds=[world["dopt"]])["DhcpOptions"][0]["OwnerId"] == mine
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[world["eni"]])["NetworkInterfaces"][0]
    assert eni["OwnerId"] == mine
    rtbs = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [world["vpc"]]}])["RouteTables"]
    assert rtbs and {t["OwnerId"] for t in rtbs} == {mine}


def test_image_owner_is_the_owning_account(ec2):
    """Featured images belong to the seed's admin account: its number, not the caller's."""
    admin = seeded_number("admin")
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    assert images and {i["OwnerId"] for i in images} == {admin}
    # Owners=<number> and the owner-id filter take the number.
    assert {i["ImageId"] for i in ec2.describe_images(Owners=[admin])["Images"]} == {i["ImageId"] for i in images}
    by_filter = ec2.describe_images(Filters=[{"Name": "owner-id", "Values": [admin]}])["Images"]
    assert {i["ImageId"] for i in images} <= {i["ImageId"] for i in by_filter}


def test_owner_filters_and_parameters_take_the_number(ec2, world, mine):
    got = ec2.describe_instances(Filters=[{"Name": "owner-id", "Values": [mine]}])["Reservations"]
    assert world["instance"] in [i["InstanceId"] for r in got for i in r["Instances"]]
    assert ec2.describe_instances(Filters=[{"Name": "owner-id", "Values": ["000000000000"]}])["Reservations"] == []
    snaps = ec2.describe_snapshots(OwnerIds=[mine])["Snapshots"]
    assert world["snapshot"] in [s["SnapshotId"] for s in snaps]
    snaps = ec2.describe_snapshots(Filters=[{"Name": "owner-id", "Values": [mine]}])["Snapshots"]
    assert world["snapshot"] in [s["SnapshotId"] for s in snaps]
    sgs = ec2.describe_security_groups(Filters=[{"Name": "owner-id", "Values": [mine]}])["SecurityGroups"]
    assert world["sg_a"] in [g["GroupId"] for g in sgs]
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "owner-id", "Values": [mine]}])["Vpcs"]
    assert world["vpc"] in [v["VpcId"] for v in vpcs]


def test_group_pair_by_owner_number(ec2, world, mine):
    """The old flat form names the source group by name and owner id: the number works."""
    ec2.authorize_security_group_ingress(GroupName="owner-a", SourceSecurityGroupName="owner-b",
                                         SourceSecurityGroupOwnerId=mine)
    perms = ec2.describe_security_groups(GroupIds=[world["sg_a"]])["SecurityGroups"][0]["IpPermissions"]
    assert any(p["UserId"] == mine for perm in perms for p in perm["UserIdGroupPairs"])
    ec2.revoke_security_group_ingress(GroupName="owner-a", SourceSecurityGroupName="owner-b",
                                      SourceSecurityGroupOwnerId=mine)


def iter_texts(xml_bytes):
    root = ET.fromstring(xml_bytes)
    for el in root.iter():
        if el.text and el.text.strip() and len(el) == 0:
            yield local_name(el.tag), el.text.strip()


DESCRIBES = ["DescribeInstances", "DescribeImages", "DescribeVolumes", "DescribeSnapshots", "DescribeKeyPairs",
             "DescribeSecurityGroups", "DescribeAddresses", "DescribeVpcs", "DescribeSubnets",
             "DescribeInternetGateways", "DescribeRouteTables", "DescribeDhcpOptions", "DescribeNetworkInterfaces",
             "DescribeInstanceStatus", "DescribeTags", "DescribeAvailabilityZones", "DescribeAccountAttributes"]


@pytest.mark.parametrize("action", DESCRIBES)
def test_every_timestamp_and_owner_in_describes(raw_sigv2, world, mine, action):
    r = raw_sigv2({"Action": action})
    assert r.status_code == 200, r.content
    for name, text in iter_texts(r.content):
        if LOOKS_LIKE_TIME.match(text):
            assert EC2_TIME.match(text), "%s: <%s>%s" % (action, name, text)
        if name in OWNER_ELEMENTS:
            assert re.fullmatch(r"\d{12}", text), "%s: <%s>%s" % (action, name, text)


def test_instance_attribute_and_volume_times(raw_sigv2, ec2, world):
    for params in ({"Action": "DescribeVolumes", "VolumeId.1": world["volume"]},
                   {"Action": "DescribeInstances", "InstanceId.1": world["instance"]},
                   {"Action": "DescribeInstanceAttribute", "InstanceId": world["instance"],
                    "Attribute": "blockDeviceMapping"},
                   {"Action": "GetConsoleOutput", "InstanceId": world["instance"]}):
        r = raw_sigv2(params)
        assert r.status_code == 200, r.content
        times = [(n, t) for n, t in iter_texts(r.content) if LOOKS_LIKE_TIME.match(t)]
        assert times, params
        for n, t in times:
            assert EC2_TIME.match(t), "%s: <%s>%s" % (params["Action"], n, t)
