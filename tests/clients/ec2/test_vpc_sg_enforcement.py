"""VPC security groups enforced through the tiers' CloudStack ACL lists (docs/vpc.md "VPC security
groups: enforcement"), driven through boto3 and checked in CloudStack itself with the same user's
keys: after every change that moves what the groups allow (launch, rule authorize/revoke,
ModifyInstanceAttribute / ModifyNetworkInterfaceAttribute groups, network ACL association and
entries, termination), the tier's list holds exactly the union of the rules of the groups of the
instances living in it (group references as the members' /32s), narrowed by the subnet's network
ACL, then a deny; a tier without instances is on its network ACL's list itself."""

import pytest
from botocore.exceptions import ClientError
from cs import CloudStack
from harness import client_error as error_of
from harness import derived_id as derived


@pytest.fixture(scope="module")
def ec2(vpc_ec2):
    return vpc_ec2


class Sim:
    """CloudStack (the simulator) with the same user's keys."""

    def __init__(self, cs):
        self.cs = cs

    def tier(self, subnet):
        nets = self.cs.listNetworks(listall="true").get("network", [])
        found = [n for n in nets if derived("subnet", "subnet", n["id"]) == subnet]
        assert len(found) == 1, subnet
        return found[0]

    def tier_list(self, subnet):
        """(the tier's list, its items as (number, direction, action, protocol, cidrs, ports))."""
        aclid = self.tier(subnet)["aclid"]
        lists = [x for x in self.cs.listNetworkACLLists(listall="true").get("networkacllist", []) if x["id"] == aclid]
        assert len(lists) == 1
        items = self.cs.listNetworkACLs(aclid=aclid, listall="true").get("networkacl", [])
        rows = sorted((int(i["number"]), i["traffictype"].lower(), i["action"].lower(), i["protocol"], i["cidrlist"],
                       (int(i["startport"]), int(i["endport"])) if "startport" in i else None) for i in items)
        return lists[0], [r[1:] for r in rows]

    def enforcing(self, vpc_uuid):
        return [x for x in self.cs.listNetworkACLLists(vpcid=vpc_uuid, listall="true").get("networkacllist", [])
                if x["name"] == "ec2bridge-sg"]


@pytest.fixture(scope="module")
def sim(gateway, user):
    return Sim(CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"],
                          secret=user["secret_key"], poll_interval=0.05, job_timeout=30))


def ubuntu(ec2):
    return ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]


DENY_IN = ("ingress", "deny", "all", "0.0.0.0/0", None)
DENY_OUT = ("egress", "deny", "all", "0.0.0.0/0", None)
ALLOW_OUT = ("egress", "allow", "all", "0.0.0.0/0", None)


def tcp_in(cidrs, port, action="allow"):
    return ("ingress", action, "tcp", ",".join(cidrs), (port, port) if isinstance(port, int) else port)


def default_acl(ec2, vid):
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkAcls"]
    return [a for a in acls if a["IsDefault"]][0]


@pytest.fixture
def stack(ec2, sim):
    """A VPC with two subnets and two groups: web (tcp 443 from anywhere, egress to all) and db
    (tcp 5432 from web, no egress). Everything made is removed afterwards."""
    vid = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid])
    made = {"vpc": vid, "instances": []}
    try:
        made["a"] = ec2.create_subnet(VpcId=vid, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
        made["b"] = ec2.create_subnet(VpcId=vid, CidrBlock="10.40.2.0/24")["Subnet"]["SubnetId"]
        web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vid)["GroupId"]
        db = ec2.create_security_group(GroupName="db", Description="db", VpcId=vid)["GroupId"]
        made["web"], made["db"] = web, db
        ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        ec2.authorize_security_group_ingress(GroupId=db, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": web}]}])
        ec2.revoke_security_group_egress(GroupId=db, IpPermissions=[
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        made["vpc_uuid"] = sim.tier(made["a"])["vpcid"]
        yield made
    finally:
        if made["instances"]:
            ec2.terminate_instances(InstanceIds=made["instances"])
            ec2.get_waiter("instance_terminated").wait(InstanceIds=made["instances"])
        for a in ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkAcls"]:
            if not a["IsDefault"]:
                for assoc in a["Associations"]:
                    ec2.replace_network_acl_association(AssociationId=assoc["NetworkAclAssociationId"],
                                                        NetworkAclId=default_acl(ec2, vid)["NetworkAclId"])
                ec2.delete_network_acl(NetworkAclId=a["NetworkAclId"])
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Subnets"]:
            ec2.delete_subnet(SubnetId=s["SubnetId"])
        for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]}])["SecurityGroups"]:
            if g["GroupName"] != "default":
                for p in g["IpPermissions"]:
                    ec2.revoke_security_group_ingress(GroupId=g["GroupId"], IpPermissions=[p])
        for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]}])["SecurityGroups"]:
            if g["GroupName"] != "default":
                ec2.delete_security_group(GroupId=g["GroupId"])
        ec2.delete_vpc(VpcId=vid)


