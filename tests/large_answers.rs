//! The bound on large CloudStack answers held at once (`ops::large_answers`, `[limits]
//! large_answers`, docs/operations.md section 5): many concurrent DescribeInstances over the
//! simulator, each reading answers above the threshold, never hold more than the slots; the
//! others wait (and get their answers once a slot is free), or answer `Unavailable` when no slot
//! comes free within their call's deadline. No timing is asserted: the tests wait for states.

mod mapping_support;

use std::sync::Arc;
use std::time::Duration;

use ec2bridge::auth::credentials::{KnownUser, MemorySource};
use ec2bridge::auth::sigv4;
use ec2bridge::base::Code;
use ec2bridge::cloudstack::{ClientOptions, CsClient};
use ec2bridge::mapping::Executor;
use ec2bridge::ops::large_answers::{LargeAnswers, with_scope};
use ec2bridge::server::{Gateway, serve};
use mapping_support::{all, req, sim_principal};
use time::OffsetDateTime;

/// VMs in alice's account: every listVirtualMachines answer is far above `THRESHOLD`.
const VMS: usize = 40;
const THRESHOLD: usize = 4 * 1024;

async fn sim() -> ec2bridge::sim::SimHandle {
    let dir = std::env::temp_dir().join(format!("ec2bridge-large-answers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/default.toml"))
        .unwrap()
        .replace("default_vm_limit = 20", "default_vm_limit = -1")
        + &format!("\n[generate]\nvms = {VMS}\naccounts = [\"alice\"]\n");
    let path = dir.join(format!("seed-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, seed).unwrap();
    ec2bridge::sim::start(ec2bridge::sim::SimOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: Some(path),
        fast: true,
        state_dir: None,
    })
    .await
    .expect("simulator starts")
}

fn executor(sim: &ec2bridge::sim::SimHandle, call_timeout: Duration) -> Arc<Executor> {
    let opts = ClientOptions { call_timeout, poll_initial: Duration::from_millis(5), ..Default::default() };
    Arc::new(Executor::new(Arc::new(CsClient::new(&sim.endpoint, opts).unwrap()), None).unwrap())
}

/// Until `cond` holds; a test that never gets there fails (after a minute) instead of hanging.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..12_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never reached: {what}");
}

/// 12 concurrent requests, 2 slots: two requests hold theirs (parked after their answers, before
/// their scopes end) while the ten others wait before reading their first large answer; opened,
/// every request answers the whole list. Without the bound the ten would not wait (and the peak
/// would be 12).
#[tokio::test]
async fn no_more_large_answers_at_once_than_slots() {
    let sim = sim().await;
    let ex = executor(&sim, Duration::from_secs(30));
    let who = Arc::new(sim_principal(&sim, "alice"));
    let limits = LargeAnswers::new(2, THRESHOLD);
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (ex, who, limits, mut open) = (ex.clone(), who.clone(), limits.clone(), open_rx.clone());
            tokio::spawn(with_scope(limits, async move {
                let xml = ex.execute(&req("DescribeInstances", &[]), &who).await.expect("DescribeInstances");
                let _ = open.wait_for(|o| *o).await;
                all(&xml, "instanceId").len()
            }))
        })
        .collect();
    until("2 requests hold slots and 10 wait", || limits.held() == 2 && limits.waiting() == 10).await;
    open_tx.send(true).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), VMS);
    }
    assert_eq!((limits.peak(), limits.held(), limits.waiting()), (2, 0, 0));
}

/// A request that gets no slot within its call's deadline answers `Unavailable` (503, retried by
/// SDKs), not a hang; small answers (DescribeKeyPairs) never wait.
#[tokio::test]
async fn no_slot_in_time_is_unavailable_and_small_answers_pass() {
    let sim = sim().await;
    let holder_ex = executor(&sim, Duration::from_secs(30));
    let short_ex = executor(&sim, Duration::from_millis(800));
    let who = Arc::new(sim_principal(&sim, "alice"));
    // Warm the metadata caches, so the waiting request's only large call is its VM list.
    short_ex.execute(&req("DescribeInstances", &[]), &who).await.unwrap();
    let limits = LargeAnswers::new(1, THRESHOLD);
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let holder = {
        let (ex, who, mut open) = (holder_ex.clone(), who.clone(), open_rx.clone());
        tokio::spawn(with_scope(limits.clone(), async move {
            ex.execute(&req("DescribeInstances", &[]), &who).await.expect("DescribeInstances");
            let _ = open.wait_for(|o| *o).await;
        }))
    };
    until("the holder holds the slot", || limits.held() == 1).await;
    let e = with_scope(limits.clone(), short_ex.execute(&req("DescribeInstances", &[]), &who)).await.unwrap_err();
    assert!(e.is(Code::Unavailable), "{e:?}");
    with_scope(limits.clone(), short_ex.execute(&req("DescribeKeyPairs", &[]), &who)).await.expect("a small answer");
    open_tx.send(true).unwrap();
    holder.await.unwrap();
    assert_eq!((limits.peak(), limits.held(), limits.waiting()), (1, 0, 0));
}

