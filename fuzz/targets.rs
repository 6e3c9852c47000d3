//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (cargo fuzz, libFuzzer)
//! and `tests/fuzz_targets.rs` (the same bodies over the committed corpora and seeded random
//! mutations of them, in `cargo test`, where no nightly toolchain is needed). Each returns
//! normally for any input; a panic or a failed assertion is the finding.
// Each fuzz binary uses one of them.
#![allow(dead_code)]

use std::future::Future;
use std::task::{Context, Poll, Waker};

use ec2bridge::auth::credentials::{KnownUser, MemorySource};
use ec2bridge::auth::wssec::{BergshamraVerifier, SoapSignatureVerifier, envelope_text, read_token};
use ec2bridge::auth::{AuthSettings, SignedRequest, authenticate};

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
