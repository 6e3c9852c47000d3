//! Security groups of VPCs (docs/vpc.md "VPC security groups"). CloudStack has no security
//! groups in zones without them, so a VPC's groups are the gateway's own objects in the store,
//! with EC2's semantics: a `default` group per VPC (ingress from itself, egress to everywhere),
//! egress allow-all on new groups, names unique per VPC, rules by CIDR or by group id of the
//! same VPC, EC2's duplicate / not-found / dependency errors. They are enforced per tier through
//! the tiers' ACL lists (sg_enforce; docs/vpc.md "VPC security groups: enforcement").
//!
//! A group's document looks like a CloudStack security group (`id` = a uuid the gateway made,
//! `name`, `description`, `account`, `vpcid` = the VPC's uuid, `tags`) so the shared shapes render
//! it; its rules are EC2 atoms under `rules.ingress` / `rules.egress`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::tag_specifications as tag_specs;
use super::vpc_objects::{self as objects, owner};
use crate::base::{Code, Ec2Error};
use crate::ec2::Params;
use crate::ids::{self, Kind};
use crate::objects::{Change, Record, WriteError};

pub const KIND: &str = "vpc-security-group";
/// Per instance: the VPC security groups it was launched with (`{groups: [sg ids]}`).
pub const INSTANCE_GROUPS: &str = "instance-groups";

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text).filter(|x| !x.is_empty())
}

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidGroupNotFound, format!("The security group '{id}' does not exist"))
}

async fn write(ctx: &Ctx<'_>, changes: Vec<Change>) -> Result<bool, Ec2Error> {
    match ctx.ex.objects.write(changes).await {
        Ok(()) => Ok(true),
        Err(WriteError::Failed(e)) => Err(store_failed(e)),
        Err(_) => Ok(false),
    }
}

/// The caller's VPC groups.
pub async fn groups(ctx: &Ctx<'_>) -> Result<Vec<Record>, Ec2Error> {
    ctx.ex.objects.list(&owner(ctx), KIND).await.map_err(store_failed)
}

/// A VPC group of the caller by EC2 id, if it is one.
pub async fn group(ctx: &Ctx<'_>, id: &str) -> Result<Option<Record>, Ec2Error> {
    let r = ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)?;
    Ok(r.filter(|r| r.kind == KIND))
}

fn egress_all() -> Value {
    json!({"protocol": "-1", "cidr": "0.0.0.0/0"})
}

fn new_group(ctx: &Ctx<'_>, vpc: &str, vpc_uuid: &str, name: &str, desc: &str, default: bool) -> Record {
    let uuid = uuid::Uuid::new_v4().to_string();
    let id = ids::ec2_id(Kind::SecurityGroup, &uuid);
    let ingress = if default {
        json!([{"protocol": "-1", "group": id, "groupuuid": uuid, "groupname": name, "userid": owner(ctx)}])
    } else {
        json!([])
    };
    let doc = json!({
        "id": uuid, "name": name, "description": desc, "account": owner(ctx), "vpcid": vpc_uuid,
        "default": default, "tags": [], "rules": {"ingress": ingress, "egress": [egress_all()]},
    });
    Record { id, kind: KIND.into(), owner: owner(ctx), vpc: Some(vpc.to_string()), doc, version: 0 }
}

/// The VPC's default group (made by whichever gateway needs it first; a claim keeps it to one).
pub async fn ensure_default(ctx: &Ctx<'_>, vpc: &str, vpc_uuid: &str) -> Result<String, Ec2Error> {
    let claim = format!("default-sg:{vpc}");
    if let Some(h) = ctx.ex.objects.holder(&claim).await.map_err(store_failed)? {
        return Ok(h);
    }
    let g = new_group(ctx, vpc, vpc_uuid, "default", "default VPC security group", true);
    let id = g.id.clone();
    let name_claim = Change::Claim { claim: format!("sg-name:{vpc}:default"), holder: id.clone() };
    if write(ctx, vec![Change::Insert(g), Change::Claim { claim: claim.clone(), holder: id.clone() }, name_claim])
        .await?
    {
        return Ok(id);
    }
    ctx.ex.objects.holder(&claim).await.map_err(store_failed)?.ok_or_else(Ec2Error::internal)
}

