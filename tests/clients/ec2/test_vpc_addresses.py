"""Elastic IPs in a VPC and public addresses at launch (docs/vpc.md) through boto3 against
`ec2bridge serve --sim-fast`: AllocateAddress Domain=vpc (the default VPC, else the newest VPC with
an attached internet gateway), AssociateAddress by InstanceId / NetworkInterfaceId (+
PrivateIpAddress, AllowReassociation), DescribeAddresses with its VPC fields and filters,
DisassociateAddress by AssociationId, ReleaseAddress by AllocationId, RunInstances with
AssociatePublicIpAddress / MapPublicIpOnLaunch, and EC2's errors (Gateway.NotAttached,
Resource.AlreadyAssociated, InvalidIPAddress.InUse, DependencyViolation) - each refused call
checked to change nothing. What CloudStack holds is checked with its own API (same keys)."""
import pytest
from cs import CloudStack
from harness import client_error as error_of

WAIT = {"Delay": 1, "MaxAttempts": 120}


@pytest.fixture(scope="module")
def ec2(vpc_ec2_no_default):
    return vpc_ec2_no_default


@pytest.fixture(scope="module")
def cloudstack(gateway, user):
    return CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"], secret=user["secret_key"],
                      poll_interval=0.05, job_timeout=30)


@pytest.fixture(scope="module")
def ami(ec2):
    return ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]


def make_vpc(ec2, cidr, subnet_cidr, attach=True):
    vid = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid])
    sid = ec2.create_subnet(VpcId=vid, CidrBlock=subnet_cidr)["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    if attach:
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
    return {"vpc": vid, "subnet": sid, "igw": igw}


def teardown_vpc(ec2, s):
    vid = s["vpc"]
    insts = [i["InstanceId"] for r in ec2.describe_instances(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Reservations"]
             for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    if insts:
        ec2.terminate_instances(InstanceIds=insts)
        ec2.get_waiter("instance_terminated").wait(InstanceIds=insts, WaiterConfig=WAIT)
    for a in ec2.describe_addresses(Filters=[{"Name": "domain", "Values": ["vpc"]}])["Addresses"]:
        if a.get("AssociationId"):
            ec2.disassociate_address(AssociationId=a["AssociationId"])
    ec2.delete_subnet(SubnetId=s["subnet"])
    for g in ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vid]}])["InternetGateways"]:
        ec2.detach_internet_gateway(InternetGatewayId=g["InternetGatewayId"], VpcId=vid)
    ec2.delete_internet_gateway(InternetGatewayId=s["igw"])


def run_in(ec2, ami, subnet, **extra):
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.small", SubnetId=subnet, **extra)
    iid = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    return iid, r["Instances"][0]


