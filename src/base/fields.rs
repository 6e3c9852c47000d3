//! A few fields of many JSON objects, read in one pass over the text without `Value` trees: for
//! code that reads a handful of fields of thousands of CloudStack items (the volume index of a
//! DescribeInstances walk). The fields read the same as through `serde_json::Value`: the last of
//! a repeated key wins, strings are strings, other scalars keep their JSON form.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::util::NameHash;

/// One field of an item. Strings without escapes borrow from the text.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// The item has no such field.
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Bool(bool),
    Num(Number),
    /// An array or an object (not kept).
    Other,
}

impl Scalar<'_> {
    /// A non-empty string (what `steps::common::field` answers for a `Value`).
    pub fn str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The field's text (`expr::scalar_text`: strings as they are, numbers and booleans as JSON
    /// writes them, null as "") parsed as an integer; None when absent or not an integer.
    pub fn int(&self) -> Option<i64> {
        match self {
            Scalar::Str(s) => s.parse().ok(),
            // An integer's text parses back to it; a float's text ("1.0", "1e20") never does.
            Scalar::Num(n) => n.as_i64(),
            _ => None,
        }
    }

    /// Whether the field's text (as `int`) is `t`. An absent field, an array or an object never
    /// is.
    pub fn text_is(&self, t: &str) -> bool {
        match self {
            Scalar::Absent | Scalar::Other => false,
            Scalar::Null => t.is_empty(),
            Scalar::Str(s) => s == t,
            Scalar::Bool(b) => (if *b { "true" } else { "false" }) == t,
            Scalar::Num(n) => n.to_string() == t,
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // As `Value` does: a float JSON cannot hold is null.
        Ok(Number::from_f64(n).map_or(Scalar::Null, Scalar::Num))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

/// The fields `names` of each item of a JSON array, in the order of `names`; None for an item
/// that is not an object. Every other field is skipped unread.
pub fn pick<'a, const N: usize>(
    json: &'a str,
    names: &[&str; N],
) -> Result<Vec<Option<[Scalar<'a>; N]>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let items = de.deserialize_seq(Items { names })?;
    de.end()?;
    Ok(items)
}

struct Items<'n, const N: usize> {
    names: &'n [&'n str; N],
}

impl<'de, const N: usize> Visitor<'de> for Items<'_, N> {
    type Value = Vec<Option<[Scalar<'de>; N]>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(s.size_hint().unwrap_or(0));
        while let Some(item) = s.next_element_seed(Item { names: self.names })? {
            out.push(item);
        }
        Ok(out)
    }
}

struct Item<'n, const N: usize> {
    names: &'n [&'n str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Item<'_, N> {
    type Value = Option<[Scalar<'de>; N]>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Item<'_, N> {
    type Value = Option<[Scalar<'de>; N]>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list item")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut fields: [Scalar<'de>; N] = std::array::from_fn(|_| Scalar::Absent);
        while let Some(k) = m.next_key_seed(KeyIn(self.names))? {
            match k {
                Some(i) => fields[i] = m.next_value()?,
                None => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(fields))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Self::Value, A::Error> {
        ScalarVisitor.visit_seq(s).map(|_| None)
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `pick` as a seed, for a reader that meets the array inside a larger document (the client's
/// one-pass reading of a list page, `cloudstack::client::decode_picked`): answers the number of
/// items and their fields flat, `names.len()` per item in the order of `names`; an item that is
/// not an object reads as all `Absent`. Anything but an array is an error.
pub struct PickFlat<'n>(pub &'n [&'n str]);

impl<'de> DeserializeSeed<'de> for PickFlat<'_> {
    type Value = (usize, Vec<Scalar<'de>>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PickFlat<'_> {
    type Value = (usize, Vec<Scalar<'de>>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(s.size_hint().unwrap_or(0) * self.0.len());
        let mut n = 0;
        while s.next_element_seed(FlatItem { names: self.0, out: &mut out })?.is_some() {
            n += 1;
        }
        Ok((n, out))
    }
}

struct FlatItem<'n, 'o, 'de> {
    names: &'n [&'n str],
    out: &'o mut Vec<Scalar<'de>>,
}

impl<'de> DeserializeSeed<'de> for FlatItem<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let base = self.out.len();
        self.out.resize(base + self.names.len(), Scalar::Absent);
        let fields = &mut self.out[base..];
        d.deserialize_any(FlatFields { names: self.names, fields })
    }
}

struct FlatFields<'n, 'o, 'de> {
    names: &'n [&'n str],
    fields: &'o mut [Scalar<'de>],
}

