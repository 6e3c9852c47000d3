//! Port forwarding, ingress firewall and egress firewall rules on isolated networks (and port
//! forwarding on VPC addresses): create/list/delete of each. Rules and texts follow
//! FirewallManagerImpl (validateFirewallRule, detectRulesConflict) and RulesManagerImpl
//! (createPortForwardingRule); docs/simulator.md, "Networking".

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::render::{Obj, owner_fields};
use super::super::seed::new_uuid;
use super::vm::vm_param;
use super::{CmdSpec, Ctx, Reply, create, job, read, single, success};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        create(
            "createPortForwardingRule",
            "org.apache.cloudstack.api.command.user.firewall.CreatePortForwardingRuleCmd",
            create_pf,
        ),
        read(
            "listPortForwardingRules",
            "org.apache.cloudstack.api.command.user.firewall.ListPortForwardingRulesCmd",
            list_pf,
        ),
        job(
            "deletePortForwardingRule",
            "org.apache.cloudstack.api.command.user.firewall.DeletePortForwardingRuleCmd",
            delete_pf,
        ),
        create(
            "createFirewallRule",
            "org.apache.cloudstack.api.command.user.firewall.CreateFirewallRuleCmd",
            create_fw,
        ),
        read("listFirewallRules", "org.apache.cloudstack.api.command.user.firewall.ListFirewallRulesCmd", list_fw),
        job("deleteFirewallRule", "org.apache.cloudstack.api.command.user.firewall.DeleteFirewallRuleCmd", delete_fw),
        create(
            "createEgressFirewallRule",
            "org.apache.cloudstack.api.command.user.firewall.CreateEgressFirewallRuleCmd",
            create_egress,
        ),
        read(
            "listEgressFirewallRules",
            "org.apache.cloudstack.api.command.user.firewall.ListEgressFirewallRulesCmd",
            list_egress,
        ),
        job(
            "deleteEgressFirewallRule",
            "org.apache.cloudstack.api.command.user.firewall.DeleteEgressFirewallRuleCmd",
            delete_egress,
        ),
    ]
}

/// FirewallRuleVO.toString, as conflict texts print a rule.
fn rule_str(seq: u64, r: &NetRule) -> String {
    format!("Rule[{seq}-{}-Active]", r.purpose.name())
}

fn rule_json(m: &Model, r: &NetRule) -> Value {
    let ip = r.ip.and_then(|i| m.public_ips.get(i));
    let net = r.network.and_then(|n| m.networks.get(n));
    let mut o = Obj::new()
        .set("id", r.id.clone())
        .set("protocol", r.protocol.clone())
        .set("state", "Active")
        .set("cidrlist", r.cidrs.join(","))
        .opt("ipaddressid", ip.map(|i| i.id.clone()))
        .opt("ipaddress", ip.map(|i| i.ip.clone()))
        .opt("networkid", net.map(|n| n.id.clone()))
        .set("fordisplay", true)
        .set("tags", json!([]));
    match r.purpose {
        Purpose::PortForwarding => {
            let vm = r.vm.and_then(|v| m.vms.get(v));
            o = o
                .opt("publicport", r.start.map(|p| p.to_string()))
                .opt("publicendport", r.end.map(|p| p.to_string()))
                .opt("privateport", r.private_start.map(|p| p.to_string()))
                .opt("privateendport", r.private_end.map(|p| p.to_string()))
                .opt("virtualmachineid", vm.map(|v| v.id.clone()))
                .opt("virtualmachinename", vm.map(|v| v.name.clone()))
                .opt("virtualmachinedisplayname", vm.map(|v| v.displayname.clone()))
                .opt("vmguestip", r.vm_ip.clone());
        }
        Purpose::Firewall | Purpose::Egress => {
            o = o
                .opt("startport", r.start)
                .opt("endport", r.end)
                .opt("icmptype", r.icmptype)
                .opt("icmpcode", r.icmpcode)
                .set("traffictype", if r.purpose == Purpose::Egress { "Egress" } else { "Ingress" });
            if r.purpose == Purpose::Egress {
                o = o.set("destcidrlist", r.dest_cidrs.join(","));
            }
        }
    }
    o = owner_fields(m, o, r.owner);
    o.done()
}

