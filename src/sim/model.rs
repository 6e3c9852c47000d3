//! The simulator's in-memory state: one table per resource kind, keyed by an internal sequence
//! number (CloudStack's database id) with a uuid index, plus the set of removed uuids so that an
//! expunged object gives an empty list while a never-seen uuid gives 431 (docs/cloudstack-wire.md "Errors").

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_json::Value;

use super::error::{SimError, SimResult};
use super::params::Params;

/// Something stored in a [`Table`].
pub trait Row {
    /// What CloudStack calls it in "Unable to find <kind> with id <uuid>".
    const KIND: &'static str;
    fn uuid(&self) -> &str;
}

/// A row that belongs to an account, for access checks.
pub trait Owned: Row {
    fn owner(&self) -> u64;
    /// How PermissionDenied texts name it (`VM instance {"id":…,"name":…}`).
    fn what(&self) -> String;
}

/// Result of resolving a uuid against one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Live(u64),
    /// Existed once (expunged/deleted): lists answer empty, actions say "not found".
    Removed,
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Table<T> {
    rows: BTreeMap<u64, T>,
    by_uuid: HashMap<String, u64>,
    removed: HashSet<String>,
    /// seq -> uuid of removed rows, so a job whose object went away can name it.
    removed_seq: HashMap<u64, String>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { rows: BTreeMap::new(), by_uuid: HashMap::new(), removed: HashSet::new(), removed_seq: HashMap::new() }
    }
}

impl<T: Row> Table<T> {
    pub fn insert(&mut self, seq: u64, row: T) {
        self.by_uuid.insert(row.uuid().to_string(), seq);
        self.rows.insert(seq, row);
    }
    pub fn get(&self, seq: u64) -> Option<&T> {
        self.rows.get(&seq)
    }
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut T> {
        self.rows.get_mut(&seq)
    }
    pub fn seq_of(&self, uuid: &str) -> Option<u64> {
        self.by_uuid.get(uuid).copied()
    }
    pub fn lookup(&self, uuid: &str) -> Lookup {
        match self.by_uuid.get(uuid) {
            Some(s) => Lookup::Live(*s),
            None if self.removed.contains(uuid) => Lookup::Removed,
            None => Lookup::Unknown,
        }
    }
    pub fn remove(&mut self, seq: u64) -> Option<T> {
        let row = self.rows.remove(&seq)?;
        self.by_uuid.remove(row.uuid());
        self.removed.insert(row.uuid().to_string());
        self.removed_seq.insert(seq, row.uuid().to_string());
        Some(row)
    }

    /// "Unable to find <kind> with id <uuid>" for a row that is not (or no longer) there.
    fn not_found(&self, seq: u64) -> String {
        match self.removed_seq.get(&seq) {
            Some(u) => format!("Unable to find {} with id {u}", T::KIND),
            None => format!("Unable to find {}", T::KIND),
        }
    }

    /// A row request validation needs: a missing one is CloudStack's 431 (InvalidParameterValue)
    /// rather than a panic, answered before anything changes.
    pub fn live(&self, seq: u64) -> SimResult<&T> {
        self.rows.get(&seq).ok_or_else(|| SimError::invalid(self.not_found(seq)))
    }
    pub fn live_mut(&mut self, seq: u64) -> SimResult<&mut T> {
        if !self.rows.contains_key(&seq) {
            return Err(SimError::invalid(self.not_found(seq)));
        }
        self.rows.get_mut(&seq).ok_or_else(|| SimError::invalid(String::new()))
    }

    /// A row a job completion works on. It may have been removed while the job was queued
    /// (expunged VM, deleted group): the job then fails with 530, as CloudStack's job does when
    /// its object is gone.
    pub fn in_job(&self, seq: u64) -> SimResult<&T> {
        self.rows.get(&seq).ok_or_else(|| SimError::internal(self.not_found(seq)))
    }
    pub fn in_job_mut(&mut self, seq: u64) -> SimResult<&mut T> {
        if !self.rows.contains_key(&seq) {
            return Err(SimError::internal(self.not_found(seq)));
        }
        self.rows.get_mut(&seq).ok_or_else(|| SimError::internal(String::new()))
    }
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &T)> {
        self.rows.iter().map(|(k, v)| (*k, v))
    }
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.rows.values()
    }
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.rows.values_mut()
    }
    /// Find by a predicate (small tables only).
    pub fn find(&self, f: impl Fn(&T) -> bool) -> Option<(u64, &T)> {
        self.rows.iter().find(|(_, v)| f(v)).map(|(k, v)| (*k, v))
    }
}

