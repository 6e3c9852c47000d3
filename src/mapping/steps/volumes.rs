//! Volume and snapshot steps: the EBS status of a CloudStack volume, CreateVolume (disk offering,
//! ClientToken, tags with undo), Delete/Attach/DetachVolume (one listVolumes for precise EC2
//! errors, then the command, not waited for), CreateSnapshot, and DescribeSnapshots transforms.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::super::backend::{BoxFuture, join_limited};
use super::super::convert::cloudstack_now;
use super::super::exec::{Ctx, Prepared, TokenEntry};
use super::super::expr::scalar_text;
use super::super::page;
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};

fn s<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty())
}

fn param<'p>(prep: &'p Prepared, name: &str) -> Option<&'p str> {
    prep.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn set(v: &mut Value, k: &str, x: impl Into<Value>) {
    if let Some(o) = v.as_object_mut() {
        o.insert(k.into(), x.into());
    }
}

/// EBS status and attachment status of a CloudStack volume. A volume whose own job is still
/// running is being created (unattached) or detached (attached); CloudStack says so only
/// through `jobstatus` on the listed object.
pub fn volume_status(v: &Value) -> (&'static str, Option<&'static str>) {
    let state = s(v, "state").unwrap_or("");
    let attached = s(v, "virtualmachineid").is_some();
    let busy = v.get("jobstatus").map(scalar_text).as_deref() == Some("0");
    match state {
        "Destroy" | "Destroying" | "Expunging" | "Expunged" => ("deleting", None),
        "Error" | "UploadError" | "UploadAbandoned" => ("error", None),
        _ if attached => {
            let a = match state {
                "Attaching" => "attaching",
                _ if busy => "detaching",
                _ => "attached",
            };
            ("in-use", Some(a))
        }
        "Creating" | "UploadOp" | "UploadInProgress" | "NotUploaded" => ("creating", None),
        "Allocated" if busy => ("creating", None),
        _ => ("available", None),
    }
}

/// DescribeVolumes / DescribeVolumeStatus: `_status`, and `_attachments` (the volume itself
/// with `_attachstatus`, when attached).
pub fn volume_states<'a>(
    _: &'a Ctx<'a>,
    _: &'a Prepared,
    mut items: Vec<Value>,
) -> BoxFuture<'a, Result<Vec<Value>, Ec2Error>> {
    Box::pin(async move {
        for v in items.iter_mut() {
            let (st, att) = volume_status(v);
            set(v, "_status", st);
            if let Some(a) = att {
                let mut one = v.clone();
                set(&mut one, "_attachstatus", a);
                set(v, "_attachments", json!([one]));
            }
        }
        Ok(items)
    })
}

/// The caller's volumes with these uuids, one call.
async fn list_volumes(ctx: &Ctx<'_>, uuids: &[&str]) -> Result<Vec<Value>, Ec2Error> {
    let kind = ctx.ex.table.kinds.get(&Kind::Volume).ok_or_else(Ec2Error::internal)?;
    let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
    let mut params = lc.params.clone();
    params.push(("ids".into(), uuids.join(",")));
    ctx.list(&lc.command, &params, &lc.items).await
}

/// The one requested volume (the `ids` of the action), listed.
async fn the_volume<'p>(ctx: &Ctx<'_>, prep: &'p Prepared) -> Result<(&'p str, &'p str, Value), Ec2Error> {
    let (ec2, uuid) = prep.ids.first().ok_or_else(|| Ec2Error::missing_parameter("VolumeId"))?;
    let vols = list_volumes(ctx, &[uuid]).await?;
    match vols.into_iter().find(|v| s(v, "id") == Some(uuid.as_str())) {
        Some(v) => Ok((ec2, uuid, v)),
        None => {
            let kind = ctx.ex.table.kinds.get(&Kind::Volume).ok_or_else(Ec2Error::internal)?;
            Err(super::super::exec::not_found(kind, &[ec2]))
        }
    }
}

