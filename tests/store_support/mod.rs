//! The databases the store tests run against: SQLite always, PostgreSQL when
//! EC2BRIDGE_TEST_POSTGRES_URL is set. Each PostgreSQL database is a schema of its own (dropped
//! by `cleanup`; ones left by crashed runs over an hour ago are dropped too), so parallel and
//! repeated runs do not collide on the shared database.
#![allow(dead_code)]

use std::path::PathBuf;

use ec2bridge::store::{Backend, KeySource, Store, generate_key_base64};
use sqlx::{AnyPool, Executor, Row};

pub const PG_ENV: &str = "EC2BRIDGE_TEST_POSTGRES_URL";

/// One database to run a test body against.
pub struct Db {
    pub url: String,
    pub backend: Backend,
    /// PostgreSQL: the schema to drop afterwards. SQLite: the directory to remove.
    schema: Option<(String, String)>,
    pub dir: Option<PathBuf>,
}

impl Db {
    pub async fn cleanup(self) {
        if let Some((base, schema)) = self.schema {
            let pool = AnyPool::connect(&base).await.unwrap();
            pool.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).await.unwrap();
            pool.close().await;
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Two handles on the database with one key: two gateways sharing one store.
    pub async fn two_handles(&self) -> (Store, Store, KeySource) {
        let k = key();
        let a = Store::open(&self.url, &k).await.unwrap();
        let b = Store::open(&self.url, &k).await.unwrap();
        (a, b, k)
    }

    /// A second, raw connection for looking under the store.
    pub async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        let url = if self.backend == Backend::Sqlite { format!("{}?mode=rw", self.url) } else { self.url.clone() };
        AnyPool::connect(&url).await.unwrap()
    }
}

pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

pub async fn sqlite_db() -> Db {
    let dir = std::env::temp_dir().join(format!("ec2bridge-store-test-{}", unique()));
    let url = format!("sqlite://{}", dir.join("store.db").display());
    Db { url, backend: Backend::Sqlite, schema: None, dir: Some(dir) }
}

pub async fn pg_db() -> Option<Db> {
    let Ok(base) = std::env::var(PG_ENV) else {
        eprintln!("skipping PostgreSQL: {PG_ENV} not set");
        return None;
    };
    sqlx::any::install_default_drivers();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let schema = format!("ec2b_test_{now}_{}", unique());
    let pool = AnyPool::connect(&base).await.expect("connect to the test PostgreSQL");
    // Schemas left behind by crashed runs more than an hour ago.
    for row in sqlx::query("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'ec2b_test_%'")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let name: String = row.try_get(0).unwrap();
        let born: i64 = name.split('_').nth(2).and_then(|t| t.parse().ok()).unwrap_or(now);
        if born < now - 3600 {
            let _ = pool.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE"))).await;
        }
    }
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options[search_path]={schema}");
    Some(Db { url, backend: Backend::Postgres, schema: Some((base, schema)), dir: None })
}

pub async fn databases() -> Vec<Db> {
    let mut v = vec![sqlite_db().await];
    v.extend(pg_db().await);
    v
}

pub fn key() -> KeySource {
    KeySource::Base64(generate_key_base64().unwrap())
}
