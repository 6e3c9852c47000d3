"""EC2 network ACLs over CloudStack network ACL lists (docs/network-acls.md) through boto3: each
VPC's default ACL, CreateNetworkAcl / DeleteNetworkAcl, entries created, replaced and deleted
(rule numbers, both directions, protocols, ports, ICMP), ReplaceNetworkAclAssociation, every
DescribeNetworkAcls filter, tags, and EC2's errors — each failing call checked to change nothing.
What the gateway did is also checked in CloudStack itself (the simulator's ACL lists and items)."""

import pytest
from botocore.exceptions import ClientError
from cs import CloudStack
from harness import client_error as error_of
from harness import derived_id as derived


@pytest.fixture(scope="module")
def ec2(vpc_ec2):
    return vpc_ec2


class Sim:
    """CloudStack (the simulator) with the same user's keys, to check what the gateway made."""

    def __init__(self, cs):
        self.cs = cs

    def acl_uuid_of(self, acl):
        lists = self.cs.listNetworkACLLists(listall="true").get("networkacllist", [])
        found = [x["id"] for x in lists if derived("network-acl", "acl", x["id"]) == acl]
        assert len(found) == 1, acl
        return found[0]

    def acl_items(self, acl_uuid):
        return self.cs.listNetworkACLs(aclid=acl_uuid, listall="true").get("networkacl", [])

    def tier_acl(self, subnet):
        nets = self.cs.listNetworks(listall="true").get("network", [])
        found = [n.get("aclid") for n in nets if derived("subnet", "subnet", n["id"]) == subnet]
        assert len(found) == 1, subnet
        return found[0]


@pytest.fixture(scope="module")
def sim(gateway, user):
    return Sim(CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"],
                          secret=user["secret_key"], poll_interval=0.05, job_timeout=30))


@pytest.fixture
def vpc(ec2):
    v = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[v["VpcId"]])
    vid = v["VpcId"]
    yield vid
    for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=s["SubnetId"])
    for a in ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkAcls"]:
        if not a["IsDefault"]:
            ec2.delete_network_acl(NetworkAclId=a["NetworkAclId"])
    try:
        ec2.delete_vpc(VpcId=vid)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidVpcID.NotFound"


def acls_of(ec2, vid):
    return ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkAcls"]


def default_acl(ec2, vid):
    d = [a for a in acls_of(ec2, vid) if a["IsDefault"]]
    assert len(d) == 1
    return d[0]


def entries(acl):
    return [(e["RuleNumber"], e["Egress"], e["Protocol"], e["RuleAction"], e["CidrBlock"],
             e.get("PortRange"), e.get("IcmpTypeCode")) for e in acl["Entries"]]


def star(egress):
    return (32767, egress, "-1", "deny", "0.0.0.0/0", None, None)


def test_default_acl_of_a_vpc(ec2, vpc):
    acls = acls_of(ec2, vpc)
    assert len(acls) == 1
    d = acls[0]
    assert d["IsDefault"] is True and d["VpcId"] == vpc and d["NetworkAclId"].startswith("acl-")
    assert len(d["NetworkAclId"]) == 21
    assert entries(d) == [
        (100, True, "-1", "allow", "0.0.0.0/0", None, None), star(True),
        (100, False, "-1", "allow", "0.0.0.0/0", None, None), star(False),
    ]
    assert d["Associations"] == [] and d["Tags"] == [] and d["OwnerId"]
    # The same ACL on every look (made once).
    assert default_acl(ec2, vpc)["NetworkAclId"] == d["NetworkAclId"]
    # A subnet made now is associated with it.
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    d = default_acl(ec2, vpc)
    assert [a["SubnetId"] for a in d["Associations"]] == [sub]
    a = d["Associations"][0]
    assert a["NetworkAclId"] == d["NetworkAclId"] and a["NetworkAclAssociationId"].startswith("aclassoc-")
    code, msg = error_of(lambda: ec2.delete_network_acl(NetworkAclId=d["NetworkAclId"]))
    assert (code, msg) == ("InvalidParameterValue", "cannot delete default network ACL %s" % d["NetworkAclId"])
    assert default_acl(ec2, vpc)["NetworkAclId"] == d["NetworkAclId"]


