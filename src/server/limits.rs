//! Per-user request rate limits: one token bucket per access key, refilled continuously; an action
//! costs its weight (default 1). An empty bucket answers EC2's `RequestLimitExceeded` (HTTP 503),
//! which SDKs retry with backoff. Per gateway process (docs/operations.md says how they add up).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use dashmap::DashMap;

#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Tokens per second added to each bucket; 0 = no rate limit.
    pub per_sec: f64,
    pub burst: f64,
    pub weights: HashMap<String, f64>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before idle (full) ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

pub struct RateLimiter {
    cfg: RateLimits,
    buckets: DashMap<String, Mutex<Bucket>>,
}

impl RateLimiter {
    pub fn new(cfg: RateLimits) -> Self {
        RateLimiter { cfg, buckets: DashMap::new() }
    }

    pub fn weight(&self, action: &str) -> f64 {
        self.cfg.weights.get(action).copied().unwrap_or(1.0)
    }

    /// Take `action`'s weight from `key`'s bucket. `false`: refused (nothing taken).
    pub fn admit(&self, key: &str, action: &str) -> bool {
        self.admit_at(key, action, Instant::now())
    }

    fn admit_at(&self, key: &str, action: &str, now: Instant) -> bool {
        if self.cfg.per_sec <= 0.0 {
            return true;
        }
        let cost = self.weight(action);
        let refill = |b: &mut Bucket| {
            let dt = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + dt * self.cfg.per_sec).min(self.cfg.burst);
            b.at = now;
        };
        let take = |b: &mut Bucket| {
            refill(b);
            if b.tokens >= cost {
                b.tokens -= cost;
                true
            } else {
                false
            }
        };
        if let Some(b) = self.buckets.get(key) {
            return take(&mut b.lock().unwrap_or_else(|p| p.into_inner()));
        }
        if self.buckets.len() >= PRUNE_ABOVE {
            self.prune(now);
        }
        let entry = self
            .buckets
            .entry(key.to_string())
            .or_insert_with(|| Mutex::new(Bucket { tokens: self.cfg.burst, at: now }));
        take(&mut entry.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Drop buckets that have refilled completely: they hold nothing a new bucket would not.
    fn prune(&self, now: Instant) {
        let full_after = self.cfg.burst / self.cfg.per_sec;
        self.buckets.retain(|_, b| {
            let b = b.get_mut().unwrap_or_else(|p| p.into_inner());
            now.saturating_duration_since(b.at).as_secs_f64() < full_after
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(per_sec: f64, burst: f64) -> RateLimiter {
        RateLimiter::new(RateLimits {
            per_sec,
            burst,
            weights: [("RunInstances".to_string(), 5.0)].into_iter().collect(),
        })
    }

    #[test]
    fn bucket_refills_and_weights_count() {
        let l = limiter(2.0, 10.0);
        let t0 = Instant::now();
        assert!((0..10).all(|_| l.admit_at("a", "DescribeInstances", t0)));
        assert!(!l.admit_at("a", "DescribeInstances", t0));
        // Another user is not affected.
        assert!(l.admit_at("b", "DescribeInstances", t0));
        // 2.5 s later: 5 tokens, exactly one RunInstances.
        let t1 = t0 + Duration::from_millis(2500);
        assert!(l.admit_at("a", "RunInstances", t1));
        assert!(!l.admit_at("a", "DescribeInstances", t1));
        // Never more than the burst, however long the pause.
        let t2 = t1 + Duration::from_secs(3600);
        assert!((0..10).all(|_| l.admit_at("a", "DescribeInstances", t2)));
        assert!(!l.admit_at("a", "DescribeInstances", t2));
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let l = limiter(0.0, 1.0);
        assert!((0..1000).all(|_| l.admit("a", "RunInstances")));
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let l = limiter(1000.0, 1.0);
        let t0 = Instant::now();
        for i in 0..PRUNE_ABOVE {
            l.admit_at(&format!("k{i}"), "X", t0);
        }
        l.admit_at("new", "X", t0 + Duration::from_secs(1));
        assert!(l.buckets.len() < 10, "{}", l.buckets.len());
    }
}
