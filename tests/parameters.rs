//! No parameter is dropped in silence (docs/parameters.md): every input member of every action
//! the table maps, as EC2's service model (botocore's `ec2/2016-11-15/service-2.json`) has it,
//! is honoured or refused by name, and every name the table declares is one the model has.
//!
//! The model is read from `EC2BRIDGE_EC2_MODEL` (service-2.json or .json.gz), else through
//! botocore from a python with botocore: `EC2BRIDGE_VENV`'s, `.venv`'s, or `python3`. Without
//! one the tests say SKIP; with `EC2BRIDGE_REQUIRE_MODEL=1` they fail instead.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ec2bridge::mapping::params::{self, COMMON};
use ec2bridge::mapping::table::Table;
use serde_json::Value;

/// Prints, per operation named on stdin, its input members' wire names and every flattened
/// path below them (`Placement.Tenancy`, `BlockDeviceMapping.N.Ebs.Iops`), as EC2's Query
/// protocol writes them: queryName, else locationName with its first letter upper-cased, else
/// the member name; list items are `.N`.
const MODEL_SCRIPT: &str = r#"
import gzip, json, sys
path = sys.argv[1] if len(sys.argv) > 1 else ""
if path:
    m = json.load(gzip.open(path, "rt") if path.endswith(".gz") else open(path))
else:
    import botocore.loaders
    m = botocore.loaders.create_loader().load_service_model("ec2", "service-2", "2016-11-15")
shapes = m["shapes"]
def wire(name, ref):
    if "queryName" in ref:
        return ref["queryName"]
    if "locationName" in ref:
        return ref["locationName"][0].upper() + ref["locationName"][1:]
    return name
def below(ref, prefix, depth, out):
    sh = shapes[ref["shape"]]
    if depth > 6:
        return
    if sh["type"] == "list":
        out.add(prefix + ".N")
        below(sh["member"], prefix + ".N", depth + 1, out)
    elif sh["type"] == "structure":
        for n, r in sh["members"].items():
            p = prefix + "." + wire(n, r)
            out.add(p)
            below(r, p, depth + 1, out)
out = {}
for op in sys.stdin.read().split():
    o = m["operations"].get(op)
    if o is None:
        continue
    members, paths = [], set()
    if "input" in o:
        for n, r in shapes[o["input"]["shape"]]["members"].items():
            w = wire(n, r)
            members.append(w)
            paths.add(w)
            below(r, w, 0, paths)
    out[op] = {"members": members, "paths": sorted(paths)}
json.dump(out, sys.stdout)
"#;

fn pythons() -> Vec<PathBuf> {
    let mut c = vec![];
    if let Ok(v) = std::env::var("EC2BRIDGE_VENV") {
        c.push(Path::new(&v).join("bin/python"));
    }
    c.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    c.push(PathBuf::from("python3"));
    c
}

fn run_script(python: &Path, model: &str, ops: &str) -> Option<Value> {
    let mut child = Command::new(python)
        .args(["-c", MODEL_SCRIPT, model])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(ops.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Per mapped action: its members and flattened paths in the model; None = no model here.
fn model(t: &Table) -> Option<Value> {
    let ops = t.actions.keys().cloned().collect::<Vec<_>>().join(" ");
    let file = std::env::var("EC2BRIDGE_EC2_MODEL").unwrap_or_default();
    let got = pythons().iter().find_map(|p| run_script(p, &file, &ops));
    if got.is_none() {
        let why = "no EC2 service model: set EC2BRIDGE_EC2_MODEL to botocore's ec2/2016-11-15/service-2.json(.gz) \
                   or EC2BRIDGE_VENV to a venv with botocore";
        if std::env::var_os("EC2BRIDGE_REQUIRE_MODEL").is_some() {
            panic!("{why}");
        }
        eprintln!("SKIP (parameters vs EC2's model): {why}");
    }
    got
}

fn table() -> Table {
    Table::builtin().unwrap_or_else(|e| panic!("{}", e.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")))
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
}

/// Where the table and the model disagree.
fn problems(t: &Table, m: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for a in t.actions.values() {
        let Some(op) = m.get(&a.name) else {
            problems.push(format!("{}: not an operation of EC2's model", a.name));
            continue;
        };
        let members = strs(&op["members"]);
        let paths = strs(&op["paths"]);
        let honoured = params::honoured(a);
        let refused: BTreeSet<&str> = a.refuses.iter().map(|r| r.member()).collect();
        for mem in &members {
            if !honoured.contains(mem) && !refused.contains(mem.as_str()) {
                problems.push(format!(
                    "{}: {mem} is neither honoured nor refused (add it to `accepts` if the step reads it, else to `refuses`)",
                    a.name
                ));
            }
        }
        for h in &honoured {
            if !members.contains(h) && !COMMON.contains(&h.as_str()) {
                problems.push(format!("{}: honours {h}, which EC2's model does not have", a.name));
            }
        }
        for r in &a.refuses {
            if !paths.contains(&r.pattern) {
                problems.push(format!("{}: refuses {}, which EC2's model does not have ({})", a.name, r.pattern, r.at));
            }
        }
    }
    problems
}

#[test]
fn every_model_member_of_a_mapped_action_is_honoured_or_refused() {
    let t = table();
    let Some(m) = model(&t) else { return };
    let problems = problems(&t, &m);
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// The check is not vacuous: a member left out, a name the model lacks and a refused path the
/// model lacks are each noticed.
#[test]
fn disagreements_with_the_model_are_noticed() {
    let mut t = table();
    let Some(m) = model(&t) else { return };
    let a = t.actions.get_mut("RunInstances").expect("RunInstances");
    a.refuses.retain(|r| r.pattern != "MetadataOptions");
    a.accepts.push("NoSuchMember".into());
    let mut bogus = a.refuses[0].clone();
    bogus.pattern = "Placement.NoSuchField".into();
    a.refuses.push(bogus);
    let p = problems(&t, &m).join("\n");
    assert!(p.contains("RunInstances: MetadataOptions is neither honoured nor refused"), "{p}");
    assert!(p.contains("RunInstances: honours NoSuchMember"), "{p}");
    assert!(p.contains("RunInstances: refuses Placement.NoSuchField"), "{p}");
}
