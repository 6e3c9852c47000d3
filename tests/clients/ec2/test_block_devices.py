"""Issue 12 item 3: block device mappings. DescribeImages and DescribeInstances list the root
device (and attached data volumes) as EC2 does; RunInstances BlockDeviceMapping.N sets the root
size and makes a data volume (deleted on termination unless asked otherwise), and refuses by name
what the cloud cannot do. boto3, the AWS CLI, and the XML itself (element names and order)."""
import json
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

WAIT = {"Delay": 1, "MaxAttempts": 60}
NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def image(ec2):
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"]
    assert images, "the simulator seeds an Ubuntu image"
    return images[0]


def instance_of(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def test_image_root_device(ec2, image, raw_sigv2):
    [root] = image["BlockDeviceMappings"]
    assert root["DeviceName"] == image["RootDeviceName"] == "/dev/sda1"
    ebs = root["Ebs"]
    assert ebs["SnapshotId"].startswith("snap-") and ebs["VolumeSize"] >= 1
    assert ebs["DeleteOnTermination"] is True and ebs["VolumeType"] == "standard" and ebs["Encrypted"] is False
    # The same id on every call (derived from the image), and the XML as EC2 writes it.
    again = ec2.describe_images(ImageIds=[image["ImageId"]])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]
    assert again["SnapshotId"] == ebs["SnapshotId"]
    r = raw_sigv2({"Action": "DescribeImages", "ImageId.1": image["ImageId"]})
    assert r.status_code == 200, r.text
    item = ET.fromstring(r.content).find("%simagesSet/%sitem" % (NS, NS))
    bdm = item.find(NS + "blockDeviceMapping")
    [dev] = list(bdm)
    assert [c.tag for c in dev] == [NS + "deviceName", NS + "ebs"]
    assert [(c.tag[len(NS):], c.text) for c in dev.find(NS + "ebs")] == [
        ("snapshotId", ebs["SnapshotId"]), ("volumeSize", str(ebs["VolumeSize"])), ("deleteOnTermination", "true"),
        ("volumeType", "standard"), ("encrypted", "false")]


def test_run_instances_block_device_mappings(ec2, image, raw_sigv2):
    root_size = image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] + 5
    r = ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1, BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": root_size, "DeleteOnTermination": True}},
        {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 3, "VolumeType": "gp2"}},
    ])
    iid = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    inst = instance_of(ec2, iid)
    bdm = inst["BlockDeviceMappings"]
    assert [b["DeviceName"] for b in bdm] == ["/dev/sda1", "/dev/sdb"]
    assert inst["RootDeviceName"] == "/dev/sda1"
    for b in bdm:
        assert b["Ebs"]["Status"] == "attached" and b["Ebs"]["DeleteOnTermination"] is True
        assert b["Ebs"]["VolumeId"].startswith("vol-") and b["Ebs"]["AttachTime"].year >= 2024
    root_vol, data_vol = bdm[0]["Ebs"]["VolumeId"], bdm[1]["Ebs"]["VolumeId"]
    vols = {v["VolumeId"]: v for v in ec2.describe_volumes(VolumeIds=[root_vol, data_vol])["Volumes"]}
    assert vols[root_vol]["Size"] == root_size and vols[data_vol]["Size"] == 3
    # The disk offering is chosen as CreateVolume chooses it for the same VolumeType.
    probe = ec2.create_volume(Size=1, VolumeType="gp2", AvailabilityZone=inst["Placement"]["AvailabilityZone"])
    assert vols[data_vol]["VolumeType"] == probe["VolumeType"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[probe["VolumeId"]], WaiterConfig=WAIT)
    ec2.delete_volume(VolumeId=probe["VolumeId"])
    assert vols[data_vol]["Attachments"][0]["DeleteOnTermination"] is True
    # Filters over the mapping.
    got = ec2.describe_instances(Filters=[{"Name": "block-device-mapping.volume-id", "Values": [data_vol]}])
    assert [i["InstanceId"] for res in got["Reservations"] for i in res["Instances"]] == [iid]
    got = ec2.describe_instances(Filters=[{"Name": "block-device-mapping.device-name", "Values": ["/dev/sdb"]},
                                          {"Name": "instance-id", "Values": [iid]}])
    assert len(got["Reservations"]) == 1
    # DescribeInstanceAttribute says the same.
    attr = ec2.describe_instance_attribute(InstanceId=iid, Attribute="blockDeviceMapping")["BlockDeviceMappings"]
    assert [(b["DeviceName"], b["Ebs"]["VolumeId"], b["Ebs"]["DeleteOnTermination"]) for b in attr] == \
        [(b["DeviceName"], b["Ebs"]["VolumeId"], True) for b in bdm]
    # The XML: element names and order as EC2 writes them.
    x = raw_sigv2({"Action": "DescribeInstances", "InstanceId.1": iid})
    assert x.status_code == 200, x.text
    item = ET.fromstring(x.content).find("%sreservationSet/%sitem/%sinstancesSet/%sitem" % (NS, NS, NS, NS))
    tags = [c.tag[len(NS):] for c in item]
    assert tags.index("rootDeviceName") + 1 == tags.index("blockDeviceMapping")
    devs = item.find(NS + "blockDeviceMapping").findall(NS + "item")
    assert [d.find(NS + "deviceName").text for d in devs] == ["/dev/sda1", "/dev/sdb"]
    assert [c.tag[len(NS):] for c in devs[0].find(NS + "ebs")] == ["volumeId", "status", "attachTime",
                                                                    "deleteOnTermination"]
    # Terminated: both go with the instance.
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[data_vol], WaiterConfig=WAIT)