/// CreateSecurityGroup with `VpcId`.
pub async fn create(ctx: &Ctx<'_>, vpc_id: &str, name: &str, desc: &str) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let tags = tag_specs(p, "security-group")?;
    let vpc = objects::cs_vpc(ctx, vpc_id).await?;
    let vpc_uuid = s(&vpc, "id").unwrap_or_default();
    ensure_default(ctx, vpc_id, &vpc_uuid).await?;
    let mut g = new_group(ctx, vpc_id, &vpc_uuid, name, desc, false);
    g.doc["tags"] = Value::Array(tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect());
    let doc = g.doc.clone();
    let id = g.id.clone();
    let claim = Change::Claim { claim: format!("sg-name:{vpc_id}:{name}"), holder: id.clone() };
    if !write(ctx, vec![Change::Insert(g), claim]).await? {
        return Err(Ec2Error::new(
            Code::InvalidGroupDuplicate,
            format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
        ));
    }
    ctx.ex.ids.record(vec![(Kind::SecurityGroup, id, s(&doc, "id").unwrap_or_default())]).await;
    Ok(doc)
}

/// DeleteSecurityGroup of a VPC group.
pub async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<(), Ec2Error> {
    let g = group(ctx, id).await?.ok_or_else(|| not_found(id))?;
    if g.doc["default"] == true {
        return Err(Ec2Error::new(
            Code::CannotDelete,
            format!("the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"),
        ));
    }
    let dependent = || Ec2Error::new(Code::DependencyViolation, format!("resource {id} has a dependent object"));
    // Referenced by another group's rules.
    for other in groups(ctx).await? {
        if other.id == g.id {
            continue;
        }
        let rules = other.doc["rules"]["ingress"]
            .as_array()
            .into_iter()
            .chain(other.doc["rules"]["egress"].as_array())
            .flatten();
        if rules.clone().any(|r| r["group"] == id) {
            return Err(dependent());
        }
    }
    // Used by instances that still exist.
    let users = ctx.ex.objects.list(&owner(ctx), INSTANCE_GROUPS).await.map_err(store_failed)?;
    let users: Vec<Record> =
        users.into_iter().filter(|u| u.doc["groups"].as_array().is_some_and(|l| l.iter().any(|x| x == id))).collect();
    let mut stale = Vec::new();
    if !users.is_empty() {
        let vms = ctx.list("listVirtualMachines", &[("listall".into(), "true".into())], "virtualmachine").await?;
        for u in users {
            let alive = vms.iter().any(|v| {
                s(v, "id").is_some_and(|x| ids::ec2_id(Kind::Instance, &x) == u.id)
                    && !matches!(s(v, "state").as_deref(), Some("Destroyed" | "Expunging"))
            });
            if alive {
                return Err(dependent());
            }
            stale.push(Change::Delete { id: u.id, version: u.version });
        }
    }
    let name = s(&g.doc, "name").unwrap_or_default();
    let vpc = g.vpc.clone().unwrap_or_default();
    let mut changes = vec![
        Change::Delete { id: g.id.clone(), version: g.version },
        Change::Release { claim: format!("sg-name:{vpc}:{name}"), holder: g.id.clone() },
    ];
    changes.extend(stale);
    if !write(ctx, changes).await? {
        return Err(Ec2Error::internal());
    }
    // Nothing live used it and no group names it, so no tier list should change; recomputing
    // keeps them exact should state have moved meanwhile.
    if let Err(e) = super::sg_enforce::sync(ctx, s(&g.doc, "vpcid").as_deref(), None).await {
        tracing::warn!(error = %e.message, "could not recompute the tier lists after a group deletion");
    }
    Ok(())
}

