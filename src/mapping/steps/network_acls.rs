//! EC2 network ACLs over CloudStack network ACL lists (docs/network-acls.md).
//!
//! An EC2 network ACL (`acl-`, id derived from the list's uuid) is a CloudStack ACL list of a VPC;
//! its entries are the list's items. EC2 rule number N is CloudStack number 2N for ingress and
//! 2N+1 for egress (CloudStack numbers are unique per list across both directions). Every list the
//! gateway makes also holds an egress "deny all" item at CloudStack number 65535: the VPC router
//! lets all egress through a list without egress items, where EC2 denies it; with that item the
//! router denies what no other egress item allows, as EC2's `*` rule does. The `*` rules (32767)
//! are shown for both directions and are not EC2 entries.
//!
//! Each VPC's default ACL is a list named `ec2bridge-default`, made when the gateway first needs
//! it (DescribeNetworkAcls, CreateNetworkAcl, CreateSubnet, ReplaceNetworkAclAssociation) with
//! EC2's default entries (rule 100 allow all, both directions); tiers of the VPC still on
//! CloudStack's `default_allow` are moved onto it then (same traffic allowed). Association ids
//! (`aclassoc-`) are derived from the tier and list uuids, so a replaced association gets a new
//! id, as in EC2. CloudStack cannot tag ACL lists: tags live in a store record per ACL.

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::{idempotent, run_job, tag_specifications as tag_specs};
use super::sg_enforce;
use super::vpc_objects::{Block, cs_vpc, cs_vpcs, dependency, owner};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};
use crate::objects::{Change, Record, WriteError};

/// The store kind of the records holding an ACL's tags (id = the `acl-` id).
pub const KIND: &str = "network-acl";
/// The name of each VPC's EC2 default ACL list.
pub const DEFAULT_NAME: &str = "ec2bridge-default";
/// The name of the lists CreateNetworkAcl makes.
const ACL_NAME: &str = "ec2bridge-acl";
/// CloudStack's global list new tiers used to get (allows everything, as EC2's default ACL).
const GLOBAL_ALLOW: &str = "default_allow";
/// EC2's `*` rule number.
const STAR: i64 = 32767;
/// The CloudStack number of the stored egress deny-all item.
const EGRESS_DENY_ALL: i64 = 65535;
const RETRIES: usize = 8;

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text).filter(|x| !x.is_empty())
}

fn p(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

fn kind() -> Result<Kind, Ec2Error> {
    Kind::from_name("network-acl").ok_or_else(|| {
        tracing::error!("no [kind.network-acl] in the mapping table");
        Ec2Error::internal()
    })
}

fn acl_id(uuid: &str) -> Result<String, Ec2Error> {
    Ok(ids::ec2_id(kind()?, uuid))
}

/// The association of a tier with a list: derived from both uuids.
fn assoc_id(tier: &str, list: &str) -> String {
    format!("aclassoc-{}", &ids::ec2_id(Kind::Subnet, &format!("acl-association:{tier}:{list}"))[7..])
}

fn malformed(id: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidNetworkAclIdMalformed, format!("Invalid id: \"{id}\" (expecting \"acl-...\")"))
}

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidNetworkAclIdNotFound, format!("The networkAcl ID '{id}' does not exist"))
}

fn check_shape(id: &str) -> Result<(), Ec2Error> {
    if ids::is_well_formed(kind()?, id) { Ok(()) } else { Err(malformed(id)) }
}

// ---- what CloudStack has ---------------------------------------------------------------------

/// The caller's VPCs, their ACL lists (and the global ones), and their tiers.
struct World {
    /// (EC2 id, CloudStack VPC)
    vpcs: Vec<(String, Value)>,
    lists: Vec<Value>,
    tiers: Vec<Value>,
}

impl World {
    fn vpc(&self, uuid: &str) -> Option<&(String, Value)> {
        self.vpcs.iter().find(|(_, v)| s(v, "id").as_deref() == Some(uuid))
    }

    /// The lists EC2 shows: those of the caller's VPCs, less the tier lists that enforce
    /// security groups (sg_enforce).
    fn acls(&self) -> impl Iterator<Item = &Value> {
        self.lists
            .iter()
            .filter(|l| s(l, "vpcid").is_some_and(|v| self.vpc(&v).is_some()) && !sg_enforce::is_enforcement(l))
    }

    fn global_allow(&self) -> Option<String> {
        self.lists
            .iter()
            .find(|l| s(l, "vpcid").is_none() && s(l, "name").as_deref() == Some(GLOBAL_ALLOW))
            .and_then(|l| s(l, "id"))
    }

