//! Site-to-site VPN (customer gateways, one VPN gateway per VPC, connections with states and
//! reset), VPC private gateways (root admins) and static routes. Rules and texts follow
//! Site2SiteVpnManagerImpl and VpcManagerImpl (createVpcPrivateGateway, createStaticRoute);
//! docs/simulator.md, "Networking".

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::render::{Obj, owner_fields, tags_json};
use super::super::seed::new_uuid;
use super::{CmdSpec, Ctx, Reply, admin, create, job, read, single, success};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        job(
            "createVpnCustomerGateway",
            "org.apache.cloudstack.api.command.user.vpn.CreateVpnCustomerGatewayCmd",
            create_cgw,
        ),
        read(
            "listVpnCustomerGateways",
            "org.apache.cloudstack.api.command.user.vpn.ListVpnCustomerGatewaysCmd",
            list_cgw,
        ),
        job(
            "updateVpnCustomerGateway",
            "org.apache.cloudstack.api.command.user.vpn.UpdateVpnCustomerGatewayCmd",
            update_cgw,
        ),
        job(
            "deleteVpnCustomerGateway",
            "org.apache.cloudstack.api.command.user.vpn.DeleteVpnCustomerGatewayCmd",
            delete_cgw,
        ),
        create("createVpnGateway", "org.apache.cloudstack.api.command.user.vpn.CreateVpnGatewayCmd", create_vgw),
        read("listVpnGateways", "org.apache.cloudstack.api.command.user.vpn.ListVpnGatewaysCmd", list_vgw),
        job("deleteVpnGateway", "org.apache.cloudstack.api.command.user.vpn.DeleteVpnGatewayCmd", delete_vgw),
        create("createVpnConnection", "org.apache.cloudstack.api.command.user.vpn.CreateVpnConnectionCmd", create_conn),
        read("listVpnConnections", "org.apache.cloudstack.api.command.user.vpn.ListVpnConnectionsCmd", list_conn),
        job("resetVpnConnection", "org.apache.cloudstack.api.command.user.vpn.ResetVpnConnectionCmd", reset_conn),
        job("deleteVpnConnection", "org.apache.cloudstack.api.command.user.vpn.DeleteVpnConnectionCmd", delete_conn),
        admin(create(
            "createPrivateGateway",
            "org.apache.cloudstack.api.command.admin.vpc.CreatePrivateGatewayByAdminCmd",
            create_pgw,
        )),
        read("listPrivateGateways", "org.apache.cloudstack.api.command.user.vpc.ListPrivateGatewaysCmd", list_pgw),
        admin(job(
            "deletePrivateGateway",
            "org.apache.cloudstack.api.command.admin.vpc.DeletePrivateGatewayCmd",
            delete_pgw,
        )),
        create("createStaticRoute", "org.apache.cloudstack.api.command.user.vpc.CreateStaticRouteCmd", create_route),
        read("listStaticRoutes", "org.apache.cloudstack.api.command.user.vpc.ListStaticRoutesCmd", list_route),
        job("deleteStaticRoute", "org.apache.cloudstack.api.command.user.vpc.DeleteStaticRouteCmd", delete_route),
    ]
}

// ---------- customer gateways ----------

/// NetUtils.isValidS2SVpnPolicy: `cipher-hash[;dhgroup]` items separated by commas; an IKE
/// policy needs the DH group in every item (strongSwan requires one).
fn valid_policy(ike: bool, policy: &str) -> bool {
    const CIPHERS: [&str; 4] = ["3des", "aes128", "aes192", "aes256"];
    const HASHES: [&str; 5] = ["md5", "sha1", "sha256", "sha384", "sha512"];
    const GROUPS: [&str; 7] = ["modp1024", "modp1536", "modp2048", "modp3072", "modp4096", "modp6144", "modp8192"];
    !policy.is_empty()
        && policy.split(',').all(|item| {
            let (ch, group) = match item.split_once(';') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let Some((c, h)) = ch.split_once('-') else { return false };
            CIPHERS.contains(&c)
                && HASHES.contains(&h)
                && !(ike && group.is_none())
                && group.is_none_or(|g| GROUPS.contains(&g))
        })
}