fn cidr_list(ctx: &Ctx, name: &str) -> SimResult<Vec<String>> {
    let list = ctx.p.list(name);
    for c in &list {
        if Cidr::parse(c).is_none() {
            return Err(SimError::invalid(format!("Source cidrs formatting error {c}")));
        }
    }
    Ok(list)
}

fn check_ports(start: Option<i64>, end: Option<i64>, which: &str) -> SimResult<()> {
    if let Some(s) = start
        && !(1..=65535).contains(&s)
    {
        return Err(SimError::invalid(format!("{which} is an invalid value: {s}")));
    }
    if let Some(e) = end
        && !(1..=65535).contains(&e)
    {
        return Err(SimError::invalid(format!("Public port range is an invalid value: {e}")));
    }
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(SimError::invalid("Start port can't be bigger than end port"));
    }
    Ok(())
}

/// detectRulesConflict: the new rule against the rules of the same address (or, for egress,
/// the same network), with CloudStack's texts.
fn detect_conflict(m: &Model, new: &NetRule) -> SimResult<()> {
    let same_scope = |r: &NetRule| match new.purpose {
        Purpose::Egress => r.purpose == Purpose::Egress && r.network == new.network,
        _ => r.purpose != Purpose::Egress && r.ip == new.ip,
    };
    let ip_seq = new.ip.unwrap_or(0);
    let static_nat = new.ip.and_then(|i| m.public_ips.get(i)).is_some_and(|i| i.vm.is_some());
    if new.purpose == Purpose::PortForwarding && static_nat {
        return Err(SimError::conflict(format!("There is 1 to 1 Nat rule specified for the ip address id={ip_seq}")));
    }
    for (seq, r) in m.net_rules.iter().filter(|(_, r)| same_scope(r)) {
        let one_is_fw = (r.purpose == Purpose::Firewall || new.purpose == Purpose::Firewall)
            && (r.purpose != new.purpose || !r.protocol.eq_ignore_ascii_case(&new.protocol));
        let both_fw = r.purpose == new.purpose && r.purpose != Purpose::PortForwarding;
        let both_pf = r.purpose == new.purpose && r.purpose == Purpose::PortForwarding;
        let dup_cidrs = (both_fw || both_pf)
            && ((r.cidrs.is_empty() && new.cidrs.is_empty()) || r.cidrs.iter().any(|c| new.cidrs.contains(c)))
            && (!both_fw || r.dest_cidrs == new.dest_cidrs || r.dest_cidrs.iter().any(|c| new.dest_cidrs.contains(c)));
        if new.protocol == "icmp"
            && r.protocol == "icmp"
            && r.icmptype == new.icmptype
            && r.icmpcode == new.icmpcode
            && dup_cidrs
        {
            return Err(SimError::invalid(format!("New rule conflicts with existing rule: {}", rule_str(seq, r))));
        }
        let null_ports = new.start.is_none() && new.end.is_none() && r.start.is_none() && r.end.is_none();
        if null_ports && dup_cidrs && r.protocol == new.protocol && new.protocol != "icmp" {
            return Err(SimError::conflict(format!(
                "There is already a firewall rule specified with protocol = {} and no ports",
                new.protocol
            )));
        }
        let (Some(ns), Some(ne), Some(rs), Some(re)) = (new.start, new.end, r.start, r.end) else { continue };
        if one_is_fw || ((both_fw || both_pf) && !dup_cidrs) {
            continue;
        }
        let overlap = ns <= re && rs <= ne;
        let allow_pf = both_pf && !r.protocol.eq_ignore_ascii_case(&new.protocol);
        if overlap && !allow_pf {
            return Err(SimError::conflict(format!(
                "The range specified, {ns}-{ne}, conflicts with rule {} which has {rs}-{re}",
                rule_str(seq, r)
            )));
        }
    }
    Ok(())
}

/// The ingress protocols of the virtual router's firewall, and the egress ones.
const INGRESS_PROTOCOLS: [&str; 3] = ["tcp", "udp", "icmp"];
const EGRESS_PROTOCOLS: [&str; 4] = ["tcp", "udp", "icmp", "all"];

/// Insert a rule after its conflict check; the rule is visible at once (CloudStack persists it
/// in state Add before the job applies it).
fn insert_rule(m: &mut Model, rule: NetRule) -> SimResult<u64> {
    detect_conflict(m, &rule)?;
    let s = m.next_seq();
    m.net_rules.insert(s, rule);
    Ok(s)
}