    fn default_of(&self, vpc: &str) -> Option<String> {
        self.lists
            .iter()
            .filter(|l| s(l, "vpcid").as_deref() == Some(vpc) && s(l, "name").as_deref() == Some(DEFAULT_NAME))
            .filter_map(|l| s(l, "id"))
            .min()
    }

    /// The list behind an EC2 ACL id (shape checked; another tenant's or a global list is
    /// NotFound).
    fn find(&self, id: &str) -> Result<Value, Ec2Error> {
        check_shape(id)?;
        let k = kind()?;
        self.acls().find(|l| s(l, "id").is_some_and(|u| ids::ec2_id(k, &u) == id)).cloned().ok_or_else(|| not_found(id))
    }
}

async fn load(ctx: &Ctx<'_>, with_tiers: bool) -> Result<World, Ec2Error> {
    let vpcs = cs_vpcs(ctx).await?;
    let lists = ctx.list("listNetworkACLLists", &[p("listall", "true")], "networkacllist").await?;
    let tiers = if with_tiers {
        ctx.list("listNetworks", &[p("listall", "true")], "network")
            .await?
            .into_iter()
            .filter(|n| s(n, "vpcid").is_some())
            .collect()
    } else {
        Vec::new()
    };
    // A tier on a list enforcing security groups is associated, for EC2, with the network ACL
    // that list stands for (`_csaclid` keeps the list CloudStack has on the tier).
    let mut tiers = tiers;
    for t in tiers.iter_mut() {
        let Some(cur) = s(t, "aclid") else { continue };
        let nacl = lists
            .iter()
            .find(|l| s(l, "id").as_deref() == Some(cur.as_str()) && sg_enforce::is_enforcement(l))
            .and_then(sg_enforce::nacl_of);
        if let (Some(o), Some(n)) = (t.as_object_mut(), nacl) {
            o.insert("_csaclid".into(), Value::String(cur));
            o.insert("aclid".into(), Value::String(n));
        }
    }
    let k = kind()?;
    let mut record = Vec::new();
    for l in &lists {
        if let Some(u) = s(l, "id") {
            record.push((k, ids::ec2_id(k, &u), u));
        }
    }
    ctx.ex.ids.record(record).await;
    Ok(World { vpcs, lists, tiers })
}

/// One CloudStack ACL item to create (`cidr`: one CIDR or several, comma-separated).
pub(super) struct Item {
    pub number: i64,
    pub egress: bool,
    pub protocol: String,
    pub allow: bool,
    pub cidr: String,
    pub ports: Option<(i64, i64)>,
    pub icmp: Option<(i64, i64)>,
}

impl Item {
    pub(super) fn params(&self) -> Vec<(String, String)> {
        let mut out = vec![
            p("number", self.number.to_string()),
            p("protocol", self.protocol.clone()),
            p("action", if self.allow { "Allow" } else { "Deny" }),
            p("traffictype", if self.egress { "Egress" } else { "Ingress" }),
            p("cidrlist", self.cidr.clone()),
        ];
        if let Some((a, b)) = self.ports {
            out.push(p("startport", a.to_string()));
            out.push(p("endport", b.to_string()));
        }
        if let Some((t, c)) = self.icmp {
            out.push(p("icmptype", t.to_string()));
            out.push(p("icmpcode", c.to_string()));
        }
        out
    }

    fn all(number: i64, egress: bool, allow: bool) -> Item {
        Item { number, egress, protocol: "all".into(), allow, cidr: "0.0.0.0/0".into(), ports: None, icmp: None }
    }
}

pub(super) async fn delete_list(ctx: &Ctx<'_>, uuid: &str) {
    if run_job(ctx, "deleteNetworkACLList", &[p("id", uuid)]).await.is_err() {
        tracing::warn!(list = uuid, "could not remove an ACL list made by this request");
    }
}

/// Make a list in `vpc` with `items`; removed again when an item cannot be made.
pub(super) async fn make_list(
    ctx: &Ctx<'_>,
    vpc: &str,
    name: &str,
    description: &str,
    items: &[Item],
) -> Result<Value, Ec2Error> {
    let j = ctx
        .start_job("createNetworkACLList", &[p("name", name), p("description", description), p("vpcid", vpc)])
        .await?;
    let done = ctx.wait_job("createNetworkACLList", &j.jobid).await?;
    let list = done.get("networkacllist").cloned().unwrap_or(done);
    let uuid = s(&list, "id").or(j.id).ok_or_else(Ec2Error::internal)?;
    // Items carry their own numbers, so they are made side by side (the list is not on a tier
    // yet: nothing applies a half-filled list).
    let futs: Vec<_> = items
        .iter()
        .map(|it| {
            let mut params = it.params();
            params.push(p("aclid", uuid.clone()));
            async move { run_job(ctx, "createNetworkACL", &params).await }
        })
        .collect();
    let made = super::super::backend::join_limited(futs, ctx.ex.opts.call_concurrency).await;
    if let Some(e) = made.into_iter().find_map(Result::err) {
        delete_list(ctx, &uuid).await;
        return Err(e);
    }
    let mut list = list;
    if let Some(o) = list.as_object_mut() {
        o.insert("id".into(), Value::String(uuid.clone()));
        o.insert("vpcid".into(), Value::String(vpc.to_string()));
        o.insert("name".into(), Value::String(name.to_string()));
    }
    let k = kind()?;
    ctx.ex.ids.record(vec![(k, ids::ec2_id(k, &uuid), uuid)]).await;
    Ok(list)
}

