//! Configuration: one TOML file plus `EC2BRIDGE_*` environment overrides; unknown keys are errors.
//!
//! Precedence: command-line flags > environment > file > defaults. An environment variable
//! `EC2BRIDGE_<SECTION>_<KEY>` (e.g. `EC2BRIDGE_SERVER_LISTEN`, `EC2BRIDGE_CLOUDSTACK_ADMIN_API_KEY`)
//! sets `<key>` in `[<section>]`. Variables whose name does not start with a section name
//! (`EC2BRIDGE_CONFIG`, `EC2BRIDGE_LOG`, ...) are not configuration keys and are left alone; a
//! variable that names a section but not one of its keys is an error, like an unknown key in the
//! file. The README's configuration reference lists every key (`KEYS` below is the same list).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub region: RegionConfig,
    pub auth: AuthConfig,
    pub cloudstack: CloudStackConfig,
    pub simulator: SimulatorConfig,
    pub store: StoreConfig,
    pub mappings: MappingsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub limits: LimitsConfig,
    /// More regions, each with its own CloudStack (`[[regions]]`); `[region]` + `[cloudstack]`
    /// stay the default region. See docs/operations.md "Several regions".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<ExtraRegion>,
}

/// `[[regions]]`: one more region served by this gateway, with its own CloudStack (endpoint,
/// admin keys, CA bundle, timeouts) or, without `cloudstack.endpoint`, its own built-in simulator.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtraRegion {
    /// The region name (a SigV4 scope naming it is served by this region).
    pub name: String,
    /// `host[:port]` reported as the region's endpoint; a SigV2 (or SOAP) request whose Host is
    /// this is served by this region. Unset: the Host each request was sent to (same gateway).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// This region's CloudStack (same keys as `[cloudstack]`).
    #[serde(default)]
    pub cloudstack: CloudStackConfig,
    /// This region's built-in simulator when `cloudstack.endpoint` is unset (same keys as
    /// `[simulator]`; `fast` follows `--sim-fast`).
    #[serde(default)]
    pub simulator: SimulatorConfig,
    /// Concurrent calls to this region's CloudStack; unset: `[limits] max_cloudstack_calls`.
    #[serde(default)]
    pub max_cloudstack_calls: Option<usize>,
    /// Concurrent calls per CloudStack key here; unset: `[limits] max_cloudstack_calls_per_user`.
    #[serde(default)]
    pub max_cloudstack_calls_per_user: Option<usize>,
    /// Refill of each access key's bucket in this region (EC2 throttles per account and region);
    /// unset: `[limits] requests_per_sec`.
    #[serde(default)]
    pub requests_per_sec: Option<f64>,
    /// Bucket size in this region; unset: `[limits] burst`.
    #[serde(default)]
    pub burst: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the EC2 endpoint listens on.
    pub listen: SocketAddr,
    /// Largest accepted request body; larger requests get `RequestEntityTooLarge` (413).
    pub max_body_bytes: usize,
    /// Deadline for one request, from the first byte of the body to the answer.
    pub request_timeout_secs: u64,
    /// After SIGINT/SIGTERM, how long in-flight requests may still run.
    pub shutdown_grace_secs: u64,
    /// Written once listening: JSON with the endpoint, region and (simulator) demo users.
    pub ready_file: Option<PathBuf>,
    /// A request's headers must arrive within this time of its first byte (slow clients).
    pub header_read_timeout_secs: u64,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout_secs: u64,
    /// Open client connections at most (all EC2 listeners together); beyond it new connections
    /// wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long an operation in the journal stays leased to this gateway without renewal;
    /// past it another gateway (or this one after a restart) takes it over
    /// (docs/gateway-state.md).
    pub operation_lease_secs: u64,
    /// Terminated instances DescribeInstances keeps showing, at most, per account (the oldest
    /// go first; each also goes an hour after its termination).
    pub tombstones_per_account: usize,
    /// HTTPS listener (rustls); see docs/operations.md.
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the HTTPS listener.
    #[serde(default = "TlsConfig::default_listen")]
    pub listen: SocketAddr,
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Serve HTTPS only (no plain HTTP listener on server.listen).
    #[serde(default)]
    pub only: bool,
}

impl TlsConfig {
    fn default_listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 7443))
    }
}

/// `[admin]`: the listener for /metrics, /healthz and /readyz.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Loopback by default so that metrics are not exposed to the world; empty string: no admin
    /// listener.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: "127.0.0.1:7081".into() }
    }
}

