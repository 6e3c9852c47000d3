"""EC2 VPCs over CloudStack VPCs (docs/vpc.md) through boto3: VPCs and subnets with the waiters,
internet gateways attached, route tables with routes and associations, DHCP options associated,
the VPC and subnet attributes, the default VPC, DescribeAccountAttributes, and EC2's errors —
each failing call checked to change nothing."""
import pytest
from botocore.exceptions import ClientError
from harness import client_error as error_of


@pytest.fixture(scope="module")
def ec2(vpc_ec2):
    return vpc_ec2


def tags(**kv):
    return [{"Key": k, "Value": v} for k, v in kv.items()]


@pytest.fixture
def vpc(ec2):
    v = ec2.create_vpc(
        CidrBlock="10.20.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": tags(Name="t-vpc")}]
    )["Vpc"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[v["VpcId"]])
    yield v
    # Whatever the test left: subnets, gateways, tables, then the VPC.
    vid = v["VpcId"]
    for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=s["SubnetId"])
    for g in ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vid]}])["InternetGateways"]:
        ec2.detach_internet_gateway(InternetGatewayId=g["InternetGatewayId"], VpcId=vid)
        ec2.delete_internet_gateway(InternetGatewayId=g["InternetGatewayId"])
    for t in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"]:
        if not any(a["Main"] for a in t["Associations"]):
            ec2.delete_route_table(RouteTableId=t["RouteTableId"])
    try:
        ec2.delete_vpc(VpcId=vid)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidVpcID.NotFound"


def test_account_attributes_offer_both_platforms(ec2):
    attrs = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
             for a in ec2.describe_account_attributes()["AccountAttributes"]}
    assert sorted(attrs["supported-platforms"]) == ["EC2", "VPC"]
    assert len(attrs["default-vpc"]) == 1


