//! Security group steps: create (reserved name, duplicate, TagSpecification with rollback),
//! delete (by id or name), authorize / revoke ingress and egress rules (EC2 permissions <->
//! CloudStack rules, one CloudStack rule per CIDR or group), and the DescribeSecurityGroups
//! transforms that group CloudStack rules into EC2 `IpPermission`s.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::backend::join_limited;
use super::super::exec::{Ctx, Prepared};
use super::check_keys;
use super::common::{Undo, UndoCall, create_tags, field_text, is_param_error, pair, tag_specifications};
use crate::base::{Code, Ec2Error};
use crate::cloudstack::CsError;
use crate::ec2::Params;
use crate::ids::{self, Kind};

fn not_found(name: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidGroupNotFound, format!("The security group '{name}' does not exist"))
}

/// Every security group the caller owns (one call; also feeds the id cache).
async fn list_groups(ctx: &Ctx<'_>) -> Result<Vec<Value>, Ec2Error> {
    let groups = ctx.list("listSecurityGroups", &[], "securitygroup").await?;
    let rec: Vec<(Kind, String, String)> = groups
        .iter()
        .filter_map(|g| field_text(g, "id"))
        .map(|u| (Kind::SecurityGroup, ids::ec2_id(Kind::SecurityGroup, &u), u))
        .collect();
    ctx.ex.ids.record(rec).await;
    Ok(groups)
}

