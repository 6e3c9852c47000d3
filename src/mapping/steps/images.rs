//! Image steps: DescribeImages' Owner.N / ExecutableBy.N over the united templatefilter
//! listings; CreateImage, RegisterImage and the image attributes.

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use super::check_keys;
use super::common::{Undo, UndoCall, field};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Owner: `self` = found by templatefilter=self, `amazon` = featured and not the caller's,
/// `all` = any, anything else = the owning account's name. ExecutableBy: `self` = any listed
/// (every listing is of images the caller may see and launch), `all` = public, an account =
/// the caller's own images shared to nobody else cannot be told apart, so own images only.
pub async fn owners(ctx: &Ctx<'_>, _: &Prepared, items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    let owners: Vec<&str> = ctx.req.params.list("Owner");
    let exec_by: Vec<&str> = ctx.req.params.list("ExecutableBy");
    let is_self = |it: &Value| it.get("_fanout").and_then(Value::as_str) == Some("self");
    let owner_ok = |it: &Value| {
        owners.is_empty()
            || owners.iter().any(|o| match *o {
                "self" => is_self(it),
                "amazon" => truthy(it.get("isfeatured")) && !is_self(it),
                "all" => true,
                acct => it.get("account").and_then(Value::as_str) == Some(acct) || image_owner_number(ctx, it) == acct,
            })
    };
    let exec_ok = |it: &Value| {
        exec_by.is_empty()
            || exec_by.iter().any(|e| match *e {
                "self" => true,
                "all" => truthy(it.get("ispublic")),
                _ => is_self(it),
            })
    };
    Ok(items.into_iter().filter(|it| owner_ok(it) && exec_ok(it)).collect())
}

