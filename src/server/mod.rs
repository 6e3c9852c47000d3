//! The HTTP entry on :7080: routes, limits, logging, graceful shutdown. Start-up (configuration,
//! backend, wiring) lives in `crate::app`.
//!
//! Every path answers EC2 (clients use `/`, `/awsapi`, `/ec2/api/`, ...) except `GET /healthz`.
//! One request: read the body (bounded) -> SOAP or Query -> decode parameters -> authenticate ->
//! `Ec2Request` -> handler (the mapping executor) -> XML envelope. Every answer carries
//! `x-amzn-RequestId`. Logs name the request id, method, path, action, access key, status and
//! time; never query strings, bodies, signatures or secrets.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::auth::credentials::{BoxFuture, CredentialSource};
use crate::auth::{AuthSettings, Principal, SignedRequest};
use crate::base::{Code, Ec2Error};
use crate::ec2::query::QueryInput;
use crate::ec2::registration::{self, CertsFromStore, KeyChecker, RawRequest, Registration, RegistrationStore};
use crate::ec2::soap::SoapFrontend;
use crate::ec2::{Ec2Request, render};
use crate::ops::logging::{Admit, FloodGate};
use crate::ops::metrics;

pub mod admin;
pub mod limits;
pub mod listen;
pub mod tls;

pub use listen::{ConnLimits, Listener};

/// What runs an authenticated request. `mapping::Executor` in production; tests plug in stubs.
/// Returns the inner XML of `<ActionResponse>` (after `requestId`).
pub trait Ec2Handler: Send + Sync {
    fn execute<'a>(&'a self, req: &'a Ec2Request, who: &'a Principal) -> BoxFuture<'a, Result<String, Ec2Error>>;

    /// An STS or IAM request (the caller's identity, docs/accounts.md): the inner XML of
    /// `<ActionResult>`. Handlers that know no identities answer `InvalidAction`.
    fn identity<'a>(
        &'a self,
        api: render::IdentityApi,
        req: &'a Ec2Request,
        _who: &'a Principal,
    ) -> BoxFuture<'a, Result<String, Ec2Error>> {
        Box::pin(std::future::ready(Err(crate::mapping::identity::invalid_action(api, &req.action))))
    }
}

impl Ec2Handler for crate::mapping::Executor {
    fn execute<'a>(&'a self, req: &'a Ec2Request, who: &'a Principal) -> BoxFuture<'a, Result<String, Ec2Error>> {
        Box::pin(crate::mapping::Executor::execute(self, req, who))
    }

    fn identity<'a>(
        &'a self,
        api: render::IdentityApi,
        req: &'a Ec2Request,
        who: &'a Principal,
    ) -> BoxFuture<'a, Result<String, Ec2Error>> {
        Box::pin(crate::mapping::Executor::identity(self, api, req, who))
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
    /// Per-user request rate limits; `None`: unlimited.
    pub rate_limiter: Option<Arc<limits::RateLimiter>>,
    /// One INFO line per request (target `ec2bridge::access`); otherwise those lines are DEBUG.
    pub access_log: bool,
    /// More regions on the same listeners (`[[regions]]`), each a gateway of its own CloudStack;
    /// this one is the default region. See [`Gateway::route`].
    pub regions: Vec<RegionRoute>,
    /// How many requests may hold large CloudStack answers at once (`[limits] large_answers`);
    /// one for the process, whatever region a request goes to (the default region's is used).
    pub large_answers: Arc<crate::ops::large_answers::LargeAnswers>,
}

/// One more region served by the same listeners.
pub struct RegionRoute {
    /// A SigV4 credential scope naming it is served here.
    pub name: String,
    /// `host[:port]`: a request without a SigV4 scope (SigV2, SOAP, registration) whose Host is
    /// this is served here.
    pub host: Option<String>,
    pub gw: Arc<Gateway>,
}

