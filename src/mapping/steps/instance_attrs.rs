//! Instance attributes: Describe/Modify/ResetInstanceAttribute (`instance_attribute`), the check
//! of a requested change (`instance_attribute_change` resolver), and DescribeInstanceStatus'
//! running-only rule (`running_unless_all`).

use serde_json::{Value, json};

use super::super::convert::iso8601;
use super::super::exec::{Ctx, Prepared};
use super::super::expr::scalar_text;
use super::attrs;
use super::check_keys;
use super::common::field;
use super::instances::{DELETE_ON_TERMINATION, DISABLE_API_TERMINATION};
use crate::base::{Code, Ec2Error};
use crate::ids::{self, Kind};

/// Every attribute name EC2 knows (DescribeInstanceAttribute's enumeration).
const NAMES: &[&str] = &[
    "instanceType",
    "kernel",
    "ramdisk",
    "userData",
    "disableApiTermination",
    "instanceInitiatedShutdownBehavior",
    "rootDeviceName",
    "blockDeviceMapping",
    "productCodes",
    "sourceDestCheck",
    "groupSet",
    "ebsOptimized",
    "sriovNetSupport",
    "enaSupport",
    "enclaveOptions",
    "disableApiStop",
];

/// Attributes CloudStack cannot change, and the one value each already has (a Modify asking
/// for that value changes nothing and succeeds).
const FIXED: &[(&str, &str)] = &[
    ("instanceInitiatedShutdownBehavior", "stop"),
    ("sourceDestCheck", "true"),
    ("ebsOptimized", "false"),
    ("enaSupport", "false"),
    ("disableApiStop", "false"),
];

fn unknown_attribute(a: &str) -> Ec2Error {
    Ec2Error::invalid_value("attribute", a, "Unknown attribute.")
}

pub fn check_args(args: &Value) -> Result<(), String> {
    check_keys(args, &["op"], &["op"])?;
    match args.get("op").and_then(Value::as_str) {
        Some("describe" | "modify") => Ok(()),
        _ => Err("args.op must be describe or modify".into()),
    }
}

