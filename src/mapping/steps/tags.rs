//! Tags: EC2 resource ids of any kind -> CloudStack (resource type, uuid) (the `tag_resources`
//! resolver), Create/DeleteTags as one call per resource type (`tags_by_kind`), and the
//! DescribeTags annotations (`tag_descriptions`).

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::super::backend::join_limited;
use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::account_tags;
use super::check_keys;
use super::common::{Undo, UndoCall, run_job};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};

/// Resolver `tag_resources`: `ResourceId.N` -> `Type:uuid` values. Every id is checked (its
/// Resource type name in `_resources` for the gateway's own VPC objects (docs/vpc.md).
const STORE: &str = "Store";
/// Resource type name in `_resources` for terminated instances CloudStack no longer lists: their
/// tags live in the tombstone (instances::tag_tombstones).
const TOMB: &str = "Tomb";

/// kind's Malformed / NotFound); one listing at most per kind whose ids the cache lacks.
pub async fn r_tag_resources(ctx: &Ctx<'_>, _: Option<String>, _: &str, _: &str) -> Result<Vec<String>, Ec2Error> {
    let p = &ctx.req.params;
    let mut asked: Vec<&str> = p.list("ResourceId");
    let mut seen = HashSet::new();
    asked.retain(|a| seen.insert(*a));
    if asked.is_empty() {
        return Err(Ec2Error::missing_parameter("ResourceId"));
    }
    if asked.len() > 1000 {
        return Err(Ec2Error::new(Code::InvalidParameterValue, "At most 1000 resource ids may be given."));
    }
    // The kind of each id, by its prefix, among the taggable kinds the table declares
    // (`[kind.X] tags = ...`, docs/ids.md).
    let mut groups: BTreeMap<&str, (Kind, Vec<String>)> = BTreeMap::new();
    let mut out = Vec::new();
    for id in &asked {
        // The gateway's own VPC objects (igw-, rtb-, dopt-, VPC security groups) are tagged in
        // the store.
        if id.starts_with("sg-") && super::vpc_sg::group(ctx, id).await?.is_some() {
            out.push(format!("{STORE}:{id}"));
            continue;
        }
        if super::vpc_objects::is_store_id(ctx, id) {
            super::vpc_objects::check_store_id(ctx, id).await?;
            out.push(format!("{STORE}:{id}"));
            continue;
        }
        let taggable = ctx.ex.table.kind_of_id(id).and_then(|k| Some((k.kind, k.tags.as_ref()?)));
        let Some((kind, tags)) = taggable else {
            return Err(Ec2Error::new(Code::InvalidId, format!("The ID '{id}' is not valid")));
        };
        if !ids::is_well_formed(kind, id) {
            return Err(Ec2Error::new(Code::InvalidId, format!("The ID '{id}' is not valid")));
        }
        groups.entry(tags.cloudstack.as_str()).or_insert_with(|| (kind, Vec::new())).1.push(id.to_string());
    }
    for (cs, (kind, mut ids)) in groups {
        if kind == Kind::Instance {
            // Terminated instances EC2 still shows: tagged in their tombstones.
            let tombs = super::instances::load_tombs(ctx).await?;
            ids.retain(|id| {
                let tomb = tombs.contains_key(id);
                if tomb {
                    out.push(format!("{TOMB}:{id}"));
                }
                !tomb
            });
            if ids.is_empty() {
                continue;
            }
        }
        let spec = ctx.ex.table.kinds.get(&kind).ok_or_else(Ec2Error::internal)?;
        let tags = spec.tags.as_ref().ok_or_else(Ec2Error::internal)?;
        if tags.owner.is_none() && spec.store_records.is_none() {
            let uuids = ctx.resolve_visible_ids(kind, &ids).await?;
            out.extend(uuids.into_iter().map(|u| format!("{cs}:{u}")));
            continue;
        }
        // Objects the store holds, and objects another account owns, are tagged by the gateway
        // for the caller (docs/gateway-state.md "Tags kept by the gateway").
        let mut rest = Vec::new();
        for id in ids {
            if ctx.store_record(kind, &id).await?.is_some() {
                out.push(account_tags::resource(&tags.resource_type, &id));
            } else {
                rest.push(id);
            }
        }
        if rest.is_empty() {
            continue;
        }
        let uuids = ctx.resolve_ids(kind, &rest).await?;
        let (Some(owner_path), Some(me)) = (&tags.owner, ctx.who.account.as_deref()) else {
            let uuids = ctx.resolve_visible_ids(kind, &rest).await?;
            out.extend(uuids.into_iter().map(|u| format!("{cs}:{u}")));
            continue;
        };
        // One listing of what the caller sees tells whose each object is.
        let mut owners: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for l in &spec.list {
            for item in ctx.list(&l.command, &l.params, &l.items).await? {
                if let Some(u) = spec.id_path.eval(&item).first().map(|v| scalar_text(v)) {
                    let o = owner_path.eval(&item).first().map(|v| scalar_text(v)).unwrap_or_default();
                    owners.insert(u, o);
                }
            }
        }
        let missing: Vec<&str> =
            rest.iter().zip(&uuids).filter(|(_, u)| !owners.contains_key(*u)).map(|(i, _)| i.as_str()).collect();
        if !missing.is_empty() {
            return Err(super::super::exec::not_found(spec, &missing));
        }
        for (id, u) in rest.iter().zip(uuids) {
            if owners.get(&u).is_some_and(|o| o == me) {
                out.push(format!("{cs}:{u}"));
            } else {
                out.push(account_tags::resource(&tags.resource_type, id));
            }
        }
    }
    Ok(out)
}

