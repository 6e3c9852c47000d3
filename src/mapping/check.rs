//! "List, check state, call" as data: an action's `check` lists the requested objects once
//! (the kind's list call), annotates them (transforms), and refuses the request with an EC2
//! error when a rule matches; only then does the action's `call` run. `answer` builds the
//! result document from the checked object (`set` fields evaluated over it), for mutations that
//! answer with the object's new state (AttachVolume: `attaching`).
//!
//! ```toml
//! [action.DeleteVolume]
//! ids = { param = "VolumeId", kind = "volume", backend = "each", required = true }
//! check.annotate = ["volume_states"]
//! check.refuse = [
//!   { when = "virtualmachineid", code = "VolumeInUse", message = "Volume {id} is currently attached to {virtualmachineid|id:instance}" },
//!   { when = "_status", not_in = ["available", "error"], code = "IncorrectState", message = "The volume '{id}' is '{_status}'." },
//! ]
//! call = { command = "deleteVolume" }
//! ```
//! Rule expressions and `set` values see the listed object, plus `_cs.<name>`: the request's
//! resolved CloudStack parameters (also the `_`-prefixed ones, which are never sent).

use serde_json::{Map, Value};

use super::convert::{self, Env};
use super::exec::{Ctx, Prepared, not_found};
use super::expr::{Expr, scalar_text};
use super::steps;
use super::table::Action;
use super::toml_src::{self, At, Errs, Node, V};
use crate::base::{Code, Ec2Error};

/// How the requested objects are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListBy {
    /// `ids=<uuid>,<uuid>` on the kind's list call (one call).
    Ids,
    /// `id=<uuid>` when one object is asked for, else the kind's whole listing (commands that
    /// take one id, like listSnapshots).
    Id,
}

#[derive(Debug, Clone)]
pub enum Cond {
    /// The expression has a (non-empty) value.
    Present,
    In(Vec<String>),
    NotIn(Vec<String>),
    /// The expression has a value and it is not the other expression's value.
    Differs(Expr),
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    /// `{id}`: the EC2 id the rule is about.
    Id,
    Expr(Expr),
}

/// A message with `{id}` and `{expression}` placeholders.
#[derive(Debug, Clone)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone)]
pub struct Refusal {
    pub when: Expr,
    pub cond: Cond,
    pub code: Code,
    pub message: Template,
    pub at: At,
}

#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub by: ListBy,
    pub annotate: Vec<String>,
    pub refuse: Vec<Refusal>,
    pub at: At,
}

#[derive(Debug, Clone)]
pub struct AnswerSpec {
    /// Fields set on the checked object (an expression without a value leaves the field as is).
    pub set: Vec<(String, Expr)>,
    pub at: At,
}

impl Template {
    fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| format!("unclosed '{{' in message '{s}'"))? + open;
            let inner = &rest[open + 1..close];
            parts.push(if inner == "id" { Part::Id } else { Part::Expr(Expr::parse(inner)?) });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.0.iter().filter_map(|p| if let Part::Expr(e) = p { Some(e) } else { None })
    }

    fn render(&self, id: &str, item: &Value, env: &Env<'_>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Id => out.push_str(id),
                Part::Expr(e) => out.push_str(&convert::eval_text(e, item, env).unwrap_or_default()),
            }
        }
        out
    }
}

fn text_of(e: &Expr, item: &Value, env: &Env<'_>) -> String {
    convert::eval_text(e, item, env).unwrap_or_default()
}

