//! Registration actions (docs/soap-and-registration.md): the wire form of the old `cloudstack-aws-api-register`
//! script, but every action verified.
//!
//! - `SetUserKeys` (`accesskey`, `secretkey`): SigV2-signed with that very secret, and the keys
//!   must work against CloudStack before anything is stored.
//! - `SetCertificate` (`cert`, PEM): SigV2-signed by the registered user; binds the X.509
//!   certificate (by SHA-256 fingerprint) to the user for SOAP/WS-Security.
//! - `DeleteCertificate`: SigV2-signed by the registered user.
//! - `CloudEC2Version`: unauthenticated, the gateway version.
//!
//! Answers are plain text: the success lines the old script expects, else `<Code>: <message>`.
//!
//! Signature forms: the standard SigV2 string (decoded values re-encoded per RFC 3986, sorted)
//! and the old script's form, the raw still-encoded pairs as sent, sorted (its `cert` value is
//! Python `quote_plus(PEM)`, space as `+`, which the standard form would spell `%20`).

use std::time::Duration;

use time::OffsetDateTime;

use crate::auth::replay::{ReplayGuard, replay_key};
use crate::auth::sigv2;
use crate::auth::wssec::{self, CertificateLookup};
use crate::base::{Code, Ec2Error};

pub use crate::auth::credentials::BoxFuture;

pub const ACTIONS: &[&str] = &["SetUserKeys", "SetCertificate", "DeleteCertificate", "CloudEC2Version"];

pub const KEYS_OK: &str = "User keys set successfully";
pub const CERT_OK: &str = "User certificate set successfully";
pub const CERT_DELETED: &str = "User certificate deleted successfully";

/// Whether `action` is one of the registration actions (handled before normal authentication).
pub fn is_registration_action(action: &str) -> bool {
    ACTIONS.contains(&action)
}

/// The HTTP request as it arrived: SigV2 needs the raw, still-encoded parameters.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The `Host` header (with port, as clients sign it).
    pub host: &'a str,
    /// The request path as sent (e.g. `/awsapi`).
    pub path: &'a str,
    /// The URL query string (GET) or the form body (POST), still percent-encoded.
    pub raw_params: &'a str,
}

/// A plain-text answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    fn ok(body: &str) -> Self {
        Reply { status: 200, body: body.to_string() }
    }
    fn error(e: &Ec2Error) -> Self {
        Reply { status: e.status(), body: format!("{}: {}", e.code, e.message) }
    }
}

/// Outcome of binding a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutCertificate {
    Stored,
    /// The certificate is registered to another access key.
    TakenByOther,
}

/// What registration needs from the store. Secrets are handed over in clear; the store encrypts.
pub trait RegistrationStore: Send + Sync {
    /// Register or replace a user's keys with the CloudStack account/domain they belong to.
    fn put_user_keys<'a>(
        &'a self,
        access_key: &'a str,
        secret_key: &'a str,
        owner: &'a AccountOf,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// The registered secret for `access_key`.
    fn user_secret<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>>;
    /// Bind the certificate (`pem`, already checked by [`certificate_der`]) to `access_key`,
    /// replacing the user's previous one. Fingerprint: lowercase hex SHA-256 of the DER.
    /// `proven`: the request proved possession of the certificate's private key; such a binding
    /// replaces another user's unproven one (and is never replaced by someone else's).
    fn put_certificate<'a>(
        &'a self,
        access_key: &'a str,
        pem: &'a str,
        proven: bool,
    ) -> BoxFuture<'a, anyhow::Result<PutCertificate>>;
    /// The access key a certificate is registered to.
    fn find_certificate<'a>(&'a self, fingerprint: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>>;
    /// Remove the user's certificate; false if there was none.
    fn delete_certificate<'a>(&'a self, access_key: &'a str) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Record a signed request (by the digest of what was verified) as used until `until_unix`;
    /// false if it already was. Shared by every gateway on the store.
    fn claim_once<'a>(
        &'a self,
        digest: [u8; 32],
        until_unix: i64,
        now_unix: i64,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
}

