//! Elastic IPs: finding an address by IP, allocation id or association id (the `address`
//! resolver), AllocateAddress (EC2-Classic addresses in a zone, `Domain=vpc` addresses in a VPC),
//! AssociateAddress / DisassociateAddress / ReleaseAddress, the DescribeAddresses annotations,
//! and the public addresses RunInstances gives instances in subnets (docs/vpc.md).

use std::collections::HashMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::convert;
use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::{Undo, UndoCall, create_tags, field, pair, param, run_job};
use super::vpc_objects as objects;
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};

/// CloudStack tag on an address the gateway allocated as an instance's launch-time public IP
/// (`AssociatePublicIpAddress`, `MapPublicIpOnLaunch`); the value is the VM's uuid. Such an
/// address is not an Elastic IP: DescribeAddresses and the address lookups never show it, and
/// TerminateInstances releases it.
pub const LAUNCH_IP_TAG: &str = "ec2bridge:public-ip-of";

/// The `eipassoc-` id of the association of an address with an instance: derived like every
/// other id, from both uuids, so that a new association gets a new id.
pub fn association_id(ip_uuid: &str, vm_uuid: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"association:");
    h.update(ip_uuid.as_bytes());
    h.update(b":");
    h.update(vm_uuid.as_bytes());
    format!("eipassoc-{}", &hex::encode(h.finalize())[..17])
}

fn association_of(ip: &Value) -> Option<String> {
    Some(association_id(field(ip, "id")?, field(ip, "virtualmachineid")?))
}

fn address_not_found(ip: &str) -> Ec2Error {
    Ec2Error::new(Code::InvalidAddressNotFound, format!("Address '{ip}' not found."))
}

fn has_tag(v: &Value, key: &str) -> bool {
    v["tags"].as_array().is_some_and(|t| t.iter().any(|t| t["key"] == key))
}

fn tag_value<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v["tags"].as_array()?.iter().find(|t| t["key"] == key).and_then(|t| t["value"].as_str())
}

/// An instance's launch-time public address (not an Elastic IP).
pub fn is_launch_ip(ip: &Value) -> bool {
    has_tag(ip, LAUNCH_IP_TAG)
}

/// Every public address of the caller that is not a network's source NAT address (the address
/// kind's list call), with `extra` CloudStack filters: Elastic IPs and launch-time addresses.
async fn list_public(ctx: &Ctx<'_>, extra: &[(&str, &str)]) -> Result<Vec<Value>, Ec2Error> {
    let kind = ctx.ex.table.kinds.get(&Kind::Address).ok_or_else(Ec2Error::internal)?;
    let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
    let mut params = lc.params.clone();
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let items = ctx.list(&lc.command, &params, &lc.items).await?;
    // Source NAT addresses are a network's own; never Elastic IPs (filtered here too, for clouds
    // that ignore issourcenat=false).
    Ok(items.into_iter().filter(|i| i.get("issourcenat").and_then(Value::as_bool) != Some(true)).collect())
}

/// `PublicIp` must be an IPv4 address (EC2: InvalidParameterValue); a well-formed address the
/// caller does not hold is InvalidAddress.NotFound.
fn check_ipv4(ip: &str) -> Result<(), Ec2Error> {
    match ip.parse::<std::net::Ipv4Addr>() {
        Ok(_) => Ok(()),
        Err(_) => Err(Ec2Error::new(
            Code::InvalidParameterValue,
            format!("Invalid value '{ip}' for PublicIp. It must be a valid IPv4 address."),
        )),
    }
}

/// The caller's Elastic IPs, with `extra` CloudStack filters.
async fn list_addresses(ctx: &Ctx<'_>, extra: &[(&str, &str)]) -> Result<Vec<Value>, Ec2Error> {
    Ok(list_public(ctx, extra).await?.into_iter().filter(|i| !is_launch_ip(i)).collect())
}

