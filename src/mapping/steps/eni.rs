//! Elastic network interfaces over CloudStack NICs (docs/vpc.md "Network interfaces").
//!
//! CloudStack has no NIC without a VM. An interface made by CreateNetworkInterface is a store
//! record (kind `network-interface`, a random `eni-` id) holding its subnet, addresses, groups,
//! description and, while attached, the CloudStack NIC behind it. Every address of an interface
//! (primary and secondary) is claimed in the store (`eni-ip:<tier uuid>:<address>`) for the
//! interface's whole life, attached or not, so the gateway never hands it to anything else: new
//! interfaces and AssignPrivateIpAddresses pick addresses nobody holds (neither a claim nor a
//! CloudStack NIC), and an address asked for that is held is `InvalidIPAddress.InUse`.
//!
//! An instance's own NICs on VPC tiers are interfaces too (ids derived from the NIC uuid, as
//! DescribeInstances shows them); the first change to one (description, groups, addresses,
//! tags) "adopts" it: a record with `primary`/`nicuuid` is made for it. Attach is
//! `addNicToVirtualMachine` (tier + the interface's address) then `addIpToNic` per secondary
//! address; detach is `removeNicFromVirtualMachine`. A record whose instance or NIC is gone
//! (terminated) is reconciled when next seen: deleted with its claims when DeleteOnTermination
//! says so, else made available again.
//!
//! Record document (CloudStack-like field names):
//! `{id, subnetid, tieruuid, vpcid, vpcuuid, zonename, ownerid, description, sourcedestcheck,
//!   groups: [sg ids], ipaddress, secondary: [ip], macaddress, primary, tags,
//!   attachment: {attachmentid, instanceid, instanceuuid, nicuuid, deviceindex,
//!   deleteontermination, attachtime}}`

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::{run_job, tag_specifications as tag_specs};
use super::vpc_objects::{Block, cs_subnet, owner};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};
use crate::objects::{Change, Record, WriteError, new_id};

pub const KIND: &str = "network-interface";
const RETRIES: usize = 8;

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text).filter(|x| !x.is_empty())
}

pub(super) fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

fn p(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// The id EC2 shows for a CloudStack NIC no record names (DescribeInstances uses the same).
pub fn nic_eni_id(nic_uuid: &str) -> String {
    format!("eni-{}", &ids::ec2_id(Kind::Subnet, &format!("nic:{nic_uuid}"))[7..])
}

fn nic_attachment_id(nic_uuid: &str) -> String {
    format!("eni-attach-{}", &nic_eni_id(nic_uuid)[4..])
}

pub(super) fn well_formed(id: &str) -> bool {
    id.strip_prefix("eni-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(super) fn malformed(id: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidNetworkInterfaceIdMalformed, format!("Invalid id: \"{id}\" (expecting \"eni-...\")"))
}

pub(super) fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidNetworkInterfaceIdNotFound, format!("The networkInterface ID '{id}' does not exist"))
}

pub(crate) fn claim(tier: &str, ip: &str) -> String {
    format!("eni-ip:{tier}:{ip}")
}

pub(super) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(super) async fn write(ctx: &Ctx<'_>, changes: Vec<Change>) -> Result<Result<(), WriteError>, Ec2Error> {
    match ctx.ex.objects.write(changes).await {
        Ok(()) => Ok(Ok(())),
        Err(WriteError::Failed(e)) => Err(store_failed(e)),
        Err(c) => Ok(Err(c)),
    }
}

pub(super) async fn records(ctx: &Ctx<'_>) -> Result<Vec<Record>, Ec2Error> {
    ctx.ex.objects.list(&owner(ctx), KIND).await.map_err(store_failed)
}

pub(super) async fn record(ctx: &Ctx<'_>, id: &str) -> Result<Option<Record>, Ec2Error> {
    match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
        Some(r) if r.kind == KIND => Ok(Some(r)),
        _ => Ok(None),
    }
}

fn addresses(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = s(doc, "ipaddress").into_iter().collect();
    out.extend(doc["secondary"].as_array().into_iter().flatten().map(scalar_text));
    out
}

/// Changes that drop a record and release its address claims.
fn drop_changes(r: &Record) -> Vec<Change> {
    let tier = s(&r.doc, "tieruuid").unwrap_or_default();
    let mut out: Vec<Change> =
        addresses(&r.doc).iter().map(|ip| Change::Release { claim: claim(&tier, ip), holder: r.id.clone() }).collect();
    out.push(Change::Delete { id: r.id.clone(), version: r.version });
    out
}

// ---- CloudStack side ---------------------------------------------------------------------------

/// The caller's VMs (one listVirtualMachines), and its VPC tiers by uuid (cached listNetworks).
async fn vms(ctx: &Ctx<'_>) -> Result<Vec<Value>, Ec2Error> {
    ctx.list("listVirtualMachines", &[p("listall", "true")], "virtualmachine").await
}

async fn vm(ctx: &Ctx<'_>, uuid: &str) -> Result<Option<Value>, Ec2Error> {
    let l = ctx.list("listVirtualMachines", &[p("id", uuid), p("listall", "true")], "virtualmachine").await?;
    Ok(l.into_iter().find(|v| s(v, "id").as_deref() == Some(uuid)).filter(live))
}

fn live(vm: &Value) -> bool {
    !matches!(s(vm, "state").as_deref(), Some("Destroyed" | "Expunging" | "Error"))
}

pub(super) fn nics(vm: &Value) -> Vec<Value> {
    vm["nic"].as_array().cloned().unwrap_or_default()
}

async fn tiers(ctx: &Ctx<'_>) -> Result<Vec<Value>, Ec2Error> {
    let l = ctx.list_cached("listNetworks", &[p("listall", "true")], "network").await?;
    Ok(l.iter().filter(|n| s(n, "vpcid").is_some()).cloned().collect())
}

/// Addresses in use on a tier: every VM NIC (and secondary address) there, and every claim the
/// caller's interfaces hold on it.
pub(crate) async fn used_on(ctx: &Ctx<'_>, tier: &str) -> Result<Vec<String>, Ec2Error> {
    let l = ctx.list("listVirtualMachines", &[p("networkid", tier), p("listall", "true")], "virtualmachine").await?;
    let mut used = Vec::new();
    for v in &l {
        for n in nics(v).iter().filter(|n| s(n, "networkid").as_deref() == Some(tier)) {
            used.extend(s(n, "ipaddress"));
            used.extend(n["secondaryip"].as_array().into_iter().flatten().filter_map(|x| s(x, "ipaddress")));
        }
    }
    for r in records(ctx).await? {
        if s(&r.doc, "tieruuid").as_deref() == Some(tier) {
            used.extend(addresses(&r.doc));
        }
    }
    Ok(used)
}

fn reserved_in(block: &Block, ip: u32) -> bool {
    ip < block.base + 4 || u64::from(ip) == u64::from(block.base) + block.size() - 1
}

/// An address asked for: inside the subnet, not one of EC2's reserved five.
pub(crate) fn check_address(block: &Block, ip: &str) -> Result<(), Ec2Error> {
    let a: Ipv4Addr =
        ip.parse().map_err(|_| Ec2Error::invalid_value("PrivateIpAddress", ip, "Not an IPv4 address."))?;
    let a = u32::from(a);
    if !block.contains(a) {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("Address {ip} does not fall within the subnet's address range"),
        ));
    }
    if reserved_in(block, a) {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("Address {ip} is in subnet's reserved address range"),
        ));
    }
    Ok(())
}

