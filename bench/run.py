#!/usr/bin/env python3
"""ec2bridge benchmark: the gateway and the CloudStack simulator as separate processes, driven
by an external load generator (wrk), CPU read per process from /proc.

Run it through `bench/run` (installs wrk, builds the release binary). Directly:

  python3 bench/run.py [--bin LABEL=PATH ...] [--rounds N] [--seconds S] [--only GROUP,...]

With several --bin, each round runs every binary once, in turn (alternating), and the end
prints the medians per binary. Groups: small (10 VMs), large (1,000 VMs), paging (10,000 VMs),
startup. bench/README.md explains every column.

Only the Python standard library, plus xmlsec/lxml for the SOAP scenario (skipped without them).
"""
import argparse
import base64
import datetime
import glob
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = 4096


# ---------------------------------------------------------------- processes and /proc

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def thread_switches(pid):
    """Context switches (voluntary + involuntary) of every thread of a process so far
    (/proc/<pid>/task/*/status). A thread that ended is not counted."""
    n = 0
    for status in glob.glob("/proc/%d/task/*/status" % pid):
        try:
            with open(status) as f:
                n += sum(int(l.split()[1]) for l in f if "ctxt_switches" in l)
        except OSError:
            pass
    return n


class RssSampler:
    """Peak VmRSS of a process, sampled every 50 ms while running."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, rss_kb(pid), threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.05):
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except OSError:
                return

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join()


def wait_port(port, deadline_s=30.0, step=0.002):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(step)
    return False


class Proc:
    def __init__(self, args, env, logpath):
        self.log = open(logpath, "wb")
        self.p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self.log)
        self.pid = self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


# ---------------------------------------------------------------- signing

def q(s):
    return urllib.parse.quote(str(s).encode(), safe="-_.~")


def sigv2_url(host, ak, sk, params):
    """A SigV2 GET (HmacSHA256) with Expires one day ahead: replayable for the whole run."""
    p = dict(params)
    exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    p.update(AWSAccessKeyId=ak, SignatureVersion="2", SignatureMethod="HmacSHA256",
             Expires=exp.strftime("%Y-%m-%dT%H:%M:%SZ"))
    canonical = "&".join("%s=%s" % kv for kv in sorted((q(k), q(v)) for k, v in p.items()))
    sts = "\n".join(["GET", host.lower(), "/", canonical])
    sig = base64.b64encode(hmac.new(sk.encode(), sts.encode(), hashlib.sha256).digest()).decode()
    return "/?" + canonical + "&Signature=" + q(sig)


def sigv4_headers(host, ak, sk, body, region="us-east-1", service="ec2"):
    """Headers of a SigV4-signed POST (as boto3 sends it); valid for the server's skew window."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    ct = "application/x-www-form-urlencoded; charset=utf-8"
    ph = hashlib.sha256(body.encode()).hexdigest()
    signed = "content-type;host;x-amz-date"
    creq = "\n".join(["POST", "/", "", "content-type:" + ct, "host:" + host, "x-amz-date:" + amz, "",
                      signed, ph])
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + sk).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    auth = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (ak, scope, signed, sig)
    return {"Content-Type": ct, "X-Amz-Date": amz, "Authorization": auth}


def java_enc(v):
    return urllib.parse.quote(str(v).encode(), safe="-_.*")


