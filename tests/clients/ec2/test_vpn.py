"""Site-to-site VPN through boto3 (docs/vpn.md): customer gateways, VPN gateways attached to a VPC
(CloudStack's VPN gateway of the VPC), VPN connections with static routes (the CloudStack customer
gateway's cidrlist), route propagation into route tables, tags, filters, the waiters, and EC2's
errors. CloudStack's side is checked through the simulator's own API."""
import xml.etree.ElementTree as ET

import pytest
from cs import CloudStack
from harness import client_error as error_of

WAIT = {"Delay": 1, "MaxAttempts": 30}


def tags(**kv):
    return [{"Key": k, "Value": v} for k, v in kv.items()]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def cloudstack(gateway, user):
    return CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"], secret=user["secret_key"],
                      poll_interval=0.05, job_timeout=30)


def cs_list(cloudstack, command, key, **params):
    return getattr(cloudstack, command)(listall="true", **params).get(key, [])


@pytest.fixture
def vpc(ec2):
    v = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[v["VpcId"]])
    yield v["VpcId"]
    vid = v["VpcId"]
    for c in ec2.describe_vpn_connections(Filters=[{"Name": "state", "Values": ["available", "pending"]}])[
            "VpnConnections"]:
        ec2.delete_vpn_connection(VpnConnectionId=c["VpnConnectionId"])
    for g in ec2.describe_vpn_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vid]},
                                                {"Name": "attachment.state", "Values": ["attached"]}])["VpnGateways"]:
        ec2.detach_vpn_gateway(VpnGatewayId=g["VpnGatewayId"], VpcId=vid)
    ec2.delete_vpc(VpcId=vid)


@pytest.fixture
def cgw(ec2):
    c = ec2.create_customer_gateway(Type="ipsec.1", IpAddress="203.0.113.10", BgpAsn=65010)["CustomerGateway"]
    yield c["CustomerGatewayId"]


def test_customer_gateway_lifecycle_filters_and_errors(ec2):
    c = ec2.create_customer_gateway(
        Type="ipsec.1", PublicIp="198.51.100.7", BgpAsn=65001, DeviceName="edge-1",
        TagSpecifications=[{"ResourceType": "customer-gateway", "Tags": tags(Name="office")}],
    )["CustomerGateway"]
    cid = c["CustomerGatewayId"]
    assert cid.startswith("cgw-") and len(cid) == 21
    assert (c["State"], c["Type"], c["IpAddress"], c["BgpAsn"], c["DeviceName"]) == \
        ("available", "ipsec.1", "198.51.100.7", "65001", "edge-1")
    assert c["Tags"] == tags(Name="office")
    # EC2: the same type, address and ASN answer the existing customer gateway.
    again = ec2.create_customer_gateway(Type="ipsec.1", IpAddress="198.51.100.7", BgpAsn=65001)["CustomerGateway"]
    assert again["CustomerGatewayId"] == cid
    ec2.get_waiter("customer_gateway_available").wait(CustomerGatewayIds=[cid], WaiterConfig=WAIT)
    for f in [("bgp-asn", "65001"), ("ip-address", "198.51.100.7"), ("state", "available"), ("type", "ipsec.1"),
              ("tag:Name", "office"), ("customer-gateway-id", cid)]:
        got = ec2.describe_customer_gateways(Filters=[{"Name": f[0], "Values": [f[1]]}])["CustomerGateways"]
        assert cid in [g["CustomerGatewayId"] for g in got], f
    assert ec2.describe_customer_gateways(Filters=[{"Name": "bgp-asn", "Values": ["1"]}])["CustomerGateways"] == []
    assert error_of(lambda: ec2.describe_customer_gateways(Filters=[{"Name": "nope", "Values": ["x"]}]))[0] == \
        "InvalidParameterValue"
    # Errors: malformed and unknown ids, bad values, what this cloud cannot do.
    assert error_of(lambda: ec2.describe_customer_gateways(CustomerGatewayIds=["cgw-nope"])) == \
        ("InvalidCustomerGatewayId.Malformed", 'Invalid id: "cgw-nope" (expecting "cgw-...")')
    assert error_of(lambda: ec2.delete_customer_gateway(CustomerGatewayId="cgw-0123456789abcdef0")) == \
        ("InvalidCustomerGatewayID.NotFound", "The customerGateway ID 'cgw-0123456789abcdef0' does not exist")
    assert error_of(lambda: ec2.create_customer_gateway(Type="ipsec.2", IpAddress="198.51.100.8"))[0] == \
        "InvalidParameterValue"
    assert error_of(lambda: ec2.create_customer_gateway(Type="ipsec.1", IpAddress="not-an-ip"))[0] == \
        "InvalidParameterValue"
    assert error_of(lambda: ec2.create_customer_gateway(Type="ipsec.1", IpAddress="198.51.100.8",
                                                        CertificateArn="arn:aws:acm:x"))[0] == "UnsupportedOperation"
    assert error_of(lambda: ec2.create_customer_gateway(Type="ipsec.1", IpAddress="198.51.100.8", BgpAsn=0))[0] == \
        "InvalidParameterValue"
    # Deleted: shown as deleted (the waiter fails on it), gone for everything else.
    ec2.delete_customer_gateway(CustomerGatewayId=cid)
    got = ec2.describe_customer_gateways(CustomerGatewayIds=[cid])["CustomerGateways"]
    assert [g["State"] for g in got] == ["deleted"]
    with pytest.raises(Exception):
        ec2.get_waiter("customer_gateway_available").wait(CustomerGatewayIds=[cid], WaiterConfig=WAIT)
    assert error_of(lambda: ec2.delete_customer_gateway(CustomerGatewayId=cid))[0] == \
        "InvalidCustomerGatewayID.NotFound"
    assert cid not in [t["ResourceId"] for t in ec2.describe_tags()["Tags"]]


