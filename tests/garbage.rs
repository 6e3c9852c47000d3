//! Garbage in, clean error out: deterministic pseudo-random and hand-picked hostile inputs for the
//! Query parser, the SigV2/SigV4 verifiers, the SOAP front end and the whole HTTP entry. Every
//! answer must be an EC2 error with the catalog's status, never a panic, and nothing may reach
//! the handler (or, with the real executor, CloudStack).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use ec2bridge::auth::credentials::{BoxFuture, KnownUser, MemorySource};
use ec2bridge::auth::wssec::CertificateLookup;
use ec2bridge::auth::{AuthSettings, Principal, SignedRequest, authenticate, sigv2, sigv4};
use ec2bridge::base::{Code, Ec2Error};
use ec2bridge::ec2::Ec2Request;
use ec2bridge::ec2::query::QueryInput;
use ec2bridge::ec2::soap::SoapFrontend;
use ec2bridge::server::{Ec2Handler, Gateway, router};
use http::{HeaderMap, HeaderValue, Request};
use time::OffsetDateTime;
use tower::ServiceExt;

const AK: &str = "AKIDGARBAGE";
const SK: &str = "garbage/secret+key";

/// xorshift64*: deterministic, so a failure is reproducible from the iteration number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Pieces that hit the parsers' edges: escapes (valid, truncated, invalid UTF-8), separators,
/// every auth parameter, extreme dates and numbers.
const FRAGMENTS: &[&str] = &[
    "&",
    "=",
    "+",
    "%",
    "%2",
    "%FF",
    "%C3",
    "%C3%BC",
    "%00",
    "%zz",
    "%E2%82",
    "Action=",
    "Action=DescribeRegions",
    "Action=Describe%3CX%3E",
    "Version=2016-11-15",
    "Version=9999-99-99",
    "AWSAccessKeyId=AKIDGARBAGE",
    "AWSAccessKeyId=",
    "SignatureVersion=2",
    "SignatureVersion=1",
    "SignatureMethod=HmacSHA256",
    "SignatureMethod=HmacMD5",
    "Signature=abc%3D",
    "Signature=",
    "Timestamp=9999-12-31T23:59:59Z",
    "Timestamp=0000-01-01T00:00:00Z",
    "Timestamp=-9999-01-01T00:00:00Z",
    "Expires=9999-12-31T23:59:59Z",
    "Expires=9999-12-31T23:59:59-23:59",
    "Expires=2016-02-30T25:61:61Z",
    "Timestamp=now",
    "X-Amz-Algorithm=AWS4-HMAC-SHA256",
    "X-Amz-Algorithm=AWS4-HMAC-SHA1",
    "X-Amz-Credential=AKIDGARBAGE%2F20161115%2Fus-east-1%2Fec2%2Faws4_request",
    "X-Amz-Credential=%2F%2F%2F%2F",
    "X-Amz-Credential=AKIDGARBAGE%2F99991231%2Fr%2Fs%2Faws4_request",
    "X-Amz-Date=99991231T235959Z",
    "X-Amz-Date=00000101T000000Z",
    "X-Amz-Date=2016",
    "X-Amz-Date=20161115T120000Z",
    "X-Amz-Expires=604800",
    "X-Amz-Expires=18446744073709551616",
    "X-Amz-Expires=-1",
    "X-Amz-SignedHeaders=host",
    "X-Amz-SignedHeaders=;;;",
    "X-Amz-Signature=00",
    "X-Amz-Security-Token=t",
    "SecurityToken=t",
    "InstanceId.1=i-1",
    "Filter.1.Name=tag%3AName",
    "Filter.99999999999999999999.Value.1=x",
    "\u{0}",
    "é",
    "\u{FFFF}",
];

fn garbage_query(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..r.below(24) {
        match r.below(10) {
            0 => {
                let n = r.below(8);
                out.extend(r.bytes(n))
            }
            1 => out.extend(std::iter::repeat_n(b'A', r.below(3000))),
            _ => out.extend_from_slice(r.pick(FRAGMENTS).as_bytes()),
        }
        if r.below(2) == 0 {
            out.push(b'&');
        }
    }
    out
}