/// The address a request names: `PublicIp`, `AllocationId` or `AssociationId` (the action's
/// `exclusive` keeps it to one). One list call.
pub(crate) async fn find_address(ctx: &Ctx<'_>) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let nonempty = |n: &str| p.get(n).filter(|v| !v.is_empty()).map(str::to_string);
    if let Some(ip) = nonempty("PublicIp") {
        check_ipv4(&ip)?;
        let l = list_addresses(ctx, &[("ipaddress", &ip)]).await?;
        return l
            .into_iter()
            .find(|i| field(i, "ipaddress") == Some(ip.as_str()))
            .ok_or_else(|| address_not_found(&ip));
    }
    if let Some(alloc) = nonempty("AllocationId") {
        let kind = ctx.ex.table.kinds.get(&Kind::Address).ok_or_else(Ec2Error::internal)?;
        if !ids::is_well_formed(Kind::Address, &alloc) {
            return Err(Ec2Error::new(kind.malformed_code, kind.malformed_msg.replace("{id}", &alloc)));
        }
        // Known uuid: ask for that one; else list them all and match derived ids.
        let l = match ctx.ex.ids.lookup(&alloc).await {
            Some(u) => list_addresses(ctx, &[("id", &u)]).await?,
            None => list_addresses(ctx, &[]).await?,
        };
        let hit = l.into_iter().find(|i| field(i, "id").is_some_and(|u| ids::ec2_id(Kind::Address, u) == alloc));
        return match hit {
            Some(h) => {
                let u = field(&h, "id").unwrap_or_default().to_string();
                ctx.ex.ids.record(vec![(Kind::Address, alloc.clone(), u)]).await;
                Ok(h)
            }
            None => Err(super::super::exec::not_found(kind, &[alloc.as_str()])),
        };
    }
    if let Some(assoc) = nonempty("AssociationId") {
        let l = list_addresses(ctx, &[]).await?;
        return l.into_iter().find(|i| association_of(i).as_deref() == Some(assoc.as_str())).ok_or_else(|| {
            Ec2Error::new(Code::InvalidAssociationIdNotFound, format!("The association ID '{assoc}' does not exist"))
        });
    }
    let names = if ctx.action.exclusive.iter().flatten().any(|n| n == "AssociationId") {
        "PublicIp or AssociationId"
    } else {
        "PublicIp or AllocationId"
    };
    Err(Ec2Error::new(Code::MissingParameter, format!("The request must contain the parameter {names}")))
}

/// Resolver `address`: the uuid of the address the request names. `address:associated`: the
/// same, but nothing when the address is not associated with an instance. `address:release`:
/// the same, refusing what ReleaseAddress must not release: a VPC address named by its IP, or
/// associated (EC2-Classic addresses are released even when associated, as EC2-Classic did).
pub async fn r_address(ctx: &Ctx<'_>, _: Option<String>, arg: &str, _: &str) -> Result<Vec<String>, Ec2Error> {
    let ip = settled(ctx, find_address(ctx).await?).await?;
    if arg == "associated" && field(&ip, "virtualmachineid").is_none() {
        return Ok(Vec::new());
    }
    if arg == "release" && field(&ip, "vpcid").is_some() {
        if ctx.req.params.get("AllocationId").is_none_or(|a| a.is_empty()) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                "You must specify an allocation id when releasing a VPC elastic IP address",
            ));
        }
        if let (Some(a), Some(u)) = (association_of(&ip), field(&ip, "id")) {
            return Err(Ec2Error::new(
                Code::InvalidIpAddressInUse,
                format!("Address {} is in use (association {a}).", ids::ec2_id(Kind::Address, u)),
            ));
        }
        if let (Some(nat), Some(u)) = (super::nat::holds(&ip), field(&ip, "id")) {
            return Err(Ec2Error::new(
                Code::InvalidIpAddressInUse,
                format!("Address {} is in use by NAT gateway {nat}.", ids::ec2_id(Kind::Address, u)),
            ));
        }
    }
    Ok(field(&ip, "id").map(|u| vec![u.to_string()]).unwrap_or_default())
}

async fn disable_nat(ctx: &Ctx<'_>, ip_uuid: &str) -> Result<(), Ec2Error> {
    let j = ctx.start_job("disableStaticNat", &[("ipaddressid".into(), ip_uuid.into())]).await?;
    ctx.wait_job("disableStaticNat", &j.jobid).await.map(|_| ())
}