/// NetUtils.verifyDomainName, roughly: dot-separated labels of letters, digits and hyphens.
fn domain_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && text.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Site2SiteVpnManagerImpl.checkCustomerGatewayCidrList: at most 10 subnets
/// (site2site.vpn.customergateway.subnets.limit), none overlapping another.
fn check_cidr_list(cidrs: &[String]) -> SimResult<()> {
    if cidrs.len() > 10 {
        return Err(SimError::invalid("Too many subnets of customer gateway! The limit is 10"));
    }
    for (i, a) in cidrs.iter().enumerate() {
        for b in &cidrs[i + 1..] {
            if Cidr::parse(a).zip(Cidr::parse(b)).is_some_and(|(x, y)| x.overlaps(&y)) {
                return Err(SimError::invalid(format!(
                    "The subnet of customer gateway {a} is overlapped with another subnet {b} of customer gateway!"
                )));
            }
        }
    }
    Ok(())
}

struct CgwInput {
    name: String,
    gateway: String,
    cidrs: Vec<String>,
    psk: String,
    ike: String,
    esp: String,
    ike_lifetime: i64,
    esp_lifetime: i64,
    dpd: bool,
    forceencap: bool,
    ikeversion: String,
    split: bool,
}

fn cgw_input(ctx: &Ctx, cur: Option<&CustomerGateway>) -> SimResult<CgwInput> {
    let p = &ctx.p;
    for r in ["gateway", "cidrlist", "ipsecpsk", "ikepolicy", "esppolicy"] {
        p.req(r)?;
    }
    let gateway = p.opt("gateway").unwrap_or_default().to_string();
    if gateway.parse::<std::net::Ipv4Addr>().is_err() && !domain_name(&gateway) {
        return Err(SimError::invalid(format!("The customer gateway ip/Domain {gateway} is invalid!")));
    }
    let cidrs = p.list("cidrlist");
    if cidrs.iter().any(|c| Cidr::parse(c).is_none()) {
        return Err(SimError::invalid(format!(
            "The customer gateway peer cidr list {} contains an invalid cidr!",
            cidrs.join(",")
        )));
    }
    let ike = p.opt("ikepolicy").unwrap_or_default().to_string();
    if !valid_policy(true, &ike) {
        return Err(SimError::invalid(format!(
            "The customer gateway IKE policy {ike} is invalid!  Verify the required Diffie Hellman (DH) group is specified."
        )));
    }
    let esp = p.opt("esppolicy").unwrap_or_default().to_string();
    if !valid_policy(false, &esp) {
        return Err(SimError::invalid(format!("The customer gateway ESP policy {esp} is invalid!")));
    }
    let ike_lifetime = p.int("ikelifetime")?.unwrap_or(cur.map(|c| c.ike_lifetime).unwrap_or(86400));
    if !(0..=86400).contains(&ike_lifetime) {
        return Err(SimError::invalid(format!("The IKE lifetime {ike_lifetime} of vpn connection is invalid!")));
    }
    let esp_lifetime = p.int("esplifetime")?.unwrap_or(cur.map(|c| c.esp_lifetime).unwrap_or(3600));
    if !(0..=86400).contains(&esp_lifetime) {
        return Err(SimError::invalid(format!("The ESP lifetime {esp_lifetime} of vpn connection is invalid!")));
    }
    let ikeversion = p.opt("ikeversion").unwrap_or("ike").to_lowercase();
    if !["ike", "ikev1", "ikev2"].contains(&ikeversion.as_str()) {
        return Err(SimError::invalid(format!("The IKE version {ikeversion} is invalid!")));
    }
    check_cidr_list(&cidrs)?;
    Ok(CgwInput {
        name: p.opt("name").map(str::to_string).unwrap_or_else(|| format!("VPN-{gateway}")),
        gateway,
        cidrs,
        psk: p.opt("ipsecpsk").unwrap_or_default().to_string(),
        ike,
        esp,
        ike_lifetime,
        esp_lifetime,
        dpd: p.bool_or("dpd", cur.is_some_and(|c| c.dpd)),
        forceencap: p.bool_or("forceencap", cur.is_some_and(|c| c.forceencap)),
        ikeversion,
        split: p.bool_or("splitconnections", cur.is_some_and(|c| c.split)),
    })
}

