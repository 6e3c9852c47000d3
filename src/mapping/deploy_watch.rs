//! Shared polls for the deploys the `watch-launch` operations wait for (docs/gateway-state.md
//! "Watching deploys"): instead of one `queryAsyncJobResult` per deploy job, one
//! `listVirtualMachines ids=...` per API key and poll round looks at every VM of that key still
//! being watched.
//!
//! A listing tells three cases apart, by what CloudStack shows of each VM:
//! - a pending job on it (`jobid`, `jobstatus` 0: CloudStack lists the VM's pending async job
//!   with it): still being deployed, looked at again in a later round (backoff as a job poll);
//! - `Running` with no pending job: the deploy succeeded, nothing more to do;
//! - anything else (Error, Stopped, Destroyed, not listed, the listing refused): the deploy job
//!   itself is asked (`queryAsyncJobResult`, the caller's `wait_job`), so that a failure keeps
//!   its exact CloudStack error code (EC2's `stateReason` depends on it).
//!
//! So a launch that succeeds costs its share of one listing per round instead of a job poll,
//! and one that fails the same job poll as before, plus its share of the listing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;

use super::backend::Backend;
use crate::cloudstack::{CsCredentials, CsError};

/// VMs named by one listing at most (`ids` is a comma-separated list; longer queries go as a
/// POST body).
const IDS_PER_CALL: usize = 100;
/// Upper bound of a VM's poll interval (the job poll's `POLL_MAX`).
const POLL_MAX: Duration = crate::cloudstack::client::POLL_MAX;

/// What a shared poll learned of one deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Running, with no job pending on it: the deploy succeeded.
    Running,
    /// Something else: ask the deploy job how it ended.
    AskJob,
    /// Still deploying past the job deadline (`job_timeout`).
    Hung,
}

struct Entry {
    uuid: String,
    since: Instant,
    due: Instant,
    delay: Duration,
    tx: oneshot::Sender<Seen>,
}

struct Key {
    creds: CsCredentials,
    entries: Vec<Entry>,
    /// `details=min` refused (a CloudStack without it): list without.
    full_details: bool,
}

/// The deploys being watched, by API key; one poller task per key while it has any.
#[derive(Default)]
pub struct DeployWatch {
    keys: Mutex<HashMap<String, Key>>,
}

impl DeployWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Key>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until a shared poll has seen how the deploy of VM `uuid` (made with `creds`) is.
    pub async fn watch(self: &Arc<Self>, backend: &Arc<dyn Backend>, creds: &CsCredentials, uuid: &str) -> Seen {
        let (poll, _) = backend.job_polling();
        let poll = poll.max(Duration::from_millis(1));
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let entry = Entry { uuid: uuid.to_string(), since: now, due: now + poll, delay: poll, tx };
        let start = {
            let mut keys = self.lock();
            match keys.get_mut(&creds.api_key) {
                Some(k) => {
                    k.entries.push(entry);
                    false
                }
                None => {
                    keys.insert(
                        creds.api_key.clone(),
                        Key { creds: creds.clone(), entries: vec![entry], full_details: false },
                    );
                    true
                }
            }
        };
        if start {
            let me = self.clone();
            let backend = backend.clone();
            let key = creds.api_key.clone();
            tokio::spawn(async move { me.poller(backend, key).await });
        }
        // A poller that went away (runtime shutting down) leaves the job to be asked.
        rx.await.unwrap_or(Seen::AskJob)
    }

    /// Deploys being watched now (all keys).
    pub fn watched(&self) -> usize {
        self.lock().values().map(|k| k.entries.len()).sum()
    }

    async fn poller(self: Arc<Self>, backend: Arc<dyn Backend>, key: String) {
        let (poll, deadline) = backend.job_polling();
        let poll = poll.max(Duration::from_millis(1));
        loop {
            // The next round: when the earliest entry is due. A key without entries is dropped
            // (under the lock, so that a new entry starts a new poller).
            let next = {
                let mut keys = self.lock();
                let Some(k) = keys.get(&key) else { return };
                match k.entries.iter().map(|e| e.due).min() {
                    Some(d) => d,
                    None => {
                        keys.remove(&key);
                        return;
                    }
                }
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
            // Everything due within the next poll interval goes along: one listing serves the
            // deploys started meanwhile too.
            let (creds, full, batch) = {
                let mut keys = self.lock();
                let Some(k) = keys.get_mut(&key) else { return };
                let horizon = Instant::now() + poll;
                let mut batch = Vec::new();
                let mut i = 0;
                while i < k.entries.len() && batch.len() < IDS_PER_CALL {
                    if k.entries[i].due <= horizon {
                        batch.push(k.entries.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                (k.creds.clone(), k.full_details, batch)
            };
            if batch.is_empty() {
                continue;
            }
            let ids = batch.iter().map(|e| e.uuid.as_str()).collect::<Vec<_>>().join(",");
            let mut params = vec![("ids".to_string(), ids), ("listall".to_string(), "true".to_string())];
            if !full {
                params.push(("details".to_string(), "min".to_string()));
            }
            let mut listed = backend.list_all(&creds, "listVirtualMachines", &params, "virtualmachine").await;
            if !full && matches!(listed, Err(CsError::Api { errorcode: 431, .. })) {
                // A CloudStack without `details=min`, or an id it does not know: once more in full.
                params.pop();
                listed = backend.list_all(&creds, "listVirtualMachines", &params, "virtualmachine").await;
                if listed.is_ok()
                    && let Some(k) = self.lock().get_mut(&key)
                {
                    k.full_details = true;
                }
            }
            let vms: HashMap<&str, &Value> = match &listed {
                Ok(l) => l.iter().filter_map(|v| Some((v.get("id")?.as_str()?, v))).collect(),
                Err(e) => {
                    tracing::debug!(error = %e, deploys = batch.len(), "shared deploy poll failed; asking the jobs");
                    HashMap::new()
                }
            };
            let now = Instant::now();
            let mut again = Vec::new();
            for mut e in batch {
                let vm = vms.get(e.uuid.as_str());
                let pending = vm.is_some_and(|v| {
                    v.get("jobid").is_some_and(|j| !j.is_null())
                        && v.get("jobstatus").and_then(Value::as_i64).unwrap_or(0) == 0
                });
                if pending {
                    if deadline.is_some_and(|d| now.duration_since(e.since) >= d) {
                        let _ = e.tx.send(Seen::Hung);
                    } else {
                        e.delay = (e.delay.saturating_mul(3) / 2).min(POLL_MAX).max(poll);
                        e.due = now + e.delay;
                        again.push(e);
                    }
                    continue;
                }
                let running = vm.and_then(|v| v.get("state")).and_then(Value::as_str) == Some("Running");
                let _ = e.tx.send(if running { Seen::Running } else { Seen::AskJob });
            }
            if !again.is_empty() {
                match self.lock().get_mut(&key) {
                    Some(k) => k.entries.extend(again),
                    None => {
                        for e in again {
                            let _ = e.tx.send(Seen::AskJob);
                        }
                    }
                }
            }
        }
    }
}
