//! Fault injection, configured in the seed (`[[faults]]`) and applied by the dispatcher and the
//! job runner, never by command code: per-command latency, error rate or forced error code,
//! dropped connections, and jobs that fail or never finish.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use super::error::SimError;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Command name as sent (`deployVirtualMachine`), or `*` for every command.
    pub command: String,
    /// Extra latency before answering: fixed, or uniform in [latency_ms, latency_max_ms].
    pub latency_ms: Option<u64>,
    pub latency_max_ms: Option<u64>,
    /// Answer with this error (HTTP status = errorcode) ...
    pub error_code: Option<u16>,
    pub error_text: Option<String>,
    /// ... with this probability (default 1.0 when `error_code` is set).
    pub error_rate: Option<f64>,
    /// Close the connection without an answer with this probability.
    pub drop_rate: Option<f64>,
    /// Run the command (its job is started), then close the connection without its answer, with
    /// this probability: the client cannot tell a drop before from a drop after.
    pub drop_after_rate: Option<f64>,
    /// For async commands: `fail` (jobstatus 2) or `hang` (stays at jobstatus 0 forever).
    pub job: Option<JobFaultKind>,
    /// Probability of the job fault (default 1.0).
    pub job_rate: Option<f64>,
    pub job_error_code: Option<u16>,
    pub job_error_text: Option<String>,
    /// Slow jobs: extra time before the job runs, fixed or uniform in
    /// [job_delay_ms, job_delay_max_ms]; applies with `--fast` too.
    pub job_delay_ms: Option<u64>,
    pub job_delay_max_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobFaultKind {
    Fail,
    Hang,
}

/// What to do to one request before running it.
#[derive(Debug, Clone, PartialEq)]
pub enum Before {
    Proceed,
    Drop,
    Fail(SimError),
}

/// What to do to one job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobFault {
    None,
    Fail(SimError),
    Hang,
}

#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub rules: Vec<FaultRule>,
}

fn roll(rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    rand::rng().random_bool(rate)
}

impl Faults {
    pub fn validate(&self) -> anyhow::Result<()> {
        for r in &self.rules {
            for (name, v) in [
                ("error_rate", r.error_rate),
                ("drop_rate", r.drop_rate),
                ("drop_after_rate", r.drop_after_rate),
                ("job_rate", r.job_rate),
            ] {
                if let Some(v) = v {
                    anyhow::ensure!((0.0..=1.0).contains(&v), "fault for {}: {name} must be in 0..1", r.command);
                }
            }
            // Both codes are checked: the answer's HTTP status and the failed job's errorcode.
            for c in [r.error_code, r.job_error_code].into_iter().flatten() {
                anyhow::ensure!(
                    (400..600).contains(&c),
                    "fault for {}: error code {c} is not an HTTP error",
                    r.command
                );
            }
        }
        Ok(())
    }

    fn matching<'a>(&'a self, command: &'a str) -> impl Iterator<Item = &'a FaultRule> + 'a {
        self.rules.iter().filter(move |r| r.command == "*" || r.command == command)
    }

    /// Sum over the matching rules of a fixed or uniform [lo, hi] delay.
    fn delay(&self, command: &str, range: impl Fn(&FaultRule) -> (Option<u64>, Option<u64>)) -> Option<Duration> {
        let mut total = 0u64;
        for r in self.matching(command) {
            if let (Some(lo), hi) = range(r) {
                let hi = hi.unwrap_or(lo).max(lo);
                total = total.saturating_add(if hi > lo { rand::rng().random_range(lo..=hi) } else { lo });
            }
        }
        (total > 0).then(|| Duration::from_millis(total))
    }

    /// Total extra latency before a command answers.
    pub fn latency(&self, command: &str) -> Option<Duration> {
        self.delay(command, |r| (r.latency_ms, r.latency_max_ms))
    }

    /// Total extra time before a command's job runs.
    pub fn job_delay(&self, command: &str) -> Option<Duration> {
        self.delay(command, |r| (r.job_delay_ms, r.job_delay_max_ms))
    }

    pub fn before(&self, command: &str) -> Before {
        for r in self.matching(command) {
            if r.drop_rate.is_some_and(roll) {
                return Before::Drop;
            }
            if let Some(code) = r.error_code
                && roll(r.error_rate.unwrap_or(1.0))
            {
                return Before::Fail(SimError::of_code(code, r.error_text.as_deref()));
            }
        }
        Before::Proceed
    }

    /// Whether the answer of a command that ran is lost (the connection closed instead).
    pub fn drop_after(&self, command: &str) -> bool {
        self.matching(command).any(|r| r.drop_after_rate.is_some_and(roll))
    }

    pub fn job(&self, command: &str) -> JobFault {
        for r in self.matching(command) {
            if let Some(kind) = r.job
                && roll(r.job_rate.unwrap_or(1.0))
            {
                return match kind {
                    JobFaultKind::Hang => JobFault::Hang,
                    JobFaultKind::Fail => JobFault::Fail(SimError::of_code(
                        r.job_error_code.unwrap_or(530),
                        Some(r.job_error_text.as_deref().unwrap_or("Job failed (injected fault)")),
                    )),
                };
            }
        }
        JobFault::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_by_command() {
        let f = Faults {
            rules: vec![
                FaultRule { command: "deployVirtualMachine".into(), error_code: Some(533), ..Default::default() },
                FaultRule { command: "stopVirtualMachine".into(), job: Some(JobFaultKind::Fail), ..Default::default() },
                FaultRule {
                    command: "rebootVirtualMachine".into(),
                    job: Some(JobFaultKind::Hang),
                    ..Default::default()
                },
                FaultRule { command: "listZones".into(), drop_rate: Some(1.0), ..Default::default() },
                FaultRule { command: "*".into(), latency_ms: Some(5), ..Default::default() },
            ],
        };
        f.validate().unwrap();
        match f.before("deployVirtualMachine") {
            Before::Fail(e) => assert_eq!((e.code, e.cs), (533, Some(4325))),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.before("listZones"), Before::Drop);
        assert_eq!(f.before("listVolumes"), Before::Proceed);
        assert!(!f.drop_after("listZones"));
        let lost = Faults {
            rules: vec![FaultRule { command: "createVolume".into(), drop_after_rate: Some(1.0), ..Default::default() }],
        };
        assert!(lost.drop_after("createVolume") && !lost.drop_after("deleteVolume"));
        assert_eq!(lost.before("createVolume"), Before::Proceed);
        assert!(matches!(f.job("stopVirtualMachine"), JobFault::Fail(e) if e.code == 530));
        assert_eq!(f.job("rebootVirtualMachine"), JobFault::Hang);
        assert_eq!(f.job("startVirtualMachine"), JobFault::None);
        assert_eq!(f.latency("anything"), Some(Duration::from_millis(5)));
        assert_eq!(f.job_delay("anything"), None);
        let slow = Faults {
            rules: vec![FaultRule {
                command: "attachVolume".into(),
                job_delay_ms: Some(100),
                job_delay_max_ms: Some(200),
                ..Default::default()
            }],
        };
        let d = slow.job_delay("attachVolume").unwrap();
        assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&d));
        assert_eq!(slow.job_delay("detachVolume"), None);
        let bad =
            Faults { rules: vec![FaultRule { command: "x".into(), error_rate: Some(2.0), ..Default::default() }] };
        assert!(bad.validate().is_err());
        let bad_job_code = Faults {
            rules: vec![FaultRule {
                command: "x".into(),
                error_code: Some(533),
                job_error_code: Some(200),
                ..Default::default()
            }],
        };
        assert!(bad_job_code.validate().is_err());
    }
}
