//! Virtual machines: deploy, list, start/stop/reboot/destroy/expunge/recover, update,
//! change offering, passwords and user data (docs/cloudstack-wire.md "Commands", "States").

use std::time::Duration;

use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::jobs::{JobFn, Timer};
use super::super::keys;
use super::super::list;
use super::super::model::vm_state::*;
use super::super::model::*;
use super::super::params::Params;
use super::super::render::*;
use super::super::seed::new_uuid;
use super::{CmdSpec, Ctx, Reply, create, job, read, read_raw, single, write};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        create("deployVirtualMachine", "org.apache.cloudstack.api.command.user.vm.DeployVMCmd", deploy),
        read_raw("listVirtualMachines", "org.apache.cloudstack.api.command.user.vm.ListVMsCmd", list_vms),
        job("startVirtualMachine", "org.apache.cloudstack.api.command.user.vm.StartVMCmd", start),
        job("stopVirtualMachine", "org.apache.cloudstack.api.command.user.vm.StopVMCmd", stop),
        job("rebootVirtualMachine", "org.apache.cloudstack.api.command.user.vm.RebootVMCmd", reboot),
        job("destroyVirtualMachine", "org.apache.cloudstack.api.command.user.vm.DestroyVMCmd", destroy),
        job("expungeVirtualMachine", "org.apache.cloudstack.api.command.admin.vm.ExpungeVMCmd", expunge),
        write("recoverVirtualMachine", "org.apache.cloudstack.api.command.admin.vm.RecoverVMCmd", recover),
        write("updateVirtualMachine", "org.apache.cloudstack.api.command.user.vm.UpdateVMCmd", update),
        write(
            "changeServiceForVirtualMachine",
            "org.apache.cloudstack.api.command.user.vm.UpgradeVMCmd",
            change_service,
        ),
        read("getVMPassword", "org.apache.cloudstack.api.command.user.vm.GetVMPasswordCmd", get_password),
        read("getVirtualMachineUserData", "org.apache.cloudstack.api.command.user.vm.GetVMUserDataCmd", get_userdata),
    ]
}

fn valid_hostname(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !b[0].is_ascii_digit()
}

fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut r = rand::rng();
    (0..9).map(|_| CHARS[r.random_range(0..CHARS.len())] as char).collect()
}

/// Check base64 user data and its decoded size (2 KB by GET, 32 KB by POST).
pub fn check_userdata(ctx: &Ctx, v: &str) -> SimResult<()> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| SimError::invalid("User data is not base64 encoded"))?;
    if !ctx.post && decoded.len() > 2048 {
        return Err(SimError::invalid("User data is too long for an http GET request"));
    }
    if decoded.len() > 32768 {
        return Err(SimError::invalid("User data is too long for POST request"));
    }
    Ok(())
}

/// The VM named by a uuid parameter, after the access check.
pub fn vm_param(ctx: &Ctx, m: &Model, name: &str) -> SimResult<u64> {
    ctx.owned(m, &m.vms, name)
}

fn vm_result(m: &Model, seq: u64) -> Value {
    match m.vms.get(seq) {
        Some(vm) => single("virtualmachine", vm_json(m, vm, false)),
        None => json!({}),
    }
}

/// A network asked for, with the address asked for on it; `ANY_NETWORK` stands for the network
/// the VM gets when none is named (an `ipaddress` given without `networkids`).
type Requested = Vec<(u64, Option<String>)>;
const ANY_NETWORK: u64 = u64::MAX;