def test_vpn_gateway_attach_detach_and_errors(ec2, cloudstack, vpc):
    g = ec2.create_vpn_gateway(
        Type="ipsec.1", AmazonSideAsn=64600,
        TagSpecifications=[{"ResourceType": "vpn-gateway", "Tags": tags(Name="vgw-a")}],
    )["VpnGateway"]
    gid = g["VpnGatewayId"]
    assert gid.startswith("vgw-")
    assert (g["State"], g["Type"], g["AmazonSideAsn"], g["VpcAttachments"]) == ("available", "ipsec.1", 64600, [])
    vpc_uuid = cs_list(cloudstack, "listVPCs", "vpc")
    assert cs_list(cloudstack, "listVpnGateways", "vpngateway") == [] or True
    att = ec2.attach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc)["VpcAttachment"]
    assert att == {"VpcId": vpc, "State": "attached"}
    # CloudStack: the VPC's site-to-site VPN gateway now exists.
    cs_vpc = [v for v in vpc_uuid if v["cidr"] == "10.40.0.0/16"]
    assert cs_vpc
    cs_gws = cs_list(cloudstack, "listVpnGateways", "vpngateway", vpcid=cs_vpc[0]["id"])
    assert len(cs_gws) == 1 and cs_gws[0]["publicip"]
    got = ec2.describe_vpn_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])["VpnGateways"]
    assert [x["VpnGatewayId"] for x in got] == [gid]
    assert got[0]["VpcAttachments"] == [{"VpcId": vpc, "State": "attached"}]
    for f in [("amazon-side-asn", "64600"), ("attachment.state", "attached"), ("tag:Name", "vgw-a"),
              ("type", "ipsec.1"), ("vpn-gateway-id", gid)]:
        assert gid in [x["VpnGatewayId"] for x in
                       ec2.describe_vpn_gateways(Filters=[{"Name": f[0], "Values": [f[1]]}])["VpnGateways"]], f
    # A second VPN gateway on the VPC; the same gateway twice.
    other = ec2.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
    code, msg = error_of(lambda: ec2.attach_vpn_gateway(VpnGatewayId=other, VpcId=vpc))
    assert code == "InvalidVpcState" and gid in msg
    assert error_of(lambda: ec2.attach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc))[0] == \
        "VpnGatewayAttachmentLimitExceeded"
    assert len(cs_list(cloudstack, "listVpnGateways", "vpngateway", vpcid=cs_vpc[0]["id"])) == 1
    # Attached: cannot be deleted, and the VPC cannot be deleted either.
    code, msg = error_of(lambda: ec2.delete_vpn_gateway(VpnGatewayId=gid))
    assert code == "IncorrectState" and vpc in msg
    assert error_of(lambda: ec2.delete_vpc(VpcId=vpc))[0] == "DependencyViolation"
    # Detach from the wrong VPC, unknown and malformed ids.
    assert error_of(lambda: ec2.detach_vpn_gateway(VpnGatewayId=other, VpcId=vpc)) == (
        "InvalidVpnGatewayAttachment.NotFound",
        "The attachment with vpn gateway ID '%s' and vpc ID '%s' does not exist" % (other, vpc))
    assert error_of(lambda: ec2.attach_vpn_gateway(VpnGatewayId="vgw-0123456789abcdef0", VpcId=vpc))[0] == \
        "InvalidVpnGatewayID.NotFound"
    assert error_of(lambda: ec2.describe_vpn_gateways(VpnGatewayIds=["vgw-xyz"]))[0] == "InvalidVpnGatewayId.Malformed"
    assert error_of(lambda: ec2.attach_vpn_gateway(VpnGatewayId=other, VpcId="vpc-0123456789abcdef0"))[0] == \
        "InvalidVpcID.NotFound"
    assert error_of(lambda: ec2.create_vpn_gateway(Type="ipsec.1", AmazonSideAsn=100))[0] == "InvalidParameterValue"
    # A VPN gateway as a route target: attached to the table's VPC, else refused.
    rtb = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                             {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    rtb = rtb["RouteTableId"]
    ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="192.168.99.0/24", GatewayId=gid)
    assert error_of(lambda: ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="192.168.98.0/24",
                                             GatewayId=other))[0] == "InvalidParameterValue"

    def vgw_route():
        t = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
        return [(r["GatewayId"], r["State"], r["Origin"]) for r in t["Routes"]
                if r["DestinationCidrBlock"] == "192.168.99.0/24"]
    assert vgw_route() == [(gid, "active", "CreateRoute")]
    # Detach: CloudStack's VPN gateway goes; the attachment shows detached; its route is a blackhole.
    ec2.detach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc)
    assert vgw_route() == [(gid, "blackhole", "CreateRoute")]
    ec2.delete_route(RouteTableId=rtb, DestinationCidrBlock="192.168.99.0/24")
    assert cs_list(cloudstack, "listVpnGateways", "vpngateway", vpcid=cs_vpc[0]["id"]) == []
    got = ec2.describe_vpn_gateways(VpnGatewayIds=[gid])["VpnGateways"][0]
    assert got["VpcAttachments"] == [{"VpcId": vpc, "State": "detached"}]
    # The other one can attach now, then both go.
    ec2.attach_vpn_gateway(VpnGatewayId=other, VpcId=vpc)
    ec2.detach_vpn_gateway(VpnGatewayId=other, VpcId=vpc)
    for x in (gid, other):
        ec2.delete_vpn_gateway(VpnGatewayId=x)
    states = {x["VpnGatewayId"]: x["State"] for x in
              ec2.describe_vpn_gateways(VpnGatewayIds=[gid, other])["VpnGateways"]}
    assert states == {gid: "deleted", other: "deleted"}
    assert error_of(lambda: ec2.attach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc))[0] == "InvalidVpnGatewayID.NotFound"