/// The permissions of an Authorize/Revoke request as EC2 atoms (one per CIDR or group).
/// `revoke`: a rule with IPv6 ranges or prefix lists cannot exist here, so revoking one is
/// EC2's "no such rule" (Terraform revokes the default IPv6 egress rule of every new group and
/// expects exactly that when there is none); authorizing one is refused.
fn read_atoms(p: &Params, vpc_groups: &[Record], vpc: &str, revoke: bool) -> Result<Vec<Value>, Ec2Error> {
    let mut raw: Vec<(Params, String)> = p
        .members("IpPermissions")
        .into_iter()
        .enumerate()
        .map(|(i, m)| (m, format!("IpPermissions.{}.", i + 1)))
        .collect();
    if raw.is_empty() {
        if p.get("IpProtocol").is_none() && p.get("CidrIp").is_none() && p.get("SourceSecurityGroupName").is_none() {
            return Err(Ec2Error::missing_parameter("IpPermissions"));
        }
        if p.get("SourceSecurityGroupName").is_some() {
            return Err(Ec2Error::new(
                Code::InvalidParameterCombination,
                "Security groups of a VPC are named by GroupId in IpPermissions.N.Groups.M.GroupId",
            ));
        }
        let mut m = Params::new();
        m.insert("IpProtocol", p.get("IpProtocol").unwrap_or("-1"));
        for (from, to) in [("FromPort", "FromPort"), ("ToPort", "ToPort"), ("CidrIp", "IpRanges.1.CidrIp")] {
            if let Some(v) = p.get(from) {
                m.insert(to, v);
            }
        }
        raw.push((m, String::new()));
    }
    let mut out = Vec::new();
    for (m, pfx) in raw {
        let proto_raw =
            m.require("IpProtocol").map_err(|_| Ec2Error::missing_parameter(&format!("{pfx}IpProtocol")))?;
        let protocol = match proto_raw.to_ascii_lowercase().as_str() {
            "tcp" | "6" => "tcp".to_string(),
            "udp" | "17" => "udp".to_string(),
            "icmp" | "1" => "icmp".to_string(),
            "-1" | "all" => "-1".to_string(),
            n => match n.parse::<u16>() {
                Ok(x) if x <= 255 => x.to_string(),
                _ => return Err(Ec2Error::invalid_value(&format!("{pfx}IpProtocol"), proto_raw, "Unknown protocol.")),
            },
        };
        let int = |k: &str| -> Result<Option<i64>, Ec2Error> {
            m.get(k)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse().map_err(|_| {
                        Ec2Error::new(Code::InvalidParameterValue, format!("Invalid value '{v}' for {pfx}{k}."))
                    })
                })
                .transpose()
        };
        let (from, to) = (int("FromPort")?, int("ToPort")?);
        let ports = match protocol.as_str() {
            "tcp" | "udp" => match (from, to) {
                (Some(f), Some(t)) if (0..=65535).contains(&f) && (0..=65535).contains(&t) && f <= t => Some((f, t)),
                _ => {
                    return Err(Ec2Error::new(
                        Code::InvalidPermissionMalformed,
                        format!(
                            "Invalid {protocol} port range: FromPort and ToPort must be 0..65535, FromPort <= ToPort."
                        ),
                    ));
                }
            },
            "icmp" => {
                let (f, t) = (from.unwrap_or(-1), to.unwrap_or(-1));
                if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                    return Err(Ec2Error::new(
                        Code::InvalidPermissionMalformed,
                        format!("Invalid ICMP type/code: {f}/{t}."),
                    ));
                }
                Some((f, t))
            }
            _ => None,
        };
        let base = |extra: Value| {
            let mut a = json!({"protocol": protocol});
            if let Some((f, t)) = ports {
                a["from"] = json!(f);
                a["to"] = json!(t);
            }
            if let (Some(o), Some(e)) = (a.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            a
        };
        let mut any = false;
        for r in m.members("IpRanges") {
            let c = r.get("CidrIp").unwrap_or("");
            let b = objects::Block::parse(c).or_else(|| {
                // EC2 accepts a CIDR whose address has host bits; it keeps the block.
                let (ip, len) = c.split_once('/')?;
                let ip: std::net::Ipv4Addr = ip.parse().ok()?;
                let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
                objects::Block::parse(&format!("{}/{len}", std::net::Ipv4Addr::from(u32::from(ip) & mask)))
            });
            let Some(b) = b else {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("Value ({c}) for parameter cidrIp is invalid. This is not a valid CIDR block."),
                ));
            };
            out.push(base(json!({"cidr": b.to_string()})));
            any = true;
        }
        if !m.members("Ipv6Ranges").is_empty() || !m.members("PrefixListIds").is_empty() {
            if revoke {
                return Err(Ec2Error::new(
                    Code::InvalidPermissionNotFound,
                    "The specified rule does not exist in this security group.",
                ));
            }
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                "IPv6 ranges and prefix lists are not supported by this cloud.",
            ));
        }
        for g in m.members("Groups") {
            let Some(gid) = g.get("GroupId").filter(|v| !v.is_empty()) else {
                return Err(Ec2Error::missing_parameter(&format!("{pfx}Groups.N.GroupId")));
            };
            let src = vpc_groups.iter().find(|x| x.id == gid).ok_or_else(|| not_found(gid))?;
            if src.vpc.as_deref() != Some(vpc) {
                return Err(Ec2Error::new(
                    Code::InvalidGroupNotFound,
                    "You have specified two resources that belong to different networks.",
                ));
            }
            out.push(base(json!({
                "group": gid, "groupuuid": src.doc["id"], "groupname": src.doc["name"], "userid": src.doc["account"],
            })));
            any = true;
        }
        if !any {
            return Err(Ec2Error::missing_parameter(&format!("{pfx}IpRanges or {pfx}Groups")));
        }
    }
    Ok(out)
}

