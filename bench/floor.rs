//! The floor under the gateway (a program for `bench/run`, not a test): an HTTP relay built on
//! the gateway's own stack (tokio, hyper through axum, reqwest with keep-alive, CloudStack's
//! HMAC-SHA1 request signing) that does nothing but the part of a translated request no
//! translator can skip. For each request it receives it reads the body, makes the given
//! CloudStack calls in turn (signed with the given keys, as the gateway signs them), reads every
//! answer whole, optionally parses each into a `serde_json::Value` (`--parse`) and answers with
//! the first answer's bytes. No authentication, no mapping, no rendering, no store.
//!
//! `bench/run` runs it beside the simulator with the same calls the gateway makes for a
//! DescribeInstances, and prints its CPU per request: a gateway target below that figure cannot be
//! met by any code on this stack, on this machine (bench/README.md "The floor").
//!
//! ```text
//! bench_floor --listen 127.0.0.1:PORT --endpoint http://127.0.0.1:SIM/client/api \
//!     --api-key K --secret-key S --call 'command=listVirtualMachines&page=1&pagesize=500' \
//!     [--call ...] [--parse]
//! ```

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use ec2bridge::cloudstack::signing::{java_url_encode, sign};

struct Relay {
    http: reqwest::Client,
    endpoint: String,
    api_key: String,
    secret_key: String,
    /// Each call's parameters, without the key, the signature and `response=json`.
    calls: Vec<Vec<(String, String)>>,
    parse: bool,
}

impl Relay {
    /// The query string of one signed call, in the form the gateway sends (sorted names,
    /// Java's URL encoding, signature version 3 with an expiry).
    fn signed(&self, call: &[(String, String)]) -> String {
        let expires =
            ec2bridge::base::util::cloudstack_date(time::OffsetDateTime::now_utc() + time::Duration::minutes(10));
        let mut all: Vec<(&str, &str)> = call.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend([
            ("response", "json"),
            ("apiKey", self.api_key.as_str()),
            ("signatureVersion", "3"),
            ("expires", expires.as_str()),
        ]);
        all.sort_by(|a, b| a.0.cmp(b.0));
        let signature = sign(all.iter().copied(), &self.secret_key);
        let mut q = String::with_capacity(256);
        for (k, v) in all.iter().copied().chain(std::iter::once(("signature", signature.as_str()))) {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(&java_url_encode(k));
            q.push('=');
            q.push_str(&java_url_encode(v));
        }
        q
    }

    async fn answer(&self, _request_body: Bytes) -> Result<Bytes, String> {
        let mut first = None;
        for call in &self.calls {
            let url = format!("{}?{}", self.endpoint, self.signed(call));
            // Errors without the URL: it carries the key and the signature.
            let resp = self.http.get(url).send().await.map_err(|e| e.without_url().to_string())?;
            let body = resp.bytes().await.map_err(|e| e.without_url().to_string())?;
            if self.parse {
                let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                std::hint::black_box(&v);
            }
            first.get_or_insert(body);
        }
        Ok(first.unwrap_or_default())
    }
}

async fn handle(State(relay): State<Arc<Relay>>, body: Bytes) -> (http::StatusCode, Bytes) {
    match relay.answer(body).await {
        Ok(b) => (http::StatusCode::OK, b),
        Err(e) => (http::StatusCode::BAD_GATEWAY, Bytes::from(e)),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_floor --listen ADDR --endpoint URL --api-key K --secret-key S --call 'k=v&k=v' [--call ...] [--parse]"
    );
    std::process::exit(2)
}

fn main() {
    // The gateway's allocator settings (src/main.rs), so that both pay the same for memory.
    ec2bridge::ops::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| {
        eprintln!("bench_floor: {e}");
        std::process::exit(1)
    });
    runtime.block_on(relay_main())
}

async fn relay_main() {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut endpoint, mut api_key, mut secret_key) = (None, None, None, None);
    let (mut calls, mut parse) = (Vec::new(), false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--parse" => parse = true,
            "--listen" => listen = args.next(),
            "--endpoint" => endpoint = args.next(),
            "--api-key" => api_key = args.next(),
            "--secret-key" => secret_key = args.next(),
            "--call" => match args.next() {
                Some(c) => {
                    calls.push(serde_urlencoded::from_str::<Vec<(String, String)>>(&c).unwrap_or_else(|_| usage()))
                }
                None => usage(),
            },
            _ => usage(),
        }
    }
    let (Some(listen), Some(endpoint), Some(api_key), Some(secret_key)) = (listen, endpoint, api_key, secret_key)
    else {
        usage()
    };
    if calls.is_empty() {
        usage()
    }
    let relay = Arc::new(Relay { http: reqwest::Client::new(), endpoint, api_key, secret_key, calls, parse });
    let app = axum::Router::new().fallback(handle).with_state(relay);
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap_or_else(|e| {
        eprintln!("bench_floor: cannot listen on {listen}: {e}");
        std::process::exit(1)
    });
    println!("bench_floor listening on {listen}");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("bench_floor: {e}");
        std::process::exit(1)
    }
}