macro_rules! row {
    ($($t:ty => $kind:literal),*) => {$(impl Row for $t {
        const KIND: &'static str = $kind;
        fn uuid(&self) -> &str { &self.id }
    })*};
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
    pub customer: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Domain {
    pub id: String,
    pub name: String,
    /// `ROOT`, `ROOT/dev`.
    pub path: String,
    pub parent: Option<u64>,
    pub created: String,
}

/// Account types as CloudStack numbers them.
pub const ACCOUNT_USER: u8 = 0;
pub const ACCOUNT_ROOT_ADMIN: u8 = 1;
pub const ACCOUNT_DOMAIN_ADMIN: u8 = 2;

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub domain: u64,
    pub kind: u8,
    pub state: String,
    /// -1 = unlimited.
    pub vm_limit: i64,
    pub ip_limit: i64,
    pub network_limit: i64,
    pub vpc_limit: i64,
    pub volume_limit: i64,
    pub snapshot_limit: i64,
    pub template_limit: i64,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub account: u64,
    pub api_key: String,
    pub secret_key: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub state: String,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct Zone {
    pub id: String,
    pub name: String,
    pub description: String,
    pub networktype: String,
    pub securitygroupsenabled: bool,
    pub allocationstate: String,
    pub dns1: String,
    pub internaldns1: String,
    pub localstorageenabled: bool,
    /// The zone's shared guest network (security-group zones); None in an Advanced zone
    /// without security groups, where every account brings its own isolated networks.
    pub shared_network: Option<u64>,
    /// Advanced zones without security groups: the CIDR an isolated network gets when
    /// createNetwork names no gateway/netmask (CloudStack's zone `guestcidraddress`).
    pub guest_cidr: Cidr,
    /// Public IP pool, in order; an address is free when no PublicIp row holds it.
    pub public_pool: Vec<String>,
    pub vlan_id: String,
    pub capacity_vms: i64,
}

#[derive(Debug, Clone)]
pub struct OsType {
    pub id: String,
    pub description: String,
    pub category_id: String,
    pub category_name: String,
}

#[derive(Debug, Clone)]
pub struct ServiceOffering {
    pub id: String,
    pub name: String,
    pub displaytext: String,
    pub cpunumber: i64,
    pub cpuspeed: i64,
    pub memory: i64,
    pub storagetype: String,
    pub offerha: bool,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct DiskOffering {
    pub id: String,
    pub name: String,
    pub displaytext: String,
    /// GB; 0 for customized.
    pub disksize: i64,
    pub iscustomized: bool,
    pub storagetype: String,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub displaytext: String,
    pub owner: u64,
    pub ispublic: bool,
    pub isfeatured: bool,
    pub isextractable: bool,
    pub passwordenabled: bool,
    pub sshkeyenabled: bool,
    pub isdynamicallyscalable: bool,
    pub format: String,
    pub ostype: u64,
    pub hypervisor: String,
    /// Bytes.
    pub size: i64,
    pub templatetype: String,
    pub zones: Vec<u64>,
    pub cross_zones: bool,
    pub ready: bool,
    pub status: String,
    pub created: String,
    pub bootable: bool,
    pub checksum: Option<String>,
    pub source_template: Option<String>,
    /// Accounts granted launch permission (updateTemplatePermissions).
    pub shared_with: Vec<u64>,
    pub tags: Vec<Tag>,
}

pub mod vm_state {
    pub const STARTING: &str = "Starting";
    pub const RUNNING: &str = "Running";
    pub const STOPPING: &str = "Stopping";
    pub const STOPPED: &str = "Stopped";
    pub const DESTROYED: &str = "Destroyed";
    pub const EXPUNGING: &str = "Expunging";
    pub const ERROR: &str = "Error";
}

/// An IPv4 network in CIDR form (base address and prefix length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl Cidr {
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix as u32) }
    }
    /// `a.b.c.d/n`, the base address masked (None when it does not parse as IPv4 CIDR).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, len) = s.split_once('/')?;
        let ip: std::net::Ipv4Addr = ip.trim().parse().ok()?;
        let prefix: u8 = len.trim().parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let c = Cidr { base: 0, prefix };
        Some(Cidr { base: u32::from(ip) & c.mask(), prefix })
    }
    /// From a gateway and a dotted netmask (None when the mask is not contiguous).
    pub fn from_gateway(gateway: std::net::Ipv4Addr, netmask: std::net::Ipv4Addr) -> Option<Cidr> {
        let m = u32::from(netmask);
        let prefix = m.leading_ones() as u8;
        if m.checked_shl(prefix as u32).unwrap_or(0) != 0 {
            return None;
        }
        let c = Cidr { base: 0, prefix };
        Some(Cidr { base: u32::from(gateway) & c.mask(), prefix })
    }
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix as u32)
    }
    pub fn broadcast(&self) -> u32 {
        self.base | !self.mask()
    }
    pub fn contains_ip(&self, ip: u32) -> bool {
        ip & self.mask() == self.base
    }
    /// Is `self` inside `other` (NetUtils.isNetworkAWithinNetworkB)?
    pub fn within(&self, other: &Cidr) -> bool {
        self.prefix >= other.prefix && other.contains_ip(self.base)
    }
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.within(other) || other.within(self)
    }
    pub fn netmask_str(&self) -> String {
        std::net::Ipv4Addr::from(self.mask()).to_string()
    }
    pub fn addr(ip: u32) -> String {
        std::net::Ipv4Addr::from(ip).to_string()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.base), self.prefix)
    }
}

/// A secondary IP on a NIC (addIpToNic).
#[derive(Debug, Clone)]
pub struct SecondaryIp {
    pub id: String,
    pub ip: String,
}

/// A VM's NIC on one guest network.
#[derive(Debug, Clone)]
pub struct Nic {
    pub id: String,
    pub network: u64,
    pub ip: String,
    pub mac: String,
    pub isdefault: bool,
    pub deviceid: u32,
    pub secondary: Vec<SecondaryIp>,
}

/// A network offering (built in, as CloudStack creates them at installation).
#[derive(Debug, Clone)]
pub struct NetworkOffering {
    pub id: String,
    pub name: String,
    pub displaytext: String,
    /// `Shared` or `Isolated`.
    pub guestiptype: &'static str,
    pub forvpc: bool,
    pub services: &'static [&'static str],
    /// `Required` (the one deployVirtualMachine creates a network from) or `Optional`.
    pub availability: &'static str,
    pub isdefault: bool,
    pub egressdefaultpolicy: bool,
    pub specifyipranges: bool,
    pub created: String,
}

