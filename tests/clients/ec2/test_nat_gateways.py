"""NAT gateways (docs/nat-gateways.md) through boto3: CreateNatGateway with an Elastic IP of the
subnet's VPC (the nat_gateway_available waiter), DescribeNatGateways by id and filters, the
address shown associated in DescribeAddresses, a route to the NAT gateway, DeleteNatGateway (the
Elastic IP stays allocated and becomes free; the route a blackhole), ClientToken idempotency, a
private NAT gateway, and EC2's errors: an address already held, no internet gateway (state
failed, Gateway.NotAttached), a subnet or gateway still in use (DependencyViolation), unknown and
malformed ids; each refused call checked to change nothing."""
import pytest
from harness import client_error as error_of

WAIT = {"Delay": 1, "MaxAttempts": 60}


@pytest.fixture(scope="module")
def ec2(vpc_ec2_no_default):
    return vpc_ec2_no_default


@pytest.fixture(scope="module")
def net(ec2):
    vid = ec2.create_vpc(CidrBlock="10.32.0.0/16")["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid])
    public = ec2.create_subnet(VpcId=vid, CidrBlock="10.32.1.0/24")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vid, CidrBlock="10.32.2.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
    yield {"vpc": vid, "public": public, "private": private, "igw": igw}
    for n in ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NatGateways"]:
        if n["State"] in ("pending", "available"):
            ec2.delete_nat_gateway(NatGatewayId=n["NatGatewayId"])
    for a in ec2.describe_addresses(Filters=[{"Name": "domain", "Values": ["vpc"]}])["Addresses"]:
        if not a.get("AssociationId"):
            ec2.release_address(AllocationId=a["AllocationId"])
    for t in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"]:
        if not any(a.get("Main") for a in t["Associations"]):
            for a in t["Associations"]:
                ec2.disassociate_route_table(AssociationId=a["RouteTableAssociationId"])
            ec2.delete_route_table(RouteTableId=t["RouteTableId"])
    for s in (public, private):
        ec2.delete_subnet(SubnetId=s)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
    ec2.delete_internet_gateway(InternetGatewayId=igw)
    ec2.delete_vpc(VpcId=vid)


def nat(ec2, nid):
    return ec2.describe_nat_gateways(NatGatewayIds=[nid])["NatGateways"][0]


def test_public_nat_gateway_lifecycle(ec2, net):
    a = ec2.allocate_address(Domain="vpc")
    alloc, ip = a["AllocationId"], a["PublicIp"]
    r = ec2.create_nat_gateway(SubnetId=net["public"], AllocationId=alloc, ClientToken="nat-token-1",
                               TagSpecifications=[{"ResourceType": "natgateway",
                                                   "Tags": [{"Key": "Name", "Value": "egress"}]}])
    g = r["NatGateway"]
    nid = g["NatGatewayId"]
    assert nid.startswith("nat-") and r["ClientToken"] == "nat-token-1"
    assert g["SubnetId"] == net["public"] and g["VpcId"] == net["vpc"] and g["ConnectivityType"] == "public"
    assert g["Tags"] == [{"Key": "Name", "Value": "egress"}]
    [addr] = g["NatGatewayAddresses"]
    assert addr["AllocationId"] == alloc and addr["PublicIp"] == ip and addr["IsPrimary"] is True
    assert addr["PrivateIp"].startswith("10.32.1.") and addr["NetworkInterfaceId"].startswith("eni-")
    ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nid], WaiterConfig=WAIT)
    # The same ClientToken: the same gateway, nothing new.
    again = ec2.create_nat_gateway(SubnetId=net["public"], AllocationId=alloc, ClientToken="nat-token-1")
    assert again["NatGateway"]["NatGatewayId"] == nid
    assert len(ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}])["NatGateways"]) == 1
    # Filters and tags.
    for name, value in [("nat-gateway-id", nid), ("state", "available"), ("subnet-id", net["public"]),
                        ("vpc-id", net["vpc"]), ("tag:Name", "egress"), ("tag-key", "Name")]:
        got = ec2.describe_nat_gateways(Filters=[{"Name": name, "Values": [value]}])["NatGateways"]
        assert nid in [x["NatGatewayId"] for x in got], name
    assert nid not in [x["NatGatewayId"] for x in ec2.describe_nat_gateways(
        Filters=[{"Name": "subnet-id", "Values": [net["private"]]}])["NatGateways"]]
    t = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [nid]}])["Tags"]
    assert t == [{"Key": "Name", "ResourceId": nid, "ResourceType": "natgateway", "Value": "egress"}]
    # The Elastic IP shows its association with the NAT gateway's interface, and is held.
    [shown] = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
    assert shown["AssociationId"].startswith("eipassoc-") and shown["NetworkInterfaceId"] == addr["NetworkInterfaceId"]
    assert shown["PrivateIpAddress"] == addr["PrivateIp"] and "Tags" not in shown
    before = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
    assert error_of(lambda: ec2.create_nat_gateway(SubnetId=net["public"], AllocationId=alloc))[0] == \
        "Resource.AlreadyAssociated"
    assert error_of(lambda: ec2.release_address(AllocationId=alloc))[0] == "InvalidIPAddress.InUse"
    assert ec2.describe_addresses(AllocationIds=[alloc])["Addresses"] == before
    # A route through it from a private subnet's table.
    rtb = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=rtb, SubnetId=net["private"])
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nid)
    routes = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    [default] = [x for x in routes if x["DestinationCidrBlock"] == "0.0.0.0/0"]
    assert default["NatGatewayId"] == nid and default["State"] == "active"
    assert rtb in [x["RouteTableId"] for x in ec2.describe_route_tables(
        Filters=[{"Name": "route.nat-gateway-id", "Values": [nid]}])["RouteTables"]]
    # In use: the subnet and the internet gateway cannot go.
    assert error_of(lambda: ec2.delete_subnet(SubnetId=net["public"]))[0] == "DependencyViolation"
    assert error_of(lambda: ec2.detach_internet_gateway(InternetGatewayId=net["igw"], VpcId=net["vpc"]))[0] == \
        "DependencyViolation"
    # Delete: the address stays allocated and is free again; the route is a blackhole.
    assert ec2.delete_nat_gateway(NatGatewayId=nid)["NatGatewayId"] == nid
    ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[nid], WaiterConfig=WAIT)
    g = nat(ec2, nid)
    assert g["State"] == "deleted" and g["DeleteTime"]
    assert error_of(lambda: ec2.delete_nat_gateway(NatGatewayId=nid))[0] == "NatGatewayNotFound"
    [shown] = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
    assert "AssociationId" not in shown and "NetworkInterfaceId" not in shown
    routes = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    assert [x["State"] for x in routes if x["DestinationCidrBlock"] == "0.0.0.0/0"] == ["blackhole"]
    assert error_of(lambda: ec2.replace_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0",
                                              NatGatewayId=nid))[0] == "NatGatewayNotFound"
    ec2.release_address(AllocationId=alloc)


