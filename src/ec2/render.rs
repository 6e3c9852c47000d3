//! Response envelopes (docs/ec2-wire.md "Success documents", "Error documents", "SOAP and
//! WS-Security"): the Query success document, the Query error
//! document and the SOAP body/fault. The executor produces the inner XML; this wraps it.

use crate::base::Ec2Error;

pub const CONTENT_TYPE: &str = "text/xml;charset=UTF-8";
pub const REQUEST_ID_HEADER: &str = "x-amzn-RequestId";
const XML_DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const AWS_FAULT_NS: &str = "http://webservices.amazon.com/AWSFault/2005-15-09";

/// `http://ec2.amazonaws.com/doc/<version>/` (with the trailing slash libcloud needs).
pub fn namespace(version: &str) -> String {
    format!("http://ec2.amazonaws.com/doc/{}/", escape(version))
}

/// Escape element text (see `escape_into`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// Append `s` escaped for XML element text the way EC2 writes it: only `&`, `<` and `>` become
/// entities; quotes and apostrophes stay as they are (docs/ec2-wire.md "Success documents": clients
/// that read messages with a regular expression, fog among them, show `&apos;` literally).
/// Characters XML 1.0 cannot carry at all (C0 controls other than tab/newline/CR, U+FFFE,
/// U+FFFF) are dropped rather than breaking the document. The one escaper of the gateway (the
/// mapping renderer uses it too); it is for text only: the gateway writes no attribute value
/// that comes from a client or from CloudStack (the one attribute, the namespace, is built from
/// a checked `YYYY-MM-DD` version).
pub fn escape_into(out: &mut String, s: &str) {
    // Fast path: most values (ids, names, dates) need no change. 0xEF leads U+FFFE/U+FFFF.
    if !s.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | 0xEF) || b < 0x20) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

/// `<ActionResponse xmlns=…><requestId>…</requestId>{inner}</ActionResponse>` without the XML
/// declaration (shared by Query and SOAP).
fn response_element(request_id: &str, action: &str, version: &str, inner: &str) -> String {
    let mut out = String::new();
    push_response_element(&mut out, request_id, action, version, inner);
    out
}

/// `response_element` appended to `out` (large answers are copied once, not per `format!`).
fn push_response_element(out: &mut String, request_id: &str, action: &str, version: &str, inner: &str) {
    out.reserve(inner.len() + 2 * action.len() + request_id.len() + 128);
    out.push('<');
    out.push_str(action);
    out.push_str("Response xmlns=\"");
    out.push_str(&namespace(version));
    out.push_str("\"><requestId>");
    escape_into(out, request_id);
    out.push_str("</requestId>");
    out.push_str(inner);
    out.push_str("</");
    out.push_str(action);
    out.push_str("Response>");
}

/// The Query success document. `action` must be a plain name (the Query front end checks it).
pub fn query_success(request_id: &str, action: &str, version: &str, inner: &str) -> String {
    let mut out = String::with_capacity(XML_DECL.len() + 1);
    out.push_str(XML_DECL);
    out.push('\n');
    push_response_element(&mut out, request_id, action, version, inner);
    out
}

/// The Query error document: no namespace, exactly Code then Message, `RequestID`.
pub fn query_error(request_id: &str, err: &Ec2Error) -> String {
    format!(
        "{XML_DECL}\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        escape(err.code.as_str()),
        escape(&err.message),
        escape(request_id)
    )
}

/// The two AWS services besides EC2 the gateway answers at the same endpoint, for the caller's
/// identity only (docs/accounts.md): STS `GetCallerIdentity` and IAM `GetUser`. Both speak the
/// AWS Query protocol of their service model, which wraps answers differently from EC2's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityApi {
    Sts,
    Iam,
}

impl IdentityApi {
    /// From the SigV4 credential scope's service name.
    pub fn from_service(service: &str) -> Option<Self> {
        match service {
            "sts" => Some(IdentityApi::Sts),
            "iam" => Some(IdentityApi::Iam),
            _ => None,
        }
    }

    /// The service model's `xmlNamespace` (botocore `sts/2011-06-15`, `iam/2010-05-08`).
    pub fn namespace(self) -> &'static str {
        match self {
            IdentityApi::Sts => "https://sts.amazonaws.com/doc/2011-06-15/",
            IdentityApi::Iam => "https://iam.amazonaws.com/doc/2010-05-08/",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            IdentityApi::Sts => "2011-06-15",
            IdentityApi::Iam => "2010-05-08",
        }
    }
}

/// An STS/IAM Query success document: `<ActionResponse xmlns=ns><ActionResult>{inner}
/// </ActionResult><ResponseMetadata><RequestId>..</RequestId></ResponseMetadata></ActionResponse>`
/// (the model's `resultWrapper`; botocore reads the result from inside it).
pub fn identity_success(api: IdentityApi, request_id: &str, action: &str, inner: &str) -> String {
    format!(
        "{XML_DECL}\n<{action}Response xmlns=\"{ns}\"><{action}Result>{inner}</{action}Result>\
         <ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></{action}Response>",
        ns = api.namespace(),
        rid = escape(request_id)
    )
}

