//! The CloudStack client against a small in-test CloudStack: it verifies every request's signature
//! exactly as the management server does (signing::verify over the servlet-decoded parameters,
//! signatureVersion=3, a future `expires`) and serves canned CloudStack JSON.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ec2bridge::cloudstack::signing;
use ec2bridge::cloudstack::{ClientOptions, CsClient, CsCredentials, CsError};
use serde_json::{Value, json};

const KEY: &str = "test-api-key";
const SECRET: &str = "test-secret-Key+/=";
const VMS: usize = 1234;

#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    peer: SocketAddr,
    command: String,
    params: Vec<(String, String)>,
}

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
    polls: Mutex<HashMap<String, u32>>,
}

impl Fake {
    fn commands(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|s| s.command.clone()).collect()
    }
}

fn json_answer(status: u16, v: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), [("content-type", "application/json; charset=UTF-8")], v.to_string())
        .into_response()
}

fn expires_ok(v: &str) -> bool {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000");
    let Ok(t) = time::PrimitiveDateTime::parse(v, &fmt) else { return false };
    let t = t.assume_utc();
    let now = time::OffsetDateTime::now_utc();
    t > now && t <= now + time::Duration::minutes(15)
}

async fn api(
    State(fake): State<Arc<Fake>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    // Parameters as the servlet sees them: query and form, percent-decoded, `+` as a space.
    let mut params: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap();
    if method == Method::POST {
        params.extend(serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap());
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let command = get("command").unwrap_or_default();
    let env = format!("{}response", command.to_lowercase());
    let signature = get("signature").unwrap_or_default();
    let authentic = get("apiKey").as_deref() == Some(KEY)
        && get("response").as_deref() == Some("json")
        && get("signatureVersion").as_deref() == Some("3")
        && get("expires").is_some_and(|e| expires_ok(&e))
        && signing::verify(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), SECRET, &signature);
    if !authentic {
        return json_answer(
            401,
            json!({ env: {"uuidList": [], "errorcode": 401,
                "errortext": "unable to verify user credentials and/or request signature"}}),
        );
    }
    let user: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| {
            !["command", "response", "apiKey", "signature", "signatureVersion", "expires"].contains(&k.as_str())
        })
        .cloned()
        .collect();
    fake.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        peer,
        command: command.clone(),
        params: user.clone(),
    });

    match command.as_str() {
        "listZones" => json_answer(200, json!({ env: {"count": 1, "zone": [{"id": "z1", "name": "zone1"}]}})),
        "echo" => json_answer(200, json!({ env: {"params": user.iter().cloned().collect::<HashMap<_, _>>()}})),
        "listVirtualMachines" => {
            let page: usize = get("page").unwrap().parse().unwrap();
            let size: usize = get("pagesize").unwrap().parse().unwrap();
            let start = size * (page - 1);
            let rows: Vec<Value> = (start..VMS.min(start + size)).map(|i| json!({"id": format!("vm-{i}")})).collect();
            if rows.is_empty() {
                json_answer(200, json!({ env: {"count": VMS}}))
            } else {
                json_answer(200, json!({ env: {"count": VMS, "virtualmachine": rows}}))
            }
        }
        // An old release: no `count` at all.
        "listOld" => json_answer(200, json!({ env: {"thing": [{"id": 1}, {"id": 2}, {"id": 3}]}})),
        "listEmpty" => json_answer(200, json!({ env: {}})),
        "listServiceOfferings" => {
            let n = fake.commands().iter().filter(|c| *c == "listServiceOfferings").count();
            json_answer(200, json!({ env: {"count": 1, "serviceoffering": [{"id": "so", "generation": n}]}}))
        }
        "deployVirtualMachine" => json_answer(200, json!({ env: {"id": "vm-new", "jobid": "job-ok"}})),
        "stopVirtualMachine" => json_answer(200, json!({ env: {"jobid": "job-fail"}})),
        "rebootVirtualMachine" => json_answer(200, json!({ env: {"jobid": "job-stuck"}})),
        "destroyVirtualMachine" => json_answer(200, json!({ env: {"jobid": 17177}})),
        "queryAsyncJobResult" => {
            let jobid = get("jobid").unwrap();
            let n = {
                let mut polls = fake.polls.lock().unwrap();
                let n = polls.entry(jobid.clone()).or_insert(0);
                *n += 1;
                *n
            };
            if jobid == "job-flaky" && n == 1 {
                // A proxy in front of CloudStack failing once.
                return (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response();
            }
            let job = match (jobid.as_str(), n) {
                (_, 1) | ("job-ok", 2) | ("job-stuck", _) => {
                    json!({"jobid": jobid, "jobstatus": 0, "jobprocstatus": 0})
                }
                ("job-ok" | "job-flaky", _) => {
                    json!({"jobid": jobid, "jobstatus": 1, "jobresultcode": 0, "jobresulttype": "object",
                    "jobresult": {"virtualmachine": {"id": "vm-new", "state": "Running"}}})
                }
                ("job-fail", _) => {
                    json!({"jobid": jobid, "jobstatus": 2, "jobresultcode": 530, "jobresulttype": "object",
                    "jobresult": {"errorcode": 431, "errortext": "VM is not in a state to stop"}})
                }
                // The oldest failure form, and a cancelled job.
                ("17177", _) => json!({"jobid": 17177, "jobstatus": "2"}),
                _ => json!({"jobid": jobid, "jobstatus": 3, "jobresultcode": 535}),
            };
            json_answer(200, json!({ env: job}))
        }
        "deleteVolume" => json_answer(200, json!({ env: {"success": "true"}})),
        "deleteSnapshot" => json_answer(200, json!({ env: {"success": true, "displaytext": "ok"}})),
        "badParam" => json_answer(
            431,
            json!({ env: {"uuidList": [], "errorcode": 431, "cserrorcode": 4350,
                "errortext": "Unable to find service offering: 104"}}),
        ),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json_answer(200, json!({ env: {}}))
        }
        _ => json_answer(
            432,
            json!({"errorresponse": {"uuidList": [], "errorcode": 432, "cserrorcode": 9999,
            "errortext": format!("Unknown API command: {command}")}}),
        ),
    }
}

