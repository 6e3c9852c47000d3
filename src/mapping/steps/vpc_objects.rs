//! The VPC objects the gateway keeps itself (docs/vpc.md): internet gateways, route tables (routes,
//! associations, the main table of every VPC) and DHCP options sets, in the `ObjectStore`
//! (the store's database when the gateway has one). Every change is a compare-and-set batch, so
//! two gateways on one database never lose each other's changes: a conflict re-reads and retries.
//!
//! Documents (JSON, CloudStack-like lowercase field names so shapes read them):
//! - internet gateway: `{id, ownerid, attachments: [{vpcid, state}], tags}`
//! - route table: `{id, vpcid, ownerid, routes: [{destinationcidrblock, gatewayid?, instanceid?,
//!   origin, state}], associations: [{id, main, subnetid?}], tags}`
//! - DHCP options: `{id, ownerid, configuration: [{key, values: [..]}], tags}`
//! - VPC attributes (`vpc-attributes`, id = the VPC's id): `{dhcpoptionsid}`

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::tag_specifications as tag_specs;
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};
use crate::objects::{Change, Record, WriteError, new_id};

pub const IGW: &str = "internet-gateway";
pub const RTB: &str = "route-table";
pub const DOPT: &str = "dhcp-options";
pub const VPC_ATTRS: &str = "vpc-attributes";

// ---- shared pieces ---------------------------------------------------------------------------

/// The owner of the caller's objects: its CloudStack account (docs/vpc.md "Ownership"), qualified
/// by the region outside the default one (the same account name in two CloudStacks is two owners).
pub fn owner(ctx: &Ctx<'_>) -> String {
    let who = ctx.who.account.clone().unwrap_or_else(|| format!("key:{}", ctx.who.access_key));
    match &ctx.ex.opts.store_scope {
        Some(region) => format!("region:{region}:{who}"),
        None => who,
    }
}

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text).filter(|x| !x.is_empty())
}

/// `<prefix>-` + 8 or 17 lowercase hex digits.
fn well_formed(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')).is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The malformed-id and not-found errors of each store kind (EC2's codes and messages).
struct KindErr {
    prefix: &'static str,
    malformed: Code,
    not_found: Code,
    noun: &'static str,
}

const IGW_ERR: KindErr = KindErr {
    prefix: "igw",
    malformed: Code::InvalidInternetGatewayIdMalformed,
    not_found: Code::InvalidInternetGatewayIdNotFound,
    noun: "internetGateway",
};
const RTB_ERR: KindErr = KindErr {
    prefix: "rtb",
    malformed: Code::InvalidRouteTableIdMalformed,
    not_found: Code::InvalidRouteTableIdNotFound,
    noun: "routeTable",
};
const DOPT_ERR: KindErr = KindErr {
    prefix: "dopt",
    malformed: Code::InvalidDhcpOptionsIdMalformed,
    not_found: Code::InvalidDhcpOptionIdNotFound,
    noun: "dhcpOption",
};

const ENI_ERR: KindErr = KindErr {
    prefix: "eni",
    malformed: Code::InvalidNetworkInterfaceIdMalformed,
    not_found: Code::InvalidNetworkInterfaceIdNotFound,
    noun: "networkInterface",
};

const NAT_ERR: KindErr = KindErr {
    prefix: "nat",
    malformed: Code::NatGatewayMalformed,
    not_found: Code::NatGatewayNotFound,
    noun: "natGateway",
};

const ACL_ERR: KindErr = KindErr {
    prefix: "acl",
    malformed: Code::InvalidNetworkAclIdMalformed,
    not_found: Code::InvalidNetworkAclIdNotFound,
    noun: "networkAcl",
};

const SG_ERR: KindErr = KindErr {
    prefix: "sg",
    malformed: Code::InvalidGroupIdMalformed,
    not_found: Code::InvalidGroupNotFound,
    noun: "securityGroup",
};

fn malformed(k: &KindErr, id: &str) -> Ec2Error {
    Ec2Error::new(k.malformed, format!("Invalid id: \"{id}\" (expecting \"{}-...\")", k.prefix))
}

fn not_found(k: &KindErr, id: &str) -> Ec2Error {
    Ec2Error::new(k.not_found, format!("The {} ID '{id}' does not exist", k.noun))
}

pub fn dependency(noun: &str, id: &str) -> Ec2Error {
    Ec2Error::new(Code::DependencyViolation, format!("The {noun} '{id}' has dependencies and cannot be deleted."))
}

/// One object of the caller, by EC2 id (shape-checked first).
async fn fetch(ctx: &Ctx<'_>, k: &KindErr, kind: &str, id: &str) -> Result<Record, Ec2Error> {
    if !well_formed(k.prefix, id) {
        return Err(malformed(k, id));
    }
    match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
        Some(r) if r.kind == kind => Ok(r),
        _ => Err(not_found(k, id)),
    }
}

/// Every object of `kind` the caller owns.
async fn all(ctx: &Ctx<'_>, kind: &str) -> Result<Vec<Record>, Ec2Error> {
    ctx.ex.objects.list(&owner(ctx), kind).await.map_err(store_failed)
}

/// Apply a batch; a conflict means another request changed what was read: the caller retries.
async fn write(ctx: &Ctx<'_>, changes: Vec<Change>) -> Result<Result<(), WriteError>, Ec2Error> {
    match ctx.ex.objects.write(changes).await {
        Ok(()) => Ok(Ok(())),
        Err(WriteError::Failed(e)) => Err(store_failed(e)),
        Err(c) => Ok(Err(c)),
    }
}

/// How often a read-modify-write is retried after a conflict before it gives up (InternalError).
const RETRIES: usize = 8;

fn tags_json(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect())
}

/// The id-list parameter of a Describe, each id shape-checked; `None` when none was given.
fn asked_ids(ctx: &Ctx<'_>, param: &str, k: &KindErr) -> Result<Option<Vec<String>>, Ec2Error> {
    let ids: Vec<String> = ctx.req.params.list(param).into_iter().map(str::to_string).collect();
    if ids.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = ids.iter().find(|i| !well_formed(k.prefix, i)) {
        return Err(malformed(k, bad));
    }
    Ok(Some(ids))
}

