"""Authentication and the Query front door as real clients see them: boto3 (SigV4 header), the
AWS CLI, a botocore presigned URL (SigV4 query) and exact SigV2 requests (HmacSHA256/HmacSHA1,
GET and POST), the authentication errors with their HTTP status, MissingAction/InvalidAction, the
error document's shape, both `/` and `/awsapi`, and no secret in the gateway log."""
import datetime
import xml.etree.ElementTree as ET

import pytest
import requests
from botocore.exceptions import ClientError

from harness import local_name, parse_error, sigv2_sign, sigv2_string_to_sign

NOW = lambda: datetime.datetime.now(datetime.timezone.utc)  # noqa: E731
STATUS = {"AuthFailure": 401, "SignatureDoesNotMatch": 403, "RequestExpired": 400, "MissingAction": 400,
          "InvalidAction": 400, "MissingAuthenticationToken": 403}
UNKNOWN_KEY = "AKIDEC2BRIDGENOSUCHUSER"


def client_error(call):
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r


def assert_regions_document(resp, region):
    assert resp.status_code == 200, resp.text[:1000]
    root = ET.fromstring(resp.content)
    assert local_name(root.tag) == "DescribeRegionsResponse"
    assert root.tag.startswith("{http://ec2.amazonaws.com/doc/"), root.tag
    names = [e.text for e in root.iter() if local_name(e.tag) == "regionName"]
    assert region in names, resp.text[:1000]


# ------------------------------------------------------------------------------------------------
# The harness's own signer, against the SigV2 golden vectors of docs/ec2-wire.md "SigV2" (no gateway needed).

GOLD_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_sigv2_signer_matches_golden_vectors():
    v1 = {"Action": "DescribeInstances", "Version": "2016-11-15", "InstanceId.1": "i-1234567890abcdef0",
          "AWSAccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SignatureVersion": "2", "SignatureMethod": "HmacSHA256",
          "Timestamp": "2016-11-15T12:00:00Z"}
    sts = sigv2_string_to_sign("GET", "ec2.amazonaws.com", "/", v1)
    assert sts.endswith("&Timestamp=2016-11-15T12%3A00%3A00Z&Version=2016-11-15")
    assert sigv2_sign(GOLD_SECRET, sts) == "VtZD0EwS0psA2ema9CSWg8STcQxfK3fHnsZRMU2M9ls="
    v2 = {"Action": "DescribeRegions", "Version": "2012-08-15", "AWSAccessKeyId": "AKIAIOSFODNN7EXAMPLE",
          "SignatureVersion": "2", "SignatureMethod": "HmacSHA1", "Expires": "2016-11-15T12:15:00Z"}
    sts = sigv2_string_to_sign("GET", "ec2.amazonaws.com", "/", v2)
    assert sigv2_sign(GOLD_SECRET, sts, "HmacSHA1") == "smHJE2gD3oLoo0QCow81r1ntFFk="
    v3 = {"Action": "DescribeInstances", "Version": "2016-11-15", "Filter.1.Name": "tag:Name",
          "Filter.1.Value.1": "my web*server~\u00fc", "AWSAccessKeyId": "AKIAIOSFODNN7EXAMPLE",
          "SignatureVersion": "2", "SignatureMethod": "HmacSHA256", "Timestamp": "2016-11-15T12:00:00Z"}
    sts = sigv2_string_to_sign("POST", "127.0.0.1:8788", "/", v3)
    assert "Filter.1.Value.1=my%20web%2Aserver~%C3%BC" in sts
    assert sigv2_sign(GOLD_SECRET, sts) == "gGV698qTHQ5iR0KOiM/XGaiTe23DqTCG3gzmfmrJnHs="


# ------------------------------------------------------------------------------------------------
# Good requests


def test_describe_regions_boto3(boto3_client, gateway):
    r = boto3_client().describe_regions()
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert gateway["region"] in [x["RegionName"] for x in r["Regions"]], r
    # The region's endpoint is this gateway (boto 2 builds its connections from it).
    mine = [x for x in r["Regions"] if x["RegionName"] == gateway["region"]][0]
    assert mine["Endpoint"] == gateway["endpoint"].split("://", 1)[1], mine
    assert r["ResponseMetadata"]["RequestId"]


def test_describe_regions_aws_cli(aws_cli, gateway):
    rc, out, err = aws_cli("ec2", "describe-regions")
    assert rc == 0, err
    assert gateway["region"] in [x["RegionName"] for x in out["Regions"]], out


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("signature_method", ["HmacSHA256", "HmacSHA1"])
def test_sigv2_requests_accepted(raw_sigv2, gateway, method, signature_method):
    r = raw_sigv2({"Action": "DescribeRegions"}, method=method, signature_method=signature_method)
    assert_regions_document(r, gateway["region"])


