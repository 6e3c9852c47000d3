//! The SOAP envelope reader and the WS-Security checks: token extraction (layout, DTD refusal,
//! base64 DER) and full verification with whatever certificate the envelope carries. Never a
//! panic; an envelope not signed with the certificate's key is never accepted.
#![no_main]
use ec2bridge::auth::wssec::{BergshamraVerifier, SoapSignatureVerifier, envelope_text, read_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = envelope_text(data) else { return };
    let Ok(token) = read_token(text) else { return };
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let _ = BergshamraVerifier.verify(text, &token, now);
});
