//! Instance steps: RunInstances, the start/stop/reboot/terminate state changes, and the
//! DescribeInstances list transforms (tombstones, reservations).

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::super::backend::join_limited;
use super::super::background::{self, Worker};
use super::super::convert::cloudstack_now;
use super::super::exec::{Ctx, Prepared};
use super::common::{create_tags, field, idempotent_undo, param};
use super::vpc_objects::owner;
use super::{arg_strs, check_keys};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};
use crate::journal::Tomb;

/// CloudStack states of a VM that is gone (EC2 `terminated`).
const GONE: &[&str] = &["Destroyed", "Expunging"];
/// State the gateway reports while its destroy job runs (mapped to `shutting-down`).
const DESTROYING: &str = "Destroying";
/// After this long (seconds) a VM that is still there was not destroyed after all.
const DESTROY_GRACE: i64 = 600;

// ---------------------------------------------------------------------------------------------
// Start / Stop / Reboot / Terminate

pub fn check_state_change_args(args: &Value) -> Result<(), String> {
    check_keys(
        args,
        &[
            "command",
            "current",
            "skip",
            "refuse",
            "refuse_message",
            "tombstone",
            "protect",
            "volumes",
            "watch",
            "public_ips",
        ],
        &["command", "current"],
    )?;
    for k in ["command", "current", "refuse_message"] {
        if args.get(k).is_some_and(|v| !v.is_string()) {
            return Err(format!("args.{k} must be a string"));
        }
    }
    Ok(())
}

/// The instance's state as EC2 should see it, given the gateway's own record of terminations.
fn overlay_state(vm: &Value, tomb: Option<&Tomb>) -> String {
    let st = field(vm, "state").unwrap_or("Unknown").to_string();
    match tomb {
        Some(t) if !GONE.contains(&st.as_str()) && crate::journal::now() - t.at < DESTROY_GRACE => DESTROYING.into(),
        _ => st,
    }
}

/// The caller has no tombstones: its instances are exactly what CloudStack lists.
pub async fn no_tombstones(ctx: &Ctx<'_>) -> Result<bool, Ec2Error> {
    Ok(read_tombs(ctx, true).await?.is_empty())
}

/// The caller's tombstones (terminated instances), by EC2 id: one store read.
pub(crate) async fn load_tombs(ctx: &Ctx<'_>) -> Result<HashMap<String, Tomb>, Ec2Error> {
    read_tombs(ctx, false).await
}

/// `load_tombs`, or for a listing the read `Journal::tombs_for_listing` may reuse.
async fn read_tombs(ctx: &Ctx<'_>, listing: bool) -> Result<HashMap<String, Tomb>, Ec2Error> {
    let since = crate::journal::now() - ctx.ex.opts.tombstone_ttl.as_secs() as i64;
    let (j, who) = (&ctx.ex.journal, owner(ctx));
    let read = if listing { j.tombs_for_listing(&who, since) } else { j.tombs(&who, since) };
    let l = read.await.map_err(|e| {
        tracing::warn!(error = %e, "store failure reading terminated instances");
        Ec2Error::new(Code::Unavailable, "The service is unavailable. Please try again shortly.")
    })?;
    Ok(l.into_iter().map(|t| (t.id.clone(), t)).collect())
}