/// The VPC's default ACL list, made when missing; tiers of the VPC on CloudStack's
/// `default_allow` are moved onto it. `world` is kept up to date.
async fn ensure_default(ctx: &Ctx<'_>, world: &mut World, vpc: &str) -> Result<String, Ec2Error> {
    let uuid = match world.default_of(vpc) {
        Some(u) => u,
        None => {
            let items =
                [Item::all(200, false, true), Item::all(201, true, true), Item::all(EGRESS_DENY_ALL, true, false)];
            let made = make_list(ctx, vpc, DEFAULT_NAME, "EC2 default network ACL", &items).await?;
            let mine = s(&made, "id").ok_or_else(Ec2Error::internal)?;
            // Two requests may have made one at the same moment: the smallest uuid wins and
            // the other is removed.
            let now = ctx
                .list(
                    "listNetworkACLLists",
                    &[p("vpcid", vpc), p("name", DEFAULT_NAME), p("listall", "true")],
                    "networkacllist",
                )
                .await?;
            let winner = now
                .iter()
                .filter(|l| s(l, "vpcid").as_deref() == Some(vpc) && s(l, "name").as_deref() == Some(DEFAULT_NAME))
                .filter_map(|l| s(l, "id"))
                .min()
                .unwrap_or_else(|| mine.clone());
            if winner != mine {
                delete_list(ctx, &mine).await;
            } else {
                world.lists.push(made);
            }
            winner
        }
    };
    if let Some(allow) = world.global_allow() {
        for t in world.tiers.iter_mut() {
            if s(t, "vpcid").as_deref() == Some(vpc) && s(t, "aclid").as_deref() == Some(allow.as_str()) {
                let tier = s(t, "id").unwrap_or_default();
                if t.get("_csaclid").is_some() {
                    // Guarded by its groups: the tier's list is recomputed over the default.
                    sg_enforce::sync(ctx, Some(vpc), Some((&tier, &uuid))).await?;
                } else {
                    run_job(ctx, "replaceNetworkACLList", &[p("aclid", uuid.clone()), p("networkid", tier)]).await?;
                }
                if let Some(o) = t.as_object_mut() {
                    o.insert("aclid".into(), Value::String(uuid.clone()));
                }
            }
        }
    }
    Ok(uuid)
}

/// The default ACL list of one VPC (made when missing), for CreateSubnet.
pub async fn default_list(ctx: &Ctx<'_>, vpc: &str) -> Result<String, Ec2Error> {
    let lists = ctx
        .list("listNetworkACLLists", &[p("vpcid", vpc), p("listall", "true")], "networkacllist")
        .await?
        .into_iter()
        .filter(|l| s(l, "vpcid").as_deref() == Some(vpc))
        .collect();
    let mut world = World { vpcs: Vec::new(), lists, tiers: Vec::new() };
    ensure_default(ctx, &mut world, vpc).await
}

/// Does the VPC have ACLs other than its default (DeleteVpc's DependencyViolation, as in EC2)?
pub async fn vpc_has_acls(ctx: &Ctx<'_>, vpc: &str) -> Result<bool, Ec2Error> {
    let lists = ctx.list("listNetworkACLLists", &[p("vpcid", vpc), p("listall", "true")], "networkacllist").await?;
    Ok(lists.iter().any(|l| {
        s(l, "vpcid").as_deref() == Some(vpc)
            && s(l, "name").as_deref() != Some(DEFAULT_NAME)
            && !sg_enforce::is_enforcement(l)
    }))
}

// ---- EC2 documents -----------------------------------------------------------------------------

fn ec2_protocol(cs: &str) -> String {
    match cs.to_ascii_lowercase().as_str() {
        "all" => "-1".into(),
        "tcp" => "6".into(),
        "udp" => "17".into(),
        "icmp" => "1".into(),
        other => other.to_string(),
    }
}