/// The group named by `GroupId` or `GroupName` in `groups`.
fn pick_group<'g>(p: &Params, groups: &'g [Value]) -> Result<&'g Value, Ec2Error> {
    let id = p.get("GroupId").filter(|v| !v.is_empty());
    let name = p.get("GroupName").filter(|v| !v.is_empty());
    match (id, name) {
        (Some(id), _) => {
            if !ids::is_well_formed(Kind::SecurityGroup, id) {
                return Err(Ec2Error::new(
                    Code::InvalidGroupIdMalformed,
                    format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
                ));
            }
            groups
                .iter()
                .find(|g| field_text(g, "id").is_some_and(|u| ids::ec2_id(Kind::SecurityGroup, &u) == id))
                .ok_or_else(|| not_found(id))
        }
        (None, Some(n)) => {
            groups.iter().find(|g| field_text(g, "name").as_deref() == Some(n)).ok_or_else(|| not_found(n))
        }
        (None, None) => {
            Err(Ec2Error::new(Code::MissingParameter, "The request must contain the parameter GroupName or GroupId"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Create / Delete

pub async fn create(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let name = p.require("GroupName")?;
    let desc = p.require("GroupDescription")?;
    for (param, v) in [("GroupName", name), ("GroupDescription", desc)] {
        if v.len() > 255 || v.chars().any(|c| c.is_control()) {
            return Err(Ec2Error::invalid_value(param, v, "Up to 255 printable characters are allowed."));
        }
    }
    if name.starts_with("sg-") {
        return Err(Ec2Error::invalid_value("GroupName", name, "Group names may not be in the format sg-*."));
    }
    if name.eq_ignore_ascii_case("default") {
        return Err(Ec2Error::new(Code::InvalidGroupReserved, "The security group 'default' is reserved"));
    }
    if let Some(vpc) = p.get("VpcId").filter(|v| !v.is_empty()) {
        // A VPC's groups are the gateway's own (docs/vpc.md).
        return super::vpc_sg::create(ctx, vpc, name, desc).await;
    }
    let tags = tag_specifications(p, "security-group")?;
    let params = vec![("name".to_string(), name.to_string()), ("description".to_string(), desc.to_string())];
    let made = match ctx.call_raw("createSecurityGroup", &params).await {
        Ok(v) => v.get("securitygroup").cloned().unwrap_or(v),
        Err(e) if is_param_error(&e) => {
            // CloudStack says 431 for both a taken name and other bad input: ask which.
            let q = [("securitygroupname".to_string(), name.to_string())];
            if !ctx.list("listSecurityGroups", &q, "securitygroup").await?.is_empty() {
                return Err(Ec2Error::new(
                    Code::InvalidGroupDuplicate,
                    format!("The security group '{name}' already exists"),
                ));
            }
            return Err(ctx.err(e));
        }
        Err(e) => return Err(ctx.err(e)),
    };
    let uuid = field_text(&made, "id").ok_or_else(Ec2Error::internal)?;
    ctx.forget_cached("listSecurityGroups");
    let mut undo = Undo::new(ctx);
    undo.made(&ids::ec2_id(Kind::SecurityGroup, &uuid), UndoCall::call("deleteSecurityGroup", vec![pair("id", &uuid)]))
        .await;
    if !tags.is_empty()
        && let Err(e) = create_tags(ctx, "SecurityGroup", &[&uuid], &tags).await
    {
        return Err(undo.fail(e).await);
    }
    undo.disarm().await;
    Ok(made)
}

/// A `GroupId` that names one of the VPC security groups the gateway keeps (docs/vpc.md).
async fn vpc_group_id(ctx: &Ctx<'_>) -> Result<Option<String>, Ec2Error> {
    match ctx.req.params.get("GroupId").filter(|v| !v.is_empty()) {
        Some(id) => Ok(super::vpc_sg::group(ctx, id).await?.map(|_| id.to_string())),
        None => Ok(None),
    }
}

pub async fn delete(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    if let Some(id) = vpc_group_id(ctx).await? {
        return super::vpc_sg::delete(ctx, &id).await.map(|_| Value::Null);
    }
    let p = &ctx.req.params;
    let groups = list_groups(ctx).await?;
    let g = pick_group(p, &groups)?;
    let uuid = field_text(g, "id").ok_or_else(Ec2Error::internal)?;
    let ec2 = ids::ec2_id(Kind::SecurityGroup, &uuid);
    if field_text(g, "name").as_deref() == Some("default") {
        return Err(Ec2Error::new(
            Code::CannotDelete,
            format!("the specified group: \"{ec2}\" name: \"default\" cannot be deleted by a user"),
        ));
    }
    match ctx.call_raw("deleteSecurityGroup", &[("id".into(), uuid)]).await {
        Ok(_) => {}
        Err(CsError::Api { errorcode: 536, .. }) => {
            return Err(Ec2Error::new(Code::DependencyViolation, format!("resource {ec2} has a dependent object")));
        }
        Err(e) => return Err(ctx.err(e)),
    }
    ctx.forget_cached("listSecurityGroups");
    Ok(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Permissions

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Cidr(String),
    /// (account, group name)
    Group(String, String),
}

/// One CloudStack rule's worth of an EC2 permission.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom {
    /// CloudStack protocol: tcp, udp, icmp, all, or a number.
    protocol: String,
    from: Option<i64>,
    to: Option<i64>,
    source: Source,
}

#[derive(Debug, Clone)]
struct Perm {
    protocol: String,
    from: Option<i64>,
    to: Option<i64>,
    cidrs: Vec<String>,
    groups: Vec<(String, String)>,
}

impl Perm {
    fn atoms(&self) -> Vec<Atom> {
        let base = |source| Atom { protocol: self.protocol.clone(), from: self.from, to: self.to, source };
        self.cidrs
            .iter()
            .map(|c| base(Source::Cidr(c.clone())))
            .chain(self.groups.iter().map(|(a, n)| base(Source::Group(a.clone(), n.clone()))))
            .collect()
    }

    fn describe(a: &Atom) -> String {
        let peer = match &a.source {
            Source::Cidr(c) => c.clone(),
            Source::Group(acct, n) => format!("{acct}/{n}"),
        };
        let proto = if a.protocol == "all" { "ALL".to_string() } else { a.protocol.to_uppercase() };
        match (a.from, a.to) {
            (Some(f), Some(t)) => format!("peer: {peer}, {proto}, from port: {f}, to port: {t}, ALLOW"),
            _ => format!("peer: {peer}, {proto}, ALLOW"),
        }
    }
}

/// EC2 IpProtocol -> CloudStack protocol (names for tcp/udp/icmp, `all` for -1).
fn cs_protocol(v: &str, param: &str) -> Result<String, Ec2Error> {
    let l = v.trim().to_ascii_lowercase();
    Ok(match l.as_str() {
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "-1" | "all" => "all".into(),
        n => match n.parse::<u16>() {
            Ok(x) if x <= 255 => x.to_string(),
            _ => {
                return Err(Ec2Error::invalid_value(param, v, "Unknown protocol."));
            }
        },
    })
}

/// CloudStack rule protocol -> EC2 ipProtocol.
fn ec2_protocol(cs: &str) -> String {
    match cs.to_ascii_lowercase().as_str() {
        "all" | "" | "-1" => "-1".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        other => other.into(),
    }
}

fn int_param(p: &Params, name: &str, shown: &str) -> Result<Option<i64>, Ec2Error> {
    match p.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Ec2Error::new(Code::InvalidParameterValue, format!("Invalid value '{v}' for {shown}."))),
    }
}

fn valid_cidr(c: &str) -> bool {
    let Some((ip, prefix)) = c.split_once('/') else { return false };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && prefix.parse::<u8>().is_ok_and(|p| p <= 32) && !prefix.starts_with('+')
}

/// Ports by protocol: tcp/udp need 0..65535 with from <= to; icmp takes type/code (-1 = any);
/// everything else covers every port.
fn check_ports(protocol: &str, from: Option<i64>, to: Option<i64>) -> Result<(Option<i64>, Option<i64>), Ec2Error> {
    let malformed = |m: String| Ec2Error::new(Code::InvalidPermissionMalformed, m);
    match protocol {
        "tcp" | "udp" => {
            let (Some(f), Some(t)) = (from, to) else {
                return Err(malformed(format!("Invalid {protocol} port range: FromPort and ToPort are required.")));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(malformed(format!("Invalid {protocol} port range: {f}-{t}.")));
            }
            Ok((Some(f), Some(t)))
        }
        "icmp" => {
            let (f, t) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                return Err(malformed(format!("Invalid ICMP type/code: {f}/{t}.")));
            }
            Ok((Some(f), Some(t)))
        }
        _ => Ok((None, None)),
    }
}

/// The permissions of the request: `IpPermissions.N` or the old flat form.
/// `UserId` / `SourceSecurityGroupOwnerId` name the group's owner by account number (or, as
/// before, by CloudStack account name); `name_of` turns it into the account name CloudStack wants.
fn read_perms(
    p: &Params,
    groups: &[Value],
    own_account: &str,
    name_of: &dyn Fn(&str) -> Result<String, Ec2Error>,
) -> Result<Vec<Perm>, Ec2Error> {
    let mut raw: Vec<(Params, String)> = p
        .members("IpPermissions")
        .into_iter()
        .enumerate()
        .map(|(i, m)| (m, format!("IpPermissions.{}.", i + 1)))
        .collect();
    if raw.is_empty() {
        // Flat form: IpProtocol FromPort ToPort CidrIp SourceSecurityGroupName/OwnerId.
        let flat_keys = ["IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupName"];
        if !flat_keys.iter().any(|k| p.get(k).is_some()) {
            return Err(Ec2Error::missing_parameter("IpPermissions"));
        }
        // A source group with no protocol and no ports is EC2-Classic's "everything from that
        // group": TCP and UDP on every port and all of ICMP, described back as three permissions.
        let whole_group = p.get("SourceSecurityGroupName").is_some()
            && ["IpProtocol", "FromPort", "ToPort", "CidrIp"].iter().all(|k| p.get(k).is_none());
        let expanded: &[(&str, Option<(&str, &str)>)] = if whole_group {
            &[("tcp", Some(("0", "65535"))), ("udp", Some(("0", "65535"))), ("icmp", Some(("-1", "-1")))]
        } else {
            &[("", None)]
        };
        for (proto, ports) in expanded {
            let mut m = Params::new();
            m.insert("IpProtocol", if proto.is_empty() { p.get("IpProtocol").unwrap_or("-1") } else { *proto });
            if let Some((f, t)) = ports {
                m.insert("FromPort", *f);
                m.insert("ToPort", *t);
            }
            for (from, to) in [("FromPort", "FromPort"), ("ToPort", "ToPort"), ("CidrIp", "IpRanges.1.CidrIp")] {
                if let Some(v) = p.get(from) {
                    m.insert(to, v);
                }
            }
            if let Some(n) = p.get("SourceSecurityGroupName") {
                m.insert("Groups.1.GroupName", n);
                if let Some(o) = p.get("SourceSecurityGroupOwnerId") {
                    m.insert("Groups.1.UserId", o);
                }
            }
            raw.push((m, String::new()));
        }
    }
    let mut out = Vec::new();
    for (m, pfx) in raw {
        let proto_param = format!("{pfx}IpProtocol");
        let protocol =
            cs_protocol(m.require("IpProtocol").map_err(|_| Ec2Error::missing_parameter(&proto_param))?, &proto_param)?;
        let from = int_param(&m, "FromPort", &format!("{pfx}FromPort"))?;
        let to = int_param(&m, "ToPort", &format!("{pfx}ToPort"))?;
        let (from, to) = check_ports(&protocol, from, to)?;
        let mut cidrs = Vec::new();
        for r in m.members("IpRanges") {
            let c = r.get("CidrIp").unwrap_or("");
            if !valid_cidr(c) {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("Value ({c}) for parameter cidrIp is invalid. This is not a valid CIDR block."),
                ));
            }
            cidrs.push(c.to_string());
        }
        if !m.members("Ipv6Ranges").is_empty() || !m.members("PrefixListIds").is_empty() {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                "IPv6 ranges and prefix lists are not supported by this cloud.",
            ));
        }
        let mut pairs = Vec::new();
        for g in m.members("Groups") {
            let pair = match (g.get("GroupId").filter(|v| !v.is_empty()), g.get("GroupName").filter(|v| !v.is_empty()))
            {
                (Some(id), _) => {
                    if !ids::is_well_formed(Kind::SecurityGroup, id) {
                        return Err(Ec2Error::new(
                            Code::InvalidGroupIdMalformed,
                            format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
                        ));
                    }
                    let found = groups
                        .iter()
                        .find(|x| field_text(x, "id").is_some_and(|u| ids::ec2_id(Kind::SecurityGroup, &u) == id))
                        .ok_or_else(|| not_found(id))?;
                    (
                        field_text(found, "account").unwrap_or_else(|| own_account.to_string()),
                        field_text(found, "name").unwrap_or_default(),
                    )
                }
                (None, Some(name)) => match g
                    .get("UserId")
                    .filter(|v| !v.is_empty())
                    .map(name_of)
                    .transpose()?
                    .filter(|v| v != own_account)
                {
                    // Another account's group: CloudStack checks it.
                    Some(acct) => (acct, name.to_string()),
                    None => {
                        let found = groups
                            .iter()
                            .find(|x| field_text(x, "name").as_deref() == Some(name))
                            .ok_or_else(|| not_found(name))?;
                        (field_text(found, "account").unwrap_or_else(|| own_account.to_string()), name.to_string())
                    }
                },
                (None, None) => {
                    return Err(Ec2Error::missing_parameter(&format!("{pfx}Groups.N.GroupId")));
                }
            };
            pairs.push(pair);
        }
        if cidrs.is_empty() && pairs.is_empty() {
            // Never widen a rule to every address by default.
            return Err(Ec2Error::missing_parameter(&format!("{pfx}IpRanges or {pfx}Groups")));
        }
        out.push(Perm { protocol, from, to, cidrs, groups: pairs });
    }
    Ok(out)
}

