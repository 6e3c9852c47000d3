//! WS-Security for SOAP requests (docs/ec2-wire.md "SOAP and WS-Security"): the X.509
//! BinarySecurityToken names a
//! registered certificate, and the XML signature must verify with that certificate alone, cover
//! exactly the Body and the Timestamp, and the Body handed on must be the very element signed.
//!
//! Two phases, because the certificate registry is async (the store) and verification is CPU
//! work: [`read_token`] pulls the certificate out of the envelope (so the caller can look its
//! fingerprint up), then [`SoapSignatureVerifier::verify`] checks everything with that
//! certificate. [`authenticate`] runs both around a [`CertificateLookup`].
//!
//! The XML-DSig engine sits behind the trait; [`BergshamraVerifier`] is the pure-Rust one. Its
//! own structural guard ("strict" mode) rejects WS-Security layouts (the Body is neither an
//! ancestor nor a sibling of the Signature), so we turn it off and enforce the layout ourselves
//! on the same parsed tree the engine verified.

use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use time::OffsetDateTime;
use uppsala::{Document, NodeId, NodeKind};

use crate::base::{Code, Ec2Error};

pub const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_WSSE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const NS_WSU: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const X509V3_SUFFIX: &str = "#X509v3";
const BASE64_BINARY_SUFFIX: &str = "#Base64Binary";

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
const SIGNATURE_METHODS: &[&str] =
    &["http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"];
const DIGEST_METHODS: &[&str] = &["http://www.w3.org/2000/09/xmldsig#sha1", "http://www.w3.org/2001/04/xmlenc#sha256"];

/// Accepted distance between the Timestamp's `Created` and our clock (gateway choice).
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

/// Why a SOAP request was refused. Messages name the rule broken, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsSecError {
    /// Not a well-formed SOAP 1.1 envelope, or a DOCTYPE/entity declaration.
    #[error("{0}")]
    Malformed(String),
    /// No Security header, token or signature at all.
    #[error("{0}")]
    Missing(String),
    /// The certificate is not registered with the gateway.
    #[error("The X.509 certificate in the request is not registered with this gateway")]
    UnknownCertificate,
    /// The signature or a reference digest does not verify with the registered certificate.
    #[error("The request signature does not verify with the registered certificate: {0}")]
    BadSignature(String),
    /// Signed, but not the way we require (algorithms, coverage, layout: wrapping attempts).
    #[error("{0}")]
    Policy(String),
    /// The Timestamp is missing, stale, in the future, or expired.
    #[error("{0}")]
    Expired(String),
    /// The certificate is past its notAfter or before its notBefore.
    #[error("{0}")]
    CertificateNotValid(String),
}

impl From<WsSecError> for Ec2Error {
    fn from(e: WsSecError) -> Self {
        let code = match &e {
            WsSecError::Malformed(_) => Code::InvalidSoapRequest,
            WsSecError::Missing(_) => Code::MissingAuthenticationToken,
            WsSecError::UnknownCertificate => Code::AuthFailure,
            WsSecError::BadSignature(_) => Code::SignatureDoesNotMatch,
            WsSecError::Policy(_) => Code::InvalidSecurity,
            WsSecError::Expired(_) => Code::RequestExpired,
            WsSecError::CertificateNotValid(_) => Code::AuthFailure,
        };
        Ec2Error::new(code, e.to_string())
    }
}

fn malformed(m: impl Into<String>) -> WsSecError {
    WsSecError::Malformed(m.into())
}
fn policy(m: impl Into<String>) -> WsSecError {
    WsSecError::Policy(m.into())
}

/// The certificate a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityToken {
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER certificate: the registry key.
    pub fingerprint: String,
}

/// The certificate's validity period holds `now`, with `skew` of clock difference either way
/// (the tolerance used for Timestamps). Checked at registration and on every SOAP request.
pub fn check_certificate_time(der: &[u8], now: OffsetDateTime, skew: time::Duration) -> Result<(), WsSecError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| malformed("The certificate is not a DER X.509 certificate"))?;
    let v = cert.validity();
    let (from, to) = (v.not_before.timestamp(), v.not_after.timestamp());
    let t = now.unix_timestamp();
    let skew = skew.whole_seconds();
    if t.saturating_add(skew) < from {
        return Err(WsSecError::CertificateNotValid("The X.509 certificate is not valid yet (notBefore)".into()));
    }
    if t.saturating_sub(skew) > to {
        return Err(WsSecError::CertificateNotValid("The X.509 certificate has expired (notAfter)".into()));
    }
    Ok(())
}