impl NetworkOffering {
    pub fn supports(&self, service: &str) -> bool {
        self.services.iter().any(|s| s.eq_ignore_ascii_case(service))
    }
}

#[derive(Debug, Clone)]
pub struct VpcOffering {
    pub id: String,
    pub name: String,
    pub displaytext: String,
    pub services: &'static [&'static str],
    pub isdefault: bool,
    pub redundant: bool,
    pub created: String,
}

/// A guest network: the zone's shared security-group network, an isolated network, or a
/// VPC tier (`vpc` set).
#[derive(Debug, Clone)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub displaytext: String,
    pub owner: u64,
    pub zone: u64,
    pub offering: u64,
    pub shared: bool,
    pub vpc: Option<u64>,
    pub cidr: Cidr,
    pub gateway: String,
    /// Allocated (no VM yet) -> Implemented; shared networks are Setup.
    pub state: &'static str,
    pub acl: Option<u64>,
    pub networkdomain: String,
    /// Shared networks: counter for the next guest address.
    pub next_host: u32,
    pub restart_required: bool,
    pub display: bool,
    pub vlan: Option<u32>,
    pub created: String,
    pub tags: Vec<Tag>,
}

impl Network {
    pub fn guest_type(&self) -> &'static str {
        if self.shared { "Shared" } else { "Isolated" }
    }
}

pub mod vpc_state {
    /// VPCs are Enabled from creation; CloudStack's Inactive lasts only while deleteVPC runs,
    /// which the simulator does at once.
    pub const ENABLED: &str = "Enabled";
}

#[derive(Debug, Clone)]
pub struct Vpc {
    pub id: String,
    pub name: String,
    pub displaytext: String,
    pub owner: u64,
    pub zone: u64,
    pub offering: u64,
    pub cidr: Cidr,
    pub state: &'static str,
    pub networkdomain: String,
    pub restart_required: bool,
    pub display: bool,
    pub created: String,
    pub tags: Vec<Tag>,
}

/// A network ACL list: the built-in `default_allow`/`default_deny` (no VPC) or a VPC's own.
#[derive(Debug, Clone)]
pub struct AclList {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vpc: Option<u64>,
    pub display: bool,
}

/// One rule of an ACL list (NetworkACLItem).
#[derive(Debug, Clone)]
pub struct AclItem {
    pub id: String,
    pub list: u64,
    pub number: i64,
    /// `Allow` or `Deny`.
    pub action: &'static str,
    /// Lowercase name (`tcp`, `udp`, `icmp`, `all`) or a protocol number as sent.
    pub protocol: String,
    pub startport: Option<i64>,
    pub endport: Option<i64>,
    pub icmptype: Option<i64>,
    pub icmpcode: Option<i64>,
    pub cidrs: Vec<String>,
    /// `Ingress` or `Egress`.
    pub traffictype: &'static str,
    pub reason: Option<String>,
    pub display: bool,
    pub tags: Vec<Tag>,
}

/// What a network rule is for (FirewallRule.Purpose, with egress firewall rules apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PortForwarding,
    Firewall,
    Egress,
}

impl Purpose {
    pub fn name(&self) -> &'static str {
        match self {
            Purpose::PortForwarding => "PortForwarding",
            Purpose::Firewall | Purpose::Egress => "Firewall",
        }
    }
}

/// A port forwarding, ingress firewall or egress firewall rule.
#[derive(Debug, Clone)]
pub struct NetRule {
    pub id: String,
    pub purpose: Purpose,
    pub owner: u64,
    /// The public address (port forwarding, ingress firewall).
    pub ip: Option<u64>,
    pub network: Option<u64>,
    pub protocol: String,
    /// Public ports (port forwarding) or the rule's ports (firewall).
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub private_start: Option<i64>,
    pub private_end: Option<i64>,
    pub vm: Option<u64>,
    pub vm_ip: Option<String>,
    pub icmptype: Option<i64>,
    pub icmpcode: Option<i64>,
    pub cidrs: Vec<String>,
    pub dest_cidrs: Vec<String>,
    /// A port forwarding rule's `openfirewall` rule and back.
    pub related: Option<u64>,
}

impl Row for NetRule {
    const KIND: &'static str = "firewall rule";
    fn uuid(&self) -> &str {
        &self.id
    }
}

/// A site-to-site VPN customer gateway (the peer's end).
#[derive(Debug, Clone)]
pub struct CustomerGateway {
    pub id: String,
    pub name: String,
    pub owner: u64,
    pub gateway: String,
    pub cidrs: Vec<String>,
    pub psk: String,
    pub ike: String,
    pub esp: String,
    pub ike_lifetime: i64,
    pub esp_lifetime: i64,
    pub dpd: bool,
    pub forceencap: bool,
    pub ikeversion: String,
    pub split: bool,
    pub tags: Vec<Tag>,
}

