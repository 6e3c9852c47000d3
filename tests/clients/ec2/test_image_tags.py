"""Tags on images the caller can see but does not own (issue 12 item 2; docs/gateway-state.md "Tags
kept by the gateway"). CloudStack lets only a template's owner tag it; EC2 lets any account tag any AMI
it can see, and each account sees its own tags only. boto3 (CreateTags, DescribeImages tagSet and
tag:/tag-key filters, DescribeTags filters, DeleteTags, two accounts on one image, an image the caller
owns) and the AWS CLI."""
import uuid

import pytest
from botocore.exceptions import ClientError

WAIT = {"Delay": 1, "MaxAttempts": 60}


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


@pytest.fixture(scope="module")
def other(gateway, boto3_client, user):
    others = [u for u in gateway["users"] if not u["is_admin"] and u["account"] != user["account"]]
    assert others, "the demo seed should have a second user account"
    return boto3_client(others[0])


@pytest.fixture(scope="module")
def featured(ec2):
    """A featured template another account (the admin) owns: the seed's Ubuntu image."""
    imgs = [i for i in ec2.describe_images(Owners=["amazon"])["Images"] if i["Name"].startswith("Ubuntu")]
    assert imgs, "the demo seed has a featured Ubuntu template"
    return imgs[0]["ImageId"]


def image_tags(client, ami):
    return {t["Key"]: t["Value"] for t in client.describe_images(ImageIds=[ami])["Images"][0].get("Tags", [])}


def described(client, ami):
    out = client.describe_tags(Filters=[{"Name": "resource-id", "Values": [ami]}])["Tags"]
    return sorted((t["ResourceId"], t["ResourceType"], t["Key"], t["Value"]) for t in out)


def test_tag_a_featured_image_per_account(ec2, other, featured):
    run = uuid.uuid4().hex[:8]
    ec2.create_tags(Resources=[featured], Tags=[{"Key": "Name", "Value": "base-" + run}, {"Key": "team", "Value": "a"}])
    other.create_tags(Resources=[featured], Tags=[{"Key": "Name", "Value": "theirs-" + run}])
    # Each account sees its own tags, in DescribeImages and DescribeTags.
    assert image_tags(ec2, featured) == {"Name": "base-" + run, "team": "a"}
    assert image_tags(other, featured) == {"Name": "theirs-" + run}
    assert described(ec2, featured) == [(featured, "image", "Name", "base-" + run), (featured, "image", "team", "a")]
    assert described(other, featured) == [(featured, "image", "Name", "theirs-" + run)]
    # DescribeImages filters: tag:<key>, tag-key, with other filters and paging.
    for flt in ([{"Name": "tag:Name", "Values": ["base-" + run]}], [{"Name": "tag:Name", "Values": ["base-*"]},
                                                                   {"Name": "tag-key", "Values": ["team"]}],
                [{"Name": "tag-key", "Values": ["team"]}, {"Name": "image-id", "Values": [featured]}]):
        assert [i["ImageId"] for i in ec2.describe_images(Filters=flt)["Images"]] == [featured], flt
    assert other.describe_images(Filters=[{"Name": "tag:Name", "Values": ["base-" + run]}])["Images"] == []
    pages = list(ec2.get_paginator("describe_images").paginate(
        Filters=[{"Name": "tag:Name", "Values": ["base-" + run]}], PaginationConfig={"PageSize": 5}))
    assert [i["ImageId"] for p in pages for i in p["Images"]] == [featured]
    # DescribeTags filters: resource-type image, key, value, resource-id.
    got = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["image"]},
                                     {"Name": "key", "Values": ["Name"]},
                                     {"Name": "value", "Values": ["base-" + run]}])["Tags"]
    assert [(t["ResourceId"], t["Key"]) for t in got] == [(featured, "Name")]
    assert ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["instance"]},
                                      {"Name": "resource-id", "Values": [featured]}])["Tags"] == []
    # Overwrite a key; DeleteTags with a value that does not match, by key, all.
    ec2.create_tags(Resources=[featured], Tags=[{"Key": "team", "Value": "b"}])
    assert image_tags(ec2, featured)["team"] == "b"
    ec2.delete_tags(Resources=[featured], Tags=[{"Key": "team", "Value": "a"}])
    assert image_tags(ec2, featured)["team"] == "b"
    ec2.delete_tags(Resources=[featured], Tags=[{"Key": "team"}])
    assert image_tags(ec2, featured) == {"Name": "base-" + run}
    assert image_tags(other, featured) == {"Name": "theirs-" + run}
    ec2.delete_tags(Resources=[featured])
    other.delete_tags(Resources=[featured], Tags=[{"Key": "Name", "Value": "theirs-" + run}])
    assert image_tags(ec2, featured) == {} and image_tags(other, featured) == {}
    assert described(ec2, featured) == [] and described(other, featured) == []


