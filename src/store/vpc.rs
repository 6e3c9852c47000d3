//! `ObjectStore` on the store's database (tables `vpc_objects`, `vpc_claims`, `account_tags`; docs/vpc.md "The
//! store"), so every gateway sharing a PostgreSQL sees the same internet gateways, route tables
//! and DHCP options. A batch of changes is one transaction; versions and the claims' primary key
//! make concurrent changes from several gateways safe.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, now_rfc3339};
use crate::ids::BoxFuture;
use crate::objects::{AccountTag, Change, ObjectStore, Record, TagChange, WriteError};

fn record(r: &AnyRow) -> Result<Record, sqlx::Error> {
    let doc: String = r.try_get(4)?;
    Ok(Record {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        owner: r.try_get(2)?,
        vpc: r.try_get(3)?,
        doc: serde_json::from_str(&doc).unwrap_or(Value::Null),
        version: r.try_get(5)?,
    })
}

fn failed(e: sqlx::Error) -> WriteError {
    WriteError::Failed(e.to_string())
}

fn conflict(what: &str, holder: Option<String>) -> WriteError {
    WriteError::Conflict { what: what.to_string(), holder }
}

impl Store {
    async fn apply_changes(&self, changes: Vec<Change>) -> Result<(), WriteError> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await.map_err(failed)?;
        for c in changes {
            match c {
                Change::Insert(r) => {
                    let done = sqlx::query(
                        "INSERT INTO vpc_objects (ec2_id, kind, owner, vpc_id, doc, version, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ec2_id) DO NOTHING",
                    )
                    .bind(&r.id)
                    .bind(&r.kind)
                    .bind(&r.owner)
                    .bind(r.vpc.as_deref())
                    .bind(r.doc.to_string())
                    .bind(r.version)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                    if done.rows_affected() == 0 {
                        return Err(conflict(&r.id, None));
                    }
                }
                Change::Update(r) => {
                    let done = sqlx::query(
                        "UPDATE vpc_objects SET doc = $1, vpc_id = $2, version = version + 1 \
                         WHERE ec2_id = $3 AND version = $4",
                    )
                    .bind(r.doc.to_string())
                    .bind(r.vpc.as_deref())
                    .bind(&r.id)
                    .bind(r.version)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                    if done.rows_affected() == 0 {
                        return Err(conflict(&r.id, None));
                    }
                }
                Change::Delete { id, version } => {
                    let done = sqlx::query("DELETE FROM vpc_objects WHERE ec2_id = $1 AND version = $2")
                        .bind(&id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                    if done.rows_affected() == 0 {
                        return Err(conflict(&id, None));
                    }
                    sqlx::query("DELETE FROM vpc_claims WHERE holder = $1")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                }
                Change::Claim { claim, holder } => {
                    sqlx::query(
                        "INSERT INTO vpc_claims (claim, holder, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (claim) DO NOTHING",
                    )
                    .bind(&claim)
                    .bind(&holder)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                    let row = sqlx::query("SELECT holder FROM vpc_claims WHERE claim = $1")
                        .bind(&claim)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(failed)?;
                    let current: String = row.try_get(0).map_err(failed)?;
                    if current != holder {
                        return Err(conflict(&claim, Some(current)));
                    }
                }
                Change::Release { claim, holder } => {
                    sqlx::query("DELETE FROM vpc_claims WHERE claim = $1 AND holder = $2")
                        .bind(&claim)
                        .bind(&holder)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                }
            }
        }
        tx.commit().await.map_err(failed)
    }
}

impl Store {
    async fn apply_tag_changes(&self, owner: &str, changes: Vec<TagChange>) -> Result<(), sqlx::Error> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        for c in changes {
            match c {
                TagChange::Put(t) => {
                    sqlx::query(
                        "INSERT INTO account_tags (owner, resource_id, resource_type, tag_key, tag_value, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (owner, resource_id, tag_key) \
                         DO UPDATE SET tag_value = excluded.tag_value, resource_type = excluded.resource_type",
                    )
                    .bind(owner)
                    .bind(&t.resource_id)
                    .bind(&t.resource_type)
                    .bind(&t.key)
                    .bind(&t.value)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                }
                TagChange::Remove { resource_id, key: None, .. } => {
                    sqlx::query("DELETE FROM account_tags WHERE owner = $1 AND resource_id = $2")
                        .bind(owner)
                        .bind(&resource_id)
                        .execute(&mut *tx)
                        .await?;
                }
                TagChange::Remove { resource_id, key: Some(key), value: None } => {
                    sqlx::query("DELETE FROM account_tags WHERE owner = $1 AND resource_id = $2 AND tag_key = $3")
                        .bind(owner)
                        .bind(&resource_id)
                        .bind(&key)
                        .execute(&mut *tx)
                        .await?;
                }
                TagChange::Remove { resource_id, key: Some(key), value: Some(value) } => {
                    sqlx::query(
                        "DELETE FROM account_tags WHERE owner = $1 AND resource_id = $2 AND tag_key = $3 \
                         AND tag_value = $4",
                    )
                    .bind(owner)
                    .bind(&resource_id)
                    .bind(&key)
                    .bind(&value)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await
    }
}

impl ObjectStore for Store {
    fn get<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Record>, String>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT ec2_id, kind, owner, vpc_id, doc, version FROM vpc_objects WHERE ec2_id = $1 AND owner = $2",
            )
            .bind(id)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
            row.as_ref().map(record).transpose().map_err(|e| e.to_string())
        })
    }

    fn list<'a>(&'a self, owner: &'a str, kind: &'a str) -> BoxFuture<'a, Result<Vec<Record>, String>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT ec2_id, kind, owner, vpc_id, doc, version FROM vpc_objects \
                 WHERE owner = $1 AND kind = $2 ORDER BY created_at, ec2_id",
            )
            .bind(owner)
            .bind(kind)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
            rows.iter().map(record).collect::<Result<_, _>>().map_err(|e| e.to_string())
        })
    }

    fn holder<'a>(&'a self, claim: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT holder FROM vpc_claims WHERE claim = $1")
                .bind(claim)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
            row.map(|r| r.try_get::<String, _>(0)).transpose().map_err(|e| e.to_string())
        })
    }

    fn write<'a>(&'a self, changes: Vec<Change>) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(self.apply_changes(changes))
    }

    fn account_tags<'a>(
        &'a self,
        owner: &'a str,
        resource_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<AccountTag>, String>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT resource_id, resource_type, tag_key, tag_value FROM account_tags \
                 WHERE owner = $1 AND ($2 = '' OR resource_type = $2) ORDER BY created_at, resource_id, tag_key",
            )
            .bind(owner)
            .bind(resource_type.unwrap_or(""))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
            rows.iter()
                .map(|r| {
                    Ok(AccountTag {
                        resource_id: r.try_get(0)?,
                        resource_type: r.try_get(1)?,
                        key: r.try_get(2)?,
                        value: r.try_get(3)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(|e| e.to_string())
        })
    }

    fn change_account_tags<'a>(&'a self, owner: &'a str, changes: Vec<TagChange>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.apply_tag_changes(owner, changes).await.map_err(|e| e.to_string()) })
    }
}
