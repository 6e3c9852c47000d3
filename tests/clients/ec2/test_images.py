"""Images through real clients: boto3 (every image action, the image_available waiter, error
codes) and the AWS CLI (create-image / describe-images / deregister-image, register-image,
modify/describe-image-attribute). The gateway is the shared session one (`serve --sim-fast`)."""
import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

UBUNTU = "Ubuntu 22.04"


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def unique(prefix):
    # Image names are unique per account, and the session gateway is shared by every suite.
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def other(gateway, boto3_client, user):
    others = [u for u in gateway["users"] if not u["is_admin"] and u["account"] != user["account"]]
    if not others:
        pytest.fail("the demo seed should have a second user account")
    return boto3_client(others[0])


@pytest.fixture(scope="module")
def ubuntu(ec2):
    imgs = ec2.describe_images(Filters=[{"Name": "name", "Values": [UBUNTU]}])["Images"]
    assert imgs, "the demo seed's Ubuntu template"
    return imgs[0]["ImageId"]


@pytest.fixture(scope="module")
def instance(ec2, ubuntu):
    iid = ec2.run_instances(ImageId=ubuntu, MinCount=1, MaxCount=1, InstanceType="t2.micro")["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    yield iid
    ec2.terminate_instances(InstanceIds=[iid])


def state(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def wait_available(ec2, ami):
    ec2.get_waiter("image_available").wait(ImageIds=[ami], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return ec2.describe_images(ImageIds=[ami])["Images"][0]


def test_create_image_running_instance_waiter_and_errors(ec2, instance):
    name = unique("web")
    # Refused without side effects.
    assert code_of(lambda: ec2.create_image(InstanceId=instance, Name=name, NoReboot=True)) == "IncorrectInstanceState"
    assert state(ec2, instance) == "running"
    assert code_of(lambda: ec2.create_image(InstanceId=instance, Name="bad*name")) == "InvalidAMIName.Malformed"
    assert code_of(lambda: ec2.create_image(InstanceId="i-0123456789abcdef0", Name=name)) == "InvalidInstanceID.NotFound"
    assert code_of(lambda: ec2.create_image(InstanceId="nope", Name=name)) == "InvalidInstanceID.Malformed"
    assert code_of(lambda: ec2.create_image(InstanceId=instance, Name=name, DryRun=True)) == "DryRunOperation"
    assert not ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]

    ami = ec2.create_image(InstanceId=instance, Name=name, Description="made by boto3")["ImageId"]
    assert ami.startswith("ami-") and len(ami) == 21
    img = ec2.describe_images(ImageIds=[ami])["Images"][0]
    assert img["State"] in ("pending", "available")
    img = wait_available(ec2, ami)
    assert (img["Name"], img["Description"], img["Public"]) == (name, "made by boto3", False)
    assert img["ImageType"] == "machine" and img["RootDeviceType"] == "ebs"
    # The stop CreateImage made is followed by a start (EC2's reboot).
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert code_of(lambda: ec2.create_image(InstanceId=instance, Name=name)) == "InvalidAMIName.Duplicate"

    # Filters, and launching from it.
    found = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "name", "Values": [name[:6] + "*"]}, {"Name": "state", "Values": ["available"]},
        {"Name": "is-public", "Values": ["false"]}])["Images"]
    assert ami in [i["ImageId"] for i in found]
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)
    iid2 = r["Instances"][0]["InstanceId"]
    assert r["Instances"][0]["ImageId"] == ami
    ec2.terminate_instances(InstanceIds=[iid2])

    ec2.deregister_image(ImageId=ami)
    assert code_of(lambda: ec2.describe_images(ImageIds=[ami])) == "InvalidAMIID.NotFound"
    assert code_of(lambda: ec2.deregister_image(ImageId=ami)) == "InvalidAMIID.NotFound"
    assert code_of(lambda: ec2.deregister_image(ImageId="ami-zz")) == "InvalidAMIID.Malformed"