def cs_path(api_path, ak, sk, params):
    """A signed CloudStack GET path (cloudstack-api.md §2, as src/cloudstack/signing.rs)."""
    p = dict(params, apiKey=ak, response="json")
    items = sorted(p.items(), key=lambda kv: kv[0].encode("utf-16-be"))
    sts = "&".join("%s=%s" % (k, java_enc(v)) for k, v in items).lower()
    sig = base64.b64encode(hmac.new(sk.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    return api_path + "?" + "&".join("%s=%s" % (k, java_enc(v)) for k, v in items) + "&signature=" + q(sig)


# ---------------------------------------------------------------- one HTTP call (setup, paging)

def ec2_call(port, ak, sk, body):
    host = "127.0.0.1:%d" % port
    c = http.client.HTTPConnection(host, timeout=120)
    c.request("POST", "/", body=body, headers=sigv4_headers(host, ak, sk, body))
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    if r.status != 200:
        raise RuntimeError("%s -> %d %s" % (body, r.status, text[:300]))
    return text


def first_tag(xml, tag):
    m = re.search("<%s>([^<]*)</%s>" % (tag, tag), xml)
    return m.group(1) if m else None


# ---------------------------------------------------------------- wrk

WRK_LUA = """
local paths = {%(paths)s}
local i = 0
wrk.method = "%(method)s"
wrk.body = %(body)s
%(headers)s
request = function()
  i = i %% #paths + 1
  return wrk.format(nil, paths[i])
end
"""


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk(tmp, port, conns, seconds, paths, method="GET", body=None, headers=None):
    script = os.path.join(tmp, "req.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA % dict(
            paths=", ".join(lua_str(p) for p in paths), method=method,
            body=lua_str(body) if body is not None else "nil",
            headers="\n".join("wrk.headers[%s] = %s" % (lua_str(k), lua_str(v)) for k, v in (headers or {}).items())))
    threads = min(2, conns)
    out = subprocess.run(["wrk", "--timeout", "20s", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency", "-s", script,
                          "http://127.0.0.1:%d" % port], capture_output=True, text=True, check=True).stdout
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1)), "errors": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for pct in ("50", "99"):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % pct, out)
        res["p" + pct] = float(m.group(1)) * unit[m.group(2)]
    return res


def measured(gw_pid, be_pid, fn, requests_per_call=1):
    """Run fn() (which returns a wrk-style dict) and add per-request CPU of both processes."""
    g0, b0 = cpu_ticks(gw_pid) if gw_pid else 0, cpu_ticks(be_pid)
    s0 = thread_switches(gw_pid) if gw_pid else 0
    with RssSampler(gw_pid or be_pid) as rs:
        res = fn()
    g1, b1 = cpu_ticks(gw_pid) if gw_pid else 0, cpu_ticks(be_pid)
    n = max(res["requests"], 1) / requests_per_call
    res["gw_switches"] = (thread_switches(gw_pid) - s0) / n if gw_pid else None
    res["gw_cpu_ms"] = (g1 - g0) * 1000.0 / CLK_TCK / n if gw_pid else None
    res["be_cpu_ms"] = (b1 - b0) * 1000.0 / CLK_TCK / n
    res["rss_mb" if gw_pid else "sim_rss_mb"] = rs.peak / 1024.0
    if requests_per_call != 1:
        res["rps"] /= requests_per_call
    return res


# ---------------------------------------------------------------- SOAP load (fresh signatures)

SOAP_NS = "http://ec2.amazonaws.com/doc/2013-10-01/"


