//! EC2 Query Signature Version 2 (docs/ec2-wire.md "SigV2"): HmacSHA256 or HmacSHA1 over
//! `METHOD \n lowercase(Host) \n path \n canonical(decoded params minus Signature)`.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AuthSettings, SignedRequest, canonical_query, ct_eq};
use crate::base::{Code, Ec2Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    HmacSha256,
    HmacSha1,
}

/// When the request says it was made (`Timestamp`) or until when it is valid (`Expires`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Timestamp(OffsetDateTime),
    Expires(OffsetDateTime),
}

/// The SigV2 parameters of one request, parsed but not yet verified. Debug leaves out the signature.
pub struct V2Auth<'a> {
    pub access_key: &'a str,
    pub method: Method,
    pub validity: Validity,
    validity_text: &'a str,
    signature: &'a str,
}

impl std::fmt::Debug for V2Auth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V2Auth")
            .field("access_key", &self.access_key)
            .field("method", &self.method)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl<'a> V2Auth<'a> {
    pub fn parse(req: &SignedRequest<'a>) -> Result<Self, Ec2Error> {
        match req.param("SignatureVersion") {
            Some("2") => {}
            Some(v) => {
                return Err(Ec2Error::invalid_value("SignatureVersion", v, "Only signature version 2 is supported."));
            }
            None => {
                return Err(Ec2Error::incomplete_signature("The request must contain the parameter SignatureVersion"));
            }
        }
        if req.param("SecurityToken").is_some() {
            return Err(security_token_unsupported());
        }
        let access_key = match req.param("AWSAccessKeyId") {
            Some(k) if !k.is_empty() => k,
            _ => return Err(Ec2Error::missing_authentication_token()),
        };
        let signature = match req.param("Signature") {
            Some(s) if !s.is_empty() => s,
            _ => return Err(Ec2Error::incomplete_signature("The request must contain the parameter Signature")),
        };
        let method = match req.param("SignatureMethod") {
            Some("HmacSHA256") => Method::HmacSha256,
            Some("HmacSHA1") => Method::HmacSha1,
            Some(m) => {
                return Err(Ec2Error::invalid_value("SignatureMethod", m, "Use HmacSHA256 or HmacSHA1."));
            }
            None => {
                return Err(Ec2Error::incomplete_signature("The request must contain the parameter SignatureMethod"));
            }
        };
        let (validity, validity_text) = validity_of(req.param("Timestamp"), req.param("Expires"))?;
        Ok(V2Auth { access_key, method, validity, validity_text, signature })
    }

    pub fn check_time(&self, now: OffsetDateTime, settings: &AuthSettings) -> Result<(), Ec2Error> {
        check_validity(self.validity, self.validity_text, now, settings.max_skew, settings.max_presign_expires)
    }

    pub fn verify(&self, req: &SignedRequest<'_>, secret: &str) -> Result<(), Ec2Error> {
        let expected = sign(self.method, secret, &string_to_sign(req));
        if ct_eq(expected.as_bytes(), self.signature.as_bytes()) { Ok(()) } else { Err(Ec2Error::signature_mismatch()) }
    }
}

/// The request's `Timestamp` or `Expires` (exactly one of them), parsed; with its text.
pub(crate) fn validity_of<'a>(
    timestamp: Option<&'a str>,
    expires: Option<&'a str>,
) -> Result<(Validity, &'a str), Ec2Error> {
    match (timestamp, expires) {
        (Some(_), Some(_)) => {
            Err(Ec2Error::combination("The parameter Timestamp cannot be used with the parameter Expires"))
        }
        (Some(t), None) => Ok((Validity::Timestamp(parse_time("Timestamp", t)?), t)),
        (None, Some(e)) => Ok((Validity::Expires(parse_time("Expires", e)?), e)),
        (None, None) => Err(Ec2Error::missing_parameter("Timestamp")),
    }
}

/// AWS: too old, too far in the future (Timestamp), or past its Expires, each with `skew` (15
/// minutes) of allowed clock difference. `text` is the value as sent, for the message.
///
/// `Expires` is also bounded ahead: at most `max_ahead` (+ `skew`) from now, the same bound as a
/// SigV4 presigned URL's `X-Amz-Expires` (AWS: one week). Without it a URL signed for 2099 would
/// work until then, and a captured registration call could be replayed for good.
pub(crate) fn check_validity(
    validity: Validity,
    text: &str,
    now: OffsetDateTime,
    skew: std::time::Duration,
    max_ahead: std::time::Duration,
) -> Result<(), Ec2Error> {
    let text = truncate(text);
    match validity {
        Validity::Timestamp(t) => {
            if (now - t).unsigned_abs() > skew {
                return Err(Ec2Error::request_expired(format_args!("Timestamp date is {text}")));
            }
        }
        Validity::Expires(e) => {
            let limit = super::later(now, max_ahead).and_then(|l| super::later(l, skew));
            if limit.is_none_or(|limit| e > limit) {
                return Err(Ec2Error::invalid_value(
                    "Expires",
                    text,
                    &format!("It must be at most {} seconds after the current time.", max_ahead.as_secs()),
                ));
            }
            if super::later(e, skew).is_none_or(|end| now > end) {
                return Err(Ec2Error::request_expired(format_args!("Expires date is {text}")));
            }
        }
    }
    Ok(())
}

