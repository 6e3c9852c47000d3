//! CloudStack HTTP client: one pooled connection set per endpoint, signed requests
//! (`signatureVersion=3` + short `expires`), deadlines, async-job polling with backoff, paging,
//! error decoding by errorcode/cserrorcode, and a TTL cache for slow-changing metadata.
//!
//! CONTRACT (other modules rely on these signatures; the bodies are the client work item's):

use std::time::Duration;

use serde_json::Value;

use super::{CsCredentials, CsError};

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline for one HTTP call.
    pub call_timeout: Duration,
    /// Overall deadline when waiting for an async job.
    pub job_timeout: Duration,
    /// First poll interval for `queryAsyncJobResult` (then backoff).
    pub poll_initial: Duration,
    /// TTL of the metadata cache (zones, offerings, templates, OS types).
    pub metadata_ttl: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            call_timeout: Duration::from_secs(30),
            job_timeout: Duration::from_secs(600),
            poll_initial: Duration::from_millis(100),
            metadata_ttl: Duration::from_secs(60),
        }
    }
}

/// What an async command answered at once.
#[derive(Debug, Clone)]
pub struct JobStarted {
    pub jobid: String,
    /// The new object's uuid for async-create commands.
    pub id: Option<String>,
}

#[derive(Clone)]
pub struct CsClient {
    _endpoint: String,
    _opts: ClientOptions,
}

impl CsClient {
    /// `endpoint` is the full API URL, e.g. `http://127.0.0.1:8080/client/api`.
    pub fn new(endpoint: &str, opts: ClientOptions) -> Result<Self, CsError> {
        Ok(CsClient { _endpoint: endpoint.to_string(), _opts: opts })
    }

    /// One signed call. Returns the object under the `<command>response` envelope.
    pub async fn call(
        &self,
        _creds: &CsCredentials,
        _command: &str,
        _params: &[(String, String)],
    ) -> Result<Value, CsError> {
        Err(CsError::Transport("not implemented".into()))
    }

    /// A list command, following pages until `count` items are collected. Returns the items under
    /// `item_key` (e.g. `virtualmachine`).
    pub async fn list_all(
        &self,
        _creds: &CsCredentials,
        _command: &str,
        _params: &[(String, String)],
        _item_key: &str,
    ) -> Result<Vec<Value>, CsError> {
        Err(CsError::Transport("not implemented".into()))
    }

    /// Start an async command; answers at once with its job id (and new object id).
    pub async fn start_job(
        &self,
        _creds: &CsCredentials,
        _command: &str,
        _params: &[(String, String)],
    ) -> Result<JobStarted, CsError> {
        Err(CsError::Transport("not implemented".into()))
    }

    /// Poll a job to its end (backoff, deadline, never blocking a thread). Returns `jobresult`.
    pub async fn wait_job(&self, _creds: &CsCredentials, _command: &str, _jobid: &str) -> Result<Value, CsError> {
        Err(CsError::Transport("not implemented".into()))
    }
}
