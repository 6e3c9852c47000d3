"""Snapshots of volumes that were never attached (issue 12 item 1; docs/gateway-state.md "Snapshots of
never-attached volumes"). CloudStack creates a data volume on storage only at its first attach and
snapshots only volumes on storage; EC2 snapshots any available volume. The gateway keeps the snapshot of
a never-written volume as "an empty disk of N GiB" in its store: boto3 (create, waiter, describe with
ids / filters / tags / paging / Owner, attribute, tags, create-volume from it, delete, errors), the AWS
CLI, and a second gateway on the same store and CloudStack that sees the same snapshot."""
import os
import pathlib
import sys
import uuid

import pytest
from botocore.exceptions import ClientError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "ops"))
from ops_support import Gateway  # noqa: E402

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


def new_volume(ec2, zone, size=3, **kw):
    vid = ec2.create_volume(Size=size, AvailabilityZone=zone, **kw)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    return vid


def test_snapshot_of_a_new_volume_is_a_completed_empty_disk(ec2, zone, user):
    vid = new_volume(ec2, zone, size=3)
    tag = uuid.uuid4().hex[:8]
    s = ec2.create_snapshot(VolumeId=vid, Description="empty %s" % tag,
                            TagSpecifications=[{"ResourceType": "snapshot",
                                                "Tags": [{"Key": "run", "Value": tag}]}])
    sid = s["SnapshotId"]
    assert sid.startswith("snap-") and len(sid) == 22 and all(c in "0123456789abcdef" for c in sid[5:])
    assert s["VolumeId"] == vid and s["VolumeSize"] == 3 and s["State"] in ("pending", "completed")
    assert s["Description"] == "empty %s" % tag and s["Tags"] == [{"Key": "run", "Value": tag}]
    assert s["OwnerId"] and s["StartTime"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=WAIT)
    got = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"]
    assert len(got) == 1
    snap = got[0]
    assert (snap["SnapshotId"], snap["VolumeId"], snap["VolumeSize"], snap["State"], snap["Progress"]) == \
        (sid, vid, 3, "completed", "100%")
    assert snap["OwnerId"] == s["OwnerId"] and snap["Description"] == "empty %s" % tag
    assert snap["Tags"] == [{"Key": "run", "Value": tag}]
    # Listed with CloudStack's snapshots: no ids, Owner self, filters (tags too).
    assert sid in [x["SnapshotId"] for x in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]]
    assert sid in [x["SnapshotId"] for x in ec2.describe_snapshots()["Snapshots"]]
    for flt in ([{"Name": "volume-id", "Values": [vid]}], [{"Name": "tag:run", "Values": [tag]}],
                [{"Name": "tag-key", "Values": ["run"]}, {"Name": "snapshot-id", "Values": [sid]}],
                [{"Name": "status", "Values": ["completed"]}, {"Name": "volume-size", "Values": ["3"]},
                 {"Name": "description", "Values": ["empty %s" % tag]}]):
        assert [x["SnapshotId"] for x in ec2.describe_snapshots(Filters=flt)["Snapshots"]] == [sid], flt
    assert ec2.describe_snapshots(Filters=[{"Name": "tag:run", "Values": ["other"]}])["Snapshots"] == []
    assert sid not in [x["SnapshotId"] for x in ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"]]
    # The attribute, as for any snapshot.
    a = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert a["SnapshotId"] == sid and a["CreateVolumePermissions"] == []
    # Tags: CreateTags / DescribeTags / DeleteTags with resource-type snapshot.
    ec2.create_tags(Resources=[sid], Tags=[{"Key": "Name", "Value": "blank"}, {"Key": "run", "Value": tag + "x"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [sid]}])["Tags"]
    assert sorted((t["Key"], t["Value"], t["ResourceType"]) for t in tags) == \
        [("Name", "blank", "snapshot"), ("run", tag + "x", "snapshot")]
    by_type = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["snapshot"]},
                                         {"Name": "key", "Values": ["Name"]}, {"Name": "value", "Values": ["blank"]}])
    assert sid in [t["ResourceId"] for t in by_type["Tags"]]
    ec2.delete_tags(Resources=[sid], Tags=[{"Key": "run", "Value": "not-this-value"}])
    assert {t["Key"] for t in ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["Tags"]} == {"Name", "run"}
    ec2.delete_tags(Resources=[sid], Tags=[{"Key": "run"}])
    assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["Tags"] == [{"Key": "Name", "Value": "blank"}]
    # The volume is still new and can be snapshotted again (another empty snapshot).
    sid2 = ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
    assert sid2 != sid
    both = ec2.describe_snapshots(SnapshotIds=[sid, sid2])["Snapshots"]
    assert sorted(x["SnapshotId"] for x in both) == sorted([sid, sid2])
    # Delete: gone everywhere, tags too; a second delete is NotFound.
    ec2.delete_snapshot(SnapshotId=sid)
    ec2.delete_snapshot(SnapshotId=sid2)
    assert code_of(lambda: ec2.describe_snapshots(SnapshotIds=[sid]))[0] == "InvalidSnapshot.NotFound"
    assert code_of(lambda: ec2.delete_snapshot(SnapshotId=sid))[0] == "InvalidSnapshot.NotFound"
    assert code_of(lambda: ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="productCodes"))[0] == \
        "InvalidSnapshot.NotFound"
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [sid]}])["Tags"] == []
    assert sid not in [x["SnapshotId"] for x in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]]
    ec2.delete_volume(VolumeId=vid)


