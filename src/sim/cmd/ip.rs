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

/// Take the next free address of a zone's public pool for `owner` (the `public_ip` limit and
/// the pool's capacity checked). The row starts in `state`.
pub fn allocate_address(m: &mut Model, owner: u64, zone: u64, now: &str, state: &'static str) -> SimResult<u64> {
    let acct = m.account(owner);
    m.check_limit(owner, "public_ip", acct.ip_limit, m.ip_count(owner))?;
    let z = m.zones.live(zone)?;
    let used: std::collections::HashSet<&str> =
        m.public_ips.values().filter(|i| i.zone == zone).map(|i| i.ip.as_str()).collect();
    let Some(addr) = z.public_pool.iter().find(|a| !used.contains(a.as_str())).cloned() else {
        return Err(SimError::address_capacity(format!(
            "Insufficient address capacity; no free public IP in zone {}",
            z.id
        )));
    };
    let seq = m.next_seq();
    m.public_ips.insert(
        seq,
        PublicIp {
            id: new_uuid(),
            ip: addr,
            zone,
            owner,
            state,
            allocated: now.to_string(),
            vm: None,
            network: None,
            vpc: None,
            sourcenat: false,
            vm_guest_ip: None,
            tags: Vec::new(),
        },
    );
    Ok(seq)
}

/// Where associateIpAddress puts the address (AssociateIPAddrCmd, IpAddressManagerImpl).
enum Target {
    /// The zone's shared network (security-group zones).
    Zone(u64),
    /// An isolated network; the first address of a network without one becomes its source NAT.
    Network(u64),
    Vpc(u64),
}

fn target(ctx: &Ctx, m: &Model, owner: u64) -> SimResult<Target> {
    let zone = ctx.opt_live(&m.zones, "zoneid")?;
    let network = ctx.opt_live(&m.networks, "networkid")?;
    let vpc = ctx.opt_live(&m.vpcs, "vpcid")?;
    if network.is_some() && vpc.is_some() {
        return Err(SimError::invalid("networkid and vpcid are mutually exclusive"));
    }
    if let Some(v) = vpc {
        let vpc = m.vpcs.live(v)?;
        m.check_owned(&ctx.caller, vpc)?;
        if zone.is_some_and(|z| z != vpc.zone) {
            return Err(SimError::invalid("The VPC is not in the specified zone"));
        }
        return Ok(Target::Vpc(v));
    }
    if let Some(n) = network {
        let net = m.networks.live(n)?;
        if zone.is_some_and(|z| z != net.zone) {
            return Err(SimError::invalid("The network is not in the specified zone"));
        }
        if net.shared {
            return Ok(Target::Zone(net.zone));
        }
        m.check_owned(&ctx.caller, net)?;
        if net.vpc.is_some() {
            return Err(SimError::invalid(
                "Can't assign ip to the network directly when network belongs to VPC.Specify vpcId to associate ip address to VPC",
            ));
        }
        return Ok(Target::Network(n));
    }
    let Some(z) = zone else {
        return Err(SimError::invalid(
            "Unable to figure out zone to assign ip to. Please specify either zoneId, or networkId, or vpcId in the call",
        ));
    };
    let zn = m.zones.live(z)?;
    if zn.shared_network.is_some() {
        return Ok(Target::Zone(z));
    }
    // An Advanced zone without security groups: the account's one isolated network.
    let nets: Vec<u64> = m
        .networks
        .iter()
        .filter(|(_, n)| n.owner == owner && n.zone == z && !n.shared && n.vpc.is_none())
        .map(|(s, _)| s)
        .collect();
    match nets[..] {
        [one] => Ok(Target::Network(one)),
        [] => {
            let a = m.account(owner);
            Err(SimError::invalid(format!(
                "Account name={} domain={} doesn't have virtual networks in zone={}",
                a.name,
                m.domain(a.domain).name,
                zn.name
            )))
        }
        _ => Err(SimError::invalid("Account has more than one Isolated network in the zone")),
    }
}

