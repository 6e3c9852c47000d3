//! JSON of each object as CloudStack lists it (docs/cloudstack-wire.md "Objects"): absent values left out,
//! dates `yyyy-MM-dd'T'HH:mm:ssZ`, sizes in bytes (volumes, templates), GB (disk offerings),
//! MB (memory), booleans and numbers as JSON literals.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::model::*;

pub fn fmt_date(t: OffsetDateTime) -> String {
    crate::base::util::cloudstack_date(t)
}

pub fn now_str() -> String {
    fmt_date(OffsetDateTime::now_utc())
}

/// A JSON object builder that skips `None`.
#[derive(Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Self {
        Obj(Map::new())
    }
    pub fn set(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.0.insert(k.to_string(), v.into());
        self
    }
    pub fn opt<V: Into<Value>>(mut self, k: &str, v: Option<V>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.to_string(), v.into());
        }
        self
    }
    pub fn done(self) -> Value {
        Value::Object(self.0)
    }
}

pub fn owner_fields(m: &Model, o: Obj, owner: u64) -> Obj {
    let a = m.account(owner);
    let d = m.domain(a.domain);
    o.set("account", a.name.clone()).set("domainid", d.id.clone()).set("domain", d.name.clone())
}

pub fn tag_json(m: &Model, rtype: &str, rid: &str, owner: u64, t: &Tag) -> Value {
    let o = Obj::new()
        .set("key", t.key.clone())
        .set("value", t.value.clone())
        .set("resourcetype", rtype)
        .set("resourceid", rid);
    owner_fields(m, o, owner).opt("customer", t.customer.clone()).done()
}

pub fn tags_json(m: &Model, rtype: &str, rid: &str, owner: u64, tags: &[Tag]) -> Value {
    Value::Array(tags.iter().map(|t| tag_json(m, rtype, rid, owner, t)).collect())
}

pub fn pending(m: &Model, o: Obj, uuid: &str) -> Obj {
    match m.pending_job(uuid) {
        Some(j) => o.set("jobid", j).set("jobstatus", 0),
        None => o,
    }
}

pub fn zone_json(z: &Zone) -> Value {
    Obj::new()
        .set("id", z.id.clone())
        .set("name", z.name.clone())
        .set("description", z.description.clone())
        .set("dns1", z.dns1.clone())
        .set("internaldns1", z.internaldns1.clone())
        .set("networktype", z.networktype.clone())
        .set("securitygroupsenabled", z.securitygroupsenabled)
        .set("allocationstate", z.allocationstate.clone())
        .set("zonetoken", format!("{}-token", z.id.chars().take(8).collect::<String>()))
        .set("dhcpprovider", "VirtualRouter")
        .set("localstorageenabled", z.localstorageenabled)
        .opt("guestcidraddress", (!z.securitygroupsenabled).then(|| z.guest_cidr.to_string()))
        .set("tags", json!([]))
        .done()
}

pub fn ostype_json(o: &OsType) -> Value {
    json!({"id": o.id, "description": o.description, "oscategoryid": o.category_id, "oscategoryname": o.category_name, "isuserdefined": false})
}

pub fn service_offering_json(s: &ServiceOffering) -> Value {
    json!({
        "id": s.id, "name": s.name, "displaytext": s.displaytext, "cpunumber": s.cpunumber,
        "cpuspeed": s.cpuspeed, "memory": s.memory, "created": s.created, "storagetype": s.storagetype,
        "offerha": s.offerha, "limitcpuuse": false, "isvolatile": false, "issystem": false,
        "defaultuse": false, "iscustomized": false, "provisioningtype": "thin"
    })
}

pub fn disk_offering_json(d: &DiskOffering) -> Value {
    json!({
        "id": d.id, "name": d.name, "displaytext": d.displaytext, "disksize": d.disksize,
        "iscustomized": d.iscustomized, "storagetype": d.storagetype, "created": d.created,
        "provisioningtype": "thin", "displayoffering": true
    })
}