/// A VPC's site-to-site VPN gateway (at most one per VPC).
#[derive(Debug, Clone)]
pub struct VpnGateway {
    pub id: String,
    pub vpc: u64,
    pub owner: u64,
    pub display: bool,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct VpnConnection {
    pub id: String,
    pub vpn_gateway: u64,
    pub customer_gateway: u64,
    pub owner: u64,
    /// Pending -> Connected (or Disconnected when passive); Error.
    pub state: &'static str,
    pub passive: bool,
    pub created: String,
}

/// A VPC private gateway (root admins create them).
#[derive(Debug, Clone)]
pub struct PrivateGateway {
    pub id: String,
    pub vpc: u64,
    pub owner: u64,
    pub gateway: String,
    pub netmask: String,
    pub ipaddress: String,
    pub vlan: u32,
    pub sourcenat: bool,
    pub acl: u64,
}

#[derive(Debug, Clone)]
pub struct StaticRoute {
    pub id: String,
    pub gateway: u64,
    pub owner: u64,
    pub cidr: String,
    pub tags: Vec<Tag>,
}

/// A virtual router (of a VPC or an isolated network), as listRouters shows it.
#[derive(Debug, Clone)]
pub struct Router {
    pub id: String,
    pub name: String,
    pub owner: u64,
    pub zone: u64,
    pub vpc: Option<u64>,
    pub network: Option<u64>,
    pub state: &'static str,
    pub linklocalip: String,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct Vm {
    pub id: String,
    pub name: String,
    pub displayname: String,
    pub owner: u64,
    pub zone: u64,
    pub template: u64,
    pub offering: u64,
    pub state: &'static str,
    /// The state once every queued job has run; what new requests are validated against.
    pub planned: &'static str,
    pub created: String,
    /// Clear password: returned once in the deploy job result.
    pub password: Option<String>,
    /// base64 RSA/PKCS#1 v1.5 with the key pair's public key (getVMPassword).
    pub encrypted_password: Option<String>,
    pub keypair: Option<String>,
    pub security_groups: Vec<u64>,
    /// base64 as sent.
    pub userdata: Option<String>,
    /// NICs in device order; exactly one has `isdefault`.
    pub nics: Vec<Nic>,
    pub public_ip: Option<u64>,
    pub group: Option<String>,
    pub haenable: bool,
    pub hypervisor: String,
    pub diskoffering: Option<u64>,
    pub tags: Vec<Tag>,
    /// For Destroyed VMs: when the expunger takes it (ms since sim start).
    pub expunge_at: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub owner: u64,
    pub zone: u64,
    /// `ROOT` or `DATADISK`.
    pub kind: &'static str,
    pub vm: Option<u64>,
    pub deviceid: Option<i64>,
    /// Bytes.
    pub size: i64,
    pub state: &'static str,
    pub diskoffering: Option<u64>,
    /// ROOT volumes: the VM's service offering.
    pub serviceoffering: Option<u64>,
    pub created: String,
    pub attached: Option<String>,
    pub template: Option<u64>,
    pub snapshot: Option<String>,
    pub tags: Vec<Tag>,
}

impl Volume {
    /// The ROOT volume of VM `vm_seq` (device 0, sized `size` bytes, created with the VM): the
    /// one shape deploy and the seed's generated VMs share.
    pub fn root(vm_seq: u64, vm: &Vm, size: i64, state: &'static str) -> Volume {
        Volume {
            id: super::seed::new_uuid(),
            name: format!("ROOT-{vm_seq}"),
            owner: vm.owner,
            zone: vm.zone,
            kind: "ROOT",
            vm: Some(vm_seq),
            deviceid: Some(0),
            size,
            state,
            diskoffering: None,
            serviceoffering: Some(vm.offering),
            created: vm.created.clone(),
            attached: Some(vm.created.clone()),
            template: Some(vm.template),
            snapshot: None,
            tags: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub name: String,
    pub owner: u64,
    pub volume_id: String,
    pub volume_name: String,
    pub volume_type: &'static str,
    pub volume_size: i64,
    pub zone: u64,
    pub state: &'static str,
    pub created: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct KeyPair {
    pub id: String,
    pub name: String,
    pub owner: u64,
    pub fingerprint: String,
    /// OpenSSH one-line public key.
    pub public_key: String,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub protocol: String,
    pub startport: Option<i64>,
    pub endport: Option<i64>,
    pub icmptype: Option<i64>,
    pub icmpcode: Option<i64>,
    pub cidr: Option<String>,
    /// (account name, group name) for group-to-group rules.
    pub group: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner: u64,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct PublicIp {
    pub id: String,
    pub ip: String,
    pub zone: u64,
    pub owner: u64,
    pub state: &'static str,
    pub allocated: String,
    pub vm: Option<u64>,
    /// The guest network it is associated with (isolated networks; VPC IPs once used).
    pub network: Option<u64>,
    pub vpc: Option<u64>,
    /// The source NAT address of an isolated network or VPC (released with it).
    pub sourcenat: bool,
    /// Static NAT to a secondary guest IP (`vmguestip`) instead of the NIC's address.
    pub vm_guest_ip: Option<String>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub account: u64,
    pub user: u64,
    pub cmd: &'static str,
    pub status: u8,
    pub result_code: u16,
    pub result: Option<Value>,
    pub instance_type: &'static str,
    pub instance_id: Option<String>,
    pub created: String,
    pub completed: Option<String>,
}

row!(
    Domain => "domain",
    Account => "account",
    User => "user",
    Zone => "zone",
    OsType => "OS type",
    ServiceOffering => "service offering",
    DiskOffering => "disk offering",
    Template => "template",
    Vm => "virtual machine",
    Volume => "volume",
    Snapshot => "snapshot",
    KeyPair => "SSH key pair",
    SecurityGroup => "security group",
    PublicIp => "IP address",
    Job => "async job",
    NetworkOffering => "network offering",
    VpcOffering => "VPC offering",
    Network => "network",
    Vpc => "VPC",
    Router => "router",
    AclList => "network ACL list",
    AclItem => "network ACL item",
    CustomerGateway => "customer gateway",
    VpnGateway => "VPN gateway",
    VpnConnection => "VPN connection",
    PrivateGateway => "private gateway",
    StaticRoute => "static route"
);

macro_rules! owned {
    ($($t:ty: $owner:ident, |$x:ident| $what:expr;)*) => {$(impl Owned for $t {
        fn owner(&self) -> u64 { self.$owner }
        fn what(&self) -> String { let $x = self; $what }
    })*};
}

owned! {
    Vm: owner, |v| format!("VM instance {{\"id\":\"{}\",\"name\":\"{}\"}}", v.id, v.name);
    Volume: owner, |v| format!("Volume {{\"id\":\"{}\",\"name\":\"{}\"}}", v.id, v.name);
    Snapshot: owner, |s| format!("Snapshot {}", s.id);
    Template: owner, |t| format!("Tmpl[{}-{}]", t.id, t.name);
    SecurityGroup: owner, |g| format!("SecurityGroup {{\"id\":\"{}\",\"name\":\"{}\"}}", g.id, g.name);
    PublicIp: owner, |i| format!("IPAddress {{\"id\":\"{}\",\"address\":\"{}\"}}", i.id, i.ip);
    Job: account, |j| format!("AsyncJob {}", j.id);
    Network: owner, |n| format!("Network {{\"id\":\"{}\",\"name\":\"{}\"}}", n.id, n.name);
    Vpc: owner, |v| format!("VPC {{\"id\":\"{}\",\"name\":\"{}\"}}", v.id, v.name);
    CustomerGateway: owner, |c| format!("Site2SiteCustomerGateway {}", c.id);
    VpnGateway: owner, |g| format!("Site2SiteVpnGateway {}", g.id);
    VpnConnection: owner, |c| format!("Site2SiteVpnConnection {}", c.id);
    StaticRoute: owner, |r| format!("StaticRoute {}", r.id);
}

/// Who is calling, resolved from the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user: u64,
    pub account: u64,
    pub domain: u64,
    pub kind: u8,
}

impl Caller {
    pub fn is_root_admin(&self) -> bool {
        self.kind == ACCOUNT_ROOT_ADMIN
    }
    pub fn is_admin(&self) -> bool {
        self.kind == ACCOUNT_ROOT_ADMIN || self.kind == ACCOUNT_DOMAIN_ADMIN
    }
}

/// Which accounts' resources a list call covers.
#[derive(Debug, Clone)]
pub enum Scope {
    All,
    Accounts(HashSet<u64>),
}

impl Scope {
    pub fn sees(&self, owner: u64) -> bool {
        match self {
            Scope::All => true,
            Scope::Accounts(s) => s.contains(&owner),
        }
    }
}

/// Where a security-group rule lives, for revoke by rule id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef {
    pub group: u64,
    pub ingress: bool,
}

#[derive(Debug, Default)]
pub struct Model {
    next_seq: u64,
    pub domains: Table<Domain>,
    pub accounts: Table<Account>,
    pub users: Table<User>,
    pub zones: Table<Zone>,
    pub os_types: Table<OsType>,
    pub service_offerings: Table<ServiceOffering>,
    pub disk_offerings: Table<DiskOffering>,
    pub templates: Table<Template>,
    pub vms: Table<Vm>,
    pub volumes: Table<Volume>,
    pub snapshots: Table<Snapshot>,
    pub keypairs: Table<KeyPair>,
    pub security_groups: Table<SecurityGroup>,
    pub public_ips: Table<PublicIp>,
    pub jobs: Table<Job>,
    pub network_offerings: Table<NetworkOffering>,
    pub vpc_offerings: Table<VpcOffering>,
    pub networks: Table<Network>,
    pub vpcs: Table<Vpc>,
    pub routers: Table<Router>,
    pub acls: Table<AclList>,
    pub acl_items: Table<AclItem>,
    pub net_rules: Table<NetRule>,
    pub customer_gateways: Table<CustomerGateway>,
    pub vpn_gateways: Table<VpnGateway>,
    pub vpn_connections: Table<VpnConnection>,
    pub private_gateways: Table<PrivateGateway>,
    pub static_routes: Table<StaticRoute>,
    /// Security-group rule id -> its group; removed rule ids kept for the 431/empty distinction.
    pub rules: HashMap<String, RuleRef>,
    pub removed_rules: HashSet<String>,
    /// api key -> user seq.
    pub api_keys: HashMap<String, u64>,
    /// Per-object job queue (object uuid -> job ids, front = running): jobs on one object run
    /// in order, and the front job's id is shown on the object while it runs.
    pub busy: HashMap<String, VecDeque<String>>,
    /// Counter for MAC addresses.
    pub next_mac: u32,
    pub region_endpoint: String,
}

impl Model {
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn account(&self, seq: u64) -> &Account {
        self.accounts.get(seq).expect("account of a live row exists")
    }
    pub fn domain(&self, seq: u64) -> &Domain {
        self.domains.get(seq).expect("domain of a live row exists")
    }

    /// The job id shown on an object while a job on it is pending.
    pub fn pending_job(&self, uuid: &str) -> Option<&str> {
        self.busy.get(uuid).and_then(|q| q.front()).map(|s| s.as_str())
    }

    /// Is `domain` inside `ancestor` (or equal)?
    pub fn domain_within(&self, mut domain: u64, ancestor: u64) -> bool {
        loop {
            if domain == ancestor {
                return true;
            }
            match self.domains.get(domain).and_then(|d| d.parent) {
                Some(p) => domain = p,
                None => return false,
            }
        }
    }

    /// The `account`/`domainid` pair (or `domainid` alone) an admin names, as account seqs.
    fn named_accounts(&self, caller: &Caller, p: &Params) -> SimResult<Option<HashSet<u64>>> {
        let domain = match p.opt("domainid") {
            Some(d) => match self.domains.lookup(d) {
                Lookup::Live(s) => Some(s),
                _ => return Err(SimError::bad_uuid(&p.cmd, "domainid", d)),
            },
            None => None,
        };
        let account = p.opt("account");
        if domain.is_none() && account.is_none() {
            return Ok(None);
        }
        let domain = domain.unwrap_or(caller.domain);
        let privileged = caller.is_root_admin()
            || (caller.kind == ACCOUNT_DOMAIN_ADMIN && self.domain_within(domain, caller.domain));
        let foreign = domain != caller.domain || account.is_some_and(|a| a != self.account(caller.account).name);
        if !privileged && foreign {
            let me = self.account(caller.account);
            return Err(SimError::permission(format!(
                "Account Acct[{}-{}] does not have permission to operate within domain id={}",
                me.id,
                me.name,
                self.domain(domain).id
            )));
        }
        match account {
            Some(name) => {
                let found = self.accounts.find(|a| a.domain == domain && a.name == name);
                match found {
                    Some((s, _)) => Ok(Some(HashSet::from([s]))),
                    None => Err(SimError::invalid(format!(
                        "Unable to find account {name} in domain id={}",
                        self.domain(domain).id
                    ))),
                }
            }
            None => {
                let recursive = p.flag("isrecursive");
                Ok(Some(
                    self.accounts
                        .iter()
                        .filter(
                            |(_, a)| if recursive { self.domain_within(a.domain, domain) } else { a.domain == domain },
                        )
                        .map(|(s, _)| s)
                        .collect(),
                ))
            }
        }
    }

    /// Which accounts a list call covers: own account; admins everything with `listall=true` or
    /// an `id` (domain admins their subtree); `account`/`domainid` narrow it.
    pub fn scope(&self, caller: &Caller, p: &Params) -> SimResult<Scope> {
        if let Some(named) = self.named_accounts(caller, p)? {
            return Ok(Scope::Accounts(named));
        }
        // As buildACLSearchParameters: an admin asking for one `id` is not limited to its own
        // account, just as with listall.
        if p.flag("listall") || p.has("id") {
            if caller.is_root_admin() {
                return Ok(Scope::All);
            }
            if caller.kind == ACCOUNT_DOMAIN_ADMIN {
                return Ok(Scope::Accounts(
                    self.accounts
                        .iter()
                        .filter(|(_, a)| self.domain_within(a.domain, caller.domain))
                        .map(|(s, _)| s)
                        .collect(),
                ));
            }
        }
        Ok(Scope::Accounts(HashSet::from([caller.account])))
    }

    /// The account a create acts for: the caller, or (admins) `account`+`domainid`.
    pub fn owner_for(&self, caller: &Caller, p: &Params) -> SimResult<u64> {
        if p.has("account")
            && p.has("domainid")
            && let Some(set) = self.named_accounts(caller, p)?
            && let Some(s) = set.into_iter().next()
        {
            return Ok(s);
        }
        Ok(caller.account)
    }

    /// PermissionDenied unless the caller may act on an object owned by `owner`.
    pub fn check_access(&self, caller: &Caller, owner: u64, what: &str) -> SimResult<()> {
        if caller.account == owner || caller.is_root_admin() {
            return Ok(());
        }
        let o = self.account(owner);
        if caller.kind == ACCOUNT_DOMAIN_ADMIN && self.domain_within(o.domain, caller.domain) {
            return Ok(());
        }
        let me = self.account(caller.account);
        Err(SimError::permission(format!(
            "Acct[{}-{}] does not have permission to operate with resource {what}",
            me.id, me.name
        )))
    }

    /// PermissionDenied unless the caller may act on `row`.
    pub fn check_owned<T: Owned>(&self, caller: &Caller, row: &T) -> SimResult<()> {
        self.check_access(caller, row.owner(), &row.what())
    }

    /// Running or queued VMs counted against the account's `user_vm` limit.
    pub fn vm_count(&self, account: u64) -> i64 {
        self.vms
            .values()
            .filter(|v| v.owner == account && v.state != vm_state::DESTROYED && v.state != vm_state::EXPUNGING)
            .count() as i64
    }

    pub fn ip_count(&self, account: u64) -> i64 {
        self.public_ips.values().filter(|i| i.owner == account).count() as i64
    }

    pub fn next_mac(&mut self) -> String {
        self.next_mac += 1;
        let n = self.next_mac;
        format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", (n >> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
    }

    /// Guest addresses in use on a network (NIC addresses and secondary IPs).
    pub fn used_guest_ips(&self, net: u64) -> std::collections::HashSet<u32> {
        let mut used = std::collections::HashSet::new();
        for v in self.vms.values() {
            for n in v.nics.iter().filter(|n| n.network == net) {
                used.extend(n.ip.parse::<std::net::Ipv4Addr>().ok().map(u32::from));
                used.extend(n.secondary.iter().filter_map(|s| s.ip.parse::<std::net::Ipv4Addr>().ok().map(u32::from)));
            }
        }
        used
    }

    /// Next guest address of a network. Shared networks (large, many VMs) count up and wrap,
    /// skipping the network, gateway and broadcast addresses; isolated networks and tiers take
    /// the lowest free address, as small networks fill up (533 when none is left).
    pub fn next_guest_ip(&mut self, net: u64) -> SimResult<String> {
        let (cidr, shared, gw) = {
            let n = self.networks.live(net)?;
            (n.cidr, n.shared, n.gateway.parse::<std::net::Ipv4Addr>().map(u32::from).unwrap_or(n.cidr.base + 1))
        };
        if shared {
            let n = self.networks.live_mut(net)?;
            n.next_host += 1;
            let usable = (cidr.size().saturating_sub(3)).max(1) as u32;
            let host = 2 + (n.next_host - 1) % usable;
            return Ok(Cidr::addr(cidr.base.wrapping_add(host)));
        }
        let used = self.used_guest_ips(net);
        let first = cidr.base as u64 + 1;
        let last = cidr.broadcast() as u64;
        (first..last).map(|a| a as u32).find(|a| *a != gw && !used.contains(a)).map(Cidr::addr).ok_or_else(|| {
            SimError::address_capacity(format!(
                "Insufficient address capacity; no free guest IP in network {}",
                self.networks.get(net).map(|n| n.id.as_str()).unwrap_or("")
            ))
        })
    }

    /// A requested guest address: inside the network's CIDR, not its gateway/network/broadcast
    /// address, not in use (IpAddressManagerImpl.acquireGuestIpAddress / allocateGuestIP).
    pub fn check_guest_ip(&self, net: u64, ip: &str) -> SimResult<String> {
        let n = self.networks.live(net)?;
        let addr: std::net::Ipv4Addr =
            ip.parse().map_err(|_| SimError::invalid(format!("Invalid format for IPv4 address: {ip}")))?;
        let a = u32::from(addr);
        if !n.cidr.contains_ip(a) || a == n.cidr.base || a == n.cidr.broadcast() || addr.to_string() == n.gateway {
            return Err(SimError::invalid(format!(
                "Invalid ip address {ip}. It should be within the network {} CIDR {}",
                n.id, n.cidr
            )));
        }
        if self.used_guest_ips(net).contains(&a) {
            return Err(SimError::invalid(format!(
                "The requested ip address {ip} is already in use in network {}",
                n.id
            )));
        }
        Ok(addr.to_string())
    }

    /// Remove the network rules that match (with their related rules).
    pub fn remove_rules(&mut self, f: impl Fn(&NetRule) -> bool) {
        let gone: Vec<u64> = self.net_rules.iter().filter(|(_, r)| f(r)).map(|(s, _)| s).collect();
        for s in gone {
            if let Some(r) = self.net_rules.remove(s)
                && let Some(rel) = r.related
            {
                self.net_rules.remove(rel);
            }
        }
    }

    pub fn network_count(&self, account: u64) -> i64 {
        self.networks.values().filter(|n| n.owner == account && !n.shared).count() as i64
    }

    pub fn vpc_count(&self, account: u64) -> i64 {
        self.vpcs.values().filter(|v| v.owner == account).count() as i64
    }

    /// CloudStack's ResourceAllocationException text for one more of `rtype`.
    pub fn check_limit(&self, account: u64, rtype: &str, limit: i64, used: i64) -> SimResult<()> {
        if limit >= 0 && used + 1 > limit {
            let a = self.account(account);
            return Err(SimError::allocation(format!(
                "Maximum number of resources of type '{rtype}' for account name={} in domain id={} has been exceeded.",
                a.name, a.domain
            )));
        }
        Ok(())
    }

    /// Every taggable object: (canonical type, uuid, owner, tags).
    pub fn taggable(&self) -> impl Iterator<Item = (&'static str, &str, u64, &Vec<Tag>)> {
        let vms = self.vms.values().map(|v| ("UserVm", v.id.as_str(), v.owner, &v.tags));
        let vols = self.volumes.values().map(|v| ("Volume", v.id.as_str(), v.owner, &v.tags));
        let snaps = self.snapshots.values().map(|v| ("Snapshot", v.id.as_str(), v.owner, &v.tags));
        let tmpls = self.templates.values().map(|v| ("Template", v.id.as_str(), v.owner, &v.tags));
        let sgs = self.security_groups.values().map(|v| ("SecurityGroup", v.id.as_str(), v.owner, &v.tags));
        let ips = self.public_ips.values().map(|v| ("PublicIpAddress", v.id.as_str(), v.owner, &v.tags));
        let nets = self.networks.values().map(|v| ("Network", v.id.as_str(), v.owner, &v.tags));
        let vpcs = self.vpcs.values().map(|v| ("Vpc", v.id.as_str(), v.owner, &v.tags));
        let cgws = self.customer_gateways.values().map(|v| ("CustomerGateway", v.id.as_str(), v.owner, &v.tags));
        let vgws = self.vpn_gateways.values().map(|v| ("VpnGateway", v.id.as_str(), v.owner, &v.tags));
        let routes = self.static_routes.values().map(|v| ("StaticRoute", v.id.as_str(), v.owner, &v.tags));
        vms.chain(vols)
            .chain(snaps)
            .chain(tmpls)
            .chain(sgs)
            .chain(ips)
            .chain(nets)
            .chain(vpcs)
            .chain(cgws)
            .chain(vgws)
            .chain(routes)
    }
}

/// Do an object's tags satisfy every `tags[i].key/value` filter?
pub fn tags_match(tags: &[Tag], filter: &[(String, Option<String>)]) -> bool {
    filter.iter().all(|(k, v)| tags.iter().any(|t| &t.key == k && v.as_ref().is_none_or(|v| &t.value == v)))
}

/// CloudStack's `keyword`: a case-insensitive substring of name or display name.
pub fn keyword_match(keyword: Option<&str>, fields: &[&str]) -> bool {
    match keyword {
        None => true,
        Some(k) => {
            let k = k.to_lowercase();
            fields.iter().any(|f| f.to_lowercase().contains(&k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookup_distinguishes_removed() {
        let mut t: Table<KeyPair> = Table::default();
        let kp = KeyPair {
            id: "u1".into(),
            name: "k".into(),
            owner: 1,
            fingerprint: String::new(),
            public_key: String::new(),
        };
        t.insert(7, kp);
        assert_eq!(t.lookup("u1"), Lookup::Live(7));
        assert_eq!(t.lookup("nope"), Lookup::Unknown);
        t.remove(7);
        assert_eq!(t.lookup("u1"), Lookup::Removed);
        assert_eq!(t.iter().count(), 0);
    }

    fn default_model() -> Model {
        let seed = crate::sim::seed::parse_seed(crate::sim::seed::DEFAULT_SEED).unwrap();
        crate::sim::seed::build(&seed, true, None).unwrap().0
    }

    fn caller(m: &Model, account: &str) -> Caller {
        let (s, a) = m.accounts.find(|a| a.name == account).unwrap();
        Caller { user: 0, account: s, domain: a.domain, kind: a.kind }
    }

    fn params(kv: &[(&str, &str)]) -> Params {
        Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), "listVirtualMachines")
    }

    #[test]
    fn scope_and_access() {
        let m = default_model();
        let (alice, bob, admin) = (caller(&m, "alice"), caller(&m, "bob"), caller(&m, "admin"));
        // Users: own account only, listall or not.
        for p in [params(&[]), params(&[("listall", "true")]), params(&[("id", "x")])] {
            let s = m.scope(&alice, &p).unwrap();
            assert!(s.sees(alice.account) && !s.sees(bob.account));
        }
        // Admin: own by default; all with listall or an id.
        assert!(!m.scope(&admin, &params(&[])).unwrap().sees(alice.account));
        assert!(m.scope(&admin, &params(&[("listall", "true")])).unwrap().sees(alice.account));
        assert!(m.scope(&admin, &params(&[("id", "x")])).unwrap().sees(bob.account));
        // A user naming another domain: 531; an admin naming an unknown account: 431.
        let dev = m.domain(alice.domain).id.clone();
        assert_eq!(m.scope(&bob, &params(&[("account", "alice"), ("domainid", &dev)])).unwrap_err().code, 531);
        assert_eq!(m.scope(&admin, &params(&[("account", "nobody"), ("domainid", &dev)])).unwrap_err().code, 431);
        assert_eq!(m.scope(&admin, &params(&[("domainid", "not-a-domain")])).unwrap_err().code, 431);
        let only = m.scope(&admin, &params(&[("account", "alice"), ("domainid", &dev)])).unwrap();
        assert!(only.sees(alice.account) && !only.sees(admin.account));
        // Acting on objects.
        assert!(m.check_access(&alice, alice.account, "x").is_ok());
        assert!(m.check_access(&admin, alice.account, "x").is_ok());
        let e = m.check_access(&bob, alice.account, "VM instance x").unwrap_err();
        assert_eq!((e.code, e.cs), (531, Some(4365)));
    }

    #[test]
    fn guest_ips_and_macs_are_distinct() {
        let mut m = default_model();
        let z = m.zones.iter().next().unwrap().1.shared_network.unwrap();
        let a = m.next_guest_ip(z).unwrap();
        let b = m.next_guest_ip(z).unwrap();
        assert_ne!(a, b);
        let n = m.networks.get(z).unwrap();
        assert_eq!(n.gateway, "10.1.0.1");
        assert_eq!(n.cidr.netmask_str(), "255.255.0.0");
        assert_ne!(m.next_mac(), m.next_mac());
    }

    #[test]
    fn cidr_arithmetic() {
        let vpc = Cidr::parse("10.0.0.0/16").unwrap();
        let tier = Cidr::parse("10.0.1.0/24").unwrap();
        assert!(tier.within(&vpc) && !vpc.within(&tier) && tier.overlaps(&vpc));
        assert!(!Cidr::parse("10.1.0.0/24").unwrap().within(&vpc));
        assert_eq!(Cidr::parse("10.0.1.7/24").unwrap().to_string(), "10.0.1.0/24");
        let g = Cidr::from_gateway("10.0.2.1".parse().unwrap(), "255.255.255.0".parse().unwrap()).unwrap();
        assert_eq!(g.to_string(), "10.0.2.0/24");
        assert!(Cidr::from_gateway("10.0.2.1".parse().unwrap(), "255.0.255.0".parse().unwrap()).is_none());
        assert_eq!(g.netmask_str(), "255.255.255.0");
        assert_eq!(Cidr::addr(g.broadcast()), "10.0.2.255");
        assert!(Cidr::parse("10.0.0.0/33").is_none() && Cidr::parse("x/8").is_none());
    }

    #[test]
    fn tag_and_keyword_filters() {
        let tags = vec![Tag { key: "Name".into(), value: "web".into(), customer: None }];
        assert!(tags_match(&tags, &[("Name".into(), Some("web".into()))]));
        assert!(tags_match(&tags, &[("Name".into(), None)]));
        assert!(!tags_match(&tags, &[("Name".into(), Some("db".into()))]));
        assert!(keyword_match(Some("EB"), &["web1"]));
        assert!(!keyword_match(Some("x"), &["web1", "w"]));
    }
}
