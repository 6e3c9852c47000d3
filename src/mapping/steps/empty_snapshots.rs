//! Snapshots of volumes that were never attached (docs/gateway-state.md "Snapshots of
//! never-attached volumes"). CloudStack makes a data volume on primary storage only when it is
//! first attached (until then it is `Allocated`) and snapshots only volumes on storage; EC2
//! snapshots any volume. A volume that was never on storage was never written: it is all zeros,
//! and its snapshot is faithfully "an empty disk of N GiB". The gateway keeps such a snapshot in
//! its object store (record kind `empty-snapshot`, `[kind.snapshot] store_records`), shaped as
//! listSnapshots answers a snapshot, so every Describe/Delete path and every gateway on the
//! store treat it like any other; its tags are kept per account (`account_tags`). A volume made
//! from it is a new empty volume of the asked size.

use serde_json::{Value, json};

use super::super::convert::cloudstack_now;
use super::super::exec::{Ctx, Prepared};
use super::account_tags;
use super::common::{field, field_text, forget_record, tag_list};
use super::vpc_objects::owner;
use crate::base::Ec2Error;
use crate::ids::{self, Kind};
use crate::objects::{AccountTag, Change, Record, TagChange, WriteError};

/// Record kind of a snapshot of a never-attached volume (`[kind.snapshot] store_records`).
pub const KIND: &str = "empty-snapshot";

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

/// A data volume CloudStack has never put on storage, so nothing was ever written to it:
/// `Allocated`, no job running on it, not made from a snapshot (CloudStack puts those on storage
/// at once; one still `Allocated` is being made). A volume that was attached once is `Ready`
/// for good, even when detached again, and does not qualify. Root volumes never qualify (the
/// template is copied onto them when their VM first starts).
pub fn never_written(v: &Value) -> bool {
    field(v, "state") == Some("Allocated")
        && field(v, "type") == Some("DATADISK")
        && field(v, "snapshotid").is_none()
        && field(v, "templateid").is_none()
        && v.get("jobstatus").map(super::super::expr::scalar_text).as_deref() != Some("0")
}

/// CreateSnapshot of a never-written volume: a completed snapshot in the store (and its tags),
/// answered as listSnapshots would list it.
pub async fn create(
    ctx: &Ctx<'_>,
    volume: &Value,
    description: Option<&str>,
    tags: &[(String, String)],
) -> Result<Value, Ec2Error> {
    let uuid = uuid::Uuid::new_v4().to_string();
    let id = ids::ec2_id(Kind::Snapshot, &uuid);
    let mut doc = json!({
        "id": uuid,
        "name": description.unwrap_or_default(),
        "snapshottype": "MANUAL",
        "volumeid": field(volume, "id").unwrap_or_default(),
        "volumename": field(volume, "name").unwrap_or_default(),
        "volumetype": "DATADISK",
        "created": cloudstack_now(),
        "state": "BackedUp",
        "physicalsize": 0,
        "virtualsize": volume.get("size").cloned().unwrap_or(Value::Null),
    });
    for k in ["zoneid", "zonename", "account", "domainid", "domain"] {
        if let Some(x) = field(volume, k) {
            doc[k] = Value::String(x.to_string());
        }
    }
    if doc.get("account").is_none()
        && let Some(a) = &ctx.who.account
    {
        doc["account"] = Value::String(a.clone());
    }
    let rec = Record { id: id.clone(), kind: KIND.into(), owner: owner(ctx), vpc: None, doc: doc.clone(), version: 0 };
    match ctx.ex.objects.write(vec![Change::Insert(rec)]).await {
        Ok(()) => {}
        Err(WriteError::Failed(e)) => return Err(store_failed(e)),
        // A random uuid taken: never in practice; refuse rather than overwrite.
        Err(c) => return Err(store_failed(c)),
    }
    if !tags.is_empty() {
        let puts = tags
            .iter()
            .map(|(k, v)| {
                TagChange::Put(AccountTag {
                    resource_id: id.clone(),
                    resource_type: "snapshot".into(),
                    key: k.clone(),
                    value: v.clone(),
                })
            })
            .collect();
        if let Err(e) = account_tags::change(ctx, puts).await {
            forget_record(ctx, &id).await;
            return Err(e);
        }
    }
    doc["tags"] = tag_list(tags);
    Ok(doc)
}

/// Transform `empty_snapshots` (DescribeSnapshots): the caller's store-held snapshots join
/// CloudStack's (before the Owner, id, filter and paging stages, so all of them apply).
pub async fn describe(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    items.extend(ctx.store_records(Kind::Snapshot).await?);
    Ok(items)
}

/// The store-held snapshot behind a snapshot uuid (CreateVolume), if it is one.
pub async fn by_uuid(ctx: &Ctx<'_>, uuid: &str) -> Result<Option<Value>, Ec2Error> {
    ctx.store_record(Kind::Snapshot, &ids::ec2_id(Kind::Snapshot, uuid)).await
}

/// Size of a snapshot document in whole GiB (rounded up).
pub fn gib(doc: &Value) -> Option<u64> {
    field_text(doc, "virtualsize").and_then(|s| s.parse::<u64>().ok()).map(|b| b.div_ceil(1 << 30))
}
