"""Issue 10: two gateway processes on one PostgreSQL store (and one simulator) share the VPC
objects CloudStack has no counterpart for. A route table made through one gateway is seen,
changed and deleted through the other; an internet gateway attached through one is attached for
the other; a NAT gateway made through one holds its Elastic IP for the other; the tiers' security
group lists are the same whichever gateway (or a gateway started later) computes them.
Needs EC2BRIDGE_TEST_POSTGRES_URL (and psql to make a schema of its own); skips clearly without."""
import os
import shutil
import subprocess
import uuid

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from cs import CloudStack
from ops_support import Gateway, Sim
from harness import supported_platforms

PG = os.environ.get("EC2BRIDGE_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG or not shutil.which("psql"),
                                reason="EC2BRIDGE_TEST_POSTGRES_URL not set (or psql missing): "
                                       "the two-gateway VPC test needs PostgreSQL")
NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=60)


@pytest.fixture
def pg_store():
    schema = "ec2b_vpc2_%s" % uuid.uuid4().hex[:12]
    subprocess.run(["psql", PG, "-q", "-c", "CREATE SCHEMA %s" % schema], check=True, capture_output=True)
    sep = "&" if "?" in PG else "?"
    yield "%s%soptions[search_path]=%s" % (PG, sep, schema)
    subprocess.run(["psql", PG, "-q", "-c", "DROP SCHEMA IF EXISTS %s CASCADE" % schema], capture_output=True)


def ec2(gw, u):
    return boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1", aws_access_key_id=u["apikey"],
                        aws_secret_access_key=u["secretkey"], config=NO_RETRIES)


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def test_route_tables_gateways_and_nat_shared_by_two_gateways(workdir, procs, pg_store):
    sim = Sim(workdir).start()
    procs.append(sim)
    admin = sim.admin()
    cfg = ('[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "%s"\n'
           % (sim.endpoint, admin["apikey"], admin["secretkey"]))
    env = {"EC2BRIDGE_STORE_URL": pg_store}
    gw1, gw2 = Gateway(workdir, cfg, env=env), Gateway(workdir, cfg, env=env)
    procs.extend([gw1, gw2])
    alice = sim.user()
    c1, c2 = ec2(gw1, alice), ec2(gw2, alice)
    if "VPC" not in supported_platforms(c1.describe_account_attributes):
        pytest.skip("the simulator's region has no VPC zone")

    vpc = c1.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    c1.get_waiter("vpc_available").wait(VpcIds=[vpc])
    sub = c1.create_subnet(VpcId=vpc, CidrBlock="10.60.1.0/24")["Subnet"]["SubnetId"]
    # The main route table exists once, whichever gateway looks first.
    main1 = c1.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    main2 = c2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    assert [t["RouteTableId"] for t in main1] == [t["RouteTableId"] for t in main2] and len(main1) == 1

    # An internet gateway made and attached through gw1 is attached for gw2.
    igw = c1.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    c1.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    got = c2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"][0]
    assert got["Attachments"] == [{"State": "available", "VpcId": vpc}]
    assert code_of(lambda: c2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)) == \
        "Resource.AlreadyAssociated"

    # A route table made through gw1: seen, changed and associated through gw2, deleted through gw2.
    rtb = c1.create_route_table(VpcId=vpc, TagSpecifications=[
        {"ResourceType": "route-table", "Tags": [{"Key": "Name", "Value": "shared"}]}])["RouteTable"]["RouteTableId"]
    seen = c2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    assert seen["VpcId"] == vpc and seen["Tags"] == [{"Key": "Name", "Value": "shared"}]
    c2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    assoc = c2.associate_route_table(RouteTableId=rtb, SubnetId=sub)["AssociationId"]
    t = c1.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    assert [(r["DestinationCidrBlock"], r.get("GatewayId")) for r in t["Routes"]] == \
        [("10.60.0.0/16", "local"), ("0.0.0.0/0", igw)]
    assert [a["RouteTableAssociationId"] for a in t["Associations"]] == [assoc]
    # The same route again through gw1: EC2's duplicate error, as the store already has it.
    assert code_of(lambda: c1.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)) == \
        "RouteAlreadyExists"
    assert code_of(lambda: c1.delete_route_table(RouteTableId=rtb)) == "DependencyViolation"
    c1.disassociate_route_table(AssociationId=assoc)
    c2.delete_route_table(RouteTableId=rtb)
    assert code_of(lambda: c1.describe_route_tables(RouteTableIds=[rtb])) == "InvalidRouteTableID.NotFound"

    # A NAT gateway made through gw1 holds its Elastic IP for gw2.
    alloc = c1.allocate_address(Domain="vpc")["AllocationId"]
    nat = c1.create_nat_gateway(SubnetId=sub, AllocationId=alloc)["NatGateway"]["NatGatewayId"]
    assert c2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "available"
    assert code_of(lambda: c2.create_nat_gateway(SubnetId=sub, AllocationId=alloc)) == "Resource.AlreadyAssociated"
    assert code_of(lambda: c2.release_address(AllocationId=alloc)) == "InvalidIPAddress.InUse"
    c2.delete_nat_gateway(NatGatewayId=nat)
    assert c1.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "deleted"
    c1.release_address(AllocationId=alloc)

    c2.delete_subnet(SubnetId=sub)
    c2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    c1.delete_internet_gateway(InternetGatewayId=igw)
    c2.delete_vpc(VpcId=vpc)
    assert c1.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Vpcs"] == []


