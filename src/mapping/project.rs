//! Which fields of a listed CloudStack item an action reads, so that the list's items are
//! decoded with only those (`Backend::list_all_fields`, `list_page_fields`): the other fields of
//! a VM (a third of its JSON, and most of its `Value` allocations) are never built, rendered
//! over or freed. Derived from the table, plus what each step declares it reads
//! (`steps::transform_reads`); an action with a step that declares nothing reads whole items.
//! docs/mappings.md "Item fields".

use std::collections::{BTreeSet, HashMap, HashSet};

use super::expr::{Expr, Path, Term};
use super::table::{Action, Completion, FieldKind, Returns, Table};
use crate::base::fields::Keep;

/// The fields read of each action's listed items (`state`, or `nic.ipaddress` inside one), compiled
/// for the decoder; actions not here read whole items.
pub fn item_fields(t: &Table) -> HashMap<String, Keep> {
    t.actions.values().filter_map(|a| Some((a.name.clone(), Keep::new(of_action(t, a)?)))).collect()
}

/// The fields of the items of `a`'s list call that anything after the call reads: every shape
/// that renders the call's CloudStack object (`_source`) and the action's returned shape (with
/// the shapes they nest from the item itself), the action's filters, id path and de-duplication
/// path, the steps it runs on the list, and the account fields `exec::learn_accounts` looks
/// for. None when an item is read whole, or when something reads it the table does not say.
fn of_action(t: &Table, a: &Action) -> Option<Vec<String>> {
    let Returns::List { shape, .. } = &a.returns else { return None };
    let call = a.call.as_ref()?;
    let object = call.items.as_ref()?;
    if call.cache
        || !matches!(call.completion, Completion::Sync)
        || a.step.is_some()
        || a.check.is_some()
        || a.answer.is_some()
        || a.items_from.is_some()
    {
        return None;
    }
    let mut out = BTreeSet::new();
    for s in a.after_list.iter().chain(&a.before_render) {
        out.extend(super::steps::transform_reads(s)?.iter().map(|f| f.to_string()));
    }
    out.extend(super::exec::ACCOUNT_FIELDS.iter().map(|f| f.to_string()));
    let mut seen = HashSet::new();
    shape_reads(t, shape, &mut out, &mut seen, 0)?;
    for s in t.shapes.values().filter(|s| s.source.as_deref() == Some(object.as_str())) {
        shape_reads(t, &s.name, &mut out, &mut seen, 0)?;
    }
    if let Some(fs) = &a.filters {
        for (_, e, _) in &fs.fields {
            expr_reads(e, &mut out)?;
        }
        if let Some(p) = &fs.tags {
            path_reads(p, &mut out)?;
        }
    }
    if let Some(ids) = &a.ids {
        path_reads(&ids.path, &mut out)?;
    }
    if let Some(d) = &a.dedupe {
        path_reads(d, &mut out)?;
    }
    // A field read whole is read whole: drop the names inside it.
    let covered = |n: &str| n.match_indices('.').any(|(i, _)| out.contains(&n[..i]));
    Some(out.iter().filter(|n| !covered(n)).cloned().collect())
}

/// The item fields a shape rendered from the item reads; a shape nested from the item itself
/// (`from = "."`) reads the item too, a shape nested from a field (`from = "nic"`) reads the
/// fields inside it that the nested shape reads (`nic.ipaddress`), or the field whole when that
/// shape reads its object itself or nothing of it.
fn shape_reads<'t>(
    t: &'t Table,
    name: &'t str,
    out: &mut BTreeSet<String>,
    seen: &mut HashSet<&'t str>,
    depth: usize,
) -> Option<()> {
    if !seen.insert(name) {
        return Some(());
    }
    let shape = t.shapes.get(name)?;
    for f in &shape.fields {
        match &f.kind {
            FieldKind::Value(e) => expr_reads(e, out)?,
            FieldKind::Nested { shape, from } | FieldKind::List { from, shape } => {
                for alt in &from.alts {
                    match &alt.term {
                        Term::Path(p) if p.segs.is_empty() => shape_reads(t, shape, out, seen, depth)?,
                        Term::Path(p) if p.segs.len() == 1 && depth < NESTING => {
                            let seg = &p.segs[0];
                            let mut inner = BTreeSet::new();
                            match shape_reads(t, shape, &mut inner, &mut HashSet::new(), depth + 1) {
                                Some(()) if !inner.is_empty() => {
                                    out.extend(inner.iter().map(|n| format!("{}.{n}", seg.name)));
                                    select_reads(seg, out);
                                }
                                _ => {
                                    out.insert(seg.name.clone());
                                }
                            }
                        }
                        Term::Path(p) => path_reads(p, out)?,
                        Term::Const(_) | Term::Var(_) => {}
                    }
                }
            }
        }
        if let Some(w) = &f.when {
            expr_reads(w, out)?;
        }
    }
    Some(())
}

fn expr_reads(e: &Expr, out: &mut BTreeSet<String>) -> Option<()> {
    for alt in &e.alts {
        if let Term::Path(p) = &alt.term {
            path_reads(p, out)?;
        }
    }
    Some(())
}

/// Shapes nested in shapes read inside fields at most this deep; deeper, the field is read whole.
const NESTING: usize = 4;

/// What a path reads: its first field whole (`tags`), or, when it goes on into that field, the
/// field inside it (`nic[isdefault=true].ipaddress`: `nic.ipaddress`, and `nic.isdefault` for the
/// selector); None for the item itself (`.`).
fn path_reads(p: &Path, out: &mut BTreeSet<String>) -> Option<()> {
    let first = p.segs.first()?;
    match p.segs.get(1) {
        None => {
            out.insert(first.name.clone());
        }
        Some(next) => {
            out.insert(format!("{}.{}", first.name, next.name));
            select_reads(first, out);
        }
    }
    Some(())
}

/// The fields a segment's selector (`[k=v]`) reads inside the segment's field.
fn select_reads(seg: &super::expr::Seg, out: &mut BTreeSet<String>) {
    if let super::expr::Select::Where(conds) = &seg.select {
        out.extend(conds.iter().map(|(k, _)| format!("{}.{k}", seg.name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_instances_reads() {
        let t = Table::load(None).expect("table");
        let f = item_fields(&t);
        let di = f.get("DescribeInstances").expect("DescribeInstances projects its items");
        for want in ["id", "state", "tags", "created", "account", "group", "publicip"] {
            assert!(di.contains(&want.to_string()), "{want} in {di:?}");
        }
        // Inside the NICs and security groups: what the table, the filters and the steps read.
        for want in
            ["nic.ipaddress", "nic.isdefault", "nic.type", "nic.networkid", "securitygroup.id", "securitygroup.name"]
        {
            assert!(di.contains(&want.to_string()), "{want} in {di:?}");
        }
        for unread in
            ["cpuused", "networkkbsread", "templatedisplaytext", "affinitygroup", "nic", "nic.netmask", "securitygroup"]
        {
            assert!(!di.contains(&unread.to_string()), "{unread} in {di:?}");
        }
        assert!(di.is_sorted());
    }
}