/// Every code a Query request without valid credentials may be refused with.
const REFUSALS: &[&str] = &[
    "MalformedQueryString",
    "MissingAction",
    "InvalidAction",
    "MissingParameter",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "RequestExpired",
];

fn users() -> MemorySource {
    let m = MemorySource::new();
    m.insert(AK, KnownUser::cloudstack_user(AK, SK, Some("acct".into())));
    m
}

fn assert_refused(e: &Ec2Error, what: &str) {
    assert!(REFUSALS.contains(&e.code.as_ref()), "{what}: unexpected code {e:?}");
    assert!(e.message.len() < 2048, "{what}: message of {} bytes", e.message.len());
    assert!(!e.message.contains(SK), "{what}: message names the secret");
}

#[tokio::test]
async fn query_parser_and_verifiers_refuse_random_input() {
    let mem = users();
    let settings = AuthSettings::default();
    let now = OffsetDateTime::now_utc();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:7080"));
    headers.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
    for i in 0..3000 {
        let q = String::from_utf8_lossy(&garbage_query(&mut rng)).into_owned();
        let body = garbage_query(&mut rng);
        let input = match QueryInput::parse(Some(&q), &headers, &body) {
            Ok(i) => i,
            Err(e) => {
                assert_eq!((e.code.as_ref(), e.status()), ("MalformedQueryString", 404), "#{i}");
                continue;
            }
        };
        if let Err(e) = input.to_request(format!("r{i}")) {
            assert_refused(&e, &format!("#{i} to_request"));
        }
        let req = SignedRequest {
            method: "POST",
            path: "/",
            headers: &headers,
            query: &input.query,
            form: &input.form,
            body: &body,
        };
        let e = authenticate(&req, &mem, &settings, now).await.expect_err("random input never authenticates");
        assert_refused(&e, &format!("#{i} authenticate"));
    }
}

#[test]
fn query_parser_edges() {
    let h = HeaderMap::new();
    // Invalid UTF-8 after percent-decoding, in a name or a value, in the query or a form body.
    for raw in ["a=%FF", "%FF=a", "a=%C3", "a=%E2%82%28", "%ED%A0%80=x"] {
        let e = QueryInput::parse(Some(raw), &h, b"").unwrap_err();
        assert_eq!((e.code.as_ref(), e.status()), ("MalformedQueryString", 404), "{raw}");
        let e = QueryInput::parse(None, &h, raw.as_bytes()).unwrap_err();
        assert_eq!(e.code, "MalformedQueryString", "{raw} (body)");
    }
    // Raw bytes that are not UTF-8 at all in a body.
    assert_eq!(QueryInput::parse(None, &h, b"a=\xff\xfe").unwrap_err().code, "MalformedQueryString");
    // 10,000 parameters: parsed, first occurrence wins, nothing quadratic enough to notice.
    let mut many = String::from("Action=DescribeInstances&Version=2016-11-15");
    for n in 0..10_000 {
        many.push_str(&format!("&InstanceId.{n}=i-{n}&InstanceId.1=dup"));
    }
    let started = std::time::Instant::now();
    let r = QueryInput::parse(Some(&many), &h, b"").unwrap().to_request("r".into()).unwrap();
    assert_eq!((r.params.get("InstanceId.1"), r.params.get("InstanceId.2")), (Some("dup"), Some("i-2")));
    assert_eq!(r.params.list("InstanceId").len(), 10_000);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // A huge value is quoted in errors only in part.
    let long = format!("Action=DescribeRegions&Version={}", "9".repeat(100_000));
    let e = QueryInput::parse(Some(&long), &h, b"").unwrap().to_request("r".into()).unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    assert!(e.message.len() < 1024, "{}", e.message.len());
}

