"""Drive the simulator with the independent `cs` client (cs 5.2.0), which signs with
signatureVersion=3 + expires and unwraps the single top-level key itself."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cs import CloudStack, CloudStackApiException

from sim_seed_ids import CENTOS_PW, DISK_CUSTOM, DISK_SMALL, M1_SMALL, T2_MICRO, UBUNTU, ZONE1, ZONE2


def client(sim, account, **kw):
    u = sim.users[account]
    # Jobs finish in milliseconds in --fast mode; poll often instead of cs's 2 s default.
    return CloudStack(endpoint=sim.endpoint, key=u["apikey"], secret=u["secretkey"], poll_interval=0.05, job_timeout=30, **kw)


def job(c, command, **params):
    """Start an async command and wait for its result with cs's own polling."""
    return getattr(c, command)(fetch_result=True, **params)


def test_catalogue(sim):
    c = client(sim, "alice")
    zones = c.listZones()
    assert zones["count"] == 3
    assert {z["name"] for z in zones["zone"]} == {"zone1", "zone2", "zone3"}
    offerings = c.listServiceOfferings(fetch_list=True)
    assert {"m1.small", "m1.medium", "m1.large", "t2.micro", "t2.small"} <= {o["name"] for o in offerings}
    disks = c.listDiskOfferings(fetch_list=True)
    assert any(d["iscustomized"] for d in disks)
    templates = c.listTemplates(templatefilter="featured", fetch_list=True)
    # One row per template per zone: the cross-zone Ubuntu template appears in all three.
    assert sum(1 for t in templates if t["id"] == UBUNTU) == 3
    assert c.listCapabilities()["capability"]["securitygroupsenabled"] is True
    assert c.listRegions()["region"][0]["name"] == "Local"
    assert c.listOsTypes(fetch_list=True)


def test_vm_lifecycle_and_jobs(sim):
    c = client(sim, "alice")
    vm = job(c, "deployVirtualMachine", zoneid=ZONE1, templateid=UBUNTU, serviceofferingid=T2_MICRO, name="cs-web1",
             userdata=base64.b64encode(b"#cloud-config\n").decode())["virtualmachine"]
    assert vm["state"] == "Running" and vm["name"] == "cs-web1"
    assert vm["nic"][0]["ipaddress"].startswith("10.1.")
    vms = c.listVirtualMachines(name="cs-web1", fetch_list=True)
    assert [v["id"] for v in vms] == [vm["id"]]
    assert job(c, "stopVirtualMachine", id=vm["id"])["virtualmachine"]["state"] == "Stopped"
    changed = c.changeServiceForVirtualMachine(id=vm["id"], serviceofferingid=M1_SMALL)
    assert changed["virtualmachine"]["serviceofferingname"] == "m1.small"
    assert job(c, "startVirtualMachine", id=vm["id"])["virtualmachine"]["state"] == "Running"
    assert job(c, "rebootVirtualMachine", id=vm["id"])["virtualmachine"]["state"] == "Running"
    jobs = c.listAsyncJobs(fetch_list=True)
    assert any(j["cmd"].endswith("DeployVMCmd") and j["jobstatus"] == 1 for j in jobs)
    assert job(c, "destroyVirtualMachine", id=vm["id"])["virtualmachine"]["state"] == "Destroyed"
    # A user never sees destroyed VMs.
    assert c.listVirtualMachines(id=vm["id"]) == {}


def test_post_requests(sim):
    c = client(sim, "bob", method="post")
    big = base64.b64encode(b"x" * 4000).decode()  # too big for GET (2 KB), fine by POST
    vm = job(c, "deployVirtualMachine", zoneid=ZONE2, templateid=UBUNTU, serviceofferingid=T2_MICRO, userdata=big)
    assert vm["virtualmachine"]["zoneid"] == ZONE2
    get = client(sim, "bob")
    with pytest.raises(CloudStackApiException) as e:
        get.deployVirtualMachine(zoneid=ZONE2, templateid=UBUNTU, serviceofferingid=T2_MICRO, userdata=big)
    assert e.value.error["errorcode"] == 431


def test_errors_are_cloudstack_errors(sim):
    c = client(sim, "alice")
    with pytest.raises(CloudStackApiException) as e:
        c.deployVirtualMachine(templateid=UBUNTU, serviceofferingid=T2_MICRO)
    assert e.value.error["errorcode"] == 431
    assert e.value.error["cserrorcode"] == 9999
    assert e.value.error["errortext"] == "Unable to execute API command deployvirtualmachine due to missing parameter zoneid"
    with pytest.raises(CloudStackApiException) as e:
        c.listVirtualMachines(id="00000000-0000-0000-0000-000000000001")
    assert e.value.error["errorcode"] == 431
    with pytest.raises(CloudStackApiException) as e:
        c.listTemplates()
    assert "missing parameter templatefilter" in e.value.error["errortext"]
    bad = CloudStack(endpoint=sim.endpoint, key=sim.users["alice"]["apikey"], secret="wrong")
    with pytest.raises(CloudStackApiException) as e:
        bad.listZones()
    assert e.value.error["errorcode"] == 401
    assert "cserrorcode" not in e.value.error