pub fn template_json(m: &Model, t: &Template, zone: Option<u64>, show_status: bool) -> Value {
    let ost = m.os_types.get(t.ostype);
    let mut o = Obj::new()
        .set("id", t.id.clone())
        .set("name", t.name.clone())
        .set("displaytext", t.displaytext.clone())
        .set("ispublic", t.ispublic)
        .set("isfeatured", t.isfeatured)
        .set("isready", t.ready)
        .set("passwordenabled", t.passwordenabled)
        .set("sshkeyenabled", t.sshkeyenabled)
        .set("isdynamicallyscalable", t.isdynamicallyscalable)
        .set("format", t.format.clone())
        .opt("ostypeid", ost.map(|o| o.id.clone()))
        .opt("ostypename", ost.map(|o| o.description.clone()))
        .set("accountid", m.account(t.owner).id.clone())
        .set("size", t.size)
        .set("templatetype", t.templatetype.clone())
        .set("hypervisor", t.hypervisor.clone())
        .set("created", t.created.clone())
        .set("crossZones", t.cross_zones)
        .set("isextractable", t.isextractable)
        .set("bootable", t.bootable)
        .opt("checksum", t.checksum.clone())
        .opt("sourcetemplateid", t.source_template.clone());
    o = owner_fields(m, o, t.owner);
    if let Some(z) = zone.and_then(|z| m.zones.get(z)) {
        o = o.set("zoneid", z.id.clone()).set("zonename", z.name.clone());
    }
    if show_status {
        o = o.set("status", t.status.clone());
    }
    o = o.set("tags", tags_json(m, "Template", &t.id, t.owner, &t.tags));
    pending(m, o, &t.id).done()
}

/// A small JSON writer for the hot list path (10,000 VMs): no intermediate `Value` tree.
pub struct JsonWriter {
    pub out: String,
    /// Per open object/array: has it a member yet?
    first: Vec<bool>,
}

impl Default for JsonWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonWriter {
    pub fn new() -> Self {
        JsonWriter { out: String::with_capacity(4096), first: Vec::new() }
    }
    fn sep(&mut self) {
        if let Some(f) = self.first.last_mut() {
            if *f {
                *f = false;
            } else {
                self.out.push(',');
            }
        }
    }
    fn string(&mut self, v: &str) {
        self.out.push('"');
        // Fast path: nothing to escape (ids, names, dates).
        if !v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            self.out.push_str(v);
            self.out.push('"');
            return;
        }
        for c in v.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
    fn key(&mut self, k: &str) {
        self.sep();
        self.string(k);
        self.out.push(':');
    }
    pub fn begin_obj(&mut self) {
        self.sep();
        self.out.push('{');
        self.first.push(true);
    }
    pub fn end_obj(&mut self) {
        self.first.pop();
        self.out.push('}');
    }
    pub fn begin_arr_at(&mut self, k: &str) {
        self.key(k);
        self.out.push('[');
        self.first.push(true);
    }
    pub fn end_arr(&mut self) {
        self.first.pop();
        self.out.push(']');
    }
    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.string(v);
    }
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }
    pub fn num(&mut self, k: &str, v: i64) {
        self.key(k);
        self.out.push_str(&v.to_string());
    }
    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
    }
    /// A value already serialized.
    pub fn raw(&mut self, k: &str, json: &str) {
        self.key(k);
        self.out.push_str(json);
    }
}

fn write_tags(w: &mut JsonWriter, m: &Model, rtype: &str, rid: &str, owner: u64, tags: &[Tag]) {
    w.begin_arr_at("tags");
    if !tags.is_empty() {
        let a = m.account(owner);
        let d = m.domain(a.domain);
        for t in tags {
            w.begin_obj();
            w.str("key", &t.key);
            w.str("value", &t.value);
            w.str("resourcetype", rtype);
            w.str("resourceid", rid);
            w.str("account", &a.name);
            w.str("domainid", &d.id);
            w.str("domain", &d.name);
            w.opt_str("customer", t.customer.as_deref());
            w.end_obj();
        }
    }
    w.end_arr();
}

