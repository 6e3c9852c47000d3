#!/bin/sh
# AWS CLI (v2, and v1 since 1.29) against ec2bridge: the endpoint from AWS_ENDPOINT_URL_EC2, so no
# --endpoint-url on every command; AWS_CA_BUNDLE when the gateway's certificate is private.
#   EC2BRIDGE_ENDPOINT=https://ec2.example.org:7443 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
#     examples/tools/aws-cli.sh
set -eu
export AWS_ENDPOINT_URL_EC2="${EC2BRIDGE_ENDPOINT:?set EC2BRIDGE_ENDPOINT}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
aws ec2 describe-availability-zones --query 'AvailabilityZones[].ZoneName' --output text
aws ec2 create-key-pair --key-name aws-cli-example --query KeyFingerprint --output text
aws ec2 describe-key-pairs --key-names aws-cli-example --query 'KeyPairs[].KeyName' --output text
aws ec2 delete-key-pair --key-name aws-cli-example
