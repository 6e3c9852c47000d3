//! The SOAP 1.1 front end (ec2-protocol.md §6): a WS-Security-signed envelope becomes the same
//! [`Ec2Request`] a Query request does. Answers go back as the Query response tree inside a SOAP
//! envelope, or as a SOAP fault with HTTP 500 (`ec2::render::soap_success` / `soap_fault`).
//!
//! Only the operation element that the signature covered is read (`auth::wssec` hands over an
//! owned copy of it). Flattening into Query parameters is generic; the few element paths whose
//! Query names are irregular are declared in `paths.toml`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::auth::wssec::{self, CertificateLookup, SoapSignatureVerifier, VerifiedEnvelope, XmlElement};
use crate::ec2::{Ec2Error, Ec2Request, Frontend, Params};

/// Largest SOAP request accepted (bytes). RunInstances user data (16 KiB, base64) plus a signed
/// envelope fits many times over; anything bigger is refused before parsing.
pub const MAX_SOAP_BODY: usize = 256 * 1024;
/// Upper bound on flattened parameters, far above any real request.
const MAX_PARAMS: usize = 4096;
const EC2_NS_PREFIX: &str = "http://ec2.amazonaws.com/doc/";

// ---------------------------------------------------------------------------------------------
// The path table

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    common: BTreeMap<String, String>,
    #[serde(default)]
    action: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug)]
struct Rule {
    segments: Vec<String>,
    template: String,
}

/// Irregular SOAP element paths -> Query names (`paths.toml`), validated.
#[derive(Debug)]
pub struct PathTable {
    common: Vec<Rule>,
    actions: HashMap<String, Vec<Rule>>,
}

impl PathTable {
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PathFile = toml::from_str(text).map_err(|e| format!("SOAP path table: {e}"))?;
        let rules = |m: BTreeMap<String, String>, ctx: &str| -> Result<Vec<Rule>, String> {
            m.into_iter()
                .map(|(path, template)| {
                    let segments: Vec<String> = path.split('/').map(str::to_string).collect();
                    let items = segments.iter().filter(|s| *s == "item").count();
                    let holes = template.matches('#').count();
                    if segments.iter().any(String::is_empty) || template.is_empty() {
                        return Err(format!("SOAP path table [{ctx}] \"{path}\": empty path segment or name"));
                    }
                    if items != holes {
                        return Err(format!(
                            "SOAP path table [{ctx}] \"{path}\" = \"{template}\": {items} `item` segment(s) but {holes} `#`"
                        ));
                    }
                    Ok(Rule { segments, template })
                })
                .collect()
        };
        let common = rules(file.common, "common")?;
        let mut actions = HashMap::new();
        for (name, m) in file.action {
            let r = rules(m, &format!("action.{name}"))?;
            actions.insert(name, r);
        }
        Ok(PathTable { common, actions })
    }

    /// The compiled-in table.
    pub fn builtin() -> &'static PathTable {
        static T: OnceLock<PathTable> = OnceLock::new();
        T.get_or_init(|| PathTable::parse(include_str!("paths.toml")).expect("built-in SOAP path table is valid"))
    }

    fn best<'a>(&'a self, action: &str, path: &[&str]) -> Option<&'a Rule> {
        let longest = |rules: &'a [Rule]| {
            rules
                .iter()
                .filter(|r| r.segments.len() <= path.len() && r.segments.iter().zip(path).all(|(a, b)| a == b))
                .max_by_key(|r| r.segments.len())
        };
        self.actions.get(action).and_then(|r| longest(r)).or_else(|| longest(&self.common))
    }
}

// ---------------------------------------------------------------------------------------------
// Flattening

struct Flattener<'t> {
    table: &'t PathTable,
    action: &'t str,
    /// Dense list positions: per name prefix, the item uids in order of first use.
    ordinals: HashMap<String, Vec<usize>>,
    next_uid: usize,
    out: Params,
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn is_nil(el: &XmlElement) -> bool {
    el.attributes.iter().any(|(k, v)| k == "nil" && (v == "true" || v == "1"))
}