impl Gateway {
    pub fn new(handler: Arc<dyn Ec2Handler>, credentials: Arc<dyn CredentialSource>) -> Self {
        let d = crate::config::ServerConfig::default();
        let l = crate::config::LimitsConfig::default();
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
            rate_limiter: None,
            access_log: false,
            regions: Vec::new(),
            large_answers: crate::ops::large_answers::LargeAnswers::new(l.large_answers, l.large_answer_bytes),
        }
    }
}

impl Gateway {
    /// The region a request is for: the one its SigV4 credential scope names (header, query or
    /// form), else the one whose endpoint is its Host, else this (the default) region. A scope
    /// naming no configured region stays here, where `[region] strict` decides.
    pub fn route<'a>(&'a self, parts: &http::request::Parts, body: &[u8]) -> &'a Gateway {
        if self.regions.is_empty() {
            return self;
        }
        if let Some(region) = sigv4_scope_region(parts, body) {
            return self.regions.iter().find(|r| r.name == region).map(|r| r.gw.as_ref()).unwrap_or(self);
        }
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(parts.uri.authority().map(|a| a.as_str()));
        match host {
            Some(h) => self
                .regions
                .iter()
                .find(|r| r.host.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(h)))
                .map(|r| r.gw.as_ref())
                .unwrap_or(self),
            None => self,
        }
    }

    /// The endpoint this request reached us by: the configured public one, else its Host.
    fn client_host(&self, parts: &http::request::Parts) -> Option<String> {
        self.public_endpoint.clone().or_else(|| crate::ec2::query::client_host(&parts.headers, &parts.uri))
    }
}

/// The region of a SigV4 credential scope `<key>/<date>/<region>/<service>/aws4_request`, from
/// the Authorization header, else `X-Amz-Credential` in the query string or form body. Only
/// read to route the request; the verifier parses and checks the scope itself.
fn sigv4_scope_region(parts: &http::request::Parts, body: &[u8]) -> Option<String> {
    sigv4_scope_part(parts, body, 2)
}

/// The service of the SigV4 credential scope (`ec2`, `sts`, `iam`, ...): which AWS API the
/// client meant. The signature itself binds it (the signing key is derived from it).
fn sigv4_scope_service(parts: &http::request::Parts, body: &[u8]) -> Option<String> {
    sigv4_scope_part(parts, body, 3)
}

/// Field `index` (0 key, 1 date, 2 region, 3 service) of the request's SigV4 credential scope.
fn sigv4_scope_part(parts: &http::request::Parts, body: &[u8], index: usize) -> Option<String> {
    let part_of = |cred: &str| -> Option<String> {
        let cred = cred.replace("%2F", "/").replace("%2f", "/");
        let p = cred.split('/').nth(index)?;
        (!p.is_empty() && p.len() <= 64).then(|| p.to_string())
    };
    if let Some(a) = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let rest = a.strip_prefix("AWS4-HMAC-SHA256")?;
        let cred = rest.split(',').find_map(|p| p.trim().strip_prefix("Credential="))?;
        return part_of(cred);
    }
    let from_params = |q: &str| q.split('&').find_map(|p| p.strip_prefix("X-Amz-Credential=")).and_then(part_of);
    if let Some(r) = parts.uri.query().and_then(from_params) {
        return Some(r);
    }
    if parts.method == Method::POST && crate::ec2::query::is_form(&parts.headers) {
        return std::str::from_utf8(body).ok().and_then(from_params);
    }
    None
}

/// The axum app: `GET /healthz`, everything else EC2.
pub fn router(gw: Arc<Gateway>) -> axum::Router {
    axum::Router::new().route("/healthz", axum::routing::get(healthz)).fallback(ec2_entry).with_state(gw)
}

/// Serve on `listener` until `shutdown` resolves; then stop accepting, let in-flight requests
/// finish (bounded by `grace`). Default connection limits; `listen::serve` takes them all.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    listen::serve(vec![Listener { tcp: listener, tls: None }], router(gw), ConnLimits::default(), shutdown, grace).await
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

