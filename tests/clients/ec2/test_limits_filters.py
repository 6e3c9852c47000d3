"""Limits and filters as EC2 has them (issue 12 item 12): a MaxResults above an action's maximum is
clamped (the AWS CLI sends 1000 on every paginated call; DescribeVolumes allows 500), the
platform-details / usage-operation filters Terraform's aws_ami data source sends, and `platform`
windows for instances of Windows images, through boto3 and the AWS CLI."""
import pytest
from botocore.exceptions import ClientError


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


def images_by_platform(ec2):
    images = ec2.describe_images()["Images"]
    windows = [i for i in images if i.get("Platform") == "windows"]
    linux = [i for i in images if "Platform" not in i]
    assert windows and linux, "the seed has Windows and Linux images"
    return windows, linux


def test_cli_describe_volumes_without_arguments(aws_cli, ec2):
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vol = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
    try:
        rc, out, err = aws_cli("ec2", "describe-volumes")
        assert rc == 0, err
        assert vol in [v["VolumeId"] for v in out["Volumes"]]
        rc, out, err = aws_cli("ec2", "describe-volumes", "--max-items", "1000", "--page-size", "1000")
        assert rc == 0, err
        # boto3 with a MaxResults above DescribeVolumes' 500: answered, at most 500.
        got = ec2.describe_volumes(MaxResults=1000)
        assert vol in [v["VolumeId"] for v in got["Volumes"]] and len(got["Volumes"]) <= 500
        for action in (ec2.describe_instances, ec2.describe_snapshots, ec2.describe_images,
                       ec2.describe_security_groups, ec2.describe_tags):
            action(MaxResults=1000)
            action(MaxResults=5000)
        # Below the minimum is still EC2's error.
        with pytest.raises(ClientError) as e:
            ec2.describe_volumes(MaxResults=4)
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    finally:
        ec2.delete_volume(VolumeId=vol)


def test_image_platform_details_and_usage_operation(ec2, aws_cli):
    windows, linux = images_by_platform(ec2)
    assert {i["PlatformDetails"] for i in windows} == {"Windows"}
    assert {i["UsageOperation"] for i in windows} == {"RunInstances:0002"}
    assert {i["PlatformDetails"] for i in linux} == {"Linux/UNIX"}
    assert {i["UsageOperation"] for i in linux} == {"RunInstances"}
    # What Terraform's aws_ami data source sends.
    got = ec2.describe_images(Filters=[{"Name": "platform-details", "Values": ["Linux/UNIX"]}])["Images"]
    assert {i["ImageId"] for i in got} == {i["ImageId"] for i in linux}
    got = ec2.describe_images(Filters=[{"Name": "platform-details", "Values": ["Windows*"]},
                                       {"Name": "usage-operation", "Values": ["RunInstances:0002"]}])["Images"]
    assert {i["ImageId"] for i in got} == {i["ImageId"] for i in windows}
    rc, out, err = aws_cli("ec2", "describe-images", "--filters", "Name=platform-details,Values=Windows")
    assert rc == 0, err
    assert {i["ImageId"] for i in out["Images"]} == {i["ImageId"] for i in windows}
    # A filter EC2 does not document for the action is refused by name.
    with pytest.raises(ClientError) as e:
        ec2.describe_images(Filters=[{"Name": "colour", "Values": ["x"]}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "colour" in e.value.response["Error"]["Message"]


def test_instance_platform_windows(ec2, aws_cli):
    windows, linux = images_by_platform(ec2)
    r = ec2.run_instances(ImageId=windows[0]["ImageId"], MinCount=1, MaxCount=1, InstanceType="m1.small")
    win = r["Instances"][0]["InstanceId"]
    r = ec2.run_instances(ImageId=linux[0]["ImageId"], MinCount=1, MaxCount=1, InstanceType="m1.small")
    lin = r["Instances"][0]["InstanceId"]
    try:
        got = {i["InstanceId"]: i for res in ec2.describe_instances(InstanceIds=[win, lin])["Reservations"]
               for i in res["Instances"]}
        assert got[win]["Platform"] == "windows"
        assert got[win]["PlatformDetails"] == "Windows"
        assert "Platform" not in got[lin]
        assert got[lin]["PlatformDetails"] == "Linux/UNIX"
        found = ec2.describe_instances(Filters=[{"Name": "platform", "Values": ["windows"]}])["Reservations"]
        ids = [i["InstanceId"] for res in found for i in res["Instances"]]
        assert win in ids and lin not in ids
        rc, out, err = aws_cli("ec2", "describe-instances", "--instance-ids", win)
        assert rc == 0, err
        assert out["Reservations"][0]["Instances"][0]["Platform"] == "windows"
    finally:
        ec2.terminate_instances(InstanceIds=[win, lin])