/// Until when a request with this validity is accepted (for single-use records).
pub(crate) fn valid_until(validity: Validity, skew: std::time::Duration) -> OffsetDateTime {
    let t = match validity {
        Validity::Timestamp(t) | Validity::Expires(t) => t,
    };
    super::later(t, skew).unwrap_or(t)
}

/// SigV2 as the registration calls are signed: the standard string to sign (decoded pairs,
/// RFC 3986 re-encoded, sorted) or the old registration script's, the raw still-encoded pairs as
/// sent, sorted (its `cert` value is Python `quote_plus(PEM)`, space as `+`, which the standard
/// form would spell `%20`); the host as sent or lowercased. `decoded` and `raw` are the same
/// parameters; `Signature` is left out of both here.
#[allow(clippy::too_many_arguments)]
pub fn verify_either_form(
    http_method: &str,
    host: &str,
    path: &str,
    decoded: &[(String, String)],
    raw: &str,
    method: Method,
    secret: &str,
    signature: &str,
) -> Result<(), Ec2Error> {
    let standard =
        canonical_query(decoded.iter().filter(|(k, _)| k != "Signature").map(|(k, v)| (k.as_str(), v.as_str())));
    let mut raw_pairs: Vec<&str> =
        raw.split('&').filter(|p| !p.is_empty() && p.split('=').next() != Some("Signature")).collect();
    raw_pairs.sort_by(|a, b| a.split('=').next().cmp(&b.split('=').next()).then(a.cmp(b)));
    let raw = raw_pairs.join("&");
    let path = if path.is_empty() { "/" } else { path };
    let mut ok = false;
    for host in [host.to_string(), host.to_ascii_lowercase()] {
        for query in [&standard, &raw] {
            let sts = format!("{http_method}\n{host}\n{path}\n{query}");
            // No early exit: every candidate costs the same whichever matches.
            ok |= ct_eq(sign(method, secret, &sts).as_bytes(), signature.as_bytes());
        }
    }
    if ok { Ok(()) } else { Err(Ec2Error::signature_mismatch()) }
}

/// Client text quoted in an error message, bounded.
pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub(crate) fn security_token_unsupported() -> Ec2Error {
    Ec2Error::new(Code::AuthFailure, "Temporary credentials (security tokens) are not supported by this endpoint.")
}

/// ISO 8601 as AWS clients send it: `YYYY-MM-DDThh:mm:ssZ`, also with fractional seconds and a
/// `±hh:mm` offset (Java/.NET clients); without any zone it is taken as UTC.
pub(crate) fn parse_time(param: &str, value: &str) -> Result<OffsetDateTime, Ec2Error> {
    let v = value.trim();
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(t);
    }
    let with_zone = format!("{v}Z");
    OffsetDateTime::parse(&with_zone, &Rfc3339)
        .map_err(|_| Ec2Error::invalid_value(param, value, "Expected an ISO 8601 date such as 2016-11-15T12:00:00Z."))
}

/// `METHOD\nhost\npath\ncanonical-query` over query and body parameters except `Signature`.
pub fn string_to_sign(req: &SignedRequest<'_>) -> String {
    let host = req.header_str("host").unwrap_or("").to_ascii_lowercase();
    let path = if req.path.is_empty() { "/" } else { req.path };
    let params = req
        .query
        .iter()
        .chain(req.form.iter())
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (k.as_str(), v.as_str()));
    format!("{}\n{}\n{}\n{}", req.method, host, path, canonical_query(params))
}

