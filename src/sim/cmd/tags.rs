//! Resource tags on every taggable type (resourcetype matched case-insensitively).

use serde_json::Value;

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::render::*;
use super::{CmdSpec, Ctx, Reply, job, read, success};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        job("createTags", "org.apache.cloudstack.api.command.user.tag.CreateTagsCmd", create),
        job("deleteTags", "org.apache.cloudstack.api.command.user.tag.DeleteTagsCmd", delete),
        read("listTags", "org.apache.cloudstack.api.command.user.tag.ListTagsCmd", list_tags),
    ]
}

/// CloudStack's resource object types that may carry tags (ResourceTag.ResourceObjectType).
const TYPES: [&str; 21] = [
    "UserVm",
    "Template",
    "ISO",
    "Volume",
    "Snapshot",
    "Network",
    "Nic",
    "LoadBalancer",
    "PortForwardingRule",
    "FirewallRule",
    "SecurityGroup",
    "SecurityGroupRule",
    "PublicIpAddress",
    "Project",
    "Vpc",
    "NetworkACL",
    "StaticRoute",
    "VMSnapshot",
    "VpnGateway",
    "CustomerGateway",
    "VpnConnection",
];

pub fn canonical_type(t: &str) -> Option<&'static str> {
    TYPES.iter().find(|x| x.eq_ignore_ascii_case(t)).copied()
}

/// Owner and tags of a taggable object, by type and uuid.
fn target<'a>(m: &'a mut Model, rtype: &str, uuid: &str) -> Option<(u64, &'a mut Vec<Tag>)> {
    macro_rules! get {
        ($t:expr) => {{
            let s = $t.seq_of(uuid)?;
            let o = $t.get_mut(s)?;
            Some((o.owner, &mut o.tags))
        }};
    }
    match rtype {
        "UserVm" => get!(m.vms),
        "Volume" => get!(m.volumes),
        "Snapshot" => get!(m.snapshots),
        "Template" | "ISO" => get!(m.templates),
        "SecurityGroup" => get!(m.security_groups),
        "PublicIpAddress" => get!(m.public_ips),
        "Network" => get!(m.networks),
        "Vpc" => get!(m.vpcs),
        "CustomerGateway" => get!(m.customer_gateways),
        "VpnGateway" => get!(m.vpn_gateways),
        "StaticRoute" => get!(m.static_routes),
        _ => None,
    }
}

/// Validate type and ids synchronously; returns the canonical type and the ids.
fn resources(ctx: &Ctx, m: &mut Model) -> SimResult<(&'static str, Vec<String>)> {
    let ids = ctx.p.list("resourceids");
    if ids.is_empty() {
        return Err(SimError::missing(&ctx.p.cmd, "resourceids"));
    }
    let rt = ctx.p.req("resourcetype")?;
    let rtype = canonical_type(rt).ok_or_else(|| SimError::invalid(format!("Invalid resource type {rt}")))?;
    for id in &ids {
        let Some((owner, _)) = target(m, rtype, id) else {
            return Err(
                SimError::invalid(format!("Unable to find resource by id {id} and type {rtype}")).with_uuid(id.clone())
            );
        };
        m.check_access(&ctx.caller, owner, &format!("{rtype} {id}"))?;
    }
    Ok((rtype, ids))
}

fn create(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let tags = ctx.p.tags();
    if tags.is_empty() {
        return Err(SimError::missing(&ctx.p.cmd, "tags"));
    }
    let (rtype, ids) = resources(ctx, m)?;
    let mut pairs = Vec::new();
    for (k, v) in tags {
        let Some(v) = v.filter(|v| !v.is_empty()) else {
            return Err(SimError::invalid(format!("Value for the key {k} is either null or empty")));
        };
        if k.is_empty() {
            return Err(SimError::invalid("Key for the tag is either null or empty"));
        }
        pairs.push((k, v));
    }
    let customer = ctx.p.opt("customer").map(str::to_string);
    let pairs_copy = pairs.clone();
    Ok(tag_job(
        ctx,
        rtype,
        ids,
        // All or nothing: a key already on a resource fails the whole job.
        Box::new(move |id, existing| match pairs.iter().find(|(k, _)| existing.iter().any(|t| &t.key == k)) {
            Some((k, _)) => Err(SimError::internal(format!("tag {k} already on {rtype} with id {id}"))),
            None => Ok(()),
        }),
        Box::new(move |existing| {
            for (k, v) in &pairs_copy {
                existing.push(Tag { key: k.clone(), value: v.clone(), customer: customer.clone() });
            }
        }),
    ))
}

fn delete(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let (rtype, ids) = resources(ctx, m)?;
    let filter = ctx.p.tags();
    Ok(tag_job(
        ctx,
        rtype,
        ids,
        Box::new(|_, _| Ok(())),
        Box::new(move |existing| {
            if filter.is_empty() {
                existing.clear();
            } else {
                existing
                    .retain(|t| !filter.iter().any(|(k, v)| &t.key == k && v.as_ref().is_none_or(|v| &t.value == v)));
            }
        }),
    ))
}

type TagCheck = Box<dyn Fn(&str, &[Tag]) -> SimResult<()> + Send + Sync>;
type TagApply = Box<dyn FnMut(&mut Vec<Tag>) + Send + Sync>;

/// The job of createTags/deleteTags: all or nothing. A resource removed while the job was
/// queued, or a `check` failing on any resource, fails the job (530) before any tag changes;
/// then `apply` runs on every resource's tags.
fn tag_job(ctx: &Ctx, rtype: &'static str, ids: Vec<String>, check: TagCheck, mut apply: TagApply) -> Reply {
    ctx.job(
        "None",
        None,
        None,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            for id in &ids {
                let Some((_, existing)) = target(m, rtype, id) else {
                    return Err(SimError::internal(format!("Unable to find resource by id {id} and type {rtype}")));
                };
                check(id, existing)?;
            }
            for id in &ids {
                if let Some((_, existing)) = target(m, rtype, id) {
                    apply(existing);
                }
            }
            Ok(success())
        }),
    )
}

fn list_tags(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let rtype = match p.opt("resourcetype") {
        Some(t) => Some(canonical_type(t).ok_or_else(|| SimError::invalid(format!("Invalid resource type {t}")))?),
        None => None,
    };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let rid = p.opt("resourceid");
    let key = p.opt("key");
    let value = p.opt("value");
    let customer = p.opt("customer");
    let kw = p.opt("keyword");
    let mut rows = Vec::new();
    for (t, uuid, owner, tags) in m.taggable() {
        if !scope.sees(owner)
            || rid.is_some_and(|r| r != uuid)
            || rtype.is_some_and(|r| r != t && !(r == "ISO" && t == "Template"))
        {
            continue;
        }
        for tag in tags {
            if key.is_some_and(|k| tag.key != k)
                || value.is_some_and(|v| tag.value != v)
                || customer.is_some_and(|c| tag.customer.as_deref() != Some(c))
                || !keyword_match(kw, &[&tag.key, &tag.value])
            {
                continue;
            }
            rows.push((t, uuid, owner, tag));
        }
    }
    Ok(list::respond(paging, "tag", rows, |(t, uuid, owner, tag)| tag_json(m, t, uuid, owner, tag)))
}
