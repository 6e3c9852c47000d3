//! HTTP listener on :7080: routes, limits, logging, graceful shutdown, and `serve` start-up.
//!
//! Every path answers EC2 (clients use `/`, `/awsapi`, `/ec2/api/`, ...) except `GET /healthz`.
//! One request: read the body (bounded) -> SOAP or Query -> decode parameters -> authenticate ->
//! `Ec2Request` -> handler (the mapping executor) -> XML envelope. Every answer carries
//! `x-amzn-RequestId`. Logs name the request id, method, path, action, access key, status and
//! time; never query strings, bodies, signatures or secrets.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::auth::credentials::{
    BoxFuture, CloudStackAdminSource, CredentialSource, MemorySource, StoreSource, gateway_chain,
};
use crate::auth::{AuthSettings, Principal, SignedRequest};
use crate::base::{Code, Ec2Error};
use crate::cloudstack::{ClientOptions, CsClient, CsCredentials};
use crate::config::Config;
use crate::ec2::query::QueryInput;
use crate::ec2::registration::{self, CertsFromStore, KeyChecker, RawRequest, Registration, RegistrationStore};
use crate::ec2::soap::SoapFrontend;
use crate::ec2::{Ec2Request, render};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "EC2BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address (overrides server.listen), e.g. 127.0.0.1:0 for any free port.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Write a JSON file with the endpoint, region and demo users once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Built-in simulator with near-zero delays (tests).
    #[arg(long)]
    pub sim_fast: bool,
}

/// What runs an authenticated request. `mapping::Executor` in production; tests plug in stubs.
/// Returns the inner XML of `<ActionResponse>` (after `requestId`).
pub trait Ec2Handler: Send + Sync {
    fn execute<'a>(&'a self, req: &'a Ec2Request, who: &'a Principal) -> BoxFuture<'a, Result<String, Ec2Error>>;
}

impl Ec2Handler for crate::mapping::Executor {
    fn execute<'a>(&'a self, req: &'a Ec2Request, who: &'a Principal) -> BoxFuture<'a, Result<String, Ec2Error>> {
        Box::pin(crate::mapping::Executor::execute(self, req, who))
    }
}

/// Everything one request needs; shared by all connections.
pub struct Gateway {
    pub handler: Arc<dyn Ec2Handler>,
    pub credentials: Arc<dyn CredentialSource>,
    pub auth: AuthSettings,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// SOAP front end (WS-Security verifier, replay cache).
    pub soap: Arc<SoapFrontend>,
    /// Registered keys and certificates. Without it, SOAP and the registration actions answer
    /// that they are unavailable.
    pub registry: Option<Arc<dyn RegistrationStore>>,
    /// Checks keys against CloudStack before `SetUserKeys` stores them.
    pub key_checker: Option<Arc<dyn KeyChecker>>,
    /// `host[:port]` to report as this gateway's endpoint (config `region.endpoint`) instead of
    /// the Host each request was sent to.
    pub public_endpoint: Option<String>,
}

impl Gateway {
    pub fn new(handler: Arc<dyn Ec2Handler>, credentials: Arc<dyn CredentialSource>) -> Self {
        let d = crate::config::ServerConfig::default();
        Gateway {
            handler,
            credentials,
            auth: AuthSettings::default(),
            max_body_bytes: d.max_body_bytes,
            request_timeout: Duration::from_secs(d.request_timeout_secs),
            soap: Arc::new(SoapFrontend::with_bergshamra().with_paths(crate::mapping::builtin_soap_paths())),
            registry: None,
            key_checker: None,
            public_endpoint: None,
        }
    }
}

impl Gateway {
    /// The endpoint this request reached us by: the configured public one, else its Host.
    fn client_host(&self, parts: &http::request::Parts) -> Option<String> {
        self.public_endpoint.clone().or_else(|| crate::ec2::query::client_host(&parts.headers, &parts.uri))
    }
}

/// The axum app: `GET /healthz`, everything else EC2.
pub fn router(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new().route("/healthz", axum::routing::get(healthz)).fallback(ec2_entry).with_state(gw)
}

/// Serve on `listener` until `shutdown` resolves; then stop accepting, let in-flight requests
/// finish (bounded by `grace`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router(gw)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let mut rx2 = rx.clone();
    let deadline = async move {
        let _ = rx2.wait_for(|v| *v).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server => r,
        _ = deadline => {
            tracing::warn!("shutdown grace period over; dropping remaining connections");
            Ok(())
        }
    }
}

