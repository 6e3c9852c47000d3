//! Site-to-site VPN over CloudStack's site-to-site VPN objects (docs/vpn.md).
//!
//! The EC2 objects are store records (kinds `customer-gateway`, `vpn-gateway`, `vpn-connection`
//! declared in mappings/vpn.toml; random ids), because CloudStack's objects do not line up with
//! them one to one:
//! - customer gateway: `{id, ownerid, type, state, ipaddress, bgpasn | bgpasnextended,
//!   devicename, tags}`. Nothing in CloudStack: its customer gateway also holds the PSK, the
//!   policies and the peer CIDRs, which EC2 chooses per connection.
//! - VPN gateway: `{id, ownerid, type, state, availabilityzone, amazonsideasn, attachments:
//!   [{vpcid, state}], tags, csuuid, cscreated, publicip}`. Attaching creates CloudStack's VPN
//!   gateway of the VPC (`createVpnGateway vpcid=`; one adopted when the VPC already has one),
//!   detaching deletes it (when the gateway made it). One VPN gateway per VPC is the claim
//!   `vgw-attachment:<vpc>`.
//! - VPN connection: `{id, ownerid, type, state, customergatewayid, vpngatewayid, vpcid,
//!   cgwip, outsideip, bgpasn, routes: [{destinationcidrblock, state}], ipsec: {psk, ike, esp,
//!   ikelifetime, esplifetime, dpd, ikeversion}, tunnel: {EC2 view}, options: {...}, cscgw,
//!   csconn, tags}`. The static routes are the CloudStack customer gateway's cidrlist, and
//!   CloudStack refuses an empty one: the CloudStack customer gateway (named after the
//!   connection) and connection exist while the connection has routes. One connection per
//!   (customer gateway, VPN gateway) pair is the claim `vpn-pair:<cgw>:<vgw>`.
//!
//! Deleted objects stay visible with state `deleted` for an hour (EC2 shows them for a while,
//! and boto3's `vpn_connection_deleted` waiter waits for that state), then their records go.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::super::table::KindSpec;
use super::common::{Undo, UndoCall, pair, run_job, tag_specifications as tag_specs};
use super::vpc_objects::{Block, cs_vpc, owner};
use crate::base::{Code, Ec2Error};
use crate::cloudstack::CsError;
use crate::ec2::Params;
use crate::ids::{self, Kind};
use crate::objects::{Change, Record, WriteError, new_id};

pub const CGW: &str = "customer-gateway";
pub const VGW: &str = "vpn-gateway";
pub const VPN: &str = "vpn-connection";
const RETRIES: usize = 8;
/// How long deleted objects stay visible (state `deleted`).
const TOMBSTONE_SECS: i64 = 3600;

// ---- shared pieces ---------------------------------------------------------------------------

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(scalar_text).filter(|x| !x.is_empty())
}

fn store_failed(e: impl std::fmt::Display) -> Ec2Error {
    tracing::warn!(error = %e, "object store failure");
    Ec2Error::internal()
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn unsupported(what: impl std::fmt::Display) -> Ec2Error {
    Ec2Error::new(Code::UnsupportedOperation, format!("{what} is not supported by this cloud's site-to-site VPN."))
}

fn incorrect_state(message: impl Into<String>) -> Ec2Error {
    Ec2Error::new(Code::IncorrectState, message)
}

/// The `[kind.X]` declaration of a store kind (mappings/vpn.toml): its errors come from there.
fn spec<'c>(ctx: &'c Ctx<'_>, kind: &str) -> Result<&'c KindSpec, Ec2Error> {
    Kind::from_name(kind).and_then(|k| ctx.ex.table.kinds.get(&k)).ok_or_else(|| {
        tracing::error!(kind, "no [kind] entry in the mapping table");
        Ec2Error::internal()
    })
}

fn malformed(spec: &KindSpec, id: &str) -> Ec2Error {
    Ec2Error::new(spec.malformed_code, spec.malformed_msg.replace("{id}", id))
}

fn not_found(spec: &KindSpec, id: &str) -> Ec2Error {
    super::super::exec::not_found(spec, &[id])
}

fn deleted(r: &Record) -> bool {
    r.doc["state"] == "deleted"
}

/// One live (not deleted) object of the caller, by EC2 id (shape-checked first).
async fn get(ctx: &Ctx<'_>, kind: &str, id: &str) -> Result<Record, Ec2Error> {
    let sp = spec(ctx, kind)?;
    if !ids::is_well_formed(sp.kind, id) {
        return Err(malformed(sp, id));
    }
    match ctx.ex.objects.get(&owner(ctx), id).await.map_err(store_failed)? {
        Some(r) if r.kind == kind && !deleted(&r) => Ok(r),
        _ => Err(not_found(sp, id)),
    }
}

/// Every object of `kind` the caller has, deleted ones included; tombstones past their hour
/// are removed on the way.
async fn all(ctx: &Ctx<'_>, kind: &str) -> Result<Vec<Record>, Ec2Error> {
    let mut out = Vec::new();
    for r in ctx.ex.objects.list(&owner(ctx), kind).await.map_err(store_failed)? {
        let expired = deleted(&r) && r.doc["deletedat"].as_i64().is_some_and(|t| unix_now() - t > TOMBSTONE_SECS);
        if expired {
            let _ = ctx.ex.objects.write(vec![Change::Delete { id: r.id.clone(), version: r.version }]).await;
        } else {
            out.push(r);
        }
    }
    Ok(out)
}

async fn live(ctx: &Ctx<'_>, kind: &str) -> Result<Vec<Record>, Ec2Error> {
    Ok(all(ctx, kind).await?.into_iter().filter(|r| !deleted(r)).collect())
}

/// Apply a batch; a conflict means another request changed what was read: the caller retries.
async fn write(ctx: &Ctx<'_>, changes: Vec<Change>) -> Result<Result<(), WriteError>, Ec2Error> {
    match ctx.ex.objects.write(changes).await {
        Ok(()) => Ok(Ok(())),
        Err(WriteError::Failed(e)) => Err(store_failed(e)),
        Err(c) => Ok(Err(c)),
    }
}

fn tags_json(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect())
}

fn new_record(ctx: &Ctx<'_>, kind: &str, prefix: &str, mut doc: Value) -> Record {
    let id = new_id(prefix);
    doc["id"] = json!(id);
    doc["ownerid"] = json!(owner(ctx));
    Record { id, kind: kind.into(), owner: owner(ctx), vpc: None, doc, version: 0 }
}

/// Mark a record deleted (kept as a tombstone), with extra changes in the same batch.
fn tombstone(mut r: Record, extra: Vec<Change>) -> Vec<Change> {
    r.doc["state"] = json!("deleted");
    r.doc["deletedat"] = json!(unix_now());
    let mut changes = extra;
    changes.push(Change::Update(r));
    changes
}

/// Parameters this cloud cannot honour: refused, never dropped.
fn refuse_present(p: &Params, names: &[&str]) -> Result<(), Ec2Error> {
    for n in names {
        if p.0.keys().any(|k| k == n || k.strip_prefix(n).is_some_and(|r| r.starts_with('.'))) {
            return Err(unsupported(format!("The parameter {n}")));
        }
    }
    Ok(())
}

fn gateway_type(p: &Params) -> Result<(), Ec2Error> {
    let t = p.require("Type")?;
    if t != "ipsec.1" {
        return Err(Ec2Error::invalid_value("Type", t, "The only gateway type is ipsec.1."));
    }
    Ok(())
}

