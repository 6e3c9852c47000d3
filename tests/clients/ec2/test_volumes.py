"""Volumes and snapshots as real clients drive them: boto3 (every action, its waiters
volume_available / volume_in_use / volume_deleted / snapshot_completed, paginators, errors) and the
AWS CLI for the common commands, against `ec2bridge serve --sim-fast`."""
import uuid

import pytest
from botocore.exceptions import ClientError

WAIT = {"Delay": 1, "MaxAttempts": 60}


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def zone(ec2):
    return ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]


@pytest.fixture(scope="module")
def instance(ec2, zone):
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"]
    assert images, "the simulator seeds an Ubuntu image"
    r = ec2.run_instances(ImageId=images[0]["ImageId"], MinCount=1, MaxCount=1,
                          Placement={"AvailabilityZone": zone})
    iid = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    yield iid
    ec2.terminate_instances(InstanceIds=[iid])


def test_volume_lifecycle_with_waiters(ec2, zone, instance):
    token = str(uuid.uuid4())
    v = ec2.create_volume(Size=4, AvailabilityZone=zone, VolumeType="gp2", ClientToken=token,
                          TagSpecifications=[{"ResourceType": "volume",
                                              "Tags": [{"Key": "Name", "Value": "boto3-data"}]}])
    vid = v["VolumeId"]
    assert vid.startswith("vol-") and v["State"] == "creating" and v["Size"] == 4
    assert v["AvailabilityZone"] == zone
    # Same ClientToken: the same volume.
    assert ec2.create_volume(Size=4, AvailabilityZone=zone, VolumeType="gp2", ClientToken=token,
                             TagSpecifications=[{"ResourceType": "volume",
                                                 "Tags": [{"Key": "Name", "Value": "boto3-data"}]}])["VolumeId"] == vid
    code, _ = code_of(lambda: ec2.create_volume(Size=5, AvailabilityZone=zone, ClientToken=token))
    assert code == "IdempotentParameterMismatch"

    ec2.get_waiter("volume_available").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    d = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert d["State"] == "available" and d["Attachments"] == []
    assert d["Tags"] == [{"Key": "Name", "Value": "boto3-data"}]
    assert d["CreateTime"].year >= 2024

    a = ec2.attach_volume(VolumeId=vid, InstanceId=instance, Device="/dev/sdf")
    assert a["State"] == "attaching" and a["Device"] == "/dev/sdf" and a["InstanceId"] == instance
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    d = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert d["State"] == "in-use"
    assert d["Attachments"][0]["InstanceId"] == instance
    assert d["Attachments"][0]["Device"] == "/dev/sdf"
    assert d["Attachments"][0]["DeleteOnTermination"] is False

    code, msg = code_of(lambda: ec2.delete_volume(VolumeId=vid))
    assert code == "VolumeInUse" and instance in msg
    f = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance]},
                                      {"Name": "attachment.status", "Values": ["attached", "attaching"]}])
    assert vid in [x["VolumeId"] for x in f["Volumes"]]
    st = ec2.describe_volume_status(VolumeIds=[vid])["VolumeStatuses"][0]
    assert st["VolumeStatus"]["Status"] == "ok"
    assert st["VolumeStatus"]["Details"] == [{"Name": "io-enabled", "Status": "passed"}]

    # Snapshot of the in-use volume, then a volume made from it.
    s = ec2.create_snapshot(VolumeId=vid, Description="boto3 snap",
                            TagSpecifications=[{"ResourceType": "snapshot",
                                                "Tags": [{"Key": "tier", "Value": "gold"}]}])
    sid = s["SnapshotId"]
    assert sid.startswith("snap-") and s["State"] == "pending" and s["VolumeSize"] == 4
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=WAIT)
    snap = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
    assert snap["State"] == "completed" and snap["Progress"] == "100%"
    assert snap["VolumeId"] == vid and snap["Description"] == "boto3 snap"
    assert snap["Tags"] == [{"Key": "tier", "Value": "gold"}]
    mine = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:tier", "Values": ["go*"]}])
    assert [x["SnapshotId"] for x in mine["Snapshots"]] == [sid]
    assert ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"] == []

    v2 = ec2.create_volume(SnapshotId=sid, AvailabilityZone=zone)
    assert v2["SnapshotId"] == sid and v2["Size"] == 4
    ec2.get_waiter("volume_available").wait(VolumeIds=[v2["VolumeId"]], WaiterConfig=WAIT)
    f = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [sid]}])["Volumes"]
    assert [x["VolumeId"] for x in f] == [v2["VolumeId"]]

    # Detach (Force accepted), delete, and the deleted waiter.
    code, _ = code_of(lambda: ec2.detach_volume(VolumeId=vid, Device="/dev/sdg"))
    assert code == "InvalidAttachment.NotFound"
    dt = ec2.detach_volume(VolumeId=vid, InstanceId=instance, Force=True)
    assert dt["State"] == "detaching"
    ec2.get_waiter("volume_available").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    code, _ = code_of(lambda: ec2.detach_volume(VolumeId=vid))
    assert code == "IncorrectState"
    ec2.delete_snapshot(SnapshotId=sid)
    for x in (vid, v2["VolumeId"]):
        ec2.delete_volume(VolumeId=x)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[vid, v2["VolumeId"]], WaiterConfig=WAIT)
    code, _ = code_of(lambda: ec2.describe_volumes(VolumeIds=[vid]))
    assert code == "InvalidVolume.NotFound"


