//! Persistent state: registered keys and certificates, the id reverse-lookup cache (sqlx; SQLite by
//! default, PostgreSQL for several gateways).
//!
//! One `AnyPool` and the same SQL on both backends (runtime queries only; `$n` placeholders work on
//! both). Secret keys are sealed with AES-GCM before they reach the database (`crypto`). Every
//! multi-statement change runs in one transaction, so a half-written registration is never seen.
//!
//! API (all async; `Store` is cheap to clone and shared by every request):
//! - `Store::open(url, &KeySource)` connects and migrates; `Store::open_config(&StoreConfig)`.
//! - users: `put_user_keys`, `get_user_keys`, `list_users`, `delete_user`, `register`.
//! - certificates: `put_certificate`, `find_certificate`, `delete_certificate`, `list_certificates`.
//! - id cache: `put_id`, `put_ids`, `get_uuid`.
//! - the operations journal and tombstones: `impl Journal for Store` (journal.rs).
//! - `read_cache::StateReadCache`: the per-request reads of tombstones and instance attributes,
//!   reused for a second (read_cache.rs).

pub mod admin;
pub mod cert;
mod commit;
pub mod crypto;
pub mod idcache;
pub mod journal;
pub mod read_cache;
pub mod vpc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row, SqlSafeStr};

pub use cert::{ParsedCertificate, fingerprint_der};
pub use crypto::{KeySource, SecretBox, generate_key_base64};
pub use idcache::StoreIdCache;

use crate::ids::Kind;

/// Why a store operation failed. Messages never contain secrets, keys or database passwords.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store configuration: {0}")]
    Config(String),
    #[error("store key: {0}")]
    Key(String),
    #[error("the store key does not match the key this database was written with")]
    WrongKey,
    #[error("the stored secret for {access_key} cannot be decrypted with the configured key")]
    Decrypt { access_key: String },
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    #[error("no registered user with access key {0}")]
    UnknownUser(String),
    #[error("this certificate is already registered to another user")]
    CertificateInUse,
    #[error("store migration failed: {0}")]
    Migrate(String),
    #[error("store database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx's Display names the failing statement or driver message, never bound values.
        StoreError::Database(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The `[store]` section of the configuration. Debug never prints the key or a database password.
#[derive(Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db`, `sqlite::memory:`, a plain file path, or `postgres://...`.
    pub url: String,
    /// The encryption key itself, base64 of 32 bytes. Takes precedence over `key_file`.
    pub key: Option<String>,
    /// Key file (base64 of 32 bytes), created with mode 0600 on first start when missing.
    pub key_file: PathBuf,
}

/// Said when no data directory can be found (no `$XDG_DATA_HOME`, no `$HOME`) and the store was
/// not configured: the gateway never falls back to a path in the working directory, where a key
/// file ends up committed or shared by accident.
pub const NO_DATA_DIR: &str = "no data directory for the store: set $XDG_DATA_HOME or $HOME, or set store.url and \
     store.key_file (or store.key) in the configuration (EC2BRIDGE_STORE_URL, EC2BRIDGE_STORE_KEY_FILE, \
     EC2BRIDGE_STORE_KEY)";

impl Default for StoreConfig {
    /// `store.db` and `store.key` in the data directory (`$XDG_DATA_HOME/ec2bridge` or
    /// `~/.local/share/ec2bridge`, beside the simulator's state), so `serve` and `admin` find the
    /// same store whatever directory they are started from.
    fn default() -> Self {
        match crate::base::util::data_dir() {
            Some(dir) => StoreConfig {
                url: format!("sqlite://{}", dir.join("store.db").display()),
                key: None,
                key_file: dir.join("store.key"),
            },
            // Left empty: `open` and config validation refuse it with `NO_DATA_DIR`.
            None => StoreConfig { url: String::new(), key: None, key_file: PathBuf::new() },
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl StoreConfig {
    pub fn key_source(&self) -> KeySource {
        match &self.key {
            Some(k) => KeySource::Base64(k.clone()),
            None => KeySource::File(self.key_file.clone()),
        }
    }
}

/// A registered user's keys as the gateway needs them. Debug never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct UserKeys {
    pub access_key: String,
    pub secret_key: String,
    pub account: String,
    pub domain: String,
}

impl std::fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserKeys")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("account", &self.account)
            .field("domain", &self.domain)
            .finish()
    }
}