fn v2_params(validity: (&str, &str)) -> Vec<(String, String)> {
    [
        ("Action", "DescribeRegions"),
        ("Version", "2016-11-15"),
        ("AWSAccessKeyId", AK),
        ("SignatureVersion", "2"),
        ("SignatureMethod", "HmacSHA256"),
        validity,
        ("Signature", "AAAA"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test]
async fn extreme_dates_are_errors_not_panics() {
    let mem = users();
    let now = OffsetDateTime::now_utc();
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("h"));
    let huge = AuthSettings { max_skew: Duration::from_secs(u64::MAX), ..Default::default() };
    for settings in [AuthSettings::default(), huge] {
        // SigV2 Expires at the end of the calendar (+ skew used to overflow and panic).
        for (name, value) in [
            ("Expires", "9999-12-31T23:59:59Z"),
            ("Expires", "9999-12-31T23:59:59-23:59"),
            ("Expires", "-9999-01-01T00:00:00Z"),
            ("Timestamp", "9999-12-31T23:59:59Z"),
            ("Timestamp", "0000-01-01T00:00:00+23:59"),
        ] {
            let q = v2_params((name, value));
            let r = SignedRequest { method: "GET", path: "/", headers: &h, query: &q, form: &[], body: b"" };
            let e = authenticate(&r, &mem, &settings, now).await.unwrap_err();
            assert_refused(&e, &format!("{name}={value}"));
        }
        // SigV4 presigned at the end of the calendar with the longest expiry.
        for (date, expires) in [("99991231T235959Z", "604800"), ("00000101T000000Z", "604800")] {
            let q: Vec<(String, String)> = [
                ("Action", "DescribeRegions"),
                ("Version", "2016-11-15"),
                ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
                ("X-Amz-Credential", &format!("{AK}/{}/r/ec2/aws4_request", &date[..8])),
                ("X-Amz-Date", date),
                ("X-Amz-Expires", expires),
                ("X-Amz-SignedHeaders", "host"),
                ("X-Amz-Signature", "00"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let r = SignedRequest { method: "GET", path: "/", headers: &h, query: &q, form: &[], body: b"" };
            let e = authenticate(&r, &mem, &settings, now).await.unwrap_err();
            assert_refused(&e, date);
        }
    }
    // Unparseable or impossible times name the parameter.
    for bad in ["2016-02-30T00:00:00Z", "2016-11-15T25:00:00Z", "", "T", "2016-11-15T12:00:00+99:00"] {
        let q = v2_params(("Timestamp", bad));
        let r = SignedRequest { method: "GET", path: "/", headers: &h, query: &q, form: &[], body: b"" };
        let e = sigv2::V2Auth::parse(&r).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue", "{bad:?}");
        assert!(e.message.contains("Timestamp"), "{bad:?}");
    }
}

#[tokio::test]
async fn truncated_and_mangled_authorization_headers() {
    let mem = users();
    let settings = AuthSettings::default();
    let now = OffsetDateTime::now_utc();
    let amz = sigv4::format_amz_date(now);
    let body = b"Action=DescribeRegions&Version=2016-11-15";
    let auth = sigv4::sign_authorization(
        AK,
        SK,
        "us-east-1",
        "ec2",
        &amz,
        "POST",
        "/",
        &[],
        &[("host", "h"), ("x-amz-date", &amz)],
        body,
    );
    let form = ec2bridge::ec2::query::decode_pairs(body).unwrap();
    let run = |value: &[u8], date: &str| {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("h"));
        if let Ok(v) = HeaderValue::from_str(date) {
            h.insert("x-amz-date", v);
        }
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.insert("authorization", v);
        }
        h
    };
    // The intact header authenticates (so the refusals below are about the damage).
    let h = run(auth.as_bytes(), &amz);
    let ok = SignedRequest { method: "POST", path: "/", headers: &h, query: &[], form: &form, body };
    assert_eq!(authenticate(&ok, &mem, &settings, now).await.unwrap().access_key, AK);
    for cut in 0..auth.len() {
        let h = run(&auth.as_bytes()[..cut], &amz);
        let r = SignedRequest { headers: &h, ..ok };
        let e = authenticate(&r, &mem, &settings, now).await.unwrap_err();
        assert_refused(&e, &format!("cut at {cut}"));
    }
    let mut rng = Rng(42);
    for i in 0..2000 {
        let mut v = auth.clone().into_bytes();
        for _ in 0..=rng.below(4) {
            let at = rng.below(v.len());
            match rng.below(3) {
                0 => v[at] = *rng.pick(b",=/; \tAZaz09-_\x7f\x80"),
                1 => {
                    v.remove(at);
                }
                _ => v.insert(at, *rng.pick(b",=/;")),
            }
        }
        let date = *rng.pick(&[amz.as_str(), "99991231T235959Z", "2016", "", "20161315T256161Z"]);
        let h = run(&v, date);
        let r = SignedRequest { headers: &h, ..ok };
        if let Err(e) = authenticate(&r, &mem, &settings, now).await {
            assert_refused(&e, &format!("mangled #{i}"));
        }
    }
    // An HTTP Date header instead of X-Amz-Date, in odd forms.
    for date in ["Mon, 31 Dec 9999 23:59:59 GMT", "Tue, 15 Nov 2016 12:00:00 PST", "yesterday", ""] {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("h"));
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        if let Ok(v) = HeaderValue::from_str(date) {
            h.insert("date", v);
        }
        let r = SignedRequest { headers: &h, ..ok };
        assert_refused(&authenticate(&r, &mem, &settings, now).await.unwrap_err(), date);
    }
}

