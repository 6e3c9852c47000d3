//! Volumes, snapshots, templates, key pairs, security groups, public IPs and tags over HTTP.

mod sim_support;

use serde_json::json;
use sim_support::*;

fn s(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

#[tokio::test]
async fn volumes_attach_detach_delete_and_snapshots() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vm = deploy(&cs, &[]).await;
    let vm_id = s(&vm["id"]);

    // Customized offering needs a size.
    let e = cs.err("createVolume", &[("name", "d1"), ("zoneid", ZONE1), ("diskofferingid", DISK_CUSTOM)], 431).await;
    assert_eq!(e["cserrorcode"], 4350);
    let r = cs
        .ok("createVolume", &[("name", "d1"), ("zoneid", ZONE1), ("diskofferingid", DISK_CUSTOM), ("size", "3")])
        .await;
    let vol_id = s(&r["id"]);
    let j = cs.wait(&s(&r["jobid"])).await;
    assert_eq!(j["jobresult"]["volume"]["state"], "Allocated");
    assert_eq!(j["jobresult"]["volume"]["type"], "DATADISK");
    assert_eq!(j["jobresult"]["volume"]["size"], 3i64 << 30);

    // Snapshot of an Allocated volume is refused with CloudStack's text.
    let e = cs.err("createSnapshot", &[("volumeid", &vol_id)], 431).await;
    assert_eq!(
        e["errortext"],
        format!("VolumeId: {vol_id} is not in Ready state but Allocated. Cannot take snapshot.")
    );

    let r = cs.run("attachVolume", &[("id", &vol_id), ("virtualmachineid", &vm_id), ("deviceid", "3")]).await;
    assert_eq!(r["volume"]["state"], "Ready");
    assert_eq!(r["volume"]["virtualmachineid"], vm_id.as_str());
    assert_eq!(r["volume"]["deviceid"], 3);
    assert!(r["volume"]["attached"].is_string());

    let e = cs.err("deleteVolume", &[("id", &vol_id)], 431).await;
    assert_eq!(e["errortext"], "Please specify a volume that is not attached to any VM.");

    let snap = cs.run("createSnapshot", &[("volumeid", &vol_id)]).await;
    assert_eq!(snap["snapshot"]["state"], "BackedUp");
    let snap_id = s(&snap["snapshot"]["id"]);
    let l = cs.ok("listSnapshots", &[("volumeid", &vol_id)]).await;
    assert_eq!(l["count"], 1);

    let r = cs.run("detachVolume", &[("id", &vol_id)]).await;
    assert!(r["volume"].get("virtualmachineid").is_none());
    assert_eq!(cs.ok("deleteVolume", &[("id", &vol_id)]).await, json!({"success": true}));
    // Deleted: an empty list for its id, and actions say it is gone.
    assert_eq!(cs.ok("listVolumes", &[("id", &vol_id)]).await, json!({}));
    cs.err("attachVolume", &[("id", &vol_id), ("virtualmachineid", &vm_id)], 431).await;

    // A volume from the snapshot is Ready at once.
    let r = cs.run("createVolume", &[("name", "fromsnap"), ("snapshotid", &snap_id)]).await;
    assert_eq!(r["volume"]["state"], "Ready");
    assert_eq!(r["volume"]["snapshotid"], snap_id.as_str());
    cs.run("deleteSnapshot", &[("id", &snap_id)]).await;
    assert_eq!(cs.ok("listSnapshots", &[("id", &snap_id)]).await, json!({}));

    // ROOT volume of the VM is listed with type ROOT and deviceid 0.
    let roots = cs.items("listVolumes", &[("virtualmachineid", &vm_id), ("type", "ROOT")], "volume").await;
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0]["deviceid"], 0);
    assert_eq!(roots[0]["vmstate"], "Running");
}

