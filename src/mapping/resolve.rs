//! Named resolvers: turn an EC2 parameter value into what CloudStack wants (an id for a name,
//! a uuid for an EC2 id, a checked value). Written after `|` in a parameter, or in `via`.
//! A resolver gets `None` when the parameter is absent and may supply a default.

use base64::Engine;
use serde_json::Value;

use super::backend::BoxFuture;
use super::exec::Ctx;
use super::expr::scalar_text;
use super::table::Table;
use crate::ec2::Ec2Error;
use crate::ids::Kind;

type Out = Result<Vec<String>, Ec2Error>;
pub type ResolveFn = for<'a> fn(&'a Ctx<'a>, Option<String>, &'a str, &'a str) -> BoxFuture<'a, Out>;

const RESOLVERS: &[(&str, ResolveFn, &str)] = &[
    ("id:", r_id, "EC2 id -> CloudStack uuid (id:instance, id:image, ...); Malformed / NotFound errors"),
    ("zone", r_zone, "availability zone name -> zone id; absent -> the first enabled zone"),
    ("offering", r_offering, "instance type -> service offering id (offering named like the type)"),
    ("keypair", r_keypair, "key pair name, checked to exist (InvalidKeyPair.NotFound)"),
    ("security_group_name", r_group_name, "security group name, checked to exist (InvalidGroup.NotFound)"),
    ("bool", r_bool, "true / false, checked"),
    ("int", r_int, "an integer, checked"),
    ("base64", r_base64, "base64 text, checked and passed on unchanged"),
    ("templatefilters", r_templatefilters, "Owner.N / ExecutableBy.N -> listTemplates templatefilter values"),
    ("allowed:", r_allowed, "allowed:a|b checks the value is one of a, b (InvalidParameterValue); sends nothing"),
    ("address", super::steps::addresses::r_address, "PublicIp / AllocationId / AssociationId -> the address uuid"),
    ("address:", super::steps::addresses::r_address, "address:associated: the same, nothing when not associated"),
    (
        "instance_attribute_change",
        super::steps::instance_attrs::r_change,
        "ModifyInstanceAttribute: the one change asked for, checked",
    ),
    ("tag_resources", super::steps::tags::r_tag_resources, "ResourceId.N of any kind -> Type:uuid, checked"),
];

pub fn describe() -> Vec<(&'static str, &'static str)> {
    RESOLVERS.iter().map(|(n, _, d)| (*n, *d)).collect()
}

fn lookup(name: &str) -> Option<(ResolveFn, &str)> {
    for (n, f, _) in RESOLVERS {
        if let Some(pfx) = n.strip_suffix(':') {
            if let Some(arg) = name.strip_prefix(pfx).and_then(|r| r.strip_prefix(':')) {
                return Some((*f, arg));
            }
        } else if *n == name {
            return Some((*f, ""));
        }
    }
    None
}

pub fn check(name: &str, t: &Table) -> Result<(), String> {
    let Some((_, arg)) = lookup(name) else {
        let known: Vec<&str> = RESOLVERS.iter().map(|(n, _, _)| *n).collect();
        return Err(format!("unknown resolver '{name}' (known: {})", known.join(", ")));
    };
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

fn r_id<'a>(ctx: &'a Ctx<'a>, input: Option<String>, arg: &'a str, _: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
        let Some(v) = input else { return Ok(Vec::new()) };
        let kind = Kind::from_name(arg).ok_or_else(Ec2Error::internal)?;
        ctx.resolve_ids(kind, &[v]).await
    })
}

fn field(v: &Value, k: &str) -> Option<String> {
    v.get(k).map(scalar_text)
}

