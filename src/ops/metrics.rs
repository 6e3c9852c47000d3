//! Process-wide counters and latency histograms, exposed as Prometheus text (`/metrics` on the
//! admin listener, see docs/operations.md). Hand-written rather than a metrics crate: a dozen
//! families, atomics on the hot path, and the text format is small.
//!
//! Label values come from a bounded set: EC2 actions are recorded under their name only while
//! fewer than `MAX_LABELS` distinct names were seen (names a client invents would otherwise grow
//! the map without end); the rest count as `other`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use dashmap::DashMap;

/// Upper bounds (seconds) of the latency buckets, shared by every histogram.
pub const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Distinct label values kept per family before new ones are counted as `other`.
pub const MAX_LABELS: usize = 512;

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Counts by a second label (EC2 code, CloudStack outcome), with a latency histogram.
#[derive(Default)]
pub struct Family {
    pub latency: Histogram,
    // Few distinct codes per action: a short vector behind a mutex held for one increment.
    by: Mutex<Vec<(Box<str>, u64)>>,
}

impl Family {
    fn count(&self, second: &str) {
        let mut v = self.by.lock().unwrap_or_else(|p| p.into_inner());
        let key = if v.len() < 64 || v.iter().any(|(k, _)| &**k == second) { second } else { "other" };
        match v.iter_mut().find(|(k, _)| &**k == key) {
            Some((_, n)) => *n += 1,
            None => v.push((key.into(), 1)),
        }
    }