fn same_atom(a: &Value, b: &Value) -> bool {
    a["protocol"] == b["protocol"]
        && a.get("from") == b.get("from")
        && a.get("to") == b.get("to")
        && a.get("cidr") == b.get("cidr")
        && a.get("group") == b.get("group")
}

fn describe_atom(a: &Value) -> String {
    let peer = s(a, "cidr").or_else(|| s(a, "group")).unwrap_or_default();
    let proto = match s(a, "protocol").as_deref() {
        Some("-1") => "ALL".to_string(),
        Some(p) => p.to_ascii_uppercase(),
        None => String::new(),
    };
    match (a.get("from"), a.get("to")) {
        (Some(f), Some(t)) => format!("peer: {peer}, {proto}, from port: {f}, to port: {t}, ALLOW"),
        _ => format!("peer: {peer}, {proto}, ALLOW"),
    }
}

/// Authorize (`revoke = false`) or revoke rules on a VPC group.
pub async fn change_rules(ctx: &Ctx<'_>, id: &str, ingress: bool, revoke: bool) -> Result<(), Ec2Error> {
    let dir = if ingress { "ingress" } else { "egress" };
    for _ in 0..8 {
        let all = groups(ctx).await?;
        let mut g = all.iter().find(|x| x.id == id).cloned().ok_or_else(|| not_found(id))?;
        let atoms = read_atoms(&ctx.req.params, &all, g.vpc.as_deref().unwrap_or_default(), revoke)?;
        let mut rules = g.doc["rules"][dir].as_array().cloned().unwrap_or_default();
        for a in atoms {
            let pos = rules.iter().position(|r| same_atom(r, &a));
            match (revoke, pos) {
                (false, Some(_)) => {
                    return Err(Ec2Error::new(
                        Code::InvalidPermissionDuplicate,
                        format!("the specified rule \"{}\" already exists", describe_atom(&a)),
                    ));
                }
                (false, None) => rules.push(a),
                (true, Some(i)) => {
                    rules.remove(i);
                }
                (true, None) => {
                    return Err(Ec2Error::new(
                        Code::InvalidPermissionNotFound,
                        "The specified rule does not exist in this security group.",
                    ));
                }
            }
        }
        let before = g.doc["rules"][dir].clone();
        g.doc["rules"][dir] = Value::Array(rules);
        if write(ctx, vec![Change::Update(g.clone())]).await? {
            // The tiers of the VPC follow (docs/vpc.md "VPC security groups: enforcement"); when
            // they cannot, the rule change is taken back and the error answered.
            let vpc_uuid = s(&g.doc, "vpcid").unwrap_or_default();
            if let Err(e) = super::sg_enforce::sync(ctx, Some(&vpc_uuid), None).await {
                undo_rules(ctx, id, dir, &g.doc["rules"][dir], before).await;
                return Err(e);
            }
            return Ok(());
        }
    }
    Err(Ec2Error::internal())
}