pub fn check_args(args: &Value) -> Result<(), String> {
    check_keys(args, &["command"], &["command"])?;
    match args.get("command").and_then(Value::as_str) {
        Some("createTags" | "deleteTags") => Ok(()),
        _ => Err("args.command must be createTags or deleteTags".into()),
    }
}

/// The requested tags: (key, value if given).
fn requested(ctx: &Ctx<'_>, create: bool) -> Result<Vec<(String, Option<String>)>, Ec2Error> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for m in ctx.req.params.members("Tag") {
        let key = m.get("Key").unwrap_or_default().to_string();
        let value = m.get("Value").map(str::to_string);
        if create {
            if key.is_empty() {
                return Err(Ec2Error::new(Code::InvalidParameterValue, "Tag keys must not be empty."));
            }
            if key.len() > 127 || value.as_deref().is_some_and(|v| v.len() > 255) {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("Tag '{key}': keys are at most 127 and values at most 255 characters long."),
                ));
            }
            if key.to_ascii_lowercase().starts_with("aws:") {
                return Err(Ec2Error::new(Code::InvalidParameterValue, "Tag keys starting with 'aws:' are reserved."));
            }
            if value.as_deref().unwrap_or("").is_empty() {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!(
                        "Tag '{key}' has an empty value; the cloud behind this gateway cannot store empty tag values."
                    ),
                ));
            }
        }
        if key.starts_with(super::vpc::MARKER_PREFIX) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("Tag keys starting with '{}' are reserved.", super::vpc::MARKER_PREFIX),
            ));
        }
        // A later Tag.N with the same key wins.
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
    }
    if create && out.is_empty() {
        return Err(Ec2Error::missing_parameter("Tag.1.Key"));
    }
    if out.len() > 50 {
        return Err(Ec2Error::new(Code::TagLimitExceeded, "At most 50 tags may be given."));
    }
    Ok(out)
}

#[derive(Clone)]
struct TagRow {
    uuid: String,
    key: String,
    value: String,
}

fn tag_params(resourcetype: &str, uuids: &[&str], tags: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p =
        vec![("resourcetype".to_string(), resourcetype.to_string()), ("resourceids".to_string(), uuids.join(","))];
    for (i, (k, v)) in tags.iter().enumerate() {
        p.push((format!("tags[{i}].key"), k.to_string()));
        p.push((format!("tags[{i}].value"), v.to_string()));
    }
    p
}

/// Distinct (key, value) pairs of rows, and the resources they are on.
fn pairs_of(rows: &[TagRow]) -> (Vec<(&str, &str)>, Vec<&str>) {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut uuids: Vec<&str> = Vec::new();
    for r in rows {
        if !pairs.contains(&(r.key.as_str(), r.value.as_str())) {
            pairs.push((&r.key, &r.value));
        }
        if !uuids.contains(&r.uuid.as_str()) {
            uuids.push(&r.uuid);
        }
    }
    (pairs, uuids)
}

/// The tags on these resources now (one listTags; resourceid narrows it when there is one).
async fn existing(ctx: &Ctx<'_>, rtype: &str, uuids: &[String]) -> Result<Vec<TagRow>, Ec2Error> {
    let mut p = vec![("listall".to_string(), "true".to_string()), ("resourcetype".to_string(), rtype.to_string())];
    if uuids.len() == 1 {
        p.push(("resourceid".into(), uuids[0].clone()));
    }
    let want: HashSet<&str> = uuids.iter().map(String::as_str).collect();
    Ok(ctx
        .list("listTags", &p, "tag")
        .await?
        .iter()
        .filter_map(|t| {
            let uuid = t.get("resourceid").map(scalar_text)?;
            want.contains(uuid.as_str()).then(|| TagRow {
                uuid,
                key: t.get("key").map(scalar_text).unwrap_or_default(),
                value: t.get("value").map(scalar_text).unwrap_or_default(),
            })
        })
        .collect())
}

