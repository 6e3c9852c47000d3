//! Accounts, users and domains: what a user may see of itself, what an admin sees of everyone
//! (getUser by API key is how the gateway finds a user's secret).

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::{Model, keyword_match};
use super::super::render::*;
use super::{CmdSpec, Ctx, admin, read, single};

pub fn commands() -> Vec<CmdSpec> {
    vec![
        read("listAccounts", "org.apache.cloudstack.api.command.user.account.ListAccountsCmd", list_accounts),
        read("listUsers", "org.apache.cloudstack.api.command.admin.user.ListUsersCmd", list_users),
        admin(read("getUser", "org.apache.cloudstack.api.command.admin.user.GetUserCmd", get_user)),
        read("listDomains", "org.apache.cloudstack.api.command.admin.domain.ListDomainsCmd", list_domains),
    ]
}

fn list_accounts(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let Some(id) = ctx.filter(&m.accounts, "id")? else {
        return list::list(p, "account", Vec::<()>::new(), |_| json!({}));
    };
    let scope = m.scope(&ctx.caller, p)?;
    let name = p.opt("name");
    let kind = p.int("accounttype")?;
    let state = p.opt("state");
    let kw = p.opt("keyword");
    let admin = ctx.caller.is_root_admin();
    let items: Vec<_> = m
        .accounts
        .iter()
        .filter(|(s, a)| {
            scope.sees(*s)
                && id.is_none_or(|i| i == *s)
                && name.is_none_or(|n| a.name == n)
                && kind.is_none_or(|k| a.kind as i64 == k)
                && state.is_none_or(|st| a.state.eq_ignore_ascii_case(st))
                && keyword_match(kw, &[&a.name])
        })
        .collect();
    list::list(p, "account", items, |(s, a)| account_json(m, s, a, admin || s == ctx.caller.account))
}

fn list_users(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let Some(id) = ctx.filter(&m.users, "id")? else {
        return list::list(p, "user", Vec::<()>::new(), |_| json!({}));
    };
    let scope = m.scope(&ctx.caller, p)?;
    let username = p.opt("username");
    let kind = p.int("accounttype")?;
    let state = p.opt("state");
    let kw = p.opt("keyword");
    let admin = ctx.caller.is_root_admin();
    let items: Vec<_> = m
        .users
        .iter()
        .filter(|(s, u)| {
            let a = m.account(u.account);
            scope.sees(u.account)
                && id.is_none_or(|i| i == *s)
                && username.is_none_or(|n| u.username == n)
                && kind.is_none_or(|k| a.kind as i64 == k)
                && state.is_none_or(|st| u.state.eq_ignore_ascii_case(st))
                && keyword_match(kw, &[&u.username, &u.firstname, &u.lastname, &u.email])
        })
        .collect();
    list::list(p, "user", items, |(s, u)| user_json(m, u, admin || s == ctx.caller.user))
}

/// getUser's parameter is `userapikey` (marvin getUser: required `userapikey`); a parameter
/// named `apikey` would collide with the authentication `apiKey`, which the server matches
/// case-insensitively. docs/cloudstack-wire.md "Commands" says `apikey`; the server behaviour wins.
fn get_user(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let key = ctx.p.req("userapikey")?;
    match m.api_keys.get(key).and_then(|s| m.users.get(*s)) {
        Some(u) => Ok(single("user", user_json(m, u, true))),
        None => Err(SimError::invalid("Unable to find user by API key")),
    }
}

fn list_domains(ctx: &Ctx, m: &Model) -> SimResult<Value> {
    let p = &ctx.p;
    let Some(id) = ctx.filter(&m.domains, "id")? else {
        return list::list(p, "domain", Vec::<()>::new(), |_| json!({}));
    };
    let name = p.opt("name");
    let kw = p.opt("keyword");
    let all = ctx.caller.is_admin() && p.flag("listall");
    let items: Vec<_> = m
        .domains
        .iter()
        .filter(|(s, d)| {
            (if all { m.domain_within(*s, ctx.caller.domain) } else { *s == ctx.caller.domain })
                && id.is_none_or(|i| i == *s)
                && name.is_none_or(|n| d.name == n)
                && keyword_match(kw, &[&d.name])
        })
        .collect();
    list::list(p, "domain", items, |(_, d)| {
        let parent = d.parent.and_then(|s| m.domains.get(s));
        let level = d.path.matches('/').count();
        Obj::new()
            .set("id", d.id.clone())
            .set("name", d.name.clone())
            .set("path", d.path.clone())
            .set("level", level)
            .opt("parentdomainid", parent.map(|p| p.id.clone()))
            .opt("parentdomainname", parent.map(|p| p.name.clone()))
            .set(
                "haschild",
                m.domains
                    .values()
                    .any(|c| c.parent.is_some_and(|ps| m.domains.get(ps).is_some_and(|pd| pd.id == d.id))),
            )
            .set("state", "Active")
            .set("created", d.created.clone())
            .done()
    })
}