def test_vpc_create_describe_delete(ec2, vpc):
    vid = vpc["VpcId"]
    assert vid.startswith("vpc-") and vpc["CidrBlock"] == "10.20.0.0/16"
    assert vpc["Tags"] == [{"Key": "Name", "Value": "t-vpc"}]
    assert vpc["IsDefault"] is False and vpc["InstanceTenancy"] == "default"
    assert vpc["DhcpOptionsId"] == "default"
    got = ec2.describe_vpcs(VpcIds=[vid])["Vpcs"][0]
    assert got["State"] == "available" and got["CidrBlockAssociationSet"][0]["CidrBlock"] == "10.20.0.0/16"
    assert [v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["t-vpc"]}])["Vpcs"]] == [vid]
    assert vid in [v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.20.0.0/16"]}])["Vpcs"]]
    # The main route table exists with the local route.
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    assert len(main) == 1
    assert main[0]["Routes"] == [{"DestinationCidrBlock": "10.20.0.0/16", "GatewayId": "local",
                                  "Origin": "CreateRouteTable", "State": "active"}]
    ec2.delete_vpc(VpcId=vid)
    code, msg = error_of(lambda: ec2.describe_vpcs(VpcIds=[vid]))
    assert (code, msg) == ("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist" % vid)
    assert not ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"]


def test_vpc_errors_change_nothing(ec2):
    before = ec2.describe_vpcs()["Vpcs"]
    for cidr, code in [("10.0.0.0/8", "InvalidVpc.Range"), ("10.0.0.0/29", "InvalidVpc.Range"),
                       ("8.8.0.0/16", "InvalidVpc.Range"), ("nonsense", "InvalidParameterValue"),
                       ("10.0.0.1/16", "InvalidParameterValue")]:
        got, _ = error_of(lambda: ec2.create_vpc(CidrBlock=cidr))
        assert got == code, cidr
    assert error_of(lambda: ec2.create_vpc(CidrBlock="10.0.0.0/16", InstanceTenancy="dedicated"))[0] == \
        "InvalidParameterValue"
    assert error_of(lambda: ec2.create_vpc(CidrBlock="10.0.0.0/16", AmazonProvidedIpv6CidrBlock=True))[0] == \
        "UnsupportedOperation"
    assert error_of(lambda: ec2.delete_vpc(VpcId="vpc-0123456789abcdef0"))[0] == "InvalidVpcID.NotFound"
    assert error_of(lambda: ec2.delete_vpc(VpcId="vpc-zz"))[0] == "InvalidVpcID.Malformed"
    assert ec2.describe_vpcs()["Vpcs"] == before


def test_subnets(ec2, vpc):
    vid = vpc["VpcId"]
    s = ec2.create_subnet(VpcId=vid, CidrBlock="10.20.1.0/24",
                          TagSpecifications=[{"ResourceType": "subnet", "Tags": tags(Name="a")}])["Subnet"]
    sid = s["SubnetId"]
    ec2.get_waiter("subnet_available").wait(SubnetIds=[sid])
    assert sid.startswith("subnet-") and s["VpcId"] == vid and s["CidrBlock"] == "10.20.1.0/24"
    assert s["AvailableIpAddressCount"] == 251 and s["DefaultForAz"] is False
    assert s["MapPublicIpOnLaunch"] is False and s["Tags"] == tags(Name="a")
    az = s["AvailabilityZone"]
    assert az == ec2.describe_subnets(SubnetIds=[sid])["Subnets"][0]["AvailabilityZone"]
    # Range, conflict, zone: EC2's errors, nothing made.
    before = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Subnets"]
    assert error_of(lambda: ec2.create_subnet(VpcId=vid, CidrBlock="10.21.0.0/24")) == \
        ("InvalidSubnet.Range", "The CIDR '10.21.0.0/24' is invalid.")
    assert error_of(lambda: ec2.create_subnet(VpcId=vid, CidrBlock="10.20.1.128/25")) == \
        ("InvalidSubnet.Conflict", "The CIDR '10.20.1.128/25' conflicts with another subnet")
    code, msg = error_of(lambda: ec2.create_subnet(VpcId=vid, CidrBlock="10.20.2.0/24", AvailabilityZone="elsewhere"))
    assert code == "InvalidParameterValue" and az in msg
    assert error_of(lambda: ec2.create_subnet(VpcId="vpc-0123456789abcdef0", CidrBlock="10.20.2.0/24"))[0] == \
        "InvalidVpcID.NotFound"
    assert ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Subnets"] == before
    # Attribute.
    ec2.modify_subnet_attribute(SubnetId=sid, MapPublicIpOnLaunch={"Value": True})
    assert ec2.describe_subnets(SubnetIds=[sid])["Subnets"][0]["MapPublicIpOnLaunch"] is True
    assert [x["SubnetId"] for x in ec2.describe_subnets(
        Filters=[{"Name": "map-public-ip-on-launch", "Values": ["true"]}, {"Name": "vpc-id", "Values": [vid]}])["Subnets"]] == [sid]
    # The VPC has a dependency now.
    assert error_of(lambda: ec2.delete_vpc(VpcId=vid)) == \
        ("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted." % vid)
    ec2.delete_subnet(SubnetId=sid)
    assert error_of(lambda: ec2.describe_subnets(SubnetIds=[sid]))[0] == "InvalidSubnetID.NotFound"


def test_vpc_attributes(ec2, vpc):
    vid = vpc["VpcId"]
    assert ec2.describe_vpc_attribute(VpcId=vid, Attribute="enableDnsSupport")["EnableDnsSupport"] == {"Value": True}
    assert ec2.describe_vpc_attribute(VpcId=vid, Attribute="enableDnsHostnames")["EnableDnsHostnames"] == {"Value": False}
    ec2.modify_vpc_attribute(VpcId=vid, EnableDnsHostnames={"Value": True})
    assert ec2.describe_vpc_attribute(VpcId=vid, Attribute="enableDnsHostnames")["EnableDnsHostnames"] == {"Value": True}
    assert error_of(lambda: ec2.describe_vpc_attribute(VpcId=vid, Attribute="bogus"))[0] == "InvalidParameterValue"


def test_internet_gateway_attachment(ec2, vpc):
    vid = vpc["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
    got = ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"][0]
    assert got["Attachments"] == [{"VpcId": vid, "State": "available"}]
    assert error_of(lambda: ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vid)) == \
        ("Resource.AlreadyAssociated", "resource %s is already attached to network %s" % (igw, vid))
    other = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    assert error_of(lambda: ec2.attach_internet_gateway(InternetGatewayId=other, VpcId=vid))[0] == \
        "Resource.AlreadyAssociated"
    assert error_of(lambda: ec2.detach_internet_gateway(InternetGatewayId=other, VpcId=vid)) == \
        ("Gateway.NotAttached", "resource %s is not attached to network %s" % (other, vid))
    assert error_of(lambda: ec2.delete_internet_gateway(InternetGatewayId=igw)) == \
        ("DependencyViolation", "The internetGateway '%s' has dependencies and cannot be deleted." % igw)
    assert error_of(lambda: ec2.delete_vpc(VpcId=vid))[0] == "DependencyViolation"
    assert error_of(lambda: ec2.attach_internet_gateway(InternetGatewayId=other, VpcId="vpc-0123456789abcdef0"))[0] == \
        "InvalidVpcID.NotFound"
    ec2.delete_internet_gateway(InternetGatewayId=other)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
    assert ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"][0]["Attachments"] == []
    ec2.delete_internet_gateway(InternetGatewayId=igw)


def test_route_tables(ec2, vpc):
    vid = vpc["VpcId"]
    sub = ec2.create_subnet(VpcId=vid, CidrBlock="10.20.3.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    rt = ec2.create_route_table(VpcId=vid, TagSpecifications=[{"ResourceType": "route-table", "Tags": tags(Name="pub")}])
    rtb = rt["RouteTable"]["RouteTableId"]
    assert rt["RouteTable"]["VpcId"] == vid and rt["RouteTable"]["Associations"] == []
    # A route to a gateway that is not attached to this VPC.
    code, msg = error_of(lambda: ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw))
    assert code == "InvalidParameterValue" and "different networks" in msg
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    assert error_of(lambda: ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)) == \
        ("RouteAlreadyExists", "The route identified by 0.0.0.0/0 already exists.")
    assert error_of(lambda: ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="300.0.0.0/0", GatewayId=igw))[0] == \
        "InvalidParameterValue"
    assert error_of(lambda: ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock="10.20.0.0/16"))[0] == \
        "InvalidParameterValue"
    assert error_of(lambda: ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock="1.2.3.0/24", GatewayId=igw))[0] == \
        "InvalidParameterValue"
    routes = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    assert {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw, "Origin": "CreateRoute", "State": "active"} in routes
    found = ec2.describe_route_tables(Filters=[{"Name": "route.gateway-id", "Values": [igw]}])["RouteTables"]
    assert [t["RouteTableId"] for t in found] == [rtb]
    # Associate; one table per subnet.
    assoc = ec2.associate_route_table(RouteTableId=rtb, SubnetId=sub)
    aid = assoc["AssociationId"]
    assert aid.startswith("rtbassoc-") and assoc["AssociationState"] == {"State": "associated"}
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    assert error_of(lambda: ec2.associate_route_table(RouteTableId=main["RouteTableId"], SubnetId=sub))[0] == \
        "Resource.AlreadyAssociated"
    got = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [sub]}])["RouteTables"]
    assert [t["RouteTableId"] for t in got] == [rtb]
    assert got[0]["Associations"][0]["RouteTableAssociationId"] == aid
    assert error_of(lambda: ec2.delete_route_table(RouteTableId=rtb)) == \
        ("DependencyViolation", "The routeTable '%s' has dependencies and cannot be deleted." % rtb)
    main_assoc = main["Associations"][0]["RouteTableAssociationId"]
    assert error_of(lambda: ec2.disassociate_route_table(AssociationId=main_assoc))[0] == "InvalidParameterValue"
    assert error_of(lambda: ec2.delete_route_table(RouteTableId=main["RouteTableId"]))[0] == "DependencyViolation"
    # Move the subnet back to the main table, and the main association to ours and back.
    new = ec2.replace_route_table_association(AssociationId=aid, RouteTableId=main["RouteTableId"])["NewAssociationId"]
    assert error_of(lambda: ec2.disassociate_route_table(AssociationId=aid))[0] == "InvalidAssociationID.NotFound"
    ec2.disassociate_route_table(AssociationId=new)
    moved = ec2.replace_route_table_association(AssociationId=main_assoc, RouteTableId=rtb)["NewAssociationId"]
    t = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    assert t["Associations"][0]["Main"] is True and t["Associations"][0]["RouteTableAssociationId"] == moved
    ec2.replace_route_table_association(AssociationId=moved, RouteTableId=main["RouteTableId"])
    # Detached gateway -> blackhole route.
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
    routes = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    assert [r["State"] for r in routes if r.get("GatewayId") == igw] == ["blackhole"]
    ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0")
    assert error_of(lambda: ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0")) == \
        ("InvalidRoute.NotFound", "no route with destination-cidr-block 0.0.0.0/0 in route table %s" % rtb)
    ec2.delete_route_table(RouteTableId=rtb)
    assert error_of(lambda: ec2.describe_route_tables(RouteTableIds=[rtb])) == \
        ("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist" % rtb)
    ec2.delete_internet_gateway(InternetGatewayId=igw)


def test_dhcp_options_association(ec2, vpc):
    vid = vpc["VpcId"]
    dopt = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name", "Values": ["x.internal"]}])
    did = dopt["DhcpOptions"]["DhcpOptionsId"]
    ec2.associate_dhcp_options(DhcpOptionsId=did, VpcId=vid)
    assert ec2.describe_vpcs(VpcIds=[vid])["Vpcs"][0]["DhcpOptionsId"] == did
    assert [v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "dhcp-options-id", "Values": [did]}])["Vpcs"]] == [vid]
    assert error_of(lambda: ec2.delete_dhcp_options(DhcpOptionsId=did)) == \
        ("DependencyViolation", "The dhcpOptions '%s' has dependencies and cannot be deleted." % did)
    ec2.associate_dhcp_options(DhcpOptionsId="default", VpcId=vid)
    assert ec2.describe_vpcs(VpcIds=[vid])["Vpcs"][0]["DhcpOptionsId"] == "default"
    ec2.delete_dhcp_options(DhcpOptionsId=did)