fn deploy(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let p = &ctx.p;
    for r in ["zoneid", "serviceofferingid", "templateid"] {
        p.req(r)?;
    }
    let zone = ctx.need(&m.zones, "zoneid")?;
    let so = ctx.need(&m.service_offerings, "serviceofferingid")?;
    let tpl = ctx.need(&m.templates, "templateid")?;
    let disk = ctx.opt_live(&m.disk_offerings, "diskofferingid")?;
    let (sg_ids, mut requested) = referenced_groups_and_networks(p, m)?;
    let size = p.int("size")?;
    let rootdisksize = p.int("rootdisksize")?;
    let owner = m.owner_for(&ctx.caller, p)?;
    check_zone_and_template(ctx, m, zone, tpl, owner)?;
    let keypair = match p.opt("keypair") {
        Some(name) => match m.keypairs.find(|k| k.owner == owner && k.name == name) {
            Some((_, k)) => Some(k.clone()),
            None => return Err(SimError::invalid(format!("A key pair with name '{name}' was not found."))),
        },
        None => None,
    };
    let sg_ids = security_groups(ctx, m, owner, zone, sg_ids)?;
    check_networks(ctx, m, owner, zone, &mut requested)?;
    let userdata = p.opt("userdata").map(str::to_string);
    if let Some(u) = &userdata {
        check_userdata(ctx, u)?;
    }
    let id = new_uuid();
    let name = vm_name(p, m, owner, zone, &id, &requested)?;
    let displayname = p.opt("displayname").map(str::to_string).unwrap_or_else(|| name.clone());
    let data_size_gb = disk_sizes(m, disk, size, rootdisksize)?;
    if let Some(ip) = p.opt("ipaddress") {
        ip.parse::<std::net::Ipv4Addr>()
            .map_err(|_| SimError::invalid(format!("Invalid format for IPv4 address: {ip}")))?;
    }
    let acct = m.account(owner);
    if acct.vm_limit >= 0 && m.vm_count(owner) + 1 > acct.vm_limit {
        return Err(SimError::allocation(format!(
            "Maximum number of resources of type 'user_vm' for account name={} in domain id={} has been exceeded.",
            acct.name, acct.domain
        )));
    }
    let startvm = p.bool_or("startvm", true);
    let t = m.templates.live(tpl)?;
    let password = t.passwordenabled.then(random_password);
    let encrypted_password = match (&password, &keypair) {
        (Some(pw), Some(k)) => keys::encrypt_password(&k.public_key, pw),
        _ => None,
    };
    let root_size = rootdisksize.map(|g| g << 30).unwrap_or(t.size);
    let hypervisor = t.hypervisor.clone();
    let group = p.opt("group").map(str::to_string);
    let capacity = m.zones.live(zone)?.capacity_vms;
    let nics = place_nics(ctx, m, owner, zone, requested)?;
    let final_state = if startvm { RUNNING } else { STOPPED };
    let vm = Vm {
        id: id.clone(),
        name,
        displayname,
        owner,
        zone,
        template: tpl,
        offering: so,
        state: if startvm { STARTING } else { STOPPED },
        planned: final_state,
        created: ctx.now.clone(),
        password,
        encrypted_password,
        keypair: keypair.map(|k| k.name),
        security_groups: sg_ids,
        userdata,
        nics,
        public_ip: None,
        group,
        haenable: false,
        hypervisor,
        diskoffering: disk,
        tags: Vec::new(),
        expunge_at: None,
    };
    let rows = insert_rows(ctx, m, vm, root_size, data_size_gb);
    let job = DeployJob { vm_id: id.clone(), zone, capacity, rows, startvm, final_state };
    Ok(ctx.create_job("VirtualMachine", id, job.run()))
}

/// `securitygroupids` and `networkids` or `iptonetworklist[i].networkid/ip`
/// (DeployVMCmd.getIpToNetworkMap), looked up: unknown uuids are refused before anything else.
fn referenced_groups_and_networks(p: &Params, m: &Model) -> SimResult<(Vec<u64>, Requested)> {
    let mut sg_ids = Vec::new();
    for v in p.list("securitygroupids") {
        match m.security_groups.lookup(&v) {
            Lookup::Live(s) => sg_ids.push(s),
            _ => return Err(SimError::bad_uuid(&p.cmd, "securitygroupids", &v)),
        }
    }
    let mut requested: Requested = Vec::new();
    for v in p.list("networkids") {
        match m.networks.lookup(&v) {
            Lookup::Live(s) => requested.push((s, None)),
            _ => return Err(SimError::bad_uuid(&p.cmd, "networkids", &v)),
        }
    }
    let ip_map = p.indexed("iptonetworklist");
    if !ip_map.is_empty() {
        if !requested.is_empty() || p.has("ipaddress") {
            return Err(SimError::invalid("ipToNetworkMap can't be specified along with networkIds or ipAddress"));
        }
        for e in &ip_map {
            let v = e.get("networkid").map(String::as_str).unwrap_or_default();
            match m.networks.lookup(v) {
                Lookup::Live(s) => requested.push((s, e.get("ip").filter(|i| !i.is_empty()).cloned())),
                _ => return Err(SimError::bad_uuid(&p.cmd, "iptonetworklist", v)),
            }
        }
    }
    Ok((sg_ids, requested))
}

