//! Shapes -> EC2 XML. Fields come out in the order the shape declares them (= WSDL order);
//! absent optional fields are left out, `always` fields are rendered empty.

use std::cmp::Ordering;
use std::sync::OnceLock;

use serde_json::Value;

use super::convert::{self, Env};
use super::expr::{Alt, Expr, Term, scalar_text};
use super::table::{FieldKind, Shape};

pub use crate::ec2::render::escape_into;

pub fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// The most first-level fields a view holds; a shape reading more reads the item by key.
const VIEW_MAX: usize = 64;

/// A view costs one walk over the item's keys: worth it for a shape that reads several fields
/// of an item that has many (a VM has ~30 after projection), not for a tag or a group.
fn wants_view(shape: &Shape, item: &Value) -> bool {
    (4..=VIEW_MAX).contains(&shape.reads.len()) && item.as_object().is_some_and(|m| m.len() >= 8) && maps_sorted()
}

/// Whether `serde_json::Map` walks its keys in order (its B-tree; not with serde_json's
/// `preserve_order` feature), which the view's merged walk relies on.
fn maps_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = serde_json::Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().next().map(String::as_str) == Some("a")
    })
}

/// Fill `slots` with the item's values of `shape.reads`: one walk over both sorted lists, where
/// looking each name up in the item's B-tree costs a dozen key comparisons (`expr::View`).
fn fill_view<'v>(shape: &Shape, item: &'v Value, slots: &mut [Option<&'v Value>]) {
    let Value::Object(m) = item else { return };
    let mut reads = shape.reads.iter().enumerate();
    let mut want = reads.next();
    for (k, v) in m {
        while let Some((i, name)) = want {
            match name.as_str().cmp(k.as_str()) {
                Ordering::Less => want = reads.next(),
                Ordering::Equal => {
                    slots[i] = Some(v);
                    want = reads.next();
                    break;
                }
                Ordering::Greater => break,
            }
        }
        if want.is_none() {
            break;
        }
    }
}

/// Render the fields of `shape` for `item` (no wrapper element).
pub fn fields(out: &mut String, shape: &Shape, item: &Value, env: &Env<'_>) {
    let mut slots: [Option<&Value>; VIEW_MAX];
    let view = if wants_view(shape, item) {
        slots = [None; VIEW_MAX];
        fill_view(shape, item, &mut slots);
        Some(&slots[..shape.reads.len()])
    } else {
        None
    };
    for f in &shape.fields {
        if let Some(since) = &f.since
            && env.vars.version.as_str() < since.as_str()
        {
            continue;
        }
        if let Some(w) = &f.when
            && convert::eval_first_in(w, item, view, env).is_none()
        {
            continue;
        }
        match &f.kind {
            // `_text`: the value is the element's text itself (lists of plain strings).
            FieldKind::Value(e) if f.name == "_text" => {
                if let Some(v) = convert::eval_first_in(e, item, view, env) {
                    scalar_into(out, &v);
                }
            }
            // A constant first: its text straight from the table, no value built per item.
            FieldKind::Value(e) if let Some(c) = lead_const(e) => {
                open(out, &f.name);
                escape_into(out, c);
                close(out, &f.name);
            }
            FieldKind::Value(e) => match convert::eval_first_in(e, item, view, env) {
                Some(v) => {
                    open(out, &f.name);
                    scalar_into(out, &v);
                    close(out, &f.name);
                }
                None if f.always => empty(out, &f.name),
                None => {}
            },
            FieldKind::Nested { shape, from } => {
                let Some(sub) = env.table.shapes.get(shape) else { continue };
                match convert::eval_first_in(from, item, view, env) {
                    Some(v) => {
                        open(out, &f.name);
                        fields(out, sub, &v, env);
                        close(out, &f.name);
                    }
                    None if f.always => empty(out, &f.name),
                    None => {}
                }
            }
            FieldKind::List { from, shape } => {
                let Some(sub) = env.table.shapes.get(shape) else { continue };
                let values = convert::eval_ref_in(from, item, view, env);
                let items = values.iter().flat_map(|v| match v.as_array() {
                    Some(a) => a.iter(),
                    None => std::slice::from_ref(v.as_ref()).iter(),
                });
                if items.clone().next().is_none() && !f.always {
                    continue;
                }
                list(out, &f.name, sub, items, env);
            }
        }
    }
}

