//! Volume and snapshot steps: the EBS status of a CloudStack volume (`volume_states`, which the
//! Delete/Attach/DetachVolume checks of volumes.toml read), CreateVolume (disk offering,
//! ClientToken, tags with undo), CreateSnapshot, and DescribeSnapshots transforms.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::convert::cloudstack_now;
use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::{Undo, UndoCall, create_tags, field, idempotent, pair, param, set, tag_list, tag_specifications};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};

/// EBS status and attachment status of a CloudStack volume. A volume whose own job is still
/// running is being created (unattached) or detached (attached); CloudStack says so only
/// through `jobstatus` on the listed object.
pub fn volume_status(v: &Value) -> (&'static str, Option<&'static str>) {
    let state = field(v, "state").unwrap_or("");
    let attached = field(v, "virtualmachineid").is_some();
    let busy = v.get("jobstatus").map(scalar_text).as_deref() == Some("0");
    status_of(state, attached, busy)
}

/// `volume_status` from what it reads: the volume's `state` (a non-empty string, else ""),
/// whether it names its VM, whether a job on it runs (`jobstatus` 0).
pub fn status_of(state: &str, attached: bool, busy: bool) -> (&'static str, Option<&'static str>) {
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
/// `_deleteontermination` of attached data volumes comes from the gateway's store
/// (ModifyInstanceAttribute BlockDeviceMapping; docs/gateway-state.md).
pub async fn volume_states(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let attached_data = |v: &Value| field(v, "virtualmachineid").is_some() && field(v, "type") != Some("ROOT");
    // Data volumes without a CloudStack snapshotid may have been made from a snapshot the
    // gateway keeps (an empty one): the store remembers which.
    let data_without_snapshot = |v: &Value| field(v, "type") == Some("DATADISK") && field(v, "snapshotid").is_none();
    let dot = if items.iter().any(|v| attached_data(v) || data_without_snapshot(v)) {
        super::attrs::all(ctx, super::attrs::VOLUME).await?
    } else {
        HashMap::new()
    };
    for v in items.iter_mut() {
        let (st, att) = volume_status(v);
        set(v, "_status", st);
        if data_without_snapshot(v) {
            let vol = ids::ec2_id(Kind::Volume, field(v, "id").unwrap_or_default());
            if let Some(snap) = dot.get(&vol).and_then(|d| d.get(SOURCE_SNAPSHOT)).and_then(Value::as_str) {
                set(v, "snapshotid", snap);
            }
        }
        if attached_data(v) {
            let vol = ids::ec2_id(Kind::Volume, field(v, "id").unwrap_or_default());
            let d = super::attrs::flag(dot.get(&vol), super::instances::DELETE_ON_TERMINATION, false);
            set(v, "_deleteontermination", d);
        }
        if let Some(a) = att {
            let mut one = v.clone();
            set(&mut one, "_attachstatus", a);
            set(v, "_attachments", json!([one]));
        }
    }
    Ok(items)
}

/// Volume attribute (store): the uuid of the gateway-kept snapshot the volume was made from
/// (CloudStack's volume names none; docs/gateway-state.md).
pub const SOURCE_SNAPSHOT: &str = "sourceSnapshot";

/// The caller's volumes with these uuids, one call.
async fn list_volumes(ctx: &Ctx<'_>, uuids: &[&str]) -> Result<Vec<Value>, Ec2Error> {
    let kind = ctx.ex.table.kinds.get(&Kind::Volume).ok_or_else(Ec2Error::internal)?;
    let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
    let mut params = lc.params.clone();
    params.push(("ids".into(), uuids.join(",")));
    ctx.list(&lc.command, &params, &lc.items).await
}

// ---------------------------------------------------------------------------------------------
// CreateVolume

pub async fn create_volume(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let size: Option<i64> = param(prep, "size").and_then(|v| v.parse().ok());
    let snapshot = param(prep, "snapshotid");
    if size.is_none() && snapshot.is_none() {
        return Err(Ec2Error::missing_parameter("size or snapshotId"));
    }
    if param(prep, "encrypted") == Some("true") {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Encrypted volumes are not supported by this cloud."));
    }
    let tags = tag_specifications(&ctx.req.params, "volume")?;
    idempotent(ctx, make_volume(ctx, prep, size, snapshot, tags)).await
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
    // A snapshot of a never-attached volume is an empty disk: the volume made from it is a new
    // empty volume of the asked size (at least the snapshot's), in any zone.
    let empty = match snapshot {
        Some(snap) => super::empty_snapshots::by_uuid(ctx, snap).await?,
        None => None,
    };
    let mut size = size;
    if let (Some(sn), Some(snap)) = (&empty, snapshot) {
        let have = super::empty_snapshots::gib(sn).unwrap_or(1) as i64;
        let want = size.unwrap_or(have);
        if want < have {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("Volume of {want}GiB is too small; minimum is {have}GiB."),
            ));
        }
        size = Some(want);
        set(&mut doc, "snapshotid", snap);
    }
    match snapshot.filter(|_| empty.is_none()) {
        Some(snap) => {
            // The snapshot must be complete, and the volume is made in its zone at its size.
            let l = ctx
                .list("listSnapshots", &[("id".into(), snap.into()), ("listall".into(), "true".into())], "snapshot")
                .await?;
            let sid = ids::ec2_id(Kind::Snapshot, snap);
            let Some(sn) = l.into_iter().find(|x| field(x, "id") == Some(snap)) else {
                return Err(Ec2Error::new(
                    Code::InvalidSnapshotNotFound,
                    format!("The snapshot '{sid}' does not exist."),
                ));
            };
            let st = field(&sn, "state").unwrap_or("");
            if st != "BackedUp" {
                let ec2 = if st == "Error" { "error" } else { "pending" };
                return Err(Ec2Error::new(Code::IncorrectState, format!("Snapshot is in invalid state - {ec2}")));
            }
            if let Some(z) = field(&sn, "zoneid")
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
            cs.push(("diskofferingid".into(), field(&offering, "id").unwrap_or_default().into()));
            cs.push(("size".into(), gib.to_string()));
            cs.push(("zoneid".into(), zoneid.into()));
            set(&mut doc, "size", (gib as u64) << 30);
            if let Some(n) = field(&offering, "name") {
                set(&mut doc, "diskofferingname", n);
            }
        }
    }
    let j = ctx.start_job("createVolume", &cs).await?;
    let uuid = j.id.clone().ok_or_else(Ec2Error::internal)?;
    let mut undo = Undo::new(ctx);
    undo.made(
        &ids::ec2_id(Kind::Volume, &uuid),
        UndoCall::call("deleteVolume", vec![pair("id", &uuid)]).after("createVolume", &j.jobid),
    )
    .await;
    if !tags.is_empty()
        && let Err(e) = create_tags(ctx, "Volume", &[&uuid], &tags).await
    {
        return Err(undo.fail(e).await);
    }
    if let (Some(_), Some(snap)) = (&empty, snapshot) {
        let vol = vec![ids::ec2_id(Kind::Volume, &uuid)];
        if let Err(e) = super::attrs::set(ctx, super::attrs::VOLUME, &vol, SOURCE_SNAPSHOT, json!(snap)).await {
            return Err(undo.fail(e).await);
        }
    }
    undo.disarm().await;
    set(&mut doc, "id", uuid);
    set(&mut doc, "created", cloudstack_now());
    set(&mut doc, "_status", "creating");
    set(&mut doc, "tags", tag_list(&tags));
    Ok(doc)
}

