//! A small owned view of a parsed TOML file that keeps, for every key, the file and line it was
//! written on and the order it was written in (the `toml` crate's maps are sorted; shapes need
//! file order because it is the XML element order).

use std::fmt;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

/// Where something was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub file: Arc<str>,
    pub line: u32,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One problem found while loading the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub at: At,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

#[derive(Debug, Clone)]
pub enum V {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Arr(Vec<Node>),
    /// Entries in file order.
    Tab(Vec<(String, Node)>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub v: V,
    pub at: At,
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.v {
            V::Str(_) => "string",
            V::Int(_) => "integer",
            V::Float(_) => "float",
            V::Bool(_) => "boolean",
            V::Arr(_) => "array",
            V::Tab(_) => "table",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            V::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_tab(&self) -> Option<&[(String, Node)]> {
        match &self.v {
            V::Tab(t) => Some(t),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_tab()?.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    /// The value as JSON (step arguments are handed to steps this way).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.v {
            V::Str(s) => Value::String(s.clone()),
            V::Int(i) => Value::from(*i),
            V::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            V::Bool(b) => Value::Bool(*b),
            V::Arr(a) => Value::Array(a.iter().map(Node::to_json).collect()),
            V::Tab(t) => Value::Object(t.iter().map(|(k, n)| (k.clone(), n.to_json())).collect()),
        }
    }
}

/// Line number (1-based) of a byte offset.
fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() as u32 + 1
}

/// Parse a file into a `Node` tree. A syntax error is one `LoadError` with its line.
pub fn parse(file: &str, text: &str) -> Result<Node, LoadError> {
    let file: Arc<str> = Arc::from(file);
    match DeTable::parse(text) {
        Ok(t) => {
            let at = At { file: file.clone(), line: 1 };
            Ok(Node { v: table(t.get_ref(), &file, text), at })
        }
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            let msg = e.message().to_string();
            Err(LoadError { at: At { file, line }, message: format!("TOML syntax: {msg}") })
        }
    }
}

fn table(t: &DeTable<'_>, file: &Arc<str>, text: &str) -> V {
    let mut entries: Vec<(usize, String, Node)> = t
        .iter()
        .map(|(k, v)| {
            let start = k.span().start;
            let at = At { file: file.clone(), line: line_of(text, start) };
            (start, k.get_ref().to_string(), Node { v: value(v.get_ref(), v.span().start, file, text), at })
        })
        .collect();
    entries.sort_by_key(|(s, _, _)| *s);
    V::Tab(entries.into_iter().map(|(_, k, n)| (k, n)).collect())
}

fn value(v: &DeValue<'_>, _start: usize, file: &Arc<str>, text: &str) -> V {
    match v {
        DeValue::String(s) => V::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
            let (neg, digits) = match digits.strip_prefix('-') {
                Some(d) => (true, d.to_string()),
                None => (false, digits.trim_start_matches('+').to_string()),
            };
            let digits = digits.trim_start_matches("0x").trim_start_matches("0o").trim_start_matches("0b");
            let n = i64::from_str_radix(digits, i.radix()).unwrap_or(0);
            V::Int(if neg { -n } else { n })
        }
        DeValue::Float(f) => V::Float(f.as_str().replace('_', "").parse().unwrap_or(0.0)),
        DeValue::Boolean(b) => V::Bool(*b),
        DeValue::Datetime(d) => V::Str(d.to_string()),
        DeValue::Array(a) => V::Arr(
            a.iter()
                .map(|e| {
                    let at = At { file: file.clone(), line: line_of(text, e.span().start) };
                    Node { v: value(e.get_ref(), e.span().start, file, text), at }
                })
                .collect(),
        ),
        DeValue::Table(t) => table(t, file, text),
    }
}

/// Collects load errors while the table is read.
#[derive(Default)]
pub struct Errs(pub std::cell::RefCell<Vec<LoadError>>);

impl Errs {
    pub fn push(&self, at: &At, msg: impl Into<String>) {
        self.0.borrow_mut().push(LoadError { at: at.clone(), message: msg.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    pub fn take(&self) -> Vec<LoadError> {
        std::mem::take(&mut self.0.borrow_mut())
    }

    /// The entries of a table node; an error (and None) if it is something else.
    pub fn tab<'a>(&self, n: &'a Node, what: &str) -> Option<&'a [(String, Node)]> {
        match n.as_tab() {
            Some(t) => Some(t),
            None => {
                self.push(&n.at, format!("{what} must be a table, not a {}", n.type_name()));
                None
            }
        }
    }

    pub fn str<'a>(&self, n: &'a Node, what: &str) -> Option<&'a str> {
        match n.as_str() {
            Some(s) => Some(s),
            None => {
                self.push(&n.at, format!("{what} must be a string, not a {}", n.type_name()));
                None
            }
        }
    }

    pub fn bool(&self, n: &Node, what: &str) -> Option<bool> {
        match n.v {
            V::Bool(b) => Some(b),
            _ => {
                self.push(&n.at, format!("{what} must be true or false, not a {}", n.type_name()));
                None
            }
        }
    }

    pub fn int(&self, n: &Node, what: &str) -> Option<i64> {
        match n.v {
            V::Int(i) => Some(i),
            _ => {
                self.push(&n.at, format!("{what} must be an integer, not a {}", n.type_name()));
                None
            }
        }
    }

    /// A string, or an array of strings.
    pub fn strs(&self, n: &Node, what: &str) -> Vec<String> {
        match &n.v {
            V::Str(s) => vec![s.clone()],
            V::Arr(a) => a.iter().filter_map(|e| self.str(e, what).map(str::to_string)).collect(),
            _ => {
                self.push(&n.at, format!("{what} must be a string or an array of strings, not a {}", n.type_name()));
                Vec::new()
            }
        }
    }

    /// Report keys of `t` that are not in `allowed`.
    pub fn only(&self, t: &[(String, Node)], allowed: &[&str], what: &str) {
        for (k, n) in t {
            if !allowed.contains(&k.as_str()) {
                self.push(&n.at, format!("unknown key '{k}' in {what} (expected one of: {})", allowed.join(", ")));
            }
        }
    }
}

pub fn get<'a>(t: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    t.iter().find(|(k, _)| k == key).map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_file_order_and_lines() {
        let text = "[shape.X]\nzeta = \"a\"\nalpha = \"b\"\n\n[shape.Y]\nm = { list = \"x\", shape = \"X\" }\n";
        let n = parse("t.toml", text).unwrap();
        let x = n.get("shape").unwrap().get("X").unwrap();
        let keys: Vec<&str> = x.as_tab().unwrap().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["zeta", "alpha"]);
        assert_eq!(x.get("alpha").unwrap().at.line, 3);
        let y = n.get("shape").unwrap().get("Y").unwrap().get("m").unwrap();
        assert_eq!(y.at.line, 6);
        assert_eq!(y.get("shape").unwrap().as_str(), Some("X"));
    }

    #[test]
    fn syntax_error_has_line() {
        let e = parse("bad.toml", "a = 1\nb = \n").unwrap_err();
        assert_eq!(e.at.line, 2, "{e}");
        assert!(e.to_string().starts_with("bad.toml:2:"));
    }
}
