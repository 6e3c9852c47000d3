//! Volumes: create (Allocated, or Ready from a snapshot), attach/detach with device ids,
//! delete (detached only), list.

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::vm_state::*;
use super::super::model::*;
use super::super::render::*;
use super::super::seed::new_uuid;
use super::vm::vm_param;
use super::{CmdSpec, Ctx, Reply, create, job, read, single, success, write};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        create("createVolume", "org.apache.cloudstack.api.command.user.volume.CreateVolumeCmd", create_volume),
        read("listVolumes", "org.apache.cloudstack.api.command.user.volume.ListVolumesCmd", list_volumes),
        job("attachVolume", "org.apache.cloudstack.api.command.user.volume.AttachVolumeCmd", attach),
        job("detachVolume", "org.apache.cloudstack.api.command.user.volume.DetachVolumeCmd", detach),
        write("deleteVolume", "org.apache.cloudstack.api.command.user.volume.DeleteVolumeCmd", delete),
    ]
}

/// customdiskofferingmaxsize (listCapabilities reports it).
pub const MAX_CUSTOM_GB: i64 = 1024;

/// Most data disks a VM takes (device ids 1..=MAX_DEVICE).
const MAX_DEVICE: i64 = 15;

fn volume_param(ctx: &Ctx, m: &Model, name: &str) -> SimResult<u64> {
    ctx.owned(m, &m.volumes, name)
}

fn volume_result(m: &Model, seq: u64) -> Value {
    m.volumes.get(seq).map(|v| single("volume", volume_json(m, v))).unwrap_or_else(|| json!({}))
}

fn limit_error(kind: &str, a: &Account) -> SimError {
    SimError::allocation(format!(
        "Maximum number of resources of type '{kind}' for account name={} in domain id={} has been exceeded.",
        a.name, a.domain
    ))
}

fn free_device(m: &Model, vm: u64, wanted: Option<i64>) -> SimResult<i64> {
    let used: Vec<i64> = m.volumes.values().filter(|v| v.vm == Some(vm)).filter_map(|v| v.deviceid).collect();
    match wanted {
        Some(d) => {
            if !(1..=MAX_DEVICE).contains(&d) {
                return Err(SimError::invalid(format!("deviceId should be between 1 and {MAX_DEVICE}")));
            }
            if used.contains(&d) {
                return Err(SimError::invalid(format!("deviceId {d} is used by VM {}", m.vms.live(vm)?.id)));
            }
            Ok(d)
        }
        None => match (1..=MAX_DEVICE).find(|d| !used.contains(d)) {
            Some(d) => Ok(d),
            None => Err(SimError::invalid(format!(
                "VM {} already has the maximum number of data disks",
                m.vms.live(vm)?.id
            ))),
        },
    }
}

fn attachable_vm(m: &Model, vm: u64) -> SimResult<()> {
    let v = m.vms.live(vm)?;
    if v.planned != RUNNING && v.planned != STOPPED {
        return Err(SimError::invalid("Please specify a VM that is either running or stopped."));
    }
    Ok(())
}