impl AdminConfig {
    pub fn addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        if self.listen.trim().is_empty() {
            return Ok(None);
        }
        self.listen
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("admin.listen must be ip:port or empty (got {:?})", self.listen))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (human) or `json` (one object per line).
    pub format: String,
    /// One line per request at INFO (target `ec2bridge::access`); off: those lines are DEBUG.
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: "text".into(), access_log: false }
    }
}

/// `[limits]`: per-user request rate (token bucket) and CloudStack concurrency. Per gateway
/// process: N gateways behind a load balancer allow up to N times these (docs/operations.md).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Tokens added to each access key's bucket per second; 0 turns rate limiting off.
    pub requests_per_sec: f64,
    /// Bucket size: the burst a user may send at once.
    pub burst: f64,
    /// Tokens an action costs (default 1), e.g. `{ RunInstances = 5 }`; merged over the defaults.
    pub action_weights: std::collections::BTreeMap<String, f64>,
    /// Concurrent CloudStack calls of the whole gateway (0 = unlimited); further calls wait.
    pub max_cloudstack_calls: usize,
    /// Concurrent CloudStack calls per CloudStack API key (0 = unlimited); further calls wait.
    pub max_cloudstack_calls_per_user: usize,
    /// Requests that may hold large CloudStack answers at once (0 = unlimited); further ones
    /// wait before reading theirs (`ops::large_answers`). Default: half the CPUs this process
    /// may use, at least 1.
    pub large_answers: usize,
    /// An answer larger than this (bytes) is large.
    pub large_answer_bytes: usize,
}

/// `[limits] large_answers` when unset: half the CPUs this process may use, at least 1.
/// Decoding and rendering a large answer keeps a core busy: more of them at once than that adds
/// memory, not throughput, and the other half of the cores stays with everything else.
pub fn default_large_answers() -> usize {
    (std::thread::available_parallelism().map(usize::from).unwrap_or(2) / 2).max(1)
}

/// Actions that cost more than one token by default (they start long, heavy CloudStack work).
pub const DEFAULT_ACTION_WEIGHTS: &[(&str, f64)] =
    &[("RunInstances", 5.0), ("CreateImage", 5.0), ("CopyImage", 5.0), ("CreateSnapshot", 2.0), ("CreateVolume", 2.0)];

impl Default for LimitsConfig {
    fn default() -> Self {
        // EC2's documented default for a user's non-mutating requests: a bucket of 100 that
        // refills at 20 per second.
        LimitsConfig {
            requests_per_sec: 20.0,
            burst: 100.0,
            action_weights: Default::default(),
            max_cloudstack_calls: 256,
            max_cloudstack_calls_per_user: 16,
            large_answers: default_large_answers(),
            large_answer_bytes: 256 * 1024,
        }
    }
}

impl LimitsConfig {
    /// The defaults with the configured weights on top.
    pub fn weights(&self) -> std::collections::HashMap<String, f64> {
        let mut w: std::collections::HashMap<String, f64> =
            DEFAULT_ACTION_WEIGHTS.iter().map(|(a, n)| (a.to_string(), *n)).collect();
        w.extend(self.action_weights.iter().map(|(a, n)| (a.clone(), *n)));
        w
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7080)),
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 120,
            shutdown_grace_secs: 20,
            ready_file: None,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 1024,
            operation_lease_secs: 30,
            tombstones_per_account: 1000,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegionConfig {
    /// The region name this gateway reports (DescribeRegions, availability zones). Default
    /// `us-east-1`: libcloud only accepts names it knows and filters zones by region name.
    pub name: String,
    /// Require SigV4 credential scopes to name `name`. Off by default: clients sign with whatever
    /// region they were configured with (boto 2 even derives it from the host name).
    pub strict: bool,
    /// `host[:port]` clients reach this gateway at, reported as the region's endpoint
    /// (DescribeRegions; boto 2 connects to it). Unset: the `Host` each request was sent to. Set it
    /// behind a proxy whose clients must be sent to a public name.
    pub endpoint: Option<String>,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig { name: "us-east-1".into(), strict: false, endpoint: None }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Allowed difference between the client's signing time and ours (AWS: 15 minutes).
    pub max_skew_secs: u64,
    /// Longest validity a signed request may claim: a SigV2 `Expires` at most this far ahead, a
    /// SigV4 presigned `X-Amz-Expires` at most this long (AWS: one week, 604800).
    pub max_expires_secs: u64,
    /// How long keys learned from CloudStack (admin lookup) are trusted before asking again.
    pub cache_ttl_secs: u64,
    /// How long an access key CloudStack does not know is remembered as unknown.
    pub negative_cache_ttl_secs: u64,
    /// Bound on the number of cached keys.
    pub cache_max_entries: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            max_skew_secs: 900,
            max_expires_secs: 604_800,
            cache_ttl_secs: 300,
            negative_cache_ttl_secs: 30,
            cache_max_entries: 10_000,
        }
    }
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CloudStackConfig {
    /// Full API URL, e.g. `http://cloudstack:8080/client/api`. Unset: the built-in simulator.
    pub endpoint: Option<String>,
    /// Admin keys used only to look up unknown access keys (getUser).
    pub admin_api_key: Option<String>,
    pub admin_secret_key: Option<String>,
    pub call_timeout_secs: u64,
    pub job_timeout_secs: u64,
    /// PEM file of CA certificates trusted for an https:// endpoint (a private CA), in addition to
    /// the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// Probe the endpoint at start-up and log what was found (see docs/operations.md).
    pub probe_at_start: bool,
}

