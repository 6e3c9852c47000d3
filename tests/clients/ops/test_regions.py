"""Several regions in one gateway (issue 15 item 4): a config with two simulated regions, each its own
CloudStack simulator in the same process; boto3 clients and the AWS CLI (`--region`) scoped to each region
see that region's zones, images and instances only, DescribeRegions lists both, SigV2 requests go by Host,
and what the gateway keeps in its store (internet gateways, tags, terminated instances) stays in the region
it was made in although both simulators have accounts of the same names."""
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import urllib.parse

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness import iso8601, parse_error, sigv2_encode, sigv2_sign, sigv2_string_to_sign  # noqa: E402
from ops_support import Gateway  # noqa: E402

EU_HOST = "eu-west-1.ec2bridge.test:7080"

CONFIG = """
[region]
name = "us-east-1"

[simulator]
fast = true

[[regions]]
name = "eu-west-1"
endpoint = "%s"
[regions.simulator]
fast = true
state_dir = ""
""" % EU_HOST


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("regions"), CONFIG)
    yield gw
    gw.stop()


def _user(users):
    return next(u for u in users if not u["is_admin"])


def _client(gw, region, user):
    import boto3
    from botocore.config import Config
    s = boto3.session.Session(aws_access_key_id=user["access_key"], aws_secret_access_key=user["secret_key"],
                              region_name=region)
    return s.client("ec2", endpoint_url=gw.endpoint,
                    config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120))


@pytest.fixture(scope="module")
def clients(two_regions):
    info = two_regions.info
    assert [r["name"] for r in info["regions"]] == ["eu-west-1"]
    us_user = _user(info["users"])
    eu_user = _user(info["regions"][0]["users"])
    # Two CloudStacks: different simulators with keys of their own.
    assert info["regions"][0]["cloudstack_endpoint"] != info["cloudstack_endpoint"]
    assert us_user["access_key"] != eu_user["access_key"]
    return {"us": _client(two_regions, "us-east-1", us_user), "eu": _client(two_regions, "eu-west-1", eu_user),
            "us_user": us_user, "eu_user": eu_user}


def test_describe_regions_lists_both(clients, two_regions):
    host = urllib.parse.urlsplit(two_regions.endpoint).netloc
    for c in (clients["us"], clients["eu"]):
        regions = {r["RegionName"]: r["Endpoint"] for r in c.describe_regions()["Regions"]}
        assert regions == {"us-east-1": host, "eu-west-1": EU_HOST}
    one = clients["eu"].describe_regions(RegionNames=["eu-west-1"])["Regions"]
    assert [r["RegionName"] for r in one] == ["eu-west-1"]


def test_each_region_has_its_own_zones(clients):
    us = clients["us"].describe_availability_zones()["AvailabilityZones"]
    eu = clients["eu"].describe_availability_zones()["AvailabilityZones"]
    assert {z["RegionName"] for z in us} == {"us-east-1"}
    assert {z["RegionName"] for z in eu} == {"eu-west-1"}
    us_names = {z["ZoneName"] for z in us}
    eu_names = {z["ZoneName"] for z in eu}
    assert us_names and eu_names and not us_names & eu_names
    assert all(n.startswith("eu-west-1-") for n in eu_names)
    # Zone ids (hashes of the zones' CloudStack uuids) differ too.
    assert not {z["ZoneId"] for z in us} & {z["ZoneId"] for z in eu}


def _run_one(c):
    images = c.describe_images(Filters=[{"Name": "state", "Values": ["available"]}])["Images"]
    ami = sorted(i["ImageId"] for i in images)[0]
    r = c.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t2.micro")
    return ami, r["Instances"][0]["InstanceId"]


