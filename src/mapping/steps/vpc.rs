//! VPCs and subnets over CloudStack VPCs and VPC tiers (docs/vpc.md): create (checks EC2 makes,
//! then CloudStack, then the store; undone on failure), delete (EC2's DependencyViolation before
//! anything changes), the Describe annotations (default VPC, DHCP options, subnet attributes,
//! free addresses), the VPC and subnet attributes, CreateDefaultVpc, and the default VPC lookup.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::{Undo, UndoCall, create_tags, tag_specifications as tag_specs};
use super::vpc_objects::{self as objects, Block, dependency, owner};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};
use crate::objects::{Change, Record};

/// CloudStack tags the gateway sets for itself (hidden from EC2's tag sets and DescribeTags).
pub const MARKER_PREFIX: &str = "ec2bridge:";
pub const DEFAULT_VPC_TAG: &str = "ec2bridge:default-vpc";
pub const DEFAULT_SUBNET_TAG: &str = "ec2bridge:default-for-az";
const VPC_ATTRS: &str = objects::VPC_ATTRS;
const SUBNET_ATTRS: &str = "subnet-attributes";

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text).filter(|x| !x.is_empty())
}

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

fn has_tag(v: &Value, key: &str) -> bool {
    v["tags"].as_array().is_some_and(|t| t.iter().any(|t| t["key"] == key))
}

/// The tags EC2 shows: the gateway's own markers left out.
fn visible_tags(v: &Value) -> Value {
    Value::Array(
        v["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter(|t| !t["key"].as_str().unwrap_or_default().starts_with(MARKER_PREFIX))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn cidr_value_error(cidr: &str) -> Ec2Error {
    Ec2Error::new(
        Code::InvalidParameterValue,
        format!("Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block."),
    )
}

/// Parameters EC2 has and this cloud cannot honour: refused, never dropped.
fn refuse_unsupported(ctx: &Ctx<'_>, names: &[&str]) -> Result<(), Ec2Error> {
    for n in names {
        if let Some(v) = ctx.req.params.get(n) {
            if v == "false" {
                continue;
            }
            return Err(Ec2Error::new(
                Code::UnsupportedOperation,
                format!("The parameter {n} is not supported by this cloud's VPCs."),
            ));
        }
    }
    Ok(())
}

/// The zone VPCs live in: the first enabled Advanced zone without security groups.
pub async fn vpc_zone(ctx: &Ctx<'_>) -> Result<Value, Ec2Error> {
    let zones = ctx.list_cached("listZones", &[], "zone").await?;
    zones
        .iter()
        .find(|z| {
            s(z, "networktype").as_deref() == Some("Advanced")
                && z["securitygroupsenabled"] != true
                && s(z, "allocationstate").is_none_or(|a| a == "Enabled")
        })
        .cloned()
        .ok_or_else(|| Ec2Error::new(Code::UnsupportedOperation, "This region has no zone that supports VPCs."))
}

/// The caller's default VPC (the CloudStack VPC with the marker tag), if any.
pub async fn default_vpc(ctx: &Ctx<'_>) -> Result<Option<Value>, Ec2Error> {
    let params = [
        ("listall".to_string(), "true".to_string()),
        ("tags[0].key".to_string(), DEFAULT_VPC_TAG.to_string()),
        ("tags[0].value".to_string(), "true".to_string()),
    ];
    let l = ctx.list("listVPCs", &params, "vpc").await?;
    Ok(l.into_iter().find(|v| has_tag(v, DEFAULT_VPC_TAG)))
}

async fn attrs(ctx: &Ctx<'_>, kind: &str) -> Result<HashMap<String, Value>, Ec2Error> {
    let l = ctx.ex.objects.list(&owner(ctx), kind).await.map_err(store_failed)?;
    Ok(l.into_iter().map(|r| (r.id, r.doc)).collect())
}

/// Set one field of a VPC's or subnet's attribute record (compare-and-set, retried).
async fn set_attr(
    ctx: &Ctx<'_>,
    kind: &str,
    id: &str,
    vpc: Option<&str>,
    key: &str,
    value: Value,
) -> Result<(), Ec2Error> {
    for _ in 0..8 {
        let change = match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
            Some(mut r) => {
                r.doc[key] = value.clone();
                Change::Update(r)
            }
            None => Change::Insert(Record {
                id: id.to_string(),
                kind: kind.to_string(),
                owner: owner(ctx),
                vpc: vpc.map(str::to_string),
                doc: json!({ key: value }),
                version: 0,
            }),
        };
        match ctx.ex.objects.write(vec![change]).await {
            Ok(()) => return Ok(()),
            Err(crate::objects::WriteError::Failed(e)) => return Err(store_failed(e)),
            Err(_) => continue,
        }
    }
    Err(Ec2Error::internal())
}

// ---- VPCs ---------------------------------------------------------------------------------------

/// A CIDR EC2 accepts for a VPC on this cloud: /16../28 (EC2) and a private range (CloudStack's
/// validateGuestCidr accepts RFC 1918 blocks only).
fn vpc_block(cidr: &str) -> Result<Block, Ec2Error> {
    let b = Block::parse(cidr).ok_or_else(|| cidr_value_error(cidr))?;
    let private =
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].iter().filter_map(|p| Block::parse(p)).any(|p| b.within(&p));
    if !(16..=28).contains(&b.prefix) || !private {
        return Err(Ec2Error::new(Code::InvalidVpcRange, format!("The CIDR '{cidr}' is invalid.")));
    }
    Ok(b)
}

async fn vpc_offering(ctx: &Ctx<'_>, zone: &str) -> Result<String, Ec2Error> {
    let l = ctx
        .list_cached(
            "listVPCOfferings",
            &[("zoneid".into(), zone.into()), ("state".into(), "Enabled".into())],
            "vpcoffering",
        )
        .await?;
    l.iter()
        .find(|o| o["isdefault"] == true)
        .or(l.first())
        .and_then(|o| s(o, "id"))
        .ok_or_else(|| Ec2Error::new(Code::UnsupportedOperation, "This cloud offers no VPC offering in the VPC zone."))
}