fn cgw_json(m: &Model, c: &CustomerGateway) -> Value {
    let o = Obj::new()
        .set("id", c.id.clone())
        .set("name", c.name.clone())
        .set("gateway", c.gateway.clone())
        .set("cidrlist", c.cidrs.join(","))
        .set("ipsecpsk", c.psk.clone())
        .set("ikepolicy", c.ike.clone())
        .set("esppolicy", c.esp.clone())
        .set("ikelifetime", c.ike_lifetime)
        .set("esplifetime", c.esp_lifetime)
        .set("dpd", c.dpd)
        .set("forceencap", c.forceencap)
        .set("ikeversion", c.ikeversion.clone())
        .set("splitconnections", c.split);
    owner_fields(m, o, c.owner).set("tags", tags_json(m, "CustomerGateway", &c.id, c.owner, &c.tags)).done()
}

fn create_cgw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let owner = m.owner_for(&ctx.caller, &ctx.p)?;
    let i = cgw_input(ctx, None)?;
    if m.customer_gateways.values().any(|c| c.owner == owner && c.name == i.name) {
        return Err(SimError::invalid(format!("The customer gateway with name {} already existed!", i.name)));
    }
    let s = m.next_seq();
    m.customer_gateways.insert(
        s,
        CustomerGateway {
            id: new_uuid(),
            name: i.name,
            owner,
            gateway: i.gateway,
            cidrs: i.cidrs,
            psk: i.psk,
            ike: i.ike,
            esp: i.esp,
            ike_lifetime: i.ike_lifetime,
            esp_lifetime: i.esp_lifetime,
            dpd: i.dpd,
            forceencap: i.forceencap,
            ikeversion: i.ikeversion,
            split: i.split,
            tags: Vec::new(),
        },
    );
    Ok(ctx.job(
        "VpnCustomerGateway",
        m.customer_gateways.live(s).ok().map(|c| c.id.clone()),
        None,
        Box::new(move |m, env| {
            env.injected(|| {
                m.customer_gateways.remove(s);
            })?;
            Ok(single("vpncustomergateway", cgw_json(m, m.customer_gateways.in_job(s)?)))
        }),
    ))
}

fn list_cgw(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "vpncustomergateway", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.customer_gateways, "id")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let kw = p.opt("keyword");
    let items: Vec<&CustomerGateway> = m
        .customer_gateways
        .iter()
        .filter(|(s, c)| scope.sees(c.owner) && id.is_none_or(|x| x == *s) && keyword_match(kw, &[&c.name]))
        .map(|(_, c)| c)
        .collect();
    Ok(list::respond(paging, "vpncustomergateway", items, |c| cgw_json(m, c)))
}

