//! Who is calling: SigV2 / SigV4 verifiers for Query requests, WS-Security for SOAP, and the
//! credential sources that know each user's keys. The outcome is a `Principal`.
//!
//! The verifiers are pure (request view + secret + clock -> ok or an `Ec2Error`); `authenticate`
//! ties them to a `CredentialSource`. Order of checks, so that an unauthenticated caller learns as
//! little as possible and cheap checks run first: scheme detection and parsing, the time window,
//! the key lookup, then the signature itself.

pub mod credentials;
pub mod replay;
pub mod sigv2;
pub mod sigv4;

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;

pub mod wssec;

use crate::base::Ec2Error;
use crate::cloudstack::CsCredentials;

pub use credentials::{CredentialSource, KnownUser};

/// An authenticated caller. Every CloudStack call made for it is signed with its own keys.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The EC2 access key the caller signed with (= its CloudStack API key).
    pub access_key: String,
    pub cloudstack: CsCredentials,
    /// CloudStack account name, when known.
    pub account: Option<String>,
    /// CloudStack account uuid, when the credential source knows it (`ownerId` is its number,
    /// docs/accounts.md).
    pub account_id: Option<String>,
}

/// What the Query verifiers see of an HTTP request. Parameters are already decoded (`+` and
/// `%XX`); the path is as it arrived on the wire. Debug shows parameter and header names only
/// (values carry signatures).
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    /// Decoded URL query parameters, in arrival order.
    pub query: &'a [(String, String)],
    /// Decoded form-body parameters (empty unless the body is a form).
    pub form: &'a [(String, String)],
    /// The raw body, for the SigV4 payload hash.
    pub body: &'a [u8],
}

impl std::fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |p: &[(String, String)]| p.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>())
            .field("query", &names(self.query))
            .field("form", &names(self.form))
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl<'a> SignedRequest<'a> {
    /// First value of a parameter, query before body.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.query.iter().chain(self.form.iter()).find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The `Host` the client signed (HTTP/1.1 `Host`, else the URI authority of HTTP/2).
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Which Query signature scheme a request uses (docs/ec2-wire.md "Choosing the authentication scheme").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    SigV4Header,
    SigV4Presigned,
    SigV2,
}

/// §2.1 steps 1-3; `None` when the request carries no Query signature at all (then it is either
/// SOAP or `MissingAuthenticationToken`).
pub fn detect(req: &SignedRequest<'_>) -> Option<Scheme> {
    if let Some(auth) = req.header_str("authorization")
        && auth.trim_start().starts_with(sigv4::ALGORITHM)
    {
        return Some(Scheme::SigV4Header);
    }
    if req.query_param("X-Amz-Algorithm").is_some() {
        return Some(Scheme::SigV4Presigned);
    }
    if req.param("SignatureVersion").is_some() {
        return Some(Scheme::SigV2);
    }
    None
}

/// Verifier settings (from `[auth]` / `[region]` config).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Allowed clock difference (AWS: 15 minutes).
    pub max_skew: Duration,
    /// Longest accepted `X-Amz-Expires` of a presigned URL (AWS: one week).
    pub max_presign_expires: Duration,
    /// When set, a SigV4 scope must name this region (else any region string is accepted, as
    /// boto 2 and custom-region SDK users sign with whatever they were configured with).
    pub strict_region: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            max_skew: Duration::from_secs(15 * 60),
            max_presign_expires: Duration::from_secs(604_800),
            strict_region: None,
        }
    }
}

