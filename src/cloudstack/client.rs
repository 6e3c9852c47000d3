//! CloudStack HTTP client: one pooled connection set per endpoint, signed requests
//! (`signatureVersion=3` + short `expires`), deadlines, async-job polling with backoff, paging,
//! error decoding by errorcode/cserrorcode. (Metadata caching is the executor's: one cache.)
//!
//! CONTRACT (other modules rely on these signatures):
//! - `CsClient::new(endpoint, opts)`; cheap to clone (clones share the pool and counter).
//! - `call` returns the object under the single top-level `*response` key, with `success` made a
//!   JSON bool whatever form CloudStack used. Error documents become `CsError::Api`.
//! - `list_all` pages (page/pagesize=500) and returns the items under `item_key`.
//! - `start_job` + `wait_job` for async commands; `wait_job` never blocks a thread.
//! - `calls()` counts HTTP requests sent to CloudStack (pages and polls included).
//! - Inside an EC2 request's scope, an answer above the large-answer threshold is read only once
//!   the request holds a slot (`ops::large_answers`); no slot within the call's deadline is a
//!   `CsError::Transport` naming the gateway as busy.
//!
//! Secrets and signatures never appear in logs or error messages: the signed URL is built here and
//! reqwest errors are stripped of it before they are turned into text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::{Map, Value};

use super::signing::{java_url_encode, sign};
use super::{CsCredentials, CsError};
use crate::base::fields::{PickFlat, Projected, Scalar};

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline for one HTTP call.
    pub call_timeout: Duration,
    /// Overall deadline when waiting for an async job.
    pub job_timeout: Duration,
    /// First poll interval for `queryAsyncJobResult` (then backoff).
    pub poll_initial: Duration,
    /// Concurrent HTTP calls at most, overall and per API key (0 = unlimited); further calls wait
    /// for a free slot, within their call deadline.
    pub max_concurrent: usize,
    pub max_concurrent_per_key: usize,
    /// PEM CA certificates trusted for an https:// endpoint besides the system's roots.
    pub ca_bundle: Option<std::path::PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            call_timeout: Duration::from_secs(30),
            job_timeout: Duration::from_secs(600),
            poll_initial: Duration::from_millis(100),
            max_concurrent: 0,
            max_concurrent_per_key: 0,
            ca_bundle: None,
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

/// How far ahead `expires` is set. Short so a captured URL cannot be replayed for long, but with
/// room for ordinary clock skew; below the 15 minutes CloudStack enforces when it is strict.
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(300);
/// CloudStack's default (and usual maximum) page size.
pub const PAGE_SIZE: usize = 500;
/// Upper bound of the poll interval while waiting for a job.
pub const POLL_MAX: Duration = Duration::from_secs(2);
/// Queries longer than this go as a POST form body (CloudStack takes 2 KB userdata by GET only).
const MAX_GET_QUERY: usize = 2048;
/// Refuse answers larger than this rather than exhaust memory on a broken backend.
const MAX_BODY: usize = 256 * 1024 * 1024;
/// A list that never ends (a backend ignoring `page`) stops here.
const MAX_PAGES: usize = 10_000;
/// Consecutive transport failures tolerated while polling a job before giving up.
const POLL_TRANSPORT_RETRIES: u32 = 3;
/// How far before the send a lost answer's job is looked for: CloudStack's clock may be behind
/// the gateway's (docs/cloudstack-wire.md "Lost answers").
const LOST_JOB_SKEW: Duration = Duration::from_secs(60);
/// How many times a lost answer's jobs are listed while every candidate is another call's.
const LOST_JOB_ROUNDS: usize = 3;
/// Job ids remembered for telling a lost answer's job from others: for this long (well past the
/// look-back of `LOST_JOB_SKEW`) ...
const KNOWN_JOBS_KEEP: Duration = Duration::from_secs(600);
/// ... and never more than this many (the oldest are forgotten first).
const KNOWN_JOBS_MAX: usize = 65_536;
/// Parameters the client sets itself; callers' copies are ignored.
const RESERVED: [&str; 6] = ["command", "response", "apiKey", "signature", "signatureVersion", "expires"];

/// The job ids of `Inner::known_jobs`: a set, plus the ids in the order they were learnt, so that
/// forgetting the expired ones (and the oldest past `KNOWN_JOBS_MAX`) takes only what it forgets.
/// Every start of an async command adds one: a scan of the whole set per start made each
/// RunInstances slower the more jobs the last ten minutes had (bench/README.md "Session 11").
#[derive(Default)]
struct KnownJobs {
    /// Job id -> when it was (last) learnt.
    at: std::collections::HashMap<String, Instant>,
    /// (when, job id), oldest first; an id learnt again has an older entry here that no longer
    /// matches `at` and is skipped when it comes up.
    order: std::collections::VecDeque<(Instant, String)>,
}

impl KnownJobs {
    fn contains(&self, jobid: &str) -> bool {
        self.at.contains_key(jobid)
    }

    fn insert(&mut self, jobid: &str, now: Instant) {
        self.forget(now);
        self.at.insert(jobid.to_string(), now);
        self.order.push_back((now, jobid.to_string()));
    }

    /// Drop the ids older than `KNOWN_JOBS_KEEP`, and the oldest while there are
    /// `KNOWN_JOBS_MAX` or more (room for one more).
    fn forget(&mut self, now: Instant) {
        while let Some((t, id)) = self.order.front() {
            let expired = now.saturating_duration_since(*t) >= KNOWN_JOBS_KEEP;
            if !expired && self.order.len() < KNOWN_JOBS_MAX {
                break;
            }
            if self.at.get(id) == Some(t) {
                self.at.remove(id);
            }
            self.order.pop_front();
        }
    }
}

struct Inner {
    endpoint: reqwest::Url,
    http: reqwest::Client,
    opts: ClientOptions,
    calls: AtomicU64,
    slots: Option<Arc<tokio::sync::Semaphore>>,
    key_slots: DashMap<String, Arc<tokio::sync::Semaphore>>,
    /// Job ids this client was told of (or claimed after a lost answer), with when: a job whose
    /// answer was lost is looked for among the jobs nobody here knows (`recover_job`).
    known_jobs: std::sync::Mutex<KnownJobs>,
    /// Async commands being sent (their send numbers), per API key and command: a lost answer's
    /// job is chosen once those in flight when the jobs were listed have their answers.
    sending: DashMap<String, std::collections::HashSet<u64>>,
    next_send: AtomicU64,
    /// Calls (hashes of key, command and parameters but the page) whose last answer was large
    /// (`ops::large_answers`): the next such call takes its request's slot before it is sent.
    large_calls: std::sync::Mutex<std::collections::HashSet<u64>>,
}