/// updateVpnCustomerGateway (a plain async command: CloudStack validates inside the job, so a bad
/// value fails the job). An absent name becomes `VPN-<gateway>` as on create; the connections
/// of the gateway that are not Pending are restarted with the new settings.
fn update_cgw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ctx.owned(m, &m.customer_gateways, "id")?;
    let cur = m.customer_gateways.live(s)?.clone();
    let input = cgw_input(ctx, Some(&cur));
    Ok(ctx.object_job(
        "VpnCustomerGateway",
        cur.id.clone(),
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let i = input?;
            let owner = m.customer_gateways.in_job(s)?.owner;
            if m.customer_gateways.iter().any(|(o, c)| o != s && c.owner == owner && c.name == i.name) {
                return Err(SimError::invalid(format!("The customer gateway with name {} already existed!", i.name)));
            }
            for conn in m.vpn_connections.values_mut() {
                if conn.customer_gateway == s && conn.state != "Pending" {
                    conn.state = if conn.passive { "Disconnected" } else { "Connected" };
                }
            }
            let c = m.customer_gateways.in_job_mut(s)?;
            c.name = i.name;
            c.gateway = i.gateway;
            c.cidrs = i.cidrs;
            c.psk = i.psk;
            c.ike = i.ike;
            c.esp = i.esp;
            c.ike_lifetime = i.ike_lifetime;
            c.esp_lifetime = i.esp_lifetime;
            c.dpd = i.dpd;
            c.forceencap = i.forceencap;
            c.ikeversion = i.ikeversion;
            c.split = i.split;
            Ok(single("vpncustomergateway", cgw_json(m, m.customer_gateways.in_job(s)?)))
        }),
    ))
}

/// deleteVpnCustomerGateway: the check for connections runs in the job, as in CloudStack.
fn delete_cgw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ctx.owned(m, &m.customer_gateways, "id")?;
    let id = m.customer_gateways.live(s)?.id.clone();
    Ok(ctx.object_job(
        "VpnCustomerGateway",
        id.clone(),
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.customer_gateways.in_job(s)?;
            if m.vpn_connections.values().any(|c| c.customer_gateway == s) {
                return Err(SimError::invalid(format!(
                    "Unable to delete VPN customer gateway with id {id} because there is still related VPN connections!"
                )));
            }
            m.customer_gateways.remove(s);
            Ok(success())
        }),
    ))
}

// ---------- VPN gateways ----------

fn vgw_json(m: &Model, g: &VpnGateway) -> Value {
    let vpc = m.vpcs.get(g.vpc);
    let ip = m.public_ips.values().find(|i| i.vpc == Some(g.vpc) && i.sourcenat);
    let o = Obj::new()
        .set("id", g.id.clone())
        .opt("publicip", ip.map(|i| i.ip.clone()))
        .opt("vpcid", vpc.map(|v| v.id.clone()))
        .opt("vpcname", vpc.map(|v| v.name.clone()))
        .set("fordisplay", g.display);
    owner_fields(m, o, g.owner).set("tags", tags_json(m, "VpnGateway", &g.id, g.owner, &g.tags)).done()
}

fn create_vgw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("vpcid")?;
    let v = ctx.owned(m, &m.vpcs, "vpcid")?;
    let vpc = m.vpcs.live(v)?;
    if m.vpn_gateways.values().any(|g| g.vpc == v) {
        return Err(SimError::invalid(format!("The VPN gateway of VPC {} already existed!", vpc.id)));
    }
    if !m.public_ips.values().any(|i| i.vpc == Some(v) && i.sourcenat) {
        // A CloudRuntimeException in CloudStack: an internal error, not a parameter error.
        return Err(SimError::internal(format!("Cannot found source nat ip of vpc {}", vpc.id)));
    }
    let owner = vpc.owner;
    let id = new_uuid();
    let s = m.next_seq();
    let display = ctx.p.bool_or("fordisplay", true);
    m.vpn_gateways.insert(s, VpnGateway { id: id.clone(), vpc: v, owner, display, tags: Vec::new() });
    Ok(ctx.create_job(
        "VpnGateway",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.vpn_gateways.remove(s);
            })?;
            Ok(single("vpngateway", vgw_json(m, m.vpn_gateways.in_job(s)?)))
        }),
    ))
}

fn list_vgw(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "vpngateway", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.vpn_gateways, "id")? else { return empty() };
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let items: Vec<&VpnGateway> = m
        .vpn_gateways
        .iter()
        .filter(|(s, g)| scope.sees(g.owner) && id.is_none_or(|x| x == *s) && vpc.is_none_or(|v| g.vpc == v))
        .map(|(_, g)| g)
        .collect();
    Ok(list::respond(paging, "vpngateway", items, |g| vgw_json(m, g)))
}

