//! Tags the gateway keeps per account (`account_tags`; docs/gateway-state.md "Tags kept by the
//! gateway") and store-held snapshots of never-attached volumes (`vpc_objects` records of kind
//! `empty-snapshot`), against SQLite and, when EC2BRIDGE_TEST_POSTGRES_URL is set, PostgreSQL:
//! two handles on one database stand for two gateways. The in-memory implementation (a gateway
//! without a store) answers the same.

use ec2bridge::objects::{AccountTag, Change, MemoryObjects, ObjectStore, Record, TagChange};
use ec2bridge::store::Store;
use serde_json::json;
use store_support::{pg_db, sqlite_db};

mod store_support;

const AMI: &str = "ami-0123456789abcdef0";
const SNAP: &str = "snap-0123456789abcdef0";

fn put(id: &str, rtype: &str, k: &str, v: &str) -> TagChange {
    TagChange::Put(AccountTag { resource_id: id.into(), resource_type: rtype.into(), key: k.into(), value: v.into() })
}

fn rows(tags: Vec<AccountTag>) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = tags.into_iter().map(|t| (t.resource_id, t.resource_type, t.key, t.value)).collect();
    v.sort();
    v
}

fn r(id: &str, t: &str, k: &str, v: &str) -> (String, String, String, String) {
    (id.into(), t.into(), k.into(), v.into())
}

async fn shared(a: &dyn ObjectStore, b: &dyn ObjectStore) {
    // Two accounts tag the same image; each sees its own tags only, through either handle.
    a.change_account_tags("alice", vec![put(AMI, "image", "Name", "base"), put(AMI, "image", "team", "a")])
        .await
        .unwrap();
    b.change_account_tags("bob", vec![put(AMI, "image", "Name", "theirs")]).await.unwrap();
    assert_eq!(
        rows(b.account_tags("alice", None).await.unwrap()),
        vec![r(AMI, "image", "Name", "base"), r(AMI, "image", "team", "a")]
    );
    assert_eq!(rows(a.account_tags("bob", Some("image")).await.unwrap()), vec![r(AMI, "image", "Name", "theirs")]);
    assert!(a.account_tags("bob", Some("snapshot")).await.unwrap().is_empty());
    assert!(a.account_tags("carol", None).await.unwrap().is_empty());
    // Put replaces a key's value; a batch is applied in order.
    b.change_account_tags("alice", vec![put(AMI, "image", "team", "b"), put(SNAP, "snapshot", "k", "v")])
        .await
        .unwrap();
    assert_eq!(
        rows(a.account_tags("alice", None).await.unwrap()),
        vec![r(AMI, "image", "Name", "base"), r(AMI, "image", "team", "b"), r(SNAP, "snapshot", "k", "v")]
    );
    assert_eq!(rows(a.account_tags("alice", Some("snapshot")).await.unwrap()), vec![r(SNAP, "snapshot", "k", "v")]);
    // Remove: by key and a value that does not match (nothing), by key, every tag of a resource.
    let rm = |id: &str, k: Option<&str>, v: Option<&str>| TagChange::Remove {
        resource_id: id.into(),
        key: k.map(str::to_string),
        value: v.map(str::to_string),
    };
    a.change_account_tags("alice", vec![rm(AMI, Some("team"), Some("a"))]).await.unwrap();
    assert_eq!(b.account_tags("alice", Some("image")).await.unwrap().len(), 2);
    a.change_account_tags("alice", vec![rm(AMI, Some("team"), None)]).await.unwrap();
    assert_eq!(rows(b.account_tags("alice", Some("image")).await.unwrap()), vec![r(AMI, "image", "Name", "base")]);
    a.change_account_tags("alice", vec![rm(AMI, None, None), rm(SNAP, None, None)]).await.unwrap();
    assert!(b.account_tags("alice", None).await.unwrap().is_empty());
    // Bob's tags on the same image were not touched.
    assert_eq!(rows(b.account_tags("bob", None).await.unwrap()), vec![r(AMI, "image", "Name", "theirs")]);

    // A snapshot of a never-attached volume, made through one gateway, is seen and deleted
    // through the other; other accounts do not see it.
    let doc = json!({"id": "6f0c9d3e-0000-4000-8000-000000000001", "state": "BackedUp", "virtualsize": 2u64 << 30});
    let rec = Record {
        id: SNAP.into(),
        kind: "empty-snapshot".into(),
        owner: "alice".into(),
        vpc: None,
        doc: doc.clone(),
        version: 0,
    };
    a.write(vec![Change::Insert(rec)]).await.unwrap();
    let seen = b.get("alice", SNAP).await.unwrap().unwrap();
    assert_eq!((seen.kind.as_str(), &seen.doc), ("empty-snapshot", &doc));
    assert_eq!(b.list("alice", "empty-snapshot").await.unwrap().len(), 1);
    assert!(b.get("bob", SNAP).await.unwrap().is_none());
    b.write(vec![Change::Delete { id: SNAP.into(), version: seen.version }]).await.unwrap();
    assert!(a.get("alice", SNAP).await.unwrap().is_none());
}

#[tokio::test]
async fn memory_objects_keep_account_tags() {
    let m = MemoryObjects::default();
    shared(&m, &m).await;
}

#[tokio::test]
async fn sqlite_two_handles_share_account_tags() {
    let db = sqlite_db().await;
    let (a, b, key) = db.two_handles().await;
    shared(&a, &b).await;
    // Reopening runs the migrations again without harm and keeps the rows.
    a.change_account_tags("alice", vec![put(AMI, "image", "kept", "yes")]).await.unwrap();
    a.close().await;
    let c = Store::open(&db.url, &key).await.unwrap();
    assert_eq!(rows(c.account_tags("alice", None).await.unwrap()), vec![r(AMI, "image", "kept", "yes")]);
    c.close().await;
    b.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_two_gateways_share_account_tags() {
    let Some(db) = pg_db().await else { return };
    let (a, b, _) = db.two_handles().await;
    shared(&a, &b).await;
    a.close().await;
    b.close().await;
    db.cleanup().await;
}
