//! JSON of the networking objects: network and VPC offerings, networks (shared, isolated,
//! VPC tiers), VPCs and virtual routers. Field names are those of CloudStack's
//! NetworkOfferingResponse, VpcOfferingResponse, NetworkResponse, VpcResponse and
//! DomainRouterResponse (`@SerializedName`).

use serde_json::{Value, json};

use super::model::*;
use super::offerings::provider;
use super::render::{Obj, owner_fields, pending, tags_json};

/// The system offering of the virtual routers (CloudStack's "System Offering For Software
/// Router"); network offerings and routers name it.
const ROUTER_OFFERING: (&str, &str) = ("0e3c2f4a-5d61-4b7e-9a2c-3f8d1b6e4a70", "System Offering For Software Router");

fn services_json(services: &[&str], vpc: bool) -> Value {
    Value::Array(
        services
            .iter()
            .map(|s| json!({"name": s, "provider": [{"name": provider(s, vpc)}], "capability": []}))
            .collect(),
    )
}

pub fn network_offering_json(o: &NetworkOffering) -> Value {
    Obj::new()
        .set("id", o.id.clone())
        .set("name", o.name.clone())
        .set("displaytext", o.displaytext.clone())
        .set("traffictype", "Guest")
        .set("isdefault", o.isdefault)
        .set("specifyvlan", false)
        .set("conservemode", true)
        .set("specifyipranges", o.specifyipranges)
        .set("availability", o.availability)
        .set("networkrate", 200)
        .set("state", "Enabled")
        .set("guestiptype", o.guestiptype)
        .set("serviceofferingid", ROUTER_OFFERING.0)
        .set("service", services_json(o.services, o.forvpc))
        .set("forvpc", o.forvpc)
        .set("ispersistent", false)
        .set("egressdefaultpolicy", o.egressdefaultpolicy)
        .set("supportsstrechedl2subnet", false)
        .set("supportspublicaccess", false)
        .set("internetprotocol", "IPv4")
        .set("created", o.created.clone())
        .set("hasannotations", false)
        .done()
}

pub fn vpc_offering_json(o: &VpcOffering) -> Value {
    Obj::new()
        .set("id", o.id.clone())
        .set("name", o.name.clone())
        .set("displaytext", o.displaytext.clone())
        .set("isdefault", o.isdefault)
        .set("state", "Enabled")
        .set("service", services_json(o.services, true))
        .set("distributedvpcrouter", false)
        .set("supportsregionLevelvpc", false)
        .set("redundantrouter", o.redundant)
        .set("internetprotocol", "IPv4")
        .set("created", o.created.clone())
        .done()
}

pub fn network_json(m: &Model, n: &Network) -> Value {
    let z = m.zones.get(n.zone);
    let off = m.network_offerings.get(n.offering);
    let vpc = n.vpc.and_then(|v| m.vpcs.get(v));
    let acl = n.acl.and_then(|a| m.acls.get(a));
    let broadcast = match n.vlan {
        Some(v) => format!("vlan://{v}"),
        None => "vlan://untagged".to_string(),
    };
    let implemented = n.shared || n.state == "Implemented";
    let mut o = Obj::new()
        .set("id", n.id.clone())
        .set("name", n.name.clone())
        .set("displaytext", n.displaytext.clone())
        .set("broadcastdomaintype", "Vlan")
        .set("traffictype", "Guest")
        .set("gateway", n.gateway.clone())
        .set("netmask", n.cidr.netmask_str())
        .set("cidr", n.cidr.to_string())
        .opt("zoneid", z.map(|z| z.id.clone()))
        .opt("zonename", z.map(|z| z.name.clone()))
        .opt("networkofferingid", off.map(|o| o.id.clone()))
        .opt("networkofferingname", off.map(|o| o.name.clone()))
        .opt("networkofferingdisplaytext", off.map(|o| o.displaytext.clone()))
        .set("networkofferingconservemode", true)
        .opt("networkofferingavailability", off.map(|o| o.availability))
        .set("issystem", false)
        .set("state", n.state)
        .set("related", n.id.clone())
        .opt("broadcasturi", implemented.then_some(broadcast.clone()))
        .opt("vlan", n.vlan.map(|v| v.to_string()))
        .set("dns1", "8.8.8.8")
        .set("type", n.guest_type())
        .set("acltype", if n.shared { "Domain" } else { "Account" })
        .set("service", services_json(off.map(|o| o.services).unwrap_or(&[]), vpc.is_some()))
        .set("networkdomain", n.networkdomain.clone())
        .set("restartrequired", n.restart_required)
        .set("specifyipranges", n.shared)
        .set("canusefordeploy", true)
        .set("ispersistent", n.shared)
        .set("isdefault", n.shared)
        .set("displaynetwork", n.display)
        .set("redundantrouter", false)
        .set("publicmtu", 1500)
        .set("privatemtu", 1500)
        .set("created", n.created.clone())
        .opt("vpcid", vpc.map(|v| v.id.clone()))
        .opt("vpcname", vpc.map(|v| v.name.clone()))
        .opt("aclid", acl.map(|a| a.id.clone()))
        .opt("aclname", acl.map(|a| a.name.clone()));
    if n.shared {
        o = o.set("subdomainaccess", true);
    } else {
        o = owner_fields(m, o, n.owner).set("egressdefaultpolicy", off.is_some_and(|o| o.egressdefaultpolicy));
    }
    o = o.set("tags", tags_json(m, "Network", &n.id, n.owner, &n.tags));
    pending(m, o, &n.id).done()
}

