//! SOAP and registration through the real HTTP server and the real store (SQLite file), with a
//! counting echo handler in place of the executor: register with the script's wire form, then
//! xmlsec-signed SOAP requests are executed as the certificate's owner, and every attack is a
//! SOAP fault that executes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ec2bridge::app::register_cli::signed_url;
use ec2bridge::auth::Principal;
use ec2bridge::auth::credentials::{BoxFuture, ChainSource, StoreSource};
use ec2bridge::base::{Code, Ec2Error};
use ec2bridge::ec2::Ec2Request;
use ec2bridge::ec2::registration::{AccountOf, KeyCheck, KeyChecker};
use ec2bridge::ec2::render::escape;
use ec2bridge::server::{Ec2Handler, Gateway, serve};
use ec2bridge::store::{KeySource, Store, generate_key_base64};
use time::OffsetDateTime;

const AK: &str = "soapgw-apikey-0001";
const SK: &str = "soapgw-secret-key-abcdefghijklmnopqrstu";
const BK: &str = "soapgw-apikey-0002";
const BS: &str = "soapgw-secret-key-bob-0123456789abcdef";

/// Echo that counts what it executed.
struct Echo(AtomicUsize);

impl Ec2Handler for Echo {
    fn execute<'a>(&'a self, req: &'a Ec2Request, who: &'a Principal) -> BoxFuture<'a, Result<String, Ec2Error>> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            if req.action == "Fail" {
                return Err(Ec2Error::new(Code::InvalidInstanceIdNotFound, "The instance ID 'i-1' does not exist"));
            }
            let mut s = format!("<caller>{}</caller><params>", escape(&who.cloudstack.api_key));
            for (k, v) in &req.params.0 {
                s.push_str(&format!("<item><name>{}</name><value>{}</value></item>", escape(k), escape(v)));
            }
            Ok(s + "</params>")
        })
    }
}

struct Cloud;
impl KeyChecker for Cloud {
    fn check<'a>(&'a self, ak: &'a str, sk: &'a str) -> BoxFuture<'a, Result<KeyCheck, Ec2Error>> {
        Box::pin(async move {
            let ok = (ak == AK && sk == SK) || (ak == BK && sk == BS);
            Ok(if ok {
                KeyCheck::Valid(AccountOf { account: "a".into(), domain: "ROOT".into() })
            } else {
                KeyCheck::Rejected
            })
        })
    }
}