def test_create_entries_replace_delete(ec2, vpc, sim):
    r = ec2.create_network_acl(
        VpcId=vpc, TagSpecifications=[{"ResourceType": "network-acl", "Tags": [{"Key": "Name", "Value": "web"}]}]
    )["NetworkAcl"]
    acl = r["NetworkAclId"]
    assert r["IsDefault"] is False and r["VpcId"] == vpc and r["Associations"] == []
    assert r["Tags"] == [{"Key": "Name", "Value": "web"}]
    # A new ACL denies everything (only the `*` rules).
    assert entries(r) == [star(True), star(False)]
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="6", RuleAction="allow", Egress=False,
                                 CidrBlock="0.0.0.0/0", PortRange={"From": 22, "To": 22})
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow", Egress=True,
                                 CidrBlock="10.0.0.0/8")
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=110, Protocol="udp", RuleAction="deny", Egress=False,
                                 CidrBlock="192.168.0.0/16", PortRange={"From": 1000, "To": 2000})
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=120, Protocol="1", RuleAction="allow", Egress=False,
                                 CidrBlock="0.0.0.0/0", IcmpTypeCode={"Type": 8, "Code": -1})
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=130, Protocol="47", RuleAction="allow", Egress=False,
                                 CidrBlock="172.16.0.0/12")
    got = ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"]
    assert len(got) == 1
    assert entries(got[0]) == [
        (100, True, "-1", "allow", "10.0.0.0/8", None, None), star(True),
        (100, False, "6", "allow", "0.0.0.0/0", {"From": 22, "To": 22}, None),
        (110, False, "17", "deny", "192.168.0.0/16", {"From": 1000, "To": 2000}, None),
        (120, False, "1", "allow", "0.0.0.0/0", None, {"Type": 8, "Code": -1}),
        (130, False, "47", "allow", "172.16.0.0/12", None, None),
        star(False),
    ]
    # In CloudStack: rule N is number 2N (ingress) / 2N+1 (egress), plus the egress deny-all.
    items = sim.acl_items(acl_uuid=sim.acl_uuid_of(acl))
    assert sorted((i["number"], i["traffictype"], i["action"]) for i in items) == [
        (200, "Ingress", "Allow"), (201, "Egress", "Allow"), (220, "Ingress", "Deny"),
        (240, "Ingress", "Allow"), (260, "Ingress", "Allow"), (65535, "Egress", "Deny"),
    ]
    # Duplicate rule number in one direction; the same number in the other direction is fine.
    code, msg = error_of(lambda: ec2.create_network_acl_entry(
        NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="deny", Egress=False, CidrBlock="0.0.0.0/0"))
    assert (code, msg) == ("NetworkAclEntryAlreadyExists", "The network acl entry identified by 100 already exists.")
    # Replace: an entry's every field.
    ec2.replace_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="deny", Egress=False,
                                  CidrBlock="10.1.0.0/16")
    ec2.replace_network_acl_entry(NetworkAclId=acl, RuleNumber=120, Protocol="tcp", RuleAction="allow",
                                  Egress=False, CidrBlock="0.0.0.0/0", PortRange={"From": 0, "To": 65535})
    got = ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]
    ingress = [e for e in entries(got) if not e[1]]
    assert ingress[0] == (100, False, "-1", "deny", "10.1.0.0/16", None, None)
    assert ingress[2] == (120, False, "6", "allow", "0.0.0.0/0", {"From": 0, "To": 65535}, None)
    code, msg = error_of(lambda: ec2.replace_network_acl_entry(
        NetworkAclId=acl, RuleNumber=101, Protocol="-1", RuleAction="deny", Egress=False, CidrBlock="0.0.0.0/0"))
    assert (code, msg) == ("InvalidNetworkAclEntry.NotFound", "The network acl entry identified by 101 does not exist.")
    ec2.delete_network_acl_entry(NetworkAclId=acl, RuleNumber=110, Egress=False)
    code, _ = error_of(lambda: ec2.delete_network_acl_entry(NetworkAclId=acl, RuleNumber=110, Egress=False))
    assert code == "InvalidNetworkAclEntry.NotFound"
    # The egress rule 100 stays when the ingress rule 100 goes.
    ec2.delete_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Egress=False)
    got = ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]
    assert [(e[0], e[1]) for e in entries(got)] == [
        (100, True), (32767, True), (120, False), (130, False), (32767, False)]
    ec2.delete_network_acl(NetworkAclId=acl)
    code, msg = error_of(lambda: ec2.describe_network_acls(NetworkAclIds=[acl]))
    assert (code, msg) == ("InvalidNetworkAclID.NotFound", "The networkAcl ID '%s' does not exist" % acl)