def test_describe_snapshot_attribute(ec2, zone, instance):
    """DescribeSnapshotAttribute, an action added as data only (mappings/snapshots.toml): the
    snapshot must exist; CloudStack shares no snapshots and has no product codes, so both
    attributes are empty lists."""
    vid = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    ec2.attach_volume(VolumeId=vid, InstanceId=instance, Device="/dev/sdh")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    sid = ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
    r = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert r["SnapshotId"] == sid and r["CreateVolumePermissions"] == []
    r = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="productCodes")
    assert r["SnapshotId"] == sid and r["ProductCodes"] == []
    assert "CreateVolumePermissions" not in r
    for call, want in [
        (lambda: ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="kernel"), "InvalidParameterValue"),
        (lambda: ec2.describe_snapshot_attribute(SnapshotId="snap-1", Attribute="productCodes"),
         "InvalidSnapshotID.Malformed"),
        (lambda: ec2.describe_snapshot_attribute(SnapshotId="snap-0123456789abcdef0", Attribute="productCodes"),
         "InvalidSnapshot.NotFound"),
    ]:
        code, _ = code_of(call)
        assert code == want
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=WAIT)
    ec2.delete_snapshot(SnapshotId=sid)
    ec2.detach_volume(VolumeId=vid)
    ec2.get_waiter("volume_available").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    ec2.delete_volume(VolumeId=vid)


def test_paginators_and_filters(ec2, zone):
    made = [ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"] for _ in range(6)]
    ec2.get_waiter("volume_available").wait(VolumeIds=made, WaiterConfig=WAIT)
    pages = list(ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 5}))
    seen = [v["VolumeId"] for p in pages for v in p["Volumes"]]
    assert len(pages) >= 2 and len(seen) == len(set(seen))
    assert set(made) <= set(seen)
    f = ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": made[:2]},
                                      {"Name": "status", "Values": ["available"]},
                                      {"Name": "size", "Values": ["1"]}])
    assert sorted(v["VolumeId"] for v in f["Volumes"]) == sorted(made[:2])
    assert ec2.describe_volumes(Filters=[{"Name": "availability-zone", "Values": ["nowhere"]}])["Volumes"] == []
    pages = list(ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"],
                                                                   PaginationConfig={"PageSize": 5}))
    assert all("Snapshots" in p for p in pages)
    for vid in made:
        ec2.delete_volume(VolumeId=vid)


