//! Public IP addresses and static NAT: associate (Allocating -> Allocated), disassociate,
//! enableStaticNat (sync), disableStaticNat (async), list.

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
        create("associateIpAddress", "org.apache.cloudstack.api.command.user.address.AssociateIPAddrCmd", associate),
        job(
            "disassociateIpAddress",
            "org.apache.cloudstack.api.command.user.address.DisassociateIPAddrCmd",
            disassociate,
        ),
        read(
            "listPublicIpAddresses",
            "org.apache.cloudstack.api.command.user.address.ListPublicIpAddressesCmd",
            list_ips,
        ),
        write("enableStaticNat", "org.apache.cloudstack.api.command.user.nat.EnableStaticNatCmd", enable_nat),
        job("disableStaticNat", "org.apache.cloudstack.api.command.user.nat.DisableStaticNatCmd", disable_nat),
    ]
}

fn ip_param(ctx: &Ctx, m: &Model, name: &str) -> SimResult<u64> {
    ctx.owned(m, &m.public_ips, name)
}

fn associate(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let zone = ctx.opt_live(&m.zones, "zoneid")?;
    let network = match ctx.p.opt("networkid") {
        Some(n) => Some(
            m.zones
                .iter()
                .find(|(_, z)| z.network_id == n)
                .map(|(s, _)| s)
                .ok_or_else(|| SimError::bad_uuid(&ctx.p.cmd, "networkid", n))?,
        ),
        None => None,
    };
    let zone = match (zone, network) {
        (Some(z), Some(n)) if z != n => return Err(SimError::invalid("The network is not in the specified zone")),
        (Some(z), _) | (None, Some(z)) => z,
        (None, None) => {
            return Err(SimError::invalid(
                "Unable to figure out zone to assign ip to. Please specify either zoneId, or networkId, or vpcId in the call",
            ));
        }
    };
    let owner = m.owner_for(&ctx.caller, &ctx.p)?;
    let acct = m.account(owner);
    if acct.ip_limit >= 0 && m.ip_count(owner) + 1 > acct.ip_limit {
        return Err(SimError::allocation(format!(
            "Maximum number of resources of type 'public_ip' for account name={} in domain id={} has been exceeded.",
            acct.name, acct.domain
        )));
    }
    let z = m.zones.live(zone)?;
    let used: std::collections::HashSet<&str> =
        m.public_ips.values().filter(|i| i.zone == zone).map(|i| i.ip.as_str()).collect();
    let Some(addr) = z.public_pool.iter().find(|a| !used.contains(a.as_str())).cloned() else {
        return Err(SimError::address_capacity(format!(
            "Insufficient address capacity; no free public IP in zone {}",
            z.id
        )));
    };
    let id = new_uuid();
    let seq = m.next_seq();
    m.public_ips.insert(
        seq,
        PublicIp {
            id: id.clone(),
            ip: addr,
            zone,
            owner,
            state: "Allocating",
            allocated: ctx.now.clone(),
            vm: None,
            tags: Vec::new(),
        },
    );
    Ok(ctx.create_job(
        "IpAddress",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.public_ips.remove(seq);
            })?;
            m.public_ips.in_job_mut(seq)?.state = "Allocated";
            Ok(single("ipaddress", ip_json(m, m.public_ips.in_job(seq)?)))
        }),
    ))
}

fn release_nat(m: &mut Model, ip: u64) {
    if let Some(vm) = m.public_ips.get_mut(ip).and_then(|i| i.vm.take())
        && let Some(v) = m.vms.get_mut(vm)
        && v.public_ip == Some(ip)
    {
        v.public_ip = None;
    }
}

fn disassociate(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ip_param(ctx, m, "id")?;
    let ip = m.public_ips.live(s)?;
    if ip.state != "Allocated" {
        return Err(SimError::invalid(format!(
            "Unable to release IP address {} as it is in state {}",
            ip.id, ip.state
        )));
    }
    let id = ip.id.clone();
    m.public_ips.live_mut(s)?.state = "Releasing";
    Ok(ctx.object_job(
        "IpAddress",
        id,
        Box::new(move |m, env| {
            let ip = m.public_ips.in_job_mut(s)?;
            env.injected(|| ip.state = "Allocated")?;
            release_nat(m, s);
            m.public_ips.remove(s);
            Ok(success())
        }),
    ))
}