def test_entry_errors_change_nothing(ec2, vpc):
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    before = ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]["Entries"]
    base = dict(NetworkAclId=acl, Protocol="-1", RuleAction="allow", Egress=False, CidrBlock="0.0.0.0/0")
    for bad, want in [
        (dict(base, RuleNumber=0), "InvalidParameterValue"),
        (dict(base, RuleNumber=32767), "InvalidParameterValue"),
        (dict(base, RuleNumber=1, Protocol="300"), "InvalidParameterValue"),
        (dict(base, RuleNumber=1, Protocol="gre"), "InvalidParameterValue"),
        (dict(base, RuleNumber=1, RuleAction="maybe"), "InvalidParameterValue"),
        (dict(base, RuleNumber=1, CidrBlock="10.0.0.1/8"), "InvalidParameterValue"),
        (dict(base, RuleNumber=1, Protocol="6"), "MissingParameter"),
        (dict(base, RuleNumber=1, Protocol="6", PortRange={"From": 90, "To": 80}), "InvalidParameterValue"),
        (dict(base, RuleNumber=1, Protocol="1"), "MissingParameter"),
        (dict(base, RuleNumber=1, Protocol="1", IcmpTypeCode={"Type": 3, "Code": 99}), "InvalidParameterValue"),
        (dict(base, RuleNumber=1, CidrBlock=None, Ipv6CidrBlock="::/0"), "UnsupportedOperation"),
        (dict(base, RuleNumber=1, NetworkAclId="acl-12345678"), "InvalidNetworkAclID.NotFound"),
        (dict(base, RuleNumber=1, NetworkAclId="acl-nope"), "InvalidNetworkAclId.Malformed"),
    ]:
        bad = {k: v for k, v in bad.items() if v is not None}
        code, _ = error_of(lambda: ec2.create_network_acl_entry(**bad))
        assert code == want, (bad, code)
    assert ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]["Entries"] == before
    code, _ = error_of(lambda: ec2.create_network_acl(VpcId="vpc-12345678"))
    assert code == "InvalidVpcID.NotFound"
    code, _ = error_of(lambda: ec2.delete_network_acl(NetworkAclId="acl-12345678"))
    assert code == "InvalidNetworkAclID.NotFound"
    code, msg = error_of(lambda: ec2.describe_network_acls(NetworkAclIds=["acl-x"]))
    assert (code, msg) == ("InvalidNetworkAclId.Malformed", 'Invalid id: "acl-x" (expecting "acl-...")')


def test_association_moves_and_dependency(ec2, vpc, sim):
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.2.0/24")["Subnet"]["SubnetId"]
    d = default_acl(ec2, vpc)
    old = [a for a in d["Associations"] if a["SubnetId"] == sub][0]["NetworkAclAssociationId"]
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    new = ec2.replace_network_acl_association(AssociationId=old, NetworkAclId=acl)["NewAssociationId"]
    assert new.startswith("aclassoc-") and new != old
    got = ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]
    assert got["Associations"] == [{"NetworkAclAssociationId": new, "NetworkAclId": acl, "SubnetId": sub}]
    assert sub not in [a["SubnetId"] for a in default_acl(ec2, vpc)["Associations"]]
    # CloudStack's tier has the new list.
    assert sim.tier_acl(sub) == sim.acl_uuid_of(acl)
    # The old association is gone.
    code, msg = error_of(lambda: ec2.replace_network_acl_association(AssociationId=old, NetworkAclId=acl))
    assert (code, msg) == ("InvalidAssociationID.NotFound", "The association ID '%s' does not exist" % old)
    code, msg = error_of(lambda: ec2.delete_network_acl(NetworkAclId=acl))
    assert (code, msg) == ("DependencyViolation", "The networkAcl '%s' has dependencies and cannot be deleted." % acl)
    # An ACL of another VPC cannot take the subnet.
    other = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    try:
        ec2.get_waiter("vpc_available").wait(VpcIds=[other])
        foreign = default_acl(ec2, other)["NetworkAclId"]
        code, _ = error_of(lambda: ec2.replace_network_acl_association(AssociationId=new, NetworkAclId=foreign))
        assert code == "InvalidParameterValue"
        # A VPC with an ACL other than its default cannot be deleted.
        extra = ec2.create_network_acl(VpcId=other)["NetworkAcl"]["NetworkAclId"]
        code, _ = error_of(lambda: ec2.delete_vpc(VpcId=other))
        assert code == "DependencyViolation"
        ec2.delete_network_acl(NetworkAclId=extra)
    finally:
        ec2.delete_vpc(VpcId=other)
    # Back to the default, then the ACL can go.
    back = ec2.replace_network_acl_association(AssociationId=new, NetworkAclId=d["NetworkAclId"])["NewAssociationId"]
    assert back == old
    ec2.delete_network_acl(NetworkAclId=acl)