pub(crate) fn in_use(ip: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidIpAddressInUse, format!("Address {ip} is in use."))
}

/// `count` free addresses of the block (lowest first), none of `used`.
pub(crate) fn pick(block: &Block, used: &[String], count: usize) -> Result<Vec<String>, Ec2Error> {
    let mut out = Vec::new();
    let last = u64::from(block.base) + block.size() - 1;
    let mut a = u64::from(block.base) + 4;
    while out.len() < count && a < last {
        let ip = Ipv4Addr::from(a as u32).to_string();
        if !used.contains(&ip) && !out.contains(&ip) {
            out.push(ip);
        }
        a += 1;
    }
    if out.len() < count {
        return Err(Ec2Error::new(
            Code::InsufficientFreeAddressesInSubnet,
            "There are not enough free addresses in subnet to satisfy the requested number of addresses.",
        ));
    }
    Ok(out)
}

/// RunInstances into a tier: an address asked for that an interface holds is in use; without
/// one, while detached interfaces of the caller hold addresses on the tier, the gateway picks a
/// free address itself (CloudStack would not know those are taken). Answers the picked address.
pub async fn launch_address(ctx: &Ctx<'_>, tier: &Value, asked: Option<&str>) -> Result<Option<String>, Ec2Error> {
    let tier_uuid = s(tier, "id").unwrap_or_default();
    if let Some(ip) = asked {
        if ctx.ex.objects.holder(&claim(&tier_uuid, ip)).await.map_err(store_failed)?.is_some() {
            return Err(in_use(ip));
        }
        return Ok(None);
    }
    let held = records(ctx)
        .await?
        .iter()
        .any(|r| s(&r.doc, "tieruuid").as_deref() == Some(tier_uuid.as_str()) && !r.doc["attachment"].is_object());
    let one = ctx.req.params.get("MaxCount").is_none_or(|c| c == "1");
    if !held || !one {
        return Ok(None);
    }
    let block = s(tier, "cidr").and_then(|c| Block::parse(&c)).ok_or_else(Ec2Error::internal)?;
    let used = used_on(ctx, &tier_uuid).await?;
    Ok(pick(&block, &used, 1)?.into_iter().next())
}

// ---- views (what the NetworkInterface shape renders) -------------------------------------------

struct Seen {
    vms: Vec<Value>,
    tiers: Vec<Value>,
    groups: std::collections::HashMap<String, Vec<Value>>,
    all_groups: Vec<Record>,
}

async fn seen(ctx: &Ctx<'_>) -> Result<Seen, Ec2Error> {
    let vms = vms(ctx).await?.into_iter().filter(live).collect();
    let mut tiers = tiers(ctx).await?;
    let vm_list: &Vec<Value> = &vms;
    let wanted = vm_list.iter().flat_map(nics).filter_map(|n| s(&n, "networkid"));
    if wanted.into_iter().any(|w| !tiers.iter().any(|t| s(t, "id").as_deref() == Some(&w))) {
        tiers = ctx
            .list_refresh("listNetworks", &[p("listall", "true")], "network")
            .await?
            .iter()
            .filter(|n| s(n, "vpcid").is_some())
            .cloned()
            .collect();
    }
    Ok(Seen {
        vms,
        tiers,
        groups: super::vpc_sg::instance_groups(ctx).await?,
        all_groups: super::vpc_sg::groups(ctx).await?,
    })
}

impl Seen {
    fn tier(&self, uuid: &str) -> Option<&Value> {
        self.tiers.iter().find(|t| s(t, "id").as_deref() == Some(uuid))
    }
    fn group_items(&self, ids: &[String]) -> Vec<Value> {
        ids.iter()
            .filter_map(|g| self.all_groups.iter().find(|r| r.id == *g))
            .map(|r| json!({"id": r.doc["id"], "name": r.doc["name"]}))
            .collect()
    }
}

pub(super) fn private_set(primary: &str, secondary: &[String]) -> Value {
    let mut v = vec![json!({"ipaddress": primary, "primary": true})];
    v.extend(secondary.iter().map(|ip| json!({"ipaddress": ip, "primary": false})));
    Value::Array(v)
}

/// The view of a record (attached: with the live NIC of its VM).
fn record_view(r: &Record, live: Option<(&Value, &Value)>, seen: &Seen) -> Value {
    let d = &r.doc;
    let groups: Vec<String> = d["groups"].as_array().into_iter().flatten().map(scalar_text).collect();
    let mut view = json!({
        "id": r.id,
        "subnetid": d["subnetid"],
        "vpcid": d["vpcid"],
        "zonename": d["zonename"],
        "description": d["description"],
        "ownerid": d["ownerid"],
        "status": "available",
        "macaddress": d["macaddress"],
        "ipaddress": d["ipaddress"],
        "sourcedestcheck": d.get("sourcedestcheck").cloned().unwrap_or(json!(true)),
        "groups": seen.group_items(&groups),
        "tags": d["tags"],
        "_groupids": groups,
    });
    let mut secondary: Vec<String> = d["secondary"].as_array().into_iter().flatten().map(scalar_text).collect();
    if let (Some((vm, nic)), Some(a)) = (live, d.get("attachment").filter(|a| a.is_object())) {
        view["status"] = json!("in-use");
        view["macaddress"] = nic["macaddress"].clone();
        view["ipaddress"] = nic["ipaddress"].clone();
        secondary = nic["secondaryip"].as_array().into_iter().flatten().filter_map(|x| s(x, "ipaddress")).collect();
        let mut a = a.clone();
        a["status"] = json!("attached");
        a["instanceownerid"] = vm["account"].clone();
        view["attachment"] = a;
    }
    let primary = s(&view, "ipaddress").unwrap_or_default();
    view["addresses"] = private_set(&primary, &secondary);
    view
}

/// The view of an instance NIC no record names.
fn nic_view(vm: &Value, nic: &Value, tier: &Value, seen: &Seen) -> Value {
    let nic_uuid = s(nic, "id").unwrap_or_default();
    let vm_uuid = s(vm, "id").unwrap_or_default();
    let instance = ids::ec2_id(Kind::Instance, &vm_uuid);
    let groups = seen.groups.get(&instance).cloned().unwrap_or_default();
    let group_ids: Vec<String> =
        groups.iter().filter_map(|g| s(g, "id")).map(|u| ids::ec2_id(Kind::SecurityGroup, &u)).collect();
    let secondary: Vec<String> =
        nic["secondaryip"].as_array().into_iter().flatten().filter_map(|x| s(x, "ipaddress")).collect();
    json!({
        "id": nic_eni_id(&nic_uuid),
        "subnetid": ids::ec2_id(Kind::Subnet, &s(tier, "id").unwrap_or_default()),
        "vpcid": ids::ec2_id(Kind::Vpc, &s(tier, "vpcid").unwrap_or_default()),
        "zonename": tier["zonename"],
        "description": "",
        "ownerid": vm["account"],
        "status": "in-use",
        "macaddress": nic["macaddress"],
        "ipaddress": nic["ipaddress"],
        "sourcedestcheck": true,
        "groups": groups,
        "_groupids": group_ids,
        "tags": [],
        "attachment": {
            "attachmentid": nic_attachment_id(&nic_uuid),
            "instanceid": instance,
            "instanceuuid": vm_uuid,
            "nicuuid": nic_uuid,
            "instanceownerid": vm["account"],
            "deviceindex": nic.get("deviceid").map(scalar_text).and_then(|d| d.parse::<i64>().ok()).unwrap_or(0),
            "status": "attached",
            "deleteontermination": true,
            "attachtime": vm["created"],
        },
        "addresses": private_set(&s(nic, "ipaddress").unwrap_or_default(), &secondary),
        "_primary": true,
    })
}