/// Keep the asked-for objects; an asked id the caller does not have is NotFound.
fn select(docs: Vec<Value>, asked: Option<Vec<String>>, k: &KindErr) -> Result<Vec<Value>, Ec2Error> {
    let Some(asked) = asked else { return Ok(docs) };
    if let Some(missing) = asked.iter().find(|a| !docs.iter().any(|d| s(d, "id").as_deref() == Some(a.as_str()))) {
        return Err(not_found(k, missing));
    }
    Ok(docs.into_iter().filter(|d| s(d, "id").is_some_and(|i| asked.contains(&i))).collect())
}

// ---- VPCs and subnets as CloudStack has them --------------------------------------------------

/// The caller's CloudStack VPC behind an EC2 VPC id (`InvalidVpcID.Malformed` / `.NotFound`).
pub async fn cs_vpc(ctx: &Ctx<'_>, vpc_id: &str) -> Result<Value, Ec2Error> {
    let uuid = ctx.resolve_ids(Kind::Vpc, &[vpc_id.to_string()]).await?.remove(0);
    let l = ctx.list("listVPCs", &[("id".into(), uuid.clone()), ("listall".into(), "true".into())], "vpc").await?;
    l.into_iter().find(|v| s(v, "id").as_deref() == Some(uuid.as_str())).ok_or_else(|| vpc_not_found(vpc_id))
}

pub fn vpc_not_found(id: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidVpcIdNotFound, format!("The vpc ID '{id}' does not exist"))
}

/// The caller's CloudStack VPC tier behind an EC2 subnet id.
pub async fn cs_subnet(ctx: &Ctx<'_>, subnet_id: &str) -> Result<Value, Ec2Error> {
    let uuid = ctx.resolve_ids(Kind::Subnet, &[subnet_id.to_string()]).await?.remove(0);
    let l =
        ctx.list("listNetworks", &[("id".into(), uuid.clone()), ("listall".into(), "true".into())], "network").await?;
    l.into_iter().find(|v| s(v, "id").as_deref() == Some(uuid.as_str()) && s(v, "vpcid").is_some()).ok_or_else(|| {
        Ec2Error::new(Code::InvalidSubnetIdNotFound, format!("The subnet ID '{subnet_id}' does not exist"))
    })
}

/// Every VPC of the caller, as (EC2 id, CloudStack VPC).
pub async fn cs_vpcs(ctx: &Ctx<'_>) -> Result<Vec<(String, Value)>, Ec2Error> {
    let l = ctx.list("listVPCs", &[("listall".into(), "true".into())], "vpc").await?;
    let out: Vec<(String, Value)> =
        l.into_iter().filter_map(|v| s(&v, "id").map(|u| (ids::ec2_id(Kind::Vpc, &u), v))).collect();
    ctx.ex.ids.record(out.iter().filter_map(|(e, v)| s(v, "id").map(|u| (Kind::Vpc, e.clone(), u))).collect()).await;
    Ok(out)
}

// ---- CIDR arithmetic ----------------------------------------------------------------------------

/// An IPv4 block `a.b.c.d/n` whose address is the block's first address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Block {
    pub base: u32,
    pub prefix: u8,
}

impl Block {
    pub fn parse(text: &str) -> Option<Block> {
        let (ip, len) = text.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = len.parse().ok().filter(|p| *p <= 32)?;
        let b = Block { base: u32::from(ip), prefix };
        (b.base & b.mask() == b.base).then_some(b)
    }
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) }
    }
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }
    pub fn contains(&self, ip: u32) -> bool {
        ip & self.mask() == self.base
    }
    pub fn within(&self, other: &Block) -> bool {
        self.prefix >= other.prefix && other.contains(self.base)
    }
    pub fn overlaps(&self, other: &Block) -> bool {
        self.within(other) || other.within(self)
    }
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// A destination CIDR of a route (any prefix length; the address must be the block's first).
fn destination(text: &str) -> Result<Block, Ec2Error> {
    Block::parse(text).ok_or_else(|| {
        Ec2Error::new(
            Code::InvalidParameterValue,
            format!("Value ({text}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block."),
        )
    })
}

// ---- internet gateways --------------------------------------------------------------------------

pub async fn create_internet_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let tags = tag_specs(&ctx.req.params, IGW)?;
    let id = new_id("igw");
    let doc = json!({"id": id, "ownerid": owner(ctx), "attachments": [], "tags": tags_json(&tags)});
    let rec = Record { id, kind: IGW.into(), owner: owner(ctx), vpc: None, doc: doc.clone(), version: 0 };
    write(ctx, vec![Change::Insert(rec)]).await?.map_err(store_failed)?;
    Ok(doc)
}

pub async fn describe_internet_gateways(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let asked = asked_ids(ctx, "InternetGatewayId", &IGW_ERR)?;
    let docs = all(ctx, IGW).await?.into_iter().map(|r| r.doc).collect();
    Ok(Value::Array(select(docs, asked, &IGW_ERR)?))
}

