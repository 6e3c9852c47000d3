//! Security groups: create/list/delete (`default` reserved, in-use -> 536), ingress/egress
//! rules authorized and revoked by async jobs; the authorize result shows the new rules.

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::render::*;
use super::super::seed::new_uuid;
use super::{CmdSpec, Ctx, Reply, job, read, single, success, write};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        write(
            "createSecurityGroup",
            "org.apache.cloudstack.api.command.user.securitygroup.CreateSecurityGroupCmd",
            create,
        ),
        read(
            "listSecurityGroups",
            "org.apache.cloudstack.api.command.user.securitygroup.ListSecurityGroupsCmd",
            list_groups,
        ),
        write(
            "deleteSecurityGroup",
            "org.apache.cloudstack.api.command.user.securitygroup.DeleteSecurityGroupCmd",
            delete,
        ),
        job(
            "authorizeSecurityGroupIngress",
            "org.apache.cloudstack.api.command.user.securitygroup.AuthorizeSecurityGroupIngressCmd",
            authorize_ingress,
        ),
        job(
            "authorizeSecurityGroupEgress",
            "org.apache.cloudstack.api.command.user.securitygroup.AuthorizeSecurityGroupEgressCmd",
            authorize_egress,
        ),
        job(
            "revokeSecurityGroupIngress",
            "org.apache.cloudstack.api.command.user.securitygroup.RevokeSecurityGroupIngressCmd",
            revoke_ingress,
        ),
        job(
            "revokeSecurityGroupEgress",
            "org.apache.cloudstack.api.command.user.securitygroup.RevokeSecurityGroupEgressCmd",
            revoke_egress,
        ),
    ]
}

fn create(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let name = ctx.p.req("name")?.to_string();
    let owner = m.owner_for(&ctx.caller, &ctx.p)?;
    if name.eq_ignore_ascii_case("default") {
        return Err(SimError::invalid("The network group default is reserved"));
    }
    if m.security_groups.values().any(|g| g.owner == owner && g.name == name) {
        return Err(SimError::invalid(format!(
            "Unable to create security group, a group with name {name} already exists."
        )));
    }
    let seq = m.next_seq();
    m.security_groups.insert(
        seq,
        SecurityGroup {
            id: new_uuid(),
            name,
            description: ctx.p.opt("description").unwrap_or("").to_string(),
            owner,
            ingress: Vec::new(),
            egress: Vec::new(),
            tags: Vec::new(),
        },
    );
    Ok(Reply::Value(single("securitygroup", sg_json(m, m.security_groups.live(seq)?, None))))
}

fn list_groups(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "securitygroup", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.security_groups, "id")? else { return empty() };
    let Some(vm) = ctx.filter(&m.vms, "virtualmachineid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let name = p.opt("securitygroupname");
    let kw = p.opt("keyword");
    let tags = p.tags();
    let vm_groups: Option<&Vec<u64>> = vm.and_then(|v| m.vms.get(v)).map(|v| &v.security_groups);
    let items: Vec<&SecurityGroup> = m
        .security_groups
        .iter()
        .filter(|(s, g)| {
            scope.sees(g.owner)
                && id.is_none_or(|i| i == *s)
                && vm_groups.is_none_or(|vg| vg.contains(s))
                && name.is_none_or(|n| g.name == n)
                && keyword_match(kw, &[&g.name, &g.description])
                && tags_match(&g.tags, &tags)
        })
        .map(|(_, g)| g)
        .collect();
    Ok(list::respond(paging, "securitygroup", items, |g| sg_json(m, g, None)))
}

/// The group named by `<prefix>id` or `<prefix>name` (one of them needed), access-checked.
fn group_param(ctx: &Ctx, m: &Model, id_name: &str, name_name: &str) -> SimResult<u64> {
    let s = match (ctx.p.opt(id_name), ctx.p.opt(name_name)) {
        (Some(_), Some(_)) => {
            return Err(SimError::invalid(format!(
                "Only one of {id_name} and {name_name} parameters can be specified"
            )));
        }
        (None, None) => {
            return Err(SimError::invalid(format!("Either {id_name} or {name_name} is required by the API")));
        }
        (Some(_), None) => ctx.need(&m.security_groups, id_name)?,
        (None, Some(n)) => {
            let owner = m.owner_for(&ctx.caller, &ctx.p)?;
            m.security_groups
                .find(|g| g.owner == owner && g.name == n)
                .map(|(s, _)| s)
                .ok_or_else(|| SimError::invalid(format!("Unable to find security group by name {n}")))?
        }
    };
    m.check_owned(&ctx.caller, m.security_groups.live(s)?)?;
    Ok(s)
}

