//! Templates: listTemplates with `templatefilter` semantics and one row per zone; create from a
//! stopped VM's volume or a snapshot; register (download delay); delete; launch permissions.

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::jobs::Timer;
use super::super::list;
use super::super::model::*;
use super::super::render::*;
use super::super::seed::new_uuid;
use super::{CmdSpec, Ctx, Reply, create, job, read, single, success, write};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        read("listTemplates", "org.apache.cloudstack.api.command.user.template.ListTemplatesCmd", list_templates),
        create("createTemplate", "org.apache.cloudstack.api.command.user.template.CreateTemplateCmd", create_template),
        write("registerTemplate", "org.apache.cloudstack.api.command.user.template.RegisterTemplateCmd", register),
        job("deleteTemplate", "org.apache.cloudstack.api.command.user.template.DeleteTemplateCmd", delete),
        write("updateTemplate", "org.apache.cloudstack.api.command.user.template.UpdateTemplateCmd", update),
        read(
            "listTemplatePermissions",
            "org.apache.cloudstack.api.command.user.template.ListTemplatePermissionsCmd",
            list_permissions,
        ),
        write(
            "updateTemplatePermissions",
            "org.apache.cloudstack.api.command.user.template.UpdateTemplatePermissionsCmd",
            update_permissions,
        ),
    ]
}

fn tmpl_what(t: &Template) -> String {
    format!("Tmpl[{}-{}]", t.id, t.name)
}

/// A template the caller owns (or administers).
fn own_template(ctx: &Ctx, m: &Model, name: &str) -> SimResult<u64> {
    let s = ctx.need(&m.templates, name, "template")?;
    let t = m.templates.get(s).expect("live");
    m.check_access(&ctx.caller, t.owner, &tmpl_what(t))?;
    Ok(s)
}

fn template_limit(m: &Model, owner: u64) -> SimResult<()> {
    let a = m.account(owner);
    let count = m.templates.values().filter(|t| t.owner == owner).count() as i64;
    if a.template_limit >= 0 && count + 1 > a.template_limit {
        return Err(SimError::allocation(format!(
            "Maximum number of resources of type 'template' for account name={} in domain id={} has been exceeded.",
            a.name, a.domain
        )));
    }
    Ok(())
}

