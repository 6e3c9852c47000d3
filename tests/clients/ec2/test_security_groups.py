"""Security groups through boto3 and the AWS CLI: create (tags, duplicate, reserved name),
describe (ids and names together, filters, paging), authorize/revoke ingress (IpPermissions and
the old flat form, group pairs, duplicate/malformed errors; EC2-Classic semantics: no egress
rules, revoking an absent rule succeeds),
delete (in use, by id and by name), DryRun."""
import uuid

import pytest
from botocore.exceptions import ClientError


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def perms_of(ec2, gid, egress=False):
    g = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]
    return g["IpPermissionsEgress" if egress else "IpPermissions"]


def test_create_describe_and_errors(ec2):
    name = unique("web")
    r = ec2.create_security_group(GroupName=name, Description="web servers", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": "team", "Value": "blue"}]}])
    gid = r["GroupId"]
    assert gid.startswith("sg-")
    g = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"]
    assert [x["GroupName"] for x in g] == [name]
    assert g[0]["Description"] == "web servers"
    assert g[0]["IpPermissions"] == []
    assert {"Key": "team", "Value": "blue"} in g[0]["Tags"]
    assert ec2.describe_security_groups(GroupNames=[name])["SecurityGroups"][0]["GroupId"] == gid
    both = ec2.describe_security_groups(GroupIds=[gid], GroupNames=["default"])["SecurityGroups"]
    assert sorted(x["GroupName"] for x in both) == sorted([name, "default"])
    tagged = ec2.describe_security_groups(Filters=[{"Name": "tag:team", "Values": ["blue"]},
                                                   {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    assert [x["GroupId"] for x in tagged] == [gid]

    assert code_of(lambda: ec2.create_security_group(GroupName=name, Description="x"))[0] == "InvalidGroup.Duplicate"
    assert code_of(lambda: ec2.create_security_group(GroupName="default", Description="x"))[0] == "InvalidGroup.Reserved"
    assert code_of(lambda: ec2.create_security_group(GroupName=unique("d"), Description="x", DryRun=True))[0] == \
        "DryRunOperation"
    c, m = code_of(lambda: ec2.describe_security_groups(GroupNames=["no-such-group-x"]))
    assert (c, m) == ("InvalidGroup.NotFound", "The security group 'no-such-group-x' does not exist")
    assert code_of(lambda: ec2.describe_security_groups(GroupIds=["sg-12345678"]))[0] == "InvalidGroup.NotFound"
    assert code_of(lambda: ec2.describe_security_groups(GroupIds=["sg-xyz"]))[0] == "InvalidGroupId.Malformed"
    assert code_of(lambda: ec2.describe_security_groups(Filters=[{"Name": "bogus", "Values": ["1"]}]))[0] == \
        "InvalidParameterValue"
    ec2.delete_security_group(GroupId=gid)
    assert code_of(lambda: ec2.describe_security_groups(GroupIds=[gid]))[0] == "InvalidGroup.NotFound"


def test_rules_authorize_describe_revoke(ec2):
    web = ec2.create_security_group(GroupName=unique("web"), Description="w")["GroupId"]
    db_name = unique("db")
    db = ec2.create_security_group(GroupName=db_name, Description="d")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "10.0.0.0/8"}, {"CidrIp": "192.168.1.0/24"}]},
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": db}]},
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    ])
    p = perms_of(ec2, web)
    ssh = [x for x in p if x.get("FromPort") == 22][0]
    assert ssh["IpProtocol"] == "tcp" and ssh["ToPort"] == 22
    assert sorted(r["CidrIp"] for r in ssh["IpRanges"]) == ["10.0.0.0/8", "192.168.1.0/24"]
    pg = [x for x in p if x.get("FromPort") == 5432][0]
    assert [(u["GroupId"], u["GroupName"]) for u in pg["UserIdGroupPairs"]] == [(db, db_name)]
    icmp = [x for x in p if x["IpProtocol"] == "icmp"][0]
    assert (icmp["FromPort"], icmp["ToPort"]) == (8, -1)

    # Old flat form by group name. A group outside a VPC (EC2-Classic) has no egress rules.
    name = ec2.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]["GroupName"]
    ec2.authorize_security_group_ingress(GroupName=name, IpProtocol="udp", FromPort=53, ToPort=53,
                                         CidrIp="172.16.0.0/12")
    assert code_of(lambda: ec2.authorize_security_group_egress(GroupId=web, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])) == \
        ("InvalidParameterValue", "Only Amazon VPC security groups may be used with this operation.")
    assert perms_of(ec2, web, egress=True) == []

    # Filters on permissions.
    def names(*filters):
        return {g["GroupId"] for g in ec2.describe_security_groups(
            Filters=[{"Name": n, "Values": [v]} for n, v in filters])["SecurityGroups"]}
    assert web in names(("ip-permission.from-port", "5432"), ("ip-permission.protocol", "tcp"))
    assert web in names(("ip-permission.cidr", "172.16.*"))
    assert web in names(("ip-permission.group-id", db))
    assert db not in names(("ip-permission.to-port", "22"))

    # Errors.
    dup = dict(GroupId=web, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                            "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    assert code_of(lambda: ec2.authorize_security_group_ingress(**dup))[0] == "InvalidPermission.Duplicate"
    assert code_of(lambda: ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 100, "ToPort": 70000, "IpRanges": [{"CidrIp": "1.0.0.0/8"}]}]))[0] == \
        "InvalidPermission.Malformed"
    assert code_of(lambda: ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "IpRanges": [{"CidrIp": "300.0.0.0/8"}]}]))[0] == \
        "InvalidParameterValue"
    assert code_of(lambda: ec2.authorize_security_group_ingress(DryRun=True, **dup))[0] == "DryRunOperation"

    # Several permissions, the last one failing: nothing stays behind.
    before = perms_of(ec2, db)
    assert code_of(lambda: ec2.authorize_security_group_ingress(GroupId=db, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]},
        {"IpProtocol": "tcp", "FromPort": 2, "ToPort": 2,
         "UserIdGroupPairs": [{"UserId": "no-such-account", "GroupName": "nope"}]},
    ]))[0] == "InvalidParameterValue"
    assert perms_of(ec2, db) == before

    # Revoke one CIDR of a permission, then the group pair; unknown -> NotFound.
    ec2.revoke_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    ssh = [x for x in perms_of(ec2, web) if x.get("FromPort") == 22][0]
    assert [r["CidrIp"] for r in ssh["IpRanges"]] == ["192.168.1.0/24"]
    ec2.revoke_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": db}]}])
    assert not [x for x in perms_of(ec2, web) if x.get("FromPort") == 5432]
    # EC2-Classic: revoking a rule that is not there succeeds and changes nothing.
    before = perms_of(ec2, web)
    ec2.revoke_security_group_ingress(**dup)
    assert perms_of(ec2, web) == before
    assert code_of(lambda: ec2.revoke_security_group_egress(GroupId=web, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]))[0] == "InvalidParameterValue"
    ec2.delete_security_group(GroupId=web)
    ec2.delete_security_group(GroupId=db)


