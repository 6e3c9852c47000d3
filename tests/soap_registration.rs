//! Registration actions: signature rules, CloudStack key check before storing, the old script's
//! quote_plus form, and the two clients (scripts/cloudstack-aws-api-register and
//! `ec2bridge register`) against a small HTTP server in front of the handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use ec2bridge::app::register_cli::signed_url;
use ec2bridge::auth::wssec;
use ec2bridge::base::Ec2Error;
use ec2bridge::ec2::registration::{
    AccountOf, BoxFuture, CERT_DELETED, CERT_OK, KEYS_OK, KeyCheck, KeyChecker, PutCertificate, RawRequest,
    Registration, RegistrationStore,
};
use hmac::{Hmac, KeyInit, Mac};
use time::OffsetDateTime;

// Both start with '-', as one CloudStack key in 64 does (URL-safe base64): both clients must take
// them as values, not as options.
const AK: &str = "-Xk3Ab-apikey_0123456789";
const SK: &str = "-s3cr3t-SECRET_key-abcdefghijklmnop";

#[derive(Default)]
struct MemStore {
    keys: Mutex<HashMap<String, (String, Option<String>)>>,
    certs: Mutex<HashMap<String, (String, Vec<u8>)>>, // fingerprint -> (access key, der)
    used: Mutex<HashMap<[u8; 32], i64>>,
    proven: Mutex<std::collections::HashSet<String>>,
}

impl RegistrationStore for MemStore {
    fn put_user_keys<'a>(&'a self, a: &'a str, s: &'a str, o: &'a AccountOf) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.keys.lock().unwrap().insert(a.into(), (s.into(), Some(o.account.clone())));
            Ok(())
        })
    }
    fn user_secret<'a>(&'a self, a: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(async move { Ok(self.keys.lock().unwrap().get(a).map(|(s, _)| s.clone())) })
    }
    fn put_certificate<'a>(
        &'a self,
        a: &'a str,
        pem: &'a str,
        proven: bool,
    ) -> BoxFuture<'a, anyhow::Result<PutCertificate>> {
        Box::pin(async move {
            let der = ec2bridge::ec2::registration::certificate_der(pem).unwrap();
            let fp = wssec::fingerprint(&der);
            let mut c = self.certs.lock().unwrap();
            let mut proofs = self.proven.lock().unwrap();
            if c.get(&fp).is_some_and(|(owner, _)| owner != a) && (!proven || proofs.contains(&fp)) {
                return Ok(PutCertificate::TakenByOther);
            }
            if proven {
                proofs.insert(fp.clone());
            }
            c.remove(&fp);
            c.retain(|_, (owner, _)| owner != a);
            c.insert(fp, (a.into(), der));
            Ok(PutCertificate::Stored)
        })
    }
    fn find_certificate<'a>(&'a self, fp: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(async move { Ok(self.certs.lock().unwrap().get(fp).map(|(a, _)| a.clone())) })
    }
    fn delete_certificate<'a>(&'a self, a: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let mut c = self.certs.lock().unwrap();
            let n = c.len();
            c.retain(|_, (owner, _)| owner != a);
            Ok(c.len() != n)
        })
    }
    fn claim_once<'a>(&'a self, d: [u8; 32], until: i64, now: i64) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let mut used = self.used.lock().unwrap();
            used.retain(|_, u| *u >= now);
            Ok(used.insert(d, until).is_none())
        })
    }
}

/// CloudStack stand-in: accepts exactly the listed key pairs.
struct Cloud(Vec<(String, String)>);
impl KeyChecker for Cloud {
    fn check<'a>(&'a self, ak: &'a str, sk: &'a str) -> BoxFuture<'a, Result<KeyCheck, Ec2Error>> {
        Box::pin(async move {
            Ok(if self.0.iter().any(|(a, s)| a == ak && s == sk) {
                KeyCheck::Valid(AccountOf { account: "acct-1".into(), domain: "ROOT".into() })
            } else {
                KeyCheck::Rejected
            })
        })
    }
}

