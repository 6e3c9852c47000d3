//! The table loader: validation with file and line, overlay directories, `mappings list`.

use ec2bridge::mapping::Table;
use ec2bridge::mapping::cli;

fn builtin_with(extra: &[(&str, &str)]) -> Result<Table, Vec<String>> {
    let mut files: Vec<(String, String)> =
        ec2bridge::mapping::table::BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    for (n, t) in extra {
        match files.iter_mut().find(|(f, _)| f == n) {
            Some(slot) => slot.1 = t.to_string(),
            None => files.push((n.to_string(), t.to_string())),
        }
    }
    Table::from_sources(&files).map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
}

#[test]
fn builtin_table_is_valid_and_listed() {
    let t = Table::builtin().expect("built-in table");
    let listing = cli::list(&t, false);
    for a in [
        "DescribeRegions",
        "DescribeAvailabilityZones",
        "DescribeAccountAttributes",
        "DescribeImages",
        "RunInstances",
        "DescribeInstances",
        "StartInstances",
        "StopInstances",
        "RebootInstances",
        "TerminateInstances",
    ] {
        assert!(listing.lines().any(|l| l.starts_with(a)), "{a} missing from:\n{listing}");
    }
    assert!(listing.contains("deployVirtualMachine"));
    let md = cli::list(&t, true);
    assert!(md.starts_with("| EC2 action |"));
}

#[test]
fn problems_name_file_and_line() {
    let extra = "\n[action.DescribeKeyPairs]\ncall = { command = \"listSSHKeyPairs\" }\nfilters = { source = \"sshkeypair\", fields = { \"key-name\" = \"nmae\", \"fingerprint\" = \"fingerprint|md5\" } }\nreturns = { list = \"keySet\", shape = \"KeyPair\" }\n\n[shape.KeyPair]\n_source = \"sshkeypair\"\nkeyName = \"name\"\nkeyFingerprint = { value = \"fingerprint\", since = \"2016\" }\n";
    // Replaces the built-in keypairs.toml (same name), so DescribeKeyPairs is defined once.
    let errs = builtin_with(&[("keypairs.toml", extra)]).unwrap_err();
    let joined = errs.join("\n");
    assert!(joined.contains("keypairs.toml:4: 'nmae' is not a field of CloudStack sshkeypair"), "{joined}");
    assert!(joined.contains("keypairs.toml:4: unknown converter 'md5'"), "{joined}");
    assert!(joined.contains("keypairs.toml:10: since = '2016' is not an API version"), "{joined}");
    assert_eq!(errs.len(), 3, "{joined}");
}

#[test]
fn syntax_and_structure_errors() {
    let errs = builtin_with(&[("x.toml", "[action.DescribeTags\n")]).unwrap_err();
    assert!(errs[0].starts_with("x.toml:1: TOML syntax"), "{errs:?}");
    let errs = builtin_with(&[("x.toml", "[actoin.DescribeTags]\nreturns = { return = true }\n")]).unwrap_err();
    assert!(errs[0].starts_with("x.toml:1: unknown section 'actoin'"), "{errs:?}");
    let errs = builtin_with(&[("x.toml", "[action.RunInstances]\nstep = \"run_instances\"\nargs = { command = \"deployVirtualMachine\" }\nreturns = { return = true }\n")]).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("action 'RunInstances' is defined twice (first at instances.toml:")),
        "{errs:?}"
    );
    let errs = builtin_with(&[("x.toml", "[action.DescribeSpotPriceHistory]\ncall = { command = \"listTags\", completion = \"async-wait\" }\nreturnz = 1\nreturns = { list = \"tagSet\", shape = \"Tag\" }\nparams.resourceid = \"ResourceId|id:disk\"\n")]).unwrap_err();
    let joined = errs.join("\n");
    assert!(joined.contains("x.toml:2: completion AsyncWait does not fit listTags"), "{joined}");
    assert!(joined.contains("x.toml:3: unknown key 'returnz'"), "{joined}");
    assert!(joined.contains("x.toml:5: unknown id kind 'disk' in resolver 'id:disk'"), "{joined}");
}

