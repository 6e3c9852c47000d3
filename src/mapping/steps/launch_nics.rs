//! RunInstances `NetworkInterface.N` beyond a plain device 0 (docs/network-interfaces.md
//! "Interfaces at launch"): several interfaces in several subnets of one VPC, an existing
//! interface attached at launch, private addresses and secondary addresses per interface,
//! groups, description and DeleteOnTermination.
//!
//! CloudStack deploys a VM with one NIC per network (`iptonetworklist[i].networkid/ip`, the
//! first one the default NIC), so every interface becomes a NIC of the deploy itself; secondary
//! addresses are `addIpToNic` once the deploy has started (CloudStack makes the NICs when it
//! accepts it). The gateway picks every address itself and claims it in the store before the
//! deploy (as CreateNetworkInterface does), so no address a detached interface holds is handed
//! out; after the deploy each interface becomes a store record naming its NIC. A failure on the
//! way releases the claims; after the deploy started the caller destroys the VM (whose NICs and
//! secondary addresses go with it).

use serde_json::{Value, json};

use super::super::exec::Ctx;
use super::eni::{
    KIND, check_address, claim, in_use, malformed, nics, not_found, now, pick, record, store_failed, used_on,
    well_formed, write,
};
use super::vpc_objects::{Block, cs_subnet, owner};
use crate::base::{Code, Ec2Error};
use crate::ec2::request::Params;
use crate::ids::{self, Kind};
use crate::objects::{Change, Record, WriteError, new_id};

const RETRIES: usize = 8;
/// CloudStack's default `vm.network.nic.max.secondary.ipaddresses` (as AssignPrivateIpAddresses).
const MAX_SECONDARY: usize = 10;

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).filter(|x| !x.is_null()).map(super::super::expr::scalar_text).filter(|x| !x.is_empty())
}

/// One `NetworkInterface.N` of the request, checked for EC2's rules.
#[derive(Clone, Debug)]
pub struct Spec {
    pub index: i64,
    pub existing: Option<String>,
    pub subnet: Option<String>,
    pub primary_ip: Option<String>,
    secondary: Vec<String>,
    count: usize,
    pub groups: Vec<String>,
    description: Option<String>,
    dot: Option<bool>,
    pub public: Option<bool>,
}

/// `NetworkInterface.N` of RunInstances in device order (empty when none is given), with EC2's
/// refusals of bad combinations; nothing is looked up yet.
pub fn parse(p: &Params) -> Result<Vec<Spec>, Ec2Error> {
    let members = p.members("NetworkInterface");
    if members.is_empty() {
        return Ok(Vec::new());
    }
    if p.get("SubnetId").is_some_and(|v| !v.is_empty()) {
        return Err(Ec2Error::combination(
            "Network interfaces and an instance-level subnet ID may not be specified on the same request",
        ));
    }
    if !p.list("SecurityGroupId").is_empty() || !p.list("SecurityGroup").is_empty() {
        return Err(Ec2Error::combination(
            "Network interfaces and an instance-level security groups may not be specified on the same request",
        ));
    }
    if p.get("PrivateIpAddress").is_some() {
        return Err(Ec2Error::combination(
            "Network interfaces and an instance-level private IP address should not be specified on the same request",
        ));
    }
    let mut out: Vec<Spec> = Vec::new();
    for m in &members {
        out.push(one(m)?);
    }
    out.sort_by_key(|s| s.index);
    if out.windows(2).any(|w| w[0].index == w[1].index) {
        return Err(Ec2Error::invalid_parameter("Each network interface requires a unique device index."));
    }
    if out[0].index != 0 {
        return Err(Ec2Error::invalid_parameter(
            "When specifying network interfaces, you must include a device at index 0",
        ));
    }
    if let Some(s) = out.iter().find(|s| s.index != 0 && s.public.is_some()) {
        return Err(Ec2Error::combination(format!(
            "The associatePublicIPAddress parameter can only be specified for the network interface with DeviceIndex 0 (not {}).",
            s.index
        )));
    }
    if out.len() > 1 && out[0].public == Some(true) {
        return Err(Ec2Error::combination(
            "The associatePublicIPAddress parameter cannot be specified when launching with multiple network interfaces.",
        ));
    }
    let mut ids: Vec<&String> = out.iter().filter_map(|s| s.existing.as_ref()).collect();
    ids.sort();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(Ec2Error::invalid_parameter("A network interface may be attached at one device index only."));
    }
    Ok(out)
}

