"""Issue 14 items 1-3 over boto3, with the simulator's fault injection (a seed with [[faults]]):
failed deploys are terminated with EC2's stateReason and leave nothing in CloudStack; a failed
stop is reported as EC2 would; a MinCount rollback is not cut short by the request timeout; a
slow AllocateAddress answers before its job ends and makes one address per call."""
import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError
from cs import CloudStack

from ops_support import Gateway, REPO

NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120)
# Planted in CloudStack's error texts: must never reach a client.
PLANTED = "db-host-17.internal"


def seed_with(workdir, faults):
    text = (REPO / "seeds" / "default.toml").read_text() + "\n" + faults
    path = workdir / ("seed-%d.toml" % time.time_ns())
    path.write_text(text)
    return path


def fault_gateway(workdir, procs, faults, config="", env=None):
    seed = seed_with(workdir, faults)
    gw = Gateway(workdir, '[simulator]\nseed = "%s"\n%s' % (seed, config), env=env, args=["--sim-fast"])
    procs.append(gw)
    return gw


def demo_user(gw, admin=False):
    return next(u for u in gw.info["users"] if u["is_admin"] == admin)


def ec2(gw, user=None):
    u = user or demo_user(gw)
    return boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1",
                        aws_access_key_id=u["access_key"], aws_secret_access_key=u["secret_key"], config=NO_RETRIES)


def cloudstack(gw, admin=True):
    u = demo_user(gw, admin=admin)
    return CloudStack(endpoint=gw.info["cloudstack_endpoint"], key=u["access_key"], secret=u["secret_key"],
                      poll_interval=0.05, job_timeout=30)


def image(c):
    return c.describe_images(Filters=[{"Name": "name", "Values": ["Ubuntu*"]}])["Images"][0]["ImageId"]