impl Default for CloudStackConfig {
    fn default() -> Self {
        CloudStackConfig {
            endpoint: None,
            admin_api_key: None,
            admin_secret_key: None,
            call_timeout_secs: 30,
            job_timeout_secs: 600,
            ca_bundle: None,
            probe_at_start: true,
        }
    }
}

impl std::fmt::Debug for CloudStackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudStackConfig")
            .field("endpoint", &self.endpoint)
            .field("admin_api_key", &self.admin_api_key)
            .field("admin_secret_key", &self.admin_secret_key.as_ref().map(|_| "<redacted>"))
            .field("call_timeout_secs", &self.call_timeout_secs)
            .field("job_timeout_secs", &self.job_timeout_secs)
            .field("ca_bundle", &self.ca_bundle)
            .field("probe_at_start", &self.probe_at_start)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// Where the embedded simulator listens (loopback; port 0 = any free port).
    pub listen: SocketAddr,
    /// Near-zero job delays (tests) instead of realistic ones.
    pub fast: bool,
    /// Seed file; unset = the built-in seed.
    pub seed: Option<PathBuf>,
    /// Where the simulator keeps its generated demo keys. Unset: `$XDG_DATA_HOME/ec2bridge/sim`
    /// (or `~/.local/share/ec2bridge/sim`); empty: keep them in memory only.
    pub state_dir: Option<PathBuf>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), fast: false, seed: None, state_dir: None }
    }
}

impl SimulatorConfig {
    /// The state directory after applying the defaults described on `state_dir`.
    pub fn effective_state_dir(&self) -> Option<PathBuf> {
        match &self.state_dir {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => data_dir().map(|d| d.join("sim")),
        }
    }
}

/// `$XDG_DATA_HOME/ec2bridge` or `~/.local/share/ec2bridge` (the store's default place too).
pub use crate::base::util::data_dir;

/// `[store]`: registered keys and certificates, the id cache (see `store::StoreConfig`: `url`,
/// `key`, `key_file`). Default: `store.db` + `store.key` in the data directory; `serve` creates
/// both on first start (the key file with mode 0600).
pub use crate::store::StoreConfig;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MappingsConfig {
    /// A directory of `*.toml` mapping files replacing the compiled-in table.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    Float,
}

/// Every key, for environment overrides (`EC2BRIDGE_<SECTION>_<KEY>`). A unit test keeps it in
/// step with the structs.
const KEYS: &[(&str, &str, Kind)] = &[
    ("server", "listen", Kind::Str),
    ("server", "max_body_bytes", Kind::Int),
    ("server", "request_timeout_secs", Kind::Int),
    ("server", "shutdown_grace_secs", Kind::Int),
    ("server", "ready_file", Kind::Str),
    ("server", "header_read_timeout_secs", Kind::Int),
    ("server", "idle_timeout_secs", Kind::Int),
    ("server", "max_connections", Kind::Int),
    ("server", "operation_lease_secs", Kind::Int),
    ("server", "tombstones_per_account", Kind::Int),
    ("server.tls", "listen", Kind::Str),
    ("server.tls", "cert", Kind::Str),
    ("server.tls", "key", Kind::Str),
    ("server.tls", "only", Kind::Bool),
    ("region", "name", Kind::Str),
    ("region", "strict", Kind::Bool),
    ("region", "endpoint", Kind::Str),
    ("auth", "max_skew_secs", Kind::Int),
    ("auth", "max_expires_secs", Kind::Int),
    ("auth", "cache_ttl_secs", Kind::Int),
    ("auth", "negative_cache_ttl_secs", Kind::Int),
    ("auth", "cache_max_entries", Kind::Int),
    ("cloudstack", "endpoint", Kind::Str),
    ("cloudstack", "admin_api_key", Kind::Str),
    ("cloudstack", "admin_secret_key", Kind::Str),
    ("cloudstack", "call_timeout_secs", Kind::Int),
    ("cloudstack", "job_timeout_secs", Kind::Int),
    ("cloudstack", "ca_bundle", Kind::Str),
    ("cloudstack", "probe_at_start", Kind::Bool),
    ("simulator", "listen", Kind::Str),
    ("simulator", "fast", Kind::Bool),
    ("simulator", "seed", Kind::Str),
    ("simulator", "state_dir", Kind::Str),
    ("store", "url", Kind::Str),
    ("store", "key", Kind::Str),
    ("store", "key_file", Kind::Str),
    ("mappings", "dir", Kind::Str),
    ("admin", "listen", Kind::Str),
    ("log", "format", Kind::Str),
    ("log", "access_log", Kind::Bool),
    ("limits", "requests_per_sec", Kind::Float),
    ("limits", "burst", Kind::Float),
    ("limits", "max_cloudstack_calls", Kind::Int),
    ("limits", "max_cloudstack_calls_per_user", Kind::Int),
    ("limits", "large_answers", Kind::Int),
    ("limits", "large_answer_bytes", Kind::Int),
];

