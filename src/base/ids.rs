//! The EC2 id scheme (docs/ids.md): `<prefix>-` + 17 lowercase hex digits taken from
//! SHA-256(kind ":" CloudStack uuid). Derived, so every gateway computes the same id with no
//! coordination; the reverse direction is a cache that listing the caller's resources rebuilds.
//!
//! Kinds are data: a `[kind.X]` section of the mapping table declares each one (prefix, list
//! call, errors, tag types). This module only keeps the registry of names and prefixes, filled
//! from the compiled-in mapping files and by every table that loads.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use sha2::{Digest, Sha256};

/// A kind of object that gets an EC2 id, by its name in the mapping table (`instance`,
/// `security-group`, ...). Everything else about a kind is declared in its `[kind.X]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(&'static str);

/// The kinds the Rust steps name. Only their names live here; the table loader refuses a table
/// that does not declare them.
#[allow(non_upper_case_globals)]
impl Kind {
    pub const Instance: Kind = Kind("instance");
    pub const Image: Kind = Kind("image");
    pub const Volume: Kind = Kind("volume");
    pub const Snapshot: Kind = Kind("snapshot");
    pub const SecurityGroup: Kind = Kind("security-group");
    pub const Address: Kind = Kind("address");
    pub const KeyPair: Kind = Kind("key-pair");
    pub const Reservation: Kind = Kind("reservation");
    pub const Vpc: Kind = Kind("vpc");
    pub const Subnet: Kind = Kind("subnet");

    pub const NAMED_BY_RUST: [Kind; 10] = [
        Kind::Instance,
        Kind::Image,
        Kind::Volume,
        Kind::Snapshot,
        Kind::SecurityGroup,
        Kind::Address,
        Kind::KeyPair,
        Kind::Reservation,
        Kind::Vpc,
        Kind::Subnet,
    ];
}

impl Kind {
    /// The EC2 id prefix declared for this kind (`i`, `ami`, ...).
    pub fn prefix(self) -> &'static str {
        // Every kind value comes from a declaration (`declare`, `from_name`) or is one of the
        // names above, which the compiled-in table declares; the name is only a last resort.
        registry().read().map(|r| r.prefix.get(self.0).copied()).ok().flatten().unwrap_or(self.0)
    }

    /// Name used in mapping files (`id:instance`) and in the store.
    pub fn name(self) -> &'static str {
        self.0
    }

    /// A declared kind by name.
    pub fn from_name(name: &str) -> Option<Kind> {
        let r = registry().read().ok()?;
        r.prefix.get_key_value(name).map(|(n, _)| Kind(n))
    }

    /// Every declared kind, sorted by name.
    pub fn declared() -> Vec<Kind> {
        let mut all: Vec<Kind> =
            registry().read().map(|r| r.prefix.keys().map(|n| Kind(n)).collect()).unwrap_or_default();
        all.sort();
        all
    }
}

#[derive(Default)]
struct Registry {
    /// kind name -> EC2 id prefix.
    prefix: HashMap<&'static str, &'static str, super::util::NameHash>,
}

/// The mapping files compiled into the binary (the table loader reads the same list).
pub const BUILTIN_MAPPINGS: &[(&str, &str)] = &[
    ("cloudstack.toml", include_str!("../../mappings/cloudstack.toml")),
    ("common.toml", include_str!("../../mappings/common.toml")),
    ("regions.toml", include_str!("../../mappings/regions.toml")),
    ("images.toml", include_str!("../../mappings/images.toml")),
    ("instances.toml", include_str!("../../mappings/instances.toml")),
    ("security_groups.toml", include_str!("../../mappings/security_groups.toml")),
    ("addresses.toml", include_str!("../../mappings/addresses.toml")),
    ("tags.toml", include_str!("../../mappings/tags.toml")),
    ("instance_attributes.toml", include_str!("../../mappings/instance_attributes.toml")),
    ("instance_types.toml", include_str!("../../mappings/instance_types.toml")),
    ("volumes.toml", include_str!("../../mappings/volumes.toml")),
    ("snapshots.toml", include_str!("../../mappings/snapshots.toml")),
    ("keypairs.toml", include_str!("../../mappings/keypairs.toml")),
    ("vpc.toml", include_str!("../../mappings/vpc.toml")),
    ("vpc_gateways.toml", include_str!("../../mappings/vpc_gateways.toml")),
    ("network_interfaces.toml", include_str!("../../mappings/network_interfaces.toml")),
    ("nat_gateways.toml", include_str!("../../mappings/nat_gateways.toml")),
    ("network_acls.toml", include_str!("../../mappings/network_acls.toml")),
    ("vpn.toml", include_str!("../../mappings/vpn.toml")),
    ("soap.toml", include_str!("../../mappings/soap.toml")),
];