/// Append one VM object to `w` (the one renderer of a VM; `vm_json` parses its output).
pub fn write_vm(w: &mut JsonWriter, m: &Model, vm: &Vm, with_password: bool) {
    write_vm_as(w, m, vm, with_password, true)
}

/// A VM as listVirtualMachines `details=min` shows it: what CloudStack sets whatever the
/// details asked for (id, names, owner, state, zone, OS, hypervisor, key pair, public address,
/// tags, the pending job), without the template, offerings, statistics, security groups, NICs,
/// affinity groups and root device.
pub fn write_vm_min(w: &mut JsonWriter, m: &Model, vm: &Vm) {
    write_vm_as(w, m, vm, false, false)
}

fn write_vm_as(w: &mut JsonWriter, m: &Model, vm: &Vm, with_password: bool, full: bool) {
    let z = m.zones.get(vm.zone);
    let t = m.templates.get(vm.template);
    let so = m.service_offerings.get(vm.offering);
    let os = t.and_then(|t| m.os_types.get(t.ostype));
    let a = m.account(vm.owner);
    let d = m.domain(a.domain);
    w.begin_obj();
    w.str("id", &vm.id);
    w.str("name", &vm.name);
    w.str("displayname", &vm.displayname);
    w.str("account", &a.name);
    w.str("domainid", &d.id);
    w.str("domain", &d.name);
    w.str("created", &vm.created);
    w.str("state", vm.state);
    w.bool("haenable", vm.haenable);
    if full && let Some(g) = &vm.group {
        w.str("groupid", &format!("group-{}", vm.id.chars().take(8).collect::<String>()));
        w.str("group", g);
    }
    if let Some(z) = z {
        w.str("zoneid", &z.id);
        w.str("zonename", &z.name);
    }
    if full {
        if let Some(t) = t {
            w.str("templateid", &t.id);
            w.str("templatename", &t.name);
            w.str("templatedisplaytext", &t.displaytext);
        }
        w.bool("passwordenabled", t.is_some_and(|t| t.passwordenabled));
        if with_password {
            w.opt_str("password", vm.password.as_deref());
        }
        if let Some(so) = so {
            w.str("serviceofferingid", &so.id);
            w.str("serviceofferingname", &so.name);
            w.num("cpunumber", so.cpunumber);
            w.num("cpuspeed", so.cpuspeed);
            w.num("memory", so.memory);
        }
        w.str("cpuused", if vm.state == vm_state::RUNNING { "1.78%" } else { "0%" });
        w.num("networkkbsread", 0);
        w.num("networkkbswrite", 0);
        w.num("diskkbsread", 0);
        w.num("diskkbswrite", 0);
    }
    if let Some(os) = os {
        w.str("guestosid", &os.id);
        w.str("ostypeid", &os.id);
        // CloudStack 4.13.2 and later name the OS too.
        w.str("osdisplayname", &os.description);
    }
    if full {
        w.num("rootdeviceid", 0);
        w.str("rootdevicetype", "ROOT");
    }
    w.str("hypervisor", &vm.hypervisor);
    // 4.4 clients read `keypair`, modern ones `keypairs`.
    w.opt_str("keypair", vm.keypair.as_deref());
    w.opt_str("keypairs", vm.keypair.as_deref());
    w.bool("displayvm", true);
    w.bool("isdynamicallyscalable", t.is_some_and(|t| t.isdynamicallyscalable));
    if full && let Some(dof) = vm.diskoffering.and_then(|d| m.disk_offerings.get(d)) {
        w.str("diskofferingid", &dof.id);
        w.str("diskofferingname", &dof.name);
    }
    if let Some(ip) = vm.public_ip.and_then(|i| m.public_ips.get(i)) {
        w.str("publicip", &ip.ip);
        w.str("publicipid", &ip.id);
    }
    if full {
        w.begin_arr_at("securitygroup");
        for g in vm.security_groups.iter().filter_map(|s| m.security_groups.get(*s)) {
            w.begin_obj();
            w.str("id", &g.id);
            w.str("name", &g.name);
            w.str("description", &g.description);
            w.end_obj();
        }
        w.end_arr();
        w.raw("affinitygroup", "[]");
        w.begin_arr_at("nic");
        for nic in &vm.nics {
            write_nic(w, m, nic, None);
        }
        w.end_arr();
    }
    write_tags(w, m, "UserVm", &vm.id, vm.owner, &vm.tags);
    if let Some(j) = m.pending_job(&vm.id) {
        w.str("jobid", j);
        w.num("jobstatus", 0);
    }
    w.end_obj();
}

