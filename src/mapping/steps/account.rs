//! DescribeAccountAttributes: supported-platforms from the zone network types (Basic or
//! security-group zones -> EC2, other Advanced -> VPC), default-vpc none, limits from the caller's account.

use serde_json::{Value, json};

use super::super::exec::{Ctx, Prepared};
use crate::base::Ec2Error;

const NAMES: &[&str] =
    &["supported-platforms", "default-vpc", "max-instances", "max-elastic-ips", "vpc-max-elastic-ips"];

pub async fn attributes(ctx: &Ctx<'_>, _: &Prepared) -> Result<Value, Ec2Error> {
    let asked: Vec<&str> = ctx.req.params.list("AttributeName");
    for a in &asked {
        if !NAMES.contains(a) {
            return Err(Ec2Error::invalid_value("AttributeName", a, "Unknown account attribute."));
        }
    }
    let want: Vec<&str> = if asked.is_empty() { NAMES.to_vec() } else { asked };
    let mut account: Option<Value> = None;
    if want.iter().any(|w| w.starts_with("max-") || *w == "vpc-max-elastic-ips") {
        let l = ctx.list("listAccounts", &[], "account").await?;
        let mine = ctx.who.account.as_deref();
        account =
            l.iter().find(|a| mine.is_some() && a.get("name").and_then(Value::as_str) == mine).or(l.first()).cloned();
    }
    let limit = |k: &str| -> String {
        match account.as_ref().and_then(|a| a.get(k)) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.as_i64() == Some(-1) => "Unlimited".into(),
            Some(Value::Number(n)) => n.to_string(),
            _ => "Unlimited".into(),
        }
    };
    let mut out = Vec::new();
    for w in want {
        let values: Vec<String> = match w {
            "supported-platforms" => {
                let zones = ctx.list_cached("listZones", &[], "zone").await?;
                // Basic zones, and Advanced zones with security groups (a flat shared
                // network), behave like EC2-Classic; other Advanced zones like VPC.
                let classic = |z: &Value| {
                    z.get("networktype").and_then(Value::as_str) == Some("Basic")
                        || z.get("securitygroupsenabled").and_then(Value::as_bool) == Some(true)
                };
                let mut v = Vec::new();
                if zones.iter().any(classic) {
                    v.push("EC2".to_string());
                }
                if zones.iter().any(|z| !classic(z)) {
                    v.push("VPC".to_string());
                }
                v
            }
            // The default VPC is found by its CloudStack tag (docs/vpc.md); a region without a
            // VPC zone has none.
            "default-vpc" => match super::vpc::vpc_zone(ctx).await {
                // A cloud that cannot list VPCs has no default one: the other attributes are
                // still answered.
                Ok(_) => match super::vpc::default_vpc_attribute(ctx).await {
                    Ok(v) => vec![v],
                    Err(e) => {
                        tracing::warn!(error = %e.message, "default VPC lookup failed; answering none");
                        vec!["none".into()]
                    }
                },
                Err(_) => vec!["none".into()],
            },
            "max-instances" => vec![limit("vmlimit")],
            "max-elastic-ips" => vec![limit("iplimit")],
            _ => vec!["0".into()],
        };
        out.push(json!({ "name": w, "values": values }));
    }
    Ok(Value::Array(out))
}