/// createVPC (waited for), tags, the main route table. Its deletion goes into `undo` (journaled,
/// so a gateway that dies mid-way leaves it to the next one) as soon as CloudStack names the VPC;
/// the caller disarms or fails the guard. Store rows written here are removed here on failure.
async fn make_vpc(
    ctx: &Ctx<'_>,
    undo: &mut Undo<'_>,
    cidr: &str,
    tags: &[(String, String)],
    markers: &[(String, String)],
) -> Result<Value, Ec2Error> {
    let zone = vpc_zone(ctx).await?;
    let zone_id = s(&zone, "id").unwrap_or_default();
    let offering = vpc_offering(ctx, &zone_id).await?;
    let name = tags.iter().find(|(k, _)| k == "Name").map(|(_, v)| v.clone()).unwrap_or_else(|| format!("vpc {cidr}"));
    let params = vec![
        ("name".to_string(), name.clone()),
        ("displaytext".to_string(), name),
        ("cidr".to_string(), cidr.to_string()),
        ("zoneid".to_string(), zone_id),
        ("vpcofferingid".to_string(), offering),
    ];
    let job = ctx.start_job("createVPC", &params).await?;
    let delete_vpc =
        |uuid: &str| UndoCall::job("deleteVPC", vec![("id".into(), uuid.to_string())]).after("createVPC", &job.jobid);
    if let Some(uuid) = &job.id {
        undo.made(&ids::ec2_id(Kind::Vpc, uuid), delete_vpc(uuid)).await;
    }
    let done = match ctx.wait_job("createVPC", &job.jobid).await {
        Ok(v) => v,
        Err(e) => {
            // A failed job made nothing; a job whose end is unknown may still make the VPC.
            let p = [("id".to_string(), job.id.clone().unwrap_or_default()), ("listall".into(), "true".into())];
            let listed = ctx.ex.backend.list_all(ctx.creds(), "listVPCs", &p, "vpc").await;
            let gone = match &listed {
                Ok(l) => l.is_empty(),
                Err(e) => matches!(e, crate::cloudstack::CsError::Api { errorcode: 431, .. }),
            };
            if let Some(uuid) = &job.id
                && gone
            {
                undo.unmade(&ids::ec2_id(Kind::Vpc, uuid)).await;
            }
            return Err(e);
        }
    };
    let uuid = match (s(done.get("vpc").unwrap_or(&done), "id"), &job.id) {
        (_, Some(id)) => id.clone(),
        (Some(id), None) => {
            undo.made(&ids::ec2_id(Kind::Vpc, &id), delete_vpc(&id)).await;
            id
        }
        (None, None) => return Err(Ec2Error::internal()),
    };
    let all_tags: Vec<(String, String)> = tags.iter().chain(markers).cloned().collect();
    if !all_tags.is_empty() {
        create_tags(ctx, "Vpc", &[uuid.as_str()], &all_tags).await?;
    }
    let vpc_id = ids::ec2_id(Kind::Vpc, &uuid);
    ctx.ex.ids.record(vec![(Kind::Vpc, vpc_id.clone(), uuid.clone())]).await;
    objects::ensure_main_table(ctx, &vpc_id, cidr).await?;
    if let Err(e) = super::vpc_sg::ensure_default(ctx, &vpc_id, &uuid).await {
        let _ = objects::forget_vpc(ctx, &vpc_id).await;
        return Err(e);
    }
    let l = ctx.list("listVPCs", &[("id".into(), uuid.clone()), ("listall".into(), "true".into())], "vpc").await?;
    let v = l.into_iter().next().ok_or_else(Ec2Error::internal)?;
    Ok(annotate_vpc(v, markers.iter().any(|(k, _)| k == DEFAULT_VPC_TAG), "default".into()))
}

fn annotate_vpc(mut v: Value, is_default: bool, dopt: String) -> Value {
    let tags = visible_tags(&v);
    // One CIDR block per VPC: its association id is derived from the VPC's.
    let assoc = s(&v, "id").map(|u| format!("vpc-cidr-assoc-{}", &ids::ec2_id(Kind::Vpc, &u)[4..]));
    if let Some(o) = v.as_object_mut() {
        o.insert("_cidrassociationid".into(), json!(assoc));
        o.insert("_isdefault".into(), json!(is_default));
        o.insert("_dhcpoptionsid".into(), json!(dopt));
        o.insert("_tags".into(), tags);
    }
    v
}

pub async fn create_vpc(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    refuse_unsupported(
        ctx,
        &[
            "AmazonProvidedIpv6CidrBlock",
            "Ipv6Pool",
            "Ipv6CidrBlock",
            "Ipv4IpamPoolId",
            "Ipv4NetmaskLength",
            "Ipv6IpamPoolId",
            "Ipv6NetmaskLength",
            "Ipv6CidrBlockNetworkBorderGroup",
        ],
    )?;
    let cidr = p.require("CidrBlock")?;
    if let Some(t) = p.get("InstanceTenancy").filter(|t| *t != "default") {
        return Err(Ec2Error::invalid_value("InstanceTenancy", t, "This cloud offers default tenancy only."));
    }
    let block = vpc_block(cidr)?;
    let tags = tag_specs(p, "vpc")?;
    let mut undo = Undo::new(ctx);
    match make_vpc(ctx, &mut undo, &block.to_string(), &tags, &[]).await {
        Ok(v) => {
            undo.disarm().await;
            Ok(v)
        }
        Err(e) => Err(undo.fail(e).await),
    }
}

/// DescribeVpcs (after the listVPCs call): default flag, DHCP options set, visible tags.
pub async fn vpc_annotations(ctx: &Ctx<'_>, _: &Prepared, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let attrs = attrs(ctx, VPC_ATTRS).await?;
    Ok(items
        .into_iter()
        .map(|v| {
            let id = s(&v, "id").map(|u| ids::ec2_id(Kind::Vpc, &u)).unwrap_or_default();
            let dopt = attrs.get(&id).and_then(|a| s(a, "dhcpoptionsid")).unwrap_or_else(|| "default".into());
            let default = has_tag(&v, DEFAULT_VPC_TAG);
            annotate_vpc(v, default, dopt)
        })
        .collect())
}

