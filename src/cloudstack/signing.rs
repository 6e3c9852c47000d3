//! CloudStack request signing, exactly as the management server verifies it
//! (docs/cloudstack-wire.md "Signing"): sort by name (Java String order, i.e. UTF-16 code units), encode each
//! value with Java's `URLEncoder` (then `+` -> `%20`), leave names unencoded, lowercase the whole
//! string, HMAC-SHA1 with the secret key, standard base64.
//!
//! Shared by the gateway's client and the simulator's verifier; the golden vectors below pin it.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// `java.net.URLEncoder.encode(v, "UTF-8")` followed by `replace("+", "%20")`.
/// Java leaves `A-Z a-z 0-9 . - * _` as they are and writes every other UTF-8 byte as `%XX`.
pub fn java_url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(b as char),
            b' ' => out.push_str("%20"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

/// Java `String.compareTo`: order by UTF-16 code units.
fn java_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The lowercased string CloudStack signs. `params` excludes `signature`; names are as sent.
pub fn string_to_sign<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(&str, &str)> = params.into_iter().filter(|(k, _)| *k != "signature").collect();
    pairs.sort_by(|a, b| java_cmp(a.0, b.0));
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(&java_url_encode(v));
    }
    s.to_lowercase()
}

/// base64(HMAC-SHA1(secret, string_to_sign(params))).
pub fn sign<'a, I>(params: I, secret_key: &str) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign(params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time check of a received signature.
pub fn verify<'a, I>(params: I, secret_key: &str, signature: &str) -> bool
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    use subtle::ConstantTimeEq;
    let expected = sign(params, secret_key);
    expected.as_bytes().ct_eq(signature.as_bytes()).into()
}

/// The documented golden vectors (docs/cloudstack-wire.md "Signing"), shared by the signer's, the simulator's
/// and the HTTP tests: parameters without `signature`, the secret, the expected signature.
pub mod golden {
    pub const SECRET: &str = "sim-secret-key-0001";
    pub const API_KEY: &str = "sim-api-key-0001";
    pub const LIST_ZONES: &[(&str, &str)] = &[("command", "listZones"), ("response", "json"), ("apiKey", API_KEY)];
    pub const LIST_ZONES_SIGNATURE: &str = "kB7Jd41dOcbmI5WmLPr1AmlWVVc=";
    /// `signatureVersion=3` with `expires` in 2030.
    pub const DEPLOY: &[(&str, &str)] = &[
        ("command", "deployVirtualMachine"),
        ("response", "json"),
        ("zoneid", "1128bd56-b4d9-4ac6-a7b9-c715b187ce11"),
        ("templateid", "a17b40d6-83e4-4f2a-9ef0-dce6af575789"),
        ("serviceofferingid", "71004023-bb72-4a97-b1e9-bc66dfce9470"),
        ("displayname", "web server #1 (test)"),
        ("userdata", "I2Nsb3VkLWNvbmZpZwo="),
        ("tags[0].key", "Name"),
        ("tags[0].value", "a/b"),
        ("signatureVersion", "3"),
        ("expires", "2030-01-01T00:00:00+0000"),
        ("apiKey", API_KEY),
    ];
    pub const DEPLOY_SIGNATURE: &str = "2/wSQl5qT/fEKUdLCIhdgKaoUNo=";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_vector_list_zones() {
        let p = golden::LIST_ZONES.iter().copied();
        assert_eq!(string_to_sign(p.clone()), "apikey=sim-api-key-0001&command=listzones&response=json");
        assert_eq!(sign(p, golden::SECRET), golden::LIST_ZONES_SIGNATURE);
    }

    #[test]
    fn golden_vector_deploy() {
        let p = golden::DEPLOY.iter().copied();
        assert_eq!(
            string_to_sign(p.clone()),
            "apikey=sim-api-key-0001&command=deployvirtualmachine&displayname=web%20server%20%231%20%28test%29&expires=2030-01-01t00%3a00%3a00%2b0000&response=json&serviceofferingid=71004023-bb72-4a97-b1e9-bc66dfce9470&signatureversion=3&tags[0].key=name&tags[0].value=a%2fb&templateid=a17b40d6-83e4-4f2a-9ef0-dce6af575789&userdata=i2nsb3vklwnvbmzpzwo%3d&zoneid=1128bd56-b4d9-4ac6-a7b9-c715b187ce11"
        );
        assert_eq!(sign(p.clone(), golden::SECRET), golden::DEPLOY_SIGNATURE);
        assert!(verify(p.clone(), golden::SECRET, golden::DEPLOY_SIGNATURE));
        assert!(!verify(p, "sim-secret-key-0002", golden::DEPLOY_SIGNATURE));
    }

    #[test]
    fn java_encoder_character_set() {
        assert_eq!(java_url_encode("aZ09.-*_"), "aZ09.-*_");
        assert_eq!(java_url_encode("~!'()/:+=,[] "), "%7E%21%27%28%29%2F%3A%2B%3D%2C%5B%5D%20");
        assert_eq!(java_url_encode("ü"), "%C3%BC");
    }
}
