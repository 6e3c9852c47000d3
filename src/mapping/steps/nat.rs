//! NAT gateways (docs/nat-gateways.md) over a CloudStack VPC's source NAT.
//!
//! A CloudStack VPC's virtual router already translates every tier's outbound traffic to the
//! VPC's source NAT address; CloudStack offers no per-subnet choice of NAT device or address.
//! So a NAT gateway is a store record (kind `nat-gateway`, a random `nat-` id) that EC2 tools
//! can create, route to, describe and delete with EC2's rules, and that holds what EC2 says it
//! holds: its Elastic IP (the CloudStack address is tagged `ec2bridge:nat-gateway=<id>` so every
//! gateway sees it taken, and `nat-eip:<address uuid>` is claimed in the store) and a private
//! address in its subnet (claimed like an interface's, `eni-ip:<tier>:<address>`).
//!
//! Record document: `{id, subnetid, tieruuid, vpcid, vpcuuid, ownerid, state,
//!   connectivitytype, createtime, deletetime?, failurecode?, failuremessage?, clienttoken?,
//!   addresses: [{allocationid?, publicip?, ipuuid?, privateip, eni, associationid?}], tags}`

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::{create_tags, pair, run_job, tag_specifications as tag_specs};
use super::eni;
use super::vpc_objects::{self as objects, Block, cs_subnet, owner};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};
use crate::objects::{Change, Record, WriteError, new_id};

pub const KIND: &str = "nat-gateway";
/// CloudStack tag on an Elastic IP a NAT gateway holds; the value is the NAT gateway's id.
pub const NAT_TAG: &str = "ec2bridge:nat-gateway";
const RETRIES: usize = 8;
/// EC2 shows a deleted NAT gateway for about an hour.
const DELETED_SHOWN_SECS: i64 = 3600;

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text).filter(|x| !x.is_empty())
}

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

fn well_formed(id: &str) -> bool {
    id.strip_prefix("nat-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub fn malformed(id: &str) -> Ec2Error {
    Ec2Error::new(Code::NatGatewayMalformed, format!("Invalid id: \"{id}\" (expecting \"nat-...\")"))
}

pub fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(Code::NatGatewayNotFound, format!("The Nat Gateway {id} was not found"))
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn stamp(t: time::OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The id of the interface EC2 shows for a NAT gateway's address, derived from the NAT's id.
fn eni_of(nat: &str) -> String {
    let h = Sha256::digest(format!("nat-eni:{nat}").as_bytes());
    format!("eni-{}", &hex::encode(h)[..17])
}

/// The association of a NAT gateway's Elastic IP (shown by DescribeAddresses too).
fn association_of(nat: &str, ip_uuid: &str) -> String {
    let h = Sha256::digest(format!("nat-association:{nat}:{ip_uuid}").as_bytes());
    format!("eipassoc-{}", &hex::encode(h)[..17])
}

async fn write(ctx: &Ctx<'_>, changes: Vec<Change>) -> Result<Result<(), WriteError>, Ec2Error> {
    match ctx.ex.objects.write(changes).await {
        Ok(()) => Ok(Ok(())),
        Err(WriteError::Failed(e)) => Err(store_failed(e)),
        Err(c) => Ok(Err(c)),
    }
}

/// The caller's NAT gateways (deleted ones older than EC2 shows them are removed here).
async fn records(ctx: &Ctx<'_>) -> Result<Vec<Record>, Ec2Error> {
    let all = ctx.ex.objects.list(&owner(ctx), KIND).await.map_err(store_failed)?;
    let mut out = Vec::new();
    for r in all {
        let gone = s(&r.doc, "deletetime")
            .and_then(|t| time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok())
            .is_some_and(|t| (now() - t).whole_seconds() > DELETED_SHOWN_SECS);
        if gone {
            let _ = write(ctx, vec![Change::Delete { id: r.id.clone(), version: r.version }]).await?;
        } else {
            out.push(r);
        }
    }
    Ok(out)
}

async fn record(ctx: &Ctx<'_>, id: &str) -> Result<Record, Ec2Error> {
    if !well_formed(id) {
        return Err(malformed(id));
    }
    match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
        Some(r) if r.kind == KIND => Ok(r),
        _ => Err(not_found(id)),
    }
}

fn live(r: &Record) -> bool {
    matches!(r.doc["state"].as_str(), Some("pending" | "available"))
}

/// The NAT gateways of the caller that hold a subnet (DeleteSubnet refuses while one does).
pub async fn in_subnet(ctx: &Ctx<'_>, subnet: &str) -> Result<bool, Ec2Error> {
    Ok(ctx
        .ex
        .objects
        .list(&owner(ctx), KIND)
        .await
        .map_err(store_failed)?
        .iter()
        .any(|r| live(r) && r.doc["subnetid"] == subnet))
}

/// A live NAT gateway of the caller in `vpc` (a route target), else its EC2 error.
pub async fn route_target(ctx: &Ctx<'_>, id: &str, vpc: &str, rtb: &str) -> Result<(), Ec2Error> {
    let r = record(ctx, id).await?;
    if !live(&r) {
        return Err(not_found(id));
    }
    if r.doc["vpcid"] != vpc {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("route table {rtb} and network gateway {id} belong to different networks"),
        ));
    }
    Ok(())
}