def soap_envelope(key, cert_der_b64, body_xml, serial):
    """A WS-Security X.509 signed envelope (as tests/clients/soap/wssign.py makes them). `serial`
    goes into the Timestamp's wsu:Id, so every envelope is a new signature: the gateway refuses a
    replayed one."""
    import xmlsec
    from lxml import etree
    SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
    WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
    B64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
    env = etree.Element(etree.QName(SOAP, "Envelope"), nsmap={"soap-env": SOAP})
    header = etree.SubElement(env, etree.QName(SOAP, "Header"))
    sec = etree.SubElement(header, etree.QName(WSSE, "Security"), nsmap={"wsse": WSSE, "wsu": WSU})
    body = etree.SubElement(env, etree.QName(SOAP, "Body"), nsmap={"wsu": WSU})
    body.set(etree.QName(WSU, "Id"), "id-body")
    body.append(etree.fromstring(body_xml))
    bst = etree.SubElement(sec, etree.QName(WSSE, "BinarySecurityToken"))
    bst.set(etree.QName(WSU, "Id"), "id-cert")
    bst.set("ValueType", X509V3)
    bst.set("EncodingType", B64)
    bst.text = cert_der_b64
    now = datetime.datetime.now(datetime.timezone.utc)
    ts = etree.SubElement(sec, etree.QName(WSU, "Timestamp"))
    ts.set(etree.QName(WSU, "Id"), "ts-%d" % serial)
    etree.SubElement(ts, etree.QName(WSU, "Created")).text = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    etree.SubElement(ts, etree.QName(WSU, "Expires")).text = \
        (now + datetime.timedelta(seconds=300)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = xmlsec.template.create(env, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA1)
    sec.insert(0, sig)
    for t in (body, ts):
        ref = xmlsec.template.add_reference(sig, xmlsec.Transform.SHA1, uri="#" + t.get(etree.QName(WSU, "Id")))
        xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
    ki = xmlsec.template.ensure_key_info(sig)
    r = etree.SubElement(etree.SubElement(ki, etree.QName(WSSE, "SecurityTokenReference")),
                         etree.QName(WSSE, "Reference"))
    r.set("URI", "#id-cert")
    r.set("ValueType", X509V3)
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    for el in (body, ts, bst):
        ctx.register_id(el, "Id", WSU)
    ctx.sign(sig)
    return etree.tostring(env)


def soap_load(port, key_path, cert_path, seconds, threads):
    """Every request is signed anew, as a real WS-Security client does (the gateway refuses replays)."""
    import xmlsec
    pem = open(cert_path, "rb").read()
    der_b64 = "".join(l for l in pem.decode().splitlines() if l and not l.startswith("-----"))
    body_xml = '<ns0:DescribeInstances xmlns:ns0="%s"/>' % SOAP_NS
    lat, errors = [], [0]
    lock = threading.Lock()
    serial = [0]
    end = time.monotonic() + seconds

    def worker():
        key = xmlsec.Key.from_file(key_path, xmlsec.KeyFormat.PEM)
        c = http.client.HTTPConnection("127.0.0.1:%d" % port, timeout=60)
        mine, err = [], 0
        while time.monotonic() < end:
            with lock:
                serial[0] += 1
                n = serial[0]
            env = soap_envelope(key, der_b64, body_xml, n)
            t1 = time.monotonic()
            c.request("POST", "/awsapi/", body=env,
                      headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"DescribeInstances"'})
            r = c.getresponse()
            text = r.read().decode(errors="replace")
            if r.status == 200:
                mine.append((time.monotonic() - t1) * 1000.0)
            else:
                err += 1
                if err == 1:
                    print("SOAP error sample: %d %s" % (r.status, text[:400]), file=sys.stderr)
        with lock:
            lat.extend(mine)
            errors[0] += err

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    el = time.monotonic() - t0
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))] if lat else 0.0
    return {"rps": len(lat) / el, "requests": len(lat) + errors[0], "errors": errors[0],
            "p50": pct(0.5), "p99": pct(0.99)}


# ---------------------------------------------------------------- a simulator + gateway pair

