//! VPCs, VPC offerings and virtual routers: createVPC (async create), listVPCs, updateVPC,
//! deleteVPC, restartVPC, listVPCOfferings, listRouters (admins). Rules and texts follow
//! VpcManagerImpl (createVpc, destroyVpc, restartVpc) and NetUtils.validateGuestCidr
//! (docs/simulator.md, "Networking").

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::render_net::*;
use super::super::seed::new_uuid;
use super::network::add_router;
use super::{CmdSpec, Ctx, Reply, admin, create, job, read, single, success};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        create("createVPC", "org.apache.cloudstack.api.command.user.vpc.CreateVPCCmd", create_vpc),
        read("listVPCs", "org.apache.cloudstack.api.command.user.vpc.ListVPCsCmd", list_vpcs),
        job("updateVPC", "org.apache.cloudstack.api.command.user.vpc.UpdateVPCCmd", update_vpc),
        job("deleteVPC", "org.apache.cloudstack.api.command.user.vpc.DeleteVPCCmd", delete_vpc),
        job("restartVPC", "org.apache.cloudstack.api.command.user.vpc.RestartVPCCmd", restart_vpc),
        read("listVPCOfferings", "org.apache.cloudstack.api.command.user.vpc.ListVPCOfferingsCmd", list_vpc_offerings),
        admin(read("listRouters", "org.apache.cloudstack.api.command.admin.router.ListRoutersCmd", list_routers)),
    ]
}

/// VpcVO.toString as CloudStack's error texts print it (the bracket is unbalanced there too).
pub fn vpc_str(seq: u64, v: &Vpc) -> String {
    format!("[VPC [{seq}-{}]", v.name)
}

/// The RFC 1918 blocks NetUtils.validateGuestCidr accepts.
fn rfc1918(c: &Cidr) -> bool {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].iter().filter_map(|b| Cidr::parse(b)).any(|b| c.within(&b))
}

/// Start a VPC's virtual router: the router and the VPC's source NAT address
/// (VpcVirtualRouterElement.implementVpc). Idempotent.
pub fn start_vpc(m: &mut Model, v: u64, now: &str) -> SimResult<()> {
    let vpc = m.vpcs.live(v)?;
    let (owner, zone) = (vpc.owner, vpc.zone);
    if !m.public_ips.values().any(|i| i.vpc == Some(v) && i.sourcenat) {
        let ip = super::ip::allocate_address(m, owner, zone, now, "Allocated")?;
        let row = m.public_ips.live_mut(ip)?;
        row.vpc = Some(v);
        row.sourcenat = true;
    }
    if !m.routers.values().any(|r| r.vpc == Some(v)) {
        add_router(m, owner, zone, Some(v), None, now);
    }
    Ok(())
}

