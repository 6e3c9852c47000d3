//! The one normalized request that both front ends (Query, SOAP) produce and the executor reads.

use std::collections::BTreeMap;

use crate::base::Ec2Error;

/// Which front end a request came through; decides how the answer is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    Query,
    Soap,
}

#[derive(Debug, Clone)]
pub struct Ec2Request {
    pub request_id: String,
    pub action: String,
    /// API version (`YYYY-MM-DD`); the answer's namespace echoes it.
    pub version: String,
    /// Action parameters in EC2 Query form (`InstanceId.1`, `Filter.1.Name`, ...), without the
    /// authentication parameters.
    pub params: Params,
    pub frontend: Frontend,
    /// `host[:port]` the client addressed (its `Host` header, or the gateway's configured public
    /// endpoint), set by the server. DescribeRegions reports it as this region's endpoint, since
    /// boto 2 builds its connections from `regionEndpoint`. `None`: the configured endpoint.
    pub host: Option<String>,
}

/// Flat EC2 Query parameters, decoded. Names are case-sensitive as on EC2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub BTreeMap<String, String>);

/// One `Filter.N` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, k: impl Into<String>, v: impl Into<String>) {
        self.0.insert(k.into(), v.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str, Ec2Error> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Ec2Error::missing_parameter(name)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, Ec2Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(Ec2Error::invalid_value(name, v, "Expected true or false.")),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, Ec2Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| Ec2Error::invalid_value(name, v, "Expected an integer.")),
        }
    }

    pub fn dry_run(&self) -> Result<bool, Ec2Error> {
        Ok(self.bool("DryRun")?.unwrap_or(false))
    }

    /// Values of `prefix.1`, `prefix.2`, ... ordered by index (EC2 list flattening). A bare
    /// `prefix` counts as one more value, first: EC2 accepts it and libcloud sends it
    /// (`get_key_pair` asks `DescribeKeyPairs` with `KeyName=name`).
    pub fn list(&self, prefix: &str) -> Vec<&str> {
        let mut items: Vec<(u32, &str)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let Some(n) = k.strip_prefix(prefix)?.strip_prefix('.') else {
                    return (k == prefix).then_some((0, v.as_str()));
                };
                Some((n.parse().ok()?, v.as_str()))
            })
            .collect();
        items.sort_by_key(|(n, _)| *n);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// Structured list members: for `prefix.N.rest=value`, one `Params` per N (ordered) holding
    /// `rest=value`. E.g. `Filter.1.Name`, `Filter.1.Value.1` -> [{Name, Value.1}].
    pub fn members(&self, prefix: &str) -> Vec<Params> {
        let mut groups: BTreeMap<u32, Params> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else { continue };
            let Some((n, sub)) = rest.split_once('.') else { continue };
            let Ok(n) = n.parse::<u32>() else { continue };
            groups.entry(n).or_default().insert(sub, v.clone());
        }
        groups.into_values().collect()
    }

    /// The parameters below a structure `prefix.` (`TunnelOptions.PreSharedKey` -> `PreSharedKey`).
    pub fn under(&self, prefix: &str) -> Params {
        let head = format!("{prefix}.");
        Params(self.0.iter().filter_map(|(k, v)| Some((k.strip_prefix(&head)?.to_string(), v.clone()))).collect())
    }

    /// Is any parameter `prefix` or under it (`prefix.…`)? (structures and lists refused whole)
    pub fn has_under(&self, prefix: &str) -> bool {
        self.0.keys().any(|k| k.strip_prefix(prefix).is_some_and(|r| r.is_empty() || r.starts_with('.')))
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`.
    pub fn filters(&self) -> Result<Vec<Filter>, Ec2Error> {
        self.members("Filter")
            .into_iter()
            .map(|m| {
                let name = m.get("Name").ok_or_else(|| Ec2Error::missing_parameter("Filter.N.Name"))?.to_string();
                let values = m.list("Value").into_iter().map(str::to_string).collect();
                Ok(Filter { name, values })
            })
            .collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Params(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_members_and_filters() {
        let p: Params = [
            ("InstanceId.2", "i-2"),
            ("InstanceId.10", "i-10"),
            ("InstanceId.1", "i-1"),
            ("Filter.1.Name", "instance-state-name"),
            ("Filter.1.Value.1", "running"),
            ("Filter.1.Value.2", "stopped"),
            ("Filter.2.Name", "tag:Name"),
            ("Filter.2.Value.1", "web"),
            ("DryRun", "true"),
        ]
        .into_iter()
        .collect();
        assert_eq!(p.list("InstanceId"), vec!["i-1", "i-2", "i-10"]);
        // A bare name is one value, first (libcloud's get_key_pair); other names are not the list.
        let q: Params =
            [("KeyName.2", "k2"), ("KeyName", "k"), ("KeyNames", "x"), ("KeyName.x", "y")].into_iter().collect();
        assert_eq!(q.list("KeyName"), vec!["k", "k2"]);
        let f = p.filters().unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].values, vec!["running", "stopped"]);
        assert_eq!(f[1].name, "tag:Name");
        assert!(p.dry_run().unwrap());
        assert_eq!(p.require("ImageId").unwrap_err().code, "MissingParameter");
    }
}