/// Is a route to this NAT gateway a blackhole (the gateway deleted, failed or gone)?
pub async fn blackhole(ctx: &Ctx<'_>, id: &str) -> Result<bool, Ec2Error> {
    Ok(match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
        Some(r) if r.kind == KIND => !live(&r),
        _ => true,
    })
}

/// Does a CloudStack public address belong to a NAT gateway?
pub fn holds(ip: &Value) -> Option<String> {
    ip["tags"].as_array()?.iter().find(|t| t["key"] == NAT_TAG).and_then(|t| t["value"].as_str()).map(str::to_string)
}

/// DescribeAddresses: for an address a NAT gateway holds, its association, interface and
/// private address (`(association id, eni id, private ip)`).
pub async fn address_view(
    ctx: &Ctx<'_>,
    nat: &str,
    ip_uuid: &str,
) -> Result<Option<(String, String, String)>, Ec2Error> {
    let Some(r) = ctx.ex.objects.get(&owner(ctx), nat).await.map_err(store_failed)? else { return Ok(None) };
    if r.kind != KIND || !live(&r) {
        return Ok(None);
    }
    let private = r.doc["addresses"][0]["privateip"].as_str().unwrap_or_default().to_string();
    Ok(Some((association_of(nat, ip_uuid), eni_of(nat), private)))
}

fn view(r: &Record) -> Value {
    let mut v = r.doc.clone();
    if let Some(addrs) = v["addresses"].as_array_mut() {
        let deleted = !matches!(r.doc["state"].as_str(), Some("pending" | "available"));
        for a in addrs {
            a["isprimary"] = json!(true);
            a["status"] = json!(if deleted { "disassociated" } else { "succeeded" });
            if deleted && let Some(o) = a.as_object_mut() {
                o.remove("associationid");
            }
        }
    }
    v
}

fn refuse_unsupported(ctx: &Ctx<'_>) -> Result<(), Ec2Error> {
    let p = &ctx.req.params;
    for name in ["SecondaryPrivateIpAddressCount", "VpcId"] {
        if p.get(name).is_some() {
            return Err(Ec2Error::unsupported(format!("{name} is not supported by this cloud's NAT gateways.")));
        }
    }
    if p.get("AvailabilityMode").is_some_and(|m| m != "zonal") {
        return Err(Ec2Error::unsupported("Only zonal NAT gateways exist in this cloud (AvailabilityMode zonal)."));
    }
    for list in ["SecondaryAllocationId", "SecondaryPrivateIpAddress", "AvailabilityZoneAddress"] {
        if !p.list(list).is_empty() || !p.members(list).is_empty() {
            return Err(Ec2Error::unsupported(format!("{list} is not supported by this cloud's NAT gateways.")));
        }
    }
    Ok(())
}