fn rule_job(ctx: &Ctx, s: u64, id: String, key: &'static str, related: Option<u64>) -> Reply {
    ctx.create_job(
        "FirewallRule",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.net_rules.remove(s);
                if let Some(r) = related {
                    m.net_rules.remove(r);
                }
            })?;
            Ok(single(key, rule_json(m, m.net_rules.in_job(s)?)))
        }),
    )
}

fn create_pf(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let p = &ctx.p;
    for r in ["ipaddressid", "privateport", "protocol", "publicport", "virtualmachineid"] {
        p.req(r)?;
    }
    let private_start = p.int("privateport")?;
    let private_end = p.int("privateendport")?.or(private_start);
    let public_start = p.int("publicport")?;
    let public_end = p.int("publicendport")?.or(public_start);
    let ip = ctx.owned(m, &m.public_ips, "ipaddressid")?;
    let vm = vm_param(ctx, m, "virtualmachineid")?;
    let cidrs = cidr_list(ctx, "cidrlist")?;
    let network_param = ctx.opt_live(&m.networks, "networkid")?;
    let protocol = p.opt("protocol").unwrap_or_default().to_lowercase();
    if protocol != "tcp" && protocol != "udp" {
        return Err(SimError::invalid(format!("Protocol {protocol} is not supported for port forwarding rules")));
    }
    check_ports(public_start, public_end, "publicPort")?;
    check_ports(private_start, private_end, "privatePort")?;
    if public_end.zip(public_start).map(|(e, s)| e - s) != private_end.zip(private_start).map(|(e, s)| e - s) {
        return Err(SimError::invalid("Private port range and public port range should be of equal size"));
    }
    let addr = m.public_ips.live(ip)?;
    if addr.vm.is_some() {
        return Err(SimError::invalid(format!(
            "Unable to create port forwarding rule; ip id={} has static nat enabled",
            addr.id
        )));
    }
    if addr.sourcenat && addr.vpc.is_some() {
        return Err(SimError::invalid("Port forwarding rules are not supported on the source NAT address of a VPC"));
    }
    // The guest network: the address's own; a VPC address takes the tier given or used before.
    let network = match (addr.network, addr.vpc) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => network_param,
        (None, None) => m.zones.get(addr.zone).and_then(|z| z.shared_network),
    };
    let Some(network) = network else {
        return Err(SimError::invalid(format!(
            "Unable to create port forwarding rule; ip id={} is not associated with any network and no networkId is passed in",
            addr.id
        )));
    };
    let net = m.networks.live(network)?;
    if addr.vpc.is_some() && net.vpc != addr.vpc {
        return Err(SimError::invalid("Vm doesn't belong to network associated with ipAddress"));
    }
    let v = m.vms.live(vm)?;
    if v.owner != addr.owner {
        return Err(SimError::permission(format!(
            "Entity {} and entity VM {} belong to different accounts",
            addr.what(),
            v.id
        )));
    }
    let Some(nic) = v.nics.iter().find(|n| n.network == network) else {
        return Err(SimError::invalid("Vm doesn't belong to network associated with ipAddress"));
    };
    let vm_ip = match p.opt("vmguestip") {
        Some(g) if g == nic.ip || nic.secondary.iter().any(|x| x.ip == g) => g.to_string(),
        Some(g) => return Err(SimError::invalid(format!("Invalid vm ip address {g}: not an address of the vm's nic"))),
        None => nic.ip.clone(),
    };
    // CreatePortForwardingRuleCmd.getOpenFirewall: default true, false for VPC addresses, and
    // refused when asked for on one.
    if addr.vpc.is_some() && p.opt_bool("openfirewall") == Some(true) {
        return Err(SimError::invalid("Can't have openFirewall=true when IP address belongs to VPC"));
    }
    let open_firewall = p.bool_or("openfirewall", true) && addr.vpc.is_none();
    let owner = addr.owner;
    let vpc_ip = addr.vpc.is_some();
    let id = new_uuid();
    let rule = NetRule {
        id: id.clone(),
        purpose: Purpose::PortForwarding,
        owner,
        ip: Some(ip),
        network: Some(network),
        protocol: protocol.clone(),
        start: public_start,
        end: public_end,
        private_start,
        private_end,
        vm: Some(vm),
        vm_ip: Some(vm_ip),
        icmptype: None,
        icmpcode: None,
        cidrs: cidrs.clone(),
        dest_cidrs: Vec::new(),
        related: None,
    };
    let s = insert_rule(m, rule)?;
    if vpc_ip && let Some(a) = m.public_ips.get_mut(ip) {
        a.network = Some(network);
    }
    // openfirewall: the matching ingress firewall rule, removed with the forwarding rule.
    let related = if open_firewall {
        let f = m.next_seq();
        m.net_rules.insert(
            f,
            NetRule {
                id: new_uuid(),
                purpose: Purpose::Firewall,
                owner,
                ip: Some(ip),
                network: Some(network),
                protocol,
                start: public_start,
                end: public_end,
                private_start: None,
                private_end: None,
                vm: None,
                vm_ip: None,
                icmptype: None,
                icmpcode: None,
                cidrs: if cidrs.is_empty() { vec!["0.0.0.0/0".into()] } else { cidrs },
                dest_cidrs: Vec::new(),
                related: Some(s),
            },
        );
        if let Some(r) = m.net_rules.get_mut(s) {
            r.related = Some(f);
        }
        Some(f)
    } else {
        None
    };
    Ok(rule_job(ctx, s, id, "portforwardingrule", related))
}

