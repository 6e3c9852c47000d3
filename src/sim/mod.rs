//! The built-in CloudStack simulator. Speaks CloudStack's HTTP API (signed requests, JSON
//! envelopes, paging, errors, async jobs, several accounts); the gateway core never imports
//! this module. See `docs/simulator.md`.
//!
//! Layout: `http` (router, dispatch, envelopes), `auth` (signature check over
//! `crate::cloudstack::signing`), `params`, `list` (paging), `error`, `model` (state), `render`
//! (object JSON), `jobs` (async jobs and timers), `seed` (seed file, keys), `faults`, `keys`
//! (SSH keys, password encryption), `cmd/*` (command handlers by area).

mod auth;
mod cmd;
mod error;
mod faults;
mod http;
mod jobs;
mod keys;
mod list;
mod model;
mod offerings;
mod params;
mod render;
mod render_net;
mod seed;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Seed file (TOML); default: the built-in seeds/default.toml.
    #[arg(long)]
    pub seed: Option<std::path::PathBuf>,
    /// Near-zero job delays (tests) instead of realistic ones.
    #[arg(long)]
    pub fast: bool,
    /// Directory keeping generated keys between starts (default: keys live in memory only).
    #[arg(long)]
    pub state_dir: Option<std::path::PathBuf>,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let handle =
        start(SimOptions { listen: args.listen, seed: args.seed, fast: args.fast, state_dir: args.state_dir }).await?;
    println!("CloudStack simulator listening on {}", handle.endpoint);
    for u in &handle.users {
        println!(
            "account={} domain={} user={} admin={} apikey={} secretkey={}",
            u.account, u.domain, u.username, u.is_admin, u.api_key, u.secret_key
        );
    }
    use std::io::Write;
    std::io::stdout().flush().ok();
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}

/// How the gateway (or a test) starts the simulator in-process.
/// CONTRACT: `start` binds `listen` (port 0 = random), seeds, and serves until the handle drops.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub listen: std::net::SocketAddr,
    /// Seed file; None = the built-in default seed.
    pub seed: Option<std::path::PathBuf>,
    /// Near-zero job delays (tests) instead of realistic ones.
    pub fast: bool,
    /// Where generated demo keys are kept between starts; None = keep in memory only.
    pub state_dir: Option<std::path::PathBuf>,
}

/// A seeded user as the simulator knows it. Debug never prints the secret key.
#[derive(Clone)]
pub struct SimUser {
    pub account: String,
    /// The account's uuid.
    pub account_id: String,
    pub domain: String,
    pub username: String,
    pub api_key: String,
    pub secret_key: String,
    pub is_admin: bool,
}

impl std::fmt::Debug for SimUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimUser")
            .field("account", &self.account)
            .field("domain", &self.domain)
            .field("username", &self.username)
            .field("api_key", &self.api_key)
            .field("secret_key", &"<redacted>")
            .field("is_admin", &self.is_admin)
            .finish()
    }
}

pub struct SimHandle {
    pub addr: std::net::SocketAddr,
    /// `http://<addr>/client/api`
    pub endpoint: String,
    pub users: Vec<SimUser>,
    /// Dropping the handle drops this sender, which stops the server.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl SimHandle {
    /// The first root administrator.
    pub fn admin(&self) -> Option<&SimUser> {
        self.users.iter().find(|u| u.is_admin)
    }
    /// A user by account name.
    pub fn user(&self, account: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.account == account)
    }
    /// Keep the simulator running until the process exits, whatever happens to the handle;
    /// returns (addr, endpoint, users).
    pub fn detach(self) -> (std::net::SocketAddr, String, Vec<SimUser>) {
        std::mem::forget(self._shutdown);
        (self.addr, self.endpoint, self.users)
    }
}

/// State shared by the HTTP handlers and the job tasks.
pub(crate) struct Shared {
    model: RwLock<model::Model>,
    cfg: seed::SimConfig,
    registry: HashMap<&'static str, cmd::CmdSpec>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, model::Model> {
        // A panicking handler is answered with 530; the state it left is still usable.
        self.model.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, model::Model> {
        self.model.write().unwrap_or_else(|e| e.into_inner())
    }
}

pub async fn start(opts: SimOptions) -> anyhow::Result<SimHandle> {
    let text = match &opts.seed {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading seed {}", p.display()))?,
        None => seed::DEFAULT_SEED.to_string(),
    };
    start_with_seed(opts, &text).await
}

/// Like [`start`], for one more region of a gateway serving several (`[[regions]]`): the seed's
/// fixed uuids are replaced by uuids derived from `region` and the old ones, and every zone
/// `<name>` becomes `<region>-<name>`, so that two simulated regions share no object and no zone
/// name (the same seed twice would give the same ids in both regions).
pub async fn start_region(opts: SimOptions, region: &str) -> anyhow::Result<SimHandle> {
    let text = match &opts.seed {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading seed {}", p.display()))?,
        None => seed::DEFAULT_SEED.to_string(),
    };
    let text = seed::for_region(&text, region)?;
    start_with_seed(opts, &text).await
}

/// Like [`start`], with the seed given as TOML text (`opts.seed` is ignored).
pub async fn start_with_seed(opts: SimOptions, seed_text: &str) -> anyhow::Result<SimHandle> {
    if !opts.listen.ip().is_loopback() {
        anyhow::bail!("the simulator listens on loopback only, not {}", opts.listen);
    }
    let parsed = seed::parse_seed(seed_text)?;
    let (mut model, cfg) = seed::build(&parsed, opts.fast, opts.state_dir.as_deref())?;
    let listener =
        tokio::net::TcpListener::bind(opts.listen).await.with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    model.region_endpoint = format!("http://{addr}/client/");
    let users = seed::users_of(&model);
    let shared = Arc::new(Shared { model: RwLock::new(model), cfg, registry: cmd::registry() });
    let app = http::router(shared);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "simulator server stopped");
        }
    });
    Ok(SimHandle { addr, endpoint: format!("http://{addr}/client/api"), users, _shutdown: tx })
}