def test_paging_and_delete_rules(ec2):
    made = [ec2.create_security_group(GroupName=unique("pg"), Description="p")["GroupId"] for _ in range(6)]
    pages = list(ec2.get_paginator("describe_security_groups").paginate(PaginationConfig={"PageSize": 5}))
    ids = [g["GroupId"] for p in pages for g in p["SecurityGroups"]]
    assert len(pages) >= 2 and len(ids) == len(set(ids)) and set(made) <= set(ids)

    assert code_of(lambda: ec2.delete_security_group(GroupName="default"))[0] == "CannotDelete"
    assert code_of(lambda: ec2.delete_security_group(GroupName="no-such-group-y"))[0] == "InvalidGroup.NotFound"
    # In use by an instance.
    ami = ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SecurityGroupIds=[made[0]])
    assert code_of(lambda: ec2.delete_security_group(GroupId=made[0]))[0] == "DependencyViolation"
    for gid in made[1:]:
        ec2.delete_security_group(GroupId=gid)


def test_aws_cli(aws_cli):
    name = unique("cli")
    rc, out, err = aws_cli("ec2", "create-security-group", "--group-name", name, "--description", "from the cli")
    assert rc == 0, err
    gid = out["GroupId"]
    rc, out, err = aws_cli("ec2", "authorize-security-group-ingress", "--group-id", gid, "--protocol", "tcp",
                           "--port", "22", "--cidr", "203.0.113.0/24")
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-security-groups", "--group-ids", gid)
    assert rc == 0, err
    p = out["SecurityGroups"][0]["IpPermissions"]
    assert [(x["IpProtocol"], x["FromPort"], x["IpRanges"][0]["CidrIp"]) for x in p] == [("tcp", 22, "203.0.113.0/24")]
    rc, out, err = aws_cli("ec2", "authorize-security-group-ingress", "--group-id", gid, "--protocol", "tcp",
                           "--port", "22", "--cidr", "203.0.113.0/24")
    assert rc != 0 and "InvalidPermission.Duplicate" in err
    rc, out, err = aws_cli("ec2", "delete-security-group", "--group-id", gid)
    assert rc == 0, err