/// Resolver `instance_attribute_change`: the one change a ModifyInstanceAttribute asks for, as
/// `attribute=value` (`serviceofferingid=<uuid>`, `userdata=<base64>`, `groupSet=` for the
/// `GroupId.N` of an instance in a subnet (eni::set_instance_group_ids), or `none=` for a change
/// to what the instance already is). Checked before DryRun.
pub async fn r_change(ctx: &Ctx<'_>, _: Option<String>, _: &str, _: &str) -> Result<Vec<String>, Ec2Error> {
    let p = &ctx.req.params;
    // Structure form (InstanceType.Value=...) and Attribute/Value form.
    let mut asked: Vec<(String, String)> = Vec::new();
    for (name, wire) in [
        ("instanceType", "InstanceType"),
        ("kernel", "Kernel"),
        ("ramdisk", "Ramdisk"),
        ("userData", "UserData"),
        ("disableApiTermination", "DisableApiTermination"),
        ("instanceInitiatedShutdownBehavior", "InstanceInitiatedShutdownBehavior"),
        ("sourceDestCheck", "SourceDestCheck"),
        ("ebsOptimized", "EbsOptimized"),
        ("sriovNetSupport", "SriovNetSupport"),
        ("enaSupport", "EnaSupport"),
        ("disableApiStop", "DisableApiStop"),
    ] {
        if let Some(v) = p.get(&format!("{wire}.Value")) {
            asked.push((name.to_string(), v.to_string()));
        }
    }
    if !p.list("GroupId").is_empty() {
        asked.push(("groupSet".into(), String::new()));
    }
    if !p.members("BlockDeviceMapping").is_empty() {
        asked.push(("blockDeviceMapping".into(), "members".into()));
    }
    if let Some(a) = p.get("Attribute") {
        if !NAMES.contains(&a) {
            return Err(unknown_attribute(a));
        }
        let v = p.get("Value").ok_or_else(|| Ec2Error::missing_parameter("Value"))?;
        asked.push((a.to_string(), v.to_string()));
    }
    let (name, value) = match asked.len() {
        0 => return Err(Ec2Error::missing_parameter("Attribute")),
        1 => asked.swap_remove(0),
        _ => {
            return Err(Ec2Error::combination(format!(
                "Only one attribute can be modified at a time; the request names {}",
                asked.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let unsupported = || {
        Ec2Error::new(
            Code::UnsupportedOperation,
            format!("The cloud behind this gateway cannot change the instance attribute '{name}'."),
        )
    };
    match name.as_str() {
        "instanceType" => {
            let id = super::super::resolve::apply(ctx, "offering", Some(value), "InstanceType").await?;
            Ok(id.into_iter().map(|u| format!("serviceofferingid={u}")).collect())
        }
        "userData" => {
            let b = super::super::resolve::apply(ctx, "base64", Some(value), "UserData").await?;
            Ok(b.into_iter().map(|u| format!("userdata={u}")).collect())
        }
        // DeleteOnTermination of attached volumes, kept by the gateway; checked in `modify`.
        "blockDeviceMapping" if value == "members" => Ok(vec!["blockDeviceMapping=".into()]),
        // The groups of an instance in a subnet (the gateway's; checked in `modify`).
        "groupSet" => Ok(vec!["groupSet=".into()]),
        // Kept by the gateway (TerminateInstances reads it).
        "disableApiTermination" => match value.to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => Ok(vec![format!("{DISABLE_API_TERMINATION}={v}")]),
            _ => Err(Ec2Error::invalid_value("DisableApiTermination", &value, "The value must be true or false.")),
        },
        n => match FIXED.iter().find(|(f, _)| *f == n) {
            Some((_, v)) if value.eq_ignore_ascii_case(v) => Ok(vec!["none=".into()]),
            _ => Err(unsupported()),
        },
    }
}

async fn the_vm(ctx: &Ctx<'_>, prep: &Prepared) -> Result<(String, Value), Ec2Error> {
    let (ec2, uuid) = prep.ids.first().ok_or_else(|| Ec2Error::missing_parameter("InstanceId"))?;
    let kind = ctx.ex.table.kinds.get(&Kind::Instance).ok_or_else(Ec2Error::internal)?;
    let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
    let mut params = lc.params.clone();
    params.push(("id".into(), uuid.clone()));
    let vms = ctx.list(&lc.command, &params, &lc.items).await?;
    match vms.into_iter().find(|v| field(v, "id") == Some(uuid.as_str())) {
        Some(vm) => Ok((ec2.clone(), vm)),
        None => Err(super::super::exec::not_found(kind, &[ec2.as_str()])),
    }
}

fn val(v: impl Into<Value>) -> Value {
    json!({ "value": v.into() })
}

async fn describe(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let attr = ctx.req.params.require("Attribute")?;
    if !NAMES.contains(&attr) {
        return Err(unknown_attribute(attr));
    }
    let (ec2, vm) = the_vm(ctx, prep).await?;
    let uuid = field(&vm, "id").unwrap_or_default().to_string();
    let value: Value = match attr {
        "instanceType" => val(field(&vm, "serviceofferingname").unwrap_or_default()),
        "kernel" | "ramdisk" | "sriovNetSupport" => json!({}),
        "userData" => {
            let r = ctx.call("getVirtualMachineUserData", &[("virtualmachineid".into(), uuid.clone())]).await?;
            let r = r.get("virtualmachineuserdata").unwrap_or(&r);
            match field(r, "userdata") {
                Some(u) => val(u),
                None => json!({}),
            }
        }
        "rootDeviceName" => val("/dev/sda1"),
        "blockDeviceMapping" => {
            let p = [("virtualmachineid".to_string(), uuid.clone()), ("listall".to_string(), "true".to_string())];
            let vols = ctx.list("listVolumes", &p, "volume").await?;
            let dot = attrs::all(ctx, attrs::VOLUME).await?;
            let mut rows: Vec<(i64, Value)> = vols
                .iter()
                .map(|v| {
                    let root = field(v, "type") == Some("ROOT");
                    let dev = v.get("deviceid").map(scalar_text).and_then(|d| d.parse::<i64>().ok()).unwrap_or(0);
                    let vid = ids::ec2_id(Kind::Volume, field(v, "id").unwrap_or_default());
                    let name = if root { "/dev/sda1".to_string() } else { device_name(dev) };
                    let order = if root { -1 } else { dev };
                    let ebs = json!({
                        "volumeId": vid,
                        "status": "attached",
                        "attachTime": field(v, "attached").or(field(v, "created")).and_then(iso8601),
                        "deleteOnTermination": root || attrs::flag(dot.get(&vid), DELETE_ON_TERMINATION, false),
                    });
                    (order, json!({ "deviceName": name, "ebs": ebs }))
                })
                .collect();
            rows.sort_by_key(|(o, _)| *o);
            let record: Vec<(Kind, String, String)> = vols
                .iter()
                .filter_map(|v| field(v, "id"))
                .map(|u| (Kind::Volume, ids::ec2_id(Kind::Volume, u), u.to_string()))
                .collect();
            ctx.ex.ids.record(record).await;
            Value::Array(rows.into_iter().map(|(_, r)| r).collect())
        }
        "productCodes" => json!([]),
        // A VPC instance's groups are the gateway's (docs/vpc.md), CloudStack lists none for it.
        "groupSet" => match super::vpc_sg::instance_groups(ctx).await?.remove(&ec2) {
            Some(g) => Value::Array(g),
            None => vm.get("securitygroup").cloned().unwrap_or_else(|| json!([])),
        },
        "enclaveOptions" => json!({ "enabled": false }),
        "disableApiTermination" => {
            let a = attrs::get(ctx, attrs::INSTANCE, &ec2).await?;
            val(attrs::flag(Some(&a), DISABLE_API_TERMINATION, false))
        }
        a => match FIXED.iter().find(|(f, _)| *f == a) {
            Some((_, v)) if *v == "true" || *v == "false" => val(*v == "true"),
            Some((_, v)) => val(*v),
            None => json!({}),
        },
    };
    let mut out = serde_json::Map::new();
    out.insert("instanceId".into(), Value::String(ec2));
    out.insert(attr.to_string(), value);
    Ok(Value::Object(out))
}

/// CloudStack's device id -> a Linux device name (1 -> /dev/sdb, ...).
fn device_name(dev: i64) -> String {
    let letter = (b'a' + dev.clamp(0, 25) as u8) as char;
    format!("/dev/sd{letter}")
}

async fn modify(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    let change = prep.params.iter().find(|(k, _)| k == "_change").map(|(_, v)| v.as_str()).unwrap_or("none=");
    let (what, value) = change.split_once('=').ok_or_else(Ec2Error::internal)?;
    if what == "none" {
        return Ok(Value::Null);
    }
    if what == DISABLE_API_TERMINATION {
        // The id was checked when it was resolved; nothing to ask CloudStack.
        let (ec2, _) = prep.ids.first().ok_or_else(|| Ec2Error::missing_parameter("InstanceId"))?;
        let v = Value::Bool(value == "true");
        return attrs::set(ctx, attrs::INSTANCE, std::slice::from_ref(ec2), what, v).await.map(|_| Value::Null);
    }
    if what == "groupSet" {
        let (ec2, _) = prep.ids.first().ok_or_else(|| Ec2Error::missing_parameter("InstanceId"))?;
        let asked: Vec<String> = ctx.req.params.list("GroupId").into_iter().map(str::to_string).collect();
        // EC2 takes groups as GroupId.N only (`Value` is for other attributes).
        if asked.is_empty() {
            return Err(Ec2Error::missing_parameter("GroupId"));
        }
        return super::eni::set_instance_group_ids(ctx, ec2, &asked).await.map(|_| Value::Null);
    }
    let (ec2, vm) = the_vm(ctx, prep).await?;
    if what == "blockDeviceMapping" {
        return delete_on_termination(ctx, &ec2, field(&vm, "id").unwrap_or_default()).await.map(|_| Value::Null);
    }
    let uuid = field(&vm, "id").unwrap_or_default().to_string();
    if what == "serviceofferingid" && field(&vm, "serviceofferingid") == Some(value) {
        return Ok(Value::Null);
    }
    if field(&vm, "state") != Some("Stopped") {
        return Err(Ec2Error::new(
            Code::IncorrectInstanceState,
            format!("The instance '{ec2}' is not in the 'stopped' state."),
        ));
    }
    let params = [("id".to_string(), uuid), (what.to_string(), value.to_string())];
    let command = if what == "serviceofferingid" { "changeServiceForVirtualMachine" } else { "updateVirtualMachine" };
    ctx.call(command, &params).await?;
    Ok(Value::Null)
}

/// ModifyInstanceAttribute BlockDeviceMapping.N: DeviceName + Ebs.DeleteOnTermination of a
/// volume attached to the instance. Everything is checked before anything is stored. The root
/// volume always goes with a CloudStack VM, so it cannot be kept.
async fn delete_on_termination(ctx: &Ctx<'_>, ec2: &str, uuid: &str) -> Result<(), Ec2Error> {
    let p = [("virtualmachineid".to_string(), uuid.to_string()), ("listall".to_string(), "true".to_string())];
    let vols = ctx.list("listVolumes", &p, "volume").await?;
    let mut on: Vec<String> = Vec::new();
    let mut off: Vec<String> = Vec::new();
    for m in ctx.req.params.members("BlockDeviceMapping") {
        let dev = m
            .get("DeviceName")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| Ec2Error::missing_parameter("BlockDeviceMapping.DeviceName"))?;
        for unsupported in ["VirtualName", "NoDevice", "Ebs.VolumeId"] {
            if m.get(unsupported).is_some() {
                return Err(Ec2Error::new(
                    Code::UnsupportedOperation,
                    format!(
                        "BlockDeviceMapping.{unsupported} cannot be changed on this cloud; only Ebs.DeleteOnTermination can."
                    ),
                ));
            }
        }
        let keep = match m.bool("Ebs.DeleteOnTermination")? {
            Some(b) => b,
            None => return Err(Ec2Error::missing_parameter("BlockDeviceMapping.Ebs.DeleteOnTermination")),
        };
        let root = matches!(dev.strip_prefix("/dev/").unwrap_or(dev), "sda1" | "sda" | "xvda");
        let wanted = if root { Some(0) } else { super::super::resolve::device_id(dev).map(i64::from) };
        let found = vols.iter().find(|v| {
            if root {
                field(v, "type") == Some("ROOT")
            } else {
                field(v, "type") != Some("ROOT")
                    && v.get("deviceid").map(scalar_text).and_then(|d| d.parse::<i64>().ok()) == wanted
            }
        });
        let Some(v) = found else {
            return Err(Ec2Error::invalid_value(
                "BlockDeviceMapping.DeviceName",
                dev,
                &format!("No device is currently mapped at {dev} on instance {ec2}."),
            ));
        };
        if root {
            if !keep {
                return Err(Ec2Error::new(
                    Code::UnsupportedOperation,
                    "The root volume of an instance on this cloud is always deleted on termination.",
                ));
            }
            continue;
        }
        let vol = ids::ec2_id(Kind::Volume, field(v, "id").unwrap_or_default());
        if keep { on.push(vol) } else { off.push(vol) }
    }
    attrs::set(ctx, attrs::VOLUME, &on, DELETE_ON_TERMINATION, Value::Bool(true)).await?;
    attrs::set(ctx, attrs::VOLUME, &off, DELETE_ON_TERMINATION, Value::Bool(false)).await
}

pub async fn instance_attribute(ctx: &Ctx<'_>, prep: &Prepared) -> Result<Value, Ec2Error> {
    match ctx.action.args.get("op").and_then(Value::as_str) {
        Some("describe") => describe(ctx, prep).await,
        Some("modify") => modify(ctx, prep).await,
        _ => Err(Ec2Error::internal()),
    }
}

/// DescribeInstanceStatus: without IncludeAllInstances=true, running instances only.
pub async fn running_unless_all(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    if ctx.req.params.bool("IncludeAllInstances")? != Some(true) {
        items.retain(|v| field(v, "state") == Some("Running"));
    }
    Ok(items)
}

/// DescribeInstanceTypes: InstanceType.N keeps the named types; every one must exist.
pub async fn instance_type_names(ctx: &Ctx<'_>, _: &Prepared, mut items: Vec<Value>) -> Result<Vec<Value>, Ec2Error> {
    // System offerings (virtual routers, consoles) are not instance types.
    items.retain(|o| o.get("issystem").and_then(Value::as_bool) != Some(true));
    let wanted: Vec<&str> = ctx.req.params.list("InstanceType");
    if wanted.is_empty() {
        return Ok(items);
    }
    let missing: Vec<&str> =
        wanted.iter().copied().filter(|w| !items.iter().any(|o| field(o, "name") == Some(*w))).collect();
    if !missing.is_empty() {
        return Err(Ec2Error::new(
            Code::InvalidInstanceType,
            format!("The following supplied instance types do not exist: [{}]", missing.join(", ")),
        ));
    }
    items.retain(|o| field(o, "name").is_some_and(|n| wanted.contains(&n)));
    Ok(items)
}
