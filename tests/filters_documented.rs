//! Every filter EC2 documents for a Describe action the gateway supports is decided in
//! mappings/: implemented (`fields` or the tag filters), matching nothing here (`absent`) or
//! refused by name (`refused`). The list is botocore's EC2 model: the `documentation` of the
//! operation's filter list member names each filter as `<li><p><code>name</code> - ...`.
//! Without the model (no botocore found) the comparison is skipped and says so.

use ec2bridge::ec2::request::Filter;
use ec2bridge::mapping::table::Table;
use serde_json::Value;

fn table() -> Table {
    Table::builtin().unwrap_or_else(|e| panic!("{}", e.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")))
}

/// botocore's EC2 model: $EC2BRIDGE_EC2_MODEL, else the botocore of $EC2BRIDGE_PYTHON, of the
/// client venv ($EC2BRIDGE_VENV, else the repository's .venv: the version requirements.txt pins)
/// or of python3 on PATH (gzip'd or not).
fn model() -> Option<Value> {
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("EC2BRIDGE_EC2_MODEL") {
        candidates.push(p.into());
    }
    let venv = std::env::var("EC2BRIDGE_VENV").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv").into());
    let pythons =
        [std::env::var("EC2BRIDGE_PYTHON").unwrap_or_default(), format!("{venv}/bin/python"), "python3".into()];
    for py in pythons.iter().filter(|p| !p.is_empty()) {
        let out = std::process::Command::new(py)
            .args(["-c", "import botocore, os; print(os.path.dirname(botocore.__file__))"])
            .output();
        if let Ok(o) = out
            && o.status.success()
        {
            let dir = std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("data/ec2/2016-11-15");
            candidates.push(dir.join("service-2.json.gz"));
            candidates.push(dir.join("service-2.json"));
        }
    }
    for c in candidates.iter().filter(|c| c.is_file()) {
        let bytes = if c.extension().is_some_and(|e| e == "gz") {
            let o = std::process::Command::new("gzip").arg("-dc").arg(c).output().ok()?;
            if !o.status.success() {
                continue;
            }
            o.stdout
        } else {
            std::fs::read(c).ok()?
        };
        return Some(serde_json::from_slice(&bytes).expect("botocore's EC2 model is JSON"));
    }
    None
}

/// The filter names a Filters member's documentation lists: the `<code>` that opens each item
/// of the outermost list (nested lists describe values). `tag:<key>` in any spelling is "tag:".
fn documented_filters(doc: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < doc.len() {
        let rest = &doc[i..];
        if rest.starts_with("<ul>") {
            depth += 1;
            i += 4;
        } else if rest.starts_with("</ul>") {
            depth = depth.saturating_sub(1);
            i += 5;
        } else if rest.starts_with("<li>") && depth == 1 {
            let item = rest[4..].trim_start();
            let item = item.strip_prefix("<p>").unwrap_or(item).trim_start();
            if let Some(code) = item.strip_prefix("<code>")
                && let Some(end) = code.find("</code>")
            {
                let name = code[..end].trim();
                if name == "tag" || name.starts_with("tag:") {
                    names.push("tag:".to_string());
                } else {
                    names.push(name.to_string());
                }
            }
            i += 4;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    names
}

/// Operation name -> the documented filter names, for operations with a filter list member.
fn model_filters(m: &Value) -> std::collections::BTreeMap<String, Vec<String>> {
    let shapes = &m["shapes"];
    let mut out = std::collections::BTreeMap::new();
    for (op, o) in m["operations"].as_object().expect("operations") {
        let Some(input) = o["input"]["shape"].as_str() else { continue };
        let Some(members) = shapes[input]["members"].as_object() else { continue };
        for mm in members.values() {
            if mm["shape"].as_str() == Some("FilterList") {
                out.insert(op.clone(), documented_filters(mm["documentation"].as_str().unwrap_or("")));
            }
        }
    }
    out
}

#[test]
fn parser_reads_top_level_items_only() {
    let doc = "<p>The filters.</p> <ul> <li> <p> <code>a-b</code> - x (<code>y</code>).</p> <ul> <li> <p> \
               <code>low</code> - v</p> </li> </ul> </li> <li> <p> <code>tag</code>:&lt;key&gt; - t</p> </li> \
               <li> <p> <code>tag:&lt;key&gt;</code> - t</p> </li> <li><p><code>c</code> – d</p></li> </ul>";
    assert_eq!(documented_filters(doc), vec!["a-b", "tag:", "tag:", "c"]);
}

#[test]
fn every_documented_filter_of_a_supported_describe_is_decided() {
    let Some(m) = model() else {
        eprintln!(
            "SKIPPED every_documented_filter_of_a_supported_describe_is_decided: botocore's EC2 model \
             (service-2.json[.gz]) not found; set EC2BRIDGE_EC2_MODEL or EC2BRIDGE_PYTHON"
        );
        return;
    };
    let documented = model_filters(&m);
    let t = table();
    let mut undecided = Vec::new();
    let mut checked = 0;
    for a in t.actions.values() {
        let Some(names) = documented.get(&a.name) else { continue };
        for n in names {
            let probe = if n == "tag:" { "tag:Name" } else { n.as_str() };
            checked += 1;
            match &a.filters {
                Some(fs) if fs.knows(probe) || fs.refusal(probe).is_some() => {}
                _ => undecided.push(format!("{} {n}", a.name)),
            }
        }
    }
    assert!(checked > 300, "only {checked} documented filters found: is the model's format still understood?");
    assert!(
        undecided.is_empty(),
        "{} documented filter(s) neither implemented, absent nor refused in mappings/ (add each to the filter \
         set's `fields`, `absent` or `refused`):\n{}",
        undecided.len(),
        undecided.join("\n")
    );
}

#[test]
fn refused_filters_are_refused_by_name() {
    let t = table();
    let mut n = 0;
    for a in t.actions.values() {
        let Some(fs) = &a.filters else { continue };
        for (name, why, _) in &fs.refused {
            let e = fs.check(&[Filter { name: name.clone(), values: vec!["x".into()] }]).expect_err(name);
            assert_eq!(e.code.as_str(), "InvalidParameterValue", "{} {name}", a.name);
            assert!(e.message.contains(&format!("'{name}'")) && e.message.contains(why.as_str()), "{}", e.message);
            n += 1;
        }
        for (name, _, _) in &fs.absent {
            assert!(fs.check(&[Filter { name: name.clone(), values: vec!["*".into()] }]).is_ok(), "{name}");
        }
    }
    assert!(n > 0, "no refused filter declared");
}