/// One NIC object (in a VM's `nic` list, or with `vm` set for listNics).
pub fn write_nic(w: &mut JsonWriter, m: &Model, nic: &Nic, vm: Option<&Vm>) {
    let net = m.networks.get(nic.network);
    w.begin_obj();
    w.str("id", &nic.id);
    if let Some(n) = net {
        w.str("networkid", &n.id);
        w.str("networkname", &n.name);
        w.str("netmask", &n.cidr.netmask_str());
        w.str("gateway", &n.gateway);
    }
    w.str("ipaddress", &nic.ip);
    let uri = match net.and_then(|n| n.vlan) {
        Some(v) => format!("vlan://{v}"),
        None => "vlan://untagged".to_string(),
    };
    w.str("isolationuri", if net.is_some_and(|n| n.shared) { "ec2://untagged" } else { &uri });
    w.str("broadcasturi", &uri);
    w.str("traffictype", "Guest");
    w.str("type", net.map(|n| n.guest_type()).unwrap_or("Shared"));
    w.bool("isdefault", nic.isdefault);
    w.str("macaddress", &nic.mac);
    w.str("deviceid", &nic.deviceid.to_string());
    if let Some(vpc) = net.and_then(|n| n.vpc).and_then(|v| m.vpcs.get(v)) {
        w.str("vpcid", &vpc.id);
        w.str("vpcname", &vpc.name);
    }
    if !nic.secondary.is_empty() {
        w.begin_arr_at("secondaryip");
        for ip in &nic.secondary {
            w.begin_obj();
            w.str("id", &ip.id);
            w.str("ipaddress", &ip.ip);
            w.end_obj();
        }
        w.end_arr();
    }
    if let Some(vm) = vm {
        w.str("virtualmachineid", &vm.id);
    }
    w.end_obj();
}

pub fn nic_json(m: &Model, nic: &Nic, vm: &Vm) -> Value {
    let mut w = JsonWriter::new();
    write_nic(&mut w, m, nic, Some(vm));
    serde_json::from_str(&w.out).unwrap_or_else(|_| Value::Object(serde_json::Map::new()))
}

pub fn vm_json(m: &Model, vm: &Vm, with_password: bool) -> Value {
    let mut w = JsonWriter::new();
    write_vm(&mut w, m, vm, with_password);
    serde_json::from_str(&w.out).unwrap_or_else(|e| {
        // The writer escapes every string; should it ever not, answer an empty object, not panic.
        tracing::error!(error = %e, vm = %vm.id, "VM writer produced invalid JSON");
        Value::Object(serde_json::Map::new())
    })
}