class Stack:
    """`ec2bridge sim --fast` with N VMs in alice's account, and `ec2bridge serve` against it."""

    def __init__(self, binary, vms, tmp):
        self.tmp = tmp
        seed = open(os.path.join(REPO, "seeds", "default.toml")).read()
        seed = seed.replace("default_vm_limit = 20", "default_vm_limit = -1")
        seed += '\n[generate]\nvms = %d\naccounts = ["alice"]\n' % vms
        seed_path = os.path.join(tmp, "seed.toml")
        open(seed_path, "w").write(seed)
        self.sim_port, self.gw_port = free_port(), free_port()
        env = dict(os.environ)
        env.pop("EC2BRIDGE_CONFIG", None)
        self.sim = Proc([binary, "sim", "--fast", "--seed", seed_path, "--listen", "127.0.0.1:%d" % self.sim_port],
                        env, os.path.join(tmp, "sim.log"))
        users, endpoint = {}, None
        for raw in self.sim.p.stdout:
            line = raw.decode().strip()
            if line.startswith("CloudStack simulator listening on"):
                endpoint = line.rsplit(" ", 1)[1]
            elif line.startswith("account="):
                kv = dict(x.split("=", 1) for x in line.split())
                users[kv["account"]] = kv
                if "admin" in users and "alice" in users:
                    break
        threading.Thread(target=self.sim.p.stdout.read, daemon=True).start()
        self.api_path = urllib.parse.urlsplit(endpoint).path
        self.alice, admin = users["alice"], users["admin"]
        self.ak, self.sk = self.alice["apikey"], self.alice["secretkey"]
        env.update(EC2BRIDGE_CLOUDSTACK_ENDPOINT=endpoint,
                   EC2BRIDGE_CLOUDSTACK_ADMIN_API_KEY=admin["apikey"],
                   EC2BRIDGE_CLOUDSTACK_ADMIN_SECRET_KEY=admin["secretkey"],
                   EC2BRIDGE_STORE_URL="sqlite://" + os.path.join(tmp, "store.db"),
                   EC2BRIDGE_STORE_KEY_FILE=os.path.join(tmp, "store.key"),
                   EC2BRIDGE_SERVER_LISTEN="127.0.0.1:%d" % self.gw_port,
                   # One user drives the whole load: the per-user rate limit and the CloudStack
                   # concurrency caps (docs/operations.md) would measure themselves, not the
                   # gateway. No admin listener (its default port may be taken).
                   EC2BRIDGE_LIMITS_REQUESTS_PER_SEC="0",
                   EC2BRIDGE_LIMITS_MAX_CLOUDSTACK_CALLS="0",
                   EC2BRIDGE_LIMITS_MAX_CLOUDSTACK_CALLS_PER_USER="0",
                   EC2BRIDGE_ADMIN_LISTEN="")
        self.binary, self.gw_env = binary, env
        self.gw = Proc([binary, "serve"], env, os.path.join(tmp, "gateway.log"))
        threading.Thread(target=self.gw.p.stdout.read, daemon=True).start()
        if not wait_port(self.gw_port):
            raise RuntimeError("gateway did not start; see %s" % os.path.join(tmp, "gateway.log"))
        self.host = "127.0.0.1:%d" % self.gw_port

    def call(self, body):
        return ec2_call(self.gw_port, self.ak, self.sk, body)

    def stop(self):
        self.gw.stop()
        self.sim.stop()


FLOOR = {"path": os.path.join(REPO, "target", "release", "examples", "bench_floor")}


def cs_pages(st, command):
    """How many pages of 500 alice's `command` list has (its `count`, from a 1-item page)."""
    c = http.client.HTTPConnection("127.0.0.1", st.sim_port, timeout=60)
    c.request("GET", cs_path(st.api_path, st.ak, st.sk, {"command": command, "page": "1", "pagesize": "1"}))
    body = json.loads(c.getresponse().read())
    c.close()
    count = next(iter(body.values()), {}).get("count", 0)
    return max(1, (count + 499) // 500)


def floor_rows(st, tmp, secs, report, vms, conns):
    """The floor under the gateway (bench/floor.rs): a relay on the gateway's HTTP stack that makes
    the CloudStack calls a DescribeInstances makes (every page of 500 of listVirtualMachines and
    listVolumes, as the gateway pages) for every request it receives, reads the answers whole and
    relays the first, without (`relay`) and with (`relay+parse`) parsing each answer into a JSON
    tree. Its CPU per request is what any translator built on this stack spends before it
    translates anything."""
    if not os.path.exists(FLOOR["path"]):
        report("Floor relay (skipped: %s not built; bench/run builds it)" % FLOOR["path"], {})
        return
    # Every page of both lists, as the gateway reads them for one DescribeInstances.
    calls = ["command=%s&page=%d&pagesize=500" % (cmd, p)
             for cmd in ("listVirtualMachines", "listVolumes") for p in range(1, cs_pages(st, cmd) + 1)]
    for parse in (False, True):
        port = free_port()
        args = [FLOOR["path"], "--listen", "127.0.0.1:%d" % port, "--endpoint",
                "http://127.0.0.1:%d%s" % (st.sim_port, st.api_path), "--api-key", st.ak, "--secret-key", st.sk]
        for c in calls:
            args += ["--call", c]
        if parse:
            args.append("--parse")
        f = Proc(args, dict(os.environ), os.path.join(tmp, "floor.log"))
        threading.Thread(target=f.p.stdout.read, daemon=True).start()
        try:
            if not wait_port(port):
                raise RuntimeError("bench_floor did not start; see %s" % os.path.join(tmp, "floor.log"))
            for c in conns:
                r = measured(f.pid, st.sim.pid, lambda: wrk(tmp, port, c, secs, ["/"], "POST", "Action=DescribeInstances"))
                report("Floor %s (%d calls), %s VMs, c%d" % ("relay+parse" if parse else "relay", len(calls),
                                                          format(vms, ","), c), r)
        finally:
            f.stop()


def median_dict(rows):
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float))]
        out[k] = statistics.median(vals) if vals else rows[0][k]
    return out