fn delete(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = group_param(ctx, m, "id", "name")?;
    let g = m.security_groups.live(s)?;
    if g.name == "default" {
        return Err(SimError::invalid("The network default group can't be deleted"));
    }
    if m.vms.values().any(|v| v.security_groups.contains(&s)) {
        return Err(
            SimError::in_use("Cannot delete group when it's in use by virtual machines").with_uuid(g.id.clone())
        );
    }
    let owner_name = m.account(g.owner).name.clone();
    let referenced = m.security_groups.values().any(|o| {
        o.id != g.id
            && o.ingress
                .iter()
                .chain(o.egress.iter())
                .any(|r| r.group.as_ref().is_some_and(|(a, n)| *a == owner_name && *n == g.name))
    });
    if referenced {
        return Err(SimError::in_use("Cannot delete group when there are security rules that allow this group")
            .with_uuid(g.id.clone()));
    }
    let Some(g) = m.security_groups.remove(s) else { return Err(SimError::invalid("Unable to find security group")) };
    for r in g.ingress.iter().chain(g.egress.iter()) {
        m.rules.remove(&r.id);
        m.removed_rules.insert(r.id.clone());
    }
    Ok(Reply::Value(success()))
}

fn parse_cidr(c: &str) -> bool {
    let Some((ip, prefix)) = c.split_once('/') else { return false };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && prefix.parse::<u8>().is_ok_and(|p| p <= 32)
}

/// The rules an authorize call asks for (one per CIDR / group pair), validated.
fn requested_rules(ctx: &Ctx, m: &Model) -> SimResult<Vec<Rule>> {
    let p = &ctx.p;
    let protocol = p.opt("protocol").unwrap_or("all").to_ascii_lowercase();
    let numeric = protocol.parse::<u16>().ok();
    if !matches!(protocol.as_str(), "tcp" | "udp" | "icmp" | "all") && numeric.is_none_or(|n| n > 255) {
        return Err(SimError::invalid(format!("Invalid protocol {protocol}")));
    }
    let (mut startport, mut endport) = (p.int("startport")?, p.int("endport")?);
    let (mut icmptype, mut icmpcode) = (p.int("icmptype")?, p.int("icmpcode")?);
    match protocol.as_str() {
        "tcp" | "udp" => {
            let (s, e) = match (startport, endport) {
                (Some(s), Some(e)) => (s, e),
                (Some(s), None) => (s, s),
                _ => {
                    return Err(SimError::invalid(format!(
                        "Invalid port range {}:{}",
                        fmt_opt(startport),
                        fmt_opt(endport)
                    )));
                }
            };
            if !(0..=65535).contains(&s) || !(0..=65535).contains(&e) || s > e {
                return Err(SimError::invalid(format!("Invalid port range {s}:{e}")));
            }
            (startport, endport) = (Some(s), Some(e));
            (icmptype, icmpcode) = (None, None);
        }
        "icmp" => {
            let (t, c) = (icmptype.unwrap_or(-1), icmpcode.unwrap_or(-1));
            if !(-1..=255).contains(&t) || !(-1..=255).contains(&c) {
                return Err(SimError::invalid(format!(
                    "Invalid ICMP type/code specified, icmpType = {t}, icmpCode = {c}"
                )));
            }
            (icmptype, icmpcode) = (Some(t), Some(c));
            (startport, endport) = (None, None);
        }
        _ => {
            (startport, endport, icmptype, icmpcode) = (None, None, None, None);
        }
    }
    let cidrs = p.list("cidrlist");
    for c in &cidrs {
        if !parse_cidr(c) {
            return Err(SimError::invalid(format!("Invalid cidr {c}")));
        }
    }
    let mut groups = Vec::new();
    for entry in p.indexed("usersecuritygrouplist") {
        let (Some(acct), Some(group)) = (entry.get("account"), entry.get("group")) else {
            return Err(SimError::invalid("Invalid user security group list: each entry needs account and group"));
        };
        let found = m
            .accounts
            .find(|a| &a.name == acct)
            .and_then(|(as_, _)| m.security_groups.find(|g| g.owner == as_ && &g.name == group));
        if found.is_none() {
            return Err(SimError::invalid(format!("Unable to find security group {group} for account {acct}")));
        }
        groups.push((acct.clone(), group.clone()));
    }
    if cidrs.is_empty() && groups.is_empty() {
        return Err(SimError::invalid("At least one cidr or at least one security group needs to be specified"));
    }
    let base = Rule {
        id: String::new(),
        protocol: protocol.clone(),
        startport,
        endport,
        icmptype,
        icmpcode,
        cidr: None,
        group: None,
    };
    let mut out: Vec<Rule> =
        cidrs.into_iter().map(|c| Rule { id: new_uuid(), cidr: Some(c), ..base.clone() }).collect();
    out.extend(groups.into_iter().map(|g| Rule { id: new_uuid(), group: Some(g), ..base.clone() }));
    Ok(out)
}