/// SHA-256 fingerprint of a DER certificate, lowercase hex (the form the store keys on).
pub use crate::base::util::certificate_fingerprint as fingerprint;

/// An owned copy of the signed operation element (the Body's only child), so the SOAP front end
/// reads exactly what was verified and never re-parses the bytes with another parser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmlElement {
    pub namespace: Option<String>,
    pub name: String,
    /// Attributes by local name.
    pub attributes: Vec<(String, String)>,
    /// Concatenated direct text (and CDATA) children.
    pub text: String,
    pub children: Vec<XmlElement>,
}

impl XmlElement {
    pub fn child(&self, name: &str) -> Option<&XmlElement> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// What a verified envelope yields.
#[derive(Debug, Clone)]
pub struct VerifiedEnvelope {
    pub token: SecurityToken,
    /// The operation element inside the signed Body.
    pub operation: XmlElement,
    /// The signed Timestamp's `Created`.
    pub created: OffsetDateTime,
    /// The signed Timestamp's `Expires`, if any (for a replay cache's retention).
    pub expires: Option<OffsetDateTime>,
    /// The decoded `SignatureValue` bytes that were verified.
    pub signature: Vec<u8>,
}

impl VerifiedEnvelope {
    /// What a replay guard keys on: the verified signature bytes and the signed `Created` time,
    /// so the same signature spelled differently (whitespace, comments) is the same request.
    pub fn replay_key(&self) -> [u8; 32] {
        let created = self.created.unix_timestamp_nanos().to_be_bytes();
        super::replay::replay_key("wssec", &[&self.signature, &created])
    }

    /// Until when a replay must be refused: as long as the Timestamp would still be accepted.
    pub fn replay_until(&self) -> OffsetDateTime {
        let window = self.created + MAX_CLOCK_SKEW;
        self.expires.map_or(window, |e| e.min(window))
    }
}

/// An XML-DSig engine checking a WS-Security envelope against one certificate.
pub trait SoapSignatureVerifier: Send + Sync {
    /// Verify `envelope` with `token` (already known to be registered). Implementations must use
    /// only `token`'s key, check the layout, coverage and freshness rules of this module, and
    /// return the operation element from the Body that was signed.
    fn verify(
        &self,
        envelope: &str,
        token: &SecurityToken,
        now: OffsetDateTime,
    ) -> Result<VerifiedEnvelope, WsSecError>;
}

/// A boxed future, for async trait methods usable behind generics.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who owns a registered certificate. Async because the registry is the store.
pub trait CertificateLookup: Send + Sync {
    type Identity: Send;
    /// `fingerprint`: lowercase hex SHA-256 of the DER certificate.
    fn find_certificate<'a>(&'a self, fingerprint: &'a str) -> BoxFuture<'a, Result<Option<Self::Identity>, Ec2Error>>;
}

/// The whole check: token -> registry -> signature. Any failure is a ready-made `Ec2Error`.
pub async fn authenticate<L: CertificateLookup>(
    verifier: &dyn SoapSignatureVerifier,
    certs: &L,
    envelope: &[u8],
    now: OffsetDateTime,
) -> Result<(L::Identity, VerifiedEnvelope), Ec2Error> {
    let text = envelope_text(envelope)?;
    let token = read_token(text)?;
    let Some(identity) = certs.find_certificate(&token.fingerprint).await? else {
        return Err(WsSecError::UnknownCertificate.into());
    };
    let verified = verifier.verify(text, &token, now)?;
    Ok((identity, verified))
}

/// The envelope as UTF-8 text (SOAP clients send UTF-8; a UTF-8 BOM is tolerated).
pub fn envelope_text(envelope: &[u8]) -> Result<&str, WsSecError> {
    let envelope = envelope.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(envelope);
    std::str::from_utf8(envelope).map_err(|_| malformed("The SOAP request is not UTF-8 text"))
}

/// Refuse DTDs outright, before any parser sees them: no entity expansion, no external fetch.
pub fn refuse_dtd(text: &str) -> Result<(), WsSecError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = memchr_lt_bang(&bytes[i..]) {
        let rest = &bytes[i + pos + 2..];
        let upper = |n: usize| rest.iter().take(n).map(u8::to_ascii_uppercase).collect::<Vec<u8>>();
        if upper(7) == b"DOCTYPE" || upper(6) == b"ENTITY" {
            return Err(malformed("DOCTYPE and entity declarations are not allowed in SOAP requests"));
        }
        i += pos + 2;
    }
    Ok(())
}

