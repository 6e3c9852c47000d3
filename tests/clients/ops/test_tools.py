"""The operator guide's tool examples (examples/tools/) run against a gateway: the AWS CLI through
AWS_ENDPOINT_URL_EC2, Terraform's AWS provider and Ansible's amazon.aws. A tool that is not
installed here is skipped, and the skip says which tool and how to provide it."""
import glob
import os
import pathlib
import shutil
import subprocess

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


def test_aws_cli_example(gw):
    if not shutil.which("aws"):
        pytest.skip("SKIPPED: the AWS CLI (`aws`) is not installed (tests/clients/requirements.txt installs it)")
    env = creds_env(gw)
    env["EC2BRIDGE_ENDPOINT"] = gw.endpoint
    r = subprocess.run(["sh", str(TOOLS / "aws-cli.sh")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert gw.info["region"] in lines[0] or lines[0].strip(), r.stdout
    assert "aws-cli-example" in r.stdout


def find_aws_provider():
    pats = [os.path.expanduser("~/.terraform.d/plugins/**/terraform-provider-aws*"),
            "/usr/share/terraform/plugins/**/terraform-provider-aws*",
            "/usr/local/share/terraform/plugins/**/terraform-provider-aws*"]
    for p in pats:
        hits = glob.glob(p, recursive=True)
        if hits:
            return hits[0]
    return None


def test_terraform_example(gw, tmp_path):
    tf = shutil.which("terraform")
    if not tf:
        pytest.skip("SKIPPED: terraform is not installed")
    provider = find_aws_provider()
    if not provider:
        pytest.skip("SKIPPED: terraform is installed but the hashicorp/aws provider is not on this machine "
                    "(no terraform-provider-aws under ~/.terraform.d/plugins or /usr/share/terraform/plugins) "
                    "and its registry cannot be reached from here")
    work = tmp_path / "tf"
    shutil.copytree(TOOLS / "terraform", work)
    env = creds_env(gw)
    env["TF_IN_AUTOMATION"] = "1"
    run = lambda *a: subprocess.run([tf, *a], cwd=work, capture_output=True, text=True, env=env, timeout=600)
    r = run("init", "-input=false")
    assert r.returncode == 0, r.stderr
    r = run("apply", "-auto-approve", "-input=false", "-var", "endpoint=" + gw.endpoint)
    assert r.returncode == 0, r.stderr
    assert "key_fingerprint" in r.stdout
    r = run("destroy", "-auto-approve", "-input=false", "-var", "endpoint=" + gw.endpoint)
    assert r.returncode == 0, r.stderr


def find_ansible():
    for cand in [os.environ.get("EC2BRIDGE_ANSIBLE_PLAYBOOK"), shutil.which("ansible-playbook")]:
        if cand and os.path.exists(cand):
            return cand
    return None


def test_ansible_example(gw, tmp_path):
    ap = find_ansible()
    if not ap:
        pytest.skip("SKIPPED: ansible-playbook is not installed (pip install ansible boto3, then put it on PATH "
                    "or set EC2BRIDGE_ANSIBLE_PLAYBOOK)")
    python = str(pathlib.Path(ap).resolve().parent / "python")
    env = creds_env(gw)
    env.update(ANSIBLE_LOCAL_TEMP=str(tmp_path), ANSIBLE_HOME=str(tmp_path), ANSIBLE_NOCOLOR="1")
    r = subprocess.run([ap, "-i", "localhost,", str(TOOLS / "ansible" / "playbook.yml"),
                        "-e", "ec2_endpoint=" + gw.endpoint, "-e", "ansible_python_interpreter=" + python],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "key=ansible-example" in r.stdout and "zones=" in r.stdout
