"""Network interface attributes and secondary addresses through boto3 (docs/network-interfaces.md):
ModifyNetworkInterfaceAttribute (description, source/dest check, groups, DeleteOnTermination),
DescribeNetworkInterfaceAttribute, ResetNetworkInterfaceAttribute, Assign/UnassignPrivateIpAddresses
on detached interfaces (the store) and on attached ones (addIpToNic/removeIpFromNic on the
CloudStack NIC, checked through DescribeInstances, which reads that NIC), and EC2's errors, each checked to
change nothing."""
import pytest
from harness import client_error as error_of


@pytest.fixture(scope="module")
def ec2(vpc_ec2):
    return vpc_ec2


def ubuntu(ec2):
    return ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]


@pytest.fixture(scope="module")
def net(ec2):
    vid = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid])
    a = ec2.create_subnet(VpcId=vid, CidrBlock="10.31.1.0/24")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vid, CidrBlock="10.31.2.0/24")["Subnet"]["SubnetId"]
    yield {"vpc": vid, "a": a, "b": b}
    insts = [i["InstanceId"] for r in ec2.describe_instances(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Reservations"]
             for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    if insts:
        ec2.terminate_instances(InstanceIds=insts)
        ec2.get_waiter("instance_terminated").wait(InstanceIds=insts)
    for n in ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkInterfaces"]:
        if n["Status"] == "available":
            ec2.delete_network_interface(NetworkInterfaceId=n["NetworkInterfaceId"])
    for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]}])["SecurityGroups"]:
        if g["GroupName"] != "default":
            ec2.delete_security_group(GroupId=g["GroupId"])
    for s in (a, b):
        ec2.delete_subnet(SubnetId=s)
    ec2.delete_vpc(VpcId=vid)


def eni(ec2, eid):
    return ec2.describe_network_interfaces(NetworkInterfaceIds=[eid])["NetworkInterfaces"][0]


def addrs(n):
    return [a["PrivateIpAddress"] for a in n["PrivateIpAddresses"]]


def test_attributes_of_a_detached_interface(ec2, net):
    sg = ec2.create_security_group(GroupName="attr-web", Description="web", VpcId=net["vpc"],
                                   TagSpecifications=[{"ResourceType": "security-group",
                                                       "Tags": [{"Key": "tier", "Value": "web"}]}])["GroupId"]
    # A VPC group's tags (kept in the store) through CreateTags and DescribeTags.
    ec2.create_tags(Resources=[sg], Tags=[{"Key": "team", "Value": "net"}])
    got = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [sg]}])["Tags"]
    assert sorted((t["Key"], t["Value"], t["ResourceType"]) for t in got) == \
        [("team", "net", "security-group"), ("tier", "web", "security-group")]
    ec2.delete_tags(Resources=[sg], Tags=[{"Key": "team"}])
    assert ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0]["Tags"] == [{"Key": "tier", "Value": "web"}]
    eid = ec2.create_network_interface(SubnetId=net["a"], Description="before")["NetworkInterface"]["NetworkInterfaceId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eid, Description={"Value": "after"})
    r = ec2.describe_network_interface_attribute(NetworkInterfaceId=eid, Attribute="description")
    assert r["NetworkInterfaceId"] == eid and r["Description"] == {"Value": "after"}
    assert "SourceDestCheck" not in r and "Groups" not in r
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eid, SourceDestCheck={"Value": False})
    assert ec2.describe_network_interface_attribute(
        NetworkInterfaceId=eid, Attribute="sourceDestCheck")["SourceDestCheck"] == {"Value": False}
    assert eni(ec2, eid)["SourceDestCheck"] is False
    ec2.reset_network_interface_attribute(NetworkInterfaceId=eid, SourceDestCheck="sourceDestCheck")
    assert eni(ec2, eid)["SourceDestCheck"] is True
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eid, Groups=[sg])
    got = ec2.describe_network_interface_attribute(NetworkInterfaceId=eid, Attribute="groupSet")["Groups"]
    assert [g["GroupId"] for g in got] == [sg] and got[0]["GroupName"] == "attr-web"
    assert "Attachment" not in ec2.describe_network_interface_attribute(NetworkInterfaceId=eid, Attribute="attachment")
    # Errors change nothing.
    before = eni(ec2, eid)
    for call, code in [
        (lambda: ec2.modify_network_interface_attribute(NetworkInterfaceId=eid, Description={"Value": "x"},
                                                        SourceDestCheck={"Value": True}), "InvalidParameterCombination"),
        (lambda: ec2.modify_network_interface_attribute(NetworkInterfaceId=eid), "MissingParameter"),
        (lambda: ec2.modify_network_interface_attribute(NetworkInterfaceId=eid, Groups=["sg-0123456789abcdef0"]),
         "InvalidGroup.NotFound"),
        (lambda: ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eid, Attachment={"AttachmentId": "eni-attach-0123456789abcdef0",
                                                "DeleteOnTermination": True}), "InvalidAttachmentID.NotFound"),
        (lambda: ec2.modify_network_interface_attribute(NetworkInterfaceId="eni-0123456789abcdef0",
                                                        Description={"Value": "x"}), "InvalidNetworkInterfaceID.NotFound"),
        (lambda: ec2.modify_network_interface_attribute(NetworkInterfaceId="eni-zz", Description={"Value": "x"}),
         "InvalidNetworkInterfaceID.Malformed"),
        (lambda: ec2.describe_network_interface_attribute(NetworkInterfaceId=eid, Attribute="bogus"),
         "InvalidParameterValue"),
    ]:
        assert error_of(call)[0] == code
    assert eni(ec2, eid) == before
    ec2.delete_network_interface(NetworkInterfaceId=eid)