async fn healthz() -> Response {
    let rid = uuid::Uuid::new_v4().to_string();
    let mut r = Response::new(Body::from("ok\n"));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    insert_request_id(&mut r, &rid);
    r
}

fn insert_request_id(r: &mut Response, rid: &str) {
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert(render::REQUEST_ID_HEADER, v);
    }
}

/// An answer before it becomes an HTTP response.
struct Reply {
    status: StatusCode,
    body: String,
    code: Option<String>,
    content_type: &'static str,
}

impl Reply {
    fn ok(body: String) -> Self {
        Reply { status: StatusCode::OK, body, code: None, content_type: render::CONTENT_TYPE }
    }

    fn query_error(rid: &str, e: &Ec2Error) -> Self {
        Reply {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            body: render::query_error(rid, e),
            code: Some(e.code.to_string()),
            content_type: render::CONTENT_TYPE,
        }
    }

    /// SOAP faults always travel with HTTP 500 (SOAP 1.1).
    fn soap_fault(rid: &str, e: &Ec2Error) -> Self {
        Reply {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: render::soap_fault(rid, e),
            code: Some(e.code.to_string()),
            content_type: render::CONTENT_TYPE,
        }
    }
}

/// What the log line tells about a request (filled in as it becomes known).
#[derive(Default)]
struct LogInfo {
    action: Option<String>,
    access_key: Option<String>,
    soap: bool,
}

async fn ec2_entry(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let rid = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %rid);
    let mut info = LogInfo::default();
    let outcome =
        tokio::time::timeout(gw.request_timeout, process(&gw, &rid, req, &mut info)).instrument(span.clone()).await;
    let reply = outcome.unwrap_or_else(|_| {
        let e = Ec2Error::new(Code::Unavailable, "The request did not complete in time. Please try again shortly.");
        if info.soap { Reply::soap_fault(&rid, &e) } else { Reply::query_error(&rid, &e) }
    });
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            path = %path,
            action = info.action.as_deref().unwrap_or("-"),
            access_key = info.access_key.as_deref().unwrap_or("-"),
            status = reply.status.as_u16(),
            code = reply.code.as_deref().unwrap_or("-"),
            ms = started.elapsed().as_millis() as u64,
            "ec2 request"
        )
    });
    let content_type = reply.content_type;
    let mut r = Response::new(Body::from(reply.body));
    *r.status_mut() = reply.status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    insert_request_id(&mut r, &rid);
    r
}

async fn process(gw: &Gateway, rid: &str, req: Request, info: &mut LogInfo) -> Reply {
    let (parts, body) = req.into_parts();
    if parts.method != Method::GET && parts.method != Method::POST {
        let e = Ec2Error::new(
            Code::MethodNotAllowed,
            format!("The HTTP method {} is not allowed; use GET or POST.", parts.method),
        );
        return Reply::query_error(rid, &e);
    }
    let body = match read_body(&parts.headers, body, gw.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return Reply::query_error(rid, &e),
    };
    // SOAP only when no Query signature is present (docs/ec2-wire.md "Choosing the authentication
    // scheme": steps 1-3 come first).
    let query_auth = parts.uri.query().is_some_and(|q| q.contains("X-Amz-Algorithm") || q.contains("SignatureVersion"))
        || parts.headers.get(http::header::AUTHORIZATION).is_some();
    if parts.method == Method::POST && !query_auth && crate::ec2::query::is_soap(&parts.headers) {
        info.soap = true;
        return handle_soap(gw, rid, &parts, body, info).await;
    }
    if let Some(reply) = handle_registration(gw, &parts, &body, info).await {
        return reply;
    }
    match query(gw, rid, &parts, &body, info).await {
        Ok(xml) => Reply::ok(xml),
        Err(e) => Reply::query_error(rid, &e),
    }
}

async fn query(
    gw: &Gateway,
    rid: &str,
    parts: &http::request::Parts,
    body: &Bytes,
    info: &mut LogInfo,
) -> Result<String, Ec2Error> {
    let input = QueryInput::parse(parts.uri.query(), &parts.headers, body)?;
    info.action = input.get("Action").map(|a| a.chars().take(64).collect());
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        headers: &parts.headers,
        query: &input.query,
        form: &input.form,
        body,
    };
    let principal =
        crate::auth::authenticate(&signed, gw.credentials.as_ref(), &gw.auth, OffsetDateTime::now_utc()).await?;
    info.access_key = Some(principal.access_key.clone());
    let mut req = input.to_request(rid.to_string())?;
    req.host = gw.client_host(parts);
    let inner = execute(gw, &req, &principal).await?;
    Ok(render::query_success(rid, &req.action, &req.version, &inner))
}