fn memchr_lt_bang(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"<!")
}

fn parse(text: &str) -> Result<Document<'_>, WsSecError> {
    refuse_dtd(text)?;
    uppsala::Parser::new()
        .with_forbid_dtd(true)
        .with_forbid_entities(true)
        .parse(text)
        .map_err(|e| malformed(format!("The SOAP request is not well-formed XML: {e}")))
}

/// The layout every accepted envelope has: `Envelope/{Header/Security, Body}` each exactly once.
struct Layout {
    body: NodeId,
    security: NodeId,
    token: NodeId,
    signature: Option<NodeId>,
    timestamp: Option<NodeId>,
}

fn is(doc: &Document<'_>, id: NodeId, ns: &str, local: &str) -> bool {
    doc.element(id).is_some_and(|e| e.name.namespace_uri.as_deref() == Some(ns) && e.name.local_name == local)
}

fn child_elements(doc: &Document<'_>, id: NodeId) -> Vec<NodeId> {
    doc.children(id).into_iter().filter(|c| doc.element(*c).is_some()).collect()
}

/// Exactly one child element `ns:local` of `parent`; `what` names it in errors.
fn only_child(doc: &Document<'_>, parent: NodeId, ns: &str, local: &str) -> Result<Option<NodeId>, WsSecError> {
    let found: Vec<NodeId> = child_elements(doc, parent).into_iter().filter(|c| is(doc, *c, ns, local)).collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(Some(found[0])),
        _ => Err(policy(format!("The SOAP request has more than one {local} element where one is allowed"))),
    }
}

fn layout(doc: &Document<'_>) -> Result<Layout, WsSecError> {
    let env = doc.document_element().ok_or_else(|| malformed("The SOAP request has no root element"))?;
    if !is(doc, env, NS_SOAP11, "Envelope") {
        return Err(malformed("The request is not a SOAP 1.1 Envelope"));
    }
    // Nothing but Header then Body: extra elements are where wrapped copies hide.
    let kids = child_elements(doc, env);
    let header = only_child(doc, env, NS_SOAP11, "Header")?;
    let body = only_child(doc, env, NS_SOAP11, "Body")?.ok_or_else(|| malformed("The SOAP Envelope has no Body"))?;
    let header = header
        .ok_or_else(|| WsSecError::Missing("The SOAP request has no Header with a wsse:Security element".into()))?;
    if kids != [header, body] {
        return Err(policy("The SOAP Envelope must contain exactly a Header followed by a Body"));
    }
    let security = only_child(doc, header, NS_WSSE, "Security")?
        .ok_or_else(|| WsSecError::Missing("The SOAP request has no wsse:Security header".into()))?;
    let token = only_child(doc, security, NS_WSSE, "BinarySecurityToken")?
        .ok_or_else(|| WsSecError::Missing("The wsse:Security header has no BinarySecurityToken".into()))?;
    let signature = only_child(doc, security, NS_DSIG, "Signature")?;
    let timestamp = only_child(doc, security, NS_WSU, "Timestamp")?;
    Ok(Layout { body, security, token, signature, timestamp })
}

