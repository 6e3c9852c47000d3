//! Cross-checks of a fully read table: shapes, filters and actions against the declared
//! CloudStack objects, commands, kinds, converters and steps.

use super::super::expr::{Expr, Path};
use super::super::toml_src::{At, Errs};
use super::super::{convert, resolve, steps};
use super::*;

/// Cross-reference checks once everything is read.
pub(super) fn validate(t: &Table, errs: &Errs) {
    for shape in t.shapes.values() {
        for f in &shape.fields {
            let exprs: Vec<&Expr> = match &f.kind {
                FieldKind::Value(e) => vec![e],
                FieldKind::Nested { shape: s, from } | FieldKind::List { from, shape: s } => {
                    if !t.shapes.contains_key(s) {
                        errs.push(&f.at, format!("unknown shape '{s}'"));
                    }
                    vec![from]
                }
            };
            for e in exprs.into_iter().chain(f.when.iter()) {
                check_expr(t, e, shape.source.as_deref(), &f.at, errs);
            }
        }
        if let Some(src) = &shape.source
            && !t.objects.contains_key(src)
        {
            errs.push(&shape.at, format!("unknown CloudStack object '{src}' in _source"));
        }
    }
    for fs in t.filter_sets.values() {
        check_filter_set(t, fs, errs);
    }
    for k in t.kinds.values() {
        for l in &k.list {
            if !t.commands.contains_key(&l.command) {
                errs.push(&k.at, format!("unknown CloudStack command '{}'", l.command));
            }
        }
    }
    for r in &t.errors {
        for c in &r.commands {
            if c != "*" && !t.commands.contains_key(c) {
                errs.push(&r.at, format!("unknown CloudStack command '{c}'"));
            }
        }
    }
    for a in t.actions.values() {
        if !super::super::actions::is_ec2_action(&a.name) {
            errs.push(&a.at, format!("'{}' is not an EC2 action name", a.name));
        }
        if let Some(ids) = &a.ids
            && !t.kinds.contains_key(&ids.kind)
        {
            errs.push(&a.at, format!("ids: kind '{}' has no [kind.{}] entry", ids.kind.name(), ids.kind.name()));
        }
        for p in &a.params {
            for v in &p.via {
                if let Err(m) = resolve::check(v, t) {
                    errs.push(&p.at, m);
                }
            }
            if p.fanout && a.call.as_ref().is_none_or(|c| c.items.is_none()) {
                errs.push(&p.at, "fanout only works with a list call");
            }
        }
        super::super::check::validate(a, errs, &|e, at| check_expr(t, e, None, at, errs));
        if let Some(c) = &a.call {
            check_call(t, a, c, errs);
        }
        if let Some(s) = &a.step
            && let Err(m) = steps::check_step(s, &a.args)
        {
            errs.push(&a.at, m);
        }
        for s in a.after_list.iter().chain(a.before_render.iter()) {
            if !steps::is_transform(s) {
                errs.push(
                    &a.at,
                    format!("unknown transform step '{s}' (known: {})", steps::transform_names().join(", ")),
                );
            }
        }
        if let Some(fs) = &a.filters {
            // Named sets were checked above; inline ones carry the action's name.
            if fs.name == a.name {
                check_filter_set(t, fs, errs);
            }
            for (param, fname) in &a.param_filters {
                if !fs.knows(fname) {
                    errs.push(&a.at, format!("param_filters: {param} names unknown filter '{fname}'"));
                }
            }
        } else if !a.param_filters.is_empty() {
            errs.push(&a.at, "param_filters needs filters");
        }
        if let Some(v) = &a.items_from
            && !convert::var_known(v)
        {
            errs.push(&a.at, format!("items_from: unknown variable '${v}'"));
        }
        let shape = match &a.returns {
            Returns::List { shape, .. } | Returns::Object { shape } => Some(shape),
            Returns::True => None,
        };
        if let Some(s) = shape
            && !t.shapes.contains_key(s)
        {
            errs.push(&a.at, format!("returns: unknown shape '{s}'"));
        }
        let is_list = matches!(a.returns, Returns::List { .. });
        if (a.page.is_some() || a.filters.is_some()) && !is_list {
            errs.push(&a.at, "filters and page need returns = { list = ..., shape = ... }");
        }
        for u in &a.uses {
            if !t.commands.contains_key(u) {
                errs.push(&a.at, format!("uses: unknown CloudStack command '{u}'"));
            }
        }
        check_parameters(a, errs);
    }
}