def test_classic_rules_described_and_revoked_as_ec2_does(ec2, aws_cli, boto3_client):
    """Issue 12 item 5: several permissions in one call are described back one per protocol and
    port range, CIDRs and group pairs merged, and the same arguments revoke exactly those; the
    AWS CLI's shorthand and the old flat form (a whole source group) as EC2-Classic has them."""
    a_name, b_name = unique("cls-a"), unique("cls-b")
    a = ec2.create_security_group(GroupName=a_name, Description="a")["GroupId"]
    b = ec2.create_security_group(GroupName=b_name, Description="b")["GroupId"]
    owner = ec2.describe_security_groups(GroupIds=[b])["SecurityGroups"][0]["OwnerId"]
    keep = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.1.0.0/16"}]}
    ec2.authorize_security_group_ingress(GroupId=a, IpPermissions=[keep])
    perms = [{"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
             {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": b}]}]
    ec2.authorize_security_group_ingress(GroupId=a, IpPermissions=perms)
    # The same port range from a CIDR, in another call: merged into the group pair's permission.
    rc, out, err = aws_cli("ec2", "authorize-security-group-ingress", "--group-id", a, "--protocol", "tcp",
                           "--port", "1-65535", "--cidr", "192.0.2.0/24")
    assert rc == 0, err

    def shape(ps):
        return sorted((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"),
                       sorted(r["CidrIp"] for r in p["IpRanges"]),
                       sorted((g["GroupId"], g["GroupName"], g["UserId"]) for g in p["UserIdGroupPairs"]))
                      for p in ps)
    assert shape(perms_of(ec2, a)) == [
        ("icmp", -1, -1, ["0.0.0.0/0"], []),
        ("tcp", 1, 65535, ["192.0.2.0/24"], [(b, b_name, owner)]),
        ("tcp", 22, 22, ["10.1.0.0/16"], []),
    ]
    # The AWS CLI describes the same.
    rc, out, err = aws_cli("ec2", "describe-security-groups", "--group-ids", a)
    assert rc == 0 and shape(out["SecurityGroups"][0]["IpPermissions"]) == shape(perms_of(ec2, a)), err
    # Revoking with the same arguments removes exactly those.
    ec2.revoke_security_group_ingress(GroupId=a, IpPermissions=perms)
    assert shape(perms_of(ec2, a)) == [("tcp", 1, 65535, ["192.0.2.0/24"], []), ("tcp", 22, 22, ["10.1.0.0/16"], [])]
    rc, out, err = aws_cli("ec2", "revoke-security-group-ingress", "--group-id", a, "--protocol", "tcp",
                           "--port", "1-65535", "--cidr", "192.0.2.0/24")
    assert rc == 0, err
    # Again: not there any more, and EC2-Classic says so with success.
    rc, out, err = aws_cli("ec2", "revoke-security-group-ingress", "--group-id", a, "--protocol", "tcp",
                           "--port", "1-65535", "--cidr", "192.0.2.0/24")
    assert rc == 0, err
    assert shape(perms_of(ec2, a)) == [("tcp", 22, 22, ["10.1.0.0/16"], [])]
    # Egress on a Classic group: refused by both clients, as EC2 does.
    rc, out, err = aws_cli("ec2", "authorize-security-group-egress", "--group-id", a, "--protocol", "tcp",
                           "--port", "443", "--cidr", "0.0.0.0/0")
    assert rc != 0 and "InvalidParameterValue" in err and "Only Amazon VPC security groups" in err

    # The old flat form with only a source group: all of TCP, UDP and ICMP from it, three
    # permissions; the same arguments revoke all three.
    ec2.authorize_security_group_ingress(GroupName=a_name, SourceSecurityGroupName=b_name,
                                         SourceSecurityGroupOwnerId=owner)
    assert shape(perms_of(ec2, a)) == [
        ("icmp", -1, -1, [], [(b, b_name, owner)]),
        ("tcp", 0, 65535, [], [(b, b_name, owner)]),
        ("tcp", 22, 22, ["10.1.0.0/16"], []),
        ("udp", 0, 65535, [], [(b, b_name, owner)]),
    ]
    ec2.revoke_security_group_ingress(GroupName=a_name, SourceSecurityGroupName=b_name,
                                      SourceSecurityGroupOwnerId=owner)
    assert shape(perms_of(ec2, a)) == [("tcp", 22, 22, ["10.1.0.0/16"], [])]
    ec2.delete_security_group(GroupId=a)
    ec2.delete_security_group(GroupId=b)
