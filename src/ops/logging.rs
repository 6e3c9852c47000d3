//! Log set-up and flood control.
//!
//! Logs go to stderr; `EC2BRIDGE_LOG` sets the filter (`info` by default; e.g. `debug`,
//! `ec2bridge=debug,sqlx=warn`). Format `text` (colour only when stderr is a terminal and
//! `NO_COLOR` is unset) or `json` (one object per line, with the request span's `request_id`).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Safe to call more than once (later calls do nothing), so that
/// `serve` can install the configured format after `main` set the default for other commands.
pub fn init(format: &str) {
    let filter = || EnvFilter::try_from_env("EC2BRIDGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = if format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .try_init()
    } else {
        tracing_subscriber::fmt().with_ansi(ansi).with_env_filter(filter()).with_writer(std::io::stderr).try_init()
    };
}

/// Lets through at most `per_window` events per window of `window_secs`; counts the rest and
/// reports them once in the next window ("N more suppressed"). Lock-free; used for lines that an
/// error flood would otherwise repeat thousands of times a second.
pub struct FloodGate {
    window_secs: u64,
    per_window: u64,
    window: AtomicU64,
    count: AtomicU64,
    suppressed: AtomicU64,
}

/// What the caller should do with one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Log it.
    Log,
    /// Log it, and say that this many similar events were suppressed in the previous window.
    LogWithSuppressed(u64),
    /// Drop it (counted).
    Suppress,
}

impl FloodGate {
    pub const fn new(window_secs: u64, per_window: u64) -> Self {
        FloodGate {
            window_secs,
            per_window,
            window: AtomicU64::new(0),
            count: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    pub fn admit(&self) -> Admit {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.admit_at(now)
    }

    fn admit_at(&self, now_secs: u64) -> Admit {
        let w = now_secs / self.window_secs.max(1);
        let cur = self.window.load(Ordering::Relaxed);
        if w != cur && self.window.compare_exchange(cur, w, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.count.store(1, Ordering::Relaxed);
            let s = self.suppressed.swap(0, Ordering::Relaxed);
            return if s > 0 { Admit::LogWithSuppressed(s) } else { Admit::Log };
        }
        if self.count.fetch_add(1, Ordering::Relaxed) < self.per_window {
            Admit::Log
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            Admit::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_are_summarised() {
        let g = FloodGate::new(10, 3);
        let got: Vec<Admit> = (0..6).map(|_| g.admit_at(100)).collect();
        assert_eq!(got[..3], [Admit::Log, Admit::Log, Admit::Log]);
        assert!(got[3..].iter().all(|a| *a == Admit::Suppress));
        // Next window: the first event carries the count of the suppressed ones.
        assert_eq!(g.admit_at(111), Admit::LogWithSuppressed(3));
        assert_eq!(g.admit_at(112), Admit::Log);
        assert_eq!(g.admit_at(125), Admit::Log);
    }
}
