"""Advanced networking driven by independent clients: the `cs` client (5.2.0) and Apache
libcloud's CloudStack driver (3.9.1): offerings, isolated networks, VPCs and tiers, network
ACLs, NICs, public IPs in VPCs, with job waits and CloudStack errors."""

import time

import pytest
from cs import CloudStackApiException
from libcloud.common.types import ProviderError

from sim_seed_ids import ACL_DEFAULT_ALLOW, NET_OFF_ISOLATED, NET_OFF_TIER, T2_MICRO, UBUNTU, VPC_OFF_DEFAULT, ZONE3
from test_sim_cs_client import client, job
from test_sim_libcloud_driver import driver, find


def cs_error(fn, **params):
    with pytest.raises(CloudStackApiException) as e:
        fn(**params)
    return e.value.error


def test_cs_isolated_network_and_default_network(sim):
    c = client(sim, "bob")
    offerings = c.listNetworkOfferings(zoneid=ZONE3, supportedservices="SourceNat", forvpc="false", fetch_list=True)
    assert [o["id"] for o in offerings] == [NET_OFF_ISOLATED]
    # Deploy with no network: CloudStack makes `bob-network` and puts the VM on it.
    vm = job(c, "deployVirtualMachine", zoneid=ZONE3, templateid=UBUNTU, serviceofferingid=T2_MICRO)["virtualmachine"]
    assert vm["nic"][0]["networkname"] == "bob-network"
    assert vm["nic"][0]["type"] == "Isolated"
    net = c.createNetwork(name="cs-net", displaytext="cs net", zoneid=ZONE3, networkofferingid=NET_OFF_ISOLATED,
                          gateway="192.168.50.1", netmask="255.255.255.0")["network"]
    assert net["cidr"] == "192.168.50.0/24" and net["state"] == "Allocated"
    err = cs_error(c.deployVirtualMachine, zoneid=ZONE3, templateid=UBUNTU, serviceofferingid=T2_MICRO)
    assert err["errorcode"] == 431 and "More than 1 default Isolated networks" in err["errortext"]
    vm2 = job(c, "deployVirtualMachine", zoneid=ZONE3, templateid=UBUNTU, serviceofferingid=T2_MICRO,
              networkids=net["id"], ipaddress="192.168.50.10")["virtualmachine"]
    assert vm2["nic"][0]["ipaddress"] == "192.168.50.10"
    assert job(c, "updateNetwork", id=net["id"], name="cs-net2")["network"]["name"] == "cs-net2"
    assert job(c, "restartNetwork", id=net["id"])["success"] is True
    # Deleting a network with a VM on it: the job fails, cs raises with the job's error.
    with pytest.raises(CloudStackApiException) as e:
        job(c, "deleteNetwork", id=net["id"])
    assert e.value.error["errorcode"] == 530
    err = cs_error(c.createNetwork, name="x", zoneid=ZONE3, networkofferingid=NET_OFF_ISOLATED,
                   gateway="10.9.0.1", netmask="255.255.0.0")
    assert err["errortext"] == "Cidr size can't be less than 22"


