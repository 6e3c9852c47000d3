//! Small helpers several layers need, each written once: CloudStack's date form, host-name
//! checks, URL redaction for messages, the default data directory, certificate fingerprints.

use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// A date as CloudStack writes and parses it: `yyyy-MM-dd'T'HH:mm:ss` and a numeric offset
/// without a colon (`2030-01-02T03:04:05+0000`; docs/cloudstack-wire.md, "Transport").
pub fn cloudstack_date(t: time::OffsetDateTime) -> String {
    let (h, m, _) = t.offset().as_hms();
    let sign = if t.offset().is_negative() { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        h.unsigned_abs(),
        m.unsigned_abs()
    )
}

/// FNV-1a: the hasher of the gateway's own name tables (shapes, value maps, id kinds), looked
/// up several times per rendered item. A few instructions per byte of a short name against
/// SipHash's fixed cost (3% of a large DescribeInstances, by callgrind). Their keys come from the
/// mapping files, never from a request, so the flooding defence SipHash buys is not needed.
#[derive(Clone, Copy)]
pub struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` hasher for name tables (`NameHasher`).
pub type NameHash = BuildHasherDefault<NameHasher>;

/// Now, in UTC, as CloudStack writes dates.
pub fn cloudstack_now() -> String {
    cloudstack_date(time::OffsetDateTime::now_utc())
}

/// `name`, `name:port`, `1.2.3.4:port`, `[::1]:port`: letters, digits, `.`, `-`, `_`, and the
/// brackets/colons of an IPv6 literal; at most 255 bytes.
pub fn valid_host(h: &str) -> bool {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) if !n.starts_with('[') || n.ends_with(']') => (n, Some(p)),
        _ => (h, None),
    };
    let name_ok = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    h.len() <= 255 && name_ok && port_ok
}

/// A URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_string() };
    let user = userinfo.split(':').next().unwrap_or_default();
    let tail = tail.split('?').next().unwrap_or_default();
    if userinfo.contains(':') {
        format!("{scheme}://{user}:<redacted>@{host}{tail}")
    } else {
        format!("{scheme}://{user}@{host}{tail}")
    }
}

/// `$XDG_DATA_HOME/ec2bridge` or `~/.local/share/ec2bridge`.
pub fn data_dir() -> Option<PathBuf> {
    let non_empty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").and_then(non_empty) {
        return Some(x.join("ec2bridge"));
    }
    std::env::var_os("HOME").and_then(non_empty).map(|h| h.join(".local/share/ec2bridge"))
}

/// The fingerprint of a DER certificate: lowercase hex SHA-256 (the form the store keys
/// certificates on and the SOAP front end looks them up by).
pub fn certificate_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The DER of the one X.509 certificate a PEM text holds: exactly one `CERTIFICATE` block, a
/// valid certificate, nothing after it. The error names the rule broken (never key material).
pub fn pem_certificate_der(pem: &str) -> Result<Vec<u8>, String> {
    let mut blocks = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes());
    let block = match blocks.next() {
        Some(Ok(b)) => b,
        Some(Err(_)) | None => return Err("no PEM `BEGIN CERTIFICATE` block found".into()),
    };
    if block.label != "CERTIFICATE" {
        let label: String = block.label.chars().take(40).collect();
        return Err(format!("expected a CERTIFICATE PEM block, found {label:?}"));
    }
    if blocks.next().is_some() {
        return Err("more than one PEM block; register one certificate".into());
    }
    let complete = match x509_parser::parse_x509_certificate(&block.contents) {
        Ok((rest, _)) => rest.is_empty(),
        Err(_) => return Err("the PEM block is not a valid X.509 certificate".into()),
    };
    if !complete {
        return Err("trailing data after the certificate".into());
    }
    Ok(block.contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn cloudstack_dates() {
        assert_eq!(cloudstack_date(datetime!(2030-01-02 03:04:05 UTC)), "2030-01-02T03:04:05+0000");
        assert_eq!(cloudstack_date(datetime!(2013-09-05 06:19:59 -04:00)), "2013-09-05T06:19:59-0400");
        assert_eq!(cloudstack_date(datetime!(2013-09-05 06:19:59 +05:30)), "2013-09-05T06:19:59+0530");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db?x=1"), "postgres://u:<redacted>@h:5432/db");
        assert_eq!(redact_url("http://h:8080/client/api"), "http://h:8080/client/api");
    }
}
