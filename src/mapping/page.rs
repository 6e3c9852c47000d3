//! MaxResults / NextToken. The token carries the offset and a fingerprint of the request it
//! belongs to, so a token used with other filters (or by another caller) is refused.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::table::PageSpec;
use crate::base::{Code, Ec2Error};
use crate::ec2::Params;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: Option<usize>,
}

/// Fingerprint of everything that decides the listing: action, caller, parameters other than the
/// paging ones.
pub fn fingerprint(action: &str, caller: &str, params: &Params) -> String {
    let mut h = Sha256::new();
    h.update(action.as_bytes());
    h.update([0]);
    h.update(caller.as_bytes());
    for (k, v) in &params.0 {
        if k == "MaxResults" || k == "NextToken" || k == "DryRun" {
            continue;
        }
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

pub fn token(offset: usize, fp: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{offset}:{fp}"))
}

fn bad_token(t: &str) -> Ec2Error {
    Ec2Error::new(
        Code::InvalidParameterValue,
        format!("Value ({t}) for parameter NextToken is invalid. The token is not valid for this request."),
    )
}

/// Read MaxResults/NextToken. `ids_wire` is the id list's wire name when ids were given (they
/// cannot be combined with paging); `spec` None = the action is not paginated.
pub fn read(params: &Params, spec: Option<&PageSpec>, ids_wire: Option<&str>, fp: &str) -> Result<Page, Ec2Error> {
    let max = params.int("MaxResults")?;
    let next = params.get("NextToken").filter(|t| !t.is_empty());
    if max.is_none() && next.is_none() {
        return Ok(Page { offset: 0, limit: None });
    }
    let Some(spec) = spec else {
        // Not paginated on EC2: the parameters are unknown there.
        let name = if max.is_some() { "MaxResults" } else { "NextToken" };
        return Err(Ec2Error::new(Code::UnknownParameter, format!("The parameter {name} is not recognized")));
    };
    if let Some(wire) = ids_wire {
        let what = if max.is_some() { "maxResults" } else { "nextToken" };
        return Err(Ec2Error::combination(format!("The parameter {wire} cannot be used with the parameter {what}")));
    }
    // Below the minimum is an error; above the maximum EC2 answers at most the maximum (the
    // AWS CLI sends 1000 on every paginated call, DescribeVolumes allows 500).
    let limit = match max {
        None => None,
        Some(m) if m < spec.min => {
            return Err(Ec2Error::invalid_value(
                "MaxResults",
                &m.to_string(),
                &format!("Value must be between {} and {}.", spec.min, spec.max),
            ));
        }
        Some(m) => Some(m.min(spec.max) as usize),
    };
    let offset = match next {
        None => 0,
        Some(t) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t).map_err(|_| bad_token(t))?;
            let s = String::from_utf8(raw).map_err(|_| bad_token(t))?;
            let (o, f) = s.split_once(':').ok_or_else(|| bad_token(t))?;
            if f != fp {
                return Err(bad_token(t));
            }
            o.parse().map_err(|_| bad_token(t))?
        }
    };
    Ok(Page { offset, limit })
}

/// Cut one page out of `items`; the token for the next page when there is one.
pub fn apply<T>(items: Vec<T>, page: &Page, fp: &str) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let start = page.offset.min(total);
    let end = match page.limit {
        Some(l) => (start + l).min(total),
        None => total,
    };
    let next = (end < total).then(|| token(end, fp));
    (items.into_iter().skip(start).take(end - start).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Params {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn paging_rules() {
        let spec = PageSpec { min: 5, max: 1000 };
        let fp = fingerprint("DescribeInstances", "k", &p(&[]));
        assert_eq!(read(&p(&[]), Some(&spec), None, &fp).unwrap(), Page { offset: 0, limit: None });
        assert_eq!(read(&p(&[("MaxResults", "4")]), Some(&spec), None, &fp).unwrap_err().code, "InvalidParameterValue");
        // Above the maximum: clamped, as EC2 does (DescribeVolumes allows 500, the CLI sends 1000).
        let small = PageSpec { min: 5, max: 500 };
        assert_eq!(read(&p(&[("MaxResults", "1000")]), Some(&small), None, &fp).unwrap().limit, Some(500));
        let e = read(&p(&[("MaxResults", "5")]), Some(&spec), Some("instancesSet"), &fp).unwrap_err();
        assert_eq!(e.code, "InvalidParameterCombination");
        assert_eq!(e.message, "The parameter instancesSet cannot be used with the parameter maxResults");
        let pg = read(&p(&[("MaxResults", "5")]), Some(&spec), None, &fp).unwrap();
        let (items, next) = apply((0..12).collect::<Vec<_>>(), &pg, &fp);
        assert_eq!(items, vec![0, 1, 2, 3, 4]);
        let next = next.unwrap();
        let pg = read(&p(&[("MaxResults", "5"), ("NextToken", &next)]), Some(&spec), None, &fp).unwrap();
        let (items, next) = apply((0..12).collect::<Vec<_>>(), &pg, &fp);
        assert_eq!(items, vec![5, 6, 7, 8, 9]);
        let pg = read(&p(&[("NextToken", &next.unwrap())]), Some(&spec), None, &fp).unwrap();
        let (items, next) = apply((0..12).collect::<Vec<_>>(), &pg, &fp);
        assert_eq!(items, vec![10, 11]);
        assert!(next.is_none());
        // A token from another request is refused.
        let other = fingerprint("DescribeInstances", "k", &p(&[("Filter.1.Name", "x")]));
        assert_eq!(
            read(&p(&[("NextToken", &token(5, &other))]), Some(&spec), None, &fp).unwrap_err().code,
            "InvalidParameterValue"
        );
        assert!(read(&p(&[("NextToken", "garbage!")]), Some(&spec), None, &fp).is_err());
        assert_eq!(read(&p(&[("MaxResults", "5")]), None, None, &fp).unwrap_err().code, "UnknownParameter");
    }
}
