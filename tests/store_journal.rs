//! The operations journal and tombstones on the store (`Journal` for `Store`;
//! docs/gateway-state.md "The operations journal") against SQLite and, when
//! EC2BRIDGE_TEST_POSTGRES_URL is set, PostgreSQL: the shared conformance checks, two handles on
//! one database standing for two gateways (one token, one take-over), and the CloudStack secret
//! sealed at rest.

use ec2bridge::journal::{self, Journal, Op};
use ec2bridge::store::Store;
use serde_json::json;
use sqlx::{AnyPool, Row};
use store_support::{pg_db, sqlite_db};

mod store_support;

fn op(token: &str, holder: &str, lease_until: i64) -> Op {
    Op {
        id: journal::new_op_id(),
        kind: "client-token".into(),
        region: "us-east-1".into(),
        owner: "alice".into(),
        token: Some(token.into()),
        cs_key: "AKEY".into(),
        cs_secret: "very-secret-cloudstack-key".into(),
        done: false,
        doc: json!({"fingerprint": "f"}),
        version: 0,
        holder: holder.into(),
        lease_until,
        created: journal::now(),
    }
}

async fn two_gateways(a: Store, b: Store, raw: AnyPool) {
    journal::conformance(&a).await;
    // One token, two gateways: the second finds the first's record, secret readable.
    let first = op("alice\u{1f}RunInstances\u{1f}tok", "g1", journal::now() + 30);
    assert_eq!(a.begin(&first).await.unwrap(), None);
    let held = b.begin(&op("alice\u{1f}RunInstances\u{1f}tok", "g2", journal::now() + 30)).await.unwrap().unwrap();
    assert_eq!((held.id.as_str(), held.cs_secret.as_str()), (first.id.as_str(), "very-secret-cloudstack-key"));
    // Sealed at rest.
    let row =
        sqlx::query("SELECT cs_secret FROM operations WHERE op_id = $1").bind(&first.id).fetch_one(&raw).await.unwrap();
    let stored: String = row.try_get(0).unwrap();
    assert!(!stored.contains("very-secret"), "{stored}");
    // g1 dies (no renewal): once its lease is over exactly one of the others takes the record.
    let later = journal::now() + 60;
    let (x, y) = tokio::join!(
        a.take_expired("us-east-1", later, "g3", later + 30),
        b.take_expired("us-east-1", later, "g4", later + 30)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.iter().chain(&y).filter(|o| o.id == first.id).count(), 1);
    a.remove(&first.id).await.unwrap();
    assert!(b.by_token("alice\u{1f}RunInstances\u{1f}tok").await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_journal() {
    let db = sqlite_db().await;
    let (a, b, _) = db.two_handles().await;
    let raw = db.raw().await;
    two_gateways(a, b, raw).await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_journal() {
    let Some(db) = pg_db().await else { return };
    let (a, b, _) = db.two_handles().await;
    let raw = db.raw().await;
    two_gateways(a.clone(), b.clone(), raw.clone()).await;
    a.close().await;
    b.close().await;
    raw.close().await;
    db.cleanup().await;
}