def launch(ec2, stack, subnet, ip, groups):
    r = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small",
                          SubnetId=stack[subnet], PrivateIpAddress=ip, SecurityGroupIds=groups)
    i = r["Instances"][0]["InstanceId"]
    stack["instances"].append(i)
    return i


def test_tier_lists_follow_the_groups(ec2, sim, stack):
    vid, a, b, web, db = stack["vpc"], stack["a"], stack["b"], stack["web"], stack["db"]
    default_uuid = sim.tier(a)["aclid"]
    # No instance: the tiers are on their network ACL's list itself.
    assert sim.tier(b)["aclid"] == default_uuid
    assert derived("network-acl", "acl", default_uuid) == default_acl(ec2, vid)["NetworkAclId"]
    assert sim.enforcing(stack["vpc_uuid"]) == []

    # Launch: the tier's list is the instance's groups' rules, then a deny.
    i1 = launch(ec2, stack, "a", "10.40.1.10", [web])
    lst, items = sim.tier_list(a)
    assert lst["name"] == "ec2bridge-sg"
    assert items == [tcp_in(["0.0.0.0/0"], 443), DENY_IN, ALLOW_OUT, DENY_OUT]
    assert sim.tier(b)["aclid"] == default_uuid

    # Two instances with different groups in one tier: the union; db's rule naming web stands
    # for web's members' addresses.
    i2 = launch(ec2, stack, "a", "10.40.1.20", [db])
    _, items = sim.tier_list(a)
    assert items == [tcp_in(["0.0.0.0/0"], 443), tcp_in(["10.40.1.10/32"], 5432), DENY_IN, ALLOW_OUT, DENY_OUT]
    i3 = launch(ec2, stack, "b", "10.40.2.30", [db])
    b_list, items = sim.tier_list(b)
    assert items == [tcp_in(["10.40.1.10/32"], 5432), DENY_IN, DENY_OUT]

    # The gateway's lists are no EC2 network ACLs; the subnets still show the default one.
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkAcls"]
    assert len(acls) == 1 and acls[0]["IsDefault"]
    assert sorted(x["SubnetId"] for x in acls[0]["Associations"]) == sorted([a, b])
    assert [(e["RuleNumber"], e["Egress"]) for e in acls[0]["Entries"]] == [(100, True), (32767, True),
                                                                         (100, False), (32767, False)]

    # Authorize: a rule naming db in web (members 10.40.1.20 and 10.40.2.30) reaches tier a
    # (web lives there), not tier b; revoke takes it away again.
    perm = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": db}]}
    ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[perm])
    _, items = sim.tier_list(a)
    assert items == [tcp_in(["10.40.1.20/32", "10.40.2.30/32"], 80), tcp_in(["0.0.0.0/0"], 443),
                     tcp_in(["10.40.1.10/32"], 5432), DENY_IN, ALLOW_OUT, DENY_OUT]
    assert sim.tier_list(b)[0]["id"] == b_list["id"]
    ec2.revoke_security_group_ingress(GroupId=web, IpPermissions=[perm])
    a_list, items = sim.tier_list(a)
    assert items == [tcp_in(["0.0.0.0/0"], 443), tcp_in(["10.40.1.10/32"], 5432), DENY_IN, ALLOW_OUT, DENY_OUT]

    # Bad input changes nothing, not even the lists.
    assert error_of(lambda: ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]))[0] == \
        "InvalidPermission.Duplicate"
    assert error_of(lambda: ec2.modify_instance_attribute(InstanceId=i3, Groups=["sg-0123456789abcdef0"]))[0] \
        in ("InvalidGroup.NotFound", "InvalidParameter")
    assert sim.tier_list(a)[0]["id"] == a_list["id"] and sim.tier_list(b)[0]["id"] == b_list["id"]

    # Recomputing from the same state changes nothing (a deleted unused group triggers it).
    spare = ec2.create_security_group(GroupName="spare", Description="spare", VpcId=vid)["GroupId"]
    ec2.delete_security_group(GroupId=spare)
    assert sim.tier_list(a)[0]["id"] == a_list["id"] and sim.tier_list(b)[0]["id"] == b_list["id"]
    assert len(sim.enforcing(stack["vpc_uuid"])) == 2

    # ModifyInstanceAttribute GroupId: i3 moves from db to web; tier b gets web's rules, and
    # db's rule in tier a now names web's members i1 and i3.
    ec2.modify_instance_attribute(InstanceId=i3, Groups=[web])
    got = ec2.describe_instances(InstanceIds=[i3])["Reservations"][0]["Instances"][0]
    assert [g["GroupId"] for g in got["SecurityGroups"]] == [web]
    _, items = sim.tier_list(b)
    assert items == [tcp_in(["0.0.0.0/0"], 443), DENY_IN, ALLOW_OUT, DENY_OUT]
    _, items = sim.tier_list(a)
    assert items == [tcp_in(["0.0.0.0/0"], 443), tcp_in(["10.40.1.10/32", "10.40.2.30/32"], 5432), DENY_IN,
                     ALLOW_OUT, DENY_OUT]

    # ModifyNetworkInterfaceAttribute groups of i2's interface: web and db.
    eni = ec2.describe_instances(InstanceIds=[i2])["Reservations"][0]["Instances"][0]["NetworkInterfaces"][0]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[web, db])
    _, items = sim.tier_list(a)
    assert items == [tcp_in(["0.0.0.0/0"], 443),
                     tcp_in(["10.40.1.10/32", "10.40.1.20/32", "10.40.2.30/32"], 5432), DENY_IN, ALLOW_OUT, DENY_OUT]

    # Termination: tier b has no instance left and is back on the default ACL's list itself; its
    # gateway list is gone.
    ec2.terminate_instances(InstanceIds=[i3])
    assert sim.tier(b)["aclid"] == default_uuid
    _, items = sim.tier_list(a)
    assert items == [tcp_in(["0.0.0.0/0"], 443), tcp_in(["10.40.1.10/32", "10.40.1.20/32"], 5432), DENY_IN,
                     ALLOW_OUT, DENY_OUT]
    ec2.terminate_instances(InstanceIds=[i1, i2])
    assert sim.tier(a)["aclid"] == default_uuid
    assert sim.enforcing(stack["vpc_uuid"]) == []