/// enableStaticNat: `network` (a VPC tier) and `guest_ip` (a secondary address) for VPC addresses.
fn nat_params(ip_uuid: &str, vm_uuid: &str, network: Option<&str>, guest_ip: Option<&str>) -> Vec<(String, String)> {
    let mut p = vec![pair("ipaddressid", ip_uuid), pair("virtualmachineid", vm_uuid)];
    if let Some(n) = network {
        p.push(pair("networkid", n));
    }
    if let Some(g) = guest_ip {
        p.push(pair("vmguestip", g));
    }
    p
}

/// How to put an address's current static NAT back (the undo of a disassociation).
fn restore_of(ip: &Value) -> Option<UndoCall> {
    let ip_uuid = field(ip, "id")?;
    let vm = field(ip, "virtualmachineid")?;
    let vpc = field(ip, "vpcid").is_some();
    let network = if vpc { field(ip, "associatednetworkid") } else { None };
    let guest = if vpc { field(ip, "vmipaddress") } else { None };
    Some(UndoCall::call("enableStaticNat", nat_params(ip_uuid, vm, network, guest)))
}

// ---- AllocateAddress ----------------------------------------------------------------------------

/// The VPC `Domain=vpc` addresses are allocated in (docs/vpc.md): the caller's default VPC, else
/// the newest of its VPCs with an attached internet gateway; None when there is neither.
pub async fn address_vpc(ctx: &Ctx<'_>) -> Result<Option<Value>, Ec2Error> {
    let vpcs = objects::cs_vpcs(ctx).await?;
    if let Some((_, v)) = vpcs.iter().find(|(_, v)| tag_value(v, super::vpc::DEFAULT_VPC_TAG) == Some("true")) {
        return Ok(Some(v.clone()));
    }
    let mut best: Option<(String, Value)> = None;
    for (id, v) in vpcs {
        if objects::attached_gateway(ctx, &id).await?.is_none() {
            continue;
        }
        let created = v.get("created").map(scalar_text).unwrap_or_default();
        if best.as_ref().is_none_or(|(c, _)| created >= *c) {
            best = Some((created, v));
        }
    }
    Ok(best.map(|(_, v)| v))
}

/// AllocateAddress. `Domain=vpc`: `associateIpAddress vpcid=` in the VPC `address_vpc` picks; an
/// account with no such VPC gets an EC2-Classic address in the default zone when that zone is an
/// EC2-Classic (security group) zone, else `VPCIdNotSpecified`. Otherwise `zoneid=` as before.
pub async fn allocate(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let mut params: Vec<(String, String)> = prep.params.iter().filter(|(k, _)| !k.starts_with('_')).cloned().collect();
    let asked = ctx.req.params.get("Domain").filter(|d| !d.is_empty()).unwrap_or("standard").to_string();
    let tags = super::common::tag_specifications(&ctx.req.params, "elastic-ip")?;
    if asked == "vpc" {
        match address_vpc(ctx).await? {
            Some(v) => {
                params.retain(|(k, _)| k != "zoneid");
                params.push(pair("vpcid", field(&v, "id").unwrap_or_default()));
            }
            None => {
                let zone = param(prep, "zoneid").unwrap_or_default();
                let zones = ctx.list_cached("listZones", &[], "zone").await?;
                let classic = zones
                    .iter()
                    .find(|z| field(z, "id") == Some(zone))
                    .is_some_and(|z| z["securitygroupsenabled"] == true || field(z, "networktype") == Some("Basic"));
                if !classic {
                    return Err(Ec2Error::new(
                        Code::VpcIdNotSpecified,
                        "No default VPC for this user, and no VPC with an attached internet gateway to allocate the address in.",
                    ));
                }
            }
        }
    }
    let mut ip = allocate_now(ctx, &params).await?;
    // TagSpecification: tagged once CloudStack has finished the allocation (it refuses changes to
    // an Allocating address); the address is released again when its tags cannot be set.
    if !tags.is_empty() {
        ip = settled(ctx, ip).await?;
        let uuid = field(&ip, "id").unwrap_or_default().to_string();
        let mut undo = Undo::new(ctx);
        undo.made(&ids::ec2_id(Kind::Address, &uuid), UndoCall::job("disassociateIpAddress", vec![pair("id", &uuid)]))
            .await;
        if let Err(e) = create_tags(ctx, "PublicIpAddress", &[&uuid], &tags).await {
            return Err(undo.fail(e).await);
        }
        undo.disarm().await;
    }
    if field(&ip, "vpcid").is_some() {
        super::common::set(&mut ip, "_domain", "vpc");
    } else {
        super::common::set(&mut ip, "_domain", asked);
    }
    Ok(ip)
}

