//! DescribeImages: Owner.N and ExecutableBy.N over the united templatefilter listings.

use serde_json::Value;

use super::super::backend::BoxFuture;
use super::super::exec::{Ctx, Prepared};
use crate::ec2::Ec2Error;

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
pub fn owners<'a>(ctx: &'a Ctx<'a>, _: &'a Prepared, items: Vec<Value>) -> BoxFuture<'a, Result<Vec<Value>, Ec2Error>> {
    Box::pin(async move {
        let owners: Vec<&str> = ctx.req.params.list("Owner");
        let exec_by: Vec<&str> = ctx.req.params.list("ExecutableBy");
        let is_self = |it: &Value| it.get("_fanout").and_then(Value::as_str) == Some("self");
        let owner_ok = |it: &Value| {
            owners.is_empty()
                || owners.iter().any(|o| match *o {
                    "self" => is_self(it),
                    "amazon" => truthy(it.get("isfeatured")) && !is_self(it),
                    "all" => true,
                    acct => it.get("account").and_then(Value::as_str) == Some(acct),
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
    })
}