/// Run an authenticated request (both front ends).
async fn execute(gw: &Gateway, req: &Ec2Request, principal: &Principal) -> Result<String, Ec2Error> {
    let out = gw.handler.execute(req, principal).await;
    // CloudStack refused this user's keys: a cached copy may be stale (rotated/disabled).
    if out.as_ref().is_err_and(|e| e.is(Code::AuthFailure)) {
        gw.credentials.forget(&principal.access_key);
    }
    out
}

// ---- SOAP and registration ---------------------------------------------------------------------
// SOAP requests (POST with Content-Type text/xml or application/soap+xml, or a SOAPAction header,
// and no Query signature): WS-Security against the registered certificates, the same
// `Ec2Request` as Query, answered as a SOAP body (200) or fault (500).
async fn handle_soap(gw: &Gateway, rid: &str, parts: &http::request::Parts, body: Bytes, info: &mut LogInfo) -> Reply {
    match soap(gw, rid, parts, &body, info).await {
        Ok(xml) => Reply::ok(xml),
        Err(e) => Reply::soap_fault(rid, &e),
    }
}

async fn soap(
    gw: &Gateway,
    rid: &str,
    parts: &http::request::Parts,
    body: &Bytes,
    info: &mut LogInfo,
) -> Result<String, Ec2Error> {
    let Some(registry) = &gw.registry else {
        return Err(Ec2Error::new(
            Code::UnsupportedOperation,
            "SOAP requests need the registration store, which this gateway does not have; use the Query API.",
        ));
    };
    let certs = CertsFromStore(registry.as_ref());
    let (access_key, mut req) = gw.soap.authenticate_guarded(&certs, &certs, body, rid.to_string()).await?;
    req.host = gw.client_host(parts);
    info.action = Some(req.action.chars().take(64).collect());
    info.access_key = Some(access_key.clone());
    // The certificate names the user; its CloudStack keys come from the credential sources.
    let user = gw.credentials.lookup(&access_key).await?.ok_or_else(Ec2Error::auth_failure)?;
    let principal = Principal { access_key, cloudstack: user.cloudstack, account: user.account };
    let inner = execute(gw, &req, &principal).await?;
    Ok(render::soap_success(rid, &req.action, &req.version, &inner))
}

/// The registration actions (`SetUserKeys`, `SetCertificate`, ...) of the old registration script:
/// plain-text answers, their own signature rules. `None` for every other action.
async fn handle_registration(
    gw: &Gateway,
    parts: &http::request::Parts,
    body: &Bytes,
    info: &mut LogInfo,
) -> Option<Reply> {
    let raw = if parts.method == Method::POST && crate::ec2::query::is_form(&parts.headers) {
        std::str::from_utf8(body).ok()?
    } else {
        parts.uri.query().unwrap_or("")
    };
    // Cheap look at the Action before anything is decoded twice.
    let action = raw.split('&').find_map(|p| p.strip_prefix("Action="))?;
    if !registration::is_registration_action(action) {
        return None;
    }
    info.action = Some(action.to_string());
    info.access_key =
        raw.split('&').find_map(|p| p.strip_prefix("AWSAccessKeyId=")).map(|k| k.chars().take(128).collect());
    let text = |status: StatusCode, body: String| Reply {
        code: (!status.is_success()).then(|| body.split(':').next().unwrap_or("").to_string()),
        status,
        body,
        content_type: "text/plain; charset=utf-8",
    };
    let (Some(store), Some(keys)) = (&gw.registry, &gw.key_checker) else {
        return Some(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable: registration needs the gateway's store, which is not configured".into(),
        ));
    };
    let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let req = RawRequest { method: parts.method.as_str(), host, path: parts.uri.path(), raw_params: raw };
    let mut reg = Registration::new(store.as_ref(), keys.as_ref());
    reg.max_skew = gw.auth.max_skew;
    reg.max_expires = gw.auth.max_presign_expires;
    let r = reg.handle(&req, OffsetDateTime::now_utc()).await;
    Some(text(StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST), r.body))
}
// ---- end SOAP and registration -----------------------------------------------------------------