/// The public address (Elastic IP or launch-time) mapped to each address of an attached
/// interface: `association` on the address and, for the primary one, on the interface (EC2's
/// NetworkInterface association). One listPublicIpAddresses, only when something is attached.
async fn add_associations(ctx: &Ctx<'_>, views: &mut [Value]) -> Result<(), Ec2Error> {
    if !views.iter().any(|v| v["attachment"]["instanceuuid"].is_string()) {
        return Ok(());
    }
    let mapped = super::addresses::mapped_by_nic(ctx).await?;
    let by_subnet: std::collections::HashMap<(String, String, String), &Value> = mapped
        .iter()
        .map(|((vm, tier, ip), a)| ((vm.clone(), ids::ec2_id(Kind::Subnet, tier), ip.clone()), a))
        .collect();
    for v in views.iter_mut() {
        let (Some(vm), Some(subnet)) = (s(&v["attachment"], "instanceuuid"), s(v, "subnetid")) else { continue };
        let of = |ip: Option<String>| {
            ip.and_then(|ip| by_subnet.get(&(vm.clone(), subnet.clone(), ip))).map(|a| (*a).clone())
        };
        if let Some(a) = of(s(v, "ipaddress")) {
            v["association"] = a;
        }
        for addr in v["addresses"].as_array_mut().into_iter().flatten() {
            if let Some(a) = of(s(addr, "ipaddress")) {
                addr["association"] = a;
            }
        }
    }
    Ok(())
}

/// Every interface of the caller, reconciling records whose NIC is gone.
async fn all_views(ctx: &Ctx<'_>) -> Result<Vec<Value>, Ec2Error> {
    let seen = seen(ctx).await?;
    let recs = records(ctx).await?;
    let mut out = Vec::new();
    let mut matched: Vec<String> = Vec::new();
    for vm in &seen.vms {
        for nic in nics(vm) {
            let Some(tier) = s(&nic, "networkid").and_then(|t| seen.tier(&t)) else { continue };
            let nic_uuid = s(&nic, "id").unwrap_or_default();
            let rec = recs.iter().find(|r| r.doc["attachment"]["nicuuid"] == nic_uuid.as_str());
            match rec {
                Some(r) => {
                    matched.push(r.id.clone());
                    let mut v = record_view(r, Some((vm, &nic)), &seen);
                    if r.doc["primary"] == true {
                        let n = nic_view(vm, &nic, tier, &seen);
                        v["groups"] = n["groups"].clone();
                        v["_groupids"] = n["_groupids"].clone();
                        v["attachment"]["deviceindex"] = n["attachment"]["deviceindex"].clone();
                        v["_primary"] = json!(true);
                    }
                    out.push(v);
                }
                None => out.push(nic_view(vm, &nic, tier, &seen)),
            }
        }
    }
    for r in recs.iter().filter(|r| !matched.contains(&r.id)) {
        if r.doc["attachment"].is_object() {
            // Its instance or NIC is gone (terminated, or removed behind the gateway's back).
            let gone = reconcile(ctx, r).await?;
            if let Some(r) = gone {
                out.push(record_view(&r, None, &seen));
            }
        } else {
            out.push(record_view(r, None, &seen));
        }
    }
    Ok(out)
}

/// Every attached interface of the caller with its subnet, addresses and groups: what the
/// tiers' security group lists guard (sg_enforce).
pub(super) async fn attached(ctx: &Ctx<'_>) -> Result<Vec<super::sg_enforce::Member>, Ec2Error> {
    Ok(all_views(ctx)
        .await?
        .into_iter()
        .filter(|v| v["status"] == "in-use")
        .map(|v| super::sg_enforce::Member {
            instance: s(&v["attachment"], "instanceuuid").unwrap_or_default(),
            subnet: s(&v, "subnetid").unwrap_or_default(),
            addresses: v["addresses"].as_array().into_iter().flatten().filter_map(|a| s(a, "ipaddress")).collect(),
            groups: v["_groupids"].as_array().into_iter().flatten().map(scalar_text).collect(),
        })
        .collect())
}

/// A record whose NIC is gone: deleted (with its claims) when adopted from an instance or when
/// DeleteOnTermination says so, else detached. Answers the record if it still exists.
async fn reconcile(ctx: &Ctx<'_>, r: &Record) -> Result<Option<Record>, Ec2Error> {
    // An instance's primary interface goes with it unless ModifyNetworkInterfaceAttribute set
    // DeleteOnTermination false (its addresses were claimed then): it stays as a detached one.
    let delete = r.doc["attachment"]["deleteontermination"] != false;
    let changes = if delete {
        drop_changes(r)
    } else {
        let mut n = r.clone();
        n.doc["attachment"] = Value::Null;
        n.doc["primary"] = json!(false);
        vec![Change::Update(n)]
    };
    // A conflict means another request reconciled (or changed) it first: fine either way.
    let _ = write(ctx, changes).await?;
    if delete {
        return Ok(None);
    }
    record(ctx, &r.id).await
}

/// One interface view by id (NotFound / Malformed as EC2 says).
async fn view_of(ctx: &Ctx<'_>, id: &str) -> Result<Value, Ec2Error> {
    if !well_formed(id) {
        return Err(malformed(id));
    }
    all_views(ctx).await?.into_iter().find(|v| v["id"] == id).ok_or_else(|| not_found(id))
}

/// One interface as DescribeNetworkInterfaces shows it (AssociateAddress by NetworkInterfaceId).
pub async fn interface(ctx: &Ctx<'_>, id: &str) -> Result<Value, Ec2Error> {
    view_of(ctx, id).await
}

/// The ids of the caller's attached interfaces by (VM uuid, subnet id) (DescribeAddresses).
pub async fn interface_ids(ctx: &Ctx<'_>) -> Result<std::collections::HashMap<(String, String), String>, Ec2Error> {
    let mut out = std::collections::HashMap::new();
    for v in all_views(ctx).await? {
        if let (Some(vm), Some(sub), Some(id)) = (s(&v["attachment"], "instanceuuid"), s(&v, "subnetid"), s(&v, "id")) {
            out.insert((vm, sub), id);
        }
    }
    Ok(out)
}

/// Does a detached interface of the caller live in `subnet`? (DeleteSubnet refuses while one
/// does: EC2 keeps a subnet with interfaces in it.)
pub async fn detached_in_subnet(ctx: &Ctx<'_>, subnet: &str) -> Result<bool, Ec2Error> {
    Ok(records(ctx).await?.iter().any(|r| r.doc["subnetid"] == subnet && !r.doc["attachment"].is_object()))
}

