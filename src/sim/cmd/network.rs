//! Guest networks and network offerings: the zones' shared security-group networks, isolated
//! networks and VPC tiers (createNetwork, listNetworks, updateNetwork, deleteNetwork,
//! restartNetwork, listNetworkOfferings). Rules and texts follow NetworkServiceImpl,
//! NetworkOrchestrator and VpcManagerImpl.validateNewVpcGuestNetwork (docs/simulator.md,
//! "Networking"). Port and IP forwarding lists are here too.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::offerings;
use super::super::render_net::*;
use super::super::seed::new_uuid;
use super::{CmdSpec, Ctx, Reply, job, read, single, success, write};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        read("listNetworks", "org.apache.cloudstack.api.command.user.network.ListNetworksCmd", list_networks),
        write("createNetwork", "org.apache.cloudstack.api.command.user.network.CreateNetworkCmd", create_network),
        job("updateNetwork", "org.apache.cloudstack.api.command.user.network.UpdateNetworkCmd", update_network),
        job("deleteNetwork", "org.apache.cloudstack.api.command.user.network.DeleteNetworkCmd", delete_network),
        job("restartNetwork", "org.apache.cloudstack.api.command.user.network.RestartNetworkCmd", restart_network),
        read(
            "listNetworkOfferings",
            "org.apache.cloudstack.api.command.user.network.ListNetworkOfferingsCmd",
            list_network_offerings,
        ),
        read("listIpForwardingRules", "org.apache.cloudstack.api.command.user.nat.ListIpForwardingRulesCmd", list_none),
    ]
}

/// CloudStack's NetworkVO.toString, as error texts print a network.
pub fn net_str(seq: u64, n: &Network) -> String {
    format!("Ntwk[{seq}|Guest|{}]", n.offering)
}

/// A network parameter the caller may use: shared networks are everyone's; isolated networks
/// and tiers need access to their account (531 otherwise).
pub fn net_param(ctx: &Ctx, m: &Model, name: &str) -> SimResult<u64> {
    let s = ctx.need(&m.networks, name)?;
    let n = m.networks.live(s)?;
    if !n.shared {
        m.check_owned(&ctx.caller, n)?;
    }
    Ok(s)
}

/// A virtual router for a VPC or an isolated network (created Running when it starts).
pub fn add_router(m: &mut Model, owner: u64, zone: u64, vpc: Option<u64>, network: Option<u64>, now: &str) -> u64 {
    let s = m.next_seq();
    m.routers.insert(
        s,
        Router {
            id: new_uuid(),
            name: format!("r-{s}-VM"),
            owner,
            zone,
            vpc,
            network,
            state: "Running",
            linklocalip: format!("169.254.{}.{}", (s >> 8) & 0xff, (s & 0xff).max(2)),
            created: now.to_string(),
        },
    );
    s
}

/// The first VM on an isolated network or tier implements it (NetworkOrchestrator
/// .implementNetwork): a VLAN, and for a network outside a VPC a source NAT address and a
/// router; a tier's VPC gets its router then if `createVPC` had `start=false`.
pub fn implement(m: &mut Model, net: u64, now: &str) -> SimResult<()> {
    let n = m.networks.live(net)?;
    if n.shared || n.state == "Implemented" {
        return Ok(());
    }
    let (owner, zone, vpc) = (n.owner, n.zone, n.vpc);
    match vpc {
        None => {
            if !m.public_ips.values().any(|i| i.network == Some(net) && i.sourcenat) {
                let ip = super::ip::allocate_address(m, owner, zone, now, "Allocated")?;
                let row = m.public_ips.live_mut(ip)?;
                row.network = Some(net);
                row.sourcenat = true;
            }
            if !m.routers.values().any(|r| r.network == Some(net)) {
                add_router(m, owner, zone, None, Some(net), now);
            }
        }
        Some(v) => super::vpc::start_vpc(m, v, now)?,
    }
    let n = m.networks.live_mut(net)?;
    n.state = "Implemented";
    n.vlan = Some(100 + (net % 3900) as u32);
    Ok(())
}

