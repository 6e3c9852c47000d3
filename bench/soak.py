"""Soak: N minutes of mixed EC2 load with the simulator's fault injection on (bench/README.md).

Starts `ec2bridge sim --fast` (its own process; seed = seeds/default.toml + the faults below) and
`ec2bridge serve` against it (fresh SQLite store), then runs W boto3 clients (default retries, as
users run them) doing run/terminate, volumes, addresses, security groups, tags and describes
until the time is up. Then every client removes what EC2 shows it still has, the background work
is given time to settle, and the program prints:

- calls and errors by action and EC2 error code (and client-side exceptions by class);
- leftovers: what CloudStack still holds for the soak's account (live VMs, data volumes, public
  IPs other than source NAT) against what EC2 still shows: anything in CloudStack that EC2 does
  not show is a leftover nobody would clean up;
- the gateway's RSS and open file descriptors at start (after a warm-up), every minute, and at
  the end.

Usage: bench/soak [--minutes 10] [--workers 4] [--bin target/release/ec2bridge] [--no-faults]
       [--json FILE]
"""
import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import boto3
import botocore.config
from botocore.exceptions import ClientError
from cs import CloudStack

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Faults the simulator injects during the soak (src/sim/faults.rs): slow calls, 5xx answers,
# dropped connections, slow and failing jobs. Rates are per call / per job.
FAULTS = """
[[faults]]
command = "*"
latency_ms = 2
latency_max_ms = 40
[[faults]]
command = "deployVirtualMachine"
job = "fail"
job_rate = 0.1
job_error_code = 533
job_error_text = "Insufficient capacity (soak)"
[[faults]]
command = "deployVirtualMachine"
job_delay_ms = 200
job_delay_max_ms = 2500
[[faults]]
command = "associateIpAddress"
job_delay_ms = 100
job_delay_max_ms = 3000
[[faults]]
command = "createVolume"
error_code = 530
error_rate = 0.05
error_text = "soak: volume service hiccup"
[[faults]]
command = "listVirtualMachines"
drop_rate = 0.02
[[faults]]
command = "queryAsyncJobResult"
error_code = 503
error_rate = 0.02
[[faults]]
command = "destroyVirtualMachine"
error_code = 530
error_rate = 0.05
[[faults]]
command = "authorizeSecurityGroupIngress"
job_delay_ms = 50
job_delay_max_ms = 800
"""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Stack:
    def __init__(self, binary, tmp, faults):
        seed = open(os.path.join(REPO, "seeds", "default.toml")).read()
        for k in ("default_vm_limit = 20", "default_ip_limit = 20"):
            seed = seed.replace(k, k.split("=")[0] + "= -1")
        if faults:
            seed += FAULTS
        seed_path = os.path.join(tmp, "seed.toml")
        open(seed_path, "w").write(seed)
        sim_port, self.gw_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EC2BRIDGE_")}
        self.sim_log = open(os.path.join(tmp, "sim.log"), "wb")
        self.sim = subprocess.Popen([binary, "sim", "--fast", "--seed", seed_path, "--listen", "127.0.0.1:%d" % sim_port],
                                    env=env, stdout=subprocess.PIPE, stderr=self.sim_log)
        users, endpoint = {}, None
        for raw in self.sim.stdout:
            line = raw.decode().strip()
            if line.startswith("CloudStack simulator listening on"):
                endpoint = line.rsplit(" ", 1)[1]
            elif line.startswith("account="):
                kv = dict(x.split("=", 1) for x in line.split())
                users[kv["account"]] = kv
            if endpoint and "admin" in users and "alice" in users:
                break
        threading.Thread(target=self.sim.stdout.read, daemon=True).start()
        self.endpoint, self.alice, self.admin = endpoint, users["alice"], users["admin"]
        env.update(EC2BRIDGE_CLOUDSTACK_ENDPOINT=endpoint,
                   EC2BRIDGE_CLOUDSTACK_ADMIN_API_KEY=self.admin["apikey"],
                   EC2BRIDGE_CLOUDSTACK_ADMIN_SECRET_KEY=self.admin["secretkey"],
                   EC2BRIDGE_STORE_URL="sqlite://" + os.path.join(tmp, "store.db"),
                   EC2BRIDGE_STORE_KEY_FILE=os.path.join(tmp, "store.key"),
                   EC2BRIDGE_SERVER_LISTEN="127.0.0.1:%d" % self.gw_port,
                   # W clients of one user: the default per-user rate limit (docs/operations.md)
                   # would answer RequestLimitExceeded to most of the load.
                   EC2BRIDGE_LIMITS_REQUESTS_PER_SEC="0",
                   EC2BRIDGE_ADMIN_LISTEN="",
                   EC2BRIDGE_LOG="info")
        self.gw_log_path = os.path.join(tmp, "gateway.log")
        self.gw_log = open(self.gw_log_path, "wb")
        self.gw = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=self.gw_log)
        if not wait_port(self.gw_port):
            raise SystemExit("gateway did not start; see " + self.gw_log_path)

    def ec2(self, retries=None):
        cfg = botocore.config.Config(retries=retries, read_timeout=60, max_pool_connections=4) if retries \
            else botocore.config.Config(read_timeout=60, max_pool_connections=4)
        return boto3.client("ec2", endpoint_url="http://127.0.0.1:%d" % self.gw_port, region_name="us-east-1",
                            aws_access_key_id=self.alice["apikey"], aws_secret_access_key=self.alice["secretkey"],
                            config=cfg)

    def cloudstack(self):
        # Straight to the simulator, as alice (what her account holds), no faults on purpose:
        # the simulator injects them on every caller, so list calls are retried below.
        return CloudStack(endpoint=self.endpoint, key=self.alice["apikey"], secret=self.alice["secretkey"])

    def stop(self):
        for p in (self.gw, self.sim):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.errors = collections.Counter()
        self.retries = 0

    def call(self, c, action, **kw):
        try:
            r = getattr(c, action)(**kw)
            with self.lock:
                self.calls[action] += 1
                self.retries += r.get("ResponseMetadata", {}).get("RetryAttempts", 0)
            return r
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "?")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            with self.lock:
                self.calls[action] += 1
                self.errors[(action, "%s %s" % (status, code))] += 1
                self.retries += e.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        except Exception as e:  # noqa: BLE001 - connection errors etc. are counted, not fatal
            with self.lock:
                self.calls[action] += 1
                self.errors[(action, type(e).__name__)] += 1
        return None


