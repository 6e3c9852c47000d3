//! The VPC object store (`ObjectStore` on the store's database; docs/vpc.md "The store") against
//! SQLite and, when EC2BRIDGE_TEST_POSTGRES_URL is set, PostgreSQL: two handles on one database
//! stand for two gateways. Batches are all or nothing, versions compare, claims are unique, and
//! concurrent read-modify-write loops from both handles lose nothing.

use ec2bridge::objects::{Change, ObjectStore, Record, WriteError};
use ec2bridge::store::Store;
use serde_json::json;
use store_support::{pg_db, sqlite_db};

mod store_support;

fn table(id: &str) -> Record {
    Record {
        id: id.into(),
        kind: "route-table".into(),
        owner: "acct".into(),
        vpc: Some("vpc-0123456789abcdef0".into()),
        doc: json!({"id": id, "routes": []}),
        version: 0,
    }
}

async fn two_gateways(a: Store, b: Store) {
    // Made through one, seen through the other.
    a.write(vec![
        Change::Insert(table("rtb-1")),
        Change::Claim { claim: "main-rtb:vpc-0123456789abcdef0".into(), holder: "rtb-1".into() },
    ])
    .await
    .unwrap();
    let seen = b.get("acct", "rtb-1").await.unwrap().unwrap();
    assert_eq!(seen.doc["id"], "rtb-1");
    assert_eq!(seen.vpc.as_deref(), Some("vpc-0123456789abcdef0"));
    assert!(b.get("other", "rtb-1").await.unwrap().is_none());
    assert_eq!(b.list("acct", "route-table").await.unwrap().len(), 1);
    // The claim is held: a second main table fails as a whole (no rtb-2 row is left).
    let e = b
        .write(vec![
            Change::Insert(table("rtb-2")),
            Change::Claim { claim: "main-rtb:vpc-0123456789abcdef0".into(), holder: "rtb-2".into() },
        ])
        .await
        .unwrap_err();
    assert_eq!(e, WriteError::Conflict { what: "main-rtb:vpc-0123456789abcdef0".into(), holder: Some("rtb-1".into()) });
    assert!(a.get("acct", "rtb-2").await.unwrap().is_none());
    // Both add 10 routes concurrently, each by read-modify-write with retries: all 20 survive.
    async fn add_routes(s: Store, tag: &'static str) {
        for i in 0..10 {
            loop {
                let mut r = s.get("acct", "rtb-1").await.unwrap().unwrap();
                r.doc["routes"].as_array_mut().unwrap().push(json!(format!("{tag}{i}")));
                match s.write(vec![Change::Update(r)]).await {
                    Ok(()) => break,
                    Err(WriteError::Conflict { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    tokio::join!(add_routes(a.clone(), "a"), add_routes(b.clone(), "b"));
    let r = a.get("acct", "rtb-1").await.unwrap().unwrap();
    assert_eq!(r.doc["routes"].as_array().unwrap().len(), 20);
    assert_eq!(r.version, 20);
    // A stale delete fails; the current one removes the row and its claims.
    assert!(b.write(vec![Change::Delete { id: "rtb-1".into(), version: 3 }]).await.is_err());
    b.write(vec![Change::Delete { id: "rtb-1".into(), version: 20 }]).await.unwrap();
    assert_eq!(a.holder("main-rtb:vpc-0123456789abcdef0").await.unwrap(), None);
    assert!(a.list("acct", "route-table").await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_two_handles_share_objects() {
    let db = sqlite_db().await;
    let (a, b, _) = db.two_handles().await;
    two_gateways(a, b).await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_two_gateways_share_objects() {
    let Some(db) = pg_db().await else { return };
    let (a, b, _) = db.two_handles().await;
    two_gateways(a.clone(), b.clone()).await;
    a.close().await;
    b.close().await;
    db.cleanup().await;
}