fn token_of(doc: &Document<'_>, bst: NodeId) -> Result<SecurityToken, WsSecError> {
    let el = doc.element(bst).ok_or_else(|| malformed("bad token"))?;
    let value_type = el.get_attribute("ValueType").unwrap_or("");
    if !value_type.ends_with(X509V3_SUFFIX) {
        return Err(policy("The BinarySecurityToken must be an X509v3 certificate"));
    }
    if let Some(enc) = el.get_attribute("EncodingType")
        && !enc.ends_with(BASE64_BINARY_SUFFIX)
    {
        return Err(policy("The BinarySecurityToken must be Base64Binary encoded"));
    }
    let b64: String = doc.text_content_deep(bst).chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| malformed("The BinarySecurityToken is not valid base64"))?;
    match x509_parser::parse_x509_certificate(&der) {
        Ok(([], _)) => {}
        _ => return Err(malformed("The BinarySecurityToken is not a DER X.509 certificate")),
    }
    Ok(SecurityToken { fingerprint: fingerprint(&der), der })
}

/// Phase one: the certificate the envelope presents (well-formedness and layout checked too, so
/// garbage never reaches the registry).
pub fn read_token(envelope: &str) -> Result<SecurityToken, WsSecError> {
    let doc = parse(envelope)?;
    let l = layout(&doc)?;
    token_of(&doc, l.token)
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(t);
    }
    // xsd:dateTime without a zone: WS-Security says UTC.
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");
    time::PrimitiveDateTime::parse(s, f).ok().map(|p| p.assume_utc())
}

fn check_timestamp(
    doc: &Document<'_>,
    ts: NodeId,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, Option<OffsetDateTime>), WsSecError> {
    let created = only_child(doc, ts, NS_WSU, "Created")?
        .ok_or_else(|| WsSecError::Expired("The wsu:Timestamp has no Created time".into()))?;
    let created = parse_time(&doc.text_content_deep(created))
        .ok_or_else(|| malformed("The wsu:Timestamp Created time is not an xsd:dateTime"))?;
    let expires = match only_child(doc, ts, NS_WSU, "Expires")? {
        Some(e) => Some(
            parse_time(&doc.text_content_deep(e))
                .ok_or_else(|| malformed("The wsu:Timestamp Expires time is not an xsd:dateTime"))?,
        ),
        None => None,
    };
    if (now - created).abs() > MAX_CLOCK_SKEW {
        return Err(WsSecError::Expired(
            "The request's wsu:Timestamp Created time is more than 15 minutes from the server's time".into(),
        ));
    }
    if let Some(exp) = expires
        && now >= exp
    {
        return Err(WsSecError::Expired("The request's wsu:Timestamp has expired".into()));
    }
    Ok((created, expires))
}

fn algorithm<'d>(doc: &'d Document<'_>, id: NodeId) -> &'d str {
    doc.element(id).and_then(|e| e.get_attribute("Algorithm")).unwrap_or("")
}

/// The algorithms we accept, read from the SignedInfo that was verified. Returns the number of
/// `Reference` elements, to compare with what the engine verified.
fn check_signed_info(doc: &Document<'_>, signature: NodeId) -> Result<usize, WsSecError> {
    let si =
        only_child(doc, signature, NS_DSIG, "SignedInfo")?.ok_or_else(|| policy("The Signature has no SignedInfo"))?;
    let c14n = only_child(doc, si, NS_DSIG, "CanonicalizationMethod")?
        .ok_or_else(|| policy("The SignedInfo has no CanonicalizationMethod"))?;
    if !matches!(algorithm(doc, c14n), EXC_C14N | EXC_C14N_COMMENTS) {
        return Err(policy("The signature must use exclusive XML canonicalization"));
    }
    let sm = only_child(doc, si, NS_DSIG, "SignatureMethod")?
        .ok_or_else(|| policy("The SignedInfo has no SignatureMethod"))?;
    if !SIGNATURE_METHODS.contains(&algorithm(doc, sm)) {
        return Err(policy("The signature method must be RSA-SHA1 or RSA-SHA256"));
    }
    let mut refs = 0;
    for r in child_elements(doc, si) {
        if !is(doc, r, NS_DSIG, "Reference") {
            continue;
        }
        refs += 1;
        let uri = doc.element(r).and_then(|e| e.get_attribute("URI")).unwrap_or("");
        if !uri.starts_with('#') || uri.len() < 2 {
            return Err(policy("Every signed Reference must point to an element of the envelope by its wsu:Id"));
        }
        let dm =
            only_child(doc, r, NS_DSIG, "DigestMethod")?.ok_or_else(|| policy("A Reference has no DigestMethod"))?;
        if !DIGEST_METHODS.contains(&algorithm(doc, dm)) {
            return Err(policy("Reference digests must be SHA-1 or SHA-256"));
        }
        // Only canonicalization transforms: an XPath or other filter could sign less than the
        // element it names.
        if let Some(ts) = only_child(doc, r, NS_DSIG, "Transforms")? {
            for t in child_elements(doc, ts) {
                if !matches!(algorithm(doc, t), EXC_C14N | EXC_C14N_COMMENTS) {
                    return Err(policy("Signed References may only use the exclusive canonicalization transform"));
                }
            }
        }
    }
    Ok(refs)
}

