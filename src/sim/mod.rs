//! The built-in CloudStack simulator. Speaks CloudStack's HTTP API; the gateway core never imports
//! this module.

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

pub async fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("sim is not implemented yet")
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

/// A seeded user as the simulator knows it.
#[derive(Debug, Clone)]
pub struct SimUser {
    pub account: String,
    pub domain: String,
    pub username: String,
    pub api_key: String,
    pub secret_key: String,
    pub is_admin: bool,
}

pub struct SimHandle {
    pub addr: std::net::SocketAddr,
    /// `http://<addr>/client/api`
    pub endpoint: String,
    pub users: Vec<SimUser>,
}

pub async fn start(_opts: SimOptions) -> anyhow::Result<SimHandle> {
    anyhow::bail!("sim is not implemented yet")
}
