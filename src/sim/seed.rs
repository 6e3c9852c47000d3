//! The seed file (TOML; `seeds/default.toml` is built in, `docs/simulator.md` documents every
//! field): settings and job delays, fault rules, domains, accounts and users (keys optional:
//! generated at first start and kept in the state directory), zones, OS types, offerings,
//! templates, key pairs, and an optional `[generate]` block that creates many VMs for scale tests.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::faults::{FaultRule, Faults};
use super::model::*;
use super::render::now_str;

pub const DEFAULT_SEED: &str = include_str!("../../seeds/default.toml");

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub settings: Settings,
    /// Realistic job delays in ms, `command = [min, max]` (or a single number).
    #[serde(default)]
    pub delays: BTreeMap<String, DelaySpec>,
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    #[serde(default)]
    pub domains: Vec<SeedDomain>,
    #[serde(default)]
    pub accounts: Vec<SeedAccount>,
    #[serde(default)]
    pub zones: Vec<SeedZone>,
    #[serde(default)]
    pub os_types: Vec<SeedOsType>,
    #[serde(default)]
    pub service_offerings: Vec<SeedServiceOffering>,
    #[serde(default)]
    pub disk_offerings: Vec<SeedDiskOffering>,
    #[serde(default)]
    pub templates: Vec<SeedTemplate>,
    #[serde(default)]
    pub keypairs: Vec<SeedKeyPair>,
    pub generate: Option<Generate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DelaySpec {
    Fixed(u64),
    Range([u64; 2]),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Default per-account VM limit for user accounts (-1 = unlimited).
    pub default_vm_limit: i64,
    pub default_ip_limit: i64,
    /// Isolated networks / VPC tiers per user account (CloudStack's max.account.networks).
    pub default_network_limit: i64,
    /// VPCs per user account (max.account.vpcs).
    pub default_vpc_limit: i64,
    /// Delay of every job step in fast mode.
    pub fast_job_delay_ms: u64,
    /// Destroyed -> Expunging -> gone.
    pub expunge_delay_ms: u64,
    pub fast_expunge_delay_ms: u64,
    /// Job delay when a command has no `[delays]` entry.
    pub default_job_delay_ms: [u64; 2],
    /// registerTemplate: isready=false for this long.
    pub template_download_ms: u64,
    /// allow.user.expunge.recover.vm: may non-admins pass expunge=true / call expungeVirtualMachine.
    pub allow_user_expunge: bool,
    /// allow.user.view.destroyed.vm.
    pub allow_user_view_destroyed_vm: bool,
    /// The version listCapabilities reports.
    pub cloudstack_version: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_vm_limit: 20,
            default_ip_limit: 20,
            default_network_limit: 20,
            default_vpc_limit: 20,
            fast_job_delay_ms: 5,
            expunge_delay_ms: 30_000,
            fast_expunge_delay_ms: 1_000,
            default_job_delay_ms: [300, 800],
            template_download_ms: 5_000,
            allow_user_expunge: false,
            allow_user_view_destroyed_vm: false,
            cloudstack_version: "4.19.0.0".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDomain {
    pub name: String,
    pub id: Option<String>,
    /// Parent domain name (default ROOT).
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAccount {
    pub name: String,
    pub id: Option<String>,
    /// Domain name (default ROOT).
    pub domain: Option<String>,
    /// `user` (default), `admin` (root admin) or `domain-admin`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub vm_limit: Option<i64>,
    pub ip_limit: Option<i64>,
    pub network_limit: Option<i64>,
    pub vpc_limit: Option<i64>,
    pub state: Option<String>,
    #[serde(default)]
    pub users: Vec<SeedUser>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub username: String,
    pub id: Option<String>,
    pub api_key: Option<String>,
    pub secret_key: Option<String>,
    pub email: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedZone {
    pub name: String,
    pub id: Option<String>,
    pub description: Option<String>,
    /// `Basic` or `Advanced` (default Advanced).
    pub networktype: Option<String>,
    pub securitygroupsenabled: Option<bool>,
    /// `Enabled` (default) or `Disabled`.
    pub allocationstate: Option<String>,
    /// Guest network, e.g. `10.1.0.0/16`.
    pub guest_cidr: Option<String>,
    /// Public IP pool, `first-last` (same /24 or wider).
    pub public_ips: Option<String>,
    pub network_id: Option<String>,
    /// How many VMs fit before deploy fails with 533 (default unlimited).
    pub capacity_vms: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOsType {
    pub description: String,
    pub id: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedServiceOffering {
    pub name: String,
    pub id: Option<String>,
    pub displaytext: Option<String>,
    pub cpu: i64,
    /// MHz (default 2000).
    pub cpuspeed: Option<i64>,
    /// MB.
    pub memory: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDiskOffering {
    pub name: String,
    pub id: Option<String>,
    pub displaytext: Option<String>,
    /// GB (0 with `customized = true`).
    #[serde(default)]
    pub size_gb: i64,
    #[serde(default)]
    pub customized: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedTemplate {
    pub name: String,
    pub id: Option<String>,
    pub displaytext: Option<String>,
    /// An OS type description from `os_types`.
    pub ostype: String,
    #[serde(default)]
    pub passwordenabled: bool,
    #[serde(default = "yes")]
    pub sshkeyenabled: bool,
    #[serde(default = "yes")]
    pub public: bool,
    #[serde(default = "yes")]
    pub featured: bool,
    #[serde(default = "yes")]
    pub ready: bool,
    /// Owner account name (default: the first root admin account).
    pub owner: Option<String>,
    /// Zone names; empty = every zone (cross-zone).
    #[serde(default)]
    pub zones: Vec<String>,
    pub size_gb: Option<i64>,
    pub format: Option<String>,
    pub hypervisor: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedKeyPair {
    pub account: String,
    pub name: String,
    /// OpenSSH one-line public key.
    pub public_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Number of Running VMs to create (each with a ROOT volume and a NIC).
    pub vms: usize,
    /// Account names to spread them over (default: every user account).
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// Settings the running simulator consults (from the seed plus `fast`).
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub fast: bool,
    pub settings: Settings,
    pub delays: BTreeMap<String, (u64, u64)>,
    pub faults: Faults,
}

impl SimConfig {
    /// How long a job of `command` stays pending.
    pub fn job_delay(&self, command: &str) -> Duration {
        if self.fast {
            return Duration::from_millis(self.settings.fast_job_delay_ms);
        }
        let [dlo, dhi] = self.settings.default_job_delay_ms;
        let (lo, hi) = self.delays.get(command).copied().unwrap_or((dlo, dhi));
        let ms = if hi > lo { rand::rng().random_range(lo..=hi) } else { lo };
        Duration::from_millis(ms)
    }

    pub fn expunge_delay(&self) -> Duration {
        Duration::from_millis(if self.fast {
            self.settings.fast_expunge_delay_ms
        } else {
            self.settings.expunge_delay_ms
        })
    }

    pub fn template_download(&self) -> Duration {
        if self.fast {
            Duration::from_millis(self.settings.fast_job_delay_ms)
        } else {
            Duration::from_millis(self.settings.template_download_ms)
        }
    }
}

/// Largest template or disk size a seed may declare (1 PiB): byte sizes stay far inside i64.
const MAX_SIZE_GB: i64 = 1 << 20;
/// Upper bound of `[generate] vms`: a typo must not exhaust memory.
const MAX_GENERATED_VMS: usize = 1_000_000;

pub fn parse_seed(text: &str) -> anyhow::Result<Seed> {
    let seed: Seed = toml::from_str(text).context("seed file is not valid")?;
    Ok(seed)
}

/// The seed of one more simulated region (see `sim::start_region`): fixed uuids (`id` and
/// `*_id` keys) derived from the region name and the old uuid, zone names prefixed with
/// `<region>-` wherever they appear as a whole string value.
pub fn for_region(text: &str, region: &str) -> anyhow::Result<String> {
    let mut t: toml::Table = text.parse().context("seed file is not valid")?;
    let zones: Vec<String> = t
        .get("zones")
        .and_then(|z| z.as_array())
        .map(|a| a.iter().filter_map(|z| z.get("name")?.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    fn walk(v: &mut toml::Value, key: &str, region: &str, zones: &[String]) {
        match v {
            toml::Value::String(s) => {
                if (key == "id" || key.ends_with("_id")) && uuid::Uuid::parse_str(s).is_ok() {
                    let d = <sha2::Sha256 as sha2::Digest>::digest(format!("{region}:{s}").as_bytes());
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&d[..16]);
                    *s = uuid::Builder::from_random_bytes(b).into_uuid().to_string();
                } else if zones.iter().any(|z| z == s) {
                    *s = format!("{region}-{s}");
                }
            }
            toml::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, key, region, zones)),
            toml::Value::Table(t) => t.iter_mut().for_each(|(k, x)| walk(x, k, region, zones)),
            _ => {}
        }
    }
    for (k, v) in t.iter_mut() {
        walk(v, k, region, &zones);
    }
    Ok(toml::to_string(&t)?)
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A CloudStack-style key: 64 random bytes, base64url without padding (86 characters).
pub fn generate_key() -> String {
    let mut b = [0u8; 64];
    rand::rng().fill(&mut b[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKeys {
    api_key: String,
    secret_key: String,
}

const KEYS_FILE: &str = "sim-keys.json";

/// Keys for seeded users that have none in the seed: read from `state_dir`, else generated (and
/// written back there, owner-only).
fn load_or_make_keys(seed: &Seed, state_dir: Option<&Path>) -> anyhow::Result<HashMap<String, (String, String)>> {
    let mut stored: BTreeMap<String, StoredKeys> = BTreeMap::new();
    let path = state_dir.map(|d| d.join(KEYS_FILE));
    if let Some(p) = &path
        && p.exists()
    {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        stored = serde_json::from_str(&text).with_context(|| format!("{} is not valid", p.display()))?;
    }
    let mut out = HashMap::new();
    let mut changed = false;
    for a in &seed.accounts {
        for u in &a.users {
            let k = format!("{}/{}", a.name, u.username);
            let keys = match (&u.api_key, &u.secret_key) {
                (Some(ak), Some(sk)) => (ak.clone(), sk.clone()),
                (None, None) => {
                    let s = stored.entry(k.clone()).or_insert_with(|| {
                        changed = true;
                        StoredKeys { api_key: generate_key(), secret_key: generate_key() }
                    });
                    (s.api_key.clone(), s.secret_key.clone())
                }
                _ => bail!("user {k}: give both api_key and secret_key, or neither"),
            };
            out.insert(k, keys);
        }
    }
    if changed && let (Some(p), Some(dir)) = (&path, state_dir) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&stored)?)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(&tmp, p)?;
    }
    Ok(out)
}

fn parse_cidr(s: &str) -> anyhow::Result<Cidr> {
    let c = Cidr::parse(s).context("guest_cidr must look like 10.1.0.0/16")?;
    ensure!((8..=29).contains(&c.prefix), "guest_cidr prefix must be 8..29");
    Ok(c)
}

fn parse_pool(s: &str) -> anyhow::Result<Vec<String>> {
    let (a, b) = s.split_once('-').context("public_ips must look like 203.0.113.10-203.0.113.250")?;
    let a: std::net::Ipv4Addr = a.trim().parse().context("public_ips first address")?;
    let b: std::net::Ipv4Addr = b.trim().parse().context("public_ips last address")?;
    let (a, b) = (u32::from(a), u32::from(b));
    ensure!(a <= b && b - a < 65536, "public_ips range must be ascending and at most 65536 addresses");
    Ok((a..=b).map(|n| std::net::Ipv4Addr::from(n).to_string()).collect())
}

fn account_kind(s: Option<&str>) -> anyhow::Result<u8> {
    Ok(match s.unwrap_or("user") {
        "user" => ACCOUNT_USER,
        "admin" => ACCOUNT_ROOT_ADMIN,
        "domain-admin" => ACCOUNT_DOMAIN_ADMIN,
        other => bail!("account type must be user, admin or domain-admin, not {other:?}"),
    })
}

/// Names seen so far while building, for the references later sections make.
#[derive(Default)]
struct Names {
    domains: HashMap<String, u64>,
    accounts: HashMap<String, u64>,
    zones: HashMap<String, u64>,
    os_types: HashMap<String, u64>,
    /// The first root admin account (owner of shared networks and default templates).
    admin: u64,
}

/// Build the model and config from a seed, one section at a time.
pub fn build(seed: &Seed, fast: bool, state_dir: Option<&Path>) -> anyhow::Result<(Model, SimConfig)> {
    let cfg = config_of(seed, fast)?;
    let keys = load_or_make_keys(seed, state_dir)?;
    let now = now_str();
    let mut m = Model::default();
    let mut names = Names::default();
    seed_domains(&mut m, seed, &now, &mut names)?;
    seed_accounts(&mut m, seed, &keys, &now, &mut names)?;
    super::offerings::install(&mut m, &now);
    seed_zones(&mut m, seed, &now, &mut names)?;
    seed_catalogue(&mut m, seed, &now, &mut names)?;
    seed_templates(&mut m, seed, &now, &names)?;
    seed_keypairs(&mut m, seed, &names)?;
    if let Some(g) = &seed.generate {
        generate_vms(&mut m, g, &names.accounts)?;
    }
    Ok((m, cfg))
}

/// Settings, job delays and fault rules (validated).
fn config_of(seed: &Seed, fast: bool) -> anyhow::Result<SimConfig> {
    let faults = Faults { rules: seed.faults.clone() };
    faults.validate()?;
    let mut delays = BTreeMap::new();
    for (cmd, d) in &seed.delays {
        let (lo, hi) = match d {
            DelaySpec::Fixed(v) => (*v, *v),
            DelaySpec::Range([a, b]) => (*a.min(b), *a.max(b)),
        };
        delays.insert(cmd.clone(), (lo, hi));
    }
    Ok(SimConfig { fast, settings: seed.settings.clone(), delays, faults })
}

/// ROOT (always) and the seed's domains, parents first.
fn seed_domains(m: &mut Model, seed: &Seed, now: &str, names: &mut Names) -> anyhow::Result<()> {
    let root = m.next_seq();
    m.domains.insert(
        root,
        Domain {
            id: seed.domains.iter().find(|d| d.name == "ROOT").and_then(|d| d.id.clone()).unwrap_or_else(new_uuid),
            name: "ROOT".into(),
            path: "ROOT".into(),
            parent: None,
            created: now.to_string(),
        },
    );
    names.domains.insert("ROOT".to_string(), root);
    for d in seed.domains.iter().filter(|d| d.name != "ROOT") {
        ensure!(!names.domains.contains_key(&d.name), "domain {} defined twice", d.name);
        let parent_name = d.parent.as_deref().unwrap_or("ROOT");
        let parent = *names
            .domains
            .get(parent_name)
            .with_context(|| format!("domain {}: unknown parent {parent_name} (define parents first)", d.name))?;
        let path = format!("{}/{}", m.domain(parent).path, d.name);
        let s = m.next_seq();
        m.domains.insert(
            s,
            Domain {
                id: d.id.clone().unwrap_or_else(new_uuid),
                name: d.name.clone(),
                path,
                parent: Some(parent),
                created: now.to_string(),
            },
        );
        names.domains.insert(d.name.clone(), s);
    }
    Ok(())
}

/// Accounts with their users and `default` security group; at least one root admin.
fn seed_accounts(
    m: &mut Model,
    seed: &Seed,
    keys: &HashMap<String, (String, String)>,
    now: &str,
    names: &mut Names,
) -> anyhow::Result<()> {
    let st = &seed.settings;
    for a in &seed.accounts {
        let domain_name = a.domain.as_deref().unwrap_or("ROOT");
        let domain = *names
            .domains
            .get(domain_name)
            .with_context(|| format!("account {}: unknown domain {domain_name}", a.name))?;
        ensure!(
            !names.accounts.contains_key(&a.name),
            "account {} defined twice (names are unique in this simulator)",
            a.name
        );
        let kind = account_kind(a.kind.as_deref())?;
        let s = m.next_seq();
        let unlimited = kind != ACCOUNT_USER;
        let limit = |given: Option<i64>, default: i64| given.unwrap_or(if unlimited { -1 } else { default });
        m.accounts.insert(
            s,
            Account {
                id: a.id.clone().unwrap_or_else(new_uuid),
                name: a.name.clone(),
                domain,
                kind,
                state: a.state.clone().unwrap_or_else(|| "enabled".into()),
                vm_limit: limit(a.vm_limit, st.default_vm_limit),
                ip_limit: limit(a.ip_limit, st.default_ip_limit),
                network_limit: limit(a.network_limit, st.default_network_limit),
                vpc_limit: limit(a.vpc_limit, st.default_vpc_limit),
                volume_limit: limit(None, 40),
                snapshot_limit: limit(None, 40),
                template_limit: limit(None, 40),
                created: now.to_string(),
            },
        );
        names.accounts.insert(a.name.clone(), s);
        for u in &a.users {
            let (api_key, secret_key) = keys[&format!("{}/{}", a.name, u.username)].clone();
            ensure!(!m.api_keys.contains_key(&api_key), "api key of {}/{} is not unique", a.name, u.username);
            let us = m.next_seq();
            m.api_keys.insert(api_key.clone(), us);
            m.users.insert(
                us,
                User {
                    id: u.id.clone().unwrap_or_else(new_uuid),
                    username: u.username.clone(),
                    account: s,
                    api_key,
                    secret_key,
                    firstname: u.username.clone(),
                    lastname: a.name.clone(),
                    email: u.email.clone().unwrap_or_else(|| format!("{}@example.com", u.username)),
                    state: u.state.clone().unwrap_or_else(|| "enabled".into()),
                    created: now.to_string(),
                },
            );
        }
        let sg = m.next_seq();
        m.security_groups.insert(
            sg,
            SecurityGroup {
                id: new_uuid(),
                name: "default".into(),
                description: "Default Security Group".into(),
                owner: s,
                ingress: Vec::new(),
                egress: Vec::new(),
                tags: Vec::new(),
            },
        );
    }
    names.admin = m
        .accounts
        .find(|a| a.kind == ACCOUNT_ROOT_ADMIN)
        .map(|(s, _)| s)
        .context("the seed needs at least one account with type = \"admin\"")?;
    Ok(())
}

/// Zones. A security-group zone gets its shared guest network (`guest_cidr`, default
/// 10.N.0.0/16); an Advanced zone without security groups gets none: `guest_cidr` (default
/// 10.1.1.0/24, CloudStack's `guest.network.cidr`) is what isolated networks get by default.
fn seed_zones(m: &mut Model, seed: &Seed, now: &str, names: &mut Names) -> anyhow::Result<()> {
    let sg_offering = m
        .network_offerings
        .find(|o| o.name == super::offerings::SHARED_SG)
        .map(|(s, _)| s)
        .context("built-in shared network offering")?;
    for (i, z) in seed.zones.iter().enumerate() {
        let networktype = z.networktype.clone().unwrap_or_else(|| "Advanced".into());
        ensure!(
            networktype == "Basic" || networktype == "Advanced",
            "zone {}: networktype must be Basic or Advanced",
            z.name
        );
        let sg = z.securitygroupsenabled.unwrap_or(true);
        ensure!(sg || networktype == "Advanced", "zone {}: a Basic zone has security groups", z.name);
        ensure!(
            sg || z.network_id.is_none(),
            "zone {}: network_id names the shared network of a security-group zone",
            z.name
        );
        let default_cidr = if sg { format!("10.{}.0.0/16", i + 1) } else { "10.1.1.0/24".to_string() };
        let cidr = parse_cidr(z.guest_cidr.as_deref().unwrap_or(&default_cidr))?;
        let pool =
            parse_pool(z.public_ips.as_deref().unwrap_or(&format!("198.51.{}.10-198.51.{}.250", 100 + i, 100 + i)))?;
        let s = m.next_seq();
        m.zones.insert(
            s,
            Zone {
                id: z.id.clone().unwrap_or_else(new_uuid),
                name: z.name.clone(),
                description: z.description.clone().unwrap_or_else(|| format!("Simulated zone {}", z.name)),
                networktype,
                securitygroupsenabled: sg,
                allocationstate: z.allocationstate.clone().unwrap_or_else(|| "Enabled".into()),
                dns1: "8.8.8.8".into(),
                internaldns1: "10.0.0.2".into(),
                localstorageenabled: false,
                shared_network: None,
                guest_cidr: cidr,
                public_pool: pool,
                vlan_id: new_uuid(),
                capacity_vms: z.capacity_vms.unwrap_or(-1),
            },
        );
        ensure!(names.zones.insert(z.name.clone(), s).is_none(), "zone {} defined twice", z.name);
        if sg {
            let n = m.next_seq();
            m.networks.insert(
                n,
                Network {
                    id: z.network_id.clone().unwrap_or_else(new_uuid),
                    name: format!("guestNetworkFor{}", z.name),
                    displaytext: format!("guestNetworkFor{}", z.name),
                    owner: names.admin,
                    zone: s,
                    offering: sg_offering,
                    shared: true,
                    vpc: None,
                    cidr,
                    gateway: Cidr::addr(cidr.base + 1),
                    state: "Setup",
                    acl: None,
                    networkdomain: "cs1cloud.internal".into(),
                    next_host: 0,
                    restart_required: false,
                    display: true,
                    vlan: None,
                    created: now.to_string(),
                    tags: Vec::new(),
                },
            );
            m.zones.get_mut(s).context("zone just inserted")?.shared_network = Some(n);
        }
    }
    ensure!(!names.zones.is_empty(), "the seed needs at least one zone");
    Ok(())
}

/// OS types, service offerings and disk offerings.
fn seed_catalogue(m: &mut Model, seed: &Seed, now: &str, names: &mut Names) -> anyhow::Result<()> {
    let mut category_ids: HashMap<String, String> = HashMap::new();
    for o in &seed.os_types {
        let s = m.next_seq();
        let cat = o.category.clone().unwrap_or_else(|| "Other".into());
        let category_id = category_ids.entry(cat.clone()).or_insert_with(new_uuid).clone();
        m.os_types.insert(
            s,
            OsType {
                id: o.id.clone().unwrap_or_else(new_uuid),
                description: o.description.clone(),
                category_id,
                category_name: cat,
            },
        );
        names.os_types.insert(o.description.clone(), s);
    }
    for so in &seed.service_offerings {
        ensure!(so.cpu > 0 && so.memory > 0, "service offering {}: cpu and memory must be positive", so.name);
        let s = m.next_seq();
        m.service_offerings.insert(
            s,
            ServiceOffering {
                id: so.id.clone().unwrap_or_else(new_uuid),
                name: so.name.clone(),
                displaytext: so
                    .displaytext
                    .clone()
                    .unwrap_or_else(|| format!("{} ({} vCPU, {} MB)", so.name, so.cpu, so.memory)),
                cpunumber: so.cpu,
                cpuspeed: so.cpuspeed.unwrap_or(2000),
                memory: so.memory,
                storagetype: "shared".into(),
                offerha: false,
                created: now.to_string(),
            },
        );
    }
    for d in &seed.disk_offerings {
        ensure!(d.customized || d.size_gb > 0, "disk offering {}: size_gb must be positive unless customized", d.name);
        ensure!(d.size_gb <= MAX_SIZE_GB, "disk offering {}: size_gb must be at most {MAX_SIZE_GB}", d.name);
        let s = m.next_seq();
        m.disk_offerings.insert(
            s,
            DiskOffering {
                id: d.id.clone().unwrap_or_else(new_uuid),
                name: d.name.clone(),
                displaytext: d.displaytext.clone().unwrap_or_else(|| d.name.clone()),
                disksize: if d.customized { 0 } else { d.size_gb },
                iscustomized: d.customized,
                storagetype: "shared".into(),
                created: now.to_string(),
            },
        );
    }
    Ok(())
}

fn seed_templates(m: &mut Model, seed: &Seed, now: &str, names: &Names) -> anyhow::Result<()> {
    for t in &seed.templates {
        let size_gb = t.size_gb.unwrap_or(10);
        ensure!((0..=MAX_SIZE_GB).contains(&size_gb), "template {}: size_gb must be 0..{MAX_SIZE_GB}", t.name);
        let ostype = *names
            .os_types
            .get(&t.ostype)
            .with_context(|| format!("template {}: unknown ostype {}", t.name, t.ostype))?;
        let owner = match &t.owner {
            Some(o) => *names.accounts.get(o).with_context(|| format!("template {}: unknown owner {o}", t.name))?,
            None => names.admin,
        };
        let zones: Vec<u64> = if t.zones.is_empty() {
            m.zones.iter().map(|(s, _)| s).collect()
        } else {
            t.zones
                .iter()
                .map(|z| names.zones.get(z).copied().with_context(|| format!("template {}: unknown zone {z}", t.name)))
                .collect::<anyhow::Result<_>>()?
        };
        let s = m.next_seq();
        m.templates.insert(
            s,
            Template {
                id: t.id.clone().unwrap_or_else(new_uuid),
                name: t.name.clone(),
                displaytext: t.displaytext.clone().unwrap_or_else(|| t.name.clone()),
                owner,
                ispublic: t.public,
                isfeatured: t.featured,
                isextractable: false,
                passwordenabled: t.passwordenabled,
                sshkeyenabled: t.sshkeyenabled,
                isdynamicallyscalable: false,
                format: t.format.clone().unwrap_or_else(|| "QCOW2".into()),
                ostype,
                hypervisor: t.hypervisor.clone().unwrap_or_else(|| "KVM".into()),
                size: size_gb << 30,
                templatetype: "USER".into(),
                cross_zones: t.zones.is_empty(),
                zones,
                ready: t.ready,
                status: if t.ready { "Download Complete".into() } else { "Processing".into() },
                created: now.to_string(),
                bootable: true,
                checksum: None,
                source_template: None,
                shared_with: Vec::new(),
                tags: Vec::new(),
            },
        );
    }
    Ok(())
}

fn seed_keypairs(m: &mut Model, seed: &Seed, names: &Names) -> anyhow::Result<()> {
    for k in &seed.keypairs {
        let owner = *names
            .accounts
            .get(&k.account)
            .with_context(|| format!("keypair {}: unknown account {}", k.name, k.account))?;
        let fingerprint = super::keys::fingerprint(&k.public_key)
            .with_context(|| format!("keypair {}: public key is invalid", k.name))?;
        let s = m.next_seq();
        m.keypairs.insert(
            s,
            KeyPair {
                id: new_uuid(),
                name: k.name.clone(),
                owner,
                fingerprint,
                public_key: k.public_key.trim().to_string(),
            },
        );
    }
    Ok(())
}

/// Bulk-create Running VMs (with ROOT volume and NIC) for scale tests.
fn generate_vms(m: &mut Model, g: &Generate, account_by_name: &HashMap<String, u64>) -> anyhow::Result<()> {
    let owners: Vec<u64> = if g.accounts.is_empty() {
        m.accounts.iter().filter(|(_, a)| a.kind == ACCOUNT_USER).map(|(s, _)| s).collect()
    } else {
        g.accounts
            .iter()
            .map(|a| account_by_name.get(a).copied().with_context(|| format!("generate: unknown account {a}")))
            .collect::<anyhow::Result<_>>()?
    };
    ensure!(!owners.is_empty(), "generate: no accounts to own the VMs");
    ensure!(g.vms <= MAX_GENERATED_VMS, "generate: at most {MAX_GENERATED_VMS} VMs");
    // Generated VMs sit on shared networks: zones without one (VPC-only) are skipped.
    let zones: Vec<u64> = m.zones.iter().filter(|(_, z)| z.shared_network.is_some()).map(|(s, _)| s).collect();
    ensure!(!zones.is_empty(), "generate: needs a zone with security groups");
    let offerings: Vec<u64> = m.service_offerings.iter().map(|(s, _)| s).collect();
    ensure!(!offerings.is_empty(), "generate: needs a service offering");
    let now = now_str();
    for i in 0..g.vms {
        let owner = owners[i % owners.len()];
        let zone = zones[i % zones.len()];
        let template = m
            .templates
            .iter()
            .find(|(_, t)| t.ready && t.zones.contains(&zone))
            .map(|(s, _)| s)
            .context("generate: needs a ready template in every zone")?;
        let offering = offerings[i % offerings.len()];
        let default_sg = m.security_groups.find(|g| g.owner == owner && g.name == "default").map(|(s, _)| s);
        let net = m.zones.get(zone).and_then(|z| z.shared_network).context("zone network")?;
        let ip = m.next_guest_ip(net)?;
        let mac = m.next_mac();
        let seq = m.next_seq();
        let name = format!("gen-{:05}", i + 1);
        let id = new_uuid();
        let tsize = m.templates.get(template).map(|t| t.size).unwrap_or(0);
        let vm = Vm {
            id: id.clone(),
            name: name.clone(),
            displayname: name,
            owner,
            zone,
            template,
            offering,
            state: vm_state::RUNNING,
            planned: vm_state::RUNNING,
            created: now.clone(),
            password: None,
            encrypted_password: None,
            keypair: None,
            security_groups: default_sg.into_iter().collect(),
            userdata: None,
            nics: vec![Nic {
                id: new_uuid(),
                network: net,
                ip,
                mac,
                isdefault: true,
                deviceid: 0,
                secondary: Vec::new(),
                tags: Vec::new(),
            }],
            public_ip: None,
            group: None,
            haenable: false,
            hypervisor: "KVM".into(),
            diskoffering: None,
            tags: Vec::new(),
            expunge_at: None,
        };
        let root = Volume::root(seq, &vm, tsize, "Ready");
        m.vms.insert(seq, vm);
        let vs = m.next_seq();
        m.volumes.insert(vs, root);
    }
    Ok(())
}

/// Users as the handle reports them.
pub fn users_of(m: &Model) -> Vec<super::SimUser> {
    m.users
        .values()
        .map(|u| {
            let a = m.account(u.account);
            super::SimUser {
                account: a.name.clone(),
                account_id: a.id.clone(),
                domain: m.domain(a.domain).name.clone(),
                username: u.username.clone(),
                api_key: u.api_key.clone(),
                secret_key: u.secret_key.clone(),
                is_admin: a.kind == ACCOUNT_ROOT_ADMIN,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn region_seed_has_its_own_ids_and_zone_names() {
        let t = for_region(DEFAULT_SEED, "eu-west-1").unwrap();
        let a = parse_seed(DEFAULT_SEED).unwrap();
        let b = parse_seed(&t).unwrap();
        assert_eq!(a.zones.len(), b.zones.len());
        for (za, zb) in a.zones.iter().zip(&b.zones) {
            assert_eq!(zb.name, format!("eu-west-1-{}", za.name));
            assert!(za.id.is_some() && zb.id.is_some() && za.id != zb.id);
        }
        // Derived, not random: the same region gets the same ids on every start.
        assert_eq!(t, for_region(DEFAULT_SEED, "eu-west-1").unwrap());
        assert_ne!(t, for_region(DEFAULT_SEED, "eu-west-2").unwrap());
        // References to zones by name follow (the seed still builds).
        build(&b, true, None).unwrap();
        assert!(!t.contains("\"zone1\""), "a zone reference was not renamed");
    }

    use super::*;

    #[test]
    fn default_seed_builds() {
        let seed = parse_seed(DEFAULT_SEED).unwrap();
        let (m, cfg) = build(&seed, true, None).unwrap();
        assert!(cfg.fast);
        let users = users_of(&m);
        assert!(users.iter().any(|u| u.is_admin && u.account == "admin" && u.domain == "ROOT"));
        let alice = users.iter().find(|u| u.account == "alice").unwrap();
        let bob = users.iter().find(|u| u.account == "bob").unwrap();
        assert_ne!(alice.domain, bob.domain);
        assert_eq!(alice.api_key.len(), 86);
        assert!(m.service_offerings.values().any(|s| s.name == "m1.small"));
        assert!(m.templates.values().any(|t| t.passwordenabled));
        assert!(m.templates.values().any(|t| !t.passwordenabled));
        assert!(m.disk_offerings.values().any(|d| d.iscustomized));
    }

    #[test]
    fn keys_persist_in_state_dir() {
        let dir = std::env::temp_dir().join(format!("ec2bridge-sim-keys-{}", new_uuid()));
        let seed = parse_seed(DEFAULT_SEED).unwrap();
        let a = users_of(&build(&seed, true, Some(&dir)).unwrap().0);
        let b = users_of(&build(&seed, true, Some(&dir)).unwrap().0);
        let key = |v: &Vec<super::super::SimUser>| {
            let mut k: Vec<_> =
                v.iter().map(|u| (u.account.clone(), u.api_key.clone(), u.secret_key.clone())).collect();
            k.sort();
            k
        };
        assert_eq!(key(&a), key(&b));
        let c = users_of(&build(&seed, true, None).unwrap().0);
        assert_ne!(key(&a), key(&c));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_seeds_are_errors() {
        assert!(parse_seed("[[zones]]\nnam = 'x'").is_err());
        let s = parse_seed("[[zones]]\nname='z'\n[[accounts]]\nname='a'\ntype='user'").unwrap();
        assert!(build(&s, true, None).is_err(), "no admin");
        let s = parse_seed("[[accounts]]\nname='a'\ntype='admin'").unwrap();
        assert!(build(&s, true, None).is_err(), "no zone");
    }
}
