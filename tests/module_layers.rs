//! The layers the compiler cannot enforce inside one crate, checked here: the top-level modules
//! under src/ import one another (`crate::x` paths outside unit tests) without a cycle, and the
//! simulator is imported only by the application layer that wires it in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that compose the application (start-up, wiring the simulator, the CLI); only they may
/// import the simulator.
const APP_LAYER: &[&str] = &["server", "main", "lib", "app", "cli"];
/// Re-exports in lib.rs: `crate::ids` is the leaf module's `base::ids`.
const ALIASES: &[(&str, &str)] = &[("ids", "base")];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`src/mapping/steps/tags.rs` -> `mapping`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments and without its unit tests.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every top-level module a piece of code names: `crate::x...` and `use crate::{x, y::z}`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let word = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let w = word(item.trim());
                if !w.is_empty() {
                    out.insert(w);
                }
            }
        } else {
            out.insert(word(rest));
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(&src, f);
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        for to in imports(&code) {
            let to = ALIASES.iter().find(|(a, _)| *a == to).map(|(_, b)| b.to_string()).unwrap_or(to);
            if to != from && modules.contains(&to) {
                g.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    g
}

/// Every elementary cycle, each once (starting at its smallest module).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn walk(g: &BTreeMap<String, BTreeSet<String>>, start: &str, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let last = path.last().unwrap().clone();
        for next in g.get(&last).into_iter().flatten() {
            if next == start {
                out.push(path.clone());
            } else if next.as_str() > start && !path.contains(next) {
                path.push(next.clone());
                walk(g, start, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    for start in g.keys() {
        walk(g, start, &mut vec![start.clone()], &mut out);
    }
    out
}

#[test]
fn top_level_modules_form_no_cycle() {
    let g = graph();
    let found = cycles(&g);
    let shown: Vec<String> = found.iter().map(|c| format!("{} -> {}", c.join(" -> "), c[0])).collect();
    assert!(found.is_empty(), "{} module cycle(s):\n{}\ngraph: {g:#?}", found.len(), shown.join("\n"));
}

#[test]
fn only_the_application_layer_imports_the_simulator() {
    let g = graph();
    let importers: Vec<&String> = g
        .iter()
        .filter(|(from, to)| to.contains("sim") && !APP_LAYER.contains(&from.as_str()))
        .map(|(f, _)| f)
        .collect();
    assert!(importers.is_empty(), "modules importing the simulator outside the application layer: {importers:?}");
}

#[test]
fn the_checker_sees_imports_and_cycles() {
    let got = imports("use crate::{auth::X, ec2};\nlet x = crate::store::open();");
    assert_eq!(got.into_iter().collect::<Vec<_>>(), ["auth", "ec2", "store"]);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "c")] {
        g.entry(a.into()).or_default().insert(b.into());
    }
    assert_eq!(cycles(&g).len(), 2);
    assert_eq!(code_of("use crate::x; // crate::y\n#[cfg(test)]\nuse crate::z;"), "use crate::x; ");
}
