//! The SOAP 1.1 front end (docs/ec2-wire.md "SOAP and WS-Security"): a WS-Security-signed envelope
//! becomes the same
//! [`Ec2Request`] a Query request does. Answers go back as the Query response tree inside a SOAP
//! envelope, or as a SOAP fault with HTTP 500 (`ec2::render::soap_success` / `soap_fault`).
//!
//! Only the operation element that the signature covered is read (`auth::wssec` hands over an
//! owned copy of it). Flattening into Query parameters is generic; the element paths whose Query
//! names are irregular are data in the mapping table (`mappings/soap.toml`, each action's `soap`),
//! handed over at startup as a [`PathTable`].

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::auth::replay::{MemoryReplayGuard, ReplayGuard};
use crate::auth::wssec::{self, CertificateLookup, SoapSignatureVerifier, VerifiedEnvelope, XmlElement};
use crate::base::{Code, Ec2Error};
use crate::ec2::{Ec2Request, Frontend, Params};

/// Largest SOAP request accepted (bytes). RunInstances user data (16 KiB, base64) plus a signed
/// envelope fits many times over; anything bigger is refused before parsing.
pub const MAX_SOAP_BODY: usize = 256 * 1024;
/// Upper bound on flattened parameters, far above any real request.
const MAX_PARAMS: usize = 4096;
const EC2_NS_PREFIX: &str = "http://ec2.amazonaws.com/doc/";

// ---------------------------------------------------------------------------------------------
// The path table

/// What a declared path becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A Query name; each `#` is the position of one of the path's `item` segments, in order.
    Name(String),
    /// `Name=value`: the element's presence sets a fixed value, whatever its text
    /// (DescribeInstanceAttribute's `<instanceType/>` -> `Attribute=instanceType`).
    Const { name: String, value: String },
}

#[derive(Debug, Clone)]
struct Rule {
    segments: Vec<String>,
    target: Target,
}

/// Irregular SOAP element paths -> Query names, validated. The rules are data declared in the
/// mapping table (`mappings/soap.toml` and each action's `soap`); this module only knows how to
/// apply them. Without rules, flattening is purely generic.
#[derive(Debug, Clone, Default)]
pub struct PathTable {
    common: Vec<Rule>,
    actions: HashMap<String, Vec<Rule>>,
}

fn query_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|seg| !seg.is_empty() && (seg == "#" || seg.bytes().all(|b| b.is_ascii_alphanumeric())))
}

fn element_name_ok(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' || ch == '.')
}

fn parse_rule(path: &str, target: &str) -> Result<Rule, String> {
    let segments: Vec<String> = path.split('/').map(str::to_string).collect();
    if let Some(bad) = segments.iter().find(|s| !element_name_ok(s)) {
        return Err(format!("SOAP path \"{path}\": '{bad}' is not an element name (write a/item/b)"));
    }
    let items = segments.iter().filter(|s| *s == "item").count();
    let target = match target.split_once('=') {
        Some((name, value)) => {
            if !query_name_ok(name) || name.contains('#') || value.is_empty() {
                return Err(format!(
                    "SOAP path \"{path}\" = \"{target}\": a fixed value is written Name=value (no `#`)"
                ));
            }
            if items > 0 {
                return Err(format!("SOAP path \"{path}\" = \"{target}\": a fixed value cannot be used inside a list"));
            }
            Target::Const { name: name.to_string(), value: value.to_string() }
        }
        None => {
            if !query_name_ok(target) {
                return Err(format!(
                    "SOAP path \"{path}\" = \"{target}\": not a Query name (Name.#.Member, letters and digits)"
                ));
            }
            let holes = target.split('.').filter(|s| *s == "#").count();
            if items != holes {
                return Err(format!("SOAP path \"{path}\" = \"{target}\": {items} `item` segment(s) but {holes} `#`"));
            }
            Target::Name(target.to_string())
        }
    };
    Ok(Rule { segments, target })
}

/// Checks one declaration (`"instancesSet/item/instanceId" = "InstanceId.#"`); the mapping
/// loader reports the message with the file and line.
pub fn check_rule(path: &str, target: &str) -> Result<(), String> {
    parse_rule(path, target).map(|_| ())
}

impl PathTable {
    /// No irregular paths: generic flattening only.
    pub fn generic() -> Self {
        PathTable::default()
    }

    /// `common`: rules for every action; `actions`: (action, its rules), tried first.
    pub fn new<C, A, R>(common: C, actions: A) -> Result<Self, String>
    where
        C: IntoIterator<Item = (String, String)>,
        A: IntoIterator<Item = (String, R)>,
        R: IntoIterator<Item = (String, String)>,
    {
        let rules = |it: &mut dyn Iterator<Item = (String, String)>| -> Result<Vec<Rule>, String> {
            it.map(|(p, t)| parse_rule(&p, &t)).collect()
        };
        let common = rules(&mut common.into_iter())?;
        let mut map = HashMap::new();
        for (name, r) in actions {
            let r = rules(&mut r.into_iter())?;
            map.entry(name).or_insert_with(Vec::new).extend(r);
        }
        Ok(PathTable { common, actions: map })
    }