pub async fn delete_vpc(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("VpcId")?;
    let v = objects::cs_vpc(ctx, id).await?;
    let uuid = s(&v, "id").unwrap_or_default();
    let tiers = ctx
        .list("listNetworks", &[("vpcid".into(), uuid.clone()), ("listall".into(), "true".into())], "network")
        .await?;
    // Elastic IPs allocated in the VPC: CloudStack's deleteVPC would release them, and EC2
    // keeps an account's addresses whatever happens to a VPC (docs/vpc.md).
    if !tiers.is_empty()
        || objects::vpc_dependencies(ctx, id).await?
        || super::vpc_sg::vpc_has_groups(ctx, id).await?
        || super::network_acls::vpc_has_acls(ctx, &uuid).await?
        || super::addresses::vpc_addresses(ctx, &uuid).await?.iter().any(|a| !super::addresses::is_launch_ip(a))
    {
        return Err(dependency("vpc", id));
    }
    let j = ctx.start_job("deleteVPC", &[("id".into(), uuid)]).await?;
    ctx.wait_job("deleteVPC", &j.jobid).await?;
    // CloudStack's side is gone; what the store kept for the VPC goes with it (a failure
    // here leaves rows that DescribeRouteTables drops when it next sees them).
    if let Err(e) = super::vpc_sg::forget_vpc(ctx, id).await {
        tracing::warn!(vpc = id, error = %e.message, "store rows of a deleted VPC left for later");
    }
    if let Err(e) = objects::forget_vpc(ctx, id).await {
        tracing::warn!(vpc = id, error = %e.message, "store rows of a deleted VPC left for later");
    }
    if let Err(e) = super::network_acls::forget_vpc(ctx, id).await {
        tracing::warn!(vpc = id, error = %e.message, "store rows of a deleted VPC left for later");
    }
    Ok(Value::Null)
}

const VPC_ATTRIBUTES: &[(&str, &str, bool)] = &[
    ("enableDnsSupport", "enablednssupport", true),
    ("enableDnsHostnames", "enablednshostnames", false),
    ("enableNetworkAddressUsageMetrics", "enablenetworkaddressusagemetrics", false),
];

pub async fn describe_vpc_attribute(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let id = p.require("VpcId")?;
    let attr = p.require("Attribute")?;
    let Some((_, key, default)) = VPC_ATTRIBUTES.iter().find(|(n, _, _)| *n == attr) else {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("Value ({attr}) for parameter attribute is invalid. Unknown attribute."),
        ));
    };
    let v = objects::cs_vpc(ctx, id).await?;
    let stored = ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)?;
    // The default VPC has DNS hostnames on, as in EC2.
    let default = *default || (*key == "enablednshostnames" && has_tag(&v, DEFAULT_VPC_TAG));
    let value = stored.and_then(|r| r.doc.get(*key).and_then(Value::as_bool)).unwrap_or(default);
    Ok(json!({"vpcid": id, attr: if value { "true" } else { "false" }}))
}

pub async fn modify_vpc_attribute(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let id = p.require("VpcId")?;
    let given: Vec<(&str, &str)> = VPC_ATTRIBUTES
        .iter()
        .filter(|(n, _, _)| p.get(&format!("{}.Value", capitalized(n))).is_some() || p.get(&capitalized(n)).is_some())
        .map(|(n, k, _)| (*n, *k))
        .collect();
    let [(name, key)] = given.as_slice() else {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            "Exactly one attribute of EnableDnsSupport, EnableDnsHostnames and EnableNetworkAddressUsageMetrics must be given.",
        ));
    };
    let cap = capitalized(name);
    let raw = p.get(&format!("{cap}.Value")).or_else(|| p.get(&cap)).unwrap_or_default();
    let value = match raw {
        "true" => true,
        "false" => false,
        other => return Err(Ec2Error::invalid_value(&format!("{cap}.Value"), other, "Expected true or false.")),
    };
    if *key == "enablenetworkaddressusagemetrics" && value {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Network address usage metrics are not available on this cloud.",
        ));
    }
    objects::cs_vpc(ctx, id).await?;
    set_attr(ctx, VPC_ATTRS, id, Some(id), key, json!(value)).await?;
    Ok(Value::Null)
}

