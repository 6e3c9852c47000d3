//! AWS Signature Version 4 (docs/ec2-wire.md "SigV4"), Authorization-header and presigned-query forms.
//! The scope's region and service are whatever the client signed with (boto 2 signs `0/127` for
//! host 127.0.0.1); only `[region] strict` pins the region.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::sigv2::truncate;
use super::{AuthSettings, SignedRequest, canonical_query, ct_eq, uri_encode_path};
use crate::base::{Code, Ec2Error};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const TERMINATOR: &str = "aws4_request";

/// `Credential=<key>/<date>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl Scope<'_> {
    pub fn to_line(&self) -> String {
        format!("{}/{}/{}/{TERMINATOR}", self.date, self.region, self.service)
    }
}

/// A SigV4 request, parsed but not yet verified. Debug leaves out the signature.
pub struct V4Auth<'a> {
    pub access_key: &'a str,
    pub scope: Scope<'a>,
    /// Lowercased, in the client's order.
    pub signed_headers: Vec<String>,
    /// Signing time in `YYYYMMDDThhmmssZ` form (as it enters the string to sign).
    pub amz_date: String,
    pub time: OffsetDateTime,
    pub presigned: bool,
    /// `X-Amz-Expires` of a presigned request.
    pub expires: Option<u64>,
    signature: String,
}

