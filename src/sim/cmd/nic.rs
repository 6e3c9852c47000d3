//! VM NICs and secondary IPs: listNics, addNicToVirtualMachine, removeNicFromVirtualMachine,
//! updateDefaultNicForVirtualMachine, updateVmNicIp, addIpToNic, removeIpFromNic. Rules and
//! texts follow UserVmManagerImpl (addNicToVirtualMachine, removeNicFromVirtualMachine,
//! updateDefaultNicForVirtualMachine, updateNicIpForVirtualMachine) and NicSecondaryIpService.

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::vm_state::*;
use super::super::model::*;
use super::super::render::*;
use super::super::seed::new_uuid;
use super::network::net_str;
use super::vm::vm_param;
use super::{CmdSpec, Ctx, Reply, create, job, read, single, success};

/// Secondary addresses per NIC (CloudStack's `vm.network.nic.max.secondary.ipaddresses`).
const MAX_SECONDARY: usize = 10;

pub fn commands() -> Vec<CmdSpec> {
    vec![
        read("listNics", "org.apache.cloudstack.api.command.user.vm.ListNicsCmd", list_nics),
        job("addNicToVirtualMachine", "org.apache.cloudstack.api.command.user.vm.AddNicToVMCmd", add_nic),
        job("removeNicFromVirtualMachine", "org.apache.cloudstack.api.command.user.vm.RemoveNicFromVMCmd", remove_nic),
        job(
            "updateDefaultNicForVirtualMachine",
            "org.apache.cloudstack.api.command.user.vm.UpdateDefaultNicForVMCmd",
            update_default,
        ),
        job("updateVmNicIp", "org.apache.cloudstack.api.command.user.vm.UpdateVmNicIpCmd", update_ip),
        create("addIpToNic", "org.apache.cloudstack.api.command.user.vm.AddIpToVmNicCmd", add_ip),
        job("removeIpFromNic", "org.apache.cloudstack.api.command.user.vm.RemoveIpFromVmNicCmd", remove_ip),
    ]
}

/// A NIC by uuid: (VM seq, index in its `nics`).
fn find_nic(m: &Model, uuid: &str) -> Option<(u64, usize)> {
    m.vms.iter().find_map(|(s, v)| v.nics.iter().position(|n| n.id == uuid).map(|i| (s, i)))
}

/// A NIC parameter the caller may act on.
fn nic_param(ctx: &Ctx, m: &Model, name: &str) -> SimResult<(u64, usize)> {
    let v = ctx.p.req(name)?;
    let (vm, i) = find_nic(m, v).ok_or_else(|| SimError::bad_uuid(&ctx.p.cmd, name, v))?;
    m.check_owned(&ctx.caller, m.vms.live(vm)?)?;
    Ok((vm, i))
}

fn nic_str(n: &Nic, vm: &Vm) -> String {
    format!("Nic[{}-{}-{}]", n.id, vm.id, n.ip)
}

fn vm_result(m: &Model, vm: u64) -> SimResult<Value> {
    Ok(single("virtualmachine", vm_json(m, m.vms.in_job(vm)?, false)))
}

fn list_nics(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    p.req("virtualmachineid")?;
    let vm = vm_param(ctx, m, "virtualmachineid")?;
    let Some(network) = ctx.filter(&m.networks, "networkid")? else {
        return list::list(p, "nic", Vec::<()>::new(), |_| json!({}));
    };
    let nicid = p.opt("nicid");
    let v = m.vms.live(vm)?;
    let items: Vec<&Nic> =
        v.nics.iter().filter(|n| nicid.is_none_or(|x| n.id == x) && network.is_none_or(|x| n.network == x)).collect();
    list::list(p, "nic", items, |n| nic_json(m, n, v))
}