#[tokio::test]
async fn templates_create_register_permissions() {
    let h = start_fast().await;
    let alice = Cs::of(&h, "alice");
    let vm = deploy(&alice, &[]).await;
    let vm_id = s(&vm["id"]);
    let root = alice.items("listVolumes", &[("virtualmachineid", &vm_id), ("type", "ROOT")], "volume").await;
    let root_id = s(&root[0]["id"]);
    let base = [("name", "img1"), ("displaytext", "img1"), ("ostypeid", UBUNTU_OSTYPE)];
    let mut p = base.to_vec();
    p.push(("volumeid", root_id.as_str()));
    // Running VM: refused.
    alice.err("createTemplate", &p, 431).await;
    alice.run("stopVirtualMachine", &[("id", &vm_id)]).await;
    let r = alice.ok("createTemplate", &p).await;
    let tid = s(&r["id"]);
    // While the job runs the template is listed with isready=false.
    let mine = alice.items("listTemplates", &[("templatefilter", "self"), ("id", &tid)], "template").await;
    assert_eq!(mine.len(), 1);
    let j = alice.wait(&s(&r["jobid"])).await;
    assert_eq!(j["jobresult"]["template"]["isready"], true);
    assert_eq!(j["jobresult"]["template"]["ispublic"], false);

    // Private: bob's executable list does not show it; featured shows the public ones only.
    let bob = Cs::of(&h, "bob");
    let ex = bob.items("listTemplates", &[("templatefilter", "executable")], "template").await;
    assert!(ex.iter().all(|t| t["id"] != tid.as_str()));
    // Each template appears once per zone: Ubuntu is cross-zone (3 rows), Windows zone1 only.
    let feat = bob.items("listTemplates", &[("templatefilter", "featured")], "template").await;
    assert_eq!(feat.iter().filter(|t| t["id"] == UBUNTU).count(), 3);
    assert_eq!(feat.iter().filter(|t| t["id"] == WINDOWS).count(), 1);
    assert!(feat.iter().all(|t| t.get("status").is_none()), "status hidden from non-owners");
    // templatefilter is required; all is for admins.
    bob.err("listTemplates", &[], 431).await;
    bob.err("listTemplates", &[("templatefilter", "all")], 431).await;

    // Permissions: sharing with an account of another domain fails, listing shows none.
    bob.err("listTemplatePermissions", &[("id", &tid)], 531).await;
    let perm = alice.ok("listTemplatePermissions", &[("id", &tid)]).await;
    assert_eq!(perm["templatepermission"]["account"], json!([]));
    alice.err("updateTemplatePermissions", &[("id", &tid), ("accounts", "bob"), ("op", "add")], 431).await;
    alice.ok("updateTemplatePermissions", &[("id", &tid), ("ispublic", "true")]).await;
    let comm = bob.items("listTemplates", &[("templatefilter", "community")], "template").await;
    assert!(comm.iter().any(|t| t["id"] == tid.as_str()));

    // registerTemplate answers a list, one row per zone, not ready yet.
    let reg = alice
        .ok(
            "registerTemplate",
            &[
                ("name", "r1"),
                ("displaytext", "r1"),
                ("format", "QCOW2"),
                ("hypervisor", "KVM"),
                ("ostypeid", UBUNTU_OSTYPE),
                ("url", "http://example.com/r1.qcow2"),
                ("zoneid", "-1"),
            ],
        )
        .await;
    assert_eq!(reg["count"], 3, "one row per zone");
    assert_eq!(reg["template"][0]["isready"], false);
    let rid = s(&reg["template"][0]["id"]);
    alice
        .err(
            "registerTemplate",
            &[
                ("name", "r2"),
                ("displaytext", "r2"),
                ("format", "QCOW2"),
                ("hypervisor", "KVM"),
                ("ostypeid", UBUNTU_OSTYPE),
                ("url", "ftp://x/y"),
                ("zoneid", ZONE1),
            ],
            431,
        )
        .await;
    alice.err("registerTemplate", &[("name", "r2")], 431).await;

    // Deleting someone else's template is a permission error; own works.
    bob.err("deleteTemplate", &[("id", &rid)], 531).await;
    alice.run("deleteTemplate", &[("id", &rid)]).await;
    assert_eq!(alice.ok("listTemplates", &[("templatefilter", "self"), ("id", &rid)]).await, json!({}));
}

