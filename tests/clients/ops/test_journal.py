"""Issue 14 item 2: the operations journal in a shared PostgreSQL store. Two gateway processes on
one store (and one simulator) honour one ClientToken (same reservation, nothing new), show the
same terminated instances, and a gateway killed after CreateImage stopped an instance has its
restart step finished by the other one; a restarted gateway still honours the token.
Needs EC2BRIDGE_TEST_POSTGRES_URL (and psql to make a schema of its own); skips clearly without."""
import os
import shutil
import signal
import subprocess
import time
import uuid

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from ops_support import Gateway, REPO, Sim

PG = os.environ.get("EC2BRIDGE_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG or not shutil.which("psql"),
                                reason="EC2BRIDGE_TEST_POSTGRES_URL not set (or psql missing): "
                                       "the two-gateway journal tests need PostgreSQL")
NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=60)


@pytest.fixture
def pg_store():
    schema = "ec2b_journal_%s" % uuid.uuid4().hex[:12]
    subprocess.run(["psql", PG, "-q", "-c", "CREATE SCHEMA %s" % schema], check=True, capture_output=True)
    sep = "&" if "?" in PG else "?"
    yield "%s%soptions[search_path]=%s" % (PG, sep, schema)
    subprocess.run(["psql", PG, "-q", "-c", "DROP SCHEMA IF EXISTS %s CASCADE" % schema], capture_output=True)


def ec2(gw, u):
    return boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1", aws_access_key_id=u["apikey"],
                        aws_secret_access_key=u["secretkey"], config=NO_RETRIES)


def wait_for(what, check, timeout=30, every=0.3):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("%s: not reached in %d s (last: %r)" % (what, timeout, last))


def test_two_gateways_share_tokens_tombstones_and_unfinished_work(workdir, procs, pg_store):
    seed = workdir / "seed.toml"
    seed.write_text((REPO / "seeds" / "default.toml").read_text()
                    + '\n[[faults]]\ncommand = "createTemplate"\njob_delay_ms = 4000\n')
    sim = Sim(workdir, seed=seed).start()
    procs.append(sim)
    admin = sim.admin()
    cfg = ('[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "%s"\n'
           % (sim.endpoint, admin["apikey"], admin["secretkey"]))
    env = {"EC2BRIDGE_STORE_URL": pg_store, "EC2BRIDGE_SERVER_OPERATION_LEASE_SECS": "3"}
    gw1, gw2 = Gateway(workdir, cfg, env=env), Gateway(workdir, cfg, env=env)
    procs.extend([gw1, gw2])
    alice = sim.user()
    c1, c2 = ec2(gw1, alice), ec2(gw2, alice)
    ami = c1.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]

    # One ClientToken through both gateways: one reservation, nothing new.
    r1 = c1.run_instances(ImageId=ami, MinCount=2, MaxCount=2, ClientToken="journal-tok-1")
    r2 = c2.run_instances(ImageId=ami, MinCount=2, MaxCount=2, ClientToken="journal-tok-1")
    ids = sorted(i["InstanceId"] for i in r1["Instances"])
    assert r2["ReservationId"] == r1["ReservationId"]
    assert sorted(i["InstanceId"] for i in r2["Instances"]) == ids
    with pytest.raises(ClientError) as e:
        c2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, ClientToken="journal-tok-1")
    assert e.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    mine = [i["InstanceId"] for r in c2.describe_instances(
        Filters=[{"Name": "reservation-id", "Values": [r1["ReservationId"]]}])["Reservations"] for i in r["Instances"]]
    assert sorted(mine) == ids
    c1.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    # Terminated through one, terminated (with EC2's reason) through the other.
    c1.terminate_instances(InstanceIds=[ids[0]])
    t = wait_for("terminated on gw2", lambda: (lambda i: i if i["State"]["Name"] == "terminated" else None)(
        c2.describe_instances(InstanceIds=[ids[0]])["Reservations"][0]["Instances"][0]))
    assert t["StateReason"]["Code"] == "Client.UserInitiatedShutdown"

    # CreateImage stops the instance and restarts it once the (slow) template is made; gw1 dies
    # right after answering: gw2 takes the restart over once gw1's lease runs out.
    c1.create_image(InstanceId=ids[1], Name="journal-image-%d" % time.time_ns())
    gw1.proc.stop(signal.SIGKILL)
    state = lambda: c2.describe_instances(InstanceIds=[ids[1]])["Reservations"][0]["Instances"][0]["State"]["Name"]
    wait_for("the instance stopped for the image", lambda: state() == "stopped", timeout=20)
    wait_for("the instance started again by gw2", lambda: state() == "running", timeout=60)
    assert "taking over an unfinished operation" in gw2.log()

    # A new gateway process (gw1 restarted) still honours the token.
    gw3 = Gateway(workdir, cfg, env=env)
    procs.append(gw3)
    r3 = ec2(gw3, alice).run_instances(ImageId=ami, MinCount=2, MaxCount=2, ClientToken="journal-tok-1")
    assert r3["ReservationId"] == r1["ReservationId"]
    assert sorted(i["InstanceId"] for i in r3["Instances"]) == ids