impl Flattener<'_> {
    fn ordinal(&mut self, prefix: &str, uid: usize) -> usize {
        let seen = self.ordinals.entry(prefix.to_string()).or_default();
        match seen.iter().position(|u| *u == uid) {
            Some(i) => i + 1,
            None => {
                seen.push(uid);
                seen.len()
            }
        }
    }

    /// `path`: (segment, item uid when the segment is `item`).
    fn name(&mut self, path: &[(String, usize)]) -> String {
        let segs: Vec<&str> = path.iter().map(|(s, _)| s.as_str()).collect();
        let mut name = String::new();
        let mut rest = 0;
        if let Some(rule) = self.table.best(self.action, &segs) {
            let mut uids = path[..rule.segments.len()].iter().filter(|(s, _)| s == "item").map(|(_, u)| *u);
            for ch in rule.template.chars() {
                if ch == '#' {
                    let uid = uids.next().expect("table validated: one # per item");
                    let n = self.ordinal(&name, uid);
                    name.push_str(&n.to_string());
                } else {
                    name.push(ch);
                }
            }
            rest = rule.segments.len();
        }
        for i in rest..path.len() {
            let (seg, uid) = &path[i];
            if seg == "item" {
                if name.is_empty() {
                    name.push_str("Item");
                }
                let n = self.ordinal(&name, *uid);
                name.push('.');
                name.push_str(&n.to_string());
                continue;
            }
            let next_is_item = path.get(i + 1).is_some_and(|(s, _)| s == "item");
            let base = match seg.strip_suffix("Set") {
                Some(b) if next_is_item && !b.is_empty() => b,
                _ => seg.as_str(),
            };
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(&upper_first(base));
        }
        name
    }

    fn walk(&mut self, el: &XmlElement, path: &mut Vec<(String, usize)>) -> Result<(), Ec2Error> {
        for child in &el.children {
            let uid = self.next_uid;
            self.next_uid += 1;
            path.push((child.name.clone(), uid));
            if child.children.is_empty() {
                // WSDL clients send required-but-empty lists (`<imagesSet/>`): no parameter.
                let empty_list = child.text.trim().is_empty() && (child.name.ends_with("Set") || child.name == "item");
                if !is_nil(child) && !empty_list {
                    let name = self.name(path);
                    if self.out.0.len() >= MAX_PARAMS {
                        return Err(Ec2Error::new("InvalidSOAPRequest", "The SOAP request has too many parameters"));
                    }
                    if self.out.0.insert(name.clone(), child.text.clone()).is_some() {
                        return Err(Ec2Error::new(
                            "InvalidParameterValue",
                            format!("The parameter {name} appears more than once in the SOAP request"),
                        ));
                    }
                }
            } else {
                self.walk(child, path)?;
            }
            path.pop();
        }
        Ok(())
    }
}

/// Flatten an operation element into EC2 Query parameters.
pub fn flatten(table: &PathTable, action: &str, op: &XmlElement) -> Result<Params, Ec2Error> {
    let mut f = Flattener { table, action, ordinals: HashMap::new(), next_uid: 0, out: Params::new() };
    f.walk(op, &mut Vec::new())?;
    Ok(f.out)
}

/// `http://ec2.amazonaws.com/doc/2012-08-15/` -> `2012-08-15`.
pub fn version_of(namespace: Option<&str>) -> Result<String, Ec2Error> {
    let bad = || {
        Ec2Error::new(
            "InvalidSOAPRequest",
            "The operation element must be in an EC2 API namespace (http://ec2.amazonaws.com/doc/YYYY-MM-DD/)",
        )
    };
    let v = namespace.and_then(|n| n.strip_prefix(EC2_NS_PREFIX)).ok_or_else(bad)?;
    let v = v.strip_suffix('/').unwrap_or(v);
    let b = v.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shape {
        return Err(bad());
    }
    Ok(v.to_string())
}

/// The normalized request for a verified envelope.
pub fn to_request(table: &PathTable, verified: &VerifiedEnvelope, request_id: String) -> Result<Ec2Request, Ec2Error> {
    let op = &verified.operation;
    if op.name.is_empty() || !op.name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Ec2Error::new("InvalidSOAPRequest", "The SOAP Body's operation element has an invalid name"));
    }
    let version = version_of(op.namespace.as_deref())?;
    let params = flatten(table, &op.name, op)?;
    Ok(Ec2Request { request_id, action: op.name.clone(), version, params, frontend: Frontend::Soap, host: None })
}

