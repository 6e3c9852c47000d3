"""HTTPS: `ec2bridge certs self-signed` makes a certificate, the gateway serves EC2 over TLS on its
own listener, boto3 (verify=) and the AWS CLI (--ca-bundle) trust it, a client that does not
trust it is refused, and a renewed certificate is picked up on SIGHUP without a restart."""
import hashlib
import os
import signal
import ssl
import subprocess
import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import SSLError

from ops_support import BIN, Gateway


def make_cert(workdir, force=False):
    args = [BIN, "certs", "self-signed", "--dir", str(workdir / "certs")] + (["--force"] if force else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    key = workdir / "certs" / "key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    return workdir / "certs" / "cert.pem", key


def fingerprint(host, port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(__import__("socket").create_connection((host, port)), server_hostname=host) as s:
        return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


@pytest.fixture
def tls_gateway(workdir, procs):
    cert, key = make_cert(workdir)
    cfg = '[server.tls]\nlisten = "127.0.0.1:0"\ncert = "%s"\nkey = "%s"\n' % (cert, key)
    gw = Gateway(workdir, cfg, args=["--sim-fast"])
    procs.append(gw)
    assert gw.info["https_endpoint"].startswith("https://127.0.0.1:"), gw.info
    return gw, cert


def test_boto3_over_https_with_verify(tls_gateway):
    gw, cert = tls_gateway
    user = next(u for u in gw.info["users"] if not u["is_admin"])
    kw = dict(endpoint_url=gw.info["https_endpoint"], region_name="us-east-1",
              aws_access_key_id=user["access_key"], aws_secret_access_key=user["secret_key"],
              config=botocore.config.Config(retries={"total_max_attempts": 1}))
    zones = boto3.client("ec2", verify=str(cert), **kw).describe_availability_zones()["AvailabilityZones"]
    assert zones
    # Without trusting the certificate, the client refuses the connection.
    with pytest.raises(SSLError):
        boto3.client("ec2", **kw).describe_availability_zones()
    # Plain HTTP still answers on its own listener.
    assert gw.endpoint.startswith("http://")


def test_aws_cli_over_https_with_ca_bundle(tls_gateway):
    gw, cert = tls_gateway
    user = next(u for u in gw.info["users"] if not u["is_admin"])
    env = dict(os.environ, AWS_ACCESS_KEY_ID=user["access_key"], AWS_SECRET_ACCESS_KEY=user["secret_key"],
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_EC2=gw.info["https_endpoint"],
               AWS_MAX_ATTEMPTS="1")
    r = subprocess.run(["aws", "--ca-bundle", str(cert), "ec2", "describe-availability-zones", "--output", "json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "AvailabilityZones" in r.stdout


def test_certificate_reload_on_sighup(tls_gateway, workdir):
    gw, cert = tls_gateway
    host, port = gw.info["https_endpoint"][len("https://"):].rsplit(":", 1)
    before = fingerprint(host, int(port))
    make_cert(workdir, force=True)
    gw.proc.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while fingerprint(host, int(port)) == before:
        assert time.time() < deadline, "certificate not reloaded:\n" + gw.log()
        time.sleep(0.2)
    assert "TLS certificate reloaded" in gw.log()
    # A broken renewal keeps the current certificate and says why.
    now = fingerprint(host, int(port))
    (workdir / "certs" / "key.pem").write_text("garbage")
    gw.proc.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert fingerprint(host, int(port)) == now
    assert "TLS certificate reload failed" in gw.log()