/// A request whose signature parts are parsed but not yet checked.
enum Parsed<'a> {
    V4(sigv4::V4Auth<'a>),
    V2(sigv2::V2Auth<'a>),
}

/// Verify a Query request end to end and produce its `Principal`.
pub async fn authenticate(
    req: &SignedRequest<'_>,
    creds: &dyn CredentialSource,
    settings: &AuthSettings,
    now: OffsetDateTime,
) -> Result<Principal, Ec2Error> {
    let parsed = match detect(req) {
        Some(Scheme::SigV4Header) => Parsed::V4(sigv4::V4Auth::from_header(req)?),
        Some(Scheme::SigV4Presigned) => Parsed::V4(sigv4::V4Auth::from_query(req)?),
        Some(Scheme::SigV2) => Parsed::V2(sigv2::V2Auth::parse(req)?),
        None => {
            if req.header_str("authorization").is_some() {
                return Err(Ec2Error::incomplete_signature(
                    "Unsupported Authorization Type; use AWS4-HMAC-SHA256 or SignatureVersion=2.",
                ));
            }
            return Err(Ec2Error::missing_authentication_token());
        }
    };
    let access_key = match &parsed {
        Parsed::V4(a) => {
            a.check_time(now, settings)?;
            a.check_scope(settings)?;
            a.access_key
        }
        Parsed::V2(a) => {
            a.check_time(now, settings)?;
            a.access_key
        }
    };
    let user = creds.lookup(access_key).await?.ok_or_else(Ec2Error::auth_failure)?;
    match &parsed {
        Parsed::V4(a) => a.verify(req, &user.secret_key)?,
        Parsed::V2(a) => a.verify(req, &user.secret_key)?,
    }
    Ok(Principal {
        access_key: access_key.to_string(),
        cloudstack: user.cloudstack,
        account: user.account,
        account_id: user.account_id,
    })
}

/// RFC 3986 unreserved characters stay; every other byte becomes `%XX` (uppercase hex).
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Same, keeping `/` (SigV4 canonical URI).
const RFC3986_PATH: &AsciiSet = &RFC3986.remove(b'/');

pub(crate) fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

pub(crate) fn uri_encode_path(s: &str) -> String {
    utf8_percent_encode(s, RFC3986_PATH).to_string()
}

/// `name=value` pairs re-encoded per RFC 3986, sorted by encoded name then value, `&`-joined.
pub(crate) fn canonical_query<'a, I>(pairs: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut enc: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
    enc.sort();
    let mut out = String::new();
    for (i, (k, v)) in enc.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// `t + d`, or `None` when that is beyond the representable calendar (a client may send year 9999;
/// plain `+` would panic).
pub(crate) fn later(t: OffsetDateTime, d: Duration) -> Option<OffsetDateTime> {
    time::Duration::try_from(d).ok().and_then(|d| t.checked_add(d))
}

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3986_encoding() {
        assert_eq!(uri_encode("my web*server~ü"), "my%20web%2Aserver~%C3%BC");
        assert_eq!(uri_encode("a+b=c&d/e"), "a%2Bb%3Dc%26d%2Fe");
        assert_eq!(uri_encode_path("/ec2/a b"), "/ec2/a%20b");
        assert_eq!(canonical_query([("b", "2"), ("a", "x y"), ("a", "1")]), "a=1&a=x%20y&b=2");
        assert_eq!(canonical_query([("k", "")]), "k=");
    }

    #[tokio::test]
    async fn authenticate_end_to_end() {
        use credentials::MemorySource;
        use time::macros::datetime;
        let q = crate::ec2::query::decode_pairs(
            b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1234567890abcdef0&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE\
              &SignatureVersion=2&SignatureMethod=HmacSHA256&Timestamp=2016-11-15T12%3A00%3A00Z\
              &Signature=VtZD0EwS0psA2ema9CSWg8STcQxfK3fHnsZRMU2M9ls%3D",
        )
        .unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("host", "ec2.amazonaws.com".parse().unwrap());
        let r = SignedRequest { method: "GET", path: "/", headers: &h, query: &q, form: &[], body: b"" };
        assert_eq!(detect(&r), Some(Scheme::SigV2));
        let s = AuthSettings::default();
        let now = datetime!(2016-11-15 12:01:00 UTC);
        let mem = MemorySource::new();
        // Unknown key.
        assert_eq!(authenticate(&r, &mem, &s, now).await.unwrap_err().code, "AuthFailure");
        mem.insert(
            "AKIAIOSFODNN7EXAMPLE",
            KnownUser::cloudstack_user(
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                Some("a".into()),
            ),
        );
        let p = authenticate(&r, &mem, &s, now).await.unwrap();
        assert_eq!((p.access_key.as_str(), p.account.as_deref()), ("AKIAIOSFODNN7EXAMPLE", Some("a")));
        assert_eq!(p.cloudstack.secret_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        // Expired is reported before the key is even looked up.
        let late = datetime!(2016-11-15 13:00:00 UTC);
        assert_eq!(authenticate(&r, &MemorySource::new(), &s, late).await.unwrap_err().code, "RequestExpired");
        // Wrong secret.
        let other = MemorySource::new();
        other.insert("AKIAIOSFODNN7EXAMPLE", KnownUser::cloudstack_user("AKIAIOSFODNN7EXAMPLE", "x", None));
        let e = authenticate(&r, &other, &s, now).await.unwrap_err();
        assert_eq!((e.code.as_ref(), e.status()), ("SignatureDoesNotMatch", 403));
        // No credentials at all; an unknown Authorization scheme.
        let none = SignedRequest { query: &[], ..r };
        let e = authenticate(&none, &mem, &s, now).await.unwrap_err();
        assert_eq!((e.code.as_ref(), e.status()), ("MissingAuthenticationToken", 403));
        let mut hb = h.clone();
        hb.insert("authorization", "Basic dTpw".parse().unwrap());
        let basic = SignedRequest { headers: &hb, ..none };
        assert_eq!(authenticate(&basic, &mem, &s, now).await.unwrap_err().code, "IncompleteSignature");
    }
}