fn capitalized(n: &str) -> String {
    let mut c = n.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

// ---- subnets ------------------------------------------------------------------------------------

/// The VPC tier network offering of the zone (CloudStack's default one when it is there).
async fn tier_offering(ctx: &Ctx<'_>, zone: &str) -> Result<String, Ec2Error> {
    let params = [
        ("forvpc".to_string(), "true".to_string()),
        ("guestiptype".to_string(), "Isolated".to_string()),
        ("state".to_string(), "Enabled".to_string()),
        ("zoneid".to_string(), zone.to_string()),
    ];
    let l = ctx.list_cached("listNetworkOfferings", &params, "networkoffering").await?;
    l.iter()
        .find(|o| s(o, "name").as_deref() == Some("DefaultIsolatedNetworkOfferingForVpcNetworks"))
        .or(l.first())
        .and_then(|o| s(o, "id"))
        .ok_or_else(|| {
            Ec2Error::new(Code::UnsupportedOperation, "This cloud offers no network offering for VPC tiers.")
        })
}

/// createNetwork in the VPC for `cidr` (checked: inside the VPC, no overlap, /22../28), tags.
async fn make_subnet(
    ctx: &Ctx<'_>,
    undo: &mut Undo<'_>,
    vpc: &Value,
    cidr_text: &str,
    tags: &[(String, String)],
    markers: &[(String, String)],
) -> Result<Value, Ec2Error> {
    let vpc_uuid = s(vpc, "id").unwrap_or_default();
    let vpc_block = s(vpc, "cidr").and_then(|c| Block::parse(&c)).ok_or_else(Ec2Error::internal)?;
    let block = Block::parse(cidr_text).ok_or_else(|| cidr_value_error(cidr_text))?;
    // EC2: /16../28 inside the VPC. CloudStack: a user's tier is /22 or smaller.
    if !block.within(&vpc_block) || !(22..=28).contains(&block.prefix) {
        return Err(Ec2Error::new(Code::InvalidSubnetRange, format!("The CIDR '{cidr_text}' is invalid.")));
    }
    let tiers = ctx
        .list("listNetworks", &[("vpcid".into(), vpc_uuid.clone()), ("listall".into(), "true".into())], "network")
        .await?;
    if tiers.iter().filter_map(|t| s(t, "cidr").and_then(|c| Block::parse(&c))).any(|t| t.overlaps(&block)) {
        return Err(Ec2Error::new(
            Code::InvalidSubnetConflict,
            format!("The CIDR '{cidr_text}' conflicts with another subnet"),
        ));
    }
    let zone = s(vpc, "zoneid").unwrap_or_default();
    let offering = tier_offering(ctx, &zone).await?;
    let name =
        tags.iter().find(|(k, _)| k == "Name").map(|(_, v)| v.clone()).unwrap_or_else(|| format!("subnet {block}"));
    let mask = std::net::Ipv4Addr::from(block.mask()).to_string();
    let gateway = std::net::Ipv4Addr::from(block.base + 1).to_string();
    // The VPC's EC2 default network ACL (docs/network-acls.md), made when the VPC has none yet.
    let acl = super::network_acls::default_list(ctx, &vpc_uuid).await?;
    let mut params = vec![
        ("name".to_string(), name.clone()),
        ("displaytext".to_string(), name),
        ("networkofferingid".to_string(), offering),
        ("zoneid".to_string(), zone),
        ("vpcid".to_string(), vpc_uuid),
        ("gateway".to_string(), gateway),
        ("netmask".to_string(), mask),
    ];
    // The VPC's EC2 default network ACL (docs/network-acls.md), made when the VPC has none yet.
    params.push(("aclid".to_string(), acl));
    let created = ctx.call("createNetwork", &params).await?;
    let net = created.get("network").cloned().unwrap_or(created);
    let uuid = s(&net, "id").ok_or_else(Ec2Error::internal)?;
    undo.made(&ids::ec2_id(Kind::Subnet, &uuid), UndoCall::job("deleteNetwork", vec![("id".into(), uuid.clone())]))
        .await;
    let all_tags: Vec<(String, String)> = tags.iter().chain(markers).cloned().collect();
    if !all_tags.is_empty() {
        create_tags(ctx, "Network", &[uuid.as_str()], &all_tags).await?;
    }
    let subnet_id = ids::ec2_id(Kind::Subnet, &uuid);
    ctx.ex.ids.record(vec![(Kind::Subnet, subnet_id, uuid.clone())]).await;
    let l = ctx.list("listNetworks", &[("id".into(), uuid), ("listall".into(), "true".into())], "network").await?;
    let n = l.into_iter().next().unwrap_or(net);
    let mut out = annotate_subnets(ctx, vec![n]).await?;
    out.pop().ok_or_else(Ec2Error::internal)
}

pub async fn create_subnet(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    refuse_unsupported(
        ctx,
        &[
            "Ipv6CidrBlock",
            "OutpostArn",
            "Ipv6Native",
            "Ipv4IpamPoolId",
            "Ipv4NetmaskLength",
            "Ipv6IpamPoolId",
            "Ipv6NetmaskLength",
        ],
    )?;
    let vpc_id = p.require("VpcId")?;
    let cidr = p.require("CidrBlock")?;
    Block::parse(cidr).ok_or_else(|| cidr_value_error(cidr))?;
    let tags = tag_specs(p, "subnet")?;
    let vpc = objects::cs_vpc(ctx, vpc_id).await?;
    let zone_name = s(&vpc, "zonename").unwrap_or_default();
    let zone_id = s(&vpc, "zoneid").unwrap_or_default();
    for (param, want) in [("AvailabilityZone", &zone_name), ("AvailabilityZoneId", &zone_id)] {
        if let Some(az) = p.get(param).filter(|az| az != want) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!(
                    "Value ({az}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {zone_name}."
                ),
            ));
        }
    }
    let mut undo = Undo::new(ctx);
    match make_subnet(ctx, &mut undo, &vpc, cidr, &tags, &[]).await {
        Ok(v) => {
            undo.disarm().await;
            Ok(v)
        }
        Err(e) => Err(undo.fail(e).await),
    }
}

/// Subnet annotations: only VPC tiers; free addresses (size - 5 - NICs in the tier), default-for-AZ,
/// public IP on launch, visible tags.
async fn annotate_subnets(ctx: &Ctx<'_>, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let tiers: Vec<Value> = items.into_iter().filter(|n| s(n, "vpcid").is_some()).collect();
    if tiers.is_empty() {
        return Ok(tiers);
    }
    let vms = ctx.list("listVirtualMachines", &[("listall".into(), "true".into())], "virtualmachine").await?;
    let mut used: HashMap<String, u64> = HashMap::new();
    for vm in &vms {
        for nic in vm["nic"].as_array().into_iter().flatten() {
            if let Some(n) = s(nic, "networkid") {
                *used.entry(n).or_default() += 1;
            }
        }
    }
    let attrs = attrs(ctx, SUBNET_ATTRS).await?;
    Ok(tiers
        .into_iter()
        .map(|mut n| {
            let uuid = s(&n, "id").unwrap_or_default();
            let id = ids::ec2_id(Kind::Subnet, &uuid);
            let size = s(&n, "cidr").and_then(|c| Block::parse(&c)).map(|b| b.size()).unwrap_or(0);
            let free = size.saturating_sub(5).saturating_sub(used.get(&uuid).copied().unwrap_or(0));
            let default = has_tag(&n, DEFAULT_SUBNET_TAG);
            let public = attrs.get(&id).and_then(|a| a["mappubliciponlaunch"].as_bool()).unwrap_or(default);
            let tags = visible_tags(&n);
            if let Some(o) = n.as_object_mut() {
                o.insert("_available".into(), json!(free));
                o.insert("_defaultforaz".into(), json!(default));
                o.insert("_mappubliciponlaunch".into(), json!(public));
                o.insert("_tags".into(), tags);
            }
            n
        })
        .collect())
}

