//! Catalogue, paging, parameter errors, isolation between accounts, jobs and VM states.

mod sim_support;

use std::time::Duration;

use serde_json::json;
use sim_support::*;

fn s(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

#[tokio::test]
async fn catalogue() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "bob");
    let so = cs.items("listServiceOfferings", &[], "serviceoffering").await;
    let names: Vec<&str> = so.iter().map(|o| o["name"].as_str().unwrap()).collect();
    for n in ["m1.small", "m1.medium", "m1.large", "t2.micro", "t2.small"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let small = so.iter().find(|o| o["name"] == "m1.small").unwrap();
    assert_eq!((small["cpunumber"].clone(), small["memory"].clone()), (json!(1), json!(1740)));
    let d = cs.items("listDiskOfferings", &[], "diskoffering").await;
    assert!(d.iter().any(|o| o["iscustomized"] == true && o["disksize"] == 0));
    assert!(d.iter().any(|o| o["name"] == "Small" && o["disksize"] == 5));
    let os = cs.items("listOsTypes", &[], "ostype").await;
    assert!(os.iter().any(|o| o["description"] == "Windows Server 2019 (64-bit)"));
    let caps = cs.ok("listCapabilities", &[]).await;
    assert_eq!(caps["capability"]["securitygroupsenabled"], true);
    assert!(caps["capability"]["cloudstackversion"].is_string());
    let regions = cs.items("listRegions", &[], "region").await;
    assert_eq!(regions[0]["id"], 1);
    assert_eq!(regions[0]["endpoint"], format!("http://{}/client/", h.addr));
    // Templates: Linux and Windows, password-enabled or not, all ready.
    let t = cs.items("listTemplates", &[("templatefilter", "executable"), ("zoneid", ZONE1)], "template").await;
    assert_eq!(t.len(), 3);
    assert!(t.iter().all(|x| x["isready"] == true && x["zoneid"] == ZONE1));
    assert!(t.iter().any(|x| x["passwordenabled"] == true && x["ostypename"].as_str().unwrap().contains("Windows")));
    assert!(t.iter().any(|x| x["passwordenabled"] == false));
    // Unknown id in a catalogue list: 431; page past the end: count only.
    let e = cs.err("listZones", &[("id", "3e1f0000-0000-0000-0000-000000000000")], 431).await;
    assert_eq!(
        e["errortext"],
        "Unable to execute API command listzones due to invalid value. Invalid parameter id value=3e1f0000-0000-0000-0000-000000000000 due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."
    );
    assert_eq!(cs.ok("listServiceOfferings", &[("page", "9"), ("pagesize", "5")]).await, json!({"count": 7}));
}

#[tokio::test]
async fn paging_over_http() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    for i in 0..7 {
        cs.ok("createSecurityGroup", &[("name", &format!("g{i}"))]).await;
    }
    // 8 groups with default; pages of 3.
    let p1 = cs.ok("listSecurityGroups", &[("page", "1"), ("pagesize", "3")]).await;
    assert_eq!(p1["count"], 8);
    assert_eq!(p1["securitygroup"].as_array().unwrap().len(), 3);
    let p3 = cs.ok("listSecurityGroups", &[("page", "3"), ("pagesize", "3")]).await;
    assert_eq!(p3["securitygroup"].as_array().unwrap().len(), 2);
    assert_eq!(cs.ok("listSecurityGroups", &[("page", "4"), ("pagesize", "3")]).await, json!({"count": 8}));
    assert_eq!(cs.ok("listSecurityGroups", &[("pagesize", "-1")]).await["count"], 8);
    let e = cs.err("listSecurityGroups", &[("pagesize", "3")], 431).await;
    assert_eq!(e["errortext"], "\"page\" parameter is required when \"pagesize\" is specified");
    let e = cs.err("listSecurityGroups", &[("page", "1"), ("pagesize", "501")], 431).await;
    assert_eq!(
        (e["cserrorcode"].clone(), e["errortext"].clone()),
        (json!(4350), json!("Page size can't exceed max allowed page size value: 500"))
    );
    cs.err("listSecurityGroups", &[("page", "one"), ("pagesize", "3")], 431).await;
}