def instance(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def addresses(ec2, **kw):
    return ec2.describe_addresses(**kw)["Addresses"]


@pytest.fixture(scope="module")
def stack(ec2, ami):
    """A VPC with a subnet and an attached internet gateway, two instances in the subnet."""
    s = make_vpc(ec2, "10.30.0.0/16", "10.30.1.0/24")
    s["i1"], _ = run_in(ec2, ami, s["subnet"])
    s["i2"], _ = run_in(ec2, ami, s["subnet"])
    yield s
    teardown_vpc(ec2, s)
    for a in addresses(ec2, Filters=[{"Name": "domain", "Values": ["vpc"]}]):
        ec2.release_address(AllocationId=a["AllocationId"])
    ec2.delete_vpc(VpcId=s["vpc"])


def test_vpc_address_lifecycle(ec2, stack):
    vid, i1, i2 = stack["vpc"], stack["i1"], stack["i2"]
    a = ec2.allocate_address(Domain="vpc")
    alloc, ip = a["AllocationId"], a["PublicIp"]
    assert a["Domain"] == "vpc" and alloc.startswith("eipalloc-")
    try:
        got = addresses(ec2, AllocationIds=[alloc])
        assert len(got) == 1 and got[0]["Domain"] == "vpc" and got[0]["PublicIp"] == ip
        assert "AssociationId" not in got[0] and "NetworkInterfaceId" not in got[0]

        # Without an attached internet gateway: EC2's Gateway.NotAttached, nothing changed.
        ec2.detach_internet_gateway(InternetGatewayId=stack["igw"], VpcId=vid)
        assert error_of(lambda: ec2.associate_address(AllocationId=alloc, InstanceId=i1)) == \
            ("Gateway.NotAttached", "Network %s is not attached to any internet gateway" % vid)
        assert "AssociationId" not in addresses(ec2, AllocationIds=[alloc])[0]
        ec2.attach_internet_gateway(InternetGatewayId=stack["igw"], VpcId=vid)

        r = ec2.associate_address(AllocationId=alloc, InstanceId=i1)
        assoc = r["AssociationId"]
        assert assoc.startswith("eipassoc-")
        # The same association again: the same id (derived from address and instance).
        assert ec2.associate_address(AllocationId=alloc, InstanceId=i1)["AssociationId"] == assoc
        inst = instance(ec2, i1)
        eni = inst["NetworkInterfaces"][0]
        got = addresses(ec2, AllocationIds=[alloc])[0]
        assert got["InstanceId"] == i1 and got["AssociationId"] == assoc
        assert got["NetworkInterfaceId"] == eni["NetworkInterfaceId"]
        assert got["PrivateIpAddress"] == inst["PrivateIpAddress"]
        assert got["NetworkInterfaceOwnerId"]
        assert inst["PublicIpAddress"] == ip
        assert eni["Association"]["PublicIp"] == ip and eni["Association"]["IpOwnerId"] != "amazon"

        # Every filter EC2 documents for these fields finds it (and only it among VPC addresses).
        ec2.create_tags(Resources=[alloc], Tags=[{"Key": "role", "Value": "front"}])
        for name, value in [("allocation-id", alloc), ("association-id", assoc), ("domain", "vpc"),
                            ("instance-id", i1), ("network-interface-id", eni["NetworkInterfaceId"]),
                            ("private-ip-address", inst["PrivateIpAddress"]), ("public-ip", ip),
                            ("tag:role", "front"), ("tag-key", "role")]:
            found = [x["AllocationId"] for x in addresses(ec2, Filters=[{"Name": name, "Values": [value]}])]
            assert alloc in found, name
        assert alloc not in [x["AllocationId"] for x in addresses(ec2, Filters=[{"Name": "domain", "Values": ["standard"]}])]
        assert not addresses(ec2, Filters=[{"Name": "instance-id", "Values": [i2]}])
        for name, value in [("network-interface.association.public-ip", ip), ("association.public-ip", ip)]:
            found = ec2.describe_instances(Filters=[{"Name": name, "Values": [value]}])["Reservations"]
            assert [x["InstanceId"] for res in found for x in res["Instances"]] == [i1], name

        # Associated: another instance needs AllowReassociation (EC2's Resource.AlreadyAssociated).
        assert error_of(lambda: ec2.associate_address(AllocationId=alloc, InstanceId=i2)) == \
            ("Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s" % (alloc, assoc))
        assert addresses(ec2, AllocationIds=[alloc])[0]["InstanceId"] == i1
        # Released while associated, or by its IP: refused, nothing changed.
        code, msg = error_of(lambda: ec2.release_address(AllocationId=alloc))
        assert code == "InvalidIPAddress.InUse" and alloc in msg
        assert error_of(lambda: ec2.release_address(PublicIp=ip)) == \
            ("InvalidParameterValue", "You must specify an allocation id when releasing a VPC elastic IP address")
        # A mapped address keeps the internet gateway attached.
        assert error_of(lambda: ec2.detach_internet_gateway(InternetGatewayId=stack["igw"], VpcId=vid)) == \
            ("DependencyViolation", "Network %s has some mapped public address(es). Please unmap those public "
                                    "address(es) before detaching the gateway." % vid)
        igws = ec2.describe_internet_gateways(InternetGatewayIds=[stack["igw"]])["InternetGateways"]
        assert igws[0]["Attachments"] == [{"State": "available", "VpcId": vid}]
        # Allocated in the VPC: DeleteVpc refuses (CloudStack would release it with the VPC).
        code, _ = error_of(lambda: ec2.delete_vpc(VpcId=vid))
        assert code == "DependencyViolation"

        # Moved by network interface with AllowReassociation: a new association id.
        eni2 = instance(ec2, i2)["NetworkInterfaces"][0]["NetworkInterfaceId"]
        r = ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni2, AllowReassociation=True)
        assoc2 = r["AssociationId"]
        assert assoc2 != assoc
        got = addresses(ec2, AllocationIds=[alloc])[0]
        assert got["InstanceId"] == i2 and got["NetworkInterfaceId"] == eni2
        assert "PublicIpAddress" not in instance(ec2, i1)

        # The old association is gone; the current one disassociates; the address can go.
        assert error_of(lambda: ec2.disassociate_address(AssociationId=assoc))[0] == "InvalidAssociationID.NotFound"
        ec2.disassociate_address(AssociationId=assoc2)
        got = addresses(ec2, AllocationIds=[alloc])[0]
        assert "AssociationId" not in got and not got.get("InstanceId")
        assert "PublicIpAddress" not in instance(ec2, i2)
    finally:
        ec2.release_address(AllocationId=alloc)
    assert error_of(lambda: addresses(ec2, AllocationIds=[alloc]))[0] == "InvalidAllocationID.NotFound"
    assert ip not in [x["PublicIp"] for x in addresses(ec2)]