fn star(egress: bool) -> Value {
    json!({"rulenumber": STAR, "protocol": "-1", "ruleaction": "deny", "egress": egress, "cidrblock": "0.0.0.0/0"})
}

/// Is this item the stored egress deny-all (shown as the `*` rule)?
fn is_catch_all(it: &Value) -> bool {
    let n: i64 = s(it, "number").and_then(|n| n.parse().ok()).unwrap_or(0);
    n >= 2 * STAR && s(it, "action").is_some_and(|a| a.eq_ignore_ascii_case("deny"))
}

fn entry(it: &Value) -> Value {
    let n: i64 = s(it, "number").and_then(|n| n.parse().ok()).unwrap_or(0);
    let egress = s(it, "traffictype").is_some_and(|t| t.eq_ignore_ascii_case("egress"));
    let proto = ec2_protocol(&s(it, "protocol").unwrap_or_default());
    let cidr = s(it, "cidrlist").map(|c| c.split(',').next().unwrap_or_default().trim().to_string());
    let mut e = json!({
        "rulenumber": n / 2,
        "protocol": proto,
        "ruleaction": s(it, "action").unwrap_or_default().to_ascii_lowercase(),
        "egress": egress,
        "cidrblock": cidr.unwrap_or_else(|| "0.0.0.0/0".into()),
    });
    if proto == "6" || proto == "17" {
        // No ports in CloudStack is every port.
        let from = s(it, "startport").unwrap_or_else(|| "0".into());
        let to = s(it, "endport").unwrap_or_else(|| "65535".into());
        e["portrange"] = json!({"from": from, "to": to});
    }
    if proto == "1" {
        let t = s(it, "icmptype").unwrap_or_else(|| "-1".into());
        let c = s(it, "icmpcode").unwrap_or_else(|| "-1".into());
        e["icmptypecode"] = json!({"type": t, "code": c});
    }
    e
}

fn entries(items: &[&Value]) -> Vec<Value> {
    let mut shown: Vec<Value> = items.iter().filter(|i| !is_catch_all(i)).map(|i| entry(i)).collect();
    // EC2's order: egress entries, then ingress entries, each by rule number, `*` last.
    shown.push(star(true));
    shown.push(star(false));
    shown.sort_by_key(|e| (!e["egress"].as_bool().unwrap_or(false), e["rulenumber"].as_i64().unwrap_or(0)));
    shown
}

fn document(world: &World, list: &Value, items: &[Value], tags: Value) -> Result<Value, Ec2Error> {
    let uuid = s(list, "id").unwrap_or_default();
    let vpc_uuid = s(list, "vpcid").unwrap_or_default();
    let (vpc_id, vpc) = world.vpc(&vpc_uuid).cloned().ok_or_else(Ec2Error::internal)?;
    let id = acl_id(&uuid)?;
    let mine: Vec<&Value> = items.iter().filter(|i| s(i, "aclid").as_deref() == Some(uuid.as_str())).collect();
    let associations: Vec<Value> = world
        .tiers
        .iter()
        .filter(|t| s(t, "aclid").as_deref() == Some(uuid.as_str()))
        .filter_map(|t| s(t, "id"))
        .map(|t| json!({"id": assoc_id(&t, &uuid), "networkaclid": id, "subnetid": ids::ec2_id(Kind::Subnet, &t)}))
        .collect();
    let owner_id = s(&vpc, "account").unwrap_or_default();
    Ok(json!({
        "id": id,
        "vpcid": vpc_id,
        "isdefault": s(list, "name").as_deref() == Some(DEFAULT_NAME) && world.default_of(&vpc_uuid).as_deref() == Some(uuid.as_str()),
        "entries": entries(&mine),
        "associations": associations,
        "tags": tags,
        "ownerid": owner_id,
    }))
}

// ---- tags (store) ------------------------------------------------------------------------------

async fn tag_records(ctx: &Ctx<'_>) -> Result<Vec<Record>, Ec2Error> {
    ctx.ex.objects.list(&owner(ctx), KIND).await.map_err(store_failed)
}

async fn write(ctx: &Ctx<'_>, changes: Vec<Change>) -> Result<Result<(), WriteError>, Ec2Error> {
    match ctx.ex.objects.write(changes).await {
        Ok(()) => Ok(Ok(())),
        Err(WriteError::Failed(e)) => Err(store_failed(e)),
        Err(c) => Ok(Err(c)),
    }
}

fn tag_record(ctx: &Ctx<'_>, id: &str, vpc: &str, tags: &[(String, String)]) -> Record {
    let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    Record {
        id: id.to_string(),
        kind: KIND.into(),
        owner: owner(ctx),
        vpc: Some(vpc.to_string()),
        doc: json!({"id": id, "tags": tags}),
        version: 0,
    }
}

