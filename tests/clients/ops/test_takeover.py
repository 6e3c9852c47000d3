"""Issue 14 item 2: a gateway killed (SIGKILL) in the middle of an operation leaves it in the
operations journal, and the next gateway on the same store finishes or undoes it, leaving nothing
behind: CreateImage killed while it stops the instance (the restart is taken over), RunInstances
killed between its deploys and its answer (the reservation's VMs are removed), CreateVolume and
CreateVpc killed after CloudStack made the object (the journaled undo deletes it). The simulator runs
as its own process with fault injection (slow jobs / slow calls) so that the kill lands mid-way;
the store is the gateways' SQLite file (the same take-over serves gateways sharing PostgreSQL:
tests/clients/ops/test_journal.py)."""
import signal
import threading
import time

import boto3
import botocore.config
from cs import CloudStack

from ops_support import Gateway, REPO, Sim

NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=60,
                                    connect_timeout=5)
LEASE = {"EC2BRIDGE_SERVER_OPERATION_LEASE_SECS": "3"}


def wait_for(what, check, timeout=30, every=0.3):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("%s: not reached in %d s (last: %r)" % (what, timeout, last))


def start(workdir, procs, faults):
    seed = workdir / "seed.toml"
    seed.write_text((REPO / "seeds" / "default.toml").read_text() + "\n" + faults)
    sim = Sim(workdir, seed=seed).start()
    procs.append(sim)
    admin = sim.admin()
    cfg = ('[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "%s"\n'
           % (sim.endpoint, admin["apikey"], admin["secretkey"]))
    return sim, cfg


def ec2(gw, u):
    return boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1", aws_access_key_id=u["apikey"],
                        aws_secret_access_key=u["secretkey"], config=NO_RETRIES)


def in_background(fn):
    """Run a call that the kill will cut; its outcome (an exception) does not matter."""
    out = {}

    def run():
        try:
            out["result"] = fn()
        except Exception as e:  # noqa: BLE001 - the connection dies with the gateway
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def next_gateway(workdir, cfg, procs):
    """A gateway on the same store (it takes over what a killed one left in the journal)."""
    gw = Gateway(workdir, cfg, env=LEASE)
    procs.append(gw)
    return gw


def kill_during(gw, call, what, reached, settle=0.0, every=0.1):
    """Start `call` on `gw`, wait until `reached()` (what the call has done by then), wait `settle`
    seconds more, then kill the gateway with SIGKILL: the call is cut mid-way."""
    t, _ = in_background(call)
    wait_for(what, reached, timeout=10, every=every)
    time.sleep(settle)
    gw.proc.stop(signal.SIGKILL)
    t.join(10)


def test_create_image_killed_while_stopping_is_restarted_by_the_next_gateway(workdir, procs):
    sim, cfg = start(workdir, procs, '[[faults]]\ncommand = "stopVirtualMachine"\njob_delay_ms = 3000\n'
                                     '[[faults]]\ncommand = "createTemplate"\njob_delay_ms = 1000\n')
    gw1 = next_gateway(workdir, cfg, procs)
    alice = sim.user()
    c1 = ec2(gw1, alice)
    ami = c1.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]
    iid = c1.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    c1.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    # CreateImage stops the instance (a 3 s job) and would start it again after the template:
    # the gateway dies while the stop runs, before it answered.
    kill_during(gw1, lambda: c1.create_image(InstanceId=iid, Name="takeover-%d" % time.time_ns()),
                "the call sent", lambda: True, settle=1.2)
    gw2 = next_gateway(workdir, cfg, procs)
    c2 = ec2(gw2, alice)
    state = lambda: c2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]
    wait_for("the instance running again", lambda: state() == "running", timeout=60, every=0.5)
    assert "taking over an unfinished operation" in gw2.log()
    # The journal is empty once the restart is done: nothing is taken over again.
    time.sleep(4)
    assert state() == "running"


def test_run_instances_killed_before_its_answer_leaves_no_vm(workdir, procs):
    # The deploys are accepted at once; tagging them (part of the launch, before the answer)
    # takes 3 s: the gateway dies then. The client never got an answer: nothing may stay.
    sim, cfg = start(workdir, procs, '[[faults]]\ncommand = "createTags"\nlatency_ms = 3000\n')
    gw1 = next_gateway(workdir, cfg, procs)
    alice = sim.user()
    c1 = ec2(gw1, alice)
    ami = c1.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]
    cs = CloudStack(endpoint=sim.endpoint, key=alice["apikey"], secret=alice["secretkey"])

    def live():
        vms = cs.listVirtualMachines().get("virtualmachine", [])
        return [v["id"] for v in vms if v["state"] not in ("Destroyed", "Expunging")]
    assert live() == []
    # boto3 fills in a ClientToken (whose record is undone alike); an empty one is no token, as
    # from clients that send none (the AWS CLI's older versions, libcloud, SigV2 tools).
    kill_during(gw1, lambda: c1.run_instances(
        ImageId=ami, MinCount=3, MaxCount=3, ClientToken="",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}]),
        "the deploys accepted", lambda: len(live()) == 3)
    assert len(live()) == 3
    gw2 = next_gateway(workdir, cfg, procs)
    wait_for("the unanswered launch undone", lambda: live() == [], timeout=60, every=0.5)
    assert "taking over an unfinished operation" in gw2.log()