/// A CloudStack rule as an atom (ports by protocol, as the request side normalises them).
fn rule_atom(r: &Value) -> Option<(String, Atom)> {
    let ruleid = field_text(r, "ruleid")?;
    let protocol = match ec2_protocol(&field_text(r, "protocol").unwrap_or_default()).as_str() {
        "-1" => "all".to_string(),
        p => p.to_string(),
    };
    let int = |k: &str| r.get(k).and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|x| x.parse().ok())));
    let (from, to) = match protocol.as_str() {
        "tcp" | "udp" => (int("startport"), int("endport")),
        "icmp" => (int("icmptype").or(Some(-1)), int("icmpcode").or(Some(-1))),
        _ => (None, None),
    };
    let source = match (field_text(r, "cidr"), field_text(r, "securitygroupname")) {
        (Some(c), _) if !c.is_empty() => Source::Cidr(c),
        (_, Some(n)) => Source::Group(field_text(r, "account").unwrap_or_default(), n),
        _ => return None,
    };
    Some((ruleid, Atom { protocol, from, to, source }))
}

fn rules_of(g: &Value, ingress: bool) -> Vec<(String, Atom)> {
    let key = if ingress { "ingressrule" } else { "egressrule" };
    g.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(rule_atom).collect()).unwrap_or_default()
}