/// The zone is enabled (or the caller is a root admin), the template usable by the owner and
/// ready in the zone.
fn check_zone_and_template(ctx: &Ctx, m: &Model, zone: u64, tpl: u64, owner: u64) -> SimResult<()> {
    let z = m.zones.live(zone)?;
    if z.allocationstate != "Enabled" && !ctx.caller.is_root_admin() {
        return Err(SimError::permission(format!(
            "Cannot perform this operation, Zone is currently disabled: {}",
            z.id
        )));
    }
    let t = m.templates.live(tpl)?;
    if !(t.owner == owner || t.ispublic || t.shared_with.contains(&owner) || ctx.caller.is_root_admin()) {
        m.check_access(&ctx.caller, t.owner, &format!("Tmpl[{}-{}]", t.id, t.name))?;
    }
    if !t.ready || !t.zones.contains(&zone) {
        return Err(SimError::invalid(format!(
            "Template {} has not been completely downloaded to zone {}",
            t.id, z.id
        )));
    }
    Ok(())
}

/// The VM's security groups: those given by id (the owner's) or by name, else the owner's
/// `default` in a zone with security groups; none in a zone without them.
fn security_groups(ctx: &Ctx, m: &Model, owner: u64, zone: u64, mut sg_ids: Vec<u64>) -> SimResult<Vec<u64>> {
    let sg_names = ctx.p.list("securitygroupnames");
    if !sg_ids.is_empty() && !sg_names.is_empty() {
        return Err(SimError::invalid(
            "securitygroupids parameter is mutually exclusive with securitygroupnames parameter",
        ));
    }
    for s in &sg_ids {
        let g = m.security_groups.live(*s)?;
        m.check_owned(&ctx.caller, g)?;
        if g.owner != owner {
            return Err(SimError::permission(format!("Security group {} does not belong to the VM's account", g.id)));
        }
    }
    for n in &sg_names {
        match m.security_groups.find(|g| g.owner == owner && &g.name == n) {
            Some((s, _)) => sg_ids.push(s),
            None => return Err(SimError::invalid(format!("Unable to find group by name {n}"))),
        }
    }
    let enabled = m.zones.live(zone)?.securitygroupsenabled;
    if !sg_ids.is_empty() && !enabled {
        return Err(SimError::invalid(
            "Can't create vm with security groups; security group feature is not enabled per zone",
        ));
    }
    if sg_ids.is_empty() && enabled {
        sg_ids.extend(m.security_groups.find(|g| g.owner == owner && g.name == "default").map(|(s, _)| s));
    }
    sg_ids.dedup();
    Ok(sg_ids)
}

/// `ipaddress` goes to the first network asked for (`ANY_NETWORK` when none is); each network
/// is shared or the owner's, in the zone, named once, and each address asked for is free on it.
fn check_networks(ctx: &Ctx, m: &Model, owner: u64, zone: u64, requested: &mut Requested) -> SimResult<()> {
    if let Some(ip) = ctx.p.opt("ipaddress") {
        match requested.first_mut() {
            Some(first) => first.1 = Some(ip.to_string()),
            None => requested.push((ANY_NETWORK, Some(ip.to_string()))),
        }
    }
    let z = m.zones.live(zone)?;
    for (i, (net, _)) in requested.iter().enumerate() {
        if *net == ANY_NETWORK {
            continue;
        }
        let n = m.networks.live(*net)?;
        if !n.shared {
            m.check_owned(&ctx.caller, n)?;
            if n.owner != owner {
                return Err(SimError::permission(format!("Network {} does not belong to the VM's account", n.id)));
            }
        }
        if n.zone != zone {
            return Err(SimError::invalid(format!("Network id={} doesn't belong to zone {}", n.id, z.id)));
        }
        if requested[..i].iter().any(|(x, _)| x == net) {
            return Err(SimError::invalid(format!("Network id={} is specified more than once", n.id)));
        }
    }
    for (net, ip) in requested.iter() {
        if let (Some(ip), true) = (ip, *net != ANY_NETWORK) {
            m.check_guest_ip(*net, ip)?;
        }
    }
    Ok(())
}