/// The `SignatureValue`, decoded, in the one spelling every reader agrees on: a single text node
/// of base64 and ASCII whitespace. Engines differ on the rest (the one we use reads only the first
/// text node and drops all Unicode whitespace), and any difference between what was verified and
/// what the replay guard keys on lets a re-spelled copy of a request through, so a comment, CDATA,
/// an element or a non-ASCII character inside it is refused.
fn signature_value(doc: &Document<'_>, signature: NodeId) -> Result<Vec<u8>, WsSecError> {
    let sv = only_child(doc, signature, NS_DSIG, "SignatureValue")?
        .ok_or_else(|| policy("The Signature has no SignatureValue"))?;
    let kids = doc.children(sv);
    let text = match kids.as_slice() {
        [only] => match doc.node_kind(*only) {
            Some(NodeKind::Text(t)) => t,
            _ => return Err(policy("The SignatureValue must be plain base64 text")),
        },
        _ => return Err(policy("The SignatureValue must be plain base64 text")),
    };
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') || b.is_ascii_whitespace()) {
        return Err(policy("The SignatureValue must be plain base64 text"));
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| policy("The SignatureValue must be plain base64 text"))
}

fn owned(doc: &Document<'_>, id: NodeId) -> XmlElement {
    // Callers pass element ids; anything else becomes an empty element, never a panic.
    let Some(el) = doc.element(id) else { return XmlElement::default() };
    let mut out = XmlElement {
        namespace: el.name.namespace_uri.as_deref().map(str::to_string),
        name: el.name.local_name.to_string(),
        attributes: el.attributes.iter().map(|a| (a.name.local_name.to_string(), a.value.to_string())).collect(),
        ..Default::default()
    };
    for c in doc.children(id) {
        match doc.node_kind(c) {
            Some(NodeKind::Element(_)) => out.children.push(owned(doc, c)),
            Some(NodeKind::Text(t)) | Some(NodeKind::CData(t)) => out.text.push_str(t),
            _ => {}
        }
    }
    out
}

/// The Body's operation: its one element child, with nothing but whitespace beside it.
fn operation(doc: &Document<'_>, body: NodeId) -> Result<XmlElement, WsSecError> {
    let mut op = None;
    for c in doc.children(body) {
        match doc.node_kind(c) {
            Some(NodeKind::Element(_)) if op.is_some() => {
                return Err(policy("The SOAP Body must contain exactly one operation element"));
            }
            Some(NodeKind::Element(_)) => op = Some(c),
            Some(NodeKind::Text(t)) | Some(NodeKind::CData(t)) if !t.trim().is_empty() => {
                return Err(malformed("The SOAP Body has text outside the operation element"));
            }
            _ => {}
        }
    }
    let op = op.ok_or_else(|| malformed("The SOAP Body is empty"))?;
    Ok(owned(doc, op))
}

/// The pure-Rust engine (bergshamra), told to trust nothing but the registered certificate.
#[derive(Debug, Default, Clone, Copy)]
pub struct BergshamraVerifier;