impl<'de> Visitor<'de> for FlatFields<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list item")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(k) = m.next_key_seed(KeyIn(self.names))? {
            match k {
                Some(i) => self.fields[i] = m.next_value()?,
                None => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<(), A::Error> {
        ScalarVisitor.visit_seq(s).map(|_| ())
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The items of a JSON array as `Value`s holding only the fields named in `keep`: each object
/// item's other fields are skipped unread; an item that is not an object is kept as it is. A name
/// `field.sub` keeps only `sub` of the objects in `field` (of each element when it is an array;
/// anything else in it as it is), so `nic.ipaddress` reads a VM's NICs without their other
/// fields; `field` and `field.sub` together mean `field` whole. CloudStack's field names have no
/// dots. What reading the whole item and then `retain`ing would give, without building the rest.
pub fn project(json: &str, keep: &Keep) -> Result<Vec<Value>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let items = de.deserialize_seq(Projected { keep })?;
    de.end()?;
    Ok(items)
}

/// What `project` keeps of a `Value` already read whole, in place (for a backend that does not
/// read its answers in one pass).
pub fn retain(items: &mut [Value], keep: &Keep) {
    for it in items {
        retain_in(it, &keep.root, false);
    }
}

fn retain_in(v: &mut Value, level: &Level, deep: bool) {
    match v {
        Value::Object(o) => {
            o.retain(|k, x| match level.0.get(k.as_str()) {
                Some(Rule::Whole) => true,
                Some(Rule::Inside(inner)) => {
                    retain_in(x, inner, true);
                    true
                }
                None => false,
            });
        }
        Value::Array(a) if deep => a.iter_mut().for_each(|x| retain_in(x, level, true)),
        _ => {}
    }
}

/// The names `project` keeps (sorted), and the same as a tree of hash tables for looking up every
/// key of every listed item (a VM has ~45): built once per action when the table loads.
#[derive(Debug, Clone, Default)]
pub struct Keep {
    names: Vec<String>,
    root: Level,
}

/// One object's fields: kept whole, or only the fields inside named by the next level.
#[derive(Debug, Clone, Default)]
struct Level(HashMap<Box<str>, Rule, NameHash>);

#[derive(Debug, Clone)]
enum Rule {
    Whole,
    Inside(Level),
}

impl Keep {
    pub fn new(mut names: Vec<String>) -> Keep {
        names.sort();
        names.dedup();
        let mut root = Level::default();
        for n in &names {
            root.add(&n.split('.').collect::<Vec<_>>());
        }
        Keep { names, root }
    }
}

impl Level {
    fn add(&mut self, parts: &[&str]) {
        match parts {
            [] => {}
            [last] => {
                self.0.insert((*last).into(), Rule::Whole);
            }
            [first, rest @ ..] => match self.0.entry((*first).into()).or_insert_with(|| Rule::Inside(Level::default()))
            {
                Rule::Whole => {}
                Rule::Inside(inner) => inner.add(rest),
            },
        }
    }
}

impl std::ops::Deref for Keep {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.names
    }
}

/// `project` as a seed, for a reader that meets the array inside a larger document (the client's
/// one-pass reading of a list page, `cloudstack::client::decode_projected`). Anything but an
/// array is an error.
pub struct Projected<'k> {
    pub keep: &'k Keep,
}

impl<'de> DeserializeSeed<'de> for Projected<'_> {
    type Value = Vec<Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Projected<'_> {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(s.size_hint().unwrap_or(0));
        while let Some(item) = s.next_element_seed(ProjectedItem { level: &self.keep.root, deep: false })? {
            out.push(item);
        }
        Ok(out)
    }
}

/// One value read with the fields of `level`. `deep`: inside a field, where the elements of an
/// array are projected too (a list item that is an array is kept as it is).
struct ProjectedItem<'k> {
    level: &'k Level,
    deep: bool,
}

impl<'de> DeserializeSeed<'de> for ProjectedItem<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// An object: only the kept fields; anything else: the `Value` itself (as `Value`'s own
/// visitor builds it), or, for an array inside a field, its elements projected.
impl<'de> Visitor<'de> for ProjectedItem<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list item")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut o = serde_json::Map::new();
        while let Some(k) = m.next_key_seed(Kept(self.level))? {
            match k {
                Some((name, Rule::Whole)) => {
                    o.insert(name.to_string(), m.next_value()?);
                }
                Some((name, Rule::Inside(level))) => {
                    o.insert(name.to_string(), m.next_value_seed(ProjectedItem { level, deep: true })?);
                }
                None => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(o))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::new();
        if self.deep {
            while let Some(x) = s.next_element_seed(ProjectedItem { ..self })? {
                v.push(x);
            }
        } else {
            while let Some(x) = s.next_element()? {
                v.push(x);
            }
        }
        Ok(Value::Array(v))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Value::String(s))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
}

/// A map key: its name and rule in the level (None: not kept).
struct Kept<'k>(&'k Level);

impl<'de, 'k> DeserializeSeed<'de> for Kept<'k> {
    type Value = Option<(&'k str, &'k Rule)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'k> Visitor<'de> for Kept<'k> {
    type Value = Option<(&'k str, &'k Rule)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, k: &str) -> Result<Self::Value, E> {
        Ok(self.0.0.get_key_value(k).map(|(n, r)| (&**n, r)))
    }
}