fn r_zone<'a>(ctx: &'a Ctx<'a>, input: Option<String>, _: &'a str, _: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
        let zone = match &input {
            Some(name) => {
                ctx.find_cached("listZones", &[], "zone", |z| field(z, "name").as_deref() == Some(name.as_str()))
                    .await?
            }
            None => {
                let enabled = |z: &Value| field(z, "allocationstate").is_none_or(|s| s == "Enabled");
                ctx.find_cached("listZones", &[], "zone", enabled).await?
            }
        };
        match (zone.and_then(|z| field(&z, "id")), input) {
            (Some(id), _) => Ok(vec![id]),
            (None, Some(name)) => {
                Err(Ec2Error::new("InvalidParameterValue", format!("Invalid availability zone: [{name}]")))
            }
            (None, None) => Err(Ec2Error::new("Unavailable", "No availability zone is available.")),
        }
    })
}

fn r_offering<'a>(ctx: &'a Ctx<'a>, input: Option<String>, _: &'a str, param: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
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
    })
}

fn r_keypair<'a>(ctx: &'a Ctx<'a>, input: Option<String>, _: &'a str, _: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
        let Some(name) = input else { return Ok(Vec::new()) };
        let k = ctx
            .find_cached("listSSHKeyPairs", &[], "sshkeypair", |k| field(k, "name").as_deref() == Some(name.as_str()))
            .await?;
        match k {
            Some(_) => Ok(vec![name]),
            None => Err(Ec2Error::new("InvalidKeyPair.NotFound", format!("The key pair '{name}' does not exist"))),
        }
    })
}

fn r_group_name<'a>(ctx: &'a Ctx<'a>, input: Option<String>, _: &'a str, _: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
        let Some(name) = input else { return Ok(Vec::new()) };
        let g = ctx
            .find_cached("listSecurityGroups", &[], "securitygroup", |g| {
                field(g, "name").as_deref() == Some(name.as_str())
            })
            .await?;
        match g {
            Some(_) => Ok(vec![name]),
            None => Err(Ec2Error::new("InvalidGroup.NotFound", format!("The security group '{name}' does not exist"))),
        }
    })
}

fn r_bool<'a>(_: &'a Ctx<'a>, input: Option<String>, _: &'a str, param: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
        Ok(match input {
            None => Vec::new(),
            Some(v) if v.eq_ignore_ascii_case("true") => vec!["true".into()],
            Some(v) if v.eq_ignore_ascii_case("false") => vec!["false".into()],
            Some(v) => return Err(Ec2Error::invalid_value(param, &v, "Expected true or false.")),
        })
    })
}

fn r_int<'a>(_: &'a Ctx<'a>, input: Option<String>, _: &'a str, param: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
        match input {
            None => Ok(Vec::new()),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) => Ok(vec![n.to_string()]),
                Err(_) => Err(Ec2Error::invalid_value(param, &v, "Expected an integer.")),
            },
        }
    })
}

fn r_base64<'a>(_: &'a Ctx<'a>, input: Option<String>, _: &'a str, _: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
        let Some(v) = input else { return Ok(Vec::new()) };
        let clean: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        match base64::engine::general_purpose::STANDARD.decode(&clean) {
            Ok(_) => Ok(vec![clean]),
            Err(_) => Err(Ec2Error::new("InvalidParameterValue", "Invalid BASE64 encoding of user data.")),
        }
    })
}

/// DescribeImages' sources. `self` comes first so that de-duplication keeps it (the
/// `image_owners` step reads which call found an image).
fn r_templatefilters<'a>(ctx: &'a Ctx<'a>, _: Option<String>, _: &'a str, _: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
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
    })
}

/// A check only: the EC2 value must be one of the `|`-separated words; nothing goes to CloudStack.
fn r_allowed<'a>(_: &'a Ctx<'a>, input: Option<String>, arg: &'a str, param: &'a str) -> BoxFuture<'a, Out> {
    Box::pin(async move {
        match input {
            Some(v) if !arg.split('|').any(|a| a == v) => {
                Err(Ec2Error::invalid_value(param, &v, &format!("Expected one of: {}.", arg.replace('|', ", "))))
            }
            _ => Ok(Vec::new()),
        }
    })
}