fn cloud() -> Cloud {
    Cloud(vec![(AK.into(), SK.into()), ("other-key".into(), "other-secret".into())])
}

const HOST: &str = "gw.example:7080";
const PATH: &str = "/awsapi";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The request as `signed_url` (standard SigV2) builds it.
fn std_query(ak: &str, sk: &str, action: &str, extra: &[(&str, &str)], t: OffsetDateTime) -> String {
    let url = signed_url(&format!("http://{HOST}{PATH}"), ak, sk, action, extra, t).unwrap();
    url.split_once('?').unwrap().1.to_string()
}

fn ts(t: OffsetDateTime) -> String {
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).unwrap()
}

/// The old Python 2 script's exact form: build order, raw accesskey/secretkey, quote_plus(cert).
fn old_script_query(ak: &str, sk: &str, action: &str, extra_raw: &str, t: OffsetDateTime) -> String {
    let q = format!(
        "AWSAccessKeyId={ak}&Action={action}&SignatureMethod=HmacSHA1&SignatureVersion=2&Timestamp={}&Version=2010-11-15{extra_raw}",
        ts(t)
    );
    let sts = format!("GET\n{HOST}\n{PATH}\n{q}");
    let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(sk.as_bytes()).unwrap();
    m.update(sts.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
    let sig: String = serde_urlencoded::to_string([("Signature", sig)]).unwrap();
    format!("{q}&{sig}")
}

async fn call(reg: &Registration<'_>, query: &str) -> (u16, String) {
    let r = reg.handle(&RawRequest { method: "GET", host: HOST, path: PATH, raw_params: query }, now()).await;
    (r.status, r.body)
}

fn make_cert(dir: &std::path::Path, name: &str, alg: &str) -> Option<String> {
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-subj", &format!("/CN={name}"), "-newkey", alg, "-keyout"])
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .output()
        .ok()?;
    out.status.success().then(|| std::fs::read_to_string(dir.join(format!("{name}.crt"))).unwrap())
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ec2bridge-reg-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn der_of(pem: &str) -> Vec<u8> {
    ec2bridge::ec2::registration::certificate_der(pem).unwrap()
}

#[tokio::test]
async fn set_user_keys_is_verified_and_checked_against_cloudstack() {
    let store = MemStore::default();
    let cs = cloud();
    let reg = Registration::new(&store, &cs);
    let (s, b) = call(&reg, "Action=CloudEC2Version").await;
    assert_eq!(s, 200);
    assert!(b.starts_with("ec2bridge "));

    // Signed with another secret than the one it registers.
    let q = std_query(AK, "not-the-secret", "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)], now());
    let (s, b) = call(&reg, &q).await;
    assert_eq!((s, b.split(':').next().unwrap()), (403, "SignatureDoesNotMatch"));
    assert!(!b.contains(SK), "secret echoed: {b}");
    // Signed with the secret, but by another access key.
    let q = std_query("other-key", SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)], now());
    assert_eq!(call(&reg, &q).await.0, 401);
    // Self-consistent but unknown to CloudStack.
    let q = std_query(
        "made-up",
        "made-up-secret",
        "SetUserKeys",
        &[("accesskey", "made-up"), ("secretkey", "made-up-secret")],
        now(),
    );
    let (s, b) = call(&reg, &q).await;
    assert_eq!(s, 401, "{b}");
    assert!(b.contains("CloudStack"));
    // Old timestamp.
    let old = now() - time::Duration::hours(1);
    let q = std_query(AK, SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)], old);
    assert_eq!(call(&reg, &q).await.1.split(':').next(), Some("RequestExpired"));
    // Missing secretkey.
    let q = std_query(AK, SK, "SetUserKeys", &[("accesskey", AK)], now());
    assert_eq!(call(&reg, &q).await.0, 400);
    assert!(store.keys.lock().unwrap().is_empty(), "nothing stored by refused requests");

    let q = std_query(AK, SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)], now());
    assert_eq!(call(&reg, &q).await, (200, KEYS_OK.to_string()));
    assert_eq!(store.keys.lock().unwrap().get(AK), Some(&(SK.to_string(), Some("acct-1".to_string()))));

    // The old script's raw form works too.
    let store = MemStore::default();
    let reg = Registration::new(&store, &cs);
    let q = old_script_query(AK, SK, "SetUserKeys", &format!("&accesskey={AK}&secretkey={SK}"), now());
    assert_eq!(call(&reg, &q).await, (200, KEYS_OK.to_string()));
}