/// `associateIpAddress`, answered as soon as CloudStack has committed the address: CloudStack
/// picks it when the command is accepted and lists it (`Allocating`) before the job ends, so one
/// listPublicIpAddresses by the new id gives the IP. The job ends in the background, recorded in
/// the operations journal (`watch-allocate`, docs/gateway-state.md): a slow or hung job can no
/// longer hold the request until the client (the AWS CLI reads for 60 s) or a timeout gives up
/// and retries into a second address. Where the address is not listed yet, the job is waited for.
async fn allocate_now(ctx: &Ctx<'_>, params: &[(String, String)]) -> Result<Value, Ec2Error> {
    let j = ctx.start_job("associateIpAddress", params).await?;
    if let Some(id) = j.id.as_deref() {
        let l =
            ctx.list("listPublicIpAddresses", &[pair("id", id), pair("listall", "true")], "publicipaddress").await?;
        if let Some(ip) = l.into_iter().find(|i| field(i, "id") == Some(id) && field(i, "ipaddress").is_some()) {
            let doc = json!({ "command": "associateIpAddress", "jobid": j.jobid, "id": id });
            let owner = objects::owner(ctx);
            super::super::background::Worker::of(ctx.ex).start("watch-allocate", &owner, ctx.creds(), doc).await;
            return Ok(ip);
        }
    }
    let v = ctx.wait_job("associateIpAddress", &j.jobid).await?;
    Ok(v.get("ipaddress").cloned().unwrap_or(v))
}

/// An address AllocateAddress answered before its job ended is `Allocating` until then, and
/// CloudStack refuses static NAT and release meanwhile: wait for the job to end (a few seconds
/// at most on a healthy cloud), then answer from the address as it is. Still allocating after
/// `SETTLE_WAIT`: IncorrectState (nothing was changed; the client may try again).
async fn settled(ctx: &Ctx<'_>, ip: Value) -> Result<Value, Ec2Error> {
    const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
    if field(&ip, "state") != Some("Allocating") {
        return Ok(ip);
    }
    let Some(id) = field(&ip, "id").map(str::to_string) else { return Ok(ip) };
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(100);
    while started.elapsed() < SETTLE_WAIT {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
        let l = list_public(ctx, &[("id", &id)]).await?;
        match l.into_iter().find(|i| field(i, "id") == Some(id.as_str())) {
            Some(now) if field(&now, "state") == Some("Allocating") => {}
            Some(now) => return Ok(now),
            // The allocation failed and CloudStack released the address.
            None => return Err(address_not_found(field(&ip, "ipaddress").unwrap_or(&id))),
        }
    }
    Err(Ec2Error::new(
        Code::IncorrectState,
        format!(
            "Address '{}' is still being allocated by the cloud; try again shortly.",
            field(&ip, "ipaddress").unwrap_or(&id)
        ),
    ))
}

// ---- AssociateAddress ---------------------------------------------------------------------------

/// Where an association points: the VM, its NIC's tier, the NIC's addresses (primary first),
/// and how the request named it (for messages).
struct NatTarget {
    vm: String,
    tier: Option<String>,
    vpc: Option<String>,
    addresses: Vec<String>,
    label: String,
}

