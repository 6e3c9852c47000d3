//! EC2 id scheme (design.md "Identity and IDs"): `<prefix>-` + 17 lowercase hex digits taken from
//! SHA-256(kind ":" CloudStack uuid). Derived, so every gateway computes the same id with no
//! coordination; the reverse direction is a cache that listing the caller's resources rebuilds.

use sha2::{Digest, Sha256};

/// The kinds of CloudStack object that get an EC2 id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Instance,
    Image,
    Volume,
    Snapshot,
    SecurityGroup,
    Address,
    KeyPair,
    Reservation,
    Vpc,
    Subnet,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
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

    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Instance => "i",
            Kind::Image => "ami",
            Kind::Volume => "vol",
            Kind::Snapshot => "snap",
            Kind::SecurityGroup => "sg",
            Kind::Address => "eipalloc",
            Kind::KeyPair => "key",
            Kind::Reservation => "r",
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
        }
    }

    /// Name used in mapping files (`id:instance`) and in the store.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Snapshot => "snapshot",
            Kind::SecurityGroup => "security-group",
            Kind::Address => "address",
            Kind::KeyPair => "key-pair",
            Kind::Reservation => "reservation",
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The EC2 id of a CloudStack object.
pub fn ec2_id(kind: Kind, uuid: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.name().as_bytes());
    h.update(b":");
    h.update(uuid.as_bytes());
    let digest = h.finalize();
    // One allocation: the prefix, '-', then the first 17 hex digits of the digest.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(kind.prefix().len() + 18);
    id.push_str(kind.prefix());
    id.push('-');
    for b in &digest[..9] {
        id.push(HEX[usize::from(b >> 4)] as char);
        id.push(HEX[usize::from(b & 0xf)] as char);
    }
    id.truncate(kind.prefix().len() + 18);
    id
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
    Kind::ALL.into_iter().find(|k| k.prefix() == prefix)
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
}