pub async fn delete_internet_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("InternetGatewayId")?;
    for _ in 0..RETRIES {
        let r = fetch(ctx, &IGW_ERR, IGW, id).await?;
        if r.doc["attachments"].as_array().is_some_and(|a| !a.is_empty()) {
            return Err(dependency("internetGateway", id));
        }
        if write(ctx, vec![Change::Delete { id: r.id, version: r.version }]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

/// Attach (`args.op = "attach"`) or detach an internet gateway.
pub async fn attach_internet_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let igw = p.require("InternetGatewayId")?;
    let vpc = p.require("VpcId")?;
    fetch(ctx, &IGW_ERR, IGW, igw).await?;
    cs_vpc(ctx, vpc).await?;
    for _ in 0..RETRIES {
        let mut r = fetch(ctx, &IGW_ERR, IGW, igw).await?;
        if let Some(on) = r.doc["attachments"].as_array().and_then(|a| a.first()).and_then(|a| s(a, "vpcid")) {
            return Err(Ec2Error::new(
                Code::ResourceAlreadyAssociated,
                format!("resource {igw} is already attached to network {on}"),
            ));
        }
        r.doc["attachments"] = json!([{"vpcid": vpc, "state": "available"}]);
        r.vpc = Some(vpc.to_string());
        let claim = Change::Claim { claim: format!("igw-attachment:{vpc}"), holder: igw.to_string() };
        match write(ctx, vec![claim, Change::Update(r)]).await? {
            Ok(()) => return Ok(Value::Null),
            Err(WriteError::Conflict { holder: Some(other), .. }) => {
                return Err(Ec2Error::new(
                    Code::ResourceAlreadyAssociated,
                    format!("resource {vpc} is already attached to an internet gateway ({other})"),
                ));
            }
            Err(_) => continue,
        }
    }
    Err(Ec2Error::internal())
}

pub async fn detach_internet_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let igw = p.require("InternetGatewayId")?;
    let vpc = p.require("VpcId")?;
    if !well_formed("vpc", vpc) {
        return Err(Ec2Error::new(
            Code::InvalidVpcIdMalformed,
            format!("Invalid id: \"{vpc}\" (expecting \"vpc-...\")"),
        ));
    }
    let mut checked = false;
    for _ in 0..RETRIES {
        let mut r = fetch(ctx, &IGW_ERR, IGW, igw).await?;
        let on = r.doc["attachments"].as_array().and_then(|a| a.first()).and_then(|a| s(a, "vpcid"));
        if on.as_deref() != Some(vpc) {
            return Err(Ec2Error::new(
                Code::GatewayNotAttached,
                format!("resource {igw} is not attached to network {vpc}"),
            ));
        }
        // Public addresses mapped to instances of the VPC (Elastic IPs, launch-time
        // addresses) keep the gateway, as in EC2. A VPC CloudStack no longer has has none.
        if !checked {
            checked = true;
            if let Ok(mut u) = ctx.resolve_ids(Kind::Vpc, &[vpc.to_string()]).await {
                let addrs = super::addresses::vpc_addresses(ctx, &u.remove(0)).await?;
                if addrs.iter().any(|a| s(a, "virtualmachineid").is_some() || super::nat::holds(a).is_some()) {
                    return Err(Ec2Error::new(
                        Code::DependencyViolation,
                        format!(
                            "Network {vpc} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."
                        ),
                    ));
                }
            }
        }
        r.doc["attachments"] = json!([]);
        r.vpc = None;
        let release = Change::Release { claim: format!("igw-attachment:{vpc}"), holder: igw.to_string() };
        if write(ctx, vec![Change::Update(r), release]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

/// The internet gateway attached to `vpc`, if any.
pub async fn attached_gateway(ctx: &Ctx<'_>, vpc: &str) -> Result<Option<String>, Ec2Error> {
    ctx.ex.objects.holder(&format!("igw-attachment:{vpc}")).await.map_err(store_failed)
}

// ---- DHCP options -------------------------------------------------------------------------------

const DHCP_KEYS: &[&str] =
    &["domain-name-servers", "domain-name", "ntp-servers", "netbios-name-servers", "netbios-node-type"];

pub async fn create_dhcp_options(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let tags = tag_specs(p, DOPT)?;
    let mut config: Vec<Value> = Vec::new();
    let members = p.members("DhcpConfiguration");
    if members.is_empty() {
        return Err(Ec2Error::missing_parameter("DhcpConfiguration"));
    }
    for m in members {
        let key = m.get("Key").unwrap_or("");
        if !DHCP_KEYS.contains(&key) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("Value ({key}) for parameter name is invalid. Unknown DHCP option"),
            ));
        }
        let values: Vec<&str> = m.list("Value");
        if values.is_empty() {
            return Err(Ec2Error::missing_parameter("DhcpConfiguration.N.Value"));
        }
        for v in &values {
            let ok = match key {
                "domain-name-servers" => *v == "AmazonProvidedDNS" || v.parse::<Ipv4Addr>().is_ok(),
                "ntp-servers" | "netbios-name-servers" => v.parse::<Ipv4Addr>().is_ok(),
                "netbios-node-type" => matches!(*v, "1" | "2" | "4" | "8"),
                _ => !v.is_empty() && v.len() <= 255,
            };
            if !ok {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("Value ({v}) for parameter value is invalid. Invalid {key} value"),
                ));
            }
        }
        if config.iter().any(|c| c["key"] == key) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("Value ({key}) for parameter name is invalid. Duplicate DHCP option"),
            ));
        }
        config.push(json!({"key": key, "values": values}));
    }
    let id = new_id("dopt");
    let doc = json!({"id": id, "ownerid": owner(ctx), "configuration": config, "tags": tags_json(&tags)});
    let rec = Record { id, kind: DOPT.into(), owner: owner(ctx), vpc: None, doc: doc.clone(), version: 0 };
    write(ctx, vec![Change::Insert(rec)]).await?.map_err(store_failed)?;
    Ok(doc)
}

pub async fn describe_dhcp_options(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let asked = asked_ids(ctx, "DhcpOptionsId", &DOPT_ERR)?;
    let docs = all(ctx, DOPT).await?.into_iter().map(|r| r.doc).collect();
    Ok(Value::Array(select(docs, asked, &DOPT_ERR)?))
}