fn instance_of(v: &Value) -> Option<String> {
    s(v, "virtualmachineid").map(|u| ids::ec2_id(Kind::Instance, u))
}

// ---------------------------------------------------------------------------------------------
// Tags

/// TagSpecification.N for `resource` (the only type these actions tag).
fn tag_specs(ctx: &Ctx<'_>, resource: &str) -> Result<Vec<(String, String)>, Ec2Error> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for spec in ctx.req.params.members("TagSpecification") {
        let rt = spec.get("ResourceType").unwrap_or("");
        if rt != resource {
            return Err(Ec2Error::invalid_value(
                "TagSpecification.ResourceType",
                rt,
                &format!("This action tags resources of type '{resource}' only."),
            ));
        }
        for t in spec.members("Tag") {
            let k = t.get("Key").unwrap_or("");
            if k.is_empty() {
                return Err(Ec2Error::missing_parameter("TagSpecification.N.Tag.M.Key"));
            }
            if k.len() > 128 || k.starts_with("aws:") {
                return Err(Ec2Error::invalid_value(
                    "Tag.Key",
                    k,
                    "Tag keys are at most 128 characters and may not start with 'aws:'.",
                ));
            }
            if tags.iter().any(|(x, _)| x == k) {
                return Err(Ec2Error::invalid_value("Tag.Key", k, "A tag key was given twice."));
            }
            tags.push((k.to_string(), t.get("Value").unwrap_or("").to_string()));
        }
    }
    Ok(tags)
}

async fn create_tags(ctx: &Ctx<'_>, uuid: &str, cs_type: &str, tags: &[(String, String)]) -> Result<(), Ec2Error> {
    let mut tp = vec![("resourceids".to_string(), uuid.to_string()), ("resourcetype".into(), cs_type.into())];
    for (i, (k, v)) in tags.iter().enumerate() {
        tp.push((format!("tags[{i}].key"), k.clone()));
        tp.push((format!("tags[{i}].value"), v.clone()));
    }
    let j = ctx.start_job("createTags", &tp).await?;
    ctx.wait_job("createTags", &j.jobid).await.map(|_| ())
}

fn tag_list(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect())
}

/// Undo a create: let its job end (CloudStack refuses to delete an object with a job in
/// progress), then delete the object. Answers whether it is gone.
async fn undo(ctx: &Ctx<'_>, create: &str, jobid: &str, delete: &str, uuid: &str, wait_delete: bool) -> bool {
    let _ = ctx.wait_job(create, jobid).await;
    let p = [("id".to_string(), uuid.to_string())];
    if wait_delete {
        match ctx.start_job(delete, &p).await {
            Ok(j) => ctx.wait_job(delete, &j.jobid).await.is_ok(),
            Err(_) => false,
        }
    } else {
        ctx.call(delete, &p).await.is_ok()
    }
}

fn left_behind(mut e: Ec2Error, gone: bool, id: &str) -> Ec2Error {
    if !gone {
        e.message = format!("{} ({id} was made and could not be removed)", e.message);
    }
    e
}

// ---------------------------------------------------------------------------------------------
// ClientToken

/// Run `make` once per (caller, action, token): a retry with the same parameters gets the first
/// answer, with other parameters IdempotentParameterMismatch.
async fn idempotent<'c, F>(ctx: &'c Ctx<'c>, make: F) -> Result<Value, Ec2Error>
where
    F: std::future::Future<Output = Result<Value, Ec2Error>> + 'c,
{
    let p = &ctx.req.params;
    let Some(token) = p.get("ClientToken").filter(|t| !t.is_empty()) else { return make.await };
    if token.len() > 64 {
        return Err(Ec2Error::invalid_value("ClientToken", token, "The token is longer than 64 characters."));
    }
    let fp = page::fingerprint(&ctx.action.name, &ctx.who.access_key, p);
    let key = (ctx.who.cloudstack.api_key.clone(), format!("{}\u{0}{token}", ctx.action.name));
    let slot = ctx.ex.tokens.entry(key).or_default().clone();
    // Held across the create so that a concurrent retry waits for the first answer.
    let mut guard = slot.lock().await;
    if let Some(e) = guard.as_ref()
        && e.at.elapsed() < ctx.ex.opts.token_ttl
    {
        if e.fingerprint != fp {
            return Err(Ec2Error::new(
                Code::IdempotentParameterMismatch,
                "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
            ));
        }
        return Ok(e.doc.clone());
    }
    let doc = make.await?;
    *guard = Some(TokenEntry { fingerprint: fp, doc: doc.clone(), at: Instant::now() });
    Ok(doc)
}

