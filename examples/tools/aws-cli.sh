#!/bin/sh
# The AWS CLI against ec2bridge, the endpoint from AWS_ENDPOINT_URL_EC2 (read by v2 since 2.13 and v1
# since 1.29; an older CLI needs `--endpoint-url URL` on each command instead), AWS_CA_BUNDLE when the
# gateway's certificate is private:
#   EC2BRIDGE_ENDPOINT=https://ec2.example.org:7443 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
#     examples/tools/aws-cli.sh
# Makes a key pair and an instance (waiting for it to run), lists them, and removes both.
set -eu
export AWS_ENDPOINT_URL_EC2="${EC2BRIDGE_ENDPOINT:?set EC2BRIDGE_ENDPOINT}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_PAGER=""
aws ec2 describe-availability-zones --query 'AvailabilityZones[].ZoneName' --output text
aws ec2 create-key-pair --key-name aws-cli-example --query KeyFingerprint --output text
aws ec2 describe-key-pairs --key-names aws-cli-example --query 'KeyPairs[].KeyName' --output text
ami=$(aws ec2 describe-images --filters Name=state,Values=available \
  --query 'sort_by(Images, &ImageId)[0].ImageId' --output text)
iid=$(aws ec2 run-instances --image-id "$ami" --instance-type t2.micro --count 1 --key-name aws-cli-example \
  --tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=aws-cli-example}]' \
  --query 'Instances[0].InstanceId' --output text)
aws ec2 wait instance-running --instance-ids "$iid"
aws ec2 describe-instances --filters Name=tag:Name,Values=aws-cli-example Name=instance-state-name,Values=running \
  --query 'Reservations[].Instances[].InstanceId' --output text
aws ec2 terminate-instances --instance-ids "$iid" --query 'TerminatingInstances[].InstanceId' --output text
aws ec2 wait instance-terminated --instance-ids "$iid"
aws ec2 delete-key-pair --key-name aws-cli-example
