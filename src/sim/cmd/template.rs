//! Templates: listTemplates with `templatefilter` semantics and one row per zone; create from a
//! stopped VM's volume or a snapshot; register (download delay); delete; launch permissions.

use serde_json::{Value, json};

use super::super::error::{SimError, SimResult};
use super::super::list;
use super::super::model::*;
use super::super::render::*;
use super::{CmdSpec, Ctx, read};

pub fn commands() -> Vec<CmdSpec> {
    vec![read("listTemplates", "org.apache.cloudstack.api.command.user.template.ListTemplatesCmd", list_templates)]
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