def test_errors(ec2, zone, instance):
    cases = [
        (lambda: ec2.create_volume(Size=0, AvailabilityZone=zone), "InvalidParameterValue"),
        (lambda: ec2.create_volume(Size=1, AvailabilityZone="nowhere-1z"), "InvalidZone.NotFound"),
        (lambda: ec2.create_volume(AvailabilityZone=zone), "MissingParameter"),
        (lambda: ec2.create_volume(Size=1, AvailabilityZone=zone, VolumeType="magnetic"), "InvalidParameterValue"),
        (lambda: ec2.create_volume(Size=1, AvailabilityZone=zone, DryRun=True), "DryRunOperation"),
        (lambda: ec2.describe_volumes(VolumeIds=["vol-nothex"]), "InvalidVolumeID.Malformed"),
        (lambda: ec2.describe_volumes(VolumeIds=["vol-0123456789abcdef0"]), "InvalidVolume.NotFound"),
        (lambda: ec2.delete_volume(VolumeId="vol-0123456789abcdef0"), "InvalidVolume.NotFound"),
        (lambda: ec2.describe_snapshots(SnapshotIds=["snap-1"]), "InvalidSnapshotID.Malformed"),
        (lambda: ec2.describe_snapshots(SnapshotIds=["snap-0123456789abcdef0"]), "InvalidSnapshot.NotFound"),
        (lambda: ec2.delete_snapshot(SnapshotId="snap-0123456789abcdef0"), "InvalidSnapshot.NotFound"),
        (lambda: ec2.create_snapshot(VolumeId="vol-0123456789abcdef0"), "InvalidVolume.NotFound"),
        (lambda: ec2.describe_volumes(MaxResults=4), "InvalidParameterValue"),
        (lambda: ec2.describe_volumes(Filters=[{"Name": "bogus", "Values": ["x"]}]), "InvalidParameterValue"),
    ]
    for call, want in cases:
        assert code_of(call)[0] == want
    vid = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    code, _ = code_of(lambda: ec2.attach_volume(VolumeId=vid, InstanceId="i-0123456789abcdef0", Device="/dev/sdf"))
    assert code == "InvalidInstanceID.NotFound"
    code, _ = code_of(lambda: ec2.attach_volume(VolumeId=vid, InstanceId=instance, Device="/dev/hda"))
    assert code == "InvalidParameterValue"
    # A volume never attached is not on storage yet: its snapshot is an empty disk the gateway
    # keeps (test_empty_snapshots.py), completed at once.
    snap = ec2.create_snapshot(VolumeId=vid)
    assert snap["State"] == "completed" and snap["VolumeSize"] == 1
    ec2.delete_snapshot(SnapshotId=snap["SnapshotId"])
    ec2.delete_volume(VolumeId=vid)


def test_aws_cli(aws_cli, zone):
    rc, v, err = aws_cli("ec2", "create-volume", "--size", "2", "--availability-zone", zone,
                         "--tag-specifications", "ResourceType=volume,Tags=[{Key=cli,Value=yes}]")
    assert rc == 0, err
    vid = v["VolumeId"]
    rc, _, err = aws_cli("ec2", "wait", "volume-available", "--volume-ids", vid)
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-volumes", "--filters", "Name=tag:cli,Values=yes")
    assert rc == 0, err
    assert [x["VolumeId"] for x in out["Volumes"]] == [vid]
    rc, out, err = aws_cli("ec2", "describe-volumes", "--volume-ids", vid, "--query", "Volumes[0].State",
                           "--output", "text")
    assert rc == 0 and out.strip() == "available", err
    rc, out, err = aws_cli("ec2", "describe-snapshots", "--owner-ids", "self")
    assert rc == 0 and "Snapshots" in out, err
    rc, _, err = aws_cli("ec2", "delete-volume", "--volume-id", vid)
    assert rc == 0, err
    rc, _, err = aws_cli("ec2", "describe-volumes", "--volume-ids", vid)
    assert rc != 0 and "InvalidVolume.NotFound" in err