/// `name` (a valid host name, unique among the owner's VMs in the zone) or `VM-<uuid>`.
fn vm_name(p: &Params, m: &Model, owner: u64, zone: u64, id: &str, requested: &Requested) -> SimResult<String> {
    let Some(n) = p.opt("name") else { return Ok(format!("VM-{id}")) };
    if !valid_hostname(n) {
        return Err(SimError::invalid(
            "Invalid name. Vm name can contain ASCII letters 'a' through 'z', the digits '0' through '9', and the hyphen ('-'), must be between 1 and 63 characters long, and can't start or end with \"-\" and can't start with digit",
        ));
    }
    if m.vms.values().any(|v| v.owner == owner && v.zone == zone && v.name.eq_ignore_ascii_case(n)) {
        let z = m.zones.live(zone)?;
        return Err(SimError::invalid(format!(
            "The vm with hostName {n} already exists in the network domain: cs{}cloud.internal; network={}",
            m.account(owner).id.get(..4).unwrap_or(""),
            requested
                .first()
                .and_then(|(n, _)| m.networks.get(*n))
                .or(z.shared_network.and_then(|n| m.networks.get(n)))
                .map(|n| n.name.as_str())
                .unwrap_or("")
        )));
    }
    Ok(n.to_string())
}

/// The data disk's size in GiB (a custom offering takes `size`), with `rootdisksize` checked.
fn disk_sizes(m: &Model, disk: Option<u64>, size: Option<i64>, rootdisksize: Option<i64>) -> SimResult<Option<i64>> {
    let data_size_gb = match disk.map(|d| m.disk_offerings.live(d).cloned()).transpose()? {
        Some(d) if d.iscustomized => match size {
            Some(s) if (1..=super::volume::MAX_CUSTOM_GB).contains(&s) => Some(s),
            _ => return Err(SimError::invalid(format!("Disk offering {} requires size parameter.", d.id))),
        },
        Some(d) => Some(d.disksize),
        None => None,
    };
    if let Some(r) = rootdisksize
        && !(1..=super::volume::MAX_CUSTOM_GB).contains(&r)
    {
        return Err(SimError::invalid("Root disk size should be a positive number."));
    }
    Ok(data_size_gb)
}

/// The VM's NICs. The networks: those asked for; else the zone's shared network (security
/// groups); else the owner's default isolated network (created when it has none). Each network
/// is implemented; addresses are the ones asked for or the next free ones.
fn place_nics(ctx: &Ctx, m: &mut Model, owner: u64, zone: u64, mut requested: Requested) -> SimResult<Vec<Nic>> {
    let explicit_ip = requested.iter().find(|(n, _)| *n == ANY_NETWORK).and_then(|(_, ip)| ip.clone());
    requested.retain(|(n, _)| *n != ANY_NETWORK);
    if requested.is_empty() {
        let shared = m.zones.live(zone)?.shared_network;
        let net = match shared {
            Some(n) => n,
            None => super::network::default_network(m, owner, zone, &ctx.now)?,
        };
        if let Some(ip) = &explicit_ip {
            m.check_guest_ip(net, ip)?;
        }
        requested.push((net, explicit_ip));
    }
    for (net, _) in &requested {
        super::network::implement(m, *net, &ctx.now)?;
    }
    let mut nics = Vec::new();
    for (i, (net, ip)) in requested.iter().enumerate() {
        let ip = match ip {
            Some(ip) => ip.clone(),
            None => m.next_guest_ip(*net)?,
        };
        let mac = m.next_mac();
        nics.push(Nic {
            id: new_uuid(),
            network: *net,
            ip,
            mac,
            isdefault: i == 0,
            deviceid: i as u32,
            secondary: Vec::new(),
            tags: Vec::new(),
        });
    }
    Ok(nics)
}

/// Where a deployed VM's rows are: the VM, its root volume, its data volume.
struct DeployRows {
    vm: u64,
    root: u64,
    data: Option<u64>,
}

/// The VM's rows, made now: it is listed (Starting, with its jobid) while the job runs.
fn insert_rows(ctx: &Ctx, m: &mut Model, vm: Vm, root_size: i64, data_size_gb: Option<i64>) -> DeployRows {
    let seq = m.next_seq();
    let (owner, zone, disk) = (vm.owner, vm.zone, vm.diskoffering);
    let root = Volume::root(seq, &vm, root_size, "Allocated");
    m.vms.insert(seq, vm);
    let root_seq = m.next_seq();
    m.volumes.insert(root_seq, root);
    let data_seq = data_size_gb.map(|gb| {
        let s = m.next_seq();
        m.volumes.insert(
            s,
            Volume {
                id: new_uuid(),
                name: format!("DATA-{seq}"),
                owner,
                zone,
                kind: "DATADISK",
                vm: Some(seq),
                deviceid: Some(1),
                size: gb << 30,
                state: "Allocated",
                diskoffering: disk,
                serviceoffering: None,
                created: ctx.now.clone(),
                attached: Some(ctx.now.clone()),
                template: None,
                snapshot: None,
                tags: Vec::new(),
            },
        );
        s
    });
    DeployRows { vm: seq, root: root_seq, data: data_seq }
}

