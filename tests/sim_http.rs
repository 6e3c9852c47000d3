//! The simulator over real HTTP: transport, signatures, envelopes, errors, paging.

mod sim_support;

use sim_support::*;

#[tokio::test]
async fn list_zones_get_and_post() {
    let h = start_fast().await;
    let mut cs = Cs::of(&h, "alice");
    let z = cs.ok("listZones", &[]).await;
    assert_eq!(z["count"], 3);
    assert_eq!(z["zone"][0]["name"], "zone1");
    assert_eq!(z["zone"][2]["securitygroupsenabled"], false);
    assert_eq!(z["zone"][2]["guestcidraddress"], "10.1.1.0/24");
    cs.post = true;
    let z = cs.ok("listZones", &[("name", "zone2")]).await;
    assert_eq!(z["count"], 1);
    assert_eq!(z["zone"][0]["id"], ZONE2);
}

#[tokio::test]
async fn deploy_and_lifecycle() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vm = deploy(&cs, &[("name", "web1")]).await;
    assert_eq!(vm["state"], "Running");
    assert_eq!(vm["name"], "web1");
    let id = vm["id"].as_str().unwrap().to_string();
    let r = cs.run("stopVirtualMachine", &[("id", &id)]).await;
    assert_eq!(r["virtualmachine"]["state"], "Stopped");
    let r = cs.run("startVirtualMachine", &[("id", &id)]).await;
    assert_eq!(r["virtualmachine"]["state"], "Running");
    let r = cs.run("rebootVirtualMachine", &[("id", &id)]).await;
    assert_eq!(r["virtualmachine"]["state"], "Running");
    let r = cs.run("destroyVirtualMachine", &[("id", &id)]).await;
    assert_eq!(r["virtualmachine"]["state"], "Destroyed");
    // Users never see Destroyed VMs.
    let l = cs.ok("listVirtualMachines", &[("id", &id)]).await;
    assert_eq!(l, serde_json::json!({}));
}

#[tokio::test]
async fn parameter_names_are_matched_lowercased() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    // camelCase names (as libcloud sends them) reach the command; the command name itself is
    // case-sensitive.
    let r = cs
        .run("deployVirtualMachine", &[("zoneId", ZONE1), ("templateId", UBUNTU), ("serviceOfferingId", T2_MICRO)])
        .await;
    assert_eq!(r["virtualmachine"]["zoneid"], ZONE1);
    // Two `[` in a name: 430 malformed parameter.
    let e = cs.err("listZones", &[("a[0][1]", "x")], 430).await;
    assert_eq!(e["cserrorcode"], 9999);
}
