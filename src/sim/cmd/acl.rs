//! Network ACL lists and their rules (items) for VPC tiers: createNetworkACLList,
//! listNetworkACLLists, updateNetworkACLList, deleteNetworkACLList, createNetworkACL,
//! updateNetworkACLItem, listNetworkACLs, deleteNetworkACL, replaceNetworkACLList. Rules and
//! texts follow NetworkACLServiceImpl (docs/simulator.md, "Networking").

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::render::{Obj, tags_json};
use super::super::seed::new_uuid;
use super::{CmdSpec, Ctx, Reply, create, job, read, single, success};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        create(
            "createNetworkACLList",
            "org.apache.cloudstack.api.command.user.network.CreateNetworkACLListCmd",
            create_list,
        ),
        read(
            "listNetworkACLLists",
            "org.apache.cloudstack.api.command.user.network.ListNetworkACLListsCmd",
            list_lists,
        ),
        job(
            "updateNetworkACLList",
            "org.apache.cloudstack.api.command.user.network.UpdateNetworkACLListCmd",
            update_list,
        ),
        job(
            "deleteNetworkACLList",
            "org.apache.cloudstack.api.command.user.network.DeleteNetworkACLListCmd",
            delete_list,
        ),
        create("createNetworkACL", "org.apache.cloudstack.api.command.user.network.CreateNetworkACLCmd", create_item),
        job(
            "updateNetworkACLItem",
            "org.apache.cloudstack.api.command.user.network.UpdateNetworkACLItemCmd",
            update_item,
        ),
        read("listNetworkACLs", "org.apache.cloudstack.api.command.user.network.ListNetworkACLsCmd", list_items),
        job("deleteNetworkACL", "org.apache.cloudstack.api.command.user.network.DeleteNetworkACLCmd", delete_item),
        job(
            "replaceNetworkACLList",
            "org.apache.cloudstack.api.command.user.network.ReplaceNetworkACLListCmd",
            replace_list,
        ),
    ]
}

pub fn list_json(m: &Model, l: &AclList) -> Value {
    let vpc = l.vpc.and_then(|v| m.vpcs.get(v));
    Obj::new()
        .set("id", l.id.clone())
        .set("name", l.name.clone())
        .set("description", l.description.clone())
        .opt("vpcid", vpc.map(|v| v.id.clone()))
        .opt("vpcname", vpc.map(|v| v.name.clone()))
        .set("fordisplay", l.display)
        .done()
}

fn item_owner(m: &Model, i: &AclItem) -> Option<u64> {
    m.acl_item_owner(i)
}

pub fn item_json(m: &Model, i: &AclItem) -> Value {
    let l = m.acls.get(i.list);
    let mut o = Obj::new()
        .set("id", i.id.clone())
        .set("protocol", i.protocol.clone())
        .opt("startport", i.startport.map(|p| p.to_string()))
        .opt("endport", i.endport.map(|p| p.to_string()))
        .set("traffictype", i.traffictype)
        .set("state", "Active")
        .set("cidrlist", i.cidrs.join(","))
        .opt("icmptype", i.icmptype)
        .opt("icmpcode", i.icmpcode)
        .opt("aclid", l.map(|l| l.id.clone()))
        .opt("aclname", l.map(|l| l.name.clone()))
        .set("number", i.number)
        .set("action", i.action)
        .set("fordisplay", i.display)
        .opt("reason", i.reason.clone());
    o = match item_owner(m, i) {
        Some(owner) => o.set("tags", tags_json(m, "NetworkACL", &i.id, owner, &i.tags)),
        None => o.set("tags", json!([])),
    };
    o.done()
}

fn is_default(l: &AclList) -> bool {
    l.vpc.is_none()
}

/// validateAclAssociatedToVpc: access to the list's VPC (531 otherwise).
fn check_list_access(ctx: &Ctx, m: &Model, l: &AclList) -> SimResult<()> {
    if let Some(v) = l.vpc {
        m.check_owned(&ctx.caller, m.vpcs.live(v)?)?;
    }
    Ok(())
}

fn create_list(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("name")?;
    ctx.p.req("vpcid")?;
    let v = ctx.owned(m, &m.vpcs, "vpcid")?;
    let name = ctx.p.opt("name").unwrap_or_default().to_string();
    let description = ctx.p.opt("description").unwrap_or(&name).to_string();
    let display = ctx.p.bool_or("fordisplay", true);
    let id = new_uuid();
    let s = m.next_seq();
    m.acls.insert(s, AclList { id: id.clone(), name, description, vpc: Some(v), display });
    Ok(ctx.create_job(
        "NetworkAcl",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.acls.remove(s);
            })?;
            Ok(single("networkacllist", list_json(m, m.acls.in_job(s)?)))
        }),
    ))
}

