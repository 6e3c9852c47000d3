"""Elastic network interfaces over CloudStack NICs (docs/vpc.md "Network interfaces") through boto3:
create (addresses asked for, picked, secondary count, groups, description, tags), describe by id
and filters with the network_interface_available waiter, attach to an instance (a NIC added in
CloudStack with the interface's address), detach (the record keeps subnet, addresses, groups),
delete; and EC2's errors, each checked to change nothing: the primary interface cannot be
detached, an attached interface cannot be deleted, an address outside the subnet or in use."""
import pytest
from harness import client_error as error_of


@pytest.fixture(scope="module")
def ec2(vpc_ec2):
    return vpc_ec2


def ubuntu(ec2):
    return ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]


@pytest.fixture(scope="module")
def net(ec2):
    """A VPC with two subnets; everything the tests leave is removed at the end."""
    vid = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid])
    a = ec2.create_subnet(VpcId=vid, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vid, CidrBlock="10.30.2.0/24")["Subnet"]["SubnetId"]
    yield {"vpc": vid, "a": a, "b": b}
    insts = [i["InstanceId"] for r in ec2.describe_instances(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Reservations"]
             for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    if insts:
        ec2.terminate_instances(InstanceIds=insts)
        ec2.get_waiter("instance_terminated").wait(InstanceIds=insts)
    for n in ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkInterfaces"]:
        if n["Status"] == "available":
            ec2.delete_network_interface(NetworkInterfaceId=n["NetworkInterfaceId"])
    for s in (a, b):
        ec2.delete_subnet(SubnetId=s)
    ec2.delete_vpc(VpcId=vid)


def enis(ec2, **kw):
    return ec2.describe_network_interfaces(**kw)["NetworkInterfaces"]


def test_create_describe_delete(ec2, net):
    sg = ec2.create_security_group(GroupName="eni-web", Description="web", VpcId=net["vpc"])["GroupId"]
    n = ec2.create_network_interface(
        SubnetId=net["a"], PrivateIpAddress="10.30.1.50", Description="first", Groups=[sg],
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "Name", "Value": "e1"}]}],
    )["NetworkInterface"]
    eid = n["NetworkInterfaceId"]
    assert eid.startswith("eni-") and len(eid) == 21
    assert n["SubnetId"] == net["a"] and n["VpcId"] == net["vpc"] and n["Status"] == "available"
    assert n["PrivateIpAddress"] == "10.30.1.50" and n["Description"] == "first"
    assert [g["GroupId"] for g in n["Groups"]] == [sg] and n["SourceDestCheck"] is True
    assert n["PrivateIpAddresses"] == [{"PrivateIpAddress": "10.30.1.50", "Primary": True}]
    assert n["TagSet"] == [{"Key": "Name", "Value": "e1"}] and "Attachment" not in n
    ec2.get_waiter("network_interface_available").wait(NetworkInterfaceIds=[eid])
    assert [x["NetworkInterfaceId"] for x in enis(ec2, NetworkInterfaceIds=[eid])] == [eid]
    for name, value in [("subnet-id", net["a"]), ("private-ip-address", "10.30.1.50"), ("tag:Name", "e1"),
                        ("status", "available"), ("group-id", sg), ("description", "first")]:
        assert eid in [x["NetworkInterfaceId"] for x in enis(ec2, Filters=[{"Name": name, "Values": [value]}])], name
    assert eid not in [x["NetworkInterfaceId"] for x in enis(ec2, Filters=[{"Name": "subnet-id", "Values": [net["b"]]}])]
    # Picked addresses: the primary and two secondaries, none of them 10.30.1.50.
    m = ec2.create_network_interface(SubnetId=net["b"], SecondaryPrivateIpAddressCount=2)["NetworkInterface"]
    addrs = [a["PrivateIpAddress"] for a in m["PrivateIpAddresses"]]
    assert len(set(addrs)) == 3 and all(a.startswith("10.30.2.") for a in addrs)
    assert [a["Primary"] for a in m["PrivateIpAddresses"]] == [True, False, False]
    # Without groups: the VPC's default group.
    default = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]},
                                                    {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert [g["GroupId"] for g in m["Groups"]] == [default[0]["GroupId"]]
    # Tags through CreateTags / DescribeTags.
    ec2.create_tags(Resources=[m["NetworkInterfaceId"]], Tags=[{"Key": "role", "Value": "db"}])
    t = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [m["NetworkInterfaceId"]]}])["Tags"]
    assert t == [{"Key": "role", "ResourceId": m["NetworkInterfaceId"], "ResourceType": "network-interface",
                  "Value": "db"}]
    for i in (eid, m["NetworkInterfaceId"]):
        ec2.delete_network_interface(NetworkInterfaceId=i)
    assert error_of(lambda: enis(ec2, NetworkInterfaceIds=[eid])) == \
        ("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist" % eid)
    assert error_of(lambda: ec2.delete_network_interface(NetworkInterfaceId=eid))[0] == \
        "InvalidNetworkInterfaceID.NotFound"
    assert error_of(lambda: ec2.delete_network_interface(NetworkInterfaceId="eni-zz"))[0] == \
        "InvalidNetworkInterfaceID.Malformed"
    # The address is free again.
    again = ec2.create_network_interface(SubnetId=net["a"], PrivateIpAddress="10.30.1.50")["NetworkInterface"]
    ec2.delete_network_interface(NetworkInterfaceId=again["NetworkInterfaceId"])
    ec2.delete_security_group(GroupId=sg)