pub fn volume_json(m: &Model, v: &Volume) -> Value {
    let z = m.zones.get(v.zone);
    let vm = v.vm.and_then(|s| m.vms.get(s));
    let dof = v.diskoffering.and_then(|d| m.disk_offerings.get(d));
    let mut o = Obj::new()
        .set("id", v.id.clone())
        .set("name", v.name.clone())
        .opt("zoneid", z.map(|z| z.id.clone()))
        .opt("zonename", z.map(|z| z.name.clone()))
        .set("type", v.kind)
        .opt("deviceid", vm.and(v.deviceid))
        .opt("virtualmachineid", vm.map(|x| x.id.clone()))
        .opt("vmname", vm.map(|x| x.name.clone()))
        .opt("vmdisplayname", vm.map(|x| x.displayname.clone()))
        .opt("vmstate", vm.map(|x| x.state))
        .set("size", v.size)
        .set("created", v.created.clone())
        .opt("attached", vm.and(v.attached.clone()))
        .set("state", v.state)
        .set("storagetype", "shared")
        .set("hypervisor", "KVM")
        .opt("diskofferingid", dof.map(|d| d.id.clone()))
        .opt("diskofferingname", dof.map(|d| d.name.clone()))
        .opt("diskofferingdisplaytext", dof.map(|d| d.displaytext.clone()))
        .opt("serviceofferingid", v.serviceoffering.and_then(|s| m.service_offerings.get(s)).map(|s| s.id.clone()))
        .opt("serviceofferingname", v.serviceoffering.and_then(|s| m.service_offerings.get(s)).map(|s| s.name.clone()))
        .opt("storage", (v.state != "Allocated").then_some("sim-primary"))
        .set("destroyed", false)
        .set("isextractable", true)
        .set("displayvolume", true)
        .opt("snapshotid", v.snapshot.clone())
        .opt("templateid", v.template.and_then(|t| m.templates.get(t)).map(|t| t.id.clone()))
        .set("provisioningtype", "thin");
    o = owner_fields(m, o, v.owner);
    o = o.set("tags", tags_json(m, "Volume", &v.id, v.owner, &v.tags));
    pending(m, o, &v.id).done()
}

pub fn snapshot_json(m: &Model, s: &Snapshot) -> Value {
    let z = m.zones.get(s.zone);
    let mut o = Obj::new()
        .set("id", s.id.clone())
        .set("name", s.name.clone())
        .set("snapshottype", "MANUAL")
        .set("volumeid", s.volume_id.clone())
        .set("volumename", s.volume_name.clone())
        .set("volumetype", s.volume_type)
        .set("created", s.created.clone())
        .set("intervaltype", "MANUAL")
        .set("state", s.state)
        .opt("zoneid", z.map(|z| z.id.clone()))
        .set("revertable", false)
        .set("physicalsize", s.volume_size)
        .set("virtualsize", s.volume_size);
    o = owner_fields(m, o, s.owner);
    o = o.set("tags", tags_json(m, "Snapshot", &s.id, s.owner, &s.tags));
    pending(m, o, &s.id).done()
}

pub fn keypair_json(m: &Model, k: &KeyPair) -> Value {
    let o = Obj::new().set("id", k.id.clone()).set("name", k.name.clone()).set("fingerprint", k.fingerprint.clone());
    owner_fields(m, o, k.owner).done()
}

pub fn rule_json(r: &Rule) -> Value {
    let mut o = Obj::new()
        .set("ruleid", r.id.clone())
        .set("protocol", r.protocol.clone())
        .opt("startport", r.startport)
        .opt("endport", r.endport)
        .opt("icmptype", r.icmptype)
        .opt("icmpcode", r.icmpcode)
        .opt("cidr", r.cidr.clone());
    if let Some((acct, group)) = &r.group {
        o = o.set("account", acct.clone()).set("securitygroupname", group.clone());
    }
    o.set("tags", json!([])).done()
}

/// A security group; `only` limits the rules shown (authorize's job result shows the new ones).
pub fn sg_json(m: &Model, sg: &SecurityGroup, only: Option<(&[Rule], bool)>) -> Value {
    let (ingress, egress): (Vec<Value>, Vec<Value>) = match only {
        None => (sg.ingress.iter().map(rule_json).collect(), sg.egress.iter().map(rule_json).collect()),
        Some((rules, true)) => (rules.iter().map(rule_json).collect(), Vec::new()),
        Some((rules, false)) => (Vec::new(), rules.iter().map(rule_json).collect()),
    };
    let vms: Vec<Value> = m
        .vms
        .values()
        .filter(|v| v.security_groups.iter().any(|s| m.security_groups.get(*s).is_some_and(|g| g.id == sg.id)))
        .map(|v| json!(v.id))
        .collect();
    let mut o =
        Obj::new().set("id", sg.id.clone()).set("name", sg.name.clone()).set("description", sg.description.clone());
    o = owner_fields(m, o, sg.owner);
    o = o
        .set("ingressrule", Value::Array(ingress))
        .set("egressrule", Value::Array(egress))
        .set("virtualmachinecount", vms.len())
        .set("virtualmachineids", Value::Array(vms))
        .set("tags", tags_json(m, "SecurityGroup", &sg.id, sg.owner, &sg.tags));
    o.done()
}

