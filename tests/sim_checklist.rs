//! docs/cloudstack-wire.md "What a faithful simulator does", item by item, where the other sim_*
//! tests do not already pin it down
//! (docs/simulator.md "Faithfulness" maps every item to its tests).

mod sim_support;

use serde_json::{Value, json};
use sim_support::*;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// §11.3 / §5: every async command answers `jobid` (+ `id` for creates) and its job's result sits
/// under the key of the §5 table, with `jobresulttype:"object"` and the command's Java class.
#[tokio::test]
async fn item3_result_key_of_every_async_command() {
    let h = start_fast().await;
    let cs = Cs::new(&h, h.admin().unwrap());
    async fn job(cs: &Cs, command: &str, params: &[(&str, &str)], key: &str, create: bool) -> Value {
        let r = cs.ok(command, params).await;
        assert_eq!(r.get("id").is_some(), create, "{command}: {r}");
        let j = cs.wait(&s(&r["jobid"])).await;
        assert_eq!(j["jobstatus"], 1, "{command}: {j}");
        assert_eq!(j["jobresultcode"], 0);
        assert_eq!(j["jobresulttype"], "object");
        assert!(s(&j["cmd"]).starts_with("org.apache.cloudstack.api.command."), "{j}");
        let result = j["jobresult"].as_object().unwrap_or_else(|| panic!("{command}: {j}"));
        assert_eq!(result.keys().collect::<Vec<_>>(), vec![key], "{command}: {j}");
        if key == "success" {
            assert_eq!(j["jobresult"]["success"], true);
        } else if create {
            assert_eq!(j["jobresult"][key]["id"], r["id"], "{command}");
        }
        j["jobresult"][key].clone()
    }
    let base = [("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)];
    let vm = job(&cs, "deployVirtualMachine", &base, "virtualmachine", true).await;
    let vid = s(&vm["id"]);
    job(&cs, "rebootVirtualMachine", &[("id", &vid)], "virtualmachine", false).await;
    job(&cs, "stopVirtualMachine", &[("id", &vid)], "virtualmachine", false).await;
    job(&cs, "startVirtualMachine", &[("id", &vid)], "virtualmachine", false).await;
    let vol = job(&cs, "createVolume", &[("zoneid", ZONE1), ("diskofferingid", DISK_SMALL)], "volume", true).await;
    let volid = s(&vol["id"]);
    job(&cs, "attachVolume", &[("id", &volid), ("virtualmachineid", &vid)], "volume", false).await;
    let snap = job(&cs, "createSnapshot", &[("volumeid", &volid)], "snapshot", true).await;
    job(&cs, "detachVolume", &[("id", &volid)], "volume", false).await;
    let tpl = job(
        &cs,
        "createTemplate",
        &[("snapshotid", &s(&snap["id"])), ("name", "t"), ("displaytext", "t"), ("ostypeid", UBUNTU_OSTYPE)],
        "template",
        true,
    )
    .await;
    job(&cs, "deleteTemplate", &[("id", &s(&tpl["id"]))], "success", false).await;
    job(&cs, "deleteSnapshot", &[("id", &s(&snap["id"]))], "success", false).await;
    let tag =
        [("resourceids", volid.as_str()), ("resourcetype", "Volume"), ("tags[0].key", "k"), ("tags[0].value", "v")];
    job(&cs, "createTags", &tag, "success", false).await;
    job(&cs, "deleteTags", &tag[..3], "success", false).await;
    let ip = job(&cs, "associateIpAddress", &[("zoneid", ZONE1)], "ipaddress", true).await;
    let ipid = s(&ip["id"]);
    cs.ok("enableStaticNat", &[("ipaddressid", &ipid), ("virtualmachineid", &vid)]).await;
    job(&cs, "disableStaticNat", &[("ipaddressid", &ipid)], "success", false).await;
    job(&cs, "disassociateIpAddress", &[("id", &ipid)], "success", false).await;
    let g = cs.ok("createSecurityGroup", &[("name", "keys")]).await;
    let gid = s(&g["securitygroup"]["id"]);
    let sg =
        job(&cs, "authorizeSecurityGroupIngress", &tcp_ingress(&gid, "22", "0.0.0.0/0"), "securitygroup", false).await;
    let rule = s(&sg["ingressrule"][0]["ruleid"]);
    job(&cs, "revokeSecurityGroupIngress", &[("id", &rule)], "success", false).await;
    let egress = [("securitygroupid", gid.as_str()), ("protocol", "all"), ("cidrlist", "0.0.0.0/0")];
    let sg = job(&cs, "authorizeSecurityGroupEgress", &egress, "securitygroup", false).await;
    let rule = s(&sg["egressrule"][0]["ruleid"]);
    job(&cs, "revokeSecurityGroupEgress", &[("id", &rule)], "success", false).await;
    job(&cs, "destroyVirtualMachine", &[("id", &vid)], "virtualmachine", false).await;
    job(&cs, "expungeVirtualMachine", &[("id", &vid)], "success", false).await;
}

/// §11.4: `templatefilter` is required, and a template in three zones is three rows.
#[tokio::test]
async fn item4_template_rows_per_zone() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let e = cs.err("listTemplates", &[], 431).await;
    assert_eq!(e["errortext"], "Unable to execute API command listtemplates due to missing parameter templatefilter");
    let r = cs.ok("listTemplates", &[("templatefilter", "featured"), ("id", UBUNTU)]).await;
    assert_eq!(r["count"], 3);
    let mut zones: Vec<String> = r["template"].as_array().unwrap().iter().map(|t| s(&t["zoneid"])).collect();
    zones.sort();
    let mut want = vec![ZONE1.to_string(), ZONE2.to_string(), ZONE3.to_string()];
    want.sort();
    assert_eq!(zones, want);
    assert!(r["template"].as_array().unwrap().iter().all(|t| t["id"] == UBUNTU));
}

fn is_cloudstack_date(v: &Value) -> bool {
    // yyyy-MM-dd'T'HH:mm:ss+0000
    let b = s(v).into_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'+',
            _ => c.is_ascii_digit(),
        })
        && b.ends_with(b"+0000")
}