#[derive(Clone)]
pub struct CsClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsClient")
            .field("endpoint", &crate::base::util::redact_url(self.inner.endpoint.as_str()))
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl CsClient {
    /// `endpoint` is the full API URL, e.g. `http://127.0.0.1:8080/client/api`.
    pub fn new(endpoint: &str, opts: ClientOptions) -> Result<Self, CsError> {
        // Messages show the endpoint without a userinfo password.
        let shown = crate::base::util::redact_url(endpoint);
        let url = reqwest::Url::parse(endpoint)
            .map_err(|e| CsError::Transport(format!("invalid CloudStack endpoint {shown:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(CsError::Transport(format!("CloudStack endpoint {shown:?} is not an http(s) URL")));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(CsError::Transport(format!("CloudStack endpoint {shown:?} must not carry a query")));
        }
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &opts.ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| CsError::Transport(format!("reading CA bundle {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| CsError::Transport(format!("CA bundle {}: {}", path.display(), error_text(&e))))?;
            if certs.is_empty() {
                return Err(CsError::Transport(format!("CA bundle {}: no certificate in it", path.display())));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .timeout(opts.call_timeout)
            .connect_timeout(opts.call_timeout.min(Duration::from_secs(10)))
            // Below the idle timeouts of common servers (Jetty: 30 s), so we close idle connections
            // before the server does and rarely pick a dead one.
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| CsError::Transport(format!("cannot build HTTP client: {}", error_text(&e.without_url()))))?;
        Ok(CsClient {
            inner: Arc::new(Inner {
                endpoint: url,
                http,
                slots: (opts.max_concurrent > 0).then(|| Arc::new(tokio::sync::Semaphore::new(opts.max_concurrent))),
                opts,
                calls: AtomicU64::new(0),
                key_slots: DashMap::new(),
                known_jobs: Default::default(),
                sending: DashMap::new(),
                next_send: AtomicU64::new(0),
                large_calls: Default::default(),
            }),
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint.as_str()
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// HTTP requests sent to CloudStack so far by this client and its clones (every page and every
    /// job poll counts), for "backend calls per EC2 action" figures.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// One signed call. Returns the object under the `<command>response` envelope.
    ///
    /// Empty values are left out (as CloudStack clients do); a repeated name keeps its last value
    /// (as the servlet would); `command`, `response`, `apiKey`, `signature`, `signatureVersion`
    /// and `expires` are always the client's own.
    pub async fn call(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
    ) -> Result<Value, CsError> {
        self.call_delivery(creds, command, params).await.0
    }

    /// `call`, and whether a failed call may have reached CloudStack (false only when it
    /// certainly did not: no connection, or no call slot in time).
    async fn call_delivery(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
    ) -> (Result<Value, CsError>, bool) {
        let started = Instant::now();
        let (body, delivered) = self.send(creds, command, params).await;
        let out = match body {
            Ok((status, bytes)) => decode(command, status, &bytes),
            Err(e) => Err(e),
        };
        note_call(command, started, &out);
        (out, delivered)
    }

    /// A list command, following pages until `count` items are collected. Returns the items under
    /// `item_key` (e.g. `virtualmachine`).
    pub async fn list_all(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
        item_key: &str,
    ) -> Result<Vec<Value>, CsError> {
        let mut base: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k != "page" && k != "pagesize").cloned().collect();
        base.push(("pagesize".into(), PAGE_SIZE.to_string()));
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut p = base.clone();
            p.push(("page".into(), page.to_string()));
            let resp = self.call(creds, command, &p).await?;
            let (batch, count) = page_items(command, resp, item_key)?;
            let n = batch.len();
            items.extend(batch);
            if last_page(count, n, items.len()) {
                return Ok(items);
            }
        }
        Err(CsError::BadResponse(format!("{command}: more than {MAX_PAGES} pages")))
    }

    /// `list_all` for a caller that reads only the fields `names` of each item: each page's
    /// items reach `each` as those fields, flat, `names.len()` per item (`decode_picked`); the
    /// items are read once, inside the pass over the answer.
    pub async fn list_all_picked(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
        item_key: &str,
        names: &[&str],
        each: &mut (dyn FnMut(&[Scalar<'_>]) -> Result<(), CsError> + Send),
    ) -> Result<(), CsError> {
        let mut read = |status: u16, body: &[u8]| decode_picked(command, status, body, item_key, names, &mut *each);
        self.list_all_pages(creds, command, params, &mut read).await
    }

    /// `list_all` with each item object holding only the fields in `keep` (sorted), decoded inside
    /// the one pass over each page (`decode_projected`).
    pub async fn list_all_projected(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
        item_key: &str,
        keep: &crate::base::fields::Keep,
    ) -> Result<Vec<Value>, CsError> {
        let mut all = Vec::new();
        let mut read = |status: u16, body: &[u8]| {
            let (items, count) = decode_projected(command, status, body, item_key, keep)?;
            let n = items.len();
            all.extend(items);
            Ok((n, count))
        };
        self.list_all_pages(creds, command, params, &mut read).await?;
        Ok(all)
    }

    /// The paging of `list_all_picked` and `list_all_projected`: `read` decodes one page's answer
    /// (status, body) and answers how many items it held and the list's `count`.
    async fn list_all_pages(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
        read: &mut PageReader<'_>,
    ) -> Result<(), CsError> {
        let mut base: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k != "page" && k != "pagesize").cloned().collect();
        base.push(("pagesize".into(), PAGE_SIZE.to_string()));
        let mut got = 0;
        for page in 1..=MAX_PAGES {
            let mut p = base.clone();
            p.push(("page".into(), page.to_string()));
            let started = Instant::now();
            let out = match self.send(creds, command, &p).await.0 {
                Ok((status, body)) => read(status, &body),
                Err(e) => Err(e),
            };
            note_call(command, started, &out);
            let (n, count) = out?;
            got += n;
            if last_page(count, n, got) {
                return Ok(());
            }
        }
        Err(CsError::BadResponse(format!("{command}: more than {MAX_PAGES} pages")))
    }

    /// One page of a list command: its items and CloudStack's `count` of the whole list (None
    /// when the release leaves `count` out, and then the caller cannot know where the list ends).
    pub async fn list_page(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
        item_key: &str,
        page: usize,
        pagesize: usize,
    ) -> Result<(Vec<Value>, Option<u64>), CsError> {
        let mut p: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k != "page" && k != "pagesize").cloned().collect();
        p.push(("pagesize".into(), pagesize.to_string()));
        p.push(("page".into(), page.to_string()));
        let resp = self.call(creds, command, &p).await?;
        page_items(command, resp, item_key)
    }

    /// `list_page` with each item object holding only the fields in `keep` (sorted), decoded
    /// inside the one pass over the answer (`decode_projected`).
    #[allow(clippy::too_many_arguments)]
    pub async fn list_page_projected(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
        item_key: &str,
        page: usize,
        pagesize: usize,
        keep: &crate::base::fields::Keep,
    ) -> Result<(Vec<Value>, Option<u64>), CsError> {
        let mut p: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k != "page" && k != "pagesize").cloned().collect();
        p.push(("pagesize".into(), pagesize.to_string()));
        p.push(("page".into(), page.to_string()));
        let started = Instant::now();
        let out = match self.send(creds, command, &p).await.0 {
            Ok((status, body)) => decode_projected(command, status, &body, item_key, keep),
            Err(e) => Err(e),
        };
        note_call(command, started, &out);
        out
    }

    /// Start an async command; answers at once with its job id (and new object id).
    ///
    /// When the answer is lost after the command may have reached CloudStack (the connection
    /// dropped, the deadline passed), the job is looked for among the caller's jobs
    /// (`listAsyncJobs`, docs/cloudstack-wire.md "Lost answers"): found, it is answered as if the
    /// answer had arrived; certainly not started, the transport error stands (a retry is safe);
    /// anything else is `CsError::Unconfirmed`, which callers must not answer as retryable.
    pub async fn start_job(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
    ) -> Result<JobStarted, CsError> {
        let sent = time::OffsetDateTime::now_utc();
        let sending = self.sending_guard(&creds.api_key, command);
        let (resp, delivered) = self.call_delivery(creds, command, params).await;
        drop(sending);
        let resp = match resp {
            Ok(r) => r,
            Err(CsError::Transport(e)) if delivered => return self.recover_job(creds, command, sent, e).await,
            Err(e) => return Err(e),
        };
        let jobid = resp
            .get("jobid")
            .and_then(as_id)
            .ok_or_else(|| CsError::BadResponse(format!("{command}: no jobid in the answer")))?;
        self.know_job(&jobid);
        let id = resp.get("id").and_then(as_id);
        Ok(JobStarted { jobid, id })
    }

    /// Marks `command` as being sent with `api_key` until the guard drops.
    fn sending_guard(&self, api_key: &str, command: &str) -> SendingGuard {
        let key = format!("{api_key}\u{0}{command}");
        let n = self.inner.next_send.fetch_add(1, Ordering::Relaxed);
        self.inner.sending.entry(key.clone()).or_default().insert(n);
        SendingGuard { inner: self.inner.clone(), key, n }
    }

    fn know_job(&self, jobid: &str) {
        let mut known = self.inner.known_jobs.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(jobid, Instant::now());
    }

    /// Claim `jobid` as this call's: false when it is known already (another call's).
    fn claim_job(&self, jobid: &str) -> bool {
        let mut known = self.inner.known_jobs.lock().unwrap_or_else(|e| e.into_inner());
        // One lock for the test and the insert: two recoveries never claim the same job.
        if known.contains(jobid) {
            return false;
        }
        known.insert(jobid, Instant::now());
        true
    }

    /// The answer of `command` (sent at `sent`) was lost: find the job it started, if any.
    async fn recover_job(
        &self,
        creds: &CsCredentials,
        command: &str,
        sent: time::OffsetDateTime,
        lost: String,
    ) -> Result<JobStarted, CsError> {
        let unconfirmed = |why: String| {
            tracing::warn!(command, error = %lost, why = %why, "the answer of an async command was lost and whether it started is unknown");
            CsError::Unconfirmed { command: command.to_string(), text: format!("{lost}; {why}") }
        };
        let key = format!("{}\u{0}{command}", creds.api_key);
        let since = sent - LOST_JOB_SKEW;
        let mut params =
            vec![("listall".to_string(), "true".to_string()), ("startdate".to_string(), format_expires(since))];
        // Two lost answers of the same command can list the jobs at different moments: the one
        // listing later sees both jobs and may claim the older, the other call's, while the other
        // call's earlier list held only that job. The claimer's own job was in its list, so it
        // exists and is unclaimed: a fresh list gives it to the other call (the two jobs are the
        // same command in the same account, so which call carries on with which does not matter).
        for round in 0..LOST_JOB_ROUNDS {
            let jobs = match self.list_jobs_since(creds, &mut params).await {
                Ok(jobs) => jobs,
                Err(why) => return Err(unconfirmed(why)),
            };
            if round == 0 {
                self.wait_for_answers_in_flight(&key).await;
            }
            let mut candidates: Vec<(time::OffsetDateTime, String, Option<String>)> = jobs
                .iter()
                .filter(|j| j.get("cmd").and_then(Value::as_str).is_some_and(|c| job_cmd_is(c, command)))
                .filter_map(|j| {
                    let created = parse_cs_date(j.get("created").and_then(Value::as_str)?)?;
                    let jobid = j.get("jobid").and_then(as_id)?;
                    (created >= since).then(|| (created, jobid, j.get("jobinstanceid").and_then(as_id)))
                })
                .collect();
            candidates.sort();
            let seen = candidates.len();
            for (_, jobid, id) in candidates {
                if self.claim_job(&jobid) {
                    tracing::warn!(command, jobid = %jobid, error = %lost, "the answer of an async command was lost; CloudStack started its job, carrying on with it");
                    return Ok(JobStarted { jobid, id });
                }
            }
            if seen == 0 {
                break;
            }
        }
        // A dropped connection: CloudStack was done with the request and started nothing. A
        // deadline: the request may still be on its way to starting a job.
        if lost.contains(DEADLINE_MARK) {
            return Err(unconfirmed("no job yet, but the request may still be running".into()));
        }
        tracing::info!(command, error = %lost, "the answer of an async command was lost; CloudStack started no job for it");
        Err(CsError::Transport(lost))
    }

    /// The caller's jobs since the look-back in `params` (three tries; a release refusing the
    /// `startdate` form is asked without it, and `params` keeps that for the next round).
    async fn list_jobs_since(
        &self,
        creds: &CsCredentials,
        params: &mut Vec<(String, String)>,
    ) -> Result<Vec<Value>, String> {
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            match self.list_all(creds, "listAsyncJobs", params, "asyncjobs").await {
                // A release that takes `startdate` as a day only: every job of the account.
                Err(CsError::Api { errorcode: 431, .. }) if params.len() == 2 => {
                    params.truncate(1);
                    continue;
                }
                Ok(l) => return Ok(l),
                Err(CsError::Transport(_)) => continue,
                Err(CsError::Api { errorcode, .. }) if errorcode == 429 || errorcode >= 500 => continue,
                Err(e) => return Err(format!("listAsyncJobs: {e}")),
            }
        }
        Err("listAsyncJobs did not answer".into())
    }

    /// Waits (at most one call deadline) for the answers of the same command and key that are
    /// on their way now: the jobs they name drop out of a lost answer's candidates.
    async fn wait_for_answers_in_flight(&self, key: &str) {
        let in_flight: Vec<u64> = self.inner.sending.get(key).map(|s| s.iter().copied().collect()).unwrap_or_default();
        let until = Instant::now() + self.inner.opts.call_timeout;
        while Instant::now() < until
            && self.inner.sending.get(key).is_some_and(|s| in_flight.iter().any(|n| s.contains(n)))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Poll a job to its end (backoff, deadline, never blocking a thread). Returns `jobresult`.
    pub async fn wait_job(&self, creds: &CsCredentials, command: &str, jobid: &str) -> Result<Value, CsError> {
        let started = Instant::now();
        let out = self.wait_job_inner(creds, command, jobid).await;
        crate::ops::metrics::global().job_wait(command, outcome_label(&out), started.elapsed());
        out
    }

    async fn wait_job_inner(&self, creds: &CsCredentials, command: &str, jobid: &str) -> Result<Value, CsError> {
        // checked: a configured timeout of u64::MAX seconds means "no deadline", not a panic.
        let deadline = Instant::now().checked_add(self.inner.opts.job_timeout);
        let remaining = || deadline.map_or(POLL_MAX, |d| d.saturating_duration_since(Instant::now()));
        let mut delay = self.inner.opts.poll_initial.max(Duration::from_millis(1));
        let mut transport_failures = 0;
        let params = [("jobid".to_string(), jobid.to_string())];
        loop {
            // Sleep first: a job just started is practically never done, and every poll is a
            // backend call. At least one poll happens, even with a zero deadline.
            tokio::time::sleep(delay.min(remaining())).await;
            match self.call(creds, "queryAsyncJobResult", &params).await {
                Ok(job) => {
                    transport_failures = 0;
                    if let Some(result) = job_outcome(command, &job)? {
                        return Ok(result);
                    }
                }
                Err(CsError::Transport(e)) => {
                    // A blip while polling must not lose a job that is still running.
                    transport_failures += 1;
                    if transport_failures > POLL_TRANSPORT_RETRIES {
                        return Err(CsError::Transport(e));
                    }
                }
                // The poll itself was refused for a passing reason (throttled, a server error):
                // the job runs on, so it is polled again like after a transport blip; past the
                // retries its outcome is unknown (a Transport error, never a verdict on the job).
                Err(CsError::Api { errorcode, text, .. }) if errorcode == 429 || errorcode >= 500 => {
                    transport_failures += 1;
                    if transport_failures > POLL_TRANSPORT_RETRIES {
                        return Err(CsError::Transport(format!(
                            "polling job {jobid} of {command}: queryAsyncJobResult answered {errorcode}: {text}"
                        )));
                    }
                }
                Err(e) => return Err(e),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(CsError::JobTimeout { command: command.to_string(), jobid: jobid.to_string() });
            }
            delay = (delay.saturating_mul(3) / 2).min(POLL_MAX);
        }
    }

    /// Sign and send; returns HTTP status and body. Counts the call.
    async fn send(
        &self,
        creds: &CsCredentials,
        command: &str,
        params: &[(String, String)],
    ) -> (Result<(u16, bytes::Bytes), CsError>, bool) {
        let query = signed_query(creds, command, params, time::OffsetDateTime::now_utc());
        let inner = &*self.inner;
        let req = if query.len() > MAX_GET_QUERY {
            inner
                .http
                .post(inner.endpoint.clone())
                .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(query)
        } else {
            let mut url = inner.endpoint.clone();
            url.set_query(Some(&query));
            inner.http.get(url)
        };
        // The EC2 request this call serves, for CloudStack's and proxies' logs.
        let req = match crate::ops::request_id() {
            Some(rid) => req.header("X-Request-Id", &*rid),
            None => req,
        };
        let timeout = inner.opts.call_timeout;
        // A large answer waits for its request's slot (`ops::large_answers`) at most until a
        // quarter of the call's deadline is left for reading it.
        let wait_until = Instant::now().checked_add(timeout - timeout / 4);
        // Set once the request is handed to the connection: before that, nothing reached
        // CloudStack whatever happens.
        let sending = std::sync::atomic::AtomicBool::new(false);
        // A call whose last answer was large waits for its slot before it is sent (the answer
        // then never waits unread in the connection); the answer's size below corrects the guess.
        let bounded = crate::ops::large_answers::bounded();
        let large_key = || large_call_key(creds, command, params);
        let fut = async {
            if bounded
                && crate::ops::large_answers::may_wait()
                && self.expects_large(large_key)
                && let Err(busy) = crate::ops::large_answers::take_slot(wait_until).await
            {
                return Ok(Err(CsError::Transport(format!("{command}: {busy}"))));
            }
            let mut slots = Some(self.slots(&creds.api_key).await);
            inner.calls.fetch_add(1, Ordering::Relaxed);
            sending.store(true, Ordering::Relaxed);
            let mut resp = req.send().await?;
            let status = resp.status().as_u16();
            let too_large = || CsError::BadResponse(format!("{command}: answer larger than {MAX_BODY} bytes"));
            // Content-Length when the answer has one (its buffer is sized once, not regrown).
            let declared = resp.content_length().map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            if declared.is_some_and(|n| n > MAX_BODY) {
                return Ok(Err(too_large()));
            }
            // Before a large body is read (it waits unread in the connection meanwhile). The call
            // slots go first: a call waiting here must not keep another request's calls waiting.
            let mut large = |bytes: usize| {
                let wait = crate::ops::large_answers::must_wait(bytes);
                if wait {
                    drop(slots.take());
                }
                async move {
                    if !wait {
                        return Ok(());
                    }
                    crate::ops::large_answers::take_slot(wait_until)
                        .await
                        .map_err(|busy| CsError::Transport(format!("{command}: {busy}")))
                }
            };
            if let Some(n) = declared
                && let Err(e) = large(n).await
            {
                return Ok(Err(e));
            }
            let mut body = bytes::BytesMut::with_capacity(declared.unwrap_or(0));
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Ok(Err(too_large()));
                }
                if declared.is_none()
                    && let Err(e) = large(body.len() + chunk.len()).await
                {
                    return Ok(Err(e));
                }
                body.extend_from_slice(&chunk);
            }
            if bounded {
                self.remember_large(large_key, crate::ops::large_answers::is_large(body.len()));
            }
            Ok::<_, reqwest::Error>(Ok((status, body.freeze())))
        };
        // reqwest enforces the same deadline; the outer timeout also bounds anything it does not.
        let (e, delivered) = match tokio::time::timeout(timeout, fut).await {
            Err(_) => return (Err(deadline_error(command, timeout)), sending.load(Ordering::Relaxed)),
            Ok(Err(e)) if e.is_timeout() => return (Err(deadline_error(command, timeout)), true),
            // A large answer's wait that ended before the send: nothing reached CloudStack.
            Ok(Ok(r)) => return (r, sending.load(Ordering::Relaxed)),
            // No connection: the request never left.
            Ok(Err(e)) => {
                let delivered = !e.is_connect();
                (e, delivered)
            }
        };
        let text = format!("{command} to {}: {}", host_of(&inner.endpoint), error_text(&e.without_url()));
        (Err(CsError::Transport(text)), delivered)
    }
}

/// Large calls remembered at most (a full set starts again: a forgotten call only waits with its
/// answer unread once more).
const LARGE_CALLS_MAX: usize = 4096;

/// A call's identity for `Inner::large_calls`: the caller's key, the command and its parameters,
/// the page aside (the pages of one list are alike).
fn large_call_key(creds: &CsCredentials, command: &str, params: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    creds.api_key.hash(&mut h);
    command.hash(&mut h);
    for (k, v) in params.iter().filter(|(k, _)| k != "page") {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

impl CsClient {
    /// Whether this call's last answer was large (the call is hashed only when any was).
    fn expects_large(&self, key: impl FnOnce() -> u64) -> bool {
        let calls = self.inner.large_calls.lock().unwrap_or_else(|e| e.into_inner());
        !calls.is_empty() && calls.contains(&key())
    }

    fn remember_large(&self, key: impl FnOnce() -> u64, large: bool) {
        let mut calls = self.inner.large_calls.lock().unwrap_or_else(|e| e.into_inner());
        if !large {
            if !calls.is_empty() {
                calls.remove(&key());
            }
            return;
        }
        if calls.len() >= LARGE_CALLS_MAX {
            calls.clear();
        }
        calls.insert(key());
    }
}

/// One async command in flight (`CsClient::sending_guard`).
struct SendingGuard {
    inner: Arc<Inner>,
    key: String,
    n: u64,
}

impl Drop for SendingGuard {
    fn drop(&mut self) {
        self.inner.sending.remove_if_mut(&self.key, |_, s| {
            s.remove(&self.n);
            s.is_empty()
        });
    }
}

impl CsClient {
    /// Wait for a free call slot (overall and for this API key), when limits are set. Waiting
    /// counts against the call's deadline.
    async fn slots(
        &self,
        api_key: &str,
    ) -> (Option<tokio::sync::OwnedSemaphorePermit>, Option<tokio::sync::OwnedSemaphorePermit>) {
        let inner = &*self.inner;
        let per_key = (inner.opts.max_concurrent_per_key > 0).then(|| {
            if let Some(s) = inner.key_slots.get(api_key) {
                return s.clone();
            }
            if inner.key_slots.len() > 4096 {
                // Keys with no call in progress hold nothing worth keeping.
                let n = inner.opts.max_concurrent_per_key;
                inner.key_slots.retain(|_, s| s.available_permits() < n);
            }
            inner
                .key_slots
                .entry(api_key.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(inner.opts.max_concurrent_per_key)))
                .clone()
        });
        let acquire = |s: Arc<tokio::sync::Semaphore>| async move {
            match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    crate::ops::metrics::global().cloudstack_call_waits.fetch_add(1, Ordering::Relaxed);
                    s.acquire_owned().await.ok()
                }
            }
        };
        let k = match per_key {
            Some(s) => acquire(s).await,
            None => None,
        };
        let all = match &inner.slots {
            Some(s) => acquire(s.clone()).await,
            None => None,
        };
        (k, all)
    }
}

/// A call's metrics and debug line.
fn note_call<T>(command: &str, started: Instant, out: &Result<T, CsError>) {
    crate::ops::metrics::global().cloudstack_call(command, outcome_label(out), started.elapsed());
    match out {
        Ok(_) => tracing::debug!(command, elapsed_ms = started.elapsed().as_millis() as u64, "cloudstack call"),
        Err(e) => {
            tracing::debug!(command, elapsed_ms = started.elapsed().as_millis() as u64, error = %e, "cloudstack call failed")
        }
    }
}

/// Whether a list page with `n` items, `got` items so far, is the list's last.
fn last_page(count: Option<u64>, n: usize, got: usize) -> bool {
    match count {
        Some(c) => n == 0 || got as u64 >= c,
        // Old releases leave out `count`: a short page is the last one.
        None => n < PAGE_SIZE,
    }
}

/// The `outcome` label of a call's metrics.
fn outcome_label<T>(r: &Result<T, CsError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(CsError::Api { .. }) => "api_error",
        Err(CsError::JobFailed { .. }) => "job_failed",
        Err(CsError::JobTimeout { .. }) => "job_timeout",
        Err(CsError::Transport(_)) => "transport_error",
        Err(CsError::BadResponse(_)) => "bad_response",
        Err(CsError::Unconfirmed { .. }) => "unconfirmed",
    }
}

/// Marks a deadline in a transport error's text (`recover_job` tells it from a dropped connection).
const DEADLINE_MARK: &str = "no answer within";

fn deadline_error(command: &str, timeout: Duration) -> CsError {
    CsError::Transport(format!("{command}: {DEADLINE_MARK} {} ms", timeout.as_millis()))
}

/// Whether `cmd`, the class name `listAsyncJobs` gives for a job (`org.apache.cloudstack.api.
/// command.user.vm.DeployVMCmd`), is the API command `command`: the class is the command's name
/// with `Cmd` (or `CmdByAdmin`) appended and a few words shortened (docs/cloudstack-wire.md
/// "Lost answers").
pub(crate) fn job_cmd_is(cmd: &str, command: &str) -> bool {
    let class = cmd.rsplit('.').next().unwrap_or(cmd).to_ascii_lowercase();
    let class = class.strip_suffix("cmdbyadmin").or_else(|| class.strip_suffix("cmd")).unwrap_or(&class);
    let name = command
        .to_ascii_lowercase()
        .replace("virtualmachine", "vm")
        .replace("ipaddress", "ipaddr")
        .replace("iptonic", "iptovmnic")
        .replace("ipfromnic", "ipfromvmnic");
    class == name
}

/// A CloudStack date (`2030-01-02T03:04:05+0000`, also `Z` or `+00:00`).
fn parse_cs_date(s: &str) -> Option<time::OffsetDateTime> {
    let s = s.trim();
    if s.len() < 19 || !s.is_char_boundary(19) {
        return None;
    }
    let (head, rest) = s.split_at(19);
    let dt = time::PrimitiveDateTime::parse(
        head,
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    )
    .ok()?;
    // A fraction of a second, if any, does not matter here.
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "" | "Z" => time::UtcOffset::UTC,
        o => {
            let sign: i8 = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let h: i8 = digits[..2].parse().ok()?;
            let m: i8 = digits[2..].parse().ok()?;
            time::UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    Some(dt.assume_offset(offset))
}

fn host_of(url: &reqwest::Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("?")),
        None => url.host_str().unwrap_or("?").to_string(),
    }
}