fn list_rules(ctx: &Ctx, m: &Model, purpose: Purpose, key: &str) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, key, Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.net_rules, "id")? else { return empty() };
    let Some(ip) = ctx.filter(&m.public_ips, "ipaddressid")? else { return empty() };
    let Some(network) = ctx.filter(&m.networks, "networkid")? else { return empty() };
    if let Some(i) = ip {
        m.check_owned(&ctx.caller, m.public_ips.live(i)?)?;
    }
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let items: Vec<&NetRule> = m
        .net_rules
        .iter()
        .filter(|(s, r)| {
            r.purpose == purpose
                && scope.sees(r.owner)
                && id.is_none_or(|x| x == *s)
                && ip.is_none_or(|x| r.ip == Some(x))
                && network.is_none_or(|x| r.network == Some(x))
        })
        .map(|(_, r)| r)
        .collect();
    Ok(list::respond(paging, key, items, |r| rule_json(m, r)))
}

fn list_pf(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    list_rules(ctx, m, Purpose::PortForwarding, "portforwardingrule")
}

fn list_fw(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    list_rules(ctx, m, Purpose::Firewall, "firewallrule")
}

fn list_egress(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    list_rules(ctx, m, Purpose::Egress, "firewallrule")
}

fn delete_rule(ctx: &mut Ctx, m: &mut Model, purpose: Purpose) -> SimResult<Reply> {
    let v = ctx.p.req("id")?.to_string();
    let s = ctx.need(&m.net_rules, "id")?;
    let r = m.net_rules.live(s)?;
    if r.purpose != purpose {
        return Err(SimError::bad_uuid(&ctx.p.cmd, "id", &v));
    }
    m.check_access(&ctx.caller, r.owner, &format!("FirewallRule {}", r.id))?;
    let related = if purpose == Purpose::PortForwarding { r.related } else { None };
    let id = r.id.clone();
    Ok(ctx.object_job(
        "FirewallRule",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.net_rules.in_job(s)?;
            m.net_rules.remove(s);
            if let Some(f) = related {
                m.net_rules.remove(f);
            }
            Ok(success())
        }),
    ))
}

fn delete_pf(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    delete_rule(ctx, m, Purpose::PortForwarding)
}

fn delete_fw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    delete_rule(ctx, m, Purpose::Firewall)
}

fn delete_egress(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    delete_rule(ctx, m, Purpose::Egress)
}

