//! Value expressions of the mapping table: where a field's value comes from.
//!
//! ```text
//! expr  = alt ( " ?? " alt )*          first alternative that yields a value wins
//! alt   = term ( "|" conv )*           converters applied left to right
//! term  = "=" literal                  a constant
//!       | "$" var                      a context value: $region, $account, $param.<Ec2Param>
//!       | path
//! path  = "." | seg ( "." seg )*       "." is the object itself
//! seg   = name | name "[" N "]" | name "[]" | name "[" k "=" v ( "," k "=" v )* "]"
//! ```
//! `name[]` visits every element (filters match if any value matches); `name[k=v]` picks the
//! elements whose field `k` renders as `v`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    /// Plain field access (arrays pass through as one value).
    None,
    Index(usize),
    All,
    Where(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Seg {
    pub name: String,
    pub select: Select,
}

/// A parsed path; empty = the object itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Path {
    pub segs: Vec<Seg>,
    /// Where the first field sits in the item's view (`render::View`), for a path in a shape's
    /// field: set when the table loads (`Shape::reads`); None elsewhere.
    pub slot: Option<u16>,
}

/// An item's top-level fields that one shape reads, looked up once per item (one merged walk
/// over the item's sorted keys) instead of once per path: `[slot]` is the value of the shape's
/// `reads[slot]`, None when the item has no such field.
pub type View<'v> = [Option<&'v Value>];

#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Path(Path),
    Const(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// Full converter name as written (`id:instance`, `map:instance_state_name`, `iso8601`).
    pub name: String,
    /// The converter this name resolves to, found once at parse time so that rendering does not
    /// look names up per value: (index in the converter list, byte offset of the argument in
    /// `name`). None for an unknown name (the table load reports it).
    pub resolved: Option<(usize, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alt {
    pub term: Term,
    pub convs: Vec<Conv>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub alts: Vec<Alt>,
    pub text: String,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Path {
    pub fn parse(s: &str) -> Result<Path, String> {
        let s = s.trim();
        if s == "." {
            return Ok(Path::default());
        }
        if s.is_empty() {
            return Err("empty path".into());
        }
        let mut segs = Vec::new();
        // Split on dots outside brackets.
        let mut depth = 0;
        let mut start = 0;
        let bytes = s.as_bytes();
        let mut parts = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'[' => depth += 1,
                b']' => depth -= 1,
                b'.' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
            if depth < 0 {
                return Err(format!("unbalanced ']' in path '{s}'"));
            }
        }
        if depth != 0 {
            return Err(format!("unbalanced '[' in path '{s}'"));
        }
        parts.push(&s[start..]);
        for p in parts {
            let (name, select) = match p.find('[') {
                None => (p, Select::None),
                Some(i) => {
                    if !p.ends_with(']') {
                        return Err(format!("text after ']' in path segment '{p}'"));
                    }
                    let inner = &p[i + 1..p.len() - 1];
                    let sel = if inner.is_empty() {
                        Select::All
                    } else if let Ok(n) = inner.parse::<usize>() {
                        Select::Index(n)
                    } else {
                        let mut conds = Vec::new();
                        for c in inner.split(',') {
                            let (k, v) =
                                c.split_once('=').ok_or_else(|| format!("bad selector '[{inner}]' in path '{s}'"))?;
                            if !valid_name(k.trim()) {
                                return Err(format!("bad selector field '{k}' in path '{s}'"));
                            }
                            conds.push((k.trim().to_string(), v.trim().to_string()));
                        }
                        Select::Where(conds)
                    };
                    (&p[..i], sel)
                }
            };
            if !valid_name(name) {
                return Err(format!("bad field name '{name}' in path '{s}'"));
            }
            segs.push(Seg { name: name.to_string(), select });
        }
        Ok(Path { segs, slot: None })
    }

    pub fn is_self(&self) -> bool {
        self.segs.is_empty()
    }

    /// Every value the path reaches (several when a segment selects several elements).
    pub fn eval<'v>(&self, v: &'v Value) -> Vec<&'v Value> {
        let mut out = Vec::new();
        self.visit(v, &mut |x| {
            out.push(x);
            true
        });
        out
    }

    /// Call `f` on every value the path reaches, in `eval` order, without collecting them; `f`
    /// returns false to stop early. Returns false when stopped.
    pub fn visit<'v>(&self, v: &'v Value, f: &mut dyn FnMut(&'v Value) -> bool) -> bool {
        visit_segs(&self.segs, v, f)
    }

    /// `visit`, reading the first field from `view` when the path has a slot in it.
    pub fn visit_in<'v>(&self, v: &'v Value, view: Option<&View<'v>>, f: &mut dyn FnMut(&'v Value) -> bool) -> bool {
        match (self.segs.split_first(), self.slot.and_then(|i| view?.get(usize::from(i)))) {
            (Some((seg, rest)), Some(x)) => visit_found(seg, rest, *x, f),
            _ => visit_segs(&self.segs, v, f),
        }
    }

    /// The first value the path reaches.
    pub fn first<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        let mut found = None;
        self.visit(v, &mut |x| {
            found = Some(x);
            false
        });
        found
    }

    #[cfg(test)]
    fn eval_levels<'v>(&self, v: &'v Value) -> Vec<&'v Value> {
        let mut cur: Vec<&Value> = vec![v];
        for seg in &self.segs {
            let mut next = Vec::new();
            for c in cur {
                let Some(f) = c.get(&seg.name) else { continue };
                if f.is_null() {
                    continue;
                }
                match &seg.select {
                    Select::None => next.push(f),
                    Select::Index(n) => {
                        if let Some(x) = f.as_array().and_then(|a| a.get(*n)) {
                            next.push(x)
                        }
                    }
                    Select::All => match f.as_array() {
                        Some(a) => next.extend(a.iter()),
                        None => next.push(f),
                    },
                    Select::Where(conds) => {
                        let items: Vec<&Value> = match f.as_array() {
                            Some(a) => a.iter().collect(),
                            None => vec![f],
                        };
                        next.extend(items.into_iter().filter(|it| {
                            conds.iter().all(|(k, want)| it.get(k).map(scalar_text).as_deref() == Some(want.as_str()))
                        }));
                    }
                }
            }
            cur = next;
        }
        cur
    }

    /// The field names along the path (for validation against CloudStack object fields).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().map(|s| s.name.as_str())
    }
}