/// An error and its causes on one line. Callers pass errors already stripped of URLs.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// The complete signed query string (names and values Java-URL-encoded, so `+` goes as `%2B`).
pub(crate) fn signed_query(
    creds: &CsCredentials,
    command: &str,
    params: &[(String, String)],
    now: time::OffsetDateTime,
) -> String {
    // BTreeMap: one value per name (the last, as the servlet keeps), deterministic order.
    let mut all: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in params {
        if !v.is_empty() && !k.is_empty() && !RESERVED.contains(&k.as_str()) {
            all.insert(k, v);
        }
    }
    let expires = format_expires(now + SIGNATURE_WINDOW);
    all.insert("command", command);
    all.insert("response", "json");
    all.insert("apiKey", &creds.api_key);
    all.insert("signatureVersion", "3");
    all.insert("expires", &expires);
    let signature = sign(all.iter().map(|(k, v)| (*k, *v)), &creds.secret_key);
    let mut q = String::with_capacity(256);
    for (k, v) in all.iter().map(|(k, v)| (*k, *v)).chain(std::iter::once(("signature", signature.as_str()))) {
        if !q.is_empty() {
            q.push('&');
        }
        q.push_str(&java_url_encode(k));
        q.push('=');
        q.push_str(&java_url_encode(v));
    }
    q
}