#[test]
fn overlay_directory_replaces_by_file_name() {
    let dir = std::env::temp_dir().join(format!("ec2bridge-mapping-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Drop RebootInstances by replacing instances.toml with a copy without it.
    let orig = ec2bridge::mapping::table::BUILTIN.iter().find(|(n, _)| *n == "instances.toml").unwrap().1;
    let start = orig.find("[action.RebootInstances]").unwrap();
    let end = orig[start..].find("[action.TerminateInstances]").unwrap() + start;
    let trimmed = format!("{}{}", &orig[..start], &orig[end..]);
    std::fs::write(dir.join("instances.toml"), trimmed).unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let t = Table::load(Some(&dir)).expect("overlay loads");
    assert!(!t.actions.contains_key("RebootInstances"));
    assert!(t.actions.contains_key("TerminateInstances"));
    assert!(t.actions.contains_key("DescribeImages"));
    std::fs::write(dir.join("broken.toml"), "[shape.X]\na = \"b|nope\"\n").unwrap();
    let errs = Table::load(Some(&dir)).unwrap_err();
    assert!(
        errs[0].to_string().contains("broken.toml:2: unknown converter 'nope' (known: id:, map:, iso8601, gib,"),
        "{errs:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn filter_field_references_and_check_rules_are_checked_at_load() {
    // A filter naming a shape field that does not exist, one without `shape`, a check rule with
    // a code outside the EC2 error catalog, and a check without ids.
    let extra = r#"
[filters.Bad]
source = "sshkeypair"
shape = "KeyPairInfo"
[filters.Bad.fields]
"key-name" = "@keyName"
"nope" = "@noSuchField"

[filters.NoShape]
source = "sshkeypair"
[filters.NoShape.fields]
"key-name" = "@keyName"

[action.DeleteVolume]
ids = { param = "VolumeId", kind = "volume", backend = "each", required = true }
check.refuse = [ { when = "state", code = "VolumeInUze", message = "{id}" } ]
call = { command = "deleteVolume" }
returns = { return = true }

[action.DescribeSnapshotAttribute]
check.by = "id"
answer = {}
returns = { return = true }
"#;
    let mut volumes = ec2bridge::mapping::table::BUILTIN
        .iter()
        .find(|(n, _)| *n == "volumes.toml")
        .map(|(_, t)| t.to_string())
        .expect("volumes.toml");
    // Drop the built-in DeleteVolume so the test's is the only one.
    let a = volumes.find("[action.DeleteVolume]").expect("DeleteVolume");
    let b = volumes[a..].find("\n[action.AttachVolume]").expect("AttachVolume") + a;
    volumes.replace_range(a..b, "");
    let mut snapshots = ec2bridge::mapping::table::BUILTIN
        .iter()
        .find(|(n, _)| *n == "snapshots.toml")
        .map(|(_, t)| t.to_string())
        .expect("snapshots.toml");
    let a = snapshots.find("[action.DescribeSnapshotAttribute]").expect("DescribeSnapshotAttribute");
    let b = snapshots[a..].find("\n[shape.SnapshotAttribute]").expect("shape") + a;
    snapshots.replace_range(a..b, "");
    let errs =
        builtin_with(&[("volumes.toml", &volumes), ("snapshots.toml", &snapshots), ("x.toml", extra)]).unwrap_err();
    let joined = errs.join("\n");
    assert!(joined.contains("x.toml:7: filter nope: shape KeyPairInfo has no field 'noSuchField'"), "{joined}");
    assert!(joined.contains("x.toml:12: filter key-name: @field needs shape"), "{joined}");
    assert!(joined.contains("x.toml:16: unknown EC2 error code 'VolumeInUze'"), "{joined}");
    assert!(joined.contains("x.toml:21: check needs ids"), "{joined}");
    assert_eq!(errs.len(), 4, "{joined}");
}

#[test]
fn call_keys_are_checked_at_load() {
    // `call.when` naming no parameter of the action, `empty_on` on a list command, `store =
    // "delete"` on a kind CloudStack holds, an unknown `store` word, an `answer` without check
    // or call, `forget` naming an unknown command.
    let extra = r#"
[action.DescribeHosts]
params.id = { from = "HostId" }
call = { command = "listVolumes", when = "ipaddressid", empty_on = [431] }
returns = { return = true }

[action.DescribeFleets]
ids = { param = "FleetId", kind = "volume", backend = "each" }
call = { command = "deleteVolume", store = "delete", forget = ["listNothing"] }
returns = { return = true }

[action.DescribeSnapshotTierStatus]
ids = { param = "SnapshotId", kind = "snapshot", backend = "each" }
call = { command = "deleteSnapshot", completion = "async", store = "forget" }
returns = { return = true }

[action.DisassociateIamInstanceProfile]
answer.set = { x = "=1" }
items_from = "region"
returns = { return = true }
"#;
    let errs = builtin_with(&[("x.toml", extra)]).unwrap_err();
    let joined = errs.join("\n");
    assert!(joined.contains("x.toml:4: empty_on is for a sync command that answers one object"), "{joined}");
    assert!(joined.contains("x.toml:2: call.when: 'ipaddressid' is none of the action's params"), "{joined}");
    assert!(joined.contains("x.toml:7: call.store = \"delete\" needs ids of a kind with store_records"), "{joined}");
    assert!(joined.contains("x.toml:14: call.store 'forget' (expected delete)"), "{joined}");
    assert!(joined.contains("x.toml:18: answer needs check or call"), "{joined}");
    assert!(joined.contains("x.toml:7: call.forget: unknown CloudStack command 'listNothing'"), "{joined}");
    assert_eq!(errs.len(), 6, "{joined}");
}