/// The record of an interface; an instance NIC is adopted (a record made for it) first.
pub async fn adopt(ctx: &Ctx<'_>, id: &str) -> Result<Record, Ec2Error> {
    for _ in 0..RETRIES {
        if !well_formed(id) {
            return Err(malformed(id));
        }
        if let Some(r) = record(ctx, id).await? {
            return Ok(r);
        }
        let v = view_of(ctx, id).await?;
        let a = &v["attachment"];
        let tier_uuid = ctx.resolve_ids(Kind::Subnet, &[scalar_text(&v["subnetid"])]).await?.remove(0);
        let vpc_uuid = ctx.resolve_ids(Kind::Vpc, &[scalar_text(&v["vpcid"])]).await?.remove(0);
        let doc = json!({
            "id": id, "subnetid": v["subnetid"], "tieruuid": tier_uuid, "vpcid": v["vpcid"], "vpcuuid": vpc_uuid,
            "zonename": v["zonename"], "ownerid": owner(ctx), "description": "", "sourcedestcheck": true,
            "groups": v["_groupids"], "ipaddress": v["ipaddress"], "secondary": [], "macaddress": v["macaddress"],
            "primary": true, "tags": [],
            "attachment": {
                "attachmentid": a["attachmentid"], "instanceid": a["instanceid"], "instanceuuid": a["instanceuuid"],
                "nicuuid": a["nicuuid"], "deviceindex": a["deviceindex"], "deleteontermination": true,
                "attachtime": a["attachtime"],
            },
        });
        let rec =
            Record { id: id.to_string(), kind: KIND.into(), owner: owner(ctx), vpc: s(&v, "vpcid"), doc, version: 0 };
        if write(ctx, vec![Change::Insert(rec)]).await?.is_ok() {
            continue;
        }
    }
    Err(Ec2Error::internal())
}

