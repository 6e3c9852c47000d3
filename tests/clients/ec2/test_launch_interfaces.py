"""RunInstances with NetworkInterface.N through boto3 (docs/network-interfaces.md "Interfaces at
launch"): two new interfaces in two subnets with addresses asked for, secondary addresses, groups,
descriptions and DeleteOnTermination; an existing interface attached at device 1 and at device 0;
what termination does with each; and EC2's refusals of bad combinations, each checked to change
nothing (no instance, no interface, no address held). CloudStack's side is checked with its own
API (the VM's NICs and secondary addresses)."""
import time

import pytest
from botocore.exceptions import ClientError
from cs import CloudStack


def error_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def ec2(boto3_client):
    c = boto3_client()
    platforms = [v["AttributeValue"] for a in c.describe_account_attributes(
        AttributeNames=["supported-platforms"])["AccountAttributes"] for v in a["AttributeValues"]]
    if "VPC" not in platforms:
        pytest.skip("the simulator's region has no VPC zone (Advanced without security groups)")
    return c


@pytest.fixture(scope="module")
def cloudstack(gateway, user):
    return CloudStack(endpoint=gateway["cloudstack_endpoint"], key=user["access_key"], secret=user["secret_key"],
                      poll_interval=0.05, job_timeout=30)


def ubuntu(ec2):
    return ec2.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]


@pytest.fixture(scope="module")
def net(ec2):
    """A VPC with two subnets (and a second VPC with one); everything is removed at the end."""
    vid = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    other = ec2.create_vpc(CidrBlock="10.32.0.0/16")["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid, other])
    a = ec2.create_subnet(VpcId=vid, CidrBlock="10.31.1.0/24")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vid, CidrBlock="10.31.2.0/24")["Subnet"]["SubnetId"]
    c = ec2.create_subnet(VpcId=other, CidrBlock="10.32.1.0/24")["Subnet"]["SubnetId"]
    yield {"vpc": vid, "a": a, "b": b, "other": c}
    for v in (vid, other):
        insts = [i["InstanceId"] for r in ec2.describe_instances(
            Filters=[{"Name": "vpc-id", "Values": [v]}])["Reservations"]
            for i in r["Instances"] if i["State"]["Name"] != "terminated"]
        if insts:
            ec2.terminate_instances(InstanceIds=insts)
            ec2.get_waiter("instance_terminated").wait(InstanceIds=insts)
        for n in ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [v]}])["NetworkInterfaces"]:
            if n["Status"] == "available":
                ec2.delete_network_interface(NetworkInterfaceId=n["NetworkInterfaceId"])
    for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]}])["SecurityGroups"]:
        if g["GroupName"] != "default":
            ec2.delete_security_group(GroupId=g["GroupId"])
    for s in (a, b, c):
        ec2.delete_subnet(SubnetId=s)
    ec2.delete_vpc(VpcId=vid)
    ec2.delete_vpc(VpcId=other)


def enis(ec2, **kw):
    return ec2.describe_network_interfaces(**kw)["NetworkInterfaces"]


def run(ec2, interfaces, **kw):
    return ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small",
                             NetworkInterfaces=interfaces, **kw)["Instances"][0]