def test_instances_are_listed_only_in_their_region(clients):
    us, eu = clients["us"], clients["eu"]
    us_ami, us_id = _run_one(us)
    eu_ami, eu_id = _run_one(eu)
    try:
        assert us_ami != eu_ami and us_id != eu_id
        us_ids = {i["InstanceId"] for r in us.describe_instances()["Reservations"] for i in r["Instances"]}
        eu_ids = {i["InstanceId"] for r in eu.describe_instances()["Reservations"] for i in r["Instances"]}
        assert us_id in us_ids and us_id not in eu_ids
        assert eu_id in eu_ids and eu_id not in us_ids
        # The other region's id is unknown here, with EC2's error, and nothing happens to it.
        from botocore.exceptions import ClientError
        with pytest.raises(ClientError) as e:
            eu.describe_instances(InstanceIds=[us_id])
        assert e.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
        with pytest.raises(ClientError) as e:
            eu.terminate_instances(InstanceIds=[us_id])
        assert e.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
        state = us.describe_instances(InstanceIds=[us_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
        assert state in ("pending", "running")
        # Each region's instance is placed in one of that region's zones.
        eu_inst = eu.describe_instances(InstanceIds=[eu_id])["Reservations"][0]["Instances"][0]
        assert eu_inst["Placement"]["AvailabilityZone"].startswith("eu-west-1-")
    finally:
        us.terminate_instances(InstanceIds=[us_id])
        eu.terminate_instances(InstanceIds=[eu_id])


def test_keys_of_one_region_are_unknown_in_the_other(clients, two_regions):
    from botocore.exceptions import ClientError
    # us-east-1's user signing for eu-west-1: that CloudStack does not know the keys.
    c = _client(two_regions, "eu-west-1", clients["us_user"])
    with pytest.raises(ClientError) as e:
        c.describe_availability_zones()
    assert e.value.response["Error"]["Code"] == "AuthFailure"


def _sigv2(gw, user, host, params):
    p = dict(params, Version="2016-11-15", AWSAccessKeyId=user["access_key"], SignatureVersion="2",
             SignatureMethod="HmacSHA256", Timestamp=iso8601(datetime.datetime.now(datetime.timezone.utc)))
    p["Signature"] = sigv2_sign(user["secret_key"], sigv2_string_to_sign("GET", host, "/", p))
    q = "&".join("%s=%s" % (sigv2_encode(k), sigv2_encode(v)) for k, v in p.items())
    return requests.get(gw.endpoint + "/?" + q, headers={"Host": host}, timeout=60)


def test_sigv2_goes_by_host(clients, two_regions):
    import xml.etree.ElementTree as ET
    own = urllib.parse.urlsplit(two_regions.endpoint).netloc

    def zones(resp):
        assert resp.status_code == 200, resp.text
        return {e.text for e in ET.fromstring(resp.content).iter() if e.tag.endswith("regionName")}

    # The eu-west-1 endpoint's Host reaches eu-west-1 with that region's keys.
    assert zones(_sigv2(two_regions, clients["eu_user"], EU_HOST, {"Action": "DescribeAvailabilityZones"})) == {
        "eu-west-1"}
    # Any other Host is the default region.
    assert zones(_sigv2(two_regions, clients["us_user"], own, {"Action": "DescribeAvailabilityZones"})) == {
        "us-east-1"}
    r = _sigv2(two_regions, clients["us_user"], EU_HOST, {"Action": "DescribeAvailabilityZones"})
    assert r.status_code == 401 and parse_error(r)[0] == "AuthFailure"


def test_readiness_names_both_cloudstacks(two_regions):
    r = requests.get(two_regions.admin + "/readyz", timeout=10)
    assert r.status_code == 200, r.text
    assert "cloudstack(eu-west-1)" in r.text


def test_store_records_stay_in_their_region(clients):
    """Both simulators seed accounts of the same names: the store's records (keyed by owner) must still be
    per region, or us-east-1's internet gateway would show up in eu-west-1."""
    from botocore.exceptions import ClientError
    us, eu = clients["us"], clients["eu"]
    igw = us.create_internet_gateway(TagSpecifications=[
        {"ResourceType": "internet-gateway", "Tags": [{"Key": "where", "Value": "us"}]}])["InternetGateway"]
    igw_id = igw["InternetGatewayId"]
    try:
        assert igw_id in {g["InternetGatewayId"] for g in us.describe_internet_gateways()["InternetGateways"]}
        assert igw_id not in {g["InternetGatewayId"] for g in eu.describe_internet_gateways()["InternetGateways"]}
        for call in (lambda: eu.describe_internet_gateways(InternetGatewayIds=[igw_id]),
                     lambda: eu.delete_internet_gateway(InternetGatewayId=igw_id),
                     lambda: eu.create_tags(Resources=[igw_id], Tags=[{"Key": "k", "Value": "v"}])):
            with pytest.raises(ClientError) as e:
                call()
            assert e.value.response["Error"]["Code"] == "InvalidInternetGatewayID.NotFound", e.value.response
        us_tags = us.describe_tags(Filters=[{"Name": "resource-id", "Values": [igw_id]}])["Tags"]
        assert [(t["Key"], t["Value"]) for t in us_tags] == [("where", "us")]
        assert eu.describe_tags(Filters=[{"Name": "resource-id", "Values": [igw_id]}])["Tags"] == []
    finally:
        us.delete_internet_gateway(InternetGatewayId=igw_id)


def test_terminated_instances_stay_in_their_region(clients):
    us, eu = clients["us"], clients["eu"]
    _, us_id = _run_one(us)
    us.terminate_instances(InstanceIds=[us_id])
    listed = {i["InstanceId"]: i["State"]["Name"]
              for r in us.describe_instances()["Reservations"] for i in r["Instances"]}
    assert listed.get(us_id) in ("shutting-down", "terminated")
    eu_ids = {i["InstanceId"] for r in eu.describe_instances()["Reservations"] for i in r["Instances"]}
    assert us_id not in eu_ids


def _aws(gw, user, region, *args):
    aws = pathlib.Path(sys.executable).parent / "aws"
    aws = str(aws) if aws.exists() else shutil.which("aws")
    if not aws:
        pytest.skip("SKIPPED: the AWS CLI (`aws`) is not installed (tests/clients/requirements.txt installs it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=user["access_key"], AWS_SECRET_ACCESS_KEY=user["secret_key"],
               AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1", AWS_PAGER="",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    p = subprocess.run([aws, "--endpoint-url", gw.endpoint, "--region", region, "--output", "json", "ec2", *args],
                       env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout) if p.stdout.strip() else None


def test_aws_cli_region_flag(clients, two_regions):
    """The issue's test over the AWS CLI: `--region` picks the region (SigV4 scope); instances made in
    each region are listed only there; describe-regions lists both."""
    gw, us_user, eu_user = two_regions, clients["us_user"], clients["eu_user"]
    for user, region in ((us_user, "us-east-1"), (eu_user, "eu-west-1")):
        out = _aws(gw, user, region, "describe-regions")
        assert sorted(r["RegionName"] for r in out["Regions"]) == ["eu-west-1", "us-east-1"]
        zones = _aws(gw, user, region, "describe-availability-zones")["AvailabilityZones"]
        assert zones and {z["RegionName"] for z in zones} == {region}
    made = {}
    for user, region in ((us_user, "us-east-1"), (eu_user, "eu-west-1")):
        images = _aws(gw, user, region, "describe-images", "--filters", "Name=state,Values=available")["Images"]
        ami = sorted(i["ImageId"] for i in images)[0]
        run = _aws(gw, user, region, "run-instances", "--image-id", ami, "--instance-type", "t2.micro",
                   "--count", "1")
        made[region] = (user, run["Instances"][0]["InstanceId"])
    try:
        for region, (user, iid) in made.items():
            listed = {i["InstanceId"] for r in _aws(gw, user, region, "describe-instances")["Reservations"]
                      for i in r["Instances"]}
            other = [i for r, (_, i) in made.items() if r != region]
            assert iid in listed and not listed & set(other), (region, listed)
    finally:
        for region, (user, iid) in made.items():
            _aws(gw, user, region, "terminate-instances", "--instance-ids", iid)


def test_rate_limits_per_region(tmp_path):
    """A region's own `requests_per_sec`/`burst`: its buckets empty without touching the other region's."""
    from botocore.exceptions import ClientError
    config = CONFIG.replace("[regions.simulator]", "requests_per_sec = 0.01\nburst = 5.0\n[regions.simulator]")
    gw = Gateway(tmp_path, config)
    try:
        eu = _client(gw, "eu-west-1", _user(gw.info["regions"][0]["users"]))
        us = _client(gw, "us-east-1", _user(gw.info["users"]))
        for _ in range(5):
            eu.describe_availability_zones()
        with pytest.raises(ClientError) as e:
            eu.describe_availability_zones()
        assert e.value.response["Error"]["Code"] == "RequestLimitExceeded"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        for _ in range(10):  # us-east-1 keeps [limits]' bucket of 100
            us.describe_availability_zones()
    finally:
        gw.stop()
