//! The composition layer: `ec2bridge serve` start-up. Reads the configuration, opens the store,
//! chooses the backend (a configured CloudStack, or the built-in simulator when this build has the
//! `sim` feature), wires credential sources, the mapping executor and the HTTP front end
//! (`crate::server`), then serves until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::auth::credentials::{CloudStackAdminSource, CredentialSource, MemorySource, StoreSource, gateway_chain};
use crate::cloudstack::{ClientOptions, CsClient, CsCredentials};
use crate::config::Config;
use crate::ec2::soap::SoapFrontend;
use crate::server::Gateway;

pub mod certs;
pub mod probe;
pub mod register_cli;
mod registration;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "EC2BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address (overrides server.listen), e.g. 127.0.0.1:0 for any free port.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Write a JSON file with the endpoint, region and demo users once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Built-in simulator with near-zero delays (tests).
    #[arg(long)]
    pub sim_fast: bool,
    /// Admin listener for /metrics, /healthz, /readyz (overrides admin.listen; "" = none).
    #[arg(long)]
    pub admin_listen: Option<String>,
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// One demo user as the ready file lists it. Debug never prints the secret key.
#[derive(Clone, serde::Serialize)]
pub struct ReadyUser {
    pub account: String,
    pub access_key: String,
    pub secret_key: String,
    pub is_admin: bool,
}

impl std::fmt::Debug for ReadyUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyUser")
            .field("account", &self.account)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("is_admin", &self.is_admin)
            .finish()
    }
}

/// The JSON written to `--ready-file` once the gateway listens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadyInfo {
    pub endpoint: String,
    /// The HTTPS listener's URL when `[server.tls]` is set.
    pub https_endpoint: Option<String>,
    /// The admin listener's URL (/metrics, /healthz, /readyz).
    pub admin_endpoint: Option<String>,
    pub region: String,
    pub cloudstack_endpoint: String,
    pub simulator: bool,
    pub users: Vec<ReadyUser>,
    /// The regions after the default one (`[[regions]]`), served by the same listeners.
    pub regions: Vec<ReadyRegion>,
}

/// One more region in the ready file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadyRegion {
    pub name: String,
    /// Its configured endpoint (`host[:port]`); null: the gateway's own endpoint.
    pub endpoint: Option<String>,
    pub cloudstack_endpoint: String,
    pub simulator: bool,
    pub users: Vec<ReadyUser>,
}

