//! HTTP listener on :7080: routes, tower layers, graceful shutdown.

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "EC2BRIDGE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

pub async fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve is not implemented yet")
}
