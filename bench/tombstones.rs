//! Tombstone size and the DescribeInstances cost of many terminated instances (a program that
//! prints numbers, not a test; bench/README.md "Tombstones").
//!
//! Starts the simulator (fast jobs) and an executor on a SQLite store (the journal's
//! `tombstones` table), launches a few instances to have real CloudStack VM objects, then for
//! 0 and N terminated instances of one account measures:
//!   - bytes per tombstone: the whole listed VM (what the gateway kept before, in memory) and the
//!     slimmed record it keeps now (docs/gateway-state.md "tombstones"),
//!   - the store file's growth for N tombstones of each kind,
//!   - DescribeInstances latency (mean of 20 calls) with N tombstones of each kind.
//!
//! Run: `cargo run --release --example bench_tombstones -- [N]` (default 900).

use std::sync::Arc;
use std::time::Instant;

use ec2bridge::auth::Principal;
use ec2bridge::cloudstack::{ClientOptions, CsClient, CsCredentials};
use ec2bridge::ec2::request::Frontend;
use ec2bridge::ec2::{Ec2Request, Params};
use ec2bridge::journal::{Journal, Tomb};
use ec2bridge::mapping::background::slim_vm;
use ec2bridge::store::{KeySource, Store, generate_key_base64};

fn req(action: &str, params: &[(&str, &str)]) -> Ec2Request {
    Ec2Request {
        request_id: "bench".into(),
        action: action.into(),
        version: "2016-11-15".into(),
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Params>(),
        frontend: Frontend::Query,
        host: None,
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map(|r| r.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(900);
    let sim = ec2bridge::sim::start(ec2bridge::sim::SimOptions {
        listen: "127.0.0.1:0".parse()?,
        seed: None,
        fast: true,
        state_dir: None,
    })
    .await?;
    let u = sim.user("alice").expect("seeded user").clone();
    let who = Principal {
        access_key: u.api_key.clone(),
        cloudstack: CsCredentials { api_key: u.api_key.clone(), secret_key: u.secret_key.clone() },
        account: Some(u.account.clone()),
        account_id: Some(u.account_id.clone()),
    };
    let client = Arc::new(CsClient::new(&sim.endpoint, ClientOptions::default())?);
    let dir = std::env::temp_dir().join(format!("ec2bridge-bench-tombs-{}", std::process::id()));
    let store = Store::open(
        &format!("sqlite://{}", dir.join("store.db").display()),
        &KeySource::Base64(generate_key_base64()?),
    )
    .await?;
    let opts = ec2bridge::mapping::ExecutorOptions { tombstone_keep: n.max(1), ..Default::default() };
    let ex = ec2bridge::mapping::Executor::with_options(client.clone(), None, opts)?
        .with_object_store(Arc::new(store.clone()))?
        .with_journal(Arc::new(store.clone()))?;
    let images = ex.execute(&req("DescribeImages", &[]), &who).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let ami = images.split("<imageId>").nth(1).and_then(|s| s.split('<').next()).expect("an image").to_string();
    ex.execute(&req("RunInstances", &[("ImageId", &ami), ("MinCount", "5"), ("MaxCount", "5")]), &who)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let vms = client
        .list_all(&who.cloudstack, "listVirtualMachines", &[("listall".into(), "true".into())], "virtualmachine")
        .await?;
    let full: Vec<serde_json::Value> = vms.clone();
    let full_bytes = full.iter().map(|v| v.to_string().len()).sum::<usize>() / full.len();
    let slim_bytes = full.iter().map(|v| slim_vm(v).to_string().len()).sum::<usize>() / full.len();
    println!("ec2bridge tombstones: {} listed VMs, {n} terminated instances per measurement", full.len());
    println!("bytes per tombstone: whole VM object (kept before) {full_bytes}, slimmed record (kept now) {slim_bytes}");
    let owner = u.account.clone();
    let describe = |label: &'static str| {
        let (ex, who) = (&ex, &who);
        async move {
            let t0 = Instant::now();
            let mut shown = 0;
            for _ in 0..20 {
                let xml = ex.execute(&req("DescribeInstances", &[]), who).await.expect("describe");
                shown = xml.matches("<instanceId>").count();
            }
            let ms = t0.elapsed().as_secs_f64() * 1000.0 / 20.0;
            println!("DescribeInstances, {label}: {ms:.1} ms mean of 20 ({shown} instances shown)");
        }
    };
    describe("no tombstones").await;
    for (label, slim) in [("whole VM objects", false), ("slimmed records", true)] {
        let before = dir_bytes(&dir);
        let t0 = Instant::now();
        for i in 0..n {
            let vm = &full[i % full.len()];
            let doc = if slim { slim_vm(vm) } else { vm.clone() };
            let id = format!("i-{:017x}", i + if slim { 1 << 40 } else { 0 });
            let t = Tomb { id, owner: owner.clone(), doc, at: ec2bridge::journal::now() };
            store.bury(&t, n, 0).await.map_err(anyhow::Error::msg)?;
        }
        let write_ms = t0.elapsed().as_secs_f64() * 1000.0 / n as f64;
        println!(
            "{n} tombstones as {label}: store grew {} KB; {write_ms:.2} ms per tombstone written",
            dir_bytes(&dir).saturating_sub(before) / 1024
        );
        describe(if slim { "N slimmed tombstones" } else { "N whole-VM tombstones" }).await;
        for i in 0..n {
            let id = format!("i-{:017x}", i + if slim { 1 << 40 } else { 0 });
            store.unbury(&owner, &id).await.map_err(anyhow::Error::msg)?;
        }
    }
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