fn int_in(p: &Params, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, Ec2Error> {
    match p.int(name)? {
        Some(v) if v < lo || v > hi => {
            Err(Ec2Error::invalid_value(name, &v.to_string(), &format!("The value must be between {lo} and {hi}.")))
        }
        v => Ok(v),
    }
}

// ---- customer gateways --------------------------------------------------------------------------

pub async fn create_customer_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    gateway_type(p)?;
    refuse_present(p, &["CertificateArn"])?;
    let ip = match (p.get("IpAddress").filter(|v| !v.is_empty()), p.get("PublicIp").filter(|v| !v.is_empty())) {
        (Some(a), Some(b)) if a != b => {
            return Err(Ec2Error::combination("The parameter IpAddress cannot be used with the parameter PublicIp"));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Err(Ec2Error::missing_parameter("IpAddress")),
    };
    if ip.parse::<Ipv4Addr>().is_err() {
        return Err(Ec2Error::invalid_value("IpAddress", ip, "This is not a valid IPv4 address."));
    }
    let asn = int_in(p, "BgpAsn", 1, 2_147_483_647)?;
    let asn_ext = int_in(p, "BgpAsnExtended", 2_147_483_648, 4_294_967_294)?;
    if asn.is_some() && asn_ext.is_some() {
        return Err(Ec2Error::combination("The parameter BgpAsn cannot be used with the parameter BgpAsnExtended"));
    }
    let device = p.get("DeviceName").filter(|d| !d.is_empty());
    if device.is_some_and(|d| d.len() > 255) {
        return Err(Ec2Error::invalid_value("DeviceName", device.unwrap_or_default(), "At most 255 characters."));
    }
    let tags = tag_specs(p, CGW)?;
    let mut doc = json!({"type": "ipsec.1", "state": "available", "ipaddress": ip, "tags": tags_json(&tags)});
    match asn_ext {
        Some(x) => doc["bgpasnextended"] = json!(x.to_string()),
        None => doc["bgpasn"] = json!(asn.unwrap_or(65000).to_string()),
    }
    if let Some(d) = device {
        doc["devicename"] = json!(d);
    }
    // EC2: the same type, address and ASN answer the existing customer gateway.
    for r in live(ctx, CGW).await? {
        if r.doc["ipaddress"] == doc["ipaddress"]
            && r.doc["bgpasn"] == doc["bgpasn"]
            && r.doc["bgpasnextended"] == doc["bgpasnextended"]
        {
            return Ok(r.doc);
        }
    }
    let rec = new_record(ctx, CGW, "cgw", doc);
    let doc = rec.doc.clone();
    write(ctx, vec![Change::Insert(rec)]).await?.map_err(store_failed)?;
    Ok(doc)
}

pub async fn delete_customer_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("CustomerGatewayId")?;
    for _ in 0..RETRIES {
        let r = get(ctx, CGW, id).await?;
        if let Some(c) = live(ctx, VPN).await?.iter().find(|c| s(&c.doc, "customergatewayid").as_deref() == Some(id)) {
            return Err(incorrect_state(format!(
                "The customer gateway '{id}' is in use by VPN connection {}: delete the connection first.",
                c.id
            )));
        }
        if write(ctx, tombstone(r, vec![])).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

// ---- VPN gateways -------------------------------------------------------------------------------

pub async fn create_vpn_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    gateway_type(p)?;
    let asn = match p.int("AmazonSideAsn")? {
        None => 64512,
        Some(a) if (64512..=65534).contains(&a) || (4_200_000_000..=4_294_967_294).contains(&a) => a,
        Some(a) => {
            return Err(Ec2Error::invalid_value(
                "AmazonSideAsn",
                &a.to_string(),
                "A private ASN is 64512-65534 or 4200000000-4294967294.",
            ));
        }
    };
    let tags = tag_specs(p, VGW)?;
    let mut doc = json!({
        "type": "ipsec.1", "state": "available", "amazonsideasn": asn, "attachments": [], "tags": tags_json(&tags),
    });
    if let Some(az) = p.get("AvailabilityZone").filter(|a| !a.is_empty()) {
        let zone = ctx.find_cached("listZones", &[], "zone", |z| s(z, "name").as_deref() == Some(az)).await?;
        if zone.is_none() {
            return Err(Ec2Error::invalid_value("AvailabilityZone", az, "No such availability zone."));
        }
        doc["availabilityzone"] = json!(az);
    }
    let rec = new_record(ctx, VGW, "vgw", doc);
    let doc = rec.doc.clone();
    write(ctx, vec![Change::Insert(rec)]).await?.map_err(store_failed)?;
    Ok(doc)
}

/// The VPC a VPN gateway is attached to (attachment state `attached`).
fn attached_vpc(doc: &Value) -> Option<String> {
    doc["attachments"].as_array()?.iter().find(|a| a["state"] == "attached").and_then(|a| s(a, "vpcid"))
}

pub async fn delete_vpn_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("VpnGatewayId")?;
    for _ in 0..RETRIES {
        let r = get(ctx, VGW, id).await?;
        if let Some(vpc) = attached_vpc(&r.doc) {
            return Err(incorrect_state(format!(
                "The VPN gateway '{id}' is attached to {vpc}: detach it before deleting it."
            )));
        }
        if write(ctx, tombstone(r, vec![])).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

fn vgw_claim(vpc: &str) -> String {
    format!("vgw-attachment:{vpc}")
}

/// The VPN gateway attached to `vpc`, if any (DeleteVpc refuses while there is one).
pub async fn attached_vpn_gateway(ctx: &Ctx<'_>, vpc: &str) -> Result<Option<String>, Ec2Error> {
    ctx.ex.objects.holder(&vgw_claim(vpc)).await.map_err(store_failed)
}

/// The VPC a VPN gateway of the caller is attached to (CreateRoute with a `vgw-` target);
/// the kind's Malformed / NotFound errors.
pub async fn vpn_gateway_vpc(ctx: &Ctx<'_>, id: &str) -> Result<Option<String>, Ec2Error> {
    Ok(attached_vpc(&get(ctx, VGW, id).await?.doc))
}

fn vpc_state_error(vpc: &str, holder: &str) -> Ec2Error {
    Ec2Error::new(
        Code::InvalidVpcState,
        format!("The VPC '{vpc}' already has a virtual private gateway attached to it ({holder})."),
    )
}

/// Run an async CloudStack command that removes something; "it is gone already" (431) is fine.
async fn remove_cs(ctx: &Ctx<'_>, command: &str, uuid: &str) -> Result<(), Ec2Error> {
    let params = [pair("id", uuid)];
    let be = &ctx.ex.backend;
    let started = match be.start_job(ctx.creds(), command, &params).await {
        Ok(j) => j,
        Err(CsError::Api { errorcode: 431, .. }) => return Ok(()),
        Err(e) => return Err(ctx.err(e)),
    };
    ctx.wait_job(command, &started.jobid).await.map(|_| ())
}

pub async fn attach_vpn_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let vpc = p.require("VpcId")?;
    let id = p.require("VpnGatewayId")?;
    let r = get(ctx, VGW, id).await?;
    let v = cs_vpc(ctx, vpc).await?;
    let vpc_uuid = s(&v, "id").unwrap_or_default();
    if let Some(on) = attached_vpc(&r.doc) {
        return Err(Ec2Error::new(
            Code::VpnGatewayAttachmentLimitExceeded,
            format!("The VPN gateway '{id}' is already attached to {on}."),
        ));
    }
    if let Some(other) = attached_vpn_gateway(ctx, vpc).await? {
        return Err(vpc_state_error(vpc, &other));
    }
    // CloudStack's VPN gateway of the VPC: one made outside the gateway is adopted (and left
    // there on detach), else it is created now.
    let existing = ctx
        .list("listVpnGateways", &[pair("vpcid", &vpc_uuid), pair("listall", "true")], "vpngateway")
        .await?
        .into_iter()
        .find(|g| s(g, "vpcid").as_deref() == Some(vpc_uuid.as_str()));
    let (cs, created) = match existing {
        Some(g) => (g, false),
        None => {
            let j = ctx.start_job("createVpnGateway", &[pair("vpcid", &vpc_uuid)]).await?;
            let res = ctx.wait_job("createVpnGateway", &j.jobid).await?;
            let mut g = res.get("vpngateway").cloned().unwrap_or(res);
            if s(&g, "id").is_none()
                && let Some(u) = j.id
            {
                g["id"] = json!(u);
            }
            (g, true)
        }
    };
    let cs_uuid = s(&cs, "id").ok_or_else(Ec2Error::internal)?;
    let mut undo = Undo::new(ctx);
    if created {
        undo.made(id, UndoCall::job("deleteVpnGateway", vec![pair("id", &cs_uuid)])).await;
    }
    for _ in 0..RETRIES {
        let mut r = match get(ctx, VGW, id).await {
            Ok(r) => r,
            Err(e) => return Err(undo.fail(e).await),
        };
        if let Some(on) = attached_vpc(&r.doc) {
            let e = Ec2Error::new(
                Code::VpnGatewayAttachmentLimitExceeded,
                format!("The VPN gateway '{id}' is already attached to {on}."),
            );
            return Err(undo.fail(e).await);
        }
        r.doc["attachments"] = json!([{"vpcid": vpc, "state": "attached"}]);
        r.doc["csuuid"] = json!(cs_uuid);
        r.doc["cscreated"] = json!(created);
        r.doc["publicip"] = cs.get("publicip").cloned().unwrap_or(Value::Null);
        r.vpc = Some(vpc.to_string());
        let claim = Change::Claim { claim: vgw_claim(vpc), holder: id.to_string() };
        match write(ctx, vec![claim, Change::Update(r)]).await {
            Ok(Ok(())) => {
                undo.disarm().await;
                return Ok(json!({"vpcid": vpc, "state": "attached"}));
            }
            Ok(Err(WriteError::Conflict { holder: Some(other), .. })) => {
                return Err(undo.fail(vpc_state_error(vpc, &other)).await);
            }
            Ok(Err(_)) => continue,
            Err(e) => return Err(undo.fail(e).await),
        }
    }
    Err(undo.fail(Ec2Error::internal()).await)
}

pub async fn detach_vpn_gateway(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let vpc = p.require("VpcId")?;
    let id = p.require("VpnGatewayId")?;
    let vpc_spec = spec(ctx, "vpc")?;
    if !ids::is_well_formed(vpc_spec.kind, vpc) {
        return Err(malformed(vpc_spec, vpc));
    }
    for _ in 0..RETRIES {
        let mut r = get(ctx, VGW, id).await?;
        if attached_vpc(&r.doc).as_deref() != Some(vpc) {
            return Err(Ec2Error::new(
                Code::InvalidVpnGatewayAttachmentNotFound,
                format!("The attachment with vpn gateway ID '{id}' and vpc ID '{vpc}' does not exist"),
            ));
        }
        let users: Vec<String> = live(ctx, VPN)
            .await?
            .into_iter()
            .filter(|c| s(&c.doc, "vpngatewayid").as_deref() == Some(id))
            .map(|c| c.id)
            .collect();
        if !users.is_empty() {
            return Err(incorrect_state(format!(
                "The VPN gateway '{id}' has VPN connections ({}): delete them before detaching it.",
                users.join(", ")
            )));
        }
        if r.doc["cscreated"] == true
            && let Some(u) = s(&r.doc, "csuuid")
        {
            remove_cs(ctx, "deleteVpnGateway", &u).await?;
        }
        r.doc["attachments"] = json!([{"vpcid": vpc, "state": "detached"}]);
        for k in ["csuuid", "cscreated", "publicip"] {
            if let Some(o) = r.doc.as_object_mut() {
                o.remove(k);
            }
        }
        r.vpc = None;
        let release = Change::Release { claim: vgw_claim(vpc), holder: id.to_string() };
        if write(ctx, vec![Change::Update(r), release]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

// ---- tunnel options -> CloudStack's IPsec parameters ---------------------------------------------

/// The IPsec settings of a connection: CloudStack's words, and EC2's view of the one tunnel.
struct Ipsec {
    psk: String,
    ike: String,
    esp: String,
    ike_lifetime: i64,
    esp_lifetime: i64,
    dpd: bool,
    ike_version: String,
    /// The TunnelOption view (EC2 names), without the outside address.
    view: Value,
}

const TUNNEL_KEYS: &[&str] = &[
    "PreSharedKey",
    "Phase1LifetimeSeconds",
    "Phase2LifetimeSeconds",
    "DPDTimeoutSeconds",
    "DPDTimeoutAction",
    "Phase1EncryptionAlgorithm",
    "Phase2EncryptionAlgorithm",
    "Phase1IntegrityAlgorithm",
    "Phase2IntegrityAlgorithm",
    "Phase1DHGroupNumber",
    "Phase2DHGroupNumber",
    "IKEVersion",
    "StartupAction",
    "EnableTunnelLifecycleControl",
];

/// `Name.N.Value` list values.
fn values(m: &Params, name: &str) -> Vec<String> {
    m.members(name).iter().filter_map(|x| x.get("Value").map(str::to_string)).collect()
}

/// EC2 words -> CloudStack words through a `[map.X]` of mappings/vpn.toml (an empty entry is a
/// value EC2 has and CloudStack cannot do).
fn map_words(ctx: &Ctx<'_>, map: &str, param: &str, given: &[String]) -> Result<Vec<String>, Ec2Error> {
    let m = ctx.ex.table.maps.get(map).ok_or_else(Ec2Error::internal)?;
    let mut out = Vec::new();
    for g in given {
        match m.entries.get(g.as_str()).map(String::as_str) {
            None => return Err(Ec2Error::invalid_value(param, g, "This is not a valid value.")),
            Some("") => return Err(unsupported(format!("{param} {g}"))),
            Some(w) => {
                if !out.contains(&w.to_string()) {
                    out.push(w.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// `cipher-hash;group` for every combination, in preference order (CloudStack's policy syntax).
fn policy(ciphers: &[String], hashes: &[String], groups: &[String]) -> String {
    let mut items = Vec::new();
    for c in ciphers {
        for h in hashes {
            if groups.is_empty() {
                items.push(format!("{c}-{h}"));
            }
            for g in groups {
                items.push(format!("{c}-{h};{g}"));
            }
        }
    }
    items.join(",")
}

/// EC2's rule for pre-shared keys: 8-64 characters of letters, digits, '.' and '_', not
/// starting with '0'.
fn valid_psk(k: &str) -> bool {
    (8..=64).contains(&k.len())
        && !k.starts_with('0')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

fn random_psk() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut out = String::new();
    while out.len() < 32 {
        let c = CHARS[usize::from(rand::random::<u8>()) % CHARS.len()] as char;
        if !(out.is_empty() && (c == '0' || c == '.' || c == '_')) {
            out.push(c);
        }
    }
    out
}

/// `Options.TunnelOptions.N`: one tunnel's worth (CloudStack has one tunnel per connection; a
/// second specification must say the same). Defaults are EC2's classic configuration: AES128,
/// SHA1, DH group 2, 28800 s / 3600 s, dead peer detection on.
fn tunnel_options(ctx: &Ctx<'_>) -> Result<Ipsec, Ec2Error> {
    let p = &ctx.req.params;
    let specs = p.members("Options.TunnelOptions");
    if specs.len() > 2 {
        return Err(Ec2Error::invalid_parameter("At most 2 TunnelOptions may be given."));
    }
    if specs.len() == 2 && specs[0] != specs[1] {
        return Err(unsupported(
            "Different options for a second tunnel (CloudStack makes one tunnel per VPN connection)",
        ));
    }
    let m = specs.into_iter().next().unwrap_or_default();
    parse_tunnel(ctx, &m, "Options.TunnelOptions.N", None)
}

/// One tunnel's options (`m`, the keys below `prefix`); what is not given comes from `base`
/// (the tunnel's current view: ModifyVpnTunnelOptions changes only what it names), else EC2's
/// defaults.
fn parse_tunnel(ctx: &Ctx<'_>, m: &Params, prefix: &str, base: Option<&Value>) -> Result<Ipsec, Ec2Error> {
    let was = |k: &str| base.map(|b| b[k].clone()).filter(|v| !v.is_null());
    let was_list = |k: &str| -> Vec<String> {
        was(k).and_then(|v| v.as_array().cloned()).unwrap_or_default().iter().map(scalar_text).collect()
    };
    for k in m.0.keys() {
        let head = k.split('.').next().unwrap_or_default();
        if !TUNNEL_KEYS.contains(&head) {
            return Err(unsupported(format!("The parameter {prefix}.{head}")));
        }
    }
    if m.bool("EnableTunnelLifecycleControl")? == Some(true) {
        return Err(unsupported("EnableTunnelLifecycleControl=true"));
    }
    let psk = match m.get("PreSharedKey") {
        Some(k) if !valid_psk(k) => {
            return Err(Ec2Error::invalid_parameter(
                "The pre-shared key must be 8-64 characters of letters, digits, periods and underscores, not starting with zero.",
            ));
        }
        Some(k) => k.to_string(),
        None => was("presharedkey").map(|v| scalar_text(&v)).unwrap_or_else(random_psk),
    };
    // CloudStack's router writes lifetimes in whole hours: anything else would change silently.
    let lifetime = |name: &str, lo: i64, hi: i64, default: i64| -> Result<i64, Ec2Error> {
        let v = int_in(m, name, lo, hi)?.unwrap_or(default);
        if v % 3600 != 0 {
            return Err(unsupported(format!("{name}={v} (CloudStack's router sets IPsec lifetimes in whole hours)")));
        }
        Ok(v)
    };
    let old_int = |k: &str, d: i64| was(k).and_then(|v| v.as_i64()).unwrap_or(d);
    let ike_lifetime = lifetime("Phase1LifetimeSeconds", 900, 28800, old_int("phase1lifetimeseconds", 28800))?;
    let esp_lifetime = lifetime("Phase2LifetimeSeconds", 900, 3600, old_int("phase2lifetimeseconds", 3600))?;
    // Dead peer detection: CloudStack's router has one setting (30 s delay, 120 s timeout,
    // restart) or none.
    let old_action = was("dpdtimeoutaction").map(|v| scalar_text(&v));
    let dpd = match m.get("DPDTimeoutAction").or(old_action.as_deref()) {
        None | Some("restart") => true,
        Some("none") => false,
        Some("clear") => return Err(unsupported("DPDTimeoutAction=clear (CloudStack's router restarts the tunnel)")),
        Some(x) => {
            return Err(Ec2Error::invalid_value("DPDTimeoutAction", x, "Valid values are clear, none, restart."));
        }
    };
    match m.int("DPDTimeoutSeconds")? {
        None | Some(120) => {}
        Some(x) if x < 30 => {
            return Err(Ec2Error::invalid_value("DPDTimeoutSeconds", &x.to_string(), "The minimum is 30."));
        }
        Some(x) => return Err(unsupported(format!("DPDTimeoutSeconds={x} (CloudStack's router times out after 120)"))),
    }
    match m.get("StartupAction") {
        None | Some("add") => {}
        Some("start") => {
            return Err(unsupported("StartupAction=start (CloudStack's router starts tunnels on traffic)"));
        }
        Some(x) => return Err(Ec2Error::invalid_value("StartupAction", x, "Valid values are add, start.")),
    }
    let or = |v: Vec<String>, key: &str, d: &str| match (v.is_empty(), was_list(key)) {
        (false, _) => v,
        (true, old) if !old.is_empty() => old,
        _ => vec![d.to_string()],
    };
    let p1e = or(values(m, "Phase1EncryptionAlgorithm"), "phase1encryption", "AES128");
    let p2e = or(values(m, "Phase2EncryptionAlgorithm"), "phase2encryption", "AES128");
    let p1i = or(values(m, "Phase1IntegrityAlgorithm"), "phase1integrity", "SHA1");
    let p2i = or(values(m, "Phase2IntegrityAlgorithm"), "phase2integrity", "SHA1");
    let p1g = or(values(m, "Phase1DHGroupNumber"), "phase1dhgroups", "2");
    let p2g = or(values(m, "Phase2DHGroupNumber"), "phase2dhgroups", "2");
    // Both versions shown means "either" (CloudStack's `ike`), as when none is given.
    let mut versions = values(m, "IKEVersion");
    if versions.is_empty() {
        versions = was_list("ikeversions");
        if versions.len() > 1 {
            versions.clear();
        }
    }
    let ike = policy(
        &map_words(ctx, "vpn_encryption", "Phase1EncryptionAlgorithms", &p1e)?,
        &map_words(ctx, "vpn_integrity", "Phase1IntegrityAlgorithms", &p1i)?,
        &map_words(ctx, "vpn_phase1_dh_group", "Phase1DHGroupNumbers", &p1g)?,
    );
    let esp = policy(
        &map_words(ctx, "vpn_encryption", "Phase2EncryptionAlgorithms", &p2e)?,
        &map_words(ctx, "vpn_integrity", "Phase2IntegrityAlgorithms", &p2i)?,
        &map_words(ctx, "vpn_phase2_dh_group", "Phase2DHGroupNumbers", &p2g)?,
    );
    let words = map_words(ctx, "vpn_ike_version", "IKEVersions", &versions)?;
    let ike_version = if words.len() == 1 { words[0].clone() } else { "ike".to_string() };
    let shown_versions = if versions.is_empty() { vec!["ikev1".to_string(), "ikev2".to_string()] } else { versions };
    let item = |v: &Vec<String>| Value::Array(v.iter().map(|x| json!(x)).collect());
    let mut view = json!({
        "presharedkey": psk,
        "phase1lifetimeseconds": ike_lifetime,
        "phase2lifetimeseconds": esp_lifetime,
        "phase1encryption": item(&p1e), "phase2encryption": item(&p2e),
        "phase1integrity": item(&p1i), "phase2integrity": item(&p2i),
        "phase1dhgroups": item(&p1g), "phase2dhgroups": item(&p2g),
        "ikeversions": item(&shown_versions),
        "startupaction": "add",
    });
    if dpd {
        view["dpdtimeoutseconds"] = json!(120);
        view["dpdtimeoutaction"] = json!("restart");
    } else {
        view["dpdtimeoutaction"] = json!("none");
    }
    Ok(Ipsec { psk, ike, esp, ike_lifetime, esp_lifetime, dpd, ike_version, view })
}

/// `Options.*` other than the tunnels: what CloudStack does is accepted, the rest refused.
fn connection_options(p: &Params) -> Result<Value, Ec2Error> {
    const KNOWN: &[&str] = &[
        "StaticRoutesOnly",
        "EnableAcceleration",
        "TunnelInsideIpVersion",
        "TunnelOptions",
        "LocalIpv4NetworkCidr",
        "RemoteIpv4NetworkCidr",
        "OutsideIpAddressType",
        "TunnelBandwidth",
    ];
    for k in p.0.keys() {
        if let Some(rest) = k.strip_prefix("Options.") {
            let head = rest.split('.').next().unwrap_or_default();
            if !KNOWN.contains(&head) {
                return Err(unsupported(format!("The parameter Options.{head}")));
            }
        }
    }
    // Static routes only: CloudStack's VPN has no BGP. EC2's default is dynamic routing; an
    // explicit `false` is refused, an absent value is taken as static (and answered so).
    if p.bool("Options.StaticRoutesOnly")? == Some(false) {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "Dynamic routing (BGP, Options.StaticRoutesOnly=false) is not supported by this cloud's site-to-site VPN: set Options.StaticRoutesOnly=true and add static routes with CreateVpnConnectionRoute.",
        ));
    }
    if p.bool("Options.EnableAcceleration")? == Some(true) {
        return Err(unsupported("Options.EnableAcceleration=true"));
    }
    let fixed = |name: &str, allowed: &str| -> Result<(), Ec2Error> {
        match p.get(name) {
            Some(v) if v != allowed => Err(unsupported(format!("{name}={v}"))),
            _ => Ok(()),
        }
    };
    fixed("Options.TunnelInsideIpVersion", "ipv4")?;
    fixed("Options.OutsideIpAddressType", "PublicIpv4")?;
    fixed("Options.TunnelBandwidth", "standard")?;
    // The traffic selectors are the VPC's CIDR and the static routes: only "any" can be honoured.
    fixed("Options.LocalIpv4NetworkCidr", "0.0.0.0/0")?;
    fixed("Options.RemoteIpv4NetworkCidr", "0.0.0.0/0")?;
    let mut o =
        json!({"staticroutesonly": true, "tunnelinsideipversion": "ipv4", "outsideipaddresstype": "PublicIpv4"});
    for (param, field) in [
        ("Options.LocalIpv4NetworkCidr", "localipv4networkcidr"),
        ("Options.RemoteIpv4NetworkCidr", "remoteipv4networkcidr"),
    ] {
        if let Some(v) = p.get(param) {
            o[field] = json!(v);
        }
    }
    Ok(o)
}

// ---- the CloudStack side of a connection -----------------------------------------------------------

fn route_cidrs(doc: &Value) -> Vec<String> {
    doc["routes"].as_array().into_iter().flatten().filter_map(|r| s(r, "destinationcidrblock")).collect()
}

fn cgw_params(doc: &Value, cidrs: &[String]) -> Vec<(String, String)> {
    let i = &doc["ipsec"];
    let text = |k: &str| s(i, k).unwrap_or_default();
    vec![
        pair("name", &s(doc, "id").unwrap_or_default()),
        pair("gateway", &s(doc, "cgwip").unwrap_or_default()),
        pair("cidrlist", &cidrs.join(",")),
        pair("ipsecpsk", &text("psk")),
        pair("ikepolicy", &text("ike")),
        pair("esppolicy", &text("esp")),
        pair("ikelifetime", &text("ikelifetime")),
        pair("esplifetime", &text("esplifetime")),
        pair("dpd", &text("dpd")),
        pair("forceencap", "false"),
        pair("ikeversion", &text("ikeversion")),
        pair("splitconnections", "false"),
    ]
}

/// Make CloudStack match the connection's routes: no routes -> no CloudStack customer gateway
/// and connection; routes -> they exist with exactly these CIDRs. Updates the CloudStack
/// fields of `doc`.
async fn sync_cloudstack(ctx: &Ctx<'_>, doc: &mut Value) -> Result<(), Ec2Error> {
    let cidrs = route_cidrs(doc);
    match (cidrs.is_empty(), s(doc, "cscgw")) {
        (true, None) => Ok(()),
        (true, Some(cgw)) => {
            if let Some(conn) = s(doc, "csconn") {
                remove_cs(ctx, "deleteVpnConnection", &conn).await?;
            }
            remove_cs(ctx, "deleteVpnCustomerGateway", &cgw).await?;
            if let Some(o) = doc.as_object_mut() {
                o.remove("cscgw");
                o.remove("csconn");
            }
            Ok(())
        }
        (false, Some(cgw)) => {
            let mut params = cgw_params(doc, &cidrs);
            params.insert(0, pair("id", &cgw));
            run_job(ctx, "updateVpnCustomerGateway", &params).await.map(|_| ())
        }
        (false, None) => {
            let vgw_uuid = s(doc, "csvgw").ok_or_else(Ec2Error::internal)?;
            let id = s(doc, "id").unwrap_or_default();
            let res = run_job(ctx, "createVpnCustomerGateway", &cgw_params(doc, &cidrs)).await?;
            let cgw = res.get("vpncustomergateway").and_then(|g| s(g, "id")).ok_or_else(Ec2Error::internal)?;
            let mut undo = Undo::new(ctx);
            undo.made(&id, UndoCall::job("deleteVpnCustomerGateway", vec![pair("id", &cgw)])).await;
            let (undo, conn) = create_cs_connection(ctx, undo, &id, &vgw_uuid, &cgw).await?;
            undo.disarm().await;
            doc["cscgw"] = json!(cgw);
            doc["csconn"] = json!(conn);
            Ok(())
        }
    }
}

// ---- VPN connections ----------------------------------------------------------------------------

fn pair_claim(cgw: &str, vgw: &str) -> String {
    format!("vpn-pair:{cgw}:{vgw}")
}

pub async fn create_vpn_connection(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    gateway_type(p)?;
    refuse_present(
        p,
        &[
            "TransitGatewayId",
            "VpnConcentratorId",
            "PreSharedKeyStorage",
            "Options.TransportTransitGatewayAttachmentId",
        ],
    )?;
    refuse_present(p, &["Options.LocalIpv6NetworkCidr", "Options.RemoteIpv6NetworkCidr"])?;
    let cgw_id = p.require("CustomerGatewayId")?;
    let vgw_id = p.require("VpnGatewayId")?;
    let options = connection_options(p)?;
    let ipsec = tunnel_options(ctx)?;
    let tags = tag_specs(p, VPN)?;
    let cgw = get(ctx, CGW, cgw_id).await?;
    let vgw = get(ctx, VGW, vgw_id).await?;
    let Some(vpc) = attached_vpc(&vgw.doc) else {
        return Err(incorrect_state(format!(
            "The VPN gateway '{vgw_id}' is not attached to a VPC: this cloud's VPN gateways live in a VPC, attach it first."
        )));
    };
    let claim = pair_claim(cgw_id, vgw_id);
    let conflict = || {
        Ec2Error::new(
            Code::InvalidOptionConflict,
            format!("A VPN connection between {vgw_id} and {cgw_id} already exists."),
        )
    };
    if ctx.ex.objects.holder(&claim).await.map_err(store_failed)?.is_some() {
        return Err(conflict());
    }
    let outside = s(&vgw.doc, "publicip").unwrap_or_default();
    let mut tunnel = ipsec.view.clone();
    tunnel["outsideipaddress"] = json!(outside);
    let mut options = options;
    options["tunnels"] = json!([tunnel]);
    let doc = json!({
        "type": "ipsec.1", "state": "available",
        "customergatewayid": cgw_id, "vpngatewayid": vgw_id, "vpcid": vpc,
        "cgwip": cgw.doc["ipaddress"], "bgpasn": cgw.doc.get("bgpasn").cloned().unwrap_or(cgw.doc["bgpasnextended"].clone()),
        "outsideip": outside, "csvgw": vgw.doc["csuuid"],
        "routes": [], "options": options, "tags": tags_json(&tags),
        "ipsec": {
            "psk": ipsec.psk, "ike": ipsec.ike, "esp": ipsec.esp, "ikelifetime": ipsec.ike_lifetime,
            "esplifetime": ipsec.esp_lifetime, "dpd": ipsec.dpd, "ikeversion": ipsec.ike_version,
        },
    });
    let mut rec = new_record(ctx, VPN, "vpn", doc);
    rec.vpc = Some(vpc);
    let holder = rec.id.clone();
    let doc = rec.doc.clone();
    match write(ctx, vec![Change::Claim { claim, holder }, Change::Insert(rec)]).await? {
        Ok(()) => {}
        Err(WriteError::Conflict { holder: Some(_), .. }) => return Err(conflict()),
        Err(e) => return Err(store_failed(e)),
    }
    Ok(connection_view(ctx, &doc, None))
}

pub async fn delete_vpn_connection(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let id = ctx.req.params.require("VpnConnectionId")?;
    for _ in 0..RETRIES {
        let mut r = get(ctx, VPN, id).await?;
        r.doc["routes"] = json!([]);
        sync_cloudstack(ctx, &mut r.doc).await?;
        let claim = pair_claim(
            &s(&r.doc, "customergatewayid").unwrap_or_default(),
            &s(&r.doc, "vpngatewayid").unwrap_or_default(),
        );
        let release = Change::Release { claim, holder: id.to_string() };
        if write(ctx, tombstone(r, vec![release])).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

/// CreateVpnConnectionRoute (`args.op = "create"`) / DeleteVpnConnectionRoute (`"delete"`).
pub async fn change_vpn_route(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let create = ctx.action.args.get("op").and_then(Value::as_str) != Some("delete");
    let p = &ctx.req.params;
    let id = p.require("VpnConnectionId")?;
    let text = p.require("DestinationCidrBlock")?;
    let dest = Block::parse(text)
        .ok_or_else(|| Ec2Error::invalid_value("DestinationCidrBlock", text, "This is not a valid IPv4 CIDR block."))?;
    let dest_text = dest.to_string();
    let first = get(ctx, VPN, id).await?;
    if create {
        let vpc = s(&first.doc, "vpcid").unwrap_or_default();
        let v = cs_vpc(ctx, &vpc).await?;
        if let Some(c) = s(&v, "cidr").and_then(|c| Block::parse(&c))
            && c.overlaps(&dest)
        {
            return Err(Ec2Error::invalid_parameter(format!(
                "The CIDR {dest_text} overlaps the CIDR {c} of {vpc}: it cannot be sent through the VPN connection."
            )));
        }
    }
    for _ in 0..RETRIES {
        let mut r = get(ctx, VPN, id).await?;
        let mut routes = r.doc["routes"].as_array().cloned().unwrap_or_default();
        let pos = routes.iter().position(|x| s(x, "destinationcidrblock").as_deref() == Some(dest_text.as_str()));
        match (create, pos) {
            (true, Some(_)) => {
                return Err(Ec2Error::new(
                    Code::RouteAlreadyExists,
                    format!("The route identified by {dest_text} already exists."),
                ));
            }
            (false, None) => {
                return Err(Ec2Error::new(
                    Code::InvalidRouteNotFound,
                    format!("The route with destination-cidr-block {dest_text} does not exist in {id}"),
                ));
            }
            (true, None) => {
                if let Some(other) = routes
                    .iter()
                    .filter_map(|x| s(x, "destinationcidrblock"))
                    .find(|o| Block::parse(o).is_some_and(|b| b.overlaps(&dest)))
                {
                    return Err(Ec2Error::invalid_parameter(format!(
                        "The CIDR {dest_text} overlaps the route {other} of {id} (CloudStack refuses overlapping peer CIDRs)."
                    )));
                }
                routes.push(json!({"destinationcidrblock": dest_text, "state": "available"}));
            }
            (false, Some(i)) => {
                routes.remove(i);
            }
        }
        r.doc["routes"] = Value::Array(routes);
        sync_cloudstack(ctx, &mut r.doc).await?;
        if write(ctx, vec![Change::Update(r)]).await?.is_ok() {
            return Ok(Value::Null);
        }
    }
    Err(Ec2Error::internal())
}

// ---- changing a connection ----------------------------------------------------------------------

/// The answer of the Modify* actions: the connection as DescribeVpnConnections shows it.
async fn modified_view(ctx: &Ctx<'_>, doc: &Value) -> Result<Value, Ec2Error> {
    let cs = match s(doc, "csconn") {
        Some(conn) => ctx
            .list("listVpnConnections", &[pair("id", &conn), pair("listall", "true")], "vpnconnection")
            .await?
            .into_iter()
            .find(|c| s(c, "id").as_deref() == Some(conn.as_str())),
        None => None,
    };
    Ok(connection_view(ctx, doc, cs.as_ref()))
}

/// Write a changed connection record whose CloudStack side `apply` brings in line first; a
/// record changed meanwhile is read again and changed again; if the store cannot take it,
/// CloudStack is brought back to the record as it was.
async fn change_connection<F>(ctx: &Ctx<'_>, id: &str, change: F) -> Result<Value, Ec2Error>
where
    F: Fn(&mut Value) -> Result<(), Ec2Error>,
{
    for _ in 0..RETRIES {
        let r = get(ctx, VPN, id).await?;
        let mut n = r.clone();
        change(&mut n.doc)?;
        if n.doc == r.doc {
            return modified_view(ctx, &n.doc).await;
        }
        sync_cloudstack(ctx, &mut n.doc).await?;
        if write(ctx, vec![Change::Update(n.clone())]).await?.is_ok() {
            return modified_view(ctx, &n.doc).await;
        }
        // Changed meanwhile: CloudStack back to what the store says, then again.
        let mut back = get(ctx, VPN, id).await?.doc;
        if let Err(e) = sync_cloudstack(ctx, &mut back).await {
            tracing::warn!(error = %e, connection = %id, "could not restore a VPN connection's CloudStack side");
        }
    }
    Err(Ec2Error::internal())
}

/// ModifyVpnTunnelOptions: the one tunnel's options (what is not named stays), applied to the
/// CloudStack customer gateway (`updateVpnCustomerGateway`, which restarts the connection: the
/// tunnel is replaced, as EC2 does unless told to skip).
pub async fn modify_vpn_tunnel_options(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let id = p.require("VpnConnectionId")?.to_string();
    let outside = p.require("VpnTunnelOutsideIpAddress")?.to_string();
    refuse_present(p, &["PreSharedKeyStorage"])?;
    if p.bool("SkipTunnelReplacement")? == Some(true) {
        return Err(unsupported(
            "SkipTunnelReplacement=true (CloudStack restarts the connection when its settings change)",
        ));
    }
    let spec = p.under("TunnelOptions");
    let current = get(ctx, VPN, &id).await?;
    if s(&current.doc, "outsideip").as_deref() != Some(outside.as_str()) {
        return Err(Ec2Error::invalid_value(
            "VpnTunnelOutsideIpAddress",
            &outside,
            &format!("It is not the outside address of a tunnel of {id}."),
        ));
    }
    let base = current.doc["options"]["tunnels"][0].clone();
    let ipsec = parse_tunnel(ctx, &spec, "TunnelOptions", Some(&base))?;
    change_connection(ctx, &id, |doc| {
        let mut tunnel = ipsec.view.clone();
        tunnel["outsideipaddress"] = doc["outsideip"].clone();
        doc["options"]["tunnels"] = json!([tunnel]);
        doc["ipsec"] = json!({
            "psk": ipsec.psk, "ike": ipsec.ike, "esp": ipsec.esp, "ikelifetime": ipsec.ike_lifetime,
            "esplifetime": ipsec.esp_lifetime, "dpd": ipsec.dpd, "ikeversion": ipsec.ike_version,
        });
        Ok(())
    })
    .await
}

/// ModifyVpnConnectionOptions: the traffic selectors are the VPC's CIDR and the static routes,
/// so only "any" (0.0.0.0/0) can be set; IPv6 and other bandwidths are refused.
pub async fn modify_vpn_connection_options(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let id = p.require("VpnConnectionId")?.to_string();
    refuse_present(p, &["LocalIpv6NetworkCidr", "RemoteIpv6NetworkCidr"])?;
    if let Some(b) = p.get("TunnelBandwidth").filter(|b| *b != "standard") {
        return Err(unsupported(format!("TunnelBandwidth={b}")));
    }
    let mut set = Vec::new();
    for (param, field) in
        [("LocalIpv4NetworkCidr", "localipv4networkcidr"), ("RemoteIpv4NetworkCidr", "remoteipv4networkcidr")]
    {
        if let Some(v) = p.get(param) {
            if Block::parse(v).is_none() {
                return Err(Ec2Error::invalid_value(param, v, "This is not a valid IPv4 CIDR block."));
            }
            if v != "0.0.0.0/0" {
                return Err(unsupported(format!(
                    "{param}={v} (this cloud's VPN sends the VPC's CIDR to the connection's static routes: only 0.0.0.0/0)"
                )));
            }
            set.push((field, v.to_string()));
        }
    }
    if set.is_empty() && p.get("TunnelBandwidth").is_none() {
        return Err(Ec2Error::missing_parameter("LocalIpv4NetworkCidr or RemoteIpv4NetworkCidr"));
    }
    change_connection(ctx, &id, |doc| {
        for (field, v) in &set {
            doc["options"][*field] = json!(v);
        }
        Ok(())
    })
    .await
}

/// ModifyVpnConnection: another customer gateway (the CloudStack customer gateway's address,
/// `updateVpnCustomerGateway`) and/or another VPN gateway (a CloudStack connection on the new
/// VPC's VPN gateway is made, then the old one removed). Transit gateways are refused.
pub async fn modify_vpn_connection(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let id = p.require("VpnConnectionId")?.to_string();
    refuse_present(p, &["TransitGatewayId"])?;
    let new_cgw = p.get("CustomerGatewayId").filter(|v| !v.is_empty());
    let new_vgw = p.get("VpnGatewayId").filter(|v| !v.is_empty());
    if new_cgw.is_none() && new_vgw.is_none() {
        return Err(Ec2Error::missing_parameter("CustomerGatewayId or VpnGatewayId"));
    }
    let r = get(ctx, VPN, &id).await?;
    let old_cgw = s(&r.doc, "customergatewayid").unwrap_or_default();
    let old_vgw = s(&r.doc, "vpngatewayid").unwrap_or_default();
    let cgw_id = new_cgw.unwrap_or(&old_cgw).to_string();
    let vgw_id = new_vgw.unwrap_or(&old_vgw).to_string();
    let cgw = get(ctx, CGW, &cgw_id).await?;
    let vgw = get(ctx, VGW, &vgw_id).await?;
    if cgw_id == old_cgw && vgw_id == old_vgw {
        return modified_view(ctx, &r.doc).await;
    }
    let Some(vpc) = attached_vpc(&vgw.doc) else {
        return Err(incorrect_state(format!(
            "The VPN gateway '{vgw_id}' is not attached to a VPC: this cloud's VPN gateways live in a VPC, attach it first."
        )));
    };
    let claim = pair_claim(&cgw_id, &vgw_id);
    let conflict = || {
        Ec2Error::new(
            Code::InvalidOptionConflict,
            format!("A VPN connection between {vgw_id} and {cgw_id} already exists."),
        )
    };
    if ctx.ex.objects.holder(&claim).await.map_err(store_failed)?.is_some() {
        return Err(conflict());
    }
    let moving = vgw_id != old_vgw;
    if moving {
        // CloudStack refuses peer CIDRs that overlap the VPC's: check before anything changes.
        let v = cs_vpc(ctx, &vpc).await?;
        if let Some(c) = s(&v, "cidr").and_then(|c| Block::parse(&c)) {
            for route in route_cidrs(&r.doc) {
                if Block::parse(&route).is_some_and(|b| b.overlaps(&c)) {
                    return Err(Ec2Error::invalid_parameter(format!(
                        "The route {route} of {id} overlaps the CIDR {c} of {vpc}: it cannot be sent through the VPN connection."
                    )));
                }
            }
        }
    }
    let mut n = r.clone();
    let outside = s(&vgw.doc, "publicip").unwrap_or_default();
    n.doc["customergatewayid"] = json!(cgw_id);
    n.doc["cgwip"] = cgw.doc["ipaddress"].clone();
    n.doc["bgpasn"] = cgw.doc.get("bgpasn").cloned().unwrap_or(cgw.doc["bgpasnextended"].clone());
    n.doc["vpngatewayid"] = json!(vgw_id);
    n.doc["vpcid"] = json!(vpc);
    n.doc["csvgw"] = vgw.doc["csuuid"].clone();
    n.doc["outsideip"] = json!(outside);
    if let Some(t) = n.doc["options"]["tunnels"].get_mut(0) {
        t["outsideipaddress"] = json!(outside);
    }
    n.vpc = Some(vpc.clone());
    // CloudStack: the customer gateway's address first (restarts the old connection), then,
    // moving to another VPN gateway, a connection there and the old one removed.
    let old_conn = s(&r.doc, "csconn");
    let mut undo = Undo::new(ctx);
    if let Some(cs_cgw) = s(&r.doc, "cscgw") {
        let cidrs = route_cidrs(&n.doc);
        if cgw_id != old_cgw {
            let mut params = cgw_params(&n.doc, &cidrs);
            params.insert(0, pair("id", &cs_cgw));
            run_job(ctx, "updateVpnCustomerGateway", &params).await?;
            let mut back = cgw_params(&r.doc, &cidrs);
            back.insert(0, pair("id", &cs_cgw));
            undo.made(&id, UndoCall::job("updateVpnCustomerGateway", back)).await;
        }
        if moving {
            let vgw_uuid = s(&n.doc, "csvgw").ok_or_else(Ec2Error::internal)?;
            let (u, conn) = create_cs_connection(ctx, undo, &id, &vgw_uuid, &cs_cgw).await?;
            undo = u;
            n.doc["csconn"] = json!(conn);
        }
    }
    let release = Change::Release { claim: pair_claim(&old_cgw, &old_vgw), holder: id.clone() };
    let take = Change::Claim { claim, holder: id.clone() };
    match write(ctx, vec![take, release, Change::Update(n.clone())]).await? {
        Ok(()) => {
            undo.disarm().await;
            // The old VPC's CloudStack connection goes once the store names the new one.
            if moving
                && let Some(old) = &old_conn
                && s(&n.doc, "csconn").as_deref() != Some(old.as_str())
                && let Err(e) = remove_cs(ctx, "deleteVpnConnection", old).await
            {
                tracing::warn!(error = %e, connection = %id, old = %old, "could not remove a moved VPN connection's old CloudStack connection");
            }
            modified_view(ctx, &n.doc).await
        }
        Err(e) => {
            // A conflict on the pair claim: another connection took the pair meanwhile.
            let err = match e {
                WriteError::Conflict { holder: Some(_), .. } => conflict(),
                _ => incorrect_state(format!("The VPN connection '{id}' changed meanwhile; try again.")),
            };
            Err(undo.fail(err).await)
        }
    }
}

/// What EC2 shows of a connection: state and telemetry from CloudStack's connection (when it
/// has one), the customer gateway configuration document, options, routes.
fn connection_view(ctx: &Ctx<'_>, doc: &Value, cs: Option<&Value>) -> Value {
    let mut v = doc.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("ipsec");
    }
    let outside = s(doc, "outsideip");
    if doc["state"] == "deleted" {
        v["telemetry"] = json!([]);
        return v;
    }
    let has_cs = s(doc, "csconn").is_some();
    let cs_state = cs.and_then(|c| s(c, "state"));
    let (state, status, message) = match (has_cs, cs_state.as_deref()) {
        (false, _) => ("available", "DOWN", "No static routes: nothing to send through the tunnel yet.".to_string()),
        (true, Some("Pending")) => ("pending", "DOWN", "CloudStack is setting up the connection.".to_string()),
        (true, Some("Connected")) => ("available", "UP", String::new()),
        (true, Some(other)) => ("available", "DOWN", format!("CloudStack reports the connection as {other}.")),
        (true, None) => ("available", "DOWN", "CloudStack has no such connection any more.".to_string()),
    };
    v["state"] = json!(state);
    v["telemetry"] = json!([{
        "outsideipaddress": outside, "status": status, "statusmessage": message, "acceptedroutecount": 0,
    }]);
    v["customergatewayconfiguration"] = json!(configuration(ctx, doc));
    v
}

fn xml_escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The first `cipher-hash;group` proposal of a CloudStack policy, in the configuration
/// document's words.
fn proposal(ctx: &Ctx<'_>, policy: &str, esp: bool) -> (String, String, Option<String>) {
    let first = policy.split(',').next().unwrap_or_default();
    let (ch, group) = match first.split_once(';') {
        Some((a, b)) => (a, Some(b)),
        None => (first, None),
    };
    let (c, h) = ch.split_once('-').unwrap_or((ch, ""));
    let word = |map: &str, k: &str| {
        ctx.ex.table.maps.get(map).and_then(|m| m.get(k)).map(str::to_string).unwrap_or_else(|| k.to_string())
    };
    let integrity = if esp { "vpn_config_esp_integrity" } else { "vpn_config_ike_integrity" };
    (word("vpn_config_encryption", c), word(integrity, h), group.map(|g| word("vpn_config_pfs", g)))
}

/// EC2's customer gateway configuration document for the connection's one tunnel (CloudStack
/// has no tunnel inside addresses and no BGP, so those parts are absent).
fn configuration(ctx: &Ctx<'_>, doc: &Value) -> String {
    let i = &doc["ipsec"];
    let t = |k: &str| xml_escape(&s(doc, k).unwrap_or_default());
    let (ike_enc, ike_auth, ike_pfs) = proposal(ctx, &s(i, "ike").unwrap_or_default(), false);
    let (esp_enc, esp_auth, esp_pfs) = proposal(ctx, &s(i, "esp").unwrap_or_default(), true);
    let mode = if s(i, "ikeversion").as_deref() == Some("ikev2") { "" } else { "      <mode>main</mode>\n" };
    let pfs = |g: Option<String>| g.map(|g| format!("      <perfect_forward_secrecy>{g}</perfect_forward_secrecy>\n"));
    let dpd = if i["dpd"] == true {
        "      <dead_peer_detection>\n        <delay>30</delay>\n        <retry>4</retry>\n      </dead_peer_detection>\n"
    } else {
        ""
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vpn_connection id=\"{id}\">\n  <customer_gateway_id>{cgw}</customer_gateway_id>\n  <vpn_gateway_id>{vgw}</vpn_gateway_id>\n  <vpn_connection_type>ipsec.1</vpn_connection_type>\n  <vpn_connection_attributes>NoBGPVPNConnection</vpn_connection_attributes>\n  <ipsec_tunnel>\n    <customer_gateway>\n      <tunnel_outside_address>\n        <ip_address>{cgwip}</ip_address>\n      </tunnel_outside_address>\n    </customer_gateway>\n    <vpn_gateway>\n      <tunnel_outside_address>\n        <ip_address>{outside}</ip_address>\n      </tunnel_outside_address>\n    </vpn_gateway>\n    <ike>\n      <authentication_protocol>{ike_auth}</authentication_protocol>\n      <encryption_protocol>{ike_enc}</encryption_protocol>\n      <lifetime>{ike_life}</lifetime>\n{ike_pfs}{mode}      <pre_shared_key>{psk}</pre_shared_key>\n    </ike>\n    <ipsec>\n      <protocol>esp</protocol>\n      <authentication_protocol>{esp_auth}</authentication_protocol>\n      <encryption_protocol>{esp_enc}</encryption_protocol>\n      <lifetime>{esp_life}</lifetime>\n{esp_pfs}      <mode>tunnel</mode>\n      <clear_df_bit>true</clear_df_bit>\n      <fragmentation_before_encryption>true</fragmentation_before_encryption>\n{dpd}    </ipsec>\n  </ipsec_tunnel>\n</vpn_connection>\n",
        id = t("id"),
        cgw = t("customergatewayid"),
        vgw = t("vpngatewayid"),
        cgwip = t("cgwip"),
        outside = t("outsideip"),
        ike_life = s(i, "ikelifetime").unwrap_or_default(),
        esp_life = s(i, "esplifetime").unwrap_or_default(),
        psk = xml_escape(&s(i, "psk").unwrap_or_default()),
        ike_pfs = pfs(ike_pfs).unwrap_or_default(),
        esp_pfs = pfs(esp_pfs).unwrap_or_default(),
    )
}

// ---- describe -------------------------------------------------------------------------------------

pub fn check_describe_args(args: &Value) -> Result<(), String> {
    super::check_keys(args, &["kind", "param"], &["kind", "param"])?;
    match args["kind"].as_str() {
        Some(CGW | VGW | VPN) => Ok(()),
        _ => Err(format!("kind must be {CGW}, {VGW} or {VPN}")),
    }
}

/// DescribeCustomerGateways / DescribeVpnGateways / DescribeVpnConnections (`args.kind`, the
/// id list parameter `args.param`).
pub async fn describe_vpn_objects(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let kind = ctx.action.args.get("kind").and_then(Value::as_str).unwrap_or(CGW);
    let param = ctx.action.args.get("param").and_then(Value::as_str).unwrap_or_default();
    let sp = spec(ctx, kind)?;
    let asked: Vec<String> = ctx.req.params.list(param).into_iter().map(str::to_string).collect();
    if let Some(bad) = asked.iter().find(|a| !ids::is_well_formed(sp.kind, a)) {
        return Err(malformed(sp, bad));
    }
    let records = all(ctx, kind).await?;
    if let Some(missing) = asked.iter().find(|a| !records.iter().any(|r| r.id == **a)) {
        return Err(not_found(sp, missing));
    }
    let records: Vec<Record> = records.into_iter().filter(|r| asked.is_empty() || asked.contains(&r.id)).collect();
    let mut docs = Vec::new();
    if kind == VPN {
        let cs = if records.iter().any(|r| s(&r.doc, "csconn").is_some() && !deleted(r)) {
            ctx.list("listVpnConnections", &[pair("listall", "true")], "vpnconnection").await?
        } else {
            Vec::new()
        };
        for r in &records {
            let conn = s(&r.doc, "csconn");
            let found = cs.iter().find(|c| conn.is_some() && s(c, "id") == conn);
            docs.push(connection_view(ctx, &r.doc, found));
        }
    } else {
        docs.extend(records.into_iter().map(|r| r.doc));
    }
    Ok(Value::Array(docs))
}

// ---- route propagation ------------------------------------------------------------------------------

pub fn check_propagation_args(args: &Value) -> Result<(), String> {
    super::check_keys(args, &["op"], &["op"])?;
    match args["op"].as_str() {
        Some("enable" | "disable") => Ok(()),
        _ => Err("op must be enable or disable".into()),
    }
}

pub async fn vgw_route_propagation(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let enable = ctx.action.args.get("op").and_then(Value::as_str) == Some("enable");
    let p = &ctx.req.params;
    let gw = p.require("GatewayId")?;
    let rtb = p.require("RouteTableId")?;
    let g = get(ctx, VGW, gw).await?;
    let table = super::vpc_objects::route_table(ctx, rtb).await?;
    let vpc = table.vpc.clone().unwrap_or_default();
    if enable && attached_vpc(&g.doc).as_deref() != Some(vpc.as_str()) {
        return Err(Ec2Error::new(Code::GatewayNotAttached, format!("resource {gw} is not attached to network {vpc}")));
    }
    super::vpc_objects::update_route_table(ctx, rtb, |doc| {
        let mut list: Vec<Value> = doc["propagatingvgws"].as_array().cloned().unwrap_or_default();
        list.retain(|x| x != gw);
        if enable {
            list.push(json!(gw));
        }
        doc["propagatingvgws"] = Value::Array(list);
    })
    .await?;
    Ok(Value::Null)
}

/// DescribeRouteTables: the static routes of the VPN connections of every VPN gateway a table
/// propagates (attached to the table's VPC), as routes with origin EnableVgwRoutePropagation.
/// A route the table has itself for the same destination wins.
pub async fn propagated_routes(ctx: &Ctx<'_>, tables: &mut [Value]) -> Result<(), Ec2Error> {
    if !tables.iter().any(|t| t["propagatingvgws"].as_array().is_some_and(|a| !a.is_empty())) {
        return Ok(());
    }
    let gateways = live(ctx, VGW).await?;
    let connections = live(ctx, VPN).await?;
    for t in tables.iter_mut() {
        let vpc = s(t, "vpcid");
        let vgws: Vec<String> = t["propagatingvgws"].as_array().into_iter().flatten().map(scalar_text).collect();
        let mut extra = Vec::new();
        for g in &vgws {
            let attached = gateways.iter().any(|r| r.id == *g && attached_vpc(&r.doc) == vpc);
            if !attached {
                continue;
            }
            for c in connections.iter().filter(|c| s(&c.doc, "vpngatewayid").as_deref() == Some(g.as_str())) {
                for cidr in route_cidrs(&c.doc) {
                    let taken = t["routes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .chain(extra.iter())
                        .any(|r| s(r, "destinationcidrblock").as_deref() == Some(cidr.as_str()));
                    if !taken {
                        extra.push(json!({
                            "destinationcidrblock": cidr, "gatewayid": g,
                            "origin": "EnableVgwRoutePropagation", "state": "active",
                        }));
                    }
                }
            }
        }
        if let Some(routes) = t["routes"].as_array_mut() {
            routes.extend(extra);
        }
    }
    Ok(())
}

/// createVpnConnection between CloudStack's VPN gateway `vgw` and customer gateway `cgw`, its
/// removal registered with `undo` as soon as CloudStack names it (a connection whose router setup
/// fails stays behind in state Error: removed too). Answers the undo back and the connection id.
async fn create_cs_connection<'c>(
    ctx: &'c Ctx<'c>,
    mut undo: Undo<'c>,
    id: &str,
    vgw: &str,
    cgw: &str,
) -> Result<(Undo<'c>, Option<String>), Ec2Error> {
    let params = [pair("s2svpngatewayid", vgw), pair("s2scustomergatewayid", cgw)];
    let j = match ctx.start_job("createVpnConnection", &params).await {
        Ok(j) => j,
        Err(e) => return Err(undo.fail(e).await),
    };
    if let Some(conn) = &j.id {
        undo.made(id, UndoCall::job("deleteVpnConnection", vec![pair("id", conn)])).await;
    }
    let res = match ctx.wait_job("createVpnConnection", &j.jobid).await {
        Ok(r) => r,
        Err(e) => return Err(undo.fail(e).await),
    };
    Ok((undo, j.id.or_else(|| res.get("vpnconnection").and_then(|c| s(c, "id")))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_keys() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(policy(&v(&["aes128"]), &v(&["sha1"]), &v(&["modp1024"])), "aes128-sha1;modp1024");
        assert_eq!(policy(&v(&["aes128", "aes256"]), &v(&["sha256"]), &v(&[])), "aes128-sha256,aes256-sha256");
        assert!(
            valid_psk("abcdefgh_12.3") && !valid_psk("0abcdefgh") && !valid_psk("short") && !valid_psk("bad-key!x")
        );
        for _ in 0..50 {
            assert!(valid_psk(&random_psk()));
        }
    }
}
