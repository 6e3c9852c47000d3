"""Issue 12 items 4 and 6: what TerminateInstances does with data volumes (detached and kept
unless DeleteOnTermination, deleted when it is), and termination protection (DisableApiTermination
kept by the gateway: OperationNotPermitted until it is set back), as boto3 and the AWS CLI see them
against `ec2bridge serve --sim-fast`."""
import pytest
from botocore.exceptions import ClientError
from cs import CloudStack

WAIT = {"Delay": 1, "MaxAttempts": 60}


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def cloudstack(gateway, user):
    """The simulator's CloudStack API with the same user's keys (the demo users' EC2 keys are
    their CloudStack keys)."""
    return CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"], secret=user["secret_key"],
                      poll_interval=0.05, job_timeout=30)


@pytest.fixture(scope="module")
def zone(ec2):
    return ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]


@pytest.fixture(scope="module")
def image(ec2):
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"]
    assert images, "the simulator seeds an Ubuntu image"
    return images[0]["ImageId"]


def running(ec2, image, zone, **extra):
    r = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": zone}, **extra)
    iid = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    return iid


def attached_volume(ec2, zone, iid, device, size=1):
    vid = ec2.create_volume(Size=size, AvailabilityZone=zone)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device=device)
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    return vid


def state_of(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_terminate_detaches_kept_volumes_and_deletes_the_others(ec2, zone, image):
    iid = running(ec2, image, zone)
    keep = attached_volume(ec2, zone, iid, "/dev/sdf")
    gone = attached_volume(ec2, zone, iid, "/dev/sdg")
    # DeleteOnTermination of an attached volume, as EC2 changes it.
    ec2.modify_instance_attribute(InstanceId=iid, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdg", "Ebs": {"DeleteOnTermination": True}}])
    vols = {v["VolumeId"]: v for v in ec2.describe_volumes(VolumeIds=[keep, gone])["Volumes"]}
    assert vols[keep]["Attachments"][0]["DeleteOnTermination"] is False
    assert vols[gone]["Attachments"][0]["DeleteOnTermination"] is True
    f = ec2.describe_volumes(Filters=[{"Name": "attachment.delete-on-termination", "Values": ["true"]},
                                      {"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
    # The root volume (always deleted with the instance) and `gone`.
    assert gone in [v["VolumeId"] for v in f] and keep not in [v["VolumeId"] for v in f] and len(f) == 2
    bdm = ec2.describe_instance_attribute(InstanceId=iid, Attribute="blockDeviceMapping")["BlockDeviceMappings"]
    by_dev = {b["DeviceName"]: b["Ebs"] for b in bdm}
    assert by_dev["/dev/sda1"]["DeleteOnTermination"] is True
    assert by_dev["/dev/sdf"]["VolumeId"] == keep and by_dev["/dev/sdf"]["DeleteOnTermination"] is False
    assert by_dev["/dev/sdg"]["VolumeId"] == gone and by_dev["/dev/sdg"]["DeleteOnTermination"] is True
    # What cannot be done is refused by name, and nothing changes.
    code, msg = code_of(lambda: ec2.modify_instance_attribute(InstanceId=iid, BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}}]))
    assert code == "UnsupportedOperation" and "root" in msg
    code, msg = code_of(lambda: ec2.modify_instance_attribute(InstanceId=iid, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdf", "Ebs": {"DeleteOnTermination": True}},
        {"DeviceName": "/dev/sdz", "Ebs": {"DeleteOnTermination": True}}]))
    assert code == "InvalidParameterValue" and "/dev/sdz" in msg
    assert ec2.describe_volumes(VolumeIds=[keep])["Volumes"][0]["Attachments"][0]["DeleteOnTermination"] is False

    t = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert t["CurrentState"]["Name"] == "shutting-down" and t["PreviousState"]["Name"] == "running"
    # The kept volume is free at once: available, deletable, attachable elsewhere.
    v = ec2.describe_volumes(VolumeIds=[keep])["Volumes"][0]
    assert v["State"] == "available" and v["Attachments"] == []
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[gone], WaiterConfig=WAIT)
    ec2.delete_volume(VolumeId=keep)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[keep], WaiterConfig=WAIT)