fn create_volume(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let p = &ctx.p;
    let offering = ctx.opt_live(&m.disk_offerings, "diskofferingid")?;
    let snapshot = ctx.opt_live(&m.snapshots, "snapshotid")?;
    let zone = ctx.opt_live(&m.zones, "zoneid")?;
    let vm = match p.opt("virtualmachineid") {
        Some(_) => Some(vm_param(ctx, m, "virtualmachineid")?),
        None => None,
    };
    let size = p.int("size")?;
    let owner = m.owner_for(&ctx.caller, p)?;
    let (zone, size_bytes, from_snapshot) = match (offering, snapshot) {
        (None, None) => {
            return Err(SimError::invalid(
                "Either disk Offering Id or snapshot Id must be passed whilst creating volume",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(SimError::invalid(
                "Either disk Offering Id or snapshot Id must be passed whilst creating volume, not both",
            ));
        }
        (Some(o), None) => {
            let zone = zone.ok_or_else(|| SimError::invalid("Please specify zone ID to create a volume"))?;
            let d = m.disk_offerings.live(o)?;
            let gb = if d.iscustomized {
                match size {
                    Some(s) if (1..=MAX_CUSTOM_GB).contains(&s) => s,
                    Some(s) => {
                        return Err(SimError::invalid(format!(
                            "Volume size: {s} GB is out of allowed range. Max: {MAX_CUSTOM_GB} Min:1"
                        )));
                    }
                    None => return Err(SimError::invalid("This disk offering requires a custom size specified")),
                }
            } else {
                if size.is_some_and(|s| s != d.disksize) {
                    return Err(SimError::invalid("This disk offering does not allow custom size"));
                }
                d.disksize
            };
            (zone, gb << 30, None)
        }
        (None, Some(s)) => {
            let snap = m.snapshots.live(s)?;
            m.check_owned(&ctx.caller, snap)?;
            if snap.state != "BackedUp" {
                return Err(SimError::invalid(format!(
                    "Snapshot id={} is not in BackedUp state yet and can't be used for volume creation",
                    snap.id
                )));
            }
            (snap.zone, snap.volume_size, Some(snap.id.clone()))
        }
    };
    if let Some(v) = vm {
        attachable_vm(m, v)?;
        let vmz = m.vms.live(v)?;
        if vmz.zone != zone {
            return Err(SimError::invalid("Please specify a VM that is in the same zone as the volume."));
        }
        if vmz.owner != owner {
            return Err(SimError::permission("The volume and the VM belong to different accounts"));
        }
        free_device(m, v, None)?;
    }
    let acct = m.account(owner);
    let count = m.volumes.values().filter(|v| v.owner == owner).count() as i64;
    if acct.volume_limit >= 0 && count + 1 > acct.volume_limit {
        return Err(limit_error("volume", acct));
    }
    let id = new_uuid();
    let name = p.opt("name").map(str::to_string).unwrap_or_else(|| format!("DATA-{}", &id[..8]));
    let seq = m.next_seq();
    m.volumes.insert(
        seq,
        Volume {
            id: id.clone(),
            name,
            owner,
            zone,
            kind: "DATADISK",
            vm: None,
            deviceid: None,
            size: size_bytes,
            state: "Allocated",
            diskoffering: offering,
            serviceoffering: None,
            created: ctx.now.clone(),
            attached: None,
            template: None,
            snapshot: from_snapshot.clone(),
            tags: Vec::new(),
        },
    );
    let now = ctx.now.clone();
    Ok(ctx.create_job(
        "Volume",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.volumes.remove(seq);
            })?;
            // Attach now if asked (and still possible: the VM may have gone meanwhile).
            let device = match vm {
                Some(v) if attachable_vm(m, v).is_ok() => free_device(m, v, None).ok(),
                _ => None,
            };
            let vol = m.volumes.in_job_mut(seq)?;
            if from_snapshot.is_some() {
                vol.state = "Ready";
            }
            if let (Some(v), Some(d)) = (vm, device) {
                vol.vm = Some(v);
                vol.deviceid = Some(d);
                vol.attached = Some(now);
                vol.state = "Ready";
            }
            Ok(volume_result(m, seq))
        }),
    ))
}

fn list_volumes(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "volume", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.volumes, "id")? else { return empty() };
    let Some(vm) = ctx.filter(&m.vms, "virtualmachineid")? else { return empty() };
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let mut ids = None;
    for v in p.list("ids") {
        match m.volumes.lookup(&v) {
            Lookup::Live(s) => ids.get_or_insert_with(Vec::new).push(s),
            Lookup::Removed => {
                ids.get_or_insert_with(Vec::new);
            }
            Lookup::Unknown => return Err(SimError::bad_uuid(&p.cmd, "ids", &v)),
        }
    }
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let name = p.opt("name");
    let kind = p.opt("type");
    let kw = p.opt("keyword");
    let state = p.opt("state");
    let tags = p.tags();
    let admin = ctx.caller.is_admin();
    let items: Vec<&Volume> = m
        .volumes
        .iter()
        .filter(|(s, v)| {
            scope.sees(v.owner)
                && id.is_none_or(|i| i == *s)
                && ids.as_ref().is_none_or(|l: &Vec<u64>| l.contains(s))
                && vm.is_none_or(|x| v.vm == Some(x))
                && zone.is_none_or(|z| v.zone == z)
                && name.is_none_or(|n| v.name == n)
                && kind.is_none_or(|k| v.kind.eq_ignore_ascii_case(k))
                && state.is_none_or(|st| v.state.eq_ignore_ascii_case(st))
                && (admin || v.state != "Destroy")
                && keyword_match(kw, &[&v.name])
                && tags_match(&v.tags, &tags)
        })
        .map(|(_, v)| v)
        .collect();
    Ok(list::respond(paging, "volume", items, |v| volume_json(m, v)))
}

