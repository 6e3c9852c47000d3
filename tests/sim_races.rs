//! Objects removed while a job on them (or on something they point to) is still queued: the
//! simulator must not panic, must refuse what CloudStack refuses synchronously (431), and must
//! end a job whose object went away as a failed job (jobstatus 2, errorcode 530).
//! Jobs are made slow with the `job_delay_ms` fault, so each race is deterministic.

mod sim_support;

use serde_json::{Value, json};
use sim_support::*;

const SLOW: &str = r#"
[[faults]]
command = "stopVirtualMachine"
job_delay_ms = 300

[[faults]]
command = "attachVolume"
job_delay_ms = 400

[[faults]]
command = "expungeVirtualMachine"
job_delay_ms = 1500

[[faults]]
command = "authorizeSecurityGroupIngress"
job_delay_ms = 300

[[faults]]
command = "revokeSecurityGroupIngress"
job_delay_ms = 300

[[faults]]
command = "createTags"
job_delay_ms = 300

[[faults]]
command = "deleteTemplate"
job_delay_ms = 300
"#;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

async fn start() -> (sim_support::Cs, ec2bridge::sim::SimHandle) {
    let h = start_seed(Some(&default_seed_plus(SLOW))).await;
    (Cs::new(&h, h.admin().unwrap()), h)
}

/// A failed job as §5 describes it: status 2, jobresultcode = errorcode, errorcode + errortext only.
fn assert_failed(j: &Value, code: u16) {
    assert_eq!(j["jobstatus"], 2, "{j}");
    assert_eq!(j["jobresultcode"], code, "{j}");
    assert_eq!(j["jobresult"]["errorcode"], code, "{j}");
    assert!(j["jobresult"]["errortext"].as_str().is_some_and(|t| !t.is_empty()), "{j}");
    assert_eq!(j["jobresult"].as_object().map(|o| o.len()), Some(2), "{j}");
}

async fn still_serving(cs: &Cs) {
    cs.ok("listZones", &[]).await;
}

