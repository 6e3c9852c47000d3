//! `Journal` on the store's database (tables `operations`, `tombstones`; docs/gateway-state.md),
//! so that every gateway sharing a PostgreSQL honours the same ClientTokens, shows the same
//! terminated instances and takes over the work a dead gateway left. The CloudStack secret an
//! operation runs with is sealed with the store key (bound to the operation id).

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use super::commit::Write;
use crate::ids::BoxFuture;
use crate::journal::{Journal, Op, Tomb};

macro_rules! op_columns {
    () => {
        "op_id, kind, region, owner, token, cs_key, cs_secret, done, doc, version, holder, lease_until, created_at"
    };
}

fn aad(id: &str) -> Vec<u8> {
    format!("operation:{id}").into_bytes()
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Store {
    fn op_from(&self, r: &AnyRow) -> Result<Op, String> {
        let id: String = r.try_get(0).map_err(s)?;
        let sealed: String = r.try_get(6).map_err(s)?;
        let doc: String = r.try_get(8).map_err(s)?;
        let done: i64 = r.try_get(7).map_err(s)?;
        Ok(Op {
            cs_secret: self.secrets.open(&sealed, &aad(&id)).unwrap_or_default(),
            kind: r.try_get(1).map_err(s)?,
            region: r.try_get(2).map_err(s)?,
            owner: r.try_get(3).map_err(s)?,
            token: r.try_get(4).map_err(s)?,
            cs_key: r.try_get(5).map_err(s)?,
            done: done != 0,
            doc: serde_json::from_str(&doc).unwrap_or(Value::Null),
            version: r.try_get(9).map_err(s)?,
            holder: r.try_get(10).map_err(s)?,
            lease_until: r.try_get(11).map_err(s)?,
            created: r.try_get(12).map_err(s)?,
            id,
        })
    }

    async fn op_by_token(&self, token: &str) -> Result<Option<Op>, String> {
        let row = sqlx::query(concat!("SELECT ", op_columns!(), " FROM operations WHERE token = $1"))
            .bind(token)
            .fetch_optional(&self.pool)
            .await
            .map_err(s)?;
        row.as_ref().map(|r| self.op_from(r)).transpose()
    }
}

impl Journal for Store {
    fn begin<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<Option<Op>, String>> {
        Box::pin(async move {
            let sealed = self.secrets.seal(&op.cs_secret, &aad(&op.id)).map_err(s)?;
            let o = op.clone();
            let inserted = self
                .small_write(Write::one(
                    concat!(
                        "INSERT INTO operations (",
                        op_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING"
                    ),
                    vec![
                        o.id.into(),
                        o.kind.into(),
                        o.region.into(),
                        o.owner.into(),
                        o.token.into(),
                        o.cs_key.into(),
                        sealed.into(),
                        (o.done as i64).into(),
                        o.doc.to_string().into(),
                        o.version.into(),
                        o.holder.into(),
                        o.lease_until.into(),
                        o.created.into(),
                    ],
                ))
                .await?;
            if inserted == 1 {
                return Ok(None);
            }
            match &op.token {
                Some(t) => match self.op_by_token(t).await? {
                    Some(held) => Ok(Some(held)),
                    // Taken and gone again between the two statements: try once more.
                    None => Err("the operation's token changed hands; try again".into()),
                },
                None => Err(format!("operation id {} is taken", op.id)),
            }
        })
    }

    fn update<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let o = op.clone();
            let updated = self
                .small_write(Write::one(
                    "UPDATE operations SET done = $1, doc = $2, version = version + 1, holder = $3, \
                     lease_until = $4, kind = $5 WHERE op_id = $6 AND version = $7",
                    vec![
                        (o.done as i64).into(),
                        o.doc.to_string().into(),
                        o.holder.into(),
                        o.lease_until.into(),
                        o.kind.into(),
                        o.id.into(),
                        o.version.into(),
                    ],
                ))
                .await?;
            Ok(updated == 1)
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.small_write(Write::one("DELETE FROM operations WHERE op_id = $1", vec![id.into()])).await?;
            Ok(())
        })
    }

    fn by_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Op>, String>> {
        Box::pin(self.op_by_token(token))
    }

    fn take_expired<'a>(
        &'a self,
        region: &'a str,
        now: i64,
        holder: &'a str,
        until: i64,
    ) -> BoxFuture<'a, Result<Vec<Op>, String>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                op_columns!(),
                " FROM operations WHERE done = 0 AND region = $1 AND lease_until < $2 ORDER BY created_at LIMIT 100"
            ))
            .bind(region)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(s)?;
            let mut out = Vec::new();
            for r in &rows {
                let mut op = self.op_from(r)?;
                // Compare-and-set on the version: of several gateways sweeping at once, one wins.
                let won = sqlx::query(
                    "UPDATE operations SET holder = $1, lease_until = $2, version = version + 1 \
                     WHERE op_id = $3 AND version = $4",
                )
                .bind(holder)
                .bind(until)
                .bind(&op.id)
                .bind(op.version)
                .execute(&self.pool)
                .await
                .map_err(s)?;
                if won.rows_affected() == 1 {
                    op.holder = holder.to_string();
                    op.lease_until = until;
                    op.version += 1;
                    out.push(op);
                }
            }
            Ok(out)
        })
    }

    fn renew<'a>(&'a self, holder: &'a str, until: i64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("UPDATE operations SET lease_until = $1 WHERE holder = $2 AND done = 0")
                .bind(until)
                .bind(holder)
                .execute(&self.pool)
                .await
                .map_err(s)?;
            Ok(())
        })
    }

    fn prune_done(&self, before: i64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM operations WHERE done = 1 AND created_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(s)?;
            Ok(())
        })
    }

    fn bury<'a>(&'a self, t: &'a Tomb, keep: usize, expire_before: i64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(s)?;
            sqlx::query(
                "INSERT INTO tombstones (ec2_id, owner, doc, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (ec2_id) DO UPDATE SET owner = excluded.owner, doc = excluded.doc, \
                 created_at = excluded.created_at",
            )
            .bind(&t.id)
            .bind(&t.owner)
            .bind(t.doc.to_string())
            .bind(t.at)
            .execute(&mut *tx)
            .await
            .map_err(s)?;
            sqlx::query("DELETE FROM tombstones WHERE owner = $1 AND created_at < $2")
                .bind(&t.owner)
                .bind(expire_before)
                .execute(&mut *tx)
                .await
                .map_err(s)?;
            // All but the newest `keep` of this owner.
            sqlx::query(
                "DELETE FROM tombstones WHERE owner = $1 AND ec2_id NOT IN \
                 (SELECT ec2_id FROM tombstones WHERE owner = $1 ORDER BY created_at DESC, ec2_id DESC LIMIT $2)",
            )
            .bind(&t.owner)
            .bind(keep as i64)
            .execute(&mut *tx)
            .await
            .map_err(s)?;
            tx.commit().await.map_err(s)
        })
    }

    fn tombs<'a>(&'a self, owner: &'a str, since: i64) -> BoxFuture<'a, Result<Vec<Tomb>, String>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT ec2_id, owner, doc, created_at FROM tombstones WHERE owner = $1 AND created_at >= $2 \
                 ORDER BY created_at, ec2_id",
            )
            .bind(owner)
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(s)?;
            rows.iter()
                .map(|r| {
                    let doc: String = r.try_get(2).map_err(s)?;
                    Ok(Tomb {
                        id: r.try_get(0).map_err(s)?,
                        owner: r.try_get(1).map_err(s)?,
                        doc: serde_json::from_str(&doc).unwrap_or(Value::Null),
                        at: r.try_get(3).map_err(s)?,
                    })
                })
                .collect()
        })
    }

    fn unbury<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM tombstones WHERE ec2_id = $1 AND owner = $2")
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map_err(s)?;
            Ok(())
        })
    }
}