def test_default_vpc(ec2, boto3_client, gateway, user):
    others = [u for u in gateway["users"] if u["account"] != user["account"] and not u["is_admin"]]
    c = boto3_client(others[-1]) if others else ec2
    attrs = {a["AttributeName"]: a["AttributeValues"][0]["AttributeValue"]
             for a in c.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]}
    if attrs["default-vpc"] != "none":
        pytest.skip("this account already has a default VPC")
    v = c.create_default_vpc()["Vpc"]
    vid = v["VpcId"]
    assert v["IsDefault"] is True and v["CidrBlock"] == "172.31.0.0/16" and v["Tags"] == []
    assert error_of(c.create_default_vpc) == \
        ("DefaultVpcAlreadyExists", "A Default VPC already exists for this account in this region.")
    attrs = {a["AttributeName"]: a["AttributeValues"][0]["AttributeValue"]
             for a in c.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]}
    assert attrs["default-vpc"] == vid
    assert [x["VpcId"] for x in c.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]] == [vid]
    subs = c.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    assert [s["VpcId"] for s in subs] == [vid] and subs[0]["MapPublicIpOnLaunch"] is True and subs[0]["Tags"] == []
    igws = c.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vid]}])["InternetGateways"]
    assert len(igws) == 1
    main = c.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"]
    assert any(r.get("GatewayId") == igws[0]["InternetGatewayId"] for r in main[0]["Routes"])
    assert c.describe_vpc_attribute(VpcId=vid, Attribute="enableDnsHostnames")["EnableDnsHostnames"] == {"Value": True}
    # The gateway's marker tags never show.
    assert not [t for t in c.describe_tags()["Tags"] if t["Key"].startswith("ec2bridge:")]


