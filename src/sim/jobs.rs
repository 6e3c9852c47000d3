//! Async jobs (docs/cloudstack-wire.md "Asynchronous jobs"): a job is created pending (`jobstatus` 0) by the
//! dispatcher, runs its completion after the configured delay (jobs on one object queue behind
//! each other), and ends succeeded (1) with its result or failed (2) with errorcode/errortext.
//! Timers run later state changes that are not jobs (expunge, template download).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Shared;
use super::error::{SimError, SimResult};
use super::faults::JobFault;
use super::model::Model;
use super::render::now_str;

/// A delayed state change; it may schedule follow-ups.
pub struct Timer {
    pub delay: Duration,
    pub run: TimerFn,
}
pub type TimerFn = Box<dyn FnOnce(&mut Model, &mut Vec<Timer>) + Send + Sync>;

/// What a job's completion sees.
pub struct JobEnv {
    /// Injected failure: the completion must undo its transitional state and return this error.
    pub fail: Option<SimError>,
    pub timers: Vec<Timer>,
}

impl JobEnv {
    /// The injected failure, if any: `undo` puts the object back where it was before the job,
    /// then the job fails with the injected error.
    pub fn injected(&mut self, undo: impl FnOnce()) -> SimResult<()> {
        match self.fail.take() {
            Some(e) => {
                undo();
                Err(e)
            }
            None => Ok(()),
        }
    }
}

pub type JobFn = Box<dyn FnOnce(&mut Model, &mut JobEnv) -> SimResult<Value> + Send + Sync>;

pub const STATUS_PENDING: u8 = 0;
pub const STATUS_SUCCEEDED: u8 = 1;
pub const STATUS_FAILED: u8 = 2;

pub fn spawn_timers(shared: &Arc<Shared>, timers: Vec<Timer>) {
    for t in timers {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(t.delay).await;
            let mut next = Vec::new();
            {
                let mut m = shared.write();
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (t.run)(&mut m, &mut next))).is_err() {
                    tracing::error!("simulator timer panicked");
                }
            }
            spawn_timers(&shared, next);
        });
    }
}

/// Run a job's completion after `delay`, once it is first in its object's queue.
pub fn spawn_job(
    shared: Arc<Shared>,
    jobid: String,
    lock: Option<String>,
    delay: Duration,
    fault: JobFault,
    run: JobFn,
) {
    if fault == JobFault::Hang {
        // Never finishes: stays pending, and blocks later jobs on the same object, as a stuck
        // CloudStack work queue does.
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        loop {
            let ready = {
                let m = shared.read();
                match &lock {
                    Some(k) => m.busy.get(k).and_then(|q| q.front()).is_none_or(|f| *f == jobid),
                    None => true,
                }
            };
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let timers = {
            let mut m = shared.write();
            let mut env =
                JobEnv { fail: if let JobFault::Fail(e) = fault { Some(e) } else { None }, timers: Vec::new() };
            // A panicking completion fails its job (530) instead of leaving it, and every job
            // queued behind it on the same object, pending forever.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (run)(&mut m, &mut env)))
                .unwrap_or_else(|_| {
                    tracing::error!(jobid = %jobid, "simulator job panicked");
                    Err(SimError::internal("Internal error"))
                });
            finish(&mut m, &jobid, lock.as_deref(), outcome);
            env.timers
        };
        spawn_timers(&shared, timers);
    });
}

/// Record a job's outcome and release its object.
pub fn finish(m: &mut Model, jobid: &str, lock: Option<&str>, outcome: SimResult<Value>) {
    if let Some(k) = lock
        && let Some(q) = m.busy.get_mut(k)
    {
        q.retain(|j| j != jobid);
        if q.is_empty() {
            m.busy.remove(k);
        }
    }
    let Some(seq) = m.jobs.seq_of(jobid) else { return };
    let Some(job) = m.jobs.get_mut(seq) else { return };
    job.completed = Some(now_str());
    match outcome {
        Ok(result) => {
            job.status = STATUS_SUCCEEDED;
            job.result_code = 0;
            job.result = Some(result);
        }
        Err(e) => {
            job.status = STATUS_FAILED;
            job.result_code = e.code;
            job.result = Some(e.job_body());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::model::Job;

    fn job(m: &mut Model, id: &str) {
        let seq = m.next_seq();
        m.jobs.insert(
            seq,
            Job {
                id: id.into(),
                account: 1,
                user: 1,
                cmd: "x",
                status: STATUS_PENDING,
                result_code: 0,
                result: None,
                instance_type: "VirtualMachine",
                instance_id: None,
                created: now_str(),
                completed: None,
            },
        );
    }

    #[test]
    fn transitions_and_queue_release() {
        let mut m = Model::default();
        job(&mut m, "j1");
        job(&mut m, "j2");
        m.busy.entry("vm".into()).or_default().extend(["j1".to_string(), "j2".to_string()]);
        assert_eq!(m.pending_job("vm"), Some("j1"));
        finish(&mut m, "j1", Some("vm"), Ok(serde_json::json!({"virtualmachine": {}})));
        let j1 = m.jobs.get(m.jobs.seq_of("j1").unwrap()).unwrap();
        assert_eq!((j1.status, j1.result_code), (STATUS_SUCCEEDED, 0));
        assert!(j1.completed.is_some());
        // The next job on the object is now the one shown.
        assert_eq!(m.pending_job("vm"), Some("j2"));
        finish(&mut m, "j2", Some("vm"), Err(SimError::of_code(534, Some("down"))));
        let j2 = m.jobs.get(m.jobs.seq_of("j2").unwrap()).unwrap();
        assert_eq!((j2.status, j2.result_code), (STATUS_FAILED, 534));
        assert_eq!(j2.result, Some(serde_json::json!({"errorcode": 534, "errortext": "down"})));
        assert_eq!(m.pending_job("vm"), None);
        assert!(m.busy.is_empty());
    }
}