/// The deploy job's outcome.
struct DeployJob {
    vm_id: String,
    zone: u64,
    /// VMs the zone holds at most (negative: no limit).
    capacity: i64,
    rows: DeployRows,
    startvm: bool,
    final_state: &'static str,
}

impl DeployJob {
    /// An injected fault, or a zone at capacity, leaves the VM in Error. Else the VM reaches its
    /// state (its volumes Ready when it started) and the result shows the clear password, once.
    fn run(self) -> JobFn {
        let DeployJob { vm_id, zone, capacity, rows, startvm, final_state } = self;
        Box::new(move |m, env| {
            // Counted only for a zone with a limit: a scan of every VM per deploy made each launch
            // slower the more VMs the simulator held (bench/README.md "Session 11").
            let zone_full = || {
                let running_in_zone = m
                    .vms
                    .values()
                    .filter(|v| v.zone == zone && v.state != DESTROYED && v.state != EXPUNGING && v.id != vm_id)
                    .count() as i64;
                running_in_zone >= capacity
            };
            let fail = env.fail.take().or_else(|| {
                (capacity >= 0 && zone_full()).then(|| {
                    SimError::capacity(format!("Unable to create a deployment for VM instance {{\"id\":\"{vm_id}\"}}"))
                })
            });
            let vm = m.vms.in_job_mut(rows.vm)?;
            if let Some(e) = fail {
                vm.state = ERROR;
                vm.planned = ERROR;
                vm.password = None;
                return Err(e);
            }
            if vm.state == STARTING || vm.state == STOPPED {
                vm.state = final_state;
            }
            if startvm {
                for v in [Some(rows.root), rows.data].into_iter().flatten() {
                    if let Some(v) = m.volumes.get_mut(v) {
                        v.state = "Ready";
                    }
                }
            }
            let result = single("virtualmachine", vm_json(m, m.vms.in_job(rows.vm)?, true));
            // The clear password is shown once, in this result.
            if let Some(vm) = m.vms.get_mut(rows.vm) {
                vm.password = None;
            }
            Ok(result)
        })
    }
}

fn list_vms(ctx: &Ctx, m: &Model) -> SimResult<String> {
    let p = &ctx.p;
    let empty = || list::paging(p).map(|_| "{}".to_string());
    let Some(id) = ctx.filter(&m.vms, "id")? else { return empty() };
    let mut ids: Option<std::collections::HashSet<u64>> = None;
    let id_list = p.list("ids");
    if !id_list.is_empty() {
        let mut set = std::collections::HashSet::new();
        for v in &id_list {
            match m.vms.lookup(v) {
                Lookup::Live(s) => {
                    set.insert(s);
                }
                Lookup::Removed => {}
                Lookup::Unknown => return Err(SimError::bad_uuid(&p.cmd, "ids", v)),
            }
        }
        ids = Some(set);
    }
    let Some(zone) = ctx.filter(&m.zones, "zoneid")? else { return empty() };
    let Some(template) = ctx.filter(&m.templates, "templateid")? else { return empty() };
    let Some(offering) = ctx.filter(&m.service_offerings, "serviceofferingid")? else { return empty() };
    let Some(network) = ctx.filter(&m.networks, "networkid")? else { return empty() };
    let Some(vpc) = ctx.filter(&m.vpcs, "vpcid")? else { return empty() };
    let paging = list::paging(p)?;
    let scope = m.scope(&ctx.caller, p)?;
    let name = p.opt("name").map(str::to_lowercase);
    let state = p.opt("state");
    let kw = p.opt("keyword");
    let keypair = p.opt("keypair");
    let group = p.opt("group");
    let tags = p.tags();
    let show_destroyed = ctx.caller.is_admin() || ctx.cfg.settings.allow_user_view_destroyed_vm;
    let items: Vec<&Vm> = m
        .vms
        .iter()
        .filter(|(s, v)| {
            scope.sees(v.owner)
                && id.is_none_or(|i| i == *s)
                && ids.as_ref().is_none_or(|set| set.contains(s))
                && (show_destroyed || (v.state != DESTROYED && v.state != EXPUNGING))
                && match state {
                    None => true,
                    Some(st) if st.eq_ignore_ascii_case("present") => v.state != DESTROYED && v.state != EXPUNGING,
                    Some(st) => v.state.eq_ignore_ascii_case(st),
                }
                && name.as_ref().is_none_or(|n| v.name.to_lowercase().contains(n.as_str()))
                && zone.is_none_or(|z| v.zone == z)
                && template.is_none_or(|t| v.template == t)
                && offering.is_none_or(|o| v.offering == o)
                && network.is_none_or(|n| v.nics.iter().any(|x| x.network == n))
                && vpc.is_none_or(|vp| {
                    v.nics.iter().any(|x| m.networks.get(x.network).is_some_and(|n| n.vpc == Some(vp)))
                })
                && keypair.is_none_or(|k| v.keypair.as_deref() == Some(k))
                && group.is_none_or(|g| v.group.as_deref() == Some(g))
                && keyword_match(kw, &[&v.name, &v.displayname])
                && tags_match(&v.tags, &tags)
        })
        .map(|(_, v)| v)
        .collect();
    // `details=min`: the fields CloudStack sets whatever the details (other subsets are shown
    // in full here).
    let details = p.list("details");
    if !details.is_empty() && details.iter().all(|d| d.eq_ignore_ascii_case("min")) {
        return Ok(list::respond_raw(paging, "virtualmachine", items, |w, v| write_vm_min(w, m, v)));
    }
    Ok(list::respond_raw(paging, "virtualmachine", items, |w, v| write_vm(w, m, v, false)))
}