fn associate(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let owner = m.owner_for(&ctx.caller, &ctx.p)?;
    let target = target(ctx, m, owner)?;
    let zone = match target {
        Target::Zone(z) => z,
        Target::Network(n) => m.networks.live(n)?.zone,
        Target::Vpc(v) => m.vpcs.live(v)?.zone,
    };
    let seq = allocate_address(m, owner, zone, &ctx.now, "Allocating")?;
    let ip = m.public_ips.live_mut(seq)?;
    match target {
        Target::Zone(_) => {}
        Target::Network(n) => {
            ip.network = Some(n);
        }
        Target::Vpc(v) => ip.vpc = Some(v),
    }
    if let Target::Network(n) = target
        && !m.public_ips.values().any(|i| i.network == Some(n) && i.sourcenat)
    {
        m.public_ips.live_mut(seq)?.sourcenat = true;
    }
    let id = m.public_ips.live(seq)?.id.clone();
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

pub fn release_nat_pub(m: &mut Model, ip: u64) {
    release_nat(m, ip)
}

fn release_nat(m: &mut Model, ip: u64) {
    if let Some(i) = m.public_ips.get_mut(ip) {
        i.vm_guest_ip = None;
        // A VPC address is tied to a tier only while a rule uses it.
        if i.vpc.is_some() {
            i.network = None;
        }
    }
    if let Some(vm) = m.public_ips.get_mut(ip).and_then(|i| i.vm.take()) {
        // The VM's public address (listVirtualMachines publicip): another static NAT it still has.
        let other = m.public_ips.iter().find(|(_, i)| i.vm == Some(vm)).map(|(s, _)| s);
        if let Some(v) = m.vms.get_mut(vm)
            && v.public_ip == Some(ip)
        {
            v.public_ip = other;
        }
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
    if ip.sourcenat {
        return Err(SimError::invalid("ip address is used for source nat purposes and can not be disassociated."));
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
            m.remove_rules(|r| r.ip == Some(s));
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
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
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
                && sourcenat.is_none_or(|b| i.sourcenat == b)
                && network.is_none_or(|n| ip_network(m, i).is_some_and(|x| x.id == n))
                && vpc.is_none_or(|v| i.vpc == Some(v))
                && keyword_match(kw, &[&i.ip])
                && tags_match(&i.tags, &tags)
        })
        .map(|(_, i)| i)
        .collect();
    Ok(list::respond(paging, "publicipaddress", items, |i| ip_json(m, i)))
}

/// The network an address belongs to: its own, or the zone's shared network.
fn ip_network<'a>(m: &'a Model, i: &PublicIp) -> Option<&'a Network> {
    let n = i.network.or(if i.vpc.is_none() { m.zones.get(i.zone).and_then(|z| z.shared_network) } else { None });
    n.and_then(|n| m.networks.get(n))
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
    if ip.sourcenat {
        return Err(SimError::invalid(format!(
            "Can't enable static, ip address Ip[{}-{}] is a sourceNat ip address",
            ip.ip, ip.zone
        )));
    }
    // The guest network the NAT points into (EnableStaticNatCmd.getNetworkId): `networkid`, else
    // the network the address is associated with, else (shared zones) the zone's network.
    let network = match ctx.opt_live(&m.networks, "networkid")? {
        Some(n) => Some(n),
        None if ip.network.is_some() => ip.network,
        None if ip.vpc.is_some() => {
            return Err(SimError::invalid(format!(
                "Unable to enable static nat for the ipAddress id={} as ip is not associated with any network and no networkId is passed in",
                ip.id
            )));
        }
        None => m.zones.get(ip.zone).and_then(|z| z.shared_network),
    };
    let not_vm_network = || {
        SimError::invalid(format!(
            "Unable to enable static nat for the ipAddress id={} as ip is not associated with network of the vm",
            ip.id
        ))
    };
    if let Some(n) = network {
        let net = m.networks.live(n)?;
        if ip.vpc.is_some() && net.vpc != ip.vpc {
            return Err(not_vm_network());
        }
        if ip.vpc.is_none() && ip.network.is_some_and(|x| x != n) {
            return Err(not_vm_network());
        }
    }
    let Some(nic) = vm.nics.iter().find(|x| Some(x.network) == network) else {
        return Err(not_vm_network());
    };
    if ip.zone != vm.zone {
        return Err(not_vm_network());
    }
    let guest_ip = match ctx.p.opt("vmguestip") {
        Some(g) if g == nic.ip => None,
        Some(g) if nic.secondary.iter().any(|x| x.ip == g) => Some(g.to_string()),
        Some(g) => return Err(SimError::invalid(format!("Invalid vm ip address {g}: not an address of the vm's nic"))),
        None => None,
    };
    // FirewallManagerImpl.detectRulesConflict: static NAT and port forwarding exclude each other.
    if m.net_rules.values().any(|r| r.ip == Some(s) && r.purpose == Purpose::PortForwarding) {
        return Err(SimError::conflict(format!("There is already firewall rule specified for the ip address id={s}")));
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
    // RulesManagerImpl.isIpReadyForStaticNat: one static NAT per (VM, guest address), so a VM
    // with secondary addresses or several NICs can have several (InvalidParameterValue).
    let dst = guest_ip.clone().unwrap_or_else(|| nic.ip.clone());
    let dst_of = |o: &PublicIp| {
        o.vm_guest_ip.clone().or_else(|| {
            vm.nics
                .iter()
                .find(|n| Some(n.network) == o.network)
                .or(vm.nics.iter().find(|n| n.isdefault))
                .map(|n| n.ip.clone())
        })
    };
    if let Some((_, old)) =
        m.public_ips.iter().find(|(o, x)| *o != s && x.vm == Some(v) && dst_of(x).as_deref() == Some(dst.as_str()))
    {
        return Err(SimError::invalid(format!(
            "Failed to enable static nat for the ip address id={} and vm id={} as it's already assigned to ip {}",
            ip.id, vm.id, old.ip
        )));
    }
    let row = m.public_ips.live_mut(s)?;
    row.vm = Some(v);
    row.vm_guest_ip = guest_ip;
    if row.vpc.is_some() {
        row.network = network;
    }
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