pub fn check_rule_args(args: &Value) -> Result<(), String> {
    check_keys(args, &["direction"], &["direction"])?;
    match args.get("direction").and_then(Value::as_str) {
        Some("ingress" | "egress") => Ok(()),
        _ => Err("args.direction is ingress or egress".into()),
    }
}

fn direction(ctx: &Ctx<'_>) -> (bool, &'static str) {
    let ingress = ctx.action.args.get("direction").and_then(Value::as_str) != Some("egress");
    (ingress, if ingress { "Ingress" } else { "Egress" })
}

fn cs_rule_params(group_uuid: &str, perm: &Perm) -> Vec<(String, String)> {
    let mut p =
        vec![("securitygroupid".to_string(), group_uuid.to_string()), ("protocol".into(), perm.protocol.clone())];
    match perm.protocol.as_str() {
        "tcp" | "udp" => {
            p.push(("startport".into(), perm.from.unwrap_or(0).to_string()));
            p.push(("endport".into(), perm.to.unwrap_or(0).to_string()));
        }
        "icmp" => {
            p.push(("icmptype".into(), perm.from.unwrap_or(-1).to_string()));
            p.push(("icmpcode".into(), perm.to.unwrap_or(-1).to_string()));
        }
        _ => {}
    }
    if !perm.cidrs.is_empty() {
        p.push(("cidrlist".into(), perm.cidrs.join(",")));
    }
    for (i, (acct, name)) in perm.groups.iter().enumerate() {
        p.push((format!("usersecuritygrouplist[{i}].account"), acct.clone()));
        p.push((format!("usersecuritygrouplist[{i}].group"), name.clone()));
    }
    p
}

