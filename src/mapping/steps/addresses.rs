//! Elastic IPs: finding an address by IP, allocation id or association id (the `address`
//! resolver), AssociateAddress / DisassociateAddress, and the DescribeAddresses annotations.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::common::{Undo, UndoCall, field, pair, param};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};

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

/// The caller's Elastic IPs (the address kind's list call), with `extra` CloudStack filters.
async fn list_addresses(ctx: &Ctx<'_>, extra: &[(&str, &str)]) -> Result<Vec<Value>, Ec2Error> {
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

/// The address a request names: `PublicIp`, `AllocationId` or `AssociationId` (the action's
/// `exclusive` keeps it to one). One list call.
async fn find_address(ctx: &Ctx<'_>) -> Result<Value, Ec2Error> {
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
/// same, but nothing when the address is not associated with an instance.
pub async fn r_address(ctx: &Ctx<'_>, _: Option<String>, arg: &str, _: &str) -> Result<Vec<String>, Ec2Error> {
    let ip = find_address(ctx).await?;
    if arg == "associated" && field(&ip, "virtualmachineid").is_none() {
        return Ok(Vec::new());
    }
    Ok(field(&ip, "id").map(|u| vec![u.to_string()]).unwrap_or_default())
}

async fn disable_nat(ctx: &Ctx<'_>, ip_uuid: &str) -> Result<(), Ec2Error> {
    let j = ctx.start_job("disableStaticNat", &[("ipaddressid".into(), ip_uuid.into())]).await?;
    ctx.wait_job("disableStaticNat", &j.jobid).await.map(|_| ())
}

async fn enable_nat(ctx: &Ctx<'_>, ip_uuid: &str, vm_uuid: &str) -> Result<(), Ec2Error> {
    let p = [("ipaddressid".to_string(), ip_uuid.to_string()), ("virtualmachineid".to_string(), vm_uuid.to_string())];
    ctx.call("enableStaticNat", &p).await.map(|_| ())
}

/// AssociateAddress. One list of the caller's addresses tells where the address is and which
/// address the instance has; what is in the way is disassociated first (the instance's old
/// address as EC2 does; an address on another instance only with AllowReassociation), and
/// re-associated if the new association fails.
pub async fn associate(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let ip_uuid = param(prep, "ipaddressid").ok_or_else(Ec2Error::internal)?;
    let (iid, vm_uuid) = prep.ids.first().ok_or_else(|| Ec2Error::missing_parameter("InstanceId"))?;
    let reassociate = param(prep, "_reassociate") == Some("true");
    let all = list_addresses(ctx, &[]).await?;
    let target = all.iter().find(|i| field(i, "id") == Some(ip_uuid)).ok_or_else(|| address_not_found(ip_uuid))?;
    let shown = field(target, "ipaddress").unwrap_or(ip_uuid).to_string();
    let current = field(target, "virtualmachineid");
    if current == Some(vm_uuid.as_str()) {
        return Ok(json!({ "_associationid": association_id(ip_uuid, vm_uuid) }));
    }
    let mut undo = Undo::new(ctx);
    let restore = |ip: &str, vm: &str| {
        UndoCall::call("enableStaticNat", vec![pair("ipaddressid", ip), pair("virtualmachineid", vm)])
    };
    if let Some(other) = current {
        if !reassociate {
            return Err(Ec2Error::new(
                Code::InvalidIpAddressInUse,
                format!(
                    "Address '{shown}' is already associated with instance '{}'; set AllowReassociation to move it.",
                    ids::ec2_id(Kind::Instance, other)
                ),
            ));
        }
        disable_nat(ctx, ip_uuid).await?;
        undo.changed(restore(ip_uuid, other));
    }
    if let Some(old) =
        all.iter().find(|i| field(i, "virtualmachineid") == Some(vm_uuid.as_str()) && field(i, "id") != Some(ip_uuid))
    {
        let old_id = field(old, "id").unwrap_or_default();
        if let Err(e) = disable_nat(ctx, old_id).await {
            return Err(undo.fail(e).await);
        }
        undo.changed(restore(old_id, vm_uuid));
    }
    if let Err(mut e) = enable_nat(ctx, ip_uuid, vm_uuid).await {
        if e.is(Code::InvalidParameterCombination) {
            e.message = format!("Address '{shown}' cannot be associated with instance '{iid}': {}", e.message);
        }
        return Err(undo.fail(e).await);
    }
    undo.disarm();
    Ok(json!({ "_associationid": association_id(ip_uuid, vm_uuid) }))
}

/// DisassociateAddress: disableStaticNat when the address is associated (the `address:associated`
/// resolver left its uuid), else nothing to do.
pub async fn disassociate(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    if let Some(ip) = param(prep, "ipaddressid") {
        disable_nat(ctx, ip).await?;
    }
    Ok(Value::Null)
}

/// DescribeAddresses: `_associationid` on associated addresses; PublicIp.N keeps the named
/// addresses, each of which must exist (InvalidAddress.NotFound).
pub async fn annotations(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    items.retain(|i| i.get("issourcenat").and_then(Value::as_bool) != Some(true));
    for it in &mut items {
        if let (Some(a), Some(o)) = (association_of(it), it.as_object_mut()) {
            o.insert("_associationid".into(), Value::String(a));
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