/// `limits.action_weights` is a table: set in the file only.
#[cfg(test)]
const TABLE_KEYS: &[(&str, &str)] = &[("limits", "action_weights")];

// Longer names first so that `EC2BRIDGE_SERVER_TLS_CERT` is `[server.tls] cert`.
const SECTIONS: &[&str] = &[
    "server.tls",
    "server",
    "region",
    "auth",
    "cloudstack",
    "simulator",
    "store",
    "mappings",
    "admin",
    "log",
    "limits",
];

impl Config {
    /// File (if any) + the process environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        Self::load_with_env(path, std::env::vars())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                // Checked on its own first so that a mistake in the file is reported with its line.
                if let Err(e) = toml::from_str::<Config>(&text) {
                    bail!("invalid configuration file {}: {e}", p.display());
                }
                text.parse::<toml::Table>().with_context(|| format!("config file {}", p.display()))?
            }
            None => toml::Table::new(),
        };
        let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("EC2BRIDGE_")).collect();
        env.sort();
        for (name, value) in env {
            apply_env(&mut table, &name, &value)?;
        }
        let where_ = path.map(|p| p.display().to_string()).unwrap_or_else(|| "environment".into());
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid configuration ({where_}): {}", e.message()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.region.name.is_empty() || !self.region.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            bail!("region.name must be letters, digits and '-' (got {:?})", self.region.name);
        }
        if let Some(e) = &self.region.endpoint
            && !crate::base::util::valid_host(e)
        {
            bail!("region.endpoint must be host[:port], without scheme or path (got {e:?})");
        }
        if self.server.max_body_bytes == 0 || self.server.request_timeout_secs == 0 {
            bail!("server.max_body_bytes and server.request_timeout_secs must be positive");
        }
        if self.server.header_read_timeout_secs == 0 || self.server.idle_timeout_secs == 0 {
            bail!("server.header_read_timeout_secs and server.idle_timeout_secs must be positive");
        }
        if self.server.max_connections == 0 || self.server.max_connections > (u32::MAX >> 4) as usize {
            bail!("server.max_connections must be between 1 and {}", u32::MAX >> 4);
        }
        self.admin.addr()?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log.format must be \"text\" or \"json\" (got {:?})", self.log.format);
        }
        let l = &self.limits;
        check_rate("limits", l.requests_per_sec, l.burst)?;
        if l.large_answers > 65_536 {
            bail!("limits.large_answers must be at most 65536 (0 = unlimited), got {}", l.large_answers);
        }
        for (action, w) in &l.action_weights {
            if !(w.is_finite() && *w >= 0.0 && *w <= l.burst) {
                bail!("limits.action_weights.{action} must be between 0 and limits.burst ({}), got {w}", l.burst);
            }
        }
        check_cloudstack("cloudstack", &self.cloudstack)?;
        let mut names = vec![self.region.name.as_str()];
        for (i, r) in self.regions.iter().enumerate() {
            let at = format!("regions[{i}]");
            if r.name.is_empty() || !r.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                bail!("{at}.name must be letters, digits and '-' (got {:?})", r.name);
            }
            if names.contains(&r.name.as_str()) {
                bail!("{at}.name: region {:?} is configured twice", r.name);
            }
            names.push(&r.name);
            if let Some(e) = &r.endpoint
                && !crate::base::util::valid_host(e)
            {
                bail!("{at}.endpoint must be host[:port], without scheme or path (got {e:?})");
            }
            if r.endpoint.is_some() && r.endpoint == self.region.endpoint {
                bail!("{at}.endpoint is the default region's endpoint; SigV2 requests could not tell them apart");
            }
            if let Some(e) = &r.endpoint
                && self.regions[..i].iter().any(|o| o.endpoint.as_ref() == Some(e))
            {
                bail!("{at}.endpoint {e:?} is used by two regions");
            }
            check_cloudstack(&format!("{at}.cloudstack"), &r.cloudstack)?;
            if r.requests_per_sec.is_some() || r.burst.is_some() {
                let burst = r.burst.unwrap_or(l.burst);
                check_rate(&at, r.requests_per_sec.unwrap_or(l.requests_per_sec), burst)?;
                if let Some((action, w)) = l.weights().into_iter().find(|(_, w)| *w > burst) {
                    bail!("{at}.burst ({burst}) is below the weight of {action} ({w}): it could never run");
                }
            }
        }
        // Checked here so a typo is reported at start-up, naming the key (never the URL's password).
        crate::store::normalize_url(&self.store.url).map_err(|e| anyhow::anyhow!("store.url: {e}"))?;
        if self.store.key.is_none() && self.store.key_file.as_os_str().is_empty() {
            bail!("store.key_file must not be empty (or set store.key)");
        }
        Ok(())
    }

    /// Every region: the default one (`[region]`, `[cloudstack]`, `[simulator]`, `[limits]`)
    /// first, then `[[regions]]` in file order.
    pub fn all_regions(&self) -> Vec<ExtraRegion> {
        let mut v = vec![ExtraRegion {
            name: self.region.name.clone(),
            endpoint: self.region.endpoint.clone(),
            cloudstack: self.cloudstack.clone(),
            simulator: self.simulator.clone(),
            max_cloudstack_calls: None,
            max_cloudstack_calls_per_user: None,
            requests_per_sec: None,
            burst: None,
        }];
        for r in &self.regions {
            let mut r = r.clone();
            r.simulator.fast |= self.simulator.fast;
            v.push(r);
        }
        for r in &mut v {
            r.max_cloudstack_calls.get_or_insert(self.limits.max_cloudstack_calls);
            r.max_cloudstack_calls_per_user.get_or_insert(self.limits.max_cloudstack_calls_per_user);
            r.requests_per_sec.get_or_insert(self.limits.requests_per_sec);
            r.burst.get_or_insert(self.limits.burst);
        }
        v
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_secs)
    }

    pub fn auth_settings(&self) -> crate::auth::AuthSettings {
        crate::auth::AuthSettings {
            max_skew: Duration::from_secs(self.auth.max_skew_secs),
            max_presign_expires: Duration::from_secs(self.auth.max_expires_secs),
            strict_region: self.region.strict.then(|| self.region.name.clone()),
        }
    }

    pub fn cache_options(&self) -> crate::auth::credentials::CacheOptions {
        crate::auth::credentials::CacheOptions {
            ttl: Duration::from_secs(self.auth.cache_ttl_secs),
            negative_ttl: Duration::from_secs(self.auth.negative_cache_ttl_secs),
            max_entries: self.auth.cache_max_entries.max(1),
        }
    }
}