def wait_for(what, check, timeout=30, every=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("%s: not reached in %d s (last: %r)" % (what, timeout, last))


def instance(c, iid):
    return c.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def vms_of_group(cs, group):
    """Every VM CloudStack still has for a reservation (the admin sees destroyed ones too)."""
    vms = cs.listVirtualMachines(listall=True).get("virtualmachine", [])
    return [v for v in vms if v.get("group") == group]


def test_failed_deploy_is_terminated_with_a_reason_and_removed(workdir, procs):
    gw = fault_gateway(workdir, procs, '[[faults]]\ncommand = "deployVirtualMachine"\njob = "fail"\n'
                       'job_error_code = 530\njob_error_text = "Unable to start VM on host %s (id 4242)"\n' % PLANTED)
    c = ec2(gw)
    r = c.run_instances(ImageId=image(c), MinCount=1, MaxCount=1)
    iid, rid = r["Instances"][0]["InstanceId"], r["ReservationId"]
    assert r["Instances"][0]["State"]["Name"] == "pending"
    inst = wait_for("terminated", lambda: (lambda i: i if i["State"]["Name"] == "terminated" else None)(instance(c, iid)))
    assert inst["State"]["Code"] == 48
    assert inst["StateReason"] == {"Code": "Server.InternalError",
                                   "Message": "Server.InternalError: Internal error on launch"}, inst
    assert inst["StateTransitionReason"] == "Server.InternalError: Internal error on launch"
    assert PLANTED not in str(inst) and "4242" not in str(inst)
    # Nothing is left in CloudStack: the VM in Error was destroyed (and expunged).
    cs = cloudstack(gw)
    wait_for("the failed VM removed", lambda: not vms_of_group(cs, rid), timeout=30)
    # EC2 keeps showing the terminated instance (the tombstone), by id and in the listing.
    assert instance(c, iid)["State"]["Name"] == "terminated"
    listed = [i["InstanceId"] for r in c.describe_instances()["Reservations"] for i in r["Instances"]]
    assert iid in listed
    # The CloudStack text went to the log, not to the client.
    assert PLANTED in gw.log()


def test_failed_stop_returns_to_running_with_a_reason(workdir, procs):
    gw = fault_gateway(workdir, procs, '[[faults]]\ncommand = "stopVirtualMachine"\njob = "fail"\n'
                       'job_error_text = "stop failed on %s"\n' % PLANTED)
    c = ec2(gw)
    iid = c.run_instances(ImageId=image(c), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    c.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert "StateReason" not in instance(c, iid)
    r = c.stop_instances(InstanceIds=[iid])["StoppingInstances"][0]
    assert (r["PreviousState"]["Name"], r["CurrentState"]["Name"]) == ("running", "stopping")
    inst = wait_for("the failed stop reported",
                    lambda: (lambda i: i if i.get("StateReason") else None)(instance(c, iid)))
    assert inst["State"]["Name"] == "running"
    assert inst["StateReason"] == {"Code": "Server.InternalError",
                                   "Message": "Server.InternalError: Internal error on stop"}, inst
    assert inst["StateTransitionReason"] == "Server.InternalError: Internal error on stop"
    assert PLANTED not in str(inst)
    # A user's terminate: EC2's reason and "User initiated (<time> GMT)".
    c.terminate_instances(InstanceIds=[iid])
    inst = instance(c, iid)
    assert inst["State"]["Name"] in ("shutting-down", "terminated")
    assert inst["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    assert inst["StateTransitionReason"].startswith("User initiated (") and inst["StateTransitionReason"].endswith(" GMT)")


def test_slow_jobs_past_the_request_timeout_make_nothing_twice(workdir, procs):
    gw = fault_gateway(
        workdir, procs,
        '[[faults]]\ncommand = "associateIpAddress"\njob_delay_ms = 4000\n'
        '[[faults]]\ncommand = "createVPC"\njob_delay_ms = 3500\n'
        '[[faults]]\ncommand = "deployVirtualMachine"\njob_delay_ms = 3000\n',
        config="[server]\nrequest_timeout_secs = 2\n")
    u = demo_user(gw)
    # boto3 with its default retries (standard mode: 3 attempts on 5xx/503).
    c = boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1",
                     aws_access_key_id=u["access_key"], aws_secret_access_key=u["secret_key"],
                     config=botocore.config.Config(retries={"mode": "standard"}, read_timeout=60))
    # AllocateAddress answers as soon as CloudStack has committed the address, not after its 4 s
    # job (past the 2 s request timeout, past any client's read timeout for a hung job): nothing
    # for an SDK to retry into more addresses.
    t0 = time.time()
    a = c.allocate_address(Domain="standard")
    assert time.time() - t0 < 2, time.time() - t0
    assert a["PublicIp"] and a["AllocationId"].startswith("eipalloc-")
    addrs = c.describe_addresses()["Addresses"]
    assert [x["PublicIp"] for x in addrs] == [a["PublicIp"]], addrs
    # Used at once, the address is waited for until its allocation ended (CloudStack refuses
    # static NAT and release while it is Allocating), then released.
    c.release_address(AllocationId=a["AllocationId"])
    assert c.describe_addresses()["Addresses"] == []
    # A mutation slower than the request timeout is answered with its result, never a retryable
    # 503 that the SDK would turn into a second VPC.
    vpc = c.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]
    vpcs = [v for v in c.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.42.0.0/16"]
    assert [v["VpcId"] for v in vpcs] == [vpc["VpcId"]], vpcs
    # A MinCount rollback (alice may run 20 VMs; at least 21 asked) waits for 20 slow deploys:
    # the error is answered at once, the rollback goes on in the background and leaves nothing.
    t0 = time.time()
    with pytest.raises(ClientError) as e:
        c.run_instances(ImageId=image(c), MinCount=21, MaxCount=21)
    assert e.value.response["Error"]["Code"] == "InstanceLimitExceeded", e.value.response
    assert time.time() - t0 < 2, time.time() - t0
    cs = cloudstack(gw)
    account = next(u2["account"] for u2 in gw.info["users"] if u2["access_key"] == u["access_key"])

    def left():
        vms = cs.listVirtualMachines(listall=True, account=account, domainid=domain_of(cs, account)).get("virtualmachine", [])
        return [v for v in vms if v["state"] not in ("Destroyed", "Expunging")]
    wait_for("the rollback removed every VM", lambda: not left(), timeout=60, every=0.5)


def test_failed_allocation_after_the_answer_leaves_no_address(workdir, procs):
    gw = fault_gateway(workdir, procs, '[[faults]]\ncommand = "associateIpAddress"\njob = "fail"\njob_delay_ms = 1500\n'
                       'job_error_text = "no capacity on %s"\n' % PLANTED)
    c = ec2(gw)
    t0 = time.time()
    a = c.allocate_address(Domain="standard")
    assert time.time() - t0 < 1.5, time.time() - t0
    # The job fails after the answer: the address goes (CloudStack released it), and the
    # gateway's background watch (the journal's watch-allocate) ends with nothing left.
    wait_for("the failed allocation gone", lambda: c.describe_addresses()["Addresses"] == [], timeout=20)
    cs = cloudstack(gw)
    ips = [i for i in cs.listPublicIpAddresses(listall=True).get("publicipaddress", [])
           if i["ipaddress"] == a["PublicIp"]]
    assert ips == [], ips
    # CloudStack's text went to the log (once the watch saw the job fail), not to the client.
    wait_for("the failure logged", lambda: PLANTED in gw.log(), timeout=20)


def test_unknown_job_outcome_is_not_retryable(workdir, procs):
    # A job that never ends: past the job deadline the outcome is unknown and the VPC may still
    # be made. The answer must not be a 5xx (an SDK would retry it into a second VPC).
    gw = fault_gateway(workdir, procs, '[[faults]]\ncommand = "createVPC"\njob = "hang"\n',
                       config="[cloudstack]\njob_timeout_secs = 2\n")
    u = demo_user(gw)
    c = boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1",
                     aws_access_key_id=u["access_key"], aws_secret_access_key=u["secret_key"],
                     config=botocore.config.Config(retries={"mode": "standard"}, read_timeout=60))
    with pytest.raises(ClientError) as e:
        c.create_vpc(CidrBlock="10.43.0.0/16")
    r = e.value.response
    assert (r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]) == ("IncorrectState", 400), r
    assert r["ResponseMetadata"]["RetryAttempts"] == 0, r