/// Protocol, start and end ports, ICMP type and code of a firewall rule.
type FwFields = (String, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

/// The fields both firewall rule kinds share, validated (FirewallManagerImpl).
fn fw_fields(ctx: &Ctx, protocols: &[&str], zone: &str) -> SimResult<FwFields> {
    let p = &ctx.p;
    let start = p.int("startport")?;
    let end = p.int("endport")?.or(start);
    let icmptype = p.int("icmptype")?;
    let icmpcode = p.int("icmpcode")?;
    let protocol = p.opt("protocol").unwrap_or_default().to_lowercase();
    check_ports(start, end, "publicPort")?;
    if !protocols.contains(&protocol.as_str()) {
        return Err(SimError::invalid(format!("Protocol {protocol} is not supported in zone {zone}")));
    }
    if protocol != "icmp" && (icmptype.is_some() || icmpcode.is_some()) {
        return Err(SimError::invalid("Can specify icmpCode and icmpType for ICMP protocol only"));
    }
    if protocol == "icmp" && (start.is_some() || end.is_some()) {
        return Err(SimError::invalid("Can't specify start/end port when protocol is ICMP"));
    }
    // ICMP without type/code means all of them (-1), as CloudStack stores it.
    let (icmptype, icmpcode) =
        if protocol == "icmp" { (Some(icmptype.unwrap_or(-1)), Some(icmpcode.unwrap_or(-1))) } else { (None, None) };
    Ok((protocol, start, end, icmptype, icmpcode))
}

fn create_fw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("ipaddressid")?;
    ctx.p.req("protocol")?;
    let ip = ctx.owned(m, &m.public_ips, "ipaddressid")?;
    let cidrs = cidr_list(ctx, "cidrlist")?;
    let addr = m.public_ips.live(ip)?;
    let zone_id = m.zones.get(addr.zone).map(|z| z.id.clone()).unwrap_or_default();
    let (protocol, start, end, icmptype, icmpcode) = fw_fields(ctx, &INGRESS_PROTOCOLS, &zone_id)?;
    // The Firewall service is the isolated networks' (VPC addresses use network ACLs).
    let network = addr.network.filter(|_| addr.vpc.is_none());
    let Some(network) = network.filter(|n| m.networks.get(*n).is_some_and(|n| !n.shared)) else {
        return Err(SimError::invalid(format!(
            "Service Firewall is not supported in the network of ip address {}",
            addr.id
        )));
    };
    let id = new_uuid();
    let s = insert_rule(
        m,
        NetRule {
            id: id.clone(),
            purpose: Purpose::Firewall,
            owner: addr.owner,
            ip: Some(ip),
            network: Some(network),
            protocol,
            start,
            end,
            private_start: None,
            private_end: None,
            vm: None,
            vm_ip: None,
            icmptype,
            icmpcode,
            cidrs: if cidrs.is_empty() { vec!["0.0.0.0/0".into()] } else { cidrs },
            dest_cidrs: Vec::new(),
            related: None,
        },
    )?;
    Ok(rule_job(ctx, s, id, "firewallrule", None))
}

fn create_egress(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("networkid")?;
    ctx.p.req("protocol")?;
    let n = ctx.need(&m.networks, "networkid")?;
    let net = m.networks.live(n)?;
    m.check_owned(&ctx.caller, net)?;
    let cidrs = cidr_list(ctx, "cidrlist")?;
    let dest = cidr_list(ctx, "destcidrlist")?;
    if net.shared || net.vpc.is_some() {
        return Err(SimError::invalid(format!(
            "Egress firewall rules are supported on isolated networks outside VPCs only, not on network {}",
            net.id
        )));
    }
    for c in &cidrs {
        if Cidr::parse(c).is_some_and(|c| !c.within(&net.cidr)) {
            return Err(SimError::invalid(format!("cidr {c} is not within the network cidr {}", net.cidr)));
        }
    }
    let zone_id = m.zones.get(net.zone).map(|z| z.id.clone()).unwrap_or_default();
    let (protocol, start, end, icmptype, icmpcode) = fw_fields(ctx, &EGRESS_PROTOCOLS, &zone_id)?;
    if protocol == "all" && (start.is_some() || end.is_some()) {
        return Err(SimError::invalid("start port and end port must be null if protocol = 'all'"));
    }
    let owner = net.owner;
    let net_cidr = net.cidr.to_string();
    let id = new_uuid();
    let s = insert_rule(
        m,
        NetRule {
            id: id.clone(),
            purpose: Purpose::Egress,
            owner,
            ip: None,
            network: Some(n),
            protocol,
            start,
            end,
            private_start: None,
            private_end: None,
            vm: None,
            vm_ip: None,
            icmptype,
            icmpcode,
            cidrs: if cidrs.is_empty() { vec![net_cidr] } else { cidrs },
            dest_cidrs: dest,
            related: None,
        },
    )?;
    Ok(rule_job(ctx, s, id, "firewallrule", None))
}