/// DescribeInstances: per CloudStack NIC uuid, what the gateway's record of it changes in the
/// instance's networkInterfaceSet (id, attachment, description, source/dest check, and the
/// interface's own groups unless it is the instance's primary).
pub async fn instance_overrides(ctx: &Ctx<'_>) -> Result<std::collections::HashMap<String, Value>, Ec2Error> {
    let recs = records(ctx).await?;
    let mut out = std::collections::HashMap::new();
    if recs.is_empty() {
        return Ok(out);
    }
    let all_groups = super::vpc_sg::groups(ctx).await?;
    for r in recs {
        let a = &r.doc["attachment"];
        let Some(nic) = s(a, "nicuuid") else { continue };
        let mut o = json!({
            "id": r.id,
            "attachmentid": a["attachmentid"],
            "description": r.doc["description"],
            "sourcedestcheck": r.doc.get("sourcedestcheck").cloned().unwrap_or(json!(true)),
            "deleteontermination": a["deleteontermination"],
        });
        if r.doc["primary"] != true {
            o["deviceindex"] = a["deviceindex"].clone();
            let groups: Vec<Value> = r.doc["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| all_groups.iter().find(|x| x.id == scalar_text(g)))
                .map(|x| json!({"id": x.doc["id"], "name": x.doc["name"]}))
                .collect();
            o["_groups"] = Value::Array(groups);
        }
        out.insert(nic, o);
    }
    Ok(out)
}

/// A CloudStack NIC's addresses as the interface shapes list them (primary first).
pub fn nic_addresses(nic: &Value) -> Value {
    let secondary: Vec<String> =
        nic["secondaryip"].as_array().into_iter().flatten().filter_map(|x| s(x, "ipaddress")).collect();
    private_set(&s(nic, "ipaddress").unwrap_or_default(), &secondary)
}

// ---- tags (CreateTags / DeleteTags / DescribeTags go through vpc_objects) ----------------------

/// CreateTags/DeleteTags on an interface: the record (an instance NIC is adopted).
pub async fn check_for_tags(ctx: &Ctx<'_>, id: &str) -> Result<(), Ec2Error> {
    adopt(ctx, id).await.map(|_| ())
}

// ---- actions ------------------------------------------------------------------------------------

fn refuse_unsupported(ctx: &Ctx<'_>) -> Result<(), Ec2Error> {
    let params = &ctx.req.params;
    for name in ["Ipv6AddressCount", "Ipv4PrefixCount", "Ipv6PrefixCount", "EnablePrimaryIpv6"] {
        if params.get(name).is_some() {
            return Err(Ec2Error::unsupported(format!("{name} is not supported by this cloud.")));
        }
    }
    for list in ["Ipv6Addresses", "Ipv4Prefix", "Ipv6Prefix"] {
        if !params.members(list).is_empty() {
            return Err(Ec2Error::unsupported(format!("{list} is not supported by this cloud.")));
        }
    }
    if let Some(t) = params.get("InterfaceType").filter(|t| *t != "interface") {
        return Err(Ec2Error::unsupported(format!("InterfaceType {t} is not supported by this cloud.")));
    }
    Ok(())
}

/// CreateNetworkInterface: a detached interface in the store, its addresses claimed.
/// CreateNetworkInterface; ClientToken makes it idempotent (the SDKs fill one in).
pub async fn create_network_interface(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    super::common::idempotent(ctx, make_network_interface(ctx)).await
}

async fn make_network_interface(ctx: &Ctx<'_>) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let subnet_id = params.require("SubnetId")?.to_string();
    refuse_unsupported(ctx)?;
    let tags = tag_specs(params, "network-interface")?;
    let tier = cs_subnet(ctx, &subnet_id).await?;
    let tier_uuid = s(&tier, "id").unwrap_or_default();
    let vpc_uuid = s(&tier, "vpcid").unwrap_or_default();
    let vpc_id = ids::ec2_id(Kind::Vpc, &vpc_uuid);
    let block = s(&tier, "cidr").and_then(|c| Block::parse(&c)).ok_or_else(Ec2Error::internal)?;
    // Addresses asked for: PrivateIpAddress, PrivateIpAddresses.N (one may be Primary).
    let mut primary = params.get("PrivateIpAddress").map(str::to_string);
    let mut secondary: Vec<String> = Vec::new();
    for m in params.members("PrivateIpAddresses") {
        let Some(ip) = m.get("PrivateIpAddress").map(str::to_string) else {
            return Err(Ec2Error::missing_parameter("PrivateIpAddresses.N.PrivateIpAddress"));
        };
        if m.bool("Primary")?.unwrap_or(false) {
            if primary.as_ref().is_some_and(|p| *p != ip) {
                return Err(Ec2Error::invalid_parameter("Multiple primary addresses specified"));
            }
            primary = Some(ip);
        } else if primary.as_deref() != Some(ip.as_str()) {
            secondary.push(ip);
        }
    }
    let count = match params.int("SecondaryPrivateIpAddressCount")? {
        Some(n) if !(1..=10).contains(&n) => {
            return Err(Ec2Error::invalid_value(
                "SecondaryPrivateIpAddressCount",
                &n.to_string(),
                "Must be between 1 and 10 (the cloud's limit of secondary addresses per NIC).",
            ));
        }
        Some(n) => n as usize,
        None => 0,
    };
    if count > 0 && !secondary.is_empty() {
        return Err(Ec2Error::combination(
            "SecondaryPrivateIpAddressCount and secondary PrivateIpAddresses may not be specified together",
        ));
    }
    if secondary.len() > 10 {
        return Err(Ec2Error::invalid_parameter("At most 10 secondary addresses per interface in this cloud."));
    }
    for ip in primary.iter().chain(secondary.iter()) {
        check_address(&block, ip)?;
    }
    let group_ids: Vec<String> = params.list("SecurityGroupId").into_iter().map(str::to_string).collect();
    let groups = super::vpc_sg::launch_groups(ctx, &[], &group_ids, &vpc_id, &vpc_uuid).await?;
    let description = params.get("Description").unwrap_or_default().to_string();
    for _ in 0..RETRIES {
        let used = used_on(ctx, &tier_uuid).await?;
        for ip in primary.iter().chain(secondary.iter()) {
            if used.contains(ip) {
                return Err(in_use(ip));
            }
        }
        let mut taken = used.clone();
        taken.extend(primary.iter().cloned());
        taken.extend(secondary.iter().cloned());
        let auto_primary = if primary.is_none() { pick(&block, &taken, 1)? } else { Vec::new() };
        taken.extend(auto_primary.iter().cloned());
        let auto_secondary = pick(&block, &taken, count)?;
        let pri = primary.clone().or_else(|| auto_primary.first().cloned()).ok_or_else(Ec2Error::internal)?;
        let sec: Vec<String> = secondary.iter().cloned().chain(auto_secondary).collect();
        let id = new_id("eni");
        let doc = json!({
            "id": id, "subnetid": subnet_id, "tieruuid": tier_uuid, "vpcid": vpc_id, "vpcuuid": vpc_uuid,
            "zonename": tier["zonename"], "ownerid": owner(ctx), "description": description,
            "sourcedestcheck": true, "groups": groups, "ipaddress": pri, "secondary": sec,
            "macaddress": Value::Null, "primary": false,
            "tags": Value::Array(tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect()),
            "attachment": Value::Null,
        });
        let rec =
            Record { id: id.clone(), kind: KIND.into(), owner: owner(ctx), vpc: Some(vpc_id.clone()), doc, version: 0 };
        let mut changes: Vec<Change> = std::iter::once(&pri)
            .chain(sec.iter())
            .map(|ip| Change::Claim { claim: claim(&tier_uuid, ip), holder: id.clone() })
            .collect();
        changes.push(Change::Insert(rec.clone()));
        match write(ctx, changes).await? {
            Ok(()) => {
                let seen = seen(ctx).await?;
                return Ok(json!({"networkinterface": record_view(&rec, None, &seen)}));
            }
            // An address was claimed meanwhile: an address asked for is in use, else pick again.
            Err(WriteError::Conflict { what, .. }) => {
                if let Some(ip) = primary.iter().chain(secondary.iter()).find(|ip| what == claim(&tier_uuid, ip)) {
                    return Err(in_use(ip));
                }
            }
            Err(WriteError::Failed(e)) => return Err(store_failed(e)),
        }
    }
    Err(Ec2Error::internal())
}

/// DescribeNetworkInterfaces: the caller's interfaces (records and instance NICs on VPC tiers).
pub async fn describe_network_interfaces(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let asked: Vec<String> = ctx.req.params.list("NetworkInterfaceId").into_iter().map(str::to_string).collect();
    if let Some(bad) = asked.iter().find(|i| !well_formed(i)) {
        return Err(malformed(bad));
    }
    let mut views = all_views(ctx).await?;
    if let Some(missing) = asked.iter().find(|a| !views.iter().any(|v| v["id"] == a.as_str())) {
        return Err(not_found(missing));
    }
    add_associations(ctx, &mut views).await?;
    Ok(Value::Array(
        views.into_iter().filter(|v| asked.is_empty() || asked.iter().any(|a| v["id"] == a.as_str())).collect(),
    ))
}

/// DeleteNetworkInterface: attached -> InvalidNetworkInterface.InUse; the record and its claims go.
pub async fn delete_network_interface(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("NetworkInterfaceId")?.to_string();
    for _ in 0..RETRIES {
        let v = view_of(ctx, &id).await?;
        if v["status"] == "in-use" {
            return Err(Ec2Error::new(
                Code::InvalidNetworkInterfaceInUse,
                format!("The network interface '{id}' is currently in use."),
            ));
        }
        let r = record(ctx, &id).await?.ok_or_else(|| not_found(&id))?;
        if write(ctx, drop_changes(&r)).await?.is_ok() {
            return Ok(json!({}));
        }
    }
    Err(Ec2Error::internal())
}

/// AttachNetworkInterface: addNicToVirtualMachine on the interface's tier with its address, then
/// its secondary addresses (addIpToNic); any failure removes the NIC again.
pub async fn attach_network_interface(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let out = attach_network_interface_now(ctx, prep).await?;
    tiers_follow(ctx).await;
    Ok(out)
}

async fn attach_network_interface_now(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let id = params.require("NetworkInterfaceId")?.to_string();
    let instance = params.require("InstanceId")?.to_string();
    let index_text = params.require("DeviceIndex")?.to_string();
    let index: i64 = index_text
        .parse()
        .ok()
        .filter(|i| (0..=15).contains(i))
        .ok_or_else(|| Ec2Error::invalid_value("DeviceIndex", &index_text, "Must be between 0 and 15."))?;
    if params.get("NetworkCardIndex").is_some_and(|c| c != "0") {
        return Err(Ec2Error::unsupported("Only network card 0 exists in this cloud."));
    }
    if params.get("EnaSrdSpecification.EnaSrdEnabled").is_some() {
        return Err(Ec2Error::unsupported("ENA Express is not supported by this cloud."));
    }
    let vm_uuid = ctx.resolve_ids(Kind::Instance, std::slice::from_ref(&instance)).await?.remove(0);
    let views = all_views(ctx).await?;
    let v = views
        .iter()
        .find(|v| v["id"] == id.as_str())
        .ok_or_else(|| if well_formed(&id) { not_found(&id) } else { malformed(&id) })?;
    if v["status"] == "in-use" {
        return Err(Ec2Error::new(Code::InvalidParameterValue, format!("Interface: [{id}] in use.")));
    }
    let mut r = record(ctx, &id).await?.ok_or_else(|| not_found(&id))?;
    let vm = vm(ctx, &vm_uuid).await?.ok_or_else(|| {
        Ec2Error::new(Code::InvalidInstanceIdNotFound, format!("The instance ID '{instance}' does not exist"))
    })?;
    let vpc_uuid = s(&r.doc, "vpcuuid").unwrap_or_default();
    let tier_uuid = s(&r.doc, "tieruuid").unwrap_or_default();
    if !nics(&vm).iter().any(|n| s(n, "vpcid").as_deref() == Some(vpc_uuid.as_str())) {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("The network interface {id} and the instance {instance} belong to different networks."),
        ));
    }
    let taken = index == 0
        || views
            .iter()
            .any(|x| x["attachment"]["instanceid"] == instance.as_str() && x["attachment"]["deviceindex"] == index);
    if taken {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("Instance '{instance}' already has an interface attached at device index '{index}'."),
        ));
    }
    if nics(&vm).iter().any(|n| s(n, "networkid").as_deref() == Some(tier_uuid.as_str())) {
        return Err(Ec2Error::unsupported(format!(
            "Instance '{instance}' already has an interface in subnet {}; this cloud allows one per subnet.",
            scalar_text(&r.doc["subnetid"])
        )));
    }
    let ip = s(&r.doc, "ipaddress").unwrap_or_default();
    let answer = run_job(
        ctx,
        "addNicToVirtualMachine",
        &[p("virtualmachineid", &vm_uuid), p("networkid", &tier_uuid), p("ipaddress", &ip)],
    )
    .await?;
    let new_vm = if answer.get("nic").is_some() { answer } else { answer["virtualmachine"].clone() };
    let Some(nic) = nics(&new_vm).into_iter().find(|n| s(n, "networkid").as_deref() == Some(tier_uuid.as_str())) else {
        return Err(Ec2Error::internal());
    };
    let nic_uuid = s(&nic, "id").unwrap_or_default();
    let remove_params = [p("virtualmachineid", &vm_uuid), p("nicid", &nic_uuid)];
    let remove = || run_job(ctx, "removeNicFromVirtualMachine", &remove_params);
    for sec in r.doc["secondary"].as_array().cloned().unwrap_or_default() {
        if let Err(e) = run_job(ctx, "addIpToNic", &[p("nicid", &nic_uuid), p("ipaddress", scalar_text(&sec))]).await {
            if let Err(u) = remove().await {
                tracing::warn!(error = %u, nic = %nic_uuid, "could not remove a half-attached NIC");
            }
            return Err(e);
        }
    }
    let attachment = new_id("eni-attach");
    for _ in 0..RETRIES {
        r.doc["attachment"] = json!({
            "attachmentid": attachment, "instanceid": instance, "instanceuuid": vm_uuid, "nicuuid": nic_uuid,
            "deviceindex": index, "deleteontermination": false, "attachtime": now(),
        });
        r.doc["macaddress"] = nic["macaddress"].clone();
        if write(ctx, vec![Change::Update(r.clone())]).await?.is_ok() {
            return Ok(json!({"attachmentid": attachment}));
        }
        match record(ctx, &id).await? {
            Some(n) if !n.doc["attachment"].is_object() => r = n,
            _ => break,
        }
    }
    if let Err(u) = remove().await {
        tracing::warn!(error = %u, nic = %nic_uuid, "could not remove a NIC the store did not record");
    }
    Err(Ec2Error::internal())
}