fn attach(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("id")?;
    ctx.p.req("virtualmachineid")?;
    let vs = volume_param(ctx, m, "id")?;
    let vm = vm_param(ctx, m, "virtualmachineid")?;
    let deviceid = ctx.p.int("deviceid")?;
    let vol = m.volumes.live(vs)?;
    if vol.kind == "ROOT" {
        return Err(SimError::invalid("Please specify a volume with the valid type: DATADISK"));
    }
    if vol.vm.is_some() {
        return Err(SimError::invalid(format!("Volume {} is already attached to a VM", vol.id)));
    }
    if vol.state != "Allocated" && vol.state != "Ready" {
        return Err(SimError::invalid(format!("Volume {} is in state {} and cannot be attached", vol.id, vol.state)));
    }
    attachable_vm(m, vm)?;
    let v = m.vms.live(vm)?;
    if v.owner != vol.owner {
        return Err(SimError::permission(format!(
            "Entity {} and entity {} belong to different accounts",
            vol.what(),
            v.id
        )));
    }
    if v.zone != vol.zone {
        return Err(SimError::invalid("Please specify a VM that is in the same zone as the volume."));
    }
    let device = free_device(m, vm, deviceid)?;
    let id = vol.id.clone();
    let before = vol.state;
    let vol = m.volumes.live_mut(vs)?;
    // Reserve the device now so concurrent attaches cannot take it.
    vol.vm = Some(vm);
    vol.deviceid = Some(device);
    vol.state = "Attaching";
    let now = ctx.now.clone();
    Ok(ctx.object_job(
        "Volume",
        id,
        Box::new(move |m, env| {
            // The VM may have been destroyed or expunged while the attach was queued.
            let vm_gone = attachable_vm(m, vm).err();
            let vol = m.volumes.in_job_mut(vs)?;
            let undo = |vol: &mut Volume| {
                vol.vm = None;
                vol.deviceid = None;
                vol.state = before;
            };
            env.injected(|| undo(vol))?;
            if vol.vm != Some(vm) || vm_gone.is_some() {
                undo(vol);
                let why = vm_gone.map_or_else(|| "the VM no longer exists".to_string(), |e| e.text);
                return Err(SimError::internal(format!("Failed to attach volume {}: {why}", vol.id)));
            }
            vol.state = "Ready";
            vol.attached = Some(now);
            Ok(volume_result(m, vs))
        }),
    ))
}

fn detach(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let vs = if ctx.p.has("id") {
        volume_param(ctx, m, "id")?
    } else if ctx.p.has("virtualmachineid") && ctx.p.has("deviceid") {
        let vm = vm_param(ctx, m, "virtualmachineid")?;
        let d = ctx.p.int("deviceid")?;
        m.volumes
            .iter()
            .find(|(_, v)| v.vm == Some(vm) && v.deviceid == d)
            .map(|(s, _)| s)
            .ok_or_else(|| SimError::invalid("Unable to find volume with the specified device id on the VM"))?
    } else {
        return Err(SimError::invalid("Please provide either a volume id, or a tuple(device id, instance id)"));
    };
    let vol = m.volumes.live(vs)?;
    if vol.kind == "ROOT" {
        return Err(SimError::invalid("Please specify a data volume; a ROOT volume cannot be detached"));
    }
    let Some(vm) = vol.vm else {
        return Err(SimError::invalid("Please specify a volume that is attached to a VM."));
    };
    if vol.state != "Ready" {
        return Err(SimError::invalid(format!("Volume {} is in state {} and cannot be detached", vol.id, vol.state)));
    }
    attachable_vm(m, vm)?;
    let id = vol.id.clone();
    Ok(ctx.object_job(
        "Volume",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let vol = m.volumes.in_job_mut(vs)?;
            vol.vm = None;
            vol.deviceid = None;
            vol.attached = None;
            vol.state = "Ready";
            Ok(volume_result(m, vs))
        }),
    ))
}

fn delete(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let vs = volume_param(ctx, m, "id")?;
    let vol = m.volumes.live(vs)?;
    if vol.vm.is_some() {
        return Err(SimError::invalid("Please specify a volume that is not attached to any VM."));
    }
    if m.pending_job(&vol.id).is_some() {
        return Err(SimError::invalid(format!("Volume {} has a job in progress; try again later", vol.id)));
    }
    m.volumes.remove(vs);
    Ok(Reply::Value(success()))
}