#[tokio::test]
async fn destroy_and_expunge_while_stop_is_pending() {
    let (admin, _h) = start().await;
    let vm = deploy(&admin, &[]).await;
    let id = s(&vm["id"]);
    let stop = admin.ok("stopVirtualMachine", &[("id", &id)]).await;
    // The destroy is accepted and queues behind the stop, as CloudStack's VM work queue does.
    let destroy = admin.ok("destroyVirtualMachine", &[("id", &id), ("expunge", "true")]).await;
    // Nothing else may be queued on a VM about to be expunged: 431 at once.
    let e = admin.err("startVirtualMachine", &[("id", &id)], 431).await;
    assert_eq!(e["cserrorcode"], 4350);
    let j = admin.wait(&s(&stop["jobid"])).await;
    assert_eq!(j["jobstatus"], 1, "{j}");
    assert_eq!(j["jobresult"]["virtualmachine"]["state"], "Stopped");
    let j = admin.wait(&s(&destroy["jobid"])).await;
    assert_eq!(j["jobstatus"], 1, "{j}");
    // Expunged shortly after: an empty list (the uuid existed), and 431 for actions on it.
    for _ in 0..200 {
        if admin.ok("listVirtualMachines", &[("id", &id)]).await == json!({}) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(admin.ok("listVirtualMachines", &[("id", &id)]).await, json!({}));
    let e = admin.err("stopVirtualMachine", &[("id", &id)], 431).await;
    assert_eq!(e["errortext"], format!("Unable to find virtual machine with id {id}"));
    still_serving(&admin).await;
}

#[tokio::test]
async fn expunger_takes_the_vm_while_an_expunge_job_is_pending() {
    let (admin, _h) = start().await;
    let vm = deploy(&admin, &[]).await;
    let id = s(&vm["id"]);
    admin.run("destroyVirtualMachine", &[("id", &id)]).await;
    // The expunger runs after fast_expunge_delay_ms (1 s); this job waits 1.5 s.
    let r = admin.ok("expungeVirtualMachine", &[("id", &id)]).await;
    let j = admin.wait(&s(&r["jobid"])).await;
    assert_failed(&j, 530);
    assert_eq!(j["jobresult"]["errortext"], format!("Unable to find virtual machine with id {id}"));
    assert_eq!(admin.ok("listVirtualMachines", &[("id", &id)]).await, json!({}));
    still_serving(&admin).await;
}

#[tokio::test]
async fn volume_deleted_or_vm_expunged_while_attach_is_pending() {
    let (admin, _h) = start().await;
    let vm = deploy(&admin, &[]).await;
    let vm_id = s(&vm["id"]);
    let vol = admin.run("createVolume", &[("zoneid", ZONE1), ("diskofferingid", DISK_SMALL)]).await;
    let vol_id = s(&vol["volume"]["id"]);
    let attach = admin.ok("attachVolume", &[("id", &vol_id), ("virtualmachineid", &vm_id)]).await;
    let l = admin.items("listVolumes", &[("id", &vol_id)], "volume").await;
    assert_eq!(l[0]["state"], "Attaching");
    assert_eq!(l[0]["jobstatus"], 0);
    // Deleting a volume being attached: refused synchronously, nothing changes.
    let e = admin.err("deleteVolume", &[("id", &vol_id)], 431).await;
    assert_eq!(e["errortext"], "Please specify a volume that is not attached to any VM.");
    // The VM goes away before the attach runs: the attach job fails and the volume is free.
    admin.run("destroyVirtualMachine", &[("id", &vm_id), ("expunge", "true")]).await;
    let j = admin.wait(&s(&attach["jobid"])).await;
    assert_failed(&j, 530);
    let l = admin.items("listVolumes", &[("id", &vol_id)], "volume").await;
    assert_eq!(l[0]["state"], "Allocated", "{}", l[0]);
    assert!(l[0].get("virtualmachineid").is_none() && l[0].get("deviceid").is_none(), "{}", l[0]);
    assert!(l[0].get("jobid").is_none(), "{}", l[0]);
    // And now it can be deleted.
    assert_eq!(admin.ok("deleteVolume", &[("id", &vol_id)]).await, json!({"success": true}));
    still_serving(&admin).await;
}

#[tokio::test]
async fn security_group_deleted_while_rule_jobs_are_pending() {
    let (admin, _h) = start().await;
    let g = admin.ok("createSecurityGroup", &[("name", "racy")]).await;
    let gid = s(&g["securitygroup"]["id"]);
    let auth = admin.ok("authorizeSecurityGroupIngress", &tcp_ingress(&gid, "22", "0.0.0.0/0")).await;
    assert_eq!(admin.ok("deleteSecurityGroup", &[("id", &gid)]).await, json!({"success": true}));
    let j = admin.wait(&s(&auth["jobid"])).await;
    assert_failed(&j, 530);
    assert_eq!(j["jobresult"]["errortext"], format!("Unable to find security group with id {gid}"));

    // Revoke queued, then the group (and its rule) deleted.
    let g = admin.ok("createSecurityGroup", &[("name", "racy2")]).await;
    let gid = s(&g["securitygroup"]["id"]);
    let r = admin.run("authorizeSecurityGroupIngress", &tcp_ingress(&gid, "80", "0.0.0.0/0")).await;
    let rule = s(&r["securitygroup"]["ingressrule"][0]["ruleid"]);
    let revoke = admin.ok("revokeSecurityGroupIngress", &[("id", &rule)]).await;
    assert_eq!(admin.ok("deleteSecurityGroup", &[("id", &gid)]).await, json!({"success": true}));
    assert_failed(&admin.wait(&s(&revoke["jobid"])).await, 530);
    still_serving(&admin).await;
}

#[tokio::test]
async fn tagged_resource_removed_and_template_deleted_twice() {
    let (admin, _h) = start().await;
    let vol = admin.run("createVolume", &[("zoneid", ZONE1), ("diskofferingid", DISK_SMALL)]).await;
    let vol_id = s(&vol["volume"]["id"]);
    let tags = admin
        .ok(
            "createTags",
            &[("resourceids", &vol_id), ("resourcetype", "Volume"), ("tags[0].key", "k"), ("tags[0].value", "v")],
        )
        .await;
    admin.ok("deleteVolume", &[("id", &vol_id)]).await;
    let j = admin.wait(&s(&tags["jobid"])).await;
    assert_failed(&j, 530);
    assert_eq!(admin.ok("listTags", &[("listall", "true")]).await, json!({}));

    // A registered template deleted twice: the second job finds nothing to delete.
    let t = admin
        .ok(
            "registerTemplate",
            &[
                ("name", "racy"),
                ("displaytext", "racy"),
                ("format", "QCOW2"),
                ("hypervisor", "KVM"),
                ("ostypeid", UBUNTU_OSTYPE),
                ("url", "http://example.com/racy.qcow2"),
                ("zoneid", ZONE1),
            ],
        )
        .await;
    let tid = s(&t["template"][0]["id"]);
    let first = admin.ok("deleteTemplate", &[("id", &tid)]).await;
    let second = admin.ok("deleteTemplate", &[("id", &tid)]).await;
    assert_eq!(admin.wait(&s(&first["jobid"])).await["jobstatus"], 1);
    let j = admin.wait(&s(&second["jobid"])).await;
    assert_failed(&j, 530);
    assert_eq!(j["jobresult"]["errortext"], format!("Unable to find template with id {tid}"));
    still_serving(&admin).await;
}