fn create_vpc(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let p = &ctx.p;
    for r in ["name", "zoneid", "cidr", "vpcofferingid"] {
        p.req(r)?;
    }
    let zone = ctx.need(&m.zones, "zoneid")?;
    let offering = ctx.need(&m.vpc_offerings, "vpcofferingid")?;
    let owner = m.owner_for(&ctx.caller, p)?;
    let a = m.account(owner).clone();
    m.check_limit(owner, "vpc", a.vpc_limit, m.vpc_count(owner))?;
    let z = m.zones.live(zone)?;
    if z.allocationstate != "Enabled" && !ctx.caller.is_root_admin() {
        return Err(SimError::permission("Cannot perform this operation since specified Zone is currently disabled")
            .with_uuid(z.id.clone()));
    }
    if z.securitygroupsenabled {
        // finalizeServicesAndProvidersForVpc: no VPC provider in a security-group zone.
        return Err(SimError::invalid(
            "Provider VpcVirtualRouter should be enabled in at least one physical network of the zone specified",
        ));
    }
    let domain = match p.opt("networkdomain") {
        Some(d) => {
            if !valid_domain(d) {
                return Err(SimError::invalid(
                    "Invalid network domain. Total length shouldn't exceed 190 chars. Each domain label must be between 1 and 63 characters long, can contain ASCII letters 'a' through 'z', the digits '0' through '9', and the hyphen ('-'); can't start or end with \"-\"",
                ));
            }
            d.to_string()
        }
        None => format!("cs{owner:x}cloud.internal"),
    };
    let cidr_text = p.opt("cidr").unwrap_or_default();
    let cidr = Cidr::parse(cidr_text)
        .filter(|c| c.prefix >= 1)
        .ok_or_else(|| SimError::invalid(format!("Invalid CIDR specified {cidr_text}")))?;
    if !rfc1918(&cidr) {
        return Err(SimError::invalid(format!("Guest Cidr {cidr_text} is not RFC1918 compliant")));
    }
    let name = p.opt("name").unwrap_or_default().to_string();
    let displaytext = p.opt("displaytext").unwrap_or(&name).to_string();
    let start = p.bool_or("start", true);
    let display = p.bool_or("fordisplay", true);
    let id = new_uuid();
    let seq = m.next_seq();
    m.vpcs.insert(
        seq,
        Vpc {
            id: id.clone(),
            name,
            displaytext,
            owner,
            zone,
            offering,
            cidr,
            state: vpc_state::ENABLED,
            networkdomain: domain,
            restart_required: false,
            display,
            created: ctx.now.clone(),
            tags: Vec::new(),
        },
    );
    let now = ctx.now.clone();
    Ok(ctx.create_job(
        "Vpc",
        id,
        Box::new(move |m, env| {
            env.injected(|| {
                m.vpcs.remove(seq);
            })?;
            m.vpcs.in_job(seq)?;
            if start && start_vpc(m, seq, &now).is_err() {
                // startVpc failed: the VPC is destroyed and CreateVPCCmd reports 530.
                remove_vpc(m, seq);
                return Err(SimError::internal("Failed to create VPC"));
            }
            Ok(single("vpc", vpc_json(m, seq, m.vpcs.in_job(seq)?)))
        }),
    ))
}

/// NetUtils.verifyDomainName: labels of 1..63 letters, digits, hyphens (not at the ends),
/// at most 190 characters.
fn valid_domain(d: &str) -> bool {
    d.len() <= 190
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn vpc_param(ctx: &Ctx, m: &Model, name: &str) -> SimResult<u64> {
    ctx.owned(m, &m.vpcs, name)
}

fn list_vpcs(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "vpc", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.vpcs, "id")? else { return empty() };
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let Some(offering) = ctx.filter(&m.vpc_offerings, "vpcofferingid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let services = p.list("supportedservices");
    for sv in &services {
        if !SERVICES.iter().any(|x| x.eq_ignore_ascii_case(sv)) {
            return Err(SimError::invalid(format!("Invalid service specified {sv}")));
        }
    }
    let name = p.opt("name");
    let text = p.opt("displaytext");
    let cidr = p.opt("cidr");
    let state = p.opt("state");
    let restart = p.opt_bool("restartrequired");
    let display = p.opt_bool("fordisplay");
    let kw = p.opt("keyword");
    let tags = p.tags();
    let items: Vec<(u64, &Vpc)> = m
        .vpcs
        .iter()
        .filter(|(s, v)| {
            scope.sees(v.owner)
                && id.is_none_or(|x| x == *s)
                && zone.is_none_or(|z| v.zone == z)
                && offering.is_none_or(|o| v.offering == o)
                && name.is_none_or(|n| v.name.contains(n))
                && text.is_none_or(|t| v.displaytext.contains(t))
                && cidr.is_none_or(|c| v.cidr.to_string() == c)
                && state.is_none_or(|st| st.eq_ignore_ascii_case(v.state))
                && restart.is_none_or(|r| v.restart_required == r)
                && display.is_none_or(|d| v.display == d)
                && services.iter().all(|sv| {
                    m.vpc_offerings
                        .get(v.offering)
                        .is_some_and(|o| o.services.iter().any(|x| x.eq_ignore_ascii_case(sv)))
                })
                && keyword_match(kw, &[&v.name, &v.displaytext])
                && tags_match(&v.tags, &tags)
        })
        .collect();
    Ok(list::respond(paging, "vpc", items, |(s, v)| vpc_json(m, s, v)))
}

/// Network.Service names, for `supportedservices` validation.
const SERVICES: [&str; 14] = [
    "Vpn",
    "Dhcp",
    "Dns",
    "Gateway",
    "Firewall",
    "Lb",
    "UserData",
    "SourceNat",
    "StaticNat",
    "PortForwarding",
    "SecurityGroup",
    "NetworkACL",
    "Connectivity",
    "BaremetalPxeService",
];

fn update_vpc(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = vpc_param(ctx, m, "id")?;
    let p = &ctx.p;
    for unsupported in ["customid", "publicmtu", "sourcenatipaddress"] {
        if p.has(unsupported) {
            return Err(SimError::invalid(format!("Parameter {unsupported} of updateVPC is not simulated")));
        }
    }
    let name = p.opt("name").map(str::to_string);
    let text = p.opt("displaytext").map(str::to_string);
    let display = p.opt_bool("fordisplay");
    let id = m.vpcs.live(s)?.id.clone();
    Ok(ctx.object_job(
        "Vpc",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let v = m.vpcs.in_job_mut(s)?;
            if let Some(x) = name {
                v.name = x;
            }
            if let Some(x) = text {
                v.displaytext = x;
            }
            if let Some(x) = display {
                v.display = x;
            }
            Ok(single("vpc", vpc_json(m, s, m.vpcs.in_job(s)?)))
        }),
    ))
}