def test_filters(ec2, vpc):
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.3.0/24")["Subnet"]["SubnetId"]
    d = default_acl(ec2, vpc)
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=42, Protocol="6", RuleAction="deny", Egress=True,
                                 CidrBlock="10.9.0.0/16", PortRange={"From": 443, "To": 444})
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=43, Protocol="1", RuleAction="allow", Egress=False,
                                 CidrBlock="0.0.0.0/0", IcmpTypeCode={"Type": 0, "Code": 0})
    ec2.create_tags(Resources=[acl], Tags=[{"Key": "team", "Value": "blue"}])
    assoc = [a for a in d["Associations"] if a["SubnetId"] == sub][0]["NetworkAclAssociationId"]

    def ids(*filters):
        fs = [{"Name": n, "Values": [v]} for n, v in filters] + [{"Name": "vpc-id", "Values": [vpc]}]
        return sorted(a["NetworkAclId"] for a in ec2.describe_network_acls(Filters=fs)["NetworkAcls"])

    both = sorted([acl, d["NetworkAclId"]])
    assert ids() == both
    assert ids(("network-acl-id", acl)) == [acl]
    assert ids(("default", "true")) == [d["NetworkAclId"]]
    assert ids(("default", "false")) == [acl]
    assert ids(("association.association-id", assoc)) == [d["NetworkAclId"]]
    assert ids(("association.network-acl-id", d["NetworkAclId"])) == [d["NetworkAclId"]]
    assert ids(("association.subnet-id", sub)) == [d["NetworkAclId"]]
    assert ids(("entry.cidr", "10.9.0.0/16")) == [acl]
    assert ids(("entry.egress", "true")) == both
    assert ids(("entry.port-range.from", "443")) == [acl]
    assert ids(("entry.port-range.to", "444")) == [acl]
    assert ids(("entry.protocol", "6")) == [acl]
    assert ids(("entry.protocol", "-1")) == both
    assert ids(("entry.rule-action", "allow")) == both
    assert ids(("entry.rule-number", "42")) == [acl]
    assert ids(("entry.rule-number", "100")) == [d["NetworkAclId"]]
    assert ids(("entry.icmp.type", "0")) == [acl]
    assert ids(("entry.icmp.code", "0")) == [acl]
    assert ids(("owner-id", d["OwnerId"])) == both
    assert ids(("tag:team", "blue")) == [acl]
    assert ids(("tag-key", "team")) == [acl]
    assert ids(("tag:team", "red")) == []
    # Tags through DescribeTags and DeleteTags.
    t = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [acl]}])["Tags"]
    assert t == [{"Key": "team", "Value": "blue", "ResourceId": acl, "ResourceType": "network-acl"}]
    ec2.delete_tags(Resources=[acl], Tags=[{"Key": "team"}])
    assert ids(("tag-key", "team")) == []
    ec2.delete_network_acl(NetworkAclId=acl)


def test_other_account_sees_nothing(ec2, vpc, boto3_client, gateway, user):
    others = [u for u in gateway["users"] if u["account"] != user["account"] and not u["is_admin"]]
    if not others:
        pytest.skip("the seed has no second account")
    other = boto3_client(others[0])
    d = default_acl(ec2, vpc)["NetworkAclId"]
    assert d not in [a["NetworkAclId"] for a in other.describe_network_acls()["NetworkAcls"]]
    code, _ = error_of(lambda: other.create_network_acl_entry(
        NetworkAclId=d, RuleNumber=5, Protocol="-1", RuleAction="deny", Egress=False, CidrBlock="0.0.0.0/0"))
    assert code == "InvalidNetworkAclID.NotFound"
    code, _ = error_of(lambda: other.create_tags(Resources=[d], Tags=[{"Key": "a", "Value": "b"}]))
    assert code == "InvalidNetworkAclID.NotFound"


