//! The real HTTP server on a loopback port, with an echo handler in place of the mapping executor:
//! transport forms (GET query, POST form with/without charset, any path), SigV2/SigV4 acceptance
//! and every authentication error as a client sees it, limits, SOAP routing, health, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ec2bridge::auth::credentials::{BoxFuture, CredentialSource, KnownUser, MemorySource};
use ec2bridge::auth::{Principal, sigv2, sigv4};
use ec2bridge::base::Ec2Error;
use ec2bridge::ec2::Ec2Request;
use ec2bridge::ec2::render::escape;
use ec2bridge::server::{Ec2Handler, Gateway, serve};
use time::OffsetDateTime;

const AK: &str = "AKIDGATEWAYTEST";
const SK: &str = "gateway/test+secret";

/// Answers with the action, the caller and every parameter it received.
struct Echo;

impl Ec2Handler for Echo {
    fn execute<'a>(&'a self, req: &'a Ec2Request, who: &'a Principal) -> BoxFuture<'a, Result<String, Ec2Error>> {
        Box::pin(async move {
            match req.action.as_str() {
                "DescribeSlow" => tokio::time::sleep(Duration::from_secs(5)).await,
                "CreateSlow" => tokio::time::sleep(Duration::from_millis(1500)).await,
                "Revoked" => return Err(Ec2Error::auth_failure()),
                _ => {}
            }
            let mut s = format!("<caller>{}</caller><params>", escape(&who.access_key));
            for (k, v) in &req.params.0 {
                s.push_str(&format!("<item><name>{}</name><value>{}</value></item>", escape(k), escape(v)));
            }
            s.push_str("</params>");
            if let Some(h) = &req.host {
                s.push_str(&format!("<host>{}</host>", escape(h)));
            }
            Ok(s)
        })
    }
}

/// Memory source that counts `forget` calls.
struct Counting {
    inner: MemorySource,
    forgotten: AtomicUsize,
}

impl CredentialSource for Counting {
    fn lookup<'a>(&'a self, k: &'a str) -> BoxFuture<'a, Result<Option<KnownUser>, Ec2Error>> {
        self.inner.lookup(k)
    }
    fn forget(&self, _k: &str) {
        self.forgotten.fetch_add(1, Ordering::SeqCst);
    }
}

