//! Benchmark: how long the simulator takes to answer listVirtualMachines over 10,000 VMs.
//!
//! Starts the simulator in-process with `seeds/large.toml` (or the seed given as the first
//! argument), then times signed HTTP calls over loopback, as a client sees them:
//! - one page of 500 (`listall=true&page=1&pagesize=500`, count = 10,000) as the admin;
//! - all 10,000 VMs in pages of 500 (20 calls) as the admin;
//! - one user's VMs (page of 500 out of 2,000).
//!
//! Times are HTTP round trips until the last body byte (client-side JSON parsing excluded).
//! Run: `cargo run --example sim_list_bench [-- seeds/large.toml [runs]]`. Prints medians.

use std::time::{Duration, Instant};

use ec2bridge::cloudstack::signing;
use ec2bridge::sim::{SimOptions, SimUser};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One signed call; returns the time until the whole body was received (the client's JSON
/// parsing, slow in a debug build, is not counted) and the parsed answer.
async fn call(
    http: &reqwest::Client,
    endpoint: &str,
    u: &SimUser,
    params: &[(&str, &str)],
) -> (Duration, serde_json::Value) {
    let t = Instant::now();
    let mut p: Vec<(String, String)> = vec![
        ("command".into(), "listVirtualMachines".into()),
        ("response".into(), "json".into()),
        ("apiKey".into(), u.api_key.clone()),
    ];
    p.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let sig = signing::sign(p.iter().map(|(k, v)| (k.as_str(), v.as_str())), &u.secret_key);
    p.push(("signature".into(), sig));
    let q: Vec<String> =
        p.iter().map(|(k, v)| format!("{}={}", signing::java_url_encode(k), signing::java_url_encode(v))).collect();
    let body = http.get(format!("{endpoint}?{}", q.join("&"))).send().await.expect("http").bytes().await.expect("body");
    let elapsed = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    (elapsed, v["listvirtualmachinesresponse"].clone())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seed = args.get(1).cloned().unwrap_or_else(|| "seeds/large.toml".into());
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(9);

    let t0 = Instant::now();
    let h = ec2bridge::sim::start(SimOptions {
        listen: "127.0.0.1:0".parse()?,
        seed: Some(seed.clone().into()),
        fast: true,
        state_dir: None,
    })
    .await?;
    let load = t0.elapsed();
    let admin = h.users.iter().find(|u| u.is_admin).expect("admin").clone();
    let alice = h.users.iter().find(|u| u.account == "alice").expect("alice").clone();
    let http = reqwest::Client::new();

    // Warm-up (connection, allocator).
    let (_, first) = call(&http, &h.endpoint, &admin, &[("listall", "true"), ("page", "1"), ("pagesize", "500")]).await;
    let total = first["count"].as_u64().unwrap_or(0);

    let mut one_page = Vec::new();
    for _ in 0..runs {
        let (d, r) = call(&http, &h.endpoint, &admin, &[("listall", "true"), ("page", "1"), ("pagesize", "500")]).await;
        one_page.push(d);
        assert_eq!(r["virtualmachine"].as_array().map(|a| a.len()), Some(500));
    }
    let mut all_pages = Vec::new();
    for _ in 0..runs {
        let mut spent = Duration::ZERO;
        let mut seen = 0u64;
        let mut page = 1;
        loop {
            let pg = page.to_string();
            let (d, r) =
                call(&http, &h.endpoint, &admin, &[("listall", "true"), ("page", &pg), ("pagesize", "500")]).await;
            spent += d;
            let n = r["virtualmachine"].as_array().map(|a| a.len()).unwrap_or(0) as u64;
            seen += n;
            if n == 0 || seen >= total {
                break;
            }
            page += 1;
        }
        all_pages.push(spent);
        assert_eq!(seen, total);
    }
    let mut user_page = Vec::new();
    let mut user_total = 0;
    for _ in 0..runs {
        let (d, r) = call(&http, &h.endpoint, &alice, &[("page", "1"), ("pagesize", "500")]).await;
        user_page.push(d);
        user_total = r["count"].as_u64().unwrap_or(0);
    }

    println!("seed {seed}: {total} VMs, loaded and listening in {}", ms(load));
    println!(
        "listVirtualMachines listall=true page=1 pagesize=500 (admin, count={total}): median {} over {runs} runs",
        ms(median(one_page))
    );
    println!(
        "all {total} VMs in pages of 500 ({} calls, admin): median {} over {runs} runs",
        total.div_ceil(500),
        ms(median(all_pages))
    );
    println!(
        "listVirtualMachines page=1 pagesize=500 (alice, count={user_total}): median {} over {runs} runs",
        ms(median(user_page))
    );
    Ok(())
}