/// Knows no certificate.
struct NoCerts;
impl CertificateLookup for NoCerts {
    type Identity = String;
    fn find_certificate<'a>(&'a self, _fp: &'a str) -> BoxFuture<'a, Result<Option<String>, Ec2Error>> {
        Box::pin(async { Ok(None) })
    }
}

const SOAP_REFUSALS: &[&str] =
    &["InvalidSOAPRequest", "MissingAuthenticationToken", "InvalidSecurity", "AuthFailure", "SignatureDoesNotMatch"];

fn envelope(body: &str) -> String {
    format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header><wsse:Security \
         xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\">\
         <wsse:BinarySecurityToken ValueType=\"#X509v3\">AAAA</wsse:BinarySecurityToken></wsse:Security>\
         </s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )
}

#[tokio::test]
async fn soap_front_end_refuses_hostile_envelopes() {
    let soap = SoapFrontend::with_bergshamra();
    let deep = |n: usize| format!("{}x{}", "<a>".repeat(n), "</a>".repeat(n));
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("not utf-8".into(), b"<s:Envelope>\xff\xfe</s:Envelope>".to_vec()),
        ("deep 10k".into(), envelope(&deep(10_000)).into_bytes()),
        ("deep 40k, no envelope".into(), deep(40_000).into_bytes()),
        ("unclosed 50k".into(), "<a>".repeat(50_000).into_bytes()),
        (
            "billion laughs".into(),
            b"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]><l>&b;</l>"
                .to_vec(),
        ),
        ("external entity".into(), envelope("<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><x/>").into_bytes()),
        ("bad token".into(), envelope("<op/>").into_bytes()),
        ("oversized".into(), vec![b' '; ec2bridge::ec2::soap::MAX_SOAP_BODY + 1]),
        ("10k attributes".into(), envelope(&format!("<op {}/>", (0..10_000).map(|i| format!("a{i}=\"{i}\"")).collect::<Vec<_>>().join(" "))).into_bytes()),
    ];
    let mut rng = Rng(7);
    let tokens = [
        "<",
        ">",
        "</",
        "/>",
        "s:Envelope",
        "s:Body",
        "s:Header",
        "xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"",
        "\"",
        "=",
        "&amp;",
        "&#0;",
        "&#x110000;",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<?xml",
        "?>",
        " ",
        "wsse:Security",
    ];
    for i in 0..1000 {
        let mut s = Vec::new();
        for _ in 0..rng.below(60) {
            if rng.below(8) == 0 {
                let n = rng.below(6);
                s.extend(rng.bytes(n));
            } else {
                s.extend_from_slice(rng.pick(&tokens).as_bytes());
            }
        }
        cases.push((format!("random #{i}"), s));
    }
    for (what, body) in cases {
        let e = soap.authenticate(&NoCerts, &body, "r".into()).await.expect_err(&what);
        assert!(SOAP_REFUSALS.contains(&e.code.as_ref()), "{what}: {e:?}");
        assert!(e.message.len() < 2048, "{what}: {} bytes", e.message.len());
    }
}

/// Counts what gets through; answers nothing useful.
struct Counter(AtomicUsize);
impl Ec2Handler for Counter {
    fn execute<'a>(&'a self, _req: &'a Ec2Request, _who: &'a Principal) -> BoxFuture<'a, Result<String, Ec2Error>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(String::new()) })
    }
}