/// deleteVpnGateway: the check for connections runs in the job, as in CloudStack.
fn delete_vgw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ctx.owned(m, &m.vpn_gateways, "id")?;
    let id = m.vpn_gateways.live(s)?.id.clone();
    Ok(ctx.object_job(
        "VpnGateway",
        id.clone(),
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.vpn_gateways.in_job(s)?;
            if m.vpn_connections.values().any(|c| c.vpn_gateway == s) {
                return Err(SimError::invalid(format!(
                    "Unable to delete VPN gateway {id} because there is still related VPN connections!"
                )));
            }
            m.vpn_gateways.remove(s);
            Ok(success())
        }),
    ))
}

// ---------- VPN connections ----------

fn conn_json(m: &Model, c: &VpnConnection) -> Value {
    let g = m.vpn_gateways.get(c.vpn_gateway);
    let cg = m.customer_gateways.get(c.customer_gateway);
    let ip = g.and_then(|g| m.public_ips.values().find(|i| i.vpc == Some(g.vpc) && i.sourcenat));
    let o = Obj::new()
        .set("id", c.id.clone())
        .opt("s2svpngatewayid", g.map(|g| g.id.clone()))
        .opt("publicip", ip.map(|i| i.ip.clone()))
        .opt("s2scustomergatewayid", cg.map(|x| x.id.clone()))
        .opt("gateway", cg.map(|x| x.gateway.clone()))
        .opt("cidrlist", cg.map(|x| x.cidrs.join(",")))
        .opt("ipsecpsk", cg.map(|x| x.psk.clone()))
        .opt("ikepolicy", cg.map(|x| x.ike.clone()))
        .opt("esppolicy", cg.map(|x| x.esp.clone()))
        .opt("ikelifetime", cg.map(|x| x.ike_lifetime))
        .opt("esplifetime", cg.map(|x| x.esp_lifetime))
        .opt("dpd", cg.map(|x| x.dpd))
        .opt("forceencap", cg.map(|x| x.forceencap))
        .opt("ikeversion", cg.map(|x| x.ikeversion.clone()))
        .opt("splitconnections", cg.map(|x| x.split))
        .set("state", c.state)
        .set("passive", c.passive)
        .set("created", c.created.clone())
        .set("fordisplay", true);
    owner_fields(m, o, c.owner).set("tags", tags_json(m, "VpnConnection", &c.id, c.owner, &c.tags)).done()
}