def instance(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def terminate(ec2, iid):
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def cs_nics(cloudstack, private_ip):
    vms = [v for v in cloudstack.listVirtualMachines(listall="true").get("virtualmachine", [])
           if any(n.get("ipaddress") == private_ip for n in v.get("nic", []))]
    assert len(vms) == 1
    return sorted(((n["ipaddress"], sorted(s["ipaddress"] for s in n.get("secondaryip", [])), n.get("isdefault"))
                   for n in vms[0]["nic"]))


def test_two_new_interfaces(ec2, net, cloudstack):
    sg = ec2.create_security_group(GroupName="launch-web", Description="web", VpcId=net["vpc"])["GroupId"]
    inst = run(ec2, [
        {"DeviceIndex": 0, "SubnetId": net["a"], "PrivateIpAddress": "10.31.1.10", "SecondaryPrivateIpAddressCount": 1,
         "Groups": [sg], "Description": "front"},
        {"DeviceIndex": 1, "SubnetId": net["b"], "Description": "back",
         "PrivateIpAddresses": [{"PrivateIpAddress": "10.31.2.10", "Primary": True},
                                {"PrivateIpAddress": "10.31.2.11", "Primary": False}]},
    ])
    iid = inst["InstanceId"]
    assert inst["SubnetId"] == net["a"] and inst["VpcId"] == net["vpc"]
    # The answer already shows the interfaces, as EC2's does.
    assert inst["PrivateIpAddress"] == "10.31.1.10"
    assert sorted((n["Attachment"]["DeviceIndex"], n["SubnetId"], n["PrivateIpAddress"])
                  for n in inst["NetworkInterfaces"]) == [(0, net["a"], "10.31.1.10"), (1, net["b"], "10.31.2.10")]
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [sg]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    got = instance(ec2, iid)
    assert got["PrivateIpAddress"] == "10.31.1.10"
    nics = sorted(got["NetworkInterfaces"], key=lambda n: n["Attachment"]["DeviceIndex"])
    assert [(n["Attachment"]["DeviceIndex"], n["SubnetId"], n["PrivateIpAddress"], n["Description"],
             n["Attachment"]["DeleteOnTermination"]) for n in nics] == \
        [(0, net["a"], "10.31.1.10", "front", True), (1, net["b"], "10.31.2.10", "back", True)]
    assert [(a["PrivateIpAddress"], a["Primary"]) for a in nics[1]["PrivateIpAddresses"]] == \
        [("10.31.2.10", True), ("10.31.2.11", False)]
    picked = [a["PrivateIpAddress"] for a in nics[0]["PrivateIpAddresses"] if not a["Primary"]]
    assert len(picked) == 1 and picked[0].startswith("10.31.1.") and picked[0] != "10.31.1.10"
    # The second interface has the VPC's default group (none asked for), the first the instance's.
    default_sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]},
                                                       {"Name": "group-name", "Values": ["default"]}])[
        "SecurityGroups"][0]["GroupId"]
    assert [g["GroupId"] for g in nics[0]["Groups"]] == [sg]
    assert [g["GroupId"] for g in nics[1]["Groups"]] == [default_sg]
    # DescribeNetworkInterfaces shows the same two, attached.
    ids = [n["NetworkInterfaceId"] for n in nics]
    listed = {n["NetworkInterfaceId"]: n for n in
              enis(ec2, Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])}
    assert sorted(listed) == sorted(ids)
    assert all(n["Status"] == "in-use" for n in listed.values())
    assert listed[ids[1]]["Attachment"]["DeviceIndex"] == 1 and listed[ids[1]]["Description"] == "back"
    # CloudStack: one VM with two NICs, the first the default one, secondary addresses on both.
    assert cs_nics(cloudstack, "10.31.1.10") == [("10.31.1.10", picked, True), ("10.31.2.10", ["10.31.2.11"], False)]
    # The second interface can be detached (it is not the primary); the primary cannot.
    assert error_of(lambda: ec2.detach_network_interface(AttachmentId=nics[0]["Attachment"]["AttachmentId"]))[0] == \
        "OperationNotPermitted"
    # Termination: both go (DeleteOnTermination true, EC2's default for interfaces made at launch),
    # and their addresses are free again.
    terminate(ec2, iid)
    assert enis(ec2, Filters=[{"Name": "network-interface-id", "Values": ids}]) == []
    again = ec2.create_network_interface(SubnetId=net["b"], PrivateIpAddress="10.31.2.11")["NetworkInterface"]
    ec2.delete_network_interface(NetworkInterfaceId=again["NetworkInterfaceId"])


def test_delete_on_termination_false_keeps_the_interface(ec2, net):
    inst = run(ec2, [{"DeviceIndex": 0, "SubnetId": net["a"]},
                     {"DeviceIndex": 1, "SubnetId": net["b"], "PrivateIpAddress": "10.31.2.30",
                      "DeleteOnTermination": False}])
    iid = inst["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    second = [n for n in instance(ec2, iid)["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 1][0]
    assert second["Attachment"]["DeleteOnTermination"] is False
    terminate(ec2, iid)
    kept = enis(ec2, NetworkInterfaceIds=[second["NetworkInterfaceId"]])[0]
    assert (kept["Status"], kept["PrivateIpAddress"], kept["SubnetId"]) == ("available", "10.31.2.30", net["b"])
    assert "Attachment" not in kept
    # Its address stays held while it lives.
    assert error_of(lambda: ec2.create_network_interface(SubnetId=net["b"], PrivateIpAddress="10.31.2.30"))[0] == \
        "InvalidIPAddress.InUse"
    ec2.delete_network_interface(NetworkInterfaceId=second["NetworkInterfaceId"])