fn fmt_opt(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "null".into())
}

fn same_rule(a: &Rule, b: &Rule) -> bool {
    a.protocol == b.protocol
        && a.startport == b.startport
        && a.endport == b.endport
        && a.icmptype == b.icmptype
        && a.icmpcode == b.icmpcode
        && a.cidr == b.cidr
        && a.group == b.group
}

fn authorize(ctx: &mut Ctx, m: &mut Model, ingress: bool) -> SimResult<Reply> {
    let s = group_param(ctx, m, "securitygroupid", "securitygroupname")?;
    let rules = requested_rules(ctx, m)?;
    let id = m.security_groups.live(s)?.id.clone();
    let direction = if ingress { "ingress" } else { "egress" };
    Ok(ctx.object_job(
        "SecurityGroup",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            // The group may have been deleted while the job was queued: the job fails (530).
            let g = m.security_groups.in_job_mut(s)?;
            let list = if ingress { &mut g.ingress } else { &mut g.egress };
            // Existing identical rules are skipped, as CloudStack does.
            let new: Vec<Rule> = rules.into_iter().filter(|r| !list.iter().any(|x| same_rule(x, r))).collect();
            if new.is_empty() {
                return Err(SimError::internal(format!("Failed to authorize security group {direction} rule(s)")));
            }
            list.extend(new.iter().cloned());
            for r in &new {
                m.rules.insert(r.id.clone(), RuleRef { group: s, ingress });
            }
            let g = m.security_groups.in_job(s)?;
            Ok(single("securitygroup", sg_json(m, g, Some((&new, ingress)))))
        }),
    ))
}

fn authorize_ingress(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    authorize(ctx, m, true)
}

fn authorize_egress(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    authorize(ctx, m, false)
}

fn revoke(ctx: &mut Ctx, m: &mut Model, ingress: bool) -> SimResult<Reply> {
    let rule_id = ctx.p.req("id")?.to_string();
    let direction = if ingress { "ingress" } else { "egress" };
    let r = match m.rules.get(&rule_id) {
        Some(r) => *r,
        None if m.removed_rules.contains(&rule_id) => {
            return Err(SimError::invalid(format!("Unable to find {direction} rule with id {rule_id}")));
        }
        None => return Err(SimError::bad_uuid(&ctx.p.cmd, "id", &rule_id)),
    };
    if r.ingress != ingress {
        return Err(SimError::invalid(format!("Unable to find {direction} rule with id {rule_id}")));
    }
    let g = m.security_groups.live(r.group)?;
    m.check_owned(&ctx.caller, g)?;
    let gid = g.id.clone();
    Ok(ctx.object_job(
        "SecurityGroup",
        gid,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let g = m.security_groups.in_job_mut(r.group)?;
            let list = if ingress { &mut g.ingress } else { &mut g.egress };
            list.retain(|x| x.id != rule_id);
            m.rules.remove(&rule_id);
            m.removed_rules.insert(rule_id);
            Ok(success())
        }),
    ))
}

fn revoke_ingress(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    revoke(ctx, m, true)
}

fn revoke_egress(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    revoke(ctx, m, false)
}