/// §11.6: JSON booleans, sizes in bytes (volumes, templates), GB (disk offerings), MB (memory),
/// dates as `yyyy-MM-dd'T'HH:mm:ss+0000`.
#[tokio::test]
async fn item6_types_units_and_dates() {
    let h = start_fast().await;
    let cs = Cs::of(&h, "alice");
    let vm = deploy(&cs, &[]).await;
    assert!(is_cloudstack_date(&vm["created"]), "{}", vm["created"]);
    assert!(vm["haenable"].is_boolean() && vm["passwordenabled"].is_boolean(), "{vm}");
    assert_eq!(vm["memory"], 1024, "t2.micro memory in MB (the seed says 1024)");
    let root = &cs.items("listVolumes", &[("virtualmachineid", &s(&vm["id"]))], "volume").await[0];
    assert_eq!(root["size"], 10i64 << 30, "ROOT volume in bytes: {root}");
    assert!(is_cloudstack_date(&root["created"]));
    let t = &cs.items("listTemplates", &[("templatefilter", "executable"), ("id", UBUNTU)], "template").await[0];
    assert_eq!(t["size"], 10i64 << 30, "template in bytes");
    assert!(t["isready"].is_boolean() && t["ispublic"].is_boolean() && t["passwordenabled"].is_boolean());
    assert!(is_cloudstack_date(&t["created"]));
    let d = &cs.items("listDiskOfferings", &[("id", DISK_SMALL)], "diskoffering").await[0];
    assert_eq!(d["disksize"], 5, "disk offerings in GB");
    let z = &cs.items("listZones", &[("id", ZONE1)], "zone").await[0];
    assert!(z["securitygroupsenabled"].is_boolean());
    let j = &cs.items("listAsyncJobs", &[], "asyncjobs").await[0];
    assert!(is_cloudstack_date(&j["created"]) && is_cloudstack_date(&j["completed"]), "{j}");
}