def test_second_address_replaces_the_first(ec2, stack):
    i1 = stack["i1"]
    a = ec2.allocate_address(Domain="vpc")
    b = ec2.allocate_address(Domain="vpc")
    try:
        ec2.associate_address(AllocationId=a["AllocationId"], InstanceId=i1)
        # EC2: an instance's address is disassociated when another is associated with it.
        ec2.associate_address(AllocationId=b["AllocationId"], InstanceId=i1)
        by = {x["AllocationId"]: x for x in addresses(ec2, AllocationIds=[a["AllocationId"], b["AllocationId"]])}
        assert by[b["AllocationId"]]["InstanceId"] == i1
        assert not by[a["AllocationId"]].get("InstanceId")
        assert instance(ec2, i1)["PublicIpAddress"] == b["PublicIp"]
    finally:
        for x in (a, b):
            got = addresses(ec2, AllocationIds=[x["AllocationId"]])[0]
            if got.get("AssociationId"):
                ec2.disassociate_address(AssociationId=got["AssociationId"])
            ec2.release_address(AllocationId=x["AllocationId"])


def test_private_ip_address_and_bad_targets(ec2, stack, ami):
    i1 = stack["i1"]
    inst = instance(ec2, i1)
    a = ec2.allocate_address(Domain="vpc")
    try:
        code, msg = error_of(lambda: ec2.associate_address(AllocationId=a["AllocationId"], InstanceId=i1,
                                                           PrivateIpAddress="10.30.1.250"))
        assert code == "InvalidParameterValue" and "10.30.1.250" in msg
        assert error_of(lambda: ec2.associate_address(AllocationId=a["AllocationId"]))[0] == "MissingParameter"
        eni = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
        assert error_of(lambda: ec2.associate_address(AllocationId=a["AllocationId"], InstanceId=i1,
                                                      NetworkInterfaceId=eni))[0] == "InvalidParameterCombination"
        assert error_of(lambda: ec2.associate_address(AllocationId=a["AllocationId"],
                                                      NetworkInterfaceId="eni-0123456789abcdef0"))[0] == \
            "InvalidNetworkInterfaceID.NotFound"
        assert error_of(lambda: ec2.associate_address(AllocationId="eipalloc-0123456789abcdef0",
                                                      InstanceId=i1))[0] == "InvalidAllocationID.NotFound"
        assert not addresses(ec2, AllocationIds=[a["AllocationId"]])[0].get("InstanceId")
        r = ec2.associate_address(AllocationId=a["AllocationId"], NetworkInterfaceId=eni,
                                  PrivateIpAddress=inst["PrivateIpAddress"])
        got = addresses(ec2, AllocationIds=[a["AllocationId"]])[0]
        assert got["AssociationId"] == r["AssociationId"] and got["PrivateIpAddress"] == inst["PrivateIpAddress"]
        ec2.disassociate_address(AssociationId=r["AssociationId"])
    finally:
        ec2.release_address(AllocationId=a["AllocationId"])


def test_newest_vpc_with_a_gateway_holds_new_addresses(ec2, stack, ami):
    """A newer VPC with an attached gateway takes new Domain=vpc addresses; an address cannot
    follow an instance into another VPC (CloudStack addresses belong to one VPC)."""
    other = make_vpc(ec2, "10.31.0.0/16", "10.31.1.0/24")
    try:
        a = ec2.allocate_address(Domain="vpc")
        try:
            # The stack's instance is in the older VPC: refused, with the reason.
            code, msg = error_of(lambda: ec2.associate_address(AllocationId=a["AllocationId"], InstanceId=stack["i1"]))
            assert code == "InvalidParameterCombination" and other["vpc"] in msg and stack["vpc"] in msg
            iid, _ = run_in(ec2, ami, other["subnet"])
            r = ec2.associate_address(AllocationId=a["AllocationId"], InstanceId=iid)
            assert addresses(ec2, Filters=[{"Name": "association-id", "Values": [r["AssociationId"]]}])[0]["InstanceId"] == iid
            ec2.disassociate_address(AssociationId=r["AssociationId"])
        finally:
            ec2.release_address(AllocationId=a["AllocationId"])
        # Detached from every VPC but the stack's, the stack's VPC takes them again.
        ec2.detach_internet_gateway(InternetGatewayId=other["igw"], VpcId=other["vpc"])
        b = ec2.allocate_address(Domain="vpc")
        try:
            r = ec2.associate_address(AllocationId=b["AllocationId"], InstanceId=stack["i1"])
            ec2.disassociate_address(AssociationId=r["AssociationId"])
        finally:
            ec2.release_address(AllocationId=b["AllocationId"])
    finally:
        teardown_vpc(ec2, other)
        ec2.delete_vpc(VpcId=other["vpc"])


