//! Reading mapping files into a `Table`: every section type, in dependency order (commands,
//! objects, kinds, maps, shapes, filters, then actions), each problem recorded with its file and
//! line; `validate` runs last.

use std::collections::HashMap;
use std::path::Path as FsPath;

use super::super::expr::{Expr, Path};
use super::super::filter::FilterSet;
use super::super::toml_src::{self, At, Errs, LoadError, Node, V};
use super::*;
use crate::base::Code;
use crate::ids::Kind;

impl Table {
    /// The compiled-in table.
    pub fn builtin() -> Result<Table, Vec<LoadError>> {
        let files: Vec<(String, String)> = BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
        Table::from_sources(&files)
    }

    /// The compiled-in table overlaid by `dir`: a file there replaces the built-in file of the same
    /// name, other `*.toml` files are added.
    pub fn load(dir: Option<&FsPath>) -> Result<Table, Vec<LoadError>> {
        let mut files: Vec<(String, String)> = BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
        if let Some(dir) = dir {
            let at = At { file: dir.display().to_string().into(), line: 0 };
            let rd = std::fs::read_dir(dir)
                .map_err(|e| vec![LoadError { at: at.clone(), message: format!("cannot read directory: {e}") }])?;
            let mut names: Vec<std::path::PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            names.sort();
            for p in names {
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    vec![LoadError { at: At { file: p.display().to_string().into(), line: 0 }, message: e.to_string() }]
                })?;
                let base = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                let shown = p.display().to_string();
                match files
                    .iter_mut()
                    .find(|(n, _)| std::path::Path::new(n).file_name().is_some_and(|f| f == base.as_str()))
                {
                    Some(slot) => *slot = (shown, text),
                    None => files.push((shown, text)),
                }
            }
        }
        Table::from_sources(&files)
    }

    /// The SOAP front end's path table: `[soap]` plus every action's `soap` entries. The table
    /// was validated at load, so this cannot fail for a loaded table.
    pub fn soap_paths(&self) -> crate::ec2::soap::PathTable {
        let pair = |p: &SoapPath| (p.path.clone(), p.query.clone());
        crate::ec2::soap::PathTable::new(
            self.soap_common.iter().map(pair),
            self.actions.values().map(|a| (a.name.clone(), a.soap.iter().map(pair).collect::<Vec<_>>())),
        )
        .unwrap_or_else(|e| unreachable!("SOAP paths are checked when the table loads: {e}"))
    }

    /// Build and validate a table from `(file name, text)` pairs.
    pub fn from_sources(files: &[(String, String)]) -> Result<Table, Vec<LoadError>> {
        let errs = Errs::default();
        let mut roots = Vec::new();
        for (name, text) in files {
            match toml_src::parse(name, text) {
                Ok(n) => roots.push(n),
                Err(e) => errs.0.borrow_mut().push(e),
            }
        }
        let mut t = Table { files: files.iter().map(|(n, _)| n.clone()).collect(), ..Default::default() };
        // Definitions first (commands, objects, maps, shapes, filters, kinds), then actions,
        // which refer to them.
        let mut sections: HashMap<&str, Vec<(&String, &Node)>> = HashMap::new();
        for root in &roots {
            let Some(top) = errs.tab(root, "a mapping file") else { continue };
            for (k, n) in top {
                match k.as_str() {
                    "command" | "object" | "map" | "shape" | "filters" | "kind" | "action" => {
                        let Some(entries) = errs.tab(n, &format!("[{k}]")) else { continue };
                        for (name, body) in entries {
                            sections.entry(k.as_str()).or_default().push((name, body));
                        }
                    }
                    "soap" => read_soap_paths(n, "[soap]", &errs, &mut t.soap_common),
                    "error" => match &n.v {
                        V::Arr(items) => {
                            for it in items {
                                read_error_rule(&mut t, it, &errs);
                            }
                        }
                        _ => errs.push(&n.at, "error rules are written as [[error]] tables"),
                    },
                    other => errs.push(
                        &n.at,
                        format!(
                            "unknown section '{other}' (expected command, object, map, shape, filters, kind, action, error, soap)"
                        ),
                    ),
                }
            }
        }
        let sec = |k: &str| sections.get(k).cloned().unwrap_or_default();
        let mut seen: HashMap<String, At> = HashMap::new();
        let mut dup = |sect: &str, name: &str, at: &At| {
            let key = format!("{sect}.{name}");
            if let Some(prev) = seen.get(&key) {
                errs.push(at, format!("{sect} '{name}' is defined twice (first at {prev})"));
                true
            } else {
                seen.insert(key, at.clone());
                false
            }
        };
        for (name, n) in sec("command") {
            if !dup("command", name, &n.at) {
                read_command(&mut t, name, n, &errs);
            }
        }
        for (name, n) in sec("object") {
            if !dup("object", name, &n.at) {
                read_object(&mut t, name, n, &errs);
            }
        }
        // Kinds before shapes and actions, whose `id:` converters and resolvers name them.
        for (name, n) in sec("kind") {
            if !dup("kind", name, &n.at) {
                read_kind(&mut t, name, n, &errs);
            }
        }
        for (name, n) in sec("map") {
            if !dup("map", name, &n.at) {
                read_map(&mut t, name, n, &errs);
            }
        }
        for (name, n) in sec("shape") {
            if !dup("shape", name, &n.at) {
                read_shape(&mut t, name, n, &errs);
            }
        }
        for (name, n) in sec("filters") {
            if !dup("filters", name, &n.at)
                && let Some(fs) = read_filter_set(name, n, &errs, &t.shapes)
            {
                t.filter_sets.insert(name.clone(), fs);
            }
        }
        for (name, n) in sec("action") {
            if !dup("action", name, &n.at) {
                read_action(&mut t, name, n, &errs);
            }
        }
        super::validate::validate(&t, &errs);
        if errs.is_empty() {
            t.item_fields = super::super::project::item_fields(&t);
            return Ok(t);
        }
        let mut all = errs.take();
        all.sort_by(|a, b| (&a.at.file, a.at.line).cmp(&(&b.at.file, b.at.line)));
        all.dedup();
        Err(all)
    }
}