async fn revoke_rules(ctx: &Ctx<'_>, command: &str, rule_ids: &[String]) -> Vec<Result<(), Ec2Error>> {
    let futs = rule_ids.iter().map(|id| async move {
        let j = ctx.start_job(command, &[("id".into(), id.clone())]).await?;
        ctx.wait_job(command, &j.jobid).await.map(|_| ())
    });
    join_limited(futs.collect(), ctx.ex.opts.call_concurrency).await
}

/// The CloudStack account name an EC2 owner id (account number, docs/accounts.md) stands for.
/// A number the gateway has never seen an account for names no group the caller can use.
async fn owner_names(ctx: &Ctx<'_>) -> std::collections::HashMap<String, String> {
    let p = &ctx.req.params;
    let mut wanted: Vec<String> = p.get("SourceSecurityGroupOwnerId").into_iter().map(str::to_string).collect();
    for m in p.members("IpPermissions") {
        for g in m.members("Groups") {
            wanted.extend(g.get("UserId").filter(|v| !v.is_empty()).map(str::to_string));
        }
    }
    let mut out = std::collections::HashMap::new();
    for v in wanted {
        if let Some(n) = ctx.account_name_of(&v).await {
            out.insert(v, n);
        }
    }
    out
}

fn owner_name(names: &std::collections::HashMap<String, String>, v: &str) -> Result<String, Ec2Error> {
    names.get(v).cloned().ok_or_else(|| {
        Ec2Error::new(Code::InvalidGroupNotFound, format!("The security group owner '{v}' is not a known account"))
    })
}

/// A security group outside a VPC (EC2-Classic) has no egress rules: EC2 refuses both egress
/// actions for it.
fn classic_egress() -> Ec2Error {
    Ec2Error::new(Code::InvalidParameterValue, "Only Amazon VPC security groups may be used with this operation.")
}

