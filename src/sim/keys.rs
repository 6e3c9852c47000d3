//! SSH key pairs as CloudStack handles them: OpenSSH public keys, MD5 fingerprints of the
//! decoded blob (colon-separated lowercase hex), generated RSA key pairs with a PKCS#1 PEM
//! private key, and VM passwords encrypted RSA/PKCS#1 v1.5 with the VM's ssh-rsa key.

use base64::Engine;
use md5::{Digest, Md5};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// rand 0.9's OS-seeded generator, presented to rsa's rand_core 0.10 traits.
struct Rng;

impl rsa::rand_core::TryRng for Rng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(rand::random())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(rand::random())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        rand::Rng::fill(&mut rand::rng(), dst);
        Ok(())
    }
}

impl rsa::rand_core::TryCryptoRng for Rng {}

/// Split `type base64 [comment]` and decode the blob; the blob must start with the same type.
pub fn parse_openssh(public_key: &str) -> Option<(String, Vec<u8>)> {
    let mut parts = public_key.split_whitespace();
    let kind = parts.next()?;
    let blob = B64.decode(parts.next()?).ok()?;
    let (inner, _) = read_string(&blob)?;
    if inner != kind.as_bytes() {
        return None;
    }
    const KNOWN: [&str; 7] = [
        "ssh-rsa",
        "ssh-dss",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
    ];
    if !KNOWN.contains(&kind) {
        return None;
    }
    Some((kind.to_string(), blob))
}

fn read_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    if b.len() < 4 {
        return None;
    }
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let rest = &b[4..];
    if rest.len() < n {
        return None;
    }
    Some((&rest[..n], &rest[n..]))
}

/// MD5 of the decoded key blob, `aa:bb:...`.
pub fn fingerprint(public_key: &str) -> Option<String> {
    let (_, blob) = parse_openssh(public_key)?;
    Some(md5_colon(&blob))
}

fn md5_colon(blob: &[u8]) -> String {
    let d = Md5::digest(blob);
    d.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The RSA public key inside an `ssh-rsa` line.
pub fn rsa_public(public_key: &str) -> Option<RsaPublicKey> {
    let (kind, blob) = parse_openssh(public_key)?;
    if kind != "ssh-rsa" {
        return None;
    }
    let (_, rest) = read_string(&blob)?;
    let (e, rest) = read_string(rest)?;
    let (n, _) = read_string(rest)?;
    RsaPublicKey::new(BoxedUint::from_be_slice_vartime(n), BoxedUint::from_be_slice_vartime(e)).ok()
}

fn put_string(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// SSH mpint: big-endian, with a leading zero when the top bit is set.
fn put_mpint(out: &mut Vec<u8>, b: &[u8]) {
    let b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
    if b.first().is_some_and(|x| x & 0x80 != 0) {
        let mut v = vec![0u8];
        v.extend_from_slice(&b);
        put_string(out, &v);
    } else {
        put_string(out, &b);
    }
}

/// `ssh-rsa AAAA...` for a public key.
pub fn openssh_line(k: &RsaPublicKey, comment: &str) -> String {
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-rsa");
    put_mpint(&mut blob, &k.e_bytes());
    put_mpint(&mut blob, &k.n_bytes());
    format!("ssh-rsa {} {comment}", B64.encode(blob))
}

pub struct Generated {
    pub private_pem: String,
    pub public_line: String,
    pub fingerprint: String,
}

/// A fresh 2048-bit RSA key pair (createSSHKeyPair).
pub fn generate(comment: &str) -> anyhow::Result<Generated> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = RsaPrivateKey::new(&mut Rng, 2048)?;
    let private_pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)?.to_string();
    let public_line = openssh_line(&key.to_public_key(), comment);
    let fingerprint = fingerprint(&public_line).ok_or_else(|| anyhow::anyhow!("generated key does not parse"))?;
    Ok(Generated { private_pem, public_line, fingerprint })
}

/// base64(RSA/PKCS#1 v1.5(password)) with the key's ssh-rsa public key.
pub fn encrypt_password(public_key: &str, password: &str) -> Option<String> {
    let k = rsa_public(public_key)?;
    let ct = k.encrypt(&mut Rng, Pkcs1v15Encrypt, password.as_bytes()).ok()?;
    Some(B64.encode(ct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::DecodeRsaPrivateKey;

    #[test]
    fn generated_pair_round_trips_password() {
        let g = generate("test").unwrap();
        assert!(g.private_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert_eq!(g.fingerprint.len(), 47);
        let enc = encrypt_password(&g.public_line, "s3cret").unwrap();
        let key = RsaPrivateKey::from_pkcs1_pem(&g.private_pem).unwrap();
        let pt = key.decrypt(Pkcs1v15Encrypt, &B64.decode(enc).unwrap()).unwrap();
        assert_eq!(pt, b"s3cret");
    }

    #[test]
    fn fingerprint_is_md5_of_blob() {
        // Blob = string "ssh-rsa" + e + n (tiny, structure only).
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-rsa");
        put_mpint(&mut blob, &[1, 0, 1]);
        put_mpint(&mut blob, &[0xc5; 16]);
        let line = format!("ssh-rsa {} me@host", B64.encode(&blob));
        assert_eq!(fingerprint(&line).unwrap(), md5_colon(&blob));
        assert!(fingerprint("ssh-rsa notbase64!").is_none());
        assert!(fingerprint("ssh-dss ".to_string().as_str()).is_none());
        // Type mismatch between the prefix and the blob.
        assert!(fingerprint(&format!("ssh-ed25519 {}", B64.encode(&blob))).is_none());
    }
}