fn bad_state(verb: &str, vm: &Vm) -> SimError {
    SimError::invalid(format!("Unable to {verb} VM {} as it is in state {}", vm.id, vm.planned))
}

/// Queue a state change: transitional state now (if the VM is idle), final state when the job
/// runs. `allowed` lists the planned states the operation accepts; `noop` those where it is a
/// no-op success.
fn transition(
    ctx: &mut Ctx,
    m: &mut Model,
    verb: &str,
    allowed: &[&str],
    noop: &[&str],
    transitional: &'static str,
    done: &'static str,
) -> SimResult<Reply> {
    let seq = vm_param(ctx, m, "id")?;
    let vm = m.vms.live(seq)?;
    let id = vm.id.clone();
    let is_noop = noop.contains(&vm.planned);
    if !is_noop && !allowed.contains(&vm.planned) {
        return Err(bad_state(verb, vm));
    }
    let idle = m.pending_job(&id).is_none();
    let vm = m.vms.live_mut(seq)?;
    if !is_noop {
        if idle {
            vm.state = transitional;
        }
        vm.planned = done;
    }
    let verb = verb.to_string();
    Ok(ctx.object_job(
        "VirtualMachine",
        id,
        Box::new(move |m, env| {
            let vm = m.vms.in_job_mut(seq)?;
            if is_noop {
                return Ok(vm_result(m, seq));
            }
            env.injected(|| {
                // Back to where it was before the transition.
                let before = if done == RUNNING && verb == "reboot" {
                    RUNNING
                } else if done == RUNNING {
                    STOPPED
                } else {
                    RUNNING
                };
                vm.state = before;
                vm.planned = before;
            })?;
            if vm.state == DESTROYED || vm.state == EXPUNGING {
                return Err(SimError::internal(format!("Failed to {verb} VM: it is {}", vm.state)));
            }
            vm.state = done;
            if done == RUNNING {
                for v in m.volumes.values_mut().filter(|v| v.vm == Some(seq) && v.state == "Allocated") {
                    v.state = "Ready";
                }
            }
            Ok(vm_result(m, seq))
        }),
    ))
}

fn start(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    transition(ctx, m, "start", &[STOPPED, ERROR], &[RUNNING], STARTING, RUNNING)
}

fn stop(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    // `forced` changes nothing observable here.
    let _ = ctx.p.flag("forced");
    transition(ctx, m, "stop", &[RUNNING, ERROR], &[STOPPED], STOPPING, STOPPED)
}

fn reboot(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let seq = vm_param(ctx, m, "id")?;
    let vm = m.vms.live(seq)?;
    if vm.planned != RUNNING {
        return Err(SimError::invalid(format!("Unable to reboot VM {} as it is not in Running state", vm.id)));
    }
    // A reboot is Running before and after; the job is what clients wait on.
    transition(ctx, m, "reboot", &[RUNNING], &[], RUNNING, RUNNING)
}