def test_cs_vpc_tiers_acls_and_ips(sim):
    c = client(sim, "alice", method="post")
    vpc = job(c, "createVPC", name="cs-vpc", zoneid=ZONE3, cidr="10.60.0.0/16", vpcofferingid=VPC_OFF_DEFAULT)["vpc"]
    assert vpc["state"] == "Enabled" and vpc["cidr"] == "10.60.0.0/16"
    err = cs_error(c.createVPC, name="bad", zoneid=ZONE3, cidr="100.64.0.0/16", vpcofferingid=VPC_OFF_DEFAULT)
    assert err["errortext"] == "Guest Cidr 100.64.0.0/16 is not RFC1918 compliant"
    acl = job(c, "createNetworkACLList", name="web", vpcid=vpc["id"])["networkacllist"]
    rule = job(c, "createNetworkACL", aclid=acl["id"], protocol="tcp", startport=443, endport=443,
               cidrlist="0.0.0.0/0", traffictype="Ingress")["networkacl"]
    assert rule["number"] == 1 and rule["action"] == "Allow"
    tier = c.createNetwork(name="web", zoneid=ZONE3, networkofferingid=NET_OFF_TIER, vpcid=vpc["id"],
                           gateway="10.60.1.1", netmask="255.255.255.0", aclid=acl["id"])["network"]
    assert tier["aclid"] == acl["id"] and tier["vpcid"] == vpc["id"]
    err = cs_error(c.createNetwork, name="db", zoneid=ZONE3, networkofferingid=NET_OFF_TIER, vpcid=vpc["id"],
                   gateway="10.60.1.129", netmask="255.255.255.128")
    assert "crosses other network cidr" in err["errortext"]
    err = cs_error(c.createNetwork, name="db", zoneid=ZONE3, networkofferingid=NET_OFF_TIER, vpcid=vpc["id"],
                   gateway="10.61.1.1", netmask="255.255.255.0")
    assert err["errortext"].startswith("Network cidr 10.61.1.0/24 is not within vpc")
    vm = job(c, "deployVirtualMachine", zoneid=ZONE3, templateid=UBUNTU, serviceofferingid=T2_MICRO,
             **{"iptonetworklist[0].networkid": tier["id"], "iptonetworklist[0].ip": "10.60.1.20"})["virtualmachine"]
    assert vm["nic"][0]["ipaddress"] == "10.60.1.20"
    ip = job(c, "associateIpAddress", vpcid=vpc["id"])["ipaddress"]
    assert ip["vpcid"] == vpc["id"]
    assert c.enableStaticNat(ipaddressid=ip["id"], virtualmachineid=vm["id"], networkid=tier["id"])["success"] is True
    snat = c.listPublicIpAddresses(vpcid=vpc["id"], issourcenat="true", fetch_list=True)
    assert len(snat) == 1
    job(c, "replaceNetworkACLList", aclid=ACL_DEFAULT_ALLOW, networkid=tier["id"])
    assert c.listNetworks(id=tier["id"])["network"][0]["aclname"] == "default_allow"
    nics = c.listNics(virtualmachineid=vm["id"], fetch_list=True)
    assert [n["ipaddress"] for n in nics] == ["10.60.1.20"]
    with pytest.raises(CloudStackApiException) as e:
        job(c, "deleteVPC", id=vpc["id"])
    assert e.value.error["errorcode"] == 431 and "as its used by 1 networks" in e.value.error["errortext"]
    job(c, "disableStaticNat", ipaddressid=ip["id"])
    job(c, "destroyVirtualMachine", id=vm["id"])
    admin = client(sim, "admin")
    job(admin, "expungeVirtualMachine", id=vm["id"])
    job(c, "deleteNetwork", id=tier["id"])
    assert job(c, "deleteVPC", id=vpc["id"])["success"] is True
    assert c.listVPCs(id=vpc["id"]) == {}


def test_libcloud_networks_vpcs_acls_and_nics(sim):
    d = driver(sim, "alice")
    zone3 = find(d.list_locations(), id=ZONE3)
    offerings = d.ex_list_network_offerings()
    isolated = find(offerings, id=NET_OFF_ISOLATED)
    tier_off = find(offerings, id=NET_OFF_TIER)
    assert tier_off.for_vpc is True
    net = d.ex_create_network("lc net", "lc-net", isolated, zone3, gateway="192.168.70.1", netmask="255.255.255.0")
    assert net.id in {n.id for n in d.ex_list_networks()}
    vpc_off = find(d.ex_list_vpc_offerings(), id=VPC_OFF_DEFAULT)
    vpc = d.ex_create_vpc("10.70.0.0/16", "lc vpc", "lc-vpc", vpc_off, ZONE3)
    # createVPC is an async create: libcloud takes the id at once; the job finishes shortly.
    assert vpc.id in {v.id for v in d.ex_list_vpcs()}
    tier = d.ex_create_network("lc tier", "lc-tier", tier_off, zone3, gateway="10.70.1.1", netmask="255.255.255.0",
                               vpc_id=vpc.id)
    acl_list = d.ex_create_network_acllist("lc-acl", vpc.id, description="lc")
    acl = d.ex_create_network_acl("tcp", acl_list.id, "0.0.0.0/0", "22", "22", action="Allow", traffic_type="Ingress")
    assert acl.id in {a.id for a in d.ex_list_network_acl()}
    assert "lc-acl" in {a.name for a in d.ex_list_network_acllists()}
    assert d.ex_replace_network_acllist(acl_list.id, tier.id) is True
    image = find(d.list_images(location=zone3), name="Ubuntu 22.04")
    size = find(d.list_sizes(), name="t2.micro")
    node = d.create_node(name="lc-vpc-node", size=size, image=image, location=zone3, networks=[tier])
    assert node.private_ips[0].startswith("10.70.1.")
    assert d.ex_attach_nic_to_node(node, net, ip_address="192.168.70.30") is True
    nics = d.ex_list_nics(node)
    assert sorted(n.ip_address for n in nics) == ["10.70.1.2", "192.168.70.30"]
    extra = find(nics, ip_address="192.168.70.30")
    assert extra.is_default is False
    assert d.ex_detach_nic_from_node(extra, node) is True
    assert [n.ip_address for n in d.ex_list_nics(node)] == ["10.70.1.2"]
    addr = d.ex_allocate_public_ip(vpc_id=vpc.id, location=zone3)
    assert addr.address in {a.address for a in d.ex_list_public_ips()}
    # Removing the default NIC is a CloudStack error the driver surfaces.
    default = d.ex_list_nics(node)[0]
    with pytest.raises(ProviderError) as e:
        d.ex_detach_nic_from_node(default, node)
    assert e.value.http_code == 431
    admin = driver(sim, "admin")
    routers = admin.ex_list_routers(vpc_id=vpc.id)
    assert len(routers) == 1 and routers[0].state == "Running" and routers[0].vpc_id == vpc.id
    assert d.destroy_node(node) is True


