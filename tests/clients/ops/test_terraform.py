"""Terraform's AWS provider against the gateway (issue 10): a typical VPC stack (VPC, two subnets,
internet gateway, a public route table with a default route, a private one through a NAT gateway
with an Elastic IP, associations, two security groups, one with ingress from the other, an
instance with a public address found through the aws_ami data source, tags) is applied; a second
plan shows no drift; destroy removes all of it, and the gateway's Describe calls show nothing left.
Needs `terraform` on PATH and the hashicorp/aws provider in a filesystem mirror
(EC2BRIDGE_TF_PLUGINS, default /opt/tf-plugins); skips clearly without them."""
import os
import pathlib
import shutil
import subprocess

import boto3
import pytest

from ops_support import Gateway, Sim
from harness import supported_platforms

MIRROR = pathlib.Path(os.environ.get("EC2BRIDGE_TF_PLUGINS", "/opt/tf-plugins"))
PROVIDERS = sorted(MIRROR.glob("registry.terraform.io/hashicorp/aws/*/linux_amd64/terraform-provider-aws*"))
pytestmark = pytest.mark.skipif(not shutil.which("terraform") or not PROVIDERS,
                                reason="terraform not on PATH or no hashicorp/aws provider under %s "
                                       "(set EC2BRIDGE_TF_PLUGINS to a filesystem mirror)" % MIRROR)

# The provider pointed at the gateway (shared with test_terraform_data_sources.py).
PROVIDER = '''
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "%(version)s" }
  }
}
provider "aws" {
  region                      = "us-east-1"
  access_key                  = "%(access)s"
  secret_key                  = "%(secret)s"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    ec2 = "%(endpoint)s"
    sts = "%(endpoint)s"
  }
}
'''

STACK = PROVIDER + '''resource "aws_vpc" "main" {
  cidr_block = "10.70.0.0/16"
  tags       = { Name = "tf-main" }
}
resource "aws_subnet" "public" {
  vpc_id     = aws_vpc.main.id
  cidr_block = "10.70.1.0/24"
  tags       = { Name = "tf-public" }
}
resource "aws_subnet" "private" {
  vpc_id     = aws_vpc.main.id
  cidr_block = "10.70.2.0/24"
}
resource "aws_internet_gateway" "gw" {
  vpc_id = aws_vpc.main.id
}
resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.gw.id
  }
}
resource "aws_route_table_association" "public" {
  subnet_id      = aws_subnet.public.id
  route_table_id = aws_route_table.public.id
}
resource "aws_eip" "nat" {
  domain     = "vpc"
  depends_on = [aws_internet_gateway.gw]
}
resource "aws_nat_gateway" "nat" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public.id
  depends_on    = [aws_internet_gateway.gw]
}
resource "aws_route_table" "private" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.nat.id
  }
}
resource "aws_route_table_association" "private" {
  subnet_id      = aws_subnet.private.id
  route_table_id = aws_route_table.private.id
}
resource "aws_security_group" "web" {
  name   = "tf-web"
  vpc_id = aws_vpc.main.id
  ingress {
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
resource "aws_security_group" "app" {
  name   = "tf-app"
  vpc_id = aws_vpc.main.id
  ingress {
    from_port       = 8080
    to_port         = 8080
    protocol        = "tcp"
    security_groups = [aws_security_group.web.id]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["self", "amazon"]
  filter {
    name   = "name"
    values = ["Ubuntu*"]
  }
}
resource "aws_instance" "web" {
  ami                         = data.aws_ami.ubuntu.id
  instance_type               = "t2.micro"
  subnet_id                   = aws_subnet.public.id
  vpc_security_group_ids      = [aws_security_group.web.id]
  associate_public_ip_address = true
  tags                        = { Name = "tf-web" }
}
output "vpc_id" { value = aws_vpc.main.id }
output "public_ip" { value = aws_instance.web.public_ip }
'''


def tf(workdir, env, *args, timeout=600):
    r = subprocess.run(["terraform", *args, "-no-color"], cwd=workdir, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def terraform_stack(workdir, procs, stack):
    """A simulator, a gateway configured against it and a Terraform directory holding `stack` (with
    PROVIDER pointed at the gateway as alice), initialised from the provider mirror: (alice's boto3
    client, the directory, the environment for `tf`). Skips without a VPC zone."""
    sim = Sim(workdir).start()
    procs.append(sim)
    admin = sim.admin()
    cfg = ('[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "%s"\n'
           % (sim.endpoint, admin["apikey"], admin["secretkey"]))
    gw = Gateway(workdir, cfg)
    procs.append(gw)
    alice = sim.user()
    ec2 = boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1", aws_access_key_id=alice["apikey"],
                       aws_secret_access_key=alice["secretkey"])
    if "VPC" not in supported_platforms(ec2.describe_account_attributes):
        pytest.skip("the simulator's region has no VPC zone")
    version = PROVIDERS[-1].parent.parent.name
    tfdir = pathlib.Path(workdir) / "tf"
    tfdir.mkdir()
    (tfdir / "cli.tfrc").write_text(
        'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
        '  direct { exclude = ["registry.terraform.io/hashicorp/aws"] }\n}\n' % MIRROR)
    (tfdir / "main.tf").write_text(stack % {"version": version, "access": alice["apikey"],
                                            "secret": alice["secretkey"], "endpoint": gw.endpoint})
    env = dict(os.environ, TF_CLI_CONFIG_FILE=str(tfdir / "cli.tfrc"), TF_IN_AUTOMATION="1",
               CHECKPOINT_DISABLE="1", HOME=str(tfdir))
    rc, out = tf(tfdir, env, "init")
    assert rc == 0, out
    return ec2, tfdir, env


def test_terraform_vpc_stack_apply_plan_destroy(workdir, procs):
    ec2, tfdir, env = terraform_stack(workdir, procs, STACK)
    rc, out = tf(tfdir, env, "apply", "-auto-approve")
    assert rc == 0 and "Apply complete! Resources: 13 added" in out, out
    rc, out = tf(tfdir, env, "output", "-raw", "vpc_id")
    vpc = out.strip()
    assert rc == 0 and vpc.startswith("vpc-")
    # What Terraform made is what the gateway shows.
    assert len(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]) == 2
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NatGateways"]
    assert [n["State"] for n in nats] == ["available"]
    inst = [i for r in ec2.describe_instances(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Reservations"]
            for i in r["Instances"]]
    assert len(inst) == 1 and inst[0]["State"]["Name"] == "running" and inst[0].get("PublicIpAddress")
    # No drift: a second plan has nothing to do.
    rc, out = tf(tfdir, env, "plan", "-detailed-exitcode")
    assert rc == 0, out
    rc, out = tf(tfdir, env, "destroy", "-auto-approve")
    assert rc == 0 and "Destroy complete! Resources: 13 destroyed" in out, out
    assert ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Vpcs"] == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert [n["State"] for n in ec2.describe_nat_gateways()["NatGateways"]] in ([], ["deleted"])
    left = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert all(s == "terminated" for s in left)