/// An STS/IAM Query error document: `<ErrorResponse xmlns=ns><Error><Type>Sender|Receiver</Type>
/// <Code>..</Code><Message>..</Message></Error><RequestId>..</RequestId></ErrorResponse>`.
pub fn identity_error(api: IdentityApi, request_id: &str, err: &Ec2Error) -> String {
    let kind = if err.is_server() { "Receiver" } else { "Sender" };
    format!(
        "{XML_DECL}\n<ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message>\
         </Error><RequestId>{}</RequestId></ErrorResponse>",
        escape(err.code.as_str()),
        escape(&err.message),
        escape(request_id),
        ns = api.namespace(),
    )
}

/// A SOAP 1.1 envelope whose Body holds the same element as the Query answer.
pub fn soap_success(request_id: &str, action: &str, version: &str, inner: &str) -> String {
    format!(
        "{XML_DECL}\n<soap:Envelope xmlns:soap=\"{SOAP_ENV}\"><soap:Body>{}</soap:Body></soap:Envelope>",
        response_element(request_id, action, version, inner)
    )
}

/// A SOAP fault (sent with HTTP 500): `aws:Client.<Code>` or `aws:Server.<Code>`.
pub fn soap_fault(request_id: &str, err: &Ec2Error) -> String {
    let class = if err.is_server() { "Server" } else { "Client" };
    format!(
        "{XML_DECL}\n<soap:Envelope xmlns:soap=\"{SOAP_ENV}\" xmlns:aws=\"{AWS_FAULT_NS}\"><soap:Body><soap:Fault>\
         <faultcode>aws:{class}.{code}</faultcode><faultstring>{msg}</faultstring>\
         <detail><aws:RequestId>{rid}</aws:RequestId></detail></soap:Fault></soap:Body></soap:Envelope>",
        code = escape(err.code.as_str()),
        msg = escape(&err.message),
        rid = escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::Code;

    #[test]
    fn success_envelope() {
        let s = query_success("rid-1", "DescribeRegions", "2016-11-15", "<regionInfo/>");
        assert_eq!(
            s,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>rid-1</requestId><regionInfo/></DescribeRegionsResponse>"
        );
        let doc = roxmltree::Document::parse(&s).unwrap();
        assert_eq!(doc.root_element().tag_name().namespace(), Some("http://ec2.amazonaws.com/doc/2016-11-15/"));
    }

    #[test]
    fn error_document() {
        let e = Ec2Error::new(Code::InvalidInstanceIdNotFound, "The instance ID 'i-1a2b3c4d' does not exist");
        assert_eq!(
            query_error("ea96", &e),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-1a2b3c4d' does not exist</Message></Error></Errors><RequestID>ea96</RequestID></Response>"
        );
        let e = Ec2Error::new(Code::InvalidParameterValue, "Value (<a&b>\u{1}) is invalid");
        let s = query_error("r", &e);
        let doc = roxmltree::Document::parse(&s).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().namespace(), None);
        let err = root.first_element_child().unwrap().first_element_child().unwrap();
        let kids: Vec<_> = err.children().filter(|n| n.is_element()).map(|n| n.tag_name().name()).collect();
        assert_eq!(kids, ["Code", "Message"]);
        assert_eq!(err.last_element_child().unwrap().text(), Some("Value (<a&b>) is invalid"));
        // As EC2: quotes are not escaped in text, only & < > are.
        let e = Ec2Error::new(Code::InvalidParameterValue, r#"Value "x" of 'y' <z> & w"#);
        let s = query_error("r", &e);
        assert!(s.contains(r#"<Message>Value "x" of 'y' &lt;z&gt; &amp; w</Message>"#), "{s}");
        assert!(!s.contains("&apos;") && !s.contains("&quot;"));
        let doc = roxmltree::Document::parse(&s).unwrap();
        assert_eq!(doc.descendants().find(|n| n.has_tag_name("Message")).unwrap().text(), Some(e.message.as_str()));
        let f = soap_fault("r", &e);
        assert!(f.contains(r#"<faultstring>Value "x" of 'y' &lt;z&gt; &amp; w</faultstring>"#), "{f}");
    }

    #[test]
    fn soap_envelopes() {
        let f = soap_fault("r", &Ec2Error::new(Code::UnsupportedOperation, "nope"));
        let doc = roxmltree::Document::parse(&f).unwrap();
        let code = doc.descendants().find(|n| n.has_tag_name("faultcode")).unwrap();
        assert_eq!(code.text(), Some("aws:Client.UnsupportedOperation"));
        assert!(soap_fault("r", &Ec2Error::internal()).contains("aws:Server.InternalError"));
        let s = soap_success("r", "DescribeRegions", "2012-08-15", "<regionInfo/>");
        let doc = roxmltree::Document::parse(&s).unwrap();
        let resp = doc.descendants().find(|n| n.has_tag_name("DescribeRegionsResponse")).unwrap();
        assert_eq!(resp.tag_name().namespace(), Some("http://ec2.amazonaws.com/doc/2012-08-15/"));
    }
}