/// The customized disk offering for a volume of `volume_type`: one named like the type, else
/// the first untagged customized offering, else any customized one.
pub(crate) async fn disk_offering(ctx: &Ctx<'_>, volume_type: Option<&str>) -> Result<Value, Ec2Error> {
    let l = ctx.list_cached("listDiskOfferings", &[], "diskoffering").await?;
    let custom: Vec<&Value> =
        l.iter().filter(|o| o.get("iscustomized").and_then(Value::as_bool) == Some(true)).collect();
    let named =
        volume_type.and_then(|t| custom.iter().find(|o| field(o, "name").is_some_and(|n| n.eq_ignore_ascii_case(t))));
    let pick = named.or_else(|| custom.iter().find(|o| field(o, "tags").is_none())).or_else(|| custom.first());
    match pick {
        Some(o) => Ok((*o).clone()),
        None => Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "The cloud offers no disk offering of a custom size, so volumes cannot be created.",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// CreateSnapshot

pub async fn create_snapshot(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let uuid = param(prep, "volumeid").ok_or_else(|| Ec2Error::missing_parameter("VolumeId"))?;
    let ec2 = ids::ec2_id(Kind::Volume, uuid);
    let desc = ctx.req.params.get("Description").filter(|d| !d.is_empty());
    if let Some(d) = desc
        && d.chars().count() > 255
    {
        return Err(Ec2Error::invalid_value("Description", "...", "The description is longer than 255 characters."));
    }
    let tags = tag_specifications(&ctx.req.params, "snapshot")?;
    let vols = list_volumes(ctx, &[uuid]).await?;
    let Some(mut v) = vols.into_iter().find(|v| field(v, "id") == Some(uuid)) else {
        return Err(Ec2Error::new(Code::InvalidVolumeNotFound, format!("The volume '{ec2}' does not exist.")));
    };
    // EC2 shows an attaching volume as `in-use` and snapshots it; CloudStack refuses until
    // its attach job has finished. So wait for that job (bounded like every job wait) and
    // look again, rather than refusing a volume the caller's waiter already saw in use.
    if field(&v, "state") == Some("Attaching")
        && let Some(job) = field(&v, "jobid").map(str::to_string)
    {
        let _ = ctx.wait_job("attachVolume", &job).await;
        let again = list_volumes(ctx, &[uuid]).await?;
        match again.into_iter().find(|v| field(v, "id") == Some(uuid)) {
            Some(now) => v = now,
            None => {
                return Err(Ec2Error::new(Code::InvalidVolumeNotFound, format!("The volume '{ec2}' does not exist.")));
            }
        }
    }
    // CloudStack snapshots only volumes that exist on storage (Ready): a new volume is
    // `Allocated` until it is first attached. Never on storage means never written: its
    // snapshot is an empty disk of its size, which the gateway keeps (docs/gateway-state.md).
    if super::empty_snapshots::never_written(&v) {
        return super::empty_snapshots::create(ctx, &v, desc, &tags).await;
    }
    if field(&v, "state") != Some("Ready") {
        let (st, _) = volume_status(&v);
        let why = if field(&v, "state") == Some("Allocated") {
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
    let mut undo = Undo::new(ctx);
    undo.made(
        &ids::ec2_id(Kind::Snapshot, &snap),
        UndoCall::job("deleteSnapshot", vec![pair("id", &snap)]).after("createSnapshot", &j.jobid),
    )
    .await;
    if !tags.is_empty()
        && let Err(e) = create_tags(ctx, "Snapshot", &[&snap], &tags).await
    {
        return Err(undo.fail(e).await);
    }
    undo.disarm().await;
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
}

// ---------------------------------------------------------------------------------------------
// DescribeSnapshots transforms

/// Owner.N: `self` and the caller's own account name keep the caller's snapshots; other
/// accounts' names keep theirs; `amazon` and other aliases match nothing (CloudStack has no
/// public snapshots).
pub async fn snapshot_owners(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let owners = ctx.req.params.list("Owner");
    if owners.is_empty() {
        return Ok(items);
    }
    let me = ctx.who.account.as_deref();
    items.retain(|x| {
        let acct = field(x, "account");
        owners.iter().any(|o| match *o {
            "self" => me.is_none() || acct == me,
            other => {
                acct == Some(other)
                    || acct.is_some_and(|a| crate::mapping::convert::owner_number(&ctx.vars, a) == other)
            }
        })
    });
    Ok(items)
}

/// `_volumesize` for snapshots without `virtualsize` (older CloudStack): one listVolumes for all
/// of them; a volume deleted since falls back to the snapshot's physical size.
pub async fn snapshot_sizes(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    if items.iter().all(|x| x.get("virtualsize").is_some_and(|v| !v.is_null())) {
        return Ok(items);
    }
    let kind = ctx.ex.table.kinds.get(&Kind::Volume).ok_or_else(Ec2Error::internal)?;
    let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
    let vols = ctx.list(&lc.command, &lc.params, &lc.items).await?;
    let sizes: HashMap<&str, &Value> = vols.iter().filter_map(|v| Some((field(v, "id")?, v.get("size")?))).collect();
    for x in items.iter_mut() {
        if x.get("virtualsize").is_some_and(|v| !v.is_null()) {
            continue;
        }
        let size = field(x, "volumeid")
            .and_then(|u| sizes.get(u))
            .map(|v| (*v).clone())
            .or_else(|| x.get("physicalsize").cloned());
        if let Some(sz) = size {
            set(x, "_volumesize", sz);
        }
    }
    Ok(items)
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
