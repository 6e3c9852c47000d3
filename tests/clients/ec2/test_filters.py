"""Filters as EC2 documents them (issue 12 item 12, docs/filters.md) through boto3 and the AWS CLI:
the filters Terraform's data sources and Ansible's amazon.aws *_info modules send (aws_ami,
aws_instance(s), aws_vpc, aws_subnet(s), aws_security_group(s), aws_route_table,
aws_internet_gateway, aws_network_interface, aws_eip), with wildcards and several values; the
documented filters that match nothing here (absent) and those refused by name with
InvalidParameterValue. Each filtered answer is checked against the unfiltered one, so a filter
that ignored its values or matched nothing would fail."""
import pytest

from harness import client_error as error_of

WAIT = {"Delay": 1, "MaxAttempts": 120}


def N(name, *values):
    return {"Name": name, "Values": list(values)}


@pytest.fixture(scope="module")
def ec2(boto3_client):
    return boto3_client()


def image_ids(ec2, *filters):
    return {i["ImageId"] for i in ec2.describe_images(Filters=list(filters))["Images"]}


def instance_ids(ec2, *filters):
    return {i["InstanceId"] for r in ec2.describe_instances(Filters=list(filters))["Reservations"]
            for i in r["Instances"]}


# ---- DescribeImages: what Terraform's aws_ami data source sends ------------------------------