fn add_nic(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("virtualmachineid")?;
    ctx.p.req("networkid")?;
    let vm = vm_param(ctx, m, "virtualmachineid")?;
    let net = ctx.need(&m.networks, "networkid")?;
    let v = m.vms.live(vm)?;
    let n = m.networks.live(net)?;
    if !ctx.caller.is_root_admin() && !n.shared && n.owner != v.owner {
        return Err(SimError::invalid(format!(
            "only shared network or isolated network with the same account_id can be added to vmId: {}",
            v.id
        )));
    }
    if v.nics.iter().any(|x| x.network == net) {
        return Err(SimError::internal(format!("A NIC already exists for VM:{} in network: {}", v.name, n.id)));
    }
    if n.zone != v.zone {
        return Err(SimError::invalid(format!("Network {} is not in the zone of VM {}", n.id, v.id)));
    }
    let ip = match ctx.p.opt("ipaddress") {
        Some(ip) => {
            ip.parse::<std::net::Ipv4Addr>()
                .map_err(|_| SimError::invalid(format!("Invalid format for IP address parameter: {ip}")))?;
            Some(m.check_guest_ip(net, ip)?)
        }
        None => None,
    };
    let id = v.id.clone();
    let now = ctx.now.clone();
    Ok(ctx.object_job(
        "VirtualMachine",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let v = m.vms.in_job(vm)?;
            if v.state != RUNNING && v.state != STOPPED {
                return Err(SimError::internal(format!(
                    "Unable to add NIC to {}: Unable to add vm {} to network, is not in the right state",
                    v.what(),
                    v.what()
                )));
            }
            super::network::implement(m, net, &now)?;
            let ip = match ip {
                Some(ip) => m.check_guest_ip(net, &ip).map_err(|e| SimError::internal(e.text))?,
                None => m.next_guest_ip(net)?,
            };
            let mac = m.next_mac();
            let v = m.vms.in_job_mut(vm)?;
            let deviceid = v.nics.iter().map(|n| n.deviceid + 1).max().unwrap_or(0);
            let isdefault = !v.nics.iter().any(|n| n.isdefault);
            v.nics.push(Nic { id: new_uuid(), network: net, ip, mac, isdefault, deviceid, secondary: Vec::new() });
            vm_result(m, vm)
        }),
    ))
}

fn remove_nic(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("virtualmachineid")?;
    ctx.p.req("nicid")?;
    let vm = vm_param(ctx, m, "virtualmachineid")?;
    let v = m.vms.live(vm)?;
    let nic_id = ctx.p.opt("nicid").unwrap_or_default().to_string();
    let Some((owner_vm, i)) = find_nic(m, &nic_id) else {
        return Err(SimError::bad_uuid(&ctx.p.cmd, "nicid", &nic_id));
    };
    let on = m.vms.live(owner_vm)?;
    let nic = &on.nics[i];
    if owner_vm != vm {
        return Err(SimError::invalid(format!("{} is not a nic on {}", nic_str(nic, on), v.what())));
    }
    let n = m.networks.live(nic.network)?;
    let net_text = net_str(nic.network, n);
    if nic.isdefault {
        return Err(SimError::invalid(format!(
            "Unable to remove nic from {} in {net_text}, nic is default.",
            v.what()
        )));
    }
    let nat = v.public_ip.and_then(|p| m.public_ips.get(p)).is_some_and(|p| p.network == Some(nic.network));
    if nat {
        return Err(SimError::invalid(format!(
            "Unable to remove nic from {} in {net_text}, nic has associated Port forwarding or Load balancer or Static NAT rules.",
            v.what()
        )));
    }
    let id = v.id.clone();
    Ok(ctx.object_job(
        "VirtualMachine",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let v = m.vms.in_job_mut(vm)?;
            if v.state != RUNNING && v.state != STOPPED {
                return Err(SimError::internal(format!("Unable to remove {net_text} from {}", v.what())));
            }
            v.nics.retain(|n| n.id != nic_id);
            vm_result(m, vm)
        }),
    ))
}

fn update_default(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    ctx.p.req("virtualmachineid")?;
    ctx.p.req("nicid")?;
    let vm = vm_param(ctx, m, "virtualmachineid")?;
    let nic_id = ctx.p.opt("nicid").unwrap_or_default().to_string();
    let Some((owner_vm, i)) = find_nic(m, &nic_id) else {
        return Err(SimError::bad_uuid(&ctx.p.cmd, "nicid", &nic_id));
    };
    let v = m.vms.live(vm)?;
    if owner_vm != vm {
        let on = m.vms.live(owner_vm)?;
        return Err(SimError::invalid(format!("{} is not a nic on  {}", nic_str(&on.nics[i], on), v.what())));
    }
    let id = v.id.clone();
    Ok(ctx.object_job(
        "VirtualMachine",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let v = m.vms.in_job_mut(vm)?;
            let Some(i) = v.nics.iter().position(|n| n.id == nic_id) else {
                return Err(SimError::internal(format!("Unable to find a nic with id {nic_id}")));
            };
            if v.nics[i].isdefault {
                return Err(SimError::internal(
                    "refusing to set default nic because chosen nic is already the default",
                ));
            }
            if v.state != RUNNING && v.state != STOPPED {
                return Err(SimError::internal(format!(
                    "refusing to set default {} is not Running or Stopped",
                    v.what()
                )));
            }
            // The two NICs swap the default flag and their device ids.
            if let Some(old) = v.nics.iter().position(|n| n.isdefault) {
                let (a, b) = (v.nics[old].deviceid, v.nics[i].deviceid);
                v.nics[old].isdefault = false;
                v.nics[old].deviceid = b;
                v.nics[i].deviceid = a;
            }
            v.nics[i].isdefault = true;
            v.nics.sort_by_key(|n| n.deviceid);
            vm_result(m, vm)
        }),
    ))
}