def test_failed_job_polls_are_not_retryable_answers(workdir, procs):
    # CloudStack refuses every queryAsyncJobResult (530) while the job itself runs and ends:
    # the outcome is unknown to the gateway, so the answer must not invite an SDK retry (which
    # found the rule made and answered InvalidPermission.Duplicate in the soak, bench/README.md).
    gw = fault_gateway(workdir, procs, '[[faults]]\ncommand = "queryAsyncJobResult"\nerror_code = 530\n')
    u = demo_user(gw)
    c = boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1",
                     aws_access_key_id=u["access_key"], aws_secret_access_key=u["secret_key"],
                     config=botocore.config.Config(retries={"mode": "standard"}, read_timeout=60))
    g = c.create_security_group(GroupName="polls-%d" % time.time_ns(), Description="d")["GroupId"]
    perm = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=g, IpPermissions=[perm])
    r = e.value.response
    assert (r["Error"]["Code"], r["ResponseMetadata"]["RetryAttempts"]) == ("IncorrectState", 0), r
    # The job ended all the same: the rule is there, once.
    rules = c.describe_security_groups(GroupIds=[g])["SecurityGroups"][0]["IpPermissions"]
    assert [(p["FromPort"], [x["CidrIp"] for x in p["IpRanges"]]) for p in rules] == [(22, ["10.0.0.0/8"])], rules


def domain_of(cs, account):
    return next(a["domainid"] for a in cs.listAccounts(listall=True)["account"] if a["name"] == account)


def default_retries(gw):
    """boto3 as users run it: its default retry mode (legacy: up to 5 attempts on 5xx/503)."""
    u = demo_user(gw)
    return boto3.client("ec2", endpoint_url=gw.endpoint, region_name="us-east-1",
                        aws_access_key_id=u["access_key"], aws_secret_access_key=u["secret_key"],
                        config=botocore.config.Config(read_timeout=60))


