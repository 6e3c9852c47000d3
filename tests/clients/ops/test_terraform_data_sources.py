"""Terraform's AWS provider data sources against the gateway (issue 12 item 12): each finds what a
small stack made through the filters it sends (aws_ami's filter blocks, aws_availability_zones'
opt-in-status, aws_vpc's cidr/isDefault/tag:Name, aws_subnet's vpc-id/cidrBlock/availabilityZone/
availabilityZoneId, aws_subnets, aws_security_group(s) with group-name/vpc-id/ip-permission.*,
aws_route_table's association.subnet-id, aws_internet_gateway's attachment.vpc-id,
aws_instance(s) with instance-state-name/vpc-id/network-interface.subnet-id,
aws_network_interface's attachment.instance-id, aws_eip's instance-id/domain); the outputs are
compared with what boto3 sees. Needs `terraform` and the hashicorp/aws provider mirror (as
test_terraform.py); skips clearly without them."""
import json

from test_terraform import PROVIDER, pytestmark, terraform_stack, tf  # noqa: F401 - the same skip

STACK = PROVIDER + '''resource "aws_vpc" "main" {
  cidr_block = "10.71.0.0/16"
  tags       = { Name = "ds-main" }
}
resource "aws_subnet" "a" {
  vpc_id     = aws_vpc.main.id
  cidr_block = "10.71.1.0/24"
}
resource "aws_internet_gateway" "gw" {
  vpc_id = aws_vpc.main.id
}
resource "aws_route_table" "rt" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.gw.id
  }
}
resource "aws_route_table_association" "a" {
  subnet_id      = aws_subnet.a.id
  route_table_id = aws_route_table.rt.id
}
resource "aws_security_group" "web" {
  name   = "ds-web"
  vpc_id = aws_vpc.main.id
  ingress {
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["192.0.2.0/24"]
  }
}
data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["self", "amazon"]
  filter {
    name   = "name"
    values = ["Ubuntu*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
  filter {
    name   = "root-device-type"
    values = ["ebs"]
  }
  filter {
    name   = "platform-details"
    values = ["Linux/UNIX"]
  }
  filter {
    name   = "state"
    values = ["available"]
  }
}
resource "aws_instance" "web" {
  ami                    = data.aws_ami.ubuntu.id
  instance_type          = "t2.micro"
  subnet_id              = aws_subnet.a.id
  vpc_security_group_ids = [aws_security_group.web.id]
}
resource "aws_eip" "web" {
  domain     = "vpc"
  instance   = aws_instance.web.id
  depends_on = [aws_internet_gateway.gw]
}

data "aws_availability_zones" "az" {
  state = "available"
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}
data "aws_vpc" "found" {
  cidr_block = "10.71.0.0/16"
  default    = false
  filter {
    name   = "tag:Name"
    values = ["ds-*"]
  }
  depends_on = [aws_vpc.main]
}
data "aws_subnet" "found" {
  vpc_id               = aws_vpc.main.id
  cidr_block           = "10.71.1.0/24"
  availability_zone    = aws_subnet.a.availability_zone
  availability_zone_id = aws_subnet.a.availability_zone_id
  state                = "available"
  depends_on           = [aws_subnet.a]
}
data "aws_subnets" "found" {
  filter {
    name   = "vpc-id"
    values = [aws_vpc.main.id]
  }
  depends_on = [aws_subnet.a]
}
data "aws_security_group" "found" {
  name       = "ds-web"
  vpc_id     = aws_vpc.main.id
  depends_on = [aws_security_group.web]
}
data "aws_security_groups" "found" {
  filter {
    name   = "ip-permission.from-port"
    values = ["443"]
  }
  filter {
    name   = "ip-permission.cidr"
    values = ["192.0.2.*"]
  }
  filter {
    name   = "vpc-id"
    values = [aws_vpc.main.id]
  }
  depends_on = [aws_security_group.web]
}
data "aws_route_table" "found" {
  subnet_id  = aws_subnet.a.id
  depends_on = [aws_route_table_association.a]
}
data "aws_internet_gateway" "found" {
  filter {
    name   = "attachment.vpc-id"
    values = [aws_vpc.main.id]
  }
  depends_on = [aws_internet_gateway.gw]
}
data "aws_instances" "found" {
  instance_state_names = ["running", "pending"]
  filter {
    name   = "vpc-id"
    values = [aws_vpc.main.id]
  }
  depends_on = [aws_instance.web]
}
data "aws_instance" "found" {
  filter {
    name   = "network-interface.subnet-id"
    values = [aws_subnet.a.id]
  }
  filter {
    name   = "instance-state-name"
    values = ["running"]
  }
  depends_on = [aws_eip.web]
}
data "aws_network_interface" "found" {
  filter {
    name   = "attachment.instance-id"
    values = [aws_instance.web.id]
  }
  depends_on = [aws_eip.web]
}
data "aws_eip" "found" {
  filter {
    name   = "instance-id"
    values = [aws_instance.web.id]
  }
  filter {
    name   = "domain"
    values = ["vpc"]
  }
  depends_on = [aws_eip.web]
}
output "found" {
  value = {
    ami            = data.aws_ami.ubuntu.id
    zones          = data.aws_availability_zones.az.names
    vpc            = data.aws_vpc.found.id
    subnet         = data.aws_subnet.found.id
    subnets        = data.aws_subnets.found.ids
    sg             = data.aws_security_group.found.id
    sgs            = data.aws_security_groups.found.ids
    route_table    = data.aws_route_table.found.id
    igw            = data.aws_internet_gateway.found.id
    instances      = data.aws_instances.found.ids
    instance       = data.aws_instance.found.id
    eni            = data.aws_network_interface.found.id
    eni_public_ip  = data.aws_network_interface.found.association[0].public_ip
    eip            = data.aws_eip.found.id
    eip_public_ip  = data.aws_eip.found.public_ip
  }
}
output "made" {
  value = {
    vpc = aws_vpc.main.id, subnet = aws_subnet.a.id, sg = aws_security_group.web.id,
    route_table = aws_route_table.rt.id, igw = aws_internet_gateway.gw.id, instance = aws_instance.web.id,
    eip = aws_eip.web.id, eip_public_ip = aws_eip.web.public_ip
  }
}
'''


def test_terraform_data_sources_find_by_filters(workdir, procs):
    ec2, tfdir, env = terraform_stack(workdir, procs, STACK)
    try:
        rc, out = tf(tfdir, env, "apply", "-auto-approve")
        assert rc == 0, out
        rc, out = tf(tfdir, env, "output", "-json")
        assert rc == 0, out
        outputs = json.loads(out)
        found, made = outputs["found"]["value"], outputs["made"]["value"]
        for k in ("vpc", "subnet", "sg", "route_table", "igw", "instance", "eip", "eip_public_ip"):
            assert found[k] == made[k], (k, found, made)
        assert found["subnets"] == [made["subnet"]]
        assert found["sgs"] == [made["sg"]]
        assert found["instances"] == [made["instance"]]
        assert found["eni_public_ip"] == made["eip_public_ip"]
        inst = ec2.describe_instances(InstanceIds=[made["instance"]])["Reservations"][0]["Instances"][0]
        assert found["eni"] == inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
        assert found["ami"] == inst["ImageId"]
        assert found["zones"] == sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"])
    finally:
        rc, out = tf(tfdir, env, "destroy", "-auto-approve")
        assert rc == 0, out