pub async fn subnet_annotations(ctx: &Ctx<'_>, _: &Prepared, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    annotate_subnets(ctx, items).await
}

pub async fn delete_subnet(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("SubnetId")?;
    let tier = objects::cs_subnet(ctx, id).await?;
    let uuid = s(&tier, "id").unwrap_or_default();
    let vms = ctx
        .list(
            "listVirtualMachines",
            &[("networkid".into(), uuid.clone()), ("listall".into(), "true".into())],
            "virtualmachine",
        )
        .await?;
    if vms
        .iter()
        .any(|v| s(v, "state").as_deref() != Some("Destroyed") && s(v, "state").as_deref() != Some("Expunging"))
    {
        return Err(dependency("subnet", id));
    }
    if super::nat::in_subnet(ctx, id).await? || super::eni::detached_in_subnet(ctx, id).await? {
        return Err(dependency("subnet", id));
    }
    // CloudStack refuses to delete a tier while terminated VMs on it are not expunged yet
    // (their NICs stay until then), and hides such VMs from their owner: try again for a
    // while, then answer what EC2 answers for a subnet still in use.
    let mut tries = 0;
    loop {
        let j = ctx.start_job("deleteNetwork", &[("id".into(), uuid.clone())]).await?;
        match ctx.wait_job("deleteNetwork", &j.jobid).await {
            Ok(_) => break,
            Err(_) if tries < 15 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(_) => return Err(dependency("subnet", id)),
        }
    }
    // EC2 drops the subnet's route table association with it.
    if let Err(e) = objects::forget_subnet(ctx, id).await {
        tracing::warn!(subnet = id, error = %e.message, "store rows of a deleted subnet left for later");
    }
    Ok(Value::Null)
}

pub async fn modify_subnet_attribute(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let id = p.require("SubnetId")?;
    refuse_unsupported(
        ctx,
        &[
            "AssignIpv6AddressOnCreation.Value",
            "MapCustomerOwnedIpOnLaunch.Value",
            "CustomerOwnedIpv4Pool",
            "EnableDns64.Value",
            "PrivateDnsHostnameTypeOnLaunch",
            "EnableResourceNameDnsARecordOnLaunch.Value",
            "EnableResourceNameDnsAAAARecordOnLaunch.Value",
            "EnableLniAtDeviceIndex",
            "DisableLniAtDeviceIndex.Value",
        ],
    )?;
    let raw = p.get("MapPublicIpOnLaunch.Value").ok_or_else(|| Ec2Error::missing_parameter("MapPublicIpOnLaunch"))?;
    let value = match raw {
        "true" => true,
        "false" => false,
        other => {
            return Err(Ec2Error::invalid_value("MapPublicIpOnLaunch.Value", other, "Expected true or false."));
        }
    };
    let tier = objects::cs_subnet(ctx, id).await?;
    let vpc = s(&tier, "vpcid").map(|u| ids::ec2_id(Kind::Vpc, &u));
    set_attr(ctx, SUBNET_ATTRS, id, vpc.as_deref(), "mappubliciponlaunch", json!(value)).await?;
    Ok(Value::Null)
}

// ---- the default VPC ----------------------------------------------------------------------------

const DEFAULT_CIDR: &str = "172.31.0.0/16";
/// EC2's default subnet is a /20; a CloudStack user's tier is /22 at most (docs/vpc.md).
const DEFAULT_SUBNET_CIDR: &str = "172.31.0.0/22";

pub async fn create_default_vpc(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    vpc_zone(ctx).await?;
    if default_vpc(ctx).await?.is_some() {
        return Err(Ec2Error::new(
            Code::DefaultVpcAlreadyExists,
            "A Default VPC already exists for this account in this region.",
        ));
    }
    let markers = vec![(DEFAULT_VPC_TAG.to_string(), "true".to_string())];
    // The tier and the VPC are undone by the journaled guard (newest first), the store rows here.
    let mut undo = Undo::new(ctx);
    let vpc = match make_vpc(ctx, &mut undo, DEFAULT_CIDR, &[], &markers).await {
        Ok(v) => v,
        Err(e) => return Err(undo.fail(e).await),
    };
    let uuid = s(&vpc, "id").unwrap_or_default();
    let vpc_id = ids::ec2_id(Kind::Vpc, &uuid);
    let rest = async {
        let subnet_markers = vec![(DEFAULT_SUBNET_TAG.to_string(), "true".to_string())];
        make_subnet(ctx, &mut undo, &vpc, DEFAULT_SUBNET_CIDR, &[], &subnet_markers).await?;
        objects::default_vpc_gateway(ctx, &vpc_id).await
    };
    if let Err(e) = rest.await {
        let _ = objects::forget_vpc(ctx, &vpc_id).await;
        let _ = super::vpc_sg::forget_vpc(ctx, &vpc_id).await;
        return Err(undo.fail(e).await);
    }
    undo.disarm().await;
    Ok(vpc)
}

/// DescribeAccountAttributes `default-vpc`: the default VPC's id, or `none`.
pub async fn default_vpc_attribute(ctx: &Ctx<'_>) -> Result<String, Ec2Error> {
    Ok(default_vpc(ctx)
        .await?
        .and_then(|v| s(&v, "id"))
        .map(|u| ids::ec2_id(Kind::Vpc, &u))
        .unwrap_or_else(|| "none".into()))
}

// ---- instances in subnets -----------------------------------------------------------------------

fn reserved_in(block: &Block, ip: u32) -> bool {
    // EC2 reserves the first four addresses and the last one of every subnet.
    ip < block.base + 4 || u64::from(ip) == u64::from(block.base) + block.size() - 1
}