/// Authorize: one CloudStack call per permission, in order; a failure revokes what the earlier
/// calls of this request added.
pub async fn authorize(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let (ingress, dir) = direction(ctx);
    if let Some(id) = vpc_group_id(ctx).await? {
        return super::vpc_sg::change_rules(ctx, &id, ingress, false).await.map(|_| Value::Null);
    }
    let groups = list_groups(ctx).await?;
    let g = pick_group(p, &groups)?;
    if !ingress {
        return Err(classic_egress());
    }
    let uuid = field_text(g, "id").ok_or_else(Ec2Error::internal)?;
    let own = field_text(g, "account").or_else(|| ctx.who.account.clone()).unwrap_or_default();
    let names = owner_names(ctx).await;
    let perms = read_perms(p, &groups, &own, &|v| owner_name(&names, v))?;
    let existing = rules_of(g, ingress);
    for perm in &perms {
        for a in perm.atoms() {
            if existing.iter().any(|(_, e)| *e == a) {
                return Err(Ec2Error::new(
                    Code::InvalidPermissionDuplicate,
                    format!("the specified rule \"{}\" already exists", Perm::describe(&a)),
                ));
            }
        }
    }
    let command = format!("authorizeSecurityGroup{dir}");
    let revoke = format!("revokeSecurityGroup{dir}");
    let mut added: Vec<String> = Vec::new();
    for perm in &perms {
        let r = async {
            let j = ctx.start_job(&command, &cs_rule_params(&uuid, perm)).await?;
            ctx.wait_job(&command, &j.jobid).await
        }
        .await;
        match r {
            Ok(v) => {
                let sg = v.get("securitygroup").unwrap_or(&v);
                for (id, _) in rules_of(sg, ingress) {
                    if !existing.iter().any(|(e, _)| *e == id) && !added.contains(&id) {
                        added.push(id);
                    }
                }
            }
            Err(e) => {
                let left: Vec<&String> = revoke_rules(ctx, &revoke, &added)
                    .await
                    .iter()
                    .zip(&added)
                    .filter(|(r, _)| r.is_err())
                    .map(|(_, id)| id)
                    .collect();
                if !left.is_empty() {
                    tracing::warn!(rules = ?left, "rules of a failed authorize could not be revoked");
                }
                return Err(e);
            }
        }
    }
    Ok(Value::Null)
}

