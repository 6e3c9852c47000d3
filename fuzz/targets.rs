//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (cargo fuzz, libFuzzer)
//! and `tests/fuzz_targets.rs` (the same bodies over the committed corpora and seeded random
//! mutations of them, in `cargo test`, where no nightly toolchain is needed). Each returns
//! normally for any input; a panic or a failed assertion is the finding.
// Each fuzz binary uses one of them.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ec2bridge::auth::credentials::{KnownUser, MemorySource};
use ec2bridge::auth::wssec::{BergshamraVerifier, SoapSignatureVerifier, envelope_text, read_token};
use ec2bridge::auth::{AuthSettings, Principal, SignedRequest, authenticate};
use ec2bridge::cloudstack::{CsCredentials, CsError, JobStarted};
use ec2bridge::ec2::{Ec2Request, Frontend, Params};
use ec2bridge::ids::{IdCache, Kind};
use ec2bridge::mapping::backend::{Backend, BoxFuture};
use ec2bridge::mapping::{Executor, ExecutorOptions};
use serde_json::Value;

/// The Query / form parser: any bytes decode to pairs or a clean error; decoded pairs survive
/// the parameter model (Params, filters, lists).
pub fn query_form(data: &[u8]) {
    if let Ok(pairs) = ec2bridge::ec2::query::decode_pairs(data) {
        let params = ec2bridge::ec2::Params(pairs.into_iter().collect());
        let _ = params.filters();
        let _ = params.list("InstanceId");
        let _ = params.dry_run();
    }
}

/// SigV2 / SigV4 parsing and canonicalisation: a request of fuzzed method, path, query, body,
/// Host, X-Amz-Date and Authorization (fields separated by 0xFF) through `authenticate` against
/// a known key. A random request is never accepted.
pub fn sig_canonical(data: &[u8]) {
    let mut f = data.split(|b| *b == 0xFF);
    let mut next = || String::from_utf8_lossy(f.next().unwrap_or(b"")).into_owned();
    let method = if next().len() % 2 == 0 { "GET" } else { "POST" };
    let (path, query, body) = (next(), next(), next());
    let mut headers = http::HeaderMap::new();
    for name in ["host", "x-amz-date", "authorization"] {
        if let Ok(v) = http::HeaderValue::from_str(&next()) {
            headers.insert(name, v);
        }
    }
    let Ok(query) = ec2bridge::ec2::query::decode_pairs(query.as_bytes()) else { return };
    let form = ec2bridge::ec2::query::decode_pairs(body.as_bytes()).unwrap_or_default();
    let req =
        SignedRequest { method, path: &path, headers: &headers, query: &query, form: &form, body: body.as_bytes() };
    let _ = ec2bridge::auth::sigv2::string_to_sign(&req);
    let creds = MemorySource::new();
    creds.insert("AKIDFUZZ", KnownUser::cloudstack_user("AKIDFUZZ", "fuzz-secret", None));
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
    let settings = AuthSettings::default();
    let mut fut = std::pin::pin!(authenticate(&req, &creds, &settings, now));
    // The memory source answers at once: one poll finishes the verification.
    if let Poll::Ready(r) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        assert!(r.is_err(), "a fuzzed request was accepted");
    }
}

/// The SOAP envelope reader and WS-Security: token extraction (layout, DTD refusal, base64 DER)
/// and full verification with whatever certificate the envelope carries.
pub fn soap_wssec(data: &[u8]) {
    let Ok(text) = envelope_text(data) else { return };
    let Ok(token) = read_token(text) else { return };
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
    let _ = BergshamraVerifier.verify(text, &token, now);
}

/// The CloudStack answer decoder (envelope, error documents, async-job status): the first byte
/// picks the HTTP status.
pub fn cloudstack_json(data: &[u8]) {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (200 + u16::from(*s) * 2, rest),
        None => (200, data),
    };
    for command in ["listVirtualMachines", "queryAsyncJobResult", "deployVirtualMachine"] {
        let _ = ec2bridge::cloudstack::client::decode_answer(command, status, body);
    }
}

/// The read-only actions `cloudstack_render` drives (the input's first byte picks one).
pub const RENDER_ACTIONS: &[&str] = &[
    "DescribeAddresses",
    "DescribeAvailabilityZones",
    "DescribeImages",
    "DescribeImageAttribute",
    "DescribeInstanceAttribute",
    "DescribeInstanceStatus",
    "DescribeInstanceTypes",
    "DescribeInstances",
    "DescribeKeyPairs",
    "DescribeNatGateways",
    "DescribeNetworkAcls",
    "DescribeNetworkInterfaces",
    "DescribeRegions",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSubnets",
    "DescribeTags",
    "DescribeVolumes",
    "DescribeVolumeStatus",
    "DescribeVpcs",
    "DescribeRouteTables",
    "DescribeInternetGateways",
    "DescribeVpnConnections",
    "DescribeCustomerGateways",
    "GetConsoleOutput",
    "GetPasswordData",
];