/// Write atomically (readers never see half a file) and owner-readable only (it holds secrets).
fn write_ready_file(path: &std::path::Path, info: &ReadyInfo) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(info)?.as_bytes())?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The URL clients use for a listening address (a wildcard address is reached over loopback).
fn endpoint_url(addr: SocketAddr, scheme: &str) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".parse().expect("literal"),
        ip if ip.is_unspecified() => "::1".parse().expect("literal"),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// `ec2bridge serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = configure(args)?;
    crate::ops::logging::init(&cfg.log.format);
    if cfg.all_regions().iter().any(|r| r.cloudstack.endpoint.is_none()) && !cfg!(feature = "sim") {
        anyhow::bail!(
            "no CloudStack configured: set cloudstack.endpoint (EC2BRIDGE_CLOUDSTACK_ENDPOINT); this build \
             has no built-in simulator (it was built without the `sim` feature)"
        );
    }

    // The store first: a store that cannot be opened (bad URL, database down, wrong key) stops
    // start-up with the reason, before anything listens. The default SQLite file and its key file
    // (mode 0600) are created on first start.
    let store = Arc::new(
        crate::store::Store::open_config(&cfg.store)
            .await
            .with_context(|| format!("opening the store at {}", crate::store::redact_url(&cfg.store.url)))?,
    );
    tracing::info!(store = %store.location(), backend = ?store.backend(), "store open");

    // One backend per region: the default region ([region], [cloudstack], [simulator]) first,
    // then [[regions]]; each its configured CloudStack or its own built-in simulator.
    let mut backends = Vec::new();
    for (i, r) in cfg.all_regions().iter().enumerate() {
        backends.push(region_backend(&cfg, r, i == 0, &store).await.with_context(|| format!("region {}", r.name))?);
    }
    let cs_endpoint = backends[0].cs_endpoint.clone();

    let bound = bind_listeners(&cfg).await?;
    let gw = Arc::new(gateway(&cfg, &backends, &bound.endpoint, &store)?);
    let admin_endpoint = start_admin(&cfg, &store, &backends).await?;
    let ready = ready_info(&cfg, &backends, &bound, admin_endpoint);
    print_banner(&ready);
    if let Some(p) = &cfg.server.ready_file {
        write_ready_file(p, &ready)?;
    }
    let cs_shown = crate::store::redact_url(&cs_endpoint);
    tracing::info!(endpoint = %bound.endpoint, https = ?bound.https_endpoint, cloudstack = %cs_shown, region = %cfg.region.name, "ec2bridge listening");
    let limits = crate::server::ConnLimits {
        header_read: Duration::from_secs(cfg.server.header_read_timeout_secs),
        idle: Duration::from_secs(cfg.server.idle_timeout_secs),
        max_connections: cfg.server.max_connections,
    };
    crate::server::listen::serve(
        bound.listeners,
        crate::server::router(gw),
        limits,
        shutdown_signal(),
        Duration::from_secs(cfg.server.shutdown_grace_secs),
    )
    .await?;
    if let Some(p) = &cfg.server.ready_file {
        let _ = std::fs::remove_file(p);
    }
    store.close().await;
    tracing::info!("ec2bridge stopped");
    Ok(())
}

/// The configuration file (or defaults and environment) with the command line's overrides.
fn configure(args: ServeArgs) -> anyhow::Result<Config> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(r) = args.ready_file {
        cfg.server.ready_file = Some(r);
    }
    if args.sim_fast {
        cfg.simulator.fast = true;
    }
    if let Some(a) = args.admin_listen {
        cfg.admin.listen = a;
        cfg.validate()?;
    }
    Ok(cfg)
}

/// The EC2 listeners, bound, and the URLs clients reach them at.
struct Bound {
    listeners: Vec<crate::server::Listener>,
    /// The plain HTTP listener's URL, else the HTTPS one's.
    endpoint: String,
    https_endpoint: Option<String>,
}

/// Plain HTTP (unless TLS only) and HTTPS; TLS files are checked before anything listens.
async fn bind_listeners(cfg: &Config) -> anyhow::Result<Bound> {
    let tls = match &cfg.server.tls {
        Some(t) => Some((t, crate::server::tls::TlsAcceptor::load(&t.cert, &t.key)?)),
        None => None,
    };
    let mut listeners = Vec::new();
    let mut endpoint = None;
    if !tls.as_ref().is_some_and(|(t, _)| t.only) {
        let tcp = tokio::net::TcpListener::bind(cfg.server.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.server.listen))?;
        endpoint = Some(endpoint_url(tcp.local_addr()?, "http"));
        listeners.push(crate::server::Listener { tcp, tls: None });
    }
    let mut https_endpoint = None;
    if let Some((t, acceptor)) = &tls {
        let tcp = tokio::net::TcpListener::bind(t.listen)
            .await
            .with_context(|| format!("listening (HTTPS) on {}", t.listen))?;
        https_endpoint = Some(endpoint_url(tcp.local_addr()?, "https"));
        acceptor.spawn_reloader(Duration::from_secs(5));
        listeners.push(crate::server::Listener { tcp, tls: Some(acceptor.clone()) });
    }
    let endpoint = endpoint.or(https_endpoint.clone()).context("no listener configured")?;
    Ok(Bound { listeners, endpoint, https_endpoint })
}

