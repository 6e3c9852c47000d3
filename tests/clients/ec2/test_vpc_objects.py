"""Store-held VPC objects through boto3 and the AWS CLI (docs/vpc.md): internet gateways and DHCP
options sets — create with tags, describe by id and filters, EC2's errors, delete. The parts that
need a VPC (attach, associate, route tables) are in test_vpc.py."""
import pytest
from harness import client_error as error_of


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


def other_account_client(gateway, user, boto3_client):
    others = [u for u in gateway["users"] if u["account"] != user["account"] and not u["is_admin"]]
    return boto3_client(others[0]) if others else None


def test_internet_gateway_lifecycle(ec2, boto3_client, gateway, user):
    r = ec2.create_internet_gateway(
        TagSpecifications=[{"ResourceType": "internet-gateway", "Tags": [{"Key": "Name", "Value": "igw-a"}]}]
    )["InternetGateway"]
    igw = r["InternetGatewayId"]
    assert igw.startswith("igw-") and len(igw) == 21
    assert r["Attachments"] == []
    assert r["Tags"] == [{"Key": "Name", "Value": "igw-a"}]
    got = ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"]
    assert [g["InternetGatewayId"] for g in got] == [igw]
    by_tag = ec2.describe_internet_gateways(Filters=[{"Name": "tag:Name", "Values": ["igw-a"]}])["InternetGateways"]
    assert igw in [g["InternetGatewayId"] for g in by_tag]
    none = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": ["vpc-12345678"]}])
    assert igw not in [g["InternetGatewayId"] for g in none["InternetGateways"]]
    # Another account neither sees nor deletes it.
    other = other_account_client(gateway, user, boto3_client)
    if other is not None:
        assert igw not in [g["InternetGatewayId"] for g in other.describe_internet_gateways()["InternetGateways"]]
        code, _ = error_of(lambda: other.delete_internet_gateway(InternetGatewayId=igw))
        assert code == "InvalidInternetGatewayID.NotFound"
    ec2.delete_internet_gateway(InternetGatewayId=igw)
    code, msg = error_of(lambda: ec2.describe_internet_gateways(InternetGatewayIds=[igw]))
    assert (code, msg) == ("InvalidInternetGatewayID.NotFound", "The internetGateway ID '%s' does not exist" % igw)
    code, _ = error_of(lambda: ec2.delete_internet_gateway(InternetGatewayId=igw))
    assert code == "InvalidInternetGatewayID.NotFound"
    code, msg = error_of(lambda: ec2.delete_internet_gateway(InternetGatewayId="igw-nope"))
    assert (code, msg) == ("InvalidInternetGatewayId.Malformed", 'Invalid id: "igw-nope" (expecting "igw-...")')


def test_internet_gateway_wrong_tag_type_and_dry_run(ec2):
    code, _ = error_of(
        lambda: ec2.create_internet_gateway(
            TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "a", "Value": "b"}]}]
        )
    )
    assert code == "InvalidParameterValue"
    code, _ = error_of(lambda: ec2.create_internet_gateway(DryRun=True))
    assert code == "DryRunOperation"
    before = len(ec2.describe_internet_gateways()["InternetGateways"])
    assert before == len(ec2.describe_internet_gateways()["InternetGateways"])


def test_dhcp_options_lifecycle(ec2):
    r = ec2.create_dhcp_options(
        DhcpConfigurations=[
            {"Key": "domain-name", "Values": ["corp.example"]},
            {"Key": "domain-name-servers", "Values": ["10.0.0.2", "10.0.0.3"]},
        ],
        TagSpecifications=[{"ResourceType": "dhcp-options", "Tags": [{"Key": "env", "Value": "t"}]}],
    )["DhcpOptions"]
    dopt = r["DhcpOptionsId"]
    assert dopt.startswith("dopt-")
    conf = {c["Key"]: [v["Value"] for v in c["Values"]] for c in r["DhcpConfigurations"]}
    assert conf == {"domain-name": ["corp.example"], "domain-name-servers": ["10.0.0.2", "10.0.0.3"]}
    got = ec2.describe_dhcp_options(
        Filters=[{"Name": "key", "Values": ["domain-name"]}, {"Name": "value", "Values": ["10.0.0.3"]}]
    )["DhcpOptions"]
    assert dopt in [d["DhcpOptionsId"] for d in got]
    got = ec2.describe_dhcp_options(Filters=[{"Name": "value", "Values": ["10.9.9.9"]}])["DhcpOptions"]
    assert dopt not in [d["DhcpOptionsId"] for d in got]
    assert ec2.describe_dhcp_options(DhcpOptionsIds=[dopt])["DhcpOptions"][0]["Tags"] == [{"Key": "env", "Value": "t"}]
    ec2.delete_dhcp_options(DhcpOptionsId=dopt)
    code, msg = error_of(lambda: ec2.describe_dhcp_options(DhcpOptionsIds=[dopt]))
    assert (code, msg) == ("InvalidDhcpOptionID.NotFound", "The dhcpOption ID '%s' does not exist" % dopt)


def test_dhcp_options_bad_input_changes_nothing(ec2):
    before = ec2.describe_dhcp_options()["DhcpOptions"]
    for conf in (
        [{"Key": "bogus-key", "Values": ["x"]}],
        [{"Key": "domain-name-servers", "Values": ["not-an-ip"]}],
        [{"Key": "netbios-node-type", "Values": ["3"]}],
    ):
        code, _ = error_of(lambda: ec2.create_dhcp_options(DhcpConfigurations=conf))
        assert code == "InvalidParameterValue", conf
    assert ec2.describe_dhcp_options()["DhcpOptions"] == before


def test_aws_cli_internet_gateway(aws_cli):
    rc, out, err = aws_cli("ec2", "create-internet-gateway")
    assert rc == 0, err
    igw = out["InternetGateway"]["InternetGatewayId"]
    rc, out, err = aws_cli("ec2", "describe-internet-gateways", "--internet-gateway-ids", igw)
    assert rc == 0 and out["InternetGateways"][0]["InternetGatewayId"] == igw, err
    rc, out, err = aws_cli("ec2", "delete-internet-gateway", "--internet-gateway-id", igw)
    assert rc == 0, err