pub fn ip_json(m: &Model, ip: &PublicIp) -> Value {
    let z = m.zones.get(ip.zone);
    let vm = ip.vm.and_then(|s| m.vms.get(s));
    // The network it belongs to: its own (isolated, tier) or the zone's shared network.
    let net = ip.network.or(if ip.vpc.is_none() { z.and_then(|z| z.shared_network) } else { None });
    let net = net.and_then(|n| m.networks.get(n));
    let vpc = ip.vpc.and_then(|v| m.vpcs.get(v));
    let vm_ip = vm.map(|v| {
        ip.vm_guest_ip
            .clone()
            .or_else(|| v.nics.iter().find(|n| Some(n.network) == ip.network).map(|n| n.ip.clone()))
            .or_else(|| v.nics.iter().find(|n| n.isdefault).map(|n| n.ip.clone()))
            .unwrap_or_default()
    });
    let mut o = Obj::new()
        .set("id", ip.id.clone())
        .set("ipaddress", ip.ip.clone())
        .set("allocated", ip.allocated.clone())
        .opt("zoneid", z.map(|z| z.id.clone()))
        .opt("zonename", z.map(|z| z.name.clone()))
        .set("issourcenat", ip.sourcenat)
        .set("isstaticnat", vm.is_some())
        .set("issystem", false)
        .set("isportable", false)
        .set("forvirtualnetwork", true)
        .opt("vlanid", z.map(|z| z.vlan_id.clone()))
        .set("vlanname", "vlan://untagged")
        .opt("associatednetworkid", net.map(|n| n.id.clone()))
        .opt("associatednetworkname", net.map(|n| n.name.clone()))
        .opt("networkid", net.map(|n| n.id.clone()))
        .opt("vpcid", vpc.map(|v| v.id.clone()))
        .opt("vpcname", vpc.map(|v| v.name.clone()))
        .set("state", ip.state)
        .opt(
            "purpose",
            if vm.is_some() {
                Some("StaticNat")
            } else if ip.sourcenat {
                Some("SourceNat")
            } else {
                None
            },
        )
        .opt("virtualmachineid", vm.map(|v| v.id.clone()))
        .opt("virtualmachinename", vm.map(|v| v.name.clone()))
        .opt("virtualmachinedisplayname", vm.map(|v| v.displayname.clone()))
        .opt("vmipaddress", vm_ip)
        .set("fordisplay", true);
    o = owner_fields(m, o, ip.owner);
    o = o.set("tags", tags_json(m, "PublicIpAddress", &ip.id, ip.owner, &ip.tags));
    pending(m, o, &ip.id).done()
}

/// A user; `secrets` = the caller may see the keys (itself or an admin).
pub fn user_json(m: &Model, u: &User, secrets: bool) -> Value {
    let a = m.account(u.account);
    let d = m.domain(a.domain);
    Obj::new()
        .set("id", u.id.clone())
        .set("username", u.username.clone())
        .set("firstname", u.firstname.clone())
        .set("lastname", u.lastname.clone())
        .set("email", u.email.clone())
        .set("created", u.created.clone())
        .set("state", u.state.clone())
        .set("account", a.name.clone())
        .set("accounttype", a.kind)
        .set("roletype", role_type(a.kind))
        .set("accountid", a.id.clone())
        .set("domainid", d.id.clone())
        .set("domain", d.name.clone())
        .opt("apikey", secrets.then(|| u.api_key.clone()))
        .opt("secretkey", secrets.then(|| u.secret_key.clone()))
        .set("timezone", "UTC")
        .set("isdefault", false)
        .set("iscallerchilddomain", false)
        .done()
}