fn read_command(t: &mut Table, name: &str, n: &Node, errs: &Errs) {
    let Some(tab) = errs.tab(n, &format!("command {name}")) else { return };
    errs.only(tab, &["items", "async", "creates", "result"], &format!("command {name}"));
    let s = |k: &str| toml_src::get(tab, k).and_then(|v| errs.str(v, k)).map(str::to_string);
    let b = |k: &str| toml_src::get(tab, k).and_then(|v| errs.bool(v, k)).unwrap_or(false);
    let creates = b("creates");
    t.commands.insert(
        name.to_string(),
        CommandInfo {
            name: name.to_string(),
            items: s("items"),
            is_async: b("async") || creates,
            creates,
            result: s("result"),
            at: n.at.clone(),
        },
    );
}

fn read_object(t: &mut Table, name: &str, n: &Node, errs: &Errs) {
    let Some(tab) = errs.tab(n, &format!("object {name}")) else { return };
    errs.only(tab, &["fields", "nested"], &format!("object {name}"));
    let mut o = ObjectInfo::default();
    if let Some(f) = toml_src::get(tab, "fields") {
        for s in errs.strs(f, "fields") {
            o.fields.extend(s.split_whitespace().map(str::to_string));
        }
    }
    if let Some(nn) = toml_src::get(tab, "nested")
        && let Some(nt) = errs.tab(nn, "nested")
    {
        for (k, v) in nt {
            if let Some(s) = errs.str(v, "nested object name") {
                o.nested.insert(k.clone(), s.to_string());
            }
        }
    }
    t.objects.insert(name.to_string(), o);
}

fn read_map(t: &mut Table, name: &str, n: &Node, errs: &Errs) {
    let Some(tab) = errs.tab(n, &format!("map {name}")) else { return };
    let mut m = ValueMap { entries: HashMap::default(), default: None };
    for (k, v) in tab {
        let val = match &v.v {
            V::Str(s) => s.clone(),
            V::Int(i) => i.to_string(),
            V::Bool(b) => b.to_string(),
            _ => {
                errs.push(&v.at, format!("map values must be strings, numbers or booleans, not a {}", v.type_name()));
                continue;
            }
        };
        if k == "*" {
            m.default = Some(val);
        } else {
            m.entries.insert(k.clone(), val);
        }
    }
    t.maps.insert(name.to_string(), m);
}

fn parse_expr(s: &str, at: &At, errs: &Errs) -> Option<Expr> {
    match Expr::parse(s) {
        Ok(e) => Some(e),
        Err(m) => {
            errs.push(at, m);
            None
        }
    }
}