/// deployVirtualMachine without `networkids` in an Advanced zone without security groups
/// (UserVmManagerImpl.getDefaultNetwork): the account's one isolated network; none -> one is
/// created from the Required offering, named `<account>-network`; several -> error.
pub fn default_network(m: &mut Model, owner: u64, zone: u64, now: &str) -> SimResult<u64> {
    let nets: Vec<u64> = m
        .networks
        .iter()
        .filter(|(_, n)| n.owner == owner && n.zone == zone && !n.shared && n.vpc.is_none())
        .map(|(s, _)| s)
        .collect();
    let a = m.account(owner).clone();
    match nets[..] {
        [one] => Ok(one),
        [] => {
            let off = m
                .network_offerings
                .find(|o| o.availability == "Required")
                .map(|(s, _)| s)
                .ok_or_else(|| {
                    SimError::invalid(
                        "Unable to find network offering with availability=Required to automatically create the network as a part of vm creation",
                    )
                })?;
            m.check_limit(owner, "network", a.network_limit, m.network_count(owner))?;
            let cidr = m.zones.live(zone)?.guest_cidr;
            let name = format!("{}-network", a.name);
            Ok(insert_network(
                m,
                NewNet {
                    name: name.clone(),
                    displaytext: name,
                    owner,
                    zone,
                    offering: off,
                    vpc: None,
                    cidr,
                    gateway: Cidr::addr(cidr.base + 1),
                    acl: None,
                    networkdomain: format!("cs{:x}cloud.internal", owner),
                    display: true,
                    now: now.to_string(),
                },
            ))
        }
        _ => Err(SimError::invalid(format!(
            "More than 1 default Isolated networks are found for Account Acct[{}-{}]; please specify networkIds",
            a.id, a.name
        ))),
    }
}

struct NewNet {
    name: String,
    displaytext: String,
    owner: u64,
    zone: u64,
    offering: u64,
    vpc: Option<u64>,
    cidr: Cidr,
    gateway: String,
    acl: Option<u64>,
    networkdomain: String,
    display: bool,
    now: String,
}

fn insert_network(m: &mut Model, n: NewNet) -> u64 {
    let s = m.next_seq();
    m.networks.insert(
        s,
        Network {
            id: new_uuid(),
            name: n.name,
            displaytext: n.displaytext,
            owner: n.owner,
            zone: n.zone,
            offering: n.offering,
            shared: false,
            vpc: n.vpc,
            cidr: n.cidr,
            gateway: n.gateway,
            state: "Allocated",
            acl: n.acl,
            networkdomain: n.networkdomain,
            next_host: 0,
            restart_required: false,
            display: n.display,
            vlan: None,
            created: n.now,
            tags: Vec::new(),
        },
    );
    s
}

/// gateway + netmask -> CIDR, with NetworkServiceImpl.createGuestNetwork's texts.
fn cidr_of(gateway: &str, netmask: &str) -> SimResult<Cidr> {
    let gw: Ipv4Addr = gateway.parse().map_err(|_| SimError::invalid("Invalid gateway"))?;
    let mask: Ipv4Addr = netmask.parse().map_err(|_| SimError::invalid("Invalid netmask"))?;
    let cidr =
        Cidr::from_gateway(gw, mask).filter(|c| c.prefix > 0).ok_or_else(|| SimError::invalid("Invalid netmask"))?;
    let g = u32::from(gw);
    if cidr.prefix < 31 && (g == cidr.base || g == cidr.broadcast()) {
        return Err(SimError::invalid("Invalid gateway IP provided. Either the IP is broadcast or network IP."));
    }
    Ok(cidr)
}