def ubuntu(ec2):
    return ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]


def test_instances_in_a_subnet(ec2, vpc):
    vid = vpc["VpcId"]
    sid = ec2.create_subnet(VpcId=vid, CidrBlock="10.20.5.0/24")["Subnet"]["SubnetId"]
    # EC2's address rules, checked before anything is deployed.
    for ip, why in [("10.20.6.10", "does not fall within"), ("10.20.5.2", "reserved"), ("10.20.5.255", "reserved")]:
        code, msg = error_of(lambda: ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1,
                                                      InstanceType="m1.small", SubnetId=sid, PrivateIpAddress=ip))
        assert code == "InvalidParameterValue" and why in msg, (ip, msg)
    r = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small",
                          SubnetId=sid, PrivateIpAddress="10.20.5.10")
    iid = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid])
    i = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert i["VpcId"] == vid and i["SubnetId"] == sid and i["PrivateIpAddress"] == "10.20.5.10"
    eni = i["NetworkInterfaces"][0]
    assert eni["NetworkInterfaceId"].startswith("eni-") and eni["SubnetId"] == sid and eni["VpcId"] == vid
    assert eni["PrivateIpAddress"] == "10.20.5.10" and eni["Attachment"]["DeviceIndex"] == 0
    for name, value in [("vpc-id", vid), ("subnet-id", sid), ("private-ip-address", "10.20.5.10"),
                        ("network-interface.subnet-id", sid)]:
        found = ec2.describe_instances(Filters=[{"Name": name, "Values": [value]}])["Reservations"]
        assert [x["InstanceId"] for res in found for x in res["Instances"]] == [iid], name
    assert ec2.describe_subnets(SubnetIds=[sid])["Subnets"][0]["AvailableIpAddressCount"] == 250
    # A second one through NetworkInterface.0.
    r2 = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small",
                           NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": sid}])
    iid2 = r2["Instances"][0]["InstanceId"]
    # Instances in the subnet: DeleteSubnet and DeleteVpc refuse and change nothing.
    assert error_of(lambda: ec2.delete_subnet(SubnetId=sid)) == \
        ("DependencyViolation", "The subnet '%s' has dependencies and cannot be deleted." % sid)
    assert ec2.describe_subnets(SubnetIds=[sid])["Subnets"]
    ec2.terminate_instances(InstanceIds=[iid, iid2])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid, iid2])
    ec2.delete_subnet(SubnetId=sid)