fn read_shape(t: &mut Table, name: &str, n: &Node, errs: &Errs) {
    let Some(tab) = errs.tab(n, &format!("shape {name}")) else { return };
    let mut shape =
        Shape { name: name.to_string(), source: None, fields: Vec::new(), reads: Vec::new(), at: n.at.clone() };
    for (k, v) in tab {
        if k == "_source" {
            shape.source = errs.str(v, "_source").map(str::to_string);
            continue;
        }
        let field = match &v.v {
            V::Str(s) => parse_expr(s, &v.at, errs).map(|e| Field {
                name: k.clone(),
                kind: FieldKind::Value(e),
                always: false,
                since: None,
                when: None,
                at: v.at.clone(),
            }),
            V::Tab(ft) => {
                let what = format!("field {name}.{k}");
                errs.only(ft, &["value", "shape", "from", "list", "always", "since", "when"], &what);
                let g = |key: &str| toml_src::get(ft, key);
                let always = g("always").and_then(|x| errs.bool(x, "always")).unwrap_or(false);
                let since = g("since").and_then(|x| errs.str(x, "since")).map(str::to_string);
                if let Some(s) = &since
                    && !is_version(s)
                {
                    errs.push(&v.at, format!("since = '{s}' is not an API version (YYYY-MM-DD)"));
                }
                let when = g("when").and_then(|x| errs.str(x, "when")).and_then(|s| parse_expr(s, &v.at, errs));
                let shape_ref = g("shape").and_then(|x| errs.str(x, "shape")).map(str::to_string);
                let kind = if let Some(list) = g("list") {
                    let from = errs.str(list, "list").and_then(|s| parse_expr(s, &v.at, errs));
                    match (from, shape_ref) {
                        (Some(from), Some(shape)) => Some(FieldKind::List { from, shape }),
                        (_, None) => {
                            errs.push(&v.at, format!("{what}: a list needs shape = \"...\" for its items"));
                            None
                        }
                        _ => None,
                    }
                } else if let Some(shape) = shape_ref {
                    let from = g("from").and_then(|x| errs.str(x, "from")).unwrap_or(".");
                    parse_expr(from, &v.at, errs).map(|from| FieldKind::Nested { shape, from })
                } else if let Some(val) = g("value") {
                    errs.str(val, "value").and_then(|s| parse_expr(s, &v.at, errs)).map(FieldKind::Value)
                } else {
                    errs.push(&v.at, format!("{what} needs value, shape or list"));
                    None
                };
                kind.map(|kind| Field { name: k.clone(), kind, always, since, when, at: v.at.clone() })
            }
            _ => {
                errs.push(&v.at, format!("field {name}.{k} must be a string or a table, not a {}", v.type_name()));
                None
            }
        };
        if let Some(f) = field {
            if !valid_element(&f.name) {
                errs.push(&f.at, format!("'{}' is not a valid XML element name", f.name));
            }
            shape.fields.push(f);
        }
    }
    shape.index_reads();
    t.shapes.insert(name.to_string(), shape);
}

fn is_version(s: &str) -> bool {
    s.len() == 10 && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() })
}

fn valid_element(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' || ch == '.')
}

/// `@path` in a filter set with `shape = "S"`: the expression of S's value field at `path`
/// (`@instanceId`, or through nested shapes that read the same object, `@placement.availabilityZone`),
/// so a filter that means what a field renders is written once.
fn shape_field_expr(
    shapes: &HashMap<String, Shape, crate::base::util::NameHash>,
    shape: &str,
    path: &str,
) -> Result<Expr, String> {
    let mut cur = shapes.get(shape).ok_or_else(|| format!("unknown shape '{shape}'"))?;
    let segs: Vec<&str> = path.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        let f = cur
            .fields
            .iter()
            .find(|f| f.name == *seg)
            .ok_or_else(|| format!("shape {} has no field '{seg}'", cur.name))?;
        match (&f.kind, i + 1 == segs.len()) {
            (FieldKind::Value(e), true) => return Ok(e.clone()),
            (FieldKind::Nested { shape, from }, false) if from.text.trim() == "." => {
                cur = shapes.get(shape).ok_or_else(|| format!("unknown shape '{shape}'"))?;
            }
            _ => {
                return Err(format!(
                    "@{path}: '{seg}' of shape {} is not a value field (or a nested shape of the same object)",
                    cur.name
                ));
            }
        }
    }
    Err(format!("@{path}: empty field path"))
}

fn read_filter_set(
    name: &str,
    n: &Node,
    errs: &Errs,
    shapes: &HashMap<String, Shape, crate::base::util::NameHash>,
) -> Option<FilterSet> {
    let tab = errs.tab(n, &format!("filters {name}"))?;
    errs.only(tab, &["source", "shape", "tags", "fields", "absent", "refused"], &format!("filters {name}"));
    let shape = toml_src::get(tab, "shape").and_then(|x| errs.str(x, "shape")).map(str::to_string);
    let source = toml_src::get(tab, "source").and_then(|x| errs.str(x, "source")).map(str::to_string);
    let tags = toml_src::get(tab, "tags").and_then(|x| errs.str(x, "tags")).and_then(|s| match Path::parse(s) {
        Ok(p) => Some(p),
        Err(m) => {
            errs.push(&n.at, m);
            None
        }
    });
    let mut fields = Vec::new();
    if let Some(f) = toml_src::get(tab, "fields")
        && let Some(ft) = errs.tab(f, "fields")
    {
        for (k, v) in ft {
            let Some(text) = errs.str(v, "filter expression") else { continue };
            let e = match (text.strip_prefix('@'), &shape) {
                (Some(path), Some(sh)) => {
                    shape_field_expr(shapes, sh, path).map_err(|m| errs.push(&v.at, format!("filter {k}: {m}"))).ok()
                }
                (Some(_), None) => {
                    errs.push(&v.at, format!("filter {k}: @field needs shape = \"...\" in the filter set"));
                    None
                }
                (None, _) => parse_expr(text, &v.at, errs),
            };
            if let Some(e) = e {
                fields.push((k.clone(), e, v.at.clone()));
            }
        }
    }
    // name -> reason tables: `absent` (matches nothing here) and `refused` (answered with an error).
    let reasons = |key: &str| {
        let mut out = Vec::new();
        if let Some(f) = toml_src::get(tab, key)
            && let Some(ft) = errs.tab(f, key)
        {
            for (k, v) in ft {
                match errs.str(v, "reason") {
                    Some(r) if !r.trim().is_empty() => out.push((k.clone(), r.to_string(), v.at.clone())),
                    Some(_) => errs.push(&v.at, format!("filter {k}: {key} needs a reason")),
                    None => {}
                }
            }
        }
        out
    };
    let absent = reasons("absent");
    let refused = reasons("refused");
    Some(FilterSet { name: name.to_string(), source, tags, fields, absent, refused, at: n.at.clone() })
}

