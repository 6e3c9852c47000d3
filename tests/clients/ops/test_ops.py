"""Operations: /metrics counters after real calls, /readyz following the backend, the start-up
probe's log line, JSON logs with request ids, per-user rate limits (RequestLimitExceeded) and
slow-header connections that must not starve real calls."""
import json
import socket
import time

import boto3
import botocore.config
import pytest
import requests
from botocore.exceptions import ClientError

from ops_support import Gateway, Sim, free_port

NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})


def ec2(gw, user, **kw):
    return boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1",
                        aws_access_key_id=user["access_key"], aws_secret_access_key=user["secret_key"],
                        config=NO_RETRIES, **kw)


def sim_gateway(workdir, procs, config="", env=None):
    gw = Gateway(workdir, config, env=env, args=["--sim-fast"])
    procs.append(gw)
    return gw


def demo_user(gw, admin=False):
    return next(u for u in gw.info["users"] if u["is_admin"] == admin)


def test_metrics_count_requests_by_action_and_code(workdir, procs):
    gw = sim_gateway(workdir, procs)
    assert gw.admin and gw.admin.startswith("http://127.0.0.1:"), gw.info
    c = ec2(gw, demo_user(gw))
    before = gw.metric("ec2bridge_requests_total", action="DescribeAvailabilityZones", code="OK")
    for _ in range(3):
        c.describe_availability_zones()
    with pytest.raises(ClientError) as e:
        c.describe_instances(InstanceIds=["i-00000000deadbeef"])
    code = e.value.response["Error"]["Code"]
    m = gw.metrics()
    assert m[("ec2bridge_requests_total", frozenset({("action", "DescribeAvailabilityZones"), ("code", "OK")}))] == before + 3
    assert m[("ec2bridge_requests_total", frozenset({("action", "DescribeInstances"), ("code", code)}))] == 1
    assert m[("ec2bridge_request_duration_seconds_count", frozenset({("action", "DescribeAvailabilityZones")}))] == 3
    # The gateway called CloudStack for them, and counted each command with its latency.
    zones = m.get(("ec2bridge_cloudstack_calls_total", frozenset({("command", "listZones"), ("outcome", "ok")})), 0)
    assert zones >= 1, [k for k in m if k[0] == "ec2bridge_cloudstack_calls_total"]
    assert m[("ec2bridge_cloudstack_call_duration_seconds_count", frozenset({("command", "listZones")}))] >= zones
    # The in-flight gauge counts only the scrape-free EC2 requests: none now.
    assert m[("ec2bridge_requests_in_flight", frozenset())] == 0
    # Metrics are on the admin listener only: the EC2 port answers EC2 for /metrics.
    r = requests.get(gw.endpoint + "/metrics", timeout=10)
    assert b"ec2bridge_requests_total" not in r.content
    assert requests.get(gw.admin + "/healthz", timeout=10).text == "ok\n"


def test_readyz_follows_the_backend(workdir, procs):
    sim = Sim(workdir).start()
    procs.append(sim)
    admin = sim.admin()
    cfg = ('[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "%s"\n'
           % (sim.endpoint, admin["apikey"], admin["secretkey"]))
    gw = Gateway(workdir, cfg)
    procs.append(gw)
    r = requests.get(gw.admin + "/readyz", timeout=10)
    assert r.status_code == 200 and r.text.startswith("ready\n"), r.text
    assert "CloudStack answers; admin keys accepted" in gw.log()
    sim.stop()
    time.sleep(1.2)  # past the verdict's cache time
    r = requests.get(gw.admin + "/readyz", timeout=20)
    assert r.status_code == 503, r.text
    assert "cloudstack: not ready" in r.text and "does not answer" in r.text and "store: ok" in r.text, r.text
    # Back: ready again.
    sim2 = Sim(workdir, port=sim.port).start()
    procs.append(sim2)
    time.sleep(1.2)
    r = requests.get(gw.admin + "/readyz", timeout=20)
    assert r.status_code == 200, r.text
    # The change of state was logged once each way, with the reason.
    log = gw.log()
    assert "not ready" in log and "does not answer" in log