def tier_state(cs, subnet_cidr):
    """(the tier's list id and name, its items) in CloudStack."""
    tier = [n for n in cs.listNetworks(listall="true").get("network", []) if n.get("cidr") == subnet_cidr][0]
    lists = cs.listNetworkACLLists(listall="true").get("networkacllist", [])
    lst = [x for x in lists if x["id"] == tier["aclid"]][0]
    items = cs.listNetworkACLs(aclid=lst["id"], listall="true").get("networkacl", [])
    rows = sorted((int(i["number"]), i["traffictype"].lower(), i["action"].lower(), i["protocol"], i["cidrlist"],
                   i.get("startport")) for i in items)
    return (lst["id"], lst["name"]), [r[1:] for r in rows]


def test_security_group_lists_shared_by_two_gateways_and_a_restart(workdir, procs, pg_store):
    """A tier's security group list (docs/vpc.md "VPC security groups: enforcement") is computed
    from shared state: rules changed through either gateway, or through a gateway started
    afterwards, give the same list, and recomputing an unchanged state changes nothing."""
    sim = Sim(workdir).start()
    procs.append(sim)
    admin = sim.admin()
    cfg = ('[cloudstack]\nendpoint = "%s"\nadmin_api_key = "%s"\nadmin_secret_key = "%s"\n'
           % (sim.endpoint, admin["apikey"], admin["secretkey"]))
    env = {"EC2BRIDGE_STORE_URL": pg_store}
    gw1, gw2 = Gateway(workdir, cfg, env=env), Gateway(workdir, cfg, env=env)
    procs.extend([gw1, gw2])
    alice = sim.user()
    c1, c2 = ec2(gw1, alice), ec2(gw2, alice)
    if "VPC" not in supported_platforms(c1.describe_account_attributes):
        pytest.skip("the simulator's region has no VPC zone")
    cs = CloudStack(endpoint=sim.endpoint, key=alice["apikey"], secret=alice["secretkey"], poll_interval=0.05,
                    job_timeout=30)

    vpc = c1.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    c1.get_waiter("vpc_available").wait(VpcIds=[vpc])
    sub = c1.create_subnet(VpcId=vpc, CidrBlock="10.61.1.0/24")["Subnet"]["SubnetId"]
    web = c1.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    c1.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    (default_list, _), _ = tier_state(cs, "10.61.1.0/24")
    image = c2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]
    iid = c2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=sub, PrivateIpAddress="10.61.1.10",
                           SecurityGroupIds=[web])["Instances"][0]["InstanceId"]
    ssh = ("ingress", "allow", "tcp", "0.0.0.0/0", "22")
    deny_in, deny_out = ("ingress", "deny", "all", "0.0.0.0/0", None), ("egress", "deny", "all", "0.0.0.0/0", None)
    allow_out = ("egress", "allow", "all", "0.0.0.0/0", None)
    (lst, name), items = tier_state(cs, "10.61.1.0/24")
    assert name == "ec2bridge-sg" and items == [ssh, deny_in, allow_out, deny_out]

    # A rule through gw2 on a group gw1 made; the same state recomputed through gw1 changes nothing.
    http = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
    c2.authorize_security_group_ingress(GroupId=web, IpPermissions=[http])
    (lst, _), items = tier_state(cs, "10.61.1.0/24")
    assert items == [ssh, ("ingress", "allow", "tcp", "10.0.0.0/8", "80"), deny_in, allow_out, deny_out]
    spare = c1.create_security_group(GroupName="spare", Description="spare", VpcId=vpc)["GroupId"]
    c1.delete_security_group(GroupId=spare)
    assert tier_state(cs, "10.61.1.0/24")[0][0] == lst

    # A gateway started afterwards takes over from state alone.
    gw1.stop()
    gw3 = Gateway(workdir, cfg, env=env)
    procs.append(gw3)
    c3 = ec2(gw3, alice)
    acls = c3.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkAcls"]
    assert len(acls) == 1 and [a["SubnetId"] for a in acls[0]["Associations"]] == [sub]
    c3.revoke_security_group_ingress(GroupId=web, IpPermissions=[http])
    assert tier_state(cs, "10.61.1.0/24")[1] == [ssh, deny_in, allow_out, deny_out]

    c2.terminate_instances(InstanceIds=[iid])
    assert tier_state(cs, "10.61.1.0/24")[0] == (default_list, "ec2bridge-default")
    assert [x for x in cs.listNetworkACLLists(listall="true").get("networkacllist", [])
            if x["name"] == "ec2bridge-sg"] == []
    c3.get_waiter("instance_terminated").wait(InstanceIds=[iid])
    c3.delete_subnet(SubnetId=sub)
    c3.delete_security_group(GroupId=web)
    c3.delete_vpc(VpcId=vpc)