#[tokio::test]
async fn keypairs_and_vm_password() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let k = cs.ok("createSSHKeyPair", &[("name", "k1")]).await;
    let pem = s(&k["keypair"]["privatekey"]);
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let fp = s(&k["keypair"]["fingerprint"]);
    assert_eq!(fp.len(), 47);
    let e = cs.err("createSSHKeyPair", &[("name", "k1")], 431).await;
    assert_eq!(e["errortext"], "A key pair with name 'k1' already exists.");
    // Listed without the private key.
    let l = cs.items("listSSHKeyPairs", &[("name", "k1")], "sshkeypair").await;
    assert_eq!(l[0]["fingerprint"], fp.as_str());
    assert!(l[0].get("privatekey").is_none());
    assert_eq!(cs.ok("listSSHKeyPairs", &[("name", "nope")]).await, json!({}));
    let e = cs.err("registerSSHKeyPair", &[("name", "bad"), ("publickey", "ssh-rsa !!!")], 431).await;
    assert_eq!(e["errortext"], "Public key is invalid");

    // Password-enabled template + keypair: the deploy result has a password, getVMPassword
    // returns it encrypted.
    let vm = deploy(&cs, &[("templateid", CENTOS_PW), ("keypair", "k1")]).await;
    assert_eq!(vm["passwordenabled"], true);
    assert_eq!(vm["keypair"], "k1");
    assert!(vm["password"].as_str().is_some_and(|p| p.len() >= 6));
    let enc = cs.ok("getVMPassword", &[("id", vm["id"].as_str().unwrap())]).await;
    assert!(enc["password"]["encryptedpassword"].as_str().is_some_and(|p| p.len() > 100));
    // A listed VM never shows the clear password.
    let listed = cs.items("listVirtualMachines", &[("id", vm["id"].as_str().unwrap())], "virtualmachine").await;
    assert!(listed[0].get("password").is_none());
    // Without a password: 431 with CloudStack's text.
    let vm2 = deploy(&cs, &[]).await;
    let e = cs.err("getVMPassword", &[("id", vm2["id"].as_str().unwrap())], 431).await;
    assert_eq!(e["errortext"], format!("No password for Instance with ID '{}' found.", s(&vm2["id"])));

    cs.ok("deleteSSHKeyPair", &[("name", "k1")]).await;
    let e = cs.err("deleteSSHKeyPair", &[("name", "k1")], 431).await;
    assert_eq!(e["errortext"], "A key pair with name 'k1' does not exist for account alice in specified domain id");
}

#[tokio::test]
async fn security_groups_and_rules() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let l = cs.items("listSecurityGroups", &[], "securitygroup").await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["name"], "default");
    cs.err("createSecurityGroup", &[("name", "default")], 431).await;
    let g = cs.ok("createSecurityGroup", &[("name", "web"), ("description", "web tier")]).await;
    assert_eq!(g["securitygroup"]["ingressrule"], json!([]));
    let gid = s(&g["securitygroup"]["id"]);
    let e = cs.err("createSecurityGroup", &[("name", "web")], 431).await;
    assert_eq!(e["errortext"], "Unable to create security group, a group with name web already exists.");

    let r = cs.run("authorizeSecurityGroupIngress", &tcp_ingress(&gid, "22", "0.0.0.0/0,10.0.0.0/8")).await;
    let rules = r["securitygroup"]["ingressrule"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["startport"], 22);
    // Same rule again: the job fails (nothing new).
    let again = cs.ok("authorizeSecurityGroupIngress", &tcp_ingress(&gid, "22", "0.0.0.0/0")).await;
    let j = cs.wait(&s(&again["jobid"])).await;
    assert_eq!(j["jobstatus"], 2);
    assert_eq!(j["jobresult"]["errorcode"], 530);
    // Egress by name, and a bad port range.
    cs.run(
        "authorizeSecurityGroupEgress",
        &[("securitygroupname", "web"), ("protocol", "icmp"), ("cidrlist", "0.0.0.0/0")],
    )
    .await;
    cs.err(
        "authorizeSecurityGroupIngress",
        &[
            ("securitygroupid", &gid),
            ("protocol", "tcp"),
            ("startport", "80"),
            ("endport", "70"),
            ("cidrlist", "0.0.0.0/0"),
        ],
        431,
    )
    .await;

    // Group in use by a VM cannot be deleted.
    let vm = deploy(&cs, &[("securitygroupnames", "web")]).await;
    assert_eq!(vm["securitygroup"][0]["name"], "web");
    let e = cs.err("deleteSecurityGroup", &[("id", &gid)], 536).await;
    assert_eq!(e["cserrorcode"], 4375);
    assert_eq!(e["errortext"], "Cannot delete group when it's in use by virtual machines");
    let byvm =
        cs.items("listSecurityGroups", &[("virtualmachineid", vm["id"].as_str().unwrap())], "securitygroup").await;
    assert_eq!(byvm.len(), 1);

    cs.run("revokeSecurityGroupIngress", &[("id", &s(&rules[0]["ruleid"]))]).await;
    let g = cs.items("listSecurityGroups", &[("id", &gid)], "securitygroup").await;
    assert_eq!(g[0]["ingressrule"].as_array().unwrap().len(), 1);
    assert_eq!(g[0]["egressrule"].as_array().unwrap().len(), 1);
    cs.err("revokeSecurityGroupIngress", &[("id", "00000000-0000-0000-0000-000000000000")], 431).await;

    // Bob cannot touch alice's group.
    let bob = Cs::of(&h, "bob");
    bob.err("deleteSecurityGroup", &[("id", &gid)], 531).await;
    bob.err("deleteSecurityGroup", &[("name", "web")], 431).await;
}