/// Status, error code (Query `<Code>` or SOAP `faultcode`) of an answer.
async fn send(app: &axum::Router, req: Request<Body>) -> (u16, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("answers are UTF-8");
    if status == 200 {
        return (status, String::new());
    }
    if text.starts_with("<?xml") {
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("answer is not XML ({e}): {text}"));
        let code = doc
            .descendants()
            .find(|n| n.has_tag_name("Code") || n.has_tag_name("faultcode"))
            .and_then(|n| n.text())
            .unwrap_or_default();
        (status, code.trim_start_matches("aws:Client.").trim_start_matches("aws:Server.").to_string())
    } else {
        // Registration actions answer plain text `<Code>: <message>`.
        (status, text.split(':').next().unwrap_or_default().to_string())
    }
}

async fn store() -> Arc<ec2bridge::store::Store> {
    let key = ec2bridge::store::KeySource::Base64(ec2bridge::store::generate_key_base64().unwrap());
    Arc::new(ec2bridge::store::Store::open("sqlite::memory:", &key).await.unwrap())
}

#[tokio::test]
async fn http_entry_answers_every_garbage_request_with_an_ec2_error() {
    let handler = Arc::new(Counter(AtomicUsize::new(0)));
    let mut gw = Gateway::new(handler.clone(), Arc::new(users()));
    gw.max_body_bytes = 64 * 1024;
    gw.registry = Some(store().await);
    let app = router(Arc::new(gw));
    let mut rng = Rng(0xDEAD_BEEF);
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    let cts = [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("application/x-www-form-urlencoded; charset=latin1"),
        Some("text/xml"),
        Some("application/soap+xml"),
        Some("application/json"),
        Some("multipart/form-data; boundary=x"),
    ];
    for i in 0..1500 {
        let q = garbage_query(&mut rng);
        // Only bytes a URI may carry; the rest percent-encoded as a client would.
        let q: String = percent_encoding::percent_encode(&q, percent_encoding::CONTROLS)
            .to_string()
            .replace([' ', '"', '<', '>', '`', '#', '{', '}', '|', '\\', '^'], "%20");
        let uri = format!("{}?{q}", rng.pick(&["/", "/awsapi", "/ec2/api/", "//x/../y"]));
        let mut b = Request::builder().method(*rng.pick(&methods)).uri(uri.as_str());
        if let Some(ct) = rng.pick(&cts) {
            b = b.header("content-type", *ct);
        }
        if rng.below(4) == 0 {
            b = b.header("soapaction", "x");
        }
        if rng.below(3) == 0 {
            let auth = String::from_utf8_lossy(&garbage_query(&mut rng)).replace(['\r', '\n', '\0'], "");
            b = b.header("authorization", format!("AWS4-HMAC-SHA256 {}", auth.chars().take(500).collect::<String>()));
        }
        let n = rng.below(2000);
        let body = if rng.below(2) == 0 { garbage_query(&mut rng) } else { rng.bytes(n) };
        let Ok(req) = b.body(Body::from(body)) else { continue };
        let (status, code) = send(&app, req).await;
        let expected = Code::parse(&code).unwrap_or_else(|| panic!("#{i}: {code} is not in the catalog")).status();
        assert!(status == expected || status == 500 || code == "Unavailable", "#{i} {uri}: {status} {code}");
        assert_ne!(status, 200, "#{i} {uri}");
    }
    // Oversized bodies, declared or not.
    let big = vec![b'a'; 64 * 1024 + 1];
    let (status, code) = send(&app, Request::post("/").body(Body::from(big.clone())).unwrap()).await;
    assert_eq!((status, code.as_str()), (413, "RequestEntityTooLarge"));
    let lying = Request::post("/").header("content-length", "10").body(Body::from(big)).unwrap();
    let (status, _) = send(&app, lying).await;
    assert_ne!(status, 200);
    let (status, code) =
        send(&app, Request::post("/").header("content-length", "99999999999").body(Body::empty()).unwrap()).await;
    assert_eq!((status, code.as_str()), (413, "RequestEntityTooLarge"));
    assert_eq!(handler.0.load(Ordering::SeqCst), 0, "a refused request reached the handler");
}