/// The target of AssociateAddress: `InstanceId` (its primary NIC) or `NetworkInterfaceId` (an
/// attached interface; CloudStack has no static NAT to a NIC without a VM).
async fn nat_target(ctx: &Ctx<'_>, prep: &Prepared) -> Result<NatTarget, Ec2Error> {
    if let Some((iid, vm_uuid)) = prep.ids.first() {
        let l =
            ctx.list("listVirtualMachines", &[pair("id", vm_uuid), pair("listall", "true")], "virtualmachine").await?;
        let vm = l.into_iter().find(|v| field(v, "id") == Some(vm_uuid.as_str())).ok_or_else(|| {
            Ec2Error::new(Code::InvalidInstanceIdNotFound, format!("The instance ID '{iid}' does not exist"))
        })?;
        let nics = vm["nic"].as_array().cloned().unwrap_or_default();
        let nic = nics.iter().find(|n| n["isdefault"] == true).or(nics.first()).cloned().unwrap_or(Value::Null);
        let tier = field(&nic, "networkid").map(str::to_string);
        let mut vpc = None;
        if let Some(t) = &tier {
            let params = [pair("listall", "true")];
            let mut nets = ctx.list_cached("listNetworks", &params, "network").await?;
            if !nets.iter().any(|n| field(n, "id") == Some(t.as_str())) {
                nets = ctx.list_refresh("listNetworks", &params, "network").await?;
            }
            vpc = nets
                .iter()
                .find(|n| field(n, "id") == Some(t.as_str()))
                .and_then(|n| field(n, "vpcid"))
                .map(str::to_string);
        }
        let mut addresses: Vec<String> = field(&nic, "ipaddress").map(str::to_string).into_iter().collect();
        addresses.extend(
            nic["secondaryip"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| field(x, "ipaddress"))
                .map(str::to_string),
        );
        return Ok(NatTarget { vm: vm_uuid.clone(), tier, vpc, addresses, label: format!("instance '{iid}'") });
    }
    let Some(eni) = ctx.req.params.get("NetworkInterfaceId").filter(|v| !v.is_empty()) else {
        return Err(Ec2Error::new(
            Code::MissingParameter,
            "Either instance ID or network interface id must be specified",
        ));
    };
    let view = super::eni::interface(ctx, eni).await?;
    let Some(vm) = view["attachment"]["instanceuuid"].as_str().filter(|v| !v.is_empty()) else {
        return Err(Ec2Error::new(
            Code::InvalidParameterCombination,
            format!(
                "Network interface '{eni}' is not attached to an instance: this cloud maps public addresses to instances only."
            ),
        ));
    };
    let tier = ctx.resolve_ids(Kind::Subnet, &[scalar_text(&view["subnetid"])]).await?.remove(0);
    let vpc = ctx.resolve_ids(Kind::Vpc, &[scalar_text(&view["vpcid"])]).await?.remove(0);
    let addresses = view["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| field(a, "ipaddress"))
        .map(str::to_string)
        .collect();
    Ok(NatTarget {
        vm: vm.to_string(),
        tier: Some(tier),
        vpc: Some(vpc),
        addresses,
        label: format!("network interface '{eni}'"),
    })
}

/// AssociateAddress (the `address` resolver waited for an address still being allocated). One
/// list of the caller's addresses tells where the address is and what is
/// on the target; what is in the way is disassociated first (the target's old address as EC2
/// does; an address associated elsewhere only with AllowReassociation), and put back if the new
/// association fails. VPC addresses need an attached internet gateway and a target in their VPC.
pub async fn associate(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let ip_uuid = param(prep, "ipaddressid").ok_or_else(Ec2Error::internal)?;
    let reassociate = param(prep, "_reassociate") == Some("true");
    let all = list_public(ctx, &[]).await?;
    let target = all
        .iter()
        .find(|i| field(i, "id") == Some(ip_uuid) && !is_launch_ip(i))
        .ok_or_else(|| address_not_found(ip_uuid))?;
    let shown = field(target, "ipaddress").unwrap_or(ip_uuid).to_string();
    if super::nat::holds(target).is_some() {
        return Err(Ec2Error::new(
            Code::ResourceAlreadyAssociated,
            format!("Elastic IP address [{}] is already associated", ids::ec2_id(Kind::Address, ip_uuid)),
        ));
    }
    let p = &ctx.req.params;
    let vpc_uuid = field(target, "vpcid");
    if vpc_uuid.is_none() {
        for n in ["NetworkInterfaceId", "PrivateIpAddress"] {
            if p.get(n).is_some_and(|v| !v.is_empty()) {
                return Err(Ec2Error::combination(format!(
                    "The parameter {n} needs a VPC address (AllocateAddress Domain=vpc); '{shown}' is an EC2-Classic address."
                )));
            }
        }
    }
    // EC2-Classic: the instance as named (CloudStack picks its NIC); VPC: the NIC looked up.
    let to = match (vpc_uuid, prep.ids.first()) {
        (None, Some((iid, vm))) => NatTarget {
            vm: vm.clone(),
            tier: None,
            vpc: None,
            addresses: Vec::new(),
            label: format!("instance '{iid}'"),
        },
        (None, None) => return Err(Ec2Error::missing_parameter("InstanceId")),
        (Some(_), _) => nat_target(ctx, prep).await?,
    };
    let (network, guest_ip, private) = match vpc_uuid {
        Some(vpc) => {
            let vpc_id = ids::ec2_id(Kind::Vpc, vpc);
            if to.vpc.as_deref() != Some(vpc) {
                let there = to.vpc.as_deref().map(|v| ids::ec2_id(Kind::Vpc, v));
                return Err(Ec2Error::combination(format!(
                    "Address '{shown}' belongs to {vpc_id} and {} is {}: this cloud cannot move an address between VPCs.",
                    to.label,
                    there.map_or("not in a VPC".to_string(), |t| format!("in {t}"))
                )));
            }
            if objects::attached_gateway(ctx, &vpc_id).await?.is_none() {
                return Err(Ec2Error::new(
                    Code::GatewayNotAttached,
                    format!("Network {vpc_id} is not attached to any internet gateway"),
                ));
            }
            let primary = to.addresses.first().cloned().unwrap_or_default();
            let private = match p.get("PrivateIpAddress").filter(|v| !v.is_empty()) {
                Some(a) if to.addresses.iter().any(|x| x == a) => a.to_string(),
                Some(a) => {
                    return Err(Ec2Error::new(
                        Code::InvalidParameterValue,
                        format!("The private IP address {a} is not an address of the {}.", to.label),
                    ));
                }
                None => primary.clone(),
            };
            let guest = (private != primary).then(|| private.clone());
            (to.tier.clone(), guest, Some(private))
        }
        None => (None, None, None),
    };
    let vm_uuid = to.vm.as_str();
    let current = field(target, "virtualmachineid");
    let here = |i: &Value| {
        field(i, "virtualmachineid") == Some(vm_uuid)
            && private.as_deref().is_none_or(|a| field(i, "vmipaddress") == Some(a))
    };
    if here(target) {
        return Ok(json!({ "_associationid": association_id(ip_uuid, vm_uuid) }));
    }
    let mut undo = Undo::new(ctx);
    if let Some(other) = current {
        if !reassociate {
            let e = match vpc_uuid {
                Some(_) => Ec2Error::new(
                    Code::ResourceAlreadyAssociated,
                    format!(
                        "resource {} is already associated with associate-id {}",
                        ids::ec2_id(Kind::Address, ip_uuid),
                        association_id(ip_uuid, other)
                    ),
                ),
                None => Ec2Error::new(
                    Code::InvalidIpAddressInUse,
                    format!(
                        "Address '{shown}' is already associated with instance '{}'; set AllowReassociation to move it.",
                        ids::ec2_id(Kind::Instance, other)
                    ),
                ),
            };
            return Err(e);
        }
        disable_nat(ctx, ip_uuid).await?;
        if let Some(r) = restore_of(target) {
            undo.changed(r).await;
        }
    }
    // What the target address has now: an Elastic IP moves off (as EC2 does); a launch-time
    // address is released once the new association holds.
    let mut launch_ip = None;
    for old in all.iter().filter(|i| field(i, "id") != Some(ip_uuid) && here(i)) {
        let old_id = field(old, "id").unwrap_or_default();
        if let Err(e) = disable_nat(ctx, old_id).await {
            return Err(undo.fail(e).await);
        }
        if let Some(r) = restore_of(old) {
            undo.changed(r).await;
        }
        if is_launch_ip(old) {
            launch_ip = Some(old_id.to_string());
        }
    }
    let nat = nat_params(ip_uuid, vm_uuid, network.as_deref(), guest_ip.as_deref());
    if let Err(mut e) = ctx.call("enableStaticNat", &nat).await {
        if e.is(Code::InvalidParameterCombination) {
            e.message = format!("Address '{shown}' cannot be associated with {}: {}", to.label, e.message);
        }
        return Err(undo.fail(e).await);
    }
    undo.disarm().await;
    if let Some(old) = launch_ip
        && let Err(e) = run_job(ctx, "disassociateIpAddress", &[pair("id", &old)]).await
    {
        tracing::warn!(error = %e.message, "a launch-time public address replaced by an Elastic IP could not be released");
    }
    Ok(json!({ "_associationid": association_id(ip_uuid, vm_uuid) }))
}

// ---- VPC dependencies ---------------------------------------------------------------------------

/// The addresses of a CloudStack VPC (Elastic IPs and launch-time addresses).
pub async fn vpc_addresses(ctx: &Ctx<'_>, vpc_uuid: &str) -> Result<Vec<Value>, Ec2Error> {
    Ok(list_public(ctx, &[("vpcid", vpc_uuid)])
        .await?
        .into_iter()
        .filter(|i| field(i, "vpcid") == Some(vpc_uuid))
        .collect())
}

// ---- launch-time public addresses ---------------------------------------------------------------

/// RunInstances in a subnet with a public address: for each new VM, an address in the VPC
/// (`associateIpAddress vpcid=`), marked as the VM's (`LAUNCH_IP_TAG`), static NAT to its NIC on
/// the tier. Answers the addresses made (uuid, ip) per VM; on failure the addresses made so far
/// are released and the error is answered.
pub async fn launch_addresses(
    ctx: &Ctx<'_>,
    vpc_uuid: &str,
    tier: &str,
    vms: &[String],
) -> Result<HashMap<String, String>, Ec2Error> {
    let one = |vm: String| async move {
        let r = run_job(ctx, "associateIpAddress", &[pair("vpcid", vpc_uuid)]).await;
        let ip = match r {
            Ok(r) => r.get("ipaddress").cloned().unwrap_or(r),
            Err(e) => return (vm, None, Err(e)),
        };
        let uuid = field(&ip, "id").unwrap_or_default().to_string();
        let addr = field(&ip, "ipaddress").unwrap_or_default().to_string();
        let marked =
            create_tags(ctx, "PublicIpAddress", &[uuid.as_str()], &[(LAUNCH_IP_TAG.to_string(), vm.clone())]).await;
        let res = match marked {
            Ok(()) => ctx.call("enableStaticNat", &nat_params(&uuid, &vm, Some(tier), None)).await.map(|_| addr),
            Err(e) => Err(e),
        };
        (vm, Some(uuid), res)
    };
    let results =
        super::super::backend::join_limited(vms.iter().cloned().map(one).collect(), ctx.ex.opts.call_concurrency).await;
    let mut out = HashMap::new();
    let mut first_err = None;
    let mut made = Vec::new();
    for (vm, uuid, r) in results {
        if let Some(u) = &uuid {
            made.push(u.clone());
        }
        match r {
            Ok(addr) => {
                out.insert(vm, addr);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        for u in made {
            if let Err(x) = run_job(ctx, "disassociateIpAddress", &[pair("id", &u)]).await {
                tracing::warn!(error = %x.message, "a launch-time public address could not be released after a failed launch");
            }
        }
        return Err(e);
    }
    Ok(out)
}

/// TerminateInstances: release the launch-time public addresses of the VMs being destroyed
/// (best effort: a failure is logged; the address is still marked and released next time).
pub async fn release_launch_addresses(ctx: &Ctx<'_>, vms: &[String]) {
    if vms.is_empty() {
        return;
    }
    let l = match list_public(ctx, &[("tags[0].key", LAUNCH_IP_TAG)]).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e.message, "could not list launch-time public addresses to release");
            return;
        }
    };
    let futs: Vec<_> = l
        .iter()
        .filter(|i| tag_value(i, LAUNCH_IP_TAG).is_some_and(|v| vms.iter().any(|x| x == v)))
        .filter_map(|i| field(i, "id"))
        .map(|u| async move { (u, run_job(ctx, "disassociateIpAddress", &[pair("id", u)]).await) })
        .collect();
    for (u, r) in super::super::backend::join_limited(futs, ctx.ex.opts.call_concurrency).await {
        if let Err(e) = r {
            tracing::warn!(address = u, error = %e.message, "a launch-time public address could not be released");
        }
    }
}