    fn counts(&self) -> Vec<(Box<str>, u64)> {
        self.by.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `first label value -> Family`, bounded.
#[derive(Default)]
struct Families(DashMap<Box<str>, Arc<Family>>);

impl Families {
    fn get(&self, first: &str) -> Arc<Family> {
        if let Some(f) = self.0.get(first) {
            return f.clone();
        }
        let key: &str = if self.0.len() >= MAX_LABELS { "other" } else { first };
        self.0.entry(key.into()).or_default().clone()
    }

    fn sorted(&self) -> Vec<(Box<str>, Arc<Family>)> {
        let mut v: Vec<_> = self.0.iter().map(|e| (e.key().clone(), e.value().clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Every metric of the process.
#[derive(Default)]
pub struct Metrics {
    requests: Families,
    cloudstack: Families,
    jobs: Families,
    pub in_flight: AtomicI64,
    pub connections_open: AtomicI64,
    pub connections_total: AtomicU64,
    /// Accepts that failed (e.g. out of file descriptors).
    pub accept_errors: AtomicU64,
    /// Times the accept loop stopped accepting because the connection cap was reached.
    pub connection_cap_reached: AtomicU64,
    /// Connections closed because their headers did not arrive in time or they sat idle.
    pub connections_timed_out: AtomicU64,
    rate_limited: Families,
    /// CloudStack calls that waited for a concurrency permit.
    pub cloudstack_call_waits: AtomicU64,
    /// Large CloudStack answers being held (`ops::large_answers`: slots taken), ...
    pub large_answers_held: AtomicI64,
    /// ... requests that waited for a slot, ...
    pub large_answer_waits: AtomicU64,
    /// ... and those that got none within their call's deadline (answered `Unavailable`).
    pub large_answer_timeouts: AtomicU64,
    cache: Families,
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// An action name safe to use as a label value; anything else is `other`.
fn label(s: &str) -> &str {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        s
    } else {
        "other"
    }
}

impl Metrics {
    /// One answered EC2 request: `code` is the EC2 error code, `OK` on success.
    pub fn request(&self, action: Option<&str>, code: &str, elapsed: Duration) {
        let f = self.requests.get(label(action.unwrap_or("-")));
        f.count(label(code));
        f.latency.observe(elapsed);
    }

    /// One CloudStack HTTP call: `outcome` is `ok` or the kind of failure.
    pub fn cloudstack_call(&self, command: &str, outcome: &str, elapsed: Duration) {
        let f = self.cloudstack.get(label(command));
        f.count(outcome);
        f.latency.observe(elapsed);
    }

    /// One wait for an async job, from start to its end (or giving up).
    pub fn job_wait(&self, command: &str, outcome: &str, elapsed: Duration) {
        let f = self.jobs.get(label(command));
        f.count(outcome);
        f.latency.observe(elapsed);
    }

    /// A request refused by a limit (`reason`: `rate`, ...), per action.
    pub fn rate_limited(&self, action: &str, reason: &str) {
        self.rate_limited.get(label(action)).count(reason);
    }

    /// A cache lookup (`cache`: which cache).
    pub fn cache(&self, cache: &str, hit: bool) {
        self.cache.get(cache).count(if hit { "hit" } else { "miss" });
    }

    /// Requests counted so far for (action, code); for tests and the admin page.
    pub fn request_count(&self, action: &str, code: &str) -> u64 {
        self.requests.0.get(action).map_or(0, |f| f.counts().iter().find(|(k, _)| &**k == code).map_or(0, |c| c.1))
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let counters = |out: &mut String, name: &str, help: &str, fams: &Families, l1: &str, l2: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, f) in fams.sorted() {
                for (k2, n) in f.counts() {
                    let _ = writeln!(out, "{name}{{{l1}=\"{k}\",{l2}=\"{k2}\"}} {n}");
                }
            }
        };
        counters(
            &mut out,
            "ec2bridge_requests_total",
            "EC2 requests answered, by action and EC2 code (OK = success).",
            &self.requests,
            "action",
            "code",
        );
        counters(
            &mut out,
            "ec2bridge_cloudstack_calls_total",
            "HTTP calls to CloudStack, by command and outcome.",
            &self.cloudstack,
            "command",
            "outcome",
        );
        counters(
            &mut out,
            "ec2bridge_cloudstack_job_waits_total",
            "Waits for CloudStack async jobs, by command and outcome.",
            &self.jobs,
            "command",
            "outcome",
        );
        counters(
            &mut out,
            "ec2bridge_rate_limited_total",
            "Requests refused with RequestLimitExceeded, by action and limit.",
            &self.rate_limited,
            "action",
            "limit",
        );
        counters(
            &mut out,
            "ec2bridge_cache_lookups_total",
            "Cache lookups, by cache and result.",
            &self.cache,
            "cache",
            "result",
        );
        let hist = |out: &mut String, name: &str, help: &str, fams: &Families, l1: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (k, f) in fams.sorted() {
                f.latency.render(out, name, &format!("{l1}=\"{k}\""));
            }
        };
        hist(
            &mut out,
            "ec2bridge_request_duration_seconds",
            "Time to answer an EC2 request, by action.",
            &self.requests,
            "action",
        );
        hist(
            &mut out,
            "ec2bridge_cloudstack_call_duration_seconds",
            "Time of one CloudStack HTTP call, by command.",
            &self.cloudstack,
            "command",
        );
        hist(
            &mut out,
            "ec2bridge_cloudstack_job_wait_seconds",
            "Time spent waiting for an async job, by command.",
            &self.jobs,
            "command",
        );
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
        gauge(
            &mut out,
            "ec2bridge_requests_in_flight",
            "EC2 requests being processed.",
            "gauge",
            self.in_flight.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ec2bridge_connections_open",
            "Client connections open (EC2 listeners).",
            "gauge",
            self.connections_open.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ec2bridge_connections_total",
            "Client connections accepted.",
            "counter",
            load(&self.connections_total),
        );
        gauge(
            &mut out,
            "ec2bridge_connections_timed_out_total",
            "Connections closed for slow headers or idleness.",
            "counter",
            load(&self.connections_timed_out),
        );
        gauge(
            &mut out,
            "ec2bridge_connection_cap_reached_total",
            "Times new connections had to wait because the connection cap was reached.",
            "counter",
            load(&self.connection_cap_reached),
        );
        gauge(
            &mut out,
            "ec2bridge_accept_errors_total",
            "Failed accepts (e.g. out of file descriptors).",
            "counter",
            load(&self.accept_errors),
        );
        gauge(
            &mut out,
            "ec2bridge_cloudstack_call_waits_total",
            "CloudStack calls that waited for a concurrency permit.",
            "counter",
            load(&self.cloudstack_call_waits),
        );
        gauge(
            &mut out,
            "ec2bridge_large_answers_held",
            "Requests holding a slot for large CloudStack answers ([limits] large_answers).",
            "gauge",
            self.large_answers_held.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ec2bridge_large_answer_waits_total",
            "Requests that waited for a large-answer slot.",
            "counter",
            load(&self.large_answer_waits),
        );
        gauge(
            &mut out,
            "ec2bridge_large_answer_timeouts_total",
            "Requests that got no large-answer slot within the CloudStack call's deadline.",
            "counter",
            load(&self.large_answer_timeouts),
        );
        out
    }
}

/// Counts a request as in flight while alive.
pub struct InFlight(&'static Metrics);

impl InFlight {
    pub fn start(m: &'static Metrics) -> Self {
        m.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(m)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request(Some("DescribeInstances"), "OK", Duration::from_millis(3));
        m.request(Some("DescribeInstances"), "OK", Duration::from_millis(40));
        m.request(Some("DescribeInstances"), "InvalidParameterValue", Duration::from_millis(1));
        m.request(Some("Bad Action\"}"), "OK", Duration::from_millis(1));
        let t = m.render();
        assert!(t.contains("ec2bridge_requests_total{action=\"DescribeInstances\",code=\"OK\"} 2"), "{t}");
        assert!(t.contains("ec2bridge_requests_total{action=\"DescribeInstances\",code=\"InvalidParameterValue\"} 1"));
        // A name that is not a plausible action never reaches a label.
        assert!(t.contains("ec2bridge_requests_total{action=\"other\",code=\"OK\"} 1"), "{t}");
        assert!(t.contains("ec2bridge_request_duration_seconds_bucket{action=\"DescribeInstances\",le=\"0.005\"} 2"));
        assert!(t.contains("ec2bridge_request_duration_seconds_bucket{action=\"DescribeInstances\",le=\"0.05\"} 3"));
        assert!(t.contains("ec2bridge_request_duration_seconds_count{action=\"DescribeInstances\"} 3"));
        assert_eq!(m.request_count("DescribeInstances", "OK"), 2);
    }

    #[test]
    fn label_values_are_bounded() {
        let m = Metrics::default();
        for i in 0..(MAX_LABELS + 50) {
            m.request(Some(&format!("A{i}")), "OK", Duration::ZERO);
        }
        assert!(m.requests.0.len() <= MAX_LABELS + 1);
        assert!(m.request_count("other", "OK") >= 50);
    }
}
