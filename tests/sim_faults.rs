//! Fault injection from the seed: forced errors, error codes, failing and hanging jobs, dropped
//! connections and latency, without any command code knowing.

mod sim_support;

use std::time::{Duration, Instant};

use sim_support::*;

const FAULTS: &str = r#"
[[faults]]
command = "deployVirtualMachine"
error_code = 533

[[faults]]
command = "stopVirtualMachine"
job = "fail"
job_error_code = 534
job_error_text = "Failed to stop VM"

[[faults]]
command = "rebootVirtualMachine"
job = "hang"

[[faults]]
command = "listRegions"
drop_rate = 1.0

[[faults]]
command = "listOsTypes"
latency_ms = 300

[[faults]]
command = "listDiskOfferings"
error_code = 432
"#;

#[tokio::test]
async fn injected_faults() {
    let h = start_seed(Some(&default_seed_plus(FAULTS))).await;
    let alice = Cs::of(&h, "alice");
    let admin = Cs::new(&h, h.admin().unwrap());

    // Forced 533: users see the generic text, admins the real one.
    let e = alice
        .err("deployVirtualMachine", &[("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)], 533)
        .await;
    assert_eq!(e["cserrorcode"], 4325);
    assert_eq!(e["errortext"], "Internal error executing command, please contact your system administrator");
    let e = admin
        .err("deployVirtualMachine", &[("zoneid", ZONE1), ("templateid", UBUNTU), ("serviceofferingid", T2_MICRO)], 533)
        .await;
    assert_ne!(e["errortext"], "Internal error executing command, please contact your system administrator");
    // 432 always uses errorresponse.
    let a = alice.call("listDiskOfferings", &[]).await;
    assert_eq!((a.status, a.envelope()), (432, "errorresponse".to_string()));

    // The forced deploy error created nothing.
    assert_eq!(admin.ok("listVirtualMachines", &[("listall", "true")]).await, serde_json::json!({}));

    // Dropped connection: no HTTP answer at all.
    let p = alice.signed("listRegions", &[]);
    let r = alice.http.get(format!("{}?{}", alice.endpoint, encode_query(&p))).send().await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "listRegions should have lost its connection");

    // Latency.
    let t = Instant::now();
    alice.ok("listOsTypes", &[]).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn failing_and_hanging_jobs() {
    let seed = default_seed_plus(
        FAULTS.split("[[faults]]\ncommand = \"deployVirtualMachine\"\nerror_code = 533\n").collect::<String>().as_str(),
    );
    let h = start_seed(Some(&seed)).await;
    let alice = Cs::of(&h, "alice");
    let vm = deploy(&alice, &[]).await;
    let id = vm["id"].as_str().unwrap().to_string();

    let r = alice.ok("stopVirtualMachine", &[("id", &id)]).await;
    let j = alice.wait(r["jobid"].as_str().unwrap()).await;
    assert_eq!(j["jobstatus"], 2);
    assert_eq!(j["jobresultcode"], 534);
    assert_eq!(j["jobresult"], serde_json::json!({"errorcode": 534, "errortext": "Failed to stop VM"}));
    let l = alice.items("listVirtualMachines", &[("id", &id)], "virtualmachine").await;
    assert_eq!(l[0]["state"], "Running");

    let r = alice.ok("rebootVirtualMachine", &[("id", &id)]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let j = alice.ok("queryAsyncJobResult", &[("jobid", r["jobid"].as_str().unwrap())]).await;
    assert_eq!(j["jobstatus"], 0);
    let l = alice.items("listVirtualMachines", &[("id", &id)], "virtualmachine").await;
    assert_eq!(l[0]["jobstatus"], 0);
}

/// A lost answer (the command ran, its connection closed without the answer): the client finds
/// the job it started among the caller's jobs and carries on with it; a drop before the command
/// ran stays a transport error (a retry is safe) and started nothing.
#[tokio::test]
async fn lost_answers_of_async_commands_are_found() {
    use ec2bridge::cloudstack::{ClientOptions, CsClient, CsCredentials, CsError};
    let h = start_seed(Some(&default_seed_plus(
        r#"
[[faults]]
command = "createVolume"
drop_after_rate = 1.0

[[faults]]
command = "associateIpAddress"
drop_rate = 1.0
"#,
    )))
    .await;
    let alice = Cs::of(&h, "alice");
    let client = CsClient::new(&alice.endpoint, ClientOptions::default()).unwrap();
    let creds = CsCredentials { api_key: alice.key.clone(), secret_key: alice.secret.clone() };
    let p = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let vol = p(&[("zoneid", ZONE1), ("diskofferingid", DISK_SMALL), ("name", "lost")]);

    // Two at once, both answers lost: each call gets one of the two jobs.
    let (a, b) =
        tokio::join!(client.start_job(&creds, "createVolume", &vol), client.start_job(&creds, "createVolume", &vol));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.jobid, b.jobid);
    let volumes = alice.items("listVolumes", &[("type", "DATADISK")], "volume").await;
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    for started in [&a, &b] {
        let id = started.id.as_deref().expect("the new volume's id, from the job");
        assert!(volumes.iter().any(|v| v["id"] == id), "{id} in {volumes:?}");
        let done = client.wait_job(&creds, "createVolume", &started.jobid).await.unwrap();
        assert_eq!(done["volume"]["id"], id);
    }

    // Dropped before it ran: nothing started, and the error is a transport error (retryable).
    let e = client.start_job(&creds, "associateIpAddress", &p(&[("zoneid", ZONE1)])).await.unwrap_err();
    assert!(matches!(e, CsError::Transport(_)), "{e:?}");
    let jobs = alice.items("listAsyncJobs", &[], "asyncjobs").await;
    assert!(!jobs.iter().any(|j| j["cmd"].as_str().unwrap_or("").ends_with("AssociateIPAddrCmd")), "{jobs:?}");
}