/// RunInstances placement in a VPC: `SubnetId` (or `NetworkInterface.1.SubnetId`) -> the tier
/// (`networkids`, its zone), `PrivateIpAddress` (or the interface's) -> `ipaddress`, checked
/// against EC2's rules. Without a subnet, a VPC-only zone (named by `Placement`) means the
/// default subnet. In a security-group zone nothing changes. Answers the new parameters.
pub async fn placement(ctx: &Ctx<'_>, prep: &Prepared) -> Result<(Prepared, Option<VpcLaunch>), Ec2Error> {
    let p = &ctx.req.params;
    // NetworkInterface.N (EC2's combination rules checked first; docs/network-interfaces.md).
    let mut specs = super::launch_nics::parse(p)?;
    let rich = super::launch_nics::rich(p, &specs)?;
    if rich && specs.is_empty() {
        specs.push(super::launch_nics::device0(p));
    }
    let first = specs.first();
    // An existing interface at device 0 brings its subnet, address and groups.
    let existing0 = match first.and_then(|n| n.existing.as_deref()) {
        Some(id) => Some(super::launch_nics::existing(ctx, id).await?),
        None => None,
    };
    let subnet_owned: Option<String> = p
        .get("SubnetId")
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| first.and_then(|n| n.subnet.clone()))
        .or_else(|| existing0.as_ref().and_then(|r| s(&r.doc, "subnetid")));
    let subnet = subnet_owned.as_deref();
    let private_ip = p.get("PrivateIpAddress").or_else(|| first.and_then(|n| n.primary_ip.as_deref()));
    let nic_groups: Vec<String> = match &existing0 {
        Some(r) => r.doc["groups"].as_array().into_iter().flatten().map(scalar_text).collect(),
        None => first.map(|n| n.groups.clone()).unwrap_or_default(),
    };
    let mut out = prep.clone();
    let zone_param = out.params.iter().find(|(k, _)| k == "zoneid").map(|(_, v)| v.clone());
    let tier = match subnet {
        Some(sid) => Some(objects::cs_subnet(ctx, sid).await?),
        None => {
            // A VPC-only zone: the default subnet of the default VPC there.
            let zones = ctx.list_cached("listZones", &[], "zone").await?;
            let zone = zones.iter().find(|z| s(z, "id") == zone_param);
            let vpc_only = zone.is_some_and(|z| {
                z["securitygroupsenabled"] != true && s(z, "networktype").as_deref() == Some("Advanced")
            });
            if !vpc_only {
                super::launch_nics::refuse_interface_tags(p)?;
                if private_ip.is_some() || !nic_groups.is_empty() {
                    return Err(Ec2Error::new(
                        Code::InvalidParameterCombination,
                        "PrivateIpAddress and network interfaces need a SubnetId in this availability zone.",
                    ));
                }
                return Ok((out, None));
            }
            let Some(vpc) = default_vpc(ctx).await? else {
                return Err(Ec2Error::new(Code::VpcIdNotSpecified, "No default VPC for this user"));
            };
            let vpc_uuid = s(&vpc, "id").unwrap_or_default();
            let tiers = ctx
                .list("listNetworks", &[("vpcid".into(), vpc_uuid), ("listall".into(), "true".into())], "network")
                .await?;
            let t = tiers
                .into_iter()
                .find(|t| has_tag(t, DEFAULT_SUBNET_TAG) && s(t, "zoneid") == zone_param)
                .ok_or_else(|| {
                    Ec2Error::new(
                        Code::MissingInput,
                        "No subnets found for the default VPC. Use CreateSubnet to create a subnet.",
                    )
                })?;
            Some(t)
        }
    };
    let Some(tier) = tier else { return Ok((out, None)) };
    let tier_zone = s(&tier, "zoneid").unwrap_or_default();
    // An empty Placement.AvailabilityZone is no placement (Terraform's aws_instance sends one).
    if p.get("Placement.AvailabilityZone").is_some_and(|z| !z.is_empty())
        && zone_param.as_deref() != Some(tier_zone.as_str())
    {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            "The availability zone of the subnet and Placement.AvailabilityZone differ.",
        ));
    }
    // Security groups of a VPC are the gateway's (vpc_sg): checked here, recorded after launch.
    if out.params.iter().any(|(k, _)| k == "securitygroupnames") {
        return Err(Ec2Error::combination("The parameter groupName cannot be used with the parameter subnet"));
    }
    let vpc_uuid = s(&tier, "vpcid").unwrap_or_default();
    let vpc_id = ids::ec2_id(Kind::Vpc, &vpc_uuid);
    let uuids: Vec<String> = out
        .params
        .iter()
        .filter(|(k, _)| k == "securitygroupids")
        .flat_map(|(_, v)| v.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .collect();
    let groups = super::vpc_sg::launch_groups(ctx, &uuids, &nic_groups, &vpc_id, &vpc_uuid).await?;
    let nics = match rich {
        true => Some(super::launch_nics::plan(ctx, &specs, &tier, &groups, existing0).await?),
        false => None,
    };
    if let Some(ip) = private_ip.filter(|_| !rich) {
        let block = s(&tier, "cidr").and_then(|c| Block::parse(&c)).ok_or_else(Ec2Error::internal)?;
        let addr: std::net::Ipv4Addr =
            ip.parse().map_err(|_| Ec2Error::invalid_value("PrivateIpAddress", ip, "Not an IPv4 address."))?;
        let a = u32::from(addr);
        if !block.contains(a) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("Address {ip} does not fall within the subnet's address range"),
            ));
        }
        if reserved_in(&block, a) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("Address {ip} is in subnet's reserved address range"),
            ));
        }
        out.params.push(("ipaddress".into(), ip.to_string()));
    }
    // Addresses held by detached network interfaces are not handed out (docs/vpc.md).
    if !rich && let Some(ip) = super::eni::launch_address(ctx, &tier, private_ip).await? {
        out.params.push(("ipaddress".into(), ip));
    }
    let tier_uuid = s(&tier, "id").unwrap_or_default();
    let subnet = ids::ec2_id(Kind::Subnet, &tier_uuid);
    // A public address: AssociatePublicIpAddress of interface 0, else the subnet's
    // MapPublicIpOnLaunch (a default subnet maps by default).
    // EC2 gives one only to a single new interface at device 0.
    let public = match first.and_then(|n| n.public) {
        Some(b) => b,
        None if specs.len() > 1 || existing0_id(&specs) => false,
        None => attrs(ctx, SUBNET_ATTRS)
            .await?
            .get(&subnet)
            .and_then(|a| a["mappubliciponlaunch"].as_bool())
            .unwrap_or_else(|| has_tag(&tier, DEFAULT_SUBNET_TAG)),
    };
    out.params.retain(|(k, _)| k != "zoneid" && k != "securitygroupids" && k != "securitygroupnames");
    out.params.push(("zoneid".into(), tier_zone));
    // Several interfaces (or addresses the gateway picked): `iptonetworklist`, added once the
    // addresses are claimed (`claim_launch`).
    if !rich {
        out.params.push(("networkids".into(), tier_uuid.clone()));
    }
    Ok((out, Some(VpcLaunch { vpc: vpc_id, vpc_uuid, subnet, tier: tier_uuid, groups, public, nics, claimed: None })))
}