/// DetachNetworkInterface: removeNicFromVirtualMachine; the record keeps subnet, addresses,
/// groups (and its claims). The primary interface cannot be detached.
pub async fn detach_network_interface(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let out = detach_network_interface_now(ctx, prep).await?;
    tiers_follow(ctx).await;
    Ok(out)
}

async fn detach_network_interface_now(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let attachment = params.require("AttachmentId")?.to_string();
    // Force: CloudStack's NIC removal is a hot unplug that never asks the guest, so every detach
    // is already forced; the value is checked and needs nothing more.
    params.bool("Force")?;
    let views = all_views(ctx).await?;
    let Some(v) = views.iter().find(|v| v["attachment"]["attachmentid"] == attachment.as_str()) else {
        return Err(Ec2Error::new(
            Code::InvalidAttachmentIdNotFound,
            format!("The attachment ID '{attachment}' does not exist"),
        ));
    };
    if v["_primary"] == true {
        return Err(Ec2Error::new(
            Code::OperationNotPermitted,
            "The network interface at device index 0 cannot be detached.",
        ));
    }
    let id = scalar_text(&v["id"]);
    let a = &v["attachment"];
    run_job(
        ctx,
        "removeNicFromVirtualMachine",
        &[p("virtualmachineid", scalar_text(&a["instanceuuid"])), p("nicid", scalar_text(&a["nicuuid"]))],
    )
    .await?;
    for _ in 0..RETRIES {
        let Some(mut r) = record(ctx, &id).await? else { return Ok(json!({})) };
        r.doc["attachment"] = Value::Null;
        if write(ctx, vec![Change::Update(r)]).await?.is_ok() {
            return Ok(json!({}));
        }
    }
    Err(Ec2Error::internal())
}

// ---- attributes and secondary addresses ---------------------------------------------------------

/// CloudStack's limit of secondary addresses on one NIC, as CreateNetworkInterface applies it.
const MAX_SECONDARY: usize = 10;

/// Write `r` changed by `change` (re-read and re-applied on a version conflict).
async fn update_record(ctx: &Ctx<'_>, id: &str, change: impl Fn(&mut Record)) -> Result<Record, Ec2Error> {
    let mut r = adopt(ctx, id).await?;
    for _ in 0..RETRIES {
        change(&mut r);
        if write(ctx, vec![Change::Update(r.clone())]).await?.is_ok() {
            return Ok(r);
        }
        r = record(ctx, id).await?.ok_or_else(|| not_found(id))?;
    }
    Err(Ec2Error::internal())
}

/// ModifyInstanceAttribute `GroupId.N` of an instance in a subnet: the groups of the instance
/// (and so of its primary interface), then its tier's list (docs/vpc.md "VPC security groups:
/// enforcement"); when the tiers cannot follow, the instance keeps its groups and the error is
/// answered. An EC2-Classic instance's groups cannot change (CloudStack fixes them at deploy).
pub async fn set_instance_group_ids(ctx: &Ctx<'_>, instance: &str, asked: &[String]) -> Result<(), Ec2Error> {
    let rec = ctx
        .ex
        .objects
        .get(&owner(ctx), instance)
        .await
        .map_err(store_failed)?
        .filter(|r| r.kind == super::vpc_sg::INSTANCE_GROUPS)
        .ok_or_else(|| {
            Ec2Error::new(
                Code::UnsupportedOperation,
                "The cloud behind this gateway cannot change the security groups of an instance outside a VPC.",
            )
        })?;
    let vpc = rec.vpc.clone().unwrap_or_default();
    let vpc_uuid = ctx.resolve_ids(Kind::Vpc, std::slice::from_ref(&vpc)).await?.remove(0);
    let groups = super::vpc_sg::launch_groups(ctx, &[], asked, &vpc, &vpc_uuid).await?;
    let before: Vec<String> = rec.doc["groups"].as_array().into_iter().flatten().map(scalar_text).collect();
    set_instance_groups(ctx, instance, &groups).await?;
    if let Err(e) = super::sg_enforce::sync(ctx, Some(&vpc_uuid), None).await {
        let _ = set_instance_groups(ctx, instance, &before).await;
        return Err(e);
    }
    Ok(())
}

/// After an interface's attachment or addresses changed: the tiers' security group lists follow
/// (docs/vpc.md "VPC security groups: enforcement"). A failure is logged: the tiers keep their
/// previous lists until the next change recomputes them.
async fn tiers_follow(ctx: &Ctx<'_>) {
    if let Err(e) = super::sg_enforce::sync(ctx, None, None).await {
        tracing::warn!(error = %e.message, "could not recompute the tier lists after an interface change");
    }
}

/// The groups an interface has now (a primary interface's are its instance's).
async fn groups_of(ctx: &Ctx<'_>, r: &Record) -> Result<Vec<String>, Ec2Error> {
    let own = |d: &Value| d["groups"].as_array().into_iter().flatten().map(scalar_text).collect::<Vec<_>>();
    if r.doc["primary"] == true
        && let Some(instance) = s(&r.doc["attachment"], "instanceid")
        && let Some(rec) = ctx.ex.objects.get(&owner(ctx), &instance).await.map_err(store_failed)?
    {
        return Ok(own(&rec.doc));
    }
    Ok(own(&r.doc))
}

/// Set the groups of an interface (and of its instance when it is the primary one).
async fn set_groups(ctx: &Ctx<'_>, r: &Record, groups: &[String]) -> Result<(), Ec2Error> {
    if r.doc["primary"] == true
        && let Some(instance) = s(&r.doc["attachment"], "instanceid")
    {
        set_instance_groups(ctx, &instance, groups).await?;
    }
    let id = r.id.clone();
    update_record(ctx, &id, |x| x.doc["groups"] = json!(groups)).await?;
    Ok(())
}

/// The instance-group record of an instance whose primary interface changes groups.
async fn set_instance_groups(ctx: &Ctx<'_>, instance: &str, groups: &[String]) -> Result<(), Ec2Error> {
    for _ in 0..RETRIES {
        let Some(mut r) = ctx.ex.objects.get(&owner(ctx), instance).await.map_err(store_failed)? else {
            return Err(Ec2Error::internal());
        };
        r.doc["groups"] = json!(groups);
        if write(ctx, vec![Change::Update(r)]).await?.is_ok() {
            return Ok(());
        }
    }
    Err(Ec2Error::internal())
}