/// A registered user without its secret (for listings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub access_key: String,
    pub account: String,
    pub domain: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub updated_at: String,
    /// Fingerprint of the user's registered certificate, if any.
    pub certificate: Option<String>,
}

/// A registered certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Lowercase hex SHA-256 of the DER.
    pub fingerprint: String,
    pub access_key: String,
    pub subject: String,
    pub pem: String,
    pub created_at: String,
}

/// What `delete_user` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub user: bool,
    pub certificates: u64,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    secrets: SecretBox,
    backend: Backend,
    /// For messages only: the URL without its password.
    location: String,
    /// Bumped after every change of the users table made through this process (all clones of
    /// this handle share it): caches of registered keys compare it to see their own gateway's
    /// registrations at once.
    users_changed: Arc<AtomicU64>,
    /// Group commit of the journal's and the id cache's writes on a SQLite file (`commit.rs`);
    /// None for PostgreSQL and in-memory SQLite.
    writer: Option<Arc<commit::SqliteWriter>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).field("location", &self.location).finish()
    }
}

const KEY_CHECK: &str = "key_check";
/// How long the SQLite writer of `commit.rs` waits for another, as the pool's connections do
/// (`PRAGMA busy_timeout = 5000` below).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
const KEY_CHECK_PLAINTEXT: &str = "ec2bridge store key check v1";

impl Store {
    /// Open the store at `url` (see `StoreConfig::url`), run the migrations and check the key.
    pub async fn open(url: &str, key: &KeySource) -> Result<Store, StoreError> {
        let secrets = key.load()?;
        Store::open_with(url, secrets).await
    }

    pub async fn open_config(cfg: &StoreConfig) -> Result<Store, StoreError> {
        Store::open(&cfg.url, &cfg.key_source()).await
    }