// ---------------------------------------------------------------------------------------------
// CreateVolume

pub fn create_volume<'a>(ctx: &'a Ctx<'a>, prep: &'a Prepared) -> BoxFuture<'a, Result<Value, Ec2Error>> {
    Box::pin(async move {
        let size: Option<i64> = param(prep, "size").and_then(|v| v.parse().ok());
        let snapshot = param(prep, "snapshotid");
        if size.is_none() && snapshot.is_none() {
            return Err(Ec2Error::missing_parameter("size or snapshotId"));
        }
        if param(prep, "encrypted") == Some("true") {
            return Err(Ec2Error::new(
                Code::UnsupportedOperation,
                "Encrypted volumes are not supported by this cloud.",
            ));
        }
        let tags = tag_specs(ctx, "volume")?;
        idempotent(ctx, make_volume(ctx, prep, size, snapshot, tags)).await
    })
}

async fn make_volume(
    ctx: &Ctx<'_>,
    prep: &Prepared,
    size: Option<i64>,
    snapshot: Option<&str>,
    tags: Vec<(String, String)>,
) -> Result<Value, Ec2Error> {
    let zoneid = param(prep, "zoneid").ok_or_else(|| Ec2Error::missing_parameter("AvailabilityZone"))?;
    let zone_name = ctx.req.params.get("AvailabilityZone").unwrap_or_default().to_string();
    let mut cs: Vec<(String, String)> = vec![("name".into(), uuid::Uuid::new_v4().to_string())];
    let mut doc = json!({ "zonename": zone_name, "zoneid": zoneid });
    match snapshot {
        Some(snap) => {
            // The snapshot must be complete, and the volume is made in its zone at its size.
            let l = ctx
                .list("listSnapshots", &[("id".into(), snap.into()), ("listall".into(), "true".into())], "snapshot")
                .await?;
            let sid = ids::ec2_id(Kind::Snapshot, snap);
            let Some(sn) = l.into_iter().find(|x| s(x, "id") == Some(snap)) else {
                return Err(Ec2Error::new(
                    Code::InvalidSnapshotNotFound,
                    format!("The snapshot '{sid}' does not exist."),
                ));
            };
            let st = s(&sn, "state").unwrap_or("");
            if st != "BackedUp" {
                let ec2 = if st == "Error" { "error" } else { "pending" };
                return Err(Ec2Error::new(Code::IncorrectState, format!("Snapshot is in invalid state - {ec2}")));
            }
            if let Some(z) = s(&sn, "zoneid")
                && z != zoneid
            {
                return Err(Ec2Error::invalid_value(
                    "AvailabilityZone",
                    &zone_name,
                    &format!("Snapshot {sid} is in another availability zone; volumes made from it are created there."),
                ));
            }
            let snap_gib =
                sn.get("virtualsize").and_then(|v| scalar_text(v).parse::<u64>().ok()).map(|b| b.div_ceil(1 << 30));
            if let (Some(want), Some(have)) = (size, snap_gib)
                && want as u64 != have
            {
                return Err(Ec2Error::invalid_value(
                    "size",
                    &want.to_string(),
                    &format!("A volume made from snapshot {sid} has the snapshot's size, {have} GiB."),
                ));
            }
            cs.push(("snapshotid".into(), snap.into()));
            cs.push(("zoneid".into(), zoneid.into()));
            set(&mut doc, "snapshotid", snap);
            if let Some(g) = snap_gib.or(size.map(|n| n as u64)) {
                set(&mut doc, "size", g << 30);
            }
        }
        None => {
            let gib = size.unwrap_or(1);
            let offering = disk_offering(ctx, param(prep, "volumetype")).await?;
            cs.push(("diskofferingid".into(), s(&offering, "id").unwrap_or_default().into()));
            cs.push(("size".into(), gib.to_string()));
            cs.push(("zoneid".into(), zoneid.into()));
            set(&mut doc, "size", (gib as u64) << 30);
            if let Some(n) = s(&offering, "name") {
                set(&mut doc, "diskofferingname", n);
            }
        }
    }
    let j = ctx.start_job("createVolume", &cs).await?;
    let uuid = j.id.clone().ok_or_else(Ec2Error::internal)?;
    if !tags.is_empty()
        && let Err(e) = create_tags(ctx, &uuid, "Volume", &tags).await
    {
        let gone = undo(ctx, "createVolume", &j.jobid, "deleteVolume", &uuid, false).await;
        return Err(left_behind(e, gone, &ids::ec2_id(Kind::Volume, &uuid)));
    }
    set(&mut doc, "id", uuid);
    set(&mut doc, "created", cloudstack_now());
    set(&mut doc, "_status", "creating");
    set(&mut doc, "tags", tag_list(&tags));
    Ok(doc)
}

