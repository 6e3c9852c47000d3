//! Per-resource attributes CloudStack has no field for, kept in the gateway's object store so
//! that every gateway on one store sees them (docs/gateway-state.md): an instance's
//! `disableApiTermination`, a volume's `deleteOnTermination`.
//!
//! One record per resource, its EC2 id as the record id, a JSON object of attribute -> value as
//! the document, owned by the caller's account. A missing record or field is EC2's default.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::exec::Ctx;
use super::vpc_objects::owner;
use crate::base::Ec2Error;
use crate::objects::{Change, Record, WriteError};

/// Record kind of instance attributes (`disableApiTermination`).
pub const INSTANCE: &str = "instance-attributes";
/// Record kind of volume attributes (`deleteOnTermination`).
pub const VOLUME: &str = "volume-attributes";

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

/// The record id of `kind`'s attributes of `id` when the resource's own EC2 id is taken by a
/// record of another kind (a VPC instance's security-group record has the instance's id).
pub fn alt_id(kind: &str, id: &str) -> String {
    format!("{id}@{kind}")
}

/// Every attribute record of `kind` the caller owns, by EC2 id.
pub async fn all(ctx: &Ctx<'_>, kind: &str) -> Result<HashMap<String, Value>, Ec2Error> {
    let l = ctx.ex.objects.list(&owner(ctx), kind).await.map_err(store_failed)?;
    Ok(by_id(l, kind))
}

/// `all` for a listing: may be up to a second behind other gateways' writes
/// (`ObjectStore::list_for_listing`); never for a check a change depends on.
pub async fn all_for_listing(ctx: &Ctx<'_>, kind: &str) -> Result<HashMap<String, Value>, Ec2Error> {
    let l = ctx.ex.objects.list_for_listing(&owner(ctx), kind).await.map_err(store_failed)?;
    Ok(by_id(l, kind))
}

fn by_id(l: Vec<crate::objects::Record>, kind: &str) -> HashMap<String, Value> {
    let suffix = format!("@{kind}");
    l.into_iter().map(|r| (r.id.strip_suffix(&suffix).map(str::to_string).unwrap_or(r.id), r.doc)).collect()
}

/// The attributes of one resource (`{}` when none were ever set).
pub async fn get(ctx: &Ctx<'_>, kind: &str, id: &str) -> Result<Value, Ec2Error> {
    for rid in [id.to_string(), alt_id(kind, id)] {
        if let Some(r) = ctx.ex.objects.get(&owner(ctx), &rid).await.map_err(store_failed)?
            && r.kind == kind
        {
            return Ok(r.doc);
        }
    }
    Ok(json!({}))
}

/// A boolean attribute, `default` when never set.
pub fn flag(doc: Option<&Value>, key: &str, default: bool) -> bool {
    doc.and_then(|d| d.get(key)).and_then(Value::as_bool).unwrap_or(default)
}

/// Set one attribute of each resource (compare-and-set per record, retried on a conflict with
/// another gateway's change).
pub async fn set(ctx: &Ctx<'_>, kind: &str, ids: &[String], key: &str, value: Value) -> Result<(), Ec2Error> {
    for id in ids {
        set_one(ctx, kind, id, key, value.clone()).await?;
    }
    Ok(())
}

async fn set_one(ctx: &Ctx<'_>, kind: &str, id: &str, key: &str, value: Value) -> Result<(), Ec2Error> {
    let me = owner(ctx);
    let mut rid = id.to_string();
    for _ in 0..8 {
        let change = match ctx.ex.objects.get(&me, &rid).await.map_err(store_failed)? {
            // The id is another kind's record: this kind's attributes live under `alt_id`.
            Some(r) if r.kind != kind && rid == id => {
                rid = alt_id(kind, id);
                continue;
            }
            Some(r) if r.kind != kind => return Err(Ec2Error::internal()),
            Some(mut r) => {
                if r.doc.get(key) == Some(&value) {
                    return Ok(());
                }
                if !r.doc.is_object() {
                    r.doc = json!({});
                }
                r.doc[key] = value.clone();
                Change::Update(r)
            }
            None => Change::Insert(Record {
                id: rid.clone(),
                kind: kind.to_string(),
                owner: me.clone(),
                vpc: None,
                doc: json!({ key: value }),
                version: 0,
            }),
        };
        match ctx.ex.objects.write(vec![change]).await {
            Ok(()) => return Ok(()),
            Err(WriteError::Failed(e)) => return Err(store_failed(e)),
            Err(WriteError::Conflict { .. }) => continue,
        }
    }
    Err(Ec2Error::internal())
}

/// Forget the attributes of resources that are gone (best effort: a leftover record is only a
/// few bytes and its id is never reused).
pub async fn forget(ctx: &Ctx<'_>, ids: &[String]) {
    let me = owner(ctx);
    for id in ids {
        let rids = [id.clone(), alt_id(INSTANCE, id), alt_id(VOLUME, id)];
        for rid in rids {
            if let Ok(Some(r)) = ctx.ex.objects.get(&me, &rid).await {
                let _ = ctx.ex.objects.write(vec![Change::Delete { id: r.id, version: r.version }]).await;
            }
        }
    }
}