/// The store as the replay guard of SOAP requests and registration calls.
impl ReplayGuard for CertsFromStore<'_> {
    fn first_use<'a>(
        &'a self,
        key: [u8; 32],
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Ec2Error>> {
        Box::pin(async move {
            self.0.claim_once(key, until.unix_timestamp(), now.unix_timestamp()).await.map_err(|e| {
                // Unknown whether it ran before: refuse, retryably, rather than risk running twice.
                tracing::warn!(error = %e, "replay record in the store failed");
                Ec2Error::unavailable()
            })
        })
    }
}

/// Registered certificates as the WS-Security lookup: identity = the access key.
pub struct CertsFromStore<'s>(pub &'s dyn RegistrationStore);

impl CertificateLookup for CertsFromStore<'_> {
    type Identity = String;
    fn find_certificate<'a>(&'a self, fingerprint: &'a str) -> wssec::BoxFuture<'a, Result<Option<String>, Ec2Error>> {
        Box::pin(async move {
            self.0.find_certificate(fingerprint).await.map_err(|e| {
                tracing::error!(error = %e, "certificate lookup failed");
                Ec2Error::internal()
            })
        })
    }
}

/// The CloudStack account a pair of keys belongs to (empty when CloudStack did not say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountOf {
    pub account: String,
    pub domain: String,
}

/// Whether a pair of CloudStack keys works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    Valid(AccountOf),
    Rejected,
}

pub trait KeyChecker: Send + Sync {
    fn check<'a>(&'a self, access_key: &'a str, secret_key: &'a str) -> BoxFuture<'a, Result<KeyCheck, Ec2Error>>;
}

/// The registration endpoint.
pub struct Registration<'a> {
    pub store: &'a dyn RegistrationStore,
    pub keys: &'a dyn KeyChecker,
    /// Allowed clock difference for `Timestamp` / `Expires` (15 minutes).
    pub max_skew: Duration,
    /// How far ahead an `Expires` may be (one week, as the Query API).
    pub max_expires: Duration,
}

impl<'a> Registration<'a> {
    pub fn new(store: &'a dyn RegistrationStore, keys: &'a dyn KeyChecker) -> Self {
        Registration { store, keys, max_skew: Duration::from_secs(15 * 60), max_expires: Duration::from_secs(604_800) }
    }

