"""Issue 10's "How we know" flow through the AWS CLI, as Terraform runs it for a typical stack: a
VPC, two subnets, an internet gateway attached, a route table with 0.0.0.0/0 -> igw associated
with both subnets, a security group with ingress from another group, a key pair, an instance in a
subnet with a public IP, an Elastic IP associated with it, tags on all of it. Then a wrong-order
teardown (each step DependencyViolation, nothing changed) and the right order, after which
nothing is left in the describe answers or in CloudStack."""
import json

import pytest
from cs import CloudStack


@pytest.fixture(scope="module")
def cloudstack(gateway, user):
    return CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"], secret=user["secret_key"],
                      poll_interval=0.05, job_timeout=30)


def tag_spec(kind, name):
    return "ResourceType=%s,Tags=[{Key=Name,Value=%s},{Key=stack,Value=tf}]" % (kind, name)


def test_terraform_like_stack_and_teardown(aws_cli, cloudstack):
    def cli(*args):
        rc, out, err = aws_cli("ec2", *args)
        assert rc == 0, (args, err)
        return out

    def refused(code, *args):
        rc, out, err = aws_cli("ec2", *args)
        assert rc != 0 and code in err, (args, out, err)

    platforms = [v["AttributeValue"] for a in cli("describe-account-attributes", "--attribute-names",
                                                    "supported-platforms")["AccountAttributes"]
                 for v in a["AttributeValues"]]
    if "VPC" not in platforms:
        pytest.skip("the simulator's region has no VPC zone")
    if cli("describe-account-attributes", "--attribute-names", "default-vpc")["AccountAttributes"][0][
            "AttributeValues"][0]["AttributeValue"] != "none":
        pytest.skip("this user has a default VPC (Elastic IPs would be allocated there)")

    # --- network -----------------------------------------------------------------------------
    vid = cli("create-vpc", "--cidr-block", "10.53.0.0/16", "--tag-specifications", tag_spec("vpc", "tf-vpc"))["Vpc"]["VpcId"]
    cli("wait", "vpc-available", "--vpc-ids", vid)
    subnets = [cli("create-subnet", "--vpc-id", vid, "--cidr-block", cidr,
                   "--tag-specifications", tag_spec("subnet", name))["Subnet"]["SubnetId"]
               for cidr, name in [("10.53.1.0/24", "tf-a"), ("10.53.2.0/24", "tf-b")]]
    igw = cli("create-internet-gateway", "--tag-specifications",
              tag_spec("internet-gateway", "tf-igw"))["InternetGateway"]["InternetGatewayId"]
    cli("attach-internet-gateway", "--internet-gateway-id", igw, "--vpc-id", vid)
    rtb = cli("create-route-table", "--vpc-id", vid, "--tag-specifications",
              tag_spec("route-table", "tf-public"))["RouteTable"]["RouteTableId"]
    assert cli("create-route", "--route-table-id", rtb, "--destination-cidr-block", "0.0.0.0/0",
               "--gateway-id", igw)["Return"] is True
    assocs = [cli("associate-route-table", "--route-table-id", rtb, "--subnet-id", s)["AssociationId"] for s in subnets]

    # --- security groups, key pair -------------------------------------------------------------
    web = cli("create-security-group", "--group-name", "tf-web", "--description", "web", "--vpc-id", vid,
              "--tag-specifications", tag_spec("security-group", "tf-web"))["GroupId"]
    app = cli("create-security-group", "--group-name", "tf-app", "--description", "app", "--vpc-id", vid)["GroupId"]
    cli("authorize-security-group-ingress", "--group-id", app, "--ip-permissions",
        json.dumps([{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web}]}]))
    cli("authorize-security-group-ingress", "--group-id", web, "--protocol", "tcp", "--port", "443",
        "--cidr", "0.0.0.0/0")
    got = cli("describe-security-groups", "--group-ids", app)["SecurityGroups"][0]
    assert [p["UserIdGroupPairs"][0]["GroupId"] for p in got["IpPermissions"]] == [web]
    cli("create-key-pair", "--key-name", "tf-key")

    # --- instance with a public IP, an Elastic IP -------------------------------------------
    image = cli("describe-images", "--filters", "Name=name,Values=Ubuntu*")["Images"][0]["ImageId"]
    run = cli("run-instances", "--image-id", image, "--instance-type", "m1.small", "--count", "1",
              "--key-name", "tf-key", "--network-interfaces",
              json.dumps([{"DeviceIndex": 0, "SubnetId": subnets[0], "AssociatePublicIpAddress": True,
                           "Groups": [app]}]),
              "--tag-specifications", tag_spec("instance", "tf-app"))
    iid = run["Instances"][0]["InstanceId"]
    cli("wait", "instance-running", "--instance-ids", iid)
    inst = cli("describe-instances", "--instance-ids", iid)["Reservations"][0]["Instances"][0]
    launch_ip = inst["PublicIpAddress"]
    assert inst["VpcId"] == vid and inst["SubnetId"] == subnets[0] and inst["KeyName"] == "tf-key"
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [app]
    eip = cli("allocate-address", "--domain", "vpc")
    alloc = eip["AllocationId"]
    cli("create-tags", "--resources", alloc, "--tags", "Key=Name,Value=tf-eip", "Key=stack,Value=tf")
    assoc = cli("associate-address", "--allocation-id", alloc, "--instance-id", iid)["AssociationId"]
    inst = cli("describe-instances", "--instance-ids", iid)["Reservations"][0]["Instances"][0]
    assert inst["PublicIpAddress"] == eip["PublicIp"] != launch_ip
    tagged = {t["ResourceId"] for t in cli("describe-tags", "--filters", "Name=key,Values=stack")["Tags"]}
    missing = {vid, *subnets, igw, rtb, iid, alloc} - tagged
    assert not missing, (missing, tagged)
    # A VPC group's tags show in its description (DescribeTags does not list them yet).
    assert {"Key": "stack", "Value": "tf"} in cli("describe-security-groups", "--group-ids", web)["SecurityGroups"][0]["Tags"]

    # --- wrong order: each refused, nothing changed ---------------------------------------------
    refused("DependencyViolation", "delete-vpc", "--vpc-id", vid)
    refused("DependencyViolation", "detach-internet-gateway", "--internet-gateway-id", igw, "--vpc-id", vid)
    refused("DependencyViolation", "delete-internet-gateway", "--internet-gateway-id", igw)
    refused("DependencyViolation", "delete-subnet", "--subnet-id", subnets[0])
    refused("DependencyViolation", "delete-route-table", "--route-table-id", rtb)
    refused("DependencyViolation", "delete-security-group", "--group-id", web)
    refused("DependencyViolation", "delete-security-group", "--group-id", app)
    refused("InvalidIPAddress.InUse", "release-address", "--allocation-id", alloc)
    assert cli("describe-vpcs", "--vpc-ids", vid)["Vpcs"][0]["State"] == "available"
    assert len(cli("describe-subnets", "--filters", "Name=vpc-id,Values=" + vid)["Subnets"]) == 2
    assert cli("describe-internet-gateways", "--internet-gateway-ids", igw)["InternetGateways"][0]["Attachments"] == \
        [{"State": "available", "VpcId": vid}]
    table = cli("describe-route-tables", "--route-table-ids", rtb)["RouteTables"][0]
    assert sorted(a["RouteTableAssociationId"] for a in table["Associations"]) == sorted(assocs)
    assert len(cli("describe-security-groups", "--group-ids", web, app)["SecurityGroups"]) == 2
    assert cli("describe-addresses", "--allocation-ids", alloc)["Addresses"][0]["AssociationId"] == assoc

    # --- right order: nothing left ----------------------------------------------------------------
    cli("disassociate-address", "--association-id", assoc)
    cli("release-address", "--allocation-id", alloc)
    cli("terminate-instances", "--instance-ids", iid)
    cli("wait", "instance-terminated", "--instance-ids", iid)
    cli("delete-key-pair", "--key-name", "tf-key")
    cli("delete-security-group", "--group-id", app)
    cli("delete-security-group", "--group-id", web)
    for a in assocs:
        cli("disassociate-route-table", "--association-id", a)
    cli("delete-route-table", "--route-table-id", rtb)
    cli("detach-internet-gateway", "--internet-gateway-id", igw, "--vpc-id", vid)
    cli("delete-internet-gateway", "--internet-gateway-id", igw)
    for s in subnets:
        cli("delete-subnet", "--subnet-id", s)
    cli("delete-vpc", "--vpc-id", vid)
    refused("InvalidVpcID.NotFound", "describe-vpcs", "--vpc-ids", vid)
    assert not cli("describe-addresses", "--filters", "Name=domain,Values=vpc")["Addresses"]
    assert not cli("describe-internet-gateways", "--filters", "Name=tag:stack,Values=tf")["InternetGateways"]
    assert not cli("describe-key-pairs", "--filters", "Name=key-name,Values=tf-key")["KeyPairs"]
    assert not [t for t in cli("describe-tags", "--filters", "Name=key,Values=stack")["Tags"]
                if t["ResourceId"] != iid]
    cs_ips = cloudstack.listPublicIpAddresses(listall="true").get("publicipaddress", [])
    assert not [i for i in cs_ips if i["ipaddress"] in (launch_ip, eip["PublicIp"])]
    assert not cloudstack.listVPCs(listall="true", cidr="10.53.0.0/16").get("vpc", [])