def test_secondary_addresses_detached(ec2, net):
    eid = ec2.create_network_interface(SubnetId=net["a"], PrivateIpAddress="10.31.1.10")["NetworkInterface"][
        "NetworkInterfaceId"]
    r = ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.31.1.11", "10.31.1.12"])
    assert r["NetworkInterfaceId"] == eid
    assert [a["PrivateIpAddress"] for a in r["AssignedPrivateIpAddresses"]] == ["10.31.1.11", "10.31.1.12"]
    r = ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, SecondaryPrivateIpAddressCount=1)
    picked = r["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
    assert picked.startswith("10.31.1.") and picked not in ("10.31.1.10", "10.31.1.11", "10.31.1.12")
    assert addrs(eni(ec2, eid)) == ["10.31.1.10", "10.31.1.11", "10.31.1.12", picked]
    # Held addresses are held: another interface cannot take one.
    assert error_of(lambda: ec2.create_network_interface(SubnetId=net["a"], PrivateIpAddress="10.31.1.11"))[0] == \
        "InvalidIPAddress.InUse"
    other = ec2.create_network_interface(SubnetId=net["a"])["NetworkInterface"]["NetworkInterfaceId"]
    before = addrs(eni(ec2, other))
    for call, code in [
        (lambda: ec2.assign_private_ip_addresses(NetworkInterfaceId=other, PrivateIpAddresses=["10.31.1.12"]),
         "InvalidIPAddress.InUse"),
        (lambda: ec2.assign_private_ip_addresses(NetworkInterfaceId=other, PrivateIpAddresses=["10.31.2.5"]),
         "InvalidParameterValue"),
        (lambda: ec2.assign_private_ip_addresses(NetworkInterfaceId=other, SecondaryPrivateIpAddressCount=11),
         "PrivateIpAddressLimitExceeded"),
        (lambda: ec2.assign_private_ip_addresses(NetworkInterfaceId=other), "MissingParameter"),
        (lambda: ec2.unassign_private_ip_addresses(NetworkInterfaceId=other, PrivateIpAddresses=["10.31.1.11"]),
         "InvalidParameterValue"),
    ]:
        assert error_of(call)[0] == code
    assert addrs(eni(ec2, other)) == before
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.31.1.11", picked])
    assert addrs(eni(ec2, eid)) == ["10.31.1.10", "10.31.1.12"]
    # Released: another interface may now have it.
    ec2.assign_private_ip_addresses(NetworkInterfaceId=other, PrivateIpAddresses=["10.31.1.11"])
    assert "10.31.1.11" in addrs(eni(ec2, other))
    for i in (eid, other):
        ec2.delete_network_interface(NetworkInterfaceId=i)


def test_attached_interface(ec2, net):
    r = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small", SubnetId=net["a"])
    iid = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid])
    primary = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["NetworkInterfaces"][0]
    pid = primary["NetworkInterfaceId"]
    # Secondary addresses on the primary interface go onto the CloudStack NIC.
    ec2.assign_private_ip_addresses(NetworkInterfaceId=pid, PrivateIpAddresses=["10.31.1.40"])
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert "10.31.1.40" in [a["PrivateIpAddress"] for a in inst["NetworkInterfaces"][0]["PrivateIpAddresses"]]
    assert addrs(eni(ec2, pid))[1:] == ["10.31.1.40"]
    # A second interface attached, then given and relieved of an address.
    eid = ec2.create_network_interface(SubnetId=net["b"], PrivateIpAddress="10.31.2.30")["NetworkInterface"][
        "NetworkInterfaceId"]
    att = ec2.attach_network_interface(NetworkInterfaceId=eid, InstanceId=iid, DeviceIndex=1)["AttachmentId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.31.2.31"])
    assert addrs(eni(ec2, eid)) == ["10.31.2.30", "10.31.2.31"]
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eid, PrivateIpAddresses=["10.31.2.31"])
    assert addrs(eni(ec2, eid)) == ["10.31.2.30"]
    # Attachment attribute and DeleteOnTermination.
    a = ec2.describe_network_interface_attribute(NetworkInterfaceId=eid, Attribute="attachment")["Attachment"]
    assert a["AttachmentId"] == att and a["InstanceId"] == iid and a["DeleteOnTermination"] is False
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eid,
                                           Attachment={"AttachmentId": att, "DeleteOnTermination": True})
    assert eni(ec2, eid)["Attachment"]["DeleteOnTermination"] is True
    # The primary interface kept past termination (DeleteOnTermination false).
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=pid, Attachment={"AttachmentId": primary["Attachment"]["AttachmentId"],
                                            "DeleteOnTermination": False})
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    by_id = {n["NetworkInterfaceId"]: n for n in inst["NetworkInterfaces"]}
    assert by_id[pid]["Attachment"]["DeleteOnTermination"] is False
    assert by_id[eid]["Attachment"]["DeleteOnTermination"] is True
    assert inst["SourceDestCheck"] is True
    # Termination protection on a VPC instance (its id also names its groups' record).
    ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": True})
    assert error_of(lambda: ec2.terminate_instances(InstanceIds=[iid]))[0] == "OperationNotPermitted"
    ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": False})
    assert ec2.describe_instance_attribute(InstanceId=iid, Attribute="disableApiTermination")[
        "DisableApiTermination"] == {"Value": False}
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid])
    left = {n["NetworkInterfaceId"]: n for n in ec2.describe_network_interfaces(
        Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}])["NetworkInterfaces"]}
    assert eid not in left, "DeleteOnTermination true: deleted with the instance"
    assert left[pid]["Status"] == "available" and "Attachment" not in left[pid]
    assert addrs(left[pid])[0] == primary["PrivateIpAddress"]
    # Its address stays held while it is kept: a new instance in the subnet gets another one.
    r = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small", SubnetId=net["a"])
    other = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[other])
    got = ec2.describe_instances(InstanceIds=[other])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    assert got != primary["PrivateIpAddress"]
    assert addrs(eni(ec2, pid))[0] == primary["PrivateIpAddress"]
    ec2.delete_network_interface(NetworkInterfaceId=pid)


def test_subnet_with_a_detached_interface_stays(ec2, net):
    """EC2 refuses to delete a subnet that still has a network interface in it."""
    eid = ec2.create_network_interface(SubnetId=net["b"])["NetworkInterface"]["NetworkInterfaceId"]
    code, _ = error_of(lambda: ec2.delete_subnet(SubnetId=net["b"]))
    assert code == "DependencyViolation"
    assert [s["SubnetId"] for s in ec2.describe_subnets(SubnetIds=[net["b"]])["Subnets"]] == [net["b"]]
    assert eni(ec2, eid)["Status"] == "available"
    ec2.delete_network_interface(NetworkInterfaceId=eid)