fn create_conn(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("s2svpngatewayid")?;
    ctx.p.req("s2scustomergatewayid")?;
    let g = ctx.owned(m, &m.vpn_gateways, "s2svpngatewayid")?;
    let cg = ctx.owned(m, &m.customer_gateways, "s2scustomergatewayid")?;
    let gw = m.vpn_gateways.live(g)?;
    let cust = m.customer_gateways.live(cg)?;
    if gw.owner != cust.owner {
        return Err(SimError::invalid(
            "VPN connection can only be esitablished between same account's VPN gateway and customer gateway!",
        ));
    }
    if m.vpn_connections.values().any(|c| c.vpn_gateway == g && c.customer_gateway == cg) {
        return Err(SimError::invalid(format!(
            "The vpn connection with customer gateway id {} and vpn gateway id {} already existed!",
            cust.id, gw.id
        )));
    }
    let vpc = m.vpcs.live(gw.vpc)?;
    for c in &cust.cidrs {
        if Cidr::parse(c).is_some_and(|c| c.overlaps(&vpc.cidr)) {
            return Err(SimError::invalid(format!(
                "The subnets of customer gateway {}'s subnet {} is overlapped with VPC cidr {}!",
                cust.id, c, vpc.cidr
            )));
        }
    }
    // site2site.vpn.vpngateway.connection.limit (4), and no remote subnet twice on one gateway.
    let others: Vec<&VpnConnection> = m.vpn_connections.values().filter(|c| c.vpn_gateway == g).collect();
    if others.len() >= 4 {
        return Err(SimError::invalid("There are too many VPN connections with current VPN gateway! The limit is 4"));
    }
    for o in others {
        let Some(ocg) = m.customer_gateways.get(o.customer_gateway) else { continue };
        for old in &ocg.cidrs {
            for new in &cust.cidrs {
                if Cidr::parse(old).zip(Cidr::parse(new)).is_some_and(|(a, b)| a.overlaps(&b)) {
                    return Err(SimError::invalid(format!(
                        "The new connection's remote subnet {new} is overlapped with existed VPN connection to customer gateway {}'s subnet {old}",
                        ocg.name
                    )));
                }
            }
        }
    }
    let passive = ctx.p.flag("passive");
    let owner = gw.owner;
    let id = new_uuid();
    let s = m.next_seq();
    m.vpn_connections.insert(
        s,
        VpnConnection {
            id: id.clone(),
            vpn_gateway: g,
            customer_gateway: cg,
            owner,
            state: "Pending",
            passive,
            created: ctx.now.clone(),
            tags: Vec::new(),
        },
    );
    Ok(ctx.create_job(
        "Site2SiteVpnConnection",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.vpn_connections.remove(s);
            })?;
            // The router brings the tunnel up; a passive connection waits for the peer.
            let c = m.vpn_connections.in_job_mut(s)?;
            c.state = if passive { "Disconnected" } else { "Connected" };
            Ok(single("vpnconnection", conn_json(m, m.vpn_connections.in_job(s)?)))
        }),
    ))
}

fn list_conn(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "vpnconnection", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.vpn_connections, "id")? else { return empty() };
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let items: Vec<&VpnConnection> = m
        .vpn_connections
        .iter()
        .filter(|(s, c)| {
            scope.sees(c.owner)
                && id.is_none_or(|x| x == *s)
                && vpc.is_none_or(|v| m.vpn_gateways.get(c.vpn_gateway).is_some_and(|g| g.vpc == v))
        })
        .map(|(_, c)| c)
        .collect();
    Ok(list::respond(paging, "vpnconnection", items, |c| conn_json(m, c)))
}

fn reset_conn(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ctx.owned(m, &m.vpn_connections, "id")?;
    let c = m.vpn_connections.live(s)?;
    if c.state == "Pending" {
        return Err(SimError::invalid(format!("VPN connection {} cannot be reseted when state is Pending!", c.id)));
    }
    let id = c.id.clone();
    Ok(ctx.object_job(
        "Site2SiteVpnConnection",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let c = m.vpn_connections.in_job_mut(s)?;
            c.state = if c.passive { "Disconnected" } else { "Connected" };
            Ok(single("vpnconnection", conn_json(m, m.vpn_connections.in_job(s)?)))
        }),
    ))
}

fn delete_conn(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ctx.owned(m, &m.vpn_connections, "id")?;
    let id = m.vpn_connections.live(s)?.id.clone();
    Ok(ctx.object_job(
        "Site2SiteVpnConnection",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.vpn_connections.in_job(s)?;
            m.vpn_connections.remove(s);
            Ok(success())
        }),
    ))
}

// ---------- private gateways and static routes ----------

fn pgw_json(m: &Model, g: &PrivateGateway) -> Value {
    let vpc = m.vpcs.get(g.vpc);
    let z = vpc.and_then(|v| m.zones.get(v.zone));
    let acl = m.acls.get(g.acl);
    let o = Obj::new()
        .set("id", g.id.clone())
        .set("gateway", g.gateway.clone())
        .set("netmask", g.netmask.clone())
        .set("ipaddress", g.ipaddress.clone())
        .opt("zoneid", z.map(|z| z.id.clone()))
        .opt("zonename", z.map(|z| z.name.clone()))
        .set("vlan", format!("vlan://{}", g.vlan))
        .opt("vpcid", vpc.map(|v| v.id.clone()))
        .opt("vpcname", vpc.map(|v| v.name.clone()))
        .set("state", "Ready")
        .set("sourcenatsupported", g.sourcenat)
        .opt("aclid", acl.map(|a| a.id.clone()))
        .opt("aclname", acl.map(|a| a.name.clone()));
    owner_fields(m, o, g.owner).done()
}