/// `yyyy-MM-dd'T'HH:mm:ss+0000`, the form every CloudStack release parses.
pub(crate) fn format_expires(t: time::OffsetDateTime) -> String {
    crate::base::util::cloudstack_date(t.to_offset(time::UtcOffset::UTC))
}

/// The decoder of CloudStack answers, for the fuzz targets (fuzz/): never panics on any input.
#[doc(hidden)]
pub fn decode_answer(command: &str, status: u16, body: &[u8]) -> Result<Value, CsError> {
    // The one-pass reading of list pages, and the item readers after it, see the same input.
    let keep = crate::base::fields::Keep::new(vec!["id".into(), "state".into(), "nic.ipaddress".into()]);
    let mut read = |text: &str| {
        let _ = crate::base::fields::project(text, &keep);
        let _ = crate::base::fields::pick(text, &["id", "deviceid"]);
        Ok(0)
    };
    let _ = decode_items(command, status, body, "virtualmachine", &mut read);
    let _ = decode_picked(command, status, body, "virtualmachine", &["id", "deviceid"], &mut |_| Ok(()));
    let _ = decode_projected(command, status, body, "virtualmachine", &keep);
    let v = decode(command, status, body)?;
    // An async job's status document goes through the job decoder too.
    let _ = job_outcome(command, &v);
    let _ = success_flag(&v);
    Ok(v)
}

