//! Which request parameters an action takes (docs/parameters.md): no parameter is dropped in
//! silence. Every input member of an action in EC2's service model is either honoured (read by
//! the table's declarations or, declared with `accepts`, by the action's step) or refused by name
//! (`refuses`); a parameter EC2 does not know for the action is `UnknownParameter`. Checked
//! before anything else, so a refused request changes nothing.
//!
//! Names are compared as EC2's Query protocol writes them: a list flattens to `Name.N`, a
//! structure to `Name.Sub`, so a member is its first dot-separated segment. A refusal can name a
//! nested member (`Placement.Tenancy`, `BlockDeviceMapping.N.Ebs.Iops`, `N` = any position) and
//! can let through the values that mean what the gateway does anyway (`unless = ["default"]`).

use std::collections::BTreeSet;

use super::table::Action;
use super::toml_src::At;
use crate::base::{Code, Ec2Error};
use crate::ec2::Params;

/// Parameters every action takes: the executor answers `DryRun` for all of them.
pub const COMMON: &[&str] = &["DryRun"];

/// One `refuses` entry: the parameter (pattern), why, and the values that are let through.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub pattern: String,
    pub reason: String,
    pub unless: Vec<String>,
    pub at: At,
}

impl Refusal {
    /// The member (first segment) the refusal is about.
    pub fn member(&self) -> &str {
        top(&self.pattern)
    }

    /// Does the parameter `name` fall under this refusal (the pattern or anything below it)?
    pub fn covers(&self, name: &str) -> bool {
        let mut have = name.split('.');
        self.pattern.split('.').all(|want| match have.next() {
            Some(seg) if want == "N" => !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()),
            Some(seg) => seg == want,
            None => false,
        })
    }
}

/// The member a flattened Query parameter belongs to (`BlockDeviceMapping.1.Ebs` ->
/// `BlockDeviceMapping`).
pub fn top(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The members the action honours: what its declarations read (`required`, `exclusive`, `ids`,
/// `params`, `param_filters`, `filters`, `page`), what its step reads (`accepts`) and `COMMON`.
pub fn honoured(a: &Action) -> BTreeSet<String> {
    use super::table::ParamSource;
    let mut out: BTreeSet<String> = COMMON.iter().map(|s| s.to_string()).collect();
    let mut add = |n: &str| {
        if !n.is_empty() {
            out.insert(top(n).to_string());
        }
    };
    a.required.iter().for_each(|n| add(n));
    a.exclusive.iter().flatten().for_each(|n| add(n));
    if let Some(i) = &a.ids {
        add(&i.param);
    }
    for p in &a.params {
        match &p.source {
            ParamSource::One(n) | ParamSource::List(n) => add(n),
            ParamSource::Members { prefix, .. } => add(prefix),
            ParamSource::Const(_) | ParamSource::None => {}
        }
    }
    a.param_filters.iter().for_each(|(n, _)| add(n));
    if a.filters.is_some() {
        add("Filter");
    }
    if a.page.is_some() {
        add("MaxResults");
        add("NextToken");
    }
    a.accepts.iter().for_each(|n| add(n));
    out
}

/// Refuse what the action does not take, before anything is called.
pub fn check(a: &Action, p: &Params) -> Result<(), Ec2Error> {
    let honoured = honoured(a);
    for (name, value) in &p.0 {
        if let Some(r) = a.refuses.iter().find(|r| r.covers(name)) {
            if r.unless.iter().any(|u| u.eq_ignore_ascii_case(value)) {
                continue;
            }
            return Err(Ec2Error::new(
                Code::UnsupportedOperation,
                format!("The parameter {name} is not supported by this gateway: {}", r.reason),
            ));
        }
        if !honoured.contains(top(name)) {
            return Err(unknown(name));
        }
    }
    Ok(())
}

pub fn unknown(name: &str) -> Ec2Error {
    // Bounded: the name is the client's text.
    let name: String = name.chars().take(128).collect();
    Ec2Error::new(Code::UnknownParameter, format!("The parameter {name} is not recognized"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(p: &str) -> Refusal {
        Refusal { pattern: p.into(), reason: "r".into(), unless: vec![], at: At { file: "t".into(), line: 0 } }
    }

    #[test]
    fn patterns_cover_the_member_and_below() {
        let r = refusal("BlockDeviceMapping.N.Ebs.Iops");
        assert!(r.covers("BlockDeviceMapping.1.Ebs.Iops"));
        assert!(r.covers("BlockDeviceMapping.12.Ebs.Iops"));
        assert!(!r.covers("BlockDeviceMapping.x.Ebs.Iops"));
        assert!(!r.covers("BlockDeviceMapping.1.Ebs.VolumeSize"));
        assert!(!r.covers("BlockDeviceMapping.1.Ebs"));
        assert!(refusal("MetadataOptions").covers("MetadataOptions.HttpTokens"));
        assert!(refusal("MetadataOptions").covers("MetadataOptions"));
        assert!(!refusal("MetadataOptions").covers("MetadataOptionsX"));
        assert_eq!(r.member(), "BlockDeviceMapping");
    }
}