fn read_list_call(n: &Node, errs: &Errs, t: &Table) -> Option<ListCall> {
    let tab = errs.tab(n, "list call")?;
    errs.only(tab, &["command", "params", "items"], "list call");
    let command = toml_src::get(tab, "command").and_then(|x| errs.str(x, "command"))?.to_string();
    let items = toml_src::get(tab, "items")
        .and_then(|x| errs.str(x, "items"))
        .map(str::to_string)
        .or_else(|| t.commands.get(&command).and_then(|c| c.items.clone()));
    let Some(items) = items else {
        errs.push(&n.at, format!("{command}: unknown list command (declare it in [command] with items = ...)"));
        return None;
    };
    let mut params = Vec::new();
    if let Some(p) = toml_src::get(tab, "params")
        && let Some(pt) = errs.tab(p, "params")
    {
        for (k, v) in pt {
            if let Some(s) = errs.str(v, "parameter value") {
                params.push((k.clone(), s.to_string()));
            }
        }
    }
    Some(ListCall { command, items, params })
}

/// `[kind.X]`: a kind of resource with an EC2 id (docs/ids.md). Declaring it registers its
/// prefix, so a new kind needs no Rust.
fn read_kind(t: &mut Table, name: &str, n: &Node, errs: &Errs) {
    let Some(tab) = errs.tab(n, &format!("kind {name}")) else { return };
    errs.only(
        tab,
        &["prefix", "list", "id", "malformed", "not_found", "tags", "store", "store_records"],
        &format!("kind {name}"),
    );
    let Some(prefix_node) = toml_src::get(tab, "prefix") else {
        errs.push(&n.at, format!("kind {name} needs prefix = \"<EC2 id prefix>\""));
        return;
    };
    let Some(prefix) = errs.str(prefix_node, "prefix") else { return };
    let kind = match crate::ids::declare(name, prefix) {
        Ok(k) => k,
        Err(m) => {
            errs.push(&prefix_node.at, m);
            // Keep reading a kind that exists under another prefix: one error, not one per use.
            let Some(k) = Kind::from_name(name) else { return };
            k
        }
    };
    let store = toml_src::get(tab, "store").and_then(|x| errs.bool(x, "store")).unwrap_or(false);
    let store_records =
        toml_src::get(tab, "store_records").and_then(|x| errs.str(x, "store_records")).map(str::to_string);
    let tags = toml_src::get(tab, "tags").and_then(|x| {
        let xt = errs.tab(x, "tags")?;
        errs.only(xt, &["cloudstack", "also", "resource_type", "owner"], "tags");
        let get = |k: &str| toml_src::get(xt, k).and_then(|v| errs.str(v, k)).map(str::to_string);
        // A kind kept in the store is tagged there: it names no CloudStack resource type.
        let cloudstack = if store { Some(get("cloudstack").unwrap_or_default()) } else { get("cloudstack") };
        let (Some(cloudstack), Some(resource_type)) = (cloudstack, get("resource_type")) else {
            errs.push(
                &x.at,
                "tags needs cloudstack = \"<CloudStack resource type>\" and resource_type = \"<EC2 name>\"",
            );
            return None;
        };
        if store && !cloudstack.is_empty() {
            errs.push(&x.at, "a kind kept in the gateway's store is tagged in the store: no cloudstack type");
            return None;
        }
        let also = toml_src::get(xt, "also").map(|v| errs.strs(v, "also")).unwrap_or_default();
        let owner = get("owner").and_then(|s| Path::parse(&s).map_err(|m| errs.push(&x.at, m)).ok());
        Some(KindTags { cloudstack, also, resource_type, owner })
    });
    let mut list = Vec::new();
    if let Some(l) = toml_src::get(tab, "list") {
        match &l.v {
            V::Arr(items) => list.extend(items.iter().filter_map(|i| read_list_call(i, errs, t))),
            V::Tab(_) => list.extend(read_list_call(l, errs, t)),
            _ => errs.push(&l.at, "list must be a table or an array of tables"),
        }
    }
    if store && !list.is_empty() {
        errs.push(&n.at, format!("kind {name}: a kind kept in the gateway's store has no CloudStack list call"));
    }
    let id_path = toml_src::get(tab, "id")
        .and_then(|x| errs.str(x, "id"))
        .and_then(|s| Path::parse(s).map_err(|m| errs.push(&n.at, m)).ok())
        .unwrap_or_else(|| Path::parse("id").expect("static"));
    let sub = |k: &str, keys: &[&str]| -> HashMap<String, (String, At)> {
        let mut out = HashMap::new();
        if let Some(x) = toml_src::get(tab, k)
            && let Some(xt) = errs.tab(x, k)
        {
            errs.only(xt, keys, k);
            for (kk, vv) in xt {
                if let Some(s) = errs.str(vv, kk) {
                    out.insert(kk.clone(), (s.to_string(), vv.at.clone()));
                }
            }
        }
        out
    };
    let m = sub("malformed", &["code", "message"]);
    let nf = sub("not_found", &["code", "one", "many"]);
    let text = |x: &HashMap<String, (String, At)>, k: &str| x.get(k).map(|(s, _)| s.clone());
    // An unnamed code defaults to EC2's pattern (`InvalidReservationID.Malformed`), which must
    // still be in the catalog.
    let code = |x: &HashMap<String, (String, At)>, default: String| match x.get("code") {
        Some((c, at)) => catalog_code(c, at, errs),
        None => catalog_code(&default, &n.at, errs),
    };
    let malformed_code = code(&m, format!("Invalid{}ID.Malformed", camel(name)));
    let not_found_code = code(&nf, format!("Invalid{}ID.NotFound", camel(name)));
    let (Some(malformed_code), Some(not_found_code)) = (malformed_code, not_found_code) else { return };
    t.kinds.insert(
        kind,
        KindSpec {
            kind,
            prefix: prefix.to_string(),
            tags,
            store,
            store_records,
            list,
            id_path,
            malformed_code,
            malformed_msg: text(&m, "message").unwrap_or_else(|| "Invalid id: \"{id}\"".into()),
            not_found_code,
            not_found_one: text(&nf, "one").unwrap_or_else(|| format!("The {name} ID '{{ids}}' does not exist")),
            not_found_many: text(&nf, "many").unwrap_or_else(|| format!("The {name} IDs '{{ids}}' do not exist")),
            at: n.at.clone(),
        },
    );
}

