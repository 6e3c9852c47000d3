//! SOAP element paths -> Query names, from the mapping table (mappings/soap.toml and each
//! action's `soap`), checked against the 2013-10-01 WSDL the SOAP clients are built from.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ec2bridge::auth::wssec::XmlElement;
use ec2bridge::ec2::soap::{PathTable, flatten};
use ec2bridge::mapping::Table;
use ec2bridge::mapping::table::ParamSource;

fn table() -> Table {
    Table::builtin().unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))
}

fn el(name: &str, children: Vec<XmlElement>) -> XmlElement {
    XmlElement { name: name.into(), children, ..Default::default() }
}
fn leaf(name: &str, text: &str) -> XmlElement {
    XmlElement { name: name.into(), text: text.into(), ..Default::default() }
}
fn item(children: Vec<XmlElement>) -> XmlElement {
    el("item", children)
}
fn flat(t: &PathTable, action: &str, children: Vec<XmlElement>) -> Vec<(String, String)> {
    flatten(t, action, &el(action, children)).unwrap().0.into_iter().collect()
}
fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

#[test]
fn declared_paths_give_the_query_names() {
    let t = table().soap_paths();
    let ids = |set: &str, id: &str, vals: &[&str]| el(set, vals.iter().map(|v| item(vec![leaf(id, v)])).collect());
    let filters = el(
        "filterSet",
        vec![item(vec![
            leaf("name", "tag:Name"),
            el("valueSet", vec![item(vec![leaf("value", "a")]), item(vec![leaf("value", "b")])]),
        ])],
    );
    assert_eq!(
        flat(&t, "DescribeInstances", vec![ids("instancesSet", "instanceId", &["i-1", "i-2"]), filters.clone()]),
        pairs(&[
            ("InstanceId.1", "i-1"),
            ("InstanceId.2", "i-2"),
            ("Filter.1.Name", "tag:Name"),
            ("Filter.1.Value.1", "a"),
            ("Filter.1.Value.2", "b"),
        ])
    );
    let run = vec![
        leaf("imageId", "ami-1"),
        el("groupSet", vec![item(vec![leaf("groupId", "sg-1")]), item(vec![leaf("groupName", "web")])]),
        el("userData", vec![leaf("data", "aGk=")]),
        el("placement", vec![leaf("availabilityZone", "z")]),
        el(
            "blockDeviceMapping",
            vec![item(vec![leaf("deviceName", "/dev/sdb"), el("ebs", vec![leaf("volumeSize", "1")])])],
        ),
    ];
    assert_eq!(
        flat(&t, "RunInstances", run),
        pairs(&[
            ("ImageId", "ami-1"),
            ("SecurityGroupId.1", "sg-1"),
            ("SecurityGroup.1", "web"),
            ("UserData", "aGk="),
            ("Placement.AvailabilityZone", "z"),
            ("BlockDeviceMapping.1.DeviceName", "/dev/sdb"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "1"),
        ])
    );
    // The list, action by action.
    type Case<'a> = (&'a str, Vec<XmlElement>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "CreateVolume",
            vec![leaf("size", "5"), leaf("snapshotId", "snap-1"), leaf("availabilityZone", "z")],
            vec![("Size", "5"), ("SnapshotId", "snap-1"), ("AvailabilityZone", "z")],
        ),
        (
            "AttachVolume",
            vec![leaf("volumeId", "vol-1"), leaf("instanceId", "i-1"), leaf("device", "/dev/sdb")],
            vec![("VolumeId", "vol-1"), ("InstanceId", "i-1"), ("Device", "/dev/sdb")],
        ),
        (
            "DescribeVolumes",
            vec![ids("volumeSet", "volumeId", &["vol-1", "vol-2"])],
            vec![("VolumeId.1", "vol-1"), ("VolumeId.2", "vol-2")],
        ),
        ("DescribeVolumeStatus", vec![ids("volumeSet", "volumeId", &["vol-1"])], vec![("VolumeId.1", "vol-1")]),
        (
            "DescribeSnapshots",
            vec![
                ids("snapshotSet", "snapshotId", &["snap-1"]),
                ids("ownersSet", "owner", &["self"]),
                ids("restorableBySet", "user", &["all"]),
            ],
            vec![("SnapshotId.1", "snap-1"), ("Owner.1", "self"), ("RestorableBy.1", "all")],
        ),
        (
            "CreateSecurityGroup",
            vec![leaf("groupName", "web"), leaf("groupDescription", "d")],
            vec![("GroupName", "web"), ("GroupDescription", "d")],
        ),
        (
            "AuthorizeSecurityGroupIngress",
            vec![
                leaf("groupId", "sg-1"),
                el(
                    "ipPermissions",
                    vec![item(vec![
                        leaf("ipProtocol", "tcp"),
                        leaf("fromPort", "22"),
                        leaf("toPort", "23"),
                        el(
                            "groups",
                            vec![item(vec![leaf("userId", "u"), leaf("groupName", "db"), leaf("groupId", "sg-2")])],
                        ),
                        ids("ipRanges", "cidrIp", &["10.0.0.0/8", "0.0.0.0/0"]),
                    ])],
                ),
            ],
            vec![
                ("GroupId", "sg-1"),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "22"),
                ("IpPermissions.1.ToPort", "23"),
                ("IpPermissions.1.Groups.1.UserId", "u"),
                ("IpPermissions.1.Groups.1.GroupName", "db"),
                ("IpPermissions.1.Groups.1.GroupId", "sg-2"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
                ("IpPermissions.1.IpRanges.2.CidrIp", "0.0.0.0/0"),
            ],
        ),
        (
            "DescribeSecurityGroups",
            vec![ids("securityGroupSet", "groupName", &["web"]), ids("securityGroupIdSet", "groupId", &["sg-1"])],
            vec![("GroupName.1", "web"), ("GroupId.1", "sg-1")],
        ),
        ("DescribeKeyPairs", vec![ids("keySet", "keyName", &["a", "b"])], vec![("KeyName.1", "a"), ("KeyName.2", "b")]),
        (
            "ImportKeyPair",
            vec![leaf("keyName", "k"), leaf("publicKeyMaterial", "c3No")],
            vec![("KeyName", "k"), ("PublicKeyMaterial", "c3No")],
        ),
        (
            "DescribeAddresses",
            vec![
                ids("publicIpsSet", "publicIp", &["1.2.3.4"]),
                ids("allocationIdsSet", "allocationId", &["eipalloc-1"]),
            ],
            vec![("PublicIp.1", "1.2.3.4"), ("AllocationId.1", "eipalloc-1")],
        ),
        (
            "AssociateAddress",
            vec![leaf("allocationId", "eipalloc-1"), leaf("instanceId", "i-1"), leaf("allowReassociation", "true")],
            vec![("AllocationId", "eipalloc-1"), ("InstanceId", "i-1"), ("AllowReassociation", "true")],
        ),
        ("DisassociateAddress", vec![leaf("associationId", "eipassoc-1")], vec![("AssociationId", "eipassoc-1")]),
        ("AllocateAddress", vec![leaf("domain", "standard")], vec![("Domain", "standard")]),
        (
            "CreateTags",
            vec![
                ids("resourcesSet", "resourceId", &["i-1", "vol-1"]),
                el(
                    "tagSet",
                    vec![item(vec![leaf("key", "Name"), leaf("value", "web")]), item(vec![leaf("key", "env")])],
                ),
            ],
            vec![
                ("ResourceId.1", "i-1"),
                ("ResourceId.2", "vol-1"),
                ("Tag.1.Key", "Name"),
                ("Tag.1.Value", "web"),
                ("Tag.2.Key", "env"),
            ],
        ),
        (
            "CreateImage",
            vec![leaf("instanceId", "i-1"), leaf("name", "n"), leaf("description", "d"), leaf("noReboot", "true")],
            vec![("InstanceId", "i-1"), ("Name", "n"), ("Description", "d"), ("NoReboot", "true")],
        ),
        (
            "RegisterImage",
            vec![leaf("imageLocation", "http://x/y.qcow2"), leaf("name", "n"), leaf("architecture", "x86_64")],
            vec![("ImageLocation", "http://x/y.qcow2"), ("Name", "n"), ("Architecture", "x86_64")],
        ),
        (
            "ModifyImageAttribute",
            vec![
                leaf("imageId", "ami-1"),
                el(
                    "launchPermission",
                    vec![el("add", vec![item(vec![leaf("group", "all")]), item(vec![leaf("userId", "bob")])])],
                ),
                ids("productCodes", "productCode", &["pc"]),
            ],
            vec![
                ("ImageId", "ami-1"),
                ("LaunchPermission.Add.1.Group", "all"),
                ("LaunchPermission.Add.2.UserId", "bob"),
                ("ProductCode.1", "pc"),
            ],
        ),
        (
            "DescribeImageAttribute",
            vec![leaf("imageId", "ami-1"), leaf("launchPermission", "")],
            vec![("ImageId", "ami-1"), ("Attribute", "launchPermission")],
        ),
        (
            "ResetImageAttribute",
            vec![leaf("imageId", "ami-1"), leaf("launchPermission", "")],
            vec![("ImageId", "ami-1"), ("Attribute", "launchPermission")],
        ),
        (
            "DescribeInstanceAttribute",
            vec![leaf("instanceId", "i-1"), leaf("groupSet", "")],
            vec![("InstanceId", "i-1"), ("Attribute", "groupSet")],
        ),
        (
            "ResetInstanceAttribute",
            vec![leaf("instanceId", "i-1"), leaf("sourceDestCheck", "")],
            vec![("InstanceId", "i-1"), ("Attribute", "sourceDestCheck")],
        ),
        (
            "ModifyInstanceAttribute",
            vec![
                leaf("instanceId", "i-1"),
                el("instanceType", vec![leaf("value", "m1.large")]),
                el("userData", vec![leaf("value", "aGk=")]),
                ids("groupSet", "groupId", &["sg-1"]),
            ],
            vec![
                ("InstanceId", "i-1"),
                ("InstanceType.Value", "m1.large"),
                ("UserData.Value", "aGk="),
                ("GroupId.1", "sg-1"),
            ],
        ),
        ("GetPasswordData", vec![leaf("instanceId", "i-1")], vec![("InstanceId", "i-1")]),
        ("GetConsoleOutput", vec![leaf("instanceId", "i-1")], vec![("InstanceId", "i-1")]),
        (
            "DescribeInstanceStatus",
            vec![ids("instancesSet", "instanceId", &["i-1"]), leaf("includeAllInstances", "true")],
            vec![("InstanceId.1", "i-1"), ("IncludeAllInstances", "true")],
        ),
        (
            "DescribeAvailabilityZones",
            vec![ids("availabilityZoneSet", "zoneName", &["z1"])],
            vec![("ZoneName.1", "z1")],
        ),
        ("DescribeRegions", vec![ids("regionSet", "regionName", &["r1"])], vec![("RegionName.1", "r1")]),
        (
            "DescribeAccountAttributes",
            vec![ids("accountAttributeNameSet", "attributeName", &["max-instances"])],
            vec![("AttributeName.1", "max-instances")],
        ),
        (
            "DescribeImages",
            vec![
                ids("imagesSet", "imageId", &["ami-1"]),
                ids("executableBySet", "user", &["self"]),
                el("ownersSet", vec![]),
            ],
            vec![("ImageId.1", "ami-1"), ("ExecutableBy.1", "self")],
        ),
    ];
    for (action, children, want) in cases {
        assert_eq!(flat(&t, action, children), pairs(&want), "{action}");
    }
}