/// The customized disk offering for a volume of `volume_type`: one named like the type, else
/// the first untagged customized offering, else any customized one.
async fn disk_offering(ctx: &Ctx<'_>, volume_type: Option<&str>) -> Result<Value, Ec2Error> {
    let l = ctx.list_cached("listDiskOfferings", &[], "diskoffering").await?;
    let custom: Vec<&Value> =
        l.iter().filter(|o| o.get("iscustomized").and_then(Value::as_bool) == Some(true)).collect();
    let named =
        volume_type.and_then(|t| custom.iter().find(|o| s(o, "name").is_some_and(|n| n.eq_ignore_ascii_case(t))));
    let pick = named.or_else(|| custom.iter().find(|o| s(o, "tags").is_none())).or_else(|| custom.first());
    match pick {
        Some(o) => Ok((*o).clone()),
        None => Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "The cloud offers no disk offering of a custom size, so volumes cannot be created.",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// DeleteVolume / AttachVolume / DetachVolume

pub fn delete_volume<'a>(ctx: &'a Ctx<'a>, prep: &'a Prepared) -> BoxFuture<'a, Result<Value, Ec2Error>> {
    Box::pin(async move {
        let uuids: Vec<&str> = prep.ids.iter().map(|(_, u)| u.as_str()).collect();
        let vols = list_volumes(ctx, &uuids).await?;
        for (ec2, uuid) in &prep.ids {
            let Some(v) = vols.iter().find(|v| s(v, "id") == Some(uuid.as_str())) else {
                let kind = ctx.ex.table.kinds.get(&Kind::Volume).ok_or_else(Ec2Error::internal)?;
                return Err(super::super::exec::not_found(kind, &[ec2]));
            };
            let (st, _) = volume_status(v);
            if let Some(i) = instance_of(v) {
                return Err(Ec2Error::new(Code::VolumeInUse, format!("Volume {ec2} is currently attached to {i}")));
            }
            if st != "available" && st != "error" {
                return Err(Ec2Error::new(Code::IncorrectState, format!("The volume '{ec2}' is '{st}'.")));
            }
        }
        let futs = prep
            .ids
            .iter()
            .map(|(_, u)| async move { ctx.call("deleteVolume", &[("id".to_string(), u.clone())]).await });
        for r in join_limited(futs.collect(), ctx.ex.opts.call_concurrency).await {
            r?;
        }
        Ok(Value::Null)
    })
}