fn list_lists(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "networkacllist", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.acls, "id")? else { return empty() };
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
    let Some(network) = ctx.filter(&m.networks, "networkid")? else { return empty() };
    if let Some(v) = vpc {
        m.check_owned(&ctx.caller, m.vpcs.live(v)?)?;
    }
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let net_acl = network.map(|n| m.networks.get(n).and_then(|n| n.acl));
    let name = p.opt("name");
    let display = p.opt_bool("fordisplay");
    let kw = p.opt("keyword");
    let items: Vec<&AclList> = m
        .acls
        .iter()
        .filter(|(s, l)| {
            // The two default lists are everyone's; the others follow their VPC's owner.
            let visible = match l.vpc {
                None => true,
                // Access to a named VPC was checked above.
                Some(v) => vpc == Some(v) || m.vpcs.get(v).is_some_and(|vp| scope.sees(vp.owner)),
            };
            visible
                && id.is_none_or(|x| x == *s)
                && vpc.is_none_or(|v| l.vpc.is_none_or(|x| x == v))
                && net_acl.is_none_or(|a| a == Some(*s))
                && name.is_none_or(|n| l.name == n)
                && display.is_none_or(|d| l.display == d)
                && keyword_match(kw, &[&l.name, &l.description])
        })
        .map(|(_, l)| l)
        .collect();
    Ok(list::respond(paging, "networkacllist", items, |l| list_json(m, l)))
}

fn list_param(ctx: &Ctx, m: &Model, name: &str) -> SimResult<u64> {
    let s = ctx.need(&m.acls, name)?;
    check_list_access(ctx, m, m.acls.live(s)?)?;
    Ok(s)
}

fn update_list(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = list_param(ctx, m, "id")?;
    let l = m.acls.live(s)?;
    if is_default(l) && !ctx.caller.is_root_admin() {
        return Err(SimError::permission("Must be Root Admin to update a global ACL."));
    }
    if ctx.p.has("customid") {
        return Err(SimError::invalid("Parameter customid of updateNetworkACLList is not simulated"));
    }
    let name = ctx.p.opt("name").map(str::to_string);
    let description = ctx.p.opt("description").map(str::to_string);
    let display = ctx.p.opt_bool("fordisplay");
    let id = l.id.clone();
    Ok(ctx.object_job(
        "NetworkAcl",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let l = m.acls.in_job_mut(s)?;
            if let Some(v) = name {
                l.name = v;
            }
            if let Some(v) = description {
                l.description = v;
            }
            if let Some(v) = display {
                l.display = v;
            }
            Ok(single("networkacllist", list_json(m, m.acls.in_job(s)?)))
        }),
    ))
}

fn delete_list(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = list_param(ctx, m, "id")?;
    let l = m.acls.live(s)?;
    if is_default(l) {
        return Err(SimError::invalid("Default ACL cannot be removed"));
    }
    let id = l.id.clone();
    Ok(ctx.object_job(
        "NetworkAcl",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let l = m.acls.in_job(s)?;
            // NetworkACLManagerImpl.deleteNetworkACL: a list in use by tiers stays.
            let used = m.networks.values().filter(|n| n.acl == Some(s)).count();
            if used > 0 {
                return Err(SimError::internal(format!(
                    "ACL is still associated with {used} tier(s). Cannot delete network ACL: {}",
                    l.id
                )));
            }
            let items: Vec<u64> = m.acl_items.iter().filter(|(_, i)| i.list == s).map(|(k, _)| k).collect();
            for i in items {
                m.acl_items.remove(i);
            }
            m.acls.remove(s);
            Ok(success())
        }),
    ))
}

/// The fields of a rule as sent, validated as NetworkACLServiceImpl.validateNetworkACLItem does.
struct RuleInput {
    protocol: String,
    startport: Option<i64>,
    endport: Option<i64>,
    icmptype: Option<i64>,
    icmpcode: Option<i64>,
    cidrs: Vec<String>,
    traffictype: &'static str,
    action: &'static str,
}

fn traffic_type(v: Option<&str>) -> SimResult<&'static str> {
    match v {
        None => Ok("Ingress"),
        Some(t) if t.eq_ignore_ascii_case("ingress") => Ok("Ingress"),
        Some(t) if t.eq_ignore_ascii_case("egress") => Ok("Egress"),
        Some(t) => Err(SimError::invalid(format!("Invalid traffic type {t}"))),
    }
}