# ---------------------------------------------------------------- scenario groups

def group_small(binary, tmp, secs, report):
    st = Stack(binary, 10, tmp)
    try:
        st.call("Action=DescribeInstances&Version=2016-11-15")  # warm caches (metadata, ids)
        time.sleep(0.3)
        report("RSS idle, gateway (10 VMs, after one request)", {"rss_mb": rss_kb(st.gw.pid) / 1024.0})
        direct = cs_path(st.api_path, st.ak, st.sk, {"command": "listVirtualMachines", "page": "1", "pagesize": "500"})
        direct_rps = {}
        for c in (16, 64):
            r = measured(None, st.sim.pid, lambda: wrk(tmp, st.sim_port, c, secs, [direct]))
            direct_rps[c] = r["rps"]
            report("listVirtualMachines direct, 10 VMs, c%d" % c, r)
        floor_rows(st, tmp, secs, report, 10, (16, 64))
        for c in (16, 64):
            path = sigv2_url(st.host, st.ak, st.sk, {"Action": "DescribeInstances", "Version": "2016-11-15"})
            r = measured(st.gw.pid, st.sim.pid, lambda: wrk(tmp, st.gw_port, c, secs, [path]))
            r["ratio"] = r["rps"] / direct_rps[c]
            report("DescribeInstances SigV2, 10 VMs, c%d" % c, r)
        for c in (16, 64):
            body = "Action=DescribeInstances&Version=2016-11-15"
            h = sigv4_headers(st.host, st.ak, st.sk, body)
            r = measured(st.gw.pid, st.sim.pid, lambda: wrk(tmp, st.gw_port, c, secs, ["/"], "POST", body, h))
            r["ratio"] = r["rps"] / direct_rps[c]
            report("DescribeInstances SigV4, 10 VMs, c%d" % c, r)
        for action in ("DescribeImages", "DescribeSecurityGroups", "DescribeVolumes"):
            body = "Action=%s&Version=2016-11-15" % action
            h = sigv4_headers(st.host, st.ak, st.sk, body)
            r = measured(st.gw.pid, st.sim.pid, lambda: wrk(tmp, st.gw_port, 16, secs, ["/"], "POST", body, h))
            report("%s SigV4, c16" % action, r)
        soap_scenario(st, tmp, secs, report)
        run_instances(st, tmp, secs, report)
    finally:
        st.stop()


def soap_scenario(st, tmp, secs, report):
    try:
        import xmlsec  # noqa: F401
        import lxml  # noqa: F401
    except ImportError:
        report("SOAP DescribeInstances (skipped: python xmlsec/lxml missing)", {})
        return
    if not shutil.which("openssl"):
        report("SOAP DescribeInstances (skipped: openssl missing)", {})
        return
    key, crt = os.path.join(tmp, "soap.key"), os.path.join(tmp, "soap.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    # Keys may start with "-": `--opt=value` forms, so argparse never takes one for an option.
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "cloudstack-aws-api-register"), "--apikey=" + st.ak,
                    "--secretkey=" + st.sk, "--cert=" + crt, "--url=http://%s/awsapi" % st.host],
                   check=True, capture_output=True, timeout=60)
    r = measured(st.gw.pid, st.sim.pid, lambda: soap_load(st.gw_port, key, crt, secs, 4))
    report("SOAP DescribeInstances (WS-Security, fresh signature each), 4 clients", r)