def test_sigv2_expires_instead_of_timestamp(raw_sigv2, gateway):
    r = raw_sigv2({"Action": "DescribeRegions"}, expires=NOW() + datetime.timedelta(minutes=5),
                  version="2012-08-15")
    assert_regions_document(r, gateway["region"])
    assert ET.fromstring(r.content).tag == "{http://ec2.amazonaws.com/doc/2012-08-15/}DescribeRegionsResponse"


def test_sigv2_special_characters_in_values(raw_sigv2, gateway):
    # Space, '*', '~', '+', '/', '=', '&' and non-ASCII must be signed exactly as §2.2 says.
    r = raw_sigv2({"Action": "DescribeRegions", "Filter.1.Name": "region-name",
                   "Filter.1.Value.1": "a b*c~d/e+f=g&h\u00fc"})
    assert r.status_code == 200, r.text[:1000]
    # The filter matches no region: the value arrived intact and was applied.
    assert [e for e in ET.fromstring(r.content).iter() if local_name(e.tag) == "regionName"] == []


def test_botocore_presigned_url(boto3_client, gateway):
    ec2 = boto3_client()
    # HttpMethod="GET": a URL to GET.
    url = ec2.generate_presigned_url("describe_regions", Params={}, ExpiresIn=300, HttpMethod="GET")
    assert "X-Amz-Signature=" in url
    assert_regions_document(requests.get(url, timeout=60), gateway["region"])
    # The same URL with one signature character changed is refused.
    sig_at = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    bad = url[:sig_at] + ("0" if url[sig_at] != "0" else "1") + url[sig_at + 1:]
    r = requests.get(bad, timeout=60)
    assert (r.status_code, parse_error(r)[0]) == (403, "SignatureDoesNotMatch"), r.text
    # By default botocore signs EC2 URLs for the operation's method, POST (empty body); a GET of
    # such a URL is not what was signed, on AWS too (docs/ec2-wire.md "SigV4").
    url = ec2.generate_presigned_url("describe_regions", Params={}, ExpiresIn=300)
    assert_regions_document(requests.post(url, timeout=60), gateway["region"])
    r = requests.get(url, timeout=60)
    assert (r.status_code, parse_error(r)[0]) == (403, "SignatureDoesNotMatch"), r.text


def test_awsapi_path_works_like_root(boto3_client, raw_sigv2, aws_cli, gateway):
    ec2 = boto3_client(endpoint=gateway["endpoint"] + "/awsapi")
    assert gateway["region"] in [x["RegionName"] for x in ec2.describe_regions()["Regions"]]
    assert_regions_document(raw_sigv2({"Action": "DescribeRegions"}, path="/awsapi"), gateway["region"])
    assert_regions_document(raw_sigv2({"Action": "DescribeRegions"}, path="/awsapi", method="POST"),
                            gateway["region"])
    rc, out, err = aws_cli("ec2", "describe-regions", endpoint=gateway["endpoint"] + "/awsapi")
    assert rc == 0, err
    assert gateway["region"] in [x["RegionName"] for x in out["Regions"]]
    # A wrong secret on /awsapi is refused just the same.
    code, status, _ = client_error(boto3_client(endpoint=gateway["endpoint"] + "/awsapi",
                                                secret="wrong-secret-awsapi").describe_regions)
    assert (code, status) == ("SignatureDoesNotMatch", 403)


# ------------------------------------------------------------------------------------------------
# Refused requests


def assert_bad_secret(code, status):
    assert code in ("AuthFailure", "SignatureDoesNotMatch"), code
    assert status == STATUS[code], (code, status)


def test_bad_secret(boto3_client, raw_sigv2, aws_cli):
    code, status, _ = client_error(boto3_client(secret="not-the-secret-4d2f").describe_regions)
    assert_bad_secret(code, status)
    r = raw_sigv2({"Action": "DescribeRegions"}, secret="not-the-secret-sigv2-77e1")
    assert_bad_secret(parse_error(r)[0], r.status_code)
    r = raw_sigv2({"Action": "DescribeRegions"}, secret="not-the-secret-post-19aa", method="POST",
                  signature_method="HmacSHA1")
    assert_bad_secret(parse_error(r)[0], r.status_code)
    rc, _, err = aws_cli("ec2", "describe-regions", secret="not-the-secret-cli-5b0c")
    assert rc != 0 and ("SignatureDoesNotMatch" in err or "AuthFailure" in err), err