    /// Open with an already loaded key.
    pub async fn open_with(url: &str, secrets: SecretBox) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalize_url(url)?;
        let location = redact_url(&url);
        let pool = match backend {
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10))
                .connect(&url)
                .await
                .map_err(|e| StoreError::Database(format!("cannot connect to {location}: {e}")))?,
            Backend::Sqlite => {
                let memory = url.contains(":memory:") || url.contains("mode=memory");
                if let Some(path) = sqlite_path(&url).filter(|_| !memory)
                    && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Config(format!("cannot create directory {}: {e}", dir.display())))?;
                }
                // No ping before each acquire: a SQLite connection is a file handle on a thread
                // of its own, and the ping is one more round trip to that thread per transaction.
                let opts = AnyPoolOptions::new()
                    .acquire_timeout(Duration::from_secs(10))
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; the busy timeout makes writers queue
                            // instead of failing; foreign keys make certificate rows follow their user.
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            Ok(())
                        })
                    });
                // Each connection to `:memory:` is its own database: keep exactly one, forever.
                let opts = if memory {
                    opts.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
                } else {
                    opts.max_connections(4)
                };
                opts.connect(&url).await.map_err(|e| StoreError::Database(format!("cannot open {location}: {e}")))?
            }
        };
        let mut store = Store { pool, secrets, backend, location, users_changed: Arc::default(), writer: None };
        store.migrate().await?;
        store.check_key().await?;
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        if let (Backend::Sqlite, Some(path), false) = (backend, sqlite_path(&url), memory) {
            let w = commit::SqliteWriter::open(&path, SQLITE_BUSY_TIMEOUT)
                .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", store.location)))?;
            store.writer = Some(Arc::new(w));
        }
        Ok(store)
    }

    /// Apply the migrations for this backend (idempotent; `open` already does it).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // Embedded, so the binary needs no migrations directory at run time.
        let sql: [(&str, &'static str); 5] = match self.backend {
            Backend::Sqlite => [
                ("init", include_str!("../../migrations/sqlite/0001_init.sql")),
                ("replay_and_proof", include_str!("../../migrations/sqlite/0002_replay_and_proof.sql")),
                ("vpc_objects", include_str!("../../migrations/sqlite/0003_vpc_objects.sql")),
                ("account_tags", include_str!("../../migrations/sqlite/0004_account_tags.sql")),
                ("operations_journal", include_str!("../../migrations/sqlite/0005_operations_journal.sql")),
            ],
            Backend::Postgres => [
                ("init", include_str!("../../migrations/postgres/0001_init.sql")),
                ("replay_and_proof", include_str!("../../migrations/postgres/0002_replay_and_proof.sql")),
                ("vpc_objects", include_str!("../../migrations/postgres/0003_vpc_objects.sql")),
                ("account_tags", include_str!("../../migrations/postgres/0004_account_tags.sql")),
                ("operations_journal", include_str!("../../migrations/postgres/0005_operations_journal.sql")),
            ],
        };
        let migrator = Migrator::with_migrations(
            sql.iter()
                .zip(1..)
                .map(|((name, sql), version)| {
                    Migration::new(version, (*name).into(), MigrationType::Simple, sql.into_sql_str(), false)
                })
                .collect(),
        );
        migrator.run(&self.pool).await.map_err(|e| StoreError::Migrate(e.to_string()))
    }

    /// The first opener seals a known text; later openers must be able to open it, so a wrong key
    /// fails at start-up rather than on a user's first request.
    async fn check_key(&self) -> Result<(), StoreError> {
        let sealed = self.secrets.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK.as_bytes())?;
        sqlx::query("INSERT INTO store_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(KEY_CHECK)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        let row =
            sqlx::query("SELECT value FROM store_meta WHERE name = $1").bind(KEY_CHECK).fetch_one(&self.pool).await?;
        let value: String = row.try_get(0)?;
        match self.secrets.open(&value, KEY_CHECK.as_bytes()) {
            Some(t) if t == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(StoreError::WrongKey),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the store is, without any password (for logs).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// One round trip to the database (readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A small write of the journal or the id cache: on a SQLite file batched with the others
    /// waiting (one transaction, `commit.rs`), else straight to the pool (its rows in one
    /// transaction). Answers rows affected.
    pub(crate) async fn small_write(&self, w: commit::Write) -> Result<u64, String> {
        if let Some(writer) = &self.writer {
            return writer.write(w).await;
        }
        let e = |e: sqlx::Error| e.to_string();
        if w.rows.len() == 1 {
            let mut c = self.pool.acquire().await.map_err(e)?;
            return commit::run_on(&mut c, w).await.map_err(e);
        }
        let mut tx = self.pool.begin().await.map_err(e)?;
        let n = commit::run_on(&mut tx, w).await.map_err(e)?;
        tx.commit().await.map_err(e)?;
        Ok(n)
    }

    /// Close the pool (waits for connections in use to be returned) and the writer.
    pub async fn close(&self) {
        if let Some(w) = &self.writer {
            w.close();
        }
        self.pool.close().await;
    }

    // ----- users -----

    /// Changes to the users table made through this process so far (see `users_changed`).
    pub fn users_generation(&self) -> u64 {
        self.users_changed.load(Ordering::Acquire)
    }

    fn users_touched(&self) {
        self.users_changed.fetch_add(1, Ordering::AcqRel);
    }

    /// Register or replace a user's keys (upsert; the certificate, if any, stays bound).
    pub async fn put_user_keys(
        &self,
        access_key: &str,
        secret_key: &str,
        account: &str,
        domain: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.upsert_user(&mut tx, access_key, secret_key, account, domain).await?;
        let done = tx.commit().await;
        self.users_touched();
        done?;
        Ok(())
    }

    /// Keys and (optionally) a certificate in one transaction: all of it is stored or none.
    pub async fn register(
        &self,
        access_key: &str,
        secret_key: &str,
        account: &str,
        domain: &str,
        certificate_pem: Option<&str>,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let parsed = certificate_pem.map(cert::parse_pem).transpose()?;
        let mut tx = self.pool.begin().await?;
        self.upsert_user(&mut tx, access_key, secret_key, account, domain).await?;
        let rec = match parsed {
            Some(p) => Some(self.replace_certificate(&mut tx, access_key, p, false).await?),
            None => None,
        };
        let done = tx.commit().await;
        self.users_touched();
        done?;
        Ok(rec)
    }

    async fn upsert_user(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        access_key: &str,
        secret_key: &str,
        account: &str,
        domain: &str,
    ) -> Result<(), StoreError> {
        if access_key.is_empty() || secret_key.is_empty() {
            return Err(StoreError::Config("access key and secret key must not be empty".into()));
        }
        let sealed = self.secrets.seal(secret_key, &user_aad(access_key))?;
        let now = now_rfc3339();
        sqlx::query(
            "INSERT INTO user_keys (access_key, secret_enc, account, domain, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (access_key) DO UPDATE SET secret_enc = excluded.secret_enc, \
             account = excluded.account, domain = excluded.domain, updated_at = excluded.updated_at",
        )
        .bind(access_key)
        .bind(sealed)
        .bind(account)
        .bind(domain)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The keys registered for `access_key`, decrypted. `Err(Decrypt)` if the key cannot open them.
    pub async fn get_user_keys(&self, access_key: &str) -> Result<Option<UserKeys>, StoreError> {
        let row = sqlx::query("SELECT secret_enc, account, domain FROM user_keys WHERE access_key = $1")
            .bind(access_key)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: String = row.try_get(0)?;
        let secret_key = self
            .secrets
            .open(&sealed, &user_aad(access_key))
            .ok_or_else(|| StoreError::Decrypt { access_key: access_key.to_string() })?;
        Ok(Some(UserKeys {
            access_key: access_key.to_string(),
            secret_key,
            account: row.try_get(1)?,
            domain: row.try_get(2)?,
        }))
    }

    /// Every registered user, without secrets, ordered by access key.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.access_key, u.account, u.domain, u.created_at, u.updated_at, \
             (SELECT MIN(c.fingerprint) FROM certificates c WHERE c.access_key = u.access_key) \
             FROM user_keys u ORDER BY u.access_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserInfo {
                    access_key: r.try_get(0)?,
                    account: r.try_get(1)?,
                    domain: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    updated_at: r.try_get(4)?,
                    certificate: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Remove a user and its certificates, together.
    pub async fn delete_user(&self, access_key: &str) -> Result<Removed, StoreError> {
        let mut tx = self.pool.begin().await?;
        let certs =
            sqlx::query("DELETE FROM certificates WHERE access_key = $1").bind(access_key).execute(&mut *tx).await?;
        let user =
            sqlx::query("DELETE FROM user_keys WHERE access_key = $1").bind(access_key).execute(&mut *tx).await?;
        let done = tx.commit().await;
        self.users_touched();
        done?;
        Ok(Removed { user: user.rows_affected() > 0, certificates: certs.rows_affected() })
    }

    // ----- certificates -----

    /// Bind a certificate (PEM) to a registered user, replacing the user's previous one. The
    /// fingerprint is computed from the DER. A certificate identifies one user only.
    pub async fn put_certificate(&self, access_key: &str, pem: &str) -> Result<CertificateRecord, StoreError> {
        self.put_certificate_proven(access_key, pem, false).await
    }

    /// Same, saying whether the registration proved possession of the certificate's private key.
    /// A proven binding replaces another user's unproven binding of the same certificate (whoever
    /// bound a public certificate first without its key cannot keep its owner out); a proven
    /// binding is never replaced by someone else.
    pub async fn put_certificate_proven(
        &self,
        access_key: &str,
        pem: &str,
        proven: bool,
    ) -> Result<CertificateRecord, StoreError> {
        let parsed = cert::parse_pem(pem)?;
        let mut tx = self.pool.begin().await?;
        let rec = self.replace_certificate(&mut tx, access_key, parsed, proven).await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn replace_certificate(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        access_key: &str,
        parsed: ParsedCertificate,
        proven: bool,
    ) -> Result<CertificateRecord, StoreError> {
        let now = now_rfc3339();
        // Write first (takes SQLite's write lock at once, so no read-to-write upgrade can fail).
        let touched = sqlx::query("UPDATE user_keys SET updated_at = $1 WHERE access_key = $2")
            .bind(&now)
            .bind(access_key)
            .execute(&mut **tx)
            .await?;
        if touched.rows_affected() == 0 {
            return Err(StoreError::UnknownUser(access_key.to_string()));
        }
        let owner = sqlx::query("SELECT access_key, proven FROM certificates WHERE fingerprint = $1")
            .bind(&parsed.fingerprint)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(owner) = owner {
            let (owner, owner_proven): (String, i64) = (owner.try_get(0)?, owner.try_get(1)?);
            if owner != access_key {
                if !proven || owner_proven != 0 {
                    return Err(StoreError::CertificateInUse);
                }
                tracing::warn!(
                    fingerprint = parsed.fingerprint,
                    from = owner,
                    to = access_key,
                    "an unproven certificate binding was replaced by one proving possession of the key"
                );
            }
        }
        sqlx::query("DELETE FROM certificates WHERE access_key = $1 OR fingerprint = $2")
            .bind(access_key)
            .bind(&parsed.fingerprint)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO certificates (fingerprint, access_key, subject, pem, created_at, proven) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&parsed.fingerprint)
        .bind(access_key)
        .bind(&parsed.subject)
        .bind(&parsed.pem)
        .bind(&now)
        .bind(i64::from(proven))
        .execute(&mut **tx)
        .await
        .map_err(|e| match &e {
            // Another user registered the same certificate at the same moment.
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::CertificateInUse,
            _ => e.into(),
        })?;
        Ok(CertificateRecord {
            fingerprint: parsed.fingerprint,
            access_key: access_key.to_string(),
            subject: parsed.subject,
            pem: parsed.pem,
            created_at: now,
        })
    }

    /// The registration a certificate fingerprint (lowercase hex SHA-256 of the DER) belongs to.
    pub async fn find_certificate(&self, fingerprint: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let fp = fingerprint.to_ascii_lowercase();
        let row = sqlx::query(
            "SELECT fingerprint, access_key, subject, pem, created_at FROM certificates WHERE fingerprint = $1",
        )
        .bind(fp)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(cert_row).transpose()
    }

    /// Remove the certificate(s) bound to `access_key`; returns how many were removed.
    pub async fn delete_certificate(&self, access_key: &str) -> Result<u64, StoreError> {
        let r =
            sqlx::query("DELETE FROM certificates WHERE access_key = $1").bind(access_key).execute(&self.pool).await?;
        Ok(r.rows_affected())
    }

    /// Every registered certificate, ordered by access key.
    pub async fn list_certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT fingerprint, access_key, subject, pem, created_at FROM certificates ORDER BY access_key, fingerprint",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(cert_row).collect()
    }

    // ----- signed requests already used -----

    /// Record that the signed request identified by `digest` (hex SHA-256 of what was verified)
    /// was used; false if it already was and is still within its validity (`expires_at`, Unix
    /// seconds). Shared by every gateway on this store, so a replay to another gateway is caught
    /// too. Rows past their validity are dropped on the way.
    pub async fn claim_once(&self, digest: &str, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        // Two small writes (on SQLite, the writer thread's: commit.rs), the expired rows first,
        // so that a digest whose validity is over can be claimed again.
        self.small_write(commit::Write::one("DELETE FROM used_signatures WHERE expires_at < $1", vec![now.into()]))
            .await
            .map_err(StoreError::Database)?;
        let claimed = self
            .small_write(commit::Write::one(
                "INSERT INTO used_signatures (digest, expires_at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                vec![digest.into(), expires_at.into()],
            ))
            .await
            .map_err(StoreError::Database)?;
        Ok(claimed == 1)
    }

    // ----- id reverse-lookup cache -----

    /// Remember `ec2_id -> (kind, uuid)`; an existing entry is kept as it is (insert-if-absent).
    pub async fn put_id(&self, ec2_id: &str, kind: Kind, uuid: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO id_map (ec2_id, kind, uuid, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (ec2_id) DO NOTHING",
        )
        .bind(ec2_id)
        .bind(kind.name())
        .bind(uuid)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Many `(ec2_id, kind, uuid)` at once, in one transaction (e.g. after listing instances).
    pub async fn put_ids(&self, entries: &[(String, Kind, String)]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = now_rfc3339();
        let rows = entries
            .iter()
            .map(|(e, k, u)| vec![e.as_str().into(), k.name().into(), u.as_str().into(), now.as_str().into()])
            .collect();
        self.small_write(commit::Write {
            sql: "INSERT INTO id_map (ec2_id, kind, uuid, created_at) VALUES ($1, $2, $3, $4) \
                  ON CONFLICT (ec2_id) DO NOTHING",
            rows,
        })
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }

    /// The CloudStack uuid behind an EC2 id, with its kind, if known.
    pub async fn get_uuid(&self, ec2_id: &str) -> Result<Option<(Kind, String)>, StoreError> {
        let row = sqlx::query("SELECT kind, uuid FROM id_map WHERE ec2_id = $1")
            .bind(ec2_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get(0)?;
        let kind = Kind::from_name(&kind)
            .ok_or_else(|| StoreError::Database(format!("id_map holds an unknown kind {kind:?}")))?;
        Ok(Some((kind, row.try_get(1)?)))
    }
}

fn cert_row(r: &AnyRow) -> Result<CertificateRecord, StoreError> {
    Ok(CertificateRecord {
        fingerprint: r.try_get(0)?,
        access_key: r.try_get(1)?,
        subject: r.try_get(2)?,
        pem: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

/// Sealed secrets are bound to their row, so a value copied onto another user does not open.
fn user_aad(access_key: &str) -> Vec<u8> {
    format!("user_keys:{access_key}").into_bytes()
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Accept `sqlite:` URLs, plain paths (SQLite) and `postgres://`/`postgresql://` URLs. A SQLite
/// file is created when missing.
pub fn normalize_url(url: &str) -> Result<(Backend, String), StoreError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StoreError::Config(format!("the store URL is empty ({NO_DATA_DIR})")));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    if url.starts_with("sqlite:") {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        if memory || url.contains("mode=") {
            return Ok((Backend::Sqlite, url.to_string()));
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        return Ok((Backend::Sqlite, format!("{url}{sep}mode=rwc")));
    }
    if url.contains("://") {
        return Err(StoreError::Config(format!(
            "unsupported store URL scheme in {:?}: use sqlite://... or postgres://...",
            redact_url(url)
        )));
    }
    Ok((Backend::Sqlite, format!("sqlite://{url}?mode=rwc")))
}

/// The file behind a SQLite URL (None for memory databases and other backends).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(Path::new(path).to_path_buf())
}

/// A URL with any password replaced, for messages.
pub use crate::base::util::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(normalize_url("db/x.db").unwrap(), (Backend::Sqlite, "sqlite://db/x.db?mode=rwc".into()));
        assert_eq!(normalize_url("sqlite://a.db").unwrap().1, "sqlite://a.db?mode=rwc");
        assert_eq!(normalize_url("sqlite::memory:").unwrap().1, "sqlite::memory:");
        assert_eq!(normalize_url("postgresql://h/db").unwrap().0, Backend::Postgres);
        assert!(normalize_url("mysql://h/db").is_err());
        assert!(normalize_url(" ").is_err());
        assert_eq!(sqlite_path("sqlite://d/a.db?mode=rwc"), Some(PathBuf::from("d/a.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(redact_url("postgres://u:pw@h:5432/db?sslmode=x"), "postgres://u:<redacted>@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
        let cfg =
            StoreConfig { url: "postgres://u:hunter2@h/db".into(), key: Some("S3CRET".into()), ..Default::default() };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("S3CRET"), "{dbg}");
    }
}