pub async fn state_change(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let args = &ctx.action.args;
    let command = args.get("command").and_then(Value::as_str).unwrap_or_default();
    let current = args.get("current").and_then(Value::as_str).unwrap_or_default();
    let skip = arg_strs(args, "skip");
    let refuse = arg_strs(args, "refuse");
    let make_tombstones = args.get("tombstone").and_then(Value::as_bool).unwrap_or(false);
    let refuse_msg = args
        .get("refuse_message")
        .and_then(Value::as_str)
        .unwrap_or("The instance '{id}' is not in a state from which the requested operation can be performed.");
    let kind = ctx.ex.table.kinds.get(&Kind::Instance).ok_or_else(Ec2Error::internal)?;
    let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
    // One list call for every instance's previous state.
    let mut params = lc.params.clone();
    params.push(("ids".into(), prep.ids.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>().join(",")));
    let vms = ctx.list(&lc.command, &params, &lc.items).await?;
    let tombs = load_tombs(ctx).await?;
    struct Row<'r> {
        ec2: &'r str,
        uuid: &'r str,
        prev: String,
        vm: Value,
    }
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (ec2, uuid) in &prep.ids {
        let vm = vms.iter().find(|v| field(v, "id") == Some(uuid.as_str()));
        let tomb = tombs.get(ec2);
        match (vm, tomb) {
            (Some(vm), t) => rows.push(Row { ec2, uuid, prev: overlay_state(vm, t), vm: vm.clone() }),
            (None, Some(t)) => rows.push(Row { ec2, uuid, prev: "Destroyed".into(), vm: t.doc.clone() }),
            (None, None) => missing.push(ec2.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(super::super::exec::not_found(kind, &missing));
    }
    if let Some(r) = rows.iter().find(|r| refuse.contains(&r.prev)) {
        return Err(Ec2Error::new(Code::IncorrectInstanceState, refuse_msg.replace("{id}", r.ec2)));
    }
    let todo: Vec<usize> = (0..rows.len()).filter(|&i| !skip.contains(&rows[i].prev)).collect();
    if flag_arg(args, "protect") {
        let attrs = super::attrs::all(ctx, super::attrs::INSTANCE).await?;
        if let Some(&i) =
            todo.iter().find(|&&i| super::attrs::flag(attrs.get(rows[i].ec2), DISABLE_API_TERMINATION, false))
        {
            return Err(Ec2Error::new(
                Code::OperationNotPermitted,
                format!(
                    "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                    rows[i].ec2
                ),
            ));
        }
    }
    // Data volumes: detached (kept) or named for deletion with the VM, before it goes.
    let mut with_volumes: HashMap<usize, Vec<String>> = HashMap::new();
    if flag_arg(args, "volumes") && !todo.is_empty() {
        let targets: Vec<(&str, &str, &str)> =
            todo.iter().map(|&i| (rows[i].ec2, rows[i].uuid, rows[i].prev.as_str())).collect();
        let plan = release_data_volumes(ctx, &targets).await?;
        for (&i, vols) in todo.iter().zip(plan) {
            if !vols.is_empty() {
                with_volumes.insert(i, vols);
            }
        }
    }
    let futs = todo.iter().map(|&i| {
        let mut p = vec![("id".to_string(), rows[i].uuid.to_string())];
        if let Some(v) = with_volumes.get(&i) {
            p.push(("volumeids".to_string(), v.join(",")));
        }
        p.extend(prep.params.iter().cloned());
        async move { ctx.start_job(command, &p).await }
    });
    let results = join_limited(futs.collect(), ctx.ex.opts.call_concurrency).await;
    let mut started = Vec::new();
    let mut jobs = Vec::new();
    let mut first_err = None;
    for (&i, r) in todo.iter().zip(results) {
        match r {
            Ok(j) => {
                started.push(i);
                jobs.push(json!([rows[i].uuid, j.jobid]));
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    // Instances in subnets (read before their records go below): their tiers' security group
    // lists no longer count them.
    let in_vpc = if command == "destroyVirtualMachine" && !started.is_empty() {
        let groups = super::vpc_sg::instance_groups(ctx).await.unwrap_or_default();
        started.iter().any(|&i| groups.contains_key(rows[i].ec2))
    } else {
        false
    };
    if flag_arg(args, "protect") {
        let gone: Vec<String> = started.iter().map(|&i| rows[i].ec2.to_string()).collect();
        super::attrs::forget(ctx, &gone).await;
    }
    if flag_arg(args, "public_ips") {
        let gone: Vec<String> = started.iter().map(|&i| rows[i].uuid.to_string()).collect();
        super::addresses::release_launch_addresses(ctx, &gone).await;
    }
    if make_tombstones {
        let w = Worker::of(ctx.ex);
        let me = owner(ctx);
        for &i in &started {
            let mut vm = rows[i].vm.clone();
            if let Some(o) = vm.as_object_mut() {
                o.insert("_statereason".into(), background::user_shutdown_reason());
                o.insert("_reason".into(), Value::String(background::user_transition_reason()));
            }
            w.bury(&me, rows[i].ec2, background::slim_vm(&vm)).await;
        }
    }
    if in_vpc {
        let gone: Vec<String> = started.iter().map(|&i| rows[i].uuid.to_string()).collect();
        super::sg_enforce::after_terminate(ctx, &gone).await;
    }
    if flag_arg(args, "watch") && !jobs.is_empty() {
        // How each job ends is reported as EC2 would (stateReason), after the answer.
        let doc = json!({ "command": command, "vms": jobs });
        Worker::of(ctx.ex).start("watch-state", &owner(ctx), ctx.creds(), doc).await;
    }
    if let Some(mut e) = first_err {
        if !started.is_empty() {
            let done: Vec<&str> = started.iter().map(|&i| rows[i].ec2).collect();
            e.message = format!("{} (the request was carried out for {})", e.message, done.join(", "));
        }
        return Err(e);
    }
    let out: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let cur = if started.contains(&i) { current.to_string() } else { r.prev.clone() };
            json!({ "id": r.uuid, "current": cur, "previous": r.prev })
        })
        .collect();
    Ok(Value::Array(out))
}

fn flag_arg(args: &Value, key: &str) -> bool {
    args.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The instance attribute TerminateInstances honours (ModifyInstanceAttribute sets it).
pub const DISABLE_API_TERMINATION: &str = "disableApiTermination";
/// The volume attribute that decides what TerminateInstances does with a data volume.
pub const DELETE_ON_TERMINATION: &str = "deleteOnTermination";

/// TerminateInstances, before the VMs are destroyed: EC2 deletes the data volumes marked
/// DeleteOnTermination and detaches the others (they become `available`). CloudStack keeps data
/// volumes attached to a destroyed VM until it is expunged, and detaches only from a running or
/// stopped VM; so the volumes to keep are detached first (and waited for), and the uuids of the
/// volumes to delete are answered per target, for destroyVirtualMachine's `volumeids`.
/// Refused before anything changes when a volume to keep cannot be detached now.
async fn release_data_volumes(ctx: &Ctx<'_>, targets: &[(&str, &str, &str)]) -> Result<Vec<Vec<String>>, Ec2Error> {
    let params = [("listall".to_string(), "true".to_string()), ("type".to_string(), "DATADISK".to_string())];
    let vols = ctx.list("listVolumes", &params, "volume").await?;
    let attrs = super::attrs::all(ctx, super::attrs::VOLUME).await?;
    let mut delete: Vec<Vec<String>> = vec![Vec::new(); targets.len()];
    let mut detach: Vec<String> = Vec::new();
    for v in &vols {
        let (Some(vm), Some(uuid)) = (field(v, "virtualmachineid"), field(v, "id")) else { continue };
        if field(v, "type") == Some("ROOT") {
            continue;
        }
        let Some(t) = targets.iter().position(|(_, u, _)| *u == vm) else { continue };
        let vol = ids::ec2_id(Kind::Volume, uuid);
        if super::attrs::flag(attrs.get(&vol), DELETE_ON_TERMINATION, false) {
            delete[t].push(uuid.to_string());
            continue;
        }
        let (ec2, _, prev) = targets[t];
        if prev != "Running" && prev != "Stopped" {
            return Err(Ec2Error::new(
                Code::IncorrectInstanceState,
                format!(
                    "The instance '{ec2}' is '{}' and volume '{vol}' can be detached from it only once it is running or stopped; try again then.",
                    ctx.ex.table.maps.get("instance_state_name").and_then(|m| m.get(prev)).unwrap_or(prev)
                ),
            ));
        }
        let (status, att) = super::volumes::volume_status(v);
        if att != Some("attached") {
            return Err(Ec2Error::new(
                Code::IncorrectState,
                format!(
                    "Volume '{vol}' attached to instance '{ec2}' is '{}'; try again when it is attached.",
                    att.unwrap_or(status)
                ),
            ));
        }
        detach.push(uuid.to_string());
    }
    if !detach.is_empty() {
        let futs = detach.iter().map(|u| async move {
            let j = ctx.start_job("detachVolume", &[("id".to_string(), u.clone())]).await?;
            ctx.wait_job("detachVolume", &j.jobid).await
        });
        for r in join_limited(futs.collect(), ctx.ex.opts.call_concurrency).await {
            r?;
        }
    }
    Ok(delete)
}

// ---------------------------------------------------------------------------------------------
// DescribeInstances transforms

/// Instances being destroyed show `Destroying` (shutting-down); instances CloudStack no longer
/// lists stay visible as `Destroyed` (terminated) for `tombstone_ttl`, with the reason EC2
/// gives. A VM in `Error` (its deploy failed; the gateway removes it) is terminated with
/// `Server.InternalError`; a failed stop or start leaves its `stateReason` on the instance.
pub async fn tombstones(ctx: &Ctx<'_>, prep: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let mut tombs = read_tombs(ctx, true).await?;
    // An instance asked for by id that CloudStack no longer lists and the reused read does not
    // hold may have been terminated through another gateway within the last second: ask the
    // store before it becomes NotFound.
    if !prep.ids.is_empty() {
        let uuids: std::collections::HashSet<&str> = items.iter().filter_map(|vm| field(vm, "id")).collect();
        if prep.ids.iter().any(|(ec2, uuid)| !uuids.contains(uuid.as_str()) && !tombs.contains_key(ec2)) {
            tombs = read_tombs(ctx, false).await?;
        }
    }
    let attrs = super::attrs::all_for_listing(ctx, super::attrs::INSTANCE).await?;
    // Nothing recorded for the caller's instances (the usual listing): only a VM in Error
    // changes, and no instance needs its EC2 id worked out here.
    let plain = tombs.is_empty() && attrs.is_empty();
    let mut listed = std::collections::HashSet::new();
    for vm in items.iter_mut() {
        if plain && field(vm, "state") != Some("Error") {
            continue;
        }
        let Some(uuid) = field(vm, "id").map(str::to_string) else { continue };
        let ec2 = ctx.ec2_id(Kind::Instance, &uuid);
        let (state, reason, transition) = match tombs.get(&ec2) {
            Some(t) => {
                // A VM in Error (its deploy failed) is terminated at once, not shutting down.
                let st =
                    if field(vm, "state") == Some("Error") { "Error".to_string() } else { overlay_state(vm, Some(t)) };
                if st != DESTROYING && !GONE.contains(&st.as_str()) && st != "Error" {
                    // The destroy did not happen; forget it.
                    let _ = ctx.ex.journal.unbury(&owner(ctx), &ec2).await;
                    (None, None, None)
                } else {
                    (Some(st), t.doc.get("_statereason").cloned(), t.doc.get("_reason").cloned())
                }
            }
            None if field(vm, "state") == Some("Error") => {
                let r = background::launch_failure_reason(None);
                let m = r["message"].clone();
                (None, Some(r), Some(m))
            }
            None => match attrs.get(&ec2) {
                Some(a) => {
                    (None, a.get(background::STATE_REASON).cloned(), a.get(background::TRANSITION_REASON).cloned())
                }
                None => (None, None, None),
            },
        };
        if let Some(o) = vm.as_object_mut() {
            if let Some(st) = state {
                o.insert("state".into(), Value::String(st));
            }
            if let Some(r) = reason.filter(|r| r.is_object()) {
                o.insert("_statereason".into(), r);
            }
            if let Some(r) = transition.filter(|r| r.is_string()) {
                o.insert("_reason".into(), r);
            }
        }
        listed.insert(ec2);
    }
    let wanted: Option<std::collections::HashSet<&str>> =
        (!prep.ids.is_empty()).then(|| prep.ids.iter().map(|(e, _)| e.as_str()).collect());
    let mut extra: Vec<&Tomb> = tombs
        .values()
        .filter(|t| !listed.contains(&t.id) && wanted.as_ref().is_none_or(|w| w.contains(t.id.as_str())))
        .collect();
    extra.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    items.extend(extra.into_iter().map(|t| t.doc.clone()));
    Ok(items)
}

/// `_ostypename` on each VM from its `ostypeid` (one cached listOsTypes): DescribeInstances then
/// answers `platform` `windows` for Windows guests, as DescribeImages does for their images.
/// A CloudStack that names the OS itself (`osdisplayname`) needs no call. A failed lookup only
/// leaves the platform out.
pub async fn platform(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    if !items.iter().any(|v| v.get("osdisplayname").is_none() && field(v, "ostypeid").is_some()) {
        return Ok(items);
    }
    let os = match ctx.list_cached("listOsTypes", &[], "ostype").await {
        Ok(os) => os,
        Err(e) => {
            tracing::warn!(error = %e.message, "listOsTypes failed; instances are described without platform");
            return Ok(items);
        }
    };
    let names: HashMap<&str, &str> =
        os.iter().filter_map(|o| Some((field(o, "id")?, field(o, "description")?))).collect();
    for v in items.iter_mut() {
        let name = field(v, "ostypeid").and_then(|id| names.get(id)).map(|n| n.to_string());
        if let (Some(n), Some(o)) = (name, v.as_object_mut()) {
            o.insert("_ostypename".into(), Value::String(n));
        }
    }
    Ok(items)
}

/// One volume as blockDeviceMapping shows it: what `block_devices` keeps of listVolumes.
struct Device {
    dev: i64,
    name: String,
    uuid: String,
    status: &'static str,
    attach: Option<String>,
    root: bool,
}

/// The listed volumes by VM uuid, each VM's in device order.
type Devices = HashMap<String, Vec<Device>>;

/// The fields of a listVolumes item the index reads (`devices`); the others are skipped unread.
const VOLUME_FIELDS: [&str; 8] =
    ["id", "virtualmachineid", "type", "deviceid", "state", "jobstatus", "attached", "created"];

/// The listed volumes by VM uuid, each VM's in device order, read from the listing's pages as
/// they come (`Ctx::list_picked`): the items are never `Value` trees, and only the fields of
/// `VOLUME_FIELDS` are decoded (`base::fields::PickFlat`, inside the client's one pass over each
/// page), as `field`, `scalar_text` and `volumes::volume_status` would read them from a `Value`.
async fn devices(ctx: &Ctx<'_>) -> Result<Devices, Ec2Error> {
    let names = ctx.ex.table.maps.get("device_name");
    let mut by_vm: Devices = HashMap::new();
    let mut each = |fields: &[crate::base::fields::Scalar<'_>]| -> Result<(), crate::cloudstack::CsError> {
        for v in fields.chunks_exact(VOLUME_FIELDS.len()) {
            let [id, vm, kind, deviceid, state, jobstatus, attached, created] = v else { continue };
            let (Some(vm), Some(uuid)) = (vm.str(), id.str()) else { continue };
            let root = kind.str() == Some("ROOT");
            let dev = if root { 0 } else { deviceid.int().unwrap_or(-1) };
            let Some(name) = names.and_then(|m| m.get(&dev.to_string())) else { continue };
            let (_, att) = super::volumes::status_of(state.str().unwrap_or(""), true, jobstatus.text_is("0"));
            by_vm.entry(vm.to_string()).or_default().push(Device {
                dev,
                name: name.to_string(),
                uuid: uuid.to_string(),
                status: att.unwrap_or("attached"),
                attach: attached.str().or(created.str()).and_then(super::super::convert::iso8601),
                root,
            });
        }
        Ok(())
    };
    let params = [("listall".to_string(), "true".to_string())];
    ctx.list_picked("listVolumes", &params, "volume", &VOLUME_FIELDS, &mut each).await?;
    for devs in by_vm.values_mut() {
        devs.sort_by_key(|d| d.dev);
    }
    Ok(by_vm)
}

/// `_blockdevices`: the root volume (`/dev/sda1`) and each attached data volume of every listed
/// instance, as EC2's blockDeviceMapping: one listVolumes for all of them and one store read
/// for DeleteOnTermination (docs/gateway-state.md). Device names follow the volume's CloudStack
/// device id (`map.device_name`). CloudStack's listVolumes selects by one VM at most, so the
/// listing holds every volume of the caller: the pages after the first of one paging walk reuse
/// the first page's (docs/mappings.md "Paging").
pub async fn block_devices(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let live = |vm: &Value| !matches!(field(vm, "state"), Some("Destroyed" | "Expunging" | "Destroying"));
    if !items.iter().any(live) {
        return Ok(items);
    }
    let by_vm = match ctx.walk_get::<Devices>("listVolumes") {
        Some(d) => d,
        None => {
            let d = std::sync::Arc::new(devices(ctx).await?);
            ctx.walk_put("listVolumes", d.clone());
            d
        }
    };
    // DeleteOnTermination of data volumes (a root volume's is always true): one store read, only
    // when some listed instance has a data volume.
    let data = items.iter().filter_map(|vm| by_vm.get(field(vm, "id")?)).flatten().any(|d| !d.root);
    let dot = if data { super::attrs::all(ctx, super::attrs::VOLUME).await? } else { HashMap::new() };
    for vm in items.iter_mut() {
        let Some(id) = field(vm, "id") else { continue };
        let devs = by_vm.get(id).map(Vec::as_slice).unwrap_or_default();
        let mut list = Vec::with_capacity(devs.len());
        for d in devs {
            // Recorded in the id cache with the answer's other ids.
            let vol = ctx.ec2_id(Kind::Volume, &d.uuid);
            // Built by hand: `json!` would serialize every value into a copy.
            let dot = d.root || super::attrs::flag(dot.get(&vol), DELETE_ON_TERMINATION, false);
            let mut ebs = serde_json::Map::new();
            ebs.insert("volumeId".into(), Value::String(vol));
            ebs.insert("status".into(), Value::String(d.status.into()));
            ebs.insert("attachTime".into(), d.attach.clone().map_or(Value::Null, Value::String));
            ebs.insert("deleteOnTermination".into(), Value::Bool(dot));
            let mut dev = serde_json::Map::new();
            dev.insert("deviceName".into(), Value::String(d.name.clone()));
            dev.insert("ebs".into(), Value::Object(ebs));
            list.push(Value::Object(dev));
        }
        if let Some(o) = vm.as_object_mut() {
            o.insert("_blockdevices".into(), Value::Array(list));
        }
    }
    Ok(items)
}

/// `_reservationid`: the deploy batch (the CloudStack instance group RunInstances named
/// `r-...`), else one reservation per VM.
pub async fn reservation_ids(_: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    for vm in items.iter_mut() {
        let rid = match field(vm, "group") {
            Some(g) if ids::is_well_formed(Kind::Reservation, g) => g.to_string(),
            _ => ids::ec2_id(Kind::Reservation, field(vm, "id").unwrap_or_default()),
        };
        if let Some(o) = vm.as_object_mut() {
            o.insert("_reservationid".into(), Value::String(rid));
        }
    }
    Ok(items)
}

/// Instances -> reservations, in order of first appearance; launch index = position in it.
pub async fn group_reservations(_: &Ctx<'_>, _: &Prepared, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<Value>> = HashMap::new();
    for vm in items {
        let rid = match field(&vm, "_reservationid") {
            Some(r) => r.to_string(),
            None => ids::ec2_id(Kind::Reservation, field(&vm, "id").unwrap_or_default()),
        };
        if !groups.contains_key(&rid) {
            order.push(rid.clone());
        }
        groups.entry(rid).or_default().push(vm);
    }
    let mut out = Vec::new();
    for rid in order {
        let mut vms = groups.remove(&rid).unwrap_or_default();
        for (i, vm) in vms.iter_mut().enumerate() {
            if let Some(o) = vm.as_object_mut() {
                o.entry("_launchindex").or_insert(Value::from(i));
            }
        }
        // Built by hand: `json!` would serialize (deep-copy) every instance.
        let first = vms.first();
        let ownerid = first.and_then(|f| f.get("account")).cloned().unwrap_or(Value::Null);
        let mut r = serde_json::Map::new();
        r.insert("reservationid".into(), Value::String(rid));
        r.insert("ownerid".into(), ownerid);
        r.insert("instances".into(), Value::Array(vms));
        out.push(Value::Object(r));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// RunInstances

pub fn check_run_args(args: &Value) -> Result<(), String> {
    check_keys(args, &["command", "default_type"], &["command"])
}

pub async fn run_instances(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let min = p.int("MinCount")?.unwrap_or(1);
    let max = p.int("MaxCount")?.unwrap_or(min);
    if min < 1 {
        return Err(Ec2Error::invalid_value("MinCount", &min.to_string(), "MinCount must be at least 1."));
    }
    if max < min {
        return Err(Ec2Error::invalid_value("MaxCount", &max.to_string(), "MaxCount must not be less than MinCount."));
    }
    let cap = ctx.ex.opts.max_run_count;
    if min > cap {
        return Err(Ec2Error::new(
            Code::InstanceLimitExceeded,
            format!("Your quota allows for {cap} more running instance(s). You requested at least {min}."),
        ));
    }
    // Interfaces made at launch take the `network-interface` tags (launch_nics), the launch's
    // volumes the `volume` tags (tag_launch_volumes).
    let tags = super::common::launch_tags(p, "instance")?;
    let volume_tags = super::common::launch_tags(p, "volume")?;
    let token = p.get("ClientToken").filter(|t| !t.is_empty());
    // Subnets, private addresses, network interfaces, VPC security groups (docs/vpc.md).
    let (prep, in_vpc) = super::vpc::placement(ctx, prep).await?;
    let prep = &prep;
    let protect = p.bool("DisableApiTermination")?;
    let (disks, data_dot) = block_device_mappings(ctx, prep).await?;
    let mut with_disks = prep.clone();
    with_disks.params.extend(disks);
    let prep = &with_disks;
    let launched = async move {
        // Addresses of network interfaces are claimed only now: a ClientToken retry answered
        // from the first launch must not claim any.
        let mut in_vpc = in_vpc;
        let mut deploy = prep.clone();
        super::vpc::claim_launch(ctx, &mut in_vpc, &mut deploy).await?;
        let mut doc = match launch(ctx, &deploy, max.min(cap), min, (&tags, &volume_tags), token).await {
            Ok(d) => d,
            Err(e) => {
                super::vpc::launch_failed(ctx, &in_vpc).await;
                return Err(e);
            }
        };
        super::vpc::after_launch(ctx, &in_vpc, &mut doc).await?;
        // Best effort: unmarked, the volumes are kept at termination (the safe side).
        if data_dot && let Err(e) = mark_launch_volumes(ctx, &doc).await {
            tracing::warn!(error = %e, "could not mark the launch's data volumes DeleteOnTermination");
        }
        if protect == Some(true) {
            let made: Vec<String> = doc["instances"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|vm| field(vm, "id"))
                .map(|u| ids::ec2_id(Kind::Instance, u))
                .collect();
            super::attrs::set(ctx, super::attrs::INSTANCE, &made, DISABLE_API_TERMINATION, Value::Bool(true)).await?;
        }
        Ok(doc)
    };
    // A launch cut short before its answer (the gateway died) is undone by whoever takes its
    // record over: the VMs of its reservation.
    let undo = json!({ "undo_group": reservation_id(ctx, token) });
    idempotent_undo(ctx, undo, launched).await
}

fn is_root_device(dev: &str) -> bool {
    matches!(dev.strip_prefix("/dev/").unwrap_or(dev), "sda1" | "sda" | "xvda")
}

fn unsupported_bdm(what: &str, why: &str) -> Ec2Error {
    Ec2Error::new(Code::UnsupportedOperation, format!("{what} is not supported by this cloud: {why}"))
}

/// RunInstances BlockDeviceMapping.N, as far as one deployVirtualMachine can honour it: the root
/// volume's size (`rootdisksize`, at least the image's) and one data volume (`diskofferingid` +
/// `size`), which CloudStack attaches as its first data disk, so its device must be /dev/sdb
/// (or /dev/xvdb). Answers the parameters for the deploy and whether the data volume is to be
/// deleted on termination (EC2's default for a volume made at launch). Everything else is
/// refused by name before anything is made (docs/gateway-state.md).
async fn block_device_mappings(ctx: &Ctx<'_>, prep: &Prepared) -> Result<(Vec<(String, String)>, bool), Ec2Error> {
    let maps = ctx.req.params.members("BlockDeviceMapping");
    let mut out: Vec<(String, String)> = Vec::new();
    let mut data_dot = false;
    let mut data_seen = false;
    for (i, m) in maps.iter().enumerate() {
        let n = i + 1;
        let at = |k: &str| format!("BlockDeviceMapping.{n}.{k}");
        let dev = m
            .get("DeviceName")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| Ec2Error::missing_parameter(&at("DeviceName")))?;
        if m.get("VirtualName").is_some() {
            return Err(unsupported_bdm(&at("VirtualName"), "instances have no instance store volumes."));
        }
        for k in ["Ebs.Iops", "Ebs.KmsKeyId", "Ebs.Throughput", "Ebs.OutpostArn"] {
            if m.get(k).is_some() {
                return Err(unsupported_bdm(&at(k), "volumes have no such setting here."));
            }
        }
        if m.bool("Ebs.Encrypted")? == Some(true) {
            return Err(unsupported_bdm(&at("Ebs.Encrypted"), "volumes are not encrypted."));
        }
        let size = match m.get("Ebs.VolumeSize") {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(g) if (1..=16384).contains(&g) => Some(g),
                _ => {
                    return Err(Ec2Error::invalid_value(
                        &at("Ebs.VolumeSize"),
                        v,
                        "The volume size must be 1 to 16384 GiB.",
                    ));
                }
            },
        };
        let dot = m.bool("Ebs.DeleteOnTermination")?;
        let vtype = m.get("Ebs.VolumeType").filter(|t| !t.is_empty());
        if let Some(t) = vtype
            && !["standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"].contains(&t)
        {
            return Err(Ec2Error::invalid_value(&at("Ebs.VolumeType"), t, "Unknown volume type."));
        }
        if is_root_device(dev) {
            if m.get("NoDevice").is_some() {
                return Err(unsupported_bdm(
                    &at("NoDevice"),
                    "an instance cannot be launched without its root volume.",
                ));
            }
            if dot == Some(false) {
                return Err(unsupported_bdm(
                    &at("Ebs.DeleteOnTermination"),
                    "the root volume is always deleted with its instance.",
                ));
            }
            if vtype.is_some_and(|t| t != "standard") {
                return Err(unsupported_bdm(
                    &at("Ebs.VolumeType"),
                    "the root volume's storage is the instance type's; its type is standard.",
                ));
            }
            let tpl_uuid = param(prep, "templateid").unwrap_or_default().to_string();
            if let Some(snap) = m.get("Ebs.SnapshotId")
                && snap != ids::ec2_id(Kind::Snapshot, &tpl_uuid)
            {
                return Err(unsupported_bdm(&at("Ebs.SnapshotId"), "the root volume is made from the image."));
            }
            if let Some(g) = size {
                let ami = ctx.req.params.get("ImageId").unwrap_or_default();
                let t = super::images::find_template(ctx, ami, &tpl_uuid).await?;
                let have = t
                    .get("size")
                    .and_then(|v| super::super::expr::scalar_text(v).parse::<u64>().ok())
                    .map(|b| b.div_ceil(1 << 30));
                if let Some(h) = have
                    && (g as u64) < h
                {
                    return Err(Ec2Error::invalid_value(
                        &at("Ebs.VolumeSize"),
                        &g.to_string(),
                        &format!(
                            "Volume of size {g}GB is smaller than snapshot '{}', expect size >= {h}GB",
                            ids::ec2_id(Kind::Snapshot, &tpl_uuid)
                        ),
                    ));
                }
                out.push(("rootdisksize".into(), g.to_string()));
            }
            continue;
        }
        if m.get("NoDevice").is_some() {
            // The image maps nothing but its root volume: there is nothing to suppress.
            continue;
        }
        if super::super::resolve::device_id(dev).is_none() {
            return Err(Ec2Error::invalid_value(
                &at("DeviceName"),
                dev,
                &format!("{dev} is not a valid EBS device name."),
            ));
        }
        if super::super::resolve::device_id(dev) != Some(1) {
            return Err(unsupported_bdm(
                &at("DeviceName"),
                &format!(
                    "the volume made at launch is the instance's first data disk, /dev/sdb; use /dev/sdb, or attach a volume at {dev} with AttachVolume once the instance runs."
                ),
            ));
        }
        if data_seen {
            return Err(unsupported_bdm(
                &at("DeviceName"),
                "one data volume is made at launch; attach more with AttachVolume.",
            ));
        }
        data_seen = true;
        if m.get("Ebs.SnapshotId").is_some() {
            return Err(unsupported_bdm(
                &at("Ebs.SnapshotId"),
                "a volume made at launch starts empty; make it with CreateVolume and attach it.",
            ));
        }
        let Some(g) = size else {
            return Err(Ec2Error::missing_parameter(&at("Ebs.VolumeSize")));
        };
        let offering = super::volumes::disk_offering(ctx, vtype).await?;
        out.push(("diskofferingid".into(), field(&offering, "id").unwrap_or_default().to_string()));
        out.push(("size".into(), g.to_string()));
        data_dot = dot.unwrap_or(true);
    }
    Ok((out, data_dot))
}

/// The data volumes made with the launched instances are deleted on termination: one
/// listVolumes, marks in the store.
async fn mark_launch_volumes(ctx: &Ctx<'_>, doc: &Value) -> Result<(), Ec2Error> {
    let vms: Vec<&str> = doc["instances"].as_array().into_iter().flatten().filter_map(|vm| field(vm, "id")).collect();
    let params = [("listall".to_string(), "true".to_string()), ("type".to_string(), "DATADISK".to_string())];
    let vols = ctx.list("listVolumes", &params, "volume").await?;
    let made: Vec<String> = vols
        .iter()
        .filter(|v| field(v, "type") != Some("ROOT") && field(v, "virtualmachineid").is_some_and(|u| vms.contains(&u)))
        .filter_map(|v| field(v, "id"))
        .map(|u| ids::ec2_id(Kind::Volume, u))
        .collect();
    super::attrs::set(ctx, super::attrs::VOLUME, &made, DELETE_ON_TERMINATION, Value::Bool(true)).await
}

/// Undo a launch in the background, recorded in the operations journal (docs/gateway-state.md):
/// each deploy job is let end first (CloudStack serialises work on a VM, and a VM destroyed
/// mid-deploy could come back), then each VM is destroyed and expunged. The error is answered
/// at once: a request timeout, a shutdown or a restart cannot cut the undo short, and a retry
/// finds nothing of this launch.
async fn undo_launch(ctx: &Ctx<'_>, made: &[(String, String)], deploy: &str) {
    if made.is_empty() {
        return;
    }
    let vms: Vec<Value> = made.iter().map(|(u, j)| json!([u, j])).collect();
    let doc = json!({ "command": deploy, "vms": vms });
    Worker::of(ctx.ex).start("undo-launch", &owner(ctx), ctx.creds(), doc).await;
}

/// The reservation id of a launch: derived from its ClientToken (a retry names the same
/// reservation), else random.
fn reservation_id(ctx: &Ctx<'_>, token: Option<&str>) -> String {
    let seed = match token {
        Some(t) => match &ctx.ex.opts.store_scope {
            Some(region) => format!("token:{region}:{}:{t}", ctx.who.cloudstack.api_key),
            None => format!("token:{}:{t}", ctx.who.cloudstack.api_key),
        },
        None => uuid::Uuid::new_v4().to_string(),
    };
    ids::ec2_id(Kind::Reservation, &seed)
}

/// A tag: key and value.
type Tag = (String, String);

/// `TagSpecification` of type `volume`: the volumes the launch made (CloudStack allocates a VM's
/// ROOT volume, and the data disks of its block device mappings, when it accepts the deploy,
/// before the job runs), tagged like CreateTags would.
async fn tag_launch_volumes(
    ctx: &Ctx<'_>,
    made: &[(String, String)],
    tags: &[(String, String)],
) -> Result<(), Ec2Error> {
    let mut uuids = Vec::new();
    for (vm, _) in made {
        let vols = ctx.list("listVolumes", &[("virtualmachineid".into(), vm.clone())], "volume").await?;
        uuids.extend(vols.iter().filter_map(|v| field(v, "id")).map(str::to_string));
    }
    if uuids.is_empty() {
        return Ok(());
    }
    let refs: Vec<&str> = uuids.iter().map(String::as_str).collect();
    create_tags(ctx, "Volume", &refs, tags).await
}

async fn launch(
    ctx: &Ctx<'_>,
    prep: &Prepared,
    count: i64,
    min: i64,
    (tags, volume_tags): (&[Tag], &[Tag]),
    token: Option<&str>,
) -> Result<Value, Ec2Error> {
    let args = &ctx.action.args;
    let command = args.get("command").and_then(Value::as_str).unwrap_or("deployVirtualMachine");
    let rid = reservation_id(ctx, token);
    let mut base = prep.params.clone();
    // The CloudStack instance group ties the batch together for DescribeInstances.
    base.push(("group".into(), rid.clone()));
    let base = &base;
    // Recorded before the first deploy: a gateway that dies (or is stopped) before the answer
    // leaves it to be taken over, which removes the reservation's VMs (docs/gateway-state.md).
    let pending = Worker::of(ctx.ex)
        .record("launch", &owner(ctx), ctx.creds(), json!({ "group": rid, "command": command }))
        .await;
    let futs = (0..count).map(|_| async move { ctx.start_job(command, base).await });
    let mut made = Vec::new();
    let mut first_err = None;
    for r in join_limited(futs.collect(), ctx.ex.opts.deploy_concurrency).await {
        match r {
            Ok(j) => match j.id {
                Some(id) => made.push((id, j.jobid)),
                None => {
                    first_err.get_or_insert_with(Ec2Error::internal);
                }
            },
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if (made.len() as i64) < min {
        undo_launch(ctx, &made, command).await;
        pending.finish().await;
        return Err(
            first_err.unwrap_or_else(|| Ec2Error::new(Code::InsufficientInstanceCapacity, "Insufficient capacity."))
        );
    }
    if !tags.is_empty() {
        let uuids: Vec<&str> = made.iter().map(|(u, _)| u.as_str()).collect();
        if let Err(e) = create_tags(ctx, "UserVm", &uuids, tags).await {
            undo_launch(ctx, &made, command).await;
            pending.finish().await;
            return Err(e);
        }
    }
    if !volume_tags.is_empty()
        && let Err(e) = tag_launch_volumes(ctx, &made, volume_tags).await
    {
        undo_launch(ctx, &made, command).await;
        return Err(e);
    }
    // Each deploy is watched after the answer: a failed one is terminated with EC2's reason and
    // removed (docs/gateway-state.md).
    let vms: Vec<Value> = made.iter().map(|(u, j)| json!([u, j])).collect();
    let doc = json!({ "command": command, "vms": vms, "clienttoken": token });
    // The launch's record becomes the watch (one journal write): a gateway that dies from here
    // on leaves the deploys watched, never undone. The new instances' ids are recorded at the
    // same moment (the answer names them), so that both writes share one store commit.
    let new_ids: Vec<(Kind, String, String)> =
        made.iter().map(|(u, _)| (Kind::Instance, ids::ec2_id(Kind::Instance, u), u.clone())).collect();
    tokio::join!(pending.become_op("watch-launch", doc), ctx.ex.ids.record(new_ids));
    // The answer is made from what the gateway knows: no call waits for the deploys.
    let zoneid = param(prep, "zoneid").unwrap_or_default().to_string();
    let zone = ctx
        .list_cached("listZones", &[], "zone")
        .await
        .ok()
        .and_then(|l| l.iter().find(|z| field(z, "id") == Some(zoneid.as_str())).cloned());
    let mut groups: Vec<Value> = Vec::new();
    for n in ctx.req.params.list("SecurityGroup") {
        groups.push(json!({ "name": n }));
    }
    if let Some(ids) = param(prep, "securitygroupids") {
        for u in ids.split(',').filter(|u| !u.is_empty()) {
            groups.push(json!({ "id": u }));
        }
    }
    if groups.is_empty()
        && zone.as_ref().and_then(|z| z.get("securitygroupsenabled")).and_then(Value::as_bool) == Some(true)
    {
        groups.push(json!({ "name": "default" }));
    }
    // EC2 always names a group by id (groupId is required; libcloud reads it): complete names and
    // ids from the security group list the name check just cached.
    if !groups.is_empty()
        && let Ok(known) = ctx.list_cached("listSecurityGroups", &[], "securitygroup").await
    {
        for g in groups.iter_mut() {
            let found = known.iter().find(|k| {
                (g.get("id").is_some() && k.get("id") == g.get("id"))
                    || (g.get("name").is_some() && k.get("name") == g.get("name"))
            });
            if let (Some(k), Some(obj)) = (found, g.as_object_mut()) {
                for f in ["id", "name"] {
                    if let Some(v) = k.get(f) {
                        obj.insert(f.into(), v.clone());
                    }
                }
            }
        }
    }
    let default_type = args.get("default_type").and_then(Value::as_str).unwrap_or("m1.small");
    let itype = ctx.req.params.get("InstanceType").filter(|t| !t.is_empty()).unwrap_or(default_type);
    let created = cloudstack_now();
    let tag_list: Vec<Value> = tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
    let instances: Vec<Value> = made
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            let mut vm = json!({
                "id": id,
                "templateid": param(prep, "templateid"),
                "serviceofferingid": param(prep, "serviceofferingid"),
                "serviceofferingname": itype,
                "zoneid": zoneid,
                "zonename": zone.as_ref().and_then(|z| z.get("name")).cloned(),
                "state": "Starting",
                "created": created,
                "securitygroup": groups,
                "tags": tag_list,
                "group": rid,
                "_launchindex": i,
                "_reservationid": rid,
            });
            let o = vm.as_object_mut().expect("object");
            if let Some(k) = param(prep, "keypair") {
                o.insert("keypair".into(), Value::String(k.to_string()));
            }
            if let Some(a) = &ctx.who.account {
                o.insert("account".into(), Value::String(a.clone()));
            }
            if let Some(t) = token {
                o.insert("_clienttoken".into(), Value::String(t.to_string()));
            }
            vm
        })
        .collect();
    Ok(json!({
        "reservationid": rid,
        "ownerid": ctx.who.account,
        "groups": groups,
        "instances": instances,
    }))
}

/// CreateTags / DeleteTags on terminated instances that CloudStack no longer lists: EC2 still
/// tags an instance it shows as terminated, so the tags are changed in the tombstone (its
/// `tags`, which DescribeInstances and DescribeTags show; docs/gateway-state.md). `tags`: (key,
/// value); on delete a `None` value matches any value and no tags removes every tag. Checks
/// everything first, then writes each tombstone (keeping its time).
pub(crate) async fn tag_tombstones(
    ctx: &Ctx<'_>,
    ids: &[String],
    create: bool,
    tags: &[(String, Option<String>)],
) -> Result<(), Ec2Error> {
    let mut tombs = load_tombs(ctx).await?;
    let mut changed = Vec::new();
    for id in ids {
        let mut t = tombs.remove(id).ok_or_else(|| {
            Ec2Error::new(Code::InvalidInstanceIdNotFound, format!("The instance ID '{id}' does not exist"))
        })?;
        let mut list: Vec<Value> = t.doc.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
        let key_of = |x: &Value| field(x, "key").map(str::to_string);
        if create {
            for (k, v) in tags {
                list.retain(|x| key_of(x).as_deref() != Some(k.as_str()));
                list.push(serde_json::json!({ "key": k, "value": v.clone().unwrap_or_default() }));
            }
            if list.len() > 50 {
                return Err(Ec2Error::new(
                    Code::TagLimitExceeded,
                    format!("The resource '{id}' would have more than 50 tags."),
                ));
            }
        } else if tags.is_empty() {
            list.clear();
        } else {
            list.retain(|x| {
                !tags.iter().any(|(k, v)| {
                    key_of(x).as_deref() == Some(k.as_str())
                        && v.as_deref().is_none_or(|v| field(x, "value") == Some(v))
                })
            });
        }
        if let Some(o) = t.doc.as_object_mut() {
            o.insert("tags".into(), Value::Array(list));
        }
        changed.push(t);
    }
    let expire = crate::journal::now() - ctx.ex.opts.tombstone_ttl.as_secs() as i64;
    for t in &changed {
        ctx.ex.journal.bury(t, ctx.ex.opts.tombstone_keep, expire).await.map_err(|e| {
            tracing::warn!(instance = %t.id, error = %e, "store failure tagging a terminated instance");
            Ec2Error::new(Code::Unavailable, "The service is unavailable. Please try again shortly.")
        })?;
    }
    Ok(())
}

/// DescribeTags rows for the tags of terminated instances CloudStack no longer lists (their
/// tombstones), leaving out instances whose rows CloudStack gave (`listed`).
pub(crate) async fn tombstone_tag_rows(ctx: &Ctx<'_>, listed: &HashSet<String>) -> Result<Vec<Value>, Ec2Error> {
    let mut tombs: Vec<Tomb> = load_tombs(ctx).await?.into_values().filter(|t| !listed.contains(&t.id)).collect();
    tombs.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    let mut out = Vec::new();
    for t in tombs {
        for x in t.doc.get("tags").and_then(Value::as_array).into_iter().flatten() {
            let (Some(k), v) = (field(x, "key"), field(x, "value").unwrap_or_default()) else { continue };
            if k.starts_with(super::vpc::MARKER_PREFIX) {
                continue;
            }
            out.push(serde_json::json!({
                "key": k, "value": v, "_resourceid": t.id, "_resourcetype": "instance",
                "_tags": [{ "key": k, "value": v }],
            }));
        }
    }
    Ok(out)
}