def run_instances(st, tmp, secs, report):
    image = first_tag(st.call("Action=DescribeImages&Version=2016-11-15"), "imageId")
    body = "Action=RunInstances&Version=2016-11-15&ImageId=%s&InstanceType=m1.small&MinCount=1&MaxCount=1" % image
    st.call(body)  # steady state: zones, offerings and templates cached
    time.sleep(0.2)
    h = sigv4_headers(st.host, st.ak, st.sk, body)
    r = measured(st.gw.pid, st.sim.pid, lambda: wrk(tmp, st.gw_port, 16, min(secs, 3), ["/"], "POST", body, h))
    r["backend_calls"] = backend_calls_per_call(st, tmp, body, 30)
    report("RunInstances SigV4 (1 VM each), c16", r)
    # The same after sustained launches: a cost that grows with the jobs or VMs already made
    # shows here (bench/README.md "Session 11": a scan per launch took the gateway from 0.56 to
    # 4.8 ms of CPU per launch in 15 s).
    busy = 4 * min(secs, 3)
    wrk(tmp, st.gw_port, 16, busy, ["/"], "POST", body, h)
    # wrk's end drops the launches in flight, which the gateway undoes in the background (each
    # undo lists the account's VMs): measured once that is over, so the row shows launches only.
    settle(st.gw.pid, st.sim.pid)
    r = measured(st.gw.pid, st.sim.pid, lambda: wrk(tmp, st.gw_port, 16, min(secs, 3), ["/"], "POST", body, h))
    report("RunInstances SigV4 (1 VM each), c16, after %d s more of launches" % busy, r)


def settle(*pids, deadline_s=30.0):
    """Wait until the processes are idle (at most 1 tick of CPU each in 0.25 s)."""
    end = time.monotonic() + deadline_s
    last = [cpu_ticks(p) for p in pids]
    while time.monotonic() < end:
        time.sleep(0.25)
        now = [cpu_ticks(p) for p in pids]
        if all(b - a <= 1 for a, b in zip(last, now)):
            return
        last = now


def backend_calls_per_call(st, tmp, body, n):
    """CloudStack calls per EC2 call in steady state, counted exactly: a second gateway on the same
    simulator logs every backend call (debug), after one warm-up call."""
    port = free_port()
    env = dict(st.gw_env, EC2BRIDGE_SERVER_LISTEN="127.0.0.1:%d" % port,
               EC2BRIDGE_LOG="warn,ec2bridge::cloudstack::client=debug")
    log = os.path.join(tmp, "gateway-count.log")
    g = Proc([st.binary, "serve"], env, log)
    threading.Thread(target=g.p.stdout.read, daemon=True).start()
    try:
        if not wait_port(port):
            raise RuntimeError("counting gateway did not start; see %s" % log)
        ec2_call(port, st.ak, st.sk, body)
        time.sleep(0.1)
        before = open(log, "rb").read().count(b"cloudstack call")
        for _ in range(n):
            ec2_call(port, st.ak, st.sk, body)
        time.sleep(0.1)
        return (open(log, "rb").read().count(b"cloudstack call") - before) / n
    finally:
        g.stop()


