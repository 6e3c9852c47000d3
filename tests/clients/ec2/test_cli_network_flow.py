"""Issue 11's "How we know" flow through the AWS CLI: a VPC with two subnets and an internet
gateway, an instance in subnet A with a second interface in subnet B (device index 1) carrying a
secondary private address with an Elastic IP on it, a custom network ACL on subnet B, a site-to-site VPN (customer gateway,
VPN gateway attached, connection with a static route propagated into a route table), tags on
several; a wrong-order delete of the VPC (DependencyViolation, nothing changed); then everything
torn down in reverse order with nothing left in the describe answers or in CloudStack.
NAT gateways are left out: main has no CreateNatGateway yet."""
import pytest
from cs import CloudStack


@pytest.fixture(scope="module")
def cloudstack(gateway, user):
    return CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"], secret=user["secret_key"],
                      poll_interval=0.05, job_timeout=30)


def cs_list(cloudstack, command, key, **params):
    return getattr(cloudstack, command)(listall="true", **params).get(key, [])


def tag_spec(kind, name):
    return "ResourceType=%s,Tags=[{Key=Name,Value=%s},{Key=flow,Value=cli}]" % (kind, name)


def tagmap(tags):
    return {t["Key"]: t["Value"] for t in tags}


def test_cli_network_flow_and_teardown(aws_cli, cloudstack):
    def cli(*args):
        rc, out, err = aws_cli("ec2", *args)
        assert rc == 0, (args, err)
        return out

    def cli_error(*args):
        rc, out, err = aws_cli("ec2", *args)
        assert rc != 0, (args, out)
        return err

    platforms = [v["AttributeValue"] for a in cli("describe-account-attributes", "--attribute-names",
                                                    "supported-platforms")["AccountAttributes"]
                 for v in a["AttributeValues"]]
    if "VPC" not in platforms:
        pytest.skip("the simulator's region has no VPC zone")

    # --- VPC, two subnets, internet gateway -------------------------------------------------------
    vpc = cli("create-vpc", "--cidr-block", "10.52.0.0/16", "--tag-specifications", tag_spec("vpc", "flow-vpc"))["Vpc"]
    vid = vpc["VpcId"]
    assert vid.startswith("vpc-") and vpc["CidrBlock"] == "10.52.0.0/16"
    assert tagmap(vpc["Tags"]) == {"Name": "flow-vpc", "flow": "cli"}
    cli("wait", "vpc-available", "--vpc-ids", vid)
    sa = cli("create-subnet", "--vpc-id", vid, "--cidr-block", "10.52.1.0/24",
             "--tag-specifications", tag_spec("subnet", "flow-a"))["Subnet"]
    sb = cli("create-subnet", "--vpc-id", vid, "--cidr-block", "10.52.2.0/24",
             "--tag-specifications", tag_spec("subnet", "flow-b"))["Subnet"]
    subnet_a, subnet_b = sa["SubnetId"], sb["SubnetId"]
    assert (sa["VpcId"], sa["CidrBlock"], sb["VpcId"], sb["CidrBlock"]) == (vid, "10.52.1.0/24", vid, "10.52.2.0/24")
    assert tagmap(sb["Tags"])["Name"] == "flow-b"
    igw = cli("create-internet-gateway", "--tag-specifications",
              tag_spec("internet-gateway", "flow-igw"))["InternetGateway"]["InternetGatewayId"]
    assert igw.startswith("igw-")
    cli("attach-internet-gateway", "--internet-gateway-id", igw, "--vpc-id", vid)
    got = cli("describe-internet-gateways", "--internet-gateway-ids", igw)["InternetGateways"][0]
    assert got["Attachments"] == [{"State": "available", "VpcId": vid}]
    cs_vpc = [v for v in cs_list(cloudstack, "listVPCs", "vpc") if v["cidr"] == "10.52.0.0/16"]
    assert len(cs_vpc) == 1
    cs_vpc_id = cs_vpc[0]["id"]
    assert sorted(n["cidr"] for n in cs_list(cloudstack, "listNetworks", "network", vpcid=cs_vpc_id)) == \
        ["10.52.1.0/24", "10.52.2.0/24"]

    # --- an instance in subnet A -----------------------------------------------------------------
    image = cli("describe-images", "--filters", "Name=name,Values=Ubuntu*")["Images"][0]["ImageId"]
    run = cli("run-instances", "--image-id", image, "--instance-type", "m1.small", "--count", "1",
              "--subnet-id", subnet_a, "--tag-specifications", tag_spec("instance", "flow-vm"))
    inst = run["Instances"][0]
    iid = inst["InstanceId"]
    assert inst["SubnetId"] == subnet_a and inst["VpcId"] == vid
    cli("wait", "instance-running", "--instance-ids", iid)
    inst = cli("describe-instances", "--instance-ids", iid)["Reservations"][0]["Instances"][0]
    assert inst["PrivateIpAddress"].startswith("10.52.1.") and tagmap(inst["Tags"])["Name"] == "flow-vm"
    primary = cli("describe-network-interfaces", "--filters", "Name=attachment.instance-id,Values=" + iid)[
        "NetworkInterfaces"]
    assert len(primary) == 1 and primary[0]["Attachment"]["DeviceIndex"] == 0
    assert primary[0]["SubnetId"] == subnet_a

    # --- a second interface in subnet B, attached at device index 1, with a secondary address ------
    eni = cli("create-network-interface", "--subnet-id", subnet_b, "--private-ip-address", "10.52.2.20",
              "--description", "flow second nic", "--tag-specifications",
              tag_spec("network-interface", "flow-eni"))["NetworkInterface"]
    eid = eni["NetworkInterfaceId"]
    assert (eni["SubnetId"], eni["VpcId"], eni["Status"], eni["PrivateIpAddress"], eni["Description"]) == \
        (subnet_b, vid, "available", "10.52.2.20", "flow second nic")
    assert tagmap(eni["TagSet"]) == {"Name": "flow-eni", "flow": "cli"}
    cli("wait", "network-interface-available", "--network-interface-ids", eid)
    att = cli("attach-network-interface", "--network-interface-id", eid, "--instance-id", iid,
              "--device-index", "1")
    assert att["AttachmentId"].startswith("eni-attach-")
    cli("assign-private-ip-addresses", "--network-interface-id", eid, "--private-ip-addresses", "10.52.2.21")
    got = cli("describe-network-interfaces", "--network-interface-ids", eid)["NetworkInterfaces"][0]
    assert got["Status"] == "in-use"
    assert (got["Attachment"]["InstanceId"], got["Attachment"]["DeviceIndex"], got["Attachment"]["AttachmentId"]) == \
        (iid, 1, att["AttachmentId"])
    assert sorted((a["PrivateIpAddress"], a["Primary"]) for a in got["PrivateIpAddresses"]) == \
        [("10.52.2.20", True), ("10.52.2.21", False)]
    nics = cli("describe-instances", "--instance-ids", iid)["Reservations"][0]["Instances"][0]["NetworkInterfaces"]
    assert sorted((n["Attachment"]["DeviceIndex"], n["SubnetId"]) for n in nics) == [(0, subnet_a), (1, subnet_b)]
    cs_vm = [v for v in cs_list(cloudstack, "listVirtualMachines", "virtualmachine")
             if any(n.get("ipaddress") == inst["PrivateIpAddress"] for n in v.get("nic", []))]
    assert len(cs_vm) == 1
    cs_nics = cs_list(cloudstack, "listNics", "nic", virtualmachineid=cs_vm[0]["id"])
    second = [n for n in cs_nics if n.get("ipaddress") == "10.52.2.20"]
    assert len(cs_nics) == 2 and len(second) == 1
    assert [s["ipaddress"] for s in second[0].get("secondaryip", [])] == ["10.52.2.21"]

    # --- an Elastic IP on the secondary address ----------------------------------------------------
    eip = cli("allocate-address", "--domain", "vpc")
    alloc, public_ip = eip["AllocationId"], eip["PublicIp"]
    eip_assoc = cli("associate-address", "--allocation-id", alloc, "--network-interface-id", eid,
                    "--private-ip-address", "10.52.2.21")["AssociationId"]
    addr = cli("describe-addresses", "--allocation-ids", alloc)["Addresses"][0]
    assert (addr["NetworkInterfaceId"], addr["PrivateIpAddress"], addr["InstanceId"], addr["AssociationId"]) == \
        (eid, "10.52.2.21", iid, eip_assoc)
    got = cli("describe-network-interfaces", "--network-interface-ids", eid)["NetworkInterfaces"][0]
    by_ip = {a["PrivateIpAddress"]: a for a in got["PrivateIpAddresses"]}
    assert (by_ip["10.52.2.21"]["Association"]["PublicIp"], by_ip["10.52.2.21"]["Association"]["AllocationId"]) == \
        (public_ip, alloc)
    assert "Association" not in by_ip["10.52.2.20"] and "Association" not in got
    nat = [i for i in cs_list(cloudstack, "listPublicIpAddresses", "publicipaddress", isstaticnat="true")
           if i["ipaddress"] == public_ip]
    assert len(nat) == 1 and (nat[0]["virtualmachineid"], nat[0]["vmipaddress"]) == (cs_vm[0]["id"], "10.52.2.21")

    # --- a custom network ACL on subnet B ---------------------------------------------------------
    acl = cli("create-network-acl", "--vpc-id", vid, "--tag-specifications",
              tag_spec("network-acl", "flow-acl"))["NetworkAcl"]
    acl_id = acl["NetworkAclId"]
    assert acl_id.startswith("acl-") and acl["VpcId"] == vid and acl["IsDefault"] is False
    cli("create-network-acl-entry", "--network-acl-id", acl_id, "--rule-number", "100", "--protocol", "tcp",
        "--port-range", "From=22,To=22", "--cidr-block", "192.168.0.0/16", "--rule-action", "allow", "--ingress")
    cli("create-network-acl-entry", "--network-acl-id", acl_id, "--rule-number", "200", "--protocol", "-1",
        "--cidr-block", "0.0.0.0/0", "--rule-action", "deny", "--egress")
    assoc = [a for a in cli("describe-network-acls", "--filters", "Name=association.subnet-id,Values=" + subnet_b)[
        "NetworkAcls"][0]["Associations"] if a["SubnetId"] == subnet_b][0]
    new_assoc = cli("replace-network-acl-association", "--association-id", assoc["NetworkAclAssociationId"],
                    "--network-acl-id", acl_id)["NewAssociationId"]
    assert new_assoc.startswith("aclassoc-")
    got = cli("describe-network-acls", "--network-acl-ids", acl_id)["NetworkAcls"][0]
    assert [a["SubnetId"] for a in got["Associations"]] == [subnet_b]
    entries = sorted((e["RuleNumber"], e["Egress"], e["Protocol"], e["RuleAction"], e["CidrBlock"])
                     for e in got["Entries"] if e["RuleNumber"] != 32767)
    assert entries == [(100, False, "6", "allow", "192.168.0.0/16"), (200, True, "-1", "deny", "0.0.0.0/0")]
    assert tagmap(got["Tags"]) == {"Name": "flow-acl", "flow": "cli"}
    cs_net_b = [n for n in cs_list(cloudstack, "listNetworks", "network", vpcid=cs_vpc_id) if n["cidr"] == "10.52.2.0/24"]
    cs_acls = cs_list(cloudstack, "listNetworkACLLists", "networkacllist", vpcid=cs_vpc_id)
    custom = [a for a in cs_acls if a["name"] == "ec2bridge-acl"]
    assert len(custom) == 1
    items = cs_list(cloudstack, "listNetworkACLs", "networkacl", aclid=custom[0]["id"])
    # CloudStack numbers items once for both directions: the gateway's own numbering, not EC2's.
    rules = [(i["action"], i["traffictype"], i["cidrlist"], i["protocol"]) for i in items]
    assert ("Allow", "Ingress", "192.168.0.0/16", "tcp") in rules and ("Deny", "Egress", "0.0.0.0/0", "all") in rules
    # Subnet B has an interface (default group: traffic from its members only), so the tier is on
    # the list enforcing its groups over the ACL (docs/vpc.md "VPC security groups: enforcement"):
    # the ACL allows ssh from 192.168.0.0/16 only, the group only its members: nothing in common.
    on_tier = [a for a in cs_acls if a["id"] == cs_net_b[0]["aclid"]]
    assert len(on_tier) == 1 and on_tier[0]["name"] == "ec2bridge-sg"
    assert "nacl=%s;" % custom[0]["id"] in on_tier[0]["description"]
    items = sorted(cs_list(cloudstack, "listNetworkACLs", "networkacl", aclid=on_tier[0]["id"]),
                   key=lambda i: int(i["number"]))
    assert [(i["action"], i["traffictype"], i["cidrlist"], i["protocol"], i.get("startport")) for i in items] == \
        [("Deny", "Ingress", "192.168.0.0/16", "tcp", "22"), ("Deny", "Ingress", "0.0.0.0/0", "all", None),
         ("Deny", "Egress", "0.0.0.0/0", "all", None)]

    # --- site-to-site VPN with a static route propagated into the main route table -----------------
    cgw = cli("create-customer-gateway", "--type", "ipsec.1", "--public-ip", "198.51.100.52", "--bgp-asn", "65052",
              "--tag-specifications", tag_spec("customer-gateway", "flow-cgw"))["CustomerGateway"]
    cgw_id = cgw["CustomerGatewayId"]
    assert (cgw["IpAddress"], cgw["BgpAsn"], cgw["State"]) == ("198.51.100.52", "65052", "available")
    assert tagmap(cgw["Tags"])["Name"] == "flow-cgw"
    vgw = cli("create-vpn-gateway", "--type", "ipsec.1", "--tag-specifications",
              tag_spec("vpn-gateway", "flow-vgw"))["VpnGateway"]
    vgw_id = vgw["VpnGatewayId"]
    assert vgw_id.startswith("vgw-") and vgw["Type"] == "ipsec.1"
    att = cli("attach-vpn-gateway", "--vpn-gateway-id", vgw_id, "--vpc-id", vid)["VpcAttachment"]
    assert att == {"State": "attached", "VpcId": vid}
    cs_vgw = cs_list(cloudstack, "listVpnGateways", "vpngateway", vpcid=cs_vpc_id)
    assert len(cs_vgw) == 1
    conn = cli("create-vpn-connection", "--type", "ipsec.1", "--customer-gateway-id", cgw_id,
               "--vpn-gateway-id", vgw_id, "--options",
               '{"StaticRoutesOnly": true, "TunnelOptions": [{"PreSharedKey": "flow_key_5252"}]}',
               "--tag-specifications", tag_spec("vpn-connection", "flow-vpn"))["VpnConnection"]
    conn_id = conn["VpnConnectionId"]
    assert conn_id.startswith("vpn-") and conn["Options"]["StaticRoutesOnly"] is True
    assert (conn["CustomerGatewayId"], conn["VpnGatewayId"]) == (cgw_id, vgw_id)
    assert "flow_key_5252" in conn["CustomerGatewayConfiguration"]
    assert cs_vgw[0]["publicip"] in conn["CustomerGatewayConfiguration"]
    assert tagmap(conn["Tags"]) == {"Name": "flow-vpn", "flow": "cli"}
    cli("create-vpn-connection-route", "--vpn-connection-id", conn_id, "--destination-cidr-block", "172.31.52.0/24")
    cli("wait", "vpn-connection-available", "--vpn-connection-ids", conn_id)
    got = cli("describe-vpn-connections", "--vpn-connection-ids", conn_id)["VpnConnections"][0]
    assert [(r["DestinationCidrBlock"], r["Source"]) for r in got["Routes"]] == [("172.31.52.0/24", "Static")]
    cs_cgw = cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=conn_id)
    assert len(cs_cgw) == 1 and (cs_cgw[0]["gateway"], cs_cgw[0]["cidrlist"]) == ("198.51.100.52", "172.31.52.0/24")
    assert len(cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpc_id)) == 1
    rtb = cli("describe-route-tables", "--filters", "Name=vpc-id,Values=" + vid,
              "Name=association.main,Values=true")["RouteTables"][0]["RouteTableId"]
    cli("enable-vgw-route-propagation", "--gateway-id", vgw_id, "--route-table-id", rtb)
    t = cli("describe-route-tables", "--route-table-ids", rtb)["RouteTables"][0]
    assert t["PropagatingVgws"] == [{"GatewayId": vgw_id}]
    assert {"DestinationCidrBlock": "172.31.52.0/24", "GatewayId": vgw_id, "Origin": "EnableVgwRoutePropagation",
            "State": "active"} in t["Routes"]

    # --- tags: DescribeTags sees the flow's resources by their types -------------------------------
    tagged = {(d["ResourceId"], d["ResourceType"]) for d in
              cli("describe-tags", "--filters", "Name=key,Values=flow")["Tags"]}
    for rid, kind in [(vid, "vpc"), (subnet_a, "subnet"), (subnet_b, "subnet"), (igw, "internet-gateway"),
                      (iid, "instance"), (eid, "network-interface"), (acl_id, "network-acl"),
                      (cgw_id, "customer-gateway"), (vgw_id, "vpn-gateway"), (conn_id, "vpn-connection")]:
        assert (rid, kind) in tagged, (rid, kind)

    # --- the wrong order: the VPC first -> DependencyViolation, nothing changed ----------------------
    def snapshot():
        return (
            [v["VpcId"] for v in cli("describe-vpcs", "--vpc-ids", vid)["Vpcs"]],
            sorted(s["SubnetId"] for s in cli("describe-subnets", "--filters", "Name=vpc-id,Values=" + vid)["Subnets"]),
            cli("describe-network-acls", "--network-acl-ids", acl_id)["NetworkAcls"][0]["Associations"][0]["SubnetId"],
            cli("describe-vpn-gateways", "--vpn-gateway-ids", vgw_id)["VpnGateways"][0]["VpcAttachments"],
            len(cs_list(cloudstack, "listNetworks", "network", vpcid=cs_vpc_id)),
            len(cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpc_id)),
        )
    before = snapshot()
    err = cli_error("delete-vpc", "--vpc-id", vid)
    assert "DependencyViolation" in err
    assert snapshot() == before

    # --- tear down in reverse order -------------------------------------------------------------
    cli("disable-vgw-route-propagation", "--gateway-id", vgw_id, "--route-table-id", rtb)
    cli("delete-vpn-connection-route", "--vpn-connection-id", conn_id, "--destination-cidr-block", "172.31.52.0/24")
    cli("delete-vpn-connection", "--vpn-connection-id", conn_id)
    cli("wait", "vpn-connection-deleted", "--vpn-connection-ids", conn_id)
    cli("detach-vpn-gateway", "--vpn-gateway-id", vgw_id, "--vpc-id", vid)
    cli("delete-vpn-gateway", "--vpn-gateway-id", vgw_id)
    cli("delete-customer-gateway", "--customer-gateway-id", cgw_id)
    default_acl = cli("describe-network-acls", "--filters", "Name=vpc-id,Values=" + vid,
                      "Name=default,Values=true")["NetworkAcls"][0]["NetworkAclId"]
    cli("replace-network-acl-association", "--association-id", new_assoc, "--network-acl-id", default_acl)
    cli("delete-network-acl-entry", "--network-acl-id", acl_id, "--rule-number", "200", "--egress")
    cli("delete-network-acl-entry", "--network-acl-id", acl_id, "--rule-number", "100", "--ingress")
    cli("delete-network-acl", "--network-acl-id", acl_id)
    cli("disassociate-address", "--association-id", eip_assoc)
    cli("release-address", "--allocation-id", alloc)
    cli("unassign-private-ip-addresses", "--network-interface-id", eid, "--private-ip-addresses", "10.52.2.21")
    cli("detach-network-interface", "--attachment-id", att_id(cli, eid))
    cli("wait", "network-interface-available", "--network-interface-ids", eid)
    cli("delete-network-interface", "--network-interface-id", eid)
    cli("terminate-instances", "--instance-ids", iid)
    cli("wait", "instance-terminated", "--instance-ids", iid)
    cli("detach-internet-gateway", "--internet-gateway-id", igw, "--vpc-id", vid)
    cli("delete-internet-gateway", "--internet-gateway-id", igw)
    cli("delete-subnet", "--subnet-id", subnet_b)
    cli("delete-subnet", "--subnet-id", subnet_a)
    cli("delete-vpc", "--vpc-id", vid)

    # --- nothing left: EC2's describe answers ------------------------------------------------------
    def live(rows):
        return [r for r in rows if r.get("State") not in ("deleted",)]
    assert cli("describe-vpcs", "--filters", "Name=cidr,Values=10.52.0.0/16")["Vpcs"] == []
    assert cli("describe-subnets", "--filters", "Name=vpc-id,Values=" + vid)["Subnets"] == []
    assert cli("describe-internet-gateways", "--filters", "Name=tag:flow,Values=cli")["InternetGateways"] == []
    assert cli("describe-network-interfaces", "--filters", "Name=vpc-id,Values=" + vid)["NetworkInterfaces"] == []
    assert cli("describe-network-acls", "--filters", "Name=vpc-id,Values=" + vid)["NetworkAcls"] == []
    assert cli("describe-route-tables", "--filters", "Name=vpc-id,Values=" + vid)["RouteTables"] == []
    assert live(cli("describe-vpn-connections", "--filters", "Name=tag:flow,Values=cli")["VpnConnections"]) == []
    assert live(cli("describe-vpn-gateways", "--filters", "Name=tag:flow,Values=cli")["VpnGateways"]) == []
    assert live(cli("describe-customer-gateways", "--filters", "Name=tag:flow,Values=cli")["CustomerGateways"]) == []
    insts = [i for r in cli("describe-instances", "--instance-ids", iid)["Reservations"] for i in r["Instances"]]
    assert all(i["State"]["Name"] == "terminated" for i in insts)
    # The terminated instance keeps its tags while EC2 lists it (as EC2 does); nothing else does.
    assert [t for t in cli("describe-tags", "--filters", "Name=key,Values=flow")["Tags"]
            if t["ResourceId"] != iid] == []
    assert cli("describe-addresses", "--filters", "Name=public-ip,Values=" + public_ip)["Addresses"] == []

    # --- nothing left: CloudStack ------------------------------------------------------------------
    assert [v for v in cs_list(cloudstack, "listVPCs", "vpc") if v["id"] == cs_vpc_id] == []
    assert [n for n in cs_list(cloudstack, "listNetworks", "network") if n.get("vpcid") == cs_vpc_id] == []
    assert [v for v in cs_list(cloudstack, "listVirtualMachines", "virtualmachine") if v["id"] == cs_vm[0]["id"]] == []
    assert cs_list(cloudstack, "listNetworkACLLists", "networkacllist", vpcid=cs_vpc_id) == []
    assert cs_list(cloudstack, "listVpnGateways", "vpngateway", vpcid=cs_vpc_id) == []
    assert cs_list(cloudstack, "listVpnConnections", "vpnconnection", vpcid=cs_vpc_id) == []
    assert cs_list(cloudstack, "listVpnCustomerGateways", "vpncustomergateway", keyword=conn_id) == []
    assert [i for i in cs_list(cloudstack, "listPublicIpAddresses", "publicipaddress") if i["ipaddress"] == public_ip] == []


def att_id(cli, eid):
    return cli("describe-network-interfaces", "--network-interface-ids", eid)["NetworkInterfaces"][0][
        "Attachment"]["AttachmentId"]