fn check_rate(at: &str, per_sec: f64, burst: f64) -> anyhow::Result<()> {
    if !(per_sec.is_finite() && per_sec >= 0.0 && burst.is_finite() && burst >= 1.0) {
        bail!("{at}.requests_per_sec must be >= 0 and {at}.burst >= 1");
    }
    Ok(())
}

fn check_cloudstack(at: &str, c: &CloudStackConfig) -> anyhow::Result<()> {
    match (&c.admin_api_key, &c.admin_secret_key) {
        (Some(_), None) | (None, Some(_)) => {
            bail!("{at}.admin_api_key and {at}.admin_secret_key must be set together")
        }
        _ => {}
    }
    if let Some(e) = &c.endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        bail!("{at}.endpoint must be an http:// or https:// URL (got {e:?})");
    }
    Ok(())
}

fn apply_env(table: &mut toml::Table, name: &str, value: &str) -> anyhow::Result<()> {
    let rest = name.trim_start_matches("EC2BRIDGE_").to_ascii_lowercase();
    let Some(section) =
        SECTIONS.iter().find(|s| rest.strip_prefix(&s.replace('.', "_")).is_some_and(|r| r.starts_with('_')))
    else {
        return Ok(());
    };
    let key = &rest[section.len() + 1..];
    let Some((_, _, kind)) = KEYS.iter().find(|(s, k, _)| s == section && *k == key) else {
        bail!("unknown configuration key {section}.{key} (from environment variable {name})");
    };
    let v = match kind {
        Kind::Str => toml::Value::String(value.to_string()),
        Kind::Int => toml::Value::Integer(
            value.trim().parse().with_context(|| format!("{name}: expected an integer, got {value:?}"))?,
        ),
        Kind::Float => toml::Value::Float(
            value.trim().parse().with_context(|| format!("{name}: expected a number, got {value:?}"))?,
        ),
        Kind::Bool => toml::Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => bail!("{name}: expected true or false, got {value:?}"),
        }),
    };
    let mut sec = &mut *table;
    for part in section.split('.') {
        let t = sec.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(t) = t.as_table_mut() else { bail!("config: [{section}] must be a table") };
        sec = t;
    }
    sec.insert(key.to_string(), v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn write(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::new(text)
    }

    /// Minimal temp file helper (no extra dependency).
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new(text: &str) -> Self {
                let p = std::env::temp_dir().join(format!("ec2bridge-cfg-{}.toml", uuid::Uuid::new_v4()));
                std::fs::write(&p, text).unwrap();
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults() {
        let c = Config::load_with_env(None, env(&[("EC2BRIDGE_LOG", "debug"), ("EC2BRIDGE_CONFIG", "x")])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.server.listen.port(), 7080);
        assert_eq!(c.region.name, "us-east-1");
        assert!(c.cloudstack.endpoint.is_none());
    }

    #[test]
    fn file_and_env_overrides() {
        let f = write(
            "[server]\nlisten = \"127.0.0.1:9000\"\nmax_body_bytes = 2048\n[region]\nname = \"zone-a\"\n\
             [cloudstack]\nendpoint = \"http://cs:8080/client/api\"\nadmin_api_key = \"1234\"\nadmin_secret_key = \"s\"\n",
        );
        let c = Config::load_with_env(
            Some(&f.0),
            env(&[
                ("EC2BRIDGE_SERVER_LISTEN", "127.0.0.1:9001"),
                ("EC2BRIDGE_REGION_STRICT", "true"),
                ("EC2BRIDGE_CLOUDSTACK_ADMIN_API_KEY", "0042"),
                ("EC2BRIDGE_SIMULATOR_FAST", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9001);
        assert_eq!(c.server.max_body_bytes, 2048);
        assert_eq!(c.region.name, "zone-a");
        assert!(c.region.strict);
        // A numeric-looking key stays a string.
        assert_eq!(c.cloudstack.admin_api_key.as_deref(), Some("0042"));
        assert!(c.simulator.fast);
        assert_eq!(c.auth_settings().strict_region.as_deref(), Some("zone-a"));
        assert_eq!(c.region.endpoint, None);
        assert!(!format!("{c:?}").contains("admin_secret_key: Some(\"s\")"));
    }

    #[test]
    fn ops_sections_file_and_env() {
        let f = write(
            "[server.tls]\ncert = \"certs/cert.pem\"\nkey = \"certs/key.pem\"\n[log]\nformat = \"json\"\n\
             [limits]\nrequests_per_sec = 2.5\naction_weights = { DescribeInstances = 3 }\n[admin]\nlisten = \"\"\n",
        );
        let c = Config::load_with_env(
            Some(&f.0),
            env(&[("EC2BRIDGE_SERVER_TLS_LISTEN", "127.0.0.1:9443"), ("EC2BRIDGE_LIMITS_BURST", "7")]),
        )
        .unwrap();
        let tls = c.server.tls.as_ref().unwrap();
        assert_eq!((tls.listen.port(), tls.cert.to_str(), tls.only), (9443, Some("certs/cert.pem"), false));
        assert_eq!(c.log.format, "json");
        assert_eq!((c.limits.requests_per_sec, c.limits.burst), (2.5, 7.0));
        assert_eq!(c.limits.weights().get("DescribeInstances"), Some(&3.0));
        assert_eq!(c.limits.weights().get("RunInstances"), Some(&5.0));
        assert_eq!(c.admin.addr().unwrap(), None);
        assert_eq!(Config::default().admin.addr().unwrap().unwrap().to_string(), "127.0.0.1:7081");
        for (k, v) in
            [("EC2BRIDGE_LOG_FORMAT", "xml"), ("EC2BRIDGE_LIMITS_BURST", "0"), ("EC2BRIDGE_ADMIN_LISTEN", "x")]
        {
            let e = Config::load_with_env(None, env(&[(k, v)])).unwrap_err().to_string();
            assert!(e.contains(&k[10..].to_ascii_lowercase().replacen('_', ".", 1)), "{k}: {e}");
        }
    }

    #[test]
    fn region_endpoint_is_a_host() {
        let c = Config::load_with_env(None, env(&[("EC2BRIDGE_REGION_ENDPOINT", "ec2.example.org:443")])).unwrap();
        assert_eq!(c.region.endpoint.as_deref(), Some("ec2.example.org:443"));
        for bad in ["http://ec2.example.org", "ec2.example.org/api", ""] {
            let e = Config::load_with_env(None, env(&[("EC2BRIDGE_REGION_ENDPOINT", bad)])).unwrap_err().to_string();
            assert!(e.contains("region.endpoint"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let f = write("[server]\nlisten = \"127.0.0.1:9000\"\nlisen = 1\n");
        let e = Config::load_with_env(Some(&f.0), env(&[])).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
        let f = write("[serverr]\n");
        let e = Config::load_with_env(Some(&f.0), env(&[])).unwrap_err().to_string();
        assert!(e.contains("serverr"), "{e}");
        let e = Config::load_with_env(None, env(&[("EC2BRIDGE_SERVER_LISTN", "x")])).unwrap_err().to_string();
        assert!(e.contains("server.listn") && e.contains("EC2BRIDGE_SERVER_LISTN"), "{e}");
        let e = Config::load_with_env(None, env(&[("EC2BRIDGE_AUTH_MAX_SKEW_SECS", "soon")])).unwrap_err().to_string();
        assert!(e.contains("EC2BRIDGE_AUTH_MAX_SKEW_SECS"), "{e}");
        let e = Config::load_with_env(None, env(&[("EC2BRIDGE_SERVER_LISTEN", "nowhere")])).unwrap_err().to_string();
        assert!(e.contains("listen") || e.contains("address"), "{e}");
        let e = Config::load_with_env(None, env(&[("EC2BRIDGE_CLOUDSTACK_ADMIN_API_KEY", "k")])).unwrap_err();
        assert!(e.to_string().contains("together"));
    }

    #[test]
    fn store_section_file_and_env() {
        let d = Config::default();
        assert!(d.store.url.starts_with("sqlite://") && d.store.url.ends_with("store.db"), "{}", d.store.url);
        assert!(d.store.key_file.ends_with("store.key") && d.store.key.is_none());
        let f = write("[store]\nurl = \"sqlite:///var/lib/e/s.db\"\nkey_file = \"/var/lib/e/k\"\n");
        let c = Config::load_with_env(Some(&f.0), env(&[])).unwrap();
        assert_eq!(
            (c.store.url.as_str(), c.store.key_file.to_str()),
            ("sqlite:///var/lib/e/s.db", Some("/var/lib/e/k"))
        );
        let c = Config::load_with_env(
            Some(&f.0),
            env(&[
                ("EC2BRIDGE_STORE_URL", "postgres://u:pw@db/ec2"),
                ("EC2BRIDGE_STORE_KEY", "a2V5"),
                ("EC2BRIDGE_STORE_KEY_FILE", "/k2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.store.url, "postgres://u:pw@db/ec2");
        assert_eq!(c.store.key.as_deref(), Some("a2V5"));
        assert_eq!(c.store.key_file.to_str(), Some("/k2"));
        assert!(matches!(c.store.key_source(), crate::store::KeySource::Base64(_)));
        // A bad URL is refused at load time, naming the key and hiding the password.
        let e = Config::load_with_env(None, env(&[("EC2BRIDGE_STORE_URL", "mysql://u:hunter2@h/db")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.url") && !e.contains("hunter2"), "{e}");
        let e = Config::load_with_env(None, env(&[("EC2BRIDGE_STORE_KEYFILE", "x")])).unwrap_err().to_string();
        assert!(e.contains("store.keyfile"), "{e}");
        let f = write("[store]\nkey_file = \"\"\n");
        assert!(Config::load_with_env(Some(&f.0), env(&[])).unwrap_err().to_string().contains("key_file"));
    }

    #[test]
    fn several_regions() {
        let f = write(
            "[region]\nname = \"us-east-1\"\n[limits]\nmax_cloudstack_calls = 7\n\
             [[regions]]\nname = \"eu-west-1\"\nendpoint = \"eu.example.test:7080\"\nmax_cloudstack_calls_per_user = 3\n\
             requests_per_sec = 2.0\nburst = 10.0\n\
             [regions.cloudstack]\nendpoint = \"https://cs-eu.example.test/client/api\"\nca_bundle = \"ca.pem\"\n\
             [[regions]]\nname = \"ap-1\"\n[regions.simulator]\nstate_dir = \"\"\n",
        );
        let c = Config::load_with_env(Some(&f.0), env(&[("EC2BRIDGE_SIMULATOR_FAST", "1")])).unwrap();
        let all = c.all_regions();
        assert_eq!(all.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["us-east-1", "eu-west-1", "ap-1"]);
        assert_eq!(all[1].cloudstack.ca_bundle.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!((all[1].max_cloudstack_calls, all[1].max_cloudstack_calls_per_user), (Some(7), Some(3)));
        assert_eq!((all[1].requests_per_sec, all[1].burst), (Some(2.0), Some(10.0)));
        assert_eq!((all[2].requests_per_sec, all[2].burst), (Some(20.0), Some(100.0)));
        assert!(all[2].simulator.fast && all[2].cloudstack.endpoint.is_none());
        // Single-region configs are unchanged: no [[regions]], one region.
        assert_eq!(Config::default().all_regions().len(), 1);
        for (bad, why) in [
            ("[[regions]]\nname = \"us-east-1\"\n", "twice"),
            ("[[regions]]\nname = \"a b\"\n", "letters"),
            ("[[regions]]\nname = \"r\"\nendpoint = \"http://x/\"\n", "host[:port]"),
            ("[[regions]]\nname = \"r\"\n[regions.cloudstack]\nadmin_api_key = \"a\"\n", "set together"),
            ("[[regions]]\nname = \"r\"\n[regions.cloudstack]\nendpoint = \"cs:8080\"\n", "http://"),
            (
                "[[regions]]\nname = \"r\"\nendpoint = \"e:1\"\n[[regions]]\nname = \"s\"\nendpoint = \"e:1\"\n",
                "two regions",
            ),
            ("[[regions]]\nname = \"r\"\nzones = []\n", "unknown field"),
            ("[[regions]]\nname = \"r\"\nburst = 0.5\n", "regions[0].burst >= 1"),
            ("[[regions]]\nname = \"r\"\nrequests_per_sec = -1.0\n", "regions[0].requests_per_sec"),
            ("[[regions]]\nname = \"r\"\nburst = 3.0\n", "weight of"),
        ] {
            let f = write(bad);
            let e = format!("{:#}", Config::load_with_env(Some(&f.0), env(&[])).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_table_matches_structs() {
        // Every listed key is accepted...
        for (s, k, kind) in KEYS {
            let v = match kind {
                Kind::Str if *k == "listen" => "\"127.0.0.1:1\"".to_string(),
                Kind::Str if *k == "endpoint" => "\"http://x/client/api\"".to_string(),
                Kind::Str => "\"x\"".to_string(),
                Kind::Int => "5".to_string(),
                Kind::Float => "5.0".to_string(),
                Kind::Bool => "true".to_string(),
            };
            let mut text = format!("[{s}]\n{k} = {v}\n");
            if *s == "server.tls" {
                text = format!("[server.tls]\ncert = \"c\"\nkey = \"k\"\n{k} = {v}\n");
                if *k == "cert" || *k == "key" {
                    text = "[server.tls]\ncert = \"c\"\nkey = \"k\"\n".into();
                }
            }
            if k.starts_with("admin_") {
                text = "[cloudstack]\nadmin_api_key = \"a\"\nadmin_secret_key = \"b\"\n".into();
            }
            let t: toml::Table = text.parse().unwrap();
            let r: Result<Config, _> = toml::Value::Table(t).try_into();
            assert!(r.is_ok(), "{s}.{k}: {r:?}");
        }
        // ...and every key of a fully populated config is listed.
        let mut c = Config::default();
        c.server.ready_file = Some("r".into());
        c.region.endpoint = Some("h".into());
        c.cloudstack = CloudStackConfig {
            endpoint: Some("e".into()),
            admin_api_key: Some("a".into()),
            admin_secret_key: Some("b".into()),
            ..Default::default()
        };
        c.simulator.seed = Some("s".into());
        c.simulator.state_dir = Some("d".into());
        c.store = StoreConfig { url: "u".into(), key: Some("k".into()), key_file: "f".into() };
        c.mappings.dir = Some("m".into());
        c.cloudstack.ca_bundle = Some("ca".into());
        c.server.tls =
            Some(TlsConfig { listen: TlsConfig::default_listen(), cert: "c".into(), key: "k".into(), only: false });
        let v = toml::Value::try_from(&c).unwrap();
        let mut n = 0;
        fn walk(prefix: &str, t: &toml::Table, n: &mut usize) {
            for (k, v) in t {
                if TABLE_KEYS.iter().any(|(a, b)| *a == prefix && b == k) {
                    continue;
                }
                if let Some(sub) = v.as_table() {
                    walk(&format!("{prefix}.{k}"), sub, n);
                    continue;
                }
                assert!(KEYS.iter().any(|(a, b, _)| *a == prefix && b == k), "{prefix}.{k} missing from KEYS");
                *n += 1;
            }
        }
        for (s, sec) in v.as_table().unwrap() {
            walk(s, sec.as_table().unwrap(), &mut n);
        }
        assert_eq!(n, KEYS.len());
    }
}
