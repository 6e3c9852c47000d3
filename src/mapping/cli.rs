//! `ec2bridge mappings check [DIR]` and `ec2bridge mappings list [DIR]`.

use std::path::PathBuf;

use super::table::{Returns, Table};

#[derive(Debug, clap::Args)]
pub struct MappingsArgs {
    #[command(subcommand)]
    pub cmd: MappingsCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum MappingsCmd {
    /// Validate the table: the compiled-in files overlaid by DIR (same file name replaces,
    /// other *.toml files are added). Problems are printed as file:line: message.
    Check { dir: Option<PathBuf> },
    /// Print every supported EC2 action and the CloudStack command(s) behind it.
    List {
        dir: Option<PathBuf>,
        /// Markdown table (for the README).
        #[arg(long)]
        markdown: bool,
    },
    /// Print the named Rust steps and transforms and the actions that use them (the table in
    /// docs/mappings.md, which tests/docs_mappings.rs keeps equal to this output).
    Steps { dir: Option<PathBuf> },
    /// Print the parameters each action refuses by name and why (the table in
    /// docs/parameters.md); `--json`: per action, the members it honours and the ones it refuses.
    Params {
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print, per action, the filters it implements, those that match nothing here and those it
    /// refuses, with the reasons (docs/filters.md, which tests/docs_mappings.rs keeps equal).
    Filters { dir: Option<PathBuf> },
}

pub fn run(args: MappingsArgs) -> anyhow::Result<()> {
    match args.cmd {
        MappingsCmd::Check { dir } => match Table::load(dir.as_deref()) {
            Ok(t) => {
                println!(
                    "ok: {} actions, {} shapes, {} filter sets, {} error rules from {} files",
                    t.actions.len(),
                    t.shapes.len(),
                    t.filter_sets.len(),
                    t.errors.len(),
                    t.files.len()
                );
                Ok(())
            }
            Err(errs) => {
                for e in &errs {
                    eprintln!("{e}");
                }
                eprintln!("{} problem(s) in the mapping table", errs.len());
                std::process::exit(1)
            }
        },
        MappingsCmd::Steps { dir } => {
            let t = Table::load(dir.as_deref()).map_err(|errs| {
                anyhow::anyhow!("{} problem(s) in the mapping table; run `ec2bridge mappings check`", errs.len())
            })?;
            print!("{}", steps_table(&t));
            Ok(())
        }
        MappingsCmd::Params { dir, json } => {
            let t = Table::load(dir.as_deref()).map_err(|errs| {
                anyhow::anyhow!("{} problem(s) in the mapping table; run `ec2bridge mappings check`", errs.len())
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&params_json(&t))?);
            } else {
                print!("{}", refused_table(&t));
            }
            Ok(())
        }
        MappingsCmd::Filters { dir } => {
            let t = Table::load(dir.as_deref()).map_err(|errs| {
                anyhow::anyhow!("{} problem(s) in the mapping table; run `ec2bridge mappings check`", errs.len())
            })?;
            print!("{}", filters_doc(&t));
            Ok(())
        }
        MappingsCmd::List { dir, markdown } => {
            let t = Table::load(dir.as_deref()).map_err(|errs| {
                for e in &errs {
                    eprintln!("{e}");
                }
                anyhow::anyhow!("{} problem(s) in the mapping table; run `ec2bridge mappings check`", errs.len())
            })?;
            print!("{}", list(&t, markdown));
            Ok(())
        }
    }
}

/// Per action: `honoured` (member names) and `refuses` (`pattern`, `reason`, `unless`).
pub fn params_json(t: &Table) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for a in t.actions.values() {
        let refuses: Vec<serde_json::Value> = a
            .refuses
            .iter()
            .map(|r| serde_json::json!({ "pattern": r.pattern, "reason": r.reason, "unless": r.unless }))
            .collect();
        out.insert(a.name.clone(), serde_json::json!({ "honoured": super::params::honoured(a), "refuses": refuses }));
    }
    serde_json::Value::Object(out)
}

/// The markdown table of refused parameters (docs/parameters.md, kept equal by
/// tests/docs_mappings.rs).
pub fn refused_table(t: &Table) -> String {
    let mut out = String::from("| action | parameter | accepted values | why it is refused |\n|---|---|---|---|\n");
    for a in t.actions.values() {
        for r in &a.refuses {
            let unless = r.unless.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ");
            out.push_str(&format!(
                "| {} | `{}` | {} | {} |\n",
                a.name,
                r.pattern,
                unless,
                r.reason.replace('|', "\\|")
            ));
        }
    }
    out
}