def test_volumes_from_an_empty_snapshot(ec2, zone):
    vid = new_volume(ec2, zone, size=2)
    sid = ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=WAIT)
    # The source volume may go: the snapshot stands alone.
    ec2.delete_volume(VolumeId=vid)
    same = ec2.create_volume(SnapshotId=sid, AvailabilityZone=zone)
    assert same["Size"] == 2 and same["SnapshotId"] == sid
    bigger = ec2.create_volume(SnapshotId=sid, Size=5, AvailabilityZone=zone,
                               TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "from", "Value": "empty"}]}])
    assert bigger["Size"] == 5
    made = [same["VolumeId"], bigger["VolumeId"]]
    ec2.get_waiter("volume_available").wait(VolumeIds=made, WaiterConfig=WAIT)
    vols = {v["VolumeId"]: v for v in ec2.describe_volumes(VolumeIds=made)["Volumes"]}
    assert vols[same["VolumeId"]]["Size"] == 2 and vols[bigger["VolumeId"]]["Size"] == 5
    assert vols[bigger["VolumeId"]]["Tags"] == [{"Key": "from", "Value": "empty"}]
    assert {v["SnapshotId"] for v in vols.values()} == {sid}
    by_snap = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [sid]}])["Volumes"]
    assert sorted(v["VolumeId"] for v in by_snap) == sorted(made)
    # A new empty volume again: its own snapshot is an empty one as well.
    again = ec2.create_snapshot(VolumeId=bigger["VolumeId"])
    assert again["VolumeSize"] == 5
    # Smaller than the snapshot: EC2's error, nothing made.
    before = len(ec2.describe_volumes()["Volumes"])
    code, msg = code_of(lambda: ec2.create_volume(SnapshotId=sid, Size=1, AvailabilityZone=zone))
    assert code == "InvalidParameterValue" and "1GiB" in msg and "2GiB" in msg, msg
    assert len(ec2.describe_volumes()["Volumes"]) == before
    for v in made:
        ec2.delete_volume(VolumeId=v)
    for s in (sid, again["SnapshotId"]):
        ec2.delete_snapshot(SnapshotId=s)
    assert code_of(lambda: ec2.create_volume(SnapshotId=sid, AvailabilityZone=zone))[0] == "InvalidSnapshot.NotFound"