def test_errors_change_nothing(ec2, featured):
    assert code_of(lambda: ec2.create_tags(Resources=["ami-0123456789abcdef0"], Tags=[{"Key": "k", "Value": "v"}])) \
        == "InvalidAMIID.NotFound"
    assert code_of(lambda: ec2.create_tags(Resources=[featured], Tags=[{"Key": "aws:x", "Value": "v"}])) \
        == "InvalidParameterValue"
    assert code_of(lambda: ec2.create_tags(Resources=[featured], Tags=[{"Key": "k", "Value": "v"}], DryRun=True)) \
        == "DryRunOperation"
    assert code_of(lambda: ec2.create_tags(Resources=[featured, "ami-0123456789abcdef0"],
                                           Tags=[{"Key": "k", "Value": "v"}])) == "InvalidAMIID.NotFound"
    assert image_tags(ec2, featured) == {}


def test_own_and_private_images(ec2, other):
    """The caller's own image is tagged in CloudStack as before; another account's private image
    stays invisible (NotFound), and its public one can be tagged by the other account, whose tags
    the owner does not see (nor the owner's tags the other account)."""
    name = "tagged-%s" % uuid.uuid4().hex[:8]
    ami = ec2.register_image(Name=name, ImageLocation="http://images.example/t.qcow2",
                             Architecture="x86_64")["ImageId"]
    try:
        ec2.get_waiter("image_available").wait(ImageIds=[ami], WaiterConfig=WAIT)
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "owner", "Value": "me"}])
        assert image_tags(ec2, ami) == {"owner": "me"}
        assert code_of(lambda: other.create_tags(Resources=[ami], Tags=[{"Key": "k", "Value": "v"}])) \
            == "InvalidAMIID.NotFound"
        ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
        other.create_tags(Resources=[ami], Tags=[{"Key": "seen", "Value": "by-other"}])
        assert image_tags(other, ami) == {"seen": "by-other"}
        assert image_tags(ec2, ami) == {"owner": "me"}
        assert [i["ImageId"] for i in other.describe_images(
            Filters=[{"Name": "tag:seen", "Values": ["by-other"]}])["Images"]] == [ami]
        assert other.describe_images(Filters=[{"Name": "tag-key", "Values": ["owner"]},
                                              {"Name": "image-id", "Values": [ami]}])["Images"] == []
        # Private again: the other account no longer sees the image, nor its tags on it.
        ec2.reset_image_attribute(ImageId=ami, Attribute="launchPermission")
        assert described(other, ami) == []
        assert code_of(lambda: other.create_tags(Resources=[ami], Tags=[{"Key": "k", "Value": "v"}])) \
            == "InvalidAMIID.NotFound"
        ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
        assert described(other, ami) == [(ami, "image", "seen", "by-other")]
        other.delete_tags(Resources=[ami])
        assert image_tags(other, ami) == {}
        assert image_tags(ec2, ami) == {"owner": "me"}
    finally:
        ec2.deregister_image(ImageId=ami)


def test_aws_cli(aws_cli, featured):
    run = uuid.uuid4().hex[:8]
    rc, _, err = aws_cli("ec2", "create-tags", "--resources", featured, "--tags", "Key=cli,Value=" + run)
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-images", "--filters", "Name=tag:cli,Values=" + run,
                           "--query", "Images[].[ImageId,Tags[0].Value]")
    assert rc == 0, err
    assert out == [[featured, run]]
    rc, out, err = aws_cli("ec2", "describe-tags", "--filters", "Name=resource-type,Values=image",
                           "Name=key,Values=cli")
    assert rc == 0, err
    assert [(t["ResourceId"], t["Value"]) for t in out["Tags"]] == [(featured, run)]
    rc, _, err = aws_cli("ec2", "delete-tags", "--resources", featured, "--tags", "Key=cli")
    assert rc == 0, err
    rc, out, err = aws_cli("ec2", "describe-tags", "--filters", "Name=resource-id,Values=" + featured)
    assert rc == 0 and out["Tags"] == [], err