def test_classic_zone_unchanged(ec2):
    # No subnet in the security-group zone: EC2-Classic as before (no VpcId).
    r = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small")
    i = r["Instances"][0]
    assert "VpcId" not in i and "SubnetId" not in i
    got = ec2.describe_instances(InstanceIds=[i["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert "VpcId" not in got and "NetworkInterfaces" not in got
    ec2.terminate_instances(InstanceIds=[i["InstanceId"]])


def test_tags_on_every_vpc_resource(ec2, vpc):
    vid = vpc["VpcId"]
    sid = ec2.create_subnet(VpcId=vid, CidrBlock="10.20.7.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    rtb = ec2.create_route_table(VpcId=vid)["RouteTable"]["RouteTableId"]
    dopt = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name", "Values": ["t.internal"]}])
    did = dopt["DhcpOptions"]["DhcpOptionsId"]
    ids = [vid, sid, igw, rtb, did]
    ec2.create_tags(Resources=ids, Tags=tags(stack="s1", tier="web"))
    got = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["stack"]}, {"Name": "value", "Values": ["s1"]}])["Tags"]
    assert sorted((t["ResourceId"], t["ResourceType"]) for t in got) == sorted(
        [(vid, "vpc"), (sid, "subnet"), (igw, "internet-gateway"), (rtb, "route-table"), (did, "dhcp-options")])
    only = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["route-table"]},
                                      {"Name": "key", "Values": ["stack"]}])["Tags"]
    assert [t["ResourceId"] for t in only] == [rtb]
    assert {"Key": "tier", "Value": "web"} in ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Tags"]
    assert {"Key": "tier", "Value": "web"} in ec2.describe_subnets(SubnetIds=[sid])["Subnets"][0]["Tags"]
    assert [v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "tag:stack", "Values": ["s1"]}])["Vpcs"]] == [vid]
    assert [g["InternetGatewayId"] for g in ec2.describe_internet_gateways(
        Filters=[{"Name": "tag:tier", "Values": ["web"]}])["InternetGateways"]] == [igw]
    # Replace a value, delete by key.
    ec2.create_tags(Resources=[igw, vid], Tags=tags(tier="db"))
    assert {"Key": "tier", "Value": "db"} in ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"][0]["Tags"]
    ec2.delete_tags(Resources=ids, Tags=[{"Key": "stack"}])
    # Scoped to this test's resources: instances other tests terminated keep their tags while listed.
    mine = {"Name": "resource-id", "Values": ids}
    assert not ec2.describe_tags(Filters=[{"Name": "key", "Values": ["stack"]}, mine])["Tags"]
    # An unknown store id fails the whole request: nothing tagged.
    code, _ = error_of(lambda: ec2.create_tags(Resources=[vid, "rtb-0123456789abcdef0"], Tags=tags(x="y")))
    assert code == "InvalidRouteTableID.NotFound"
    assert not ec2.describe_tags(Filters=[{"Name": "key", "Values": ["x"]}, mine])["Tags"]
    # The gateway's reserved prefix.
    assert error_of(lambda: ec2.create_tags(Resources=[vid], Tags=tags(**{"ec2bridge:default-vpc": "true"})))[0] == \
        "InvalidParameterValue"
    ec2.delete_dhcp_options(DhcpOptionsId=did)
    ec2.delete_route_table(RouteTableId=rtb)
    ec2.delete_internet_gateway(InternetGatewayId=igw)