def test_create_volume_killed_before_its_answer_leaves_no_volume(workdir, procs):
    # CreateVolume with tags: the volume is made, then tagging it takes 3 s: the gateway dies
    # then. Its undo (delete the volume) is in the journal; the next gateway runs it.
    sim, cfg = start(workdir, procs, '[[faults]]\ncommand = "createTags"\nlatency_ms = 3000\n')
    gw1 = next_gateway(workdir, cfg, procs)
    alice = sim.user()
    c1 = ec2(gw1, alice)
    zone = c1.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    cs = CloudStack(endpoint=sim.endpoint, key=alice["apikey"], secret=alice["secretkey"])

    def volumes():
        return [v["id"] for v in cs.listVolumes().get("volume", []) if v.get("type") == "DATADISK"]
    assert volumes() == []
    kill_during(gw1, lambda: c1.create_volume(
        Size=1, AvailabilityZone=zone,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}]),
        "the volume made", lambda: len(volumes()) == 1, settle=0.5)
    assert len(volumes()) == 1
    gw2 = next_gateway(workdir, cfg, procs)
    wait_for("the unanswered volume removed", lambda: volumes() == [], timeout=60, every=0.5)
    assert "undoing what an unfinished request made" in gw2.log()


def test_create_vpc_killed_after_create_vpc_leaves_no_vpc(workdir, procs):
    # CreateVpc with tags: createVPC is done, then tagging the VPC takes 3 s: the gateway dies
    # then, before the main route table and default group, before its answer. The VPC's
    # deletion is in the journal (kind `undo`); the next gateway runs it.
    sim, cfg = start(workdir, procs, '[[faults]]\ncommand = "createTags"\nlatency_ms = 3000\n')
    gw1 = next_gateway(workdir, cfg, procs)
    alice = sim.user()
    c1 = ec2(gw1, alice)
    cs = CloudStack(endpoint=sim.endpoint, key=alice["apikey"], secret=alice["secretkey"])

    def vpcs():
        return [v["id"] for v in cs.listVPCs().get("vpc", []) if v.get("cidr") == "10.77.0.0/16"]
    assert vpcs() == []
    kill_during(gw1, lambda: c1.create_vpc(
        CidrBlock="10.77.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "k", "Value": "v"}]}]),
        "the VPC made", lambda: len(vpcs()) == 1, settle=0.5)
    assert len(vpcs()) == 1
    gw2 = next_gateway(workdir, cfg, procs)
    wait_for("the unanswered VPC removed", lambda: vpcs() == [], timeout=60, every=0.5)
    assert "undoing what an unfinished request made" in gw2.log()
    # EC2 shows no trace of it either.
    c2 = ec2(gw2, alice)
    assert [v for v in c2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.77.0.0/16"] == []


def test_create_tags_killed_between_its_calls_puts_the_old_value_back(workdir, procs):
    # CreateTags replacing a value is deleteTags (the old value) then createTags (the new, 3 s
    # here): the gateway dies in between. Its undo (put the old value back) is in the journal;
    # the next gateway runs it, so the tag is not lost.
    sim, cfg = start(workdir, procs, '[[faults]]\ncommand = "createTags"\nlatency_ms = 3000\n')
    gw1 = next_gateway(workdir, cfg, procs)
    alice = sim.user()
    c1 = ec2(gw1, alice)
    zone = c1.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vol = c1.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    c1.create_tags(Resources=[vol], Tags=[{"Key": "a", "Value": "old"}])
    cs = CloudStack(endpoint=sim.endpoint, key=alice["apikey"], secret=alice["secretkey"])

    def tag_a():
        return [(t["key"], t["value"]) for t in cs.listTags(resourcetype="Volume").get("tag", []) if t["key"] == "a"]
    assert tag_a() == [("a", "old")]
    kill_during(gw1, lambda: c1.create_tags(Resources=[vol], Tags=[{"Key": "a", "Value": "new"}]),
                "the old value removed", lambda: tag_a() == [], every=0.05)
    time.sleep(3.5)
    # The new value's call was cut with the gateway: the tag is simply gone.
    assert tag_a() == []
    gw2 = next_gateway(workdir, cfg, procs)
    wait_for("the old value put back", lambda: tag_a() == [("a", "old")], timeout=60, every=0.5)
    assert "undoing what an unfinished request made" in gw2.log()
