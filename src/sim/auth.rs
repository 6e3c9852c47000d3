//! The management server's request check (docs/cloudstack-wire.md "Signing"): every parameter but
//! `signature` is signed with `crate::cloudstack::signing`; `apiKey`, `signature`,
//! `signatureVersion` and `expires` are found case-insensitively; `signatureVersion=3` requires
//! an `expires` that parses and is not in the past.

use std::collections::HashMap;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::cloudstack::signing;

fn find<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    // One value per name already; if a client sent two spellings, any one is as good as the
    // servlet's iteration order.
    params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The API key the request claims, if any.
pub fn api_key(params: &HashMap<String, String>) -> Option<&str> {
    find(params, "apikey")
}

/// Check a request against the claimed user's secret. `now` is the server clock.
/// Returns false on any failure; the caller answers 401 without saying why (as CloudStack).
pub fn verify_request(params: &HashMap<String, String>, secret_key: &str, now: OffsetDateTime) -> bool {
    let Some(signature) = find(params, "signature") else { return false };
    if api_key(params).is_none() {
        return false;
    }
    if find(params, "signatureversion") == Some("3") {
        let Some(expires) = find(params, "expires") else { return false };
        let Some(at) = parse_expires(expires) else { return false };
        if at < now {
            return false;
        }
    }
    let signed =
        params.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("signature")).map(|(k, v)| (k.as_str(), v.as_str()));
    signing::verify(signed, secret_key, signature)
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse `expires` the way modern DateUtil does: `yyyy-MM-ddTHH:mm:ss`, optional fraction, then
/// `Z`, `+hh:mm`, `+hhmm`, `+hh`, or the legacy `Z+hhmm` (a literal Z followed by an offset).
pub fn parse_expires(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    // Every accepted form is ASCII; checking first keeps the byte slicing below safe.
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let (dt, mut rest) = s.split_at(19);
    let b = dt.as_bytes();
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = num(&dt[0..4])? as i32;
    let month = Month::try_from(num(&dt[5..7])? as u8).ok()?;
    let day = num(&dt[8..10])? as u8;
    let (h, mi, se) = (num(&dt[11..13])? as u8, num(&dt[14..16])? as u8, num(&dt[17..19])? as u8);
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(&frac[..digits])? * 10u32.pow(9 - digits as u32);
        rest = &frac[digits..];
    }
    let offset_secs: i32 = if rest == "Z" || rest == "z" {
        0
    } else {
        let o = rest.strip_prefix('Z').unwrap_or(rest);
        let sign = match o.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let body = &o[1..];
        let (oh, om) = match body.len() {
            2 => (num(body)?, 0),
            4 => (num(&body[..2])?, num(&body[2..])?),
            5 if body.as_bytes()[2] == b':' => (num(&body[..2])?, num(&body[3..])?),
            _ => return None,
        };
        if oh > 18 || om > 59 {
            return None;
        }
        sign * (oh as i32 * 3600 + om as i32 * 60)
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(h, mi, se, nanos).ok()?;
    let offset = UtcOffset::from_whole_seconds(offset_secs).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn params(p: &[(&str, &str)]) -> HashMap<String, String> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn expires_formats() {
        let want = datetime!(2030-01-01 00:00:00 UTC);
        for s in [
            "2030-01-01T00:00:00+0000",
            "2030-01-01T00:00:00+00:00",
            "2030-01-01T00:00:00Z",
            "2030-01-01T00:00:00.000Z",
            "2030-01-01T00:00:00Z+0000",
            "2030-01-01T01:00:00+01",
            "2029-12-31T19:00:00-0500",
        ] {
            assert_eq!(parse_expires(s), Some(want), "{s}");
        }
        for s in [
            "2030-01-01",
            "2030-01-01T00:00:00",
            "2030-13-01T00:00:00Z",
            "garbage-and-more-chars",
            "2030-01-01T00:00:00+0",
            "é030-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_expires(s), None, "{s}");
        }
    }

    #[test]
    fn golden_vectors_verify() {
        use signing::golden;
        let now = datetime!(2026-01-01 00:00:00 UTC);
        let mut p = params(golden::LIST_ZONES);
        p.insert("signature".into(), golden::LIST_ZONES_SIGNATURE.into());
        assert!(verify_request(&p, golden::SECRET, now));
        assert!(!verify_request(&p, "sim-secret-key-0002", now));
        let mut d = params(golden::DEPLOY);
        d.insert("signature".into(), golden::DEPLOY_SIGNATURE.into());
        assert!(verify_request(&d, golden::SECRET, now));
        // Expired: same signature, server clock after `expires`.
        assert!(!verify_request(&d, golden::SECRET, datetime!(2030-01-01 00:00:01 UTC)));
        // Any changed value breaks it.
        d.insert("displayname".into(), "web server #2 (test)".into());
        assert!(!verify_request(&d, golden::SECRET, now));
    }

    #[test]
    fn version3_needs_parseable_expires() {
        let now = datetime!(2026-01-01 00:00:00 UTC);
        for expires in [None, Some("tomorrow")] {
            let mut p = params(&[("command", "listZones"), ("apiKey", "k"), ("signatureVersion", "3")]);
            if let Some(e) = expires {
                p.insert("expires".into(), e.into());
            }
            let sig = signing::sign(p.iter().map(|(k, v)| (k.as_str(), v.as_str())), "s");
            p.insert("signature".into(), sig);
            assert!(!verify_request(&p, "s", now));
        }
        // Without signatureVersion=3 a past `expires` is just another signed parameter.
        let mut p = params(&[("command", "listZones"), ("apiKey", "k"), ("expires", "2000-01-01T00:00:00Z")]);
        let sig = signing::sign(p.iter().map(|(k, v)| (k.as_str(), v.as_str())), "s");
        p.insert("signature".into(), sig);
        assert!(verify_request(&p, "s", now));
        // Missing apiKey or signature.
        assert!(!verify_request(&params(&[("command", "listZones"), ("signature", "x")]), "s", now));
    }
}
