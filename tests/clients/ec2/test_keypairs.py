"""Key pairs and GetPasswordData through boto3 and the AWS CLI: create (PEM private key),
import (OpenSSH public key made with `cryptography`), describe by name/id/filters, the
InvalidKeyPair.* errors, delete (absent = success), and a password a boto3 user decrypts with
the private key CreateKeyPair gave, after the password_data_available waiter."""
import base64
import uuid

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def openssh_public(key):
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def test_create_import_describe_delete(ec2):
    name = unique("k")
    r = ec2.create_key_pair(KeyName=name)
    assert r["KeyName"] == name
    assert r["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert r["KeyPairId"].startswith("key-")
    assert len(r["KeyFingerprint"]) == 47
    serialization.load_pem_private_key(r["KeyMaterial"].encode(), password=None)
    assert code_of(lambda: ec2.create_key_pair(KeyName=name))[0] == "InvalidKeyPair.Duplicate"
    assert code_of(lambda: ec2.create_key_pair(KeyName=unique("d"), DryRun=True))[0] == "DryRunOperation"

    imp = unique("imp")
    pub = openssh_public(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ri = ec2.import_key_pair(KeyName=imp, PublicKeyMaterial=pub + b" me@host")
    assert ri["KeyName"] == imp and len(ri["KeyFingerprint"]) == 47
    blob = base64.b64decode(pub.split()[1])
    import hashlib
    assert ri["KeyFingerprint"] == ":".join("%02x" % b for b in hashlib.md5(blob).digest())
    ed = unique("ed")
    ec2.import_key_pair(KeyName=ed, PublicKeyMaterial=openssh_public(ed25519.Ed25519PrivateKey.generate()))
    assert code_of(lambda: ec2.import_key_pair(KeyName=unique("bad"), PublicKeyMaterial=b"ssh-rsa AAAAnotakey"))[0] \
        == "InvalidKeyPair.Format"
    assert code_of(lambda: ec2.import_key_pair(KeyName=imp, PublicKeyMaterial=openssh_public(
        ed25519.Ed25519PrivateKey.generate())))[0] == "InvalidKeyPair.Duplicate"

    listed = {k["KeyName"]: k for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert {name, imp, ed} <= set(listed)
    assert listed[name]["KeyPairId"] == r["KeyPairId"]
    by_name = ec2.describe_key_pairs(KeyNames=[name, imp])["KeyPairs"]
    assert sorted(k["KeyName"] for k in by_name) == sorted([name, imp])
    assert [k["KeyName"] for k in ec2.describe_key_pairs(KeyPairIds=[r["KeyPairId"]])["KeyPairs"]] == [name]
    fp = ec2.describe_key_pairs(Filters=[{"Name": "fingerprint", "Values": [ri["KeyFingerprint"]]}])["KeyPairs"]
    assert [k["KeyName"] for k in fp] == [imp]
    kn = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [imp[:5] + "*"]}])["KeyPairs"]
    assert [k["KeyName"] for k in kn] == [imp]
    c, m = code_of(lambda: ec2.describe_key_pairs(KeyNames=["ghost-key"]))
    assert (c, m) == ("InvalidKeyPair.NotFound", "The key pair 'ghost-key' does not exist")

    ec2.delete_key_pair(KeyName=imp)
    ec2.delete_key_pair(KeyPairId=r["KeyPairId"])
    ec2.delete_key_pair(KeyName="never-there-key")
    left = {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    assert name not in left and imp not in left and ed in left
    ec2.delete_key_pair(KeyName=ed)


def test_password_data_decrypts_with_the_key(ec2):
    name = unique("pw")
    pem = ec2.create_key_pair(KeyName=name)["KeyMaterial"]
    ami = ec2.describe_images(Filters=[{"Name": "name", "Values": ["CentOS 7 (password)"]}])["Images"][0]["ImageId"]
    iid = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, KeyName=name)["Instances"][0]["InstanceId"]
    ec2.get_waiter("password_data_available").wait(InstanceId=iid, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    r = ec2.get_password_data(InstanceId=iid)
    assert r["InstanceId"] == iid and r["Timestamp"]
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    password = key.decrypt(base64.b64decode(r["PasswordData"]), padding.PKCS1v15()).decode()
    assert len(password) >= 6 and password.isprintable()

    # No key pair: no password, and that is an empty answer, not an error.
    plain = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    assert ec2.get_password_data(InstanceId=plain)["PasswordData"] == ""
    assert code_of(lambda: ec2.get_password_data(InstanceId="i-0123456789abcdef0"))[0] == "InvalidInstanceID.NotFound"


def test_aws_cli(aws_cli, tmp_path):
    name = unique("cli")
    rc, out, err = aws_cli("ec2", "create-key-pair", "--key-name", name)
    assert rc == 0, err
    keyfile = tmp_path / "k.pem"
    keyfile.write_text(out["KeyMaterial"])
    rc, out, err = aws_cli("ec2", "describe-key-pairs", "--key-names", name)
    assert rc == 0, err
    assert [k["KeyName"] for k in out["KeyPairs"]] == [name]
    rc, out, err = aws_cli("ec2", "describe-images", "--filters", "Name=name,Values=CentOS 7 (password)")
    ami = out["Images"][0]["ImageId"]
    rc, out, err = aws_cli("ec2", "run-instances", "--image-id", ami, "--count", "1", "--key-name", name)
    assert rc == 0, err
    iid = out["Instances"][0]["InstanceId"]
    rc, out, err = aws_cli("ec2", "wait", "password-data-available", "--instance-id", iid)
    assert rc == 0, err
    # The CLI decrypts itself with --priv-launch-key.
    rc, out, err = aws_cli("ec2", "get-password-data", "--instance-id", iid, "--priv-launch-key", str(keyfile))
    assert rc == 0, err
    assert out["PasswordData"] and out["PasswordData"].isprintable()
    rc, out, err = aws_cli("ec2", "describe-key-pairs", "--key-names", "ghost-key")
    assert rc != 0 and "InvalidKeyPair.NotFound" in err
    rc, out, err = aws_cli("ec2", "delete-key-pair", "--key-name", name)
    assert rc == 0, err