async fn read_body(headers: &http::HeaderMap, body: Body, limit: usize) -> Result<Bytes, Ec2Error> {
    let too_large = || {
        Ec2Error::new(
            Code::RequestEntityTooLarge,
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    };
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(Ec2Error::new(Code::IncompleteBody, "The request body could not be read completely.")),
    }
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// One demo user as the ready file lists it. Debug never prints the secret key.
#[derive(Clone, serde::Serialize)]
pub struct ReadyUser {
    pub account: String,
    pub access_key: String,
    pub secret_key: String,
    pub is_admin: bool,
}

impl std::fmt::Debug for ReadyUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyUser")
            .field("account", &self.account)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("is_admin", &self.is_admin)
            .finish()
    }
}

/// The JSON written to `--ready-file` once the gateway listens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadyInfo {
    pub endpoint: String,
    pub region: String,
    pub cloudstack_endpoint: String,
    pub simulator: bool,
    pub users: Vec<ReadyUser>,
}

/// Write atomically (readers never see half a file) and owner-readable only (it holds secrets).
fn write_ready_file(path: &std::path::Path, info: &ReadyInfo) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(info)?.as_bytes())?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The URL clients use for a listening address (a wildcard address is reached over loopback).
fn endpoint_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".parse().expect("literal"),
        ip if ip.is_unspecified() => "::1".parse().expect("literal"),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// `ec2bridge serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(r) = args.ready_file {
        cfg.server.ready_file = Some(r);
    }
    if args.sim_fast {
        cfg.simulator.fast = true;
    }

    // The store first: a store that cannot be opened (bad URL, database down, wrong key) stops
    // start-up with the reason, before anything listens. The default SQLite file and its key file
    // (mode 0600) are created on first start.
    let store = Arc::new(
        crate::store::Store::open_config(&cfg.store)
            .await
            .with_context(|| format!("opening the store at {}", crate::store::redact_url(&cfg.store.url)))?,
    );
    tracing::info!(store = %store.location(), backend = ?store.backend(), "store open");

    // Backend: the configured CloudStack, or the built-in simulator (kept alive by `_sim`).
    let memory = Arc::new(MemorySource::new());
    let mut users = Vec::new();
    let mut admin_keys = match (&cfg.cloudstack.admin_api_key, &cfg.cloudstack.admin_secret_key) {
        (Some(ak), Some(sk)) => Some(CsCredentials { api_key: ak.clone(), secret_key: sk.clone() }),
        _ => None,
    };
    let (cs_endpoint, _sim) = match &cfg.cloudstack.endpoint {
        Some(e) => (e.clone(), None),
        None => {
            let sim = crate::sim::start(crate::sim::SimOptions {
                listen: cfg.simulator.listen,
                seed: cfg.simulator.seed.clone(),
                fast: cfg.simulator.fast,
                state_dir: cfg.simulator.effective_state_dir(),
            })
            .await
            .context("starting the built-in CloudStack simulator")?;
            for u in &sim.users {
                memory.insert(
                    &u.api_key,
                    crate::auth::KnownUser::cloudstack_user(&u.api_key, &u.secret_key, Some(u.account.clone())),
                );
                users.push(ReadyUser {
                    account: u.account.clone(),
                    access_key: u.api_key.clone(),
                    secret_key: u.secret_key.clone(),
                    is_admin: u.is_admin,
                });
            }
            // Users created in the simulator after start-up (createUser, registerUserKeys) are
            // found through its admin, as with a real CloudStack.
            if admin_keys.is_none()
                && let Some(a) = sim.users.iter().find(|u| u.is_admin)
            {
                admin_keys = Some(CsCredentials { api_key: a.api_key.clone(), secret_key: a.secret_key.clone() });
            }
            (sim.endpoint.clone(), Some(sim))
        }
    };
    let client = Arc::new(
        CsClient::new(
            &cs_endpoint,
            ClientOptions {
                call_timeout: Duration::from_secs(cfg.cloudstack.call_timeout_secs),
                job_timeout: Duration::from_secs(cfg.cloudstack.job_timeout_secs),
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("CloudStack client for {}: {e}", crate::store::redact_url(&cs_endpoint)))?,
    );

    // Credential sources, first match wins: registered keys (store), simulator users, then
    // CloudStack itself through admin keys (configured, or the simulator's admin).
    let cloudstack_source = admin_keys.map(|admin| {
        Arc::new(CloudStackAdminSource::new(client.clone(), admin, cfg.cache_options())) as Arc<dyn CredentialSource>
    });
    if cloudstack_source.is_none() {
        tracing::info!(
            "only registered keys authenticate: set cloudstack.admin_api_key/admin_secret_key so that \
             users' CloudStack keys can be looked up"
        );
    }
    let chain = gateway_chain(
        Some(Arc::new(StoreSource::new(store.as_ref().clone()))),
        (!memory.is_empty()).then(|| memory.clone() as Arc<dyn CredentialSource>),
        cloudstack_source,
    );

    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    let endpoint = endpoint_url(addr);

    // The executor reports this gateway as the region's endpoint (DescribeRegions; boto 2 builds
    // connections from it): each request's Host, or region.endpoint; the bound address only when
    // a request has neither, so it is made once the port is known. Its id cache lives in the store,
    // shared by every gateway on the same database and kept across restarts.
    let opts = crate::mapping::ExecutorOptions {
        regions: vec![crate::mapping::RegionInfo {
            name: cfg.region.name.clone(),
            endpoint: cfg.region.endpoint.clone().unwrap_or_else(|| endpoint.trim_start_matches("http://").to_string()),
        }],
        ..Default::default()
    };
    let executor = crate::mapping::Executor::with_options(client.clone(), cfg.mappings.dir.as_deref(), opts)?
        .with_id_cache(Arc::new(crate::store::StoreIdCache::new(store.as_ref().clone())))?;
    // SOAP element paths come from the same (possibly overridden) mapping table.
    let soap = SoapFrontend::with_bergshamra().with_paths(Arc::new(executor.table().soap_paths()));
    let gw = Arc::new(Gateway {
        handler: Arc::new(executor),
        credentials: Arc::new(chain),
        auth: cfg.auth_settings(),
        max_body_bytes: cfg.server.max_body_bytes,
        request_timeout: cfg.request_timeout(),
        soap: Arc::new(soap),
        registry: Some(store.clone()),
        key_checker: Some(client.clone()),
        public_endpoint: cfg.region.endpoint.clone(),
    });

    let ready = ReadyInfo {
        endpoint: endpoint.clone(),
        region: cfg.region.name.clone(),
        // A password in the endpoint's userinfo stays out of the banner and the ready file.
        cloudstack_endpoint: crate::store::redact_url(&cs_endpoint),
        simulator: _sim.is_some(),
        users,
    };
    print_banner(&ready);
    if let Some(p) = &cfg.server.ready_file {
        write_ready_file(p, &ready)?;
    }
    let cs_shown = crate::store::redact_url(&cs_endpoint);
    tracing::info!(%addr, cloudstack = %cs_shown, region = %cfg.region.name, "ec2bridge listening");
    serve(listener, gw, shutdown_signal(), Duration::from_secs(cfg.server.shutdown_grace_secs)).await?;
    if let Some(p) = &cfg.server.ready_file {
        let _ = std::fs::remove_file(p);
    }
    store.close().await;
    tracing::info!("ec2bridge stopped");
    Ok(())
}

/// Human start-up message on stdout (not the log): where to point clients, and the demo keys
/// when the built-in simulator is the backend.
fn print_banner(r: &ReadyInfo) {
    println!("ec2bridge: EC2 endpoint {} (region {})", r.endpoint, r.region);
    if r.simulator {
        println!("backend: built-in CloudStack simulator at {}", r.cloudstack_endpoint);
        for u in &r.users {
            println!(
                "  demo user {}{}: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}",
                u.account,
                if u.is_admin { " (admin)" } else { "" },
                u.access_key,
                u.secret_key
            );
        }
        if let Some(u) = r.users.iter().find(|u| !u.is_admin).or(r.users.first()) {
            println!(
                "try: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws --endpoint-url {} --region {} ec2 describe-availability-zones",
                u.access_key, u.secret_key, r.endpoint, r.region
            );
        }
    } else {
        println!("backend: CloudStack at {}", r.cloudstack_endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(endpoint_url("0.0.0.0:7080".parse().unwrap()), "http://127.0.0.1:7080");
        assert_eq!(endpoint_url("10.1.2.3:80".parse().unwrap()), "http://10.1.2.3:80");
        assert_eq!(endpoint_url("[::]:7080".parse().unwrap()), "http://[::1]:7080");
    }
}