/// The gateway of the default region, routing to the other regions' gateways by name or host.
///
/// Each region's executor reports this gateway as the region's endpoint (DescribeRegions; boto 2
/// builds connections from it): each request's Host, or the configured endpoint; the bound
/// address only when a request has neither, so it is made once the port is known. The id caches
/// live in the store, shared by every gateway on the same database and kept across restarts (ids
/// are unambiguous across regions: they hash CloudStack uuids, see docs/ids.md).
fn gateway(
    cfg: &Config,
    backends: &[RegionBackend],
    endpoint: &str,
    store: &Arc<crate::store::Store>,
) -> anyhow::Result<Gateway> {
    let bound = endpoint.trim_start_matches("http://").trim_start_matches("https://").to_string();
    let infos: Vec<crate::mapping::RegionInfo> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| crate::mapping::RegionInfo {
            name: b.name.clone(),
            // Empty: another region of this gateway without an endpoint of its own, reported
            // like this region's (the request's Host).
            endpoint: b.public_endpoint.clone().unwrap_or_else(|| if i == 0 { bound.clone() } else { String::new() }),
        })
        .collect();
    // One bound for the process: memory is the process's, whatever region a request goes to.
    let large_answers =
        crate::ops::large_answers::LargeAnswers::new(cfg.limits.large_answers, cfg.limits.large_answer_bytes);
    let mut gateways = Vec::new();
    for (i, (b, r)) in backends.iter().zip(cfg.all_regions()).enumerate() {
        // This region first (its zones' regionName), then the others in configured order.
        let mut regions = vec![crate::mapping::RegionInfo {
            endpoint: b.public_endpoint.clone().unwrap_or_else(|| bound.clone()),
            ..infos[i].clone()
        }];
        regions.extend(infos.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, r)| r.clone()));
        gateways.push(region_gateway(cfg, b, &r, i, regions, store, &large_answers)?);
    }
    let mut gateways = gateways.into_iter();
    let mut gw = gateways.next().context("no region")?;
    gw.regions = gateways
        .zip(&backends[1..])
        .map(|(g, b)| crate::server::RegionRoute {
            name: b.name.clone(),
            host: b.public_endpoint.clone(),
            gw: Arc::new(g),
        })
        .collect();
    Ok(gw)
}

/// One region's gateway: its executor (on the store's id cache, objects and journal, background
/// work started), rate limits, SOAP paths and authentication settings.
fn region_gateway(
    cfg: &Config,
    b: &RegionBackend,
    r: &crate::config::ExtraRegion,
    index: usize,
    regions: Vec<crate::mapping::RegionInfo>,
    store: &Arc<crate::store::Store>,
    large_answers: &Arc<crate::ops::large_answers::LargeAnswers>,
) -> anyhow::Result<Gateway> {
    // Buckets per region (EC2 throttles per account and region), each with its own rate.
    let per_sec = r.requests_per_sec.unwrap_or(cfg.limits.requests_per_sec);
    let rate_limiter = (per_sec > 0.0).then(|| {
        Arc::new(crate::server::limits::RateLimiter::new(crate::server::limits::RateLimits {
            per_sec,
            burst: r.burst.unwrap_or(cfg.limits.burst),
            weights: cfg.limits.weights(),
        }))
    });
    let opts = crate::mapping::ExecutorOptions {
        regions,
        admin: b.admin.clone(),
        lease: Duration::from_secs(cfg.server.operation_lease_secs.max(1)),
        tombstone_keep: cfg.server.tombstones_per_account.max(1),
        store_scope: (index > 0).then(|| b.name.clone()),
        ..Default::default()
    };
    let executor = crate::mapping::Executor::with_options(b.client.clone(), cfg.mappings.dir.as_deref(), opts)?
        .with_id_cache(Arc::new(crate::store::StoreIdCache::new(store.as_ref().clone())))?;
    // One cache for both: the tombstone and instance-attribute reads every DescribeInstances
    // makes, reused for a second (store/read_cache.rs).
    let state = Arc::new(crate::store::read_cache::StateReadCache::new(Arc::new(store.as_ref().clone())));
    let executor = executor.with_object_store(state.clone())?.with_journal(state)?;
    executor.start_background();
    // SOAP element paths come from the same (possibly overridden) mapping table.
    let soap = SoapFrontend::with_bergshamra().with_paths(Arc::new(executor.table().soap_paths()));
    let mut auth = cfg.auth_settings();
    if cfg.region.strict {
        auth.strict_region = Some(b.name.clone());
    }
    Ok(Gateway {
        handler: Arc::new(executor),
        credentials: b.credentials.clone(),
        auth,
        max_body_bytes: cfg.server.max_body_bytes,
        request_timeout: cfg.request_timeout(),
        soap: Arc::new(soap),
        registry: Some(store.clone()),
        key_checker: Some(b.client.clone()),
        public_endpoint: b.public_endpoint.clone(),
        rate_limiter,
        access_log: cfg.log.access_log,
        regions: Vec::new(),
        large_answers: large_answers.clone(),
    })
}