def test_termination_protection(ec2, zone, image):
    iid = running(ec2, image, zone)
    other = running(ec2, image, zone, DisableApiTermination=True)
    vid = attached_volume(ec2, zone, iid, "/dev/sdh")

    def protected(i):
        return ec2.describe_instance_attribute(InstanceId=i, Attribute="disableApiTermination")[
            "DisableApiTermination"]["Value"]

    assert protected(iid) is False and protected(other) is True
    ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": True})
    assert protected(iid) is True
    code, msg = code_of(lambda: ec2.terminate_instances(InstanceIds=[iid]))
    assert code == "OperationNotPermitted"
    assert msg == ("The instance '%s' may not be terminated. Modify its 'disableApiTermination' instance "
                   "attribute and try again." % iid)
    # Several ids, one protected: nothing is terminated, nothing detached.
    code, _ = code_of(lambda: ec2.terminate_instances(InstanceIds=[other, iid]))
    assert code == "OperationNotPermitted"
    assert state_of(ec2, iid) == "running" and state_of(ec2, other) == "running"
    assert ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["State"] == "in-use"
    # Stop and start are not affected.
    ec2.stop_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    code, _ = code_of(lambda: ec2.terminate_instances(InstanceIds=[iid]))
    assert code == "OperationNotPermitted"
    # The Attribute/Value form sets it back.
    ec2.modify_instance_attribute(InstanceId=iid, Attribute="disableApiTermination", Value="false")
    ec2.modify_instance_attribute(InstanceId=other, DisableApiTermination={"Value": False})
    assert protected(iid) is False
    got = ec2.terminate_instances(InstanceIds=[iid, other])["TerminatingInstances"]
    assert {x["InstanceId"]: x["PreviousState"]["Name"] for x in got} == {iid: "stopped", other: "running"}
    assert ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["State"] == "available"
    ec2.delete_volume(VolumeId=vid)
    code, _ = code_of(lambda: ec2.modify_instance_attribute(InstanceId=iid, Attribute="disableApiTermination",
                                                            Value="maybe"))
    assert code in ("InvalidParameterValue", "InvalidInstanceID.NotFound")


def test_volume_of_an_instance_destroyed_elsewhere_answers_in_ec2_terms(ec2, zone, image, cloudstack):
    """A VM destroyed behind the gateway's back (CloudStack UI, another tool) keeps its data
    volumes attached until it is expunged: Detach/DeleteVolume answer EC2 codes and messages that
    say so, never CloudStack's text."""
    iid = running(ec2, image, zone)
    vid = attached_volume(ec2, zone, iid, "/dev/sdf")
    ip = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    vms = cloudstack.listVirtualMachines(listall="true", fetch_list=True)
    [vm] = [v for v in vms if any(n.get("ipaddress") == ip for n in v.get("nic", []))]
    cloudstack.destroyVirtualMachine(id=vm["id"], fetch_result=True)
    code, msg = code_of(lambda: ec2.detach_volume(VolumeId=vid))
    assert code == "IncorrectState" and iid in msg and "Please specify" not in msg
    code, msg = code_of(lambda: ec2.delete_volume(VolumeId=vid))
    assert code == "VolumeInUse" and iid in msg


def test_aws_cli_termination_protection_and_volumes(aws_cli, ec2, zone, image):
    iid = running(ec2, image, zone)
    vid = attached_volume(ec2, zone, iid, "/dev/sdf")
    rc, out, err = aws_cli("ec2", "modify-instance-attribute", "--instance-id", iid, "--disable-api-termination")
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-instance-attribute", "--instance-id", iid,
                           "--attribute", "disableApiTermination")
    assert rc == 0 and out["DisableApiTermination"]["Value"] is True, err
    rc, out, err = aws_cli("ec2", "terminate-instances", "--instance-ids", iid)
    assert rc != 0 and "OperationNotPermitted" in err and "may not be terminated" in err
    rc, out, err = aws_cli("ec2", "modify-instance-attribute", "--instance-id", iid,
                           "--no-disable-api-termination")
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "terminate-instances", "--instance-ids", iid)
    assert rc == 0 and out["TerminatingInstances"][0]["CurrentState"]["Name"] == "shutting-down", err
    rc, out, err = aws_cli("ec2", "describe-volumes", "--volume-ids", vid)
    assert rc == 0 and out["Volumes"][0]["State"] == "available" and out["Volumes"][0]["Attachments"] == [], err
    rc, out, err = aws_cli("ec2", "delete-volume", "--volume-id", vid)
    assert rc == 0, err