    /// Handle one registration action. Never logs parameter values (the secret travels here).
    pub async fn handle(&self, req: &RawRequest<'_>, now: OffsetDateTime) -> Reply {
        match self.run(req, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(code = %e.code, "registration refused");
                Reply::error(&e)
            }
        }
    }

    async fn run(&self, req: &RawRequest<'_>, now: OffsetDateTime) -> Result<Reply, Ec2Error> {
        let params = decode(req.raw_params)?;
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let action = get("Action")
            .ok_or_else(|| Ec2Error::new(Code::MissingAction, "The request must contain the parameter Action"))?;
        match action {
            "CloudEC2Version" => Ok(Reply::ok(concat!("ec2bridge ", env!("CARGO_PKG_VERSION")))),
            "SetUserKeys" => {
                let access = require(get("accesskey"), "accesskey")?;
                let secret = require(get("secretkey"), "secretkey")?;
                let signer = require(get("AWSAccessKeyId"), "AWSAccessKeyId")?;
                if signer != access {
                    return Err(Ec2Error::new(
                        Code::AuthFailure,
                        "SetUserKeys must be signed with the keys it registers",
                    ));
                }
                self.verify_sigv2(req, &params, secret, now).await?;
                let owner = match self.keys.check(access, secret).await? {
                    KeyCheck::Valid(owner) => owner,
                    KeyCheck::Rejected => {
                        return Err(Ec2Error::new(Code::AuthFailure, "CloudStack did not accept these API keys"));
                    }
                };
                self.store.put_user_keys(access, secret, &owner).await.map_err(store_error)?;
                tracing::info!(access_key = access, "user keys registered");
                Ok(Reply::ok(KEYS_OK))
            }
            "SetCertificate" | "DeleteCertificate" => {
                let access = self.registered_signer(req, &params, now).await?;
                if action == "DeleteCertificate" {
                    return if self.store.delete_certificate(&access).await.map_err(store_error)? {
                        tracing::info!(access_key = access, "certificate removed");
                        Ok(Reply::ok(CERT_DELETED))
                    } else {
                        // 404 as the old gateway answered.
                        Ok(Reply {
                            status: 404,
                            body: "InvalidCertificate.NotFound: No certificate is registered for this user".into(),
                        })
                    };
                }
                let pem = require(get("cert"), "cert")?;
                let der = certificate_der(pem)?;
                wssec::check_certificate_time(&der, now, wssec::MAX_CLOCK_SKEW).map_err(|e| {
                    Ec2Error::new(Code::InvalidParameterValue, format!("The cert parameter is not usable: {e}"))
                })?;
                let fp = wssec::fingerprint(&der);
                let proven = match get("CertSignature") {
                    None | Some("") => false,
                    Some(proof) => {
                        let time = get("Timestamp").or(get("Expires")).unwrap_or("");
                        check_possession(&der, &proof_message(&access, time, &fp), proof)?;
                        true
                    }
                };
                match self.store.put_certificate(&access, pem, proven).await.map_err(store_error)? {
                    PutCertificate::Stored => {
                        tracing::info!(access_key = access, fingerprint = fp, proven, "certificate registered");
                        Ok(Reply::ok(CERT_OK))
                    }
                    PutCertificate::TakenByOther => Ok(Reply {
                        status: 409,
                        body: "InvalidCertificate.Duplicate: This certificate is already registered to another user"
                            .into(),
                    }),
                }
            }
            other => {
                Err(Ec2Error::new(Code::InvalidAction, format!("The action {other} is not a registration action")))
            }
        }
    }

    /// SigV2 by a user whose keys are registered; returns its access key.
    async fn registered_signer(
        &self,
        req: &RawRequest<'_>,
        params: &[(String, String)],
        now: OffsetDateTime,
    ) -> Result<String, Ec2Error> {
        let access = params
            .iter()
            .find(|(k, _)| k == "AWSAccessKeyId")
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Ec2Error::new(Code::MissingAuthenticationToken, "The request must be signed (AWSAccessKeyId)")
            })?;
        // Time first: an expired request learns nothing about which keys exist.
        self.check_time(params, now)?;
        let secret = self.store.user_secret(access).await.map_err(store_error)?.ok_or_else(|| {
            Ec2Error::new(Code::AuthFailure, "These keys are not registered with the gateway; run SetUserKeys first")
        })?;
        self.verify_sigv2(req, params, &secret, now).await?;
        Ok(access.to_string())
    }

    /// `Timestamp` / `Expires` as the Query SigV2 verifier checks them.
    fn check_time(&self, params: &[(String, String)], now: OffsetDateTime) -> Result<sigv2::Validity, Ec2Error> {
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let (validity, text) = sigv2::validity_of(get("Timestamp"), get("Expires"))?;
        sigv2::check_validity(validity, text, now, self.max_skew, self.max_expires)?;
        Ok(validity)
    }

    /// SigV2 (either canonical form, `sigv2::verify_either_form`), HmacSHA1 or HmacSHA256, with a
    /// fresh time; then the call is recorded as used: a registration call works once (a captured
    /// SetCertificate must not re-bind an old certificate later).
    async fn verify_sigv2(
        &self,
        req: &RawRequest<'_>,
        params: &[(String, String)],
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<(), Ec2Error> {
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        match get("SignatureVersion") {
            Some("2") => {}
            _ => return Err(Ec2Error::new(Code::AuthFailure, "Registration requests must use SignatureVersion=2")),
        }
        let method = match get("SignatureMethod") {
            Some("HmacSHA256") => sigv2::Method::HmacSha256,
            Some("HmacSHA1") => sigv2::Method::HmacSha1,
            _ => return Err(Ec2Error::new(Code::AuthFailure, "SignatureMethod must be HmacSHA1 or HmacSHA256")),
        };
        let sig = require(get("Signature"), "Signature")?;
        let validity = self.check_time(params, now)?;
        sigv2::verify_either_form(req.method, req.host, req.path, params, req.raw_params, method, secret, sig)?;
        // Keyed on the verified signature (an HMAC: only the secret's holder makes a new one).
        let key = replay_key("registration", &[sig.as_bytes(), req.host.as_bytes(), req.path.as_bytes()]);
        let until = sigv2::valid_until(validity, self.max_skew);
        if !CertsFromStore(self.store).first_use(key, until, now).await? {
            return Err(Ec2Error::new(
                Code::AuthFailure,
                "This signed registration request was already used; sign a new one",
            ));
        }
        Ok(())
    }
}