def test_refused_by_name_and_nothing_launched(ec2, image):
    def count():
        return sum(len(r["Instances"]) for r in ec2.describe_instances()["Reservations"])
    before = count()
    cases = [
        ([{"DeviceName": "/dev/sdh", "Ebs": {"VolumeSize": 2}}], "UnsupportedOperation", "BlockDeviceMapping.1.DeviceName"),
        ([{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 2}}, {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 2}}],
         "UnsupportedOperation", "BlockDeviceMapping.2.DeviceName"),
        ([{"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}], "UnsupportedOperation", "BlockDeviceMapping.1.VirtualName"),
        ([{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 1}}], "InvalidParameterValue", "expect size >="),
        ([{"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}}], "UnsupportedOperation",
         "BlockDeviceMapping.1.Ebs.DeleteOnTermination"),
        ([{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 2, "Iops": 3000}}], "UnsupportedOperation",
         "BlockDeviceMapping.1.Ebs.Iops"),
        ([{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 2, "Encrypted": True}}], "UnsupportedOperation",
         "BlockDeviceMapping.1.Ebs.Encrypted"),
        ([{"DeviceName": "/dev/sdb", "Ebs": {"DeleteOnTermination": True}}], "MissingParameter",
         "BlockDeviceMapping.1.Ebs.VolumeSize"),
    ]
    for bdm, code, text in cases:
        c, m = code_of(lambda: ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1,
                                                 BlockDeviceMappings=bdm))
        assert c == code and text in m, (bdm, c, m)
    assert count() == before


def test_aws_cli_block_device_mappings(aws_cli, ec2, image):
    rc, out, err = aws_cli("ec2", "run-instances", "--image-id", image["ImageId"], "--count", "1",
                           "--block-device-mappings",
                           json.dumps([{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 2, "DeleteOnTermination": False}}]))
    assert rc == 0, err
    iid = out["Instances"][0]["InstanceId"]
    assert out["Instances"][0]["BlockDeviceMappings"] == []
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    rc, out, err = aws_cli("ec2", "describe-instances", "--instance-ids", iid)
    assert rc == 0, err
    bdm = out["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]
    assert [(b["DeviceName"], b["Ebs"]["DeleteOnTermination"]) for b in bdm] == [("/dev/sda1", True), ("/dev/sdb", False)]
    data_vol = bdm[1]["Ebs"]["VolumeId"]
    rc, out, err = aws_cli("ec2", "terminate-instances", "--instance-ids", iid)
    assert rc == 0, err
    # Kept (DeleteOnTermination false): available at once, and deletable.
    rc, out, err = aws_cli("ec2", "describe-volumes", "--volume-ids", data_vol)
    assert rc == 0 and out["Volumes"][0]["State"] == "available" and out["Volumes"][0]["Size"] == 2, err
    rc, out, err = aws_cli("ec2", "delete-volume", "--volume-id", data_vol)
    assert rc == 0, err


def test_paged_block_device_mappings(ec2, image):
    """boto3's paginator (MaxResults 5): every page's block device mappings are the unpaged
    answer's; the pages after the first reuse the first page's volume listing (docs/mappings.md
    "Paging"), and a volume attached through the gateway between two pages shows on the next."""
    r = ec2.run_instances(ImageId=image["ImageId"], MinCount=6, MaxCount=6)
    mine = [i["InstanceId"] for i in r["Instances"]]
    try:
        ec2.get_waiter("instance_running").wait(InstanceIds=mine, WaiterConfig=WAIT)

        def bdm_of(pages):
            return {i["InstanceId"]: i.get("BlockDeviceMappings") for p in pages
                    for res in p["Reservations"] for i in res["Instances"]}

        whole = bdm_of([ec2.describe_instances()])
        pages = list(ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
        assert len(pages) >= 2
        assert bdm_of(pages) == whole
        assert all(whole[i] and whole[i][0]["DeviceName"] == "/dev/sda1" for i in mine)

        # A new walk: page 1, then a volume attached to an instance of a later page.
        first = ec2.describe_instances(MaxResults=5)
        on_first = set(bdm_of([first]))
        target = next(i for i in mine if i not in on_first)
        zone = instance_of(ec2, target)["Placement"]["AvailabilityZone"]
        vol = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
        ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=WAIT)
        ec2.attach_volume(VolumeId=vol, InstanceId=target, Device="/dev/sdf")
        ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=WAIT)
        token, seen = first.get("NextToken"), {}
        while token:
            page = ec2.describe_instances(MaxResults=5, NextToken=token)
            seen.update(bdm_of([page]))
            token = page.get("NextToken")
        assert vol in [b["Ebs"]["VolumeId"] for b in seen[target]]
        ec2.detach_volume(VolumeId=vol)
        ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=WAIT)
        ec2.delete_volume(VolumeId=vol)
    finally:
        ec2.terminate_instances(InstanceIds=mine)
