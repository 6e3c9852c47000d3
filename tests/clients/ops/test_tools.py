"""The operator guide's tool examples (examples/tools/) run against a gateway: the AWS CLI v1 (the client venv's)
and v2 (Debian's `awscli` package, or EC2BRIDGE_AWS_V2) through AWS_ENDPOINT_URL_EC2, Terraform's AWS provider
and Ansible's amazon.aws (from the cached venv scripts/test prepares, or EC2BRIDGE_ANSIBLE_VENV). A tool that
is not installed here is skipped, and the skip says which tool and how to provide it."""
import glob
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from ops_support import REPO, Gateway

TOOLS = REPO / "examples" / "tools"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = Gateway(tmp_path_factory.mktemp("tools"), "", args=["--sim-fast"])
    yield g
    g.stop()


def creds_env(gw):
    u = next(u for u in gw.info["users"] if not u["is_admin"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=u["access_key"], AWS_SECRET_ACCESS_KEY=u["secret_key"],
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    return env


def run_aws_example(gw, bin_dir):
    env = creds_env(gw)
    env["EC2BRIDGE_ENDPOINT"] = gw.endpoint
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    r = subprocess.run(["sh", str(TOOLS / "aws-cli.sh")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().split("\n")
    zones = lines[0].split()
    assert zones and all(z in {"zone1", "zone2", "zone3"} or z for z in zones), r.stdout
    assert lines[2] == "aws-cli-example", r.stdout
    # run-instances answered an id; describe-instances (filtered by tag and state) and terminate name it.
    assert re.fullmatch(r"i-[0-9a-f]{17}", lines[3]) and lines[4] == lines[3], r.stdout
    return r


def cli_version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    m = re.match(r"aws-cli/(\d+)\.(\d+)\.(\d+)", (out.stdout or out.stderr).strip())
    return tuple(int(x) for x in m.groups()) if m else None


def test_aws_cli_v1_example(gw):
    aws = pathlib.Path(sys.executable).parent / "aws"
    if not aws.exists():
        pytest.skip("SKIPPED: the AWS CLI v1 is not in the client venv (tests/clients/requirements.txt installs it)")
    v = cli_version(str(aws))
    assert v and v[0] == 1 and v >= (1, 29, 0), v  # AWS_ENDPOINT_URL_EC2 needs 1.29
    run_aws_example(gw, aws.parent)


def find_aws_v2():
    cands = [os.environ.get("EC2BRIDGE_AWS_V2"), "/usr/bin/aws", "/usr/local/bin/aws"]
    cands += [str(pathlib.Path(d) / "aws") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for c in cands:
        if c and os.path.exists(c):
            v = cli_version(c)
            if v and v[0] == 2:
                return c, v
    return None, None


def test_aws_cli_v2_example(gw, tmp_path):
    aws, v = find_aws_v2()
    if not aws:
        pytest.skip("SKIPPED: no AWS CLI v2 here (.ci/run installs Debian's `awscli` package; or set "
                    "EC2BRIDGE_AWS_V2 to an `aws` v2 binary)")
    shim = tmp_path / "bin"
    shim.mkdir()
    if v >= (2, 13, 0):
        (shim / "aws").symlink_to(aws)
    else:
        # This v2 predates service endpoint variables (2.13): the same commands, the endpoint given
        # with --endpoint-url. What is tested is then the v2 CLI against the gateway, not its reading
        # of AWS_ENDPOINT_URL_EC2.
        (shim / "aws").write_text('#!/bin/sh\nexec %s --endpoint-url "$AWS_ENDPOINT_URL_EC2" "$@"\n' % aws)
        (shim / "aws").chmod(0o755)
    run_aws_example(gw, shim)


TF_MIRROR = pathlib.Path(os.environ.get("EC2BRIDGE_TF_PLUGINS", "/opt/tf-plugins"))


def test_terraform_example(gw, tmp_path):
    tf = shutil.which("terraform")
    if not tf:
        pytest.skip("SKIPPED: terraform is not installed")
    if not list(TF_MIRROR.glob("registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*")):
        pytest.skip("SKIPPED: terraform is installed but the hashicorp/aws provider is not in the filesystem mirror "
                    "%s (EC2BRIDGE_TF_PLUGINS) and its registry cannot be reached from here" % TF_MIRROR)
    work = tmp_path / "tf"
    shutil.copytree(TOOLS / "terraform", work)
    (tmp_path / "cli.tfrc").write_text(
        'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
        '  direct { exclude = ["registry.terraform.io/hashicorp/aws"] }\n}\n' % TF_MIRROR)
    env = creds_env(gw)
    env.update(TF_IN_AUTOMATION="1", TF_CLI_CONFIG_FILE=str(tmp_path / "cli.tfrc"), CHECKPOINT_DISABLE="1",
               HOME=str(tmp_path))
    run = lambda *a: subprocess.run([tf, *a], cwd=work, capture_output=True, text=True, env=env, timeout=600)
    r = run("init", "-input=false")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("apply", "-auto-approve", "-input=false", "-var", "endpoint=" + gw.endpoint)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "key_fingerprint" in r.stdout
    r = run("destroy", "-auto-approve", "-input=false", "-var", "endpoint=" + gw.endpoint)
    assert r.returncode == 0, r.stdout + r.stderr


ANSIBLE_VENV = os.environ.get("EC2BRIDGE_ANSIBLE_VENV") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ec2bridge", "ansible-venv")


def test_ansible_example(gw, tmp_path):
    ap = pathlib.Path(ANSIBLE_VENV) / "bin" / "ansible-playbook"
    if not ap.exists():
        pytest.skip("SKIPPED: no Ansible venv at %s (scripts/test prepares it from "
                    "tests/clients/ansible-requirements.txt; or python3 -m venv DIR && DIR/bin/pip install -r "
                    "tests/clients/ansible-requirements.txt, then EC2BRIDGE_ANSIBLE_VENV=DIR)" % ANSIBLE_VENV)
    python = str(ap.parent / "python")
    env = creds_env(gw)
    env.update(ANSIBLE_LOCAL_TEMP=str(tmp_path), ANSIBLE_HOME=str(tmp_path), ANSIBLE_NOCOLOR="1",
               PATH=str(ap.parent) + os.pathsep + env.get("PATH", ""))
    r = subprocess.run([str(ap), "-i", "localhost,", str(TOOLS / "ansible" / "playbook.yml"),
                        "-e", "ec2_endpoint=" + gw.endpoint, "-e", "ansible_python_interpreter=" + python],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    m = re.search(r"account=(\d{12}) zones=(\S+)\s+key=ansible-example vpc=(vpc-\w+) subnet=(subnet-\w+) "
                  r"sg=(sg-\w+)\s+instance=(i-\w+) listed=(i-\w+)", r.stdout)
    assert m, r.stdout[-4000:]
    assert m.group(6) == m.group(7)  # ec2_instance_info found the instance ec2_instance made
    assert "failed=0" in r.stdout
