"""Fixtures for the SOAP suite: the real ec2bridge binary with its built-in simulator and a
fresh SQLite store, certificates made with openssl, users registered with
scripts/cloudstack-aws-api-register, and zeep clients signing with xmlsec (BinarySignature)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))


def find_wsdl():
    """The AWS EC2 WSDL (2013-10-01): test data kept beside these tests (the gateway never reads
    it); EC2BRIDGE_WSDL can point elsewhere."""
    cands = [os.environ.get("EC2BRIDGE_WSDL"), str(HERE / "ec2-2013-10-01.wsdl")]
    for c in cands:
        if c and os.path.exists(c):
            return c
    return None


@pytest.fixture(scope="session")
def wsdl():
    w = find_wsdl()
    if not w:
        pytest.skip("EC2 WSDL not found (set EC2BRIDGE_WSDL to ec2-2013-10-01.wsdl)")
    return w


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="ec2bridge-soap-")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def gateway(workdir):
    """ec2bridge serve with the simulator; yields the ready-file info plus the log path."""
    binary = os.environ.get("EC2BRIDGE_BIN", str(REPO / "target" / "debug" / "ec2bridge"))
    if not os.path.exists(binary):
        pytest.skip("ec2bridge binary not built (cargo build)")
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not found")
    ready = workdir / "ready.json"
    # stdout is the start-up banner (it prints the simulator's demo keys on purpose); the log
    # proper is stderr.
    log = open(workdir / "gateway.log", "wb")
    banner = open(workdir / "banner.txt", "wb")
    env = dict(os.environ)
    env.update({
        "EC2BRIDGE_STORE_URL": "sqlite://%s" % (workdir / "store.db"),
        "EC2BRIDGE_STORE_KEY_FILE": str(workdir / "store.key"),
        "EC2BRIDGE_LOG": "info",
        # Admin listener on a free port (several gateways run at once); the suites run faster
        # than any user, so the per-user rate limit is raised (tests/clients/ops tests it).
        "EC2BRIDGE_ADMIN_LISTEN": "127.0.0.1:0",
        "EC2BRIDGE_LIMITS_REQUESTS_PER_SEC": "100000",
        "EC2BRIDGE_LIMITS_BURST": "100000",
    })
    env.pop("EC2BRIDGE_CONFIG", None)
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--ready-file", str(ready), "--sim-fast"],
        stdout=banner, stderr=log, env=env, cwd=str(workdir))
    deadline = time.time() + 60
    while not ready.exists():
        if proc.poll() is not None:
            log.close()
            pytest.fail("gateway exited: %s" % (workdir / "gateway.log").read_text()[-2000:])
        if time.time() > deadline:
            proc.terminate()
            pytest.fail("gateway did not become ready")
        time.sleep(0.1)
    time.sleep(0.05)
    info = json.loads(ready.read_text())
    info["log"] = workdir / "gateway.log"
    yield info
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    banner.close()


def make_identity(workdir, name):
    key, crt = workdir / ("%s.key" % name), workdir / ("%s.crt" % name)
    if not key.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=%s" % name, "-keyout", str(key), "-out", str(crt)],
                       check=True, capture_output=True)
    return str(key), str(crt)


def register(gateway, user, crt):
    """The registration script, exactly as a user runs it."""
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "cloudstack-aws-api-register"),
         "-a", user["access_key"], "-s", user["secret_key"], "-c", crt, "-u", gateway["endpoint"] + "/awsapi"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "User registration is successful!" in out.stdout
    return out


@pytest.fixture(scope="session")
def users(gateway, workdir):
    """Two non-admin simulator users (A, B), each registered with its own certificate, and a
    third certificate nobody registered."""
    plain = [u for u in gateway["users"] if not u["is_admin"]] or gateway["users"]
    if len(plain) < 2:
        plain = gateway["users"]
    a, b = plain[0], plain[1 % len(plain)]
    out = {}
    for name, u in (("A", a), ("B", b)):
        key, crt = make_identity(workdir, "user" + name)
        register(gateway, u, crt)
        out[name] = dict(u, key=key, cert=crt)
    key, crt = make_identity(workdir, "stranger")
    out["X"] = {"key": key, "cert": crt}
    return out


def soap_client(wsdl, gateway, key, cert, **kw):
    from zeep import Client
    from zeep_sign import wsse
    c = Client(wsdl, wsse=wsse(key, cert, **kw))
    svc = c.create_service("{http://ec2.amazonaws.com/doc/2013-10-01/}AmazonEC2Binding", gateway["endpoint"] + "/awsapi")
    return c, svc