/// 5xx answers are logged at WARN; in a flood, at most this many lines per 10 s plus a count.
static ERROR_LOG: FloodGate = FloodGate::new(10, 20);

async fn ec2_entry(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let rid = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let _in_flight = metrics::InFlight::start(metrics::global());
    let span = tracing::info_span!("request", request_id = %rid);
    let mut info = LogInfo::default();
    // Only the method and path are kept for the log line, and only when it will be written.
    let line = LineInfo::capture(&gw, &req);
    // A request that may have changed something is never answered with a retryable error while
    // its change can still complete (a retry would make it twice): once a mutating action runs,
    // the request timeout no longer cuts it; its own CloudStack call and job deadlines bound it.
    let mutating = Arc::new(AtomicBool::new(false));
    // Large CloudStack answers take a slot held until the reply is rendered (`ops::large_answers`).
    let outcome = crate::ops::with_request_id(
        Arc::from(rid.as_str()),
        crate::ops::large_answers::with_scope(
            gw.large_answers.clone(),
            MUTATING.scope(mutating.clone(), async {
                let fut = process(&gw, &rid, req, &mut info);
                tokio::pin!(fut);
                match tokio::time::timeout(gw.request_timeout, &mut fut).await {
                    Ok(r) => Ok(r),
                    Err(_) if mutating.load(Ordering::Relaxed) => {
                        tracing::info!("a mutating request runs past the request timeout; its answer is awaited");
                        Ok(fut.await)
                    }
                    Err(e) => Err(e),
                }
            }),
        ),
    )
    .instrument(span.clone())
    .await;
    let reply = outcome.unwrap_or_else(|_| {
        let e = Ec2Error::new(Code::Unavailable, "The request did not complete in time. Please try again shortly.");
        if info.soap { Reply::soap_fault(&rid, &e) } else { Reply::query_error(&rid, &e) }
    });
    let elapsed = started.elapsed();
    metrics::global().request(info.action.as_deref(), reply.code.as_deref().unwrap_or("OK"), elapsed);
    span.in_scope(|| log_request(&line, &info, &reply, elapsed));
    let content_type = reply.content_type;
    let mut r = Response::new(Body::from(reply.body));
    *r.status_mut() = reply.status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    insert_request_id(&mut r, &rid);
    r
}

/// Method and path for the request's log line, captured (one small copy) only when a per-request
/// line will be written: kept off the path of requests nobody logs.
struct LineInfo {
    access: bool,
    method_path: Option<(Method, String)>,
}

impl LineInfo {
    fn capture(gw: &Gateway, req: &Request) -> Self {
        let access = gw.access_log && tracing::enabled!(target: "ec2bridge::access", tracing::Level::INFO);
        let wanted = access || tracing::enabled!(tracing::Level::DEBUG);
        LineInfo {
            access,
            method_path: wanted.then(|| (req.method().clone(), req.uri().path().chars().take(256).collect())),
        }
    }
}

