//! List answers (docs/cloudstack-wire.md "Response envelopes", "Paging and list parameters"):
//! `count` is the total, `{}` when nothing matches,
//! `{"count":N}` for a page past the end; `page`/`pagesize` must come together, `pagesize=-1` is
//! unlimited (without `page`), and the default and maximum page size is `default.page.size`.

use serde_json::{Map, Value, json};

use super::error::{SimError, SimResult};
use super::params::Params;
use super::render::JsonWriter;

/// CloudStack's `default.page.size` (CSPY's constant).
pub const DEFAULT_PAGE_SIZE: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub start: usize,
    /// `usize::MAX` = unlimited.
    pub size: usize,
}

pub fn paging(p: &Params) -> SimResult<Paging> {
    paging_with_max(p, DEFAULT_PAGE_SIZE)
}

pub fn paging_with_max(p: &Params, max: usize) -> SimResult<Paging> {
    let page = p.int("page")?;
    let pagesize = p.int("pagesize")?;
    match (page, pagesize) {
        (None, None) => Ok(Paging { start: 0, size: max }),
        (None, Some(-1)) => Ok(Paging { start: 0, size: usize::MAX }),
        (Some(_), Some(-1)) => Err(SimError::invalid("Can't specify page parameter when pagesize is -1 (Unlimited)")),
        (None, Some(_)) => Err(SimError::param("\"page\" parameter is required when \"pagesize\" is specified")),
        (Some(_), None) => Err(SimError::param("\"pagesize\" parameter is required when \"page\" is specified")),
        (Some(page), Some(size)) => {
            if size > max as i64 {
                return Err(SimError::invalid(format!("Page size can't exceed max allowed page size value: {max}")));
            }
            if size < 1 {
                return Err(SimError::bad_value(&p.cmd, "pagesize", &size.to_string()));
            }
            if page < 1 {
                return Err(SimError::bad_value(&p.cmd, "page", &page.to_string()));
            }
            let start = (size as usize).saturating_mul(page as usize - 1);
            Ok(Paging { start, size: size as usize })
        }
    }
}

/// Build the list body: the total in `count`, one page of rendered items under `key`.
pub fn respond<T>(paging: Paging, key: &str, items: Vec<T>, render: impl FnMut(T) -> Value) -> Value {
    let total = items.len();
    if total == 0 {
        return json!({});
    }
    let page: Vec<Value> = items.into_iter().skip(paging.start).take(paging.size).map(render).collect();
    let mut m = Map::new();
    m.insert("count".into(), json!(total));
    if !page.is_empty() {
        m.insert(key.into(), Value::Array(page));
    }
    Value::Object(m)
}

/// Like [`respond`], writing straight into a string (the 10,000-VM path): the body inside the
/// envelope, already serialized.
pub fn respond_raw<T>(paging: Paging, key: &str, items: Vec<T>, mut write: impl FnMut(&mut JsonWriter, T)) -> String {
    let total = items.len();
    if total == 0 {
        return "{}".to_string();
    }
    let mut w = JsonWriter::new();
    w.begin_obj();
    w.num("count", total as i64);
    let mut page = items.into_iter().skip(paging.start).take(paging.size).peekable();
    if page.peek().is_some() {
        w.begin_arr_at(key);
        for item in page {
            write(&mut w, item);
        }
        w.end_arr();
    }
    w.end_obj();
    w.out
}

/// Validate paging then answer; the usual list-command tail.
pub fn list<T>(p: &Params, key: &str, items: Vec<T>, render: impl FnMut(T) -> Value) -> SimResult<Value> {
    let pg = paging(p)?;
    Ok(respond(pg, key, items, render))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn p(kv: &[(&str, &str)]) -> Params {
        Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(), "listZones")
    }

    #[test]
    fn paging_rules() {
        assert_eq!(paging(&p(&[])).unwrap(), Paging { start: 0, size: 500 });
        assert_eq!(paging(&p(&[("page", "3"), ("pagesize", "10")])).unwrap(), Paging { start: 20, size: 10 });
        assert_eq!(paging(&p(&[("pagesize", "-1")])).unwrap().size, usize::MAX);
        let e = paging(&p(&[("pagesize", "10")])).unwrap_err();
        assert_eq!(
            (e.code, e.cs, e.text.as_str()),
            (431, Some(9999), "\"page\" parameter is required when \"pagesize\" is specified")
        );
        let e = paging(&p(&[("page", "1")])).unwrap_err();
        assert_eq!(e.text, "\"pagesize\" parameter is required when \"page\" is specified");
        let e = paging(&p(&[("page", "1"), ("pagesize", "501")])).unwrap_err();
        assert_eq!(
            (e.code, e.cs, e.text.as_str()),
            (431, Some(4350), "Page size can't exceed max allowed page size value: 500")
        );
        assert_eq!(paging(&p(&[("page", "0"), ("pagesize", "5")])).unwrap_err().code, 431);
        assert_eq!(paging(&p(&[("page", "x"), ("pagesize", "5")])).unwrap_err().code, 431);
        assert_eq!(paging(&p(&[("page", "1"), ("pagesize", "-1")])).unwrap_err().code, 431);
    }

    #[test]
    fn list_shapes() {
        let pg = Paging { start: 0, size: 2 };
        assert_eq!(respond(pg, "zone", Vec::<i32>::new(), |i| json!(i)), json!({}));
        assert_eq!(respond(pg, "zone", vec![1, 2, 3], |i| json!(i)), json!({"count":3,"zone":[1,2]}));
        let past = Paging { start: 4, size: 2 };
        assert_eq!(respond(past, "zone", vec![1, 2, 3], |i| json!(i)), json!({"count":3}));
        let raw = |pg, items: Vec<i64>| -> Value {
            serde_json::from_str(&respond_raw(pg, "zone", items, |w, i| {
                w.begin_obj();
                w.num("v", i);
                w.end_obj();
            }))
            .unwrap()
        };
        assert_eq!(raw(pg, vec![]), json!({}));
        assert_eq!(raw(pg, vec![1, 2, 3]), json!({"count":3,"zone":[{"v":1},{"v":2}]}));
        assert_eq!(raw(past, vec![1, 2, 3]), json!({"count":3}));
    }
}