fn existing0_id(specs: &[super::launch_nics::Spec]) -> bool {
    specs.first().is_some_and(|n| n.existing.is_some())
}

/// Before the deploy: claim the addresses of a launch with network interfaces and add them to
/// the deploy's parameters (`iptonetworklist`). Nothing to do for other launches.
pub async fn claim_launch(ctx: &Ctx<'_>, launch: &mut Option<VpcLaunch>, prep: &mut Prepared) -> Result<(), Ec2Error> {
    let Some(l) = launch.as_mut() else { return Ok(()) };
    let Some(plan) = &l.nics else { return Ok(()) };
    let (claimed, params) = super::launch_nics::claim_addresses(ctx, plan).await?;
    prep.params.extend(params);
    l.claimed = Some(claimed);
    Ok(())
}

/// The deploy failed: release what `claim_launch` claimed.
pub async fn launch_failed(ctx: &Ctx<'_>, launch: &Option<VpcLaunch>) {
    if let Some(c) = launch.as_ref().and_then(|l| l.claimed.as_ref()) {
        super::launch_nics::release(ctx, c).await;
    }
}

/// What RunInstances in a subnet must do after the deploys started.
pub struct VpcLaunch {
    vpc: String,
    vpc_uuid: String,
    subnet: String,
    tier: String,
    groups: Vec<String>,
    /// Give each instance a public address (static NAT from an address of the VPC).
    public: bool,
    /// NetworkInterface.N beyond a plain device 0 (launch_nics), and its claimed addresses.
    nics: Option<super::launch_nics::Plan>,
    claimed: Option<super::launch_nics::Claimed>,
}