fn create_pgw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    for r in ["vpcid", "gateway", "ipaddress", "netmask", "vlan"] {
        ctx.p.req(r)?;
    }
    let v = ctx.need(&m.vpcs, "vpcid")?;
    let acl = ctx.opt_live(&m.acls, "aclid")?;
    let p = &ctx.p;
    let (gateway, ipaddress, netmask) = (
        p.opt("gateway").unwrap_or_default(),
        p.opt("ipaddress").unwrap_or_default(),
        p.opt("netmask").unwrap_or_default(),
    );
    let gw: std::net::Ipv4Addr = gateway.parse().map_err(|_| SimError::invalid("Invalid gateway"))?;
    let mask: std::net::Ipv4Addr = netmask.parse().map_err(|_| SimError::invalid("Invalid netmask"))?;
    let ip: std::net::Ipv4Addr =
        ipaddress.parse().map_err(|_| SimError::invalid(format!("Invalid format for IPv4 address: {ipaddress}")))?;
    let cidr = Cidr::from_gateway(gw, mask).ok_or_else(|| SimError::invalid("Invalid netmask"))?;
    if !cidr.contains_ip(u32::from(ip)) {
        return Err(SimError::invalid(format!(
            "The ip address {ipaddress} is not in the private gateway's network {cidr}"
        )));
    }
    let vlan_text = p.opt("vlan").unwrap_or_default();
    let vlan: u32 = vlan_text
        .trim_start_matches("vlan://")
        .parse()
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(|| SimError::invalid(format!("Invalid vlan id {vlan_text}")))?;
    let vpc = m.vpcs.live(v)?;
    if vpc.state != vpc_state::ENABLED {
        return Err(SimError::invalid("Unable to find Enabled VPC by id specified").with_uuid(vpc.id.clone()));
    }
    let acl = match acl {
        Some(a) => {
            let l = m.acls.live(a)?;
            if l.vpc.is_some_and(|x| x != v) {
                return Err(SimError::invalid("Private gateway and network acl are not in the same vpc."));
            }
            a
        }
        None => m
            .acls
            .find(|l| l.id == super::super::offerings::DEFAULT_DENY.0)
            .map(|(s, _)| s)
            .ok_or_else(|| SimError::internal("default_deny is missing"))?,
    };
    if m.private_gateways.values().any(|g| g.vpc == v && g.ipaddress == ipaddress) {
        return Err(SimError::invalid(format!("Private ip address {ipaddress} already used for private gateway")));
    }
    let owner = vpc.owner;
    let id = new_uuid();
    let s = m.next_seq();
    m.private_gateways.insert(
        s,
        PrivateGateway {
            id: id.clone(),
            vpc: v,
            owner,
            gateway: gw.to_string(),
            netmask: mask.to_string(),
            ipaddress: ip.to_string(),
            vlan,
            sourcenat: p.flag("sourcenatsupported"),
            acl,
        },
    );
    Ok(ctx.create_job(
        "PrivateGateway",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.private_gateways.remove(s);
            })?;
            Ok(single("privategateway", pgw_json(m, m.private_gateways.in_job(s)?)))
        }),
    ))
}

fn list_pgw(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "privategateway", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.private_gateways, "id")? else { return empty() };
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let ip = p.opt("ipaddress");
    let items: Vec<&PrivateGateway> = m
        .private_gateways
        .iter()
        .filter(|(s, g)| {
            scope.sees(g.owner)
                && id.is_none_or(|x| x == *s)
                && vpc.is_none_or(|v| g.vpc == v)
                && ip.is_none_or(|i| g.ipaddress == i)
        })
        .map(|(_, g)| g)
        .collect();
    Ok(list::respond(paging, "privategateway", items, |g| pgw_json(m, g)))
}

