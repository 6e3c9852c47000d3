//! Secrets at rest: AES-256-GCM with a random 96-bit nonce per value, stored as
//! base64(nonce || ciphertext+tag). The 32-byte key comes from configuration (base64) or from a
//! key file that is created on first start with mode 0600.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::StoreError;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Where the store's encryption key comes from. Debug never prints a key.
#[derive(Clone)]
pub enum KeySource {
    /// The key itself, base64 of 32 bytes (from configuration or the environment).
    Base64(String),
    /// A key file holding base64 of 32 bytes; created with mode 0600 when missing.
    File(PathBuf),
    /// A key file that must already exist (admin tools must not invent a new key).
    ExistingFile(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Base64(_) => f.write_str("KeySource::Base64(<redacted>)"),
            KeySource::File(p) => f.debug_tuple("KeySource::File").field(p).finish(),
            KeySource::ExistingFile(p) => f.debug_tuple("KeySource::ExistingFile").field(p).finish(),
        }
    }
}

impl KeySource {
    /// Load (or, for `File`, create) the key.
    pub fn load(&self) -> Result<SecretBox, StoreError> {
        if let KeySource::File(p) | KeySource::ExistingFile(p) = self
            && p.as_os_str().is_empty()
        {
            return Err(StoreError::Key(super::NO_DATA_DIR.into()));
        }
        let text = match self {
            KeySource::Base64(b) => return SecretBox::from_base64(b, "the configured store key"),
            KeySource::File(p) => read_or_create_key_file(p)?,
            KeySource::ExistingFile(p) => std::fs::read_to_string(p)
                .map_err(|e| StoreError::Key(format!("cannot read key file {}: {e}", p.display())))?,
        };
        let path = match self {
            KeySource::File(p) | KeySource::ExistingFile(p) => p,
            KeySource::Base64(_) => unreachable!("returned above"),
        };
        refuse_if_loose(path)?;
        SecretBox::from_base64(text.trim(), &format!("key file {}", path.display()))
    }
}

/// A fresh random key, base64 (for `ec2bridge` to print or write into configuration).
pub fn generate_key_base64() -> Result<String, StoreError> {
    let key = Key::<Aes256Gcm>::try_generate().map_err(|e| StoreError::Key(format!("no system randomness: {e}")))?;
    Ok(B64.encode(key.as_slice()))
}

fn read_or_create_key_file(path: &Path) -> Result<String, StoreError> {
    match std::fs::read_to_string(path) {
        Ok(t) => return Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::Key(format!("cannot read key file {}: {e}", path.display()))),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Key(format!("cannot create directory {}: {e}", dir.display())))?;
    }
    let key = generate_key_base64()?;
    // Write a private temporary file completely, then link it into place: a second process
    // starting at the same moment either wins the link or reads a complete file, never a partial one.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(format!("{key}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new store key file (mode 0600); keep it with the store");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path)
            .map_err(|e| StoreError::Key(format!("cannot read key file {}: {e}", path.display()))),
        Err(e) => Err(StoreError::Key(format!("cannot create key file {}: {e}", path.display()))),
    }
}

