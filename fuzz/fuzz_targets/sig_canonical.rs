//! SigV2 / SigV4 parsing and canonicalisation: a request made of fuzzed method, path, query,
//! body, Host, X-Amz-Date and Authorization goes through `authenticate` (scheme detection, time
//! checks, canonical request / string to sign, HMAC compare) against a known key. Never a panic,
//! and a random request is never accepted.
#![no_main]
use std::future::Future;
use std::task::{Context, Poll, Waker};

use ec2bridge::auth::credentials::{KnownUser, MemorySource};
use ec2bridge::auth::{AuthSettings, SignedRequest, authenticate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Fields separated by 0xFF: method, path, query, body, host, x-amz-date, authorization.
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
    let req = SignedRequest { method, path: &path, headers: &headers, query: &query, form: &form, body: body.as_bytes() };
    let _ = ec2bridge::auth::sigv2::string_to_sign(&req);
    let creds = MemorySource::new();
    creds.insert("AKIDFUZZ", KnownUser::cloudstack_user("AKIDFUZZ", "fuzz-secret", None));
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let settings = AuthSettings::default();
    let mut fut = std::pin::pin!(authenticate(&req, &creds, &settings, now));
    // The memory source answers at once: one poll finishes the verification.
    if let Poll::Ready(r) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        assert!(r.is_err(), "a fuzzed request was accepted");
    }
});
