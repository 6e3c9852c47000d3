"""Instance types, status, attributes and console output through boto3 and the AWS CLI:
DescribeInstanceTypes (ids, filters, paginator), DescribeInstanceStatus and the
instance_status_ok waiter, Describe/Modify/ResetInstanceAttribute (stopped-only changes), and
GetConsoleOutput."""
import base64

import pytest
from botocore.exceptions import ClientError

WAIT = {"Delay": 1, "MaxAttempts": 120}


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def instance(ec2):
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"]
    r = ec2.run_instances(ImageId=images[0]["ImageId"], MinCount=1, MaxCount=1, InstanceType="m1.small",
                          UserData="hello")
    iid = r["Instances"][0]["InstanceId"]
    yield iid
    ec2.terminate_instances(InstanceIds=[iid])


def test_instance_types(ec2):
    types = ec2.describe_instance_types()["InstanceTypes"]
    names = {t["InstanceType"] for t in types}
    assert {"m1.small", "t2.micro"} <= names
    one = ec2.describe_instance_types(InstanceTypes=["t2.medium"])["InstanceTypes"]
    assert len(one) == 1
    t = one[0]
    assert t["VCpuInfo"]["DefaultVCpus"] == 2 and t["MemoryInfo"]["SizeInMiB"] > 0
    assert t["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"]
    assert t["SupportedRootDeviceTypes"] == ["ebs"] and t["CurrentGeneration"] is True
    two = ec2.describe_instance_types(Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["2"]}])
    assert all(x["VCpuInfo"]["DefaultVCpus"] == 2 for x in two["InstanceTypes"]) and two["InstanceTypes"]
    assert code_of(lambda: ec2.describe_instance_types(InstanceTypes=["x9.huge"])) == "InvalidInstanceType"
    pages = list(ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={"PageSize": 5}))
    assert len(pages) >= 2
    assert sorted(x["InstanceType"] for p in pages for x in p["InstanceTypes"]) == sorted(names)


def test_status_and_console(ec2, instance):
    ec2.get_waiter("instance_status_ok").wait(InstanceIds=[instance], WaiterConfig=WAIT)
    st = ec2.describe_instance_status(InstanceIds=[instance])["InstanceStatuses"]
    assert len(st) == 1
    assert st[0]["InstanceState"]["Name"] == "running"
    assert st[0]["InstanceStatus"]["Status"] == "ok" and st[0]["SystemStatus"]["Status"] == "ok"
    assert st[0]["InstanceStatus"]["Details"] == [{"Name": "reachability", "Status": "passed"}]
    ok = ec2.describe_instance_status(Filters=[{"Name": "instance-status.status", "Values": ["ok"]}])
    assert instance in [s["InstanceId"] for s in ok["InstanceStatuses"]]
    pages = list(ec2.get_paginator("describe_instance_status").paginate(PaginationConfig={"PageSize": 5}))
    assert instance in [s["InstanceId"] for p in pages for s in p["InstanceStatuses"]]
    assert code_of(lambda: ec2.describe_instance_status(InstanceIds=["i-0123456789abcdef0"])) == \
        "InvalidInstanceID.NotFound"

    out = ec2.get_console_output(InstanceId=instance)
    assert out["InstanceId"] == instance
    text = out["Output"]
    try:
        text = base64.b64decode(text).decode()
    except ValueError:
        pass  # some botocore versions decode it themselves
    assert "no console log" in text


def test_attributes(ec2, instance):
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig=WAIT)
    a = ec2.describe_instance_attribute(InstanceId=instance, Attribute="instanceType")
    assert a["InstanceId"] == instance and a["InstanceType"] == {"Value": "m1.small"}
    a = ec2.describe_instance_attribute(InstanceId=instance, Attribute="userData")
    assert base64.b64decode(a["UserData"]["Value"]) == b"hello"
    assert ec2.describe_instance_attribute(InstanceId=instance, Attribute="disableApiTermination")[
        "DisableApiTermination"] == {"Value": False}
    assert ec2.describe_instance_attribute(InstanceId=instance, Attribute="instanceInitiatedShutdownBehavior")[
        "InstanceInitiatedShutdownBehavior"] == {"Value": "stop"}
    assert ec2.describe_instance_attribute(InstanceId=instance, Attribute="rootDeviceName")[
        "RootDeviceName"] == {"Value": "/dev/sda1"}
    bdm = ec2.describe_instance_attribute(InstanceId=instance, Attribute="blockDeviceMapping")["BlockDeviceMappings"]
    assert bdm[0]["DeviceName"] == "/dev/sda1" and bdm[0]["Ebs"]["VolumeId"].startswith("vol-")
    groups = ec2.describe_instance_attribute(InstanceId=instance, Attribute="groupSet")["Groups"]
    assert groups and groups[0]["GroupId"].startswith("sg-")

    # Changes need a stopped instance.
    assert code_of(lambda: ec2.modify_instance_attribute(InstanceId=instance, InstanceType={"Value": "m1.large"})) \
        == "IncorrectInstanceState"
    assert code_of(lambda: ec2.modify_instance_attribute(InstanceId=instance, Kernel={"Value": "aki-12345678"})) \
        == "UnsupportedOperation"
    ec2.modify_instance_attribute(InstanceId=instance, DisableApiTermination={"Value": False})
    ec2.stop_instances(InstanceIds=[instance])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance], WaiterConfig=WAIT)
    assert code_of(lambda: ec2.modify_instance_attribute(InstanceId=instance, InstanceType={"Value": "m1.large"},
                                                         DryRun=True)) == "DryRunOperation"
    ec2.modify_instance_attribute(InstanceId=instance, InstanceType={"Value": "m1.large"})
    assert ec2.describe_instance_attribute(InstanceId=instance, Attribute="instanceType")[
        "InstanceType"] == {"Value": "m1.large"}
    ec2.modify_instance_attribute(InstanceId=instance, UserData={"Value": b"world"})
    a = ec2.describe_instance_attribute(InstanceId=instance, Attribute="userData")
    assert base64.b64decode(a["UserData"]["Value"]) == b"world"
    assert code_of(lambda: ec2.modify_instance_attribute(InstanceId=instance, InstanceType={"Value": "x9.huge"})) \
        == "InvalidParameterValue"

    ec2.reset_instance_attribute(InstanceId=instance, Attribute="sourceDestCheck")
    assert code_of(lambda: ec2.reset_instance_attribute(InstanceId=instance, Attribute="userData")) \
        == "InvalidParameterValue"
    ec2.start_instances(InstanceIds=[instance])
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig=WAIT)
    inst = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert inst["InstanceType"] == "m1.large"


def test_cli_extras(aws_cli, instance):
    rc, out, err = aws_cli("ec2", "describe-instance-types", "--instance-types", "m1.small")
    assert rc == 0, err
    assert [t["InstanceType"] for t in out["InstanceTypes"]] == ["m1.small"]
    rc, out, err = aws_cli("ec2", "describe-instance-attribute", "--instance-id", instance,
                           "--attribute", "instanceType")
    assert rc == 0, err
    assert out["InstanceType"]["Value"]
    rc, out, err = aws_cli("ec2", "describe-instance-status", "--instance-ids", instance,
                           "--include-all-instances")
    assert rc == 0, err
    assert [s["InstanceId"] for s in out["InstanceStatuses"]] == [instance]
    rc, out, err = aws_cli("ec2", "get-console-output", "--instance-id", instance)
    assert rc == 0, err
    assert "no console log" in out["Output"] or "no console log" in base64.b64decode(out["Output"]).decode()