def worker(stack, tally, deadline, n, ami, zone):
    rnd = random.Random(n)
    c = stack.ec2()
    mine = {"instances": [], "volumes": [], "addresses": [], "groups": []}
    while time.time() < deadline:
        op = rnd.choices(["run", "terminate", "volume", "delvolume", "address", "release", "group", "delgroup",
                          "tag", "describe"], weights=[8, 6, 6, 5, 6, 5, 4, 3, 6, 25])[0]
        if op == "run" and len(mine["instances"]) < 4:
            r = tally.call(c, "run_instances", ImageId=ami, MinCount=1, MaxCount=rnd.choice([1, 1, 2]),
                           InstanceType="m1.small")
            if r:
                mine["instances"] += [i["InstanceId"] for i in r["Instances"]]
        elif op == "terminate" and mine["instances"]:
            iid = mine["instances"].pop(rnd.randrange(len(mine["instances"])))
            if not tally.call(c, "terminate_instances", InstanceIds=[iid]):
                mine["instances"].append(iid)
        elif op == "volume" and len(mine["volumes"]) < 4:
            r = tally.call(c, "create_volume", Size=rnd.choice([1, 2, 5]), AvailabilityZone=zone)
            if r:
                mine["volumes"].append(r["VolumeId"])
        elif op == "delvolume" and mine["volumes"]:
            vid = mine["volumes"].pop(0)
            if not tally.call(c, "delete_volume", VolumeId=vid):
                mine["volumes"].append(vid)
        elif op == "address" and len(mine["addresses"]) < 3:
            r = tally.call(c, "allocate_address", Domain="standard")
            if r:
                mine["addresses"].append(r["AllocationId"])
        elif op == "release" and mine["addresses"]:
            a = mine["addresses"].pop(0)
            if not tally.call(c, "release_address", AllocationId=a):
                mine["addresses"].append(a)
        elif op == "group" and len(mine["groups"]) < 3:
            name = "soak-%d-%d" % (n, time.time_ns())
            r = tally.call(c, "create_security_group", GroupName=name, Description="soak")
            if r:
                mine["groups"].append(r["GroupId"])
                tally.call(c, "authorize_security_group_ingress", GroupId=r["GroupId"], IpPermissions=[
                    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
        elif op == "delgroup" and mine["groups"]:
            g = mine["groups"].pop(0)
            if not tally.call(c, "delete_security_group", GroupId=g):
                mine["groups"].append(g)
        elif op == "tag":
            ids = mine["instances"][:1] + mine["volumes"][:1]
            if ids:
                k = "soak%d" % rnd.randrange(3)
                tally.call(c, "create_tags", Resources=ids, Tags=[{"Key": k, "Value": str(rnd.random())}])
                if rnd.random() < 0.5:
                    tally.call(c, "delete_tags", Resources=ids, Tags=[{"Key": k}])
        elif op == "describe":
            action = rnd.choice(["describe_instances", "describe_volumes", "describe_addresses",
                                 "describe_security_groups", "describe_tags", "describe_availability_zones"])
            tally.call(c, action)


def cleanup(stack, tally):
    """Remove everything EC2 shows the account still has (as a user would at the end)."""
    c = stack.ec2()
    for _ in range(5):
        live = [i["InstanceId"] for r in (tally.call(c, "describe_instances") or {}).get("Reservations", [])
                for i in r["Instances"] if i["State"]["Name"] not in ("terminated", "shutting-down")]
        if live:
            tally.call(c, "terminate_instances", InstanceIds=live)
        for a in (tally.call(c, "describe_addresses") or {}).get("Addresses", []):
            tally.call(c, "release_address", AllocationId=a["AllocationId"])
        for v in (tally.call(c, "describe_volumes") or {}).get("Volumes", []):
            if v["State"] == "available":
                tally.call(c, "delete_volume", VolumeId=v["VolumeId"])
        for g in (tally.call(c, "describe_security_groups") or {}).get("SecurityGroups", []):
            if g["GroupName"].startswith("soak-"):
                tally.call(c, "delete_security_group", GroupId=g["GroupId"])
        time.sleep(5)


def retry(fn, tries=10):
    for i in range(tries):
        try:
            return fn()
        except Exception:  # noqa: BLE001 - the simulator injects faults on direct calls too
            if i == tries - 1:
                raise
            time.sleep(0.5)


def state_of(stack):
    """(what EC2 shows, what CloudStack holds) for the account, by resource."""
    c = stack.ec2(retries={"max_attempts": 10, "mode": "standard"})
    cs = stack.cloudstack()
    ec2_vms = [i for r in c.describe_instances()["Reservations"] for i in r["Instances"]
               if i["State"]["Name"] not in ("terminated",)]
    ec2_vols = c.describe_volumes()["Volumes"]
    ec2_ips = c.describe_addresses()["Addresses"]
    ec2_sgs = [g for g in c.describe_security_groups()["SecurityGroups"] if g["GroupName"].startswith("soak-")]
    cs_vms = [v for v in retry(lambda: cs.listVirtualMachines(listall=True)).get("virtualmachine", [])
              if v["state"] not in ("Destroyed", "Expunging")]
    cs_vols = [v for v in retry(lambda: cs.listVolumes(listall=True)).get("volume", []) if v.get("type") == "DATADISK"]
    cs_ips = [i for i in retry(lambda: cs.listPublicIpAddresses(listall=True)).get("publicipaddress", [])
              if not i.get("issourcenat")]
    cs_sgs = [g for g in retry(lambda: cs.listSecurityGroups(listall=True)).get("securitygroup", [])
              if g["name"].startswith("soak-")]
    return {
        "vms": (len(ec2_vms), len(cs_vms), sorted({v["state"] for v in cs_vms})),
        "volumes": (len(ec2_vols), len(cs_vols), sorted({v.get("state", "?") for v in cs_vols})),
        "public_ips": (len(ec2_ips), len(cs_ips), sorted({i.get("state", "?") for i in cs_ips})),
        "security_groups": (len(ec2_sgs), len(cs_sgs), []),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=4)
    default_bin = os.path.join(REPO, "target", "release", "ec2bridge")
    if not os.path.exists(default_bin):
        default_bin = os.path.join(REPO, "target", "debug", "ec2bridge")
    ap.add_argument("--bin", default=default_bin)
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--settle", type=float, default=90.0, help="seconds to let background work end")
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ec2bridge-soak-")
    print("soak: %s, %.1f min, %d workers, faults %s, logs in %s" % (a.bin, a.minutes, a.workers,
          "off" if a.no_faults else "on", tmp), flush=True)
    stack = Stack(a.bin, tmp, not a.no_faults)
    tally = Tally()
    try:
        c = stack.ec2(retries={"max_attempts": 10, "mode": "standard"})
        ami = c.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]
        zone = c.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        c.describe_instances()
        samples = [("start", rss_kb(stack.gw.pid), fds(stack.gw.pid))]
        t0 = time.time()
        deadline = t0 + a.minutes * 60
        threads = [threading.Thread(target=worker, args=(stack, tally, deadline, n, ami, zone), daemon=True)
                   for n in range(a.workers)]
        for t in threads:
            t.start()
        next_sample = t0 + 60
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            if time.time() >= next_sample and time.time() < deadline:
                next_sample += 60
                samples.append(("%d min" % round((time.time() - t0) / 60), rss_kb(stack.gw.pid), fds(stack.gw.pid)))
                print("  %s: %d calls, %d errors, gateway RSS %.1f MB, %d fds" % (
                    samples[-1][0], sum(tally.calls.values()), sum(tally.errors.values()),
                    samples[-1][1] / 1024, samples[-1][2]), flush=True)
        load_secs = time.time() - t0
        samples.append(("end of load", rss_kb(stack.gw.pid), fds(stack.gw.pid)))
        cleanup(stack, tally)
        # Background work (rollbacks, failed deploys, allocations) ends on its own: wait until
        # CloudStack holds no more than EC2 shows, or the settle time is up.
        settle_end = time.time() + a.settle
        while True:
            st = state_of(stack)
            if all(e == s for e, s, _ in st.values()) or time.time() > settle_end:
                break
            time.sleep(5)
        samples.append(("end", rss_kb(stack.gw.pid), fds(stack.gw.pid)))
        total = sum(tally.calls.values())
        print("\n## %d calls in %.0f s of load (%.1f/s), %d SDK retries" % (total, load_secs, total / load_secs,
                                                                         tally.retries))
        print("\n| action | calls |\n|---|---:|")
        for k, v in sorted(tally.calls.items()):
            print("| %s | %d |" % (k, v))
        print("\n| action | error (HTTP status, code) | count |\n|---|---|---:|")
        for (act, code), v in sorted(tally.errors.items(), key=lambda x: (-x[1], x[0])):
            print("| %s | %s | %d |" % (act, code, v))
        print("\n| resource (after cleanup + settle) | EC2 shows | CloudStack holds | CloudStack states |\n|---|---:|---:|---|")
        for k, (e, s, states) in st.items():
            print("| %s | %d | %d | %s |" % (k, e, s, ", ".join(states)))
        print("\nleftovers (in CloudStack, not shown by EC2): %d" % sum(max(0, s - e) for e, s, _ in st.values()))
        print("\n| when | gateway RSS MB | gateway fds |\n|---|---:|---:|")
        for when, r, f in samples:
            print("| %s | %.1f | %d |" % (when, r / 1024, f))
        if a.json:
            json.dump({"calls": dict(tally.calls), "errors": {"%s %s" % k: v for k, v in tally.errors.items()},
                       "state": st, "samples": samples, "load_secs": load_secs}, open(a.json, "w"), indent=1)
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