impl SoapSignatureVerifier for BergshamraVerifier {
    fn verify(
        &self,
        envelope: &str,
        token: &SecurityToken,
        now: OffsetDateTime,
    ) -> Result<VerifiedEnvelope, WsSecError> {
        let doc = parse(envelope)?;
        let l = layout(&doc)?;
        // The token in this envelope must be the one the registry vouched for.
        if token_of(&doc, l.token)? != *token {
            return Err(WsSecError::UnknownCertificate);
        }
        check_certificate_time(&token.der, now, MAX_CLOCK_SKEW)?;
        let signature =
            l.signature.ok_or_else(|| WsSecError::Missing("The wsse:Security header has no Signature".into()))?;
        let timestamp = l
            .timestamp
            .ok_or_else(|| WsSecError::Expired("The wsse:Security header has no signed wsu:Timestamp".into()))?;
        let expected_refs = check_signed_info(&doc, signature)?;
        let signature_bytes = signature_value(&doc, signature)?;

        let key = bergshamra_keys::loader::load_x509_cert_der(&token.der)
            .map_err(|_| policy("The certificate's public key is not usable for XML signatures"))?;
        if key.algorithm_name() != "RSA" {
            return Err(policy("The certificate must carry an RSA key"));
        }
        let mut keys = bergshamra_keys::KeysManager::new();
        keys.add_key(key);
        // trusted_keys_only (default of new()): KeyInfo can never bring its own key. Strict
        // layout off: it rejects WS-Security's Header/Body split; `layout` and the reference
        // checks below replace it.
        let ctx = bergshamra_dsig::DsigContext::new(keys).with_strict_verification(false);
        let result = bergshamra_dsig::verify::verify_document_with_source(&ctx, &doc, Some(envelope))
            .map_err(|e| WsSecError::BadSignature(engine_reason(&e.to_string())))?;
        let (signature_node, references) = match result {
            bergshamra_dsig::VerifyResult::Valid { signature_node, references, .. } => (signature_node, references),
            bergshamra_dsig::VerifyResult::Invalid { reason } => {
                return Err(WsSecError::BadSignature(engine_reason(&reason)));
            }
        };
        // The engine verifies the first Signature in document order; it must be ours.
        if signature_node != signature {
            return Err(policy("The verified signature is not the one in the wsse:Security header"));
        }
        if references.len() != expected_refs {
            return Err(policy("Not every signed Reference was verified"));
        }
        let (mut body_signed, mut ts_signed) = (false, false);
        for r in &references {
            if !r.digest_verified {
                return Err(policy("Not every signed Reference was verified"));
            }
            match r.resolved_node {
                Some(n) if n == l.body => body_signed = true,
                Some(n) if n == timestamp => ts_signed = true,
                Some(n) if n == l.token => {}
                _ => {
                    return Err(policy(
                        "The signature may only cover the SOAP Body, the wsu:Timestamp and the BinarySecurityToken",
                    ));
                }
            }
        }
        if !body_signed {
            return Err(policy("The signature does not cover the SOAP Body"));
        }
        if !ts_signed {
            return Err(policy("The signature does not cover the wsu:Timestamp"));
        }
        debug_assert!(doc.parent(timestamp) == Some(l.security));
        let (created, expires) = check_timestamp(&doc, timestamp, now)?;
        Ok(VerifiedEnvelope {
            token: token.clone(),
            operation: operation(&doc, l.body)?,
            created,
            expires,
            signature: signature_bytes,
        })
    }
}

/// Engine messages can quote digests and canonical bytes; keep only their first line, bounded.
fn engine_reason(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    line.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtd_refused_before_parsing() {
        for doc in [
            "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>",
            "<!doctype x><x/>",
            "<x><!ENTITY a 'b'></x>",
        ] {
            assert!(matches!(refuse_dtd(doc), Err(WsSecError::Malformed(_))), "{doc}");
        }
        assert!(refuse_dtd("<x><!-- c --><![CDATA[z]]></x>").is_ok());
    }

    #[test]
    fn timestamps_parse() {
        assert!(parse_time("2013-10-01T12:00:00Z").is_some());
        assert!(parse_time("2013-10-01T12:00:00.123Z").is_some());
        assert!(parse_time("2013-10-01T12:00:00").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn non_soap_and_missing_header() {
        assert!(matches!(read_token("<a/>"), Err(WsSecError::Malformed(_))));
        let no_header = format!("<s:Envelope xmlns:s=\"{NS_SOAP11}\"><s:Body><x/></s:Body></s:Envelope>");
        assert!(matches!(read_token(&no_header), Err(WsSecError::Missing(_))));
    }
}