def test_vpc_security_groups(ec2, vpc):
    vid = vpc["VpcId"]
    default = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                                    {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert len(default) == 1
    d = default[0]
    assert d["VpcId"] == vid and d["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    assert d["IpPermissions"][0]["IpProtocol"] == "-1"
    assert d["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == d["GroupId"]
    web = ec2.create_security_group(GroupName="web", Description="web tier", VpcId=vid,
                                    TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(Name="web")}])["GroupId"]
    app = ec2.create_security_group(GroupName="app", Description="app tier", VpcId=vid)["GroupId"]
    assert error_of(lambda: ec2.create_security_group(GroupName="web", Description="x", VpcId=vid)) == \
        ("InvalidGroup.Duplicate", "The security group 'web' already exists for VPC '%s'" % vid)
    assert error_of(lambda: ec2.create_security_group(GroupName="default", Description="x", VpcId=vid))[0] == \
        "InvalidGroup.Reserved"
    ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_ingress(GroupId=app, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web}]},
        {"IpProtocol": "47", "IpRanges": [{"CidrIp": "10.20.0.0/16"}]}])
    assert error_of(lambda: ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]))[0] == \
        "InvalidPermission.Duplicate"
    g = ec2.describe_security_groups(GroupIds=[app])["SecurityGroups"][0]
    perms = {p["IpProtocol"]: p for p in g["IpPermissions"]}
    assert perms["tcp"]["FromPort"] == 8080 and perms["tcp"]["UserIdGroupPairs"][0]["GroupId"] == web
    assert perms["47"]["IpRanges"] == [{"CidrIp": "10.20.0.0/16"}]
    found = ec2.describe_security_groups(Filters=[{"Name": "ip-permission.group-id", "Values": [web]}])["SecurityGroups"]
    assert [x["GroupId"] for x in found] == [app]
    # Dependencies: web is referenced by app's rule.
    assert error_of(lambda: ec2.delete_security_group(GroupId=web)) == \
        ("DependencyViolation", "resource %s has a dependent object" % web)
    assert error_of(lambda: ec2.delete_security_group(GroupId=d["GroupId"]))[0] == "CannotDelete"
    assert error_of(lambda: ec2.delete_vpc(VpcId=vid))[0] == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=app, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web}]}])
    assert error_of(lambda: ec2.revoke_security_group_ingress(GroupId=app, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web}]}]))[0] == \
        "InvalidPermission.NotFound"
    ec2.revoke_security_group_egress(GroupId=web, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert ec2.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]["IpPermissionsEgress"] == []
    # An instance with the group: the group cannot go while it runs.
    sid = ec2.create_subnet(VpcId=vid, CidrBlock="10.20.9.0/24")["Subnet"]["SubnetId"]
    r = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small",
                          SubnetId=sid, SecurityGroupIds=[web])
    i = r["Instances"][0]
    assert [x["GroupId"] for x in i["SecurityGroups"]] == [web] and i["VpcId"] == vid and i["SubnetId"] == sid
    got = ec2.describe_instances(InstanceIds=[i["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert [x["GroupId"] for x in got["SecurityGroups"]] == [web]
    assert [x["GroupId"] for x in got["NetworkInterfaces"][0]["Groups"]] == [web]
    assert error_of(lambda: ec2.delete_security_group(GroupId=web))[0] == "DependencyViolation"
    # A group of another VPC is refused.
    other = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    try:
        foreign = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [other]}])["SecurityGroups"][0]
        code, _ = error_of(lambda: ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small",
                                                    SubnetId=sid, SecurityGroupIds=[foreign["GroupId"]]))
        assert code == "InvalidParameter"
    finally:
        ec2.delete_vpc(VpcId=other)
    ec2.terminate_instances(InstanceIds=[i["InstanceId"]])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[i["InstanceId"]])
    ec2.delete_security_group(GroupId=app)
    ec2.delete_security_group(GroupId=web)
    assert error_of(lambda: ec2.describe_security_groups(GroupIds=[web]))[0] == "InvalidGroup.NotFound"
