//! Request parameters as the CloudStack servlet sees them: query string and form body merged,
//! percent-decoded as UTF-8 with `+` -> space, one value per name (the last one wins), names
//! case-sensitive. Typed getters produce CloudStack's parameter errors (docs/cloudstack-wire.md "Errors").

use std::collections::{BTreeMap, HashMap};

use percent_encoding::percent_decode_str;

use super::error::{SimError, SimResult};

/// Decode one `application/x-www-form-urlencoded` component (`+` is a space).
pub fn decode_component(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// Split `a=b&c=d` into decoded pairs, in order. Empty segments are skipped.
pub fn parse_pairs(raw: &str, out: &mut Vec<(String, String)>) {
    for seg in raw.split('&') {
        if seg.is_empty() {
            continue;
        }
        let (k, v) = seg.split_once('=').unwrap_or((seg, ""));
        let k = decode_component(k);
        if k.is_empty() {
            continue;
        }
        out.push((k, decode_component(v)));
    }
}

/// Keep one value per name, the last one sent (the servlet's `utf8Fixup` overwrites).
pub fn dedupe(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        map.insert(k, v);
    }
    map
}

/// The parameters of one command, with the command's lowercase name for error texts.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub map: HashMap<String, String>,
    /// `deployvirtualmachine` (the response name without `response`).
    pub cmd: String,
}

/// CloudStack's `BaseCmd.unpackParams`: a parameter name is lowercased before it is matched
/// (for map parameters `name[i].field` only the part before `[`), and a name with two `[` is
/// malformed (430). docs/cloudstack-wire.md "Transport" calls names case-sensitive; clients such as libcloud
/// send `virtualMachineId`/`diskOfferingId` and work against real servers, so the server's
/// lowercasing is what the simulator does.
pub fn normalize_names(map: HashMap<String, String>) -> Result<HashMap<String, String>, SimError> {
    let mut out = HashMap::with_capacity(map.len());
    for (k, v) in map {
        let name = match (k.find('['), k.rfind('[')) {
            (Some(a), Some(b)) if a != b => {
                return Err(SimError::new(
                    430,
                    Some(super::error::cs::SERVER_API),
                    format!(
                        "Unable to decode parameter {k}; if specifying an object array, please use parameter[index].field=XXX, e.g. userGroupList[0].group=httpGroup"
                    ),
                ));
            }
            (Some(a), _) => format!("{}{}", k[..a].to_lowercase(), &k[a..]),
            _ => k.to_lowercase(),
        };
        out.insert(name, v);
    }
    Ok(out)
}

impl Params {
    pub fn new(map: HashMap<String, String>, cmd: &str) -> Self {
        Params { map, cmd: cmd.to_ascii_lowercase() }
    }

    /// A non-empty value, or None (CloudStack treats empty as absent).
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(|s| s.as_str()).filter(|s| !s.is_empty())
    }

    pub fn req(&self, name: &str) -> SimResult<&str> {
        self.opt(name).ok_or_else(|| SimError::missing(&self.cmd, name))
    }

    pub fn has(&self, name: &str) -> bool {
        self.opt(name).is_some()
    }

    /// Java `Boolean.parseBoolean`: only "true" (any case) is true; absent -> default.
    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        match self.opt(name) {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => default,
        }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.bool_or(name, false)
    }

    /// Optional boolean that distinguishes absent from false.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.opt(name).map(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn int(&self, name: &str) -> SimResult<Option<i64>> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| SimError::bad_value(&self.cmd, name, v)),
        }
    }

    /// A comma-separated list (empty items dropped).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.opt(name)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    /// A map parameter `name[i].field=value`, in index order: one map of fields per index.
    pub fn indexed(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        let prefix = format!("{name}[");
        let mut by_index: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in &self.map {
            let Some(rest) = k.strip_prefix(&prefix) else { continue };
            let Some((idx, field)) = rest.split_once("].") else { continue };
            let Ok(idx) = idx.parse::<u64>() else { continue };
            by_index.entry(idx).or_default().insert(field.to_string(), v.clone());
        }
        by_index.into_values().collect()
    }

    /// `tags[i].key` / `tags[i].value` pairs (value may be absent).
    pub fn tags(&self) -> Vec<(String, Option<String>)> {
        self.indexed("tags")
            .into_iter()
            .filter_map(|m| {
                let key = m.get("key")?.clone();
                Some((key, m.get("value").cloned()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_last_wins() {
        let mut v = Vec::new();
        parse_pairs("a=1&b=x+y%2Bz&a=2&&=q&tags%5B0%5D.key=Name", &mut v);
        let m = dedupe(v);
        assert_eq!(m["a"], "2");
        assert_eq!(m["b"], "x y+z");
        assert_eq!(m["tags[0].key"], "Name");
        assert!(!m.contains_key(""));
    }

    #[test]
    fn names_are_lowercased_like_unpack_params() {
        let m: HashMap<String, String> = [("virtualMachineId", "a"), ("Tags[0].key", "k"), ("tags[1].Value", "v")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let n = normalize_names(m).unwrap();
        assert_eq!(n["virtualmachineid"], "a");
        assert_eq!(n["tags[0].key"], "k");
        assert_eq!(n["tags[1].Value"], "v");
        let bad: HashMap<String, String> = [("a[0][1]".to_string(), "x".to_string())].into_iter().collect();
        assert_eq!(normalize_names(bad).unwrap_err().code, 430);
    }

    #[test]
    fn typed_getters() {
        let mut map = HashMap::new();
        map.insert("n".to_string(), "12".to_string());
        map.insert("bad".to_string(), "x1".to_string());
        map.insert("b".to_string(), "TRUE".to_string());
        map.insert("e".to_string(), "".to_string());
        map.insert("tags[1].key".to_string(), "k1".to_string());
        map.insert("tags[0].key".to_string(), "k0".to_string());
        map.insert("tags[0].value".to_string(), "v0".to_string());
        let p = Params::new(map, "listVirtualMachines");
        assert_eq!(p.int("n").unwrap(), Some(12));
        let e = p.int("bad").unwrap_err();
        assert_eq!(
            e.text,
            "Unable to execute API command listvirtualmachines due to invalid value x1 for parameter bad"
        );
        assert!(p.flag("b"));
        assert_eq!(p.opt("e"), None);
        assert_eq!(p.req("e").unwrap_err().code, 431);
        assert_eq!(p.tags(), vec![("k0".into(), Some("v0".into())), ("k1".into(), None)]);
    }
}