def user_cloudstack(gw):
    return cloudstack(gw, admin=False)


def test_lost_answers_of_creates_make_one_resource_per_call(workdir, procs):
    # CloudStack runs every deploy, createVolume and associateIpAddress, but the connection
    # closes before its answer. The gateway finds the job the command started (listAsyncJobs)
    # and carries on with it: one boto3 call (retries on) makes exactly one resource.
    gw = fault_gateway(workdir, procs, "".join(
        '[[faults]]\ncommand = "%s"\ndrop_after_rate = 1.0\n' % cmd
        for cmd in ("deployVirtualMachine", "createVolume", "associateIpAddress")))
    c = default_retries(gw)
    cs = user_cloudstack(gw)

    r = c.run_instances(ImageId=image(c), MinCount=2, MaxCount=2)
    assert r["ResponseMetadata"]["RetryAttempts"] == 0, r["ResponseMetadata"]
    iids = sorted(i["InstanceId"] for i in r["Instances"])
    vms = [v for v in cs.listVirtualMachines().get("virtualmachine", [])
           if v["state"] not in ("Destroyed", "Expunging")]
    assert len(vms) == 2, vms
    c.get_waiter("instance_running").wait(InstanceIds=iids, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    shown = sorted(i["InstanceId"] for res in c.describe_instances()["Reservations"] for i in res["Instances"])
    assert shown == iids, shown

    az = c.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    v = c.create_volume(Size=5, AvailabilityZone=az)
    assert v["ResponseMetadata"]["RetryAttempts"] == 0, v["ResponseMetadata"]
    data = [x for x in cs.listVolumes(type="DATADISK").get("volume", [])]
    assert len(data) == 1, data
    assert [x["VolumeId"] for x in c.describe_volumes(Filters=[{"Name": "volume-type", "Values": ["standard", "gp2", "gp3", "io1", "st1", "sc1"]}])["Volumes"]
            if x["Attachments"] == []] == [v["VolumeId"]]

    a = c.allocate_address(Domain="standard")
    assert a["ResponseMetadata"]["RetryAttempts"] == 0, a["ResponseMetadata"]
    ips = [i for i in cs.listPublicIpAddresses().get("publicipaddress", []) if not i.get("issourcenat")]
    assert [i["ipaddress"] for i in ips] == [a["PublicIp"]], ips
    assert [x["PublicIp"] for x in c.describe_addresses()["Addresses"]] == [a["PublicIp"]]


def test_a_command_dropped_before_it_ran_is_retried_safely(workdir, procs):
    # The connection closes before CloudStack runs createVolume: nothing started, so the 503 is
    # right and the SDK's retries (all dropped too) make nothing.
    gw = fault_gateway(workdir, procs, '[[faults]]\ncommand = "createVolume"\ndrop_rate = 1.0\n')
    c = default_retries(gw)
    az = c.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    with pytest.raises(ClientError) as e:
        c.create_volume(Size=5, AvailabilityZone=az)
    r = e.value.response
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 503 and r["ResponseMetadata"]["RetryAttempts"] > 0, r
    assert user_cloudstack(gw).listVolumes(type="DATADISK").get("volume", []) == []


def test_terminated_instances_are_tagged_as_ec2_tags_them(workdir, procs):
    # A failed deploy is shown terminated (its VM removed from CloudStack); EC2 still tags an
    # instance it shows: CreateTags, DescribeInstances/DescribeTags and DeleteTags work on it.
    gw = fault_gateway(workdir, procs, '[[faults]]\ncommand = "deployVirtualMachine"\njob = "fail"\n')
    c = ec2(gw)
    r = c.run_instances(ImageId=image(c), MinCount=1, MaxCount=1,
                        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "1"}]}])
    iid, rid = r["Instances"][0]["InstanceId"], r["ReservationId"]
    wait_for("terminated", lambda: instance(c, iid)["State"]["Name"] == "terminated")
    cs = cloudstack(gw)
    wait_for("the failed VM removed", lambda: not vms_of_group(cs, rid), timeout=30)
    c.create_tags(Resources=[iid], Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "3"}])
    tags = lambda: sorted((t["Key"], t["Value"]) for t in instance(c, iid).get("Tags", []))
    assert tags() == [("a", "3"), ("b", "2")]
    described = c.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])["Tags"]
    assert sorted((t["Key"], t["Value"], t["ResourceType"]) for t in described) == [
        ("a", "3", "instance"), ("b", "2", "instance")], described
    found = c.describe_instances(Filters=[{"Name": "tag:b", "Values": ["2"]}])["Reservations"]
    assert [i["InstanceId"] for r in found for i in r["Instances"]] == [iid]
    c.delete_tags(Resources=[iid], Tags=[{"Key": "a", "Value": "not-it"}])
    assert tags() == [("a", "3"), ("b", "2")]
    c.delete_tags(Resources=[iid], Tags=[{"Key": "a"}])
    assert tags() == [("b", "2")]
    c.delete_tags(Resources=[iid])
    assert tags() == []
    # An instance id that never existed is still NotFound.
    with pytest.raises(ClientError) as e:
        c.create_tags(Resources=["i-0123456789abcdef0"], Tags=[{"Key": "b", "Value": "2"}])
    assert e.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"