/// Remove a VM for good: ROOT volumes go, data volumes are detached, static NAT is released.
pub fn expunge_now(m: &mut Model, seq: u64) {
    let Some(vm) = m.vms.get(seq) else { return };
    let id = vm.id.clone();
    let roots: Vec<u64> =
        m.volumes.iter().filter(|(_, v)| v.vm == Some(seq) && v.kind == "ROOT").map(|(s, _)| s).collect();
    for r in roots {
        m.volumes.remove(r);
    }
    for v in m.volumes.values_mut().filter(|v| v.vm == Some(seq)) {
        v.vm = None;
        v.deviceid = None;
        v.attached = None;
    }
    for ip in m.public_ips.values_mut().filter(|i| i.vm == Some(seq)) {
        ip.vm = None;
        ip.vm_guest_ip = None;
    }
    // Its port forwarding rules go with it.
    m.remove_rules(|r| r.vm == Some(seq));
    m.busy.remove(&id);
    m.vms.remove(seq);
}

/// Destroyed -> (delay) Expunging -> (short) gone, unless recovered meanwhile.
fn expunge_timer(seq: u64, token: u64, delay: Duration, step: Duration) -> Timer {
    Timer {
        delay,
        run: Box::new(move |m, next| {
            let Some(vm) = m.vms.get_mut(seq) else { return };
            if vm.expunge_at != Some(token) || vm.state != DESTROYED {
                return;
            }
            vm.state = EXPUNGING;
            vm.planned = EXPUNGING;
            next.push(Timer { delay: step, run: Box::new(move |m, _| expunge_now(m, seq)) });
        }),
    }
}

fn may_expunge(ctx: &Ctx) -> bool {
    ctx.caller.is_admin() || ctx.cfg.settings.allow_user_expunge
}

fn destroy(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let seq = vm_param(ctx, m, "id")?;
    let expunge = ctx.p.flag("expunge");
    if expunge && !may_expunge(ctx) {
        return Err(SimError::permission(
            "Parameter expunge can be passed by Admin only. Or when the allow.user.expunge.recover.vm key is set.",
        ));
    }
    let mut data_volumes = Vec::new();
    for v in ctx.p.list("volumeids") {
        match m.volumes.lookup(&v) {
            Lookup::Live(s) => {
                let vol = m.volumes.live(s)?;
                if vol.vm != Some(seq) || vol.kind != "DATADISK" {
                    return Err(SimError::invalid(format!(
                        "Please specify volumes that are attached to the VM as data disks: {v}"
                    )));
                }
                data_volumes.push(s);
            }
            _ => return Err(SimError::bad_uuid(&ctx.p.cmd, "volumeids", &v)),
        }
    }
    let vm = m.vms.live(seq)?;
    if vm.planned == DESTROYED || vm.planned == EXPUNGING {
        if expunge {
            // Already destroyed: expunge is what is left to do.
        } else {
            return Err(SimError::invalid(format!("Unable to destroy VM {} as it is in state {}", vm.id, vm.planned)));
        }
    }
    let id = vm.id.clone();
    let vm = m.vms.live_mut(seq)?;
    let before = vm.planned;
    vm.planned = if expunge { EXPUNGING } else { DESTROYED };
    let token: u64 = rand::random();
    let delay = ctx.cfg.expunge_delay();
    let step = ctx.cfg.job_delay("expungeVirtualMachine");
    Ok(ctx.object_job(
        "VirtualMachine",
        id,
        Box::new(move |m, env| {
            let vm = m.vms.in_job_mut(seq)?;
            env.injected(|| vm.planned = before)?;
            vm.state = if expunge { EXPUNGING } else { DESTROYED };
            vm.planned = vm.state;
            vm.expunge_at = Some(token);
            // Static NAT ends with the VM (a VPC address leaves its tier too).
            let nat: Vec<u64> = m.public_ips.iter().filter(|(_, i)| i.vm == Some(seq)).map(|(s, _)| s).collect();
            for ip in nat {
                super::ip::release_nat_pub(m, ip);
            }
            if let Some(vm) = m.vms.get_mut(seq) {
                vm.public_ip = None;
            }
            for v in m.volumes.values_mut().filter(|v| v.vm == Some(seq) && v.kind == "ROOT") {
                v.state = "Destroy";
            }
            for d in &data_volumes {
                m.volumes.remove(*d);
            }
            let result = vm_result(m, seq);
            if expunge {
                env.timers.push(Timer { delay: step, run: Box::new(move |m, _| expunge_now(m, seq)) });
            } else {
                env.timers.push(expunge_timer(seq, token, delay, step));
            }
            Ok(result)
        }),
    ))
}