/// A list whose last answer was large waits for the slot before it is sent: while it waits,
/// nothing of it has reached CloudStack (and no answer waits unread in a connection).
#[tokio::test]
async fn a_known_large_list_waits_before_it_is_sent() {
    let sim = sim().await;
    let opts = ClientOptions { poll_initial: Duration::from_millis(5), ..Default::default() };
    let client = Arc::new(CsClient::new(&sim.endpoint, opts).unwrap());
    let ex = Arc::new(Executor::new(client.clone(), None).unwrap());
    let who = Arc::new(sim_principal(&sim, "alice"));
    let limits = LargeAnswers::new(1, THRESHOLD);
    // Once in a scope: the client learns which of the request's calls answer large.
    with_scope(limits.clone(), ex.execute(&req("DescribeInstances", &[]), &who)).await.unwrap();
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let (parked_tx, parked_rx) = tokio::sync::oneshot::channel();
    let holder = {
        let (ex, who, mut open) = (ex.clone(), who.clone(), open_rx.clone());
        tokio::spawn(with_scope(limits.clone(), async move {
            ex.execute(&req("DescribeInstances", &[]), &who).await.expect("DescribeInstances");
            parked_tx.send(()).unwrap();
            let _ = open.wait_for(|o| *o).await;
        }))
    };
    parked_rx.await.unwrap();
    let sent = client.calls();
    let waiter = {
        let (ex, who) = (ex.clone(), who.clone());
        tokio::spawn(with_scope(limits.clone(), async move {
            all(&ex.execute(&req("DescribeInstances", &[]), &who).await.expect("DescribeInstances"), "instanceId").len()
        }))
    };
    until("the second request waits", || limits.waiting() == 1).await;
    assert_eq!(client.calls(), sent, "the waiting request sent nothing to CloudStack");
    open_tx.send(true).unwrap();
    holder.await.unwrap();
    assert_eq!(waiter.await.unwrap(), VMS);
    assert!(client.calls() > sent);
    assert_eq!((limits.peak(), limits.held(), limits.waiting()), (1, 0, 0));
}

/// Through the HTTP entry: each request runs in its scope (slots taken and given back), all
/// answered.
#[tokio::test]
async fn the_gateway_gives_each_request_a_scope() {
    let sim = sim().await;
    let ex = executor(&sim, Duration::from_secs(30));
    let u = sim.user("alice").unwrap().clone();
    let mem = MemorySource::new();
    mem.insert(&u.api_key, KnownUser::cloudstack_user(&u.api_key, &u.secret_key, Some(u.account.clone())));
    let mut gw = Gateway::new(ex, Arc::new(mem));
    let limits = LargeAnswers::new(1, THRESHOLD);
    gw.large_answers = limits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, Arc::new(gw), std::future::pending(), Duration::from_secs(1)));
    let http = reqwest::Client::new();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (http, host, ak, sk) = (http.clone(), host.clone(), u.api_key.clone(), u.secret_key.clone());
            tokio::spawn(async move { describe(&http, &host, &ak, &sk).await })
        })
        .collect();
    for c in calls {
        let (status, body) = c.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.matches("<instanceId>").count(), VMS);
    }
    assert_eq!((limits.peak(), limits.held(), limits.waiting()), (1, 0, 0));
}

/// One SigV4-signed DescribeInstances POST; (status, body).
async fn describe(http: &reqwest::Client, host: &str, ak: &str, sk: &str) -> (u16, String) {
    let body = "Action=DescribeInstances&Version=2016-11-15";
    let amz_date = sigv4::format_amz_date(OffsetDateTime::now_utc());
    let ct = "application/x-www-form-urlencoded; charset=utf-8";
    let auth = sigv4::sign_authorization(
        ak,
        sk,
        "us-east-1",
        "ec2",
        &amz_date,
        "POST",
        "/",
        &[],
        &[("content-type", ct), ("host", host), ("x-amz-date", &amz_date)],
        body.as_bytes(),
    );
    let resp = http
        .post(format!("http://{host}/"))
        .header("content-type", ct)
        .header("x-amz-date", &amz_date)
        .header("authorization", auth)
        .body(body)
        .send()
        .await
        .expect("gateway answers");
    (resp.status().as_u16(), resp.text().await.unwrap())
}