struct Server {
    base: String,
    host: String,
    creds: Arc<Counting>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

async fn start() -> Server {
    start_with(None).await
}

async fn start_with(public_endpoint: Option<&str>) -> Server {
    let mem = MemorySource::new();
    mem.insert(AK, KnownUser::cloudstack_user(AK, SK, Some("acct".into())));
    let creds = Arc::new(Counting { inner: mem, forgotten: AtomicUsize::new(0) });
    let mut gw = Gateway::new(Arc::new(Echo), creds.clone());
    gw.max_body_bytes = 4096;
    gw.request_timeout = Duration::from_millis(700);
    gw.public_endpoint = public_endpoint.map(str::to_string);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        Arc::new(gw),
        async {
            let _ = rx.await;
        },
        Duration::from_secs(2),
    ));
    Server {
        base: format!("http://{addr}"),
        host: addr.to_string(),
        creds,
        stop: Some(tx),
        task,
        http: reqwest::Client::new(),
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `k=v&…` with every special character percent-encoded (spaces as `+` when `plus`).
fn form(pairs: &[(&str, &str)], plus: bool) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v = if plus { v.split(' ').map(enc).collect::<Vec<_>>().join("+") } else { enc(v) };
            format!("{}={v}", enc(k))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn now_amz() -> String {
    sigv4::format_amz_date(OffsetDateTime::now_utc())
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

struct Answer {
    status: u16,
    request_id: String,
    body: String,
}

impl Answer {
    fn doc(&self) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(&self.body).unwrap_or_else(|e| panic!("bad XML {e}: {}", self.body))
    }

    fn code(&self) -> String {
        self.doc().descendants().find(|n| n.has_tag_name("Code")).and_then(|n| n.text()).unwrap_or("").to_string()
    }

    /// The `host[:port]` the handler was told the client used.
    fn host(&self) -> Option<String> {
        self.doc().descendants().find(|n| n.has_tag_name("host")).map(|n| n.text().unwrap_or("").to_string())
    }

    fn param(&self, name: &str) -> Option<String> {
        let doc = self.doc();
        let item = doc
            .descendants()
            .filter(|n| n.has_tag_name("item"))
            .find(|n| n.children().any(|c| c.has_tag_name("name") && c.text() == Some(name)))?;
        item.children().find(|c| c.has_tag_name("value")).map(|v| v.text().unwrap_or("").to_string())
    }
}

async fn answer(r: reqwest::RequestBuilder) -> Answer {
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let request_id = resp.headers().get("x-amzn-requestid").expect("x-amzn-RequestId").to_str().unwrap().to_string();
    if status != 200 || resp.headers()["content-type"] != "text/xml;charset=UTF-8" {
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    }
    Answer { status, request_id, body: resp.text().await.unwrap() }
}

impl Server {
    /// A SigV4-signed form POST, as boto3 / the AWS CLI send it.
    async fn post_v4(&self, path: &str, params: &[(&str, &str)], secret: &str, amz_date: &str) -> Answer {
        let body = form(params, true);
        let ct = "application/x-www-form-urlencoded; charset=utf-8";
        let auth = sigv4::sign_authorization(
            AK,
            secret,
            "us-east-1",
            "ec2",
            amz_date,
            "POST",
            path,
            &[],
            &[("content-type", ct), ("host", &self.host), ("x-amz-date", amz_date)],
            body.as_bytes(),
        );
        answer(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", ct)
                .header("x-amz-date", amz_date)
                .header("authorization", auth)
                .body(body),
        )
        .await
    }

    /// A SigV2 GET with all parameters in the query string (spaces sent as `+`, as libcloud does).
    async fn get_v2(&self, path: &str, params: &[(&str, &str)], key: &str, secret: &str, ts: &str) -> Answer {
        let mut p = params.to_vec();
        p.extend([
            ("AWSAccessKeyId", key),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", ts),
        ]);
        let q = owned(&p);
        let h = {
            let mut h = http::HeaderMap::new();
            h.insert("host", self.host.parse().unwrap());
            h
        };
        let sr = ec2bridge::auth::SignedRequest { method: "GET", path, headers: &h, query: &q, form: &[], body: b"" };
        let sig = sigv2::sign(sigv2::Method::HmacSha256, secret, &sigv2::string_to_sign(&sr));
        p.push(("Signature", &sig));
        answer(self.http.get(format!("{}{path}?{}", self.base, form(&p, true)))).await
    }
}

const DESCRIBE: &[(&str, &str)] = &[
    ("Action", "DescribeInstances"),
    ("Version", "2016-11-15"),
    ("Filter.1.Name", "tag:Name"),
    ("Filter.1.Value.1", "my web*server~ü +=&/"),
];

#[tokio::test]
async fn sigv4_post_form_any_path() {
    let s = start().await;
    for path in ["/", "/awsapi", "/ec2/api/"] {
        let a = s.post_v4(path, DESCRIBE, SK, &now_amz()).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let doc = a.doc();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "DescribeInstancesResponse");
        assert_eq!(root.tag_name().namespace(), Some("http://ec2.amazonaws.com/doc/2016-11-15/"));
        let rid = root.first_element_child().unwrap();
        assert_eq!((rid.tag_name().name(), rid.text()), ("requestId", Some(a.request_id.as_str())));
        assert_eq!(a.param("Filter.1.Value.1").as_deref(), Some("my web*server~ü +=&/"));
        // Action, Version and authentication parameters are not action parameters.
        assert_eq!(a.param("Action"), None);
        assert!(a.body.contains(&format!("<caller>{AK}</caller>")));
    }
}

