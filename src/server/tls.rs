//! HTTPS: rustls with its default (modern) protocol versions and cipher suites, TLS 1.2 and 1.3,
//! HTTP/1.1 over ALPN. The certificate chain and key are PEM files (`[server.tls]`), re-read on
//! SIGHUP and when either file changes (checked every few seconds), so a renewed certificate is
//! picked up without a restart; a renewal that cannot be loaded keeps the old one and logs why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

/// Hands out the current server configuration to each new connection.
#[derive(Clone)]
pub struct TlsAcceptor {
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsAcceptor {
    /// Load `cert` and `key`; errors name the file and what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let cfg = server_config(cert, key)?;
        Ok(TlsAcceptor { current: Arc::new(RwLock::new(Arc::new(cfg))), cert: cert.into(), key: key.into() })
    }

    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        let cfg = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await
    }

    /// Re-read the files; on failure the current certificate stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let cfg = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
        Ok(())
    }

    /// Reload on SIGHUP and when a file's modification time changes; runs until the process ends.
    pub fn spawn_reloader(&self, poll: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut seen = me.mtimes();
            loop {
                #[cfg(unix)]
                let hup_fut = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let hup_fut = std::future::pending::<()>();
                let why = tokio::select! {
                    _ = hup_fut => "SIGHUP",
                    _ = tokio::time::sleep(poll) => {
                        let now = me.mtimes();
                        if now == seen { continue; }
                        seen = now;
                        "file change"
                    }
                };
                match me.reload() {
                    Ok(()) => tracing::info!(cert = %me.cert.display(), trigger = why, "TLS certificate reloaded"),
                    Err(e) => tracing::error!(
                        trigger = why,
                        error = format!("{e:#}"),
                        "TLS certificate reload failed; still serving the previous certificate"
                    ),
                }
            }
        });
    }

    fn mtimes(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (m(&self.cert), m(&self.key))
    }
}

fn server_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("TLS certificate {}: not PEM", cert.display()))?;
    if chain.is_empty() {
        bail!("TLS certificate {}: no CERTIFICATE block found", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("TLS key {}: no readable PEM private key (PKCS#8, PKCS#1 or SEC1)", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("TLS certificate and key do not match or are not usable")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