def group_large(binary, tmp, secs, report):
    st = Stack(binary, 1000, tmp)
    try:
        st.call("Action=DescribeInstances&Version=2016-11-15")
        time.sleep(0.3)
        report("RSS idle, gateway (1,000 VMs, after one request)", {"rss_mb": rss_kb(st.gw.pid) / 1024.0})
        pages = [cs_path(st.api_path, st.ak, st.sk, {"command": "listVirtualMachines", "page": str(p),
                                                      "pagesize": "500"}) for p in (1, 2)]
        direct_rps = {}
        for c in (16, 64):
            r = measured(None, st.sim.pid, lambda: wrk(tmp, st.sim_port, c, secs, pages), requests_per_call=2)
            direct_rps[c] = r["rps"]
            report("listVirtualMachines direct, 1,000 VMs (2 pages), c%d" % c, r)
        floor_rows(st, tmp, secs, report, 1000, (16,))
        for c in (16, 64):
            body = "Action=DescribeInstances&Version=2016-11-15"
            h = sigv4_headers(st.host, st.ak, st.sk, body)
            r = measured(st.gw.pid, st.sim.pid, lambda: wrk(tmp, st.gw_port, c, secs, ["/"], "POST", body, h))
            r["ratio"] = r["rps"] / direct_rps[c]
            report("DescribeInstances SigV4, 1,000 VMs, c%d" % c, r)
    finally:
        st.stop()


def group_paging(binary, tmp, secs, report):
    st = Stack(binary, 10000, tmp)
    try:
        st.call("Action=DescribeInstances&Version=2016-11-15&MaxResults=5")
        time.sleep(0.3)
        idle = rss_kb(st.gw.pid) / 1024.0
        times, peaks, gw_cpu, sim_cpu = [], [], [], []
        for _ in range(3):
            g0, b0 = cpu_ticks(st.gw.pid), cpu_ticks(st.sim.pid)
            with RssSampler(st.gw.pid) as rs:
                t0, token, n = time.monotonic(), None, 0
                while True:
                    body = "Action=DescribeInstances&Version=2016-11-15&MaxResults=1000"
                    if token:
                        body += "&NextToken=" + q(token)
                    xml = st.call(body)
                    n += xml.count("<instanceId>")
                    token = first_tag(xml, "nextToken")
                    if not token:
                        break
                times.append((time.monotonic() - t0) * 1000.0)
            gw_cpu.append((cpu_ticks(st.gw.pid) - g0) * 1000.0 / CLK_TCK)
            sim_cpu.append((cpu_ticks(st.sim.pid) - b0) * 1000.0 / CLK_TCK)
            peaks.append(rs.peak / 1024.0)
            if n != 10000:
                raise RuntimeError("paging returned %d instances, expected 10000" % n)
        report("Paging 10,000 VMs, MaxResults 1000 (end to end)",
               {"ms": statistics.median(times), "gw_cpu_ms": statistics.median(gw_cpu),
                "be_cpu_ms": statistics.median(sim_cpu), "rss_idle_mb": idle, "rss_mb": max(peaks),
                "rss_after_mb": rss_kb(st.gw.pid) / 1024.0})
    finally:
        st.stop()


def group_startup(binary, tmp, secs, report):
    times, rss = [], []
    for i in range(5):
        port = free_port()
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("EC2BRIDGE_"):
                env.pop(k)
        d = os.path.join(tmp, "start%d" % i)
        os.makedirs(d, exist_ok=True)
        env.update(EC2BRIDGE_SERVER_LISTEN="127.0.0.1:%d" % port, EC2BRIDGE_SIMULATOR_STATE_DIR="",
                   EC2BRIDGE_STORE_URL="sqlite://" + os.path.join(d, "store.db"),
                   EC2BRIDGE_STORE_KEY_FILE=os.path.join(d, "store.key"), EC2BRIDGE_ADMIN_LISTEN="")
        t0 = time.monotonic()
        p = Proc([binary, "serve", "--sim-fast"], env, os.path.join(d, "gateway.log"))
        threading.Thread(target=p.p.stdout.read, daemon=True).start()
        ok = wait_port(port, 30, 0.001)
        times.append((time.monotonic() - t0) * 1000.0)
        time.sleep(0.3)
        rss.append(rss_kb(p.pid) / 1024.0)
        p.stop()
        if not ok:
            raise RuntimeError("serve did not listen; see %s" % d)
    report("Start to listening, embedded simulator (median of 5)", {"ms": statistics.median(times),
                                                                  "rss_mb": statistics.median(rss)})


GROUPS = {"small": group_small, "large": group_large, "paging": group_paging, "startup": group_startup}

