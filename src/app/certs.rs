//! `ec2bridge certs self-signed`: a development certificate and key for the HTTPS listener,
//! written into `certs/` (see certs/README.md). Clients must be told to trust it (AWS CLI
//! `--ca-bundle certs/cert.pem`, boto3 `verify="certs/cert.pem"`); production uses a certificate
//! from a real CA.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub cmd: CertsCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertsCmd {
    /// Write a self-signed certificate (cert.pem) and its key (key.pem, mode 0600).
    SelfSigned {
        /// Directory to write into.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Host names and IP addresses the certificate is for (repeatable).
        #[arg(long = "name", default_values = ["localhost", "127.0.0.1", "::1"])]
        names: Vec<String>,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    match args.cmd {
        CertsCmd::SelfSigned { dir, names, days, force } => {
            let (cert, key) = self_signed(&names, days)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let cert_path = dir.join("cert.pem");
            let key_path = dir.join("key.pem");
            for p in [&cert_path, &key_path] {
                if p.exists() && !force {
                    bail!("{} exists; pass --force to replace it", p.display());
                }
            }
            write_file(&key_path, key.as_bytes(), 0o600)?;
            write_file(&cert_path, cert.as_bytes(), 0o644)?;
            println!("wrote {} and {} (for {})", cert_path.display(), key_path.display(), names.join(", "));
            println!("[server.tls]\ncert = \"{}\"\nkey = \"{}\"", cert_path.display(), key_path.display());
            Ok(())
        }
    }
}

/// A self-signed certificate for `names` (DNS names or IP addresses) and its ECDSA P-256 key, in
/// PEM. Valid from a day ago (clients with a slow clock) for `days` days.
pub fn self_signed(names: &[String], days: i64) -> anyhow::Result<(String, String)> {
    if names.is_empty() {
        bail!("at least one --name is needed");
    }
    if !(1..=3650).contains(&days) {
        bail!("--days must be between 1 and 3650");
    }
    let mut params = rcgen::CertificateParams::new(names.to_vec()).context("certificate names")?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
    params.distinguished_name.push(rcgen::DnType::CommonName, "ec2bridge development certificate");
    let key = rcgen::KeyPair::generate().context("generating a key")?;
    let cert = params.self_signed(&key).context("signing the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_loads_into_the_tls_listener() {
        let (cert, key) = self_signed(&["localhost".into(), "127.0.0.1".into()], 30).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        let dir = std::env::temp_dir().join(format!("ec2bridge-certs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("c.pem"), &cert).unwrap();
        std::fs::write(dir.join("k.pem"), &key).unwrap();
        crate::server::tls::TlsAcceptor::load(&dir.join("c.pem"), &dir.join("k.pem")).unwrap();
        // A key that does not match the certificate is refused, naming the problem.
        let (_, other_key) = self_signed(&["localhost".into()], 30).unwrap();
        std::fs::write(dir.join("k.pem"), &other_key).unwrap();
        let e = crate::server::tls::TlsAcceptor::load(&dir.join("c.pem"), &dir.join("k.pem")).err().unwrap();
        assert!(format!("{e:#}").contains("do not match"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(self_signed(&[], 30).is_err());
        assert!(self_signed(&["localhost".into()], 0).is_err());
    }
}