const FORCED: &str = r#"
[[faults]]
command = "listOsTypes"
error_code = 533

[[faults]]
command = "listOsCategories"
error_code = 534

[[faults]]
command = "listRegions"
error_code = 535

[[faults]]
command = "listCapabilities"
error_code = 536
error_text = "Resource is busy"

[[faults]]
command = "listZones"
error_code = 530
error_rate = 0.0

[[faults]]
command = "listDiskOfferings"
error_code = 534
error_rate = 0.5
"#;

/// §11.7: 533/534/535/536 on demand from the seed, in CloudStack's error shape, with the
/// user-facing text masked only for 530/533/534; `error_rate` applies a fault to a share of calls.
#[tokio::test]
async fn item7_forced_error_codes_and_rates() {
    let h = start_seed(Some(&default_seed_plus(FORCED))).await;
    let alice = Cs::of(&h, "alice");
    let admin = Cs::new(&h, h.admin().unwrap());
    let masked = "Internal error executing command, please contact your system administrator";
    for (command, code, cs_code, hidden) in [
        ("listOsTypes", 533, 4325, true),
        ("listOsCategories", 534, 4380, true),
        ("listRegions", 535, 4370, false),
        ("listCapabilities", 536, 4375, false),
    ] {
        let a = alice.call(command, &[]).await;
        assert_eq!(a.envelope(), format!("{}response", command.to_lowercase()));
        let e = alice.err(command, &[], code).await;
        assert_eq!(e["cserrorcode"], cs_code, "{command}");
        assert_eq!(e["uuidList"], json!([]));
        assert_eq!(e["errortext"] == masked, hidden, "{command}: {e}");
        let e = admin.err(command, &[], code).await;
        assert_ne!(e["errortext"], masked);
    }
    assert_eq!(admin.err("listCapabilities", &[], 536).await["errortext"], "Resource is busy");
    // Rate 0: never; rate 0.5: some calls fail, some succeed (all-equal odds: 2^-59).
    for _ in 0..20 {
        alice.ok("listZones", &[]).await;
    }
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..60 {
        codes.insert(alice.call("listDiskOfferings", &[]).await.status);
    }
    assert_eq!(codes.into_iter().collect::<Vec<_>>(), vec![200, 534]);
}

/// §11.8: the seed's account and user keys are what listAccounts / listUsers / getUser return
/// to an administrator.
#[tokio::test]
async fn item8_seeded_keys_are_listed() {
    let h = start_fast().await;
    let admin = Cs::new(&h, h.admin().unwrap());
    let alice = h.user("alice").unwrap();
    let users = admin.items("listUsers", &[("listall", "true"), ("username", "alice")], "user").await;
    assert_eq!(users.len(), 1);
    assert_eq!((s(&users[0]["apikey"]), s(&users[0]["secretkey"])), (alice.api_key.clone(), alice.secret_key.clone()));
    let accts = admin.items("listAccounts", &[("listall", "true"), ("name", "alice")], "account").await;
    assert_eq!(accts[0]["user"][0]["apikey"], alice.api_key.as_str());
    let u = admin.ok("getUser", &[("userapikey", &alice.api_key)]).await;
    assert_eq!(u["user"]["secretkey"], alice.secret_key.as_str());
    // And the seed has what a deploy needs: a zone, offerings and an executable template.
    let cs = Cs::of(&h, "alice");
    assert!(!cs.items("listZones", &[], "zone").await.is_empty());
    assert!(!cs.items("listServiceOfferings", &[], "serviceoffering").await.is_empty());
    assert!(!cs.items("listTemplates", &[("templatefilter", "executable")], "template").await.is_empty());
}