def test_paging_merges_store_and_cloudstack_snapshots(ec2, zone):
    vid = new_volume(ec2, zone, size=1)
    made = [ec2.create_snapshot(VolumeId=vid, Description="page %d" % i)["SnapshotId"] for i in range(6)]
    pages = list(ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"],
                                                                   PaginationConfig={"PageSize": 5}))
    seen = [s["SnapshotId"] for p in pages for s in p["Snapshots"]]
    assert len(pages) >= 2 and len(seen) == len(set(seen)) and set(made) <= set(seen)
    for s in made:
        ec2.delete_snapshot(SnapshotId=s)
    ec2.delete_volume(VolumeId=vid)


def test_only_never_attached_volumes_are_empty(ec2, zone):
    """A volume attached once is on storage and was (maybe) written: its snapshot is CloudStack's."""
    image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]
    iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                            Placement={"AvailabilityZone": zone})["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    vid = new_volume(ec2, zone, size=1)
    ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdf")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    ec2.detach_volume(VolumeId=vid)
    ec2.get_waiter("volume_available").wait(VolumeIds=[vid], WaiterConfig=WAIT)
    s = ec2.create_snapshot(VolumeId=vid)
    assert s["State"] == "pending"  # CloudStack's own snapshot, made in the background
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[s["SnapshotId"]], WaiterConfig=WAIT)
    ec2.delete_snapshot(SnapshotId=s["SnapshotId"])
    ec2.delete_volume(VolumeId=vid)
    ec2.terminate_instances(InstanceIds=[iid])


def test_other_accounts_do_not_see_it(ec2, zone, gateway, boto3_client, user):
    others = [u for u in gateway["users"] if not u["is_admin"] and u["account"] != user["account"]]
    assert others, "the demo seed should have a second user account"
    other = boto3_client(others[0])
    vid = new_volume(ec2, zone, size=1)
    sid = ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
    assert code_of(lambda: other.describe_snapshots(SnapshotIds=[sid]))[0] == "InvalidSnapshot.NotFound"
    assert sid not in [s["SnapshotId"] for s in other.describe_snapshots()["Snapshots"]]
    assert code_of(lambda: other.delete_snapshot(SnapshotId=sid))[0] == "InvalidSnapshot.NotFound"
    assert code_of(lambda: other.create_tags(Resources=[sid], Tags=[{"Key": "k", "Value": "v"}]))[0] == \
        "InvalidSnapshot.NotFound"
    assert code_of(lambda: other.create_volume(SnapshotId=sid, AvailabilityZone=zone))[0] == \
        "InvalidSnapshot.NotFound"
    ec2.delete_snapshot(SnapshotId=sid)
    ec2.delete_volume(VolumeId=vid)


def test_dry_run_makes_nothing(ec2, zone):
    vid = new_volume(ec2, zone, size=1)
    assert code_of(lambda: ec2.create_snapshot(VolumeId=vid, DryRun=True))[0] == "DryRunOperation"
    assert ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [vid]}])["Snapshots"] == []
    # A bad tag specification: refused before anything is made.
    assert code_of(lambda: ec2.create_snapshot(
        VolumeId=vid, TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "a", "Value": "b"}]}]))[0] == \
        "InvalidParameterValue"
    assert ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [vid]}])["Snapshots"] == []
    ec2.delete_volume(VolumeId=vid)