/// Put a group's rules of one direction back as they were (unless changed again meanwhile).
async fn undo_rules(ctx: &Ctx<'_>, id: &str, dir: &str, written: &Value, before: Value) {
    for _ in 0..8 {
        let Ok(Some(mut g)) = group(ctx, id).await else { break };
        if g.doc["rules"][dir] != *written {
            break;
        }
        g.doc["rules"][dir] = before.clone();
        match write(ctx, vec![Change::Update(g)]).await {
            Ok(true) => return,
            Ok(false) => continue,
            Err(_) => break,
        }
    }
    tracing::warn!(group = id, "could not take back a rule change whose tiers could not follow");
}

/// EC2 permissions (`_ingress` / `_egress`, as `security_group_permissions` makes them) of one
/// direction's atoms: grouped by (protocol, ports).
fn permissions(atoms: &[Value]) -> Value {
    let mut perms: Vec<Value> = Vec::new();
    for a in atoms {
        let idx = perms.iter().position(|p| {
            p["protocol"] == a["protocol"] && p.get("fromport") == a.get("from") && p.get("toport") == a.get("to")
        });
        let idx = idx.unwrap_or_else(|| {
            let mut o = json!({"protocol": a["protocol"], "groups": [], "ranges": []});
            if let (Some(f), Some(t)) = (a.get("from"), a.get("to")) {
                o["fromport"] = f.clone();
                o["toport"] = t.clone();
            }
            perms.push(o);
            perms.len() - 1
        });
        if let Some(c) = a.get("cidr") {
            if let Some(r) = perms[idx]["ranges"].as_array_mut() {
                r.push(json!({"cidr": c}));
            }
        } else if let Some(r) = perms[idx]["groups"].as_array_mut() {
            r.push(json!({"userid": a["userid"], "groupname": a["groupname"], "groupid": a["groupuuid"]}));
        }
    }
    Value::Array(perms)
}

/// DescribeSecurityGroups (after `security_group_permissions`): the VPC groups join the
/// CloudStack ones (every VPC's default group made where missing), with their permissions.
pub async fn describe(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    // No VPC group kept for this account (no VPC made through the gateway): EC2-Classic
    // costs no extra call. VPCs made elsewhere get their default group when first used.
    let kept = groups(ctx).await?;
    if kept.is_empty() {
        return Ok(items);
    }
    let vpcs = objects::cs_vpcs(ctx).await?;
    let mut kept = kept;
    for (id, v) in &vpcs {
        if !kept.iter().any(|g| g.vpc.as_ref() == Some(id) && g.doc["default"] == true) {
            ensure_default(ctx, id, &s(v, "id").unwrap_or_default()).await?;
            kept = groups(ctx).await?;
        }
    }
    let mut record = Vec::new();
    for g in kept {
        if !vpcs.iter().any(|(id, _)| Some(id) == g.vpc.as_ref()) {
            continue; // its VPC is gone (removed with it on DeleteVpc)
        }
        let mut doc = g.doc.clone();
        let ingress = permissions(doc["rules"]["ingress"].as_array().map(Vec::as_slice).unwrap_or_default());
        let egress = permissions(doc["rules"]["egress"].as_array().map(Vec::as_slice).unwrap_or_default());
        if let Some(o) = doc.as_object_mut() {
            o.insert("_vpcid".into(), o.get("vpcid").cloned().unwrap_or(Value::Null));
            o.insert("_ingress".into(), ingress);
            o.insert("_egress".into(), egress);
        }
        record.push((Kind::SecurityGroup, g.id.clone(), s(&doc, "id").unwrap_or_default()));
        items.push(doc);
    }
    ctx.ex.ids.record(record).await;
    Ok(items)
}

/// The groups of a VPC (for DeleteVpc: only the default one may remain).
pub async fn vpc_has_groups(ctx: &Ctx<'_>, vpc: &str) -> Result<bool, Ec2Error> {
    Ok(groups(ctx).await?.iter().any(|g| g.vpc.as_deref() == Some(vpc) && g.doc["default"] != true))
}