fn expunge(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    if !may_expunge(ctx) {
        return Err(SimError::not_available("expungeVirtualMachine"));
    }
    let seq = vm_param(ctx, m, "id")?;
    let vm = m.vms.live(seq)?;
    if vm.planned != DESTROYED {
        return Err(SimError::invalid(format!(
            "Please specify a VM that is in Destroyed state; VM {} is {}",
            vm.id, vm.planned
        )));
    }
    let id = vm.id.clone();
    m.vms.live_mut(seq)?.planned = EXPUNGING;
    Ok(ctx.object_job(
        "VirtualMachine",
        id,
        Box::new(move |m, env| {
            let vm = m.vms.in_job_mut(seq)?;
            env.injected(|| vm.planned = DESTROYED)?;
            expunge_now(m, seq);
            Ok(super::success())
        }),
    ))
}

fn recover(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    if !may_expunge(ctx) {
        return Err(SimError::not_available("recoverVirtualMachine"));
    }
    let seq = vm_param(ctx, m, "id")?;
    let vm = m.vms.live(seq)?;
    if vm.state != DESTROYED || m.pending_job(&vm.id).is_some() {
        return Err(SimError::invalid(format!("Unable to recover VM {} as it is not in Destroyed state", vm.id)));
    }
    let vm = m.vms.live_mut(seq)?;
    vm.state = STOPPED;
    vm.planned = STOPPED;
    vm.expunge_at = None;
    for v in m.volumes.values_mut().filter(|v| v.vm == Some(seq) && v.kind == "ROOT") {
        v.state = "Ready";
    }
    Ok(Reply::Value(vm_result(m, seq)))
}

fn update(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let seq = vm_param(ctx, m, "id")?;
    if let Some(u) = ctx.p.opt("userdata") {
        check_userdata(ctx, u)?;
    }
    let name = ctx.p.opt("name");
    if let Some(n) = name {
        let vm = m.vms.live(seq)?;
        if !valid_hostname(n) {
            return Err(SimError::invalid(
                "Invalid name. Vm name can contain ASCII letters 'a' through 'z', the digits '0' through '9', and the hyphen ('-'), must be between 1 and 63 characters long, and can't start or end with \"-\" and can't start with digit",
            ));
        }
        if vm.planned != STOPPED && n != vm.name {
            return Err(SimError::invalid("Vm has to be stopped to change its name"));
        }
    }
    let haenable = ctx.p.opt_bool("haenable");
    let vm = m.vms.live_mut(seq)?;
    if let Some(d) = ctx.p.opt("displayname") {
        vm.displayname = d.to_string();
    }
    if let Some(u) = ctx.p.opt("userdata") {
        vm.userdata = Some(u.trim().to_string());
    }
    if let Some(g) = ctx.p.opt("group") {
        vm.group = Some(g.to_string());
    }
    if let Some(h) = haenable {
        vm.haenable = h;
    }
    if let Some(n) = name {
        vm.name = n.to_string();
    }
    Ok(Reply::Value(vm_result(m, seq)))
}

fn change_service(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("id")?;
    ctx.p.req("serviceofferingid")?;
    let seq = vm_param(ctx, m, "id")?;
    let so = ctx.need(&m.service_offerings, "serviceofferingid")?;
    let vm = m.vms.live(seq)?;
    if vm.state != STOPPED || vm.planned != STOPPED {
        return Err(SimError::invalid(format!(
            "Unable to upgrade virtual machine {} in state {}; make sure the virtual machine is stopped",
            vm.id, vm.state
        )));
    }
    if vm.offering == so {
        let name = &m.service_offerings.live(so)?.name;
        return Err(SimError::invalid(format!(
            "Not upgrading vm {} since it already has the requested service offering ({name})",
            vm.id
        )));
    }
    m.vms.live_mut(seq)?.offering = so;
    for v in m.volumes.values_mut().filter(|v| v.vm == Some(seq) && v.kind == "ROOT") {
        v.serviceoffering = Some(so);
    }
    Ok(Reply::Value(vm_result(m, seq)))
}

fn get_password(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let vm = m.vms.live(vm_param(ctx, m, "id")?)?;
    match &vm.encrypted_password {
        Some(enc) => Ok(single("password", json!({"encryptedpassword": enc}))),
        None => Err(SimError::invalid(format!("No password for Instance with ID '{}' found.", vm.id))),
    }
}

fn get_userdata(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let vm = m.vms.live(vm_param(ctx, m, "virtualmachineid")?)?;
    Ok(single(
        "virtualmachineuserdata",
        Obj::new().set("virtualmachineid", vm.id.clone()).opt("userdata", vm.userdata.clone()).done(),
    ))
}