def test_errors_and_private(ec2, net):
    before = ec2.describe_nat_gateways()["NatGateways"]
    for call, code in [
        (lambda: ec2.create_nat_gateway(SubnetId=net["public"]), "MissingParameter"),
        (lambda: ec2.create_nat_gateway(SubnetId=net["public"], AllocationId="eipalloc-0123456789abcdef0"),
         "InvalidAllocationID.NotFound"),
        (lambda: ec2.create_nat_gateway(SubnetId="subnet-0123456789abcdef0", ConnectivityType="private"),
         "InvalidSubnetID.NotFound"),
        (lambda: ec2.create_nat_gateway(SubnetId=net["public"], ConnectivityType="private",
                                        AllocationId="eipalloc-0123456789abcdef0"), "InvalidParameterCombination"),
        (lambda: ec2.create_nat_gateway(SubnetId=net["public"], ConnectivityType="private",
                                        SecondaryPrivateIpAddressCount=2), "UnsupportedOperation"),
        (lambda: ec2.create_nat_gateway(SubnetId=net["public"], ConnectivityType="private",
                                        PrivateIpAddress="10.32.2.9"), "InvalidParameterValue"),
        (lambda: ec2.describe_nat_gateways(NatGatewayIds=["nat-0123456789abcdef0"]), "NatGatewayNotFound"),
        (lambda: ec2.describe_nat_gateways(NatGatewayIds=["nat-xyz"]), "NatGatewayMalformed"),
        (lambda: ec2.delete_nat_gateway(NatGatewayId="nat-0123456789abcdef0"), "NatGatewayNotFound"),
    ]:
        assert error_of(call)[0] == code
    assert ec2.describe_nat_gateways()["NatGateways"] == before
    # A private NAT gateway: no Elastic IP, an address asked for.
    g = ec2.create_nat_gateway(SubnetId=net["private"], ConnectivityType="private",
                               PrivateIpAddress="10.32.2.20")["NatGateway"]
    assert g["ConnectivityType"] == "private" and g["State"] == "available"
    assert g["NatGatewayAddresses"][0]["PrivateIp"] == "10.32.2.20" and "PublicIp" not in g["NatGatewayAddresses"][0]
    # Its address is held.
    assert error_of(lambda: ec2.create_network_interface(SubnetId=net["private"], PrivateIpAddress="10.32.2.20"))[0] \
        == "InvalidIPAddress.InUse"
    ec2.delete_nat_gateway(NatGatewayId=g["NatGatewayId"])
    eni = ec2.create_network_interface(SubnetId=net["private"], PrivateIpAddress="10.32.2.20")["NetworkInterface"]
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])


def test_no_internet_gateway_fails(ec2):
    vid = ec2.create_vpc(CidrBlock="10.33.0.0/16")["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid])
    sid = ec2.create_subnet(VpcId=vid, CidrBlock="10.33.1.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
    alloc = None
    try:
        alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
        g = ec2.create_nat_gateway(SubnetId=sid, AllocationId=alloc)["NatGateway"]
        got = nat(ec2, g["NatGatewayId"])
        assert got["State"] == "failed" and got["FailureCode"] == "Gateway.NotAttached"
        assert got["FailureMessage"] == "Network %s has no Internet gateway attached" % vid
        # A failed gateway holds nothing: the address is free, the subnet can go.
        assert "AssociationId" not in ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    finally:
        if alloc:
            ec2.release_address(AllocationId=alloc)
        ec2.delete_subnet(SubnetId=sid)
        ec2.delete_internet_gateway(InternetGatewayId=igw)
        ec2.delete_vpc(VpcId=vid)