/// A key file that group or others can read is refused, not merely warned about: whoever reads
/// it opens every registered secret.
#[cfg(unix)]
fn refuse_if_loose(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(path)
        .map_err(|e| StoreError::Key(format!("cannot read key file {}: {e}", path.display())))?;
    let mode = m.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::Key(format!(
            "key file {} is readable by group or others (mode {mode:o}); run chmod 600 on it",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_loose(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Seals and opens secrets with the store key. Debug never prints the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> SecretBox {
        SecretBox { cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)) }
    }

    /// `what` names the source in errors; the key itself never appears.
    pub fn from_base64(b64: &str, what: &str) -> Result<SecretBox, StoreError> {
        let bytes = B64
            .decode(b64.trim())
            .map_err(|_| StoreError::Key(format!("{what} is not valid base64 (expected 32 random bytes in base64)")))?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Key(format!("{what} must decode to 32 bytes, not {}", bytes.len())))?;
        Ok(SecretBox::from_key(&key))
    }

    /// Encrypt `plaintext`, bound to `aad` (e.g. the row's key, so a value cannot be moved to
    /// another row). A fresh random nonce each time.
    pub fn seal(&self, plaintext: &str, aad: &[u8]) -> Result<String, StoreError> {
        let nonce = Nonce::try_generate().map_err(|e| StoreError::Key(format!("no system randomness: {e}")))?;
        let ct = self
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad })
            .map_err(|_| StoreError::Key("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    /// Decrypt what `seal` wrote with the same `aad`. None when the key is wrong, the value was
    /// tampered with or belongs to another row.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Option<String> {
        let raw = B64.decode(sealed.trim()).ok()?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).ok()?;
        let pt = self.cipher.decrypt(&nonce, Payload { msg: ct, aad }).ok()?;
        String::from_utf8(pt).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let b = SecretBox::from_key(&[7u8; 32]);
        let s1 = b.seal("my secret", b"user_keys:AK").unwrap();
        let s2 = b.seal("my secret", b"user_keys:AK").unwrap();
        assert_ne!(s1, s2, "nonces must differ");
        assert!(!s1.contains("my secret"));
        assert_eq!(b.open(&s1, b"user_keys:AK").as_deref(), Some("my secret"));
        assert_eq!(b.open(&s1, b"user_keys:OTHER"), None);
        assert_eq!(SecretBox::from_key(&[8u8; 32]).open(&s1, b"user_keys:AK"), None);
        assert_eq!(b.open("not base64!", b""), None);
        assert_eq!(b.open("AAAA", b""), None);
    }

    #[test]
    fn key_parsing_and_debug() {
        let k = generate_key_base64().unwrap();
        assert!(SecretBox::from_base64(&k, "k").is_ok());
        let e = SecretBox::from_base64("c2hvcnQ=", "the configured store key").unwrap_err().to_string();
        assert!(e.contains("32 bytes") && !e.contains("c2hvcnQ"), "{e}");
        assert!(SecretBox::from_base64("%%%", "k").is_err());
        assert!(!format!("{:?}", KeySource::Base64(k.clone())).contains(&k));
        assert!(!format!("{:?}", SecretBox::from_base64(&k, "k").unwrap()).contains(&k));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ec2bridge-keyfile-{}", uuid::Uuid::new_v4()));
        let path = dir.join("sub/store.key");
        let a = KeySource::File(path.clone()).load().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = a.seal("x", b"").unwrap();
        let b = KeySource::File(path.clone()).load().unwrap();
        assert_eq!(b.open(&sealed, b"").as_deref(), Some("x"));
        assert!(KeySource::ExistingFile(dir.join("missing")).load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 14 item 10: a key file group or others can read is refused (it used to be a warning),
    /// by `serve` (`File`) and the admin commands (`ExistingFile`) alike, naming the fix.
    #[cfg(unix)]
    #[test]
    fn loose_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ec2bridge-keyfile-{}", uuid::Uuid::new_v4()));
        let path = dir.join("store.key");
        KeySource::File(path.clone()).load().unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            for src in [KeySource::File(path.clone()), KeySource::ExistingFile(path.clone())] {
                let e = src.load().unwrap_err().to_string();
                assert!(e.contains("readable by group or others") && e.contains("chmod 600"), "{mode:o}: {e}");
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        KeySource::ExistingFile(path.clone()).load().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// No configured key file and no data directory: a clear error naming what to set, never a
    /// key file created in the working directory.
    #[test]
    fn no_key_path_is_an_error_naming_what_to_set() {
        for src in [KeySource::File(PathBuf::new()), KeySource::ExistingFile(PathBuf::new())] {
            let e = src.load().unwrap_err().to_string();
            assert!(e.contains("store.key_file") && e.contains("$HOME"), "{e}");
        }
    }
}
