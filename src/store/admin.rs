//! `ec2bridge admin ...`: list and remove registrations. Never prints a secret.

use std::path::PathBuf;

use super::{KeySource, Store, StoreConfig, sqlite_path};

#[derive(clap::Args)]
pub struct AdminArgs {
    /// Store URL: `sqlite://file.db`, a file path, or `postgres://...` [default: the one `serve`
    /// uses, store.db in $XDG_DATA_HOME/ec2bridge or ~/.local/share/ec2bridge]
    #[arg(long, env = "EC2BRIDGE_STORE_URL", hide_env_values = true)]
    pub store: Option<String>,
    /// Store key file (must exist; the admin commands never create a key) [default: store.key
    /// beside the default store]
    #[arg(long, env = "EC2BRIDGE_STORE_KEY_FILE", hide_env_values = true)]
    pub store_key_file: Option<PathBuf>,
    /// The store key itself (base64), instead of the key file.
    #[arg(long, env = "EC2BRIDGE_STORE_KEY", hide_env_values = true)]
    pub store_key: Option<String>,
    #[command(subcommand)]
    pub cmd: AdminCmd,
}

/// Debug never prints the store key or a URL's password.
impl std::fmt::Debug for AdminArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminArgs")
            .field("store", &self.store.as_deref().map(super::redact_url))
            .field("store_key_file", &self.store_key_file)
            .field("store_key", &self.store_key.as_ref().map(|_| "<redacted>"))
            .field("cmd", &self.cmd)
            .finish()
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCmd {
    /// List registered users (access key, account, domain, certificate fingerprint).
    Users,
    /// Remove a registered user and its certificate.
    RemoveUser {
        /// The user's access key (CloudStack API key).
        access_key: String,
    },
    /// List registered certificates.
    Certs,
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    // Same defaults as `serve` (`[store]` unset).
    let defaults = StoreConfig::default();
    let url = args.store.clone().unwrap_or(defaults.url);
    if url.trim().is_empty() {
        anyhow::bail!("{} (or use --store)", super::NO_DATA_DIR);
    }
    // An admin command must not create an empty store (or a new key) by mistake.
    if let Some(path) =
        sqlite_path(&url).or_else(|| (!url.contains("://") && !url.starts_with("sqlite:")).then(|| PathBuf::from(&url)))
        && !path.exists()
    {
        anyhow::bail!("no store at {} (use --store or EC2BRIDGE_STORE_URL)", path.display());
    }
    let key = match &args.store_key {
        Some(k) => KeySource::Base64(k.clone()),
        None => KeySource::ExistingFile(args.store_key_file.clone().unwrap_or(defaults.key_file)),
    };
    let store = Store::open(&url, &key).await?;
    let mut out = String::new();
    match args.cmd {
        AdminCmd::Users => {
            let users = store.list_users().await?;
            out.push_str(&table(
                &["ACCESS KEY", "ACCOUNT", "DOMAIN", "CERTIFICATE (SHA-256)", "UPDATED"],
                users
                    .into_iter()
                    .map(|u| {
                        vec![
                            u.access_key,
                            u.account,
                            u.domain,
                            u.certificate.unwrap_or_else(|| "-".into()),
                            u.updated_at,
                        ]
                    })
                    .collect(),
            ));
        }
        AdminCmd::Certs => {
            let certs = store.list_certificates().await?;
            out.push_str(&table(
                &["FINGERPRINT (SHA-256)", "ACCESS KEY", "SUBJECT", "REGISTERED"],
                certs.into_iter().map(|c| vec![c.fingerprint, c.access_key, c.subject, c.created_at]).collect(),
            ));
        }
        AdminCmd::RemoveUser { access_key } => {
            let removed = store.delete_user(&access_key).await?;
            store.close().await;
            if !removed.user {
                anyhow::bail!("no registered user with access key {access_key}");
            }
            out.push_str(&format!("removed user {access_key} ({} certificate(s))\n", removed.certificates));
        }
    }
    print!("{out}");
    Ok(())
}

/// Left-aligned columns; an empty listing prints a note instead of a bare header.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "(none registered)\n".into();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_layout() {
        let t = super::table(&["A", "BB"], vec![vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
        assert_eq!(super::table(&["A"], vec![]), "(none registered)\n");
    }
}