/// base64(HMAC(secret, string_to_sign)).
pub fn sign(method: Method, secret: &str, string_to_sign: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    match method {
        Method::HmacSha256 => {
            let mut mac =
                <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
            mac.update(string_to_sign.as_bytes());
            b64.encode(mac.finalize().into_bytes())
        }
        Method::HmacSha1 => {
            let mut mac =
                <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
            mac.update(string_to_sign.as_bytes());
            b64.encode(mac.finalize().into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use time::macros::datetime;

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn headers(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", host.parse().unwrap());
        h
    }

    fn v2_1_params(sig: &str) -> Vec<(String, String)> {
        pairs(&[
            ("Action", "DescribeInstances"),
            ("Version", "2016-11-15"),
            ("InstanceId.1", "i-1234567890abcdef0"),
            ("AWSAccessKeyId", AK),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", "2016-11-15T12:00:00Z"),
            ("Signature", sig),
        ])
    }

    fn req<'a>(
        method: &'a str,
        h: &'a HeaderMap,
        q: &'a [(String, String)],
        f: &'a [(String, String)],
    ) -> SignedRequest<'a> {
        SignedRequest { method, path: "/", headers: h, query: q, form: f, body: b"" }
    }

    const T0: OffsetDateTime = datetime!(2016-11-15 12:00:00 UTC);

    #[test]
    fn golden_v2_1_sha256_get() {
        let h = headers("ec2.amazonaws.com");
        let q = v2_1_params("VtZD0EwS0psA2ema9CSWg8STcQxfK3fHnsZRMU2M9ls=");
        let r = req("GET", &h, &q, &[]);
        assert_eq!(
            string_to_sign(&r),
            "GET\nec2.amazonaws.com\n/\nAWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeInstances&InstanceId.1=i-1234567890abcdef0&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2016-11-15T12%3A00%3A00Z&Version=2016-11-15"
        );
        let a = V2Auth::parse(&r).unwrap();
        assert_eq!(a.access_key, AK);
        a.check_time(T0, &AuthSettings::default()).unwrap();
        a.verify(&r, SK).unwrap();
        assert_eq!(a.verify(&r, "wrong").unwrap_err().code, "SignatureDoesNotMatch");
    }

    #[test]
    fn golden_v2_2_sha1_expires() {
        let h = headers("ec2.amazonaws.com");
        let q = pairs(&[
            ("Action", "DescribeRegions"),
            ("Version", "2012-08-15"),
            ("AWSAccessKeyId", AK),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA1"),
            ("Expires", "2016-11-15T12:15:00Z"),
            ("Signature", "smHJE2gD3oLoo0QCow81r1ntFFk="),
        ]);
        let r = req("GET", &h, &q, &[]);
        assert!(string_to_sign(&r).ends_with(
            "\nAWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeRegions&Expires=2016-11-15T12%3A15%3A00Z&SignatureMethod=HmacSHA1&SignatureVersion=2&Version=2012-08-15"
        ));
        let a = V2Auth::parse(&r).unwrap();
        assert_eq!(a.method, Method::HmacSha1);
        a.verify(&r, SK).unwrap();
        let s = AuthSettings::default();
        // Valid until Expires + 15 min skew, then expired.
        a.check_time(datetime!(2016-11-15 12:29:00 UTC), &s).unwrap();
        let e = a.check_time(datetime!(2016-11-15 12:31:00 UTC), &s).unwrap_err();
        assert_eq!((e.code.as_ref(), e.status()), ("RequestExpired", 400));
        assert!(e.message.contains("2016-11-15T12:15:00Z"));
    }

    #[test]
    fn golden_v2_3_post_body_port_unicode() {
        let h = headers("127.0.0.1:8788");
        // Everything in the body (POST form), nothing in the query.
        let f = pairs(&[
            ("Action", "DescribeInstances"),
            ("Version", "2016-11-15"),
            ("Filter.1.Name", "tag:Name"),
            ("Filter.1.Value.1", "my web*server~ü"),
            ("AWSAccessKeyId", AK),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", "2016-11-15T12:00:00Z"),
            ("Signature", "gGV698qTHQ5iR0KOiM/XGaiTe23DqTCG3gzmfmrJnHs="),
        ]);
        let r = req("POST", &h, &[], &f);
        assert!(string_to_sign(&r).starts_with("POST\n127.0.0.1:8788\n/\nAWSAccessKeyId="));
        assert!(string_to_sign(&r).contains("&Filter.1.Value.1=my%20web%2Aserver~%C3%BC&"));
        V2Auth::parse(&r).unwrap().verify(&r, SK).unwrap();
        // Split between query and body: same canonical string, still valid.
        let (q2, f2) = f.split_at(4);
        let r2 = req("POST", &h, q2, f2);
        V2Auth::parse(&r2).unwrap().verify(&r2, SK).unwrap();
        // A tampered value fails.
        let mut f3 = f.clone();
        f3[3].1 = "my web*server~u".into();
        let r3 = req("POST", &h, &[], &f3);
        assert_eq!(V2Auth::parse(&r3).unwrap().verify(&r3, SK).unwrap_err().code, "SignatureDoesNotMatch");
    }

    #[test]
    fn host_is_case_insensitive_but_method_path_matter() {
        let h = headers("EC2.Amazonaws.COM");
        let q = v2_1_params("VtZD0EwS0psA2ema9CSWg8STcQxfK3fHnsZRMU2M9ls=");
        let r = req("GET", &h, &q, &[]);
        V2Auth::parse(&r).unwrap().verify(&r, SK).unwrap();
        let r = req("POST", &h, &q, &[]);
        assert!(V2Auth::parse(&r).unwrap().verify(&r, SK).is_err());
        let r = SignedRequest { path: "/awsapi", ..req("GET", &h, &q, &[]) };
        assert!(V2Auth::parse(&r).unwrap().verify(&r, SK).is_err());
    }

    #[test]
    fn timestamp_window() {
        let h = headers("ec2.amazonaws.com");
        let q = v2_1_params("x");
        let r = req("GET", &h, &q, &[]);
        let a = V2Auth::parse(&r).unwrap();
        let s = AuthSettings::default();
        a.check_time(datetime!(2016-11-15 12:14:59 UTC), &s).unwrap();
        a.check_time(datetime!(2016-11-15 11:45:01 UTC), &s).unwrap();
        let e = a.check_time(datetime!(2016-11-15 12:15:01 UTC), &s).unwrap_err();
        assert_eq!(e.message, "Request has expired. Timestamp date is 2016-11-15T12:00:00Z");
        // Too far in the future (client clock ahead) is expired as well.
        assert_eq!(a.check_time(datetime!(2016-11-15 11:44:00 UTC), &s).unwrap_err().code, "RequestExpired");
    }

    #[test]
    fn time_formats() {
        assert_eq!(parse_time("T", "2016-11-15T12:00:00.123Z").unwrap(), datetime!(2016-11-15 12:00:00.123 UTC));
        assert_eq!(parse_time("T", "2016-11-15T14:00:00+02:00").unwrap(), T0);
        assert_eq!(parse_time("T", "2016-11-15T12:00:00").unwrap(), T0);
        assert_eq!(parse_time("T", "yesterday").unwrap_err().code, "InvalidParameterValue");
    }

    #[test]
    fn malformed_requests() {
        let h = headers("h");
        let parse = |p: &[(&str, &str)]| {
            let q = pairs(p);
            let r = req("GET", &h, &q, &[]);
            V2Auth::parse(&r).map(|_| ()).map_err(|e| e.code.to_string())
        };
        let base = [
            ("AWSAccessKeyId", AK),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", "2016-11-15T12:00:00Z"),
            ("Signature", "abc"),
        ];
        assert_eq!(parse(&base), Ok(()));
        let without = |name: &str| base.iter().copied().filter(|(k, _)| *k != name).collect::<Vec<_>>();
        assert_eq!(parse(&without("Signature")).unwrap_err(), "IncompleteSignature");
        assert_eq!(parse(&without("SignatureMethod")).unwrap_err(), "IncompleteSignature");
        assert_eq!(parse(&without("AWSAccessKeyId")).unwrap_err(), "MissingAuthenticationToken");
        assert_eq!(parse(&without("Timestamp")).unwrap_err(), "MissingParameter");
        let mut both = base.to_vec();
        both.push(("Expires", "2016-11-15T12:00:00Z"));
        assert_eq!(parse(&both).unwrap_err(), "InvalidParameterCombination");
        let mut md5 = without("SignatureMethod");
        md5.push(("SignatureMethod", "HmacMD5"));
        assert_eq!(parse(&md5).unwrap_err(), "InvalidParameterValue");
        let mut v1 = without("SignatureVersion");
        v1.push(("SignatureVersion", "1"));
        assert_eq!(parse(&v1).unwrap_err(), "InvalidParameterValue");
        let mut tok = base.to_vec();
        tok.push(("SecurityToken", "t"));
        assert_eq!(parse(&tok).unwrap_err(), "AuthFailure");
        let mut bad_ts = without("Timestamp");
        bad_ts.push(("Timestamp", "now"));
        assert_eq!(parse(&bad_ts).unwrap_err(), "InvalidParameterValue");
    }
}

#[cfg(test)]
mod expires_cap {
    use super::*;
    use std::time::Duration;
    use time::macros::datetime;

    /// Issue 14 item 13: a SigV2 `Expires` far ahead (it used to work until then) is refused.
    #[test]
    fn expires_is_bounded_ahead() {
        let now = datetime!(2026-01-01 00:00:00 UTC);
        let (skew, week) = (Duration::from_secs(900), Duration::from_secs(604_800));
        let at = |t: OffsetDateTime| check_validity(Validity::Expires(t), "x", now, skew, week);
        assert!(at(now + time::Duration::days(6)).is_ok());
        assert!(at(now + time::Duration::days(7)).is_ok());
        for far in
            [now + time::Duration::days(8), datetime!(2099-01-01 00:00:00 UTC), datetime!(9999-12-31 23:59:59 UTC)]
        {
            let e = at(far).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue", "{far}");
            assert!(e.message.contains("604800"), "{e}");
        }
        assert_eq!(at(now - time::Duration::hours(1)).unwrap_err().code, "RequestExpired");
    }
}
