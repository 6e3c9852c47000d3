"""What Ansible's amazon.aws ec2_instance (and other SDK users) read from a VPC launch, checked over boto3:
RunInstances answers each VPC instance's network interface and private address at once; TagSpecification
of type `volume` tags the launch's volumes (RunInstances refuses types it cannot tag, naming those it can);
DescribeInstanceAttribute groupSet names a VPC instance's groups; DescribeVpcs accepts EC2's older filter
names `isDefault` and `cidr-block`."""
import pytest
from botocore.exceptions import ClientError


@pytest.fixture(scope="module")
def ec2(boto3_client):
    c = boto3_client()
    platforms = [v["AttributeValue"] for a in c.describe_account_attributes(
        AttributeNames=["supported-platforms"])["AccountAttributes"] for v in a["AttributeValues"]]
    if "VPC" not in platforms:
        pytest.skip("the simulator's region has no VPC zone")
    return c


@pytest.fixture(scope="module")
def net(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    sn = ec2.create_subnet(VpcId=vpc, CidrBlock="10.61.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="launch-answers", Description="t", VpcId=vpc)["GroupId"]
    yield vpc, sn, sg
    ec2.delete_security_group(GroupId=sg)
    ec2.delete_subnet(SubnetId=sn)
    ec2.delete_vpc(VpcId=vpc)


def _ami(ec2):
    images = ec2.describe_images(Filters=[{"Name": "state", "Values": ["available"]}])["Images"]
    return sorted(i["ImageId"] for i in images)[0]


def test_vpc_launch_answer_and_volume_tags(ec2, net):
    vpc, sn, sg = net
    r = ec2.run_instances(ImageId=_ami(ec2), MinCount=1, MaxCount=1, InstanceType="t2.micro", SubnetId=sn,
                          SecurityGroupIds=[sg], TagSpecifications=[
                              {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "la"}]},
                              {"ResourceType": "volume", "Tags": [{"Key": "disk-of", "Value": "la"}]}])
    inst = r["Instances"][0]
    iid = inst["InstanceId"]
    try:
        enis = inst["NetworkInterfaces"]
        assert len(enis) == 1 and enis[0]["SubnetId"] == sn and enis[0]["VpcId"] == vpc
        assert enis[0]["NetworkInterfaceId"].startswith("eni-")
        assert enis[0]["PrivateIpAddress"] == inst["PrivateIpAddress"]
        assert inst["PrivateIpAddress"].startswith("10.61.1.")
        assert [g["GroupId"] for g in enis[0]["Groups"]] == [sg]
        # The same interface as DescribeInstances shows.
        desc = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        assert desc["NetworkInterfaces"][0]["NetworkInterfaceId"] == enis[0]["NetworkInterfaceId"]
        vols = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
        assert vols and all({"Key": "disk-of", "Value": "la"} in v.get("Tags", []) for v in vols)
        tagged = ec2.describe_volumes(Filters=[{"Name": "tag:disk-of", "Values": ["la"]}])["Volumes"]
        assert {v["VolumeId"] for v in tagged} == {v["VolumeId"] for v in vols}
        # The volume tags went to the volumes only.
        assert {"Key": "disk-of", "Value": "la"} not in desc.get("Tags", [])
        groups = ec2.describe_instance_attribute(InstanceId=iid, Attribute="groupSet")["Groups"]
        assert [g["GroupId"] for g in groups] == [sg]
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_run_instances_refuses_other_tag_types(ec2):
    before = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    with pytest.raises(ClientError) as e:
        ec2.run_instances(ImageId=_ami(ec2), MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "spot-instances-request", "Tags": [{"Key": "k", "Value": "v"}]}])
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidParameterValue"
    assert "'instance'" in err["Message"] and "'volume'" in err["Message"]
    after = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert after == before


def test_older_vpc_filter_names(ec2, net):
    vpc, _, _ = net
    by_cidr = ec2.describe_vpcs(Filters=[{"Name": "cidr-block", "Values": ["10.61.0.0/16"]}])["Vpcs"]
    assert [v["VpcId"] for v in by_cidr] == [vpc]
    assert ec2.describe_vpcs(Filters=[{"Name": "cidr-block", "Values": ["10.99.0.0/16"]}])["Vpcs"] == []
    defaults = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    same = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert [v["VpcId"] for v in defaults] == [v["VpcId"] for v in same]
    assert vpc not in {v["VpcId"] for v in defaults}