/// Remove a deleted VPC's default group.
pub async fn forget_vpc(ctx: &Ctx<'_>, vpc: &str) -> Result<(), Ec2Error> {
    let changes: Vec<Change> = groups(ctx)
        .await?
        .into_iter()
        .filter(|g| g.vpc.as_deref() == Some(vpc))
        .map(|g| Change::Delete { id: g.id, version: g.version })
        .collect();
    if !changes.is_empty() && !write(ctx, changes).await? {
        return Err(Ec2Error::internal());
    }
    Ok(())
}

/// RunInstances in a VPC: the groups asked for (uuids from the `id:security-group` resolver, or
/// `NetworkInterface.1.SecurityGroupId.N`) must be the VPC's; none -> the VPC's default group.
/// Answers the EC2 ids.
pub async fn launch_groups(
    ctx: &Ctx<'_>,
    uuids: &[String],
    nic_ids: &[String],
    vpc: &str,
    vpc_uuid: &str,
) -> Result<Vec<String>, Ec2Error> {
    let all = groups(ctx).await?;
    let mut out: Vec<String> = Vec::new();
    for u in uuids {
        let g = all.iter().find(|g| s(&g.doc, "id").as_deref() == Some(u.as_str()));
        match g {
            Some(g) if g.vpc.as_deref() == Some(vpc) => out.push(g.id.clone()),
            Some(g) => {
                return Err(Ec2Error::new(
                    Code::InvalidParameter,
                    format!("Security group {} and subnet belong to different networks.", g.id),
                ));
            }
            None => {
                return Err(Ec2Error::new(
                    Code::InvalidParameter,
                    format!(
                        "Security group {} and subnet belong to different networks.",
                        ids::ec2_id(Kind::SecurityGroup, u)
                    ),
                ));
            }
        }
    }
    for id in nic_ids {
        match all.iter().find(|g| g.id == *id) {
            Some(g) if g.vpc.as_deref() == Some(vpc) => out.push(g.id.clone()),
            Some(_) => {
                return Err(Ec2Error::new(
                    Code::InvalidParameter,
                    format!("Security group {id} and subnet belong to different networks."),
                ));
            }
            None => return Err(not_found(id)),
        }
    }
    if out.is_empty() {
        out.push(ensure_default(ctx, vpc, vpc_uuid).await?);
    }
    out.dedup();
    Ok(out)
}

/// Remember the groups of launched instances.
pub async fn record_instances(
    ctx: &Ctx<'_>,
    instance_ids: &[String],
    groups: &[String],
    vpc: &str,
) -> Result<(), Ec2Error> {
    let changes = instance_ids
        .iter()
        .map(|i| {
            Change::Insert(Record {
                id: i.clone(),
                kind: INSTANCE_GROUPS.into(),
                owner: owner(ctx),
                vpc: Some(vpc.to_string()),
                doc: json!({"groups": groups}),
                version: 0,
            })
        })
        .collect();
    if !write(ctx, changes).await? {
        return Err(Ec2Error::internal());
    }
    Ok(())
}

/// Forget the group records of instances (a launch taken back).
pub async fn forget_instances(ctx: &Ctx<'_>, instance_ids: &[String]) -> Result<(), Ec2Error> {
    let mut changes = Vec::new();
    for i in instance_ids {
        if let Some(r) = ctx.ex.objects.get(&owner(ctx), i).await.map_err(store_failed)?
            && r.kind == INSTANCE_GROUPS
        {
            changes.push(Change::Delete { id: r.id, version: r.version });
        }
    }
    if !changes.is_empty() && !write(ctx, changes).await? {
        return Err(Ec2Error::internal());
    }
    Ok(())
}

/// Instance id -> its VPC groups as `{id: uuid, name}` (for groupSet).
pub async fn instance_groups(ctx: &Ctx<'_>) -> Result<HashMap<String, Vec<Value>>, Ec2Error> {
    let all = groups(ctx).await?;
    let users = ctx.ex.objects.list(&owner(ctx), INSTANCE_GROUPS).await.map_err(store_failed)?;
    Ok(users
        .into_iter()
        .map(|u| {
            let gs = u.doc["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|gid| all.iter().find(|g| g.id == *gid))
                .map(|g| json!({"id": g.doc["id"], "name": g.doc["name"]}))
                .collect();
            (u.id, gs)
        })
        .collect())
}