fn list_ips(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "publicipaddress", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.public_ips, "id")? else { return empty() };
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let addr = p.opt("ipaddress");
    let staticnat = p.opt_bool("isstaticnat");
    let sourcenat = p.opt_bool("issourcenat");
    let network = p.opt("associatednetworkid").or(p.opt("networkid"));
    let kw = p.opt("keyword");
    let tags = p.tags();
    let items: Vec<&PublicIp> = m
        .public_ips
        .iter()
        .filter(|(s, i)| {
            scope.sees(i.owner)
                && id.is_none_or(|x| x == *s)
                && zone.is_none_or(|z| i.zone == z)
                && addr.is_none_or(|a| i.ip == a)
                && staticnat.is_none_or(|b| i.vm.is_some() == b)
                && sourcenat != Some(true)
                && network.is_none_or(|n| m.zones.get(i.zone).is_some_and(|z| z.network_id == n))
                && keyword_match(kw, &[&i.ip])
                && tags_match(&i.tags, &tags)
        })
        .map(|(_, i)| i)
        .collect();
    Ok(list::respond(paging, "publicipaddress", items, |i| ip_json(m, i)))
}

fn enable_nat(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("ipaddressid")?;
    ctx.p.req("virtualmachineid")?;
    let s = ip_param(ctx, m, "ipaddressid")?;
    let v = vm_param(ctx, m, "virtualmachineid")?;
    let ip = m.public_ips.live(s)?;
    let vm = m.vms.live(v)?;
    if ip.state != "Allocated" {
        return Err(SimError::invalid(format!(
            "Unable to enable static nat for the ipAddress id={} as it's not in Allocated state",
            ip.id
        )));
    }
    if matches!(vm.planned, DESTROYED | EXPUNGING | ERROR) {
        return Err(SimError::invalid(format!("Unable to enable static nat for VM {} in state {}", vm.id, vm.planned)));
    }
    if ip.owner != vm.owner {
        return Err(SimError::permission(format!(
            "Entity {} and entity VM {} belong to different accounts",
            ip.what(),
            vm.id
        )));
    }
    if ip.zone != vm.zone {
        return Err(SimError::invalid(format!(
            "Unable to enable static nat for the ipAddress id={} as ip is not associated with network of the vm",
            ip.id
        )));
    }
    // Either side already paired with something else is a rule conflict (537).
    let taken = |other: Option<u64>, this: u64, other_id: &dyn Fn(u64) -> Option<String>, what: String| match other {
        Some(o) if o != this => Err(SimError::conflict(format!(
            "Failed to enable static nat for the ip address id={} {what}{}",
            ip.id,
            other_id(o).unwrap_or_default()
        ))),
        _ => Ok(()),
    };
    taken(ip.vm, v, &|o| m.vms.get(o).map(|x| x.id.clone()), "as it's already assigned to vm id=".into())?;
    taken(
        vm.public_ip,
        s,
        &|o| m.public_ips.get(o).map(|x| x.id.clone()),
        format!("and vm id={} as the vm is already associated with another public ip address id=", vm.id),
    )?;
    m.public_ips.live_mut(s)?.vm = Some(v);
    m.vms.live_mut(v)?.public_ip = Some(s);
    Ok(Reply::Value(success()))
}

fn disable_nat(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ip_param(ctx, m, "ipaddressid")?;
    let ip = m.public_ips.live(s)?;
    if ip.vm.is_none() {
        return Err(SimError::invalid("Specified IP address id is not associated with any vm Id"));
    }
    let id = ip.id.clone();
    Ok(ctx.object_job(
        "IpAddress",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.public_ips.in_job(s)?;
            release_nat(m, s);
            Ok(success())
        }),
    ))
}