def test_a_tier_list_that_cannot_be_put_in_place_undoes_the_launch(workdir, procs):
    """docs/vpc.md "VPC security groups: enforcement": when CloudStack cannot move the tier onto
    the list that enforces the new instance's groups, RunInstances answers the error and leaves
    nothing half-made: no instance, no gateway list, the tier on its network ACL's list."""
    gw = fault_gateway(workdir, procs, '[[faults]]\ncommand = "replaceNetworkACLList"\njob = "fail"\n'
                       'job_error_code = 530\njob_error_text = "Failed to apply ACL on %s"\n' % PLANTED)
    c = ec2(gw)
    if "VPC" not in [a["AttributeValue"] for x in c.describe_account_attributes(AttributeNames=["supported-platforms"])[
            "AccountAttributes"] for a in x["AttributeValues"]]:
        pytest.skip("the simulator's region has no VPC zone")
    vpc = c.create_vpc(CidrBlock="10.62.0.0/16")["Vpc"]["VpcId"]
    c.get_waiter("vpc_available").wait(VpcIds=[vpc])
    sub = c.create_subnet(VpcId=vpc, CidrBlock="10.62.1.0/24")["Subnet"]["SubnetId"]
    web = c.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    c.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    with pytest.raises(ClientError) as e:
        c.run_instances(ImageId=image(c), MinCount=1, MaxCount=1, SubnetId=sub, SecurityGroupIds=[web])
    assert PLANTED not in str(e.value.response)
    cs = cloudstack(gw, admin=False)
    lists = cs.listNetworkACLLists(listall="true").get("networkacllist", [])
    assert [x for x in lists if x["name"] == "ec2bridge-sg"] == []
    tier = [n for n in cs.listNetworks(listall="true").get("network", []) if n.get("cidr") == "10.62.1.0/24"][0]
    assert [x["name"] for x in lists if x["id"] == tier["aclid"]] == ["ec2bridge-default"]
    live = [i["InstanceId"] for r in c.describe_instances(Filters=[{"Name": "subnet-id", "Values": [sub]}])["Reservations"]
            for i in r["Instances"] if i["State"]["Name"] not in ("shutting-down", "terminated")]
    assert live == []
    # The group is unchanged and can still go.
    g = c.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]
    assert [(p["IpProtocol"], p["FromPort"]) for p in g["IpPermissions"]] == [("tcp", 22)]
    wait_for("the group free", lambda: _try(lambda: c.delete_security_group(GroupId=web)), timeout=30)


def _try(call):
    try:
        call()
        return True
    except ClientError:
        return False