#[tokio::test]
async fn sigv2_get_with_plus_spaces_and_version_echo() {
    let s = start().await;
    let ts = iso(OffsetDateTime::now_utc());
    let p = [("Action", "DescribeRegions"), ("Version", "2012-08-15"), ("RegionName.1", "a b")];
    let a = s.get_v2("/", &p, AK, SK, &ts).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.doc().root_element().tag_name().namespace(), Some("http://ec2.amazonaws.com/doc/2012-08-15/"));
    assert_eq!(a.param("RegionName.1").as_deref(), Some("a b"));
    assert_eq!(a.param("Signature"), None);
    assert_eq!(a.param("Timestamp"), None);
}

#[tokio::test]
async fn handler_learns_the_host_the_client_used() {
    // SigV4 (Host signed) and SigV2 (Host in the string to sign): the handler gets that Host, which
    // DescribeRegions reports as regionEndpoint.
    let s = start().await;
    let a = s.post_v4("/", DESCRIBE, SK, &now_amz()).await;
    assert_eq!((a.status, a.host()), (200, Some(s.host.clone())), "{}", a.body);
    let ts = iso(OffsetDateTime::now_utc());
    let a = s.get_v2("/", &[("Action", "DescribeRegions"), ("Version", "2014-10-01")], AK, SK, &ts).await;
    assert_eq!((a.status, a.host()), (200, Some(s.host.clone())), "{}", a.body);
    // Behind a proxy the configured public endpoint wins.
    let s = start_with(Some("ec2.example.org:443")).await;
    let a = s.post_v4("/", DESCRIBE, SK, &now_amz()).await;
    assert_eq!((a.status, a.host().as_deref()), (200, Some("ec2.example.org:443")), "{}", a.body);
}

#[tokio::test]
async fn auth_errors_as_clients_see_them() {
    let s = start().await;
    let now = OffsetDateTime::now_utc();
    let p = [("Action", "DescribeRegions"), ("Version", "2016-11-15")];

    let a = s.get_v2("/", &p, "AKIDUNKNOWN", SK, &iso(now)).await;
    assert_eq!((a.status, a.code()), (401, "AuthFailure".into()));
    let a = s.get_v2("/", &p, AK, "wrong", &iso(now)).await;
    assert_eq!((a.status, a.code()), (403, "SignatureDoesNotMatch".into()));
    let a = s.get_v2("/", &p, AK, SK, &iso(now - Duration::from_secs(20 * 60))).await;
    assert_eq!((a.status, a.code()), (400, "RequestExpired".into()));
    let a = s.post_v4("/", &p, "wrong", &now_amz()).await;
    assert_eq!((a.status, a.code()), (403, "SignatureDoesNotMatch".into()));
    let old = sigv4::format_amz_date(now - Duration::from_secs(3600));
    let a = s.post_v4("/", &p, SK, &old).await;
    assert_eq!((a.status, a.code()), (400, "RequestExpired".into()));
    let a = answer(s.http.get(format!("{}/?Action=DescribeRegions&Version=2016-11-15", s.base))).await;
    assert_eq!((a.status, a.code()), (403, "MissingAuthenticationToken".into()));
    let a = answer(s.http.post(&s.base).header("authorization", "AWS4-HMAC-SHA256 Credential=x").body("")).await;
    assert_eq!((a.status, a.code()), (400, "IncompleteSignature".into()));

    // Error document shape: no namespace, Code then Message, RequestID = header.
    let doc = a.doc();
    let root = doc.root_element();
    assert_eq!((root.tag_name().name(), root.tag_name().namespace()), ("Response", None));
    let rid = root.children().find(|n| n.has_tag_name("RequestID")).unwrap();
    assert_eq!(rid.text(), Some(a.request_id.as_str()));
}