#[tokio::test]
async fn certificates_bind_only_for_the_registered_signer() {
    let dir = tmpdir("certs");
    let (Some(pem), Some(pem2)) = (make_cert(&dir, "alice", "rsa:2048"), make_cert(&dir, "bob", "rsa:2048")) else {
        eprintln!("SKIP certificates_bind_only_for_the_registered_signer: no openssl CLI");
        return;
    };
    let store = MemStore::default();
    let cs = cloud();
    let reg = Registration::new(&store, &cs);
    let fp = wssec::fingerprint(&der_of(&pem));

    // Not registered yet.
    let q = std_query(AK, SK, "SetCertificate", &[("cert", &pem)], now());
    let (s, b) = call(&reg, &q).await;
    assert_eq!(s, 401, "{b}");
    assert!(store.certs.lock().unwrap().is_empty());

    let q = std_query(AK, SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)], now());
    assert_eq!(call(&reg, &q).await.0, 200);
    // Wrong secret.
    let q = std_query(AK, "guess", "SetCertificate", &[("cert", &pem)], now());
    assert_eq!(call(&reg, &q).await.0, 403);
    // Not a certificate.
    let q = std_query(
        AK,
        SK,
        "SetCertificate",
        &[("cert", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")],
        now(),
    );
    assert_eq!(call(&reg, &q).await.0, 400);
    assert!(store.certs.lock().unwrap().is_empty());

    // The old script's form: quote_plus(PEM), spaces as '+'.
    let cert_raw = serde_urlencoded::to_string([("cert", pem.as_str())]).unwrap();
    assert!(cert_raw.contains("BEGIN+CERTIFICATE"));
    let q = old_script_query(AK, SK, "SetCertificate", &format!("&{cert_raw}"), now());
    assert_eq!(call(&reg, &q).await, (200, CERT_OK.to_string()));
    assert_eq!(store.find_certificate(&fp).await.unwrap().as_deref(), Some(AK));

    // Another user cannot take it over.
    let q = std_query(
        "other-key",
        "other-secret",
        "SetUserKeys",
        &[("accesskey", "other-key"), ("secretkey", "other-secret")],
        now(),
    );
    assert_eq!(call(&reg, &q).await.0, 200);
    let q = std_query("other-key", "other-secret", "SetCertificate", &[("cert", &pem)], now());
    assert_eq!(call(&reg, &q).await.0, 409);
    assert_eq!(store.find_certificate(&fp).await.unwrap().as_deref(), Some(AK));

    // Replacing one's own certificate drops the old one.
    let q = std_query(AK, SK, "SetCertificate", &[("cert", &pem2)], now());
    assert_eq!(call(&reg, &q).await.0, 200);
    assert_eq!(store.find_certificate(&fp).await.unwrap(), None);

    // Delete: signed by the owner only.
    let q = std_query(AK, "guess", "DeleteCertificate", &[], now());
    assert_eq!(call(&reg, &q).await.0, 403);
    let q = std_query(AK, SK, "DeleteCertificate", &[], now());
    assert_eq!(call(&reg, &q).await, (200, CERT_DELETED.to_string()));
    let q = std_query(AK, SK, "DeleteCertificate", &[("Version", "2013-02-01")], now());
    assert_eq!(call(&reg, &q).await.0, 404);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn non_rsa_certificates_are_refused() {
    let dir = tmpdir("ec");
    let Some(pem) = make_cert(&dir, "ec", "ec:/dev/null").or_else(|| {
        let p = dir.join("p256.pem");
        std::process::Command::new("openssl").args(["ecparam", "-name", "prime256v1", "-out"]).arg(&p).output().ok()?;
        make_cert(&dir, "ec", &format!("ec:{}", p.display()))
    }) else {
        eprintln!("SKIP non_rsa_certificates_are_refused: no openssl CLI");
        return;
    };
    let e = ec2bridge::ec2::registration::certificate_der(&pem).unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// The two clients against an HTTP front for the handler.

/// Every URL query string the front saw (to check that no secret travelled in a URL).
static SEEN_QUERIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

async fn serve(store: Arc<MemStore>) -> (String, tokio::task::JoinHandle<()>) {
    use axum::extract::{Request, State};
    let app = axum::Router::new().route(
        PATH,
        axum::routing::any(|State(store): State<Arc<MemStore>>, req: Request| async move {
            let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
            let method = req.method().as_str().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            SEEN_QUERIES.lock().unwrap().push(query.clone());
            let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
            let params = if method == "POST" { String::from_utf8(body.to_vec()).unwrap() } else { query };
            let cs = cloud();
            let reg = Registration::new(store.as_ref(), &cs);
            let raw = RawRequest { method: &method, host: &host, path: &path, raw_params: &params };
            let r = reg.handle(&raw, OffsetDateTime::now_utc()).await;
            (http::StatusCode::from_u16(r.status).unwrap(), r.body)
        }),
    );
    let app = app.with_state(store);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}{PATH}", l.local_addr().unwrap().port());
    (url, tokio::spawn(async move { axum::serve(l, app).await.unwrap() }))
}

/// Run a client process off the runtime threads (the server answers it meanwhile).
trait OutputAsync {
    async fn output_async(self) -> std::process::Output;
}
impl OutputAsync for &mut std::process::Command {
    async fn output_async(self) -> std::process::Output {
        let mut cmd = std::process::Command::new(self.get_program());
        cmd.args(self.get_args());
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }
}

fn python() -> Option<String> {
    let p = std::env::var("EC2BRIDGE_VENV").map(|v| format!("{v}/bin/python")).unwrap_or_else(|_| "python3".into());
    std::process::Command::new(&p).arg("--version").output().ok().filter(|o| o.status.success()).map(|_| p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_and_cli_register_against_the_gateway() {
    let dir = tmpdir("clients");
    let Some(pem) = make_cert(&dir, "alice", "rsa:2048") else {
        eprintln!("SKIP script_and_cli_register_against_the_gateway: no openssl CLI");
        return;
    };
    let store = Arc::new(MemStore::default());
    let (url, server) = serve(store.clone()).await;
    let cert = dir.join("alice.crt");
    let fp = wssec::fingerprint(&der_of(&pem));

    if let Some(py) = python() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cloudstack-aws-api-register");
        let out = std::process::Command::new(&py)
            .arg(script)
            .args(["-a", AK, "-s", SK, "-c"])
            .arg(&cert)
            .args(["-u", &url])
            .output_async()
            .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "script: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.lines().collect::<Vec<_>>(), [KEYS_OK, CERT_OK, "User registration is successful!"]);
        assert_eq!(store.find_certificate(&fp).await.unwrap().as_deref(), Some(AK));
        // Wrong secret: clear error, non-zero exit, nothing changed.
        let out = std::process::Command::new(&py)
            .arg(script)
            .args(["--apikey", AK, "--secretkey", "wrong", "--cert"])
            .arg(&cert)
            .args(["--url", &url])
            .output_async()
            .await;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        // Self-consistent (signed with the secret it sends), so CloudStack is the judge.
        assert!(err.contains("401") && err.contains("CloudStack did not accept"), "{err}");
        assert_eq!(store.keys.lock().unwrap().get(AK).map(|k| k.0.as_str()), Some(SK));
        let out = std::process::Command::new(&py)
            .arg(script)
            .args(["-a", AK, "-s", SK, "-u", &url, "--delete"])
            .output_async()
            .await;
        assert!(out.status.success());
        assert_eq!(store.find_certificate(&fp).await.unwrap(), None);
    } else {
        eprintln!("SKIP script part: no python3");
    }

    let bin = env!("CARGO_BIN_EXE_ec2bridge");
    let out = std::process::Command::new(bin)
        .args(["register", "--apikey", AK, "--secretkey", SK, "--cert"])
        .arg(&cert)
        .args(["--url", &url])
        .output_async()
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cli: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(CERT_OK));
    assert_eq!(store.find_certificate(&fp).await.unwrap().as_deref(), Some(AK));
    let out = std::process::Command::new(bin)
        .args(["register", "-a", AK, "-s", SK, "-u", &url, "--delete"])
        .output_async()
        .await;
    assert!(out.status.success());
    assert_eq!(store.find_certificate(&fp).await.unwrap(), None);
    // Second delete: 404, non-zero exit.
    let out = std::process::Command::new(bin)
        .args(["register", "-a", AK, "-s", SK, "-u", &url, "--delete"])
        .output_async()
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    server.abort();
    // Issue 14 item 11: both clients POST; no URL carried the secret (or any parameter).
    let seen = SEEN_QUERIES.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|q| !q.contains(SK) && !q.contains("secretkey")), "{seen:?}");
    // The old script's GET form stays accepted: `set_user_keys_is_verified_and_checked_against_cloudstack`.
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14 item 13: registration calls are single-use, and a SigV2 `Expires` is bounded (one
/// week by default), so a captured SetCertificate cannot re-bind an old certificate later.
#[tokio::test]
async fn registration_calls_are_single_use_and_expires_is_bounded() {
    let dir = tmpdir("once");
    let (Some(pem), Some(pem2)) = (make_cert(&dir, "one", "rsa:2048"), make_cert(&dir, "two", "rsa:2048")) else {
        eprintln!("SKIP registration_calls_are_single_use_and_expires_is_bounded: no openssl CLI");
        return;
    };
    let store = MemStore::default();
    let cs = cloud();
    let reg = Registration::new(&store, &cs);
    let keys = std_query(AK, SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)], now());
    assert_eq!(call(&reg, &keys).await.0, 200);
    let (s, b) = call(&reg, &keys).await;
    assert_eq!(s, 401, "SetUserKeys replayed: {b}");
    assert!(b.contains("already used"), "{b}");
    // A captured SetCertificate cannot re-bind the old certificate after the owner moved on.
    let old_cert = std_query(AK, SK, "SetCertificate", &[("cert", &pem)], now());
    assert_eq!(call(&reg, &old_cert).await.0, 200);
    let new_cert = std_query(AK, SK, "SetCertificate", &[("cert", &pem2)], now());
    assert_eq!(call(&reg, &new_cert).await.0, 200);
    assert_eq!(call(&reg, &old_cert).await.0, 401);
    let fp2 = wssec::fingerprint(&der_of(&pem2));
    assert_eq!(store.find_certificate(&fp2).await.unwrap().as_deref(), Some(AK));

    // Expires instead of Timestamp: a week ahead is fine, more is refused (it used to work until
    // the date, e.g. 2099).
    let expires = |t: OffsetDateTime| {
        let url = signed_url(&format!("http://{HOST}{PATH}"), AK, SK, "DeleteCertificate", &[], now()).unwrap();
        let q = url.split_once('?').unwrap().1.to_string();
        // Re-sign with Expires in place of Timestamp.
        let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(&q).unwrap();
        pairs.retain(|(k, _)| k != "Signature" && k != "Timestamp");
        pairs.push(("Expires".into(), ts(t)));
        let canonical = {
            let mut enc: Vec<String> =
                pairs.iter().map(|(k, v)| format!("{}={}", urlencoding(k), urlencoding(v))).collect();
            enc.sort();
            enc.join("&")
        };
        let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(SK.as_bytes()).unwrap();
        m.update(format!("GET\n{HOST}\n{PATH}\n{canonical}").as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
        format!("{canonical}&Signature={}", urlencoding(&sig))
    };
    let (s, b) = call(&reg, &expires(now() + time::Duration::days(3650))).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.starts_with("InvalidParameterValue") && b.contains("Expires"), "{b}");
    let (s, b) = call(&reg, &expires(now() + time::Duration::days(8))).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = call(&reg, &expires(now() + time::Duration::days(6))).await;
    assert_eq!(s, 200, "{b}");
    let _ = std::fs::remove_dir_all(dir);
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Issue 14 item 12: an expired or not-yet-valid certificate is refused at registration (with the
/// clock-skew tolerance of timestamps). The certificate is valid for two days from now; the
/// gateway's clock is moved instead of the certificate's dates.
#[tokio::test]
async fn expired_or_not_yet_valid_certificates_are_refused() {
    let dir = tmpdir("validity");
    let Some(pem) = make_cert(&dir, "two-days", "rsa:2048") else {
        eprintln!("SKIP expired_or_not_yet_valid_certificates_are_refused: no openssl CLI");
        return;
    };
    let store = MemStore::default();
    let cs = cloud();
    let reg = Registration::new(&store, &cs);
    let call_at = |t: OffsetDateTime, q: String| {
        let reg = &reg;
        async move {
            let r = reg.handle(&RawRequest { method: "GET", host: HOST, path: PATH, raw_params: &q }, t).await;
            (r.status, r.body)
        }
    };
    for t in [now() + time::Duration::days(3), now() - time::Duration::days(1)] {
        let keys = std_query(AK, SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)], t);
        assert_eq!(call_at(t, keys).await.0, 200);
        let (s, b) = call_at(t, std_query(AK, SK, "SetCertificate", &[("cert", &pem)], t)).await;
        assert_eq!(s, 400, "{t}: {b}");
        assert!(b.starts_with("InvalidParameterValue") && b.contains("valid"), "{b}");
        assert!(store.certs.lock().unwrap().is_empty());
    }
    // Within the skew tolerance of its start (a clock 10 minutes behind) and now: accepted.
    let t = now() - time::Duration::minutes(10);
    assert_eq!(call_at(t, std_query(AK, SK, "SetCertificate", &[("cert", &pem)], t)).await.0, 200);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14 item 12: proof of possession. Someone who binds another user's public certificate
/// first (unproven) is replaced by the owner's proven binding (CertSignature made with the
/// certificate's private key); a proven binding cannot be taken over; a proof made with another
/// key is refused and stores nothing. Through both clients (`--key`/`-k`) and the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proven_binding_replaces_an_unproven_one() {
    use ec2bridge::app::register_cli::sign_proof;
    use ec2bridge::ec2::registration::proof_message;
    let dir = tmpdir("proof");
    let (Some(pem), Some(_)) = (make_cert(&dir, "owner", "rsa:2048"), make_cert(&dir, "thief", "rsa:2048")) else {
        eprintln!("SKIP proven_binding_replaces_an_unproven_one: no openssl CLI");
        return;
    };
    let fp = wssec::fingerprint(&der_of(&pem));
    let owner_key = std::fs::read_to_string(dir.join("owner.key")).unwrap();
    let thief_key = std::fs::read_to_string(dir.join("thief.key")).unwrap();
    let (pem_ref, fp_ref) = (&pem, &fp);
    let squat = |store: Arc<MemStore>| async move {
        let (pem, fp) = (pem_ref, fp_ref);
        let cs = cloud();
        let reg = Registration::new(store.as_ref(), &cs);
        let keys = [("accesskey", "other-key"), ("secretkey", "other-secret")];
        assert_eq!(call(&reg, &std_query("other-key", "other-secret", "SetUserKeys", &keys, now())).await.0, 200);
        let q = std_query("other-key", "other-secret", "SetCertificate", &[("cert", pem)], now());
        assert_eq!(call(&reg, &q).await.0, 200);
        assert_eq!(store.find_certificate(fp).await.unwrap().as_deref(), Some("other-key"));
    };

    // The handler: a proof by the wrong key is refused; the right one takes the certificate over.
    let store = Arc::new(MemStore::default());
    squat(store.clone()).await;
    let cs = cloud();
    let reg = Registration::new(store.as_ref(), &cs);
    let keys = std_query(AK, SK, "SetUserKeys", &[("accesskey", AK), ("secretkey", SK)], now());
    assert_eq!(call(&reg, &keys).await.0, 200);
    assert_eq!(call(&reg, &std_query(AK, SK, "SetCertificate", &[("cert", &pem)], now())).await.0, 409);
    let t = now();
    let stamp = t
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap();
    let wrong = sign_proof(&thief_key, &proof_message(AK, &stamp, &fp)).unwrap();
    let (s, b) =
        call(&reg, &std_query(AK, SK, "SetCertificate", &[("cert", &pem), ("CertSignature", &wrong)], t)).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("CertSignature"), "{b}");
    // A proof for another user (or another time) does not transfer.
    let other_user = sign_proof(&owner_key, &proof_message("other-key", &stamp, &fp)).unwrap();
    let q = std_query(AK, SK, "SetCertificate", &[("cert", &pem), ("CertSignature", &other_user)], t);
    assert_eq!(call(&reg, &q).await.0, 400);
    assert_eq!(store.find_certificate(&fp).await.unwrap().as_deref(), Some("other-key"));
    let t = now() + time::Duration::milliseconds(5);
    let stamp = t
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap();
    let proof = sign_proof(&owner_key, &proof_message(AK, &stamp, &fp)).unwrap();
    let (s, b) =
        call(&reg, &std_query(AK, SK, "SetCertificate", &[("cert", &pem), ("CertSignature", &proof)], t)).await;
    assert_eq!((s, b.as_str()), (200, CERT_OK));
    assert_eq!(store.find_certificate(&fp).await.unwrap().as_deref(), Some(AK));
    // Now the squatter cannot take it back.
    let q = std_query("other-key", "other-secret", "SetCertificate", &[("cert", &pem)], now());
    assert_eq!(call(&reg, &q).await.0, 409);

    // Both clients with the key file.
    let cert = dir.join("owner.crt");
    let key = dir.join("owner.key");
    let bin = env!("CARGO_BIN_EXE_ec2bridge");
    let store = Arc::new(MemStore::default());
    let (url, server) = serve(store.clone()).await;
    squat(store.clone()).await;
    let out = std::process::Command::new(bin)
        .args(["register", "--apikey", AK, "--secretkey", SK, "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--url", &url])
        .output_async()
        .await;
    assert!(out.status.success(), "cli: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(store.find_certificate(&fp).await.unwrap().as_deref(), Some(AK));
    server.abort();
    if let Some(py) = python() {
        let store = Arc::new(MemStore::default());
        let (url, server) = serve(store.clone()).await;
        squat(store.clone()).await;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cloudstack-aws-api-register");
        let out = std::process::Command::new(&py)
            .arg(script)
            .args(["-a", AK, "-s", SK, "-c"])
            .arg(&cert)
            .arg("-k")
            .arg(&key)
            .args(["-u", &url])
            .output_async()
            .await;
        assert!(out.status.success(), "script: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(store.find_certificate(&fp).await.unwrap().as_deref(), Some(AK));
        server.abort();
    }
    let _ = std::fs::remove_dir_all(dir);
}