pub async fn delete_dhcp_options(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("DhcpOptionsId")?;
    for _ in 0..RETRIES {
        let r = fetch(ctx, &DOPT_ERR, DOPT, id).await?;
        let users = all(ctx, VPC_ATTRS).await?;
        if users.iter().any(|u| s(&u.doc, "dhcpoptionsid").as_deref() == Some(id)) {
            return Err(dependency("dhcpOptions", id));
        }
        if write(ctx, vec![Change::Delete { id: r.id, version: r.version }]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

/// AssociateDhcpOptions: the set (or `default`) becomes the VPC's (kept in the VPC's attribute
/// record). What CloudStack applies of it: docs/vpc.md "Departures".
pub async fn associate_dhcp_options(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let dopt = p.require("DhcpOptionsId")?;
    let vpc = p.require("VpcId")?;
    if dopt != "default" {
        fetch(ctx, &DOPT_ERR, DOPT, dopt).await?;
    }
    cs_vpc(ctx, vpc).await?;
    let value = if dopt == "default" { Value::Null } else { json!(dopt) };
    for _ in 0..RETRIES {
        let change = match ctx.ex.objects.get(&owner(ctx), vpc).await.map_err(store_failed)? {
            Some(mut r) => {
                r.doc["dhcpoptionsid"] = value.clone();
                Change::Update(r)
            }
            None => Change::Insert(Record {
                id: vpc.to_string(),
                kind: VPC_ATTRS.into(),
                owner: owner(ctx),
                vpc: Some(vpc.to_string()),
                doc: json!({"dhcpoptionsid": value}),
                version: 0,
            }),
        };
        if write(ctx, vec![change]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

// ---- route tables -------------------------------------------------------------------------------

fn local_route(cidr: &str) -> Value {
    json!({"destinationcidrblock": cidr, "gatewayid": "local", "origin": "CreateRouteTable", "state": "active"})
}

fn new_table(ctx: &Ctx<'_>, vpc: &str, cidr: &str, main: bool, tags: &[(String, String)]) -> Record {
    let id = new_id("rtb");
    let associations =
        if main { json!([{"id": new_id("rtbassoc"), "main": true, "state": "associated"}]) } else { json!([]) };
    let doc = json!({
        "id": id, "vpcid": vpc, "ownerid": owner(ctx), "routes": [local_route(cidr)],
        "associations": associations, "tags": tags_json(tags),
    });
    Record { id, kind: RTB.into(), owner: owner(ctx), vpc: Some(vpc.to_string()), doc, version: 0 }
}

/// Make sure the VPC has its main route table (made by whichever gateway sees the VPC first; the
/// `main-rtb:<vpc>` claim keeps it to one).
pub async fn ensure_main_table(ctx: &Ctx<'_>, vpc: &str, cidr: &str) -> Result<(), Ec2Error> {
    let claim = format!("main-rtb:{vpc}");
    if ctx.ex.objects.holder(&claim).await.map_err(store_failed)?.is_some() {
        return Ok(());
    }
    let t = new_table(ctx, vpc, cidr, true, &[]);
    let holder = t.id.clone();
    // A conflict means another request made it at the same moment: fine.
    let _ = write(ctx, vec![Change::Insert(t), Change::Claim { claim, holder }]).await?;
    Ok(())
}

/// The route tables of the caller whose VPC still exists (main tables made where missing; tables
/// of VPCs gone from CloudStack are removed).
async fn live_tables(ctx: &Ctx<'_>) -> Result<Vec<Record>, Ec2Error> {
    let vpcs = cs_vpcs(ctx).await?;
    for (id, v) in &vpcs {
        ensure_main_table(ctx, id, &s(v, "cidr").unwrap_or_default()).await?;
    }
    let mut out = Vec::new();
    for r in all(ctx, RTB).await? {
        if vpcs.iter().any(|(id, _)| Some(id) == r.vpc.as_ref()) {
            out.push(r);
        } else {
            let _ = write(ctx, vec![Change::Delete { id: r.id.clone(), version: r.version }]).await?;
        }
    }
    Ok(out)
}

/// Route states as EC2 shows them: a route to an internet gateway that is no longer attached to
/// the table's VPC is a `blackhole`.
async fn annotate_routes(ctx: &Ctx<'_>, mut doc: Value) -> Result<Value, Ec2Error> {
    let vpc = s(&doc, "vpcid").unwrap_or_default();
    let attached = attached_gateway(ctx, &vpc).await?;
    let has_vgw_route = doc["routes"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| s(r, "gatewayid").is_some_and(|g| g.starts_with("vgw-"))));
    let vgw = if has_vgw_route { super::vpn::attached_vpn_gateway(ctx, &vpc).await? } else { None };
    if let Some(routes) = doc["routes"].as_array_mut() {
        for r in routes {
            if let Some(g) = s(r, "gatewayid").filter(|g| g.starts_with("igw-")) {
                r["state"] = json!(if attached.as_deref() == Some(g.as_str()) { "active" } else { "blackhole" });
            }
            if let Some(n) = s(r, "natgatewayid") {
                let hole = super::nat::blackhole(ctx, &n).await?;
                r["state"] = json!(if hole { "blackhole" } else { "active" });
            }
            if let Some(g) = s(r, "gatewayid").filter(|g| g.starts_with("vgw-")) {
                r["state"] = json!(if vgw.as_deref() == Some(g.as_str()) { "active" } else { "blackhole" });
            }
        }
    }
    let rtb = s(&doc, "id").unwrap_or_default();
    if let Some(assocs) = doc["associations"].as_array_mut() {
        for a in assocs {
            a["routetableid"] = json!(rtb);
        }
    }
    Ok(doc)
}

/// CreateRouteTable; ClientToken makes it idempotent (the SDKs fill one in).
pub async fn create_route_table(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    super::common::idempotent(ctx, async move {
        let p = &ctx.req.params;
        let vpc = p.require("VpcId")?;
        let tags = tag_specs(p, RTB)?;
        let v = cs_vpc(ctx, vpc).await?;
        let cidr = s(&v, "cidr").unwrap_or_default();
        ensure_main_table(ctx, vpc, &cidr).await?;
        let t = new_table(ctx, vpc, &cidr, false, &tags);
        let doc = t.doc.clone();
        write(ctx, vec![Change::Insert(t)]).await?.map_err(store_failed)?;
        annotate_routes(ctx, doc).await
    })
    .await
}

pub async fn describe_route_tables(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let asked = asked_ids(ctx, "RouteTableId", &RTB_ERR)?;
    let mut docs = Vec::new();
    for r in live_tables(ctx).await? {
        docs.push(annotate_routes(ctx, r.doc).await?);
    }
    super::vpn::propagated_routes(ctx, &mut docs).await?;
    Ok(Value::Array(select(docs, asked, &RTB_ERR)?))
}

/// One route table of the caller (its Malformed / NotFound errors).
pub async fn route_table(ctx: &Ctx<'_>, id: &str) -> Result<Record, Ec2Error> {
    fetch(ctx, &RTB_ERR, RTB, id).await
}

/// Change a route table's document (read, change, compare-and-set; retried on conflicts).
pub async fn update_route_table(ctx: &Ctx<'_>, id: &str, change: impl Fn(&mut Value)) -> Result<(), Ec2Error> {
    for _ in 0..RETRIES {
        let mut r = fetch(ctx, &RTB_ERR, RTB, id).await?;
        change(&mut r.doc);
        if write(ctx, vec![Change::Update(r)]).await?.is_ok() {
            return Ok(());
        }
    }
    Err(Ec2Error::internal())
}

pub async fn delete_route_table(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("RouteTableId")?;
    for _ in 0..RETRIES {
        let r = fetch(ctx, &RTB_ERR, RTB, id).await?;
        // Associated (a subnet, or the main association) -> EC2's DependencyViolation.
        if r.doc["associations"].as_array().is_some_and(|a| !a.is_empty()) {
            return Err(dependency("routeTable", id));
        }
        if write(ctx, vec![Change::Delete { id: r.id, version: r.version }]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

/// What a route points at, checked: `(field, id)`. Internet gateways must be attached to the
/// table's VPC; instances must be in it. Other targets (NAT gateways, peering, transit gateways,
/// network interfaces) do not exist on this cloud and are refused, not dropped.
async fn route_target(ctx: &Ctx<'_>, table_vpc: &str, rtb: &str) -> Result<(&'static str, String), Ec2Error> {
    let p = &ctx.req.params;
    for unsupported in [
        "VpcPeeringConnectionId",
        "TransitGatewayId",
        "NetworkInterfaceId",
        "EgressOnlyInternetGatewayId",
        "LocalGatewayId",
        "CarrierGatewayId",
        "VpcEndpointId",
        "CoreNetworkArn",
        "DestinationIpv6CidrBlock",
        "DestinationPrefixListId",
    ] {
        if p.get(unsupported).is_some() {
            return Err(Ec2Error::new(
                Code::UnsupportedOperation,
                format!("The parameter {unsupported} is not supported by this cloud's VPCs."),
            ));
        }
    }
    let targets: Vec<&str> =
        ["GatewayId", "InstanceId", "NatGatewayId"].into_iter().filter(|t| p.get(t).is_some()).collect();
    match targets.as_slice() {
        [] => Err(Ec2Error::missing_parameter("GatewayId")),
        ["GatewayId"] => {
            let g = p.get("GatewayId").unwrap_or_default();
            if g.starts_with("vgw-") {
                // A VPN gateway attached to the table's VPC (docs/vpn.md).
                if super::vpn::vpn_gateway_vpc(ctx, g).await?.as_deref() != Some(table_vpc) {
                    return Err(Ec2Error::new(
                        Code::InvalidParameterValue,
                        format!("route table {rtb} and network gateway {g} belong to different networks"),
                    ));
                }
                return Ok(("gatewayid", g.to_string()));
            }
            if !g.starts_with("igw-") {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("The gateway ID '{g}' is not valid: only internet gateways can be route targets here"),
                ));
            }
            fetch(ctx, &IGW_ERR, IGW, g).await?;
            if attached_gateway(ctx, table_vpc).await?.as_deref() != Some(g) {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("route table {rtb} and network gateway {g} belong to different networks"),
                ));
            }
            Ok(("gatewayid", g.to_string()))
        }
        ["NatGatewayId"] => {
            let n = p.get("NatGatewayId").unwrap_or_default();
            super::nat::route_target(ctx, n, table_vpc, rtb).await?;
            Ok(("natgatewayid", n.to_string()))
        }
        ["InstanceId"] => {
            let i = p.get("InstanceId").unwrap_or_default();
            let uuid = ctx.resolve_ids(Kind::Instance, &[i.to_string()]).await?.remove(0);
            let vm = ctx
                .list(
                    "listVirtualMachines",
                    &[("id".into(), uuid), ("listall".into(), "true".into())],
                    "virtualmachine",
                )
                .await?;
            let vpc_uuid = ctx.resolve_ids(Kind::Vpc, &[table_vpc.to_string()]).await?.remove(0);
            let tiers = ctx
                .list("listNetworks", &[("vpcid".into(), vpc_uuid), ("listall".into(), "true".into())], "network")
                .await?;
            let in_vpc = vm.first().and_then(|v| v["nic"].as_array()).is_some_and(|nics| {
                nics.iter().any(|n| tiers.iter().any(|t| s(t, "id").is_some() && s(t, "id") == s(n, "networkid")))
            });
            if !in_vpc {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("route table {rtb} and instance {i} belong to different networks"),
                ));
            }
            Ok(("instanceid", i.to_string()))
        }
        _ => Err(Ec2Error::combination(format!(
            "The parameter {} cannot be used with the parameter {}",
            targets[0], targets[1]
        ))),
    }
}

/// CreateRoute (`args.op = "create"`), ReplaceRoute (`"replace"`), DeleteRoute (`"delete"`).
pub async fn change_route(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let op = ctx.action.args.get("op").and_then(Value::as_str).unwrap_or("create");
    let p = &ctx.req.params;
    let rtb = p.require("RouteTableId")?;
    let dest_text = p.require("DestinationCidrBlock")?;
    let dest = destination(dest_text)?.to_string();
    let table = fetch(ctx, &RTB_ERR, RTB, rtb).await?;
    let vpc = table.vpc.clone().unwrap_or_default();
    let target = if op == "delete" { None } else { Some(route_target(ctx, &vpc, rtb).await?) };
    for _ in 0..RETRIES {
        let mut r = fetch(ctx, &RTB_ERR, RTB, rtb).await?;
        let routes = r.doc["routes"].as_array().cloned().unwrap_or_default();
        let pos = routes.iter().position(|x| s(x, "destinationcidrblock").as_deref() == Some(dest.as_str()));
        if let Some(i) = pos
            && s(&routes[i], "gatewayid").as_deref() == Some("local")
            && op != "create"
        {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("cannot remove local route {dest} in route table {rtb}"),
            ));
        }
        let mut routes = routes;
        match (op, pos) {
            ("create", Some(_)) => {
                return Err(Ec2Error::new(
                    Code::RouteAlreadyExists,
                    format!("The route identified by {dest} already exists."),
                ));
            }
            ("replace", None) => {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("There is no route defined for '{dest}' in the route table. Use CreateRoute instead."),
                ));
            }
            ("delete", None) => {
                return Err(Ec2Error::new(
                    Code::InvalidRouteNotFound,
                    format!("no route with destination-cidr-block {dest} in route table {rtb}"),
                ));
            }
            ("delete", Some(i)) => {
                routes.remove(i);
            }
            (_, pos) => {
                let (field, id) = target.clone().ok_or_else(Ec2Error::internal)?;
                let mut route = json!({"destinationcidrblock": dest, "origin": "CreateRoute", "state": "active"});
                route[field] = json!(id);
                match pos {
                    Some(i) => routes[i] = route,
                    None => routes.push(route),
                }
            }
        }
        r.doc["routes"] = Value::Array(routes);
        if write(ctx, vec![Change::Update(r)]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

/// The route table (and association) holding `assoc`, among the caller's tables.
async fn find_association(ctx: &Ctx<'_>, assoc: &str) -> Result<(Record, Value), Ec2Error> {
    if !well_formed("rtbassoc", assoc) {
        return Err(Ec2Error::new(
            Code::InvalidAssociationIdMalformed,
            format!("Invalid id: \"{assoc}\" (expecting \"rtbassoc-...\")"),
        ));
    }
    for r in all(ctx, RTB).await? {
        if let Some(a) = r.doc["associations"].as_array().and_then(|l| l.iter().find(|a| a["id"] == assoc)).cloned() {
            return Ok((r, a));
        }
    }
    Err(Ec2Error::new(Code::InvalidAssociationIdNotFound, format!("The association ID '{assoc}' does not exist")))
}

pub async fn associate_route_table(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let rtb = p.require("RouteTableId")?;
    if p.get("GatewayId").is_some() {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Gateway route tables (AssociateRouteTable GatewayId) are not supported by this cloud.",
        ));
    }
    let subnet = p.require("SubnetId")?;
    let table = fetch(ctx, &RTB_ERR, RTB, rtb).await?;
    let tier = cs_subnet(ctx, subnet).await?;
    let tier_vpc = s(&tier, "vpcid").map(|u| ids::ec2_id(Kind::Vpc, &u));
    if tier_vpc != table.vpc {
        return Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("Route table {rtb} and subnet {subnet} belong to different networks"),
        ));
    }
    let assoc = new_id("rtbassoc");
    for _ in 0..RETRIES {
        let mut r = fetch(ctx, &RTB_ERR, RTB, rtb).await?;
        if let Some(list) = r.doc["associations"].as_array_mut() {
            list.push(json!({"id": assoc, "main": false, "subnetid": subnet, "state": "associated"}));
        }
        let claim = Change::Claim { claim: format!("rtb-association:{subnet}"), holder: rtb.to_string() };
        match write(ctx, vec![claim, Change::Update(r)]).await? {
            Ok(()) => return Ok(json!({"associationid": assoc, "state": "associated"})),
            Err(WriteError::Conflict { holder: Some(_), .. }) => {
                return Err(Ec2Error::new(
                    Code::ResourceAlreadyAssociated,
                    format!("the specified association for route table {rtb} conflicts with an existing association"),
                ));
            }
            Err(_) => continue,
        }
    }
    Err(Ec2Error::internal())
}

