"""A build without the `sim` Cargo feature serves a configured CloudStack (here: the simulator run
as its own process, standing in for a real CloudStack)."""
import os

import boto3
import botocore.config
import pytest

from ops_support import NOSIM_BIN, Gateway, Sim


def test_build_without_simulator_serves_a_configured_cloudstack(workdir, procs):
    if not os.path.exists(NOSIM_BIN):
        pytest.skip("SKIPPED: no binary built without the `sim` feature at %s "
                    "(scripts/test builds it: cargo build --no-default-features)" % NOSIM_BIN)
    sim = Sim(workdir).start()
    procs.append(sim)
    admin, user = sim.admin(), sim.user()
    cfg = ('[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "%s"\n'
           % (sim.endpoint, admin["apikey"], admin["secretkey"]))
    gw = Gateway(workdir, cfg, binary=NOSIM_BIN)
    procs.append(gw)
    assert gw.info["simulator"] is False
    ec2 = boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1",
                       aws_access_key_id=user["apikey"], aws_secret_access_key=user["secretkey"],
                       config=botocore.config.Config(retries={"max_attempts": 1}))
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert zones and all(z["State"] == "available" for z in zones)
    # The binary really has no simulator: the `sim` command is unknown to it.
    import subprocess
    r = subprocess.run([NOSIM_BIN, "sim", "--help"], capture_output=True, text=True)
    assert r.returncode != 0 and "unrecognized subcommand" in r.stderr


def test_build_without_simulator_refuses_to_start_without_an_endpoint(workdir):
    if not os.path.exists(NOSIM_BIN):
        pytest.skip("SKIPPED: no binary built without the `sim` feature at %s" % NOSIM_BIN)
    import subprocess
    r = subprocess.run([NOSIM_BIN, "serve", "--listen", "127.0.0.1:0"], capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"], "XDG_DATA_HOME": str(workdir), "RUST_BACKTRACE": "0"},
                       timeout=60)
    assert r.returncode != 0
    assert "cloudstack.endpoint" in r.stderr and "`sim` feature" in r.stderr, r.stderr