/// Turn an HTTP answer into the envelope's content or an error, by codes only.
fn decode(command: &str, status: u16, body: &[u8]) -> Result<Value, CsError> {
    // Text when the body is UTF-8 (always, from CloudStack): see `plain::read`.
    let doc: Result<Value, _> = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    let doc = match doc {
        Ok(v) => v,
        Err(_) if (200..300).contains(&status) => {
            return Err(CsError::BadResponse(format!("{command}: answer is not JSON (HTTP {status})")));
        }
        // Not CloudStack talking (a proxy page, a gateway timeout): the backend is unreachable.
        Err(_) if status >= 500 => {
            return Err(CsError::Transport(format!("{command}: HTTP {status} without a CloudStack answer")));
        }
        Err(_) => {
            return Err(CsError::Api {
                command: command.to_string(),
                errorcode: status,
                cserrorcode: None,
                text: format!("HTTP {status} without a CloudStack error document"),
            });
        }
    };
    let inner = match envelope(command, doc) {
        Some(v) => v,
        None if (200..300).contains(&status) => {
            return Err(CsError::BadResponse(format!("{command}: no single `*response` object in the answer")));
        }
        None => Value::Object(Map::new()),
    };
    let errorcode = inner.get("errorcode").and_then(as_u64);
    if errorcode.is_some() || !(200..300).contains(&status) {
        let code = errorcode.and_then(|c| u16::try_from(c).ok()).filter(|c| *c != 0).unwrap_or(status);
        return Err(CsError::Api {
            command: command.to_string(),
            errorcode: code,
            cserrorcode: inner.get("cserrorcode").and_then(as_u64).and_then(|c| u32::try_from(c).ok()),
            text: inner.get("errortext").and_then(Value::as_str).unwrap_or_default().to_string(),
        });
    }
    let mut inner = inner;
    normalize_success(&mut inner);
    Ok(inner)
}

