//! docs/mappings.md and the README are checked against the code: the step table and the README's
//! action table are the output of `ec2bridge mappings steps` / `mappings list --markdown`, and
//! docs/filters.md's list is `mappings filters`, and
//! every `<!-- example:Action -->` TOML block is the action as its mapping file declares it.

use ec2bridge::mapping::cli;
use ec2bridge::mapping::table::Table;

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("readable")
}

/// The text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn section(doc: &str, name: &str) -> String {
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("<!-- {name}:end -->");
    let a = doc.find(&begin).unwrap_or_else(|| panic!("no {begin}")) + begin.len();
    let b = doc[a..].find(&end).unwrap_or_else(|| panic!("no {end}")) + a;
    doc[a..b].to_string()
}

fn table() -> Table {
    Table::builtin().unwrap_or_else(|e| panic!("{}", e.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")))
}

#[test]
fn step_table_in_docs_is_the_registry() {
    let want = cli::steps_table(&table());
    assert_eq!(
        section(&read("docs/mappings.md"), "steps"),
        want,
        "docs/mappings.md's step table drifted from the code: replace it with `cargo run -- mappings steps`"
    );
}

#[test]
fn readme_action_table_is_the_table() {
    let want = cli::list(&table(), true);
    assert_eq!(
        section(&read("README.md"), "actions"),
        want,
        "README.md's action table drifted from mappings/: replace it with `cargo run -- mappings list --markdown`"
    );
}

#[test]
fn refused_parameters_in_docs_are_the_table() {
    let want = cli::refused_table(&table());
    assert_eq!(
        section(&read("docs/parameters.md"), "refused"),
        want,
        "docs/parameters.md's refused parameters drifted from mappings/: run scripts/regen-docs"
    );
}

#[test]
fn filter_list_in_docs_is_the_table() {
    let want = cli::filters_doc(&table());
    assert_eq!(
        section(&read("docs/filters.md"), "filters"),
        want,
        "docs/filters.md's filter list drifted from mappings/: run scripts/regen-docs"
    );
}

/// Every `[action.X]` of the mapping files, parsed.
fn mapping_actions() -> toml::Table {
    let mut all = toml::Table::new();
    for e in std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")).expect("mappings/") {
        let p = e.expect("entry").path();
        let t: toml::Table = toml::from_str(&std::fs::read_to_string(&p).expect("file")).expect("valid TOML");
        if let Some(toml::Value::Table(a)) = t.get("action") {
            all.extend(a.clone());
        }
    }
    all
}

#[test]
fn examples_in_docs_are_the_mapping_files() {
    let doc = read("docs/mappings.md");
    let actions = mapping_actions();
    let mut checked = 0;
    for (i, _) in doc.match_indices("<!-- example:") {
        let rest = &doc[i + "<!-- example:".len()..];
        let name = &rest[..rest.find(" -->").expect("example marker ends with -->")];
        let block = rest.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("a toml block follows");
        // The block is indented when it sits in a list item.
        let text: String = block.lines().map(|l| l.trim_start()).collect::<Vec<_>>().join("\n");
        let parsed: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("example {name}: {e}"));
        let got = parsed
            .get("action")
            .and_then(|a| a.get(name))
            .unwrap_or_else(|| panic!("example {name} has no [action.{name}]"));
        assert_eq!(Some(got), actions.get(name), "docs/mappings.md example {name} is not what mappings/ declares");
        checked += 1;
    }
    assert!(checked >= 2, "docs/mappings.md has {checked} checked examples");
}