fn create_template(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let p = &ctx.p;
    for r in ["displaytext", "name", "ostypeid"] {
        p.req(r)?;
    }
    let ostype = ctx.need(&m.os_types, "ostypeid", "OS type")?;
    let volume = ctx.opt_live(&m.volumes, "volumeid", "volume")?;
    let snapshot = ctx.opt_live(&m.snapshots, "snapshotid", "snapshot")?;
    if let Some(v) = ctx.find(&m.vms, "virtualmachineid")?
        && !matches!(v, Lookup::Live(_))
    {
        return Err(SimError::invalid("Unable to find the virtual machine"));
    }
    let (owner_src, zone, size, source_template) = match (volume, snapshot) {
        (None, None) => {
            return Err(SimError::invalid(
                "Failed to create private template record, need to specify snapshotId or volumeId",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(SimError::invalid(format!(
                "Failed to create private template record, please specify only one of volume ID ({}) and snapshot ID ({})",
                p.opt("volumeid").unwrap_or(""),
                p.opt("snapshotid").unwrap_or("")
            )));
        }
        (Some(v), None) => {
            let vol = m.volumes.get(v).expect("live");
            m.check_access(&ctx.caller, vol.owner, &super::volume::vol_what(vol))?;
            if let Some(vm) = vol.vm.and_then(|s| m.vms.get(s))
                && (vm.state != vm_state::STOPPED || vm.planned != vm_state::STOPPED)
            {
                return Err(SimError::invalid(format!(
                    "VolumeId: {} please stop the VM {} it is attached to before creating a template from it; VM is {}",
                    vol.id, vm.id, vm.state
                )));
            }
            if vol.state != "Ready" {
                return Err(SimError::invalid(format!(
                    "VolumeId: {} is not in Ready state but {}. Cannot create a template.",
                    vol.id, vol.state
                )));
            }
            (vol.owner, vol.zone, vol.size, vol.template.and_then(|t| m.templates.get(t)).map(|t| t.id.clone()))
        }
        (None, Some(s)) => {
            let snap = m.snapshots.get(s).expect("live");
            m.check_access(&ctx.caller, snap.owner, &format!("Snapshot {}", snap.id))?;
            if snap.state != "BackedUp" {
                return Err(SimError::invalid(format!(
                    "Snapshot {} is not in BackedUp state yet and can't be used for template creation",
                    snap.id
                )));
            }
            (snap.owner, snap.zone, snap.volume_size, None)
        }
    };
    let owner = owner_src;
    template_limit(m, owner)?;
    let ispublic = p.flag("ispublic");
    let isfeatured = p.flag("isfeatured") && ctx.caller.is_admin();
    let id = new_uuid();
    let seq = m.next_seq();
    m.templates.insert(
        seq,
        Template {
            id: id.clone(),
            name: p.req("name")?.to_string(),
            displaytext: p.req("displaytext")?.to_string(),
            owner,
            ispublic,
            isfeatured,
            isextractable: p.flag("isextractable"),
            passwordenabled: p.flag("passwordenabled"),
            sshkeyenabled: p.flag("sshkeyenabled"),
            isdynamicallyscalable: p.flag("isdynamicallyscalable"),
            format: "QCOW2".into(),
            ostype,
            hypervisor: "KVM".into(),
            size,
            templatetype: "USER".into(),
            zones: vec![zone],
            cross_zones: false,
            ready: false,
            status: "Installing Template".into(),
            created: ctx.now.clone(),
            bootable: true,
            checksum: None,
            source_template,
            shared_with: Vec::new(),
            tags: Vec::new(),
        },
    );
    Ok(ctx.create_job(
        "Template",
        id.clone(),
        Some(id),
        Box::new(move |m, env| {
            if let Some(e) = env.fail.take() {
                m.templates.remove(seq);
                return Err(e);
            }
            let t = m.templates.get_mut(seq).ok_or_else(|| SimError::internal("template vanished"))?;
            t.ready = true;
            t.status = "Download Complete".into();
            let t = m.templates.get(seq).expect("live");
            Ok(single("template", template_json(m, t, t.zones.first().copied(), true)))
        }),
    ))
}

const FORMATS: [&str; 8] = ["QCOW2", "RAW", "VHD", "VHDX", "OVA", "ISO", "TAR", "VMDK"];
const HYPERVISORS: [&str; 8] = ["KVM", "XenServer", "VMware", "Hyperv", "LXC", "Simulator", "BareMetal", "Ovm3"];

fn register(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let p = &ctx.p;
    for r in ["displaytext", "format", "hypervisor", "name", "ostypeid", "url", "zoneid"] {
        p.req(r)?;
    }
    let ostype = ctx.need(&m.os_types, "ostypeid", "OS type")?;
    let zones: Vec<u64> = if p.req("zoneid")? == "-1" {
        m.zones.iter().map(|(s, _)| s).collect()
    } else {
        vec![ctx.need(&m.zones, "zoneid", "zone")?]
    };
    let format = p.req("format")?.to_ascii_uppercase();
    if !FORMATS.contains(&format.as_str()) {
        return Err(SimError::invalid(format!(
            "Image format is incorrect {}. Supported formats are {}",
            p.req("format")?,
            FORMATS.join(", ")
        )));
    }
    let hv = p.req("hypervisor")?;
    let Some(hypervisor) = HYPERVISORS.iter().find(|h| h.eq_ignore_ascii_case(hv)) else {
        return Err(SimError::invalid(format!(
            "Hypervisor Type: {hv} is invalid. Supported Hypervisor types are {}",
            HYPERVISORS.join(", ")
        )));
    };
    let url = p.req("url")?;
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || url.len() < 10 {
        return Err(SimError::invalid(format!("Unsupported scheme for url: {url}")));
    }
    let owner = m.owner_for(&ctx.caller, p)?;
    template_limit(m, owner)?;
    let id = new_uuid();
    let seq = m.next_seq();
    let t = Template {
        id: id.clone(),
        name: p.req("name")?.to_string(),
        displaytext: p.req("displaytext")?.to_string(),
        owner,
        ispublic: p.flag("ispublic"),
        isfeatured: p.flag("isfeatured") && ctx.caller.is_admin(),
        isextractable: p.flag("isextractable"),
        passwordenabled: p.flag("passwordenabled"),
        sshkeyenabled: p.flag("sshkeyenabled"),
        isdynamicallyscalable: p.flag("isdynamicallyscalable"),
        format,
        ostype,
        hypervisor: hypervisor.to_string(),
        size: 0,
        templatetype: "USER".into(),
        cross_zones: p.req("zoneid")? == "-1",
        zones: zones.clone(),
        ready: false,
        status: "0% Downloaded".into(),
        created: ctx.now.clone(),
        bootable: true,
        checksum: p.opt("checksum").map(str::to_string),
        source_template: None,
        shared_with: Vec::new(),
        tags: Vec::new(),
    };
    m.templates.insert(seq, t);
    // The download finishes later; until then isready=false.
    ctx.timers.push(Timer {
        delay: ctx.cfg.template_download(),
        run: Box::new(move |m, _| {
            if let Some(t) = m.templates.get_mut(seq) {
                t.ready = true;
                t.size = 2 << 30;
                t.status = "Download Complete".into();
            }
        }),
    });
    let t = m.templates.get(seq).expect("just inserted");
    let rows: Vec<Value> = zones.iter().map(|z| template_json(m, t, Some(*z), true)).collect();
    Ok(Reply::Value(json!({"count": rows.len(), "template": rows})))
}

fn delete(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = own_template(ctx, m, "id")?;
    let zone = ctx.opt_live(&m.zones, "zoneid", "zone")?;
    let t = m.templates.get(s).expect("live");
    if let Some(z) = zone
        && !t.zones.contains(&z)
    {
        return Err(SimError::invalid(format!(
            "Template {} is not available in zone {}",
            t.id,
            m.zones.get(z).expect("live").id
        )));
    }
    let id = t.id.clone();
    Ok(ctx.job(
        "Template",
        Some(id.clone()),
        Some(id),
        Box::new(move |m, env| {
            if let Some(e) = env.fail.take() {
                return Err(e);
            }
            let Some(t) = m.templates.get_mut(s) else { return Ok(success()) };
            match zone {
                Some(z) => {
                    t.zones.retain(|x| *x != z);
                    if t.zones.is_empty() {
                        m.templates.remove(s);
                    }
                }
                None => {
                    m.templates.remove(s);
                }
            }
            Ok(success())
        }),
    ))
}

/// updateTemplate: the owner (or an admin) changes names and flags; answers the template.
fn update(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = own_template(ctx, m, "id")?;
    let ostype = match ctx.p.opt("ostypeid") {
        Some(_) => Some(ctx.need(&m.os_types, "ostypeid", "OS type")?),
        None => None,
    };
    let p = &ctx.p;
    let format = match p.opt("format") {
        Some(f) if !FORMATS.contains(&f.to_ascii_uppercase().as_str()) => {
            return Err(SimError::invalid(format!(
                "Image format is incorrect {f}. Supported formats are {}",
                FORMATS.join(", ")
            )));
        }
        f => f.map(str::to_ascii_uppercase),
    };
    let t = m.templates.get_mut(s).expect("live");
    if let Some(v) = p.opt("name") {
        t.name = v.to_string();
    }
    if let Some(v) = p.opt("displaytext") {
        t.displaytext = v.to_string();
    }
    if let Some(o) = ostype {
        t.ostype = o;
    }
    if let Some(f) = format {
        t.format = f;
    }
    if let Some(v) = p.opt_bool("passwordenabled") {
        t.passwordenabled = v;
    }
    if let Some(v) = p.opt_bool("sshkeyenabled") {
        t.sshkeyenabled = v;
    }
    if let Some(v) = p.opt_bool("isdynamicallyscalable") {
        t.isdynamicallyscalable = v;
    }
    if let Some(v) = p.opt_bool("bootable") {
        t.bootable = v;
    }
    let t = m.templates.get(s).expect("live");
    Ok(Reply::Value(single("template", template_json(m, t, t.zones.first().copied(), true))))
}

fn list_permissions(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let s = own_template(ctx, m, "id")?;
    let t = m.templates.get(s).expect("live");
    let accounts: Vec<Value> = t.shared_with.iter().filter_map(|a| m.accounts.get(*a)).map(|a| json!(a.name)).collect();
    Ok(single(
        "templatepermission",
        json!({"id": t.id, "ispublic": t.ispublic, "domainid": m.domain(m.account(t.owner).domain).id, "account": accounts, "projectids": []}),
    ))
}

fn update_permissions(ctx: &mut Ctx, m: &mut Model) -> SimResult<Reply> {
    let s = own_template(ctx, m, "id")?;
    let p = &ctx.p;
    let accounts = p.list("accounts");
    let op = p.opt("op").map(str::to_ascii_lowercase);
    if (!accounts.is_empty() || p.has("projectids")) && op.is_none() {
        return Err(SimError::invalid("operation is required when accounts or projectids are specified"));
    }
    if let Some(o) = &op
        && !matches!(o.as_str(), "add" | "remove" | "reset")
    {
        return Err(SimError::invalid(format!(
            "Invalid operation on accounts or projects: {o}, valid operations are add, remove and reset"
        )));
    }
    let t = m.templates.get(s).expect("live");
    let owner = m.account(t.owner);
    let mut resolved = Vec::new();
    for a in &accounts {
        // Shared within the owner's domain, as CloudStack looks the name up there.
        match m.accounts.find(|x| &x.name == a && x.domain == owner.domain) {
            Some((seq, _)) => resolved.push(seq),
            None => {
                return Err(SimError::invalid(format!(
                    "Unable to share template {} with account {a} in domain id={}, account not found.",
                    t.id,
                    m.domain(owner.domain).id
                )));
            }
        }
    }
    if p.has("isfeatured") && !ctx.caller.is_admin() && p.flag("isfeatured") {
        return Err(SimError::permission("Only admins can update the isfeatured flag"));
    }
    let (ispublic, isfeatured, isextractable) =
        (p.opt_bool("ispublic"), p.opt_bool("isfeatured"), p.opt_bool("isextractable"));
    let t = m.templates.get_mut(s).expect("live");
    match op.as_deref() {
        Some("add") => {
            for a in resolved {
                if !t.shared_with.contains(&a) && a != t.owner {
                    t.shared_with.push(a);
                }
            }
        }
        Some("remove") => t.shared_with.retain(|a| !resolved.contains(a)),
        Some("reset") => t.shared_with.clear(),
        _ => {}
    }
    if let Some(v) = ispublic {
        t.ispublic = v;
    }
    if let Some(v) = isfeatured {
        t.isfeatured = v;
    }
    if let Some(v) = isextractable {
        t.isextractable = v;
    }
    Ok(Reply::Value(success()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Filter {
    Featured,
    SelfOwned,
    SelfExecutable,
    SharedExecutable,
    Executable,
    Community,
    All,
}

fn parse_filter(ctx: &Ctx) -> SimResult<Filter> {
    let f = ctx.p.req("templatefilter")?;
    Ok(match f.to_ascii_lowercase().as_str() {
        "featured" => Filter::Featured,
        "self" => Filter::SelfOwned,
        "selfexecutable" => Filter::SelfExecutable,
        "sharedexecutable" => Filter::SharedExecutable,
        "executable" => Filter::Executable,
        "community" => Filter::Community,
        "all" => {
            if !ctx.caller.is_admin() {
                return Err(SimError::invalid("Filter all can be specified by admin only"));
            }
            Filter::All
        }
        _ => {
            return Err(SimError::invalid(format!(
                "Invalid value for templatefilter: {f}. Valid values are: featured, self, selfexecutable, sharedexecutable, executable, community, all"
            )));
        }
    })
}

/// Does `filter` show template `t` to a caller whose own accounts are `mine`?
fn filter_allows(f: Filter, t: &Template, mine: &dyn Fn(u64) -> bool) -> bool {
    let owned = mine(t.owner);
    let shared = t.shared_with.iter().any(|a| mine(*a));
    match f {
        Filter::Featured => t.ispublic && t.isfeatured,
        Filter::SelfOwned => owned,
        Filter::SelfExecutable => owned && t.ready,
        Filter::SharedExecutable => shared && !owned && t.ready,
        Filter::Executable => (owned || t.ispublic || shared) && t.ready,
        Filter::Community => t.ispublic && !t.isfeatured,
        Filter::All => true,
    }
}

fn list_templates(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let filter = parse_filter(ctx)?;
    let empty = || list::list(p, "template", Vec::<()>::new(), |_| json!({}));
    let Some(id) = super::meta::id_filter(ctx, &m.templates, "id")? else { return empty() };
    let zone = match ctx.find(&m.zones, "zoneid")? {
        Some(Lookup::Live(s)) => Some(s),
        Some(_) => return empty(),
        None => None,
    };
    let paging = list::paging(p)?;
    // "self" means the caller's account, or the accounts an admin names / lists all of.
    let scope = m.scope(&ctx.caller, p)?;
    let mine = |a: u64| scope.sees(a);
    let name = p.opt("name");
    let kw = p.opt("keyword");
    let hypervisor = p.opt("hypervisor");
    let tags = p.tags();
    let admin = ctx.caller.is_admin();
    let mut rows: Vec<(&Template, u64)> = Vec::new();
    for (s, t) in m.templates.iter() {
        let visible = filter_allows(filter, t, &mine)
            && (admin || t.owner == ctx.caller.account || t.ispublic || t.shared_with.contains(&ctx.caller.account));
        if !visible
            || id.is_some_and(|i| i != s)
            || name.is_some_and(|n| t.name != n)
            || hypervisor.is_some_and(|h| !t.hypervisor.eq_ignore_ascii_case(h))
            || !keyword_match(kw, &[&t.name, &t.displaytext])
            || !tags_match(&t.tags, &tags)
        {
            continue;
        }
        for z in &t.zones {
            if zone.is_none_or(|zz| zz == *z) {
                rows.push((t, *z));
            }
        }
    }
    Ok(list::respond(paging, "template", rows, |(t, z)| {
        let show_status = admin || t.owner == ctx.caller.account;
        template_json(m, t, Some(z), show_status)
    }))
}
