"""ModifyVpnTunnelOptions, ModifyVpnConnectionOptions and ModifyVpnConnection through boto3
(docs/vpn.md "Changing a connection"): tunnel options changed (what is not named stays) and
applied to CloudStack's customer gateway; the traffic selectors (only 0.0.0.0/0); another
customer gateway (the CloudStack customer gateway's address) and another VPN gateway (the
CloudStack connection moves to the other VPC's VPN gateway); and the refusals, each changing
nothing. CloudStack's side is checked through the simulator's own API."""
import pytest
from cs import CloudStack
from harness import client_error as error_of

WAIT = {"Delay": 1, "MaxAttempts": 30}


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def cloudstack(gateway, user):
    return CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"], secret=user["secret_key"],
                      poll_interval=0.05, job_timeout=30)


def cs_list(cloudstack, command, key, **params):
    return getattr(cloudstack, command)(listall="true", **params).get(key, [])


def vpn_of(ec2, vid):
    return ec2.describe_vpn_connections(VpnConnectionIds=[vid])["VpnConnections"][0]


def test_modify_tunnel_options_and_connection(ec2, cloudstack):
    vpcs = [ec2.create_vpc(CidrBlock=c)["Vpc"]["VpcId"] for c in ("10.44.0.0/16", "10.45.0.0/16")]
    ec2.get_waiter("vpc_available").wait(VpcIds=vpcs)
    vgws = [ec2.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"] for _ in vpcs]
    for g, v in zip(vgws, vpcs):
        ec2.attach_vpn_gateway(VpnGatewayId=g, VpcId=v)
    cgw1 = ec2.create_customer_gateway(Type="ipsec.1", IpAddress="203.0.113.44", BgpAsn=65044)[
        "CustomerGateway"]["CustomerGatewayId"]
    cgw2 = ec2.create_customer_gateway(Type="ipsec.1", IpAddress="203.0.113.45", BgpAsn=65045)[
        "CustomerGateway"]["CustomerGatewayId"]
    conn = ec2.create_vpn_connection(
        Type="ipsec.1", CustomerGatewayId=cgw1, VpnGatewayId=vgws[0],
        Options={"StaticRoutesOnly": True, "TunnelOptions": [{"PreSharedKey": "first_key_44",
                                                              "Phase1DHGroupNumbers": [{"Value": 14}]}]},
    )["VpnConnection"]
    cid = conn["VpnConnectionId"]
    ec2.create_vpn_connection_route(VpnConnectionId=cid, DestinationCidrBlock="172.31.44.0/24")
    ec2.get_waiter("vpn_connection_available").wait(VpnConnectionIds=[cid], WaiterConfig=WAIT)
    outside = vpn_of(ec2, cid)["Options"]["TunnelOptions"][0]["OutsideIpAddress"]

    def cs_cgw():
        found = cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=cid)
        assert len(found) == 1
        return found[0]

    # --- tunnel options: the key and phase 2 change; phase 1's DH group 14 stays -----------------
    got = ec2.modify_vpn_tunnel_options(
        VpnConnectionId=cid, VpnTunnelOutsideIpAddress=outside,
        TunnelOptions={"PreSharedKey": "second_key_44", "Phase2EncryptionAlgorithms": [{"Value": "AES256"}],
                       "Phase2IntegrityAlgorithms": [{"Value": "SHA2-256"}]})["VpnConnection"]
    t = got["Options"]["TunnelOptions"][0]
    assert t["PreSharedKey"] == "second_key_44" and t["OutsideIpAddress"] == outside
    assert [x["Value"] for x in t["Phase1DHGroupNumbers"]] == [14]
    assert [x["Value"] for x in t["Phase2EncryptionAlgorithms"]] == ["AES256"]
    assert "<pre_shared_key>second_key_44</pre_shared_key>" in got["CustomerGatewayConfiguration"]
    c = cs_cgw()
    assert (c["ipsecpsk"], c["ikepolicy"], c["esppolicy"]) == \
        ("second_key_44", "aes128-sha1;modp2048", "aes256-sha256;modp1024")
    assert vpn_of(ec2, cid)["Options"]["TunnelOptions"][0]["PreSharedKey"] == "second_key_44"
    # Refusals change nothing.
    before = (vpn_of(ec2, cid)["Options"], cs_cgw())
    for kw, code in [
        (dict(VpnTunnelOutsideIpAddress="192.0.2.250", TunnelOptions={"PreSharedKey": "third_key_44"}),
         "InvalidParameterValue"),
        (dict(VpnTunnelOutsideIpAddress=outside, TunnelOptions={"Phase2LifetimeSeconds": 1800}),
         "UnsupportedOperation"),
        (dict(VpnTunnelOutsideIpAddress=outside, TunnelOptions={"TunnelInsideCidr": "169.254.10.0/30"}),
         "UnsupportedOperation"),
        (dict(VpnTunnelOutsideIpAddress=outside, TunnelOptions={"PreSharedKey": "short"}), "InvalidParameterValue"),
        (dict(VpnTunnelOutsideIpAddress=outside, TunnelOptions={"PreSharedKey": "third_key_44"},
              SkipTunnelReplacement=True), "UnsupportedOperation"),
    ]:
        assert error_of(lambda: ec2.modify_vpn_tunnel_options(VpnConnectionId=cid, **kw))[0] == code, kw
    assert (vpn_of(ec2, cid)["Options"], cs_cgw()) == before

    # --- connection options: only "any" ------------------------------------------------------------
    got = ec2.modify_vpn_connection_options(VpnConnectionId=cid, LocalIpv4NetworkCidr="0.0.0.0/0",
                                            RemoteIpv4NetworkCidr="0.0.0.0/0")["VpnConnection"]
    assert (got["Options"]["LocalIpv4NetworkCidr"], got["Options"]["RemoteIpv4NetworkCidr"]) == \
        ("0.0.0.0/0", "0.0.0.0/0")
    assert error_of(lambda: ec2.modify_vpn_connection_options(
        VpnConnectionId=cid, RemoteIpv4NetworkCidr="192.168.0.0/16"))[0] == "UnsupportedOperation"
    assert error_of(lambda: ec2.modify_vpn_connection_options(
        VpnConnectionId=cid, LocalIpv6NetworkCidr="::/0"))[0] == "UnsupportedOperation"

    # --- another customer gateway: CloudStack's customer gateway gets its address ---------------------
    got = ec2.modify_vpn_connection(VpnConnectionId=cid, CustomerGatewayId=cgw2)["VpnConnection"]
    assert got["CustomerGatewayId"] == cgw2 and "203.0.113.45" in got["CustomerGatewayConfiguration"]
    assert cs_cgw()["gateway"] == "203.0.113.45"
    assert [x["VpnConnectionId"] for x in ec2.describe_vpn_connections(
        Filters=[{"Name": "customer-gateway-id", "Values": [cgw2]}])["VpnConnections"]] == [cid]
    # The old customer gateway is free again (no connection uses it), the new one is in use.
    assert error_of(lambda: ec2.delete_customer_gateway(CustomerGatewayId=cgw2))[0] == "IncorrectState"

    # --- another VPN gateway: the CloudStack connection moves to the other VPC --------------------------
    cs_vpcs = {v["cidr"]: v["id"] for v in cs_list(cloudstack, "listVPCs", "vpc")}
    assert len(cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpcs["10.44.0.0/16"])) == 1
    got = ec2.modify_vpn_connection(VpnConnectionId=cid, VpnGatewayId=vgws[1])["VpnConnection"]
    new_outside = got["Options"]["TunnelOptions"][0]["OutsideIpAddress"]
    assert got["VpnGatewayId"] == vgws[1] and new_outside != outside
    assert [r["DestinationCidrBlock"] for r in got["Routes"]] == ["172.31.44.0/24"]
    assert cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpcs["10.44.0.0/16"]) == []
    assert len(cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpcs["10.45.0.0/16"])) == 1
    ec2.get_waiter("vpn_connection_available").wait(VpnConnectionIds=[cid], WaiterConfig=WAIT)
    # The first VPN gateway has no connection any more: it can be detached.
    ec2.detach_vpn_gateway(VpnGatewayId=vgws[0], VpcId=vpcs[0])
    # Refusals: a transit gateway, a detached VPN gateway, nothing to change.
    assert error_of(lambda: ec2.modify_vpn_connection(VpnConnectionId=cid, TransitGatewayId="tgw-0123456789abcdef0"))[
        0] == "UnsupportedOperation"
    assert error_of(lambda: ec2.modify_vpn_connection(VpnConnectionId=cid, VpnGatewayId=vgws[0]))[0] == \
        "IncorrectState"
    assert error_of(lambda: ec2.modify_vpn_connection(VpnConnectionId=cid))[0] == "MissingParameter"
    assert vpn_of(ec2, cid)["VpnGatewayId"] == vgws[1]

    # --- teardown: nothing left ----------------------------------------------------------------------
    ec2.delete_vpn_connection(VpnConnectionId=cid)
    ec2.get_waiter("vpn_connection_deleted").wait(VpnConnectionIds=[cid], WaiterConfig=WAIT)
    ec2.detach_vpn_gateway(VpnGatewayId=vgws[1], VpcId=vpcs[1])
    for g in vgws:
        ec2.delete_vpn_gateway(VpnGatewayId=g)
    for c in (cgw1, cgw2):
        ec2.delete_customer_gateway(CustomerGatewayId=c)
    for v in vpcs:
        ec2.delete_vpc(VpcId=v)
    assert cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=cid) == []
    for cidr in ("10.44.0.0/16", "10.45.0.0/16"):
        assert cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpcs[cidr]) == []