fn create_network(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let p = &ctx.p;
    for r in ["name", "networkofferingid", "zoneid"] {
        p.req(r)?;
    }
    let off_seq = ctx.need(&m.network_offerings, "networkofferingid")?;
    let zone = ctx.need(&m.zones, "zoneid")?;
    let vpc = ctx.opt_live(&m.vpcs, "vpcid")?;
    let acl = ctx.opt_live(&m.acls, "aclid")?;
    let owner = m.owner_for(&ctx.caller, p)?;
    let off = m.network_offerings.live(off_seq)?.clone();
    let z = m.zones.live(zone)?.clone();
    if z.allocationstate != "Enabled" && !ctx.caller.is_root_admin() {
        return Err(SimError::permission(format!(
            "Cannot perform this operation, Zone is currently disabled: {}",
            z.id
        )));
    }
    if off.guestiptype == "Shared" {
        if !ctx.caller.is_root_admin() {
            return Err(SimError::invalid(
                "Regular user can create a network only from the network offering having traffic type Guest and network type Isolated with a service SourceNat enabled",
            ));
        }
        return Err(SimError::invalid("Shared networks are created by the seed in this simulator"));
    }
    if z.securitygroupsenabled {
        return Err(SimError::invalid(format!(
            "Network creation of type Isolated is not supported in zone {} as it is security group enabled",
            z.name
        )));
    }
    let (gateway, netmask) = (p.opt("gateway"), p.opt("netmask"));
    let given = match (gateway, netmask) {
        (Some(g), Some(n)) => Some((cidr_of(g, n)?, g.parse::<Ipv4Addr>().map(|a| a.to_string()).unwrap_or_default())),
        (None, None) => None,
        _ => return Err(SimError::invalid("gateway and netmask must be specified together")),
    };
    if let Some((c, _)) = &given
        && !ctx.caller.is_root_admin()
        && c.prefix < 22
    {
        return Err(SimError::invalid("Cidr size can't be less than 22"));
    }
    let a = m.account(owner).clone();
    let name = p.opt("name").unwrap_or_default().to_string();
    let displaytext = p.opt("displaytext").unwrap_or(&name).to_string();
    let display = p.bool_or("displaynetwork", true);
    let (cidr, gw, networkdomain, acl) = match vpc {
        Some(v) => {
            if !off.forvpc {
                return Err(SimError::invalid("Network offering can't be used for VPC networks"));
            }
            let vp = m.vpcs.live(v)?;
            m.check_owned(&ctx.caller, vp)?;
            if vp.state != vpc_state::ENABLED {
                return Err(SimError::invalid("Unable to find Enabled VPC "));
            }
            if vp.zone != zone {
                return Err(SimError::invalid("New network doesn't belong to vpc zone"));
            }
            let vpc_str = super::vpc::vpc_str(v, vp);
            // VpcManagerImpl.validateNewVpcGuestNetwork, in its order.
            let Some((cidr, gw)) = given else {
                return Err(SimError::invalid("Gateway/netmask are required when create network for VPC"));
            };
            if !cidr.within(&vp.cidr) {
                return Err(SimError::invalid(format!("Network cidr {cidr} is not within vpc {vpc_str} cidr")));
            }
            if let Some((s, other)) = m.networks.iter().find(|(_, n)| n.vpc == Some(v) && n.cidr.overlaps(&cidr)) {
                return Err(SimError::invalid(format!(
                    "Network cidr {cidr} crosses other network cidr {} belonging to the same vpc {vpc_str}",
                    net_str(s, other)
                )));
            }
            if let Some(d) = p.opt("networkdomain")
                && !d.eq_ignore_ascii_case(&vp.networkdomain)
            {
                return Err(SimError::invalid(format!(
                    "Network domain of the new network should match network domain of vpc {vpc_str}"
                )));
            }
            let acl = match acl {
                Some(l) => {
                    let list = m.acls.live(l)?;
                    if list.vpc.is_some_and(|x| x != v) {
                        return Err(SimError::invalid("Network ACL and VPC are not in the same vpc"));
                    }
                    l
                }
                // A tier without `aclid` gets default_deny.
                None => m
                    .acls
                    .find(|l| l.id == offerings::DEFAULT_DENY.0)
                    .map(|(s, _)| s)
                    .ok_or_else(|| SimError::internal("default_deny is missing"))?,
            };
            (cidr, gw, vp.networkdomain.clone(), Some(acl))
        }
        None => {
            if off.forvpc {
                return Err(SimError::invalid("Network offering can be used for VPC networks only"));
            }
            if acl.is_some() {
                return Err(SimError::invalid("Can't specify aclid for a network that is not in a VPC"));
            }
            let (cidr, gw) = given.unwrap_or((z.guest_cidr, Cidr::addr(z.guest_cidr.base + 1)));
            let domain =
                p.opt("networkdomain").map(str::to_string).unwrap_or_else(|| format!("cs{owner:x}cloud.internal"));
            (cidr, gw, domain, None)
        }
    };
    m.check_limit(owner, "network", a.network_limit, m.network_count(owner))?;
    let s = insert_network(
        m,
        NewNet {
            name,
            displaytext,
            owner,
            zone,
            offering: off_seq,
            vpc,
            cidr,
            gateway: gw,
            acl,
            networkdomain,
            display,
            now: ctx.now.clone(),
        },
    );
    Ok(Reply::Value(single("network", network_json(m, m.networks.live(s)?))))
}