/// The account number of a template's owner (as `imageOwnerId` renders it).
fn image_owner_number(ctx: &Ctx<'_>, it: &Value) -> String {
    match it.get("accountid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
        Some(u) => ids::account_number(u),
        None => crate::mapping::convert::owner_number(
            &ctx.vars,
            it.get("account").and_then(Value::as_str).unwrap_or_default(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// CreateImage, RegisterImage, Describe/Modify/ResetImageAttribute

type CsParams = Vec<(String, String)>;
/// A CloudStack command and its parameters.
type Call = (&'static str, CsParams);

fn pair(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// EC2's AMI name rule: 3-128 characters of letters, digits and `()[] ./-'@_`.
fn check_ami_name(name: &str) -> Result<(), Ec2Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
    let n = name.chars().count();
    if !(3..=128).contains(&n) || !name.chars().all(ok_char) {
        return Err(Ec2Error::new(
            Code::InvalidAmiNameMalformed,
            format!(
                "AMI name '{name}' is invalid: it must be 3 to 128 characters of letters, numbers, spaces and ( ) [ ] . / - ' @ _"
            ),
        ));
    }
    Ok(())
}

/// EC2 image names are unique per account: one listing of the caller's templates by name.
async fn check_name_free(ctx: &Ctx<'_>, name: &str) -> Result<(), Ec2Error> {
    let mine = ctx.list("listTemplates", &[pair("templatefilter", "self"), pair("name", name)], "template").await?;
    if let Some(t) = mine.iter().find(|t| field(t, "name") == Some(name)) {
        let ami = ids::ec2_id(Kind::Image, field(t, "id").unwrap_or_default());
        return Err(Ec2Error::new(
            Code::InvalidAmiNameDuplicate,
            format!("AMI name {name} is already in use by AMI {ami}"),
        ));
    }
    Ok(())
}

fn instance_state_error(ec2: &str, why: &str) -> Ec2Error {
    Ec2Error::new(Code::IncorrectInstanceState, format!("The instance '{ec2}' {why}"))
}

/// CreateImage: a template from the instance's ROOT volume. CloudStack needs the VM stopped, so a
/// running VM is stopped first and started again once the template is made (EC2 reboots it);
/// NoReboot=true on a running VM is refused. Answers the new image's id at once (pending).
pub async fn create_image(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let (ec2, vm_id) = prep.ids.first().cloned().ok_or_else(|| Ec2Error::missing_parameter("InstanceId"))?;
    let name = p.require("Name")?;
    check_ami_name(name)?;
    let description = p.get("Description").filter(|d| !d.is_empty()).unwrap_or(name);
    if description.chars().count() > 255 {
        return Err(Ec2Error::invalid_value("Description", description, "At most 255 characters."));
    }
    let no_reboot = p.bool("NoReboot")?.unwrap_or(false);
    let vms = ctx.list("listVirtualMachines", &[pair("id", &vm_id)], "virtualmachine").await?;
    let Some(vm) = vms.into_iter().find(|v| field(v, "id") == Some(vm_id.as_str())) else {
        let kind = ctx.ex.table.kinds.get(&Kind::Instance).ok_or_else(Ec2Error::internal)?;
        return Err(super::super::exec::not_found(kind, &[ec2.as_str()]));
    };
    let must_stop = match field(&vm, "state").unwrap_or("Unknown") {
        "Stopped" => false,
        "Running" if no_reboot => {
            return Err(instance_state_error(
                &ec2,
                "is running: this cloud can only image a stopped instance, so NoReboot cannot be honoured. Stop the instance first, or let CreateImage stop and restart it.",
            ));
        }
        "Running" => true,
        other => {
            return Err(instance_state_error(&ec2, &format!("is {other}; an image needs it running or stopped.")));
        }
    };
    check_name_free(ctx, name).await?;
    let roots = ctx.list("listVolumes", &[pair("virtualmachineid", &vm_id), pair("type", "ROOT")], "volume").await?;
    let Some(root) = roots.iter().find_map(|v| field(v, "id")) else {
        return Err(instance_state_error(&ec2, "has no root volume to make an image from."));
    };
    let Some(ostype) = field(&vm, "guestosid").or_else(|| field(&vm, "ostypeid")) else {
        tracing::warn!(instance = %ec2, "virtual machine without an OS type");
        return Err(Ec2Error::internal());
    };
    let mut cp =
        vec![pair("name", name), pair("displaytext", description), pair("ostypeid", ostype), pair("volumeid", root)];
    if let Some(pw) = vm.get("passwordenabled").and_then(Value::as_bool) {
        cp.push(pair("passwordenabled", pw.to_string()));
    }
    // The instance's restart is recorded in the operations journal *before* it is stopped: a
    // gateway that dies anywhere from here on leaves the restart to be taken over (after the
    // template job, if one was started), so the instance is never left stopped for good.
    let owner = super::vpc_objects::owner(ctx);
    let restart = match must_stop {
        true => {
            let doc = json!({ "vm": vm_id, "name": name });
            let w = super::super::background::Worker::of(ctx.ex);
            let r = w.record("restart-instance", &owner, ctx.creds(), doc).await;
            // Any failure from here on: the record restarts the instance in the background.
            let j = ctx.start_job("stopVirtualMachine", &[pair("id", &vm_id)]).await?;
            ctx.wait_job("stopVirtualMachine", &j.jobid).await?;
            Some(r)
        }
        false => None,
    };
    let job = ctx.start_job("createTemplate", &cp).await?;
    let Some(tid) = job.id.clone() else {
        tracing::warn!("createTemplate answered without the new template's id");
        return Err(Ec2Error::internal());
    };
    if let Some(r) = restart {
        // Restart once the template is made (the volume must not change under the copy); the
        // answer does not wait for it, as EC2's reboot happens after the call returns.
        r.hand_over(Some(json!({ "vm": vm_id, "name": name, "after": ["createTemplate", job.jobid] }))).await;
    }
    Ok(json!({ "id": tid }))
}

pub fn check_register_args(args: &Value) -> Result<(), String> {
    check_keys(args, &["ostype", "ostype_32", "format", "zones"], &["ostype"])?;
    if let Some(z) = args.get("zones")
        && !matches!(z.as_str(), Some("all" | "first"))
    {
        return Err("args.zones must be \"all\" or \"first\"".into());
    }
    Ok(())
}

/// Disk format from the image URL's file name (compression suffixes ignored).
fn format_from_url(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    let mut name = path.rsplit('/').next().unwrap_or("").to_string();
    for z in [".bz2", ".gz", ".zip", ".xz"] {
        if let Some(n) = name.strip_suffix(z) {
            name = n.to_string();
        }
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "qcow2" => "QCOW2",
        "raw" | "img" => "RAW",
        "vhd" => "VHD",
        "vhdx" => "VHDX",
        "ova" => "OVA",
        "vmdk" => "VMDK",
        "tar" => "TAR",
        _ => return None,
    })
}

/// The hypervisor that runs a disk format.
fn hypervisor_for(format: &str) -> &'static str {
    match format {
        "VHD" => "XenServer",
        "VHDX" => "Hyperv",
        "OVA" | "VMDK" => "VMware",
        "TAR" => "BareMetal",
        _ => "KVM",
    }
}

/// RegisterImage: ImageLocation (an http(s) URL) -> registerTemplate. Format from the URL's
/// extension (else `args.format`), hypervisor from the format, OS type `args.ostype`
/// (`args.ostype_32` for i386), zone the first enabled one (`args.zones = "all"`: every zone).
/// The awsapi form `Architecture=format:zonename:ostypename:hypervisor` overrides each part it
/// gives (empty parts keep the defaults).
pub async fn register_image(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let args = &ctx.action.args;
    let name = p.require("Name")?;
    check_ami_name(name)?;
    let url = p.require("ImageLocation")?;
    let description = p.get("Description").filter(|d| !d.is_empty()).unwrap_or(name);
    let arch = p.get("Architecture").unwrap_or("");
    let (mut format, mut zone, mut ostype, mut hypervisor): (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = (None, None, None, None);
    let mut bits = None;
    if arch.contains(':') {
        let parts: Vec<&str> = arch.split(':').collect();
        if parts.len() > 4 {
            return Err(Ec2Error::invalid_value(
                "Architecture",
                arch,
                "Expected format:zonename:ostypename:hypervisor.",
            ));
        }
        let get = |i: usize| parts.get(i).filter(|v| !v.is_empty()).map(|v| v.to_string());
        (format, zone, ostype, hypervisor) = (get(0).map(|f| f.to_ascii_uppercase()), get(1), get(2), get(3));
    } else {
        bits = match arch {
            "" => None,
            "x86_64" => Some("64"),
            "i386" => Some("32"),
            _ => return Err(Ec2Error::invalid_value("Architecture", arch, "This cloud offers i386 and x86_64.")),
        };
    }
    let format = format
        .or_else(|| format_from_url(url).map(str::to_string))
        .or_else(|| args.get("format").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "QCOW2".into());
    let hypervisor = hypervisor.unwrap_or_else(|| hypervisor_for(&format).to_string());
    // An explicit OS type must exist; the 32-bit default falls back to the 64-bit one.
    let mut candidates: Vec<String> = Vec::new();
    match ostype {
        Some(o) => candidates.push(o),
        None => {
            if bits == Some("32") {
                candidates.extend(args.get("ostype_32").and_then(Value::as_str).map(str::to_string));
            }
            candidates.extend(args.get("ostype").and_then(Value::as_str).map(str::to_string));
        }
    }
    let os_types = ctx.list_cached("listOsTypes", &[], "ostype").await?;
    let os_id = candidates.iter().find_map(|want| {
        os_types
            .iter()
            .find(|o| field(o, "description").is_some_and(|d| d.eq_ignore_ascii_case(want)))
            .and_then(|o| field(o, "id"))
    });
    let Some(os_id) = os_id.map(str::to_string) else {
        let wanted = candidates.first().cloned().unwrap_or_default();
        return Err(Ec2Error::invalid_value("Architecture", &wanted, "No such OS type in this cloud."));
    };
    let all_zones = zone.is_none() && args.get("zones").and_then(Value::as_str) == Some("all");
    let zoneid = if all_zones {
        "-1".to_string()
    } else {
        let z = super::super::resolve::apply(ctx, "zone", zone.take(), "Architecture").await?;
        z.into_iter().next().ok_or_else(Ec2Error::internal)?
    };
    check_name_free(ctx, name).await?;
    let mut rp = vec![
        pair("name", name),
        pair("displaytext", description),
        pair("url", url),
        pair("format", format),
        pair("hypervisor", hypervisor),
        pair("ostypeid", os_id),
        pair("zoneid", zoneid),
    ];
    if let Some(b) = bits {
        rp.push(pair("bits", b));
    }
    let rows = ctx.list("registerTemplate", &rp, "template").await?;
    let Some(id) = rows.iter().find_map(|t| field(t, "id")) else {
        tracing::warn!("registerTemplate answered without a template");
        return Err(Ec2Error::internal());
    };
    Ok(json!({ "id": id }))
}

/// The template, whoever owns it: own (ready or not) first, then every other visible one.
pub(crate) async fn find_template(ctx: &Ctx<'_>, ec2: &str, uuid: &str) -> Result<Value, Ec2Error> {
    for f in ["self", "executable", "sharedexecutable"] {
        let l = ctx.list("listTemplates", &[pair("templatefilter", f), pair("id", uuid)], "template").await?;
        if let Some(t) = l.into_iter().find(|t| field(t, "id") == Some(uuid)) {
            return Ok(t);
        }
    }
    let kind = ctx.ex.table.kinds.get(&Kind::Image).ok_or_else(Ec2Error::internal)?;
    Err(super::super::exec::not_found(kind, &[ec2]))
}

/// Attribute names EC2 defines for images; the ones CloudStack has nothing for answer empty.
const IMAGE_ATTRIBUTES: &[&str] = &[
    "description",
    "kernel",
    "ramdisk",
    "launchPermission",
    "productCodes",
    "blockDeviceMapping",
    "sriovNetSupport",
    "bootMode",
    "tpmSupport",
    "uefiData",
    "lastLaunchedTime",
    "imdsSupport",
    "deregistrationProtection",
];

fn attribute_param(ctx: &Ctx<'_>) -> Result<&'static str, Ec2Error> {
    let a = ctx.req.params.require("Attribute")?;
    IMAGE_ATTRIBUTES
        .iter()
        .find(|x| **x == a)
        .copied()
        // EC2 answers an attribute name it does not know with InvalidRequest.
        .ok_or_else(|| Ec2Error::new(Code::InvalidRequest, "The request received was invalid."))
}

/// listTemplatePermissions -> EC2 launch permissions: group `all` when public, one userId per
/// account it is shared with (EC2 owner ids are CloudStack account names here).
async fn launch_permissions(ctx: &Ctx<'_>, uuid: &str) -> Result<(bool, Vec<String>), Ec2Error> {
    let v = ctx.call("listTemplatePermissions", &[pair("id", uuid)]).await?;
    let perm = v.get("templatepermission").unwrap_or(&v);
    let public = perm.get("ispublic").is_some_and(|b| b.as_bool() == Some(true) || b.as_str() == Some("true"));
    let accounts = match perm.get("account") {
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        Some(Value::String(x)) if !x.is_empty() => x.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok((public, accounts))
}

pub async fn describe_attribute(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let attr = attribute_param(ctx)?;
    let (ec2, uuid) = prep.ids.first().cloned().ok_or_else(|| Ec2Error::missing_parameter("ImageId"))?;
    let mut out = json!({ "id": uuid });
    let o = out.as_object_mut().ok_or_else(Ec2Error::internal)?;
    // `_<attribute>` marks which element the shape renders (one per answer, as in EC2).
    o.insert(format!("_{attr}"), Value::Bool(true));
    match attr {
        "description" => {
            let t = find_template(ctx, &ec2, &uuid).await?;
            o.insert("description".into(), json!({ "value": t.get("displaytext").cloned().unwrap_or(Value::Null) }));
        }
        "blockDeviceMapping" => {
            let t = find_template(ctx, &ec2, &uuid).await?;
            o.insert("template".into(), t);
        }
        "launchPermission" => {
            let (public, accounts) = launch_permissions(ctx, &uuid).await?;
            let mut l: Vec<Value> = Vec::new();
            if public {
                l.push(json!({ "group": "all" }));
            }
            l.extend(accounts.into_iter().map(|a| json!({ "userid": a })));
            o.insert("launchpermission".into(), Value::Array(l));
        }
        _ => {
            // Still check the image is there (the cache may know a deleted one).
            find_template(ctx, &ec2, &uuid).await?;
        }
    }
    Ok(out)
}

/// Launch permission changes of one request: groups (only `all`) and user ids to add / remove.
#[derive(Default)]
struct PermChange {
    add_all: bool,
    remove_all: bool,
    add_users: Vec<String>,
    remove_users: Vec<String>,
}

fn group_ok(g: &str, param: &str) -> Result<(), Ec2Error> {
    if g == "all" { Ok(()) } else { Err(Ec2Error::invalid_value(param, g, "The only group is 'all'.")) }
}

/// A launch permission's `UserId`: an account number (docs/accounts.md) -> the CloudStack
/// account name updateTemplatePermissions wants; a name is taken as it is.
fn launch_user(names: &std::collections::HashMap<String, String>, v: &str) -> Result<String, Ec2Error> {
    names.get(v).cloned().ok_or_else(|| {
        Ec2Error::new(
            Code::InvalidAmiAttributeItemValue,
            format!("Invalid attribute item value \"{v}\" for userId item type: no such account."),
        )
    })
}

/// Every launch-permission `UserId` of the request -> account name (docs/accounts.md).
async fn launch_user_names(ctx: &Ctx<'_>) -> std::collections::HashMap<String, String> {
    let p = &ctx.req.params;
    let mut wanted: Vec<String> = p.list("UserId").into_iter().map(str::to_string).collect();
    for op in ["Add", "Remove"] {
        for m in p.members(&format!("LaunchPermission.{op}")) {
            wanted.extend(m.get("UserId").filter(|u| !u.is_empty()).map(str::to_string));
        }
    }
    let mut out = std::collections::HashMap::new();
    for v in wanted {
        if let Some(n) = ctx.account_name_of(&v).await {
            out.insert(v, n);
        }
    }
    out
}

fn read_perm_change(ctx: &Ctx<'_>, names: &std::collections::HashMap<String, String>) -> Result<PermChange, Ec2Error> {
    let p = &ctx.req.params;
    let mut c = PermChange::default();
    for (op, add) in [("Add", true), ("Remove", false)] {
        for m in p.members(&format!("LaunchPermission.{op}")) {
            if let Some(g) = m.get("Group") {
                group_ok(g, &format!("LaunchPermission.{op}.N.Group"))?;
                if add { c.add_all = true } else { c.remove_all = true }
            }
            if let Some(u) = m.get("UserId").filter(|u| !u.is_empty()) {
                let u = launch_user(names, u)?;
                if add { c.add_users.push(u) } else { c.remove_users.push(u) }
            }
        }
    }
    // The older flat form: Attribute=launchPermission OperationType=add|remove UserGroup.N / UserId.N.
    let groups = p.list("UserGroup");
    let users = p.list("UserId");
    if !groups.is_empty() || !users.is_empty() {
        let add = match p.get("OperationType") {
            Some("add") => true,
            Some("remove") => false,
            Some(o) => return Err(Ec2Error::invalid_value("OperationType", o, "Expected add or remove.")),
            None => return Err(Ec2Error::missing_parameter("OperationType")),
        };
        for g in groups {
            group_ok(g, "UserGroup")?;
            if add { c.add_all = true } else { c.remove_all = true }
        }
        for u in users {
            let u = launch_user(names, u)?;
            if add { c.add_users.push(u) } else { c.remove_users.push(u) }
        }
    }
    Ok(c)
}

pub async fn modify_attribute(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let p = &ctx.req.params;
    let (ec2, uuid) = prep.ids.first().cloned().ok_or_else(|| Ec2Error::missing_parameter("ImageId"))?;
    let attr = p.get("Attribute").filter(|a| !a.is_empty());
    if let Some(a) = attr
        && !matches!(a, "description" | "launchPermission")
    {
        return Err(match IMAGE_ATTRIBUTES.contains(&a) {
            true => Ec2Error::new(
                Code::UnsupportedOperation,
                format!("The attribute {a} cannot be modified on this cloud."),
            ),
            false => Ec2Error::invalid_value("Attribute", a, "Unknown attribute."),
        });
    }
    if !p.list("ProductCode").is_empty() {
        return Err(Ec2Error::new(Code::UnsupportedOperation, "Product codes are not offered by this cloud."));
    }
    let description = p
        .get("Description.Value")
        .or_else(|| (attr == Some("description")).then(|| p.get("Value")).flatten())
        .map(str::to_string);
    let names = launch_user_names(ctx).await;
    let perms = read_perm_change(ctx, &names)?;
    let has_perms = perms.add_all || perms.remove_all || !perms.add_users.is_empty() || !perms.remove_users.is_empty();
    if description.is_none() && !has_perms {
        return Err(match attr {
            Some("description") => Ec2Error::missing_parameter("Description.Value"),
            Some(_) => Ec2Error::missing_parameter("LaunchPermission"),
            None => Ec2Error::missing_parameter("Attribute"),
        });
    }
    if perms.add_all && perms.remove_all {
        return Err(Ec2Error::combination("The group 'all' cannot be both added and removed."));
    }
    // The calls, in order; each with its inverse for when a later one fails.
    let mut calls: Vec<(&str, CsParams, Option<Call>)> = Vec::new();
    let several = usize::from(description.is_some())
        + usize::from(perms.remove_all || !perms.remove_users.is_empty())
        + usize::from(perms.add_all || !perms.add_users.is_empty())
        > 1;
    // Undo needs the state before; read only when more than one call could half-succeed.
    let before = if several {
        let t = find_template(ctx, &ec2, &uuid).await?;
        let (public, accounts) = launch_permissions(ctx, &uuid).await?;
        Some((t, public, accounts))
    } else {
        None
    };
    if perms.remove_all || !perms.remove_users.is_empty() {
        let mut c = vec![pair("id", &uuid)];
        let mut undo = vec![pair("id", &uuid)];
        if !perms.remove_users.is_empty() {
            c.push(pair("op", "remove"));
            c.push(pair("accounts", perms.remove_users.join(",")));
            if let Some((_, _, had)) = &before {
                let back: Vec<&String> = perms.remove_users.iter().filter(|u| had.contains(u)).collect();
                if !back.is_empty() {
                    undo.push(pair("op", "add"));
                    undo.push(pair("accounts", back.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")));
                }
            }
        }
        if perms.remove_all {
            c.push(pair("ispublic", "false"));
            if let Some((_, public, _)) = &before {
                undo.push(pair("ispublic", public.to_string()));
            }
        }
        calls.push(("updateTemplatePermissions", c, Some(("updateTemplatePermissions", undo))));
    }
    if perms.add_all || !perms.add_users.is_empty() {
        let mut c = vec![pair("id", &uuid)];
        let mut undo = vec![pair("id", &uuid)];
        if !perms.add_users.is_empty() {
            c.push(pair("op", "add"));
            c.push(pair("accounts", perms.add_users.join(",")));
            if let Some((_, _, had)) = &before {
                let new: Vec<&String> = perms.add_users.iter().filter(|u| !had.contains(u)).collect();
                if !new.is_empty() {
                    undo.push(pair("op", "remove"));
                    undo.push(pair("accounts", new.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")));
                }
            }
        }
        if perms.add_all {
            c.push(pair("ispublic", "true"));
            if let Some((_, public, _)) = &before {
                undo.push(pair("ispublic", public.to_string()));
            }
        }
        calls.push(("updateTemplatePermissions", c, Some(("updateTemplatePermissions", undo))));
    }
    if let Some(d) = &description {
        if d.chars().count() > 255 {
            return Err(Ec2Error::invalid_value("Description", d, "At most 255 characters."));
        }
        // CloudStack refuses an empty display text; EC2 allows clearing it, so clear it to the name.
        let text = if d.is_empty() {
            match &before {
                Some((t, _, _)) => field(t, "name").unwrap_or(" ").to_string(),
                None => field(&find_template(ctx, &ec2, &uuid).await?, "name").unwrap_or(" ").to_string(),
            }
        } else {
            d.clone()
        };
        let undo = before
            .as_ref()
            .and_then(|(t, _, _)| field(t, "displaytext"))
            .map(|old| ("updateTemplate", vec![pair("id", &uuid), pair("displaytext", old)]));
        calls.push(("updateTemplate", vec![pair("id", &uuid), pair("displaytext", text)], undo));
    }
    let mut undo = Undo::new(ctx);
    for (cmd, params, back) in calls {
        if let Err(e) = ctx.call(cmd, &params).await {
            let e = undo.fail(e).await;
            // A refused account may also mean the template went away meanwhile.
            if e.is(Code::InvalidAmiAttributeItemValue) {
                find_template(ctx, &ec2, &uuid).await?;
            }
            return Err(e);
        }
        // Only undos that change something (more than the id).
        if let Some((ucmd, uparams)) = back
            && uparams.len() > 1
        {
            undo.changed(UndoCall::call(ucmd, uparams)).await;
        }
    }
    undo.disarm().await;
    Ok(Value::Null)
}