/// DescribeInstances / DescribeNetworkInterfaces: the public addresses mapped to instances, by
/// (VM uuid, tier uuid, private address) -> `{publicip, ipownerid}` (ipOwnerId: `amazon` for a
/// launch-time address, else the owner's 12-digit account number), with `allocationid` and
/// `associationid` for an Elastic IP (a launch-time address has neither, as on EC2).
pub async fn mapped_by_nic(ctx: &Ctx<'_>) -> Result<HashMap<(String, String, String), Value>, Ec2Error> {
    let l = list_public(ctx, &[("isstaticnat", "true")]).await?;
    let mut out = HashMap::new();
    for i in l {
        let (Some(vm), Some(net), Some(priv_ip), Some(ip)) = (
            field(&i, "virtualmachineid"),
            field(&i, "associatednetworkid"),
            field(&i, "vmipaddress"),
            field(&i, "ipaddress"),
        ) else {
            continue;
        };
        let mut a = json!({ "publicip": ip });
        if is_launch_ip(&i) {
            a["ipownerid"] = json!("amazon");
        } else {
            a["ipownerid"] = json!(convert::owner_number(&ctx.vars, field(&i, "account").unwrap_or_default()));
            if let Some(u) = field(&i, "id") {
                a["allocationid"] = json!(ids::ec2_id(Kind::Address, u));
            }
            if let Some(assoc) = association_of(&i) {
                a["associationid"] = json!(assoc);
            }
        }
        out.insert((vm.to_string(), net.to_string(), priv_ip.to_string()), a);
    }
    Ok(out)
}

