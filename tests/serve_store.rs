//! `ec2bridge serve` with its store: the default SQLite file and key file (mode 0600) created on
//! first start, registered keys winning over CloudStack's user table, registrations surviving a
//! restart, and clear start-up errors when the store cannot be opened. The backend is a small
//! in-test CloudStack answering `getUser` (the simulator is not needed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ec2bridge::auth::sigv2;
use ec2bridge::store::{KeySource, Store, generate_key_base64};
use serde_json::json;
use time::OffsetDateTime;

const ADMIN_KEY: &str = "fake-admin-key";
const ADMIN_SECRET: &str = "fake-admin-secret-9f3e";

/// Users CloudStack knows (api key -> secret) and how often each was asked for.
#[derive(Default)]
struct FakeCs {
    users: HashMap<&'static str, &'static str>,
    asked: Mutex<HashMap<String, usize>>,
}

impl FakeCs {
    fn asked(&self, key: &str) -> usize {
        self.asked.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

async fn fake_api(State(cs): State<Arc<FakeCs>>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let mut params: Vec<(String, String)> = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    params.extend(serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap_or_default());
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let json_answer = |status: u16, v: serde_json::Value| {
        (axum::http::StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], v.to_string())
            .into_response()
    };
    // CloudStack matches `apiKey` case-insensitively: a second spelling makes the caller unknown.
    let api_keys = params.iter().filter(|(k, _)| k.eq_ignore_ascii_case("apikey")).count();
    if api_keys != 1 || get("apiKey").as_deref() != Some(ADMIN_KEY) {
        return json_answer(401, json!({"getuserresponse": {"errorcode": 401, "errortext": "unable to verify user"}}));
    }
    if get("command").as_deref() != Some("getUser") {
        return json_answer(432, json!({"errorresponse": {"errorcode": 432, "errortext": "Unknown API command"}}));
    }
    let key = get("userapikey").unwrap_or_default();
    *cs.asked.lock().unwrap().entry(key.clone()).or_default() += 1;
    match cs.users.get(key.as_str()) {
        Some(secret) => json_answer(
            200,
            json!({"getuserresponse": {"user": {"id": "5b0c6d1e-0000-4000-8000-000000000001", "apikey": key,
                "secretkey": secret, "account": "cs-account", "state": "enabled"}}}),
        ),
        None => json_answer(
            431,
            json!({"getuserresponse": {"errorcode": 431, "cserrorcode": 4350,
                "errortext": "Unable to find user by API key"}}),
        ),
    }
}

async fn start_fake_cs(users: &[(&'static str, &'static str)]) -> (String, Arc<FakeCs>) {
    let cs = Arc::new(FakeCs { users: users.iter().copied().collect(), ..Default::default() });
    let app = axum::Router::new().fallback(fake_api).with_state(cs.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/client/api"), cs)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ec2bridge-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ec2bridge serve` on a free loopback port; env `EC2BRIDGE_*` from the caller's environment is
/// not inherited so the test sees only what it sets.
fn serve_cmd(dir: &Path, cs_endpoint: &str, extra_env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ec2bridge"));
    c.args(["serve", "--listen", "127.0.0.1:0", "--ready-file"]).arg(dir.join("ready.json"));
    for (k, _) in std::env::vars() {
        if k.starts_with("EC2BRIDGE_") {
            c.env_remove(k);
        }
    }
    c.env("XDG_DATA_HOME", dir.join("data"))
        .env("EC2BRIDGE_CLOUDSTACK_ENDPOINT", cs_endpoint)
        .env("EC2BRIDGE_CLOUDSTACK_ADMIN_API_KEY", ADMIN_KEY)
        .env("EC2BRIDGE_CLOUDSTACK_ADMIN_SECRET_KEY", ADMIN_SECRET)
        .env("EC2BRIDGE_LOG", "debug");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c
}

struct Running {
    child: Child,
    log: PathBuf,
    endpoint: String,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (graceful shutdown), then wait.
    async fn stop(mut self) -> String {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.wait();
        self.log()
    }
}

async fn start_serve(dir: &Path, cmd: &mut Command) -> Running {
    let ready = dir.join("ready.json");
    let _ = std::fs::remove_file(&ready);
    let log = dir.join(format!("serve-{}.log", uuid::Uuid::new_v4()));
    let child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let mut r = Running { child, log, endpoint: String::new() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            r.endpoint = v["endpoint"].as_str().unwrap().to_string();
            return r;
        }
        if let Some(st) = r.child.try_wait().unwrap() {
            panic!("serve exited ({st}) before it was ready:\n{}", r.log());
        }
        assert!(Instant::now() < deadline, "serve not ready after 60 s:\n{}", r.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A SigV2 (HmacSHA256) GET of DescribeRegions: (status, error code or "").
async fn describe_regions(endpoint: &str, key: &str, secret: &str) -> (u16, String) {
    let host = endpoint.trim_start_matches("http://").to_string();
    let ts = OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut p: Vec<(String, String)> = [
        ("Action", "DescribeRegions"),
        ("Version", "2016-11-15"),
        ("AWSAccessKeyId", key),
        ("SignatureVersion", "2"),
        ("SignatureMethod", "HmacSHA256"),
        ("Timestamp", ts.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut h = http::HeaderMap::new();
    h.insert("host", host.parse().unwrap());
    let sr = ec2bridge::auth::SignedRequest { method: "GET", path: "/", headers: &h, query: &p, form: &[], body: b"" };
    let sig = sigv2::sign(sigv2::Method::HmacSha256, secret, &sigv2::string_to_sign(&sr));
    p.push(("Signature".into(), sig));
    let url = format!("{endpoint}/?{}", serde_urlencoded::to_string(&p).unwrap());
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let code = body.split("<Code>").nth(1).and_then(|s| s.split("</Code>").next()).unwrap_or("").to_string();
    (status, code)
}

const AUTH_CODES: &[&str] =
    &["AuthFailure", "SignatureDoesNotMatch", "RequestExpired", "MissingAuthenticationToken", "IncompleteSignature"];

fn assert_authenticated((status, code): (u16, String), who: &str) {
    // The stub executor answers InvalidAction; the real one answers DescribeRegions. Either way
    // authentication passed.
    assert!(!AUTH_CODES.contains(&code.as_str()) && status != 401 && status != 403, "{who}: {status} {code}");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_creates_store_and_registered_keys_win() {
    let dir = TempDir::new("serve-store");
    let (cs_url, cs) =
        start_fake_cs(&[("AKCSONLY", "cs-only-secret-71c2"), ("AKBOTH", "cs-secret-of-both-5d1a")]).await;

    let s = start_serve(&dir.0, &mut serve_cmd(&dir.0, &cs_url, &[])).await;
    // Default location: the data directory; both files created on first start, the key private.
    let data = dir.0.join("data/ec2bridge");
    let key_file = data.join("store.key");
    assert!(data.join("store.db").is_file(), "no store.db in {}", data.display());
    #[cfg(unix)]
    assert_eq!(mode(&key_file), 0o600);
    let key_text = std::fs::read_to_string(&key_file).unwrap();

    // Register two users while the gateway runs (another process, as `register` would).
    let url = format!("sqlite://{}", data.join("store.db").display());
    let store = Store::open(&url, &KeySource::ExistingFile(key_file.clone())).await.unwrap();
    store.put_user_keys("AKREG", "registered-secret-0b8e", "reg-account", "ROOT").await.unwrap();
    store.put_user_keys("AKBOTH", "registered-both-secret-e4a9", "reg-account", "ROOT").await.unwrap();
    store.close().await;

    assert_authenticated(describe_regions(&s.endpoint, "AKREG", "registered-secret-0b8e").await, "registered");
    assert_eq!(describe_regions(&s.endpoint, "AKREG", "not-it").await, (403, "SignatureDoesNotMatch".into()));
    // Known to both: the registered secret wins and CloudStack is never asked.
    assert_authenticated(describe_regions(&s.endpoint, "AKBOTH", "registered-both-secret-e4a9").await, "both");
    assert_eq!(
        describe_regions(&s.endpoint, "AKBOTH", "cs-secret-of-both-5d1a").await,
        (403, "SignatureDoesNotMatch".into())
    );
    assert_eq!(cs.asked("AKBOTH"), 0);
    assert_eq!(cs.asked("AKREG"), 0);
    // Not registered: CloudStack's user table (admin keys), then nobody.
    assert_authenticated(describe_regions(&s.endpoint, "AKCSONLY", "cs-only-secret-71c2").await, "cloudstack");
    assert_eq!(cs.asked("AKCSONLY"), 1);
    assert_eq!(describe_regions(&s.endpoint, "AKNOBODY", "x").await, (401, "AuthFailure".into()));

    let log = s.stop().await;
    assert!(log.contains("store open"), "{log}");
    // A restart reuses the key and the registrations.
    let s = start_serve(&dir.0, &mut serve_cmd(&dir.0, &cs_url, &[])).await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_text);
    assert_authenticated(describe_regions(&s.endpoint, "AKREG", "registered-secret-0b8e").await, "after restart");
    let log2 = s.stop().await;

    for secret in [
        "registered-secret-0b8e",
        "registered-both-secret-e4a9",
        "cs-only-secret-71c2",
        "cs-secret-of-both-5d1a",
        ADMIN_SECRET,
        key_text.trim(),
    ] {
        assert!(!log.contains(secret) && !log2.contains(secret), "a secret reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_without_its_store() {
    let dir = TempDir::new("serve-badstore");
    let run = |env: &[(&str, &str)]| {
        let out = serve_cmd(&dir.0, "http://127.0.0.1:1/client/api", env).stdout(Stdio::null()).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // Unreachable database: the reason, without the password; nothing listens.
    let (ok, err) = run(&[("EC2BRIDGE_STORE_URL", "postgres://ec2:hunter2@127.0.0.1:1/db")]);
    assert!(!ok && err.contains("opening the store") && err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!dir.0.join("ready.json").exists());
    // Unsupported scheme: refused when the configuration is read.
    let (ok, err) = run(&[("EC2BRIDGE_STORE_URL", "mysql://h/db")]);
    assert!(!ok && err.contains("store.url"), "{err}");
    // A key that is not the one the store was written with.
    let db = format!("sqlite://{}", dir.0.join("k.db").display());
    let a = generate_key_base64().unwrap();
    Store::open(&db, &KeySource::Base64(a.clone())).await.unwrap().close().await;
    let b = generate_key_base64().unwrap();
    let (ok, err) = run(&[("EC2BRIDGE_STORE_URL", &db), ("EC2BRIDGE_STORE_KEY", &b)]);
    assert!(!ok && err.contains("does not match"), "{err}");
    assert!(!err.contains(&b) && !err.contains(&a), "{err}");
    // No $HOME, no $XDG_DATA_HOME, no store configured: refused, naming what to set, and nothing
    // is created in the working directory (issue 14 item 10: a key file there got committed).
    let out = serve_cmd(&dir.0, "http://127.0.0.1:1/client/api", &[])
        .env_remove("XDG_DATA_HOME")
        .env_remove("HOME")
        .current_dir(&dir.0)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("store.url") && err.contains("$HOME"), "{err}");
    assert!(!dir.0.join("ec2bridge-data").exists());
    // A key file others can read is refused at start-up.
    let loose = dir.0.join("loose.key");
    std::fs::write(&loose, format!("{a}\n")).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (ok, err) = run(&[("EC2BRIDGE_STORE_URL", &db), ("EC2BRIDGE_STORE_KEY_FILE", loose.to_str().unwrap())]);
    assert!(!ok && err.contains("readable by group or others"), "{err}");
    // The same key works (and a configured key creates no key file).
    let _ = std::fs::remove_dir_all(dir.0.join("data"));
    let (cs_url, _cs) = start_fake_cs(&[]).await;
    let s = start_serve(
        &dir.0,
        &mut serve_cmd(&dir.0, &cs_url, &[("EC2BRIDGE_STORE_URL", &db), ("EC2BRIDGE_STORE_KEY", &a)]),
    )
    .await;
    s.stop().await;
    assert!(!dir.0.join("data/ec2bridge/store.key").exists());
}

/// What `serve` relies on with the built-in simulator: its admin user can look up any user's keys
/// (getUser), so users the seeded memory source does not know still authenticate.
#[tokio::test]
async fn simulator_admin_finds_users_through_get_user() {
    use ec2bridge::auth::credentials::{CacheOptions, CloudStackAdminSource, CredentialSource};
    use ec2bridge::cloudstack::{CsClient, CsCredentials};
    let sim = ec2bridge::sim::start(ec2bridge::sim::SimOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: None,
        fast: true,
        state_dir: None,
    })
    .await
    .unwrap();
    let admin = sim.users.iter().find(|u| u.is_admin).expect("the simulator seeds an admin");
    let client = Arc::new(CsClient::new(&sim.endpoint, Default::default()).unwrap());
    let src = CloudStackAdminSource::new(
        client,
        CsCredentials { api_key: admin.api_key.clone(), secret_key: admin.secret_key.clone() },
        CacheOptions::default(),
    );
    let plain: Vec<_> = sim.users.iter().filter(|u| !u.is_admin).collect();
    assert!(!plain.is_empty());
    for u in plain {
        let found = src.lookup(&u.api_key).await.unwrap().unwrap_or_else(|| panic!("{} not found", u.account));
        assert_eq!(found.secret_key, u.secret_key);
        assert_eq!(found.account.as_deref(), Some(u.account.as_str()));
    }
    assert!(src.lookup("no-such-api-key").await.unwrap().is_none());
}
