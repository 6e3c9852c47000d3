//! Registered X.509 certificates: parse a PEM, check it is one certificate, and compute the
//! fingerprint the store keys on (lowercase hex SHA-256 of the DER, as WS-Security lookups use).

use base64::Engine;

use super::StoreError;

/// Certificates larger than this are refused before parsing.
pub const MAX_PEM_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCertificate {
    /// Lowercase hex SHA-256 of the DER encoding.
    pub fingerprint: String,
    /// Subject distinguished name, RFC 4514 style.
    pub subject: String,
    /// The certificate re-encoded as a canonical PEM block (anything around it dropped).
    pub pem: String,
}

/// Lowercase hex SHA-256 of a DER certificate.
pub use crate::base::util::certificate_fingerprint as fingerprint_der;

/// Parse exactly one PEM `CERTIFICATE` block holding a valid X.509 certificate.
pub fn parse_pem(pem: &str) -> Result<ParsedCertificate, StoreError> {
    if pem.len() > MAX_PEM_LEN {
        return Err(StoreError::InvalidCertificate(format!("larger than {MAX_PEM_LEN} bytes")));
    }
    let der = crate::base::util::pem_certificate_der(pem).map_err(StoreError::InvalidCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| StoreError::InvalidCertificate("the PEM block is not a valid X.509 certificate".into()))?;
    let subject = cert.subject().to_string();
    Ok(ParsedCertificate { fingerprint: fingerprint_der(&der), subject, pem: to_pem(&der) })
}

fn to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage() {
        assert!(parse_pem("").is_err());
        assert!(parse_pem("hello").is_err());
        assert!(parse_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
        assert!(parse_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        assert!(parse_pem(&"x".repeat(MAX_PEM_LEN + 1)).is_err());
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(fingerprint_der(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