COLS = [("rps", "req/s", "%.0f"), ("p50", "p50 ms", "%.2f"), ("p99", "p99 ms", "%.2f"),
        ("gw_cpu_ms", "gw CPU ms/req", "%.3f"), ("be_cpu_ms", "sim CPU ms/req", "%.3f"),
        ("gw_switches", "gw switches/req", "%.1f"),
        ("rss_mb", "gw RSS MB", "%.1f"), ("sim_rss_mb", "sim RSS MB", "%.1f"), ("ratio", "gw/direct", "%.2f"), ("backend_calls", "backend calls/req", "%.2f"),
        ("ms", "ms", "%.0f"), ("rss_idle_mb", "RSS idle MB", "%.1f"), ("rss_after_mb", "RSS after MB", "%.1f"),
        ("errors", "errors", "%d")]


def fmt_row(name, r):
    cells = []
    for k, label, f in COLS:
        v = r.get(k)
        if v is not None:
            cells.append("%s %s" % (label, f % v))
    return "%-62s %s" % (name, "  ".join(cells))


def markdown(label_results):
    labels = list(label_results)
    names = list(label_results[labels[0]])
    used = [c for c in COLS if any(label_results[l].get(n, {}).get(c[0]) is not None
                                   for l in labels for n in names) and c[0] != "errors"]
    head = "| scenario | " + " | ".join(c[1] if len(labels) == 1 else "%s %s" % (l, c[1])
                                          for c in used for l in labels) + " |"
    lines = [head, "|---|" + "---:|" * (len(used) * len(labels))]
    for n in names:
        cells = []
        for c in used:
            for l in labels:
                v = label_results[l].get(n, {}).get(c[0])
                cells.append(c[2] % v if v is not None else "")
        lines.append("| %s | %s |" % (n, " | ".join(cells)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", default=[], help="LABEL=PATH of an ec2bridge binary (repeatable)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=5, help="seconds per load scenario")
    ap.add_argument("--only", default="small,large,paging,startup")
    ap.add_argument("--json", help="write every run's numbers here")
    ap.add_argument("--floor", default=FLOOR["path"], help="the bench_floor relay (bench/floor.rs)")
    a = ap.parse_args()
    FLOOR["path"] = a.floor
    if not shutil.which("wrk"):
        sys.exit("wrk not found (bench/run installs it: apt-get install -y wrk)")
    bins = [b.split("=", 1) if "=" in b else ["gateway", b] for b in a.bin] or \
        [["gateway", os.path.join(REPO, "target", "release", "ec2bridge")]]
    groups = [g for g in a.only.split(",") if g]
    for g in groups:
        if g not in GROUPS:
            sys.exit("unknown group %s (have %s)" % (g, ", ".join(GROUPS)))
    print("ec2bridge bench: %d cores, %s, load average %s, %d s per scenario, wrk 2 threads" % (
        os.cpu_count(), open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()
        if "model name" in open("/proc/cpuinfo").read() else "?", " ".join(open("/proc/loadavg").read().split()[:3]),
        a.seconds))
    runs = {label: [] for label, _ in bins}
    for rnd in range(a.rounds):
        for label, path in bins:
            print("\n== round %d, %s (%s)" % (rnd + 1, label, path), flush=True)
            results = {}

            def report(name, r, results=results):
                results[name] = r
                print(fmt_row(name, r), flush=True)
            for g in groups:
                with tempfile.TemporaryDirectory(prefix="ec2bridge-bench-") as tmp:
                    GROUPS[g](path, tmp, a.seconds, report)
            runs[label].append(results)
    medians = {}
    for label in runs:
        names = list(runs[label][0])
        medians[label] = {n: median_dict([r[n] for r in runs[label] if n in r]) for n in names}
    if a.rounds > 1 or len(bins) > 1:
        for label in medians:
            print("\n== %s: medians of %d round(s)\n" % (label, a.rounds))
            print(markdown({label: medians[label]}))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": runs, "medians": medians}, f, indent=1)


if __name__ == "__main__":
    main()