async fn start() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new().route("/client/api", axum::routing::any(api)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    (fake, format!("http://{addr}/client/api"))
}

fn opts() -> ClientOptions {
    ClientOptions {
        call_timeout: Duration::from_millis(500),
        job_timeout: Duration::from_secs(5),
        poll_initial: Duration::from_millis(5),
        ..Default::default()
    }
}

fn creds() -> CsCredentials {
    CsCredentials { api_key: KEY.into(), secret_key: SECRET.into() }
}

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn signed_call_and_keep_alive() {
    let (fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    for _ in 0..5 {
        let r = c.call(&creds(), "listZones", &[]).await.unwrap();
        assert_eq!(r["zone"][0]["name"], "zone1");
    }
    assert_eq!(c.calls(), 5);
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|s| s.method == Method::GET));
    // One pooled connection serves sequential calls.
    assert!(seen.iter().all(|s| s.peer == seen[0].peer), "connections were not reused: {seen:?}");
    // Clones share the pool and the counter.
    let c2 = c.clone();
    c2.call(&creds(), "listZones", &[]).await.unwrap();
    assert_eq!(c.calls(), 6);
}

#[tokio::test]
async fn values_reach_the_server_intact() {
    let (_fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    let tricky = "a+b c/d=e&f%20~ü*'()";
    let r = c
        .call(&creds(), "echo", &p(&[("displayname", tricky), ("tags[0].key", "Name"), ("tags[0].value", "x+y")]))
        .await
        .unwrap();
    assert_eq!(r["params"]["displayname"], tricky);
    assert_eq!(r["params"]["tags[0].key"], "Name");
    assert_eq!(r["params"]["tags[0].value"], "x+y");
}

#[tokio::test]
async fn long_queries_are_posted() {
    let (fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    // 24 KB of base64 userdata, `+` and `/` included.
    let userdata: String = "QUJD+/9z".repeat(3 * 1024);
    let r = c.call(&creds(), "echo", &p(&[("userdata", &userdata)])).await.unwrap();
    assert_eq!(r["params"]["userdata"], userdata.as_str());
    let short = c.call(&creds(), "echo", &p(&[("userdata", "QUJD+/9z")])).await.unwrap();
    assert_eq!(short["params"]["userdata"], "QUJD+/9z");
    let methods: Vec<Method> = fake.seen.lock().unwrap().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, vec![Method::POST, Method::GET]);
}

#[tokio::test]
async fn list_all_pages_until_count() {
    let (fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    let vms = c.list_all(&creds(), "listVirtualMachines", &p(&[("listall", "true")]), "virtualmachine").await.unwrap();
    assert_eq!(vms.len(), VMS);
    let ids: std::collections::HashSet<_> = vms.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), VMS);
    assert_eq!(c.calls(), 3);
    let seen = fake.seen.lock().unwrap().clone();
    for (i, s) in seen.iter().enumerate() {
        let get = |k: &str| s.params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("page"), Some((i + 1).to_string().as_str()));
        assert_eq!(get("pagesize"), Some("500"));
        assert_eq!(get("listall"), Some("true"));
    }

    let old = c.list_all(&creds(), "listOld", &[], "thing").await.unwrap();
    assert_eq!(old.len(), 3);
    let none = c.list_all(&creds(), "listEmpty", &[], "thing").await.unwrap();
    assert!(none.is_empty());
    assert_eq!(c.calls(), 5);
}