/// The per-request line: DEBUG, or INFO under target `ec2bridge::access` when the access log is
/// on; a 5xx answer also at WARN, flood-limited. Never query strings, bodies or secrets.
fn log_request(line: &LineInfo, info: &LogInfo, reply: &Reply, elapsed: Duration) {
    let (method, path) = match &line.method_path {
        Some((m, p)) => (m.as_str(), p.as_str()),
        None => ("-", "-"),
    };
    let action = info.action.as_deref().unwrap_or("-");
    let access_key = info.access_key.as_deref().unwrap_or("-");
    let status = reply.status.as_u16();
    let code = reply.code.as_deref().unwrap_or("-");
    let ms = elapsed.as_millis() as u64;
    if reply.status.is_server_error() {
        match ERROR_LOG.admit() {
            Admit::Suppress => {}
            a => {
                let suppressed = if let Admit::LogWithSuppressed(n) = a { n } else { 0 };
                tracing::warn!(%method, %path, action, access_key, status, code, ms, suppressed, "ec2 request failed");
            }
        }
    }
    if line.method_path.is_none() {
        return;
    }
    if line.access {
        tracing::info!(target: "ec2bridge::access", %method, %path, action, access_key, status, code, ms, "ec2 request");
    } else {
        tracing::debug!(%method, %path, action, access_key, status, code, ms, "ec2 request");
    }
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
    let gw = gw.route(&parts, &body);
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
    // STS and IAM (signed for service `sts` / `iam`) answer in their own Query dialect.
    if let Some(api) = sigv4_scope_service(&parts, &body).as_deref().and_then(render::IdentityApi::from_service) {
        return match identity_query(gw, api, rid, &parts, &body, info).await {
            Ok(xml) => Reply::ok(xml),
            Err(e) => Reply {
                status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                body: render::identity_error(api, rid, &e),
                code: Some(e.code.to_string()),
                content_type: render::CONTENT_TYPE,
            },
        };
    }
    match query(gw, rid, &parts, &body, info).await {
        Ok(xml) => Reply::ok(xml),
        Err(e) => Reply::query_error(rid, &e),
    }
}

/// An STS / IAM Query request: authenticated exactly like EC2 (the scope names the service the
/// client signed for), answered by the handler's `identity`.
async fn identity_query(
    gw: &Gateway,
    api: render::IdentityApi,
    rid: &str,
    parts: &http::request::Parts,
    body: &Bytes,
    info: &mut LogInfo,
) -> Result<String, Ec2Error> {
    let (req, principal) = authenticated(gw, rid, parts, body, info).await?;
    let out = gw.handler.identity(api, &req, &principal).await;
    if out.as_ref().is_err_and(|e| e.is(Code::AuthFailure)) {
        gw.credentials.forget(&principal.access_key);
    }
    Ok(render::identity_success(api, rid, &req.action, &out?))
}

async fn query(
    gw: &Gateway,
    rid: &str,
    parts: &http::request::Parts,
    body: &Bytes,
    info: &mut LogInfo,
) -> Result<String, Ec2Error> {
    let (mut req, principal) = authenticated(gw, rid, parts, body, info).await?;
    req.host = gw.client_host(parts);
    let inner = execute(gw, &req, &principal).await?;
    Ok(render::query_success(rid, &req.action, &req.version, &inner))
}

/// The Query request parsed, its signature verified and the caller admitted by the rate limits:
/// the same for EC2 and for STS/IAM.
async fn authenticated(
    gw: &Gateway,
    rid: &str,
    parts: &http::request::Parts,
    body: &Bytes,
    info: &mut LogInfo,
) -> Result<(Ec2Request, Principal), Ec2Error> {
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
    let req = input.to_request(rid.to_string())?;
    admit(gw, &principal.access_key, &req.action)?;
    Ok((req, principal))
}

/// The caller's rate limit: EC2's `RequestLimitExceeded` (503, retried by SDKs with backoff)
/// once their bucket is empty. Checked after authentication, so nobody can spend another user's
/// tokens.
fn admit(gw: &Gateway, access_key: &str, action: &str) -> Result<(), Ec2Error> {
    match &gw.rate_limiter {
        Some(l) if !l.admit(access_key, action) => {
            metrics::global().rate_limited(action, "rate");
            Err(Ec2Error::new(Code::RequestLimitExceeded, "Request limit exceeded."))
        }
        _ => Ok(()),
    }
}

tokio::task_local! {
    /// Set once the request's action runs and it is not read-only (see `ec2_entry`).
    static MUTATING: Arc<AtomicBool>;
}

/// Actions that change nothing: cut by the request timeout like any request.
fn read_only(action: &str) -> bool {
    crate::mapping::table::read_only_action(action)
}