/// The admin listener: metrics and health, loopback by default; answers its URL. A port
/// already taken is not fatal (the EC2 service matters more); the log says so.
async fn start_admin(
    cfg: &Config,
    store: &Arc<crate::store::Store>,
    backends: &[RegionBackend],
) -> anyhow::Result<Option<String>> {
    let Some(a) = cfg.admin.addr()? else { return Ok(None) };
    let tcp = match tokio::net::TcpListener::bind(a).await {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::error!(listen = %a, error = %e, "admin listener not started: /metrics and /readyz are unavailable");
            return Ok(None);
        }
    };
    let url = endpoint_url(tcp.local_addr()?, "http");
    let mut checks: Vec<Arc<dyn crate::server::admin::ReadinessCheck>> =
        vec![Arc::new(probe::StoreCheck(store.clone()))];
    for (i, b) in backends.iter().enumerate() {
        let name = if i == 0 { "cloudstack".to_string() } else { format!("cloudstack({})", b.name) };
        checks.push(Arc::new(probe::CloudStackCheck(b.client.clone(), name)));
    }
    let admin = crate::server::admin::router(Arc::new(crate::server::admin::Admin::new(checks)));
    tokio::spawn(async move {
        let _ = crate::server::listen::serve(
            vec![crate::server::Listener { tcp, tls: None }],
            admin,
            crate::server::ConnLimits { max_connections: 64, ..Default::default() },
            std::future::pending(),
            Duration::ZERO,
        )
        .await;
    });
    tracing::info!(admin = %url, "admin listener: /metrics /healthz /readyz");
    Ok(Some(url))
}

/// What the banner and `--ready-file` say. A password in a CloudStack endpoint's userinfo
/// stays out of both.
fn ready_info(cfg: &Config, backends: &[RegionBackend], bound: &Bound, admin_endpoint: Option<String>) -> ReadyInfo {
    ReadyInfo {
        endpoint: bound.endpoint.clone(),
        https_endpoint: bound.https_endpoint.clone(),
        admin_endpoint,
        region: cfg.region.name.clone(),
        cloudstack_endpoint: crate::store::redact_url(&backends[0].cs_endpoint),
        simulator: backends[0].sim.is_some(),
        users: backends[0].users.clone(),
        regions: backends[1..]
            .iter()
            .map(|b| ReadyRegion {
                name: b.name.clone(),
                endpoint: b.public_endpoint.clone(),
                cloudstack_endpoint: crate::store::redact_url(&b.cs_endpoint),
                simulator: b.sim.is_some(),
                users: b.users.clone(),
            })
            .collect(),
    }
}