async fn one_type(
    ctx: &Ctx<'_>,
    create: bool,
    rtype: &str,
    uuids: &[String],
    tags: &[(String, Option<String>)],
    undo: &tokio::sync::Mutex<Undo<'_>>,
) -> Result<(), Ec2Error> {
    let now = existing(ctx, rtype, uuids).await?;
    let matches = |r: &TagRow| {
        tags.iter().any(|(k, v)| {
            *k == r.key
                && match v {
                    // Create: a key there with another value is replaced; the same value stays.
                    _ if create => v.as_deref() != Some(r.value.as_str()),
                    Some(v) => *v == r.value,
                    None => true,
                }
        })
    };
    // "Every tag" never includes the gateway's own markers (the default VPC's).
    let remove: Vec<TagRow> = if !create && tags.is_empty() {
        now.iter().filter(|r| !r.key.starts_with(super::vpc::MARKER_PREFIX)).cloned().collect()
    } else {
        now.iter().filter(|r| matches(r)).cloned().collect()
    };
    if !remove.is_empty() {
        let (pairs, on) = pairs_of(&remove);
        // Undo, recorded before the change (a gateway may die before it sees the job end): put
        // each resource's removed tags back.
        let mut by_res: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for r in &remove {
            by_res.entry(&r.uuid).or_default().push((&r.key, &r.value));
        }
        {
            let mut undo = undo.lock().await;
            for (u, pairs) in by_res {
                undo.changed(UndoCall::job("createTags", tag_params(rtype, &[u], &pairs))).await;
            }
        }
        run_job(ctx, "deleteTags", &tag_params(rtype, &on, &pairs)).await?;
    }
    if create {
        // Resources that already carry key=value exactly need nothing; CloudStack would refuse
        // to add it twice, so such pairs go in a call of their own only for the others.
        let mut calls: BTreeMap<Vec<&str>, Vec<(&str, &str)>> = BTreeMap::new();
        for (k, v) in tags {
            let v = v.as_deref().unwrap_or_default();
            let on: Vec<&str> = uuids
                .iter()
                .map(String::as_str)
                .filter(|u| !now.iter().any(|r| r.uuid == *u && r.key == *k && r.value == v))
                .collect();
            if !on.is_empty() {
                calls.entry(on).or_default().push((k, v));
            }
        }
        for (on, pairs) in calls {
            // Undo, recorded before the change: delete the created keys on each resource (newest
            // first, so before the removed values are put back).
            {
                let mut undo = undo.lock().await;
                for u in &on {
                    let mut p = vec![
                        ("resourcetype".to_string(), rtype.to_string()),
                        ("resourceids".to_string(), u.to_string()),
                    ];
                    for (i, (k, _)) in pairs.iter().enumerate() {
                        p.push((format!("tags[{i}].key"), k.to_string()));
                    }
                    undo.changed(UndoCall::job("deleteTags", p)).await;
                }
            }
            run_job(ctx, "createTags", &tag_params(rtype, &on, &pairs)).await?;
        }
    }
    Ok(())
}