#[tokio::test]
async fn public_ips_and_static_nat() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vm = deploy(&cs, &[]).await;
    let vm_id = s(&vm["id"]);
    cs.err("associateIpAddress", &[], 431).await;
    let r = cs.ok("associateIpAddress", &[("zoneid", ZONE1)]).await;
    let ip_id = s(&r["id"]);
    let pending = cs.items("listPublicIpAddresses", &[("id", &ip_id)], "publicipaddress").await;
    assert!(pending[0]["state"] == "Allocating" || pending[0]["state"] == "Allocated");
    let j = cs.wait(&s(&r["jobid"])).await;
    assert_eq!(j["jobresult"]["ipaddress"]["state"], "Allocated");
    let addr = s(&j["jobresult"]["ipaddress"]["ipaddress"]);

    assert_eq!(
        cs.ok("enableStaticNat", &[("ipaddressid", &ip_id), ("virtualmachineid", &vm_id)]).await,
        json!({"success": true})
    );
    let v = cs.items("listVirtualMachines", &[("id", &vm_id)], "virtualmachine").await;
    assert_eq!(v[0]["publicip"], addr.as_str());
    assert_eq!(v[0]["publicipid"], ip_id.as_str());
    let ip = cs.items("listPublicIpAddresses", &[("isstaticnat", "true")], "publicipaddress").await;
    assert_eq!(ip[0]["virtualmachineid"], vm_id.as_str());
    assert_eq!(ip[0]["vmipaddress"], v[0]["nic"][0]["ipaddress"]);

    // A second IP for the same guest address of the VM is refused (CloudStack checks VM and
    // guest address: InvalidParameterValueException, 431).
    let r2 = cs.run("associateIpAddress", &[("zoneid", ZONE1)]).await;
    let ip2 = s(&r2["ipaddress"]["id"]);
    let e = cs.err("enableStaticNat", &[("ipaddressid", &ip2), ("virtualmachineid", &vm_id)], 431).await;
    assert_eq!(e["cserrorcode"], 4350);
    assert!(s(&e["errortext"]).contains("as it's already assigned to ip"), "{e}");

    cs.run("disableStaticNat", &[("ipaddressid", &ip_id)]).await;
    let v = cs.items("listVirtualMachines", &[("id", &vm_id)], "virtualmachine").await;
    assert!(v[0].get("publicip").is_none());
    cs.err("disableStaticNat", &[("ipaddressid", &ip_id)], 431).await;
    cs.run("disassociateIpAddress", &[("id", &ip_id)]).await;
    assert_eq!(cs.ok("listPublicIpAddresses", &[("id", &ip_id)]).await, json!({}));
    // Bob cannot release alice's address.
    Cs::of(&h, "bob").err("disassociateIpAddress", &[("id", &ip2)], 531).await;
}