/// The text of an expression whose first alternative is a constant without converters (`=ebs`):
/// always its value (a constant is present unless empty).
fn lead_const(e: &Expr) -> Option<&str> {
    match e.alts.first()? {
        Alt { term: Term::Const(c), convs } if convs.is_empty() && !c.is_empty() => Some(c),
        _ => None,
    }
}

/// `escape_into(out, &scalar_text(v))` without the intermediate string for strings.
fn scalar_into(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => escape_into(out, s),
        other => escape_into(out, &scalar_text(other)),
    }
}

fn empty(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str("/>");
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// `<name><item>...</item>...</name>`; `<name/>` when empty.
pub fn list<'v>(out: &mut String, name: &str, shape: &Shape, items: impl Iterator<Item = &'v Value>, env: &Env<'_>) {
    let mut items = items.peekable();
    if items.peek().is_none() {
        empty(out, name);
        return;
    }
    open(out, name);
    for it in items {
        out.push_str("<item>");
        fields(out, shape, it, env);
        out.push_str("</item>");
    }
    close(out, name);
}

/// `list` over owned items, each freed as soon as it is rendered, while it is still in the
/// cache, instead of all of them after the answer is made (1,000 VMs are a few MB of small
/// allocations).
pub fn list_owned(out: &mut String, name: &str, shape: &Shape, items: Vec<Value>, env: &Env<'_>) {
    if items.is_empty() {
        empty(out, name);
        return;
    }
    open(out, name);
    for it in items {
        out.push_str("<item>");
        fields(out, shape, &it, env);
        out.push_str("</item>");
    }
    close(out, name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_renders_what_lookups_render() {
        let t = crate::mapping::table::Table::builtin().unwrap_or_else(|_| panic!("builtin table"));
        let vars = convert::Vars { version: "2016-11-15".into(), ..Default::default() };
        let ids = std::sync::Mutex::new(crate::ids::SeenIds::default());
        let env = Env { table: &t, vars: &vars, ids: &ids };
        let vm = serde_json::json!({
            "id": "u-1", "templateid": "t-1", "state": "Running", "created": "2014-03-06T15:39:44-0600",
            "serviceofferingname": "small", "zonename": "z1", "hypervisor": "KVM", "account": "alice",
            "keypair": "k1", "osdisplayname": "Windows Server 2019", "_launchindex": 3, "publicip": null,
            "nic": [{"ipaddress": "10.0.0.2", "isdefault": false}, {"ipaddress": "10.0.0.3", "isdefault": true, "type": "Shared"}],
            "securitygroup": [{"id": "sg-u", "name": "default"}],
            "tags": [{"key": "a", "value": "1"}],
            "_blockdevices": [{"deviceName": "/dev/sda1", "ebs": {"volumeId": "vol-1", "status": "attached"}}],
            "zz_unread": "x"
        });
        let shape = &t.shapes["Instance"];
        assert!(wants_view(shape, &vm), "the Instance shape reads a VM through a view");
        let mut slots = [None; VIEW_MAX];
        fill_view(shape, &vm, &mut slots);
        for (i, name) in shape.reads.iter().enumerate() {
            assert_eq!(slots[i], vm.get(name), "slot of {name}");
        }
        let mut by_key = shape.clone();
        by_key.reads.clear();
        assert!(!wants_view(&by_key, &vm));
        let (mut a, mut b) = (String::new(), String::new());
        fields(&mut a, shape, &vm, &env);
        fields(&mut b, &by_key, &vm, &env);
        assert_eq!(a, b);
        assert!(
            a.contains("<privateIpAddress>10.0.0.3</privateIpAddress>")
                && a.contains("<amiLaunchIndex>3</amiLaunchIndex>")
        );
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        element(&mut s, "a", "x<y & \"z\"\u{1}");
        // EC2 escapes & < > only; quotes stay quotes.
        assert_eq!(s, "<a>x&lt;y &amp; \"z\"</a>");
    }
}