pub async fn disassociate_route_table(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let assoc = ctx.req.params.require("AssociationId")?;
    for _ in 0..RETRIES {
        let (mut r, a) = find_association(ctx, assoc).await?;
        if a["main"] == true {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("cannot disassociate the main route table association {assoc}"),
            ));
        }
        let subnet = s(&a, "subnetid").unwrap_or_default();
        if let Some(list) = r.doc["associations"].as_array_mut() {
            list.retain(|x| x["id"] != assoc);
        }
        let release = Change::Release { claim: format!("rtb-association:{subnet}"), holder: r.id.clone() };
        if write(ctx, vec![Change::Update(r), release]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

/// ReplaceRouteTableAssociation: the subnet (or the VPC's main association) moves to another
/// table of the same VPC, under a new association id, in one batch.
pub async fn replace_route_table_association(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let assoc = p.require("AssociationId")?;
    let rtb = p.require("RouteTableId")?;
    fetch(ctx, &RTB_ERR, RTB, rtb).await?;
    let new_assoc = new_id("rtbassoc");
    for _ in 0..RETRIES {
        let (mut old, a) = find_association(ctx, assoc).await?;
        let mut target = fetch(ctx, &RTB_ERR, RTB, rtb).await?;
        if target.vpc != old.vpc {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!("Route table {rtb} and association {assoc} belong to different networks"),
            ));
        }
        let main = a["main"] == true;
        let subnet = s(&a, "subnetid");
        let mut item = json!({"id": new_assoc, "main": main, "state": "associated"});
        if let Some(sub) = &subnet {
            item["subnetid"] = json!(sub);
        }
        let mut changes = Vec::new();
        let vpc = old.vpc.clone().unwrap_or_default();
        let claim = match &subnet {
            Some(sub) => format!("rtb-association:{sub}"),
            None => format!("main-rtb:{vpc}"),
        };
        if old.id == target.id {
            if let Some(list) = old.doc["associations"].as_array_mut() {
                list.retain(|x| x["id"] != assoc);
                list.push(item);
            }
            changes.push(Change::Update(old));
        } else {
            if let Some(list) = old.doc["associations"].as_array_mut() {
                list.retain(|x| x["id"] != assoc);
            }
            if let Some(list) = target.doc["associations"].as_array_mut() {
                list.push(item);
            }
            changes.push(Change::Release { claim: claim.clone(), holder: old.id.clone() });
            changes.push(Change::Claim { claim, holder: target.id.clone() });
            changes.push(Change::Update(old));
            changes.push(Change::Update(target));
        }
        if write(ctx, changes).await?.is_ok() {
            return Ok(json!({"newassociationid": new_assoc, "state": "associated"}));
        }
    }
    Err(Ec2Error::internal())
}