/// A list page's answer for a caller that decodes the items itself (`list_all_picked`, `list_all_projected`): hands the
/// item list under `item_key` to `each` as JSON text (an array) and answers what `each` counted
/// and the list's `count`. The rules are `decode`'s and `page_items`'s, by construction: an
/// answer in their plain form (2xx, a `<command>response` object without `errorcode`, holding
/// an array under `item_key`) is read in one pass without building `Value`s; anything else
/// (errors, odd envelopes, an empty or one-object page, JSON the pass does not take) goes through
/// `decode` and `page_items`, and their items reach `each` as JSON text written from them.
/// (The one pass skips the fields it does not keep without serde_json's nesting limit of 128,
/// which `decode` would refuse an answer for: an answer nested that deep is not CloudStack's.)
pub fn decode_items(
    command: &str,
    status: u16,
    body: &[u8],
    item_key: &str,
    each: &mut dyn FnMut(&str) -> Result<usize, CsError>,
) -> Result<(usize, Option<u64>), CsError> {
    if (200..300).contains(&status) {
        let wanted = envelope_key(command);
        let seed = std::marker::PhantomData::<&serde_json::value::RawValue>;
        if let Some(page) = plain::read(body, &wanted, item_key, seed)
            && page.items.get().starts_with('[')
        {
            return Ok((each(page.items.get())?, page.count.as_ref().and_then(as_u64)));
        }
    }
    let (items, count) = page_items(command, decode(command, status, body)?, item_key)?;
    let text = serde_json::to_string(&items).map_err(|e| CsError::BadResponse(format!("{command}: {e}")))?;
    Ok((each(&text)?, count))
}

/// A list page's decoder for `CsClient::list_all_pages`: (HTTP status, body) to the number of
/// items it held and the list's `count`.
type PageReader<'a> = dyn FnMut(u16, &[u8]) -> Result<(usize, Option<u64>), CsError> + Send + 'a;