def connection_options(psk="secret_key.1234"):
    return {
        "StaticRoutesOnly": True,
        "TunnelOptions": [{
            "PreSharedKey": psk,
            "Phase1EncryptionAlgorithms": [{"Value": "AES256"}],
            "Phase1IntegrityAlgorithms": [{"Value": "SHA2-256"}],
            "Phase1DHGroupNumbers": [{"Value": 14}],
            "Phase2EncryptionAlgorithms": [{"Value": "AES128"}, {"Value": "AES256"}],
            "Phase2IntegrityAlgorithms": [{"Value": "SHA1"}],
            "Phase2DHGroupNumbers": [{"Value": 5}],
            "Phase1LifetimeSeconds": 14400,
            "Phase2LifetimeSeconds": 3600,
            "IKEVersions": [{"Value": "ikev2"}],
        }],
    }


def test_vpn_connection_routes_propagation_and_cleanup(ec2, cloudstack, vpc, cgw):
    gid = ec2.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
    # A connection needs its VPN gateway in a VPC (CloudStack's VPN gateways belong to one).
    assert error_of(lambda: ec2.create_vpn_connection(Type="ipsec.1", CustomerGatewayId=cgw, VpnGatewayId=gid,
                                                      Options={"StaticRoutesOnly": True}))[0] == "IncorrectState"
    ec2.attach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc)
    cs_vpc = [v for v in cs_list(cloudstack, "listVPCs", "vpc") if v["cidr"] == "10.40.0.0/16"][0]
    public_ip = cs_list(cloudstack, "listVpnGateways", "vpngateway", vpcid=cs_vpc["id"])[0]["publicip"]
    c = ec2.create_vpn_connection(
        Type="ipsec.1", CustomerGatewayId=cgw, VpnGatewayId=gid, Options=connection_options(),
        TagSpecifications=[{"ResourceType": "vpn-connection", "Tags": tags(Name="to-office")}],
    )["VpnConnection"]
    vid = c["VpnConnectionId"]
    assert vid.startswith("vpn-")
    assert (c["Type"], c["CustomerGatewayId"], c["VpnGatewayId"], c["Options"]["StaticRoutesOnly"]) == \
        ("ipsec.1", cgw, gid, True)
    assert c["Tags"] == tags(Name="to-office")
    tunnel = c["Options"]["TunnelOptions"][0]
    assert tunnel["OutsideIpAddress"] == public_ip and tunnel["PreSharedKey"] == "secret_key.1234"
    assert [x["Value"] for x in tunnel["Phase1EncryptionAlgorithms"]] == ["AES256"]
    assert [x["Value"] for x in tunnel["Phase2DHGroupNumbers"]] == [5]
    # The configuration document EC2 answers: the addresses, the key and the first proposals.
    doc = ET.fromstring(c["CustomerGatewayConfiguration"])
    assert doc.get("id") == vid
    assert doc.findtext("customer_gateway_id") == cgw and doc.findtext("vpn_gateway_id") == gid
    t = doc.find("ipsec_tunnel")
    assert t.findtext("customer_gateway/tunnel_outside_address/ip_address") == "203.0.113.10"
    assert t.findtext("vpn_gateway/tunnel_outside_address/ip_address") == public_ip
    assert (t.findtext("ike/encryption_protocol"), t.findtext("ike/authentication_protocol"),
            t.findtext("ike/perfect_forward_secrecy"), t.findtext("ike/lifetime"),
            t.findtext("ike/pre_shared_key")) == ("aes-256-cbc", "sha2-256", "group14", "14400", "secret_key.1234")
    assert (t.findtext("ipsec/encryption_protocol"), t.findtext("ipsec/authentication_protocol"),
            t.findtext("ipsec/perfect_forward_secrecy")) == ("aes-128-cbc", "hmac-sha1-96", "group5")
    ec2.get_waiter("vpn_connection_available").wait(VpnConnectionIds=[vid], WaiterConfig=WAIT)
    # No routes yet: nothing in CloudStack (it refuses a customer gateway without CIDRs).
    assert cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=vid) == []
    # One connection per customer gateway and VPN gateway.
    assert error_of(lambda: ec2.create_vpn_connection(Type="ipsec.1", CustomerGatewayId=cgw, VpnGatewayId=gid,
                                                      Options={"StaticRoutesOnly": True}))[0] == "InvalidOption.Conflict"
    # Routes: the CloudStack customer gateway's cidrlist, with the policies of the tunnel options.
    ec2.create_vpn_connection_route(VpnConnectionId=vid, DestinationCidrBlock="192.168.10.0/24")
    cgws = cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=vid)
    assert len(cgws) == 1
    assert (cgws[0]["gateway"], cgws[0]["cidrlist"], cgws[0]["ipsecpsk"]) == \
        ("203.0.113.10", "192.168.10.0/24", "secret_key.1234")
    assert cgws[0]["ikepolicy"] == "aes256-sha256;modp2048"
    assert cgws[0]["esppolicy"] == "aes128-sha1;modp1536,aes256-sha1;modp1536"
    assert (int(cgws[0]["ikelifetime"]), int(cgws[0]["esplifetime"]), cgws[0]["ikeversion"]) == (14400, 3600, "ikev2")
    conns = cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpc["id"])
    assert len(conns) == 1 and conns[0]["s2scustomergatewayid"] == cgws[0]["id"]
    ec2.create_vpn_connection_route(VpnConnectionId=vid, DestinationCidrBlock="192.168.20.0/24")
    cgws = cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=vid)
    assert sorted(cgws[0]["cidrlist"].split(",")) == ["192.168.10.0/24", "192.168.20.0/24"]
    assert error_of(lambda: ec2.create_vpn_connection_route(VpnConnectionId=vid,
                                                            DestinationCidrBlock="192.168.10.0/24"))[0] == \
        "RouteAlreadyExists"
    assert error_of(lambda: ec2.create_vpn_connection_route(VpnConnectionId=vid,
                                                            DestinationCidrBlock="10.40.1.0/24"))[0] == \
        "InvalidParameterValue"
    assert error_of(lambda: ec2.create_vpn_connection_route(VpnConnectionId=vid, DestinationCidrBlock="nope"))[0] == \
        "InvalidParameterValue"
    ec2.get_waiter("vpn_connection_available").wait(VpnConnectionIds=[vid], WaiterConfig=WAIT)
    got = ec2.describe_vpn_connections(VpnConnectionIds=[vid])["VpnConnections"][0]
    assert sorted(r["DestinationCidrBlock"] for r in got["Routes"]) == ["192.168.10.0/24", "192.168.20.0/24"]
    assert {r["Source"] for r in got["Routes"]} == {"Static"}
    assert got["VgwTelemetry"][0]["Status"] == "UP" and got["VgwTelemetry"][0]["OutsideIpAddress"] == public_ip
    for f in [("route.destination-cidr-block", "192.168.20.0/24"), ("customer-gateway-id", cgw),
              ("vpn-gateway-id", gid), ("option.static-routes-only", "true"), ("state", "available"),
              ("tag:Name", "to-office"), ("type", "ipsec.1")]:
        assert vid in [x["VpnConnectionId"] for x in
                       ec2.describe_vpn_connections(Filters=[{"Name": f[0], "Values": [f[1]]}])["VpnConnections"]], f
    # Route propagation into the VPC's main route table.
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    rtb = main["RouteTableId"]
    ec2.enable_vgw_route_propagation(GatewayId=gid, RouteTableId=rtb)
    t = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    assert t["PropagatingVgws"] == [{"GatewayId": gid}]
    propagated = sorted((r["DestinationCidrBlock"], r["GatewayId"], r["Origin"], r["State"]) for r in t["Routes"]
                        if r["Origin"] == "EnableVgwRoutePropagation")
    assert propagated == [("192.168.10.0/24", gid, "EnableVgwRoutePropagation", "active"),
                          ("192.168.20.0/24", gid, "EnableVgwRoutePropagation", "active")]
    by_route = ec2.describe_route_tables(Filters=[{"Name": "route.gateway-id", "Values": [gid]}])["RouteTables"]
    assert rtb in [x["RouteTableId"] for x in by_route]
    ec2.disable_vgw_route_propagation(GatewayId=gid, RouteTableId=rtb)
    t = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    assert t["PropagatingVgws"] == [] and all(r["Origin"] != "EnableVgwRoutePropagation" for r in t["Routes"])
    ec2.enable_vgw_route_propagation(GatewayId=gid, RouteTableId=rtb)
    # In use: the customer gateway cannot be deleted, the VPN gateway not detached.
    assert error_of(lambda: ec2.delete_customer_gateway(CustomerGatewayId=cgw))[0] == "IncorrectState"
    assert error_of(lambda: ec2.detach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc))[0] == "IncorrectState"
    # Routes go; the last one takes CloudStack's customer gateway and connection with it.
    ec2.delete_vpn_connection_route(VpnConnectionId=vid, DestinationCidrBlock="192.168.10.0/24")
    cgws = cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=vid)
    assert cgws[0]["cidrlist"] == "192.168.20.0/24"
    assert error_of(lambda: ec2.delete_vpn_connection_route(VpnConnectionId=vid,
                                                            DestinationCidrBlock="192.168.10.0/24"))[0] == \
        "InvalidRoute.NotFound"
    t = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    assert [r["DestinationCidrBlock"] for r in t["Routes"] if r["Origin"] == "EnableVgwRoutePropagation"] == \
        ["192.168.20.0/24"]
    ec2.delete_vpn_connection(VpnConnectionId=vid)
    ec2.get_waiter("vpn_connection_deleted").wait(VpnConnectionIds=[vid], WaiterConfig=WAIT)
    assert cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=vid) == []
    assert cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpc["id"]) == []
    assert error_of(lambda: ec2.delete_vpn_connection(VpnConnectionId=vid))[0] == "InvalidVpnConnectionID.NotFound"
    # Deleted: the pair is free again; then everything goes.
    again = ec2.create_vpn_connection(Type="ipsec.1", CustomerGatewayId=cgw, VpnGatewayId=gid,
                                      Options={"StaticRoutesOnly": True})["VpnConnection"]["VpnConnectionId"]
    ec2.create_vpn_connection_route(VpnConnectionId=again, DestinationCidrBlock="172.16.0.0/16")
    ec2.delete_vpn_connection(VpnConnectionId=again)
    ec2.detach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc)
    ec2.delete_vpn_gateway(VpnGatewayId=gid)
    ec2.delete_customer_gateway(CustomerGatewayId=cgw)
    assert cs_list(cloudstack, "listVpnGateways", "vpngateway", vpcid=cs_vpc["id"]) == []
    assert cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword="vpn-") == []


