//! Gateway load benchmark (a program that prints numbers, not a test).
//!
//! Starts the simulator (fast jobs) and the gateway in-process on loopback ports, fills one
//! account with instances, then drives, with many concurrent SigV4-signed HTTP clients:
//!   - DescribeInstances through the gateway with 10 and 1,000 instances,
//!   - the same CloudStack list (listVirtualMachines, all pages) directly against the simulator,
//!   - RunInstances through the gateway,
//!
//! It prints requests/s, p50/p99 latency and backend calls per EC2 action.
//!
//! Run: `cargo run --release --example bench_gateway -- [--seconds 5] [--concurrency 32]`
//! Results and the command that made them go in bench/README.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ec2bridge::auth::KnownUser;
use ec2bridge::auth::credentials::MemorySource;
use ec2bridge::cloudstack::{ClientOptions, CsClient, CsCredentials};
use ec2bridge::server::{Gateway, serve};

struct Opts {
    seconds: u64,
    concurrency: usize,
}

fn parse_opts() -> Opts {
    let mut o = Opts { seconds: 5, concurrency: 32 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match (args[i].as_str(), v) {
            ("--seconds", Some(v)) => o.seconds = v,
            ("--concurrency", Some(v)) => o.concurrency = v as usize,
            _ => {
                eprintln!("usage: bench_gateway [--seconds N] [--concurrency N]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    o
}

/// One signed EC2 Query POST, as boto3 sends it.
struct Ec2Caller {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    access_key: String,
    secret_key: String,
}

impl Ec2Caller {
    async fn call(&self, body: &str) -> Result<String, String> {
        let amz_date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
            .expect("formatting a date");
        let ct = "application/x-www-form-urlencoded; charset=utf-8";
        let auth = ec2bridge::auth::sigv4::sign_authorization(
            &self.access_key,
            &self.secret_key,
            "us-east-1",
            "ec2",
            &amz_date,
            "POST",
            "/",
            &[],
            &[("content-type", ct), ("host", &self.host), ("x-amz-date", &amz_date)],
            body.as_bytes(),
        );
        let r = self
            .http
            .post(&self.endpoint)
            .header("content-type", ct)
            .header("x-amz-date", &amz_date)
            .header("authorization", auth)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let text = r.text().await.map_err(|e| e.to_string())?;
        if status.is_success() { Ok(text) } else { Err(format!("{status}: {text}")) }
    }
}

struct Sample {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Sample {
    fn print(&self, name: &str, backend_calls: Option<u64>) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| l.get(((l.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default();
        let rps = self.requests as f64 / self.elapsed.as_secs_f64();
        let calls = backend_calls
            .map(|c| format!("{:.2}", c as f64 / self.requests.max(1) as f64))
            .unwrap_or_else(|| "-".into());
        println!(
            "{name:<44} {:>8.1} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  requests {:>6}  errors {:>3}  backend calls/req {calls}",
            rps,
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.requests,
            self.errors
        );
    }
}

/// Run `op` from `concurrency` tasks for `seconds`.
async fn drive<F, Fut>(seconds: u64, concurrency: usize, op: F) -> Sample
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            let mut first_error = None;
            while Instant::now() < end {
                let t = Instant::now();
                match op().await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut s = Sample { requests: 0, errors: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    for t in tasks {
        let (lat, errors, first_error) = t.await.expect("bench task");
        if let Some(e) = first_error {
            eprintln!("error sample: {}", e.chars().take(300).collect::<String>());
        }
        s.requests += lat.len();
        s.errors += errors;
        s.latencies.extend(lat);
    }
    s.elapsed = start.elapsed();
    s
}

fn first_tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let i = xml.find(&open)? + open.len();
    let j = xml[i..].find("</")? + i;
    Some(&xml[i..j])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_opts();
    // The default seed, with a VM limit that lets one account hold 1,000+ instances.
    let seed_text = include_str!("../seeds/default.toml").replace("default_vm_limit = 20", "default_vm_limit = 100000");
    let seed_path = std::env::temp_dir().join(format!("ec2bridge-bench-seed-{}.toml", std::process::id()));
    std::fs::write(&seed_path, seed_text)?;
    let sim = ec2bridge::sim::start(ec2bridge::sim::SimOptions {
        listen: "127.0.0.1:0".parse()?,
        seed: Some(seed_path.clone()),
        fast: true,
        state_dir: None,
    })
    .await?;
    let user = sim.users.iter().find(|u| !u.is_admin).expect("a non-admin seeded user").clone();
    let creds = CsCredentials { api_key: user.api_key.clone(), secret_key: user.secret_key.clone() };
    let client = Arc::new(CsClient::new(&sim.endpoint, ClientOptions::default())?);
    let memory = Arc::new(MemorySource::new());
    memory
        .insert(&user.api_key, KnownUser::cloudstack_user(&user.api_key, &user.secret_key, Some(user.account.clone())));
    let executor = ec2bridge::mapping::Executor::new(client.clone(), None)?;
    let gw = Arc::new(Gateway::new(Arc::new(executor), memory));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, gw, std::future::pending(), Duration::from_secs(1)));

    let caller = Arc::new(Ec2Caller {
        http: reqwest::Client::builder().pool_max_idle_per_host(o.concurrency).build()?,
        endpoint: format!("http://{addr}/"),
        host: addr.to_string(),
        access_key: user.api_key.clone(),
        secret_key: user.secret_key.clone(),
    });

    // An image to launch.
    let images = caller.call("Action=DescribeImages&Version=2016-11-15").await.map_err(anyhow::Error::msg)?;
    let image = first_tag(&images, "imageId").expect("an image").to_string();
    let run_body =
        format!("Action=RunInstances&Version=2016-11-15&ImageId={image}&InstanceType=m1.small&MinCount=1&MaxCount=1");
    println!(
        "ec2bridge gateway benchmark: {} s per scenario, {} concurrent clients, {} cores",
        o.seconds,
        o.concurrency,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    for target in [10usize, 1000] {
        // Fill the account up to `target` instances (MaxCount batches of 50).
        let have = |xml: &str| xml.matches("<instanceId>").count();
        let mut count =
            have(&caller.call("Action=DescribeInstances&Version=2016-11-15").await.map_err(anyhow::Error::msg)?);
        while count < target {
            let n = (target - count).min(50);
            let body = format!(
                "Action=RunInstances&Version=2016-11-15&ImageId={image}&InstanceType=m1.small&MinCount={n}&MaxCount={n}"
            );
            caller.call(&body).await.map_err(anyhow::Error::msg)?;
            count += n;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;

        let c = caller.clone();
        let before = client.calls();
        let s = drive(o.seconds, o.concurrency, move || {
            let c = c.clone();
            async move { c.call("Action=DescribeInstances&Version=2016-11-15").await.map(|_| ()) }
        })
        .await;
        s.print(&format!("DescribeInstances via gateway ({target} VMs)"), Some(client.calls() - before));

        let (cl, cr) = (client.clone(), creds.clone());
        let s = drive(o.seconds, o.concurrency, move || {
            let (cl, cr) = (cl.clone(), cr.clone());
            async move {
                cl.list_all(&cr, "listVirtualMachines", &[], "virtualmachine")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        s.print(&format!("listVirtualMachines direct to sim ({target} VMs)"), None);
    }

    let c = caller.clone();
    let before = client.calls();
    let body = Arc::new(run_body);
    let s = drive(o.seconds.min(3), o.concurrency.min(8), move || {
        let (c, body) = (c.clone(), body.clone());
        async move { c.call(&body).await.map(|_| ()) }
    })
    .await;
    s.print("RunInstances via gateway (1 VM each)", Some(client.calls() - before));
    let _ = std::fs::remove_file(&seed_path);
    Ok(())
}