/// Depth-first walk of the segments. Expanding level by level (as `eval` did) and depth-first
/// give the same order, so `eval` is this walk collected.
fn visit_segs<'v>(segs: &[Seg], v: &'v Value, f: &mut dyn FnMut(&'v Value) -> bool) -> bool {
    let Some((seg, rest)) = segs.split_first() else { return f(v) };
    visit_found(seg, rest, v.get(&seg.name), f)
}

/// The walk from `x`, the value of `seg`'s field (None: the object has no such field).
fn visit_found<'v>(seg: &Seg, rest: &[Seg], x: Option<&'v Value>, f: &mut dyn FnMut(&'v Value) -> bool) -> bool {
    let Some(x) = x else { return true };
    if x.is_null() {
        return true;
    }
    match &seg.select {
        Select::None => visit_segs(rest, x, f),
        Select::Index(n) => match x.as_array().and_then(|a| a.get(*n)) {
            Some(e) => visit_segs(rest, e, f),
            None => true,
        },
        Select::All => match x.as_array() {
            Some(a) => a.iter().all(|e| visit_segs(rest, e, f)),
            None => visit_segs(rest, x, f),
        },
        Select::Where(conds) => {
            let ok = |it: &Value| conds.iter().all(|(k, want)| it.get(k).is_some_and(|kv| scalar_is(kv, want)));
            match x.as_array() {
                Some(a) => a.iter().filter(|e| ok(e)).all(|e| visit_segs(rest, e, f)),
                None => !ok(x) || visit_segs(rest, x, f),
            }
        }
    }
}

/// `scalar_text(v) == want` without building the text for strings.
fn scalar_is(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        other => scalar_text(other) == want,
    }
}

