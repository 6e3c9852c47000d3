//! Shapes -> EC2 XML. Fields come out in the order the shape declares them (= WSDL order);
//! absent optional fields are left out, `always` fields are rendered empty.

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

/// Render the fields of `shape` for `item` (no wrapper element).
pub fn fields(out: &mut String, shape: &Shape, item: &Value, env: &Env<'_>) {
    for f in &shape.fields {
        if let Some(since) = &f.since
            && env.vars.version.as_str() < since.as_str()
        {
            continue;
        }
        if let Some(w) = &f.when
            && convert::eval_first(w, item, env).is_none()
        {
            continue;
        }
        match &f.kind {
            // `_text`: the value is the element's text itself (lists of plain strings).
            FieldKind::Value(e) if f.name == "_text" => {
                if let Some(v) = convert::eval_first(e, item, env) {
                    scalar_into(out, &v);
                }
            }
            // A constant first: its text straight from the table, no value built per item.
            FieldKind::Value(e) if let Some(c) = lead_const(e) => {
                open(out, &f.name);
                escape_into(out, c);
                close(out, &f.name);
            }
            FieldKind::Value(e) => match convert::eval_first(e, item, env) {
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
                match convert::eval_first(from, item, env) {
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
                let values = convert::eval_ref(from, item, env);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let mut s = String::new();
        element(&mut s, "a", "x<y & \"z\"\u{1}");
        // EC2 escapes & < > only; quotes stay quotes.
        assert_eq!(s, "<a>x&lt;y &amp; \"z\"</a>");
    }
}
