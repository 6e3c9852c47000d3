//! The SOAP envelope reader and the WS-Security checks: token extraction (layout, DTD refusal,
//! base64 DER) and full verification with whatever certificate the envelope carries. Never a
//! panic; an envelope not signed with the certificate's key is never accepted.
#![no_main]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::soap_wssec(data));