def test_custom_network_acl_and_groups_both_apply(ec2, sim, stack):
    vid, b, web = stack["vpc"], stack["b"], stack["web"]
    launch(ec2, stack, "b", "10.40.2.40", [web])
    acl = ec2.create_network_acl(VpcId=vid)["NetworkAcl"]["NetworkAclId"]
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Egress=False, Protocol="6", RuleAction="allow",
                                 CidrBlock="10.0.0.0/8", PortRange={"From": 400, "To": 500})
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Egress=True, Protocol="-1", RuleAction="allow",
                                 CidrBlock="0.0.0.0/0")
    assoc = [x for x in default_acl(ec2, vid)["Associations"] if x["SubnetId"] == b][0]
    new = ec2.replace_network_acl_association(AssociationId=assoc["NetworkAclAssociationId"],
                                              NetworkAclId=acl)["NewAssociationId"]
    # EC2 lets through what both allow: tcp 443 from 10.0.0.0/8; the rest of the ACL's allow
    # is denied.
    lst, items = sim.tier_list(b)
    assert lst["name"] == "ec2bridge-sg"
    assert items == [tcp_in(["10.0.0.0/8"], 443), tcp_in(["10.0.0.0/8"], (400, 500), "deny"), DENY_IN,
                     ALLOW_OUT, DENY_OUT]
    shown = ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]
    assert [(x["NetworkAclAssociationId"], x["SubnetId"]) for x in shown["Associations"]] == [(new, b)]
    assert len(ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkAcls"]) == 2
    assert error_of(lambda: ec2.delete_network_acl(NetworkAclId=acl))[0] == "DependencyViolation"

    # An entry change reaches the tier: a deny before the allow.
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=50, Egress=False, Protocol="6", RuleAction="deny",
                                 CidrBlock="10.1.0.0/16", PortRange={"From": 443, "To": 443})
    _, items = sim.tier_list(b)
    assert items == [tcp_in(["10.1.0.0/16"], 443, "deny"), tcp_in(["10.0.0.0/8"], 443),
                     tcp_in(["10.0.0.0/8"], (400, 500), "deny"), DENY_IN, ALLOW_OUT, DENY_OUT]
    ec2.replace_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Egress=False, Protocol="6", RuleAction="allow",
                                  CidrBlock="10.0.0.0/8", PortRange={"From": 1000, "To": 2000})
    _, items = sim.tier_list(b)
    assert items == [tcp_in(["10.1.0.0/16"], 443, "deny"), tcp_in(["10.0.0.0/8"], (1000, 2000), "deny"), DENY_IN,
                     ALLOW_OUT, DENY_OUT]
    ec2.delete_network_acl_entry(NetworkAclId=acl, RuleNumber=50, Egress=False)
    ec2.delete_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Egress=True)
    _, items = sim.tier_list(b)
    assert items == [tcp_in(["10.0.0.0/8"], (1000, 2000), "deny"), DENY_IN, DENY_OUT]

    # Back on the default ACL: the groups' rules alone again; the custom ACL can go.
    back = ec2.replace_network_acl_association(AssociationId=new, NetworkAclId=default_acl(ec2, vid)["NetworkAclId"])
    assert back["NewAssociationId"] == assoc["NetworkAclAssociationId"]
    _, items = sim.tier_list(b)
    assert items == [tcp_in(["0.0.0.0/0"], 443), DENY_IN, ALLOW_OUT, DENY_OUT]
    ec2.delete_network_acl(NetworkAclId=acl)
    assert len(sim.enforcing(stack["vpc_uuid"])) == 1
    with pytest.raises(ClientError):
        ec2.describe_network_acls(NetworkAclIds=[acl])