pub fn attach_volume<'a>(ctx: &'a Ctx<'a>, prep: &'a Prepared) -> BoxFuture<'a, Result<Value, Ec2Error>> {
    Box::pin(async move {
        let vm = param(prep, "virtualmachineid").ok_or_else(|| Ec2Error::missing_parameter("InstanceId"))?;
        let device = param(prep, "deviceid").ok_or_else(|| Ec2Error::missing_parameter("Device"))?;
        let (ec2, uuid, v) = the_volume(ctx, prep).await?;
        if let Some(i) = instance_of(&v) {
            return Err(Ec2Error::new(Code::VolumeInUse, format!("{ec2} is already attached to an instance ({i})")));
        }
        let (st, _) = volume_status(&v);
        if st != "available" {
            return Err(Ec2Error::new(Code::IncorrectState, format!("{ec2} is not 'available' but '{st}'.")));
        }
        let p = vec![
            ("id".to_string(), uuid.to_string()),
            ("virtualmachineid".to_string(), vm.to_string()),
            ("deviceid".to_string(), device.to_string()),
        ];
        ctx.start_job("attachVolume", &p).await?;
        let mut doc = v;
        set(&mut doc, "virtualmachineid", vm);
        set(&mut doc, "deviceid", device);
        set(&mut doc, "_device", ctx.req.params.get("Device").unwrap_or_default());
        set(&mut doc, "_attachstatus", "attaching");
        set(&mut doc, "attached", cloudstack_now());
        Ok(doc)
    })
}

pub fn detach_volume<'a>(ctx: &'a Ctx<'a>, prep: &'a Prepared) -> BoxFuture<'a, Result<Value, Ec2Error>> {
    Box::pin(async move {
        let (ec2, uuid, v) = the_volume(ctx, prep).await?;
        let (st, att) = volume_status(&v);
        let Some(vm) = s(&v, "virtualmachineid") else {
            return Err(Ec2Error::new(Code::IncorrectState, format!("Volume '{ec2}' is in the '{st}' state.")));
        };
        let inst = ids::ec2_id(Kind::Instance, vm);
        if let Some(want) = param(prep, "virtualmachineid")
            && want != vm
        {
            let i = ctx.req.params.get("InstanceId").unwrap_or_default();
            return Err(Ec2Error::new(
                Code::InvalidAttachmentNotFound,
                format!("The volume '{ec2}' is not attached to instance '{i}'"),
            ));
        }
        let dev = v.get("deviceid").map(scalar_text);
        if let Some(want) = param(prep, "deviceid")
            && dev.as_deref() != Some(want)
        {
            let d = ctx.req.params.get("Device").unwrap_or_default();
            return Err(Ec2Error::new(
                Code::InvalidAttachmentNotFound,
                format!("The volume '{ec2}' is not attached to instance '{inst}' at device '{d}'"),
            ));
        }
        if s(&v, "type") == Some("ROOT") {
            return Err(Ec2Error::new(
                Code::IncorrectState,
                format!("Unable to detach root volume '{ec2}' from instance '{inst}'"),
            ));
        }
        if att != Some("attached") {
            return Err(Ec2Error::new(
                Code::IncorrectState,
                format!("Volume '{ec2}' is '{}' and cannot be detached now.", att.unwrap_or(st)),
            ));
        }
        ctx.start_job("detachVolume", &[("id".to_string(), uuid.to_string())]).await?;
        let mut doc = v;
        set(&mut doc, "_attachstatus", "detaching");
        if let Some(d) = ctx.req.params.get("Device") {
            set(&mut doc, "_device", d);
        }
        Ok(doc)
    })
}

// ---------------------------------------------------------------------------------------------
// CreateSnapshot