pub fn vpc_json(m: &Model, seq: u64, v: &Vpc) -> Value {
    let z = m.zones.get(v.zone);
    let off = m.vpc_offerings.get(v.offering);
    let tiers: Vec<Value> = m.networks.values().filter(|n| n.vpc == Some(seq)).map(|n| network_json(m, n)).collect();
    let mut o = Obj::new()
        .set("id", v.id.clone())
        .set("name", v.name.clone())
        .set("displaytext", v.displaytext.clone())
        .set("state", v.state)
        .opt("zoneid", z.map(|z| z.id.clone()))
        .opt("zonename", z.map(|z| z.name.clone()))
        .set("cidr", v.cidr.to_string())
        .opt("vpcofferingid", off.map(|o| o.id.clone()))
        .opt("vpcofferingname", off.map(|o| o.name.clone()))
        .opt("vpcofferingdisplaytext", off.map(|o| o.displaytext.clone()))
        .set("networkdomain", v.networkdomain.clone())
        .set("network", Value::Array(tiers))
        .set("service", services_json(off.map(|o| o.services).unwrap_or(&[]), true))
        .set("restartrequired", v.restart_required)
        .set("regionlevelvpc", false)
        .set("distributedvpcrouter", false)
        .set("redundantvpcrouter", off.is_some_and(|o| o.redundant))
        .set("fordisplay", v.display)
        .set("publicmtu", 1500)
        .set("created", v.created.clone());
    o = owner_fields(m, o, v.owner);
    o = o.set("tags", tags_json(m, "Vpc", &v.id, v.owner, &v.tags));
    pending(m, o, &v.id).done()
}

pub fn router_json(m: &Model, r: &Router) -> Value {
    let z = m.zones.get(r.zone);
    let vpc = r.vpc.and_then(|v| m.vpcs.get(v));
    let net = r.network.and_then(|n| m.networks.get(n));
    // The source NAT address of what the router serves.
    let snat = m.public_ips.values().find(|i| {
        i.sourcenat && ((r.vpc.is_some() && i.vpc == r.vpc) || (r.network.is_some() && i.network == r.network))
    });
    let mut o = Obj::new()
        .set("id", r.id.clone())
        .set("name", r.name.clone())
        .opt("zoneid", z.map(|z| z.id.clone()))
        .opt("zonename", z.map(|z| z.name.clone()))
        .set("dns1", "8.8.8.8")
        .set("state", r.state)
        .set("role", "VIRTUAL_ROUTER")
        .set("serviceofferingid", ROUTER_OFFERING.0)
        .set("serviceofferingname", ROUTER_OFFERING.1)
        .set("hypervisor", "KVM")
        .set("isredundantrouter", false)
        .set("redundantstate", "UNKNOWN")
        .set("version", "4.19.0")
        .set("requiresupgrade", false)
        .set("healthchecksfailed", false)
        .set("linklocalip", r.linklocalip.clone())
        .set("linklocalnetmask", "255.255.0.0")
        .opt("publicip", snat.map(|i| i.ip.clone()))
        .opt("vpcid", vpc.map(|v| v.id.clone()))
        .opt("vpcname", vpc.map(|v| v.name.clone()))
        .opt("guestnetworkid", net.map(|n| n.id.clone()))
        .opt("guestnetworkname", net.map(|n| n.name.clone()))
        .opt("guestipaddress", net.map(|n| n.gateway.clone()))
        .opt("networkdomain", vpc.map(|v| v.networkdomain.clone()).or(net.map(|n| n.networkdomain.clone())))
        .set("created", r.created.clone());
    o = owner_fields(m, o, r.owner);
    o.done()
}
