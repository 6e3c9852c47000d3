# Terraform's AWS provider against ec2bridge. Credentials from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY; the endpoint as a variable:
#   terraform init && terraform apply -var endpoint=https://ec2.example.org:7443
# The skip_* settings stop the provider from calling STS and IAM (which ec2bridge does not serve)
# and from refusing a region name AWS does not have.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

variable "endpoint" { type = string }
variable "region" {
  type    = string
  default = "us-east-1"
}

provider "aws" {
  region = var.region
  endpoints {
    ec2 = var.endpoint
  }
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

data "aws_availability_zones" "all" {}

resource "aws_key_pair" "example" {
  key_name   = "terraform-example"
  public_key = file("${path.module}/example_key.pub")
}

output "zones" { value = data.aws_availability_zones.all.names }
output "key_fingerprint" { value = aws_key_pair.example.fingerprint }
