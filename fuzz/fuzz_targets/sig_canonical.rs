//! SigV2 / SigV4 parsing and canonicalisation: a request made of fuzzed method, path, query,
//! body, Host, X-Amz-Date and Authorization goes through `authenticate` (scheme detection, time
//! checks, canonical request / string to sign, HMAC compare) against a known key. Never a panic,
//! and a random request is never accepted.
#![no_main]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::sig_canonical(data));