/// CreateNatGateway: checks, then one store batch (record + claims), then the CloudStack tag on
/// the Elastic IP; a failed tag removes the record again.
pub async fn create_nat_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let subnet_id = p.require("SubnetId")?.to_string();
    refuse_unsupported(ctx)?;
    let kind = p.get("ConnectivityType").unwrap_or("public").to_string();
    if kind != "public" && kind != "private" {
        return Err(Ec2Error::invalid_value("ConnectivityType", &kind, "Must be public or private."));
    }
    let tags = tag_specs(p, "natgateway")?;
    let token = p.get("ClientToken").filter(|t| !t.is_empty()).map(str::to_string);
    if let Some(t) = &token {
        if t.len() > 64 {
            return Err(Ec2Error::invalid_value("ClientToken", t, "At most 64 characters."));
        }
        if let Some(r) = records(ctx).await?.into_iter().find(|r| r.doc["clienttoken"] == t.as_str()) {
            if r.doc["subnetid"] != subnet_id.as_str() {
                return Err(Ec2Error::new(
                    Code::IdempotentParameterMismatch,
                    "The client token you have provided is associated with a resource that is already deleted or has different parameters.",
                ));
            }
            return Ok(json!({"natgateway": view(&r), "clienttoken": t}));
        }
    }
    let allocation = p.get("AllocationId").filter(|a| !a.is_empty()).map(str::to_string);
    match (kind.as_str(), &allocation) {
        ("public", None) => return Err(Ec2Error::missing_parameter("AllocationId")),
        ("private", Some(_)) => {
            return Err(Ec2Error::combination("AllocationId cannot be specified for a private NAT gateway."));
        }
        _ => {}
    }
    let tier = cs_subnet(ctx, &subnet_id).await?;
    let tier_uuid = s(&tier, "id").unwrap_or_default();
    let vpc_uuid = s(&tier, "vpcid").unwrap_or_default();
    let vpc_id = ids::ec2_id(Kind::Vpc, &vpc_uuid);
    let block = s(&tier, "cidr").and_then(|c| Block::parse(&c)).ok_or_else(Ec2Error::internal)?;
    let asked_ip = p.get("PrivateIpAddress").filter(|a| !a.is_empty()).map(str::to_string);
    if let Some(ip) = &asked_ip {
        eni::check_address(&block, ip)?;
    }
    let id = new_id("nat");
    let mut doc = json!({
        "id": id, "subnetid": subnet_id, "tieruuid": tier_uuid, "vpcid": vpc_id, "vpcuuid": vpc_uuid,
        "ownerid": owner(ctx), "state": "available", "connectivitytype": kind, "createtime": stamp(now()),
        "addresses": [], "tags": super::common::tag_list(&tags),
    });
    if let Some(t) = &token {
        doc["clienttoken"] = json!(t);
    }
    // The Elastic IP: the caller's, in the subnet's VPC, held by nothing.
    let mut eip: Option<(String, String, String)> = None; // (allocation id, uuid, public ip)
    if let Some(alloc) = &allocation {
        let ip = super::addresses::find_address(ctx).await?;
        let uuid = s(&ip, "id").unwrap_or_default();
        if s(&ip, "vpcid").as_deref() != Some(vpc_uuid.as_str()) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!(
                    "Elastic IP address {alloc} belongs to another network: in this cloud an address serves the VPC it was allocated in ({vpc_id} here)."
                ),
            ));
        }
        if s(&ip, "virtualmachineid").is_some() || holds(&ip).is_some() {
            return Err(Ec2Error::new(
                Code::ResourceAlreadyAssociated,
                format!("Elastic IP address [{alloc}] is already associated"),
            ));
        }
        eip = Some((alloc.clone(), uuid, s(&ip, "ipaddress").unwrap_or_default()));
        // EC2 accepts the request and fails the gateway when the VPC has no internet gateway.
        if objects::attached_gateway(ctx, &vpc_id).await?.is_none() {
            doc["state"] = json!("failed");
            doc["failurecode"] = json!(Code::GatewayNotAttached.as_str());
            doc["failuremessage"] = json!(format!("Network {vpc_id} has no Internet gateway attached"));
            doc["deletetime"] = json!(stamp(now()));
            let rec =
                Record { id: id.clone(), kind: KIND.into(), owner: owner(ctx), vpc: Some(vpc_id), doc, version: 0 };
            write(ctx, vec![Change::Insert(rec.clone())]).await?.map_err(store_failed)?;
            return Ok(answer(&rec, token.as_deref()));
        }
    }
    for _ in 0..RETRIES {
        let used = eni::used_on(ctx, &tier_uuid).await?;
        let private = match &asked_ip {
            Some(ip) if used.contains(ip) => return Err(eni::in_use(ip)),
            Some(ip) => ip.clone(),
            None => eni::pick(&block, &used, 1)?.remove(0),
        };
        let mut address = json!({"privateip": private, "eni": eni_of(&id)});
        let mut changes = vec![Change::Claim { claim: eni::claim(&tier_uuid, &private), holder: id.clone() }];
        if let Some((alloc, uuid, public)) = &eip {
            address["allocationid"] = json!(alloc);
            address["publicip"] = json!(public);
            address["ipuuid"] = json!(uuid);
            address["associationid"] = json!(association_of(&id, uuid));
            changes.push(Change::Claim { claim: format!("nat-eip:{uuid}"), holder: id.clone() });
        }
        let mut d = doc.clone();
        d["addresses"] = json!([address]);
        let rec = Record {
            id: id.clone(),
            kind: KIND.into(),
            owner: owner(ctx),
            vpc: Some(vpc_id.clone()),
            doc: d,
            version: 0,
        };
        changes.push(Change::Insert(rec.clone()));
        match write(ctx, changes).await? {
            Ok(()) => {
                if let Some((alloc, uuid, _)) = &eip
                    && let Err(e) =
                        create_tags(ctx, "PublicIpAddress", &[uuid.as_str()], &[(NAT_TAG.into(), id.clone())]).await
                {
                    let _ = write(ctx, vec![Change::Delete { id: id.clone(), version: 0 }]).await;
                    tracing::info!(code = %e.code, allocation = %alloc, "could not mark the NAT gateway's address");
                    return Err(e);
                }
                return Ok(answer(&rec, token.as_deref()));
            }
            Err(WriteError::Conflict { what, .. }) if what.starts_with("nat-eip:") => {
                let alloc = eip.map(|e| e.0).unwrap_or_default();
                return Err(Ec2Error::new(
                    Code::ResourceAlreadyAssociated,
                    format!("Elastic IP address [{alloc}] is already associated"),
                ));
            }
            Err(WriteError::Conflict { .. }) if asked_ip.is_some() => {
                return Err(eni::in_use(asked_ip.as_deref().unwrap_or_default()));
            }
            Err(WriteError::Conflict { .. }) => continue,
            Err(WriteError::Failed(e)) => return Err(store_failed(e)),
        }
    }
    Err(Ec2Error::internal())
}