/// The registry starts with the compiled-in kinds, so an id can be computed before (or without)
/// loading a table; the table loader validates the same declarations with file and line.
fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry::default();
        for (_, text) in BUILTIN_MAPPINGS {
            let Ok(doc) = text.parse::<toml::Table>() else { continue };
            let Some(kinds) = doc.get("kind").and_then(toml::Value::as_table) else { continue };
            for (name, body) in kinds {
                if let Some(p) = body.get("prefix").and_then(toml::Value::as_str) {
                    r.prefix.insert(leak(name), leak(p));
                }
            }
        }
        RwLock::new(r)
    })
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Declare a kind (the table loader does, for every `[kind.X]`). Declaring it again with the
/// same prefix is a no-op; a different prefix for a known name, or a prefix another kind has,
/// is refused: the ids users already hold would change or become ambiguous.
pub fn declare(name: &str, prefix: &str) -> Result<Kind, String> {
    let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid(name) || !valid(prefix) || prefix.contains('-') {
        return Err(format!("kind '{name}': names and prefixes are lower-case letters and digits ('{prefix}')"));
    }
    let mut r = registry().write().map_err(|_| "the kind registry is unusable".to_string())?;
    if let Some((n, p)) = r.prefix.get_key_value(name) {
        return if *p == prefix {
            Ok(Kind(n))
        } else {
            Err(format!("kind '{name}' has prefix '{p}' (its ids are fixed); it cannot become '{prefix}'"))
        };
    }
    if let Some((other, _)) = r.prefix.iter().find(|(_, p)| **p == prefix) {
        return Err(format!("prefix '{prefix}' of kind '{name}' is already the prefix of kind '{other}'"));
    }
    let n = leak(name);
    r.prefix.insert(n, leak(prefix));
    Ok(Kind(n))
}

/// The EC2 id of a CloudStack object.
pub fn ec2_id(kind: Kind, uuid: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.name().as_bytes());
    h.update(b":");
    h.update(uuid.as_bytes());
    let digest = h.finalize();
    let prefix = kind.prefix();
    // One allocation: the prefix, '-', then the first 17 hex digits of the digest.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(prefix.len() + 18);
    id.push_str(prefix);
    id.push('-');
    for b in &digest[..9] {
        id.push(HEX[usize::from(b >> 4)] as char);
        id.push(HEX[usize::from(b & 0xf)] as char);
    }
    id.truncate(prefix.len() + 18);
    id
}

/// The EC2 ids one request works out, each (kind, uuid) once: for the id cache, and so that a
/// listing that names the same image or security group in every instance hashes it once, not
/// once per mention.
#[derive(Debug, Default)]
pub struct SeenIds(Vec<(Kind, HashMap<String, String>)>);

impl SeenIds {
    /// `ec2_id(kind, uuid)`, remembered.
    pub fn id(&mut self, kind: Kind, uuid: &str) -> String {
        let at = match self.0.iter().position(|(k, _)| *k == kind) {
            Some(at) => at,
            None => {
                self.0.push((kind, HashMap::new()));
                self.0.len() - 1
            }
        };
        let known = &mut self.0[at].1;
        if let Some(id) = known.get(uuid) {
            return id.clone();
        }
        let id = ec2_id(kind, uuid);
        known.insert(uuid.to_string(), id.clone());
        id
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|(_, m)| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|(_, m)| m.is_empty())
    }

    /// Everything seen as (kind, EC2 id, uuid), for `IdCache::record`; leaves it empty.
    pub fn take(&mut self) -> Vec<(Kind, String, String)> {
        let mut out = Vec::with_capacity(self.len());
        for (kind, known) in self.0.drain(..) {
            out.extend(known.into_iter().map(|(uuid, id)| (kind, id, uuid)));
        }
        out
    }
}