// ---------------------------------------------------------------------------------------------
// Replays

/// Signatures already accepted, kept while their Timestamp would still be accepted, so one
/// captured request cannot be sent twice within the freshness window. Per process: several
/// gateways behind one balancer each keep their own (a request replayed to another instance
/// inside the window is not caught; documented limit).
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: DashMap<[u8; 32], OffsetDateTime>,
}

const REPLAY_CAP: usize = 200_000;

impl ReplayCache {
    /// Records the envelope's signature; false if it was seen and is still within its window.
    pub fn first_use(&self, v: &VerifiedEnvelope, now: OffsetDateTime) -> bool {
        let until = {
            let window = v.created + wssec::MAX_CLOCK_SKEW;
            v.expires.map_or(window, |e| e.min(window))
        };
        let key: [u8; 32] = Sha256::digest(v.signature_value.as_bytes()).into();
        if self.seen.len() >= REPLAY_CAP {
            self.seen.retain(|_, t| *t > now);
        }
        match self.seen.entry(key) {
            dashmap::Entry::Occupied(mut e) => {
                if *e.get() > now {
                    return false;
                }
                e.insert(until);
                true
            }
            dashmap::Entry::Vacant(e) => {
                e.insert(until);
                true
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The front end

/// What the server calls for a SOAP request.
pub struct SoapFrontend {
    verifier: Arc<dyn SoapSignatureVerifier>,
    table: &'static PathTable,
    replay: ReplayCache,
    pub max_body: usize,
}

impl SoapFrontend {
    pub fn new(verifier: Arc<dyn SoapSignatureVerifier>) -> Self {
        SoapFrontend { verifier, table: PathTable::builtin(), replay: ReplayCache::default(), max_body: MAX_SOAP_BODY }
    }

    /// With the pure-Rust verifier.
    pub fn with_bergshamra() -> Self {
        Self::new(Arc::new(wssec::BergshamraVerifier))
    }

    /// Size check, WS-Security (registered certificate, signature, coverage, freshness), replay
    /// check, then the normalized request. The identity is whatever `certs` maps the
    /// certificate to (e.g. the access key it was registered for).
    pub async fn authenticate<L: CertificateLookup>(
        &self,
        certs: &L,
        body: &[u8],
        request_id: String,
    ) -> Result<(L::Identity, Ec2Request), Ec2Error> {
        if body.len() > self.max_body {
            return Err(Ec2Error::new(
                "InvalidSOAPRequest",
                format!("The SOAP request is larger than {} bytes", self.max_body),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let (who, verified) = wssec::authenticate(self.verifier.as_ref(), certs, body, now).await?;
        if !self.replay.first_use(&verified, now) {
            return Err(Ec2Error::new("InvalidSecurity", "This signed request has already been processed (replay)"));
        }
        Ok((who, to_request(self.table, &verified, request_id)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(name: &str, children: Vec<XmlElement>) -> XmlElement {
        XmlElement { name: name.into(), children, ..Default::default() }
    }
    fn leaf(name: &str, text: &str) -> XmlElement {
        XmlElement { name: name.into(), text: text.into(), ..Default::default() }
    }
    fn item(children: Vec<XmlElement>) -> XmlElement {
        el("item", children)
    }
    fn flat(action: &str, children: Vec<XmlElement>) -> Vec<(String, String)> {
        let op = el(action, children);
        flatten(PathTable::builtin(), action, &op).unwrap().0.into_iter().collect()
    }
    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        v.sort();
        v
    }

    #[test]
    fn builtin_table_is_valid() {
        let t = PathTable::builtin();
        assert!(t.common.len() > 10);
        assert!(PathTable::parse("[common]\n\"aSet/item/b\" = \"B\"\n").unwrap_err().contains("`#`"));
        assert!(PathTable::parse("[common]\n[bogus]\n").is_err());
    }

    #[test]
    fn describe_instances_ids_and_filters() {
        let got = flat(
            "DescribeInstances",
            vec![
                el("instancesSet", vec![item(vec![leaf("instanceId", "i-1")]), item(vec![leaf("instanceId", "i-2")])]),
                el(
                    "filterSet",
                    vec![
                        item(vec![
                            leaf("name", "instance-state-name"),
                            el(
                                "valueSet",
                                vec![item(vec![leaf("value", "running")]), item(vec![leaf("value", "stopped")])],
                            ),
                        ]),
                        item(vec![leaf("name", "tag:Name"), el("valueSet", vec![item(vec![leaf("value", "web")])])]),
                    ],
                ),
                leaf("maxResults", "5"),
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("InstanceId.1", "i-1"),
                ("InstanceId.2", "i-2"),
                ("Filter.1.Name", "instance-state-name"),
                ("Filter.1.Value.1", "running"),
                ("Filter.1.Value.2", "stopped"),
                ("Filter.2.Name", "tag:Name"),
                ("Filter.2.Value.1", "web"),
                ("MaxResults", "5"),
            ])
        );
    }

    #[test]
    fn run_instances_irregular_and_generic_paths() {
        let got = flat(
            "RunInstances",
            vec![
                leaf("imageId", "ami-1"),
                leaf("minCount", "1"),
                leaf("maxCount", "2"),
                leaf("keyName", "k"),
                el(
                    "groupSet",
                    vec![
                        item(vec![leaf("groupId", "sg-1")]),
                        item(vec![leaf("groupName", "web")]),
                        item(vec![leaf("groupId", "sg-2")]),
                    ],
                ),
                XmlElement {
                    name: "userData".into(),
                    attributes: vec![("version".into(), "1.0".into()), ("encoding".into(), "base64".into())],
                    children: vec![leaf("data", "aGk=")],
                    ..Default::default()
                },
                leaf("instanceType", "m1.small"),
                el("placement", vec![leaf("availabilityZone", "zone1")]),
                el(
                    "blockDeviceMapping",
                    vec![item(vec![leaf("deviceName", "/dev/sdb"), el("ebs", vec![leaf("volumeSize", "10")])])],
                ),
                el("monitoring", vec![leaf("enabled", "false")]),
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("ImageId", "ami-1"),
                ("MinCount", "1"),
                ("MaxCount", "2"),
                ("KeyName", "k"),
                ("SecurityGroupId.1", "sg-1"),
                ("SecurityGroupId.2", "sg-2"),
                ("SecurityGroup.1", "web"),
                ("UserData", "aGk="),
                ("InstanceType", "m1.small"),
                ("Placement.AvailabilityZone", "zone1"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdb"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "10"),
                ("Monitoring.Enabled", "false"),
            ])
        );
    }

    #[test]
    fn images_tags_and_nested_lists() {
        let got = flat(
            "DescribeImages",
            vec![
                el("executableBySet", vec![item(vec![leaf("user", "self")])]),
                el("imagesSet", vec![item(vec![leaf("imageId", "ami-1")])]),
                el("ownersSet", vec![item(vec![leaf("owner", "amazon")]), item(vec![leaf("owner", "self")])]),
            ],
        );
        assert_eq!(
            got,
            pairs(&[("ExecutableBy.1", "self"), ("ImageId.1", "ami-1"), ("Owner.1", "amazon"), ("Owner.2", "self")])
        );
        let got = flat(
            "CreateTags",
            vec![
                el(
                    "resourcesSet",
                    vec![item(vec![leaf("resourceId", "i-1")]), item(vec![leaf("resourceId", "vol-1")])],
                ),
                el(
                    "tagSet",
                    vec![item(vec![leaf("key", "Name"), leaf("value", "web")]), item(vec![leaf("key", "env")])],
                ),
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("ResourceId.1", "i-1"),
                ("ResourceId.2", "vol-1"),
                ("Tag.1.Key", "Name"),
                ("Tag.1.Value", "web"),
                ("Tag.2.Key", "env"),
            ])
        );
        // Generic nested lists: AuthorizeSecurityGroupIngress.
        let got = flat(
            "AuthorizeSecurityGroupIngress",
            vec![
                leaf("groupName", "web"),
                el(
                    "ipPermissions",
                    vec![item(vec![
                        leaf("ipProtocol", "tcp"),
                        leaf("fromPort", "22"),
                        leaf("toPort", "22"),
                        el("groups", vec![item(vec![leaf("userId", "u"), leaf("groupName", "db")])]),
                        el("ipRanges", vec![item(vec![leaf("cidrIp", "0.0.0.0/0")])]),
                    ])],
                ),
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("GroupName", "web"),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "22"),
                ("IpPermissions.1.ToPort", "22"),
                ("IpPermissions.1.Groups.1.UserId", "u"),
                ("IpPermissions.1.Groups.1.GroupName", "db"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
            ])
        );
    }

    #[test]
    fn volumes_snapshots_keypairs() {
        assert_eq!(
            flat("DescribeVolumes", vec![el("volumeSet", vec![item(vec![leaf("volumeId", "vol-1")])])]),
            pairs(&[("VolumeId.1", "vol-1")])
        );
        assert_eq!(
            flat("CreateVolume", vec![leaf("size", "5"), leaf("availabilityZone", "z"), leaf("snapshotId", "snap-1")]),
            pairs(&[("Size", "5"), ("AvailabilityZone", "z"), ("SnapshotId", "snap-1")])
        );
        assert_eq!(
            flat(
                "DescribeSnapshots",
                vec![
                    el("snapshotSet", vec![item(vec![leaf("snapshotId", "snap-1")])]),
                    el("restorableBySet", vec![item(vec![leaf("user", "self")])])
                ]
            ),
            pairs(&[("SnapshotId.1", "snap-1"), ("RestorableBy.1", "self")])
        );
        assert_eq!(
            flat(
                "DescribeKeyPairs",
                vec![el("keySet", vec![item(vec![leaf("keyName", "a")]), item(vec![leaf("keyName", "b")])])]
            ),
            pairs(&[("KeyName.1", "a"), ("KeyName.2", "b")])
        );
        assert_eq!(flat("CreateKeyPair", vec![leaf("keyName", "a")]), pairs(&[("KeyName", "a")]));
        // Per-action entries do not leak: groupSet elsewhere is generic.
        assert_eq!(
            flat("ModifyInstanceAttribute", vec![el("groupSet", vec![item(vec![leaf("groupId", "sg-1")])])]),
            pairs(&[("GroupId.1", "sg-1")])
        );
    }

    #[test]
    fn duplicates_and_nil() {
        let op = el("X", vec![leaf("a", "1"), leaf("a", "2")]);
        assert_eq!(flatten(PathTable::builtin(), "X", &op).unwrap_err().code, "InvalidParameterValue");
        let nil = XmlElement {
            name: "kernelId".into(),
            attributes: vec![("nil".into(), "true".into())],
            ..Default::default()
        };
        assert!(flatten(PathTable::builtin(), "X", &el("X", vec![nil])).unwrap().0.is_empty());
        let empty = el("X", vec![leaf("imagesSet", ""), el("ownersSet", vec![item(vec![])])]);
        assert!(flatten(PathTable::builtin(), "X", &empty).unwrap().0.is_empty());
    }

    #[test]
    fn versions() {
        assert_eq!(version_of(Some("http://ec2.amazonaws.com/doc/2012-08-15/")).unwrap(), "2012-08-15");
        assert_eq!(version_of(Some("http://ec2.amazonaws.com/doc/2013-10-01")).unwrap(), "2013-10-01");
        for bad in [
            None,
            Some("urn:x"),
            Some("http://ec2.amazonaws.com/doc/latest/"),
            Some("http://ec2.amazonaws.com/doc/2012-8-15/"),
        ] {
            assert_eq!(version_of(bad).unwrap_err().code, "InvalidSOAPRequest");
        }
    }

    #[test]
    fn replay_cache() {
        let now = OffsetDateTime::now_utc();
        let v = VerifiedEnvelope {
            token: wssec::SecurityToken { der: vec![], fingerprint: String::new() },
            operation: XmlElement::default(),
            created: now,
            expires: Some(now + time::Duration::minutes(5)),
            signature_value: "abc".into(),
        };
        let c = ReplayCache::default();
        assert!(c.first_use(&v, now));
        assert!(!c.first_use(&v, now + time::Duration::minutes(1)));
        // Once the window is over the verifier refuses it anyway; the cache may forget it.
        assert!(c.first_use(&v, now + time::Duration::minutes(6)));
    }
}