/// A CloudStack that answers every call with the same document (the fuzzed one), and the id
/// cache of the executor, both emptied before each input: nothing carries one input into the next.
#[derive(Default)]
struct Canned {
    answer: std::sync::Mutex<Value>,
    ids: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Canned {
    fn answer(&self, command: &str) -> Result<Value, CsError> {
        let v = self.answer.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // An error document in CloudStack's shape is the call's error (cserr mapping).
        if let Some(code) = v.get("errorcode").and_then(Value::as_u64) {
            return Err(CsError::Api {
                command: command.into(),
                errorcode: u16::try_from(code).unwrap_or(u16::MAX),
                cserrorcode: v.get("cserrorcode").and_then(Value::as_u64).and_then(|c| u32::try_from(c).ok()),
                text: v.get("errortext").and_then(Value::as_str).unwrap_or("").into(),
            });
        }
        Ok(v)
    }
}

impl Backend for Canned {
    fn call<'a>(
        &'a self,
        _: &'a CsCredentials,
        command: &'a str,
        _: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Value, CsError>> {
        Box::pin(std::future::ready(self.answer(command)))
    }

    fn list_all<'a>(
        &'a self,
        _: &'a CsCredentials,
        command: &'a str,
        _: &'a [(String, String)],
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CsError>> {
        Box::pin(std::future::ready(self.answer(command).and_then(|v| match v {
            Value::Array(a) => Ok(a),
            Value::Null => Ok(Vec::new()),
            other => Err(CsError::BadResponse(other.to_string())),
        })))
    }

    fn start_job<'a>(
        &'a self,
        _: &'a CsCredentials,
        command: &'a str,
        _: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<JobStarted, CsError>> {
        let err =
            CsError::Api { command: command.into(), errorcode: 431, cserrorcode: None, text: "no jobs here".into() };
        Box::pin(std::future::ready(Err(err)))
    }

    fn wait_job<'a>(
        &'a self,
        _: &'a CsCredentials,
        command: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Value, CsError>> {
        Box::pin(std::future::ready(self.answer(command)))
    }
}

impl IdCache for Canned {
    fn lookup<'a>(&'a self, ec2_id: &'a str) -> BoxFuture<'a, Option<String>> {
        let found = self.ids.lock().unwrap_or_else(|e| e.into_inner()).get(ec2_id).cloned();
        Box::pin(std::future::ready(found))
    }

    fn record<'a>(&'a self, entries: Vec<(Kind, String, String)>) -> BoxFuture<'a, ()> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.extend(entries.into_iter().map(|(_, id, uuid)| (id, uuid)));
        Box::pin(std::future::ready(()))
    }
}

struct Render {
    runtime: tokio::runtime::Runtime,
    canned: Arc<Canned>,
    executor: Executor,
}

thread_local! {
    // The table loads once per thread; lists are never reused (metadata_ttl 0).
    static RENDER: Render = {
        let canned = Arc::new(Canned::default());
        let opts = ExecutorOptions { metadata_ttl: std::time::Duration::ZERO, ..ExecutorOptions::default() };
        let executor = Executor::with_backend(canned.clone(), None, opts)
            .and_then(|e| e.with_id_cache(canned.clone()))
            .expect("the built-in table loads");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        Render { runtime, canned, executor }
    };
}

/// Load the mapping table before the first input (libFuzzer's init): in an unoptimised
/// instrumented build the load alone takes longer than the per-input timeout.
pub fn cloudstack_render_init() {
    RENDER.with(|_| ());
}

/// The mapping table over arbitrary CloudStack answers: expression evaluation, converters,
/// filters, paging and XML rendering. The first byte picks a read-only action; the bytes up to
/// the next 0xFF are its EC2 parameters (a Query string: ids, filters, paging); the rest is the
/// JSON document every CloudStack call answers. The result is an EC2 error or well-formed XML.
pub fn cloudstack_render(data: &[u8]) {
    let Some((pick, rest)) = data.split_first() else { return };
    let (query, json) = match rest.iter().position(|b| *b == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b""[..], rest),
    };
    let Ok(pairs) = ec2bridge::ec2::query::decode_pairs(query) else { return };
    let Ok(answer) = serde_json::from_slice::<Value>(json) else { return };
    let action = RENDER_ACTIONS[usize::from(*pick) % RENDER_ACTIONS.len()];
    let req = Ec2Request {
        request_id: "fuzz".into(),
        action: action.into(),
        version: "2016-11-15".into(),
        params: Params(pairs.into_iter().collect()),
        frontend: Frontend::Query,
        host: None,
    };
    let who = Principal {
        access_key: "AKIDFUZZ".into(),
        cloudstack: CsCredentials { api_key: "AKIDFUZZ".into(), secret_key: "fuzz-secret".into() },
        account: Some("alice".into()),
        account_id: Some("9da63228-a384-4532-9487-8bb4510950ec".into()),
    };
    let result = RENDER.with(|r| {
        *r.canned.answer.lock().unwrap_or_else(|e| e.into_inner()) = answer;
        r.canned.ids.lock().unwrap_or_else(|e| e.into_inner()).clear();
        r.runtime.block_on(r.executor.execute(&req, &who))
    });
    if let Ok(xml) = result {
        let doc = format!("<r>{xml}</r>");
        if let Err(e) = roxmltree::Document::parse(&doc) {
            panic!("{action} rendered XML that does not parse ({e}): {xml}");
        }
    }
}
