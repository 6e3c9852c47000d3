//! EC2 filters as data: filter name -> expression over the CloudStack item. Values of one filter
//! are OR-ed, filters are AND-ed, `*` and `?` are wildcards (`\` escapes them). With a `tags`
//! path, `tag:<key>`, `tag-key` and `tag-value` work too. A set also names the filters EC2
//! documents that match no resource behind this gateway (`absent`, with why: the feature does
//! not exist here, so EC2's answer for such resources is "none") and those it refuses (`refused`,
//! with why: EC2 has a value the gateway cannot know), so that every documented name is decided.

use serde_json::Value;

use super::convert::{self, Env};
use super::expr::{Expr, Path, scalar_text};
use super::toml_src::At;
use crate::base::{Code, Ec2Error};
use crate::ec2::request::Filter;

#[derive(Debug, Clone)]
pub struct FilterSet {
    pub name: String,
    /// CloudStack object the expressions read (for load-time path checks).
    pub source: Option<String>,
    /// Path of the item's tag list (`[{key, value}]`); enables the tag filters.
    pub tags: Option<Path>,
    pub fields: Vec<(String, Expr, At)>,
    /// Documented filters no resource here has a value for: accepted, they match nothing.
    pub absent: Vec<(String, String, At)>,
    /// Documented filters the gateway cannot answer faithfully: refused by name with the reason.
    pub refused: Vec<(String, String, At)>,
    pub at: At,
}

impl FilterSet {
    /// True when the filter is accepted (implemented from data or matching nothing).
    pub fn knows(&self, name: &str) -> bool {
        self.fields.iter().any(|(n, _, _)| n == name)
            || self.absent.iter().any(|(n, _, _)| n == name)
            || (self.tags.is_some() && (name == "tag-key" || name == "tag-value" || name.starts_with("tag:")))
    }

    /// The reason a documented filter is refused, when it is.
    pub fn refusal(&self, name: &str) -> Option<&str> {
        self.refused.iter().find(|(n, _, _)| n == name).map(|(_, r, _)| r.as_str())
    }

    /// Reject unknown names and empty value lists before anything is called.
    pub fn check(&self, filters: &[Filter]) -> Result<(), Ec2Error> {
        for f in filters {
            // EC2 answers a filter it does not support with InvalidParameterValue naming it
            // ("Unsupported filter attribute: [x]"); the reason says why it is not supported here.
            if let Some(why) = self.refusal(&f.name) {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("The filter '{}' is not supported by this EC2 endpoint: {why}", f.name),
                ));
            }
            if !self.knows(&f.name) {
                return Err(Ec2Error::new(Code::InvalidParameterValue, format!("The filter '{}' is invalid", f.name)));
            }
            if f.values.is_empty() {
                return Err(Ec2Error::new(
                    Code::InvalidParameterValue,
                    format!("The filter '{}' must have at least one value", f.name),
                ));
            }
        }
        Ok(())
    }

    /// True when `item` passes every filter.
    pub fn matches(&self, item: &Value, filters: &[Filter], env: &Env<'_>) -> bool {
        filters.iter().all(|f| self.matches_one(item, f, env))
    }

    fn matches_one(&self, item: &Value, f: &Filter, env: &Env<'_>) -> bool {
        let any = |texts: &[String]| texts.iter().any(|t| f.values.iter().any(|p| wildcard(p, t)));
        if let Some(tags) = &self.tags {
            let tag_list = || -> Vec<(String, String)> {
                tags.eval(item)
                    .into_iter()
                    .flat_map(|v| match v.as_array() {
                        Some(a) => a.iter().collect::<Vec<_>>(),
                        None => vec![v],
                    })
                    .filter_map(|t| {
                        Some((scalar_text(t.get("key")?), t.get("value").map(scalar_text).unwrap_or_default()))
                    })
                    .collect()
            };
            if let Some(key) = f.name.strip_prefix("tag:") {
                let vals: Vec<String> = tag_list().into_iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect();
                return any(&vals);
            }
            if f.name == "tag-key" {
                return any(&tag_list().into_iter().map(|(k, _)| k).collect::<Vec<_>>());
            }
            if f.name == "tag-value" {
                return any(&tag_list().into_iter().map(|(_, v)| v).collect::<Vec<_>>());
            }
        }
        let Some((_, e, _)) = self.fields.iter().find(|(n, _, _)| *n == f.name) else { return false };
        let texts: Vec<String> = convert::eval(e, item, env).iter().map(scalar_text).collect();
        any(&texts)
    }
}

/// EC2 filter matching: `*` any run, `?` one character, `\*` `\?` `\\` literal. Case-sensitive.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Lit(char),
        One,
        Any,
    }
    let mut pat = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        pat.push(match c {
            '\\' => P::Lit(it.next().unwrap_or('\\')),
            '*' => P::Any,
            '?' => P::One,
            c => P::Lit(c),
        });
    }
    let t: Vec<char> = text.chars().collect();
    // Greedy match with backtracking to the last '*' (linear for practical patterns).
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match pat.get(pi) {
            Some(P::Any) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(P::One) => {
                pi += 1;
                ti += 1;
            }
            Some(P::Lit(c)) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[pi..].iter().all(|p| *p == P::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("web*", "web-1"));
        assert!(wildcard("*", ""));
        assert!(wildcard("w?b", "web"));
        assert!(!wildcard("w?b", "wb"));
        assert!(wildcard("*-1", "web-1"));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("a*b*c", "axxbyy"));
        assert!(wildcard("a\\*", "a*"));
        assert!(!wildcard("a\\*", "ab"));
        assert!(!wildcard("Web", "web"));
        assert!(wildcard("ü?", "üx"));
        assert!(wildcard("running", "running"));
        assert!(!wildcard("running", "running2"));
    }
}