struct Env {
    dir: PathBuf,
    python: PathBuf,
    base: String,
    echo: Arc<Echo>,
    http: reqwest::Client,
    _task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn python() -> Option<PathBuf> {
    let mut c = vec![];
    if let Ok(v) = std::env::var("EC2BRIDGE_VENV") {
        c.push(Path::new(&v).join("bin/python"));
    }
    c.push(PathBuf::from("python3"));
    c.into_iter()
        .find(|p| Command::new(p).args(["-c", "import xmlsec, lxml"]).output().is_ok_and(|o| o.status.success()))
}

async fn start(name: &str) -> Option<Env> {
    let dir = std::env::temp_dir().join(format!("ec2bridge-soapgw-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("store.db").display());
    start_on(name, dir, &url, &generate_key_base64().unwrap()).await
}

/// A gateway on the store at `url` (opened with `key`); `dir` holds certificates.
async fn start_on(name: &str, dir: PathBuf, url: &str, key: &str) -> Option<Env> {
    let Some(python) = python() else {
        eprintln!("SKIP {name}: no python with xmlsec (set EC2BRIDGE_VENV)");
        return None;
    };
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIP {name}: no openssl CLI");
        return None;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(Store::open(url, &KeySource::Base64(key.to_string())).await.unwrap());
    let echo = Arc::new(Echo(AtomicUsize::new(0)));
    let creds = ChainSource::new().with(Arc::new(StoreSource::new(store.as_ref().clone())));
    let mut gw = Gateway::new(echo.clone(), Arc::new(creds));
    gw.registry = Some(store);
    gw.key_checker = Some(Arc::new(Cloud));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(serve(listener, Arc::new(gw), std::future::pending(), Duration::from_secs(1)));
    Some(Env { dir, python, base, echo, http: reqwest::Client::new(), _task: task })
}

impl Env {
    fn identity(&self, who: &str) -> String {
        let key = self.dir.join(format!("{who}.key"));
        if !key.exists() {
            let out = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
                .arg(format!("/CN={who}"))
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(self.dir.join(format!("{who}.crt")))
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        std::fs::read_to_string(self.dir.join(format!("{who}.crt"))).unwrap()
    }

    fn sign(&self, key_of: &str, cert_of: &str, body: &str, extra: &[&str]) -> String {
        self.identity(key_of);
        self.identity(cert_of);
        let out = Command::new(&self.python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/soap/wssign.py"))
            .arg("--key")
            .arg(self.dir.join(format!("{key_of}.key")))
            .arg("--cert")
            .arg(self.dir.join(format!("{cert_of}.crt")))
            .args(["--body", body])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    async fn register(&self, ak: &str, sk: &str, action: &str, extra: &[(&str, &str)]) -> (u16, String, String) {
        let url =
            signed_url(&format!("{}/awsapi", self.base), ak, sk, action, extra, OffsetDateTime::now_utc()).unwrap();
        let r = self.http.get(url).send().await.unwrap();
        let ct = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
        (r.status().as_u16(), ct, r.text().await.unwrap())
    }

    /// POST an envelope; (status, faultcode or response element name, body).
    async fn soap(&self, envelope: impl Into<reqwest::Body>) -> (u16, String, String) {
        let r = self
            .http
            .post(format!("{}/awsapi", self.base))
            .header("content-type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"DescribeInstances\"")
            .body(envelope)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        let doc = roxmltree::Document::parse(&body).unwrap();
        let what = match doc.descendants().find(|n| n.has_tag_name("faultcode")) {
            Some(f) => f.text().unwrap_or("").to_string(),
            None => {
                let b = doc.root_element().first_element_child().unwrap();
                b.first_element_child().unwrap().tag_name().name().to_string()
            }
        };
        (status, what, body)
    }

    fn executed(&self) -> usize {
        self.echo.0.load(Ordering::SeqCst)
    }
}

const OP: &str = r#"<ns0:DescribeInstances xmlns:ns0="http://ec2.amazonaws.com/doc/2012-08-15/"><ns0:instancesSet><ns0:item><ns0:instanceId>i-12345678</ns0:instanceId></ns0:item></ns0:instancesSet></ns0:DescribeInstances>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_soap_as_the_certificate_owner() {
    let Some(e) = start("flow").await else { return };
    let alice = e.identity("alice");

    // Before registration: the certificate is unknown.
    let doc = e.sign("alice", "alice", OP, &[]);
    let (s, what, _) = e.soap(doc).await;
    assert_eq!((s, what.as_str()), (500, "aws:Client.AuthFailure"));

    // Registration over HTTP, plain-text answers.
    let (s, ct, body) = e.register(AK, SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)]).await;
    assert_eq!((s, body.as_str()), (200, "User keys set successfully"));
    assert!(ct.starts_with("text/plain"));
    let (s, _, body) = e.register(AK, "wrong", "SetCertificate", &[("cert", &alice)]).await;
    assert_eq!(s, 403, "{body}");
    let (s, _, body) = e.register(AK, SK, "SetCertificate", &[("cert", &alice)]).await;
    assert_eq!((s, body.as_str()), (200, "User certificate set successfully"));
    let (s, _, body) = e.register(AK, SK, "CloudEC2Version", &[]).await;
    assert!(s == 200 && body.starts_with("ec2bridge"), "{body}");

    // A signed SOAP request runs as Alice, with her CloudStack keys.
    let doc = e.sign("alice", "alice", OP, &[]);
    let (s, what, body) = e.soap(doc.clone()).await;
    assert_eq!((s, what.as_str()), (200, "DescribeInstancesResponse"), "{body}");
    assert!(body.contains("xmlns=\"http://ec2.amazonaws.com/doc/2012-08-15/\""));
    assert!(body.contains(&format!("<caller>{AK}</caller>")));
    assert!(body.contains("<name>InstanceId.1</name><value>i-12345678</value>"));
    assert_eq!(e.executed(), 1);
    // SHA-256 variant.
    let (s, _, _) = e.soap(e.sign("alice", "alice", OP, &["--sig", "rsa-sha256", "--digest", "sha256"])).await;
    assert_eq!(s, 200);
    assert_eq!(e.executed(), 2);

    // Handler errors are faults.
    let fail = OP.replace("DescribeInstances", "Fail");
    let (s, what, _) = e.soap(e.sign("alice", "alice", &fail, &[])).await;
    assert_eq!((s, what.as_str()), (500, "aws:Client.InvalidInstanceID.NotFound"));
    let n = e.executed();

    // Attacks: each a fault, nothing executed.
    let laughs =
        r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>"#;
    let mut big = e.sign("alice", "alice", OP, &[]);
    big.insert_str(big.find("</ns0:DescribeInstances>").unwrap(), &"<ns0:pad>x</ns0:pad>".repeat(20_000));
    let (bs, be) = (doc.find("<soap-env:Body").unwrap(), doc.find("</soap-env:Body>").unwrap() + 16);
    let evil = OP.replace("DescribeInstances", "TerminateInstances");
    let mut wrapped = doc.clone();
    wrapped.replace_range(bs..be, &format!("<soap-env:Body>{evil}</soap-env:Body>"));
    let sec_end = wrapped.find("</wsse:Security>").unwrap();
    wrapped.insert_str(sec_end, &format!("<W xmlns=\"urn:w\">{}</W>", &doc[bs..be]));
    let attacks: Vec<(&str, String, &str)> = vec![
        ("replay", doc.clone(), "aws:Client.InvalidSecurity"),
        ("unregistered", e.sign("bob", "bob", OP, &[]), "aws:Client.AuthFailure"),
        ("alice-cert-bob-key", e.sign("bob", "alice", OP, &[]), "aws:Client.SignatureDoesNotMatch"),
        (
            "tampered",
            e.sign("alice", "alice", OP, &[]).replace("i-12345678", "i-99999999"),
            "aws:Client.SignatureDoesNotMatch",
        ),
        ("unsigned-body", e.sign("alice", "alice", OP, &["--no-sign-body"]), "aws:Client.InvalidSecurity"),
        ("wrapped", wrapped, "aws:Client.InvalidSecurity"),
        ("expired", e.sign("alice", "alice", OP, &["--created-offset", "-3600"]), "aws:Client.RequestExpired"),
        ("no-timestamp", e.sign("alice", "alice", OP, &["--no-timestamp"]), "aws:Client.RequestExpired"),
        ("doctype", format!("{laughs}{}", e.sign("alice", "alice", OP, &[])), "aws:Client.InvalidSOAPRequest"),
        ("oversized", big, "aws:Client.InvalidSOAPRequest"),
        ("garbage", "<not-soap/>".to_string(), "aws:Client.InvalidSOAPRequest"),
    ];
    for (name, body, want) in attacks {
        let (s, what, text) = e.soap(body).await;
        assert_eq!((s, what.as_str()), (500, want), "{name}: {text}");
    }
    assert_eq!(e.executed(), n, "an attack reached the handler");

    // Deleting the certificate locks SOAP out again.
    let (s, _, _) = e.register(AK, SK, "DeleteCertificate", &[]).await;
    assert_eq!(s, 200);
    let (s, what, _) = e.soap(e.sign("alice", "alice", OP, &[])).await;
    assert_eq!((s, what.as_str()), (500, "aws:Client.AuthFailure"));
    assert_eq!(e.executed(), n);
}

/// Scale-out: two gateways on one store (PostgreSQL when EC2BRIDGE_TEST_POSTGRES_URL is set, else
/// one SQLite file). Register through one, call SOAP through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_on_one_gateway_call_the_other() {
    let dir = std::env::temp_dir().join(format!("ec2bridge-soapgw-two-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = generate_key_base64().unwrap();
    let (url, schema) = match std::env::var("EC2BRIDGE_TEST_POSTGRES_URL") {
        Ok(base) => {
            use sqlx::Executor as _;
            sqlx::any::install_default_drivers();
            let schema = format!("ec2b_test_{}_soap{}", OffsetDateTime::now_utc().unix_timestamp(), std::process::id());
            let pool = sqlx::AnyPool::connect(&base).await.expect("connect to the test PostgreSQL");
            pool.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await.unwrap();
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            (format!("{base}{sep}options[search_path]={schema}"), Some((base, schema)))
        }
        Err(_) => {
            eprintln!("PostgreSQL part skipped: EC2BRIDGE_TEST_POSTGRES_URL not set; using one SQLite file");
            (format!("sqlite://{}", dir.join("shared.db").display()), None)
        }
    };
    let Some(one) = start_on("two-a", dir.join("a"), &url, &key).await else { return };
    let Some(other) = start_on("two-b", dir.join("b"), &url, &key).await else { return };
    let alice = one.identity("alice");
    assert_eq!(one.register(AK, SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)]).await.0, 200);
    assert_eq!(one.register(AK, SK, "SetCertificate", &[("cert", &alice)]).await.0, 200);
    // Sign with the same identity on the other side.
    for f in ["alice.key", "alice.crt"] {
        std::fs::copy(dir.join("a").join(f), dir.join("b").join(f)).unwrap();
    }
    let doc = other.sign("alice", "alice", OP, &[]);
    let (s, what, body) = other.soap(doc.clone()).await;
    assert_eq!((s, what.as_str()), (200, "DescribeInstancesResponse"), "{body}");
    assert!(body.contains(&format!("<caller>{AK}</caller>")));
    assert_eq!((one.executed(), other.executed()), (0, 1));
    // Issue 14 item 9: the replay guard is the shared store, so the same envelope sent to the
    // other gateway is a replay too (it used to be caught only by the gateway that saw it).
    let (s, what, body) = one.soap(doc).await;
    assert_eq!((s, what.as_str()), (500, "aws:Client.InvalidSecurity"), "{body}");
    assert_eq!((one.executed(), other.executed()), (0, 1));
    if let Some((base, schema)) = schema {
        use sqlx::Executor as _;
        let pool = sqlx::AnyPool::connect(&base).await.unwrap();
        let _ = pool.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
