//! Volume snapshots: Ready volume required, Creating -> BackedUp, delete.

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::render::*;
use super::super::seed::new_uuid;
use super::{CmdSpec, Ctx, Reply, create, job, read, single, success};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        create("createSnapshot", "org.apache.cloudstack.api.command.user.snapshot.CreateSnapshotCmd", create_snapshot),
        read("listSnapshots", "org.apache.cloudstack.api.command.user.snapshot.ListSnapshotsCmd", list_snapshots),
        job("deleteSnapshot", "org.apache.cloudstack.api.command.user.snapshot.DeleteSnapshotCmd", delete),
    ]
}

fn create_snapshot(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let vol = m.volumes.live(ctx.owned(m, &m.volumes, "volumeid")?)?;
    if vol.state != "Ready" {
        return Err(SimError::invalid(format!(
            "VolumeId: {} is not in Ready state but {}. Cannot take snapshot.",
            vol.id, vol.state
        )));
    }
    let acct = m.account(vol.owner);
    let count = m.snapshots.values().filter(|s| s.owner == vol.owner).count() as i64;
    if acct.snapshot_limit >= 0 && count + 1 > acct.snapshot_limit {
        return Err(SimError::allocation(format!(
            "Maximum number of resources of type 'snapshot' for account name={} in domain id={} has been exceeded.",
            acct.name, acct.domain
        )));
    }
    let stamp: String = ctx.now.chars().filter(|c| c.is_ascii_digit()).take(14).collect();
    let vm_name = vol.vm.and_then(|v| m.vms.get(v)).map(|v| v.name.clone());
    let name = match (ctx.p.opt("name"), vm_name) {
        (Some(n), _) => n.to_string(),
        (None, Some(vmn)) => format!("{vmn}_{}_{stamp}", vol.name),
        (None, None) => format!("{}_{stamp}", vol.name),
    };
    let id = new_uuid();
    let snap = Snapshot {
        id: id.clone(),
        name,
        owner: vol.owner,
        volume_id: vol.id.clone(),
        volume_name: vol.name.clone(),
        volume_type: vol.kind,
        volume_size: vol.size,
        zone: vol.zone,
        state: "Creating",
        created: ctx.now.clone(),
        tags: Vec::new(),
    };
    let seq = m.next_seq();
    m.snapshots.insert(seq, snap);
    Ok(ctx.create_job(
        "Snapshot",
        id,
        Box::new(move |m, env| {
            let s = m.snapshots.in_job_mut(seq)?;
            env.injected(|| s.state = "Error")?;
            s.state = "BackedUp";
            Ok(single("snapshot", snapshot_json(m, m.snapshots.in_job(seq)?)))
        }),
    ))
}

fn list_snapshots(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "snapshot", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.snapshots, "id")? else { return empty() };
    // A volume that existed (even if deleted since) filters by its uuid.
    let volume = match ctx.find(&m.volumes, "volumeid")? {
        Some(_) => p.opt("volumeid"),
        None => None,
    };
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let name = p.opt("name");
    let kw = p.opt("keyword");
    let st = p.opt("snapshottype");
    let it = p.opt("intervaltype");
    let tags = p.tags();
    let items: Vec<&Snapshot> = m
        .snapshots
        .iter()
        .filter(|(s, x)| {
            scope.sees(x.owner)
                && id.is_none_or(|i| i == *s)
                && volume.is_none_or(|v| x.volume_id == v)
                && zone.is_none_or(|z| x.zone == z)
                && name.is_none_or(|n| x.name == n)
                && st.is_none_or(|t| t.eq_ignore_ascii_case("MANUAL"))
                && it.is_none_or(|t| t.eq_ignore_ascii_case("MANUAL"))
                && keyword_match(kw, &[&x.name])
                && tags_match(&x.tags, &tags)
        })
        .map(|(_, x)| x)
        .collect();
    Ok(list::respond(paging, "snapshot", items, |x| snapshot_json(m, x)))
}

fn delete(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ctx.owned(m, &m.snapshots, "id")?;
    let snap = m.snapshots.live(s)?;
    if snap.state != "BackedUp" && snap.state != "Error" {
        return Err(SimError::invalid(format!("Can't delete snapshot {} with state {}", snap.id, snap.state)));
    }
    let id = snap.id.clone();
    Ok(ctx.object_job(
        "Snapshot",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.snapshots.in_job(s)?;
            m.snapshots.remove(s);
            Ok(success())
        }),
    ))
}
