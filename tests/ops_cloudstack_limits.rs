//! The CloudStack client's concurrency caps (overall and per API key: further calls wait, none is
//! refused) and the request id it forwards as `X-Request-Id`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use ec2bridge::cloudstack::{ClientOptions, CsClient, CsCredentials};

#[derive(Default)]
struct Slow {
    now: AtomicUsize,
    peak: AtomicUsize,
    ids: std::sync::Mutex<Vec<String>>,
}

async fn api(State(s): State<Arc<Slow>>, RawQuery(_q): RawQuery, headers: http::HeaderMap) -> Response {
    let n = s.now.fetch_add(1, Ordering::SeqCst) + 1;
    s.peak.fetch_max(n, Ordering::SeqCst);
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        s.ids.lock().unwrap().push(id.to_string());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.now.fetch_sub(1, Ordering::SeqCst);
    ([("content-type", "application/json")], r#"{"listzonesresponse":{"count":0}}"#).into_response()
}

async fn start() -> (Arc<Slow>, String) {
    let s = Arc::new(Slow::default());
    let app = axum::Router::new().fallback(api).with_state(s.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (s, format!("http://{addr}/client/api"))
}

fn creds(k: &str) -> CsCredentials {
    CsCredentials { api_key: k.into(), secret_key: "s".into() }
}

async fn burst(client: &CsClient, keys: &[&str], each: usize) {
    let mut tasks = Vec::new();
    for k in keys {
        for _ in 0..each {
            let c = client.clone();
            let cr = creds(k);
            tasks.push(tokio::spawn(async move { c.call(&cr, "listZones", &[]).await }));
        }
    }
    for t in tasks {
        t.await.unwrap().expect("every call completes: the caps make calls wait, never fail");
    }
}

#[tokio::test]
async fn calls_per_key_wait_for_a_slot() {
    let (s, url) = start().await;
    let opts = ClientOptions { max_concurrent_per_key: 2, ..Default::default() };
    let client = CsClient::new(&url, opts).unwrap();
    burst(&client, &["alice"], 8).await;
    assert_eq!(s.peak.load(Ordering::SeqCst), 2);
    // Two keys: each has its own slots.
    s.peak.store(0, Ordering::SeqCst);
    burst(&client, &["alice", "bob"], 6).await;
    assert_eq!(s.peak.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn calls_overall_wait_for_a_slot() {
    let (s, url) = start().await;
    let opts = ClientOptions { max_concurrent: 3, max_concurrent_per_key: 2, ..Default::default() };
    let client = CsClient::new(&url, opts).unwrap();
    burst(&client, &["a", "b", "c", "d"], 4).await;
    assert_eq!(s.peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_request_id_goes_to_cloudstack() {
    let (s, url) = start().await;
    let client = CsClient::new(&url, ClientOptions::default()).unwrap();
    ec2bridge::ops::with_request_id(Arc::from("rid-1234"), client.call(&creds("a"), "listZones", &[])).await.unwrap();
    client.call(&creds("a"), "listZones", &[]).await.unwrap();
    assert_eq!(*s.ids.lock().unwrap(), vec!["rid-1234".to_string()]);
}

#[test]
fn a_bad_ca_bundle_is_named() {
    let p = std::env::temp_dir().join(format!("ec2bridge-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&p, "not a certificate").unwrap();
    let opts = ClientOptions { ca_bundle: Some(p.clone()), ..Default::default() };
    let e = CsClient::new("https://cs.invalid/client/api", opts).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()), "{e}");
    std::fs::remove_file(&p).unwrap();
    let opts = ClientOptions { ca_bundle: Some(p.clone()), ..Default::default() };
    let e = CsClient::new("https://cs.invalid/client/api", opts).unwrap_err().to_string();
    assert!(e.contains("reading CA bundle"), "{e}");
}
