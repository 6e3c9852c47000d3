//! Tags the gateway keeps for one account (the store's `account_tags`; docs/gateway-state.md
//! "Tags kept by the gateway"): on resources CloudStack will not tag for the caller (an image
//! another account owns: `[kind.X] tags.owner`) and on resources only the store holds (snapshots
//! of never-attached volumes: `[kind.X] store_records`). Such tags are seen by their account only,
//! as EC2 tags on another account's AMI are.
//!
//! CreateTags / DeleteTags reach them through the `tag_resources` resolver (`Account:` values) and
//! `tags_by_kind`; DescribeTags and the kinds' Describe actions merge them in (`account_tags`).

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::vpc_objects::owner;
use crate::base::{Code, Ec2Error};
use crate::ids;
use crate::objects::{AccountTag, TagChange};

/// `_resources` type of a resource whose tags the gateway keeps (`Account:<resource type>/<id>`).
pub const ACCOUNT: &str = "Account";

/// EC2's limit of tags on one resource.
const MAX_TAGS: usize = 50;

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

/// The caller's tags (of one EC2 resource type when given).
pub async fn all(ctx: &Ctx<'_>, resource_type: Option<&str>) -> Result<Vec<AccountTag>, Ec2Error> {
    ctx.ex.objects.account_tags(&owner(ctx), resource_type).await.map_err(store_failed)
}

/// Apply changes to the caller's tags (one transaction).
pub async fn change(ctx: &Ctx<'_>, changes: Vec<TagChange>) -> Result<(), Ec2Error> {
    if changes.is_empty() {
        return Ok(());
    }
    ctx.ex.objects.change_account_tags(&owner(ctx), changes).await.map_err(store_failed)
}

/// The `_resources` value for a resource whose tags the gateway keeps.
pub fn resource(resource_type: &str, ec2_id: &str) -> String {
    format!("{ACCOUNT}:{resource_type}/{ec2_id}")
}

/// CreateTags / DeleteTags on resources whose tags the gateway keeps. `resources`: the part of
/// `_resources` after `Account:` (`<resource type>/<id>`); `tags`: (key, value); on delete a
/// `None` value matches any value and no tags at all removes every tag of the resources.
pub async fn change_tags(
    ctx: &Ctx<'_>,
    resources: &[String],
    create: bool,
    tags: &[(String, Option<String>)],
) -> Result<(), Ec2Error> {
    let mut parsed = Vec::new();
    for r in resources {
        let (rtype, id) = r.split_once('/').ok_or_else(Ec2Error::internal)?;
        parsed.push((rtype, id));
    }
    let mut changes = Vec::new();
    if create {
        // EC2's limit counts the keys a resource will carry afterwards.
        let now = all(ctx, None).await?;
        for (rtype, id) in &parsed {
            let mut keys: HashSet<&str> = now.iter().filter(|t| t.resource_id == *id).map(|t| t.key.as_str()).collect();
            keys.extend(tags.iter().map(|(k, _)| k.as_str()));
            if keys.len() > MAX_TAGS {
                return Err(Ec2Error::new(
                    Code::TagLimitExceeded,
                    format!("The maximum number of tags ({MAX_TAGS}) on resource '{id}' would be exceeded."),
                ));
            }
            for (k, v) in tags {
                changes.push(TagChange::Put(AccountTag {
                    resource_id: id.to_string(),
                    resource_type: rtype.to_string(),
                    key: k.clone(),
                    value: v.clone().unwrap_or_default(),
                }));
            }
        }
    } else {
        for (_, id) in &parsed {
            if tags.is_empty() {
                changes.push(TagChange::Remove { resource_id: id.to_string(), key: None, value: None });
            }
            for (k, v) in tags {
                changes.push(TagChange::Remove { resource_id: id.to_string(), key: Some(k.clone()), value: v.clone() });
            }
        }
    }
    change(ctx, changes).await
}

fn resource_ids(resources: &[String]) -> HashSet<&str> {
    resources.iter().filter_map(|r| r.split_once('/').map(|(_, id)| id)).collect()
}