/// Text of a scalar JSON value as EC2 renders it (`true`, `42`, `abc`); None for null/containers.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Expr {
    pub fn parse(s: &str) -> Result<Expr, String> {
        let text = s.trim().to_string();
        if text.is_empty() {
            return Err("empty expression".into());
        }
        let mut alts = Vec::new();
        for alt in text.split("??") {
            let alt = alt.trim();
            if alt.is_empty() {
                return Err(format!("empty alternative in '{text}'"));
            }
            let mut pieces = alt.split('|');
            let head = pieces.next().unwrap_or("").trim();
            let term = if let Some(c) = head.strip_prefix('=') {
                Term::Const(c.to_string())
            } else if let Some(v) = head.strip_prefix('$') {
                if v.is_empty() {
                    return Err(format!("empty variable in '{text}'"));
                }
                Term::Var(v.to_string())
            } else {
                Term::Path(Path::parse(head)?)
            };
            let mut convs = Vec::new();
            for c in pieces {
                let c = c.trim();
                if c.is_empty() {
                    return Err(format!("empty converter name in '{text}'"));
                }
                convs.push(Conv { name: c.to_string(), resolved: super::convert::resolve(c) });
            }
            alts.push(Alt { term, convs });
        }
        Ok(Expr { alts, text })
    }

    /// Shorthand for a plain path expression.
    pub fn path(p: &str) -> Expr {
        Expr::parse(p).expect("static path")
    }

    pub fn convs(&self) -> impl Iterator<Item = &Conv> {
        self.alts.iter().flat_map(|a| a.convs.iter())
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.alts.iter().filter_map(|a| match &a.term {
            Term::Path(p) => Some(p),
            _ => None,
        })
    }

    pub fn paths_mut(&mut self) -> impl Iterator<Item = &mut Path> {
        self.alts.iter_mut().filter_map(|a| match &mut a.term {
            Term::Path(p) => Some(p),
            _ => None,
        })
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.alts.iter().filter_map(|a| match &a.term {
            Term::Var(v) => Some(v.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_selectors() {
        let vm = json!({"id":"u1","nic":[{"ipaddress":"10.0.0.2","isdefault":false},{"ipaddress":"10.0.0.3","isdefault":true,"type":"Shared"}],
                        "tags":[{"key":"a","value":"1"},{"key":"b","value":"2"}]});
        let p = Path::parse("nic[isdefault=true].ipaddress").unwrap();
        assert_eq!(p.eval(&vm), vec![&json!("10.0.0.3")]);
        let p = Path::parse("nic[isdefault=true,type=Shared].ipaddress").unwrap();
        assert_eq!(p.eval(&vm).len(), 1);
        let p = Path::parse("nic[].ipaddress").unwrap();
        assert_eq!(p.eval(&vm).len(), 2);
        let p = Path::parse("nic[0].ipaddress").unwrap();
        assert_eq!(p.eval(&vm), vec![&json!("10.0.0.2")]);
        assert_eq!(Path::parse(".").unwrap().eval(&vm), vec![&vm]);
        assert!(Path::parse("nic[.ip").is_err());
        assert!(Path::parse("a..b").is_err());
        assert!(Path::parse("a b").is_err());
        assert!(Path::parse("missing.x").unwrap().eval(&vm).is_empty());
    }

    #[test]
    fn depth_first_walk_matches_level_order() {
        let vm = json!({"nic":[{"ipaddress":"10.0.0.2","isdefault":false,"ip6":["a","b"]},
                               {"ipaddress":"10.0.0.3","isdefault":true,"type":"Shared","ip6":["c"]},
                               {"ipaddress":7,"isdefault":"true","ip6":null}],
                        "sg":{"id":"x","rules":[{"p":1},{"p":2}]}, "n":null, "one":{"isdefault":true,"v":"w"}});
        for p in [
            "nic[].ip6[]",
            "nic[].ip6",
            "nic[isdefault=true].ipaddress",
            "nic[1].ip6[0]",
            "sg.rules[].p",
            "sg[].rules[p=2].p",
            "n.x",
            "one[isdefault=true].v",
            "one[isdefault=false].v",
            "nic[ipaddress=7]",
            "missing[]",
            ".",
            "nic[5]",
        ] {
            let p = Path::parse(p).unwrap();
            assert_eq!(p.eval(&vm), p.eval_levels(&vm), "{p:?}");
            assert_eq!(p.first(&vm), p.eval_levels(&vm).first().copied());
        }
    }

    #[test]
    fn expressions() {
        let e = Expr::parse("publicip ?? nic[isdefault=true].ipaddress|lower ?? =none").unwrap();
        assert_eq!(e.alts.len(), 3);
        assert_eq!(e.alts[1].convs[0].name, "lower");
        assert_eq!(e.alts[2].term, Term::Const("none".into()));
        assert_eq!(Expr::parse("$param.Force|bool").unwrap().alts[0].term, Term::Var("param.Force".into()));
        assert!(Expr::parse("a||b").is_err());
        assert!(Expr::parse("").is_err());
    }
}