/// One region's backend: its CloudStack client (or built-in simulator) and credential sources.
struct RegionBackend {
    name: String,
    public_endpoint: Option<String>,
    cs_endpoint: String,
    client: Arc<CsClient>,
    credentials: Arc<dyn CredentialSource>,
    users: Vec<ReadyUser>,
    /// Admin keys (configured, or the simulator's admin): the executor numbers other tenants'
    /// accounts with them (docs/accounts.md).
    admin: Option<CsCredentials>,
    /// The region's simulator, kept alive as long as the gateway runs.
    sim: Option<SimBackend>,
}

async fn region_backend(
    cfg: &Config,
    r: &crate::config::ExtraRegion,
    default_region: bool,
    store: &Arc<crate::store::Store>,
) -> anyhow::Result<RegionBackend> {
    let memory = Arc::new(MemorySource::new());
    let mut users = Vec::new();
    let mut admin_keys = match (&r.cloudstack.admin_api_key, &r.cloudstack.admin_secret_key) {
        (Some(ak), Some(sk)) => Some(CsCredentials { api_key: ak.clone(), secret_key: sk.clone() }),
        _ => None,
    };
    let (cs_endpoint, sim) = match &r.cloudstack.endpoint {
        Some(e) => (e.clone(), None),
        None => {
            let region = (!default_region).then_some(r.name.as_str());
            let sim = start_simulator(&r.simulator, region, &memory, &mut users, &mut admin_keys).await?;
            (sim.endpoint().to_string(), Some(sim))
        }
    };
    let client = Arc::new(
        CsClient::new(
            &cs_endpoint,
            ClientOptions {
                call_timeout: Duration::from_secs(r.cloudstack.call_timeout_secs),
                job_timeout: Duration::from_secs(r.cloudstack.job_timeout_secs),
                max_concurrent: r.max_cloudstack_calls.unwrap_or(cfg.limits.max_cloudstack_calls),
                max_concurrent_per_key: r
                    .max_cloudstack_calls_per_user
                    .unwrap_or(cfg.limits.max_cloudstack_calls_per_user),
                ca_bundle: r.cloudstack.ca_bundle.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("CloudStack client for {}: {e}", crate::store::redact_url(&cs_endpoint)))?,
    );

    // Credential sources, first match wins: registered keys (store), simulator users, then
    // CloudStack itself through admin keys (configured, or the simulator's admin).
    let cloudstack_source = admin_keys.clone().map(|admin| {
        Arc::new(CloudStackAdminSource::new(client.clone(), admin, cfg.cache_options())) as Arc<dyn CredentialSource>
    });
    if cloudstack_source.is_none() {
        tracing::info!(
            region = %r.name,
            "only registered keys authenticate: set cloudstack.admin_api_key/admin_secret_key so that \
             users' CloudStack keys can be looked up"
        );
    }
    let chain = gateway_chain(
        Some(Arc::new(StoreSource::new(store.as_ref().clone()))),
        (!memory.is_empty()).then(|| memory.clone() as Arc<dyn CredentialSource>),
        cloudstack_source,
    );

    // Before listening: a wrong URL or a dead host is named now, not after the first user's
    // retries. Not fatal: CloudStack may come up after the gateway (/readyz tells when).
    if r.cloudstack.probe_at_start {
        probe::log_startup_probe(&client, &cs_endpoint, admin_keys.as_ref()).await;
    }
    Ok(RegionBackend {
        name: r.name.clone(),
        public_endpoint: r.endpoint.clone(),
        cs_endpoint,
        client,
        credentials: Arc::new(chain),
        users,
        admin: admin_keys,
        sim,
    })
}

/// Human start-up message on stdout (not the log): where to point clients, and the demo keys
/// when the built-in simulator is the backend.
fn print_banner(r: &ReadyInfo) {
    println!("ec2bridge: EC2 endpoint {} (region {})", r.endpoint, r.region);
    if let Some(h) = &r.https_endpoint {
        println!("HTTPS: {h}");
    }
    if let Some(a) = &r.admin_endpoint {
        println!("admin (metrics, health): {a}/metrics {a}/readyz");
    }
    if r.simulator {
        println!("backend: built-in CloudStack simulator at {}", r.cloudstack_endpoint);
        for u in &r.users {
            println!(
                "  demo user {}{}: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}",
                u.account,
                if u.is_admin { " (admin)" } else { "" },
                u.access_key,
                u.secret_key
            );
        }
        if let Some(u) = r.users.iter().find(|u| !u.is_admin).or(r.users.first()) {
            println!(
                "try: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws --endpoint-url {} --region {} ec2 describe-availability-zones",
                u.access_key, u.secret_key, r.endpoint, r.region
            );
        }
    } else {
        println!("backend: CloudStack at {}", r.cloudstack_endpoint);
    }
}

/// The built-in simulator as the backend; it runs as long as the returned handle lives. Its demo
/// users authenticate directly; users created later are found through its admin.
#[cfg(feature = "sim")]
async fn start_simulator(
    cfg: &crate::config::SimulatorConfig,
    region: Option<&str>,
    memory: &MemorySource,
    users: &mut Vec<ReadyUser>,
    admin_keys: &mut Option<CsCredentials>,
) -> anyhow::Result<SimBackend> {
    let opts = crate::sim::SimOptions {
        listen: cfg.listen,
        seed: cfg.seed.clone(),
        fast: cfg.fast,
        state_dir: cfg.effective_state_dir(),
    };
    // The default region's simulator keeps the seed's ids; another region's gets its own.
    let sim = match region {
        None => crate::sim::start(opts).await,
        Some(r) => crate::sim::start_region(opts, r).await,
    }
    .context("starting the built-in CloudStack simulator")?;
    for u in &sim.users {
        memory.insert(
            &u.api_key,
            crate::auth::KnownUser::cloudstack_user(&u.api_key, &u.secret_key, Some(u.account.clone()))
                .with_account_id(Some(u.account_id.clone())),
        );
        users.push(ReadyUser {
            account: u.account.clone(),
            access_key: u.api_key.clone(),
            secret_key: u.secret_key.clone(),
            is_admin: u.is_admin,
        });
    }
    // Users created in the simulator after start-up (createUser, registerUserKeys) are found
    // through its admin, as with a real CloudStack.
    if admin_keys.is_none()
        && let Some(a) = sim.users.iter().find(|u| u.is_admin)
    {
        *admin_keys = Some(CsCredentials { api_key: a.api_key.clone(), secret_key: a.secret_key.clone() });
    }
    Ok(SimBackend(sim))
}

/// A running simulator (stops when dropped).
#[cfg(feature = "sim")]
struct SimBackend(crate::sim::SimHandle);

#[cfg(feature = "sim")]
impl SimBackend {
    fn endpoint(&self) -> &str {
        &self.0.endpoint
    }
}

/// This build has no simulator: a CloudStack endpoint must be configured.
#[cfg(not(feature = "sim"))]
async fn start_simulator(
    _cfg: &crate::config::SimulatorConfig,
    _region: Option<&str>,
    _memory: &MemorySource,
    _users: &mut Vec<ReadyUser>,
    _admin_keys: &mut Option<CsCredentials>,
) -> anyhow::Result<SimBackend> {
    anyhow::bail!("this build has no built-in simulator (Cargo feature `sim`)")
}

#[cfg(not(feature = "sim"))]
enum SimBackend {}

#[cfg(not(feature = "sim"))]
impl SimBackend {
    fn endpoint(&self) -> &str {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(endpoint_url("0.0.0.0:7080".parse().unwrap(), "http"), "http://127.0.0.1:7080");
        assert_eq!(endpoint_url("10.1.2.3:80".parse().unwrap(), "http"), "http://10.1.2.3:80");
        assert_eq!(endpoint_url("[::]:7443".parse().unwrap(), "https"), "https://[::1]:7443");
    }
}