impl Refusal {
    fn matches(&self, item: &Value, env: &Env<'_>) -> bool {
        let v = text_of(&self.when, item, env);
        match &self.cond {
            Cond::Present => !v.is_empty(),
            Cond::In(l) => l.contains(&v),
            Cond::NotIn(l) => !l.contains(&v),
            Cond::Differs(other) => !v.is_empty() && v != text_of(other, item, env),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

fn expr(n: &Node, what: &str, errs: &Errs) -> Option<Expr> {
    let s = errs.str(n, what)?;
    Expr::parse(s).map_err(|m| errs.push(&n.at, format!("{what}: {m}"))).ok()
}

pub fn read_check(n: &Node, errs: &Errs) -> Option<CheckSpec> {
    let tab = errs.tab(n, "check")?;
    errs.only(tab, &["by", "annotate", "refuse"], "check");
    let by = match toml_src::get(tab, "by").and_then(|x| errs.str(x, "check.by")).unwrap_or("ids") {
        "ids" => ListBy::Ids,
        "id" => ListBy::Id,
        other => {
            errs.push(&n.at, format!("check.by '{other}' (expected ids or id)"));
            ListBy::Ids
        }
    };
    let annotate = toml_src::get(tab, "annotate").map(|x| errs.strs(x, "check.annotate")).unwrap_or_default();
    let mut refuse = Vec::new();
    if let Some(r) = toml_src::get(tab, "refuse") {
        match &r.v {
            V::Arr(rules) => {
                for rule in rules {
                    refuse.extend(read_refusal(rule, errs));
                }
            }
            _ => errs.push(&r.at, "check.refuse is an array of { when, code, message } rules"),
        }
    }
    Some(CheckSpec { by, annotate, refuse, at: n.at.clone() })
}

fn read_refusal(n: &Node, errs: &Errs) -> Option<Refusal> {
    let tab = errs.tab(n, "check rule")?;
    errs.only(tab, &["when", "in", "not_in", "differs", "code", "message"], "check rule");
    let g = |k: &str| toml_src::get(tab, k);
    let Some(when) = g("when").and_then(|x| expr(x, "when", errs)) else {
        errs.push(&n.at, "a check rule needs when = \"expression\"");
        return None;
    };
    let conds: Vec<Cond> = [
        g("in").map(|x| Cond::In(errs.strs(x, "in"))),
        g("not_in").map(|x| Cond::NotIn(errs.strs(x, "not_in"))),
        g("differs").and_then(|x| expr(x, "differs", errs)).map(Cond::Differs),
    ]
    .into_iter()
    .flatten()
    .collect();
    if conds.len() > 1 {
        errs.push(&n.at, "a check rule takes one of in, not_in, differs");
    }
    let cond = conds.into_iter().next().unwrap_or(Cond::Present);
    let code = g("code").and_then(|x| {
        let c = errs.str(x, "code")?;
        let parsed = Code::parse(c);
        if parsed.is_none() {
            errs.push(&x.at, format!("unknown EC2 error code '{c}' (see `ec2bridge errors`)"));
        }
        parsed
    });
    let message = g("message").and_then(|x| errs.str(x, "message"));
    if g("code").is_none() || message.is_none() {
        errs.push(&n.at, "a check rule needs code and message");
    }
    let (Some(code), Some(message)) = (code, message) else { return None };
    let message = Template::parse(message).map_err(|m| errs.push(&n.at, m)).ok()?;
    Some(Refusal { when, cond, code, message, at: n.at.clone() })
}

pub fn read_answer(n: &Node, errs: &Errs) -> Option<AnswerSpec> {
    let tab = errs.tab(n, "answer")?;
    errs.only(tab, &["set"], "answer");
    let mut set = Vec::new();
    if let Some(s) = toml_src::get(tab, "set")
        && let Some(st) = errs.tab(s, "answer.set")
    {
        for (k, v) in st {
            if let Some(e) = expr(v, k, errs) {
                set.push((k.clone(), e));
            }
        }
    }
    Some(AnswerSpec { set, at: n.at.clone() })
}

/// Load-time checks: transforms exist, converters and variables are known.
pub fn validate(a: &Action, errs: &Errs, check_expr: &dyn Fn(&Expr, &At)) {
    let (check, answer) = (a.check.as_ref(), a.answer.as_ref());
    if let Some(c) = check {
        if a.ids.is_none() {
            errs.push(&c.at, "check needs ids (the objects it lists)");
        }
        for t in &c.annotate {
            if !steps::is_transform(t) {
                errs.push(&c.at, format!("check.annotate: unknown transform '{t}'"));
            }
        }
        for r in &c.refuse {
            check_expr(&r.when, &r.at);
            if let Cond::Differs(e) = &r.cond {
                check_expr(e, &r.at);
            }
            for e in r.message.exprs() {
                check_expr(e, &r.at);
            }
        }
    }
    if let Some(ans) = answer {
        if check.is_none() && a.call.is_none() {
            errs.push(&ans.at, "answer needs check or call (it answers with the checked object or the call's answer)");
        }
        for (_, e) in &ans.set {
            check_expr(e, &ans.at);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running

/// The object as rules see it: the listed object plus `_cs` (the resolved CloudStack params, and
/// the requested ids' uuids under the name `ids` sends them as, comma-joined).
fn with_params(mut item: Value, action: &Action, prep: &Prepared) -> Value {
    let mut cs: Map<String, Value> = prep.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    if let Some(ids) = &action.ids
        && !prep.ids.is_empty()
    {
        let joined = prep.ids.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>().join(",");
        cs.entry(ids.cs_param.clone()).or_insert(Value::String(joined));
    }
    if let Some(o) = item.as_object_mut() {
        o.insert("_cs".into(), Value::Object(cs));
    }
    item
}

/// List the requested objects, annotate them, apply the rules. Answers the objects in request
/// order (as rules see them).
pub async fn run(ctx: &Ctx<'_>, spec: &CheckSpec, prep: &Prepared) -> Result<Vec<Value>, Ec2Error> {
    let a = ctx.action;
    let ids = a.ids.as_ref().ok_or_else(Ec2Error::internal)?;
    let kind = ctx.ex.table.kinds.get(&ids.kind).ok_or_else(Ec2Error::internal)?;
    let lc = kind.list.first().ok_or_else(Ec2Error::internal)?;
    // Objects the gateway's store holds (`[kind.X] store_records`) are not asked of CloudStack.
    let mut listed = Vec::new();
    let mut ask: Vec<&(String, String)> = Vec::new();
    for pair in &prep.ids {
        match ctx.store_record(ids.kind, &pair.0).await? {
            Some(doc) => listed.push(doc),
            None => ask.push(pair),
        }
    }
    let mut params = lc.params.clone();
    match (spec.by, ask.as_slice()) {
        (ListBy::Ids, all) => {
            params.push(("ids".into(), all.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>().join(",")))
        }
        (ListBy::Id, [(_, u)]) => params.push(("id".into(), u.clone())),
        (ListBy::Id, _) => {}
    }
    if !ask.is_empty() {
        listed.extend(ctx.list(&lc.command, &params, &lc.items).await?);
    }
    for t in &spec.annotate {
        listed = steps::transform(t, ctx, prep, listed).await?;
    }
    let uuid_of = |v: &Value| kind.id_path.eval(v).first().map(|x| scalar_text(x));
    let mut found = Vec::with_capacity(prep.ids.len());
    let mut missing = Vec::new();
    for (ec2, uuid) in &prep.ids {
        match listed.iter().find(|v| uuid_of(v).as_deref() == Some(uuid.as_str())) {
            Some(v) => found.push((ec2.as_str(), with_params(v.clone(), a, prep))),
            None => missing.push(ec2.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(not_found(kind, &missing));
    }
    let env = ctx.env();
    for (ec2, item) in &found {
        if let Some(r) = spec.refuse.iter().find(|r| r.matches(item, &env)) {
            return Err(Ec2Error::new(r.code, r.message.render(ec2, item, &env)));
        }
    }
    Ok(found.into_iter().map(|(_, v)| v).collect())
}

/// The answer document: the first checked object, or (without a check) the call's answer, with
/// the `set` fields; `set` sees `_cs` in both cases.
pub fn answer(ctx: &Ctx<'_>, spec: &AnswerSpec, prep: &Prepared, checked: Option<&[Value]>, produced: Value) -> Value {
    let mut doc = match checked {
        Some(items) => items.first().cloned().unwrap_or(Value::Null),
        None => {
            let first = match produced {
                Value::Array(mut v) if !v.is_empty() => v.swap_remove(0),
                other => other,
            };
            with_params(first, ctx.action, prep)
        }
    };
    let env = ctx.env();
    let values: Vec<(String, Value)> = spec
        .set
        .iter()
        .filter_map(|(k, e)| convert::eval_first(e, &doc, &env).map(|v| (k.clone(), v.into_owned())))
        .collect();
    if let Some(o) = doc.as_object_mut() {
        for (k, v) in values {
            o.insert(k, v);
        }
    }
    doc
}