/// CreateTags/DeleteTags on an `acl-` id: the ACL must be the caller's; its tag record is made
/// when it has none yet.
pub async fn check_for_tags(ctx: &Ctx<'_>, id: &str) -> Result<(), Ec2Error> {
    let world = load(ctx, false).await?;
    let list = world.find(id)?;
    let vpc = world.vpc(&s(&list, "vpcid").unwrap_or_default()).map(|(e, _)| e.clone()).unwrap_or_default();
    for _ in 0..RETRIES {
        match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
            Some(r) if r.kind == KIND => return Ok(()),
            Some(_) => return Err(Ec2Error::internal()),
            None => {
                if write(ctx, vec![Change::Insert(tag_record(ctx, id, &vpc, &[]))]).await?.is_ok() {
                    return Ok(());
                }
            }
        }
    }
    Err(Ec2Error::internal())
}

/// Drop the tag records of ACLs that no longer exist in CloudStack (after their VPC went).
pub async fn forget_vpc(ctx: &Ctx<'_>, vpc_id: &str) -> Result<(), Ec2Error> {
    let gone: Vec<Change> = tag_records(ctx)
        .await?
        .into_iter()
        .filter(|r| r.vpc.as_deref() == Some(vpc_id))
        .map(|r| Change::Delete { id: r.id, version: r.version })
        .collect();
    if !gone.is_empty() {
        let _ = write(ctx, gone).await?;
    }
    Ok(())
}

// ---- actions -----------------------------------------------------------------------------------

/// DescribeNetworkAcls: every ACL list of the caller's VPCs (each VPC's default made where
/// missing), with entries, associations and tags; NetworkAclId.N.
pub async fn describe(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let asked: Vec<String> = ctx.req.params.list("NetworkAclId").into_iter().map(str::to_string).collect();
    for a in &asked {
        check_shape(a)?;
    }
    let mut world = load(ctx, true).await?;
    let vpcs: Vec<String> = world.vpcs.iter().filter_map(|(_, v)| s(v, "id")).collect();
    for v in &vpcs {
        ensure_default(ctx, &mut world, v).await?;
    }
    let items = ctx.list("listNetworkACLs", &[p("listall", "true")], "networkacl").await?;
    let tags = tag_records(ctx).await?;
    // Tag records of ACLs whose VPC is gone (deleted outside the gateway) go now; a record of a
    // live VPC stays (its list may be newer than this listing).
    let gone: Vec<Change> = tags
        .iter()
        .filter(|r| r.vpc.as_deref().is_some_and(|v| !world.vpcs.iter().any(|(e, _)| e == v)))
        .map(|r| Change::Delete { id: r.id.clone(), version: r.version })
        .collect();
    if !gone.is_empty() {
        let _ = write(ctx, gone).await?;
    }
    let mut docs = Vec::new();
    for l in world.acls() {
        let id = acl_id(&s(l, "id").unwrap_or_default())?;
        let t = tags.iter().find(|r| r.id == id).map(|r| r.doc["tags"].clone()).unwrap_or_else(|| json!([]));
        docs.push(document(&world, l, &items, t)?);
    }
    if !asked.is_empty() {
        let missing: Vec<&str> = asked
            .iter()
            .filter(|a| !docs.iter().any(|d| d["id"].as_str() == Some(a.as_str())))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Ec2Error::new(
                Code::InvalidNetworkAclIdNotFound,
                if missing.len() == 1 {
                    format!("The networkAcl ID '{}' does not exist", missing[0])
                } else {
                    format!("The networkAcl IDs '{}' do not exist", missing.join(", "))
                },
            ));
        }
        docs.retain(|d| d["id"].as_str().is_some_and(|i| asked.iter().any(|a| a == i)));
    }
    Ok(Value::Array(docs))
}

/// CreateNetworkAcl: a list in the VPC with the egress deny-all item; TagSpecification;
/// ClientToken.
pub async fn create(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    idempotent(ctx, make_acl(ctx)).await
}