/// VpcManagerImpl.cleanupVpcResources, then the row: VPN connections and gateway, every
/// address of the VPC, static routes, private gateways, its ACL lists, its router.
pub fn remove_vpc(m: &mut Model, v: u64) {
    let gws: Vec<u64> = m.vpn_gateways.iter().filter(|(_, g)| g.vpc == v).map(|(k, _)| k).collect();
    for g in gws {
        let conns: Vec<u64> = m.vpn_connections.iter().filter(|(_, c)| c.vpn_gateway == g).map(|(k, _)| k).collect();
        for c in conns {
            m.vpn_connections.remove(c);
        }
        m.vpn_gateways.remove(g);
    }
    let pgws: Vec<u64> = m.private_gateways.iter().filter(|(_, g)| g.vpc == v).map(|(k, _)| k).collect();
    for g in pgws {
        let routes: Vec<u64> = m.static_routes.iter().filter(|(_, r)| r.gateway == g).map(|(k, _)| k).collect();
        for r in routes {
            m.static_routes.remove(r);
        }
        m.private_gateways.remove(g);
    }
    let ips: Vec<u64> = m.public_ips.iter().filter(|(_, i)| i.vpc == Some(v)).map(|(k, _)| k).collect();
    for i in ips {
        m.remove_rules(|r| r.ip == Some(i));
        super::ip::release_nat_pub(m, i);
        m.public_ips.remove(i);
    }
    let lists: Vec<u64> = m.acls.iter().filter(|(_, l)| l.vpc == Some(v)).map(|(k, _)| k).collect();
    for l in lists {
        let items: Vec<u64> = m.acl_items.iter().filter(|(_, i)| i.list == l).map(|(k, _)| k).collect();
        for i in items {
            m.acl_items.remove(i);
        }
        m.acls.remove(l);
    }
    let routers: Vec<u64> = m.routers.iter().filter(|(_, r)| r.vpc == Some(v)).map(|(k, _)| k).collect();
    for r in routers {
        m.routers.remove(r);
    }
    m.vpcs.remove(v);
}

fn delete_vpc(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = vpc_param(ctx, m, "id")?;
    let id = m.vpcs.live(s)?.id.clone();
    Ok(ctx.object_job(
        "Vpc",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let v = m.vpcs.in_job(s)?;
            // destroyVpc: tiers keep the VPC (InvalidParameterValueException, in the job).
            let tiers = m.networks.values().filter(|n| n.vpc == Some(s)).count();
            if tiers > 0 {
                return Err(SimError::invalid(format!(
                    "Can't delete VPC {} as its used by {tiers} networks",
                    vpc_str(s, v)
                )));
            }
            remove_vpc(m, s);
            Ok(success())
        }),
    ))
}