pub fn create_snapshot<'a>(ctx: &'a Ctx<'a>, prep: &'a Prepared) -> BoxFuture<'a, Result<Value, Ec2Error>> {
    Box::pin(async move {
        let uuid = param(prep, "volumeid").ok_or_else(|| Ec2Error::missing_parameter("VolumeId"))?;
        let ec2 = ids::ec2_id(Kind::Volume, uuid);
        let desc = ctx.req.params.get("Description").filter(|d| !d.is_empty());
        if let Some(d) = desc
            && d.chars().count() > 255
        {
            return Err(Ec2Error::invalid_value(
                "Description",
                "...",
                "The description is longer than 255 characters.",
            ));
        }
        let tags = tag_specs(ctx, "snapshot")?;
        let vols = list_volumes(ctx, &[uuid]).await?;
        let Some(v) = vols.into_iter().find(|v| s(v, "id") == Some(uuid)) else {
            return Err(Ec2Error::new(Code::InvalidVolumeNotFound, format!("The volume '{ec2}' does not exist.")));
        };
        // CloudStack snapshots only volumes that exist on storage (Ready): a new volume is
        // `Allocated` until it is first attached.
        if s(&v, "state") != Some("Ready") {
            let (st, _) = volume_status(&v);
            let why = if s(&v, "state") == Some("Allocated") {
                " (this cloud makes a new volume on storage when it is first attached)".to_string()
            } else {
                String::new()
            };
            return Err(Ec2Error::new(
                Code::IncorrectState,
                format!("The volume '{ec2}' is '{st}' and cannot be snapshotted yet{why}."),
            ));
        }
        let mut cs = vec![("volumeid".to_string(), uuid.to_string())];
        if let Some(d) = desc {
            cs.push(("name".into(), d.to_string()));
        }
        let j = ctx.start_job("createSnapshot", &cs).await?;
        let snap = j.id.clone().ok_or_else(Ec2Error::internal)?;
        if !tags.is_empty()
            && let Err(e) = create_tags(ctx, &snap, "Snapshot", &tags).await
        {
            let gone = undo(ctx, "createSnapshot", &j.jobid, "deleteSnapshot", &snap, true).await;
            return Err(left_behind(e, gone, &ids::ec2_id(Kind::Snapshot, &snap)));
        }
        let mut doc = json!({
            "id": snap,
            "volumeid": uuid,
            "state": "Creating",
            "created": cloudstack_now(),
            "virtualsize": v.get("size").cloned().unwrap_or(Value::Null),
            "name": desc.unwrap_or_default(),
            "tags": tag_list(&tags),
        });
        if let Some(a) = &ctx.who.account {
            set(&mut doc, "account", a.as_str());
        }
        Ok(doc)
    })
}

pub fn delete_snapshot<'a>(ctx: &'a Ctx<'a>, prep: &'a Prepared) -> BoxFuture<'a, Result<Value, Ec2Error>> {
    Box::pin(async move {
        let kind = ctx.ex.table.kinds.get(&Kind::Snapshot).ok_or_else(Ec2Error::internal)?;
        let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
        // listSnapshots takes one id; with several, one listing of everything is cheaper.
        let mut params = lc.params.clone();
        if let [(_, u)] = prep.ids.as_slice() {
            params.push(("id".into(), u.clone()));
        }
        let snaps = ctx.list(&lc.command, &params, &lc.items).await?;
        let missing: Vec<&str> = prep
            .ids
            .iter()
            .filter(|(_, u)| !snaps.iter().any(|x| s(x, "id") == Some(u.as_str())))
            .map(|(e, _)| e.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(super::super::exec::not_found(kind, &missing));
        }
        for (ec2, u) in &prep.ids {
            let st = snaps.iter().find(|x| s(x, "id") == Some(u.as_str())).and_then(|x| s(x, "state"));
            if !matches!(st, Some("BackedUp") | Some("Error")) {
                return Err(Ec2Error::new(
                    Code::IncorrectState,
                    format!("The snapshot '{ec2}' is still being created and cannot be deleted yet."),
                ));
            }
        }
        let futs = prep
            .ids
            .iter()
            .map(|(_, u)| async move { ctx.start_job("deleteSnapshot", &[("id".to_string(), u.clone())]).await });
        for r in join_limited(futs.collect(), ctx.ex.opts.call_concurrency).await {
            r?;
        }
        Ok(Value::Null)
    })
}