async fn make_acl(ctx: &Ctx<'_>) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let vpc_id = params.require("VpcId")?;
    let tags = tag_specs(params, "network-acl")?;
    let vpc = cs_vpc(ctx, vpc_id).await?;
    let vpc_uuid = s(&vpc, "id").ok_or_else(Ec2Error::internal)?;
    let mut world = load(ctx, true).await?;
    // EC2 has made the VPC's default ACL long before; so does the gateway now.
    ensure_default(ctx, &mut world, &vpc_uuid).await?;
    let list =
        make_list(ctx, &vpc_uuid, ACL_NAME, "EC2 network ACL", &[Item::all(EGRESS_DENY_ALL, true, false)]).await?;
    let uuid = s(&list, "id").ok_or_else(Ec2Error::internal)?;
    let id = acl_id(&uuid)?;
    if !tags.is_empty() && write(ctx, vec![Change::Insert(tag_record(ctx, &id, vpc_id, &tags))]).await?.is_err() {
        delete_list(ctx, &uuid).await;
        return Err(Ec2Error::internal());
    }
    world.lists.push(list.clone());
    let items = ctx.list("listNetworkACLs", &[p("aclid", uuid.clone()), p("listall", "true")], "networkacl").await?;
    let t: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    let mut doc = document(&world, &list, &items, Value::Array(t))?;
    doc["clienttoken"] = params.get("ClientToken").map(Value::from).unwrap_or(Value::Null);
    Ok(doc)
}

/// DeleteNetworkAcl: not the default (InvalidParameterValue), not on a tier (DependencyViolation).
pub async fn delete(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("NetworkAclId")?;
    check_shape(id)?;
    let world = load(ctx, true).await?;
    let list = world.find(id)?;
    let uuid = s(&list, "id").unwrap_or_default();
    let vpc = s(&list, "vpcid").unwrap_or_default();
    if world.default_of(&vpc).as_deref() == Some(uuid.as_str()) {
        return Err(Ec2Error::new(Code::InvalidParameterValue, format!("cannot delete default network ACL {id}")));
    }
    if world.tiers.iter().any(|t| s(t, "aclid").as_deref() == Some(uuid.as_str())) {
        return Err(dependency("networkAcl", id));
    }
    run_job(ctx, "deleteNetworkACLList", &[p("id", uuid)]).await?;
    for _ in 0..RETRIES {
        match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
            Some(r) if r.kind == KIND => {
                if write(ctx, vec![Change::Delete { id: r.id, version: r.version }]).await?.is_ok() {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(Value::Null)
}

/// The entry a Create/Replace/DeleteNetworkAclEntry names, checked as EC2 checks it.
struct EntryArgs {
    rule: i64,
    egress: bool,
}

fn int_param(ctx: &Ctx<'_>, name: &str, wire: &str) -> Result<Option<i64>, Ec2Error> {
    match ctx.req.params.get(name) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse::<i64>().map(Some).map_err(|_| Ec2Error::invalid_value(wire, v, "It must be an integer."))
        }
    }
}

fn entry_args(ctx: &Ctx<'_>) -> Result<EntryArgs, Ec2Error> {
    let params = &ctx.req.params;
    let raw = params.require("RuleNumber")?;
    let rule = int_param(ctx, "RuleNumber", "ruleNumber")?.unwrap_or(0);
    if !(1..=32766).contains(&rule) {
        return Err(Ec2Error::invalid_value("ruleNumber", raw, "It must be between 1 and 32766."));
    }
    let egress = match params.require("Egress")?.to_ascii_lowercase().as_str() {
        "true" => true,
        "false" => false,
        other => return Err(Ec2Error::invalid_value("egress", other, "It must be true or false.")),
    };
    Ok(EntryArgs { rule, egress })
}

/// The item an entry asks for (protocol, action, CIDR, ports, ICMP), as CloudStack takes it.
fn item_args(ctx: &Ctx<'_>, a: &EntryArgs) -> Result<Item, Ec2Error> {
    let params = &ctx.req.params;
    if params.get("Ipv6CidrBlock").is_some() {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "IPv6 network ACL entries are not supported: the VPCs of this cloud have no IPv6.",
        ));
    }
    let proto_raw = params.require("Protocol")?;
    let protocol = match proto_raw.to_ascii_lowercase().as_str() {
        "-1" | "all" => "all".to_string(),
        "6" | "tcp" => "tcp".to_string(),
        "17" | "udp" => "udp".to_string(),
        "1" | "icmp" => "icmp".to_string(),
        n => match n.parse::<i64>() {
            Ok(x) if (0..=255).contains(&x) => x.to_string(),
            _ => {
                return Err(Ec2Error::invalid_value(
                    "protocol",
                    proto_raw,
                    "It must be -1 (all), a protocol number 0..255, or tcp, udp, icmp.",
                ));
            }
        },
    };
    let action = params.require("RuleAction")?;
    let allow = match action.to_ascii_lowercase().as_str() {
        "allow" => true,
        "deny" => false,
        _ => return Err(Ec2Error::invalid_value("ruleAction", action, "It must be allow or deny.")),
    };
    let cidr_raw = params.require("CidrBlock")?;
    let cidr = Block::parse(cidr_raw)
        .ok_or_else(|| Ec2Error::invalid_value("cidrBlock", cidr_raw, "This is not a valid CIDR block."))?
        .to_string();
    let mut ports = None;
    let mut icmp = None;
    match protocol.as_str() {
        "tcp" | "udp" => {
            let from = int_param(ctx, "PortRange.From", "portRange.from")?;
            let to = int_param(ctx, "PortRange.To", "portRange.to")?;
            let (Some(from), Some(to)) = (from, to) else {
                return Err(Ec2Error::missing_parameter("portRange"));
            };
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                return Err(Ec2Error::invalid_value(
                    "portRange",
                    &format!("{from}-{to}"),
                    "Ports are 0..65535 and from must not exceed to.",
                ));
            }
            // 0..65535 is every port: CloudStack says that with no ports; port 0 carries nothing.
            if !(from == 0 && to == 65535) {
                ports = Some((from.max(1), to.max(1)));
            }
        }
        "icmp" => {
            // On the wire the structure is `Icmp` (`Icmp.Type`, `Icmp.Code`); SOAP flattens
            // `icmpTypeCode`.
            let t = int_param(ctx, "Icmp.Type", "icmpTypeCode.type")?.map(Some).unwrap_or(int_param(
                ctx,
                "IcmpTypeCode.Type",
                "icmpTypeCode.type",
            )?);
            let c = int_param(ctx, "Icmp.Code", "icmpTypeCode.code")?.map(Some).unwrap_or(int_param(
                ctx,
                "IcmpTypeCode.Code",
                "icmpTypeCode.code",
            )?);
            let Some(t) = t else { return Err(Ec2Error::missing_parameter("icmpTypeCode")) };
            let c = c.unwrap_or(-1);
            if !(-1..=255).contains(&t) {
                return Err(Ec2Error::invalid_value("icmpTypeCode.type", &t.to_string(), "It must be -1..255."));
            }
            // CloudStack takes ICMP codes -1 and 0..16 only.
            if !(-1..=16).contains(&c) {
                return Err(Ec2Error::invalid_value(
                    "icmpTypeCode.code",
                    &c.to_string(),
                    "This cloud takes ICMP codes -1 (all) and 0..16.",
                ));
            }
            icmp = Some((t, c));
        }
        _ => {}
    }
    Ok(Item { number: 2 * a.rule + i64::from(a.egress), egress: a.egress, protocol, allow, cidr, ports, icmp })
}