/// A map key: which of `names` it is (None: another). Keys are compared unescaped.
pub struct KeyIn<'n>(pub &'n [&'n str]);

impl<'de> DeserializeSeed<'de> for KeyIn<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIn<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, k: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|n| *n == k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 4] = ["id", "n", "b", "x"];

    /// `mapping::expr::scalar_text` (not imported: this layer depends on no other).
    fn scalar_text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    #[test]
    fn fields_read_as_values_do() {
        let text = r#"[{"id":"a\u0062","n":"7","b":true,"skip":{"deep":[1,{"x":2}]},"x":null},
            {"id":"","n":7,"n":-3,"x":[1]}, "not an object", 5, null, [1,2],
            {"id":"z","n":1.0,"b":"0","x":{}}, {"n":18446744073709551615}]"#;
        let picked = pick(text, &NAMES).unwrap();
        let values: Vec<Value> = serde_json::from_str(text).unwrap();
        assert_eq!(picked.len(), values.len());
        for (p, v) in picked.iter().zip(&values) {
            let Some(p) = p else {
                assert!(!v.is_object());
                continue;
            };
            for (i, name) in NAMES.iter().enumerate() {
                let f = v.get(name);
                assert_eq!(p[i].str(), f.and_then(Value::as_str).filter(|s| !s.is_empty()), "{name} of {v}");
                let text = f.map(scalar_text);
                assert_eq!(p[i].int(), text.as_ref().and_then(|t| t.parse::<i64>().ok()), "{name} of {v}");
                for probe in ["0", "7", "", "true", "ab", "1.0"] {
                    let scalar = f.is_some_and(|f| !f.is_array() && !f.is_object());
                    assert_eq!(p[i].text_is(probe), scalar && text.as_deref() == Some(probe), "{name} of {v}");
                }
            }
        }
        assert!(matches!(picked[0].as_ref().unwrap()[0], Scalar::Str(Cow::Owned(_))));
        assert!(matches!(picked[6].as_ref().unwrap()[0], Scalar::Str(Cow::Borrowed("z"))));
    }

    #[test]
    fn projection_is_removal() {
        let text = r#"[{"id":"a\u0062","n":"7","b":true,"skip":{"deep":[1,{"x":2}]},"x":null},
            {"id":"","n":7,"n":-3,"x":[1,{"y":[]}]}, "not an object", 5, -2, 1.5, null, true, [1,{"a":2}],
            {"z":1}, {}, {"n":18446744073709551615,"id":{"id":1}}]"#;
        let keep = Keep::new(["id", "n", "x"].iter().map(|s| s.to_string()).collect());
        let mut want: Vec<Value> = serde_json::from_str(text).unwrap();
        for v in want.iter_mut() {
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| keep.contains(k));
            }
        }
        assert_eq!(project(text, &keep).unwrap(), want);
        assert!(project(r#"{"a":1}"#, &keep).is_err());
        assert!(project("[1] 2", &keep).is_err());
    }

    /// Names inside fields: `nic.ip` keeps `ip` of the objects in `nic` (of each element of an
    /// array, deeper arrays included), anything else in `nic` as it is; what `retain` keeps of the
    /// whole values, written out by hand here.
    #[test]
    fn projection_inside_fields() {
        let text = r#"[{"id":"v1","nic":[{"ip":"10.0.0.2","mac":"m","sub":{"a":1,"b":2}},{"mac":"n"},"odd",[{"ip":"x","q":1}],null],
              "nic-x":1,"nicz":2,"sg":{"id":"g","rules":[1]},"tags":[{"k":"a"}]},
            {"nic":{"ip":"1.2.3.4","gw":"g"},"sg":"plain","id":"v2"},
            {"nic":7}, ["nic"], {"ni":1, "nic.ip":3}]"#;
        let keep = Keep::new(["id", "nic.ip", "nic.sub.b", "sg.id", "tags"].iter().map(|s| s.to_string()).collect());
        let want: Vec<Value> = serde_json::from_str(
            r#"[{"id":"v1","nic":[{"ip":"10.0.0.2","sub":{"b":2}},{},"odd",[{"ip":"x"}],null],"sg":{"id":"g"},"tags":[{"k":"a"}]},
                {"nic":{"ip":"1.2.3.4"},"sg":"plain","id":"v2"},
                {"nic":7}, ["nic"], {}]"#,
        )
        .unwrap();
        assert_eq!(project(text, &keep).unwrap(), want);
        let mut whole: Vec<Value> = serde_json::from_str(text).unwrap();
        retain(&mut whole, &keep);
        assert_eq!(whole, want);
        // A field named whole besides names inside it is kept whole.
        let keep = Keep::new(["nic.ip", "nic"].iter().map(|s| s.to_string()).collect());
        let all: Vec<Value> = serde_json::from_str(r#"[{"nic":[{"ip":"1","mac":"m"}]}]"#).unwrap();
        assert_eq!(project(r#"[{"nic":[{"ip":"1","mac":"m"}],"x":1}]"#, &keep).unwrap(), all);
    }

    #[test]
    fn not_a_list() {
        assert!(pick(r#"{"a":1}"#, &NAMES).is_err());
        assert!(pick(r#"[{"a":1}] x"#, &NAMES).is_err());
    }
}