pub fn role_type(kind: u8) -> &'static str {
    match kind {
        ACCOUNT_ROOT_ADMIN => "Admin",
        ACCOUNT_DOMAIN_ADMIN => "DomainAdmin",
        _ => "User",
    }
}

fn limit(v: i64) -> Value {
    if v < 0 { json!("Unlimited") } else { json!(v.to_string()) }
}

fn available(limit_v: i64, used: i64) -> Value {
    if limit_v < 0 { json!("Unlimited") } else { json!((limit_v - used).max(0).to_string()) }
}

pub fn account_json(m: &Model, seq: u64, a: &Account, secrets: bool) -> Value {
    let d = m.domain(a.domain);
    let users: Vec<Value> = m.users.values().filter(|u| u.account == seq).map(|u| user_json(m, u, secrets)).collect();
    let vmtotal = m.vm_count(seq);
    let iptotal = m.ip_count(seq);
    let voltotal = m.volumes.values().filter(|v| v.owner == seq).count() as i64;
    Obj::new()
        .set("id", a.id.clone())
        .set("name", a.name.clone())
        .set("accounttype", a.kind)
        .set("roletype", role_type(a.kind))
        .set("domainid", d.id.clone())
        .set("domain", d.name.clone())
        .set("domainpath", d.path.clone())
        .set("state", a.state.clone())
        .set("created", a.created.clone())
        .set("isdefault", false)
        .set("vmlimit", limit(a.vm_limit))
        .set("vmtotal", vmtotal)
        .set("vmavailable", available(a.vm_limit, vmtotal))
        .set("iplimit", limit(a.ip_limit))
        .set("iptotal", iptotal)
        .set("ipavailable", available(a.ip_limit, iptotal))
        .set("volumelimit", limit(a.volume_limit))
        .set("volumetotal", voltotal)
        .set("volumeavailable", available(a.volume_limit, voltotal))
        .set("snapshotlimit", limit(a.snapshot_limit))
        .set("templatelimit", limit(a.template_limit))
        .set("user", Value::Array(users))
        .done()
}

pub fn job_json(m: &Model, j: &Job) -> Value {
    let mut o = Obj::new()
        .set("jobid", j.id.clone())
        .set("accountid", m.accounts.get(j.account).map(|a| a.id.clone()).unwrap_or_default())
        .set("userid", m.users.get(j.user).map(|u| u.id.clone()).unwrap_or_default())
        .set("cmd", j.cmd)
        .set("jobstatus", j.status)
        .set("jobprocstatus", 0)
        .set("jobresultcode", j.result_code)
        .set("jobinstancetype", j.instance_type)
        .opt("jobinstanceid", j.instance_id.clone())
        .set("created", j.created.clone())
        .opt("completed", j.completed.clone());
    if let Some(r) = &j.result {
        o = o.set("jobresulttype", "object").set("jobresult", r.clone());
    }
    o.done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn date_format() {
        assert_eq!(fmt_date(datetime!(2013-09-05 06:19:59 -4)), "2013-09-05T06:19:59-0400");
        assert_eq!(fmt_date(datetime!(2030-01-01 00:00:00 UTC)), "2030-01-01T00:00:00+0000");
    }

    #[test]
    fn obj_skips_none() {
        let v = Obj::new().set("a", 1).opt::<i32>("b", None).opt("c", Some(true)).done();
        assert_eq!(v, json!({"a":1,"c":true}));
    }
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    #[test]
    fn writer_escapes_and_nests() {
        let mut w = JsonWriter::new();
        w.begin_obj();
        w.str("a", "q\"b\\c\n\u{1}é");
        w.num("n", -3);
        w.bool("t", true);
        w.begin_arr_at("l");
        w.begin_obj();
        w.end_obj();
        w.begin_obj();
        w.num("x", 1);
        w.end_obj();
        w.end_arr();
        w.raw("o", "{}");
        w.end_obj();
        let v: Value = serde_json::from_str(&w.out).unwrap();
        assert_eq!(v, json!({"a": "q\"b\\c\n\u{1}é", "n": -3, "t": true, "l": [{}, {"x": 1}], "o": {}}));
    }
}