def test_existing_interfaces_at_launch(ec2, net, cloudstack):
    e1 = ec2.create_network_interface(SubnetId=net["b"], PrivateIpAddress="10.31.2.40", Description="kept",
                                      SecondaryPrivateIpAddressCount=1)["NetworkInterface"]
    eid = e1["NetworkInterfaceId"]
    sec = [a["PrivateIpAddress"] for a in e1["PrivateIpAddresses"] if not a["Primary"]]
    inst = run(ec2, [{"DeviceIndex": 0, "SubnetId": net["a"]}, {"DeviceIndex": 1, "NetworkInterfaceId": eid}])
    iid = inst["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    got = enis(ec2, NetworkInterfaceIds=[eid])[0]
    assert got["Status"] == "in-use" and got["Attachment"]["InstanceId"] == iid
    assert (got["Attachment"]["DeviceIndex"], got["Attachment"]["DeleteOnTermination"]) == (1, False)
    assert sorted(a["PrivateIpAddress"] for a in got["PrivateIpAddresses"]) == sorted(["10.31.2.40"] + sec)
    primary_ip = instance(ec2, iid)["PrivateIpAddress"]
    assert ("10.31.2.40", sec, False) in cs_nics(cloudstack, primary_ip)
    # Attached: another launch cannot take it.
    assert error_of(lambda: run(ec2, [{"DeviceIndex": 0, "NetworkInterfaceId": eid}])) == \
        ("InvalidParameterValue", "Interface: [%s] in use." % eid)
    terminate(ec2, iid)
    back = enis(ec2, NetworkInterfaceIds=[eid])[0]
    assert (back["Status"], back["PrivateIpAddress"], back["Description"]) == ("available", "10.31.2.40", "kept")

    # The same interface as an instance's primary interface (device 0): the instance lives in its
    # subnet with its address and groups; it cannot be detached; termination keeps it.
    # CloudStack keeps the terminated VM's NIC (and its address) until it expunges the VM
    # (docs/network-interfaces.md): until then the deploy is refused and nothing changes.
    deadline = time.time() + 30
    while True:
        try:
            inst = run(ec2, [{"DeviceIndex": 0, "NetworkInterfaceId": eid}])
            break
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidParameterValue" and time.time() < deadline, e.response
            assert enis(ec2, NetworkInterfaceIds=[eid])[0]["Status"] == "available"
            time.sleep(1)
    iid = inst["InstanceId"]
    assert inst["SubnetId"] == net["b"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    got = instance(ec2, iid)
    assert got["PrivateIpAddress"] == "10.31.2.40"
    assert [n["NetworkInterfaceId"] for n in got["NetworkInterfaces"]] == [eid]
    att = enis(ec2, NetworkInterfaceIds=[eid])[0]["Attachment"]
    assert (att["DeviceIndex"], att["DeleteOnTermination"]) == (0, False)
    assert error_of(lambda: ec2.detach_network_interface(AttachmentId=att["AttachmentId"]))[0] == \
        "OperationNotPermitted"
    terminate(ec2, iid)
    back = enis(ec2, NetworkInterfaceIds=[eid])[0]
    assert (back["Status"], back["PrivateIpAddress"]) == ("available", "10.31.2.40")
    ec2.delete_network_interface(NetworkInterfaceId=eid)


def test_bad_combinations_change_nothing(ec2, net):
    held = ec2.create_network_interface(SubnetId=net["b"], PrivateIpAddress="10.31.2.50")["NetworkInterface"]
    hid = held["NetworkInterfaceId"]

    def snapshot():
        insts = sorted(i["InstanceId"] for r in ec2.describe_instances(
            Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]},
                     {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
            for i in r["Instances"])
        nis = sorted((n["NetworkInterfaceId"], n["Status"]) for n in
                     enis(ec2, Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}]))
        return insts, nis

    before = snapshot()
    a, b = net["a"], net["b"]
    cases = [
        (dict(SubnetId=a, interfaces=[{"DeviceIndex": 0, "AssociatePublicIpAddress": True}]),
         ("InvalidParameterCombination",
          "Network interfaces and an instance-level subnet ID may not be specified on the same request")),
        (dict(interfaces=[{"DeviceIndex": 0, "SubnetId": a}, {"DeviceIndex": 0, "SubnetId": b}]),
         ("InvalidParameterValue", "Each network interface requires a unique device index.")),
        (dict(interfaces=[{"DeviceIndex": 1, "SubnetId": b}]),
         ("InvalidParameterValue", "When specifying network interfaces, you must include a device at index 0")),
        (dict(interfaces=[{"DeviceIndex": 0, "SubnetId": a, "AssociatePublicIpAddress": True},
                          {"DeviceIndex": 1, "SubnetId": b}]),
         ("InvalidParameterCombination", "The associatePublicIPAddress parameter cannot be specified when "
                                         "launching with multiple network interfaces.")),
        (dict(interfaces=[{"DeviceIndex": 0, "SubnetId": a}, {"DeviceIndex": 1, "SubnetId": a}]),
         ("UnsupportedOperation", None)),
        (dict(interfaces=[{"DeviceIndex": 0, "SubnetId": a}, {"DeviceIndex": 1, "SubnetId": net["other"]}]),
         ("InvalidParameterValue", None)),
        (dict(interfaces=[{"DeviceIndex": 0, "SubnetId": a, "PrivateIpAddress": "10.31.1.61"},
                          {"DeviceIndex": 1, "SubnetId": b, "PrivateIpAddress": "10.31.2.50"}]),
         ("InvalidIPAddress.InUse", "Address 10.31.2.50 is in use.")),
        (dict(interfaces=[{"DeviceIndex": 0, "SubnetId": a}, {"DeviceIndex": 1, "SubnetId": b,
                                                              "PrivateIpAddress": "10.31.1.60"}]),
         ("InvalidParameterValue", "Address 10.31.1.60 does not fall within the subnet's address range")),
        (dict(interfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": hid, "SubnetId": b}]),
         ("InvalidParameterCombination", None)),
        (dict(interfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": hid, "DeleteOnTermination": True}]),
         ("InvalidParameterCombination", None)),
        (dict(interfaces=[{"DeviceIndex": 0, "SubnetId": a}, {"DeviceIndex": 1, "NetworkInterfaceId": hid}],
              MaxCount=2),
         ("InvalidParameterCombination", None)),
        (dict(interfaces=[{"DeviceIndex": 0, "SubnetId": a, "Ipv6AddressCount": 1}]),
         ("UnsupportedOperation", None)),
    ]
    for kw, (code, message) in cases:
        interfaces = kw.pop("interfaces")
        params = dict(ImageId=ubuntu(ec2), MinCount=1, MaxCount=kw.pop("MaxCount", 1), InstanceType="m1.small",
                      NetworkInterfaces=interfaces, **kw)
        got = error_of(lambda: ec2.run_instances(**params))
        assert got[0] == code, (interfaces, got)
        if message:
            assert got[1] == message, (interfaces, got)
    assert snapshot() == before
    # No address was left claimed by a refused launch: device 0's 10.31.1.61 is free.
    ok = ec2.create_network_interface(SubnetId=a, PrivateIpAddress="10.31.1.61")
    ec2.delete_network_interface(NetworkInterfaceId=ok["NetworkInterface"]["NetworkInterfaceId"])
    ec2.delete_network_interface(NetworkInterfaceId=hid)


def test_elastic_ip_on_a_secondary_address(ec2, net):
    """DescribeNetworkInterfaces and DescribeInstances show a public address on the private address
    it is mapped to (privateIpAddressesSet.item.association), the interface's own association
    only for its primary address."""
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    inst = run(ec2, [{"DeviceIndex": 0, "SubnetId": net["a"], "PrivateIpAddresses": [
        {"PrivateIpAddress": "10.31.1.70", "Primary": True}, {"PrivateIpAddress": "10.31.1.71", "Primary": False}]}])
    iid = inst["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    eid = instance(ec2, iid)["NetworkInterfaces"][0]["NetworkInterfaceId"]
    alloc = ec2.allocate_address(Domain="vpc")
    assoc = ec2.associate_address(AllocationId=alloc["AllocationId"], NetworkInterfaceId=eid,
                                  PrivateIpAddress="10.31.1.71")["AssociationId"]
    owner = ec2.describe_network_interfaces(NetworkInterfaceIds=[eid])["NetworkInterfaces"][0]["OwnerId"]
    want = {"PublicIp": alloc["PublicIp"], "AllocationId": alloc["AllocationId"], "AssociationId": assoc,
            "IpOwnerId": owner, "PublicDnsName": ""}
    n = enis(ec2, NetworkInterfaceIds=[eid])[0]
    by_ip = {a["PrivateIpAddress"]: a for a in n["PrivateIpAddresses"]}
    assert "Association" not in by_ip["10.31.1.70"] and "Association" not in n
    assert {k: by_ip["10.31.1.71"]["Association"].get(k) for k in want} == want
    # addresses.association.* looks at every address; association.* at the interface's own.
    found = enis(ec2, Filters=[{"Name": "addresses.association.public-ip", "Values": [alloc["PublicIp"]]}])
    assert [x["NetworkInterfaceId"] for x in found] == [eid]
    assert enis(ec2, Filters=[{"Name": "association.public-ip", "Values": [alloc["PublicIp"]]}]) == []
    inic = instance(ec2, iid)["NetworkInterfaces"][0]
    ia = {a["PrivateIpAddress"]: a for a in inic["PrivateIpAddresses"]}
    assert ia["10.31.1.71"]["Association"]["PublicIp"] == alloc["PublicIp"]
    assert ia["10.31.1.71"]["Association"]["IpOwnerId"] == owner
    assert "Association" not in ia["10.31.1.70"]
    hits = ec2.describe_instances(Filters=[{"Name": "network-interface.addresses.association.public-ip",
                                            "Values": [alloc["PublicIp"]]}])["Reservations"]
    assert [i["InstanceId"] for r in hits for i in r["Instances"]] == [iid]
    # On the primary address, the interface shows it as its own association too.
    ec2.disassociate_address(AssociationId=assoc)
    assoc = ec2.associate_address(AllocationId=alloc["AllocationId"], NetworkInterfaceId=eid)["AssociationId"]
    n = enis(ec2, NetworkInterfaceIds=[eid])[0]
    assert (n["Association"]["PublicIp"], n["Association"]["AssociationId"]) == (alloc["PublicIp"], assoc)
    assert [x["NetworkInterfaceId"] for x in
            enis(ec2, Filters=[{"Name": "association.allocation-id", "Values": [alloc["AllocationId"]]}])] == [eid]
    assert "Association" not in {a["PrivateIpAddress"]: a for a in n["PrivateIpAddresses"]}["10.31.1.71"]
    ec2.disassociate_address(AssociationId=assoc)
    ec2.release_address(AllocationId=alloc["AllocationId"])
    assert "Association" not in enis(ec2, NetworkInterfaceIds=[eid])[0]
    terminate(ec2, iid)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    ec2.delete_internet_gateway(InternetGatewayId=igw)


def test_interface_tags_at_launch(ec2, net):
    """TagSpecification of type network-interface tags every interface the launch makes (also the
    primary interface of a launch with only SubnetId); the instance keeps its own tags."""
    spec = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "tagged-vm"}]},
            {"ResourceType": "network-interface", "Tags": [{"Key": "role", "Value": "launch"}]}]
    one = ec2.run_instances(ImageId=ubuntu(ec2), MinCount=1, MaxCount=1, InstanceType="m1.small",
                            SubnetId=net["a"], TagSpecifications=spec)["Instances"][0]
    two = run(ec2, [{"DeviceIndex": 0, "SubnetId": net["a"]}, {"DeviceIndex": 1, "SubnetId": net["b"]}],
              TagSpecifications=spec)
    for inst, count in [(one, 1), (two, 2)]:
        iid = inst["InstanceId"]
        assert {t["Key"]: t["Value"] for t in inst["Tags"]} == {"Name": "tagged-vm"}
        found = enis(ec2, Filters=[{"Name": "attachment.instance-id", "Values": [iid]},
                                   {"Name": "tag:role", "Values": ["launch"]}])
        assert len(found) == count, found
        assert all(n["TagSet"] == [{"Key": "role", "Value": "launch"}] for n in found)
        terminate(ec2, iid)
    # Refused, never dropped: a type the launch makes nothing of.
    bad = [{"ResourceType": "vpc", "Tags": [{"Key": "a", "Value": "b"}]}]
    assert error_of(lambda: run(ec2, [{"DeviceIndex": 0, "SubnetId": net["a"]}], TagSpecifications=bad))[0] == \
        "InvalidParameterValue"
