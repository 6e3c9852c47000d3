//! `ec2bridge` command line: serve | sim | register | mappings | admin | errors | account-number.

use clap::{Parser, Subcommand};

// Built with `--features mimalloc` only: it trades resident memory for CPU (src/ops/memory.rs).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ec2bridge", version, about = "EC2-compatible gateway in front of Apache CloudStack")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (EC2 Query + SOAP on :7080). Without a CloudStack configured, starts the
    /// built-in simulator as the backend.
    Serve(ec2bridge::app::ServeArgs),
    /// Run the CloudStack simulator alone.
    #[cfg(feature = "sim")]
    Sim(ec2bridge::sim::SimArgs),
    /// Register CloudStack keys and an X.509 certificate with a gateway (SOAP clients).
    Register(ec2bridge::app::register_cli::RegisterArgs),
    /// List and remove registrations in the store.
    Admin(ec2bridge::store::admin::AdminArgs),
    /// Check the mapping table, list the supported EC2 actions.
    Mappings(ec2bridge::mapping::cli::MappingsArgs),
    /// TLS certificates: `certs self-signed` writes a development certificate and key.
    Certs(ec2bridge::app::certs::CertsArgs),
    /// Print every EC2 error code the gateway can answer, with its HTTP status and retryability.
    Errors {
        /// Markdown table (the one in docs/errors.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Print the 12-digit EC2 account number (`ownerId`, STS `Account`) of CloudStack account
    /// uuids, one `<uuid> <number>` line each (docs/accounts.md). Without arguments, reads
    /// uuids from standard input, one per line.
    AccountNumber {
        /// CloudStack account uuids (`listAccounts` answers them as `id`).
        uuids: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    // Before the runtime starts its threads (src/ops/memory.rs).
    ec2bridge::ops::memory::limit_arenas();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `serve` sets up logging itself, once its configuration (`[log] format`) is read.
    if !matches!(cli.cmd, Cmd::Serve(_)) {
        ec2bridge::ops::logging::init("text");
    }
    match cli.cmd {
        Cmd::Serve(a) => {
            ec2bridge::ops::memory::spawn_trimmer();
            ec2bridge::app::run(a).await
        }
        #[cfg(feature = "sim")]
        Cmd::Sim(a) => ec2bridge::sim::run(a).await,
        Cmd::Register(a) => ec2bridge::app::register_cli::run_cli(a).await,
        Cmd::Admin(a) => ec2bridge::store::admin::run(a).await,
        Cmd::Mappings(a) => ec2bridge::mapping::cli::run(a),
        Cmd::Certs(a) => ec2bridge::app::certs::run(a),
        Cmd::Errors { markdown } => {
            print!("{}", ec2bridge::base::error::catalog_listing(markdown));
            Ok(())
        }
        Cmd::AccountNumber { uuids } => {
            let uuids = if uuids.is_empty() {
                std::io::read_to_string(std::io::stdin())?.lines().map(|l| l.trim().to_string()).collect()
            } else {
                uuids
            };
            for u in uuids.iter().filter(|u| !u.is_empty()) {
                println!("{u} {}", ec2bridge::ids::account_number(u));
            }
            Ok(())
        }
    }
}