/// ModifyNetworkInterfaceAttribute: exactly one of Description, SourceDestCheck,
/// SecurityGroupId.N, Attachment (DeleteOnTermination). All are the gateway's (the store);
/// the groups of an instance's primary interface are the instance's groups.
pub async fn modify_network_interface_attribute(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let id = params.require("NetworkInterfaceId")?.to_string();
    for (name, why) in [
        ("AssociatePublicIpAddress", "Public addresses are given with AssociateAddress in this cloud."),
        ("EnablePrimaryIpv6", "IPv6 is not supported by this cloud."),
        ("Attachment.EnaQueueCount", "ENA queues are not supported by this cloud."),
        ("Attachment.DefaultEnaQueueCount", "ENA queues are not supported by this cloud."),
    ] {
        if params.get(name).is_some() {
            return Err(Ec2Error::unsupported(format!("{name}: {why}")));
        }
    }
    for prefix in ["EnaSrdSpecification", "ConnectionTrackingSpecification", "AssociatedSubnetId"] {
        if params.get(prefix).is_some() || !params.list(prefix).is_empty() || !params.members(prefix).is_empty() {
            return Err(Ec2Error::unsupported(format!("{prefix} is not supported by this cloud.")));
        }
    }
    let description = params.get("Description.Value").map(str::to_string);
    let check = params.bool("SourceDestCheck.Value")?;
    let groups: Vec<String> = params.list("SecurityGroupId").into_iter().map(str::to_string).collect();
    let attachment = params.get("Attachment.AttachmentId").map(str::to_string);
    let dot = params.bool("Attachment.DeleteOnTermination")?;
    let asked = [description.is_some(), check.is_some(), !groups.is_empty(), attachment.is_some() || dot.is_some()];
    match asked.iter().filter(|a| **a).count() {
        0 => return Err(Ec2Error::missing_parameter("Description, SourceDestCheck, SecurityGroupId or Attachment")),
        1 => {}
        _ => {
            return Err(Ec2Error::combination(
                "Only one of Description, SourceDestCheck, SecurityGroupId and Attachment may be changed at a time.",
            ));
        }
    }
    if let Some(d) = description {
        if d.chars().count() > 255 {
            return Err(Ec2Error::invalid_value("Description.Value", &d, "At most 255 characters."));
        }
        update_record(ctx, &id, |r| r.doc["description"] = json!(d)).await?;
    } else if let Some(c) = check {
        update_record(ctx, &id, |r| r.doc["sourcedestcheck"] = json!(c)).await?;
    } else if !groups.is_empty() {
        let r = adopt(ctx, &id).await?;
        let vpc = s(&r.doc, "vpcid").unwrap_or_default();
        let vpc_uuid = s(&r.doc, "vpcuuid").unwrap_or_default();
        let groups = super::vpc_sg::launch_groups(ctx, &[], &groups, &vpc, &vpc_uuid).await?;
        let before = groups_of(ctx, &r).await?;
        set_groups(ctx, &r, &groups).await?;
        // The tiers follow (docs/vpc.md "VPC security groups: enforcement"); when they cannot,
        // the interface keeps its groups and the error is answered.
        if let Err(e) = super::sg_enforce::sync(ctx, Some(&vpc_uuid), None).await {
            let _ = set_groups(ctx, &r, &before).await;
            return Err(e);
        }
    } else {
        let attachment = attachment.ok_or_else(|| Ec2Error::missing_parameter("Attachment.AttachmentId"))?;
        let dot = dot.ok_or_else(|| Ec2Error::missing_parameter("Attachment.DeleteOnTermination"))?;
        let r = adopt(ctx, &id).await?;
        if r.doc["attachment"]["attachmentid"] != attachment.as_str() {
            return Err(Ec2Error::new(
                Code::InvalidAttachmentIdNotFound,
                format!("The attachment ID '{attachment}' does not exist"),
            ));
        }
        // An instance's primary interface kept past termination must keep its addresses out of
        // everyone else's hands as a detached interface's are: claim them while it is kept.
        let tier = s(&r.doc, "tieruuid").unwrap_or_default();
        let mut changes: Vec<Change> = Vec::new();
        if r.doc["primary"] == true {
            for ip in addresses(&r.doc) {
                changes.push(if dot {
                    Change::Release { claim: claim(&tier, &ip), holder: id.clone() }
                } else {
                    Change::Claim { claim: claim(&tier, &ip), holder: id.clone() }
                });
            }
        }
        let mut n = r.clone();
        n.doc["attachment"]["deleteontermination"] = json!(dot);
        changes.push(Change::Update(n));
        match write(ctx, changes).await? {
            Ok(()) => {}
            Err(WriteError::Conflict { what, .. }) if what.starts_with("eni-ip:") => {
                return Err(in_use(what.rsplit(':').next().unwrap_or_default()));
            }
            Err(_) => return Err(Ec2Error::new(Code::IncorrectState, "The interface changed meanwhile; try again.")),
        }
    }
    Ok(json!({}))
}

/// DescribeNetworkInterfaceAttribute: one attribute of the interface's view.
pub async fn describe_network_interface_attribute(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let id = params.require("NetworkInterfaceId")?.to_string();
    let attribute = params.get("Attribute").unwrap_or_default().to_string();
    let v = view_of(ctx, &id).await?;
    let mut out = json!({"networkInterfaceId": id});
    match attribute.as_str() {
        "description" => out["description"] = json!({"value": v["description"]}),
        "sourceDestCheck" => out["sourceDestCheck"] = json!({"value": v["sourcedestcheck"]}),
        "groupSet" => out["groupSet"] = v["groups"].clone(),
        "attachment" => {
            if v["attachment"].is_object() {
                out["attachment"] = v["attachment"].clone();
            }
        }
        "associatePublicIpAddress" => {
            return Err(Ec2Error::unsupported(
                "associatePublicIpAddress: public addresses are given with AssociateAddress in this cloud.",
            ));
        }
        "" => return Err(Ec2Error::missing_parameter("Attribute")),
        other => {
            return Err(Ec2Error::invalid_value(
                "Attribute",
                other,
                "Must be one of description, groupSet, sourceDestCheck, attachment.",
            ));
        }
    }
    Ok(out)
}

/// ResetNetworkInterfaceAttribute: EC2 resets only sourceDestCheck (to true).
pub async fn reset_network_interface_attribute(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let id = params.require("NetworkInterfaceId")?.to_string();
    if params.get("SourceDestCheck").is_none() {
        return Err(Ec2Error::missing_parameter("SourceDestCheck"));
    }
    update_record(ctx, &id, |r| r.doc["sourcedestcheck"] = json!(true)).await?;
    Ok(json!({}))
}

/// The attached NIC of a record, as CloudStack lists it now (None while detached).
async fn attached_nic(ctx: &Ctx<'_>, r: &Record) -> Result<Option<Value>, Ec2Error> {
    let a = &r.doc["attachment"];
    let (Some(vm_uuid), Some(nic_uuid)) = (s(a, "instanceuuid"), s(a, "nicuuid")) else { return Ok(None) };
    let Some(vm) = vm(ctx, &vm_uuid).await? else { return Ok(None) };
    Ok(nics(&vm).into_iter().find(|n| s(n, "id").as_deref() == Some(nic_uuid.as_str())))
}

/// AssignPrivateIpAddresses: secondary addresses asked for (PrivateIpAddress.N) or picked
/// (SecondaryPrivateIpAddressCount) are claimed in the store first, then, on an attached
/// interface, added to its NIC (addIpToNic); a failure removes what was added and releases the
/// claims.
pub async fn assign_private_ip_addresses(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let out = assign_private_ip_addresses_now(ctx, prep).await?;
    tiers_follow(ctx).await;
    Ok(out)
}