/// Revoke: every permission must match existing rules (by protocol, ports, CIDR / group);
/// the matching rules are revoked by id.
pub async fn revoke(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let (ingress, dir) = direction(ctx);
    if let Some(id) = vpc_group_id(ctx).await? {
        return super::vpc_sg::change_rules(ctx, &id, ingress, true).await.map(|_| Value::Null);
    }
    let groups = list_groups(ctx).await?;
    let g = pick_group(p, &groups)?;
    if !ingress {
        return Err(classic_egress());
    }
    let own = field_text(g, "account").or_else(|| ctx.who.account.clone()).unwrap_or_default();
    let names = owner_names(ctx).await;
    let perms = read_perms(p, &groups, &own, &|v| owner_name(&names, v))?;
    let existing = rules_of(g, ingress);
    // EC2-Classic: revoking a rule that is not there succeeds (a VPC group answers
    // InvalidPermission.NotFound, vpc_sg); the rules that are there go.
    let mut todo: Vec<String> = Vec::new();
    for perm in &perms {
        for a in perm.atoms() {
            if let Some((id, _)) = existing.iter().find(|(_, e)| *e == a)
                && !todo.contains(id)
            {
                todo.push(id.clone())
            }
        }
    }
    let command = format!("revokeSecurityGroup{dir}");
    for r in revoke_rules(ctx, &command, &todo).await {
        r?;
    }
    Ok(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// DescribeSecurityGroups transforms

/// `_ingress` / `_egress`: the group's rules as EC2 permissions, one per (protocol, ports), each
/// holding its CIDRs and groups. Filters and the shape read these.
pub async fn permissions(_: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    // (account, name) -> uuid, for the groupId of group pairs.
    let by_name: HashMap<(String, String), String> = items
        .iter()
        .filter_map(|g| {
            Some(((field_text(g, "account").unwrap_or_default(), field_text(g, "name")?), field_text(g, "id")?))
        })
        .collect();
    for g in items.iter_mut() {
        let mut out = Vec::new();
        for ingress in [true, false] {
            let mut perms: Vec<Value> = Vec::new();
            for (_, a) in rules_of(g, ingress) {
                let proto = ec2_protocol(&a.protocol);
                let idx = perms.iter().position(|x| {
                    x["protocol"] == json!(proto)
                        && x.get("fromport") == a.from.map(Value::from).as_ref()
                        && x.get("toport") == a.to.map(Value::from).as_ref()
                });
                let idx = idx.unwrap_or_else(|| {
                    let mut o = json!({"protocol": proto, "groups": [], "ranges": []});
                    if let (Some(f), Some(t)) = (a.from, a.to) {
                        o["fromport"] = json!(f);
                        o["toport"] = json!(t);
                    }
                    perms.push(o);
                    perms.len() - 1
                });
                match a.source {
                    Source::Cidr(c) => {
                        if let Some(r) = perms[idx]["ranges"].as_array_mut() {
                            r.push(json!({"cidr": c}));
                        }
                    }
                    Source::Group(acct, name) => {
                        let mut pair = json!({"userid": acct, "groupname": name});
                        if let Some(u) = by_name.get(&(acct, name)) {
                            pair["groupid"] = json!(u);
                        }
                        if let Some(r) = perms[idx]["groups"].as_array_mut() {
                            r.push(pair);
                        }
                    }
                }
            }
            out.push(Value::Array(perms));
        }
        if let Some(o) = g.as_object_mut() {
            o.insert("_egress".into(), out.pop().unwrap_or(Value::Null));
            o.insert("_ingress".into(), out.pop().unwrap_or(Value::Null));
        }
    }
    Ok(items)
}

/// Keep only the items whose `field` is one of the request's `param.N` values; a value with no
/// item is `code` "... '<value>' does not exist".
pub(crate) fn keep_named(
    items: Vec<Value>,
    wanted: &[&str],
    field: &str,
    code: Code,
    what: &str,
) -> Result<Vec<Value>, Ec2Error> {
    if wanted.is_empty() {
        return Ok(items);
    }
    if let Some(missing) = wanted.iter().find(|w| !items.iter().any(|i| field_text(i, field).as_deref() == Some(**w))) {
        return Err(Ec2Error::new(code, format!("The {what} '{missing}' does not exist")));
    }
    Ok(items.into_iter().filter(|i| field_text(i, field).is_some_and(|v| wanted.contains(&v.as_str()))).collect())
}

/// DescribeSecurityGroups `GroupId.N` and `GroupName.N` (one listing serves both; a group
/// named either way is described; any unknown one -> InvalidGroup.NotFound).
pub async fn select(ctx: &Ctx<'_>, _: &Prepared, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let p = &ctx.req.params;
    let want_ids = p.list("GroupId");
    let want_names = p.list("GroupName");
    if want_ids.is_empty() && want_names.is_empty() {
        return Ok(items);
    }
    for id in &want_ids {
        if !ids::is_well_formed(Kind::SecurityGroup, id) {
            return Err(Ec2Error::new(
                Code::InvalidGroupIdMalformed,
                format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
            ));
        }
    }
    let ec2 = |g: &Value| field_text(g, "id").map(|u| ids::ec2_id(Kind::SecurityGroup, &u)).unwrap_or_default();
    let missing: Vec<&str> = want_ids
        .iter()
        .filter(|id| !items.iter().any(|g| ec2(g) == **id))
        .chain(want_names.iter().filter(|n| !items.iter().any(|g| field_text(g, "name").as_deref() == Some(**n))))
        .copied()
        .collect();
    match missing.as_slice() {
        [] => {}
        [one] => return Err(not_found(one)),
        many => {
            return Err(Ec2Error::new(
                Code::InvalidGroupNotFound,
                format!("The security groups '{}' do not exist", many.join(", ")),
            ));
        }
    }
    Ok(items
        .into_iter()
        .filter(|g| {
            want_ids.contains(&ec2(g).as_str())
                || field_text(g, "name").is_some_and(|n| want_names.contains(&n.as_str()))
        })
        .collect())
}