#[tokio::test]
async fn action_errors_after_auth() {
    let s = start().await;
    let a = s.post_v4("/", &[("Version", "2016-11-15")], SK, &now_amz()).await;
    assert_eq!((a.status, a.code()), (400, "MissingAction".into()));
    let a = s.post_v4("/", &[("Action", "DescribeRegions")], SK, &now_amz()).await;
    assert_eq!((a.status, a.code()), (400, "MissingParameter".into()));
    // CloudStack rejecting the user's keys makes the gateway drop its cached copy.
    let a = s.post_v4("/", &[("Action", "Revoked"), ("Version", "2016-11-15")], SK, &now_amz()).await;
    assert_eq!((a.status, a.code()), (401, "AuthFailure".into()));
    assert_eq!(s.creds.forgotten.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn presigned_get_url() {
    let s = start().await;
    let amz = now_amz();
    let cred = format!("{AK}/{}/us-east-1/ec2/aws4_request", &amz[..8]);
    let mut q = owned(&[
        ("Action", "DescribeRegions"),
        ("Version", "2016-11-15"),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", &cred),
        ("X-Amz-Date", &amz),
        ("X-Amz-Expires", "300"),
        ("X-Amz-SignedHeaders", "host"),
    ]);
    // The signature of a presigned URL is over the query without X-Amz-Signature and the empty body.
    let auth = sigv4::sign_authorization(AK, SK, "us-east-1", "ec2", &amz, "GET", "/", &q, &[("host", &s.host)], b"");
    let sig = auth.rsplit("Signature=").next().unwrap().to_string();
    q.push(("X-Amz-Signature".into(), sig));
    let qs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = answer(s.http.get(format!("{}/?{}", s.base, form(&qs, false)))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // The same URL with POST was not what was signed.
    let a = answer(s.http.post(format!("{}/?{}", s.base, form(&qs, false))).body("")).await;
    assert_eq!(a.code(), "SignatureDoesNotMatch");
}

#[tokio::test]
async fn limits_soap_health_and_shutdown() {
    let mut s = start().await;
    // Body over the limit (4096 here).
    let big = format!("Action=DescribeRegions&Version=2016-11-15&X={}", "a".repeat(5000));
    let a = answer(s.http.post(&s.base).header("content-type", "application/x-www-form-urlencoded").body(big)).await;
    assert_eq!((a.status, a.code()), (413, "RequestEntityTooLarge".into()));
    // Timeout (700 ms here) -> 503 so SDKs retry.
    let a = s.post_v4("/", &[("Action", "DescribeSlow"), ("Version", "2016-11-15")], SK, &now_amz()).await;
    assert_eq!((a.status, a.code()), (503, "Unavailable".into()));
    // A mutating action past the timeout is answered with its result, never a retryable 503
    // (a retry would do it twice).
    let a = s.post_v4("/", &[("Action", "CreateSlow"), ("Version", "2016-11-15")], SK, &now_amz()).await;
    assert_eq!(a.status, 200);
    // Other methods.
    let a = answer(s.http.put(&s.base).body("")).await;
    assert_eq!(a.status, 405);
    // SOAP goes to the SOAP front end (a fault until it exists).
    let a = answer(
        s.http
            .post(&s.base)
            .header("content-type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"DescribeRegions\"")
            .body("<e/>"),
    )
    .await;
    assert_eq!(a.status, 500);
    let doc = a.doc();
    let fc = doc.descendants().find(|n| n.has_tag_name("faultcode")).unwrap();
    assert_eq!(fc.text(), Some("aws:Client.UnsupportedOperation"));
    // Health.
    let r = s.http.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-amzn-requestid"));
    // Graceful shutdown: the server task ends and the port stops answering.
    s.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut s.task).await.expect("server stopped").unwrap().unwrap();
    assert!(reqwest::Client::new().get(format!("{}/healthz", s.base)).send().await.is_err());
}