fn action_of(v: Option<&str>) -> SimResult<&'static str> {
    match v {
        None => Ok("Allow"),
        Some(a) if a.eq_ignore_ascii_case("allow") => Ok("Allow"),
        Some(a) if a.eq_ignore_ascii_case("deny") => Ok("Deny"),
        Some(a) => Err(SimError::invalid(format!("Invalid action [{a}]. Permitted actions are Allow and Deny"))),
    }
}

fn validate_rule(r: &RuleInput) -> SimResult<()> {
    if r.startport.is_some() || r.endport.is_some() {
        let (s, e) = (r.startport.unwrap_or(-1), r.endport.unwrap_or(-1));
        if !(1..=65535).contains(&s) {
            return Err(SimError::invalid(format!("Start public port is an invalid value: {}", fmt_opt(r.startport))));
        }
        if !(1..=65535).contains(&e) {
            return Err(SimError::invalid(format!("End public port is an invalid value: {}", fmt_opt(r.endport))));
        }
        if s > e {
            return Err(SimError::invalid(format!(
                "Start port can't be bigger than end port [startport={s},endport={e}]"
            )));
        }
        if r.protocol.eq_ignore_ascii_case("all") {
            return Err(SimError::invalid("start port and end port must be null if protocol = 'all'"));
        }
    }
    for c in &r.cidrs {
        if Cidr::parse(c).is_none() && !is_ip6_cidr(c) {
            return Err(SimError::param(format!("Source cidrs formatting error {c}")));
        }
    }
    let p = &r.protocol;
    if p.trim().is_empty() {
        return Ok(());
    }
    if p.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = p.parse().unwrap_or(i64::MAX);
        if !(0..=255).contains(&n) {
            return Err(SimError::invalid(format!("Invalid protocol number: {n}")));
        }
    } else if !["tcp", "udp", "icmp", "all"].contains(&p.to_lowercase().as_str()) {
        return Err(SimError::invalid(format!("Invalid protocol [{p}]. Expected one of: [tcp,udp,icmp,all]")));
    }
    let icmp = p.eq_ignore_ascii_case("icmp");
    if !icmp && (r.icmptype.is_some() || r.icmpcode.is_some()) {
        return Err(SimError::invalid("Can specify icmpCode and icmpType for ICMP protocol only"));
    }
    if icmp && (r.startport.is_some() || r.endport.is_some()) {
        return Err(SimError::invalid("Can't specify start/end port when protocol is ICMP"));
    }
    if let Some(t) = r.icmptype {
        if t != -1 && !(0..=255).contains(&t) {
            return Err(SimError::invalid(format!("Invalid icmp type [{t}]. It should belong to [0-255] range")));
        }
        if let Some(c) = r.icmpcode
            && c != -1
            && !(0..=16).contains(&c)
        {
            return Err(SimError::invalid(format!(
                "Invalid icmp code [{c}]. It should belong to [0-16] range and can be defined when icmpType belongs to [0-40] range"
            )));
        }
    }
    Ok(())
}

/// NetUtils.isValidIp6Cidr: an IPv6 address and a prefix 0..128.
fn is_ip6_cidr(c: &str) -> bool {
    c.split_once('/').is_some_and(|(a, n)| {
        a.trim().parse::<std::net::Ipv6Addr>().is_ok() && n.trim().parse::<u8>().is_ok_and(|n| n <= 128)
    })
}

/// CreateNetworkACLCmd.getProtocol: trimmed; the number 1 is `icmp` (it pairs with ICMP type
/// and code).
fn create_protocol(p: &str) -> String {
    let p = p.trim();
    if p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<i64>() == Ok(1) { "icmp".to_string() } else { p.to_string() }
}

fn fmt_opt(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "null".into())
}

