"""Elastic IPs through boto3 and the AWS CLI: AllocateAddress (standard / vpc), DescribeAddresses
(ids, filters), AssociateAddress (by IP and by allocation id, AllowReassociation, moving an
instance's address), DisassociateAddress (by IP and by association id), ReleaseAddress, DryRun and
the EC2 error codes."""
import pytest
from botocore.exceptions import ClientError


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def ami(ec2):
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"]
    assert images, "the simulator's demo images are listed"
    return images[0]["ImageId"]


@pytest.fixture(scope="module")
def instances(ec2, ami):
    r = ec2.run_instances(ImageId=ami, MinCount=2, MaxCount=2, InstanceType="m1.small")
    ids = [i["InstanceId"] for i in r["Instances"]]
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    yield ids
    ec2.terminate_instances(InstanceIds=ids)


def test_allocate_describe_release(ec2):
    with pytest.raises(ClientError) as e:
        ec2.allocate_address(Domain="vpc", DryRun=True)
    assert e.value.response["Error"]["Code"] == "DryRunOperation"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    vpc = ec2.allocate_address(Domain="vpc")
    assert vpc["Domain"] == "vpc"
    assert vpc["AllocationId"].startswith("eipalloc-")
    std = ec2.allocate_address()
    assert std["Domain"] == "standard" and std["PublicIp"] != vpc["PublicIp"]

    got = ec2.describe_addresses(PublicIps=[vpc["PublicIp"]])["Addresses"]
    assert [a["AllocationId"] for a in got] == [vpc["AllocationId"]]
    got = ec2.describe_addresses(AllocationIds=[std["AllocationId"]])["Addresses"]
    assert [a["PublicIp"] for a in got] == [std["PublicIp"]]
    got = ec2.describe_addresses(Filters=[{"Name": "public-ip", "Values": [vpc["PublicIp"], std["PublicIp"]]}])
    assert len(got["Addresses"]) == 2
    assert code_of(lambda: ec2.describe_addresses(PublicIps=["198.51.100.254"])) == "InvalidAddress.NotFound"
    # Issue 12 item 8: not an IPv4 address at all -> InvalidParameterValue (nothing listed as found).
    for bad in ("not-an-ip", "300.1.2.3", "2001:db8::1", "10.0.0"):
        assert code_of(lambda: ec2.describe_addresses(PublicIps=[bad])) == "InvalidParameterValue", bad
    assert code_of(lambda: ec2.describe_addresses(PublicIps=[vpc["PublicIp"], "bogus"])) == "InvalidParameterValue"
    assert code_of(lambda: ec2.release_address(PublicIp="bogus")) == "InvalidParameterValue"
    assert code_of(lambda: ec2.describe_addresses(AllocationIds=["eipalloc-0123456789abcdef0"])) == \
        "InvalidAllocationID.NotFound"
    assert code_of(lambda: ec2.describe_addresses(Filters=[{"Name": "color", "Values": ["x"]}])) == \
        "InvalidParameterValue"

    ec2.release_address(AllocationId=vpc["AllocationId"])
    ec2.release_address(PublicIp=std["PublicIp"])
    left = [a["PublicIp"] for a in ec2.describe_addresses()["Addresses"]]
    assert vpc["PublicIp"] not in left and std["PublicIp"] not in left
    assert code_of(lambda: ec2.release_address(PublicIp=std["PublicIp"])) == "InvalidAddress.NotFound"
    assert code_of(lambda: ec2.release_address(AllocationId=vpc["AllocationId"])) == "InvalidAllocationID.NotFound"


def test_associate_and_disassociate(ec2, instances):
    a, b = instances
    eip = ec2.allocate_address(Domain="vpc")
    eip2 = ec2.allocate_address()
    try:
        r = ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=a)
        assoc = r["AssociationId"]
        assert assoc.startswith("eipassoc-")
        got = ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [a]}])["Addresses"]
        assert len(got) == 1 and got[0]["PublicIp"] == eip["PublicIp"]
        assert got[0]["AssociationId"] == assoc and got[0]["PrivateIpAddress"]
        inst = ec2.describe_instances(InstanceIds=[a])["Reservations"][0]["Instances"][0]
        assert inst["PublicIpAddress"] == eip["PublicIp"]

        # In use elsewhere: refused without AllowReassociation, moved with it.
        assert code_of(lambda: ec2.associate_address(PublicIp=eip["PublicIp"], InstanceId=b)) == \
            "InvalidIPAddress.InUse"
        r = ec2.associate_address(PublicIp=eip["PublicIp"], InstanceId=b, AllowReassociation=True)
        assert r["AssociationId"] != assoc
        got = ec2.describe_addresses(PublicIps=[eip["PublicIp"]])["Addresses"][0]
        assert got["InstanceId"] == b

        # A second address on b replaces the first, as in EC2.
        ec2.associate_address(PublicIp=eip2["PublicIp"], InstanceId=b)
        by_ip = {x["PublicIp"]: x for x in ec2.describe_addresses()["Addresses"]}
        assert by_ip[eip2["PublicIp"]]["InstanceId"] == b
        assert not by_ip[eip["PublicIp"]].get("InstanceId")

        # The old association id is gone; the current one works; a free address is left alone.
        assert code_of(lambda: ec2.disassociate_address(AssociationId=assoc)) == "InvalidAssociationID.NotFound"
        cur = by_ip[eip2["PublicIp"]]["AssociationId"]
        ec2.disassociate_address(AssociationId=cur)
        ec2.disassociate_address(PublicIp=eip2["PublicIp"])
        assert not ec2.describe_addresses(PublicIps=[eip2["PublicIp"]])["Addresses"][0].get("InstanceId")
        assert code_of(lambda: ec2.associate_address(PublicIp="198.51.100.254", InstanceId=a)) == \
            "InvalidAddress.NotFound"
        assert code_of(lambda: ec2.associate_address(PublicIp=eip["PublicIp"], InstanceId="i-0123456789abcdef0")) == \
            "InvalidInstanceID.NotFound"
    finally:
        for e in (eip, eip2):
            ec2.release_address(AllocationId=e["AllocationId"])


def test_other_accounts_addresses_are_invisible(gateway, boto3_client, ec2):
    others = [u for u in gateway["users"] if not u["is_admin"]]
    if len(others) < 2:
        pytest.skip("the simulator has one plain demo user only")
    mine = ec2.allocate_address()
    try:
        theirs = boto3_client(others[1])
        assert code_of(lambda: theirs.release_address(PublicIp=mine["PublicIp"])) == "InvalidAddress.NotFound"
        assert mine["PublicIp"] not in [a["PublicIp"] for a in theirs.describe_addresses()["Addresses"]]
    finally:
        ec2.release_address(PublicIp=mine["PublicIp"])


def test_cli_addresses(aws_cli):
    rc, out, err = aws_cli("ec2", "allocate-address", "--domain", "vpc")
    assert rc == 0, err
    ip, alloc = out["PublicIp"], out["AllocationId"]
    rc, out, err = aws_cli("ec2", "describe-addresses", "--allocation-ids", alloc)
    assert rc == 0, err
    assert [a["PublicIp"] for a in out["Addresses"]] == [ip]
    rc, out, err = aws_cli("ec2", "release-address", "--allocation-id", alloc)
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-addresses", "--public-ips", ip)
    assert rc != 0 and "InvalidAddress.NotFound" in err
    # Issue 12 item 8 through the CLI: a malformed address is InvalidParameterValue.
    rc, out, err = aws_cli("ec2", "describe-addresses", "--public-ips", "not-an-ip")
    assert rc != 0 and "InvalidParameterValue" in err, err