#[tokio::test]
async fn tags_on_every_type() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vm = deploy(&cs, &[]).await;
    let vm_id = s(&vm["id"]);
    let g = cs.ok("createSecurityGroup", &[("name", "tagged")]).await;
    let gid = s(&g["securitygroup"]["id"]);
    let vol = cs.run("createVolume", &[("name", "tv"), ("zoneid", ZONE1), ("diskofferingid", DISK_SMALL)]).await;
    let vol_id = s(&vol["volume"]["id"]);
    let ip = cs.run("associateIpAddress", &[("zoneid", ZONE1)]).await;
    let ip_id = s(&ip["ipaddress"]["id"]);
    for (rtype, id) in [("uservm", &vm_id), ("SecurityGroup", &gid), ("VOLUME", &vol_id), ("PublicIpAddress", &ip_id)] {
        cs.run(
            "createTags",
            &[
                ("resourceids", id),
                ("resourcetype", rtype),
                ("tags[0].key", "Name"),
                ("tags[0].value", "x1"),
                ("tags[1].key", "env"),
                ("tags[1].value", "dev"),
            ],
        )
        .await;
    }
    let tags = cs.items("listTags", &[("key", "Name")], "tag").await;
    assert_eq!(tags.len(), 4);
    let types: Vec<&str> = tags.iter().map(|t| t["resourcetype"].as_str().unwrap()).collect();
    for t in ["UserVm", "SecurityGroup", "Volume", "PublicIpAddress"] {
        assert!(types.contains(&t), "{types:?}");
    }
    // Embedded in objects, and usable as filters.
    let v =
        cs.items("listVirtualMachines", &[("tags[0].key", "env"), ("tags[0].value", "dev")], "virtualmachine").await;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["tags"].as_array().unwrap().len(), 2);
    assert_eq!(cs.ok("listVirtualMachines", &[("tags[0].key", "env"), ("tags[0].value", "prod")]).await, json!({}));
    let vols = cs.items("listVolumes", &[("tags[0].key", "Name")], "volume").await;
    assert_eq!(vols.len(), 1);
    // Duplicate key: the job fails.
    let r = cs
        .ok(
            "createTags",
            &[("resourceids", &vm_id), ("resourcetype", "UserVm"), ("tags[0].key", "Name"), ("tags[0].value", "y")],
        )
        .await;
    assert_eq!(cs.wait(&s(&r["jobid"])).await["jobstatus"], 2);
    // Bad type, unknown id.
    let e = cs
        .err(
            "createTags",
            &[("resourceids", &vm_id), ("resourcetype", "Bogus"), ("tags[0].key", "a"), ("tags[0].value", "b")],
            431,
        )
        .await;
    assert_eq!(e["errortext"], "Invalid resource type Bogus");
    cs.err(
        "createTags",
        &[("resourceids", "nope"), ("resourcetype", "UserVm"), ("tags[0].key", "a"), ("tags[0].value", "b")],
        431,
    )
    .await;
    // Another account cannot tag alice's VM.
    Cs::of(&h, "bob")
        .err(
            "createTags",
            &[("resourceids", &vm_id), ("resourcetype", "UserVm"), ("tags[0].key", "a"), ("tags[0].value", "b")],
            531,
        )
        .await;
    // deleteTags with a key only removes that key everywhere asked.
    cs.run("deleteTags", &[("resourceids", &vm_id), ("resourcetype", "UserVm"), ("tags[0].key", "env")]).await;
    let v = cs.items("listVirtualMachines", &[("id", &vm_id)], "virtualmachine").await;
    assert_eq!(v[0]["tags"].as_array().unwrap().len(), 1);
    cs.run("deleteTags", &[("resourceids", &vm_id), ("resourcetype", "UserVm")]).await;
    assert_eq!(cs.ok("listTags", &[("resourceid", &vm_id)]).await, json!({}));
}