/// After RunInstances in a subnet: remember the instances' security groups (the VMs are removed
/// again if the store cannot), and put VPC, subnet and groups into the answer.
pub async fn after_launch(ctx: &Ctx<'_>, launch: &Option<VpcLaunch>, doc: &mut Value) -> Result<(), Ec2Error> {
    let Some(l) = launch else { return Ok(()) };
    let uuids: Vec<String> = doc["instances"].as_array().into_iter().flatten().filter_map(|v| s(v, "id")).collect();
    let ec2_ids: Vec<String> = uuids.iter().map(|u| ids::ec2_id(Kind::Instance, u)).collect();
    let made = &uuids;
    let undo = |e: Ec2Error| async move {
        for u in made {
            let _ = ctx.start_job("destroyVirtualMachine", &[("id".into(), u.clone())]).await;
        }
        if let Some(plan) = &l.nics {
            super::launch_nics::forget(ctx, plan).await;
        }
        if let Some(c) = &l.claimed {
            super::launch_nics::release(ctx, c).await;
        }
        e
    };
    if let Err(e) = super::vpc_sg::record_instances(ctx, &ec2_ids, &l.groups, &l.vpc).await {
        return Err(undo(e).await);
    }
    if let (Some(plan), Some(claimed), Some(vm)) = (&l.nics, &l.claimed, uuids.first())
        && let Err(e) = super::launch_nics::finish(ctx, plan, claimed, vm).await
    {
        return Err(undo(e).await);
    }
    let mut public = HashMap::new();
    if l.public {
        match super::addresses::launch_addresses(ctx, &l.vpc_uuid, &l.tier, &uuids).await {
            Ok(p) => public = p,
            Err(e) => return Err(undo(e).await),
        }
    }
    // The tier's list now counts the new instances' groups (docs/vpc.md "VPC security groups:
    // enforcement"); instances whose groups cannot be enforced are not kept.
    if let Err(e) = super::sg_enforce::sync(ctx, Some(&l.vpc_uuid), None).await {
        let e = undo(e).await;
        let _ = super::vpc_sg::forget_instances(ctx, &ec2_ids).await;
        super::sg_enforce::after_terminate(ctx, made).await;
        return Err(e);
    }
    let by_id = super::vpc_sg::instance_groups(ctx).await?;
    let groups = ec2_ids.first().and_then(|i| by_id.get(i)).cloned().unwrap_or_default();
    for vm in doc["instances"].as_array_mut().into_iter().flatten() {
        vm["securitygroup"] = Value::Array(groups.clone());
        vm["_vpcid"] = json!(l.vpc);
        vm["_subnetid"] = json!(l.subnet);
        if let Some(ip) = s(vm, "id").and_then(|u| public.get(&u)) {
            vm["publicip"] = json!(ip);
        }
    }
    doc["groups"] = Value::Array(groups);
    // EC2's answer shows the new instances' interfaces and private addresses: CloudStack made
    // the NICs when it accepted the deploys, so one listing gives them as DescribeInstances
    // will. Only decoration: without it the answer still names the instances.
    let listed = ctx
        .list(
            "listVirtualMachines",
            &[("ids".into(), uuids.join(",")), ("listall".into(), "true".into())],
            "virtualmachine",
        )
        .await;
    match listed {
        Ok(items) => {
            let annotated = instance_annotations(ctx, &Prepared::default(), items).await?;
            for vm in doc["instances"].as_array_mut().into_iter().flatten() {
                let Some(a) = annotated.iter().find(|a| a["id"] == vm["id"]) else { continue };
                for k in ["nic", "_interfaces", "_sourcedestcheck"] {
                    if let Some(v) = a.get(k).filter(|v| !v.is_null()) {
                        vm[k] = v.clone();
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list the launched instances' interfaces"),
    }
    Ok(())
}

/// DescribeInstances: `_vpcid`, `_subnetid` and `_interfaces` for instances whose default NIC is on
/// a VPC tier (one cached listNetworks, fetched again when a NIC names a network it lacks).
pub async fn instance_annotations(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    // Only NICs on isolated networks can be on a VPC tier: the rest (EC2-Classic) costs nothing.
    let isolated =
        |v: &Value| v["nic"].as_array().is_some_and(|n| n.iter().any(|n| s(n, "type").as_deref() == Some("Isolated")));
    if !items.iter().any(isolated) {
        return Ok(items);
    }
    let params = [("listall".to_string(), "true".to_string())];
    let mut nets = ctx.list_cached("listNetworks", &params, "network").await?;
    let known = |nets: &Vec<Value>, id: &str| nets.iter().any(|n| s(n, "id").as_deref() == Some(id));
    let wanted: Vec<String> = items
        .iter()
        .flat_map(|v| v["nic"].as_array().into_iter().flatten())
        .filter_map(|n| s(n, "networkid"))
        .collect();
    if wanted.iter().any(|w| !known(&nets, w)) {
        nets = ctx.list_refresh("listNetworks", &params, "network").await?;
    }
    let vpc_groups = super::vpc_sg::instance_groups(ctx).await?;
    // Interfaces the gateway keeps (attached ones, adopted primaries): their ids and attributes.
    let kept = super::eni::instance_overrides(ctx).await?;
    // Public addresses mapped to NICs (one list, only when some instance shows one).
    let mapped = if items.iter().any(|v| isolated(v) && s(v, "publicip").is_some()) {
        super::addresses::mapped_by_nic(ctx).await?
    } else {
        HashMap::new()
    };
    for vm in items.iter_mut() {
        // Read in place (the instance is changed only after its interfaces are made).
        let nics = vm["nic"].as_array().map(Vec::as_slice).unwrap_or_default();
        let mut interfaces = Vec::new();
        for nic in nics {
            let Some(net) = s(nic, "networkid").and_then(|id| nets.iter().find(|n| s(n, "id").as_deref() == Some(&id)))
            else {
                continue;
            };
            let Some(vpc) = s(net, "vpcid") else { continue };
            let nic_uuid = s(nic, "id").unwrap_or_default();
            let eni = format!("eni-{}", &ids::ec2_id(Kind::Subnet, &format!("nic:{nic_uuid}"))[7..]);
            let key = (
                s(vm, "id").unwrap_or_default(),
                s(net, "id").unwrap_or_default(),
                s(nic, "ipaddress").unwrap_or_default(),
            );
            let association = mapped.get(&key).cloned();
            // Each address's own public address (an Elastic IP on a secondary address).
            let mut addresses = super::eni::nic_addresses(nic);
            for a in addresses.as_array_mut().into_iter().flatten() {
                let k = (key.0.clone(), key.1.clone(), s(a, "ipaddress").unwrap_or_default());
                if let Some(m) = mapped.get(&k) {
                    a["association"] = m.clone();
                }
            }
            interfaces.push(json!({
                "_association": association,
                "id": eni,
                "subnetid": ids::ec2_id(Kind::Subnet, &s(net, "id").unwrap_or_default()),
                "vpcid": ids::ec2_id(Kind::Vpc, &vpc),
                "macaddress": nic["macaddress"],
                "ipaddress": nic["ipaddress"],
                "isdefault": nic["isdefault"],
                "deviceindex": nic.get("deviceid").cloned().unwrap_or(json!(0)),
                "attachmentid": format!("eni-attach-{}", &eni[4..]),
                "ownerid": vm["account"],
                // For the network-interface.attachment.instance-id / .availability-zone filters.
                "instanceid": ids::ec2_id(Kind::Instance, &s(vm, "id").unwrap_or_default()),
                "zonename": vm["zonename"],
                // EC2's defaults (what the answer shows); the kept attributes below override.
                "sourcedestcheck": true,
                "deleteontermination": true,
                "addresses": addresses,
                "_nicuuid": nic_uuid,
            }));
        }
        let primary = interfaces.iter().find(|i| i["isdefault"] == true).or(interfaces.first()).cloned();
        let groups = s(vm, "id").and_then(|u| vpc_groups.get(&ids::ec2_id(Kind::Instance, &u))).cloned();
        for i in interfaces.iter_mut() {
            i["_groups"] = Value::Array(groups.clone().unwrap_or_default());
            if let Some(Value::Object(o)) = i["_nicuuid"].as_str().and_then(|u| kept.get(u)) {
                for (k, v) in o {
                    i[k.as_str()] = v.clone();
                }
            }
        }
        // The instance's sourceDestCheck is its primary interface's (true unless changed).
        let check = interfaces
            .iter()
            .find(|i| i["isdefault"] == true)
            .or(interfaces.first())
            .and_then(|i| i.get("sourcedestcheck").and_then(Value::as_bool))
            .unwrap_or(true);
        if let (Some(pri), Some(o)) = (primary, vm.as_object_mut()) {
            if let Some(g) = &groups {
                o.insert("securitygroup".into(), Value::Array(g.clone()));
            }
            o.insert("_sourcedestcheck".into(), json!(check));
            o.insert("_vpcid".into(), pri["vpcid"].clone());
            o.insert("_subnetid".into(), pri["subnetid"].clone());
            o.insert("_interfaces".into(), Value::Array(interfaces));
        }
    }
    Ok(items)
}