def test_isolation_and_admin_lookup(sim):
    alice, bob, admin = client(sim, "alice"), client(sim, "bob"), client(sim, "admin")
    vm = job(alice, "deployVirtualMachine", zoneid=ZONE1, templateid=UBUNTU, serviceofferingid=T2_MICRO)["virtualmachine"]
    assert bob.listVirtualMachines(id=vm["id"]) == {}
    with pytest.raises(CloudStackApiException) as e:
        bob.stopVirtualMachine(id=vm["id"])
    assert e.value.error["errorcode"] == 531
    everything = admin.listVirtualMachines(listall=True, fetch_list=True)
    assert vm["id"] in {v["id"] for v in everything}
    # How the gateway finds a user's secret as an administrator.
    user = admin.getUser(userapikey=sim.users["alice"]["apikey"])["user"]
    assert user["secretkey"] == sim.users["alice"]["secretkey"]
    assert user["account"] == "alice" and user["domain"] == "dev"


def test_keypairs_and_password(sim):
    c = client(sim, "alice")
    kp = c.createSSHKeyPair(name="cs-k1")["keypair"]
    assert kp["privatekey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    pub = serialization.load_pem_private_key(kp["privatekey"].encode(), password=None).public_key()
    line = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    # Same key registered under another name gets the same fingerprint (MD5 of the blob).
    with pytest.raises(CloudStackApiException):
        c.registerSSHKeyPair(name="cs-k1", publickey=line)
    listed = c.listSSHKeyPairs(name="cs-k1")["sshkeypair"][0]
    assert listed["fingerprint"] == kp["fingerprint"]
    assert "privatekey" not in listed
    # Password-enabled template + key pair: getVMPassword decrypts to the deploy password.
    vm = job(c, "deployVirtualMachine", zoneid=ZONE1, templateid=CENTOS_PW, serviceofferingid=T2_MICRO, keypair="cs-k1")["virtualmachine"]
    enc = c.getVMPassword(id=vm["id"])["password"]["encryptedpassword"]
    key = serialization.load_pem_private_key(kp["privatekey"].encode(), password=None)
    assert key.decrypt(base64.b64decode(enc), padding.PKCS1v15()).decode() == vm["password"]
    assert c.deleteSSHKeyPair(name="cs-k1")["success"] in (True, "true")
    assert c.listSSHKeyPairs(name="cs-k1") == {}


def test_volumes_snapshots_tags(sim):
    c = client(sim, "bob")
    vm = job(c, "deployVirtualMachine", zoneid=ZONE1, templateid=UBUNTU, serviceofferingid=T2_MICRO)["virtualmachine"]
    vol = job(c, "createVolume", name="cs-data", zoneid=ZONE1, diskofferingid=DISK_CUSTOM, size=7)["volume"]
    assert vol["state"] == "Allocated" and vol["size"] == 7 * 2**30
    att = job(c, "attachVolume", id=vol["id"], virtualmachineid=vm["id"])["volume"]
    assert att["virtualmachineid"] == vm["id"] and att["state"] == "Ready"
    snap = job(c, "createSnapshot", volumeid=vol["id"])["snapshot"]
    assert snap["state"] == "BackedUp"
    job(c, "createTags", resourceids=vol["id"], resourcetype="Volume", tags=[{"key": "Name", "value": "data"}])
    tagged = c.listVolumes(tags=[{"key": "Name", "value": "data"}], fetch_list=True)
    assert [v["id"] for v in tagged] == [vol["id"]]
    assert tagged[0]["tags"][0]["key"] == "Name"
    job(c, "detachVolume", id=vol["id"])
    assert c.deleteVolume(id=vol["id"])["success"] in (True, "true")
    job(c, "deleteSnapshot", id=snap["id"])
    small = job(c, "createVolume", name="cs-small", zoneid=ZONE1, diskofferingid=DISK_SMALL)["volume"]
    assert small["size"] == 5 * 2**30


def test_security_groups_and_ips(sim):
    c = client(sim, "bob")
    sg = c.createSecurityGroup(name="cs-web", description="web")["securitygroup"]
    res = job(c, "authorizeSecurityGroupIngress", securitygroupid=sg["id"], protocol="tcp", startport=80, endport=80,
              cidrlist="0.0.0.0/0")
    rule = res["securitygroup"]["ingressrule"][0]
    assert rule["startport"] == 80 and rule["cidr"] == "0.0.0.0/0"
    vm = job(c, "deployVirtualMachine", zoneid=ZONE1, templateid=UBUNTU, serviceofferingid=T2_MICRO,
             securitygroupids=sg["id"])["virtualmachine"]
    with pytest.raises(CloudStackApiException) as e:
        c.deleteSecurityGroup(id=sg["id"])
    assert e.value.error["errorcode"] == 536
    job(c, "revokeSecurityGroupIngress", id=rule["ruleid"])
    ip = job(c, "associateIpAddress", zoneid=ZONE1)["ipaddress"]
    assert ip["state"] == "Allocated"
    c.enableStaticNat(ipaddressid=ip["id"], virtualmachineid=vm["id"])
    listed = c.listVirtualMachines(id=vm["id"])["virtualmachine"][0]
    assert listed["publicip"] == ip["ipaddress"]
    job(c, "disableStaticNat", ipaddressid=ip["id"])
    job(c, "disassociateIpAddress", id=ip["id"])
    assert c.listPublicIpAddresses(id=ip["id"]) == {}