/// The 12-digit account number EC2 answers as `ownerId` (and STS as `Account`) for a CloudStack
/// account, from the account's uuid (never its name, which can be reused): the first eight bytes
/// of SHA-256("account:" uuid) as a big-endian integer, modulo 10^12, zero-padded
/// (docs/accounts.md). Stable across gateways; `ec2bridge account-number` maps uuids to it.
pub fn account_number(account_uuid: &str) -> String {
    let digest = Sha256::digest(format!("account:{account_uuid}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    format!("{:012}", u64::from_be_bytes(b) % 1_000_000_000_000)
}

/// True for a 12-digit account number.
pub fn is_account_number(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The IAM-style unique id of a CloudStack user (`AIDA` + 17 characters of A-Z and 2-7, as IAM
/// user ids look), from the user's uuid: base32 of SHA-256("user:" uuid).
pub fn iam_user_id(user_uuid: &str) -> String {
    const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(format!("user:{user_uuid}").as_bytes());
    let mut out = String::from("AIDA");
    // 17 characters of 5 bits each from the first 11 bytes.
    let mut acc: u128 = 0;
    for b in &digest[..11] {
        acc = (acc << 8) | u128::from(*b);
    }
    for i in 0..17 {
        let shift = 88 - 5 * (i + 1);
        out.push(B32[((acc >> shift) & 31) as usize] as char);
    }
    out
}

/// True when `id` has the shape of an id of `kind`: the prefix, then 8 or 17 lowercase hex digits.
pub fn is_well_formed(kind: Kind, id: &str) -> bool {
    let Some(hexpart) = id.strip_prefix(kind.prefix()).and_then(|r| r.strip_prefix('-')) else { return false };
    (hexpart.len() == 8 || hexpart.len() == 17)
        && hexpart.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A boxed future, so the id cache trait stays object-safe (a database-backed cache is async).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The reverse direction of the id scheme: EC2 id -> CloudStack uuid. Every id the gateway renders
/// is recorded; a miss is answered by listing the caller's resources (the executor does that) and
/// recording them. The in-memory implementation is the default; the store can back it with its
/// database so that several gateways (and restarts) share it.
pub trait IdCache: Send + Sync {
    /// The uuid behind `ec2_id`, if known.
    fn lookup<'a>(&'a self, ec2_id: &'a str) -> BoxFuture<'a, Option<String>>;
    /// Remember `(kind, ec2 id, uuid)` triples.
    fn record<'a>(&'a self, entries: Vec<(Kind, String, String)>) -> BoxFuture<'a, ()>;
}

/// In-memory id cache (dashmap). Bounded: when it grows past `capacity` it starts over, which
/// costs at most one rebuilding list call per kind.
pub struct MemoryIdCache {
    map: dashmap::DashMap<String, String>,
    capacity: usize,
}

impl MemoryIdCache {
    pub fn new(capacity: usize) -> Self {
        MemoryIdCache { map: dashmap::DashMap::new(), capacity: capacity.max(1) }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, ec2_id: &str) -> Option<String> {
        self.map.get(ec2_id).map(|v| v.value().clone())
    }

    /// Whether `ec2_id` is known as `uuid` (`get` without the copy: a 1,000-VM listing asks
    /// this for every id it renders).
    pub fn holds(&self, ec2_id: &str, uuid: &str) -> bool {
        self.map.get(ec2_id).is_some_and(|v| v.value() == uuid)
    }

    pub fn insert(&self, ec2_id: String, uuid: String) {
        if self.map.len() >= self.capacity && !self.map.contains_key(&ec2_id) {
            self.map.clear();
        }
        self.map.insert(ec2_id, uuid);
    }
}

impl Default for MemoryIdCache {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl IdCache for MemoryIdCache {
    fn lookup<'a>(&'a self, ec2_id: &'a str) -> BoxFuture<'a, Option<String>> {
        let v = self.get(ec2_id);
        Box::pin(async move { v })
    }

    fn record<'a>(&'a self, entries: Vec<(Kind, String, String)>) -> BoxFuture<'a, ()> {
        for (_, id, uuid) in entries {
            // Most ids are re-sightings: a shared read lock answers them without a write.
            if self.map.get(&id).is_some_and(|v| *v == uuid) {
                continue;
            }
            self.insert(id, uuid);
        }
        Box::pin(async {})
    }
}

/// Which kind an EC2 id names, from its prefix (`i-` -> instance, ...).
pub fn kind_of(id: &str) -> Option<Kind> {
    let (prefix, _) = id.split_once('-')?;
    let r = registry().read().ok()?;
    r.prefix.iter().find(|(_, p)| **p == prefix).map(|(n, _)| Kind(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_well_formed() {
        let id = ec2_id(Kind::Instance, "19253fbf-abb7-4013-a8a1-97df3b93f206");
        assert_eq!(id, ec2_id(Kind::Instance, "19253fbf-abb7-4013-a8a1-97df3b93f206"));
        assert!(id.starts_with("i-") && id.len() == 19);
        assert!(is_well_formed(Kind::Instance, &id));
        assert_ne!(ec2_id(Kind::Volume, "x")[4..], ec2_id(Kind::Snapshot, "x")[5..]);
        assert!(!is_well_formed(Kind::Instance, "i-XYZ"));
        assert!(!is_well_formed(Kind::Image, &id));
        assert!(is_well_formed(Kind::Image, "ami-1234abcd"));
    }

    #[test]
    fn id_is_the_digest_prefix() {
        let mut h = Sha256::new();
        h.update(b"volume:abc");
        let full = hex::encode(h.finalize());
        assert_eq!(ec2_id(Kind::Volume, "abc"), format!("vol-{}", &full[..17]));
    }

    #[test]
    fn account_numbers_and_user_ids() {
        let n = account_number("6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c");
        assert!(is_account_number(&n), "{n}");
        assert_eq!(n, account_number("6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c"));
        assert_ne!(n, account_number("00000000-0000-0000-0000-000000000001"));
        // The definition, computed independently.
        let d = Sha256::digest(b"account:abc");
        let v = u64::from_be_bytes(d[..8].try_into().unwrap()) % 1_000_000_000_000;
        assert_eq!(account_number("abc"), format!("{v:012}"));
        assert!(!is_account_number("12345678901") && !is_account_number("12345678901a"));
        let u = iam_user_id("6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c");
        assert_eq!(u.len(), 21);
        assert!(u.starts_with("AIDA") && u[4..].bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_ne!(u, iam_user_id("00000000-0000-0000-0000-000000000001"));
    }

    #[test]
    fn memory_cache_records_and_bounds() {
        let c = MemoryIdCache::new(2);
        c.insert("i-1".into(), "u1".into());
        c.insert("i-2".into(), "u2".into());
        assert_eq!(c.get("i-1").as_deref(), Some("u1"));
        c.insert("i-3".into(), "u3".into());
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("i-3").as_deref(), Some("u3"));
        assert_eq!(kind_of("ami-12345678"), Some(Kind::Image));
        assert_eq!(kind_of("sg-1"), Some(Kind::SecurityGroup));
        assert_eq!(kind_of("nope"), None);
    }

    #[test]
    fn kinds_are_declared_once_with_fixed_prefixes() {
        for k in Kind::NAMED_BY_RUST {
            assert_eq!(Kind::from_name(k.name()), Some(k), "{k:?} is declared by the compiled-in table");
        }
        assert_eq!(Kind::Address.prefix(), "eipalloc");
        assert_eq!(declare("instance", "i"), Ok(Kind::Instance));
        assert!(declare("instance", "inst").unwrap_err().contains("cannot become 'inst'"));
        assert!(declare("not-vol", "vol").unwrap_err().contains("already the prefix of kind 'volume'"));
        assert!(declare("Bad", "b").is_err());
        let k = declare("ids-test-kind", "idstest").unwrap();
        assert_eq!(Kind::from_name("ids-test-kind"), Some(k));
        assert!(ec2_id(k, "u").starts_with("idstest-"));
        assert_eq!(kind_of(&ec2_id(k, "u")), Some(k));
    }
}