impl std::fmt::Debug for V4Auth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4Auth")
            .field("access_key", &self.access_key)
            .field("scope", &self.scope)
            .field("signed_headers", &self.signed_headers)
            .field("amz_date", &self.amz_date)
            .field("presigned", &self.presigned)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl<'a> V4Auth<'a> {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` (with or
    /// without spaces after the commas).
    pub fn from_header(req: &SignedRequest<'a>) -> Result<Self, Ec2Error> {
        let value = req.header_str("authorization").unwrap_or("").trim();
        let rest = value.strip_prefix(ALGORITHM).unwrap_or("");
        if !rest.starts_with(char::is_whitespace) {
            return Err(Ec2Error::incomplete_signature(format!(
                "Authorization header must start with '{ALGORITHM} '."
            )));
        }
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for field in rest.split(',') {
            let Some((k, v)) = field.trim().split_once('=') else {
                return Err(Ec2Error::incomplete_signature(format!(
                    "Authorization header field '{}' is not of the form name=value.",
                    truncate(field.trim())
                )));
            };
            match k.trim() {
                "Credential" => credential = Some(v.trim()),
                "SignedHeaders" => signed = Some(v.trim()),
                "Signature" => signature = Some(v.trim()),
                _ => {}
            }
        }
        let mut missing = Vec::new();
        for (name, v) in [("Credential", credential), ("Signature", signature), ("SignedHeaders", signed)] {
            if v.is_none_or(str::is_empty) {
                missing.push(format!("Authorization header requires '{name}' parameter."));
            }
        }
        let date_header = if let Some(d) = req.header_str("x-amz-date") {
            Some(parse_amz_date(d, "X-Amz-Date")?)
        } else if let Some(d) = req.header_str("date") {
            Some(parse_http_date(d)?)
        } else {
            missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into());
            None
        };
        let (Some(credential), Some(signed), Some(signature), Some(time), true) =
            (credential, signed, signature, date_header, missing.is_empty())
        else {
            return Err(Ec2Error::incomplete_signature(missing.join(" ")));
        };
        if req.headers.contains_key("x-amz-security-token") {
            return Err(super::sigv2::security_token_unsupported());
        }
        Self::build(credential, signed, signature, time, false, None)
    }

    /// Presigned URL: `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-SignedHeaders`,
    /// `X-Amz-Signature`, optional `X-Amz-Expires`, all in the URL query.
    pub fn from_query(req: &SignedRequest<'a>) -> Result<Self, Ec2Error> {
        match req.query_param("X-Amz-Algorithm") {
            Some(ALGORITHM) => {}
            _ => return Err(Ec2Error::incomplete_signature(format!("X-Amz-Algorithm only supports '{ALGORITHM}'."))),
        }
        if req.query_param("X-Amz-Security-Token").is_some() {
            return Err(super::sigv2::security_token_unsupported());
        }
        let get = |name: &str| req.query_param(name).filter(|v| !v.is_empty());
        let names = ["X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"];
        let missing: Vec<&str> = names.iter().copied().filter(|n| get(n).is_none()).collect();
        if !missing.is_empty() {
            return Err(Ec2Error::incomplete_signature(format!(
                "AWS query-string parameters must include {}.",
                missing.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", ")
            )));
        }
        let time = parse_amz_date(get("X-Amz-Date").unwrap_or_default(), "X-Amz-Date")?;
        let expires = match get("X-Amz-Expires") {
            None => None,
            Some(e) => Some(
                e.parse::<u64>()
                    .map_err(|_| Ec2Error::invalid_value("X-Amz-Expires", e, "Expected a number of seconds."))?,
            ),
        };
        Self::build(
            get("X-Amz-Credential").unwrap_or_default(),
            get("X-Amz-SignedHeaders").unwrap_or_default(),
            get("X-Amz-Signature").unwrap_or_default(),
            time,
            true,
            expires,
        )
    }

    fn build(
        credential: &'a str,
        signed: &str,
        signature: &str,
        (time, amz_date): (OffsetDateTime, String),
        presigned: bool,
        expires: Option<u64>,
    ) -> Result<Self, Ec2Error> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, term] = parts[..] else {
            return Err(Ec2Error::incomplete_signature(
                "Credential must have the form <key>/<YYYYMMDD>/<region>/<service>/aws4_request.",
            ));
        };
        if term != TERMINATOR {
            return Err(Ec2Error::incomplete_signature(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
                truncate(term)
            )));
        }
        if access_key.is_empty() || region.is_empty() || service.is_empty() {
            return Err(Ec2Error::incomplete_signature("Credential has an empty access key, region or service."));
        }
        let day = amz_date.get(..8).unwrap_or_default();
        if date != day {
            return Err(Ec2Error::new(
                Code::SignatureDoesNotMatch,
                format!(
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
                     '{}' != '{day}', from '{amz_date}'.",
                    truncate(date),
                ),
            ));
        }
        let signed_headers: Vec<String> = signed.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(Ec2Error::incomplete_signature("'Host' must be a 'SignedHeader' in the AWS Authorization."));
        }
        Ok(V4Auth {
            access_key,
            scope: Scope { date, region, service },
            signed_headers,
            amz_date,
            time,
            presigned,
            expires,
            signature: signature.to_ascii_lowercase(),
        })
    }

    /// Header form: |now − X-Amz-Date| ≤ skew. Presigned: not from the future (beyond skew), and
    /// not past X-Amz-Date + X-Amz-Expires (capped at a week).
    pub fn check_time(&self, now: OffsetDateTime, settings: &AuthSettings) -> Result<(), Ec2Error> {
        let skew = settings.max_skew;
        let now_s = format_amz_date(now);
        match (self.presigned, self.expires) {
            (true, Some(e)) => {
                if e > settings.max_presign_expires.as_secs() {
                    return Err(Ec2Error::invalid_value(
                        "X-Amz-Expires",
                        &e.to_string(),
                        &format!("It must be at most {} seconds.", settings.max_presign_expires.as_secs()),
                    ));
                }
                if self.time - now > skew {
                    return Err(Ec2Error::request_expired(format_args!(
                        "X-Amz-Date {} is in the future (server time {now_s}).",
                        self.amz_date
                    )));
                }
                if super::later(self.time, Duration::from_secs(e)).is_some_and(|end| now > end) {
                    return Err(Ec2Error::request_expired(format_args!(
                        "The presigned URL signed at {} expired after {e} seconds (server time {now_s}).",
                        self.amz_date
                    )));
                }
            }
            _ => {
                if (now - self.time).unsigned_abs() > skew {
                    return Err(Ec2Error::request_expired(format_args!(
                        "Signature date {} is more than {} minutes from the server time {now_s}.",
                        self.amz_date,
                        skew.as_secs() / 60
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn check_scope(&self, settings: &AuthSettings) -> Result<(), Ec2Error> {
        match &settings.strict_region {
            Some(r) if r != self.scope.region => Err(Ec2Error::new(
                Code::SignatureDoesNotMatch,
                format!("Credential should be scoped to a valid region, not '{}'.", truncate(self.scope.region)),
            )),
            _ => Ok(()),
        }
    }

    pub fn verify(&self, req: &SignedRequest<'_>, secret: &str) -> Result<(), Ec2Error> {
        let payloads = self.payload_hashes(req)?;
        let key = cached_signing_key(secret, self.scope.date, self.scope.region, self.scope.service);
        let query = req
            .query
            .iter()
            .filter(|(k, _)| !(self.presigned && k == "X-Amz-Signature"))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let query = canonical_query(query);
        let headers = canonical_headers(req.headers, &self.signed_headers);
        let signed_line = self.signed_headers.join(";");
        for uri in canonical_uris(req.path) {
            for payload in &payloads {
                let creq = canonical_request(req.method, &uri, &query, &headers, &signed_line, payload);
                let sts = string_to_sign(&self.amz_date, &self.scope, &creq);
                if ct_eq(hex::encode(hmac(&key, sts.as_bytes())).as_bytes(), self.signature.as_bytes()) {
                    return Ok(());
                }
            }
        }
        Err(Ec2Error::signature_mismatch())
    }

    /// Candidate `HashedPayload` lines: the client's `x-amz-content-sha256` (which must match the
    /// body; `UNSIGNED-PAYLOAD` only for an empty body, so no parameter goes unsigned), else the
    /// body hash; a presigned request with an empty body may also have signed `UNSIGNED-PAYLOAD`.
    fn payload_hashes(&self, req: &SignedRequest<'_>) -> Result<Vec<String>, Ec2Error> {
        let body_hash = hex::encode(Sha256::digest(req.body));
        match req.headers.get("x-amz-content-sha256").map(|v| v.to_str().unwrap_or("").trim()) {
            Some(UNSIGNED_PAYLOAD) if req.body.is_empty() => Ok(vec![UNSIGNED_PAYLOAD.into()]),
            Some(UNSIGNED_PAYLOAD) => Err(Ec2Error::new(
                Code::SignatureDoesNotMatch,
                "UNSIGNED-PAYLOAD is not accepted for a request with a body: its parameters would be unsigned.",
            )),
            Some(h) if h.eq_ignore_ascii_case(&body_hash) => Ok(vec![h.to_string()]),
            Some(_) => Err(Ec2Error::new(
                Code::SignatureDoesNotMatch,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )),
            None if self.presigned && req.body.is_empty() => Ok(vec![body_hash, UNSIGNED_PAYLOAD.into()]),
            None => Ok(vec![body_hash]),
        }
    }
}

/// `YYYYMMDDThhmmssZ` -> (time, the same text).
fn parse_amz_date(v: &str, name: &str) -> Result<(OffsetDateTime, String), Ec2Error> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(v.trim(), fmt).map(|t| (t.assume_utc(), v.trim().to_string())).map_err(|_| {
        Ec2Error::incomplete_signature(format!("{name} must be in the form YYYYMMDDThhmmssZ, not '{}'.", truncate(v)))
    })
}

/// HTTP `Date` header (IMF-fixdate, what botocore sends when it signs `date`).
fn parse_http_date(v: &str) -> Result<(OffsetDateTime, String), Ec2Error> {
    let fmt = format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    let t = PrimitiveDateTime::parse(v.trim(), fmt)
        .map_err(|_| Ec2Error::incomplete_signature(format!("Date header '{}' is not an HTTP date.", truncate(v))))?
        .assume_utc();
    Ok((t, format_amz_date(t)))
}

pub fn format_amz_date(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    // checked: converting a year-9999 time with a negative offset to UTC would panic.
    t.checked_to_offset(time::UtcOffset::UTC).and_then(|t| t.format(fmt).ok()).unwrap_or_default()
}

/// The canonical URI(s) to try. botocore and the other SDKs sign non-S3 paths by encoding the
/// (normalized) wire path once more; a client that signed the decoded path is the fallback when
/// the path holds `%` escapes.
fn canonical_uris(raw_path: &str) -> Vec<String> {
    let mut out = vec![uri_encode_path(&normalize_path(raw_path))];
    if raw_path.contains('%') {
        let decoded = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
        out.push(uri_encode_path(&normalize_path(&decoded)));
    }
    out
}

/// Remove `.`/`..` segments and empty segments, keep a trailing slash (botocore's normalization).
fn normalize_path(path: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut out = format!("/{}", segs.join("/"));
    if path.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// `name:value\n` for each signed header, values trimmed with inner whitespace runs collapsed,
/// repeated headers joined with `,`.
fn canonical_headers(headers: &http::HeaderMap, signed: &[String]) -> String {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    format!("{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}")
}

pub fn string_to_sign(amz_date: &str, scope: &Scope<'_>, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{}\n{}", scope.to_line(), hex::encode(Sha256::digest(canonical_request)))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
/// At most this many derived signing keys are kept (the cache is emptied when full).
const SIGNING_KEYS_MAX: usize = 4096;

/// `signing_key`, derived once per secret, date, region and service instead of for every request
/// (four HMACs; docs/ec2-wire.md "SigV4"). The cache key spells each part's length first, so two
/// different scopes never share an entry.
fn cached_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    static KEYS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, [u8; 32]>>> =
        std::sync::LazyLock::new(Default::default);
    let id =
        format!("{}.{}.{}.{}.{secret}{date}{region}{service}", secret.len(), date.len(), region.len(), service.len());
    if let Some(k) = KEYS.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return *k;
    }
    let k = signing_key(secret, date, region, service);
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if keys.len() >= SIGNING_KEYS_MAX {
        keys.clear();
    }
    keys.insert(id, k);
    k
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, TERMINATOR.as_bytes())
}

/// Client side, for tests and the benchmark: the `Authorization` header value for a request whose
/// signed headers are `headers` (lowercase names, in sorted order; must include `host`).
#[allow(clippy::too_many_arguments)]
pub fn sign_authorization(
    access_key: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let scope = Scope { date: amz_date.get(..8).unwrap_or(amz_date), region, service };
    let mut hm = http::HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
            hm.append(k, v);
        }
    }
    let names: Vec<String> = headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    let q = canonical_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let creq = canonical_request(
        method,
        &uri_encode_path(&normalize_path(path)),
        &q,
        &canonical_headers(&hm, &names),
        &names.join(";"),
        &hex::encode(Sha256::digest(body)),
    );
    let sig = hex::encode(hmac(
        &signing_key(secret, scope.date, region, service),
        string_to_sign(amz_date, &scope, &creq).as_bytes(),
    ));
    format!(
        "{ALGORITHM} Credential={access_key}/{}, SignedHeaders={}, Signature={sig}",
        scope.to_line(),
        names.join(";")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use time::macros::datetime;

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const T0: OffsetDateTime = datetime!(2016-11-15 12:00:00 UTC);
    const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

    fn hm(h: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in h {
            m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    fn pairs(s: &str) -> Vec<(String, String)> {
        crate::ec2::query::decode_pairs(s.as_bytes()).unwrap()
    }

    fn req<'a>(method: &'a str, h: &'a HeaderMap, q: &'a [(String, String)], body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest { method, path: "/", headers: h, query: q, form: &[], body }
    }

    fn check(r: &SignedRequest<'_>, now: OffsetDateTime) -> Result<(), Ec2Error> {
        let a = if r.headers.contains_key("authorization") { V4Auth::from_header(r)? } else { V4Auth::from_query(r)? };
        let s = AuthSettings::default();
        a.check_time(now, &s)?;
        a.check_scope(&s)?;
        a.verify(r, SK)
    }

    #[test]
    fn signing_key_vector() {
        assert_eq!(
            hex::encode(signing_key(SK, "20161115", "us-east-1", "ec2")),
            "e4316d233656636107d9ad64b4863dc383ac442b1a807a9128586ebaec39ed63"
        );
    }

    #[test]
    fn cached_signing_keys_are_the_derived_ones() {
        // Twice (derived, then from the cache), and for scopes whose parts run together the same.
        for _ in 0..2 {
            for (date, region, service) in
                [("20161115", "us-east-1", "ec2"), ("20161115", "us-east-1e", "c2"), ("2016111", "5us-east-1", "ec2")]
            {
                assert_eq!(
                    cached_signing_key(SK, date, region, service),
                    signing_key(SK, date, region, service),
                    "{date} {region} {service}"
                );
            }
        }
        assert_eq!(
            hex::encode(cached_signing_key(SK, "20161115", "us-east-1", "ec2")),
            "e4316d233656636107d9ad64b4863dc383ac442b1a807a9128586ebaec39ed63"
        );
    }

    #[test]
    fn golden_v4_1() {
        let body = b"Action=DescribeInstances&Version=2016-11-15";
        let creq = canonical_request(
            "POST",
            "/",
            "",
            &canonical_headers(
                &hm(&[
                    ("content-type", FORM),
                    ("host", "ec2.us-east-1.amazonaws.com"),
                    ("x-amz-date", "20161115T120000Z"),
                ]),
                &["content-type".into(), "host".into(), "x-amz-date".into()],
            ),
            "content-type;host;x-amz-date",
            &hex::encode(Sha256::digest(body)),
        );
        assert_eq!(
            creq,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:ec2.us-east-1.amazonaws.com\nx-amz-date:20161115T120000Z\n\ncontent-type;host;x-amz-date\n6171eb09865e32b0602af0f7957e26573a51f53caaedff02ff88883cb0275885"
        );
        let scope = Scope { date: "20161115", region: "us-east-1", service: "ec2" };
        assert_eq!(
            string_to_sign("20161115T120000Z", &scope, &creq),
            "AWS4-HMAC-SHA256\n20161115T120000Z\n20161115/us-east-1/ec2/aws4_request\nac4ee284b40890fe084e84c54f9e5ded416f3cbeb70e9100879df846d783f95a"
        );
        let h = hm(&[
            ("content-type", FORM),
            ("host", "ec2.us-east-1.amazonaws.com"),
            ("x-amz-date", "20161115T120000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20161115/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=98bf912c6dca623912667f129272512df0043a84f1515a286ae47321361d7657",
            ),
        ]);
        let r = req("POST", &h, &[], body);
        check(&r, T0).unwrap();
        assert_eq!(
            check(&SignedRequest { body: b"Action=DescribeInstances&Version=2016-11-16", ..r }, T0).unwrap_err().code,
            "SignatureDoesNotMatch"
        );
        // Our client-side signer produces the same header.
        assert_eq!(
            sign_authorization(
                AK,
                SK,
                "us-east-1",
                "ec2",
                "20161115T120000Z",
                "POST",
                "/",
                &[],
                &[("content-type", FORM), ("host", "ec2.us-east-1.amazonaws.com"), ("x-amz-date", "20161115T120000Z")],
                body
            ),
            h["authorization"].to_str().unwrap()
        );
    }

    #[test]
    fn golden_v4_2_custom_endpoint() {
        let body = b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1234567890abcdef0";
        assert_eq!(
            hex::encode(Sha256::digest(body)),
            "55db06453684307b67e52c5ed6f2bd688037cda44e9feecfcc31266124c7ae58"
        );
        let h = hm(&[
            ("content-type", FORM),
            ("host", "127.0.0.1:8788"),
            ("x-amz-date", "20161115T120000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20161115/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=4e3bed5bfd0050c1f58455aacf160175c4f6eeb09c7db1dde5fab34b23e5621c",
            ),
        ]);
        check(&req("POST", &h, &[], body), T0).unwrap();
        // Wrong secret.
        let r = req("POST", &h, &[], body);
        assert_eq!(V4Auth::from_header(&r).unwrap().verify(&r, "nope").unwrap_err().code, "SignatureDoesNotMatch");
        // Clock skew of 16 minutes either way.
        for now in [datetime!(2016-11-15 12:16:00 UTC), datetime!(2016-11-15 11:44:00 UTC)] {
            let e = check(&r, now).unwrap_err();
            assert_eq!((e.code.as_ref(), e.status()), ("RequestExpired", 400));
        }
        check(&r, datetime!(2016-11-15 12:14:00 UTC)).unwrap();
        // Strict region.
        let s = AuthSettings { strict_region: Some("local".into()), ..Default::default() };
        assert_eq!(V4Auth::from_header(&r).unwrap().check_scope(&s).unwrap_err().code, "SignatureDoesNotMatch");
    }

    #[test]
    fn golden_v4_3_presigned_get() {
        let q = pairs(
            "Action=DescribeRegions&Version=2016-11-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20161115%2Fus-east-1%2Fec2%2Faws4_request&X-Amz-Date=20161115T120000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=3ef54a84ebce6351dec40ec4af761ca1ba5225aa9b361f90de2c7288ae0421fd",
        );
        let h = hm(&[("host", "ec2.us-east-1.amazonaws.com")]);
        let r = req("GET", &h, &q, b"");
        check(&r, datetime!(2016-11-15 12:04:59 UTC)).unwrap();
        let e = check(&r, datetime!(2016-11-15 12:05:01 UTC)).unwrap_err();
        assert_eq!(e.code, "RequestExpired");
        // Signed for GET: replaying with POST fails.
        assert_eq!(check(&req("POST", &h, &q, b""), T0).unwrap_err().code, "SignatureDoesNotMatch");
        // A changed parameter fails.
        let mut q2 = q.clone();
        q2[0].1 = "DescribeInstances".into();
        assert_eq!(check(&req("GET", &h, &q2, b""), T0).unwrap_err().code, "SignatureDoesNotMatch");
        // Not valid before it was signed (beyond the skew).
        assert_eq!(check(&r, datetime!(2016-11-15 11:40:00 UTC)).unwrap_err().code, "RequestExpired");
        // Expires beyond a week.
        let q3 = pairs(
            &q.iter()
                .map(|(k, v)| format!("{k}={}", if k == "X-Amz-Expires" { "604801" } else { v }))
                .collect::<Vec<_>>()
                .join("&")
                .replace('/', "%2F"),
        );
        assert_eq!(check(&req("GET", &h, &q3, b""), T0).unwrap_err().code, "InvalidParameterValue");
    }

    #[test]
    fn golden_v4_4_boto2_scope_no_spaces() {
        let body = b"Action=DescribeRegions&Version=2014-10-01";
        let h = hm(&[
            ("host", "127.0.0.1:8788"),
            ("x-amz-date", "20161115T120000Z"),
            ("content-type", "application/x-www-form-urlencoded; charset=UTF-8"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20161115/0/127/aws4_request,SignedHeaders=host;x-amz-date,Signature=a44848bc91003a3ab7ac8458162ac8a6b84b558bc9055f06a5281aa3222e685d",
            ),
        ]);
        let r = req("POST", &h, &[], body);
        let a = V4Auth::from_header(&r).unwrap();
        assert_eq!(a.scope, Scope { date: "20161115", region: "0", service: "127" });
        check(&r, T0).unwrap();
    }

    #[test]
    fn golden_v4_5_get_vanilla() {
        let h = hm(&[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        ]);
        let r = req("GET", &h, &[], b"");
        let a = V4Auth::from_header(&r).unwrap();
        a.verify(&r, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
    }

    #[test]
    fn content_sha256_header() {
        let body = b"Action=DescribeInstances&Version=2016-11-15";
        let good = hex::encode(Sha256::digest(body));
        let mk = |sha: &str, body: &[u8]| {
            let headers = [
                ("content-type", FORM),
                ("host", "h:1"),
                ("x-amz-content-sha256", sha),
                ("x-amz-date", "20161115T120000Z"),
            ];
            let auth = sign_authorization(AK, SK, "r", "ec2", "20161115T120000Z", "POST", "/", &[], &headers, body);
            let mut h = hm(&headers);
            h.insert("authorization", auth.parse().unwrap());
            h
        };
        let h = mk(&good, body);
        check(&req("POST", &h, &[], body), T0).unwrap();
        // Header hash disagreeing with the body that arrived.
        let e = check(&req("POST", &h, &[], b"Action=TerminateInstances&Version=2016-11-15"), T0).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        // UNSIGNED-PAYLOAD with a body is refused even if the signature is otherwise fine.
        let h = mk(UNSIGNED_PAYLOAD, body);
        assert!(check(&req("POST", &h, &[], body), T0).is_err());
    }

    #[test]
    fn http_date_header_and_paths() {
        let h = hm(&[("host", "h"), ("date", "Tue, 15 Nov 2016 12:00:00 GMT")]);
        let auth = sign_authorization(
            AK,
            SK,
            "r",
            "ec2",
            "20161115T120000Z",
            "GET",
            "/awsapi/",
            &[],
            &[("date", "Tue, 15 Nov 2016 12:00:00 GMT"), ("host", "h")],
            b"",
        );
        let mut h2 = h.clone();
        h2.insert("authorization", auth.parse().unwrap());
        let r = SignedRequest { path: "/awsapi/", ..req("GET", &h2, &[], b"") };
        check(&r, T0).unwrap();
        assert!(check(&SignedRequest { path: "/awsapi", ..r }, T0).is_err());
        assert_eq!(normalize_path("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(canonical_uris("/a%20b"), vec!["/a%2520b".to_string(), "/a%20b".to_string()]);
    }

    #[test]
    fn malformed_headers() {
        let code = |auth: &str, extra: &[(&str, &str)]| {
            let mut h = hm(&[("host", "h"), ("x-amz-date", "20161115T120000Z")]);
            h.insert("authorization", auth.parse().unwrap());
            for (k, v) in extra {
                h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            V4Auth::from_header(&req("GET", &h, &[], b"")).map(|_| ()).map_err(|e| e.code.to_string())
        };
        let good =
            "AWS4-HMAC-SHA256 Credential=AK/20161115/r/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab";
        assert_eq!(code(good, &[]), Ok(()));
        assert_eq!(
            code("AWS4-HMAC-SHA256 Credential=AK/20161115/r/ec2/aws4_request", &[]).unwrap_err(),
            "IncompleteSignature"
        );
        assert_eq!(code("AWS4-HMAC-SHA256", &[]).unwrap_err(), "IncompleteSignature");
        assert_eq!(code("AWS4-HMAC-SHA256X Credential=a", &[]).unwrap_err(), "IncompleteSignature");
        assert_eq!(code(&good.replace("aws4_request", "aws5"), &[]).unwrap_err(), "IncompleteSignature");
        assert_eq!(code(&good.replace("AK/", "AK/x/"), &[]).unwrap_err(), "IncompleteSignature");
        assert_eq!(code(&good.replace("20161115/", "20161114/"), &[]).unwrap_err(), "SignatureDoesNotMatch");
        assert_eq!(code(&good.replace("host;", ""), &[]).unwrap_err(), "IncompleteSignature");
        assert_eq!(code(good, &[("x-amz-date", "2016-11-15")]).unwrap_err(), "IncompleteSignature");
        assert_eq!(code(good, &[("x-amz-security-token", "t")]).unwrap_err(), "AuthFailure");
        let mut h = hm(&[("host", "h"), ("authorization", good)]);
        assert_eq!(V4Auth::from_header(&req("GET", &h, &[], b"")).unwrap_err().code, "IncompleteSignature");
        h.insert("date", "not a date".parse().unwrap());
        assert_eq!(V4Auth::from_header(&req("GET", &h, &[], b"")).unwrap_err().code, "IncompleteSignature");
    }

    #[test]
    fn malformed_presigned() {
        let q = pairs("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20161115T120000Z");
        let h = hm(&[("host", "h")]);
        let e = V4Auth::from_query(&req("GET", &h, &q, b"")).unwrap_err();
        assert_eq!(e.code, "IncompleteSignature");
        assert!(e.message.contains("'X-Amz-Credential'") && e.message.contains("'X-Amz-Signature'"));
        let q = pairs("X-Amz-Algorithm=AWS4-HMAC-SHA1");
        assert_eq!(V4Auth::from_query(&req("GET", &h, &q, b"")).unwrap_err().code, "IncompleteSignature");
        let q = pairs(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20161115%2Fr%2Fec2%2Faws4_request&X-Amz-Date=20161115T120000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00&X-Amz-Expires=soon",
        );
        assert_eq!(V4Auth::from_query(&req("GET", &h, &q, b"")).unwrap_err().code, "InvalidParameterValue");
    }
}