/// Run an authenticated request (both front ends).
async fn execute(gw: &Gateway, req: &Ec2Request, principal: &Principal) -> Result<String, Ec2Error> {
    if !read_only(&req.action) {
        let _ = MUTATING.try_with(|m| m.store(true, Ordering::Relaxed));
    }
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
    admit(gw, &access_key, &req.action)?;
    // The certificate names the user; its CloudStack keys come from the credential sources.
    let user = gw.credentials.lookup(&access_key).await?.ok_or_else(Ec2Error::auth_failure)?;
    let principal =
        Principal { access_key, cloudstack: user.cloudstack, account: user.account, account_id: user.account_id };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)], method: Method) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri).method(method);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn scope_region_from_header_query_and_form() {
        let auth =
            "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=00";
        let p = parts("/", &[("authorization", auth)], Method::POST);
        assert_eq!(sigv4_scope_region(&p, b"").as_deref(), Some("eu-west-1"));
        let p =
            parts("/?Action=X&X-Amz-Credential=AKID%2F20250101%2Fap-south-1%2Fec2%2Faws4_request", &[], Method::GET);
        assert_eq!(sigv4_scope_region(&p, b"").as_deref(), Some("ap-south-1"));
        let p = parts("/", &[("content-type", "application/x-www-form-urlencoded")], Method::POST);
        let body = b"Action=X&X-Amz-Credential=AKID%2F20250101%2Fr2%2Fec2%2Faws4_request";
        assert_eq!(sigv4_scope_region(&p, body).as_deref(), Some("r2"));
        // SigV2 and unsigned requests carry no scope; a SigV2 Authorization-less query neither.
        let p = parts("/?Action=X&SignatureVersion=2&AWSAccessKeyId=A", &[], Method::GET);
        assert_eq!(sigv4_scope_region(&p, b""), None);
        let p = parts("/", &[("authorization", "AWS4-HMAC-SHA256 Credential=AKID")], Method::GET);
        assert_eq!(sigv4_scope_region(&p, b""), None);
    }

    struct Named(&'static str);
    impl Ec2Handler for Named {
        fn execute<'a>(&'a self, _: &'a Ec2Request, _: &'a Principal) -> BoxFuture<'a, Result<String, Ec2Error>> {
            Box::pin(async move { Ok(self.0.to_string()) })
        }
    }

    fn gw(name: &'static str) -> Gateway {
        Gateway::new(Arc::new(Named(name)), Arc::new(crate::auth::credentials::MemorySource::new()))
    }

    #[test]
    fn route_by_scope_then_host_then_default() {
        let mut main = gw("main");
        main.regions =
            vec![RegionRoute { name: "eu-west-1".into(), host: Some("eu.ec2.test:80".into()), gw: Arc::new(gw("eu")) }];
        let is = |g: &Gateway, other: &Gateway| std::ptr::eq(g, other);
        let eu = main.regions[0].gw.clone();
        let auth = |r: &str| format!("AWS4-HMAC-SHA256 Credential=AKID/20250101/{r}/ec2/aws4_request, Signature=00");
        let p = parts("/", &[("authorization", &auth("eu-west-1")), ("host", "other:1")], Method::POST);
        assert!(is(main.route(&p, b""), &eu));
        // A scope naming no configured region stays in the default region, whatever the Host.
        let p = parts("/", &[("authorization", &auth("mars-1")), ("host", "eu.ec2.test:80")], Method::POST);
        assert!(is(main.route(&p, b""), &main));
        let p = parts("/?SignatureVersion=2", &[("host", "EU.ec2.test:80")], Method::GET);
        assert!(is(main.route(&p, b""), &eu));
        let p = parts("/?SignatureVersion=2", &[("host", "127.0.0.1:7080")], Method::GET);
        assert!(is(main.route(&p, b""), &main));
    }
}