def test_unknown_access_key(boto3_client, raw_sigv2, user, aws_cli):
    stranger = dict(user, access_key=UNKNOWN_KEY)
    code, status, _ = client_error(boto3_client(stranger).describe_regions)
    assert (code, status) == ("AuthFailure", 401)
    r = raw_sigv2({"Action": "DescribeRegions"}, access_key=UNKNOWN_KEY + "2")
    assert (r.status_code, parse_error(r)[0]) == (401, "AuthFailure")
    rc, _, err = aws_cli("ec2", "describe-regions", user=dict(user, access_key=UNKNOWN_KEY + "3"))
    assert rc != 0 and "AuthFailure" in err, err


@pytest.mark.parametrize("when", [
    {"timestamp": -20},   # older than the 15-minute window
    {"timestamp": +20},   # too far in the future
    {"expires": -20},     # expired (beyond the allowed skew)
])
def test_expired_sigv2_request(raw_sigv2, when):
    (kind, minutes), = when.items()
    t = NOW() + datetime.timedelta(minutes=minutes)
    r = raw_sigv2({"Action": "DescribeRegions"}, **{kind: t})
    code, message, _ = parse_error(r)
    assert (r.status_code, code) == (400, "RequestExpired"), r.text
    assert message


def test_expired_check_before_key_lookup(raw_sigv2):
    # An old request with an unknown key learns nothing about the key.
    r = raw_sigv2({"Action": "DescribeRegions"}, access_key=UNKNOWN_KEY + "old",
                  timestamp=NOW() - datetime.timedelta(hours=2))
    assert (r.status_code, parse_error(r)[0]) == (400, "RequestExpired")


def test_missing_action(raw_sigv2):
    r = raw_sigv2({})
    assert (r.status_code, parse_error(r)[0]) == (400, "MissingAction"), r.text


def test_unknown_action(raw_sigv2):
    r = raw_sigv2({"Action": "FlyToTheMoon"})
    code, message, _ = parse_error(r)
    assert (r.status_code, code) == (400, "InvalidAction"), r.text
    assert "FlyToTheMoon" in message


def test_unsigned_request(gateway):
    r = requests.get(gateway["endpoint"] + "/?Action=DescribeRegions&Version=2016-11-15", timeout=60)
    assert (r.status_code, parse_error(r)[0]) == (403, "MissingAuthenticationToken")


# ------------------------------------------------------------------------------------------------
# The error document (docs/ec2-wire.md "Error documents")


def assert_error_document(r, code):
    assert r.status_code == STATUS[code]
    assert r.headers["Content-Type"].startswith("text/xml")
    rid = r.headers.get("x-amzn-RequestId")
    assert rid
    root = ET.fromstring(r.content)
    # No namespace anywhere (libcloud finds nothing under a namespaced root).
    assert all("}" not in e.tag for e in root.iter()), r.text
    assert root.tag == "Response"
    assert [c.tag for c in root] == ["Errors", "RequestID"], r.text
    errors = list(root.find("Errors"))
    assert [e.tag for e in errors] == ["Error"]
    # Exactly Code then Message (libcloud unpacks `code, message = list(err)`).
    assert [c.tag for c in errors[0]] == ["Code", "Message"], r.text
    assert errors[0].findtext("Code") == code
    assert errors[0].findtext("Message")
    assert root.findtext("RequestID") == rid


def test_error_document_shape(raw_sigv2, gateway, boto3_client):
    assert_error_document(raw_sigv2({"Action": "FlyToTheMoon"}), "InvalidAction")
    assert_error_document(raw_sigv2({}), "MissingAction")
    assert_error_document(raw_sigv2({"Action": "DescribeRegions"}, access_key=UNKNOWN_KEY + "doc"), "AuthFailure")
    assert_error_document(raw_sigv2({"Action": "DescribeRegions"}, secret="bad-secret-doc-0e3c"),
                          "SignatureDoesNotMatch")
    assert_error_document(raw_sigv2({"Action": "DescribeRegions"}, timestamp=NOW() - datetime.timedelta(hours=1)),
                          "RequestExpired")
    assert_error_document(requests.get(gateway["endpoint"] + "/awsapi?Action=DescribeRegions", timeout=60),
                          "MissingAuthenticationToken")
    # botocore reads the request id from the body's RequestID.
    _, _, resp = client_error(boto3_client(secret="bad-secret-boto-doc-61f0").describe_regions)
    assert resp["ResponseMetadata"]["RequestId"] == resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_every_answer_has_a_request_id(raw_sigv2, gateway):
    ids = set()
    for r in (raw_sigv2({"Action": "DescribeRegions"}), raw_sigv2({"Action": "DescribeRegions"}),
              requests.get(gateway["endpoint"] + "/healthz", timeout=60)):
        rid = r.headers.get("x-amzn-RequestId")
        assert rid and rid not in ids
        ids.add(rid)
