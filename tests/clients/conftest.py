"""Shared harness for the real-client suites: one ec2bridge gateway (the real binary, built-in
simulator in fast mode, a fresh SQLite store in a temporary directory) for the whole session, and
helpers that drive it with real clients.

Fixtures:
- `gateway`: dict {endpoint, region, users, cloudstack_endpoint, workdir, log}; `users` are the
  simulator's demo users from the ready file ({account, access_key, secret_key, is_admin}).
- `user`: the first non-admin demo user.
- `boto3_client(user=None, endpoint=None, region=None, secret=None, service="ec2")`: factory.
- `aws_cli(*args, user=None, ...)`: runs the venv's `aws`, returns (rc, json-or-stdout, stderr).
- `raw_sigv2(params, user=None, ...)`: a request signed with SigV2 exactly as the protocol says,
  for what clients refuse to send (old timestamps, HmacSHA1, missing Action, ...).
- `gateway_log()`: the gateway's stderr log so far; `secrets_used`: the set of every secret
  signed with (good and bad), for the log scan.

The binary comes from $EC2BRIDGE_BIN (default <repo>/target/debug/ec2bridge). A failing test gets
the tail of the gateway log attached to its report.
"""
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from harness import iso8601, sigv2_encode, sigv2_sign, sigv2_string_to_sign  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("EC2BRIDGE_BIN", str(REPO / "target" / "debug" / "ec2bridge"))

# Keep the developer's AWS configuration (profiles, endpoints, retry settings) out of the tests.
for _k in list(os.environ):
    if _k.startswith("AWS_"):
        del os.environ[_k]
_AWS_HOME = tempfile.mkdtemp(prefix="ec2bridge-awshome-")
os.environ["AWS_CONFIG_FILE"] = os.path.join(_AWS_HOME, "config")
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(_AWS_HOME, "credentials")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

# Every secret a test signs with (good or bad); the log scan checks none reached the log.
SECRETS_USED = set()
_GATEWAY = {}


def _tail(path, limit=6000):
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    # Only for tests running against this gateway (a suite may override `gateway` with its own).
    gw = getattr(item, "funcargs", {}).get("gateway")
    if rep.failed and "log" in _GATEWAY and isinstance(gw, dict) and gw.get("log") == _GATEWAY["log"]:
        rep.sections.append(("ec2bridge gateway log (tail)", _tail(_GATEWAY["log"])))


@pytest.fixture(scope="session")
def gateway():
    """`ec2bridge serve --sim-fast` on a free loopback port with a temporary store."""
    if not os.path.exists(BIN):
        pytest.fail("ec2bridge binary not found at %s (cargo build, or set EC2BRIDGE_BIN)" % BIN)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="ec2bridge-clients-"))
    ready = workdir / "ready.json"
    log_path = workdir / "gateway.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EC2BRIDGE_")}
    env.update({
        # A store of its own: never the developer's default one.
        "EC2BRIDGE_STORE_URL": "sqlite://%s" % (workdir / "store.db"),
        "EC2BRIDGE_STORE_KEY_FILE": str(workdir / "store.key"),
        # Demo keys in memory only; nothing written under $HOME.
        "EC2BRIDGE_SIMULATOR_STATE_DIR": "",
        "XDG_DATA_HOME": str(workdir / "data"),
        # Verbose, so that the secret scan covers as much logging as possible.
        "EC2BRIDGE_LOG": os.environ.get("EC2BRIDGE_TEST_LOG", "debug"),
        # Admin listener on a free port (several gateways run at once); the suites run faster
        # than any user, so the per-user rate limit is raised (tests/clients/ops tests it).
        "EC2BRIDGE_ADMIN_LISTEN": "127.0.0.1:0",
        "EC2BRIDGE_LIMITS_REQUESTS_PER_SEC": "100000",
        "EC2BRIDGE_LIMITS_BURST": "100000",
        "RUST_BACKTRACE": "0",
        "NO_COLOR": "1",
    })
    log = open(log_path, "wb")
    # stdout is the start-up banner, which prints the demo keys on purpose; stderr is the log.
    banner = open(workdir / "banner.txt", "wb")
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", "127.0.0.1:0", "--sim-fast", "--ready-file", str(ready)],
        stdout=banner, stderr=log, env=env, cwd=str(workdir))
    deadline = time.time() + 90
    info = None
    while info is None:
        if proc.poll() is not None:
            log.close()
            pytest.fail("ec2bridge serve exited with %s before it was ready:\n%s" % (proc.returncode, _tail(log_path)))
        if time.time() > deadline:
            proc.kill()
            pytest.fail("ec2bridge serve not ready after 90 s:\n%s" % _tail(log_path))
        try:
            info = json.loads(ready.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    info.update(workdir=workdir, log=log_path, pid=proc.pid)
    _GATEWAY.update(info)
    for u in info["users"]:
        SECRETS_USED.add(u["secret_key"])
    try:
        yield info
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
        banner.close()
        _GATEWAY.clear()
        if rc not in (0, -15):
            # The gateway did not stop cleanly: show why before the directory goes away.
            sys.stderr.write("ec2bridge serve exited with %s; log tail:\n%s\n" % (rc, _tail(log_path)))
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def user(gateway):
    plain = [u for u in gateway["users"] if not u["is_admin"]]
    return plain[0] if plain else gateway["users"][0]


@pytest.fixture(scope="session")
def gateway_log(gateway):
    def read():
        return pathlib.Path(gateway["log"]).read_text(errors="replace")
    return read


@pytest.fixture(scope="session")
def secrets_used():
    """Every secret signed with so far (the fixtures add theirs); add others with `.add`. The
    log scan at the end of a suite checks that none of them reached the gateway log."""
    return SECRETS_USED


@pytest.fixture(scope="session")
def boto3_client(gateway, user):
    import boto3
    from botocore.config import Config

    def make(u=None, endpoint=None, region=None, secret=None, service="ec2", **config):
        u = u or user
        secret = secret if secret is not None else u["secret_key"]
        SECRETS_USED.add(secret)
        cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10,
                     read_timeout=120, **config)
        session = boto3.session.Session(aws_access_key_id=u["access_key"], aws_secret_access_key=secret,
                                        region_name=region or gateway["region"])
        return session.client(service, endpoint_url=endpoint or gateway["endpoint"], config=cfg)
    return make