/// The ACL list a request names, its VPC, and its items.
async fn list_and_items(ctx: &Ctx<'_>) -> Result<(String, String, Vec<Value>), Ec2Error> {
    let id = ctx.req.params.require("NetworkAclId")?;
    check_shape(id)?;
    let world = load(ctx, false).await?;
    let list = world.find(id)?;
    let uuid = s(&list, "id").unwrap_or_default();
    let vpc = s(&list, "vpcid").unwrap_or_default();
    let items = ctx.list("listNetworkACLs", &[p("aclid", uuid.clone()), p("listall", "true")], "networkacl").await?;
    let items = items.into_iter().filter(|i| s(i, "aclid").is_none_or(|a| a == uuid)).collect();
    Ok((uuid, vpc, items))
}

/// A CloudStack item's fields as createNetworkACL / updateNetworkACLItem take them (to put an
/// item back as it was).
fn item_fields(it: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for k in ["protocol", "action", "traffictype", "cidrlist", "startport", "endport", "icmptype", "icmpcode"] {
        if let Some(v) = s(it, k) {
            out.push(p(k, v));
        }
    }
    out
}

/// After an entry changed: recompute the lists of the tiers that enforce security groups over
/// this ACL (sg_enforce); when that fails, `undo` puts the entry back and the error is answered.
async fn resync(ctx: &Ctx<'_>, vpc: &str, undo: (&str, Vec<(String, String)>)) -> Result<(), Ec2Error> {
    if let Err(e) = sg_enforce::sync(ctx, Some(vpc), None).await {
        if run_job(ctx, undo.0, &undo.1).await.is_err() {
            tracing::warn!(command = undo.0, "could not put a network ACL entry back");
        }
        return Err(e);
    }
    Ok(())
}

fn find_item(items: &[Value], number: i64) -> Option<&Value> {
    items.iter().find(|i| s(i, "number").and_then(|n| n.parse::<i64>().ok()) == Some(number))
}

fn entry_not_found(a: &EntryArgs) -> Ec2Error {
    Ec2Error::new(
        Code::InvalidNetworkAclEntryNotFound,
        format!("The network acl entry identified by {} does not exist.", a.rule),
    )
}

