//! The admin listener (loopback by default, `[admin] listen`): `GET /metrics` (Prometheus text),
//! `GET /healthz` (the process answers) and `GET /readyz` (every readiness check passes: the store
//! answers a query and CloudStack answers an API request; otherwise 503 naming what failed). Kept
//! off the EC2 port so that metrics and backend details are not exposed to EC2 clients.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderValue, StatusCode};

use crate::auth::credentials::BoxFuture;

/// One thing the gateway needs to serve requests. `Err` carries the reason, for the operator.
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// How long a readiness verdict is reused: probes every second from several watchers must not
/// become a load on the database and CloudStack.
const VERDICT_TTL: Duration = Duration::from_millis(1000);
/// A check that does not answer within this time has failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Admin {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    last: tokio::sync::Mutex<Option<(Instant, Verdict)>>,
    /// Reasons last reported, so that a change of readiness is logged once, not per probe.
    logged: Mutex<Option<Vec<String>>>,
}

type Verdict = Vec<(String, Result<(), String>)>;

impl Admin {
    pub fn new(checks: Vec<Arc<dyn ReadinessCheck>>) -> Self {
        Admin { checks, last: tokio::sync::Mutex::new(None), logged: Mutex::new(None) }
    }

    /// Every check's result (cached for `VERDICT_TTL`).
    pub async fn readiness(&self) -> Verdict {
        let mut last = self.last.lock().await;
        if let Some((at, v)) = last.as_ref()
            && at.elapsed() < VERDICT_TTL
        {
            return v.clone();
        }
        let mut v = Vec::new();
        for c in &self.checks {
            let r = match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
            };
            v.push((c.name().to_string(), r));
        }
        self.log_change(&v);
        *last = Some((Instant::now(), v.clone()));
        v
    }

    fn log_change(&self, v: &Verdict) {
        let failing: Vec<String> =
            v.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}"))).collect();
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.as_ref() == Some(&failing) {
            return;
        }
        if failing.is_empty() {
            tracing::info!("ready: store and CloudStack answer");
        } else {
            tracing::warn!(reasons = %failing.join("; "), "not ready");
        }
        *logged = Some(failing);
    }
}

pub fn router(admin: Arc<Admin>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route(
            "/healthz",
            axum::routing::get(|| async { text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8") }),
        )
        .route("/readyz", axum::routing::get(readyz))
        .with_state(admin)
}

fn text(status: StatusCode, body: String, ct: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

async fn metrics() -> Response {
    text(StatusCode::OK, crate::ops::metrics::global().render(), "text/plain; version=0.0.4; charset=utf-8")
}

async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    let v = admin.readiness().await;
    let mut body = String::new();
    for (name, r) in &v {
        match r {
            Ok(()) => body.push_str(&format!("{name}: ok\n")),
            Err(e) => body.push_str(&format!("{name}: not ready: {e}\n")),
        }
    }
    let ready = v.iter().all(|(_, r)| r.is_ok());
    body.insert_str(0, if ready { "ready\n" } else { "not ready\n" });
    text(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body, "text/plain; charset=utf-8")
}
