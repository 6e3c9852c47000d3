"""XML text as EC2 writes it (docs/ec2-wire.md "Success documents"): only &, < and > are escaped,
quotes and apostrophes travel as they are. Clients that read error messages with a regular
expression (fog, libcloud) would otherwise show `&apos;` literally. Checked on the raw bytes
(SigV2 by hand) and through boto3 and the AWS CLI."""
import pytest
from botocore.exceptions import ClientError

from harness import parse_error

MISSING = "i-0123456789abcdef0"


def test_error_message_quotes_arrive_as_quotes_raw(raw_sigv2):
    r = raw_sigv2({"Action": "DescribeInstances", "InstanceId.1": MISSING})
    assert r.status_code == 400
    body = r.content.decode()
    assert "'%s'" % MISSING in body, body
    assert "&apos;" not in body and "&quot;" not in body
    code, message, _ = parse_error(r)
    assert code == "InvalidInstanceID.NotFound"
    assert message == "The instance ID '%s' does not exist" % MISSING


def test_error_message_quotes_boto3(boto3_client):
    ec2 = boto3_client()
    with pytest.raises(ClientError) as e:
        ec2.describe_instances(InstanceIds=[MISSING])
    msg = e.value.response["Error"]["Message"]
    assert msg == "The instance ID '%s' does not exist" % MISSING
    assert "&apos;" not in str(e.value)


def test_error_message_quotes_aws_cli(aws_cli):
    rc, _, err = aws_cli("ec2", "describe-instances", "--instance-ids", MISSING)
    assert rc != 0
    assert "The instance ID '%s' does not exist" % MISSING in err, err
    assert "&apos;" not in err


def test_text_round_trip_in_success_documents(boto3_client, raw_sigv2):
    """A tag value with every special character: the raw answer escapes & < > only, and boto3
    reads back exactly what was written."""
    ec2 = boto3_client()
    vol = ec2.create_volume(AvailabilityZone=ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"],
                            Size=1)["VolumeId"]
    try:
        value = """a "b" 'c' <d> & e"""
        ec2.create_tags(Resources=[vol], Tags=[{"Key": "quote", "Value": value}])
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vol]}])["Tags"]
        assert [t["Value"] for t in tags if t["Key"] == "quote"] == [value]
        r = raw_sigv2({"Action": "DescribeTags", "Filter.1.Name": "resource-id", "Filter.1.Value.1": vol})
        assert r.status_code == 200
        assert """<value>a "b" 'c' &lt;d&gt; &amp; e</value>""" in r.content.decode(), r.content
    finally:
        ec2.delete_volume(VolumeId=vol)