def test_startup_probe_names_a_wrong_url_and_a_dead_host(workdir, procs):
    sim = Sim(workdir).start()
    procs.append(sim)
    wrong_path = sim.endpoint.replace("/client/api", "/")
    gw = Gateway(workdir, '[cloudstack]\nendpoint = "%s"\n' % wrong_path)
    procs.append(gw)
    line = next(ln for ln in gw.log().splitlines() if "CloudStack endpoint" in ln)
    assert "should end in /client/api" in line, line
    dead = "http://127.0.0.1:%d/client/api" % free_port()
    gw2 = Gateway(workdir, '[cloudstack]\nendpoint = "%s"\n' % dead)
    procs.append(gw2)
    line = next(ln for ln in gw2.log().splitlines() if "CloudStack endpoint" in ln)
    assert "does not answer" in line and "127.0.0.1" in line, line
    # Wrong admin keys are named at start too.
    gw3 = Gateway(workdir, '[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "wrong"\n'
                  % (sim.endpoint, sim.admin()["apikey"]))
    procs.append(gw3)
    assert "refuses the admin keys" in gw3.log()
    assert "wrong" not in gw3.log().replace("wrong keys", "")


def test_json_logs_carry_the_request_id_and_no_colour(workdir, procs):
    gw = sim_gateway(workdir, procs, '[log]\nformat = "json"\naccess_log = true\n')
    c = ec2(gw, demo_user(gw))
    rid = c.describe_availability_zones()["ResponseMetadata"]["RequestId"]
    time.sleep(0.2)
    text = gw.log()
    assert "\x1b[" not in text
    lines = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    access = [ln for ln in lines if ln.get("target") == "ec2bridge::access"]
    mine = [ln for ln in access if ln.get("span", {}).get("request_id") == rid]
    assert len(mine) == 1, access
    f = mine[0]["fields"]
    assert f["action"] == "DescribeAvailabilityZones" and f["status"] == 200 and f["code"] == "-"
    assert "secret" not in json.dumps(mine[0]).lower()


def test_rate_limit_answers_request_limit_exceeded(workdir, procs):
    gw = sim_gateway(workdir, procs, "[limits]\nrequests_per_sec = 0.5\nburst = 3\n"
                     "action_weights = { DescribeRegions = 3 }\n")
    alice = ec2(gw, demo_user(gw))
    for _ in range(3):
        alice.describe_availability_zones()
    with pytest.raises(ClientError) as e:
        alice.describe_availability_zones()
    err = e.value.response
    assert err["Error"]["Code"] == "RequestLimitExceeded", err
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert err["Error"]["Message"] == "Request limit exceeded."
    # Another user's bucket is their own; a weighted action takes its whole weight.
    admin = ec2(gw, demo_user(gw, admin=True))
    admin.describe_regions()
    with pytest.raises(ClientError) as e:
        admin.describe_availability_zones()
    assert e.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert gw.metric("ec2bridge_rate_limited_total", action="DescribeAvailabilityZones", limit="rate") == 2
    # The bucket refills: 2 s later one token is back.
    time.sleep(2.1)
    alice.describe_availability_zones()


def test_slow_header_connections_do_not_starve_real_calls(workdir, procs):
    gw = sim_gateway(workdir, procs, "[server]\nheader_read_timeout_secs = 1\nidle_timeout_secs = 30\n"
                     "max_connections = 16\n")
    host, port = gw.endpoint.split("//")[1].split(":")
    slow = []
    for _ in range(40):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    c = ec2(gw, demo_user(gw))
    t0 = time.time()
    # Trickle a header line now and then: the header deadline still cuts them.
    for s in slow[:16]:
        try:
            s.sendall(b"X-A: b\r\n")
        except OSError:
            pass
    zones = c.describe_availability_zones()["AvailabilityZones"]
    took = time.time() - t0
    assert zones
    # Slow connections were closed (header deadline), not left holding the cap.
    assert took < 8, took
    assert gw.metric("ec2bridge_connections_timed_out_total") >= 16
    assert gw.metric("ec2bridge_connection_cap_reached_total") >= 1
    closed = 0
    for s in slow:
        s.settimeout(5)
        try:
            if s.recv(1) == b"":
                closed += 1
        except OSError:
            closed += 1
        s.close()
    assert closed == len(slow)
    assert "connection limit reached" in gw.log()
