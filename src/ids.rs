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
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Instance,
        Kind::Image,
        Kind::Volume,
        Kind::Snapshot,
        Kind::SecurityGroup,
        Kind::Address,
        Kind::KeyPair,
        Kind::Reservation,
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
    let digest = hex::encode(h.finalize());
    format!("{}-{}", kind.prefix(), &digest[..17])
}

/// True when `id` has the shape of an id of `kind`: the prefix, then 8 or 17 lowercase hex digits.
pub fn is_well_formed(kind: Kind, id: &str) -> bool {
    let Some(hexpart) = id.strip_prefix(kind.prefix()).and_then(|r| r.strip_prefix('-')) else { return false };
    (hexpart.len() == 8 || hexpart.len() == 17)
        && hexpart.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
}