def test_aws_cli(aws_cli, zone):
    rc, v, err = aws_cli("ec2", "create-volume", "--size", "4", "--availability-zone", zone)
    assert rc == 0, err
    vid = v["VolumeId"]
    rc, _, err = aws_cli("ec2", "wait", "volume-available", "--volume-ids", vid)
    assert rc == 0, err
    rc, s, err = aws_cli("ec2", "create-snapshot", "--volume-id", vid, "--description", "cli empty",
                         "--tag-specifications", "ResourceType=snapshot,Tags=[{Key=cli,Value=yes}]")
    assert rc == 0, err
    sid = s["SnapshotId"]
    rc, _, err = aws_cli("ec2", "wait", "snapshot-completed", "--snapshot-ids", sid)
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-snapshots", "--filters", "Name=tag:cli,Values=yes",
                           "--query", "Snapshots[].[SnapshotId,VolumeSize,State]")
    assert rc == 0, err
    assert [sid, 4, "completed"] in out
    rc, out, err = aws_cli("ec2", "describe-tags", "--filters", "Name=resource-type,Values=snapshot",
                           "Name=resource-id,Values=" + sid)
    assert rc == 0, err
    assert [(t["Key"], t["Value"]) for t in out["Tags"]] == [("cli", "yes")]
    rc, nv, err = aws_cli("ec2", "create-volume", "--snapshot-id", sid, "--size", "6", "--availability-zone", zone)
    assert rc == 0 and nv["Size"] == 6, err
    rc, _, err = aws_cli("ec2", "create-volume", "--snapshot-id", sid, "--size", "2", "--availability-zone", zone)
    assert rc != 0 and "InvalidParameterValue" in err
    rc, _, err = aws_cli("ec2", "wait", "volume-available", "--volume-ids", nv["VolumeId"])
    assert rc == 0, err
    for args in (("delete-volume", "--volume-id", nv["VolumeId"]), ("delete-snapshot", "--snapshot-id", sid),
                 ("delete-volume", "--volume-id", vid)):
        rc, _, err = aws_cli("ec2", *args)
        assert rc == 0, err
    rc, _, err = aws_cli("ec2", "describe-snapshots", "--snapshot-ids", sid)
    assert rc != 0 and "InvalidSnapshot.NotFound" in err


def test_a_second_gateway_on_the_same_store_sees_it(ec2, zone, gateway, user, tmp_path):
    """Two gateways, one store and one CloudStack (the first gateway's simulator): a snapshot made
    through one is described, tagged, used and deleted through the other."""
    import boto3
    from botocore.config import Config
    admin = next(u for u in gateway["users"] if u["is_admin"])
    cfg = ('[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "%s"\n'
           % (gateway["cloudstack_endpoint"], admin["access_key"], admin["secret_key"]))
    workdir = pathlib.Path(gateway["workdir"])
    second = Gateway(tmp_path, cfg, env={
        "EC2BRIDGE_STORE_URL": "sqlite://%s" % (workdir / "store.db"),
        "EC2BRIDGE_STORE_KEY_FILE": str(workdir / "store.key"),
    })
    try:
        s = boto3.session.Session(aws_access_key_id=user["access_key"], aws_secret_access_key=user["secret_key"],
                                  region_name=gateway["region"])
        ec2b = s.client("ec2", endpoint_url=second.endpoint,
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120))
        vid = new_volume(ec2, zone, size=2)
        sid = ec2.create_snapshot(VolumeId=vid, Description="shared")["SnapshotId"]
        got = ec2b.describe_snapshots(SnapshotIds=[sid])["Snapshots"]
        assert [(x["SnapshotId"], x["VolumeSize"], x["State"], x["Description"]) for x in got] == \
            [(sid, 2, "completed", "shared")]
        ec2b.create_tags(Resources=[sid], Tags=[{"Key": "via", "Value": "b"}])
        assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["Tags"] == [{"Key": "via", "Value": "b"}]
        nv = ec2b.create_volume(SnapshotId=sid, AvailabilityZone=zone)["VolumeId"]
        ec2.get_waiter("volume_available").wait(VolumeIds=[nv], WaiterConfig=WAIT)
        ec2b.delete_snapshot(SnapshotId=sid)
        assert code_of(lambda: ec2.describe_snapshots(SnapshotIds=[sid]))[0] == "InvalidSnapshot.NotFound"
        for v in (nv, vid):
            ec2.delete_volume(VolumeId=v)
    finally:
        second.stop()
        if os.environ.get("EC2BRIDGE_KEEP_LOGS"):
            print(second.log())