fn create_item(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let p = &ctx.p;
    p.req("protocol")?;
    // CreateNetworkACLCmd's getters: an unknown traffic type fails first; the end port defaults
    // to the start port; ICMP type and code default to -1 for icmp; the protocol number 1 is
    // icmp; no cidrlist is 0.0.0.0/0 and ::/0.
    let traffictype = traffic_type(p.opt("traffictype"))?;
    let protocol = create_protocol(p.opt("protocol").unwrap_or_default());
    let icmp = protocol.eq_ignore_ascii_case("icmp");
    let startport = p.int("startport")?;
    let endport = p.int("endport")?.or(startport);
    let icmptype = p.int("icmptype")?.or(if icmp { Some(-1) } else { None });
    let icmpcode = p.int("icmpcode")?.or(if icmp { Some(-1) } else { None });
    let number = p.int("number")?;
    let list_seq = match (ctx.opt_live(&m.acls, "aclid")?, ctx.opt_live(&m.networks, "networkid")?) {
        (Some(l), _) => l,
        (None, None) => {
            return Err(SimError::invalid("Cannot create Network ACL Item. ACL Id or network Id is required"));
        }
        (None, Some(n)) => {
            let net = m.networks.live(n)?;
            m.check_owned(&ctx.caller, net)?;
            if net.vpc.is_none() {
                return Err(SimError::invalid(format!("Network: {} does not belong to VPC", net.id)));
            }
            net.acl.ok_or_else(|| SimError::invalid("Unable to find specified ACL."))?
        }
    };
    let l = m.acls.live(list_seq)?;
    if is_default(l) {
        return Err(SimError::invalid("Default ACL cannot be modified"));
    }
    check_list_access(ctx, m, l)?;
    if let Some(n) = number {
        if n < 1 {
            return Err(SimError::invalid(format!("Invalid number [{n}]. Number cannot be < 1")));
        }
        if m.acl_items.values().any(|i| i.list == list_seq && i.number == n) {
            return Err(SimError::invalid(format!("ACL item with number {n} already exists in ACL: {}", l.id)));
        }
    }
    let input = RuleInput {
        protocol,
        startport,
        endport,
        icmptype,
        icmpcode,
        cidrs: {
            let c = p.list("cidrlist");
            if c.is_empty() { vec!["0.0.0.0/0".to_string(), "::/0".to_string()] } else { c }
        },
        traffictype,
        action: action_of(p.opt("action"))?,
    };
    validate_rule(&input)?;
    let number = number.unwrap_or_else(|| {
        m.acl_items.values().filter(|i| i.list == list_seq).map(|i| i.number).max().unwrap_or(0) + 1
    });
    let id = new_uuid();
    let s = m.next_seq();
    m.acl_items.insert(
        s,
        AclItem {
            id: id.clone(),
            list: list_seq,
            number,
            action: input.action,
            protocol: input.protocol.to_lowercase(),
            startport: input.startport,
            endport: input.endport,
            icmptype: input.icmptype,
            icmpcode: input.icmpcode,
            cidrs: input.cidrs,
            traffictype: input.traffictype,
            reason: p.opt("reason").map(str::to_string),
            display: p.bool_or("fordisplay", true),
            tags: Vec::new(),
        },
    );
    Ok(ctx.create_job(
        "NetworkACL",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.acl_items.remove(s);
            })?;
            Ok(single("networkacl", item_json(m, m.acl_items.in_job(s)?)))
        }),
    ))
}

fn item_param(ctx: &Ctx, m: &Model, name: &str) -> SimResult<u64> {
    let s = ctx.need(&m.acl_items, name)?;
    let i = m.acl_items.live(s)?;
    check_list_access(ctx, m, m.acls.live(i.list)?)?;
    Ok(s)
}

fn update_item(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = item_param(ctx, m, "id")?;
    let cur = m.acl_items.live(s)?.clone();
    let l = m.acls.live(cur.list)?;
    if is_default(l) {
        return Err(SimError::invalid("Default ACL cannot be modified"));
    }
    let p = &ctx.p;
    if p.has("customid") {
        return Err(SimError::invalid("Parameter customid of updateNetworkACLItem is not simulated"));
    }
    // partialupgrade (default true): only what is sent changes.
    let partial = p.bool_or("partialupgrade", true);
    let number = p.int("number")?;
    if let Some(n) = number
        && m.acl_items.values().any(|i| i.list == cur.list && i.number == n && i.id != cur.id)
    {
        return Err(SimError::invalid(format!("ACL item with number {n} already exists in ACL: {}", l.id)));
    }
    let keep = |sent: Option<i64>, old: Option<i64>| if partial && sent.is_none() { old } else { sent };
    let cidrs = p.list("cidrlist");
    let input = RuleInput {
        protocol: match p.opt("protocol").map(str::trim).filter(|x| !x.is_empty()) {
            Some(x) => x.to_string(),
            None if partial => cur.protocol.clone(),
            None => String::new(),
        },
        startport: keep(p.int("startport")?, cur.startport),
        endport: keep(p.int("endport")?, cur.endport),
        icmptype: keep(p.int("icmptype")?, cur.icmptype),
        icmpcode: keep(p.int("icmpcode")?, cur.icmpcode),
        cidrs: if cidrs.is_empty() && partial { cur.cidrs.clone() } else { cidrs },
        // UpdateNetworkACLItemCmd.getTrafficType answers null for an unknown value: as if not
        // sent (a full update keeps the current one: an item always has a direction here).
        traffictype: match p.opt("traffictype").map(|t| traffic_type(Some(t))) {
            Some(Ok(t)) => t,
            _ => cur.traffictype,
        },
        action: match p.opt("action") {
            None if partial => cur.action,
            a => action_of(a)?,
        },
    };
    validate_rule(&input)?;
    let reason = p.opt("reason").map(str::to_string).or(if partial { cur.reason.clone() } else { None });
    let display = p.opt_bool("fordisplay");
    Ok(ctx.object_job(
        "NetworkACL",
        cur.id.clone(),
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let i = m.acl_items.in_job_mut(s)?;
            if let Some(n) = number {
                i.number = n;
            }
            i.protocol = input.protocol.to_lowercase();
            i.startport = input.startport;
            i.endport = input.endport;
            i.icmptype = input.icmptype;
            i.icmpcode = input.icmpcode;
            i.cidrs = input.cidrs;
            i.traffictype = input.traffictype;
            i.action = input.action;
            i.reason = reason;
            if let Some(d) = display {
                i.display = d;
            }
            Ok(single("networkacl", item_json(m, m.acl_items.in_job(s)?)))
        }),
    ))
}

