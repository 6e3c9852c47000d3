//! The EC2 error catalog (src/base/error.rs) is the only list of codes: docs agree with it,
//! mapping files are checked against it at load, and Rust code never spells a code as a string.

use std::path::{Path, PathBuf};

use ec2bridge::base::{Code, Ec2Error};
use ec2bridge::mapping::Table;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn docs_errors_md_is_the_catalog() {
    let doc = std::fs::read_to_string(repo().join("docs/errors.md")).unwrap();
    let begin = doc.find("<!-- catalog:begin -->\n").expect("begin marker") + "<!-- catalog:begin -->\n".len();
    let end = doc.find("<!-- catalog:end -->").expect("end marker");
    assert_eq!(
        &doc[begin..end],
        Code::markdown_table(),
        "docs/errors.md is out of date: paste `ec2bridge errors --markdown` between the markers"
    );
}

#[test]
fn statuses_come_from_the_catalog() {
    for c in Code::ALL {
        let e = Ec2Error::new(*c, "m");
        assert_eq!(e.status(), c.status());
        assert_eq!(e.is_server(), c.status() >= 500, "{c}");
    }
    assert_eq!(Ec2Error::new(Code::InvalidVolumeNotFound, "m").status(), 400);
    assert_eq!(Ec2Error::auth_failure().status(), 401);
}

fn builtin_with(name: &str, text: &str) -> Vec<String> {
    let mut files: Vec<(String, String)> =
        ec2bridge::mapping::table::BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    files.push((name.to_string(), text.to_string()));
    match Table::from_sources(&files) {
        Ok(_) => Vec::new(),
        Err(errs) => errs.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn mapping_files_name_catalog_codes_only() {
    let errs = builtin_with(
        "typo.toml",
        "[[error]]\ncommands = [\"listVolumes\"]\nerrorcode = 431\ncode = \"InvalidVolume.NotFuond\"\n",
    );
    assert_eq!(
        errs,
        [
            "typo.toml:4: unknown EC2 error code 'InvalidVolume.NotFuond' (not in the catalog; `ec2bridge errors` lists it)"
        ]
    );
    // A kind's malformed / not-found codes are checked the same way, at their own line.
    let orig = ec2bridge::mapping::table::BUILTIN.iter().find(|(n, _)| *n == "volumes.toml").unwrap().1;
    let typo = orig.replacen("code = \"InvalidVolumeID.Malformed\"", "code = \"InvalidVolumeId.Malformed\"", 1);
    assert_ne!(typo, orig);
    let line = typo.lines().position(|l| l.contains("InvalidVolumeId.Malformed")).unwrap() + 1;
    let mut files: Vec<(String, String)> =
        ec2bridge::mapping::table::BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    files.iter_mut().find(|(n, _)| n == "volumes.toml").unwrap().1 = typo;
    let errs: Vec<String> = Table::from_sources(&files).unwrap_err().into_iter().map(|e| e.to_string()).collect();
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("volumes.toml:{line}: unknown EC2 error code 'InvalidVolumeId.Malformed'"))),
        "{errs:?}"
    );
}

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

/// Outside the catalog, no code is spelled as a string literal in the gateway's Rust (unit tests
/// may compare with the wire form, so everything after `#[cfg(test)]` is skipped).
#[test]
fn no_bare_error_code_strings_in_src() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let catalog = repo().join("src/base/error.rs");
    let mut found = Vec::new();
    for f in files.iter().filter(|f| **f != catalog) {
        let text = std::fs::read_to_string(f).unwrap();
        let code_part = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code_part.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for c in Code::ALL {
                if line.contains(&format!("\"{}\"", c.as_str())) {
                    found.push(format!("{}:{}: \"{}\"", f.strip_prefix(repo()).unwrap().display(), n + 1, c));
                }
            }
        }
    }
    assert!(found.is_empty(), "use the typed constructors (base::Code):\n{}", found.join("\n"));
}
