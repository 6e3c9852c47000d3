//! EC2 ids users already hold must never change: a few known CloudStack uuid -> EC2 id pairs for
//! every kind, computed before kinds became data (docs/ids.md describes the scheme).

use ec2bridge::ids::{Kind, ec2_id};

const PINNED: &[(&str, &str, &str)] = &[
    ("instance", "6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c", "i-a931059526638e70d"),
    ("instance", "00000000-0000-0000-0000-000000000001", "i-825d9108378e90835"),
    ("image", "6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c", "ami-4c305f8af205a7613"),
    ("image", "00000000-0000-0000-0000-000000000001", "ami-56084987b8b15bd04"),
    ("volume", "6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c", "vol-6ab8653f0844dafa2"),
    ("volume", "00000000-0000-0000-0000-000000000001", "vol-bc6f3b2e4ddc18b22"),
    ("snapshot", "6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c", "snap-e154b201bcdabc6fc"),
    ("snapshot", "00000000-0000-0000-0000-000000000001", "snap-06b8a977a5ced1353"),
    ("security-group", "6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c", "sg-26387d521d0d955d1"),
    ("security-group", "00000000-0000-0000-0000-000000000001", "sg-bea8c566be6036de4"),
    ("address", "6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c", "eipalloc-ece0e4318966f9ee6"),
    ("address", "00000000-0000-0000-0000-000000000001", "eipalloc-7c8e4759f7cf67918"),
    ("key-pair", "6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c", "key-d6da9bb1c9123729a"),
    ("key-pair", "00000000-0000-0000-0000-000000000001", "key-8694df0e70fab90dd"),
    ("reservation", "6f8a1c52-3e7d-4b0a-9c21-5d4e3f2a1b0c", "r-b3d241ef5ec076ab7"),
    ("reservation", "00000000-0000-0000-0000-000000000001", "r-d373c400fb004b0ae"),
];

#[test]
fn known_ids_keep_their_values() {
    for (kind, uuid, id) in PINNED {
        let k = Kind::from_name(kind).unwrap_or_else(|| panic!("kind {kind} is gone"));
        assert_eq!(ec2_id(k, uuid), *id, "{kind} {uuid}");
    }
}

/// Account numbers (docs/accounts.md) are `ownerId` and STS `Account`: they must never change either.
#[test]
fn known_account_numbers_keep_their_values() {
    use ec2bridge::ids::account_number;
    assert_eq!(account_number("9da63228-a384-4532-9487-8bb4510950ec"), "857078328926");
    assert_eq!(account_number("547d0d23-dcfe-48a2-b3c5-51df66a34a68"), "564799341379");
    assert_eq!(account_number("ac27644b-f1e1-423b-8b29-470ce097a450"), "856919153127");
}