fn delete_item(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = item_param(ctx, m, "id")?;
    let i = m.acl_items.live(s)?;
    if m.acls.live(i.list).is_ok_and(is_default) {
        return Err(SimError::invalid("ACL Items in default ACL cannot be deleted"));
    }
    let id = i.id.clone();
    Ok(ctx.object_job(
        "NetworkACL",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.acl_items.in_job(s)?;
            m.acl_items.remove(s);
            Ok(success())
        }),
    ))
}

fn list_items(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "networkacl", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.acl_items, "id")? else { return empty() };
    let Some(acl) = ctx.filter(&m.acls, "aclid")? else { return empty() };
    let Some(network) = ctx.filter(&m.networks, "networkid")? else { return empty() };
    let acl = match network {
        Some(n) => match m.networks.get(n).and_then(|n| n.acl) {
            Some(a) => Some(a),
            None => return empty(),
        },
        None => acl,
    };
    if let Some(a) = acl {
        check_list_access(ctx, m, m.acls.live(a)?)?;
    }
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let traffic = p.opt("traffictype");
    let protocol = p.opt("protocol");
    let action = p.opt("action");
    let tags = p.tags();
    let items: Vec<&AclItem> = m
        .acl_items
        .iter()
        .filter(|(s, i)| {
            let visible = acl.is_some() || item_owner(m, i).is_none_or(|o| scope.sees(o));
            visible
                && id.is_none_or(|x| x == *s)
                && acl.is_none_or(|a| i.list == a)
                && traffic.is_none_or(|t| t.eq_ignore_ascii_case(i.traffictype))
                && protocol.is_none_or(|x| x.eq_ignore_ascii_case(&i.protocol))
                && action.is_none_or(|x| x.eq_ignore_ascii_case(i.action))
                && tags_match(&i.tags, &tags)
        })
        .map(|(_, i)| i)
        .collect();
    Ok(list::respond(paging, "networkacl", items, |i| item_json(m, i)))
}

fn replace_list(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("aclid")?;
    let l = ctx.need(&m.acls, "aclid")?;
    match (ctx.p.has("networkid"), ctx.p.has("gatewayid")) {
        (true, true) => {
            return Err(SimError::invalid("Network ID and private gateway can't be passed at the same time"));
        }
        (false, false) => {
            return Err(SimError::invalid("Network ID and private gateway can't be null at the same time"));
        }
        (false, true) => return Err(SimError::invalid("Replacing the ACL of a private gateway is not simulated")),
        _ => {}
    }
    let n = ctx.need(&m.networks, "networkid")?;
    let net = m.networks.live(n)?;
    m.check_owned(&ctx.caller, net)?;
    let acl = m.acls.live(l)?;
    let Some(vpc) = net.vpc else {
        return Err(SimError::invalid(format!("Network is not part of a VPC: {}", net.id)));
    };
    if let Some(av) = acl.vpc {
        check_list_access(ctx, m, acl)?;
        if av != vpc {
            return Err(SimError::invalid(format!("Network: {n} and ACL: {l} do not belong to the same VPC")));
        }
    }
    let id = net.id.clone();
    Ok(ctx.object_job(
        "Network",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.acls.in_job(l)?;
            m.networks.in_job_mut(n)?.acl = Some(l);
            Ok(success())
        }),
    ))
}
