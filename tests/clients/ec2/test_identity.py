"""Who am I: STS GetCallerIdentity and IAM GetUser at the EC2 endpoint (docs/accounts.md), through
boto3's sts and iam clients and the AWS CLI, as Terraform's AWS provider and Ansible's amazon.aws
modules ask before they touch EC2. The expected account number is computed here from the seeded
account uuid with the documented formula, independently of the gateway."""
import hashlib
import pathlib
import re
import tomllib

import pytest
from botocore.exceptions import ClientError

SEED = pathlib.Path(__file__).resolve().parents[3] / "seeds" / "default.toml"


def seeded_account(name):
    seed = tomllib.loads(SEED.read_text())
    for a in seed["accounts"]:
        if a["name"] == name:
            return a
    raise KeyError(name)


def account_number(account_uuid):
    """docs/accounts.md: first 8 bytes of SHA-256("account:" uuid), big-endian, mod 10^12."""
    d = hashlib.sha256(("account:" + account_uuid).encode()).digest()
    return "%012d" % (int.from_bytes(d[:8], "big") % 10**12)


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def me(user):
    acct = seeded_account(user["account"])
    return {"account": account_number(acct["id"]), "user": acct["users"][0]}


def test_boto3_get_caller_identity(boto3_client, user, me):
    sts = boto3_client(service="sts")
    got = sts.get_caller_identity()
    assert got["Account"] == me["account"]
    assert got["Arn"] == "arn:aws:iam::%s:user/%s" % (me["account"], me["user"]["username"])
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", got["UserId"]), got["UserId"]
    assert got["ResponseMetadata"]["RequestId"]
    # Stable: asked again (and by another client) the same answer.
    assert boto3_client(service="sts").get_caller_identity()["UserId"] == got["UserId"]


def test_each_user_has_its_own_identity(boto3_client, gateway, user):
    others = [u for u in gateway["users"] if u["account"] != user["account"]]
    assert others
    seen = {boto3_client(service="sts").get_caller_identity()["Account"]}
    for o in others:
        got = boto3_client(o, service="sts").get_caller_identity()
        assert got["Account"] == account_number(seeded_account(o["account"])["id"])
        seen.add(got["Account"])
    assert len(seen) == len(others) + 1


def test_aws_cli_get_caller_identity(aws_cli, me):
    rc, out, err = aws_cli("sts", "get-caller-identity")
    assert rc == 0, err
    assert out["Account"] == me["account"]
    assert out["Arn"].endswith(":user/" + me["user"]["username"])


def test_iam_get_user(boto3_client, me):
    iam = boto3_client(service="iam")
    u = iam.get_user()["User"]
    assert u["UserName"] == me["user"]["username"]
    assert u["Path"] == "/"
    assert u["Arn"] == "arn:aws:iam::%s:user/%s" % (me["account"], me["user"]["username"])
    assert u["UserId"] == boto3_client(service="sts").get_caller_identity()["UserId"]
    assert u["CreateDate"].year >= 2000
    # By name: the caller itself; a user name the account does not have is NoSuchEntity (404).
    assert iam.get_user(UserName=me["user"]["username"])["User"]["UserId"] == u["UserId"]
    assert code_of(lambda: iam.get_user(UserName="nobody-here")) == ("NoSuchEntity", 404)


def test_aws_cli_iam_get_user(aws_cli, me):
    rc, out, err = aws_cli("iam", "get-user")
    assert rc == 0, err
    assert out["User"]["UserName"] == me["user"]["username"]


def test_account_is_the_ec2_owner_id(boto3_client, me):
    """The same 12 digits as ownerId in EC2 answers (the caller's own security groups)."""
    groups = boto3_client().describe_security_groups()["SecurityGroups"]
    assert groups
    assert {g["OwnerId"] for g in groups} == {me["account"]}


def test_other_sts_and_iam_actions_are_invalid(boto3_client):
    sts = boto3_client(service="sts")
    assert code_of(lambda: sts.get_session_token()) == ("InvalidAction", 400)
    assert code_of(lambda: sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/x", RoleSessionName="session")) == \
        ("InvalidAction", 400)
    iam = boto3_client(service="iam")
    assert code_of(lambda: iam.list_users()) == ("InvalidAction", 400)
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName="x")
    assert e.value.response["Error"]["Code"] == "InvalidAction"
    assert "CreateUser" in e.value.response["Error"]["Message"]


def test_identity_is_authenticated(boto3_client, user):
    bad = boto3_client(secret="not-the-secret", service="sts")
    code, status = code_of(lambda: bad.get_caller_identity())
    assert (code, status) == ("SignatureDoesNotMatch", 403)