def test_aws_cli_flow(ec2, vpc, aws_cli, sim):
    """The AWS CLI's spelling: protocol names, --port-range / --icmp-type-code shorthand, the
    subnet moved to a custom ACL and back, tags, then nothing left in CloudStack."""
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.4.0/24")["Subnet"]["SubnetId"]
    rc, out, err = aws_cli("ec2", "create-network-acl", "--vpc-id", vpc, "--tag-specifications",
                           "ResourceType=network-acl,Tags=[{Key=Name,Value=cli}]")
    assert rc == 0, err
    acl = out["NetworkAcl"]["NetworkAclId"]
    assert out["NetworkAcl"]["Tags"] == [{"Key": "Name", "Value": "cli"}]
    rc, _, err = aws_cli("ec2", "create-network-acl-entry", "--network-acl-id", acl, "--ingress", "--rule-number",
                         "100", "--protocol", "udp", "--port-range", "From=53,To=53", "--cidr-block", "0.0.0.0/0",
                         "--rule-action", "allow")
    assert rc == 0, err
    rc, _, err = aws_cli("ec2", "create-network-acl-entry", "--network-acl-id", acl, "--egress", "--rule-number",
                         "100", "--protocol", "icmp", "--icmp-type-code", "Type=0,Code=0", "--cidr-block",
                         "10.0.0.0/8", "--rule-action", "deny")
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-network-acls", "--filters", "Name=association.subnet-id,Values=" + sub)
    assert rc == 0, err
    assoc = [a for a in out["NetworkAcls"][0]["Associations"] if a["SubnetId"] == sub][0]["NetworkAclAssociationId"]
    rc, out, err = aws_cli("ec2", "replace-network-acl-association", "--association-id", assoc,
                           "--network-acl-id", acl)
    assert rc == 0, err
    new = out["NewAssociationId"]
    rc, out, err = aws_cli("ec2", "describe-network-acls", "--network-acl-ids", acl)
    assert rc == 0, err
    got = out["NetworkAcls"][0]
    assert [a["SubnetId"] for a in got["Associations"]] == [sub]
    assert entries(got) == [
        (100, True, "1", "deny", "10.0.0.0/8", None, {"Type": 0, "Code": 0}), star(True),
        (100, False, "17", "allow", "0.0.0.0/0", {"From": 53, "To": 53}, None), star(False),
    ]
    uuid = sim.acl_uuid_of(acl)
    assert sim.tier_acl(sub) == uuid
    rc, _, err = aws_cli("ec2", "delete-network-acl-entry", "--network-acl-id", acl, "--egress", "--rule-number", "100")
    assert rc == 0, err
    rc, _, err = aws_cli("ec2", "delete-network-acl", "--network-acl-id", acl)
    assert rc != 0 and "DependencyViolation" in err
    default = default_acl(ec2, vpc)["NetworkAclId"]
    rc, _, err = aws_cli("ec2", "replace-network-acl-association", "--association-id", new,
                         "--network-acl-id", default)
    assert rc == 0, err
    rc, _, err = aws_cli("ec2", "delete-network-acl", "--network-acl-id", acl)
    assert rc == 0, err
    # Gone from CloudStack and from DescribeTags (the store's record).
    lists = sim.cs.listNetworkACLLists(listall="true").get("networkacllist", [])
    assert uuid not in [x["id"] for x in lists]
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [acl]}])["Tags"] == []


def test_tags_of_acls_whose_vpc_went_behind_the_gateway(ec2, sim):
    vid = ec2.create_vpc(CidrBlock="10.32.0.0/16")["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid])
    acl = ec2.create_network_acl(
        VpcId=vid, TagSpecifications=[{"ResourceType": "network-acl", "Tags": [{"Key": "gone", "Value": "soon"}]}]
    )["NetworkAcl"]["NetworkAclId"]
    assert len(ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [acl]}])["Tags"]) == 1
    # The VPC (with its lists) is deleted in CloudStack directly.
    vpcs = sim.cs.listVPCs(listall="true").get("vpc", [])
    uuid = [v["id"] for v in vpcs if derived("vpc", "vpc", v["id"]) == vid][0]
    sim.cs.deleteVPC(id=uuid, fetch_result=True)
    assert acl not in [a["NetworkAclId"] for a in ec2.describe_network_acls()["NetworkAcls"]]
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [acl]}])["Tags"] == []