    /// Whether a declared rule (the action's or a common one) covers this element path.
    pub fn covers(&self, action: &str, path: &[&str]) -> bool {
        self.best(action, path).is_some()
    }

    fn best<'a>(&'a self, action: &str, path: &[&str]) -> Option<&'a Rule> {
        let longest = |rules: &'a [Rule]| {
            rules
                .iter()
                .filter(|r| match r.target {
                    // A fixed value stands for one whole element, never for its descendants.
                    Target::Const { .. } => r.segments.len() == path.len(),
                    Target::Name(_) => r.segments.len() <= path.len(),
                })
                .filter(|r| r.segments.iter().zip(path).all(|(a, b)| a == b))
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
        if let Some(rule) = self.table.best(self.action, &segs)
            && let Target::Name(template) = &rule.target
        {
            let mut uids = path[..rule.segments.len()].iter().filter(|(s, _)| s == "item").map(|(_, u)| *u);
            for ch in template.chars() {
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
                let fixed = {
                    let segs: Vec<&str> = path.iter().map(|(s, _)| s.as_str()).collect();
                    match self.table.best(self.action, &segs).map(|r| &r.target) {
                        Some(Target::Const { name, value }) => Some((name.clone(), value.clone())),
                        _ => None,
                    }
                };
                // WSDL clients send required-but-empty lists (`<imagesSet/>`): no parameter.
                let empty_list = child.text.trim().is_empty() && (child.name.ends_with("Set") || child.name == "item");
                let param = match fixed {
                    Some(nv) => Some(nv),
                    None if !is_nil(child) && !empty_list => Some((self.name(path), child.text.clone())),
                    None => None,
                };
                if let Some((name, value)) = param {
                    if self.out.0.len() >= MAX_PARAMS {
                        return Err(Ec2Error::new(
                            Code::InvalidSoapRequest,
                            "The SOAP request has too many parameters",
                        ));
                    }
                    if self.out.0.insert(name.clone(), value).is_some() {
                        return Err(Ec2Error::new(
                            Code::InvalidParameterValue,
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
            Code::InvalidSoapRequest,
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
        return Err(Ec2Error::new(Code::InvalidSoapRequest, "The SOAP Body's operation element has an invalid name"));
    }
    let version = version_of(op.namespace.as_deref())?;
    let params = flatten(table, &op.name, op)?;
    Ok(Ec2Request { request_id, action: op.name.clone(), version, params, frontend: Frontend::Soap, host: None })
}

// ---------------------------------------------------------------------------------------------
// Replays

// ---------------------------------------------------------------------------------------------
// The front end

/// What the server calls for a SOAP request.
pub struct SoapFrontend {
    verifier: Arc<dyn SoapSignatureVerifier>,
    table: Arc<PathTable>,
    /// Used when the caller names no shared guard ([`SoapFrontend::authenticate_guarded`]).
    replay: Arc<dyn ReplayGuard>,
    pub max_body: usize,
}

impl SoapFrontend {
    /// Generic flattening only; give the mapping table's paths with [`SoapFrontend::with_paths`].
    pub fn new(verifier: Arc<dyn SoapSignatureVerifier>) -> Self {
        SoapFrontend {
            verifier,
            table: Arc::new(PathTable::generic()),
            replay: Arc::new(MemoryReplayGuard::default()),
            max_body: MAX_SOAP_BODY,
        }
    }

    /// The irregular element paths to use (`mapping::Table::soap_paths`).
    pub fn with_paths(mut self, table: Arc<PathTable>) -> Self {
        self.table = table;
        self
    }

    pub fn paths(&self) -> &PathTable {
        &self.table
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
        self.authenticate_guarded(certs, self.replay.as_ref(), body, request_id).await
    }

    /// Same, with the replay guard given (the store's, shared by every gateway on it).
    pub async fn authenticate_guarded<L: CertificateLookup>(
        &self,
        certs: &L,
        replay: &dyn ReplayGuard,
        body: &[u8],
        request_id: String,
    ) -> Result<(L::Identity, Ec2Request), Ec2Error> {
        if body.len() > self.max_body {
            return Err(Ec2Error::new(
                Code::InvalidSoapRequest,
                format!("The SOAP request is larger than {} bytes", self.max_body),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let (who, verified) = wssec::authenticate(self.verifier.as_ref(), certs, body, now).await?;
        if !replay.first_use(verified.replay_key(), verified.replay_until(), now).await? {
            return Err(Ec2Error::new(
                Code::InvalidSecurity,
                "This signed request has already been processed (replay)",
            ));
        }
        Ok((who, to_request(&self.table, &verified, request_id)?))
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
    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        v.sort();
        v
    }

    fn table() -> PathTable {
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        PathTable::new(
            [
                p("instancesSet/item/instanceId", "InstanceId.#"),
                p("filterSet/item/name", "Filter.#.Name"),
                p("filterSet/item/valueSet/item/value", "Filter.#.Value.#"),
            ],
            [
                (
                    "RunInstances".to_string(),
                    vec![p("groupSet/item/groupId", "SecurityGroupId.#"), p("userData/data", "UserData")],
                ),
                (
                    "DescribeInstanceAttribute".to_string(),
                    vec![p("groupSet", "Attribute=groupSet"), p("kernel", "Attribute=kernel")],
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rules_are_checked() {
        assert!(check_rule("aSet/item/b", "B").unwrap_err().contains("`#`"));
        assert!(check_rule("aSet/item/b", "B.#.#").unwrap_err().contains("`#`"));
        assert!(check_rule("a//b", "B").is_err());
        assert!(check_rule("a/b c", "B").is_err());
        assert!(check_rule("a", "B-c").is_err());
        assert!(check_rule("a", "B..C").is_err());
        assert!(check_rule("a", "=x").is_err());
        assert!(check_rule("a", "Attribute=").is_err());
        assert!(check_rule("aSet/item", "Attribute=x").is_err());
        check_rule("aSet/item/b/cSet/item/d", "B.#.D.#").unwrap();
        check_rule("kernel", "Attribute=kernel").unwrap();
        assert!(PathTable::new([("x/item/y".to_string(), "Y".to_string())], Vec::<(String, Vec<_>)>::new()).is_err());
    }

    #[test]
    fn declared_generic_and_fixed_paths() {
        let t = table();
        let f = |action: &str, children: Vec<XmlElement>| -> Vec<(String, String)> {
            flatten(&t, action, &el(action, children)).unwrap().0.into_iter().collect()
        };
        let got = f(
            "DescribeInstances",
            vec![
                el("instancesSet", vec![item(vec![leaf("instanceId", "i-1")]), item(vec![leaf("instanceId", "i-2")])]),
                el(
                    "filterSet",
                    vec![
                        item(vec![
                            leaf("name", "a"),
                            el("valueSet", vec![item(vec![leaf("value", "1")]), item(vec![leaf("value", "2")])]),
                        ]),
                        item(vec![leaf("name", "b"), el("valueSet", vec![item(vec![leaf("value", "3")])])]),
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
                ("Filter.1.Name", "a"),
                ("Filter.1.Value.1", "1"),
                ("Filter.1.Value.2", "2"),
                ("Filter.2.Name", "b"),
                ("Filter.2.Value.1", "3"),
                ("MaxResults", "5"),
            ])
        );
        // Action rules first; the rest of the path generic; other actions unaffected.
        let run = vec![
            el("groupSet", vec![item(vec![leaf("groupId", "sg-1")]), item(vec![leaf("groupId", "sg-2")])]),
            el("userData", vec![leaf("data", "aGk=")]),
            el("placement", vec![leaf("availabilityZone", "z")]),
            el("blockDeviceMapping", vec![item(vec![el("ebs", vec![leaf("volumeSize", "10")])])]),
        ];
        assert_eq!(
            f("RunInstances", run.clone()),
            pairs(&[
                ("SecurityGroupId.1", "sg-1"),
                ("SecurityGroupId.2", "sg-2"),
                ("UserData", "aGk="),
                ("Placement.AvailabilityZone", "z"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "10"),
            ])
        );
        assert!(f("ModifyInstanceAttribute", run).contains(&("Group.2.GroupId".to_string(), "sg-2".to_string())));
        // A fixed value, even for an element that looks like an empty list.
        assert_eq!(
            f("DescribeInstanceAttribute", vec![leaf("instanceId", "i-1"), leaf("groupSet", "")]),
            pairs(&[("InstanceId", "i-1"), ("Attribute", "groupSet")])
        );
        let two = el("DescribeInstanceAttribute", vec![leaf("kernel", ""), leaf("groupSet", "")]);
        assert_eq!(flatten(&t, "DescribeInstanceAttribute", &two).unwrap_err().code, "InvalidParameterValue");
        // Fixed values stand for the element itself only.
        assert_eq!(
            f("DescribeInstanceAttribute", vec![el("kernel", vec![leaf("value", "k")])]),
            pairs(&[("Kernel.Value", "k")])
        );
    }

    #[test]
    fn duplicates_and_nil() {
        let op = el("X", vec![leaf("a", "1"), leaf("a", "2")]);
        assert_eq!(flatten(&PathTable::generic(), "X", &op).unwrap_err().code, "InvalidParameterValue");
        let nil = XmlElement {
            name: "kernelId".into(),
            attributes: vec![("nil".into(), "true".into())],
            ..Default::default()
        };
        assert!(flatten(&PathTable::generic(), "X", &el("X", vec![nil])).unwrap().0.is_empty());
        let empty = el("X", vec![leaf("imagesSet", ""), el("ownersSet", vec![item(vec![])])]);
        assert!(flatten(&PathTable::generic(), "X", &empty).unwrap().0.is_empty());
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
}