/// Store objects of a VPC that is being deleted: its main route table and attributes. Other
/// tables, an attached gateway, are dependencies (checked by DeleteVpc before).
pub async fn vpc_dependencies(ctx: &Ctx<'_>, vpc: &str) -> Result<bool, Ec2Error> {
    if attached_gateway(ctx, vpc).await?.is_some() || super::vpn::attached_vpn_gateway(ctx, vpc).await?.is_some() {
        return Ok(true);
    }
    let tables = all(ctx, RTB).await?;
    Ok(tables.iter().any(|t| {
        t.vpc.as_deref() == Some(vpc)
            && !t.doc["associations"].as_array().is_some_and(|a| a.iter().any(|x| x["main"] == true))
    }))
}

/// Remove what the gateway kept for a deleted VPC (main table, attributes).
pub async fn forget_vpc(ctx: &Ctx<'_>, vpc: &str) -> Result<(), Ec2Error> {
    let mut changes = Vec::new();
    for t in all(ctx, RTB).await? {
        if t.vpc.as_deref() == Some(vpc) {
            changes.push(Change::Delete { id: t.id, version: t.version });
        }
    }
    if let Some(a) = ctx.ex.objects.get(&owner(ctx), vpc).await.map_err(store_failed)? {
        changes.push(Change::Delete { id: a.id, version: a.version });
    }
    if !changes.is_empty() {
        write(ctx, changes).await?.map_err(store_failed)?;
    }
    Ok(())
}