def test_classic_address_takes_no_interface(ec2, stack):
    std = ec2.allocate_address()
    try:
        assert std["Domain"] == "standard"
        eni = instance(ec2, stack["i1"])["NetworkInterfaces"][0]["NetworkInterfaceId"]
        assert error_of(lambda: ec2.associate_address(PublicIp=std["PublicIp"], NetworkInterfaceId=eni))[0] == \
            "InvalidParameterCombination"
        assert addresses(ec2, PublicIps=[std["PublicIp"]])[0]["Domain"] == "standard"
    finally:
        ec2.release_address(PublicIp=std["PublicIp"])


def test_public_ip_at_launch(ec2, stack, ami, cloudstack):
    sid, vid = stack["subnet"], stack["vpc"]
    before = {x["PublicIp"] for x in addresses(ec2)}
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.small",
                          NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": sid, "AssociatePublicIpAddress": True}])
    iid = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig=WAIT)
    inst = instance(ec2, iid)
    pub = inst.get("PublicIpAddress")
    assert pub, inst
    assert inst["NetworkInterfaces"][0]["Association"] == {"PublicIp": pub, "PublicDnsName": "", "IpOwnerId": "amazon"}
    # Not an Elastic IP: DescribeAddresses does not show it, AllocateAddress-only actions do not find it.
    assert pub not in {x["PublicIp"] for x in addresses(ec2)} and {x["PublicIp"] for x in addresses(ec2)} == before
    assert error_of(lambda: ec2.disassociate_address(PublicIp=pub))[0] == "InvalidAddress.NotFound"
    # CloudStack holds it in the VPC with static NAT to the instance, marked as the gateway's.
    cs_ips = cloudstack.listPublicIpAddresses(ipaddress=pub, listall=True).get("publicipaddress", [])
    assert len(cs_ips) == 1 and cs_ips[0]["isstaticnat"] and cs_ips[0].get("vpcid")
    # It keeps the gateway attached.
    assert error_of(lambda: ec2.detach_internet_gateway(InternetGatewayId=stack["igw"], VpcId=vid))[0] == \
        "DependencyViolation"
    # An Elastic IP associated with the instance replaces it (and it is released).
    a = ec2.allocate_address(Domain="vpc")
    try:
        assoc = ec2.associate_address(AllocationId=a["AllocationId"], InstanceId=iid)["AssociationId"]
        inst = instance(ec2, iid)
        assert inst["PublicIpAddress"] == a["PublicIp"]
        assert inst["NetworkInterfaces"][0]["Association"]["IpOwnerId"] != "amazon"
        assert not cloudstack.listPublicIpAddresses(ipaddress=pub, listall=True).get("publicipaddress")
        ec2.disassociate_address(AssociationId=assoc)
    finally:
        ec2.release_address(AllocationId=a["AllocationId"])
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig=WAIT)

    # MapPublicIpOnLaunch: the subnet's attribute gives one; AssociatePublicIpAddress=false wins.
    ec2.modify_subnet_attribute(SubnetId=sid, MapPublicIpOnLaunch={"Value": True})
    try:
        r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.small", SubnetId=sid)
        iid = r["Instances"][0]["InstanceId"]
        r2 = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.small",
                               NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": sid, "AssociatePublicIpAddress": False}])
        iid2 = r2["Instances"][0]["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[iid, iid2], WaiterConfig=WAIT)
        pub = instance(ec2, iid).get("PublicIpAddress")
        assert pub and "PublicIpAddress" not in instance(ec2, iid2)
        tagged = cloudstack.listPublicIpAddresses(ipaddress=pub, listall=True)["publicipaddress"][0]
        vm_uuid = tagged["virtualmachineid"]
        # Released with the instance.
        ec2.terminate_instances(InstanceIds=[iid, iid2])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid, iid2], WaiterConfig=WAIT)
        assert not cloudstack.listPublicIpAddresses(ipaddress=pub, listall=True).get("publicipaddress")
        assert not [x for x in cloudstack.listPublicIpAddresses(listall=True).get("publicipaddress", [])
                    if x.get("virtualmachineid") == vm_uuid]
    finally:
        ec2.modify_subnet_attribute(SubnetId=sid, MapPublicIpOnLaunch={"Value": False})
