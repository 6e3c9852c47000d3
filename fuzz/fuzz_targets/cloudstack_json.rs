//! The CloudStack answer decoder (envelope, error document, async-job status): any status and
//! body decode to a value or a `CsError`, never a panic.
#![no_main]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::cloudstack_json(data));