#[test]
fn a_mappings_directory_changes_soap_too() {
    let dir = std::env::temp_dir().join(format!("ec2bridge-soap-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Replaces the built-in soap.toml: instancesSet now means something else, filterSet is gone.
    std::fs::write(dir.join("soap.toml"), "[soap]\n\"instancesSet/item/instanceId\" = \"Instance.#\"\n").unwrap();
    let t = Table::load(Some(&dir)).map_err(|e| format!("{e:?}")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let p = t.soap_paths();
    let got = flat(
        &p,
        "DescribeInstances",
        vec![
            el("instancesSet", vec![item(vec![leaf("instanceId", "i-1")])]),
            el("filterSet", vec![item(vec![leaf("name", "x")])]),
        ],
    );
    assert_eq!(got, pairs(&[("Instance.1", "i-1"), ("Filter.1.Name", "x")]));
    // Per-action entries stay with their action.
    assert_eq!(
        flat(&p, "DescribeVolumes", vec![el("volumeSet", vec![item(vec![leaf("volumeId", "v")])])]),
        pairs(&[("VolumeId.1", "v")])
    );
}

// ---------------------------------------------------------------------------------------------
// The WSDL: every leaf element path of each operation's request.

const XS: &str = "http://www.w3.org/2001/XMLSchema";

struct Schema<'a> {
    types: HashMap<&'a str, roxmltree::Node<'a, 'a>>,
    groups: HashMap<&'a str, roxmltree::Node<'a, 'a>>,
    elements: HashMap<&'a str, roxmltree::Node<'a, 'a>>,
}

#[derive(Debug, Clone)]
struct Leaf {
    path: Vec<String>,
    /// `EmptyElementType`: its presence is the value (attribute selectors).
    empty: bool,
    /// Goes through a list whose items hold a single element.
    single_item_list: bool,
}

fn local(s: &str) -> &str {
    s.rsplit(':').next().unwrap_or(s)
}

impl<'a> Schema<'a> {
    fn new(doc: &'a roxmltree::Document<'a>) -> Self {
        let mut s = Schema { types: HashMap::new(), groups: HashMap::new(), elements: HashMap::new() };
        for schema in doc.descendants().filter(|n| n.has_tag_name((XS, "schema"))) {
            for c in schema.children().filter(|n| n.is_element()) {
                let Some(name) = c.attribute("name") else { continue };
                match c.tag_name().name() {
                    "complexType" => s.types.insert(name, c),
                    "group" => s.groups.insert(name, c),
                    "element" => s.elements.insert(name, c),
                    _ => None,
                };
            }
        }
        s
    }

    /// Child element declarations of a complex type (through sequence, choice, all, group refs,
    /// extensions).
    fn children(&self, ct: roxmltree::Node<'a, 'a>, out: &mut Vec<roxmltree::Node<'a, 'a>>) {
        for c in ct.children().filter(|n| n.is_element() && n.tag_name().namespace() == Some(XS)) {
            match c.tag_name().name() {
                "element" => out.push(c),
                "sequence" | "choice" | "all" | "complexContent" | "extension" => self.children(c, out),
                "group" => {
                    if let Some(g) = c.attribute("ref").and_then(|r| self.groups.get(local(r))) {
                        self.children(*g, out);
                    }
                }
                _ => {}
            }
        }
        if let Some(base) = ct.attribute("base").and_then(|b| self.types.get(local(b))) {
            self.children(*base, out);
        }
    }

    fn complex(&self, e: roxmltree::Node<'a, 'a>) -> Option<roxmltree::Node<'a, 'a>> {
        match e.attribute("type").map(local) {
            Some("EmptyElementType") => None,
            Some(t) => self.types.get(t).copied(),
            None => e.children().find(|n| n.has_tag_name((XS, "complexType"))),
        }
    }

    fn leaves(&self, ct: roxmltree::Node<'a, 'a>, path: &mut Vec<String>, single: bool, out: &mut Vec<Leaf>) {
        if path.len() > 12 {
            return;
        }
        let mut kids = Vec::new();
        self.children(ct, &mut kids);
        for e in kids {
            let name = e.attribute("name").unwrap_or_default().to_string();
            let empty = e.attribute("type").map(local) == Some("EmptyElementType");
            path.push(name.clone());
            match self.complex(e) {
                Some(sub) => {
                    let single = single
                        || (name == "item" && {
                            let mut k = Vec::new();
                            self.children(sub, &mut k);
                            k.len() == 1
                        });
                    self.leaves(sub, path, single, out);
                }
                None => out.push(Leaf { path: path.clone(), empty, single_item_list: single }),
            }
            path.pop();
        }
    }

    fn request(&self, action: &str) -> Option<Vec<Leaf>> {
        let e = self.elements.get(action)?;
        let ct = self.complex(*e)?;
        let mut out = Vec::new();
        self.leaves(ct, &mut Vec::new(), false, &mut out);
        Some(out)
    }
}

fn wsdl_text() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/soap/ec2-2013-10-01.wsdl");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The one-element Query name a leaf path flattens to (every list position 1).
fn query_name(t: &PathTable, action: &str, l: &Leaf) -> Option<String> {
    let mut node = leaf(l.path.last().unwrap(), if l.empty { "" } else { "v" });
    for seg in l.path[..l.path.len() - 1].iter().rev() {
        node = el(seg, vec![node]);
    }
    let p = flatten(t, action, &el(action, vec![node])).unwrap();
    p.0.into_keys().next()
}

/// Query parameters the table itself names for an action.
fn table_names(a: &ec2bridge::mapping::table::Action) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if let Some(ids) = &a.ids {
        v.push(ids.param.clone());
    }
    for p in &a.params {
        match &p.source {
            ParamSource::One(x) | ParamSource::List(x) => v.push(x.clone()),
            ParamSource::Members { prefix, fields } => {
                v.extend(fields.iter().map(|(_, f)| format!("{prefix}.1.{f}")));
            }
            _ => {}
        }
    }
    v.extend(a.required.iter().cloned());
    v.extend(a.exclusive.iter().flatten().cloned());
    v.extend(a.param_filters.iter().map(|(k, _)| k.clone()));
    if a.filters.is_some() {
        v.push("Filter.1.Name".into());
    }
    v
}

/// Parameters the table reads that the 2013-10-01 API (and so its SOAP) does not have yet.
const NEWER_THAN_2013: &[(&str, &str)] = &[
    ("DescribeKeyPairs", "KeyPairId"),
    ("DeleteKeyPair", "KeyPairId"),
    ("CreateKeyPair", "KeyType"),
    ("CreateKeyPair", "KeyFormat"),
    ("CreateVolume", "TagSpecification"),
    ("CreateVolume", "ClientToken"),
    ("CreateVolume", "Encrypted"),
    ("CreateSnapshot", "TagSpecification"),
    ("CreateSecurityGroup", "TagSpecification"),
    ("RunInstances", "TagSpecification"),
    ("DescribeAvailabilityZones", "ZoneId"),
];

/// Every mapped action in the WSDL: (1) a list whose items hold one element (EC2 names some `Y.N`,
/// some `X.N.Y`) and an empty attribute-selector element are declared in the table, so a new
/// action cannot silently get the generic name; (2) every parameter the table reads for the
/// action is reachable from some SOAP element path.
#[test]
fn every_mapped_action_declares_its_irregular_soap_paths() {
    let text = wsdl_text();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let schema = Schema::new(&doc);
    let t = table();
    let paths = t.soap_paths();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, a) in &t.actions {
        let Some(leaves) = schema.request(name) else { continue };
        checked += 1;
        let mut produced = BTreeSet::new();
        for l in &leaves {
            let segs: Vec<&str> = l.path.iter().map(String::as_str).collect();
            let top_empty = l.empty && l.path.len() == 1;
            if (l.single_item_list || top_empty) && !paths.covers(name, &segs) {
                problems.push(format!(
                    "{name}: SOAP path {} needs a declaration (soap = {{ \"{}\" = \"...\" }})",
                    l.path.join("/"),
                    l.path.join("/")
                ));
            }
            if let Some(q) = query_name(&paths, name, l) {
                produced.insert(q);
            }
        }
        for want in table_names(a) {
            let root = want.split('.').next().unwrap_or_default();
            if NEWER_THAN_2013.contains(&(name.as_str(), root)) {
                continue;
            }
            let ok = produced.contains(&want)
                || produced.contains(&format!("{want}.1"))
                || produced.iter().any(|p| p.starts_with(&format!("{want}.1.")));
            if !ok {
                problems.push(format!(
                    "{name}: the table reads {want}, which no SOAP element path produces ({produced:?})"
                ));
            }
        }
    }
    assert!(checked >= 45, "only {checked} mapped actions found in the WSDL");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Elements of the 2013-10-01 WSDL that EC2's current model no longer has: they answer
/// `UnknownParameter` like any name the model lacks (docs/parameters.md).
const GONE_SINCE_2013: &[(&str, &str)] = &[
    ("AuthorizeSecurityGroupIngress", "userId"),
    ("RevokeSecurityGroupIngress", "userId"),
    ("DescribeAccountAttributes", "filterSet"),
    ("RunInstances", "license"),
];

/// Every element a 2013-10-01 SOAP request of a mapped action may carry lands on a parameter the
/// action honours or refuses by name (docs/parameters.md), so a SOAP client meets
/// `UnknownParameter` only for what EC2 itself dropped since (`GONE_SINCE_2013`).
#[test]
fn every_soap_element_lands_on_a_parameter_the_action_takes() {
    let text = wsdl_text();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let schema = Schema::new(&doc);
    let t = table();
    let paths = t.soap_paths();
    let mut problems = Vec::new();
    for (name, a) in &t.actions {
        let Some(leaves) = schema.request(name) else { continue };
        let honoured = ec2bridge::mapping::params::honoured(a);
        for l in &leaves {
            let Some(q) = query_name(&paths, name, l) else { continue };
            let top = q.split('.').next().unwrap_or_default();
            if GONE_SINCE_2013.contains(&(name.as_str(), l.path[0].as_str())) {
                continue;
            }
            if !honoured.contains(top) && !a.refuses.iter().any(|r| r.member() == top) {
                problems.push(format!("{name}: SOAP {} -> {q}, which the action does not take", l.path.join("/")));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