#[tokio::test]
async fn parameter_errors_come_before_any_job_and_change_nothing() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let e = cs.err("deployVirtualMachine", &[("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)], 431).await;
    assert_eq!(
        e,
        json!({"uuidList": [], "errorcode": 431, "cserrorcode": 9999, "errortext": "Unable to execute API command deployvirtualmachine due to missing parameter zoneid"})
    );
    let e = cs
        .err("deployVirtualMachine", &[("zoneid", ZONE1), ("templateid", "nope"), ("serviceofferingid", T2_MICRO)], 431)
        .await;
    assert!(s(&e["errortext"]).starts_with("Unable to execute API command deployvirtualmachine due to invalid value. Invalid parameter templateid value=nope"));
    let e = cs.err("stopVirtualMachine", &[], 431).await;
    assert_eq!(e["errortext"], "Unable to execute API command stopvirtualmachine due to missing parameter id");
    // Bad values of other kinds.
    cs.err(
        "deployVirtualMachine",
        &[("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO), ("userdata", "***")],
        431,
    )
    .await;
    cs.err(
        "deployVirtualMachine",
        &[("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO), ("name", "1bad")],
        431,
    )
    .await;
    cs.err(
        "deployVirtualMachine",
        &[("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO), ("keypair", "nokey")],
        431,
    )
    .await;
    cs.err(
        "deployVirtualMachine",
        &[
            ("zoneid", ZONE1),
            ("templateid", UBUNTU),
            ("serviceofferingid", T2_MICRO),
            ("securitygroupids", "x"),
            ("securitygroupnames", "default"),
        ],
        431,
    )
    .await;
    // Windows is only in zone1.
    let e = cs
        .err(
            "deployVirtualMachine",
            &[("zoneid", ZONE2), ("templateid", WINDOWS), ("serviceofferingid", T2_MICRO)],
            431,
        )
        .await;
    assert_eq!(e["cserrorcode"], 4350);
    // Nothing was created and no job queued.
    assert_eq!(cs.ok("listVirtualMachines", &[]).await, json!({}));
    assert_eq!(cs.ok("listVolumes", &[]).await, json!({}));
    assert_eq!(cs.ok("listAsyncJobs", &[]).await, json!({}));
    let e = cs.err("queryAsyncJobResult", &[("jobid", "nope")], 431).await;
    assert_eq!(e["cserrorcode"], 9999);
}

#[tokio::test]
async fn accounts_are_isolated() {
    let h = start_fast().await;
    let alice = Cs::of(&h, "alice");
    let bob = Cs::of(&h, "bob");
    let admin = Cs::new(&h, h.admin().unwrap());
    let a_vm = deploy(&alice, &[("name", "a1")]).await;
    let b_vm = deploy(&bob, &[("name", "b1")]).await;
    let a_id = s(&a_vm["id"]);
    assert_eq!(a_vm["account"], "alice");
    assert_eq!(a_vm["domain"], "dev");

    // Each sees its own only, even with listall=true; another's id gives an empty list.
    let l = alice.items("listVirtualMachines", &[("listall", "true")], "virtualmachine").await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["id"], a_id.as_str());
    assert_eq!(bob.ok("listVirtualMachines", &[("id", &a_id)]).await, json!({}));
    // Acting on another account's VM: CloudStack's permission error.
    let e = bob.err("stopVirtualMachine", &[("id", &a_id)], 531).await;
    assert_eq!(e["cserrorcode"], 4365);
    assert!(s(&e["errortext"]).contains("does not have permission to operate with resource"));
    bob.err("getVMPassword", &[("id", &a_id)], 531).await;
    let j = alice.run("stopVirtualMachine", &[("id", &a_id)]).await;
    assert_eq!(j["virtualmachine"]["state"], "Stopped");
    // A job belongs to its account.
    let r = alice.ok("startVirtualMachine", &[("id", &a_id)]).await;
    bob.err("queryAsyncJobResult", &[("jobid", &s(&r["jobid"]))], 531).await;

    // Admin: own account without listall, everything with it, one account by name+domain.
    assert_eq!(admin.ok("listVirtualMachines", &[]).await, json!({}));
    let all = admin.items("listVirtualMachines", &[("listall", "true")], "virtualmachine").await;
    assert_eq!(all.len(), 2);
    let devs = admin.ok("listDomains", &[("listall", "true"), ("name", "dev")]).await;
    let dev_id = s(&devs["domain"][0]["id"]);
    let only =
        admin.items("listVirtualMachines", &[("account", "alice"), ("domainid", &dev_id)], "virtualmachine").await;
    assert_eq!(only.len(), 1);
    // Admins may act on anyone's resources.
    admin.run("rebootVirtualMachine", &[("id", &s(&b_vm["id"]))]).await;
    // A user naming another domain is refused.
    bob.err("listVirtualMachines", &[("account", "alice"), ("domainid", &dev_id)], 531).await;
}

#[tokio::test]
async fn jobs_show_transitional_states() {
    let seed = include_str!("../seeds/default.toml").replace("fast_job_delay_ms = 5", "fast_job_delay_ms = 400");
    let h = start_seed(Some(&seed)).await;
    let cs = Cs::of(&h, "alice");
    let r = cs
        .ok("deployVirtualMachine", &[("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)])
        .await;
    let (id, jobid) = (s(&r["id"]), s(&r["jobid"]));
    let pending = cs.ok("queryAsyncJobResult", &[("jobid", &jobid)]).await;
    assert_eq!(pending["jobstatus"], 0);
    assert!(pending.get("jobresult").is_none() && pending.get("jobresulttype").is_none());
    assert_eq!(pending["jobinstancetype"], "VirtualMachine");
    let l = cs.items("listVirtualMachines", &[("id", &id)], "virtualmachine").await;
    assert_eq!(l[0]["state"], "Starting");
    assert_eq!(l[0]["jobid"], jobid.as_str());
    assert_eq!(l[0]["jobstatus"], 0);
    // The ROOT volume exists at once.
    assert_eq!(cs.items("listVolumes", &[("virtualmachineid", &id)], "volume").await.len(), 1);
    // A stop sent while it is still starting queues behind the deploy.
    let stop = cs.ok("stopVirtualMachine", &[("id", &id)]).await;
    let done = cs.wait(&jobid).await;
    assert_eq!(done["jobstatus"], 1);
    assert_eq!(done["jobresulttype"], "object");
    assert_eq!(done["jobresult"]["virtualmachine"]["state"], "Running");
    assert!(done["completed"].is_string());
    let stopped = cs.wait(&s(&stop["jobid"])).await;
    assert_eq!(stopped["jobresult"]["virtualmachine"]["state"], "Stopped");
    let l = cs.items("listVirtualMachines", &[("id", &id)], "virtualmachine").await;
    assert!(l[0].get("jobid").is_none());
    // listAsyncJobs shows both.
    let jobs = cs.items("listAsyncJobs", &[], "asyncjobs").await;
    assert_eq!(jobs.len(), 2);
    // Stopping a stopped VM is a no-op success; IP allocation shows Allocating.
    cs.run("stopVirtualMachine", &[("id", &id)]).await;
    let ip = cs.ok("associateIpAddress", &[("zoneid", ZONE1)]).await;
    let l = cs.items("listPublicIpAddresses", &[("id", &s(&ip["id"]))], "publicipaddress").await;
    assert_eq!(l[0]["state"], "Allocating");
}

#[tokio::test]
async fn destroy_expunge_and_recover() {
    let seed =
        include_str!("../seeds/default.toml").replace("fast_expunge_delay_ms = 1000", "fast_expunge_delay_ms = 300");
    let h = start_seed(Some(&seed)).await;
    let cs = Cs::of(&h, "alice");
    let admin = Cs::new(&h, h.admin().unwrap());
    let vm = deploy(&cs, &[]).await;
    let id = s(&vm["id"]);
    // Users may not expunge by default.
    let e = cs.err("destroyVirtualMachine", &[("id", &id), ("expunge", "true")], 531).await;
    assert_eq!(e["cserrorcode"], 4365);
    cs.err("expungeVirtualMachine", &[("id", &id)], 401).await;
    let r = cs.run("destroyVirtualMachine", &[("id", &id)]).await;
    assert_eq!(r["virtualmachine"]["state"], "Destroyed");
    // Hidden from the user, visible to the admin (state=present hides it too).
    assert_eq!(cs.ok("listVirtualMachines", &[]).await, json!({}));
    let l = admin.items("listVirtualMachines", &[("id", &id)], "virtualmachine").await;
    assert_eq!(l[0]["state"], "Destroyed");
    assert_eq!(admin.ok("listVirtualMachines", &[("listall", "true"), ("state", "present")]).await, json!({}));
    // The admin recovers it, then destroys again and waits for the expunger.
    let r = admin.ok("recoverVirtualMachine", &[("id", &id)]).await;
    assert_eq!(r["virtualmachine"]["state"], "Stopped");
    cs.run("destroyVirtualMachine", &[("id", &id)]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Expunged: its id now lists empty (not 431), and actions say it is gone.
    assert_eq!(admin.ok("listVirtualMachines", &[("id", &id)]).await, json!({}));
    cs.err("startVirtualMachine", &[("id", &id)], 431).await;
    // Its ROOT volume went with it.
    assert_eq!(cs.ok("listVolumes", &[]).await, json!({}));
    // Admin destroy with expunge=true: Expunging, then gone.
    let vm2 = deploy(&cs, &[]).await;
    let r = admin.run("destroyVirtualMachine", &[("id", &s(&vm2["id"])), ("expunge", "true")]).await;
    assert_eq!(r["virtualmachine"]["state"], "Expunging");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(admin.ok("listVirtualMachines", &[("id", &s(&vm2["id"]))]).await, json!({}));
}

#[tokio::test]
async fn vm_updates_offering_change_and_userdata() {
    let h = start_fast().await;
    let mut cs = Cs::of(&h, "alice");
    cs.post = true;
    let vm = deploy(&cs, &[("userdata", "I2Nsb3VkLWNvbmZpZwo="), ("displayname", "first")]).await;
    let id = s(&vm["id"]);
    let ud = cs.ok("getVirtualMachineUserData", &[("virtualmachineid", &id)]).await;
    assert_eq!(ud["virtualmachineuserdata"]["userdata"], "I2Nsb3VkLWNvbmZpZwo=");
    let r = cs.ok("updateVirtualMachine", &[("id", &id), ("displayname", "second"), ("userdata", "aGVsbG8=")]).await;
    assert_eq!(r["virtualmachine"]["displayname"], "second");
    let ud = cs.ok("getVirtualMachineUserData", &[("virtualmachineid", &id)]).await;
    assert_eq!(ud["virtualmachineuserdata"]["userdata"], "aGVsbG8=");
    // Offering changes need a stopped VM.
    let e = cs.err("changeServiceForVirtualMachine", &[("id", &id), ("serviceofferingid", M1_SMALL)], 431).await;
    assert_eq!(e["cserrorcode"], 4350);
    cs.run("stopVirtualMachine", &[("id", &id), ("forced", "true")]).await;
    let r = cs.ok("changeServiceForVirtualMachine", &[("id", &id), ("serviceofferingid", M1_SMALL)]).await;
    assert_eq!(r["virtualmachine"]["serviceofferingname"], "m1.small");
    assert_eq!(r["virtualmachine"]["memory"], 1740);
    // Big user data by POST is fine, by GET not (2 KB limit).
    let big = "QUFB".repeat(1000); // 3000 bytes decoded
    cs.ok("updateVirtualMachine", &[("id", &id), ("userdata", &big)]).await;
    cs.post = false;
    cs.err("updateVirtualMachine", &[("id", &id), ("userdata", &big)], 431).await;
    // Filters: name, state, keyword, templateid, zoneid.
    let l = cs
        .items(
            "listVirtualMachines",
            &[("state", "Stopped"), ("zoneid", ZONE1), ("templateid", UBUNTU), ("keyword", "SECO")],
            "virtualmachine",
        )
        .await;
    assert_eq!(l.len(), 1);
    assert_eq!(cs.ok("listVirtualMachines", &[("state", "Running")]).await, json!({}));
    let l = cs.items("listVirtualMachines", &[("ids", &id)], "virtualmachine").await;
    assert_eq!(l.len(), 1);
}

#[tokio::test]
async fn limits_and_capacity() {
    let seed = default_seed_plus(
        r#"
[[accounts]]
name = "tiny"
domain = "dev"
vm_limit = 1
ip_limit = 1
[[accounts.users]]
username = "tiny"
"#,
    )
    .replace(
        "public_ips = \"203.0.113.10-203.0.113.250\"",
        "public_ips = \"203.0.113.10-203.0.113.10\"\ncapacity_vms = 0",
    );
    let h = start_seed(Some(&seed)).await;
    let tiny = Cs::of(&h, "tiny");
    deploy(&tiny, &[]).await;
    let e = tiny
        .err("deployVirtualMachine", &[("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)], 535)
        .await;
    assert_eq!(e["cserrorcode"], 4370);
    assert!(
        s(&e["errortext"])
            .starts_with("Maximum number of resources of type 'user_vm' for account name=tiny in domain id=")
    );
    tiny.run("associateIpAddress", &[("zoneid", ZONE2)]).await;
    tiny.err("associateIpAddress", &[("zoneid", ZONE1)], 535).await;
    // zone2 has one public IP (taken) -> 533 for the next one; and no VM capacity -> the
    // deploy job fails with 533.
    let alice = Cs::of(&h, "alice");
    let e = alice.err("associateIpAddress", &[("zoneid", ZONE2)], 533).await;
    assert_eq!(e["errortext"], "Internal error executing command, please contact your system administrator");
    let r = alice
        .ok("deployVirtualMachine", &[("zoneid", ZONE2), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)])
        .await;
    let j = alice.wait(&s(&r["jobid"])).await;
    assert_eq!(j["jobstatus"], 2);
    assert_eq!(j["jobresultcode"], 533);
    assert_eq!(j["jobresult"]["errorcode"], 533);
    let l = alice.items("listVirtualMachines", &[("id", &s(&r["id"]))], "virtualmachine").await;
    assert_eq!(l[0]["state"], "Error");
}
