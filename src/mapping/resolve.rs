//! Named resolvers: turn an EC2 parameter value into what CloudStack wants (an id for a name,
//! a uuid for an EC2 id, a checked value). Written after `|` in a parameter, or in `via`.
//! A resolver gets `None` when the parameter is absent and may supply a default.

use base64::Engine;
use serde_json::Value;

use super::backend::BoxFuture;
use super::exec::Ctx;
use super::expr::scalar_text;
use super::table::Table;
use crate::base::{Code, Ec2Error};
use crate::ids::Kind;

type Out = Result<Vec<String>, Ec2Error>;
pub type ResolveFn = for<'a> fn(&'a Ctx<'a>, Option<String>, &'a str, &'a str) -> BoxFuture<'a, Out>;

/// A plain `async fn(&Ctx, Option<String>, &str, &str) -> Out` as a registry entry: the one
/// place a resolver's future is boxed.
macro_rules! resolver {
    ($f:path) => {{
        fn boxed<'a>(ctx: &'a Ctx<'a>, v: Option<String>, arg: &'a str, name: &'a str) -> BoxFuture<'a, Out> {
            Box::pin($f(ctx, v, arg, name))
        }
        boxed as ResolveFn
    }};
}

const RESOLVERS: &[(&str, ResolveFn, &str)] = &[
    ("id:", resolver!(r_id), "EC2 id -> CloudStack uuid (id:instance, id:image, ...); Malformed / NotFound errors"),
    ("zone", resolver!(r_zone), "availability zone name -> zone id; absent -> the first enabled zone"),
    ("offering", resolver!(r_offering), "instance type -> service offering id (offering named like the type)"),
    ("keypair", resolver!(r_keypair), "key pair name, checked to exist (InvalidKeyPair.NotFound)"),
    ("security_group_name", resolver!(r_group_name), "security group name, checked to exist (InvalidGroup.NotFound)"),
    ("bool", resolver!(r_bool), "true / false, checked"),
    ("int", resolver!(r_int), "an integer, checked"),
    ("base64", resolver!(r_base64), "base64 text, checked and passed on unchanged"),
    (
        "templatefilters",
        resolver!(r_templatefilters),
        "Owner.N / ExecutableBy.N -> listTemplates templatefilter values",
    ),
    (
        "allowed:",
        resolver!(r_allowed),
        "allowed:a|b checks the value is one of a, b (InvalidParameterValue); sends nothing",
    ),
    (
        "address",
        resolver!(super::steps::addresses::r_address),
        "PublicIp / AllocationId / AssociationId -> the address uuid",
    ),
    (
        "address:",
        resolver!(super::steps::addresses::r_address),
        "address:associated: the same, nothing when not associated; address:release: VPC addresses by AllocationId and not associated",
    ),
    (
        "instance_attribute_change",
        resolver!(super::steps::instance_attrs::r_change),
        "ModifyInstanceAttribute: the one change asked for, checked",
    ),
    ("tag_resources", resolver!(super::steps::tags::r_tag_resources), "ResourceId.N of any kind -> Type:uuid, checked"),
    ("zone_named", resolver!(r_zone_named), "availability zone name -> zone id; unknown -> InvalidZone.NotFound"),
    ("int_range:", resolver!(r_int_range), "an integer within MIN..MAX (int_range:1..16384), checked"),
    ("one_of:", resolver!(r_one_of), "one of the listed values (one_of:a,b,c), checked"),
    (
        "printable:",
        resolver!(r_printable),
        "a name of at most N printable characters, not blank (printable:255), checked",
    ),
    (
        "key_pair_name:",
        resolver!(super::steps::keypairs::r_key_pair_name),
        "key_pair_name:KeyPairId: the name given, else the name of the key pair that id names (nothing when absent)",
    ),
    ("device", resolver!(r_device), "EC2 device name (/dev/sdf, /dev/xvdf, xvdf) -> CloudStack device id (5)"),
];

pub fn describe() -> Vec<(&'static str, &'static str)> {
    RESOLVERS.iter().map(|(n, _, d)| (*n, *d)).collect()
}

fn lookup(name: &str) -> Option<(ResolveFn, &str)> {
    super::convert::lookup_named(RESOLVERS, name)
}

pub fn check(name: &str, t: &Table) -> Result<(), String> {
    let Some((_, arg)) = lookup(name) else {
        let known: Vec<&str> = RESOLVERS.iter().map(|(n, _, _)| *n).collect();
        return Err(format!("unknown resolver '{name}' (known: {})", known.join(", ")));
    };
    if let Some(r) = name.strip_prefix("int_range:")
        && int_range(r).is_none()
    {
        return Err(format!("resolver '{name}': expected int_range:MIN..MAX"));
    }
    if name.starts_with("key_pair_name:") && arg.is_empty() {
        return Err(format!("resolver '{name}': expected key_pair_name:IdParameter"));
    }
    if name.starts_with("printable:") && arg.parse::<usize>().is_err() {
        return Err(format!("resolver '{name}': expected printable:MAXLEN"));
    }
    if name.starts_with("one_of:") && arg.is_empty() {
        return Err(format!("resolver '{name}': expected one_of:a,b,c"));
    }
    if name.starts_with("id:") {
        match Kind::from_name(arg) {
            None => return Err(format!("unknown id kind '{arg}' in resolver '{name}'")),
            Some(k) if !t.kinds.contains_key(&k) => {
                return Err(format!("resolver '{name}' needs a [kind.{arg}] entry"));
            }
            _ => {}
        }
    }
    Ok(())
}