/// Remove what the gateway kept for a deleted subnet: its route table association, attributes.
pub async fn forget_subnet(ctx: &Ctx<'_>, subnet: &str) -> Result<(), Ec2Error> {
    for _ in 0..RETRIES {
        let mut changes = Vec::new();
        for mut t in all(ctx, RTB).await? {
            let before = t.doc["associations"].as_array().map_or(0, Vec::len);
            if let Some(list) = t.doc["associations"].as_array_mut() {
                list.retain(|a| s(a, "subnetid").as_deref() != Some(subnet));
            }
            if t.doc["associations"].as_array().map_or(0, Vec::len) != before {
                changes.push(Change::Release { claim: format!("rtb-association:{subnet}"), holder: t.id.clone() });
                changes.push(Change::Update(t));
            }
        }
        if let Some(a) = ctx.ex.objects.get(&owner(ctx), subnet).await.map_err(store_failed)? {
            changes.push(Change::Delete { id: a.id, version: a.version });
        }
        if changes.is_empty() || write(ctx, changes).await?.is_ok() {
            return Ok(());
        }
    }
    Err(Ec2Error::internal())
}

/// The default VPC's internet gateway, attached, and the `0.0.0.0/0` route to it in the main
/// table (as EC2 makes them with a default VPC).
pub async fn default_vpc_gateway(ctx: &Ctx<'_>, vpc: &str) -> Result<(), Ec2Error> {
    let igw = new_id("igw");
    let doc =
        json!({"id": igw, "ownerid": owner(ctx), "attachments": [{"vpcid": vpc, "state": "available"}], "tags": []});
    let rec =
        Record { id: igw.clone(), kind: IGW.into(), owner: owner(ctx), vpc: Some(vpc.to_string()), doc, version: 0 };
    let main = ctx
        .ex
        .objects
        .holder(&format!("main-rtb:{vpc}"))
        .await
        .map_err(store_failed)?
        .ok_or_else(Ec2Error::internal)?;
    let mut t = fetch(ctx, &RTB_ERR, RTB, &main).await?;
    if let Some(routes) = t.doc["routes"].as_array_mut() {
        routes.push(
            json!({"destinationcidrblock": "0.0.0.0/0", "gatewayid": igw, "origin": "CreateRoute", "state": "active"}),
        );
    }
    let claim = Change::Claim { claim: format!("igw-attachment:{vpc}"), holder: igw.clone() };
    write(ctx, vec![Change::Insert(rec), claim, Change::Update(t)]).await?.map_err(store_failed)?;
    Ok(())
}

// ---- tags on the store's objects ------------------------------------------------------------

/// The store kinds CreateTags/DeleteTags/DescribeTags know: (id prefix, kind, EC2 resource type).
pub const TAGGABLE: &[(&str, &str, &str)] = &[
    ("igw", IGW, "internet-gateway"),
    ("rtb", RTB, "route-table"),
    ("dopt", DOPT, "dhcp-options"),
    ("eni", super::eni::KIND, "network-interface"),
    ("nat", super::nat::KIND, "natgateway"),
    ("acl", super::network_acls::KIND, "network-acl"),
];

fn kind_err(prefix: &str) -> &'static KindErr {
    match prefix {
        "igw" => &IGW_ERR,
        "rtb" => &RTB_ERR,
        "eni" => &ENI_ERR,
        "nat" => &NAT_ERR,
        "acl" => &ACL_ERR,
        _ => &DOPT_ERR,
    }
}

/// A kind the mapping table declares with `store = true` and `tags` (kinds as data, e.g. the
/// VPN objects of mappings/vpn.toml): its records are of kind `<name>`, tagged in the store.
fn table_store_kind<'c>(ctx: &'c Ctx<'_>, id: &str) -> Option<&'c crate::mapping::table::KindSpec> {
    let prefix = id.split_once('-')?.0;
    ctx.ex.table.kinds.values().find(|k| k.store && k.tags.is_some() && k.prefix == prefix)
}