def test_vpn_connection_refusals_and_ids(ec2, vpc, cgw):
    gid = ec2.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
    ec2.attach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc)

    def create(**kw):
        args = dict(Type="ipsec.1", CustomerGatewayId=cgw, VpnGatewayId=gid)
        args.update(kw)
        return error_of(lambda: ec2.create_vpn_connection(**args))

    def tunnel(**kw):
        return {"StaticRoutesOnly": True, "TunnelOptions": [kw]}

    # BGP (dynamic routing) is not something CloudStack can do.
    code, msg = create(Options={"StaticRoutesOnly": False})
    assert code == "UnsupportedOperation" and "StaticRoutesOnly" in msg
    assert create(Type="ipsec.2")[0] == "InvalidParameterValue"
    assert create(TransitGatewayId="tgw-0123456789abcdef0")[0] == "UnsupportedOperation"
    assert create(Options={"StaticRoutesOnly": True, "EnableAcceleration": True})[0] == "UnsupportedOperation"
    assert create(Options={"StaticRoutesOnly": True, "TunnelInsideIpVersion": "ipv6"})[0] == "UnsupportedOperation"
    assert create(Options={"StaticRoutesOnly": True, "LocalIpv4NetworkCidr": "192.168.0.0/16"})[0] == \
        "UnsupportedOperation"
    assert create(Options=tunnel(Phase1EncryptionAlgorithms=[{"Value": "AES128-GCM-16"}]))[0] == "UnsupportedOperation"
    assert create(Options=tunnel(Phase1EncryptionAlgorithms=[{"Value": "DES"}]))[0] == "InvalidParameterValue"
    assert create(Options=tunnel(Phase1DHGroupNumbers=[{"Value": 19}]))[0] == "UnsupportedOperation"
    assert create(Options=tunnel(Phase1DHGroupNumbers=[{"Value": 5}]))[0] == "InvalidParameterValue"
    assert create(Options=tunnel(Phase1LifetimeSeconds=5400))[0] == "UnsupportedOperation"
    assert create(Options=tunnel(Phase2LifetimeSeconds=7200))[0] == "InvalidParameterValue"
    assert create(Options=tunnel(PreSharedKey="0short"))[0] == "InvalidParameterValue"
    assert create(Options=tunnel(TunnelInsideCidr="169.254.10.0/30"))[0] == "UnsupportedOperation"
    assert create(Options=tunnel(DPDTimeoutAction="clear"))[0] == "UnsupportedOperation"
    assert create(Options=tunnel(StartupAction="start"))[0] == "UnsupportedOperation"
    assert create(Options={"StaticRoutesOnly": True, "TunnelOptions": [{"PreSharedKey": "aaaaaaaa1"},
                                                                        {"PreSharedKey": "bbbbbbbb1"}]})[0] == \
        "UnsupportedOperation"
    assert create(CustomerGatewayId="cgw-0123456789abcdef0")[0] == "InvalidCustomerGatewayID.NotFound"
    assert create(VpnGatewayId="vgw-nope")[0] == "InvalidVpnGatewayId.Malformed"
    # Nothing was made by any of those.
    assert [c for c in ec2.describe_vpn_connections()["VpnConnections"] if c["State"] != "deleted"] == []
    # Without Options: static routes (what CloudStack does), answered as such; a generated key.
    c = ec2.create_vpn_connection(Type="ipsec.1", CustomerGatewayId=cgw, VpnGatewayId=gid)["VpnConnection"]
    assert c["Options"]["StaticRoutesOnly"] is True
    psk = c["Options"]["TunnelOptions"][0]["PreSharedKey"]
    assert len(psk) == 32 and not psk.startswith("0")
    vid = c["VpnConnectionId"]
    assert error_of(lambda: ec2.describe_vpn_connections(VpnConnectionIds=["vpn-zz"])) == \
        ("InvalidVpnConnectionID", 'Invalid id: "vpn-zz" (expecting "vpn-...")')
    assert error_of(lambda: ec2.describe_vpn_connections(VpnConnectionIds=["vpn-0123456789abcdef0"])) == \
        ("InvalidVpnConnectionID.NotFound", "The vpnConnection ID 'vpn-0123456789abcdef0' does not exist")
    assert error_of(lambda: ec2.create_vpn_connection_route(VpnConnectionId="vpn-0123456789abcdef0",
                                                            DestinationCidrBlock="10.9.0.0/16"))[0] == \
        "InvalidVpnConnectionID.NotFound"
    # Tags on all three kinds; DescribeTags with their resource types.
    ec2.create_tags(Resources=[vid, gid, cgw], Tags=tags(team="net"))
    rows = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["team"]}])["Tags"]
    assert sorted((r["ResourceId"], r["ResourceType"]) for r in rows) == sorted(
        [(vid, "vpn-connection"), (gid, "vpn-gateway"), (cgw, "customer-gateway")])
    for rt, rid in [("vpn-connection", vid), ("vpn-gateway", gid), ("customer-gateway", cgw)]:
        rows = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": [rt]}])["Tags"]
        assert [r["ResourceId"] for r in rows if r["Key"] == "team"] == [rid]
    ec2.delete_tags(Resources=[vid], Tags=[{"Key": "team"}])
    assert ec2.describe_vpn_connections(VpnConnectionIds=[vid])["VpnConnections"][0].get("Tags", []) == []
    assert error_of(lambda: ec2.create_tags(Resources=["vpn-0123456789abcdef0"], Tags=tags(a="b")))[0] == \
        "InvalidVpnConnectionID.NotFound"
    ec2.delete_vpn_connection(VpnConnectionId=vid)
    ec2.detach_vpn_gateway(VpnGatewayId=gid, VpcId=vpc)
    ec2.delete_vpn_gateway(VpnGatewayId=gid)
    ec2.delete_customer_gateway(CustomerGatewayId=cgw)