fn list_networks(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "network", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.networks, "id")? else { return empty() };
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
    let Some(offering) = ctx.filter(&m.network_offerings, "networkofferingid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let guest_type = p.opt("type");
    let forvpc = p.opt_bool("forvpc");
    let restart = p.opt_bool("restartrequired");
    let services = p.list("supportedservices");
    let kw = p.opt("keyword");
    let name = p.opt("name");
    let tags = p.tags();
    if let Some(t) = p.opt("traffictype")
        && !t.eq_ignore_ascii_case("Guest")
    {
        return Ok(list::respond(paging, "network", Vec::<()>::new(), |_| json!({})));
    }
    let items: Vec<&Network> = m
        .networks
        .iter()
        .filter(|(s, n)| {
            (n.shared || scope.sees(n.owner))
                && id.is_none_or(|x| x == *s)
                && zone.is_none_or(|z| n.zone == z)
                && vpc.is_none_or(|v| n.vpc == Some(v))
                && offering.is_none_or(|o| n.offering == o)
                && guest_type.is_none_or(|t| t.eq_ignore_ascii_case(n.guest_type()))
                && forvpc.is_none_or(|f| n.vpc.is_some() == f)
                && restart.is_none_or(|r| n.restart_required == r)
                && name.is_none_or(|x| n.name == x)
                && services.iter().all(|sv| m.network_offerings.get(n.offering).is_some_and(|o| o.supports(sv)))
                && keyword_match(kw, &[&n.name, &n.displaytext])
                && tags_match(&n.tags, &tags)
        })
        .map(|(_, n)| n)
        .collect();
    Ok(list::respond(paging, "network", items, |n| network_json(m, n)))
}

fn update_network(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = net_param(ctx, m, "id")?;
    let n = m.networks.live(s)?;
    if n.shared {
        m.check_owned(&ctx.caller, n)?;
    }
    let p = &ctx.p;
    for unsupported in
        ["guestvmcidr", "changecidr", "networkofferingid", "sourcenatipaddress", "publicmtu", "privatemtu"]
    {
        if p.has(unsupported)
            && !(unsupported == "networkofferingid"
                && p.opt(unsupported) == m.network_offerings.get(n.offering).map(|o| o.id.as_str()))
        {
            return Err(SimError::invalid(format!("Parameter {unsupported} of updateNetwork is not simulated")));
        }
    }
    if p.has("networkdomain") && n.vpc.is_some() {
        return Err(SimError::invalid("Network domain can't be changed for a network in a VPC"));
    }
    let name = p.opt("name").map(str::to_string);
    let text = p.opt("displaytext").map(str::to_string);
    let domain = p.opt("networkdomain").map(str::to_string);
    let display = p.opt_bool("displaynetwork");
    let id = n.id.clone();
    Ok(ctx.object_job(
        "Network",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let n = m.networks.in_job_mut(s)?;
            if let Some(v) = name {
                n.name = v;
            }
            if let Some(v) = text {
                n.displaytext = v;
            }
            if let Some(v) = domain {
                n.networkdomain = v;
            }
            if let Some(v) = display {
                n.display = v;
            }
            Ok(single("network", network_json(m, m.networks.in_job(s)?)))
        }),
    ))
}

/// Remove a network with its router and addresses (its source NAT released; a tier's VPC
/// addresses stay with the VPC).
pub fn remove_network(m: &mut Model, s: u64) {
    m.remove_rules(|r| r.network == Some(s));
    let ips: Vec<u64> = m.public_ips.iter().filter(|(_, i)| i.network == Some(s)).map(|(k, _)| k).collect();
    for i in ips {
        let vpc_ip = m.public_ips.get(i).is_some_and(|x| x.vpc.is_some());
        if vpc_ip {
            if let Some(x) = m.public_ips.get_mut(i) {
                x.network = None;
            }
        } else {
            super::ip::release_nat_pub(m, i);
            m.public_ips.remove(i);
        }
    }
    let routers: Vec<u64> = m.routers.iter().filter(|(_, r)| r.network == Some(s)).map(|(k, _)| k).collect();
    for r in routers {
        m.routers.remove(r);
    }
    m.networks.remove(s);
}