/// The caller's tags on these resources now (to put them back with `restore`).
pub async fn before(ctx: &Ctx<'_>, resources: &[String]) -> Result<Vec<AccountTag>, Ec2Error> {
    let ids = resource_ids(resources);
    Ok(all(ctx, None).await?.into_iter().filter(|t| ids.contains(t.resource_id.as_str())).collect())
}

/// Put the resources' tags back as `before` read them (one transaction).
pub async fn restore(ctx: &Ctx<'_>, resources: &[String], before: Vec<AccountTag>) -> Result<(), Ec2Error> {
    let mut changes: Vec<TagChange> = resource_ids(resources)
        .into_iter()
        .map(|id| TagChange::Remove { resource_id: id.to_string(), key: None, value: None })
        .collect();
    changes.extend(before.into_iter().map(TagChange::Put));
    change(ctx, changes).await
}

/// Transform `account_tags`: the caller's gateway-kept tags of the action's kind (its `ids`
/// kind, whose `tags.resource_type` they carry) merged into each item's `tags` (a key the caller
/// set replaces the same key from CloudStack), before filters see them. On an object another
/// account owns (`tags.owner`) only the caller's own tags show: CloudStack lists the owner's
/// tags to everyone who sees the object, EC2 shows each account its own.
pub async fn merge(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let ids_spec = ctx.action.ids.as_ref().ok_or_else(Ec2Error::internal)?;
    let spec = ctx.ex.table.kinds.get(&ids_spec.kind).ok_or_else(Ec2Error::internal)?;
    let kt = spec.tags.as_ref().ok_or_else(Ec2Error::internal)?;
    let tags = all(ctx, Some(&kt.resource_type)).await?;
    let mut by_id: HashMap<&str, Vec<&AccountTag>> = HashMap::new();
    for t in &tags {
        by_id.entry(t.resource_id.as_str()).or_default().push(t);
    }
    let me = ctx.who.account.as_deref();
    for it in items.iter_mut() {
        let foreign = match (&kt.owner, me) {
            (Some(path), Some(me)) => path.eval(it).first().map(|v| scalar_text(v)).is_some_and(|o| o != me),
            _ => false,
        };
        if foreign && let Some(o) = it.as_object_mut() {
            o.remove("tags");
        }
        let Some(uuid) = spec.id_path.eval(it).first().map(|v| scalar_text(v)) else { continue };
        let ec2 = ids::ec2_id(spec.kind, &uuid);
        let Some(mine) = by_id.get(ec2.as_str()) else { continue };
        let mut list: Vec<Value> = it.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
        for t in mine {
            list.retain(|x| x.get("key").map(scalar_text).as_deref() != Some(t.key.as_str()));
            list.push(json!({ "key": t.key, "value": t.value }));
        }
        if let Some(o) = it.as_object_mut() {
            o.insert("tags".into(), Value::Array(list));
        }
    }
    Ok(items)
}

/// DescribeTags rows for the caller's gateway-kept tags (the fields `tag_descriptions` gives
/// CloudStack's rows). Tags on another account's object that the caller no longer sees (the
/// image was deleted or unshared) are left out, as EC2 drops the tags of a deregistered image:
/// one listing of the kind, only when the caller keeps such tags.
pub async fn rows(ctx: &Ctx<'_>) -> Result<Vec<Value>, Ec2Error> {
    let mut tags = all(ctx, None).await?;
    for spec in ctx.ex.table.kinds.values() {
        let Some(kt) = spec.tags.as_ref().filter(|t| t.owner.is_some()) else { continue };
        if !tags.iter().any(|t| t.resource_type == kt.resource_type) {
            continue;
        }
        let mut visible = HashSet::new();
        for l in &spec.list {
            for item in ctx.list(&l.command, &l.params, &l.items).await? {
                if let Some(u) = spec.id_path.eval(&item).first().map(|v| scalar_text(v)) {
                    visible.insert(ids::ec2_id(spec.kind, &u));
                }
            }
        }
        tags.retain(|t| t.resource_type != kt.resource_type || visible.contains(&t.resource_id));
    }
    Ok(tags
        .into_iter()
        .map(|t| {
            json!({
                "key": t.key, "value": t.value, "_resourceid": t.resource_id, "_resourcetype": t.resource_type,
                "_tags": [{ "key": t.key, "value": t.value }],
            })
        })
        .collect())
}