pub async fn apply(ctx: &Ctx<'_>, name: &str, input: Option<String>, param: &str) -> Out {
    match lookup(name) {
        Some((f, arg)) => f(ctx, input, arg, param).await,
        None => Err(Ec2Error::internal()),
    }
}

async fn r_id(ctx: &Ctx<'_>, input: Option<String>, arg: &str, _: &str) -> Out {
    let Some(v) = input else { return Ok(Vec::new()) };
    let kind = Kind::from_name(arg).ok_or_else(Ec2Error::internal)?;
    ctx.resolve_ids(kind, &[v]).await
}

fn field(v: &Value, k: &str) -> Option<String> {
    v.get(k).map(scalar_text)
}

async fn r_zone(ctx: &Ctx<'_>, input: Option<String>, _: &str, _: &str) -> Out {
    let zone = match &input {
        Some(name) => {
            ctx.find_cached("listZones", &[], "zone", |z| field(z, "name").as_deref() == Some(name.as_str())).await?
        }
        None => {
            let enabled = |z: &Value| field(z, "allocationstate").is_none_or(|s| s == "Enabled");
            ctx.find_cached("listZones", &[], "zone", enabled).await?
        }
    };
    match (zone.and_then(|z| field(&z, "id")), input) {
        (Some(id), _) => Ok(vec![id]),
        (None, Some(name)) => {
            Err(Ec2Error::new(Code::InvalidParameterValue, format!("Invalid availability zone: [{name}]")))
        }
        (None, None) => Err(Ec2Error::new(Code::Unavailable, "No availability zone is available.")),
    }
}

async fn r_offering(ctx: &Ctx<'_>, input: Option<String>, _: &str, param: &str) -> Out {
    let Some(name) = input else { return Ok(Vec::new()) };
    let o = ctx
        .find_cached("listServiceOfferings", &[], "serviceoffering", |o| {
            field(o, "name").as_deref() == Some(name.as_str())
        })
        .await?;
    match o.and_then(|o| field(&o, "id")) {
        Some(id) => Ok(vec![id]),
        None => Err(Ec2Error::invalid_value(param, &name, "The instance type does not exist.")),
    }
}

async fn r_keypair(ctx: &Ctx<'_>, input: Option<String>, _: &str, _: &str) -> Out {
    let Some(name) = input else { return Ok(Vec::new()) };
    let k = ctx
        .find_cached("listSSHKeyPairs", &[], "sshkeypair", |k| field(k, "name").as_deref() == Some(name.as_str()))
        .await?;
    match k {
        Some(_) => Ok(vec![name]),
        None => Err(Ec2Error::new(Code::InvalidKeyPairNotFound, format!("The key pair '{name}' does not exist"))),
    }
}

async fn r_group_name(ctx: &Ctx<'_>, input: Option<String>, _: &str, _: &str) -> Out {
    let Some(name) = input else { return Ok(Vec::new()) };
    let g = ctx
        .find_cached("listSecurityGroups", &[], "securitygroup", |g| field(g, "name").as_deref() == Some(name.as_str()))
        .await?;
    match g {
        Some(_) => Ok(vec![name]),
        None => Err(Ec2Error::new(Code::InvalidGroupNotFound, format!("The security group '{name}' does not exist"))),
    }
}

async fn r_bool(_: &Ctx<'_>, input: Option<String>, _: &str, param: &str) -> Out {
    Ok(match input {
        None => Vec::new(),
        Some(v) if v.eq_ignore_ascii_case("true") => vec!["true".into()],
        Some(v) if v.eq_ignore_ascii_case("false") => vec!["false".into()],
        Some(v) => return Err(Ec2Error::invalid_value(param, &v, "Expected true or false.")),
    })
}

async fn r_int(_: &Ctx<'_>, input: Option<String>, _: &str, param: &str) -> Out {
    match input {
        None => Ok(Vec::new()),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) => Ok(vec![n.to_string()]),
            Err(_) => Err(Ec2Error::invalid_value(param, &v, "Expected an integer.")),
        },
    }
}

async fn r_base64(_: &Ctx<'_>, input: Option<String>, _: &str, _: &str) -> Out {
    let Some(v) = input else { return Ok(Vec::new()) };
    let clean: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(&clean) {
        Ok(_) => Ok(vec![clean]),
        Err(_) => Err(Ec2Error::new(Code::InvalidParameterValue, "Invalid BASE64 encoding of user data.")),
    }
}