// ---- DescribeAddresses --------------------------------------------------------------------------

/// DescribeAddresses: launch-time addresses left out; `_associationid` on associated addresses,
/// `_domain`, and for VPC addresses the network interface; PublicIp.N keeps the named
/// addresses, each of which must exist (InvalidAddress.NotFound).
pub async fn annotations(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    items.retain(|i| i.get("issourcenat").and_then(Value::as_bool) != Some(true) && !is_launch_ip(i));
    let mapped_in_vpc = items.iter().any(|i| field(i, "vpcid").is_some() && field(i, "virtualmachineid").is_some());
    let enis = if mapped_in_vpc { super::eni::interface_ids(ctx).await? } else { HashMap::new() };
    for it in &mut items {
        let assoc = association_of(it);
        let vpc = field(it, "vpcid").is_some();
        let eni = match (field(it, "virtualmachineid"), field(it, "associatednetworkid")) {
            (Some(vm), Some(net)) if vpc => enis.get(&(vm.to_string(), ids::ec2_id(Kind::Subnet, net))).cloned(),
            _ => None,
        };
        let account = it.get("account").cloned();
        let nat = match (super::nat::holds(it), field(it, "id")) {
            (Some(n), Some(u)) => super::nat::address_view(ctx, &n, u).await?,
            _ => None,
        };
        if let Some(o) = it.as_object_mut() {
            // The gateway's marker tags (a NAT gateway's hold) are not the user's.
            if let Some(Value::Array(tags)) = o.get_mut("tags") {
                tags.retain(|t| !t["key"].as_str().unwrap_or_default().starts_with(super::vpc::MARKER_PREFIX));
            }
            if let Some((a, e, private)) = nat {
                o.insert("_associationid".into(), Value::String(a));
                o.insert("_eni".into(), Value::String(e));
                o.insert("_eniowner".into(), account.clone().unwrap_or(Value::Null));
                o.insert("vmipaddress".into(), Value::String(private));
            }
            if let Some(a) = assoc {
                o.insert("_associationid".into(), Value::String(a));
            }
            o.insert("_domain".into(), Value::String(if vpc { "vpc" } else { "standard" }.into()));
            if let Some(e) = eni {
                o.insert("_eni".into(), Value::String(e));
                o.insert("_eniowner".into(), account.unwrap_or(Value::Null));
            }
        }
    }
    let p = &ctx.req.params;
    let wanted: Vec<&str> = p.list("PublicIp");
    for w in &wanted {
        check_ipv4(w)?;
    }
    if !wanted.is_empty() {
        let have = |ip: &str| items.iter().any(|i| i.get("ipaddress").map(scalar_text).as_deref() == Some(ip));
        if let Some(missing) = wanted.iter().find(|w| !have(w)) {
            return Err(address_not_found(missing));
        }
        items.retain(|i| i.get("ipaddress").map(scalar_text).is_some_and(|ip| wanted.contains(&ip.as_str())));
    }
    Ok(items)
}
