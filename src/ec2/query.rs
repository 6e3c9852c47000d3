//! The Query front end: from an HTTP request (any path; GET query string or POST form body, or
//! both) to the decoded parameter lists the verifiers read and the `Ec2Request` the executor runs.

use http::HeaderMap;

use super::{Ec2Request, Frontend, Params};
use crate::base::Ec2Error;

/// Parameters that belong to authentication, not to the action (never passed to the executor).
pub const AUTH_PARAMS: &[&str] = &[
    "AWSAccessKeyId",
    "SignatureVersion",
    "SignatureMethod",
    "Signature",
    "Timestamp",
    "Expires",
    "SecurityToken",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// The decoded parameters of one Query request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryInput {
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
}

impl QueryInput {
    /// Decode the URL query and, for form bodies, the body.
    pub fn parse(uri_query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<Self, Ec2Error> {
        let query = decode_pairs(uri_query.unwrap_or("").as_bytes())?;
        let form = if is_form(headers) { decode_pairs(body)? } else { Vec::new() };
        Ok(QueryInput { query, form })
    }

    /// First value of `name`, query before body.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.query.iter().chain(self.form.iter()).find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The normalized request: Action, Version, and the other parameters without the
    /// authentication ones. The first occurrence of a repeated name wins.
    pub fn to_request(&self, request_id: String) -> Result<Ec2Request, Ec2Error> {
        let action = match self.get("Action") {
            Some(a) if !a.is_empty() => a,
            _ => return Err(Ec2Error::missing_action()),
        };
        // The action names the response's root element: only plain names are actions.
        if !action.bytes().all(|b| b.is_ascii_alphanumeric()) || action.len() > 128 {
            return Err(Ec2Error::invalid_action(&action.chars().take(128).collect::<String>()));
        }
        let version = match self.get("Version") {
            Some(v) if !v.is_empty() => v,
            _ => return Err(Ec2Error::missing_parameter("Version")),
        };
        if !is_version(version) {
            return Err(Ec2Error::invalid_value("Version", version, "Expected an API version such as 2016-11-15."));
        }
        let mut params = Params::new();
        for (k, v) in self.query.iter().chain(self.form.iter()) {
            if k == "Action" || k == "Version" || AUTH_PARAMS.contains(&k.as_str()) {
                continue;
            }
            params.0.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Ok(Ec2Request {
            request_id,
            action: action.to_string(),
            version: version.to_string(),
            params,
            frontend: Frontend::Query,
            host: None,
        })
    }
}

/// The `host[:port]` the client addressed: the `Host` header (HTTP/1.1), else the request URI's
/// authority (HTTP/2). `None` when absent or not a plain host name / IP literal with an optional
/// port, so nothing odd is echoed into answers.
pub fn client_host(headers: &HeaderMap, uri: &http::Uri) -> Option<String> {
    let h = match headers.get(http::header::HOST) {
        Some(v) => v.to_str().ok()?,
        None => uri.authority()?.as_str(),
    };
    valid_host(h).then(|| h.to_string())
}

pub use crate::base::util::valid_host;

/// `YYYY-MM-DD`: it goes into the response namespace, so nothing else is let through.
fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

/// `application/x-www-form-urlencoded`, with or without parameters such as `charset`. A POST
/// without any Content-Type is read as a form too (curl-style clients).
pub fn is_form(headers: &HeaderMap) -> bool {
    match headers.get(http::header::CONTENT_TYPE) {
        None => true,
        Some(ct) => {
            let ct = ct.to_str().unwrap_or("");
            let mime = ct.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }
    }
}

/// A SOAP request: XML content type or a `SOAPAction` header (docs/ec2-wire.md "Choosing the
/// authentication scheme" step 4).
pub fn is_soap(headers: &HeaderMap) -> bool {
    if headers.contains_key("soapaction") {
        return true;
    }
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("text/xml") || mime.eq_ignore_ascii_case("application/soap+xml")
}

/// Decode `a=1&b=x+y&c=%C3%BC`: `+` is a space, `%XX` a byte, the result must be UTF-8. Empty
/// segments are skipped; a name without `=` has an empty value.
pub fn decode_pairs(raw: &[u8]) -> Result<Vec<(String, String)>, Ec2Error> {
    let mut out = Vec::new();
    for seg in raw.split(|b| *b == b'&') {
        if seg.is_empty() {
            continue;
        }
        let (k, v) = match seg.iter().position(|b| *b == b'=') {
            Some(i) => (&seg[..i], &seg[i + 1..]),
            None => (seg, &b""[..]),
        };
        let k = decode_component(k)?;
        if k.is_empty() {
            continue;
        }
        out.push((k, decode_component(v)?));
    }
    Ok(out)
}

fn decode_component(s: &[u8]) -> Result<String, Ec2Error> {
    let plus: Vec<u8> = s.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
    String::from_utf8(bytes)
        .map_err(|_| Ec2Error::malformed_query_string("The query string is not valid UTF-8 after decoding."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(ct: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert("content-type", ct.parse().unwrap());
        }
        h
    }

    #[test]
    fn decodes_plus_and_percent() {
        let p = decode_pairs(b"a=x+y&b=x%20y%2Bz&c=%C3%BC&d&e=&&f=a=b").unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("a"), Some("x y"));
        assert_eq!(get("b"), Some("x y+z"));
        assert_eq!(get("c"), Some("ü"));
        assert_eq!(get("d"), Some(""));
        assert_eq!(get("e"), Some(""));
        assert_eq!(get("f"), Some("a=b"));
        assert_eq!(decode_pairs(b"a=%FF").unwrap_err().code, "MalformedQueryString");
        assert_eq!(decode_pairs(b"a=%FF").unwrap_err().status(), 404);
        // A lone % is taken literally (as browsers and most servers do).
        assert_eq!(decode_pairs(b"a=100%").unwrap()[0].1, "100%");
    }

    #[test]
    fn client_host_from_header_or_authority() {
        let uri: http::Uri = "/".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(client_host(&h, &uri), None);
        h.insert("host", "gw.example:8788".parse().unwrap());
        assert_eq!(client_host(&h, &uri).as_deref(), Some("gw.example:8788"));
        let h2 = HeaderMap::new();
        let abs: http::Uri = "http://10.0.0.5:7080/".parse().unwrap();
        assert_eq!(client_host(&h2, &abs).as_deref(), Some("10.0.0.5:7080"));
        for ok in ["localhost", "127.0.0.1:7080", "[::1]:7080", "[fe80::1]", "ec2.us-east-1.amazonaws.com", "a_b.c"] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in ["", ":80", "h:", "h:123456", "h:8a", "a b", "<x>", "h/p", "::1", "[::1", "[zz]:1", "u@h"] {
            assert!(!valid_host(bad), "{bad}");
        }
        assert!(!valid_host(&"a".repeat(256)));
        h.insert("host", "evil<x>".parse().unwrap());
        assert_eq!(client_host(&h, &uri), None);
    }

    #[test]
    fn form_detection() {
        assert!(is_form(&hm(Some("application/x-www-form-urlencoded; charset=utf-8"))));
        assert!(is_form(&hm(Some("Application/X-WWW-Form-Urlencoded"))));
        assert!(is_form(&hm(None)));
        assert!(!is_form(&hm(Some("application/json"))));
        assert!(is_soap(&hm(Some("text/xml; charset=utf-8"))));
        let mut h = hm(None);
        h.insert("soapaction", "\"DescribeInstances\"".parse().unwrap());
        assert!(is_soap(&h));
        assert!(!is_soap(&hm(Some("application/x-www-form-urlencoded"))));
    }

    #[test]
    fn merges_query_and_body_without_auth_params() {
        let q = QueryInput::parse(
            Some("Action=DescribeInstances&AWSAccessKeyId=AK&Signature=abc%3D"),
            &hm(Some("application/x-www-form-urlencoded; charset=UTF-8")),
            b"Version=2016-11-15&InstanceId.1=i-1&Filter.1.Name=tag%3AName&Filter.1.Value.1=a+b&X-Amz-Date=x",
        )
        .unwrap();
        let r = q.to_request("rid".into()).unwrap();
        assert_eq!(r.action, "DescribeInstances");
        assert_eq!(r.version, "2016-11-15");
        assert_eq!(r.frontend, Frontend::Query);
        assert_eq!(r.params.list("InstanceId"), vec!["i-1"]);
        assert_eq!(r.params.filters().unwrap()[0].values, vec!["a b"]);
        assert_eq!(r.params.0.len(), 3, "{:?}", r.params);
        // A JSON body is not read as parameters.
        let q = QueryInput::parse(Some("Action=X"), &hm(Some("application/json")), b"Version=2016-11-15").unwrap();
        assert_eq!(q.to_request("r".into()).unwrap_err().code, "MissingParameter");
    }

    #[test]
    fn action_and_version_checks() {
        let req = |s: &str| QueryInput::parse(Some(s), &HeaderMap::new(), b"").unwrap().to_request("r".into());
        assert_eq!(req("Version=2016-11-15").unwrap_err().code, "MissingAction");
        assert_eq!(req("Action=&Version=2016-11-15").unwrap_err().code, "MissingAction");
        assert_eq!(req("Action=Describe%3CX%3E&Version=2016-11-15").unwrap_err().code, "InvalidAction");
        assert_eq!(req("Action=DescribeRegions&Version=2016-11-15%22%3E").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(req("Action=DescribeRegions").unwrap_err().code, "MissingParameter");
        assert_eq!(req("Action=DescribeRegions&Version=2012-08-15").unwrap().version, "2012-08-15");
    }
}