def test_aws_cli_vpn_flow_leaves_nothing_behind(aws_cli, cloudstack):
    """The AWS CLI: a VPN from a VPC to a customer gateway with a static route propagated into the
    main route table, then everything torn down, with nothing left in CloudStack or the store."""
    def cli(*args):
        rc, out, err = aws_cli("ec2", *args)
        assert rc == 0, (args, err)
        return out

    vpc = cli("create-vpc", "--cidr-block", "10.41.0.0/16")["Vpc"]["VpcId"]
    cgw = cli("create-customer-gateway", "--type", "ipsec.1", "--public-ip", "198.51.100.41",
              "--bgp-asn", "65041")["CustomerGateway"]["CustomerGatewayId"]
    vgw = cli("create-vpn-gateway", "--type", "ipsec.1")["VpnGateway"]["VpnGatewayId"]
    assert cli("attach-vpn-gateway", "--vpn-gateway-id", vgw, "--vpc-id", vpc)["VpcAttachment"]["State"] == "attached"
    conn = cli("create-vpn-connection", "--type", "ipsec.1", "--customer-gateway-id", cgw, "--vpn-gateway-id", vgw,
               "--options", '{"StaticRoutesOnly": true, "TunnelOptions": [{"PreSharedKey": "cli_key_4141"}]}')
    vid = conn["VpnConnection"]["VpnConnectionId"]
    assert "cli_key_4141" in conn["VpnConnection"]["CustomerGatewayConfiguration"]
    cli("create-vpn-connection-route", "--vpn-connection-id", vid, "--destination-cidr-block", "172.30.0.0/16")
    cli("wait", "vpn-connection-available", "--vpn-connection-ids", vid)
    rtb = cli("describe-route-tables", "--filters", "Name=vpc-id,Values=" + vpc,
              "Name=association.main,Values=true")["RouteTables"][0]["RouteTableId"]
    cli("enable-vgw-route-propagation", "--gateway-id", vgw, "--route-table-id", rtb)
    routes = cli("describe-route-tables", "--route-table-ids", rtb)["RouteTables"][0]["Routes"]
    assert {"DestinationCidrBlock": "172.30.0.0/16", "GatewayId": vgw, "Origin": "EnableVgwRoutePropagation",
            "State": "active"} in routes
    cs_vpc = [v for v in cs_list(cloudstack, "listVPCs", "vpc") if v["cidr"] == "10.41.0.0/16"][0]
    assert len(cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpc["id"])) == 1
    # Tear down in EC2's order.
    cli("disable-vgw-route-propagation", "--gateway-id", vgw, "--route-table-id", rtb)
    cli("delete-vpn-connection-route", "--vpn-connection-id", vid, "--destination-cidr-block", "172.30.0.0/16")
    cli("delete-vpn-connection", "--vpn-connection-id", vid)
    cli("wait", "vpn-connection-deleted", "--vpn-connection-ids", vid)
    cli("detach-vpn-gateway", "--vpn-gateway-id", vgw, "--vpc-id", vpc)
    cli("delete-vpn-gateway", "--vpn-gateway-id", vgw)
    cli("delete-customer-gateway", "--customer-gateway-id", cgw)
    cli("delete-vpc", "--vpc-id", vpc)
    assert cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpc["id"]) == []
    assert cs_list(cloudstack, "listVpnGateways", "vpngateway", vpcid=cs_vpc["id"]) == []
    assert cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=vid) == []
    assert [v for v in cs_list(cloudstack, "listVPCs", "vpc") if v["id"] == cs_vpc["id"]] == []
    live = lambda key, rows, state_key="State": [r for r in rows if r[state_key] != "deleted"]
    assert live("", cli("describe-vpn-connections", "--vpn-connection-ids", vid)["VpnConnections"]) == []
    assert live("", cli("describe-vpn-gateways", "--vpn-gateway-ids", vgw)["VpnGateways"]) == []
    assert live("", cli("describe-customer-gateways", "--customer-gateway-ids", cgw)["CustomerGateways"]) == []