/// `decode_items` for a reader of a few fields of each item (`base::fields::PickFlat`): the
/// fields are picked inside the one pass over the answer, with no second pass over the item
/// list's text; `each` gets them flat, `names.len()` per item, after the envelope is known to
/// be the plain form (so an `errorcode` after the items still goes to `decode`). The rules, and
/// the fallback for anything else, are `decode_items`'s.
pub fn decode_picked(
    command: &str,
    status: u16,
    body: &[u8],
    item_key: &str,
    names: &[&str],
    each: &mut dyn FnMut(&[Scalar<'_>]) -> Result<(), CsError>,
) -> Result<(usize, Option<u64>), CsError> {
    if (200..300).contains(&status) {
        let wanted = envelope_key(command);
        if let Some(page) = plain::read(body, &wanted, item_key, PickFlat(names)) {
            let (n, fields) = page.items;
            each(&fields)?;
            return Ok((n, page.count.as_ref().and_then(as_u64)));
        }
    }
    let mut n = 0;
    let mut read = |text: &str| {
        let bad = |e: serde_json::Error| CsError::BadResponse(format!("{command}: {e}"));
        let mut de = serde_json::Deserializer::from_str(text);
        let (count, fields) = serde::de::DeserializeSeed::deserialize(PickFlat(names), &mut de).map_err(bad)?;
        de.end().map_err(bad)?;
        each(&fields)?;
        n = count;
        Ok(count)
    };
    let (_, count) = decode_items(command, status, body, item_key, &mut read)?;
    Ok((n, count))
}

/// `decode_items` for the projected reading of the items (`base::fields::Projected`: each item
/// object with only the fields in `keep`, sorted), done inside the one pass over the answer with
/// no second reading of the item list's text. The rules, and the fallback for anything else,
/// are `decode_items`'s.
pub fn decode_projected(
    command: &str,
    status: u16,
    body: &[u8],
    item_key: &str,
    keep: &crate::base::fields::Keep,
) -> Result<(Vec<Value>, Option<u64>), CsError> {
    if (200..300).contains(&status) {
        let wanted = envelope_key(command);
        if let Some(page) = plain::read(body, &wanted, item_key, Projected { keep }) {
            return Ok((page.items, page.count.as_ref().and_then(as_u64)));
        }
    }
    let mut items = Vec::new();
    let mut read = |text: &str| {
        items =
            crate::base::fields::project(text, keep).map_err(|e| CsError::BadResponse(format!("{command}: {e}")))?;
        Ok(items.len())
    };
    let (_, count) = decode_items(command, status, body, item_key, &mut read)?;
    Ok((items, count))
}

/// The one-pass reading of `decode_items` and `decode_picked`: `Top` answers `Some` only for the
/// plain form of a list page, None (or an error) for anything `decode` must look at. The item
/// list is read by the seed it is given (as text by `PhantomData<&RawValue>`, or its fields
/// picked by `base::fields::PickFlat`), at most once.
mod plain {
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde_json::Value;

    use crate::base::fields::KeyIn;

    /// `body` read in the plain form by `seed`; None for anything else. A body that is UTF-8
    /// (every CloudStack answer) is checked once and read as text, so serde_json does not check
    /// each string of it again (a third of its decoding work on a list page, by callgrind); any
    /// other body is read as bytes, exactly as before.
    pub fn read<'de, S: DeserializeSeed<'de>>(
        body: &'de [u8],
        wanted: &str,
        item_key: &str,
        seed: S,
    ) -> Option<Page<S::Value>> {
        let top = Top { wanted, item_key, seed };
        match std::str::from_utf8(body) {
            Ok(text) => finish(&mut serde_json::Deserializer::from_str(text), top),
            Err(_) => finish(&mut serde_json::Deserializer::from_slice(body), top),
        }
    }

    fn finish<'de, R: serde_json::de::Read<'de>, S: DeserializeSeed<'de>>(
        de: &mut serde_json::Deserializer<R>,
        top: Top<'_, S>,
    ) -> Option<Page<S::Value>> {
        let page = top.deserialize(&mut *de).ok()??;
        de.end().ok()?;
        Some(page)
    }

    pub struct Page<T> {
        pub count: Option<Value>,
        pub items: T,
    }

    /// The top-level object: `wanted` (the command's envelope) exactly once.
    pub struct Top<'k, S> {
        pub wanted: &'k str,
        pub item_key: &'k str,
        pub seed: S,
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Top<'_, S> {
        type Value = Option<Page<S::Value>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Top<'_, S> {
        type Value = Option<Page<S::Value>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a CloudStack answer")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut found: Option<Option<Page<S::Value>>> = None;
            let mut seed = Some(self.seed);
            let mut plain = true;
            while let Some(k) = m.next_key_seed(KeyIn(&[self.wanted]))? {
                match k.and(seed.take()) {
                    Some(seed) => found = Some(m.next_value_seed(Inner { item_key: self.item_key, seed: Some(seed) })?),
                    None => {
                        plain &= k.is_none();
                        m.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(found.flatten().filter(|_| plain))
        }
    }

    /// The envelope: no `errorcode`, `count` and the item list at most once each, the item list
    /// read by the seed.
    struct Inner<'k, S> {
        item_key: &'k str,
        seed: Option<S>,
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Inner<'_, S> {
        type Value = Option<Page<S::Value>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Inner<'_, S> {
        type Value = Option<Page<S::Value>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a CloudStack response object")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut m: A) -> Result<Self::Value, A::Error> {
            let (mut count, mut items): (Option<Value>, Option<S::Value>) = (None, None);
            let mut plain = true;
            while let Some(k) = m.next_key_seed(KeyIn(&["count", self.item_key, "errorcode"]))? {
                match k {
                    Some(0) if count.is_none() => count = Some(m.next_value()?),
                    Some(1) if items.is_none() => match self.seed.take() {
                        Some(seed) => items = Some(m.next_value_seed(seed)?),
                        None => plain = false,
                    },
                    Some(_) => {
                        plain = false;
                        m.next_value::<IgnoredAny>()?;
                    }
                    None => {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(items.filter(|_| plain).map(|items| Page { count, items }))
        }
    }
}

/// The name of `command`'s envelope: `<command>response`, lower case.
fn envelope_key(command: &str) -> String {
    format!("{}response", command.to_ascii_lowercase())
}

/// The single top-level response object: `<command>response` if present, else the only key, else
/// the only key ending in `response` (old releases misnamed a few).
fn envelope(command: &str, doc: Value) -> Option<Value> {
    let Value::Object(mut top) = doc else { return None };
    let wanted = envelope_key(command);
    let key = if top.contains_key(&wanted) {
        wanted
    } else if top.len() == 1 {
        top.keys().next()?.clone()
    } else {
        let mut it = top.keys().filter(|k| k.ends_with("response"));
        let k = it.next()?.clone();
        if it.next().is_some() {
            return None;
        }
        k
    };
    match top.remove(&key)? {
        v @ Value::Object(_) => Some(v),
        _ => None,
    }
}

/// Old releases wrote `"success":"true"`; make it a bool so callers check one form.
fn normalize_success(v: &mut Value) {
    if let Some(s) = v.get_mut("success")
        && let Some(b) = s.as_str().and_then(|t| t.trim().parse::<bool>().ok())
    {
        *s = Value::Bool(b);
    }
}

/// `success` as CloudStack meant it (bool or string). None when absent.
pub fn success_flag(v: &Value) -> Option<bool> {
    match v.get("success")? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Decide a polled job: Ok(None) while pending, Ok(Some(jobresult)) on success.
fn job_outcome(command: &str, job: &Value) -> Result<Option<Value>, CsError> {
    let status = job
        .get("jobstatus")
        .and_then(as_u64)
        .ok_or_else(|| CsError::BadResponse(format!("{command}: job answer without jobstatus")))?;
    if status == 0 {
        return Ok(None);
    }
    let resultcode = job.get("jobresultcode").and_then(as_u64).unwrap_or(0);
    let mut result = job.get("jobresult").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    if status == 1 && resultcode == 0 {
        normalize_success(&mut result);
        return Ok(Some(result));
    }
    let errorcode = result
        .get("errorcode")
        .and_then(as_u64)
        .filter(|c| *c != 0)
        .or(Some(resultcode).filter(|c| *c != 0))
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(530);
    let text = match result.get("errortext").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None if status == 3 => "job cancelled".to_string(),
        None => String::new(),
    };
    Err(CsError::JobFailed { command: command.to_string(), errorcode, text })
}

/// A number that CloudStack may write as a JSON number or a string.
/// The items of one list page under `item_key`, and the list's `count` when the answer has one.
fn page_items(command: &str, mut resp: Value, item_key: &str) -> Result<(Vec<Value>, Option<u64>), CsError> {
    let count = resp.get("count").and_then(as_u64);
    let batch = match resp.get_mut(item_key).map(Value::take) {
        Some(Value::Array(a)) => a,
        // One object where a list was expected: treat it as a one-item page.
        Some(v @ Value::Object(_)) => vec![v],
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(CsError::BadResponse(format!("{command}: `{item_key}` is not a list"))),
    };
    Ok((batch, count))
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An id: a uuid string in modern releases, an integer in old ones.
fn as_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creds() -> CsCredentials {
        CsCredentials { api_key: "sim-api-key-0001".into(), secret_key: "sim-secret-key-0001".into() }
    }

    #[test]
    fn known_jobs_forget_the_expired_and_the_oldest() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut k = KnownJobs::default();
        k.insert("a", t0);
        k.insert("b", t0 + s(1));
        k.insert("a", t0 + s(2)); // learnt again: its first entry no longer counts
        k.insert("c", t0 + KNOWN_JOBS_KEEP + Duration::from_millis(1500));
        assert!(k.contains("a"), "re-learnt at t0+2s, not yet expired");
        assert!(!k.contains("b"), "expired");
        assert!(k.contains("c"));
        assert_eq!(k.at.len(), 2);
        assert_eq!(k.order.len(), 2, "the stale and the expired entries are gone");

        let mut k = KnownJobs::default();
        for i in 0..KNOWN_JOBS_MAX + 10 {
            k.insert(&format!("j{i}"), t0);
        }
        assert_eq!(k.at.len(), KNOWN_JOBS_MAX);
        assert!(!k.contains("j0") && !k.contains("j9"), "the oldest go first");
        assert!(k.contains("j10") && k.contains(&format!("j{}", KNOWN_JOBS_MAX + 9)));
    }

    #[test]
    fn expires_format() {
        let t = time::macros::datetime!(2030-01-02 03:04:05 UTC);
        assert_eq!(format_expires(t), "2030-01-02T03:04:05+0000");
        let t = time::macros::datetime!(2030-01-02 03:04:05 +02:00);
        assert_eq!(format_expires(t), "2030-01-02T01:04:05+0000");
    }

    #[test]
    fn query_is_signed_and_encoded() {
        let now = time::macros::datetime!(2029-12-31 23:55:00 UTC);
        let p = vec![
            ("userdata".to_string(), "a+b c/=".to_string()),
            ("tags[0].key".to_string(), "Name".to_string()),
            ("empty".to_string(), String::new()),
            ("command".to_string(), "evil".to_string()),
        ];
        let q = signed_query(&creds(), "listZones", &p, now);
        assert!(q.contains("userdata=a%2Bb%20c%2F%3D"), "{q}");
        assert!(q.contains("tags%5B0%5D.key=Name"), "{q}");
        assert!(q.contains("command=listZones"));
        assert!(!q.contains("evil") && !q.contains("empty="));
        assert!(q.contains("expires=2030-01-01T00%3A00%3A00%2B0000"), "{q}");
        assert!(!q.contains("sim-secret"));
        // Decode as the servlet does and verify as CloudStack does.
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&q).unwrap();
        let sig = pairs.iter().find(|(k, _)| k == "signature").unwrap().1.clone();
        assert!(crate::cloudstack::signing::verify(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "sim-secret-key-0001",
            &sig
        ));
    }

    #[test]
    fn envelope_and_errors() {
        let ok = decode("listZones", 200, br#"{"listzonesresponse":{"count":1,"zone":[{"id":"z"}]}}"#).unwrap();
        assert_eq!(ok["zone"][0]["id"], "z");
        let odd =
            decode("revokeSecurityGroupIngress", 200, br#"{"revokesecuritygroupingress":{"jobid":"j"}}"#).unwrap();
        assert_eq!(odd["jobid"], "j");
        let s = decode("deleteVolume", 200, br#"{ "deletevolumeresponse" : { "success" : "true"} }"#).unwrap();
        assert_eq!(s["success"], json!(true));
        let e = decode(
            "deployVirtualMachine",
            431,
            br#"{"deployvirtualmachineresponse":{"uuidList":[],"errorcode":431,"cserrorcode":4350,"errortext":"x"}}"#,
        )
        .unwrap_err();
        assert!(matches!(e, CsError::Api { errorcode: 431, cserrorcode: Some(4350), .. }), "{e:?}");
        let e = decode("x", 432, br#"{"errorresponse":{"errorcode":432,"errortext":"Unknown API command: x"}}"#)
            .unwrap_err();
        assert!(matches!(e, CsError::Api { errorcode: 432, cserrorcode: None, .. }), "{e:?}");
        assert!(matches!(decode("x", 502, b"<html>bad gateway</html>"), Err(CsError::Transport(_))));
        assert!(matches!(decode("x", 200, b"<html/>"), Err(CsError::BadResponse(_))));
        assert!(matches!(decode("x", 200, br#"{"aresponse":{},"bresponse":{}}"#), Err(CsError::BadResponse(_))));
        assert!(matches!(decode("x", 200, b"[]"), Err(CsError::BadResponse(_))));
    }

    #[test]
    fn job_outcomes() {
        assert!(job_outcome("c", &json!({"jobstatus":0})).unwrap().is_none());
        assert!(job_outcome("c", &json!({"jobstatus":"0"})).unwrap().is_none());
        let r = job_outcome("c", &json!({"jobstatus":1,"jobresultcode":0,"jobresult":{"success":"true"}})).unwrap();
        assert_eq!(r.unwrap()["success"], json!(true));
        let e =
            job_outcome("c", &json!({"jobstatus":2,"jobresultcode":530,"jobresult":{"errorcode":431,"errortext":"t"}}));
        assert!(matches!(e, Err(CsError::JobFailed { errorcode: 431, .. })));
        let e = job_outcome("c", &json!({"jobid":17177,"jobstatus":2}));
        assert!(matches!(e, Err(CsError::JobFailed { errorcode: 530, .. })));
        let e = job_outcome("c", &json!({"jobstatus":3,"jobresultcode":535}));
        assert!(matches!(e, Err(CsError::JobFailed { errorcode: 535, .. })));
        assert!(matches!(job_outcome("c", &json!({})), Err(CsError::BadResponse(_))));
    }

    #[test]
    fn job_classes_name_their_commands() {
        for (class, command) in [
            ("org.apache.cloudstack.api.command.user.vm.DeployVMCmd", "deployVirtualMachine"),
            ("org.apache.cloudstack.api.command.admin.vm.DeployVMCmdByAdmin", "deployVirtualMachine"),
            ("org.apache.cloudstack.api.command.user.volume.CreateVolumeCmd", "createVolume"),
            ("org.apache.cloudstack.api.command.user.address.AssociateIPAddrCmd", "associateIpAddress"),
            ("org.apache.cloudstack.api.command.user.snapshot.CreateSnapshotCmd", "createSnapshot"),
            ("org.apache.cloudstack.api.command.user.vpc.CreateVPCCmd", "createVPC"),
            ("org.apache.cloudstack.api.command.user.vm.AddIpToVmNicCmd", "addIpToNic"),
        ] {
            assert!(job_cmd_is(class, command), "{class} {command}");
        }
        assert!(!job_cmd_is("org.apache.cloudstack.api.command.user.volume.CreateVolumeCmd", "deployVirtualMachine"));
        assert!(!job_cmd_is("org.apache.cloudstack.api.command.user.vm.DestroyVMCmd", "deployVirtualMachine"));
        assert!(!job_cmd_is(
            "org.apache.cloudstack.api.command.user.address.DisassociateIPAddrCmd",
            "associateIpAddress"
        ));
    }

    #[test]
    fn cloudstack_dates() {
        let t = time::macros::datetime!(2030-01-02 03:04:05 UTC);
        for s in [
            "2030-01-02T03:04:05+0000",
            "2030-01-02T03:04:05Z",
            "2030-01-02T04:04:05+01:00",
            "2030-01-02T03:04:05.123+0000",
        ] {
            assert_eq!(parse_cs_date(s), Some(t), "{s}");
        }
        assert_eq!(parse_cs_date("2030-01-01T22:04:05-0500"), Some(t));
        assert_eq!(parse_cs_date("2030-01-02"), None);
        assert_eq!(parse_cs_date("2030-01-02T03:04:05+01"), None);
    }

    #[test]
    fn success_flag_forms() {
        assert_eq!(success_flag(&json!({"success":true})), Some(true));
        assert_eq!(success_flag(&json!({"success":"false"})), Some(false));
        assert_eq!(success_flag(&json!({})), None);
    }

    /// `decode_items` answers what `decode` + `page_items` answer, for the plain form it reads
    /// in one pass and for everything it hands to them.
    #[test]
    fn decode_items_as_decode() {
        let bodies: &[(u16, &str)] = &[
            (200, r#"{"listvolumesresponse":{"count":2,"volume":[{"id":"a","n":1},{"id":"b\u0041","x":[{}]}]}}"#),
            (200, r#" { "listvolumesresponse" : { "volume" : [ 1, "two", null ] , "count" : "3" } } "#),
            (200, r#"{"listvolumesresponse":{"count":1,"volume":{"id":"a"}}}"#),
            (200, r#"{"listvolumesresponse":{}}"#),
            (200, r#"{"listvolumesresponse":{"count":0,"volume":null}}"#),
            (200, r#"{"listvolumesresponse":{"count":1,"volume":5}}"#),
            (200, r#"{"listvolumesresponse":{"count":1,"volume":[{"id":"a"}],"volume":[{"id":"b"}]}}"#),
            (200, r#"{"listvolumesresponse":{"count":1,"count":2,"volume":[{"id":"a"}]}}"#),
            (200, r#"{"listvolumesresponse":{"count":1,"volume":[{"id":"a"}]},"listvolumesresponse":{"volume":[]}}"#),
            (200, r#"{"listvolumesresponse":{"count":1,"volume":[{"id":"a"}]},"other":{"volume":[9]}}"#),
            (200, r#"{"listvolumeresponse":{"count":1,"volume":[{"id":"a"}]}}"#),
            (200, r#"{"aresponse":{"volume":[]},"bresponse":{"volume":[]}}"#),
            (200, r#"{"listvolumesresponse":[1]}"#),
            (200, r#"{"listvolumesresponse":{"errorcode":431,"cserrorcode":9999,"errortext":"bad","volume":[]}}"#),
            (431, r#"{"listvolumesresponse":{"errorcode":431,"cserrorcode":9999,"errortext":"bad"}}"#),
            (200, r#"{"listvolumesresponse":{"errorcode":"x","volume":[{"id":"a"}]}}"#),
            (530, r#"{"listvolumesresponse":{"count":1,"volume":[{"id":"a"}]}}"#),
            (200, r#"{"listvolumesresponse":{"count":1,"volume":[{"id":"a"}]}} x"#),
            (200, r#"{"listvolumesresponse":{"count":1,"volume":[{"id":"a"}"#),
            (200, "<html>proxy</html>"),
            (502, "<html>bad gateway</html>"),
            (404, "not found"),
            (200, "[]"),
            (200, r#""listvolumesresponse""#),
        ];
        for (status, body) in bodies {
            let want = decode(command(), *status, body.as_bytes())
                .and_then(|r| page_items(command(), r, "volume"))
                .map_err(|e| format!("{e:?}"));
            let mut got_items = Vec::new();
            let mut each = |text: &str| -> Result<usize, CsError> {
                let items: Vec<Value> = serde_json::from_str(text).expect("items as JSON");
                let n = items.len();
                got_items.extend(items);
                Ok(n)
            };
            let got = decode_items(command(), *status, body.as_bytes(), "volume", &mut each)
                .map(|(n, count)| {
                    assert_eq!(n, got_items.len());
                    (got_items.clone(), count)
                })
                .map_err(|e| format!("{e:?}"));
            assert_eq!(got, want, "HTTP {status} {body}");
            // `decode_picked` picks what `pick` picks from `decode`'s items.
            let names = ["id", "n", "x"];
            let want = want.map(|(items, count)| {
                let text = serde_json::to_string(&items).unwrap();
                let picked = crate::base::fields::pick(&text, &names).unwrap();
                let flat: Vec<String> =
                    picked.iter().flat_map(|p| p.clone().unwrap_or_default()).map(|s| format!("{s:?}")).collect();
                (picked.len(), flat, count)
            });
            let mut flat = Vec::new();
            let got = decode_picked(command(), *status, body.as_bytes(), "volume", &names, &mut |f| {
                flat.extend(f.iter().map(|s| format!("{s:?}")));
                Ok(())
            })
            .map(|(n, count)| (n, flat.clone(), count))
            .map_err(|e| format!("{e:?}"));
            assert_eq!(got, want, "picked: HTTP {status} {body}");
            // `decode_projected` answers `project` over `decode`'s items.
            let keep = crate::base::fields::Keep::new(vec!["id".to_string(), "x".to_string()]);
            let want = decode(command(), *status, body.as_bytes())
                .and_then(|r| page_items(command(), r, "volume"))
                .map(|(items, count)| {
                    let text = serde_json::to_string(&items).unwrap();
                    (crate::base::fields::project(&text, &keep).unwrap(), count)
                })
                .map_err(|e| format!("{e:?}"));
            let got =
                decode_projected(command(), *status, body.as_bytes(), "volume", &keep).map_err(|e| format!("{e:?}"));
            assert_eq!(got, want, "projected: HTTP {status} {body}");
        }
        fn command() -> &'static str {
            "listVolumes"
        }
    }
}
