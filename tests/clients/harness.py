"""Helpers for the real-client suites (imported by conftest.py and the tests): SigV2 signing
exactly as docs/ec2-wire.md "SigV2" says, and readers for EC2 answers."""
import base64
import datetime
import hashlib
import hmac
import urllib.parse
import xml.etree.ElementTree as ET

# Codes a client sees when authentication, not the action, failed.
AUTH_CODES = {"AuthFailure", "SignatureDoesNotMatch", "RequestExpired", "MissingAuthenticationToken",
              "IncompleteSignature", "InvalidClientTokenId"}


def sigv2_encode(s):
    """RFC 3986: unreserved characters as is, every other UTF-8 byte as %XX (uppercase)."""
    return urllib.parse.quote(str(s).encode("utf-8"), safe="-_.~")


def sigv2_string_to_sign(method, host, path, params):
    pairs = sorted((sigv2_encode(k), sigv2_encode(v)) for k, v in params.items() if k != "Signature")
    canonical = "&".join("%s=%s" % kv for kv in pairs)
    return "\n".join([method.upper(), host.lower(), path or "/", canonical])


def sigv2_sign(secret, string_to_sign, method="HmacSHA256"):
    digest = hashlib.sha256 if method == "HmacSHA256" else hashlib.sha1
    mac = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), digest)
    return base64.b64encode(mac.digest()).decode("ascii")


def iso8601(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_error(resp):
    """(code, message, request_id) from an EC2 Query error document."""
    root = ET.fromstring(resp.content)
    err = root.find("Errors/Error")
    return err.findtext("Code"), err.findtext("Message"), root.findtext("RequestID")


def local_name(tag):
    return tag.rsplit("}", 1)[-1]


def client_error(call):
    """(code, message) of the botocore ClientError that `call()` must raise."""
    import pytest
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def supported_platforms(describe_account_attributes):
    """The `supported-platforms` values, from a boto3 client's or an AWS CLI wrapper's
    describe_account_attributes(AttributeNames=[...]) answer."""
    answer = describe_account_attributes(AttributeNames=["supported-platforms"])
    return [v["AttributeValue"] for a in answer["AccountAttributes"] for v in a["AttributeValues"]]


def default_vpc(describe_account_attributes):
    answer = describe_account_attributes(AttributeNames=["default-vpc"])
    return answer["AccountAttributes"][0]["AttributeValues"][0]["AttributeValue"]


def derived_id(kind, prefix, uuid):
    """The EC2 id the gateway gives a CloudStack object (docs/ids.md): prefix + 17 hex digits of
    sha256("<kind>:<uuid>")."""
    return "%s-%s" % (prefix, hashlib.sha256(("%s:%s" % (kind, uuid)).encode()).hexdigest()[:17])