def test_libcloud_port_forwarding_egress_and_vpn(sim):
    d = driver(sim, "bob")
    zone3 = find(d.list_locations(), id=ZONE3)
    isolated = find(d.ex_list_network_offerings(), id=NET_OFF_ISOLATED)
    net = d.ex_create_network("pf net", "pf-net", isolated, zone3, gateway="192.168.80.1", netmask="255.255.255.0")
    image = find(d.list_images(location=zone3), name="Ubuntu 22.04")
    size = find(d.list_sizes(), name="t2.micro")
    node = d.create_node(name="lc-pf-node", size=size, image=image, location=zone3, networks=[net])
    addr = d.ex_allocate_public_ip(network_id=net.id, location=zone3)
    rule = d.ex_create_port_forwarding_rule(node, addr, 22, 2022, "tcp")
    rules = d.ex_list_port_forwarding_rules()
    assert [(r.id, r.public_port, r.private_port) for r in rules] == [(rule.id, "2022", "22")]
    # openfirewall (libcloud sends True) opened the port on the address.
    assert [(f.start_port, f.protocol) for f in d.ex_list_firewall_rules()] == [(2022, "tcp")]
    with pytest.raises(ProviderError) as e:
        d.ex_create_port_forwarding_rule(node, addr, 23, 2022, "tcp")
    assert e.value.http_code == 537
    egress = d.ex_create_egress_firewall_rule(net.id, "192.168.80.0/24", "tcp", start_port=443, end_port=443)
    assert [r.id for r in d.ex_list_egress_firewall_rules()] == [egress.id]
    assert d.ex_delete_egress_firewall_rule(egress) is True
    assert d.ex_delete_port_forwarding_rule(node, rule) is True
    assert d.ex_list_port_forwarding_rules() == []

    # Site-to-site VPN between a VPC and a customer gateway.
    vpc_off = find(d.ex_list_vpc_offerings(), id=VPC_OFF_DEFAULT)
    vpc = d.ex_create_vpc("10.90.0.0/16", "vpn vpc", "vpn-vpc", vpc_off, ZONE3)
    # libcloud does not wait for createVPC's job (it takes the id of the async create); the job
    # gives the VPC its source NAT address, which the VPN gateway needs: wait for that address.
    for _ in range(200):
        if any(a.vpc_id == vpc.id for a in d.ex_list_public_ips()):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the VPC never got its source NAT address")
    gw = d.ex_create_vpn_gateway(vpc)
    assert gw.public_ip
    cgw = d.ex_create_vpn_customer_gateway("172.30.0.0/16", "aes128-sha1", "203.0.113.77", "aes128-sha1;modp1536",
                                           "psk", name="office")
    conn = d.ex_create_vpn_connection(cgw, gw)
    assert conn.state == "Connected" and conn.passive is False
    assert [c.id for c in d.ex_list_vpn_connections()] == [conn.id]
    assert d.ex_delete_vpn_connection(conn) is True