#[tokio::test]
async fn async_job_succeeds() {
    let (fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    let job = c.start_job(&creds(), "deployVirtualMachine", &p(&[("zoneid", "z1")])).await.unwrap();
    assert_eq!(job.jobid, "job-ok");
    assert_eq!(job.id.as_deref(), Some("vm-new"));
    let r = c.wait_job(&creds(), "deployVirtualMachine", &job.jobid).await.unwrap();
    assert_eq!(r["virtualmachine"]["state"], "Running");
    assert_eq!(*fake.polls.lock().unwrap().get("job-ok").unwrap(), 3);
    assert_eq!(c.calls(), 4);
}

#[tokio::test]
async fn job_polling_survives_a_transport_blip() {
    let (fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    let r = c.wait_job(&creds(), "deployVirtualMachine", "job-flaky").await.unwrap();
    assert_eq!(r["virtualmachine"]["state"], "Running");
    assert_eq!(*fake.polls.lock().unwrap().get("job-flaky").unwrap(), 2);
}

#[tokio::test]
async fn async_job_failures() {
    let (_fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    let job = c.start_job(&creds(), "stopVirtualMachine", &p(&[("id", "vm-1")])).await.unwrap();
    assert_eq!(job.id, None);
    match c.wait_job(&creds(), "stopVirtualMachine", &job.jobid).await {
        Err(CsError::JobFailed { command, errorcode: 431, .. }) => assert_eq!(command, "stopVirtualMachine"),
        other => panic!("expected JobFailed 431, got {other:?}"),
    }
    // Integer job ids and string job status, as in the oldest releases.
    let job = c.start_job(&creds(), "destroyVirtualMachine", &p(&[("id", "vm-1")])).await.unwrap();
    assert_eq!(job.jobid, "17177");
    assert!(matches!(
        c.wait_job(&creds(), "destroyVirtualMachine", &job.jobid).await,
        Err(CsError::JobFailed { errorcode: 530, .. })
    ));
    assert!(matches!(c.wait_job(&creds(), "x", "job-cancelled").await, Err(CsError::JobFailed { errorcode: 535, .. })));
}

#[tokio::test]
async fn async_job_deadline() {
    let (_fake, ep) = start().await;
    let mut o = opts();
    o.job_timeout = Duration::from_millis(400);
    let c = CsClient::new(&ep, o).unwrap();
    let t = Instant::now();
    match c.wait_job(&creds(), "rebootVirtualMachine", "job-stuck").await {
        Err(CsError::JobTimeout { jobid, .. }) => assert_eq!(jobid, "job-stuck"),
        other => panic!("expected JobTimeout, got {other:?}"),
    }
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(1500), "{took:?}");
    // Backoff: far fewer polls than 400 ms / 5 ms.
    assert!(c.calls() < 20, "{} polls", c.calls());
}

#[tokio::test]
async fn many_jobs_wait_without_blocking_threads() {
    // A current-thread runtime would stall if wait_job blocked; 50 concurrent waits must overlap.
    let (_fake, ep) = start().await;
    let mut o = opts();
    o.job_timeout = Duration::from_millis(300);
    let c = CsClient::new(&ep, o).unwrap();
    let t = Instant::now();
    let waits = (0..50).map(|_| {
        let c = c.clone();
        async move { c.wait_job(&creds(), "rebootVirtualMachine", "job-stuck").await }
    });
    let results = futures_join_all(waits).await;
    assert!(results.iter().all(|r| matches!(r, Err(CsError::JobTimeout { .. }))));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn errors_are_decoded_by_code() {
    let (_fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    match c.call(&creds(), "badParam", &[]).await {
        Err(CsError::Api { command, errorcode: 431, cserrorcode: Some(4350), text }) => {
            assert_eq!(command, "badParam");
            assert!(!text.is_empty());
        }
        other => panic!("expected 431/4350, got {other:?}"),
    }
    match c.call(&creds(), "noSuchCommand", &[]).await {
        Err(CsError::Api { errorcode: 432, cserrorcode: Some(9999), .. }) => {}
        other => panic!("expected 432, got {other:?}"),
    }
    let wrong = CsCredentials { api_key: KEY.into(), secret_key: "not-the-secret".into() };
    match c.call(&wrong, "listZones", &[]).await {
        Err(e @ CsError::Api { errorcode: 401, cserrorcode: None, .. }) => {
            let text = e.to_string();
            assert!(!text.contains("not-the-secret") && !text.contains("signature="), "{text}");
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn success_as_bool_or_string() {
    let (_fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    let old = c.call(&creds(), "deleteVolume", &p(&[("id", "v")])).await.unwrap();
    assert_eq!(old["success"], json!(true));
    let new = c.call(&creds(), "deleteSnapshot", &p(&[("id", "s")])).await.unwrap();
    assert_eq!(new["success"], json!(true));
    assert_eq!(ec2bridge::cloudstack::client::success_flag(&old), Some(true));
}

#[tokio::test]
async fn deadline_and_transport_errors() {
    let (_fake, ep) = start().await;
    let c = CsClient::new(&ep, opts()).unwrap();
    let t = Instant::now();
    match c.call(&creds(), "slow", &[]).await {
        Err(CsError::Transport(msg)) => {
            assert!(!msg.contains(SECRET) && !msg.contains("signature"), "{msg}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_millis(1500), "deadline not kept: {:?}", t.elapsed());

    // Nothing listens on this port once the listener is dropped.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = CsClient::new(&format!("http://127.0.0.1:{port}/client/api"), opts()).unwrap();
    match dead.call(&creds(), "listZones", &[]).await {
        Err(CsError::Transport(msg)) => {
            assert!(!msg.contains(SECRET) && !msg.contains("signature") && !msg.contains(KEY), "{msg}");
            assert!(msg.contains("listZones") && msg.contains(&port.to_string()), "{msg}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(matches!(CsClient::new("not a url", opts()), Err(CsError::Transport(_))));
    assert!(matches!(CsClient::new("ftp://h/x", opts()), Err(CsError::Transport(_))));
}