fn update_ip(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let (vm, i) = nic_param(ctx, m, "nicid")?;
    let v = m.vms.live(vm)?;
    let nic = v.nics[i].clone();
    if v.planned != STOPPED {
        return Err(SimError::invalid("VM is not Stopped, unable to update the vm nic having the specified id")
            .with_uuid(v.id.clone()));
    }
    let ip = match ctx.p.opt("ipaddress") {
        Some(ip) => m.check_guest_ip(nic.network, ip)?,
        None => String::new(),
    };
    let id = v.id.clone();
    Ok(ctx.object_job(
        "VirtualMachine",
        id,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let ip = if ip.is_empty() { m.next_guest_ip(nic.network)? } else { ip };
            let v = m.vms.in_job_mut(vm)?;
            if let Some(n) = v.nics.iter_mut().find(|n| n.id == nic.id) {
                n.ip = ip;
            }
            vm_result(m, vm)
        }),
    ))
}

fn secondary_json(m: &Model, vm: &Vm, nic: &Nic, ip: &SecondaryIp) -> Value {
    Obj::new()
        .set("id", ip.id.clone())
        .set("ipaddress", ip.ip.clone())
        .set("nicid", nic.id.clone())
        .opt("networkid", m.networks.get(nic.network).map(|n| n.id.clone()))
        .set("virtualmachineid", vm.id.clone())
        .done()
}

fn add_ip(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let (vm, i) = nic_param(ctx, m, "nicid")?;
    let nic = m.vms.live(vm)?.nics[i].clone();
    if nic.secondary.len() >= MAX_SECONDARY {
        return Err(SimError::invalid(format!(
            "Number of secondary ips on nic {} exceeds the limit of {MAX_SECONDARY}",
            nic.id
        )));
    }
    let ip = match ctx.p.opt("ipaddress") {
        Some(ip) => m.check_guest_ip(nic.network, ip)?,
        None => m.next_guest_ip(nic.network)?,
    };
    let sid = new_uuid();
    // The address is reserved at once, so two requests never get the same one.
    if let Some(n) = m.vms.live_mut(vm)?.nics.iter_mut().find(|n| n.id == nic.id) {
        n.secondary.push(SecondaryIp { id: sid.clone(), ip });
    }
    let nic_id = nic.id.clone();
    let sid2 = sid.clone();
    Ok(ctx.create_job(
        "Nic",
        sid,
        Box::new(move |m, env| {
            env.injected(|| {
                if let Some(v) = m.vms.get_mut(vm) {
                    for n in &mut v.nics {
                        n.secondary.retain(|s| s.id != sid2);
                    }
                }
            })?;
            let v = m.vms.in_job(vm)?;
            let n = v.nics.iter().find(|n| n.id == nic_id).ok_or_else(|| SimError::internal("NIC removed"))?;
            let ip = n.secondary.iter().find(|s| s.id == sid2).ok_or_else(|| SimError::internal("IP removed"))?;
            Ok(single("nicsecondaryip", secondary_json(m, v, n, ip)))
        }),
    ))
}

fn remove_ip(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let id = ctx.p.req("id")?.to_string();
    let found = m.vms.iter().find_map(|(s, v)| {
        v.nics.iter().find_map(|n| n.secondary.iter().find(|x| x.id == id).map(|x| (s, n.id.clone(), x.ip.clone())))
    });
    let Some((vm, nic_id, ip)) = found else {
        return Err(SimError::bad_uuid(&ctx.p.cmd, "id", &id));
    };
    let v = m.vms.live(vm)?;
    m.check_owned(&ctx.caller, v)?;
    if m.public_ips.values().any(|p| p.vm == Some(vm) && p.vm_guest_ip.as_deref() == Some(ip.as_str())) {
        return Err(SimError::invalid(format!(
            "Can't remove the secondary ip {ip} as it is associated with a static NAT rule"
        )));
    }
    let vid = v.id.clone();
    Ok(ctx.object_job(
        "VirtualMachine",
        vid,
        Box::new(move |m, env| {
            env.injected(|| ())?;
            let v = m.vms.in_job_mut(vm)?;
            if let Some(n) = v.nics.iter_mut().find(|n| n.id == nic_id) {
                n.secondary.retain(|s| s.id != id);
            }
            Ok(success())
        }),
    ))
}