/// An EC2 error code named by a mapping file: it must be in the catalog (`ec2bridge errors`).
fn catalog_code(code: &str, at: &At, errs: &Errs) -> Option<Code> {
    let found = Code::parse(code);
    if found.is_none() {
        errs.push(at, format!("unknown EC2 error code '{code}' (not in the catalog; `ec2bridge errors` lists it)"));
    }
    found
}

fn camel(s: &str) -> String {
    s.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

fn read_error_rule(t: &mut Table, n: &Node, errs: &Errs) {
    let Some(tab) = errs.tab(n, "[[error]]") else { return };
    errs.only(tab, &["commands", "errorcode", "cserrorcode", "on", "code", "message"], "[[error]]");
    let commands = toml_src::get(tab, "commands").map(|c| errs.strs(c, "commands")).unwrap_or_else(|| vec!["*".into()]);
    let errorcode = toml_src::get(tab, "errorcode").and_then(|x| errs.int(x, "errorcode")).map(|v| v as u16);
    let cserrorcode = toml_src::get(tab, "cserrorcode").and_then(|x| errs.int(x, "cserrorcode")).map(|v| v as u32);
    let on = toml_src::get(tab, "on").and_then(|x| errs.str(x, "on")).unwrap_or("any");
    let (on_api, on_job) = match on {
        "any" => (true, true),
        "api" => (true, false),
        "job" => (false, true),
        other => {
            errs.push(&n.at, format!("on = '{other}': expected any, api or job"));
            (true, true)
        }
    };
    let Some(code_node) = toml_src::get(tab, "code") else {
        errs.push(&n.at, "an error rule needs code = \"<EC2 error code>\"");
        return;
    };
    let Some(code) = errs.str(code_node, "code").and_then(|c| catalog_code(c, &code_node.at, errs)) else { return };
    let Some(message_node) = toml_src::get(tab, "message") else {
        errs.push(&n.at, "an error rule needs message = \"<EC2 message>\"");
        return;
    };
    let Some(message) = errs.str(message_node, "message").map(str::to_string) else { return };
    // CloudStack's text can name hosts and database ids: it goes to the log, never to a client.
    if message.contains("{text}") {
        errs.push(
            &message_node.at,
            "{text} (CloudStack's errortext) may not be quoted to clients; write an EC2 message",
        );
        return;
    }
    t.errors.push(ErrorRule { commands, errorcode, cserrorcode, on_job, on_api, code, message, at: n.at.clone() });
}

fn read_param(cs_name: &str, n: &Node, errs: &Errs) -> Option<ParamSpec> {
    let mut p = ParamSpec {
        cs_name: cs_name.to_string(),
        source: ParamSource::None,
        via: Vec::new(),
        default: None,
        join: ",".into(),
        fanout: false,
        at: n.at.clone(),
    };
    match &n.v {
        V::Str(s) => {
            if let Some(c) = s.strip_prefix('=') {
                p.source = ParamSource::Const(c.to_string());
            } else {
                let mut it = s.split('|').map(str::trim);
                let head = it.next().unwrap_or("");
                if head.is_empty() {
                    errs.push(&n.at, format!("parameter {cs_name}: empty EC2 parameter name"));
                    return None;
                }
                p.source = ParamSource::One(head.to_string());
                p.via = it.map(str::to_string).collect();
            }
        }
        V::Tab(tab) => {
            let what = format!("parameter {cs_name}");
            errs.only(tab, &["from", "list", "value", "members", "fields", "via", "default", "join", "fanout"], &what);
            let g = |k: &str| toml_src::get(tab, k);
            let sources = ["from", "list", "value", "members"].iter().filter(|k| g(k).is_some()).count();
            if sources > 1 {
                errs.push(&n.at, format!("{what}: give only one of from, list, value, members"));
            }
            if let Some(v) = g("value") {
                p.source = ParamSource::Const(errs.str(v, "value")?.to_string());
            } else if let Some(v) = g("from") {
                p.source = ParamSource::One(errs.str(v, "from")?.to_string());
            } else if let Some(v) = g("list") {
                p.source = ParamSource::List(errs.str(v, "list")?.to_string());
            } else if let Some(v) = g("members") {
                let prefix = errs.str(v, "members")?.to_string();
                let mut fields = Vec::new();
                match g("fields").map(|f| (f, f.as_tab())) {
                    Some((_, Some(ft))) => {
                        for (k, v) in ft {
                            if let Some(s) = errs.str(v, "member field") {
                                fields.push((k.clone(), s.to_string()));
                            }
                        }
                    }
                    Some((f, None)) => errs.push(&f.at, "fields must be a table { cloudstack_key = \"Ec2Member\" }"),
                    None => errs.push(&n.at, format!("{what}: members needs fields = {{ key = \"Key\", ... }}")),
                }
                p.source = ParamSource::Members { prefix, fields };
            }
            if let Some(v) = g("via") {
                p.via = errs.strs(v, "via");
            }
            p.default = g("default").and_then(|v| errs.str(v, "default")).map(str::to_string);
            if let Some(j) = g("join").and_then(|v| errs.str(v, "join")) {
                p.join = j.to_string();
            }
            p.fanout = g("fanout").and_then(|v| errs.bool(v, "fanout")).unwrap_or(false);
            if matches!(p.source, ParamSource::None) && p.via.is_empty() {
                errs.push(&n.at, format!("{what}: needs from, list, value, members or via"));
            }
        }
        _ => {
            errs.push(&n.at, format!("parameter {cs_name} must be a string or a table, not a {}", n.type_name()));
            return None;
        }
    }
    Some(p)
}

fn read_action(t: &mut Table, name: &str, n: &Node, errs: &Errs) {
    let Some(tab) = errs.tab(n, &format!("action {name}")) else { return };
    let what = format!("action {name}");
    errs.only(
        tab,
        &[
            "doc",
            "required",
            "exclusive",
            "ids",
            "params",
            "call",
            "items_from",
            "step",
            "args",
            "check",
            "answer",
            "after_list",
            "before_render",
            "filters",
            "param_filters",
            "page",
            "dedupe",
            "returns",
            "uses",
            "soap",
            "accepts",
            "refuses",
        ],
        &what,
    );
    let g = |k: &str| toml_src::get(tab, k);
    let strs = |k: &str| g(k).map(|v| errs.strs(v, k)).unwrap_or_default();
    let mut exclusive = Vec::new();
    if let Some(x) = g("exclusive") {
        match &x.v {
            V::Arr(groups) => {
                for grp in groups {
                    let names = errs.strs(grp, "exclusive group");
                    if names.len() < 2 {
                        errs.push(&grp.at, "an exclusive group names at least two parameters");
                    }
                    exclusive.push(names);
                }
            }
            _ => errs.push(&x.at, "exclusive is an array of arrays of parameter names"),
        }
    }
    let ids = g("ids").and_then(|x| read_ids(x, t, errs));
    let mut params = Vec::new();
    if let Some(p) = g("params")
        && let Some(pt) = errs.tab(p, "params")
    {
        for (k, v) in pt {
            params.extend(read_param(k, v, errs));
        }
    }
    let call = g("call").and_then(|c| read_call(c, t, errs));
    let items_from = g("items_from").and_then(|x| errs.str(x, "items_from")).map(str::to_string);
    let step = g("step").and_then(|x| errs.str(x, "step")).map(str::to_string);
    let args = g("args").map(Node::to_json).unwrap_or(serde_json::Value::Null);
    let filters = g("filters").and_then(|f| match &f.v {
        V::Str(s) => match t.filter_sets.get(s) {
            Some(fs) => Some(fs.clone()),
            None => {
                errs.push(&f.at, format!("unknown filter set '{s}'"));
                None
            }
        },
        V::Tab(_) => read_filter_set(name, f, errs, &t.shapes),
        _ => {
            errs.push(&f.at, "filters is the name of a [filters.X] set or an inline filter set");
            None
        }
    });
    let mut param_filters = Vec::new();
    if let Some(pf) = g("param_filters")
        && let Some(pt) = errs.tab(pf, "param_filters")
    {
        for (k, v) in pt {
            if let Some(s) = errs.str(v, "filter name") {
                param_filters.push((k.clone(), s.to_string()));
            }
        }
    }
    let page = g("page").and_then(|p| {
        let pt = errs.tab(p, "page")?;
        errs.only(pt, &["min", "max"], "page");
        let min = toml_src::get(pt, "min").and_then(|x| errs.int(x, "min")).unwrap_or(5);
        let max = toml_src::get(pt, "max").and_then(|x| errs.int(x, "max")).unwrap_or(1000);
        if min < 1 || max < min {
            errs.push(&p.at, format!("page range {min}..{max} is empty"));
        }
        Some(PageSpec { min, max })
    });
    let dedupe = g("dedupe")
        .and_then(|x| errs.str(x, "dedupe"))
        .and_then(|s| Path::parse(s).map_err(|m| errs.push(&n.at, m)).ok());
    let returns = match g("returns") {
        None => {
            errs.push(&n.at, format!("{what} needs returns = {{ ... }}"));
            Returns::True
        }
        Some(r) => read_returns(r, errs),
    };
    let action = Action {
        name: name.to_string(),
        at: n.at.clone(),
        doc: g("doc").and_then(|x| errs.str(x, "doc")).map(str::to_string),
        required: strs("required"),
        exclusive,
        ids,
        params,
        call,
        items_from,
        step,
        args,
        check: g("check").and_then(|c| super::super::check::read_check(c, errs)),
        answer: g("answer").and_then(|c| super::super::check::read_answer(c, errs)),
        after_list: strs("after_list"),
        before_render: strs("before_render"),
        filters,
        param_filters,
        page,
        dedupe,
        returns,
        uses: strs("uses"),
        soap: {
            let mut v = Vec::new();
            if let Some(x) = g("soap") {
                read_soap_paths(x, &format!("{what} soap"), errs, &mut v);
            }
            v
        },
        accepts: strs("accepts"),
        refuses: g("refuses").map(|r| read_refusals(r, &what, errs)).unwrap_or_default(),
    };
    if action.call.is_none() && action.items_from.is_none() && action.step.is_none() && action.answer.is_none() {
        errs.push(&n.at, format!("{what} needs call, items_from, step or answer"));
    }
    if action.call.is_some() && action.items_from.is_some() {
        errs.push(&n.at, format!("{what}: call and items_from exclude each other"));
    }
    t.actions.insert(name.to_string(), action);
}

/// `refuses = { Member = "why", "Member.Sub" = { reason = "why", unless = ["default"] } }`.
fn read_refusals(n: &Node, what: &str, errs: &Errs) -> Vec<super::super::params::Refusal> {
    let Some(tab) = errs.tab(n, &format!("{what} refuses")) else { return Vec::new() };
    let mut out = Vec::new();
    for (pattern, v) in tab {
        let (reason, unless) = match &v.v {
            V::Str(s) => (s.clone(), Vec::new()),
            V::Tab(t) => {
                errs.only(t, &["reason", "unless"], &format!("{what} refuses.{pattern}"));
                let reason = toml_src::get(t, "reason").and_then(|x| errs.str(x, "reason")).unwrap_or_default();
                let unless = toml_src::get(t, "unless").map(|x| errs.strs(x, "unless")).unwrap_or_default();
                (reason.to_string(), unless)
            }
            _ => {
                errs.push(&v.at, format!("{what} refuses.{pattern}: a reason, or {{ reason = ..., unless = [...] }}"));
                continue;
            }
        };
        if reason.trim().is_empty() {
            errs.push(&v.at, format!("{what} refuses.{pattern}: say why it is refused"));
        }
        out.push(super::super::params::Refusal { pattern: pattern.clone(), reason, unless, at: v.at.clone() });
    }
    out
}

/// `"element/path" = "Query.Name"` entries (a `[soap]` section or an action's `soap`), each
/// checked by the SOAP front end's rules; a path given twice in one table is an error.
fn read_soap_paths(n: &Node, what: &str, errs: &Errs, out: &mut Vec<SoapPath>) {
    let Some(tab) = errs.tab(n, what) else { return };
    for (path, v) in tab {
        let Some(query) = errs.str(v, "SOAP Query name") else { continue };
        if let Err(m) = crate::ec2::soap::check_rule(path, query) {
            errs.push(&v.at, format!("{what}: {m}"));
            continue;
        }
        if let Some(prev) = out.iter().find(|p| &p.path == path) {
            errs.push(&v.at, format!("{what}: SOAP path \"{path}\" is declared twice (first at {})", prev.at));
            continue;
        }
        out.push(SoapPath { path: path.clone(), query: query.to_string(), at: v.at.clone() });
    }
}

fn read_returns(r: &Node, errs: &Errs) -> Returns {
    let Some(rt) = errs.tab(r, "returns") else { return Returns::True };
    errs.only(rt, &["list", "shape", "return"], "returns");
    let s = |k: &str| toml_src::get(rt, k).and_then(|x| errs.str(x, k)).map(str::to_string);
    if let Some(ret) = toml_src::get(rt, "return") {
        if errs.bool(ret, "return") != Some(true) {
            errs.push(&ret.at, "return = true is the only form");
        }
        return Returns::True;
    }
    match (s("list"), s("shape")) {
        (Some(element), Some(shape)) => Returns::List { element, shape },
        (None, Some(shape)) => Returns::Object { shape },
        _ => {
            errs.push(
                &r.at,
                "returns needs { list = \"xSet\", shape = \"X\" }, { shape = \"X\" } or { return = true }",
            );
            Returns::True
        }
    }
}

fn read_ids(x: &Node, t: &Table, errs: &Errs) -> Option<IdsSpec> {
    let it = errs.tab(x, "ids")?;
    errs.only(it, &["param", "kind", "backend", "as", "required", "path", "wire"], "ids");
    let s = |k: &str| toml_src::get(it, k).and_then(|v| errs.str(v, k)).map(str::to_string);
    let Some(param) = s("param") else {
        errs.push(&x.at, "ids needs param = \"InstanceId\"");
        return None;
    };
    let kind_name = s("kind").unwrap_or_default();
    let Some(kind) = Kind::from_name(&kind_name) else {
        errs.push(&x.at, format!("ids: unknown kind '{kind_name}'"));
        return None;
    };
    let (backend, default_as) = match s("backend").as_deref().unwrap_or("list") {
        "list" | "ids" => (IdsBackend::List, "ids"),
        "each" | "id" => (IdsBackend::Each, "id"),
        "filter" => (IdsBackend::Filter, ""),
        other => {
            errs.push(&x.at, format!("ids: backend '{other}' (expected list, each or filter)"));
            (IdsBackend::Filter, "")
        }
    };
    let _ = t;
    let path = s("path")
        .map(|p| Path::parse(&p).map_err(|m| errs.push(&x.at, m)).unwrap_or_default())
        .unwrap_or_else(|| Path::parse("id").expect("static"));
    let wire = s("wire").unwrap_or_else(|| {
        let mut w = param.clone();
        if let Some(f) = w.get_mut(0..1) {
            f.make_ascii_lowercase();
        }
        w + "Set"
    });
    Some(IdsSpec {
        cs_param: s("as").unwrap_or_else(|| default_as.to_string()),
        param,
        kind,
        backend,
        required: toml_src::get(it, "required").and_then(|v| errs.bool(v, "required")).unwrap_or(false),
        path,
        wire,
    })
}

fn read_call(c: &Node, t: &Table, errs: &Errs) -> Option<CallSpec> {
    let ct = errs.tab(c, "call")?;
    errs.only(
        ct,
        &["command", "completion", "items", "result", "cache", "when", "empty_on", "store", "forget"],
        "call",
    );
    let s = |k: &str| toml_src::get(ct, k).and_then(|v| errs.str(v, k)).map(str::to_string);
    let Some(command) = s("command") else {
        errs.push(&c.at, "call needs command = \"...\"");
        return None;
    };
    let info = t.commands.get(&command);
    if info.is_none() {
        errs.push(&c.at, format!("unknown CloudStack command '{command}' (declare it in cloudstack.toml [command])"));
    }
    let completion = match s("completion").as_deref() {
        None => match info {
            Some(i) if i.creates => Completion::AsyncCreate,
            Some(i) if i.is_async => Completion::AsyncWait,
            _ => Completion::Sync,
        },
        Some("sync") => Completion::Sync,
        Some("async") => Completion::Async,
        Some("async-create") => Completion::AsyncCreate,
        Some("async-wait") => Completion::AsyncWait,
        Some(other) => {
            errs.push(&c.at, format!("completion '{other}' (expected sync, async, async-create, async-wait)"));
            Completion::Sync
        }
    };
    if let Some(i) = info {
        let ok = match completion {
            Completion::Sync => !i.is_async,
            Completion::AsyncCreate => i.creates,
            Completion::Async | Completion::AsyncWait => i.is_async,
        };
        if !ok {
            errs.push(&c.at, format!("completion {completion:?} does not fit {command} (async = {})", i.is_async));
        }
    }
    let mut empty_on = Vec::new();
    if let Some(v) = toml_src::get(ct, "empty_on") {
        match &v.v {
            V::Arr(codes) => {
                for x in codes {
                    if let Some(n) = errs.int(x, "empty_on") {
                        match u16::try_from(n) {
                            Ok(n) => empty_on.push(n),
                            Err(_) => errs.push(&x.at, format!("empty_on: {n} is no CloudStack errorcode")),
                        }
                    }
                }
            }
            _ => errs.push(&v.at, "empty_on is an array of CloudStack errorcodes"),
        }
        if completion != Completion::Sync || info.is_some_and(|i| i.items.is_some()) {
            errs.push(&v.at, "empty_on is for a sync command that answers one object");
        }
    }
    let store_delete = match s("store").as_deref() {
        None => false,
        Some("delete") => true,
        Some(other) => {
            errs.push(&c.at, format!("call.store '{other}' (expected delete)"));
            false
        }
    };
    Some(CallSpec {
        items: s("items").or_else(|| info.and_then(|i| i.items.clone())),
        result: s("result").or_else(|| info.and_then(|i| i.result.clone())),
        cache: toml_src::get(ct, "cache").and_then(|v| errs.bool(v, "cache")).unwrap_or(false),
        when: s("when"),
        forget: toml_src::get(ct, "forget").map(|v| errs.strs(v, "forget")).unwrap_or_default(),
        empty_on,
        store_delete,
        command,
        completion,
    })
}