def test_address_errors_change_nothing(ec2, net):
    held = ec2.create_network_interface(SubnetId=net["a"], PrivateIpAddress="10.30.1.60")["NetworkInterface"]
    before = enis(ec2, Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}])
    for ip, code, why in [("10.30.2.10", "InvalidParameterValue", "does not fall within"),
                          ("10.30.1.2", "InvalidParameterValue", "reserved"),
                          ("10.30.1.255", "InvalidParameterValue", "reserved"),
                          ("10.30.1.60", "InvalidIPAddress.InUse", "in use")]:
        got, msg = error_of(lambda: ec2.create_network_interface(SubnetId=net["a"], PrivateIpAddress=ip))
        assert got == code and why in msg, (ip, msg)
    assert error_of(lambda: ec2.create_network_interface(SubnetId="subnet-0123456789abcdef0"))[0] == \
        "InvalidSubnetID.NotFound"
    assert error_of(lambda: ec2.create_network_interface(SubnetId=net["a"], Ipv6AddressCount=1))[0] == \
        "UnsupportedOperation"
    assert error_of(lambda: ec2.create_network_interface(SubnetId=net["a"], DryRun=True))[0] == "DryRunOperation"
    assert enis(ec2, Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}]) == before
    # A detached interface's address is not handed to an instance either.
    code, _ = error_of(lambda: ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small",
                                                 SubnetId=net["a"], PrivateIpAddress="10.30.1.60"))
    assert code == "InvalidIPAddress.InUse"
    ec2.delete_network_interface(NetworkInterfaceId=held["NetworkInterfaceId"])


def test_attach_detach(ec2, net):
    r = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small", SubnetId=net["a"])
    iid = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid])
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    primary = inst["NetworkInterfaces"][0]
    # The instance's own NIC is an interface: in-use, device index 0, listed by filters.
    got = enis(ec2, Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])
    assert [x["NetworkInterfaceId"] for x in got] == [primary["NetworkInterfaceId"]]
    assert got[0]["Status"] == "in-use" and got[0]["Attachment"]["DeviceIndex"] == 0
    assert got[0]["PrivateIpAddress"] == inst["PrivateIpAddress"]
    # The primary interface: neither detached nor deleted.
    assert error_of(lambda: ec2.detach_network_interface(AttachmentId=primary["Attachment"]["AttachmentId"])) == \
        ("OperationNotPermitted", "The network interface at device index 0 cannot be detached.")
    assert error_of(lambda: ec2.delete_network_interface(NetworkInterfaceId=primary["NetworkInterfaceId"]))[0] == \
        "InvalidNetworkInterface.InUse"
    # A second interface in the other subnet, with a secondary address, attached at index 1.
    n = ec2.create_network_interface(SubnetId=net["b"], PrivateIpAddress="10.30.2.20",
                                     PrivateIpAddresses=[{"PrivateIpAddress": "10.30.2.21", "Primary": False}])
    eid = n["NetworkInterface"]["NetworkInterfaceId"]
    assert error_of(lambda: ec2.attach_network_interface(NetworkInterfaceId=eid, InstanceId=iid, DeviceIndex=0))[0] == \
        "InvalidParameterValue"
    att = ec2.attach_network_interface(NetworkInterfaceId=eid, InstanceId=iid, DeviceIndex=1)["AttachmentId"]
    assert att.startswith("eni-attach-")
    x = enis(ec2, NetworkInterfaceIds=[eid])[0]
    assert x["Status"] == "in-use" and x["Attachment"]["InstanceId"] == iid and x["Attachment"]["DeviceIndex"] == 1
    assert x["Attachment"]["AttachmentId"] == att and x["Attachment"]["DeleteOnTermination"] is False
    assert x["MacAddress"] and [a["PrivateIpAddress"] for a in x["PrivateIpAddresses"]] == ["10.30.2.20", "10.30.2.21"]
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert sorted(i["NetworkInterfaceId"] for i in inst["NetworkInterfaces"]) == \
        sorted([primary["NetworkInterfaceId"], eid])
    # In use: cannot be deleted or attached again.
    assert error_of(lambda: ec2.delete_network_interface(NetworkInterfaceId=eid)) == \
        ("InvalidNetworkInterface.InUse", "The network interface '%s' is currently in use." % eid)
    assert error_of(lambda: ec2.attach_network_interface(NetworkInterfaceId=eid, InstanceId=iid, DeviceIndex=2))[0] == \
        "InvalidParameterValue"
    assert error_of(lambda: ec2.detach_network_interface(AttachmentId="eni-attach-0123456789abcdef0"))[0] == \
        "InvalidAttachmentID.NotFound"
    # Detach: available again, same subnet, addresses and groups.
    ec2.detach_network_interface(AttachmentId=att, Force=True)
    ec2.get_waiter("network_interface_available").wait(NetworkInterfaceIds=[eid])
    x = enis(ec2, NetworkInterfaceIds=[eid])[0]
    assert x["Status"] == "available" and "Attachment" not in x and x["SubnetId"] == net["b"]
    assert [a["PrivateIpAddress"] for a in x["PrivateIpAddresses"]] == ["10.30.2.20", "10.30.2.21"]
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert [i["NetworkInterfaceId"] for i in inst["NetworkInterfaces"]] == [primary["NetworkInterfaceId"]]
    # Attached again, then the instance terminated: DeleteOnTermination false keeps it, available.
    ec2.attach_network_interface(NetworkInterfaceId=eid, InstanceId=iid, DeviceIndex=1)
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid])
    ec2.get_waiter("network_interface_available").wait(NetworkInterfaceIds=[eid])
    ec2.delete_network_interface(NetworkInterfaceId=eid)
