//! What an operator watches: metrics (Prometheus text), log set-up and flood control, and the
//! request id carried from the HTTP entry down to CloudStack calls (with the request's bound on
//! large CloudStack answers, `large_answers`). A leaf module: it imports
//! nothing else of the crate, so every layer may report into it.

pub mod large_answers;
pub mod logging;
pub mod memory;
pub mod metrics;

use std::sync::Arc;

tokio::task_local! {
    /// The EC2 request id of the request this task is serving (set by the HTTP entry).
    static REQUEST_ID: Arc<str>;
}

/// Run `fut` with `rid` as the current request id.
pub async fn with_request_id<F: std::future::Future>(rid: Arc<str>, fut: F) -> F::Output {
    REQUEST_ID.scope(rid, fut).await
}

/// The request id of the request being served, when there is one.
pub fn request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(|r| r.clone()).ok()
}