/// CreateTags / DeleteTags: one part per CloudStack resource type, run together; when one part
/// fails the others are undone and the first error is the answer. The CloudStack parts' undos
/// are journaled (`Undo`, kind `undo`): a gateway that dies mid-way leaves them to the next.
pub async fn by_kind(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let create = ctx.action.args.get("command").and_then(Value::as_str) == Some("createTags");
    let tags = requested(ctx, create)?;
    let resources = prep.params.iter().find(|(k, _)| k == "_resources").map(|(_, v)| v.as_str()).unwrap_or("");
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in resources.split(',').filter(|r| !r.is_empty()) {
        let (t, u) = r.split_once(':').ok_or_else(Ec2Error::internal)?;
        groups.entry(t).or_default().push(u.to_string());
    }
    // The gateway's own objects are changed last, in one store batch, once CloudStack's parts
    // are done (so only those need undoing when it fails).
    let store_ids = groups.remove(STORE).unwrap_or_default();
    let account_ids = groups.remove(account_tags::ACCOUNT).unwrap_or_default();
    let tomb_ids = groups.remove(TOMB).unwrap_or_default();
    let undo = tokio::sync::Mutex::new(Undo::new(ctx));
    let futs = groups.iter().map(|(t, u)| one_type(ctx, create, t, u, &tags, &undo));
    let results = join_limited(futs.collect(), ctx.ex.opts.call_concurrency).await;
    let mut first_err = results.iter().find_map(|r| r.as_ref().err()).cloned();
    let mut account_before = None;
    if first_err.is_none() && !account_ids.is_empty() {
        match account_tags::before(ctx, &account_ids).await {
            Ok(b) => {
                first_err = account_tags::change_tags(ctx, &account_ids, create, &tags).await.err();
                account_before = Some(b);
            }
            Err(e) => first_err = Some(e),
        }
    }
    if first_err.is_none() && !store_ids.is_empty() {
        first_err = super::vpc_objects::change_store_tags(ctx, &store_ids, create, &tags).await.err();
        if first_err.is_some()
            && let Some(b) = account_before.take()
            && account_tags::restore(ctx, &account_ids, b).await.is_err()
        {
            tracing::warn!(action = %ctx.action.name, "could not undo all tag changes");
        }
    }
    if first_err.is_none() && !tomb_ids.is_empty() {
        first_err = super::instances::tag_tombstones(ctx, &tomb_ids, create, &tags).await.err();
        if first_err.is_some() {
            if let Some(b) = account_before.take()
                && account_tags::restore(ctx, &account_ids, b).await.is_err()
            {
                tracing::warn!(action = %ctx.action.name, "could not undo all tag changes");
            }
            if !store_ids.is_empty() {
                tracing::warn!(action = %ctx.action.name, "tags of the gateway's VPC objects were changed although the request failed");
            }
        }
    }
    let undo = undo.into_inner();
    if let Some(e) = first_err {
        return Err(undo.fail(e).await);
    }
    undo.disarm().await;
    Ok(Value::Null)
}

/// DescribeTags: EC2 resource id and type of each tag (tags of resources EC2 has no kind for are
/// left out), `_tags` so that `tag:<key>` filters work on a tag itself; the ids are remembered.
pub async fn descriptions(ctx: &Ctx<'_>, _: &Prepared, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let mut out = Vec::with_capacity(items.len());
    let mut record = Vec::new();
    // Network tags are subnet tags only on VPC tiers (one cached listNetworks tells which).
    let mut tiers: Option<HashSet<String>> = None;
    let mut refreshed = false;
    let mut instances = HashSet::new();
    for mut it in items {
        let cs_type = it.get("resourcetype").map(scalar_text).unwrap_or_default();
        let Some((spec, tags)) = ctx.ex.table.kind_of_cloudstack_type(&cs_type) else { continue };
        let (kind, ec2_type) = (spec.kind, tags.resource_type.as_str());
        if it.get("key").map(scalar_text).is_some_and(|k| k.starts_with(super::vpc::MARKER_PREFIX)) {
            continue;
        }
        if kind == Kind::Subnet {
            let rid = it.get("resourceid").map(scalar_text).unwrap_or_default();
            let vpc_tiers = |nets: &[Value]| -> HashSet<String> {
                nets.iter()
                    .filter(|n| n.get("vpcid").is_some_and(|v| !v.is_null()))
                    .filter_map(|n| n.get("id").map(scalar_text))
                    .collect()
            };
            let params = [("listall".to_string(), "true".to_string())];
            if tiers.is_none() {
                tiers = Some(vpc_tiers(&ctx.list_cached("listNetworks", &params, "network").await?));
            }
            // A network the cached list does not know may be new: fetch the list once more.
            if !tiers.as_ref().is_some_and(|t| t.contains(&rid)) && !refreshed {
                tiers = Some(vpc_tiers(&ctx.list_refresh("listNetworks", &params, "network").await?));
                refreshed = true;
            }
            if !tiers.as_ref().is_some_and(|t| t.contains(&rid)) {
                continue;
            }
        }
        let Some(uuid) = it.get("resourceid").map(scalar_text).filter(|u| !u.is_empty()) else { continue };
        let id = ids::ec2_id(kind, &uuid);
        if kind == Kind::Instance {
            instances.insert(id.clone());
        }
        record.push((kind, id.clone(), uuid));
        let pair = json!([{ "key": it.get("key").cloned().unwrap_or(Value::Null), "value": it.get("value").cloned().unwrap_or(Value::Null) }]);
        if let Some(o) = it.as_object_mut() {
            o.insert("_resourceid".into(), Value::String(id));
            o.insert("_resourcetype".into(), Value::String(ec2_type.into()));
            o.insert("_tags".into(), pair);
        }
        out.push(it);
    }
    ctx.ex.ids.record(record).await;
    out.extend(super::vpc_objects::store_tag_rows(ctx).await?);
    out.extend(account_tags::rows(ctx).await?);
    out.extend(super::instances::tombstone_tag_rows(ctx, &instances).await?);
    Ok(out)
}