/// The caller's object of a table-declared store kind, checked (Malformed / NotFound from the
/// kind's declaration; deleted objects are not found).
async fn fetch_table_kind(ctx: &Ctx<'_>, spec: &crate::mapping::table::KindSpec, id: &str) -> Result<Record, Ec2Error> {
    if !ids::is_well_formed(spec.kind, id) {
        return Err(Ec2Error::new(spec.malformed_code, spec.malformed_msg.replace("{id}", id)));
    }
    match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
        Some(r) if r.kind == spec.kind.name() && r.doc["state"] != "deleted" => Ok(r),
        _ => Err(super::super::exec::not_found(spec, &[id])),
    }
}

/// Is `id` one of the store's taggable objects (by prefix)?
pub fn is_store_id(ctx: &Ctx<'_>, id: &str) -> bool {
    id.split_once('-').is_some_and(|(p, _)| TAGGABLE.iter().any(|(t, _, _)| *t == p))
        || table_store_kind(ctx, id).is_some()
}

/// The caller's store object behind `id`, checked (the kind's Malformed / NotFound).
pub async fn check_store_id(ctx: &Ctx<'_>, id: &str) -> Result<(), Ec2Error> {
    let prefix = id.split_once('-').map(|(p, _)| p).unwrap_or_default();
    if prefix == "eni" {
        // An instance's NIC gets its record (is adopted) on its first tag.
        return super::eni::check_for_tags(ctx, id).await;
    }
    if prefix == "acl" {
        // An ACL is a CloudStack list; its tags get a record on its first tag.
        return super::network_acls::check_for_tags(ctx, id).await;
    }
    if let Some(spec) = table_store_kind(ctx, id) {
        return fetch_table_kind(ctx, spec, id).await.map(|_| ());
    }
    let (_, kind, _) = TAGGABLE.iter().find(|(p, _, _)| *p == prefix).ok_or_else(Ec2Error::internal)?;
    fetch(ctx, kind_err(prefix), kind, id).await.map(|_| ())
}

/// Create (replace) or delete tags on store objects, all in one batch. `tags`: (key, value);
/// on delete a `None` value matches any value and no tags at all removes every tag.
pub async fn change_store_tags(
    ctx: &Ctx<'_>,
    ids: &[String],
    create: bool,
    tags: &[(String, Option<String>)],
) -> Result<(), Ec2Error> {
    for _ in 0..RETRIES {
        let mut changes = Vec::new();
        for id in ids {
            let prefix = id.split_once('-').map(|(p, _)| p).unwrap_or_default();
            let mut r = match table_store_kind(ctx, id) {
                Some(spec) => fetch_table_kind(ctx, spec, id).await?,
                // A VPC security group (an `sg-` id the store holds; EC2-Classic groups are
                // CloudStack's and never reach here).
                None if prefix == "sg" => fetch(ctx, &SG_ERR, super::vpc_sg::KIND, id).await?,
                None => {
                    let (_, kind, _) = TAGGABLE.iter().find(|(p, _, _)| *p == prefix).ok_or_else(Ec2Error::internal)?;
                    fetch(ctx, kind_err(prefix), kind, id).await?
                }
            };
            let mut current: Vec<Value> = r.doc["tags"].as_array().cloned().unwrap_or_default();
            if create {
                for (k, v) in tags {
                    current.retain(|t| t["key"] != k.as_str());
                    current.push(json!({"key": k, "value": v.clone().unwrap_or_default()}));
                }
            } else if tags.is_empty() {
                current.clear();
            } else {
                current.retain(|t| {
                    !tags
                        .iter()
                        .any(|(k, v)| t["key"] == k.as_str() && v.as_ref().is_none_or(|v| t["value"] == v.as_str()))
                });
            }
            r.doc["tags"] = Value::Array(current);
            changes.push(Change::Update(r));
        }
        if write(ctx, changes).await?.is_ok() {
            return Ok(());
        }
    }
    Err(Ec2Error::internal())
}

/// DescribeTags rows for the store's objects (same fields as the CloudStack tag rows after
/// `tag_descriptions`).
pub async fn store_tag_rows(ctx: &Ctx<'_>) -> Result<Vec<Value>, Ec2Error> {
    let mut out = Vec::new();
    let mut kinds: Vec<(&str, &str)> = TAGGABLE.iter().map(|(_, k, t)| (*k, *t)).collect();
    kinds.push((super::vpc_sg::KIND, "security-group"));
    let mut declared: Vec<&crate::mapping::table::KindSpec> =
        ctx.ex.table.kinds.values().filter(|k| k.store && k.tags.is_some()).collect();
    declared.sort_by_key(|k| k.kind.name());
    kinds.extend(declared.iter().filter_map(|k| Some((k.kind.name(), k.tags.as_ref()?.resource_type.as_str()))));
    for (kind, ec2_type) in kinds {
        for r in all(ctx, kind).await? {
            if r.doc["state"] == "deleted" {
                continue;
            }
            for t in r.doc["tags"].as_array().into_iter().flatten() {
                out.push(json!({
                    "key": t["key"], "value": t["value"], "_resourceid": r.id, "_resourcetype": ec2_type,
                    "_tags": [{"key": t["key"], "value": t["value"]}],
                }));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let b = Block::parse("10.0.0.0/16").unwrap();
        assert_eq!(b.size(), 65536);
        assert!(Block::parse("10.0.0.1/16").is_none());
        assert!(Block::parse("10.0.0.0/33").is_none());
        assert!(Block::parse("nope").is_none());
        let s1 = Block::parse("10.0.1.0/24").unwrap();
        assert!(s1.within(&b) && s1.overlaps(&b) && !b.within(&s1));
        assert!(!Block::parse("10.1.0.0/24").unwrap().overlaps(&b));
        assert_eq!(Block::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert!(well_formed("rtb", "rtb-0123456789abcdef0") && !well_formed("rtb", "rtb-XYZ"));
    }
}