fn delete_network(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = net_param(ctx, m, "id")?;
    let n = m.networks.live(s)?;
    if n.shared {
        return Err(SimError::invalid("Shared networks of the seed can't be deleted in this simulator"));
    }
    let id = n.id.clone();
    Ok(ctx.object_job(
        "Network",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            m.networks.in_job(s)?;
            // NetworkOrchestrator.destroyNetwork: any VM with a NIC here (also Destroyed ones
            // not yet expunged) makes it fail, and DeleteNetworkCmd reports that as 530.
            if m.vms.values().any(|v| v.nics.iter().any(|n| n.network == s)) {
                return Err(SimError::internal("Failed to delete network"));
            }
            remove_network(m, s);
            Ok(success())
        }),
    ))
}

fn restart_network(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = net_param(ctx, m, "id")?;
    let n = m.networks.live(s)?;
    if n.shared {
        m.check_owned(&ctx.caller, n)?;
    }
    let cleanup = ctx.p.flag("cleanup");
    let id = n.id.clone();
    let now = ctx.now.clone();
    Ok(ctx.object_job(
        "Network",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let n = m.networks.in_job(s)?;
            if !n.shared && n.state != "Implemented" {
                return Err(SimError::invalid(
                    "Network is not in the right state to be restarted. Correct states are: Implemented, Setup",
                ));
            }
            let (owner, zone, vpc) = (n.owner, n.zone, n.vpc);
            if cleanup && vpc.is_none() && !n.shared {
                // cleanup=true replaces the router.
                let old: Vec<u64> = m.routers.iter().filter(|(_, r)| r.network == Some(s)).map(|(k, _)| k).collect();
                for r in old {
                    m.routers.remove(r);
                }
                add_router(m, owner, zone, None, Some(s), &now);
            }
            m.networks.in_job_mut(s)?.restart_required = false;
            Ok(success())
        }),
    ))
}

fn list_network_offerings(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let empty = || list::list(p, "networkoffering", Vec::<()>::new(), |_| json!({}));
    let Some(id) = ctx.filter(&m.network_offerings, "id")? else { return empty() };
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let Some(network) = ctx.filter(&m.networks, "networkid")? else { return empty() };
    let paging = list::paging(p)?;
    let services = p.list("supportedservices");
    let forvpc = p.opt_bool("forvpc");
    let isdefault = p.opt_bool("isdefault");
    let sourcenat = p.opt_bool("sourcenatsupported");
    let guest = p.opt("guestiptype");
    let avail = p.opt("availability");
    let state = p.opt("state");
    let name = p.opt("name");
    let text = p.opt("displaytext");
    let kw = p.opt("keyword");
    let traffic = p.opt("traffictype");
    // In a security-group zone only the shared SG offering applies; elsewhere the others.
    let zone_sg = zone.and_then(|z| m.zones.get(z)).map(|z| z.securitygroupsenabled);
    let net = network.and_then(|n| m.networks.get(n));
    let items: Vec<&NetworkOffering> = m
        .network_offerings
        .iter()
        .filter(|(s, o)| {
            id.is_none_or(|x| x == *s)
                && zone_sg.is_none_or(|sg| o.supports("SecurityGroup") == sg)
                && net.is_none_or(|n| o.guestiptype == n.guest_type() && o.forvpc == n.vpc.is_some())
                && services.iter().all(|sv| o.supports(sv))
                && forvpc.is_none_or(|f| o.forvpc == f)
                && isdefault.is_none_or(|d| o.isdefault == d)
                && sourcenat.is_none_or(|b| o.supports("SourceNat") == b)
                && guest.is_none_or(|g| g.eq_ignore_ascii_case(o.guestiptype))
                && avail.is_none_or(|a| a.eq_ignore_ascii_case(o.availability))
                && state.is_none_or(|st| st.eq_ignore_ascii_case("Enabled"))
                && traffic.is_none_or(|t| t.eq_ignore_ascii_case("Guest"))
                && name.is_none_or(|x| o.name == x)
                && text.is_none_or(|x| o.displaytext == x)
                && keyword_match(kw, &[&o.name, &o.displaytext])
        })
        .map(|(_, o)| o)
        .collect();
    Ok(list::respond(paging, "networkoffering", items, network_offering_json))
}

fn list_none(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    // Validate what a real list would (paging, account/domain scope), then answer empty.
    m.scope(&ctx.caller, &ctx.p)?;
    list::list(&ctx.p, "ipforwardingrule", Vec::<()>::new(), |_| json!({}))
}