fn store_error(e: anyhow::Error) -> Ec2Error {
    tracing::error!(error = %e, "registration store failed");
    Ec2Error::internal()
}

fn require<'v>(v: Option<&'v str>, name: &str) -> Result<&'v str, Ec2Error> {
    match v {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Ec2Error::missing_parameter(name)),
    }
}

/// `a=1&b=x+y`: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(raw: &str) -> Result<Vec<(String, String)>, Ec2Error> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
        .map_err(|_| Ec2Error::new(Code::MalformedQueryString, "The query string could not be decoded"))
}

/// What the certificate's private key signs to prove possession at SetCertificate (parameter
/// `CertSignature`, base64 RSA PKCS#1 v1.5 SHA-256): the access key it binds to, the request's
/// `Timestamp` (or `Expires`) as sent, and the certificate's SHA-256 fingerprint, so a proof is
/// good for that user, that (single-use) request and that certificate only.
pub fn proof_message(access_key: &str, time: &str, fingerprint: &str) -> String {
    format!("ec2bridge-certificate-proof\n{access_key}\n{time}\n{fingerprint}")
}

/// The proof verifies with the certificate's public key.
fn check_possession(der: &[u8], message: &str, proof: &str) -> Result<(), Ec2Error> {
    use base64::Engine as _;
    use rsa::pkcs8::DecodePublicKey as _;
    use rsa::signature::Verifier as _;
    let bad = || {
        Ec2Error::new(
            Code::InvalidParameterValue,
            "CertSignature does not verify with the certificate's key (it must be an RSA-SHA256 signature over \
             the proof message, see docs/soap-and-registration.md)",
        )
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| bad())?;
    let key = rsa::RsaPublicKey::from_public_key_der(cert.public_key().raw).map_err(|_| bad())?;
    let sig = base64::engine::general_purpose::STANDARD.decode(proof.trim()).map_err(|_| bad())?;
    let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).map_err(|_| bad())?;
    rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify(message.as_bytes(), &sig).map_err(|_| bad())
}

/// The certificate from the PEM, checked usable for WS-Security (parses, RSA key).
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, Ec2Error> {
    let bad = || {
        Ec2Error::new(
            Code::InvalidParameterValue,
            "The cert parameter must be a PEM-encoded X.509 certificate with an RSA key",
        )
    };
    // The same rules as the store applies (one certificate block, nothing else), checked here so
    // that a bad PEM is a client error, not a store failure.
    let der = crate::base::util::pem_certificate_der(pem.trim()).map_err(|_| bad())?;
    let key = bergshamra_keys::loader::load_x509_cert_der(&der).map_err(|_| bad())?;
    if key.algorithm_name() != "RSA" {
        return Err(bad());
    }
    Ok(der)
}
