//! What the gateway learns about its CloudStack: a start-up probe with one clear log line, and the
//! readiness checks behind `/readyz`.
//!
//! An unsigned-key request proves the endpoint is CloudStack: CloudStack answers an unknown API key
//! with its own JSON error document (HTTP 401), where a wrong path gets a web server's 404 page and
//! a dead host no answer at all. Admin keys, when configured, are checked with `getUser` on their
//! own key: that is the call they are used for (looking up users' keys), and it needs a root admin.

use std::sync::Arc;

use crate::auth::credentials::BoxFuture;
use crate::cloudstack::{CsClient, CsCredentials, CsError};
use crate::server::admin::ReadinessCheck;

/// Credentials CloudStack cannot know: its answer is an authentication error document.
fn probe_keys() -> CsCredentials {
    CsCredentials { api_key: "ec2bridge-probe-unknown-key".into(), secret_key: "none".into() }
}

/// What the endpoint is, from one unsigned-key request. `Ok`: CloudStack answered.
pub async fn identify(client: &CsClient) -> Result<(), String> {
    let hint = if client.endpoint().trim_end_matches('/').ends_with("/client/api") {
        ""
    } else {
        " (the URL should end in /client/api)"
    };
    match client.call(&probe_keys(), "listCapabilities", &[]).await {
        // An API error document with CloudStack's error codes: it is CloudStack.
        Err(CsError::Api { errorcode, text, .. }) if !text.contains("without a CloudStack error document") => {
            let _ = errorcode;
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(CsError::Api { errorcode, .. }) => {
            Err(format!("answers HTTP {errorcode} but not as CloudStack's API{hint}"))
        }
        Err(CsError::BadResponse(e)) => Err(format!("answers, but not as CloudStack's API{hint}: {e}")),
        Err(CsError::Transport(e)) => Err(format!("does not answer: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Log one line at start-up saying what was found (never the secret key).
pub async fn log_startup_probe(client: &CsClient, endpoint: &str, admin: Option<&CsCredentials>) {
    let shown = crate::store::redact_url(endpoint);
    if let Err(why) = identify(client).await {
        tracing::error!(cloudstack = %shown, "CloudStack endpoint {why}; EC2 requests will fail until it answers");
        return;
    }
    let Some(admin) = admin else {
        tracing::info!(cloudstack = %shown, "CloudStack answers (no admin keys configured: only registered keys authenticate)");
        return;
    };
    let params = [("userapikey".to_string(), admin.api_key.clone())];
    match client.call(admin, "getUser", &params).await {
        Ok(_) => {
            tracing::info!(cloudstack = %shown, admin_api_key = %admin.api_key, "CloudStack answers; admin keys accepted")
        }
        Err(CsError::Api { errorcode, cserrorcode, .. }) => tracing::error!(
            cloudstack = %shown,
            admin_api_key = %admin.api_key,
            errorcode,
            cserrorcode,
            "CloudStack answers but refuses the admin keys (wrong keys, or not a root admin): \
             users' keys cannot be looked up"
        ),
        Err(e) => tracing::warn!(cloudstack = %shown, error = %e, "CloudStack answers; the admin key check failed"),
    }
}

/// `/readyz`: the store answers a query.
pub struct StoreCheck(pub Arc<crate::store::Store>);

impl ReadinessCheck for StoreCheck {
    fn name(&self) -> &str {
        "store"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping().await.map_err(|e| format!("the store does not answer: {e}")) })
    }
}

/// `/readyz`: CloudStack answers its API.
/// A region's CloudStack answers; the name is `cloudstack`, or `cloudstack(<region>)` for the
/// regions after the default one.
pub struct CloudStackCheck(pub Arc<CsClient>, pub String);

impl ReadinessCheck for CloudStackCheck {
    fn name(&self) -> &str {
        &self.1
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            identify(&self.0).await.map_err(|e| format!("{} {e}", crate::store::redact_url(self.0.endpoint())))
        })
    }
}
