//! Networks: each zone has one shared guest network (the one VM NICs join). The simulator has
//! no port forwarding or IP forwarding rules, but lists them (empty) because clients such as
//! libcloud's `list_nodes` ask.

use serde_json::{Value, json};

use super::super::error::SimResult;
use super::super::list;
use super::super::model::*;
use super::{CmdSpec, Ctx, read};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        read("listNetworks", "org.apache.cloudstack.api.command.user.network.ListNetworksCmd", list_networks),
        read(
            "listPortForwardingRules",
            "org.apache.cloudstack.api.command.user.firewall.ListPortForwardingRulesCmd",
            list_none,
        ),
        read("listIpForwardingRules", "org.apache.cloudstack.api.command.user.nat.ListIpForwardingRulesCmd", list_none),
    ]
}

fn network_json(z: &Zone) -> Value {
    let base = std::net::Ipv4Addr::from(z.guest_base);
    let gw = std::net::Ipv4Addr::from(u32::from_be_bytes(z.guest_base).wrapping_add(1));
    let mask = std::net::Ipv4Addr::from(u32::MAX << (32 - z.guest_prefix as u32));
    json!({
        "id": z.network_id, "name": z.network_name, "displaytext": z.network_name,
        "zoneid": z.id, "zonename": z.name, "type": "Shared", "traffictype": "Guest",
        "cidr": format!("{base}/{}", z.guest_prefix), "gateway": gw.to_string(), "netmask": mask.to_string(),
        "state": "Setup", "isdefault": true, "canusefordeploy": true, "acltype": "Domain",
        "issystem": false, "ispersistent": true, "specifyipranges": true,
        "broadcastdomaintype": "Vlan", "networkofferingname": "DefaultSharedNetworkOfferingWithSGService",
        "service": [{"name": "SecurityGroup"}, {"name": "Dhcp"}, {"name": "UserData"}, {"name": "StaticNat"}],
        "tags": []
    })
}

fn list_networks(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else {
        return list::list(p, "network", Vec::<()>::new(), |_| json!({}));
    };
    let id = p.opt("id");
    if let Some(i) = id
        && !m.zones.values().any(|z| z.network_id == i)
    {
        return Err(super::super::error::SimError::bad_uuid(&p.cmd, "id", i));
    }
    let kw = p.opt("keyword");
    let items: Vec<&Zone> = m
        .zones
        .iter()
        .filter(|(s, z)| {
            zone.is_none_or(|x| x == *s)
                && id.is_none_or(|i| z.network_id == i)
                && keyword_match(kw, &[&z.network_name])
        })
        .map(|(_, z)| z)
        .collect();
    list::list(p, "network", items, network_json)
}

fn list_none(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    // Validate what a real list would (paging, account/domain scope), then answer empty.
    m.scope(&ctx.caller, &ctx.p)?;
    list::list(&ctx.p, "rule", Vec::<()>::new(), |_| json!({}))
}