def _aws_binary():
    cand = pathlib.Path(sys.prefix) / "bin" / "aws"
    if cand.exists():
        return str(cand)
    found = shutil.which("aws")
    if not found:
        pytest.fail("the AWS CLI (aws) is not installed in the test venv")
    return found


@pytest.fixture(scope="session")
def aws_cli(gateway, user):
    """aws_cli("ec2", "describe-regions", user=..., secret=..., endpoint=..., region=...)
    -> (returncode, parsed JSON or raw stdout, stderr)."""
    binary = _aws_binary()

    default_user = user

    def run(*args, user=None, secret=None, endpoint=None, region=None, timeout=180):
        u = user or default_user
        secret = secret if secret is not None else u["secret_key"]
        SECRETS_USED.add(secret)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ACCESS_KEY_ID": u["access_key"],
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": region or gateway["region"],
            "AWS_CONFIG_FILE": os.environ["AWS_CONFIG_FILE"],
            "AWS_SHARED_CREDENTIALS_FILE": os.environ["AWS_SHARED_CREDENTIALS_FILE"],
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_PAGER": "",
        })
        cmd = [binary, "--endpoint-url", endpoint or gateway["endpoint"], "--output", "json"] + list(args)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        out = p.stdout
        if out.strip():
            try:
                out = json.loads(out)
            except ValueError:
                pass
        return p.returncode, out, p.stderr

    return run


@pytest.fixture(scope="session")
def raw_sigv2(gateway, user):
    """raw_sigv2({"Action": "DescribeRegions", ...}, user=None, method="GET", timestamp=None,
    expires=None, signature_method="HmacSHA256", path="/", secret=None, version="2016-11-15",
    access_key=None) -> requests.Response.

    `timestamp`/`expires`: datetime or string; by default Timestamp=now. Version is added unless
    the params carry one (pass version=None to leave it out)."""
    http = requests.Session()
    default_user = user
    base = gateway["endpoint"]
    host = urllib.parse.urlsplit(base).netloc

    def call(params, user=None, method="GET", timestamp=None, expires=None, signature_method="HmacSHA256",
             path="/", secret=None, version="2016-11-15", access_key=None):
        u = user or default_user
        secret = secret if secret is not None else u["secret_key"]
        SECRETS_USED.add(secret)
        p = dict(params)
        if version is not None:
            p.setdefault("Version", version)
        p.update({"AWSAccessKeyId": access_key or u["access_key"], "SignatureVersion": "2",
                  "SignatureMethod": signature_method})
        if expires is not None:
            p["Expires"] = expires if isinstance(expires, str) else iso8601(expires)
        else:
            t = timestamp if timestamp is not None else datetime.datetime.now(datetime.timezone.utc)
            p["Timestamp"] = t if isinstance(t, str) else iso8601(t)
        p["Signature"] = sigv2_sign(secret, sigv2_string_to_sign(method, host, path, p), signature_method)
        body = "&".join("%s=%s" % (sigv2_encode(k), sigv2_encode(v)) for k, v in p.items())
        if method.upper() == "GET":
            return http.get(base + path + "?" + body, timeout=120)
        return http.post(base + path, data=body.encode("ascii"), timeout=120,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    return call


