"""Issue 12 item 11: no parameter is dropped in silence (docs/parameters.md). Every input member
of a mapped action in EC2's service model (botocore's, read through botocore's own loader) is
honoured or refused by name; a refused one answers UnsupportedOperation naming it and changes
nothing; one EC2 does not know answers UnknownParameter. boto3, the AWS CLI and raw SigV2."""
import json
import os
import pathlib
import subprocess

import pytest
import botocore.loaders

from harness import client_error as code_of, parse_error

BIN = os.environ.get("EC2BRIDGE_BIN",
                     str(pathlib.Path(__file__).resolve().parents[3] / "target" / "debug" / "ec2bridge"))


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def image(ec2):
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"]
    assert images, "the simulator seeds an Ubuntu image"
    return images[0]["ImageId"]


def wire(name, ref):
    """The member's name on the wire, as botocore's EC2 serializer writes it."""
    if "queryName" in ref:
        return ref["queryName"]
    if "locationName" in ref:
        return ref["locationName"][0].upper() + ref["locationName"][1:]
    return name


def test_every_model_member_is_honoured_or_refused():
    model = botocore.loaders.create_loader().load_service_model("ec2", "service-2", "2016-11-15")
    declared = json.loads(subprocess.run([BIN, "mappings", "params", "--json"], check=True,
                                         capture_output=True, text=True).stdout)
    assert len(declared) > 100
    missing = []
    for action, d in declared.items():
        op = model["operations"][action]
        members = [wire(n, r) for n, r in model["shapes"][op["input"]["shape"]]["members"].items()] \
            if "input" in op else []
        refused = {r["pattern"].split(".")[0] for r in d["refuses"]}
        missing += ["%s.%s" % (action, m) for m in members if m not in d["honoured"] and m not in refused]
        for r in d["refuses"]:
            assert r["reason"].strip(), (action, r)
    assert not missing, "neither honoured nor refused: %s" % missing


def running(ec2):
    out = set()
    for r in ec2.describe_instances()["Reservations"]:
        out |= {i["InstanceId"] for i in r["Instances"] if i["State"]["Name"] not in ("terminated", "shutting-down")}
    return out


def test_refused_member_boto3_changes_nothing(ec2, image):
    before = running(ec2)
    code, msg = code_of(lambda: ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                                  MetadataOptions={"HttpTokens": "required"}))
    assert code == "UnsupportedOperation"
    assert msg.startswith("The parameter MetadataOptions.HttpTokens is not supported"), msg
    code, msg = code_of(lambda: ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                                  IamInstanceProfile={"Name": "web"}))
    assert code == "UnsupportedOperation" and "IamInstanceProfile.Name" in msg, msg
    code, msg = code_of(lambda: ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                                  Placement={"Tenancy": "dedicated"}))
    assert code == "UnsupportedOperation" and "Placement.Tenancy" in msg, msg
    assert running(ec2) == before
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vols = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    code, msg = code_of(lambda: ec2.create_volume(AvailabilityZone=zone, Size=1, Throughput=250))
    assert code == "UnsupportedOperation" and "Throughput" in msg, msg
    assert {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]} == vols


def test_default_values_of_refused_members_are_honoured(ec2, image):
    """The values that mean what the cloud does anyway pass (Terraform sends them)."""
    r = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Monitoring={"Enabled": False},
                          EbsOptimized=False, Placement={"Tenancy": "default"},
                          InstanceInitiatedShutdownBehavior="stop", DisableApiStop=False)
    iid = r["Instances"][0]["InstanceId"]
    try:
        assert iid in running(ec2)
    finally:
        ec2.terminate_instances(InstanceIds=[iid])


def test_refused_member_aws_cli(aws_cli, image, ec2):
    before = running(ec2)
    rc, _, err = aws_cli("ec2", "run-instances", "--image-id", image, "--count", "1",
                         "--metadata-options", "HttpTokens=required")
    assert rc != 0
    assert "UnsupportedOperation" in err and "MetadataOptions.HttpTokens" in err, err
    assert running(ec2) == before
    rc, _, err = aws_cli("ec2", "stop-instances", "--instance-ids", "i-0123456789abcdef0", "--hibernate")
    assert rc != 0 and "UnsupportedOperation" in err and "Hibernate" in err, err


def test_unknown_parameter_raw(raw_sigv2, ec2):
    r = raw_sigv2({"Action": "DescribeInstances", "Frobnicate": "yes"})
    assert r.status_code == 400, r.text
    assert parse_error(r)[:2] == ("UnknownParameter", "The parameter Frobnicate is not recognized")
    # A structure member EC2 has for another action only, and nothing is launched.
    before = running(ec2)
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"]
    r = raw_sigv2({"Action": "RunInstances", "ImageId": images[0]["ImageId"], "MinCount": "1",
                   "MaxCount": "1", "VolumeId": "vol-12345678"})
    assert r.status_code == 400, r.text
    assert parse_error(r)[:2] == ("UnknownParameter", "The parameter VolumeId is not recognized")
    assert running(ec2) == before
    # Case matters, as on EC2.
    r = raw_sigv2({"Action": "DescribeInstances", "instanceId.1": "i-12345678"})
    assert parse_error(r)[0] == "UnknownParameter"


def test_dry_run_still_answered(raw_sigv2):
    r = raw_sigv2({"Action": "DescribeRegions", "DryRun": "true"})
    assert parse_error(r)[0] == "DryRunOperation"


def test_client_token_route_table_and_interface(vpc_ec2):
    """CreateRouteTable and CreateNetworkInterface honour ClientToken (boto3 fills one in)."""
    ec2 = vpc_ec2
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    try:
        a = ec2.create_route_table(VpcId=vpc, ClientToken="params-rtb-1")["RouteTable"]["RouteTableId"]
        b = ec2.create_route_table(VpcId=vpc, ClientToken="params-rtb-1")["RouteTable"]["RouteTableId"]
        assert a == b
        c = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        assert c != a
        for t in (a, c):
            ec2.delete_route_table(RouteTableId=t)
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
        try:
            e1 = ec2.create_network_interface(SubnetId=subnet, ClientToken="params-eni-1")
            e2 = ec2.create_network_interface(SubnetId=subnet, ClientToken="params-eni-1")
            eni = e1["NetworkInterface"]["NetworkInterfaceId"]
            assert e2["NetworkInterface"]["NetworkInterfaceId"] == eni
            assert len(ec2.describe_network_interfaces(
                Filters=[{"Name": "subnet-id", "Values": [subnet]}])["NetworkInterfaces"]) == 1
            ec2.delete_network_interface(NetworkInterfaceId=eni)
        finally:
            ec2.delete_subnet(SubnetId=subnet)
    finally:
        ec2.delete_vpc(VpcId=vpc)


def test_allocate_address_tag_specification(ec2):
    """AllocateAddress TagSpecification (Terraform's aws_eip sends its tags so) tags the address."""
    a = ec2.allocate_address(Domain="standard", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": "params-eip"}]}])
    try:
        [addr] = ec2.describe_addresses(PublicIps=[a["PublicIp"]])["Addresses"]
        assert {"Key": "Name", "Value": "params-eip"} in addr.get("Tags", []), addr
    finally:
        ec2.release_address(PublicIp=a["PublicIp"])