fn one(m: &Params) -> Result<Spec, Ec2Error> {
    let index_text = m
        .get("DeviceIndex")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Ec2Error::invalid_parameter("Each network interface requires a device index."))?;
    let index: i64 = index_text.parse().ok().filter(|i| (0..=15).contains(i)).ok_or_else(|| {
        Ec2Error::invalid_value("NetworkInterface.N.DeviceIndex", index_text, "Must be between 0 and 15.")
    })?;
    // Never dropped: what CloudStack cannot give is refused by name.
    if m.get("NetworkCardIndex").is_some_and(|c| c != "0") {
        return Err(Ec2Error::unsupported("Only network card 0 exists in this cloud."));
    }
    for name in ["Ipv6AddressCount", "Ipv4PrefixCount", "Ipv6PrefixCount", "PrimaryIpv6", "AssociateCarrierIpAddress"] {
        if m.get(name).is_some() {
            return Err(Ec2Error::unsupported(format!("NetworkInterface.N.{name} is not supported by this cloud.")));
        }
    }
    for list in
        ["Ipv6Addresses", "Ipv4Prefixes", "Ipv6Prefixes", "EnaSrdSpecification", "ConnectionTrackingSpecification"]
    {
        if m.has_under(list) {
            return Err(Ec2Error::unsupported(format!("NetworkInterface.N.{list} is not supported by this cloud.")));
        }
    }
    if let Some(t) = m.get("InterfaceType").filter(|t| *t != "interface") {
        return Err(Ec2Error::unsupported(format!("InterfaceType {t} is not supported by this cloud.")));
    }
    let existing = m.get("NetworkInterfaceId").filter(|v| !v.is_empty()).map(str::to_string);
    let subnet = m.get("SubnetId").filter(|v| !v.is_empty()).map(str::to_string);
    // The primary address: PrivateIpAddress, or PrivateIpAddresses.N with Primary=true.
    let mut primary_ip = m.get("PrivateIpAddress").map(str::to_string);
    let mut secondary: Vec<String> = Vec::new();
    for a in m.members("PrivateIpAddresses") {
        let Some(ip) = a.get("PrivateIpAddress").map(str::to_string) else {
            return Err(Ec2Error::missing_parameter("NetworkInterface.N.PrivateIpAddresses.M.PrivateIpAddress"));
        };
        if a.bool("Primary")?.unwrap_or(false) {
            if primary_ip.as_ref().is_some_and(|p| *p != ip) {
                return Err(Ec2Error::invalid_parameter("Multiple primary addresses specified"));
            }
            primary_ip = Some(ip);
        } else if primary_ip.as_deref() != Some(ip.as_str()) && !secondary.contains(&ip) {
            secondary.push(ip);
        }
    }
    let count = match m.int("SecondaryPrivateIpAddressCount")? {
        Some(n) if !(0..=MAX_SECONDARY as i64).contains(&n) => {
            return Err(Ec2Error::new(
                Code::PrivateIpAddressLimitExceeded,
                format!(
                    "Number of private addresses will exceed limit for instance type. Specified: {n}. Max: {MAX_SECONDARY}"
                ),
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
    if secondary.len() > MAX_SECONDARY {
        return Err(Ec2Error::new(
            Code::PrivateIpAddressLimitExceeded,
            format!(
                "Number of private addresses will exceed limit for instance type. Specified: {}. Max: {MAX_SECONDARY}",
                secondary.len()
            ),
        ));
    }
    let groups: Vec<String> = m.list("SecurityGroupId").into_iter().map(str::to_string).collect();
    let description = m.get("Description").map(str::to_string);
    if description.as_ref().is_some_and(|d| d.chars().count() > 255) {
        return Err(Ec2Error::invalid_value(
            "NetworkInterface.N.Description",
            description.as_deref().unwrap_or(""),
            "At most 255 characters.",
        ));
    }
    let dot = m.bool("DeleteOnTermination")?;
    let public = m.bool("AssociatePublicIpAddress")?;
    if let Some(id) = &existing {
        let given = [
            ("SubnetId", subnet.is_some()),
            ("PrivateIpAddress", primary_ip.is_some() || !secondary.is_empty()),
            ("SecondaryPrivateIpAddressCount", count > 0),
            ("SecurityGroupId", !groups.is_empty()),
            ("Description", description.is_some()),
            ("AssociatePublicIpAddress", public.is_some()),
        ];
        if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
            return Err(Ec2Error::combination(format!(
                "A network interface ID ({id}) and {name} may not be specified for the same network interface: the interface has its own."
            )));
        }
        if dot == Some(true) {
            return Err(Ec2Error::combination(format!(
                "DeleteOnTermination can be true only for a network interface created with the instance, not for {id}."
            )));
        }
        if !well_formed(id) {
            return Err(malformed(id));
        }
    }
    Ok(Spec { index, existing, subnet, primary_ip, secondary, count, groups, description, dot, public })
}

/// `TagSpecification` of type `network-interface`: tags of every interface made at launch.
fn interface_tags(p: &Params) -> Result<Vec<(String, String)>, Ec2Error> {
    super::common::tag_specifications_among(p, "network-interface", &["instance"])
}

/// Does the request need more than the plain device-0 launch (`networkids` + `ipaddress`)?
pub fn rich(p: &Params, specs: &[Spec]) -> Result<bool, Ec2Error> {
    Ok(!interface_tags(p)?.is_empty() || rich_specs(specs))
}

/// The primary interface of a launch without NetworkInterface.N (SubnetId, PrivateIpAddress
/// and the groups at the top level), when it needs a record (tags).
pub fn device0(p: &Params) -> Spec {
    Spec {
        index: 0,
        existing: None,
        subnet: p.get("SubnetId").filter(|s| !s.is_empty()).map(str::to_string),
        primary_ip: p.get("PrivateIpAddress").map(str::to_string),
        secondary: Vec::new(),
        count: 0,
        groups: Vec::new(),
        description: None,
        dot: None,
        public: None,
    }
}

/// Network-interface tags on a launch that makes no interface the gateway can keep (no VPC).
pub fn refuse_interface_tags(p: &Params) -> Result<(), Ec2Error> {
    if interface_tags(p)?.is_empty() {
        return Ok(());
    }
    Err(Ec2Error::invalid_parameter(
        "TagSpecification of type network-interface needs a launch into a subnet (EC2-Classic instances have no network interfaces).",
    ))
}

fn rich_specs(specs: &[Spec]) -> bool {
    specs.len() > 1
        || specs.iter().any(|s| {
            s.existing.is_some() || !s.secondary.is_empty() || s.count > 0 || s.description.is_some() || s.dot.is_some()
        })
}

/// One interface of the launch, resolved: its tier and (for an existing one) its record.
#[derive(Clone, Debug)]
struct Planned {
    spec: Spec,
    id: String,
    tier: Value,
    groups: Vec<String>,
    existing: Option<Record>,
}

/// The interfaces of a launch, checked against CloudStack and the store.
#[derive(Clone, Debug)]
pub struct Plan {
    vpc: String,
    vpc_uuid: String,
    nics: Vec<Planned>,
    /// `TagSpecification` of type `network-interface`: every interface made at launch.
    tags: Vec<(String, String)>,
}

/// An existing interface to attach at launch: the caller's, detached.
pub async fn existing(ctx: &Ctx<'_>, id: &str) -> Result<Record, Ec2Error> {
    let view = super::eni::interface(ctx, id).await?;
    if view["status"] == "in-use" {
        return Err(Ec2Error::new(Code::InvalidParameterValue, format!("Interface: [{id}] in use.")));
    }
    record(ctx, id).await?.ok_or_else(|| not_found(id))
}

/// Resolve every interface of the launch: all in the VPC of device 0's tier (`tier0`), one per
/// subnet (CloudStack's rule), groups of that VPC; device 0's groups are the instance's
/// (`groups0`). Nothing is claimed or changed yet.
pub async fn plan(
    ctx: &Ctx<'_>,
    specs: &[Spec],
    tier0: &Value,
    groups0: &[String],
    existing0: Option<Record>,
) -> Result<Plan, Ec2Error> {
    let max = ctx.req.params.int("MaxCount")?.unwrap_or(1);
    if max > 1 {
        if specs.iter().any(|s| s.existing.is_some() || s.primary_ip.is_some() || !s.secondary.is_empty()) {
            return Err(Ec2Error::combination(
                "Network interface IDs and private IP addresses cannot be specified when launching more than one instance.",
            ));
        }
        return Err(Ec2Error::unsupported(
            "Launching more than one instance with several network interfaces, secondary addresses, descriptions or DeleteOnTermination is not supported by this cloud: launch them one at a time.",
        ));
    }
    let vpc_uuid = s(tier0, "vpcid").unwrap_or_default();
    let vpc = ids::ec2_id(Kind::Vpc, &vpc_uuid);
    let mut out: Vec<Planned> = Vec::new();
    for spec in specs {
        let (tier, groups, rec) = if spec.index == 0 {
            (tier0.clone(), groups0.to_vec(), existing0.clone())
        } else if let Some(id) = &spec.existing {
            let r = existing(ctx, id).await?;
            let tier = cs_subnet(ctx, &s(&r.doc, "subnetid").unwrap_or_default()).await?;
            let groups =
                r.doc["groups"].as_array().into_iter().flatten().filter_map(|g| g.as_str().map(str::to_string));
            (tier, groups.collect(), Some(r))
        } else {
            let Some(subnet) = &spec.subnet else {
                return Err(Ec2Error::missing_parameter("NetworkInterface.N.SubnetId"));
            };
            let tier = cs_subnet(ctx, subnet).await?;
            let groups = super::vpc_sg::launch_groups(ctx, &[], &spec.groups, &vpc, &vpc_uuid).await?;
            (tier, groups, None)
        };
        if s(&tier, "vpcid").as_deref() != Some(vpc_uuid.as_str()) {
            return Err(Ec2Error::new(
                Code::InvalidParameterValue,
                format!(
                    "The network interfaces at device indexes 0 and {} belong to different networks (VPCs).",
                    spec.index
                ),
            ));
        }
        let tier_uuid = s(&tier, "id").unwrap_or_default();
        if out.iter().any(|p| s(&p.tier, "id").as_deref() == Some(tier_uuid.as_str())) {
            return Err(Ec2Error::unsupported(format!(
                "Two network interfaces in subnet {}: this cloud allows one interface per subnet on an instance.",
                ids::ec2_id(Kind::Subnet, &tier_uuid)
            )));
        }
        if rec.is_none() {
            let block = s(&tier, "cidr").and_then(|c| Block::parse(&c)).ok_or_else(Ec2Error::internal)?;
            for ip in spec.primary_ip.iter().chain(spec.secondary.iter()) {
                check_address(&block, ip)?;
            }
        }
        let id = rec.as_ref().map(|r| r.id.clone()).unwrap_or_else(|| new_id("eni"));
        out.push(Planned { spec: spec.clone(), id, tier, groups, existing: rec });
    }
    let tags = interface_tags(&ctx.req.params)?;
    Ok(Plan { vpc, vpc_uuid, nics: out, tags })
}

/// The addresses of a launch: per interface (device order) its primary address (`None`:
/// CloudStack picks), the secondary addresses to add, and how many more CloudStack picks.
#[derive(Clone, Debug, Default)]
pub struct Claimed {
    addresses: Vec<(Option<String>, Vec<String>, usize)>,
    /// Claims this launch made (released on failure): (claim, holder).
    made: Vec<(String, String)>,
}

/// Claim the addresses of the new interfaces in the store, all or none (those asked for must be
/// free); answers the deploy's `iptonetworklist` parameters. Addresses not asked for are left to
/// CloudStack, which knows every address its NICs hold (also those of destroyed VMs not yet
/// expunged, which the gateway cannot list), unless a detached interface holds addresses on the
/// tier: CloudStack does not know those, so the gateway picks there (docs/network-interfaces.md).
pub async fn claim_addresses(ctx: &Ctx<'_>, plan: &Plan) -> Result<(Claimed, Vec<(String, String)>), Ec2Error> {
    for _ in 0..RETRIES {
        let held = super::eni::records(ctx).await?;
        let mut claimed = Claimed::default();
        let mut changes = Vec::new();
        for n in &plan.nics {
            let tier = s(&n.tier, "id").unwrap_or_default();
            if let Some(r) = &n.existing {
                let ip = s(&r.doc, "ipaddress");
                let sec =
                    r.doc["secondary"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string));
                claimed.addresses.push((ip, sec.collect(), 0));
                continue;
            }
            let block = s(&n.tier, "cidr").and_then(|c| Block::parse(&c)).ok_or_else(Ec2Error::internal)?;
            let used = used_on(ctx, &tier).await?;
            let asked: Vec<&String> = n.spec.primary_ip.iter().chain(n.spec.secondary.iter()).collect();
            if let Some(ip) = asked.iter().find(|ip| used.contains(ip)) {
                return Err(in_use(ip));
            }
            let detached_here = held
                .iter()
                .any(|r| s(&r.doc, "tieruuid").as_deref() == Some(tier.as_str()) && !r.doc["attachment"].is_object());
            let mut taken = used.clone();
            taken.extend(asked.iter().map(|s| s.to_string()));
            let pri = match &n.spec.primary_ip {
                Some(ip) => Some(ip.clone()),
                None if detached_here => Some(pick(&block, &taken, 1)?.remove(0)),
                None => None,
            };
            taken.extend(pri.iter().cloned());
            let mut sec = n.spec.secondary.clone();
            let mut left = n.spec.count;
            if detached_here {
                sec.extend(pick(&block, &taken, left)?);
                left = 0;
            }
            for ip in pri.iter().chain(sec.iter()) {
                changes.push(Change::Claim { claim: claim(&tier, ip), holder: n.id.clone() });
                claimed.made.push((claim(&tier, ip), n.id.clone()));
            }
            claimed.addresses.push((pri, sec, left));
        }
        match write(ctx, changes).await? {
            Ok(()) => {
                let mut params = Vec::new();
                for (i, (n, (ip, _, _))) in plan.nics.iter().zip(&claimed.addresses).enumerate() {
                    params.push((format!("iptonetworklist[{i}].networkid"), s(&n.tier, "id").unwrap_or_default()));
                    if let Some(ip) = ip {
                        params.push((format!("iptonetworklist[{i}].ip"), ip.clone()));
                    }
                }
                return Ok((claimed, params));
            }
            // An address was claimed meanwhile: one asked for is in use, else pick again.
            Err(WriteError::Conflict { what, .. }) => {
                for n in plan.nics.iter().filter(|n| n.existing.is_none()) {
                    let tier = s(&n.tier, "id").unwrap_or_default();
                    if let Some(ip) =
                        n.spec.primary_ip.iter().chain(n.spec.secondary.iter()).find(|ip| what == claim(&tier, ip))
                    {
                        return Err(in_use(ip));
                    }
                }
            }
            Err(WriteError::Failed(e)) => return Err(store_failed(e)),
        }
    }
    Err(Ec2Error::internal())
}

/// Release the claims a launch made (it failed).
pub async fn release(ctx: &Ctx<'_>, claimed: &Claimed) {
    let changes: Vec<Change> =
        claimed.made.iter().map(|(c, h)| Change::Release { claim: c.clone(), holder: h.clone() }).collect();
    if changes.is_empty() {
        return;
    }
    if let Err(e) = ctx.ex.objects.write(changes).await {
        tracing::warn!(error = %e, "could not release the address claims of a failed launch");
    }
}

/// After the deploy started: the secondary addresses on their NICs (`addIpToNic`, waited for)
/// and one record per interface naming its NIC. An error leaves the VM to the caller to destroy
/// (its NICs and addresses go with it) and the claims to `release`.
pub async fn finish(ctx: &Ctx<'_>, plan: &Plan, claimed: &Claimed, vm_uuid: &str) -> Result<Value, Ec2Error> {
    let l = ctx
        .list(
            "listVirtualMachines",
            &[("id".into(), vm_uuid.to_string()), ("listall".into(), "true".into())],
            "virtualmachine",
        )
        .await?;
    let vm = l.into_iter().find(|v| s(v, "id").as_deref() == Some(vm_uuid)).ok_or_else(Ec2Error::internal)?;
    let instance = ids::ec2_id(Kind::Instance, vm_uuid);
    let vm_nics = nics(&vm);
    let mut changes = Vec::new();
    let mut views = Vec::new();
    for (n, (_, asked_sec, left)) in plan.nics.iter().zip(&claimed.addresses) {
        let tier = s(&n.tier, "id").unwrap_or_default();
        let nic = vm_nics.iter().find(|x| s(x, "networkid").as_deref() == Some(tier.as_str())).ok_or_else(|| {
            tracing::warn!(vm = %vm_uuid, tier = %tier, "a launched VM lacks the NIC it was deployed with");
            Ec2Error::internal()
        })?;
        let nic_uuid = s(nic, "id").unwrap_or_default();
        let ip = s(nic, "ipaddress").unwrap_or_default();
        let mut sec: Vec<String> = Vec::new();
        if n.existing.is_none() || nic["secondaryip"].as_array().is_none_or(|l| l.is_empty()) {
            let wanted = asked_sec.iter().map(Some).chain(std::iter::repeat_n(None, *left));
            for a in wanted {
                let mut args = vec![("nicid".to_string(), nic_uuid.clone())];
                args.extend(a.map(|a| ("ipaddress".to_string(), a.clone())));
                let answer = super::common::run_job(ctx, "addIpToNic", &args).await?;
                let got = s(&answer, "ipaddress").or_else(|| s(&answer["nicsecondaryip"], "ipaddress"));
                sec.push(got.or_else(|| a.cloned()).ok_or_else(Ec2Error::internal)?);
            }
        }
        // Addresses CloudStack picked are claimed now, as every address of a kept interface is.
        if n.existing.is_none() {
            for a in std::iter::once(&ip).chain(sec.iter()) {
                if !claimed.made.iter().any(|(c, _)| *c == claim(&tier, a)) {
                    changes.push(Change::Claim { claim: claim(&tier, a), holder: n.id.clone() });
                }
            }
        }
        let (ip, sec) = (&ip, &sec);
        let primary = n.spec.index == 0;
        // EC2's defaults: an interface made with the instance goes with it, an existing one stays.
        let dot = n.spec.dot.unwrap_or(n.existing.is_none());
        let attachment = json!({
            "attachmentid": new_id("eni-attach"), "instanceid": instance, "instanceuuid": vm_uuid,
            "nicuuid": nic_uuid, "deviceindex": n.spec.index, "deleteontermination": dot, "attachtime": now(),
        });
        let rec = match &n.existing {
            Some(r) => {
                let mut r = r.clone();
                r.doc["attachment"] = attachment;
                r.doc["macaddress"] = nic["macaddress"].clone();
                r.doc["primary"] = json!(primary);
                changes.push(Change::Update(r.clone()));
                r
            }
            None => {
                let doc = json!({
                    "id": n.id, "subnetid": ids::ec2_id(Kind::Subnet, &tier), "tieruuid": tier,
                    "vpcid": plan.vpc, "vpcuuid": plan.vpc_uuid, "zonename": n.tier["zonename"],
                    "ownerid": owner(ctx), "description": n.spec.description.clone().unwrap_or_default(),
                    "sourcedestcheck": true, "groups": n.groups, "ipaddress": ip, "secondary": sec,
                    "macaddress": nic["macaddress"], "primary": primary, "attachment": attachment,
                    "tags": plan.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
                });
                let r = Record {
                    id: n.id.clone(),
                    kind: KIND.into(),
                    owner: owner(ctx),
                    vpc: Some(plan.vpc.clone()),
                    doc,
                    version: 0,
                };
                changes.push(Change::Insert(r.clone()));
                // An instance's primary interface that goes with it holds no claims (its NIC
                // holds the addresses in CloudStack); kept past termination it must.
                if primary && dot {
                    for a in std::iter::once(ip).chain(sec.iter()) {
                        changes.push(Change::Release { claim: claim(&tier, a), holder: n.id.clone() });
                    }
                }
                r
            }
        };
        views.push(json!({"id": rec.id, "index": n.spec.index}));
    }
    match write(ctx, changes).await? {
        Ok(()) => Ok(Value::Array(views)),
        // An existing interface changed meanwhile (attached elsewhere, deleted): give up.
        Err(_) => Err(Ec2Error::new(
            Code::IncorrectState,
            "A network interface of the launch changed meanwhile; the launch was undone.",
        )),
    }
}

/// A failed launch also takes back what `finish` wrote for the created interfaces (a record
/// written before a later step failed): they would otherwise be reconciled only when next seen.
pub async fn forget(ctx: &Ctx<'_>, plan: &Plan) {
    for n in plan.nics.iter().filter(|n| n.existing.is_none()) {
        if let Ok(Some(r)) = record(ctx, &n.id).await {
            let _ = ctx.ex.objects.write(vec![Change::Delete { id: r.id.clone(), version: r.version }]).await;
        }
    }
}