fn answer(r: &Record, token: Option<&str>) -> Value {
    let mut a = json!({"natgateway": view(r)});
    if let Some(t) = token {
        a["clienttoken"] = json!(t);
    }
    a
}

/// DescribeNatGateways: the caller's NAT gateways (NatGatewayId.N must each exist).
pub async fn describe_nat_gateways(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let asked: Vec<String> = ctx.req.params.list("NatGatewayId").into_iter().map(str::to_string).collect();
    if let Some(bad) = asked.iter().find(|i| !well_formed(i)) {
        return Err(malformed(bad));
    }
    let recs = records(ctx).await?;
    if let Some(missing) = asked.iter().find(|a| !recs.iter().any(|r| r.id == **a)) {
        return Err(not_found(missing));
    }
    Ok(Value::Array(recs.iter().filter(|r| asked.is_empty() || asked.contains(&r.id)).map(view).collect()))
}

/// DeleteNatGateway: the Elastic IP is unmarked (deleteTags) and the claims released; the record
/// stays `deleted` for an hour, as EC2 shows it.
pub async fn delete_nat_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("NatGatewayId")?.to_string();
    let r = record(ctx, &id).await?;
    if r.doc["state"] == "deleted" {
        return Err(not_found(&id));
    }
    let address = r.doc["addresses"].get(0).cloned().unwrap_or(Value::Null);
    if let Some(uuid) = s(&address, "ipuuid") {
        let params = [
            pair("resourceids", &uuid),
            pair("resourcetype", "PublicIpAddress"),
            pair("tags[0].key", NAT_TAG),
            pair("tags[0].value", &id),
        ];
        if let Err(e) = run_job(ctx, "deleteTags", &params).await {
            // An address released behind the gateway's back has no tag to remove.
            if !e.is(Code::InvalidParameterValue) && !e.is(Code::InvalidAddressNotFound) {
                return Err(e);
            }
        }
    }
    let tier = s(&r.doc, "tieruuid").unwrap_or_default();
    for _ in 0..RETRIES {
        let mut n = record(ctx, &id).await?;
        n.doc["state"] = json!("deleted");
        n.doc["deletetime"] = json!(stamp(now()));
        let mut changes = Vec::new();
        if let Some(ip) = s(&address, "privateip") {
            changes.push(Change::Release { claim: eni::claim(&tier, &ip), holder: id.clone() });
        }
        if let Some(uuid) = s(&address, "ipuuid") {
            changes.push(Change::Release { claim: format!("nat-eip:{uuid}"), holder: id.clone() });
        }
        changes.push(Change::Update(n));
        if write(ctx, changes).await?.is_ok() {
            return Ok(json!({"natGatewayId": id}));
        }
    }
    Err(Ec2Error::internal())
}