/// CreateNetworkAclEntry: createNetworkACL at number 2N (ingress) / 2N+1 (egress).
pub async fn create_entry(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let a = entry_args(ctx)?;
    let item = item_args(ctx, &a)?;
    let (uuid, vpc, items) = list_and_items(ctx).await?;
    if find_item(&items, item.number).is_some() {
        return Err(Ec2Error::new(
            Code::NetworkAclEntryAlreadyExists,
            format!("The network acl entry identified by {} already exists.", a.rule),
        ));
    }
    let mut params = item.params();
    params.push(p("aclid", uuid));
    let done = run_job(ctx, "createNetworkACL", &params).await?;
    let made = done.get("networkacl").and_then(|i| s(i, "id")).unwrap_or_default();
    resync(ctx, &vpc, ("deleteNetworkACL", vec![p("id", made)])).await?;
    Ok(Value::Null)
}

/// ReplaceNetworkAclEntry: updateNetworkACLItem with every field (no partial update).
pub async fn replace_entry(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let a = entry_args(ctx)?;
    let item = item_args(ctx, &a)?;
    let (_, vpc, items) = list_and_items(ctx).await?;
    let cur = find_item(&items, item.number).ok_or_else(|| entry_not_found(&a))?;
    let mut params = item.params();
    params.retain(|(k, _)| k != "number");
    let id = p("id", s(cur, "id").unwrap_or_default());
    params.push(id.clone());
    params.push(p("partialupgrade", "false"));
    run_job(ctx, "updateNetworkACLItem", &params).await?;
    let mut back = item_fields(cur);
    back.push(id);
    back.push(p("partialupgrade", "false"));
    resync(ctx, &vpc, ("updateNetworkACLItem", back)).await?;
    Ok(Value::Null)
}

/// DeleteNetworkAclEntry: deleteNetworkACL of the item.
pub async fn delete_entry(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let a = entry_args(ctx)?;
    let (uuid, vpc, items) = list_and_items(ctx).await?;
    let cur = find_item(&items, 2 * a.rule + i64::from(a.egress)).ok_or_else(|| entry_not_found(&a))?;
    run_job(ctx, "deleteNetworkACL", &[p("id", s(cur, "id").unwrap_or_default())]).await?;
    let mut back = item_fields(cur);
    back.push(p("number", s(cur, "number").unwrap_or_default()));
    back.push(p("aclid", uuid));
    resync(ctx, &vpc, ("createNetworkACL", back)).await?;
    Ok(Value::Null)
}

/// ReplaceNetworkAclAssociation: replaceNetworkACLList of the tier; the new association id.
pub async fn replace_association(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let assoc = params.require("AssociationId")?;
    let acl = params.require("NetworkAclId")?;
    let well_formed = assoc.strip_prefix("aclassoc-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if !well_formed {
        return Err(Ec2Error::new(
            Code::InvalidAssociationIdMalformed,
            format!("Invalid id: \"{assoc}\" (expecting \"aclassoc-...\")"),
        ));
    }
    check_shape(acl)?;
    let mut world = load(ctx, true).await?;
    let vpcs: Vec<String> = world
        .tiers
        .iter()
        .filter_map(|t| s(t, "vpcid"))
        .filter(|v| world.vpc(v).is_some())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for v in &vpcs {
        ensure_default(ctx, &mut world, v).await?;
    }
    let tier = world
        .tiers
        .iter()
        .find(|t| match (s(t, "id"), s(t, "aclid")) {
            (Some(tu), Some(au)) => assoc_id(&tu, &au) == assoc,
            _ => false,
        })
        .cloned()
        .ok_or_else(|| {
            Ec2Error::new(Code::InvalidAssociationIdNotFound, format!("The association ID '{assoc}' does not exist"))
        })?;
    let list = world.find(acl)?;
    let (tier_uuid, list_uuid) = (s(&tier, "id").unwrap_or_default(), s(&list, "id").unwrap_or_default());
    if s(&tier, "vpcid") != s(&list, "vpcid") {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("Network ACL {acl} and subnet {} belong to different VPCs.", ids::ec2_id(Kind::Subnet, &tier_uuid)),
        ));
    }
    if s(&tier, "aclid").as_deref() != Some(list_uuid.as_str()) {
        // The tier's list: the ACL itself, or (instances in the tier) the ACL narrowed to their
        // security groups (sg_enforce).
        let vpc = s(&tier, "vpcid").unwrap_or_default();
        sg_enforce::sync(ctx, Some(&vpc), Some((&tier_uuid, &list_uuid))).await?;
    }
    Ok(json!({"newassociationid": assoc_id(&tier_uuid, &list_uuid)}))
}