fn delete_pgw(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ctx.need(&m.private_gateways, "id")?;
    let id = m.private_gateways.live(s)?.id.clone();
    if m.static_routes.values().any(|r| r.gateway == s) {
        return Err(SimError::invalid(format!(
            "Can't delete private gateway {id} as it has static routes applied. Remove the routes first"
        )));
    }
    Ok(ctx.object_job(
        "PrivateGateway",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.private_gateways.in_job(s)?;
            m.private_gateways.remove(s);
            Ok(success())
        }),
    ))
}

fn route_json(m: &Model, r: &StaticRoute) -> Value {
    let g = m.private_gateways.get(r.gateway);
    let vpc = g.and_then(|g| m.vpcs.get(g.vpc));
    let o = Obj::new()
        .set("id", r.id.clone())
        .set("cidr", r.cidr.clone())
        .opt("gatewayid", g.map(|g| g.id.clone()))
        .opt("vpcid", vpc.map(|v| v.id.clone()))
        .set("state", "Active");
    owner_fields(m, o, r.owner).set("tags", tags_json(m, "StaticRoute", &r.id, r.owner, &r.tags)).done()
}

fn create_route(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("gatewayid")?;
    ctx.p.req("cidr")?;
    let g = ctx.need(&m.private_gateways, "gatewayid")?;
    let gw = m.private_gateways.live(g)?;
    let vpc = m.vpcs.live(gw.vpc)?;
    m.check_owned(&ctx.caller, vpc)?;
    let text = ctx.p.opt("cidr").unwrap_or_default();
    let cidr = Cidr::parse(text).ok_or_else(|| SimError::invalid(format!("Invalid format for cidr {text}")))?;
    if cidr.overlaps(&vpc.cidr) {
        return Err(SimError::invalid(format!("CIDR should be outside of VPC cidr {}", vpc.cidr)));
    }
    if m.static_routes.values().any(|r| {
        m.private_gateways.get(r.gateway).is_some_and(|x| x.vpc == gw.vpc)
            && Cidr::parse(&r.cidr).is_some_and(|c| c.overlaps(&cidr))
    }) {
        return Err(SimError::conflict(format!(
            "New static route cidr conflicts with existing static route in vpc {}",
            vpc.id
        )));
    }
    let owner = vpc.owner;
    let id = new_uuid();
    let s = m.next_seq();
    m.static_routes
        .insert(s, StaticRoute { id: id.clone(), gateway: g, owner, cidr: cidr.to_string(), tags: Vec::new() });
    Ok(ctx.create_job(
        "StaticRoute",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.static_routes.remove(s);
            })?;
            Ok(single("staticroute", route_json(m, m.static_routes.in_job(s)?)))
        }),
    ))
}

fn list_route(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "staticroute", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.static_routes, "id")? else { return empty() };
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
    let Some(gw) = ctx.filter(&m.private_gateways, "gatewayid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let tags = p.tags();
    let items: Vec<&StaticRoute> = m
        .static_routes
        .iter()
        .filter(|(s, r)| {
            scope.sees(r.owner)
                && id.is_none_or(|x| x == *s)
                && gw.is_none_or(|g| r.gateway == g)
                && vpc.is_none_or(|v| m.private_gateways.get(r.gateway).is_some_and(|g| g.vpc == v))
                && tags_match(&r.tags, &tags)
        })
        .map(|(_, r)| r)
        .collect();
    Ok(list::respond(paging, "staticroute", items, |r| route_json(m, r)))
}

fn delete_route(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = ctx.owned(m, &m.static_routes, "id")?;
    let id = m.static_routes.live(s)?.id.clone();
    Ok(ctx.object_job(
        "StaticRoute",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.static_routes.in_job(s)?;
            m.static_routes.remove(s);
            Ok(success())
        }),
    ))
}