/// `call.when` names a parameter the action resolves; `call.store = "delete"` needs ids of a
/// kind the store holds; `call.forget` names commands.
fn check_call(t: &Table, a: &Action, c: &CallSpec, errs: &Errs) {
    if let Some(w) = &c.when
        && !a.params.iter().any(|p| &p.cs_name == w)
    {
        errs.push(&a.at, format!("call.when: '{w}' is none of the action's params"));
    }
    if c.store_delete && a.ids.as_ref().and_then(|i| t.kinds.get(&i.kind)).is_none_or(|k| k.store_records.is_none()) {
        errs.push(&a.at, "call.store = \"delete\" needs ids of a kind with store_records");
    }
    for f in &c.forget {
        if !t.commands.contains_key(f) {
            errs.push(&a.at, format!("call.forget: unknown CloudStack command '{f}'"));
        }
    }
}

/// `accepts` / `refuses` agree with the rest of the action (docs/parameters.md); whether they
/// agree with EC2's service model is tests/parameters.rs's job (the model is not compiled in).
fn check_parameters(a: &Action, errs: &Errs) {
    use super::super::params::{self, top};
    for n in &a.accepts {
        if n.contains('.') || n.is_empty() {
            errs.push(&a.at, format!("accepts: '{n}' is not a member name (no dots: Query lists and structures are compared by their first segment)"));
        }
    }
    let honoured = params::honoured(a);
    for (i, r) in a.refuses.iter().enumerate() {
        if !r.pattern.contains('.') && honoured.contains(&r.pattern) {
            errs.push(
                &r.at,
                format!("refuses: {} is honoured by this action (accepts or a declaration reads it)", r.pattern),
            );
        }
        if a.refuses[..i].iter().any(|o| o.pattern == r.pattern) {
            errs.push(&r.at, format!("refuses: {} is refused twice", r.pattern));
        }
    }
    // A SOAP path must land on a parameter the action takes.
    for sp in &a.soap {
        let q = sp.query.split('=').next().unwrap_or_default();
        if !honoured.contains(top(q)) && !a.refuses.iter().any(|r| r.member() == top(q)) {
            errs.push(&sp.at, format!("soap: {q} is neither honoured nor refused by {}", a.name));
        }
    }
}

fn check_filter_set(t: &Table, fs: &FilterSet, errs: &Errs) {
    if let Some(src) = &fs.source
        && !t.objects.contains_key(src)
    {
        errs.push(&fs.at, format!("unknown CloudStack object '{src}' in source"));
    }
    for (_, e, at) in &fs.fields {
        check_expr(t, e, fs.source.as_deref(), at, errs);
    }
    // Each filter name is decided once: implemented, absent or refused.
    let mut seen = std::collections::HashSet::new();
    let names = fs.fields.iter().map(|(n, _, at)| (n, at));
    let names = names.chain(fs.absent.iter().chain(&fs.refused).map(|(n, _, at)| (n, at)));
    for (n, at) in names {
        if !seen.insert(n.as_str()) {
            errs.push(at, format!("filter '{n}' is declared more than once (fields, absent, refused)"));
        }
    }
}

fn check_expr(t: &Table, e: &Expr, source: Option<&str>, at: &At, errs: &Errs) {
    for c in e.convs() {
        if let Err(m) = convert::check(&c.name, t) {
            errs.push(at, m);
        }
    }
    for v in e.vars() {
        if !convert::var_known(v) {
            errs.push(at, format!("unknown variable '${v}'"));
        }
    }
    if let Some(src) = source {
        for p in e.paths() {
            if let Err(m) = check_path(t, src, p) {
                errs.push(at, m);
            }
        }
    }
}

/// Walk a path through the declared CloudStack object fields. Names starting with `_` are
/// annotations added by steps and are not checked.
fn check_path(t: &Table, source: &str, p: &Path) -> Result<(), String> {
    let mut obj = source.to_string();
    for seg in &p.segs {
        if seg.name.starts_with('_') {
            return Ok(());
        }
        let Some(info) = t.objects.get(&obj) else { return Ok(()) };
        if let Some(next) = info.nested.get(&seg.name) {
            obj = next.clone();
            continue;
        }
        if !info.fields.iter().any(|f| f == &seg.name) {
            return Err(format!("'{}' is not a field of CloudStack {obj} (path '{}')", seg.name, path_text(p)));
        }
        // A scalar field: nothing below it to check.
        return Ok(());
    }
    Ok(())
}

fn path_text(p: &Path) -> String {
    p.names().collect::<Vec<_>>().join(".")
}