def test_group_changes_refused_change_nothing(ec2, sim, stack):
    i = launch(ec2, stack, "a", "10.40.1.50", [stack["web"]])
    before = sim.tier_list(stack["a"])
    # groupSet by Attribute/Value names no group: refused, not read as "no groups".
    assert error_of(lambda: ec2.modify_instance_attribute(InstanceId=i, Attribute="groupSet", Value=stack["db"]))[0] \
        == "MissingParameter"
    got = ec2.describe_instances(InstanceIds=[i])["Reservations"][0]["Instances"][0]
    assert [g["GroupId"] for g in got["SecurityGroups"]] == [stack["web"]]
    assert sim.tier_list(stack["a"]) == before


def test_interfaces_attached_detached_and_addresses_move_the_lists(ec2, sim, stack):
    a, b, web, db = stack["a"], stack["b"], stack["web"], stack["db"]
    default_uuid = sim.tier(b)["aclid"]
    # web names db: tier a's list carries db's members.
    ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": db}]}])
    i = launch(ec2, stack, "a", "10.40.1.60", [web])
    assert sim.tier_list(a)[1] == [tcp_in(["0.0.0.0/0"], 443), DENY_IN, ALLOW_OUT, DENY_OUT]
    eni = ec2.create_network_interface(SubnetId=b, PrivateIpAddress="10.40.2.70", Groups=[db])["NetworkInterface"]
    eid = eni["NetworkInterfaceId"]
    # A detached interface guards nothing.
    assert sim.tier(b)["aclid"] == default_uuid
    att = ec2.attach_network_interface(NetworkInterfaceId=eid, InstanceId=i, DeviceIndex=1)["AttachmentId"]
    assert sim.tier_list(b)[1] == [tcp_in(["10.40.1.60/32"], 5432), DENY_IN, DENY_OUT]
    assert sim.tier_list(a)[1] == [tcp_in(["10.40.2.70/32"], 80), tcp_in(["0.0.0.0/0"], 443), DENY_IN, ALLOW_OUT,
                                   DENY_OUT]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.40.2.71"])
    assert sim.tier_list(a)[1][0] == tcp_in(["10.40.2.70/32", "10.40.2.71/32"], 80)
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.40.2.71"])
    assert sim.tier_list(a)[1][0] == tcp_in(["10.40.2.70/32"], 80)
    ec2.detach_network_interface(AttachmentId=att)
    assert sim.tier(b)["aclid"] == default_uuid
    assert sim.tier_list(a)[1] == [tcp_in(["0.0.0.0/0"], 443), DENY_IN, ALLOW_OUT, DENY_OUT]
    ec2.delete_network_interface(NetworkInterfaceId=eid)