def test_create_image_stopped_instance_stays_stopped(ec2, ubuntu):
    iid = ec2.run_instances(ImageId=ubuntu, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    try:
        ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ec2.stop_instances(InstanceIds=[iid])
        ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ami = ec2.create_image(InstanceId=iid, Name=unique("cold"), NoReboot=True)["ImageId"]
        img = wait_available(ec2, ami)
        assert img["Description"] == img["Name"]
        time.sleep(0.5)
        assert state(ec2, iid) == "stopped"
        ec2.deregister_image(ImageId=ami)
    finally:
        ec2.terminate_instances(InstanceIds=[iid])


def test_register_image_and_attributes(ec2, other, ubuntu):
    name = unique("reg")
    assert code_of(lambda: ec2.register_image(Name=name)) == "MissingParameter"
    assert code_of(lambda: ec2.register_image(Name=name, ImageLocation="http://images.example/a.qcow2",
                                              Architecture="arm64")) == "InvalidParameterValue"
    ami = ec2.register_image(Name=name, ImageLocation="http://images.example/a.vhd", Architecture="x86_64")["ImageId"]
    img = wait_available(ec2, ami)
    assert img["Hypervisor"] == "xen" and img["Description"] == name

    a = ec2.describe_image_attribute(ImageId=ami, Attribute="description")
    assert a["ImageId"] == ami and a["Description"]["Value"] == name
    ec2.modify_image_attribute(ImageId=ami, Description={"Value": "renamed"})
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="description")["Description"]["Value"] == "renamed"
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"] == []
    # No kernel or ramdisk: left out of the answer, as EC2 does (and as DescribeImages does).
    assert "KernelId" not in ec2.describe_image_attribute(ImageId=ami, Attribute="kernel")
    assert "RamdiskId" not in ec2.describe_image_attribute(ImageId=ami, Attribute="ramdisk")
    bdm = ec2.describe_image_attribute(ImageId=ami, Attribute="blockDeviceMapping")["BlockDeviceMappings"]
    assert bdm[0]["DeviceName"] == "/dev/sda1"
    assert code_of(lambda: ec2.describe_image_attribute(ImageId=ami, Attribute="colour")) == "InvalidRequest"

    # Public: the other account sees it, cannot change it.
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"] == [
        {"Group": "all"}]
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["Public"] is True
    assert other.describe_images(ImageIds=[ami])["Images"][0]["ImageId"] == ami
    assert code_of(lambda: other.modify_image_attribute(
        ImageId=ami, LaunchPermission={"Remove": [{"Group": "all"}]})) == "UnauthorizedOperation"
    assert code_of(lambda: other.deregister_image(ImageId=ami)) == "UnauthorizedOperation"
    assert code_of(lambda: ec2.deregister_image(ImageId=ubuntu)) == "UnauthorizedOperation"
    # An account outside the owner's domain cannot be given the image (CloudStack's rule).
    assert code_of(lambda: ec2.modify_image_attribute(
        ImageId=ami, LaunchPermission={"Add": [{"UserId": "no-such-account"}]})) == "InvalidAMIAttributeItemValue"

    # The flat form, then reset.
    ec2.modify_image_attribute(ImageId=ami, Attribute="launchPermission", OperationType="remove", UserGroups=["all"])
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["Public"] is False
    ec2.modify_image_attribute(ImageId=ami, Attribute="launchPermission", OperationType="add", UserGroups=["all"])
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["Public"] is True
    assert code_of(lambda: ec2.reset_image_attribute(ImageId=ami, Attribute="description")) == "InvalidParameterValue"
    ec2.reset_image_attribute(ImageId=ami, Attribute="launchPermission")
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["Public"] is False
    assert code_of(lambda: other.describe_images(ImageIds=[ami])) == "InvalidAMIID.NotFound"
    ec2.deregister_image(ImageId=ami)


def test_aws_cli_image_commands(aws_cli, ec2, instance):
    name = unique("cli")
    rc, out, err = aws_cli("ec2", "create-image", "--instance-id", instance, "--name", name, "--description", "cli")
    assert rc == 0, err
    ami = out["ImageId"]
    rc, out, err = aws_cli("ec2", "wait", "image-available", "--image-ids", ami)
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-images", "--owners", "self", "--filters", "Name=name,Values=%s" % name)
    assert rc == 0, err
    assert [i["ImageId"] for i in out["Images"]] == [ami]
    rc, out, err = aws_cli("ec2", "modify-image-attribute", "--image-id", ami,
                           "--launch-permission", '{"Add":[{"Group":"all"}]}')
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-image-attribute", "--image-id", ami, "--attribute", "launchPermission")
    assert rc == 0, err
    assert out["LaunchPermissions"] == [{"Group": "all"}]
    # Issue 12 item 7: no kernel/ramdisk -> no element; an unknown attribute -> InvalidRequest.
    for attr, key in (("kernel", "KernelId"), ("ramdisk", "RamdiskId")):
        rc, out, err = aws_cli("ec2", "describe-image-attribute", "--image-id", ami, "--attribute", attr)
        assert rc == 0, err
        assert key not in out and out["ImageId"] == ami
    rc, out, err = aws_cli("ec2", "describe-image-attribute", "--image-id", ami, "--attribute", "colour")
    assert rc != 0 and "InvalidRequest" in err, err
    rc, out, err = aws_cli("ec2", "deregister-image", "--image-id", ami)
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "deregister-image", "--image-id", ami)
    assert rc != 0 and "InvalidAMIID.NotFound" in err
    # The CLI would fetch an http:// value given as --image-location (URL parameter files), so the
    # location goes in through --cli-input-json, as scripts registering web images do.
    rc, out, err = aws_cli("ec2", "register-image", "--cli-input-json", json.dumps(
        {"Name": unique("clireg"), "ImageLocation": "http://images.example/c.qcow2"}))
    assert rc == 0, err
    ami2 = out["ImageId"]
    rc, out, err = aws_cli("ec2", "deregister-image", "--image-id", ami2)
    assert rc == 0, err
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