// ---------------------------------------------------------------------------------------------
// DescribeSnapshots transforms

/// Owner.N: `self` and the caller's own account name keep the caller's snapshots; other
/// accounts' names keep theirs; `amazon` and other aliases match nothing (CloudStack has no
/// public snapshots).
pub fn snapshot_owners<'a>(
    ctx: &'a Ctx<'a>,
    _: &'a Prepared,
    mut items: Vec<Value>,
) -> BoxFuture<'a, Result<Vec<Value>, Ec2Error>> {
    Box::pin(async move {
        let owners = ctx.req.params.list("Owner");
        if owners.is_empty() {
            return Ok(items);
        }
        let me = ctx.who.account.as_deref();
        items.retain(|x| {
            let acct = s(x, "account");
            owners.iter().any(|o| match *o {
                "self" => me.is_none() || acct == me,
                other => acct == Some(other),
            })
        });
        Ok(items)
    })
}

/// `_volumesize` for snapshots without `virtualsize` (older CloudStack): one listVolumes for all
/// of them; a volume deleted since falls back to the snapshot's physical size.
pub fn snapshot_sizes<'a>(
    ctx: &'a Ctx<'a>,
    _: &'a Prepared,
    mut items: Vec<Value>,
) -> BoxFuture<'a, Result<Vec<Value>, Ec2Error>> {
    Box::pin(async move {
        if items.iter().all(|x| x.get("virtualsize").is_some_and(|v| !v.is_null())) {
            return Ok(items);
        }
        let kind = ctx.ex.table.kinds.get(&Kind::Volume).ok_or_else(Ec2Error::internal)?;
        let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
        let vols = ctx.list(&lc.command, &lc.params, &lc.items).await?;
        let sizes: HashMap<&str, &Value> = vols.iter().filter_map(|v| Some((s(v, "id")?, v.get("size")?))).collect();
        for x in items.iter_mut() {
            if x.get("virtualsize").is_some_and(|v| !v.is_null()) {
                continue;
            }
            let size = s(x, "volumeid")
                .and_then(|u| sizes.get(u))
                .map(|v| (*v).clone())
                .or_else(|| x.get("physicalsize").cloned());
            if let Some(sz) = size {
                set(x, "_volumesize", sz);
            }
        }
        Ok(items)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let st = |v: Value| volume_status(&v);
        assert_eq!(st(json!({"state": "Allocated", "jobid": "j", "jobstatus": 0})), ("creating", None));
        assert_eq!(st(json!({"state": "Allocated"})), ("available", None));
        assert_eq!(st(json!({"state": "Ready"})), ("available", None));
        assert_eq!(st(json!({"state": "Creating"})), ("creating", None));
        assert_eq!(st(json!({"state": "Ready", "virtualmachineid": "v"})), ("in-use", Some("attached")));
        assert_eq!(st(json!({"state": "Attaching", "virtualmachineid": "v"})), ("in-use", Some("attaching")));
        assert_eq!(
            st(json!({"state": "Ready", "virtualmachineid": "v", "jobstatus": "0"})),
            ("in-use", Some("detaching"))
        );
        assert_eq!(st(json!({"state": "Destroy", "virtualmachineid": "v"})), ("deleting", None));
        assert_eq!(st(json!({"state": "Expunging"})), ("deleting", None));
        assert_eq!(st(json!({"state": "UploadError"})), ("error", None));
        assert_eq!(st(json!({"state": "Ready", "virtualmachineid": ""})), ("available", None));
    }
}