/// One line per action: name, CloudStack commands, how it completes.
pub fn list(t: &Table, markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str("| EC2 action | CloudStack command(s) | notes |\n|---|---|---|\n");
    }
    let width = t.actions.keys().map(|k| k.len()).max().unwrap_or(0);
    for a in t.actions.values() {
        let mut cmds = a.commands();
        if a.check.is_some()
            && let Some(l) = a.ids.as_ref().and_then(|i| t.kinds.get(&i.kind)).and_then(|k| k.list.first())
            && !cmds.contains(&l.command)
        {
            cmds.insert(0, l.command.clone());
        }
        let cmds = if cmds.is_empty() { "(none: answered by the gateway)".to_string() } else { cmds.join(", ") };
        let mut notes = Vec::new();
        if let Some(s) = &a.step {
            notes.push(format!("step {s}"));
        }
        if a.check.is_some() {
            notes.push("check".into());
        }
        if let Some(c) = &a.call {
            notes.push(
                format!("{:?}", c.completion)
                    .to_lowercase()
                    .replace("asynccreate", "async-create")
                    .replace("asyncwait", "async-wait"),
            );
        }
        if a.page.is_some() {
            notes.push("paged".into());
        }
        if let Some(f) = &a.filters {
            notes.push(format!("{} filters", f.fields.len() + if f.tags.is_some() { 3 } else { 0 }));
        }
        if matches!(a.returns, Returns::True) {
            notes.push("returns true".into());
        }
        if let Some(d) = &a.doc {
            notes.push(d.clone());
        }
        if markdown {
            out.push_str(&format!("| {} | {} | {} |\n", a.name, cmds, notes.join("; ")));
        } else {
            out.push_str(&format!("{:width$}  {}  [{}]\n", a.name, cmds, notes.join("; ")));
        }
    }
    out
}

/// Per action with filters: the implemented names, those that match nothing here and those
/// refused, each with its reason (Markdown, sorted by action and filter name).
pub fn filters_doc(t: &Table) -> String {
    let mut actions: Vec<_> = t.actions.values().filter(|a| a.filters.is_some()).collect();
    actions.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for a in actions {
        let Some(fs) = &a.filters else { continue };
        let mut implemented: Vec<String> = fs.fields.iter().map(|(n, _, _)| format!("`{n}`")).collect();
        implemented.sort();
        if fs.tags.is_some() {
            implemented.extend(["`tag:<key>`", "`tag-key`", "`tag-value`"].map(String::from));
        }
        let set = if fs.name == a.name { String::new() } else { format!(" (filter set {})", fs.name) };
        out.push_str(&format!("### {}{set}\n\n", a.name));
        out.push_str(&format!("- implemented ({}): {}\n", implemented.len(), implemented.join(", ")));
        for (label, list) in [("match nothing here", &fs.absent), ("refused", &fs.refused)] {
            if list.is_empty() {
                continue;
            }
            let mut list: Vec<_> = list.iter().collect();
            list.sort_by(|x, y| x.0.cmp(&y.0));
            out.push_str(&format!("- {label} ({}):\n", list.len()));
            for (n, why, _) in list {
                out.push_str(&format!("  - `{n}`: {why}\n"));
            }
        }
        out.push('\n');
    }
    out
}

/// The named steps as a Markdown table: name, kind, what it does, the actions that name it
/// (as `step`, `after_list`, `before_render` or `check.annotate`).
pub fn steps_table(t: &Table) -> String {
    let mut out = String::from("| step | kind | does | used by |\n|---|---|---|---|\n");
    for (name, does) in super::steps::describe() {
        let users: Vec<&str> = t
            .actions
            .values()
            .filter(|a| {
                a.step.as_deref() == Some(name)
                    || a.after_list.iter().chain(&a.before_render).any(|s| s == name)
                    || a.check.as_ref().is_some_and(|c| c.annotate.iter().any(|s| s == name))
            })
            .map(|a| a.name.as_str())
            .collect();
        let kind = if super::steps::is_transform(name) { "transforms the items" } else { "produces the document" };
        let users = if users.is_empty() { "(none)".to_string() } else { users.join(", ") };
        out.push_str(&format!("| `{name}` | {kind} | {does} | {users} |\n"));
    }
    out
}