async fn assign_private_ip_addresses_now(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let id = params.require("NetworkInterfaceId")?.to_string();
    if params.get("Ipv4PrefixCount").is_some() || !params.list("Ipv4Prefix").is_empty() {
        return Err(Ec2Error::unsupported("IPv4 prefixes are not supported by this cloud."));
    }
    let asked: Vec<String> = params.list("PrivateIpAddress").into_iter().map(str::to_string).collect();
    let count = params.int("SecondaryPrivateIpAddressCount")?;
    let reassign = params.bool("AllowReassignment")?.unwrap_or(false);
    let count = match (asked.is_empty(), count) {
        (true, None) => {
            return Err(Ec2Error::missing_parameter("PrivateIpAddress or SecondaryPrivateIpAddressCount"));
        }
        (false, Some(_)) => {
            return Err(Ec2Error::combination(
                "PrivateIpAddress and SecondaryPrivateIpAddressCount may not be specified together",
            ));
        }
        (_, Some(n)) if n < 1 => {
            return Err(Ec2Error::invalid_value(
                "SecondaryPrivateIpAddressCount",
                &n.to_string(),
                "Must be at least 1.",
            ));
        }
        (_, Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        (false, None) => 0,
    };
    let r = adopt(ctx, &id).await?;
    let tier_uuid = s(&r.doc, "tieruuid").unwrap_or_default();
    let block = cs_subnet(ctx, &scalar_text(&r.doc["subnetid"]))
        .await
        .ok()
        .and_then(|t| s(&t, "cidr"))
        .and_then(|c| Block::parse(&c))
        .ok_or_else(Ec2Error::internal)?;
    let nic = attached_nic(ctx, &r).await?;
    let mut current: Vec<String> = match &nic {
        Some(n) => n["secondaryip"].as_array().into_iter().flatten().filter_map(|x| s(x, "ipaddress")).collect(),
        None => r.doc["secondary"].as_array().into_iter().flatten().map(scalar_text).collect(),
    };
    let mut asked = asked;
    asked.retain(|ip| !current.contains(ip) && s(&r.doc, "ipaddress").as_deref() != Some(ip.as_str()));
    asked.dedup();
    let total = current.len() + asked.len().max(count);
    if total > MAX_SECONDARY {
        return Err(Ec2Error::new(
            Code::PrivateIpAddressLimitExceeded,
            format!(
                "Number of private addresses will exceed limit for instance type. Specified: {total}. Max: {MAX_SECONDARY}"
            ),
        ));
    }
    for ip in &asked {
        check_address(&block, ip)?;
    }
    let used = used_on(ctx, &tier_uuid).await?;
    if let Some(ip) = asked.iter().find(|ip| used.contains(ip)) {
        if reassign {
            return Err(Ec2Error::unsupported(format!(
                "Address {ip} is in use; moving an address between interfaces (AllowReassignment) is not supported by this cloud."
            )));
        }
        return Err(in_use(ip));
    }
    let new: Vec<String> = if count > 0 { pick(&block, &used, count)? } else { asked };
    let claims: Vec<Change> =
        new.iter().map(|ip| Change::Claim { claim: claim(&tier_uuid, ip), holder: id.clone() }).collect();
    let release: Vec<Change> =
        new.iter().map(|ip| Change::Release { claim: claim(&tier_uuid, ip), holder: id.clone() }).collect();
    match write(ctx, claims).await? {
        Ok(()) => {}
        Err(WriteError::Conflict { what, .. }) => {
            return Err(in_use(what.rsplit(':').next().unwrap_or_default()));
        }
        Err(WriteError::Failed(e)) => return Err(store_failed(e)),
    }
    // On the NIC, when attached.
    let mut added: Vec<String> = Vec::new();
    if let Some(n) = &nic {
        let nic_uuid = s(n, "id").unwrap_or_default();
        for ip in &new {
            match run_job(ctx, "addIpToNic", &[p("nicid", &nic_uuid), p("ipaddress", ip)]).await {
                Ok(answer) => {
                    let sec = answer.get("nicsecondaryip").unwrap_or(&answer);
                    added.extend(s(sec, "id"));
                }
                Err(e) => {
                    for sid in &added {
                        if let Err(u) = run_job(ctx, "removeIpFromNic", &[p("id", sid)]).await {
                            tracing::warn!(error = %u, "could not remove a secondary address after a failed assign");
                        }
                    }
                    let _ = write(ctx, release).await;
                    return Err(e);
                }
            }
        }
    }
    current.extend(new.iter().cloned());
    update_record(ctx, &id, |r| r.doc["secondary"] = json!(current)).await?;
    Ok(json!({
        "networkInterfaceId": id,
        "assigned": new.iter().map(|ip| json!({"ipaddress": ip})).collect::<Vec<_>>(),
    }))
}

/// UnassignPrivateIpAddresses: each address must be a secondary address of the interface;
/// removeIpFromNic on an attached interface, then the claims go.
pub async fn unassign_private_ip_addresses(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let out = unassign_private_ip_addresses_now(ctx, prep).await?;
    tiers_follow(ctx).await;
    Ok(out)
}

async fn unassign_private_ip_addresses_now(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let params = &ctx.req.params;
    let id = params.require("NetworkInterfaceId")?.to_string();
    if !params.list("Ipv4Prefix").is_empty() {
        return Err(Ec2Error::unsupported("IPv4 prefixes are not supported by this cloud."));
    }
    let mut asked: Vec<String> = params.list("PrivateIpAddress").into_iter().map(str::to_string).collect();
    if asked.is_empty() {
        return Err(Ec2Error::missing_parameter("PrivateIpAddress"));
    }
    asked.dedup();
    let r = adopt(ctx, &id).await?;
    let tier_uuid = s(&r.doc, "tieruuid").unwrap_or_default();
    let nic = attached_nic(ctx, &r).await?;
    let current: Vec<(String, Option<String>)> = match &nic {
        Some(n) => n["secondaryip"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| s(x, "ipaddress").map(|ip| (ip, s(x, "id"))))
            .collect(),
        None => r.doc["secondary"].as_array().into_iter().flatten().map(|x| (scalar_text(x), None)).collect(),
    };
    if let Some(ip) = asked.iter().find(|ip| !current.iter().any(|(c, _)| c == *ip)) {
        return Err(Ec2Error::invalid_parameter(format!(
            "Some of the specified addresses are not assigned to interface {id}: {ip}"
        )));
    }
    for (ip, sid) in current.iter().filter(|(c, _)| asked.contains(c)) {
        if let Some(sid) = sid {
            run_job(ctx, "removeIpFromNic", &[p("id", sid)]).await.inspect_err(|e| {
                tracing::info!(address = %ip, code = %e.code, "removeIpFromNic refused");
            })?;
        }
    }
    let keep: Vec<String> = current.into_iter().map(|(c, _)| c).filter(|c| !asked.contains(c)).collect();
    let mut changes: Vec<Change> =
        asked.iter().map(|ip| Change::Release { claim: claim(&tier_uuid, ip), holder: id.clone() }).collect();
    for _ in 0..RETRIES {
        let mut n = record(ctx, &id).await?.ok_or_else(|| not_found(&id))?;
        n.doc["secondary"] = json!(keep);
        changes.push(Change::Update(n));
        if write(ctx, changes.clone()).await?.is_ok() {
            return Ok(json!({}));
        }
        changes.pop();
    }
    Err(Ec2Error::internal())
}