def test_aws_ami_filters(ec2, aws_cli):
    images = ec2.describe_images()["Images"]
    assert len(images) >= 2
    every = {i["ImageId"] for i in images}
    ubuntu = {i["ImageId"] for i in images if i["Name"].startswith("Ubuntu")}
    assert ubuntu and ubuntu != every
    # name with a wildcard, several values OR-ed, `?` one character.
    assert image_ids(ec2, N("name", "Ubuntu*")) == ubuntu
    names = sorted({i["Name"] for i in images})
    assert image_ids(ec2, N("name", names[0], names[-1])) == {i["ImageId"] for i in images if i["Name"] in (names[0], names[-1])}
    assert image_ids(ec2, N("name", names[0][:-1] + "?")) >= {i["ImageId"] for i in images if i["Name"] == names[0]}
    # Terraform's usual aws_ami filter block, all at once (AND-ed).
    tf = [N("name", "Ubuntu*"), N("architecture", "x86_64"), N("virtualization-type", "hvm"),
          N("root-device-type", "ebs"), N("image-type", "machine"), N("state", "available"),
          N("platform-details", "Linux/UNIX")]
    want = {i["ImageId"] for i in images if i["Name"].startswith("Ubuntu") and i["Architecture"] == "x86_64"
            and i["State"] == "available" and i["PlatformDetails"] == "Linux/UNIX"}
    assert want and image_ids(ec2, *tf) == want
    for name, field in [("architecture", "Architecture"), ("state", "State"), ("platform-details", "PlatformDetails"),
                        ("hypervisor", "Hypervisor")]:
        values = {i[field] for i in images}
        for v in values:
            assert image_ids(ec2, N(name, v)) == {i["ImageId"] for i in images if i[field] == v}, (name, v)
    assert image_ids(ec2, N("architecture", "arm64")) == set()
    assert image_ids(ec2, N("virtualization-type", "paravirtual")) == set()
    # owner-alias: featured templates are amazon's; the caller's own have no alias.
    amazon = {i["ImageId"] for i in images if i.get("ImageOwnerAlias") == "amazon"}
    assert image_ids(ec2, N("owner-alias", "amazon")) == amazon
    # creation-date with EC2's documented day wildcard; root device filters.
    day = images[0]["CreationDate"][:10]
    assert image_ids(ec2, N("creation-date", day + "T*")) == {i["ImageId"] for i in images if i["CreationDate"].startswith(day)}
    size = images[0]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
    assert image_ids(ec2, N("block-device-mapping.volume-size", str(size))) == \
        {i["ImageId"] for i in images if i["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == size}
    snap = images[0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert image_ids(ec2, N("block-device-mapping.snapshot-id", snap)) == {images[0]["ImageId"]}
    assert image_ids(ec2, N("block-device-mapping.device-name", "/dev/sda1")) == every
    assert image_ids(ec2, N("ena-support", "true")) == set()
    assert image_ids(ec2, N("ena-support", "false")) == every
    # Absent here: matches nothing, no error.
    assert image_ids(ec2, N("kernel-id", "*")) == set()
    assert image_ids(ec2, N("product-code", "*")) == set()
    # The AWS CLI, several values in one --filters.
    rc, out, err = aws_cli("ec2", "describe-images", "--filters", "Name=name,Values=Ubuntu*,NoSuch*",
                           "Name=root-device-type,Values=ebs")
    assert rc == 0, err
    assert {i["ImageId"] for i in out["Images"]} == ubuntu


def test_refused_filters_are_named(ec2, aws_cli):
    code, msg = error_of(lambda: ec2.describe_images(Filters=[N("boot-mode", "uefi")]))
    assert code == "InvalidParameterValue"
    assert msg.startswith("The filter 'boot-mode' is not supported by this EC2 endpoint: ") and "boot" in msg
    code, msg = error_of(lambda: ec2.describe_instances(Filters=[N("metadata-options.http-tokens", "required")]))
    assert code == "InvalidParameterValue" and "'metadata-options.http-tokens'" in msg
    # Refused even next to a valid filter; an undocumented name keeps EC2's "invalid".
    code, msg = error_of(lambda: ec2.describe_volumes(Filters=[N("status", "available"), N("operator.managed", "true")]))
    assert code == "InvalidParameterValue" and "'operator.managed'" in msg
    assert error_of(lambda: ec2.describe_images(Filters=[N("no-such-filter", "x")])) == \
        ("InvalidParameterValue", "The filter 'no-such-filter' is invalid")
    rc, out, err = aws_cli("ec2", "describe-instance-types", "--filters", "Name=hypervisor,Values=nitro")
    assert rc != 0 and "InvalidParameterValue" in err and "'hypervisor'" in err


# ---- Zones, volumes, snapshots ----------------------------------------------------------------

def test_zone_volume_snapshot_filters(ec2):
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    region = zones[0]["RegionName"]
    names = {z["ZoneName"] for z in zones}
    got = ec2.describe_availability_zones(Filters=[N("group-name", region), N("opt-in-status", "opt-in-not-required")])
    assert {z["ZoneName"] for z in got["AvailabilityZones"]} == names
    assert ec2.describe_availability_zones(Filters=[N("group-name", "elsewhere-1")])["AvailabilityZones"] == []
    assert ec2.describe_availability_zones(Filters=[N("parent-zone-name", "*")])["AvailabilityZones"] == []
    zone = zones[0]
    v1 = ec2.create_volume(AvailabilityZone=zone["ZoneName"], Size=1)["VolumeId"]
    v2 = ec2.create_volume(AvailabilityZone=zone["ZoneName"], Size=2)["VolumeId"]
    try:
        def vols(*f):
            return {v["VolumeId"] for v in ec2.describe_volumes(Filters=list(f))["Volumes"]} & {v1, v2}
        assert vols(N("availability-zone-id", zone["ZoneId"])) == {v1, v2}
        assert vols(N("availability-zone-id", "no-such-zone")) == set()
        assert vols(N("multi-attach-enabled", "false"), N("size", "1", "2")) == {v1, v2}
        assert vols(N("multi-attach-enabled", "true")) == set()
        assert vols(N("size", "2"), N("fast-restored", "false")) == {v2}
        snap = ec2.create_snapshot(VolumeId=v1)["SnapshotId"]
        try:
            got = ec2.describe_snapshots(OwnerIds=["self"], Filters=[N("storage-tier", "standard"), N("volume-id", v1)])
            assert [s["SnapshotId"] for s in got["Snapshots"]] == [snap]
            assert ec2.describe_snapshots(OwnerIds=["self"], Filters=[N("storage-tier", "archive")])["Snapshots"] == []
        finally:
            ec2.delete_snapshot(SnapshotId=snap)
    finally:
        ec2.delete_volume(VolumeId=v1)
        ec2.delete_volume(VolumeId=v2)


# ---- A VPC stack: what aws_vpc, aws_subnet(s), aws_security_group(s), aws_route_table,
# aws_internet_gateway, aws_network_interface, aws_instance(s) and aws_eip send ------------------

@pytest.fixture(scope="module")
def stack(vpc_ec2_no_default):
    # Without a default VPC, the Elastic IP (Domain=vpc) lands in this, the newest attached VPC.
    ec2 = vpc_ec2_no_default
    s = {}
    s["vpc"] = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[s["vpc"]])
    s["subnet1"] = ec2.create_subnet(VpcId=s["vpc"], CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    s["subnet2"] = ec2.create_subnet(VpcId=s["vpc"], CidrBlock="10.77.2.0/24")["Subnet"]["SubnetId"]
    s["igw"] = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=s["igw"], VpcId=s["vpc"])
    s["sg"] = ec2.create_security_group(GroupName="flt-web", Description="web", VpcId=s["vpc"])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=s["sg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "192.0.2.0/24"}]}])
    s["rt"] = ec2.create_route_table(VpcId=s["vpc"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=s["rt"], SubnetId=s["subnet1"])
    ami = ec2.describe_images(Filters=[N("name", "Ubuntu*")])["Images"][0]["ImageId"]
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.small", SubnetId=s["subnet1"],
                          SecurityGroupIds=[s["sg"]])
    s["i1"] = r["Instances"][0]["InstanceId"]
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="m1.small", SubnetId=s["subnet2"])
    s["i2"] = r["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[s["i1"], s["i2"]], WaiterConfig=WAIT)
    a = ec2.allocate_address(Domain="vpc")
    s["alloc"], s["ip"] = a["AllocationId"], a["PublicIp"]
    ec2.associate_address(AllocationId=s["alloc"], InstanceId=s["i1"])
    yield s
    ec2.disassociate_address(AssociationId=ec2.describe_addresses(AllocationIds=[s["alloc"]])["Addresses"][0]["AssociationId"])
    ec2.release_address(AllocationId=s["alloc"])
    ec2.terminate_instances(InstanceIds=[s["i1"], s["i2"]])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[s["i1"], s["i2"]], WaiterConfig=WAIT)
    for t in ec2.describe_route_tables(RouteTableIds=[s["rt"]])["RouteTables"]:
        for a in t["Associations"]:
            ec2.disassociate_route_table(AssociationId=a["RouteTableAssociationId"])
    ec2.delete_route_table(RouteTableId=s["rt"])
    ec2.delete_security_group(GroupId=s["sg"])
    ec2.delete_subnet(SubnetId=s["subnet1"])
    ec2.delete_subnet(SubnetId=s["subnet2"])
    ec2.detach_internet_gateway(InternetGatewayId=s["igw"], VpcId=s["vpc"])
    ec2.delete_internet_gateway(InternetGatewayId=s["igw"])
    ec2.delete_vpc(VpcId=s["vpc"])


def test_vpc_and_subnet_filters(vpc_ec2, stack, aws_cli):
    ec2, vid = vpc_ec2, stack["vpc"]
    vpc = ec2.describe_vpcs(VpcIds=[vid])["Vpcs"][0]

    def vpcs(*f):
        return {v["VpcId"] for v in ec2.describe_vpcs(Filters=list(f))["Vpcs"]}
    assert vpcs(N("cidr-block-association.association-id", vpc["CidrBlockAssociationSet"][0]["AssociationId"])) == {vid}
    assert vid in vpcs(N("state", "available"), N("cidr", "10.77.*"))
    assert vpcs(N("ipv6-cidr-block-association.ipv6-cidr-block", "*")) == set()
    # Terraform's aws_vpc data source sends the older camelCase isDefault.
    assert vid in vpcs(N("isDefault", "false"), N("cidr", "10.77.0.0/16"))
    assert vid not in vpcs(N("isDefault", "true"))
    # Ansible's ec2_vpc_net finds its VPC by cidr-block (its CIDRs as several values).
    assert vid in vpcs(N("cidr-block", "10.99.0.0/16", "10.77.0.0/16"))
    assert vid not in vpcs(N("cidr-block", "10.99.0.0/16"))

    def subnets(*f):
        return {s["SubnetId"] for s in ec2.describe_subnets(Filters=list(f))["Subnets"]}
    both = {stack["subnet1"], stack["subnet2"]}
    assert subnets(N("vpc-id", vid)) == both
    assert subnets(N("vpc-id", vid), N("cidr-block", "10.77.1.0/24")) == {stack["subnet1"]}
    assert subnets(N("vpc-id", vid), N("cidrBlock", "10.77.2.0/24", "10.77.1.0/24")) == both
    assert subnets(N("vpc-id", vid), N("cidr-block", "10.77.?.0/24")) == both
    zone = ec2.describe_subnets(SubnetIds=[stack["subnet1"]])["Subnets"][0]["AvailabilityZone"]
    assert subnets(N("vpc-id", vid), N("availability-zone", zone), N("state", "available"),
                   N("default-for-az", "false"), N("ipv6-native", "false")) == both
    assert subnets(N("vpc-id", vid), N("default-for-az", "true")) == set()
    # What Terraform's aws_subnet data source sends: older camelCase names EC2 still accepts.
    zone_id = ec2.describe_subnets(SubnetIds=[stack["subnet1"]])["Subnets"][0]["AvailabilityZoneId"]
    assert subnets(N("vpc-id", vid), N("availabilityZone", zone), N("availabilityZoneId", zone_id),
                   N("defaultForAz", "false"), N("cidrBlock", "10.77.1.0/24"), N("state", "available")) == {stack["subnet1"]}
    assert subnets(N("vpc-id", vid), N("availabilityZone", zone + "x")) == set()
    assert subnets(N("outpost-arn", "*")) == set()
    code, msg = error_of(lambda: ec2.describe_subnets(Filters=[N("subnet-arn", "*")]))
    assert code == "InvalidParameterValue" and "'subnet-arn'" in msg
    # aws_subnets through the AWS CLI.
    rc, out, err = aws_cli("ec2", "describe-subnets", "--filters", f"Name=vpc-id,Values={vid}",
                           "Name=cidr-block,Values=10.77.1.0/24,10.77.9.0/24")
    assert rc == 0, err
    assert [s["SubnetId"] for s in out["Subnets"]] == [stack["subnet1"]]


def test_security_group_route_table_gateway_filters(vpc_ec2, stack):
    ec2, vid = vpc_ec2, stack["vpc"]

    def groups(*f):
        return {g["GroupId"] for g in ec2.describe_security_groups(Filters=list(f))["SecurityGroups"]}
    assert groups(N("vpc-id", vid), N("group-name", "flt-*")) == {stack["sg"]}
    assert groups(N("group-name", "flt-web"), N("ip-permission.from-port", "443"),
                  N("ip-permission.cidr", "192.0.2.*"), N("ip-permission.protocol", "tcp")) == {stack["sg"]}
    assert groups(N("group-name", "flt-web"), N("ip-permission.to-port", "22")) == set()
    assert groups(N("ip-permission.ipv6-cidr", "*")) == set()

    def tables(*f):
        return {t["RouteTableId"] for t in ec2.describe_route_tables(Filters=list(f))["RouteTables"]}
    assert tables(N("association.subnet-id", stack["subnet1"])) == {stack["rt"]}
    assert stack["rt"] in tables(N("vpc-id", vid), N("route.gateway-id", "local"))
    assert tables(N("route.vpc-peering-connection-id", "*")) == set()

    got = ec2.describe_internet_gateways(Filters=[N("attachment.vpc-id", vid)])["InternetGateways"]
    assert [g["InternetGatewayId"] for g in got] == [stack["igw"]]


def test_instance_and_interface_filters(vpc_ec2, stack, aws_cli):
    ec2, vid, i1, i2 = vpc_ec2, stack["vpc"], stack["i1"], stack["i2"]
    both = {i1, i2}
    inst = ec2.describe_instances(InstanceIds=[i1])["Reservations"][0]["Instances"][0]
    eni = inst["NetworkInterfaces"][0]
    assert instance_ids(ec2, N("vpc-id", vid)) == both
    assert instance_ids(ec2, N("vpc-id", vid), N("instance-state-name", "pending", "running")) == both
    assert instance_ids(ec2, N("vpc-id", vid), N("instance-state-name", "stopped")) == set()
    assert instance_ids(ec2, N("subnet-id", stack["subnet2"])) == {i2}
    assert instance_ids(ec2, N("network-interface.subnet-id", stack["subnet1"], stack["subnet2"])) == both
    assert instance_ids(ec2, N("network-interface.vpc-id", vid), N("private-ip-address", "10.77.1.*")) == {i1}
    assert instance_ids(ec2, N("network-interface.network-interface-id", eni["NetworkInterfaceId"])) == {i1}
    assert instance_ids(ec2, N("network-interface.attachment.instance-id", i1)) == {i1}
    assert instance_ids(ec2, N("vpc-id", vid), N("network-interface.attachment.status", "attached"),
                        N("network-interface.attachment.delete-on-termination", "true"),
                        N("network-interface.source-dest-check", "true"),
                        N("network-interface.requester-managed", "false")) == both
    assert instance_ids(ec2, N("network-interface.group-id", stack["sg"])) == {i1}
    assert instance_ids(ec2, N("vpc-id", vid), N("network-interface.group-name", "flt-web")) == {i1}
    assert instance_ids(ec2, N("network-interface.availability-zone", inst["Placement"]["AvailabilityZone"]),
                        N("vpc-id", vid)) == both
    assert instance_ids(ec2, N("network-interface.addresses.association.public-ip", stack["ip"])) == {i1}
    assert instance_ids(ec2, N("vpc-id", vid), N("source-dest-check", "true"), N("launch-index", "0"),
                        N("ebs-optimized", "false")) == both
    assert instance_ids(ec2, N("spot-instance-request-id", "*")) == set()
    # aws_instances through the AWS CLI, several states.
    rc, out, err = aws_cli("ec2", "describe-instances", "--filters", f"Name=vpc-id,Values={vid}",
                           "Name=instance-state-name,Values=running,stopped")
    assert rc == 0, err
    assert {i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]} == both

    def enis(*f):
        return {n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces(Filters=list(f))["NetworkInterfaces"]}
    assert enis(N("attachment.instance-id", i1)) == {eni["NetworkInterfaceId"]}
    attached = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0]
    t = attached["Attachment"]["AttachTime"].strftime("%Y-%m-%dT")
    assert eni["NetworkInterfaceId"] in enis(N("vpc-id", vid), N("attachment.attach-time", t + "*"))
    assert enis(N("ipv6-addresses.ipv6-address", "*")) == set()
    # The Elastic IP on i1's interface: shown (as EC2 does) and filtered on.
    assoc = attached["Association"]
    assert assoc["PublicIp"] == stack["ip"] and assoc["AllocationId"] == stack["alloc"]
    assert assoc["AssociationId"].startswith("eipassoc-") and len(assoc["IpOwnerId"]) == 12
    assert attached["PrivateIpAddresses"][0]["Association"] == assoc
    assert enis(N("association.public-ip", stack["ip"])) == {eni["NetworkInterfaceId"]}
    assert enis(N("association.allocation-id", stack["alloc"]), N("association.association-id", assoc["AssociationId"]),
                N("addresses.association.public-ip", stack["ip"]), N("association.ip-owner-id", assoc["IpOwnerId"])) == \
        {eni["NetworkInterfaceId"]}
    other = ec2.describe_instances(InstanceIds=[i2])["Reservations"][0]["Instances"][0]["NetworkInterfaces"][0]
    assert "Association" not in ec2.describe_network_interfaces(
        NetworkInterfaceIds=[other["NetworkInterfaceId"]])["NetworkInterfaces"][0]
    assert instance_ids(ec2, N("network-interface.association.allocation-id", stack["alloc"])) == {i1}
    assert instance_ids(ec2, N("network-interface.association.association-id", assoc["AssociationId"])) == {i1}
    assert inst["NetworkInterfaces"][0]["Association"]["IpOwnerId"] == assoc["IpOwnerId"]
    # DescribeInstances shows it on the address too (privateIpAddressesSet), without the ids.
    assert inst["NetworkInterfaces"][0]["PrivateIpAddresses"][0]["Association"] == \
        {"PublicIp": stack["ip"], "PublicDnsName": "", "IpOwnerId": assoc["IpOwnerId"]}
    assert instance_ids(ec2, N("network-interface.addresses.association.allocation-id", stack["alloc"])) == {i1}

    # aws_eip: domain, public-ip, instance-id, allocation-id.
    def addrs(*f):
        return {a["AllocationId"] for a in ec2.describe_addresses(Filters=list(f))["Addresses"]}
    assert addrs(N("domain", "vpc"), N("public-ip", stack["ip"])) == {stack["alloc"]}
    assert addrs(N("instance-id", i1), N("allocation-id", stack["alloc"])) == {stack["alloc"]}
    region = ec2.describe_availability_zones()["AvailabilityZones"][0]["RegionName"]
    assert addrs(N("network-border-group", region), N("allocation-id", stack["alloc"])) == {stack["alloc"]}
    assert addrs(N("instance-id", i2)) == set()


def test_instance_type_filters(ec2):
    types = ec2.describe_instance_types()["InstanceTypes"]
    every = {t["InstanceType"] for t in types}
    assert every

    def found(*f):
        return {t["InstanceType"] for t in ec2.describe_instance_types(Filters=list(f))["InstanceTypes"]}
    assert found(N("network-info.ena-support", "unsupported"), N("auto-recovery-supported", "false"),
                 N("ebs-info.encryption-support", "unsupported")) == every
    assert found(N("network-info.ena-support", "required", "supported")) == set()
    small = min(types, key=lambda t: t["MemoryInfo"]["SizeInMiB"])
    assert small["InstanceType"] in found(N("memory-info.size-in-mib", str(small["MemoryInfo"]["SizeInMiB"])))
    assert found(N("vcpu-info.valid-cores", "*")) == set()
    code, msg = error_of(lambda: ec2.describe_instance_types(Filters=[N("ebs-info.nvme-support", "required")]))
    assert code == "InvalidParameterValue" and "'ebs-info.nvme-support'" in msg