/// DescribeImages' sources. `self` comes first so that de-duplication keeps it (the
/// `image_owners` step reads which call found an image).
async fn r_templatefilters(ctx: &Ctx<'_>, _: Option<String>, _: &str, _: &str) -> Out {
    let owners = ctx.req.params.list("Owner");
    let exec_by = ctx.req.params.list("ExecutableBy");
    let only = |w: &str| !owners.is_empty() && owners.iter().all(|o| *o == w);
    let v: Vec<&str> = if only("self") && exec_by.is_empty() {
        vec!["self"]
    } else if only("amazon") && exec_by.is_empty() {
        vec!["featured"]
    } else {
        vec!["self", "executable", "sharedexecutable"]
    };
    Ok(v.into_iter().map(str::to_string).collect())
}

/// A check only: the EC2 value must be one of the `|`-separated words; nothing goes to CloudStack.
async fn r_allowed(_: &Ctx<'_>, input: Option<String>, arg: &str, param: &str) -> Out {
    match input {
        Some(v) if !arg.split('|').any(|a| a == v) => {
            Err(Ec2Error::invalid_value(param, &v, &format!("Expected one of: {}.", arg.replace('|', ", "))))
        }
        _ => Ok(Vec::new()),
    }
}
async fn r_zone_named(ctx: &Ctx<'_>, input: Option<String>, _: &str, _: &str) -> Out {
    let Some(name) = input else { return Ok(Vec::new()) };
    let zone =
        ctx.find_cached("listZones", &[], "zone", |z| field(z, "name").as_deref() == Some(name.as_str())).await?;
    match zone.and_then(|z| field(&z, "id")) {
        Some(id) => Ok(vec![id]),
        None => Err(Ec2Error::new(Code::InvalidZoneNotFound, format!("The zone '{name}' does not exist."))),
    }
}

fn int_range(arg: &str) -> Option<(i64, i64)> {
    let (lo, hi) = arg.split_once("..")?;
    let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

async fn r_int_range(_: &Ctx<'_>, input: Option<String>, arg: &str, param: &str) -> Out {
    let Some(v) = input else { return Ok(Vec::new()) };
    let (lo, hi) = int_range(arg).ok_or_else(Ec2Error::internal)?;
    match v.trim().parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(vec![n.to_string()]),
        Ok(_) => Err(Ec2Error::invalid_value(param, &v, &format!("It must be between {lo} and {hi}."))),
        Err(_) => Err(Ec2Error::invalid_value(param, &v, "Expected an integer.")),
    }
}

async fn r_one_of(_: &Ctx<'_>, input: Option<String>, arg: &str, param: &str) -> Out {
    let Some(v) = input else { return Ok(Vec::new()) };
    if arg.split(',').any(|a| a.trim() == v) {
        Ok(vec![v])
    } else {
        Err(Ec2Error::invalid_value(param, &v, &format!("Expected one of: {}.", arg.replace(',', ", "))))
    }
}

/// `printable:N`: a name of at most N bytes without control characters, and not blank (CloudStack
/// refuses a blank key pair name with the 431 that otherwise means a taken one, docs/mappings.md).
async fn r_printable(_: &Ctx<'_>, input: Option<String>, arg: &str, param: &str) -> Out {
    let Some(v) = input else { return Ok(Vec::new()) };
    let max: usize = arg.parse().map_err(|_| Ec2Error::internal())?;
    if v.len() > max || v.chars().any(char::is_control) || v.trim().is_empty() {
        return Err(Ec2Error::invalid_value(param, &v, &format!("Up to {max} printable characters are allowed.")));
    }
    Ok(vec![v])
}

/// `/dev/sdb`..`/dev/sdz`, `/dev/xvdb`..`/dev/xvdz` (also without `/dev/`): the letter's place
/// after `a` is the CloudStack device id (`a` is the root disk, device 0).
pub fn device_id(dev: &str) -> Option<u32> {
    let d = dev.strip_prefix("/dev/").unwrap_or(dev);
    let l = d.strip_prefix("xvd").or_else(|| d.strip_prefix("sd"))?;
    let mut cs = l.chars();
    let c = cs.next()?;
    (cs.next().is_none() && ('b'..='z').contains(&c)).then(|| c as u32 - 'a' as u32)
}

async fn r_device(_: &Ctx<'_>, input: Option<String>, _: &str, param: &str) -> Out {
    let Some(v) = input else { return Ok(Vec::new()) };
    match device_id(&v) {
        Some(n) => Ok(vec![n.to_string()]),
        None => Err(Ec2Error::invalid_value(
            param,
            &v,
            &format!("{v} is not a valid EBS device name (expected /dev/sd[b-z] or /dev/xvd[b-z])."),
        )),
    }
}

#[cfg(test)]
mod volume_resolver_tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(device_id("/dev/sdb"), Some(1));
        assert_eq!(device_id("/dev/xvdf"), Some(5));
        assert_eq!(device_id("xvdz"), Some(25));
        assert_eq!(device_id("sdc"), Some(2));
        for bad in ["/dev/sda", "/dev/sda1", "/dev/sdf1", "/dev/hdb", "", "/dev/", "/dev/sdé", "/dev/xvd"] {
            assert_eq!(device_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(int_range("1..16384"), Some((1, 16384)));
        assert_eq!(int_range("5..1"), None);
        assert_eq!(int_range("x"), None);
    }
}
