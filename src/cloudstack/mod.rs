//! The CloudStack side: signing (shared with the simulator), the client (transport, async jobs,
//! paging, error decoding, metadata cache). Knows nothing of EC2.

pub mod client;
pub mod signing;

pub use client::{ClientOptions, CsClient, JobStarted};

/// A CloudStack user's API keys. Debug never prints the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CsCredentials {
    pub api_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for CsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsCredentials").field("api_key", &self.api_key).field("secret_key", &"<redacted>").finish()
    }
}

/// Why a CloudStack call failed, decoded from CloudStack's own codes (never from its text).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CsError {
    /// The API answered with an error document (HTTP status == `errorcode`).
    #[error("CloudStack {command} failed: {errorcode}/{cserrorcode:?}: {text}")]
    Api { command: String, errorcode: u16, cserrorcode: Option<u32>, text: String },
    /// An async job ended with `jobstatus` 2 (or 3).
    #[error("CloudStack job for {command} failed: {errorcode}: {text}")]
    JobFailed { command: String, errorcode: u16, text: String },
    /// The job did not finish before the deadline.
    #[error("CloudStack job {jobid} for {command} did not finish in time")]
    JobTimeout { command: String, jobid: String },
    /// Connection refused, reset, deadline exceeded, ...
    #[error("CloudStack unreachable: {0}")]
    Transport(String),
    /// The answer of a command that may have changed something was lost, and whether CloudStack
    /// carried it out is not known: never to be answered as a retryable error.
    #[error("CloudStack {command}: outcome unknown: {text}")]
    Unconfirmed { command: String, text: String },
    /// A 2xx answer we could not make sense of.
    #[error("CloudStack answered something unexpected: {0}")]
    BadResponse(String),
}