fn restart_vpc(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = vpc_param(ctx, m, "id")?;
    let cleanup = ctx.p.flag("cleanup") || ctx.p.flag("makeredundant");
    let id = m.vpcs.live(s)?.id.clone();
    let now = ctx.now.clone();
    Ok(ctx.object_job(
        "Vpc",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let v = m.vpcs.in_job(s)?;
            if v.state != vpc_state::ENABLED {
                return Err(SimError::invalid("Unable to find Enabled VPC by id specified"));
            }
            if cleanup {
                let old: Vec<u64> = m.routers.iter().filter(|(_, r)| r.vpc == Some(s)).map(|(k, _)| k).collect();
                for r in old {
                    m.routers.remove(r);
                }
            }
            start_vpc(m, s, &now).map_err(|_| SimError::internal("Failed to restart VPC"))?;
            m.vpcs.in_job_mut(s)?.restart_required = false;
            Ok(success())
        }),
    ))
}

fn list_vpc_offerings(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "vpcoffering", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.vpc_offerings, "id")? else { return empty() };
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let paging = list::paging(p)?;
    let services = p.list("supportedservices");
    let name = p.opt("name");
    let text = p.opt("displaytext");
    let isdefault = p.opt_bool("isdefault");
    let state = p.opt("state");
    let kw = p.opt("keyword");
    // VPC offerings apply where the VPC provider is: zones without security groups.
    let zone_ok = zone.is_none_or(|z| m.zones.get(z).is_some_and(|z| !z.securitygroupsenabled));
    let items: Vec<&VpcOffering> = m
        .vpc_offerings
        .iter()
        .filter(|(s, o)| {
            zone_ok
                && id.is_none_or(|x| x == *s)
                && name.is_none_or(|n| o.name == n)
                && text.is_none_or(|t| o.displaytext == t)
                && isdefault.is_none_or(|d| o.isdefault == d)
                && state.is_none_or(|st| st.eq_ignore_ascii_case("Enabled"))
                && services.iter().all(|sv| o.services.iter().any(|x| x.eq_ignore_ascii_case(sv)))
                && keyword_match(kw, &[&o.name, &o.displaytext])
        })
        .map(|(_, o)| o)
        .collect();
    Ok(list::respond(paging, "vpcoffering", items, vpc_offering_json))
}

fn list_routers(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "router", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.routers, "id")? else { return empty() };
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
    let Some(network) = ctx.filter(&m.networks, "networkid")? else { return empty() };
    let paging = list::paging(p)?;
    // Routers are system VMs: admins see all of them unless they name an account.
    let scope = if p.has("account") || p.has("domainid") { m.scope(&ctx.caller, p)? } else { Scope::All };
    let name = p.opt("name");
    let state = p.opt("state");
    let forvpc = p.opt_bool("forvpc");
    let kw = p.opt("keyword");
    // A tier's traffic goes through its VPC's router.
    let tier_vpc = network.and_then(|n| m.networks.get(n)).and_then(|n| n.vpc);
    let items: Vec<&Router> = m
        .routers
        .iter()
        .filter(|(s, r)| {
            scope.sees(r.owner)
                && id.is_none_or(|x| x == *s)
                && zone.is_none_or(|z| r.zone == z)
                && vpc.is_none_or(|v| r.vpc == Some(v))
                && network.is_none_or(|n| r.network == Some(n) || (tier_vpc.is_some() && r.vpc == tier_vpc))
                && name.is_none_or(|x| r.name == x)
                && state.is_none_or(|st| st.eq_ignore_ascii_case(r.state))
                && forvpc.is_none_or(|f| r.vpc.is_some() == f)
                && keyword_match(kw, &[&r.name])
        })
        .map(|(_, r)| r)
        .collect();
    Ok(list::respond(paging, "router", items, |r| router_json(m, r)))
}
