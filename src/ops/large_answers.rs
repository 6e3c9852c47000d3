//! How many large CloudStack answers the gateway holds at once (issue 13: resident memory at 64
//! connections of DescribeInstances over 1,000 VMs). A request that lists 1,000 VMs holds two
//! CloudStack pages of 500 and a volume listing as JSON trees while it renders its answer, ~10 MB;
//! 64 of them at once took the gateway to 600-700 MB. On a few cores those requests are
//! CPU-bound, so running more of them at once than there are cores gains no throughput, only
//! memory (bench/README.md, "Session 7").
//!
//! So each EC2 request runs in a scope (`with_scope`, set by the HTTP entry) and:
//!
//! - a CloudStack answer larger than `bytes` (by its Content-Length, or by the bytes read so far
//!   when it has none) needs one of `slots` slots before its body is read; the request keeps the
//!   slot until it ends (its EC2 answer rendered), and every further large answer of the same
//!   request uses that slot;
//! - a request holds at most one slot and waits for one only while it holds none, so a waiting
//!   request never blocks one that holds a slot (no deadlock); concurrent calls of one request
//!   (pages read in parallel) share the request's wait;
//! - small answers never wait; calls outside a request (background work) are not bounded.
//!
//! The waiting itself is the CloudStack client's (`cloudstack::client`): it releases its call
//! slots first and bounds the wait by the call's deadline. A list whose last answer was large
//! takes the slot before it is sent, so that in steady state nothing waits with an unread answer
//! in its connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

/// The process's bound: `slots` large answers at once (0: unbounded), "large" meaning more than
/// `bytes` bytes. One for the whole process (all regions): memory is the process's.
#[derive(Debug)]
pub struct LargeAnswers {
    bytes: usize,
    slots: usize,
    sem: Option<Arc<Semaphore>>,
    held: AtomicUsize,
    peak: AtomicUsize,
    waiting: AtomicUsize,
}

impl LargeAnswers {
    pub fn new(slots: usize, bytes: usize) -> Arc<Self> {
        Arc::new(LargeAnswers {
            bytes,
            slots,
            sem: (slots > 0).then(|| Arc::new(Semaphore::new(slots))),
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        })
    }

    /// Slots (0: unbounded).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The size above which an answer is large.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Slots held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// The most slots held at once since the start (or `reset_peak`).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn reset_peak(&self) {
        self.peak.store(self.held(), Ordering::SeqCst);
    }
}

/// A held slot; released when the request's scope ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    limits: Arc<LargeAnswers>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.held.fetch_sub(1, Ordering::SeqCst);
        super::metrics::global().large_answers_held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a waiting request until dropped (also when the request is cut while waiting).
struct Waiting<'a>(&'a LargeAnswers);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Scope {
    limits: Arc<LargeAnswers>,
    slot: OnceCell<Slot>,
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

/// Run one request's `fut` under `limits`; a slot it takes is released when `fut` ends.
pub async fn with_scope<F: std::future::Future>(limits: Arc<LargeAnswers>, fut: F) -> F::Output {
    SCOPE.scope(Arc::new(Scope { limits, slot: OnceCell::new() }), fut).await
}

/// Whether this task serves a request under a bound.
pub fn bounded() -> bool {
    SCOPE.try_with(|s| s.limits.sem.is_some()).unwrap_or(false)
}

/// Whether this task serves a request under a bound whose slot it does not hold yet.
pub fn may_wait() -> bool {
    SCOPE.try_with(|s| s.limits.sem.is_some() && s.slot.get().is_none()).unwrap_or(false)
}

/// Whether `bytes` is large for this request's bound (false outside a scope or unbounded).
pub fn is_large(bytes: usize) -> bool {
    SCOPE.try_with(|s| s.limits.sem.is_some() && bytes > s.limits.bytes).unwrap_or(false)
}

/// Whether an answer of `bytes` bytes (declared, or read so far) must wait for a slot first:
/// inside a request scope with a bound, larger than the threshold, and the request holds none.
pub fn must_wait(bytes: usize) -> bool {
    SCOPE.try_with(|s| s.limits.sem.is_some() && bytes > s.limits.bytes && s.slot.get().is_none()).unwrap_or(false)
}

/// No slot came free in time.
#[derive(Debug, Clone)]
pub struct Busy {
    pub slots: usize,
    pub waited_ms: u128,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the gateway is busy with other large answers ({} at once): no room to read this one within {} ms",
            self.slots, self.waited_ms
        )
    }
}

/// Take the request's slot, waiting until `until` at most (None: no deadline); at once when it
/// holds one already or no bound applies. Concurrent callers of one request wait for the same slot.
pub async fn take_slot(until: Option<Instant>) -> Result<(), Busy> {
    let Ok(scope) = SCOPE.try_with(Arc::clone) else { return Ok(()) };
    let Some(sem) = scope.limits.sem.clone() else { return Ok(()) };
    let started = Instant::now();
    let limits = scope.limits.clone();
    scope
        .slot
        .get_or_try_init(|| async move {
            let permit = match sem.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    super::metrics::global().large_answer_waits.fetch_add(1, Ordering::Relaxed);
                    limits.waiting.fetch_add(1, Ordering::SeqCst);
                    let waiting = Waiting(&limits);
                    let acquired = match until {
                        Some(t) => tokio::time::timeout_at(t.into(), sem.acquire_owned()).await,
                        None => Ok(sem.acquire_owned().await),
                    };
                    drop(waiting);
                    match acquired {
                        Ok(Ok(p)) => p,
                        // Closed: never (the semaphore lives as long as `limits`).
                        Ok(Err(_)) | Err(_) => {
                            super::metrics::global().large_answer_timeouts.fetch_add(1, Ordering::Relaxed);
                            return Err(Busy { slots: limits.slots, waited_ms: started.elapsed().as_millis() });
                        }
                    }
                }
            };
            let now = limits.held.fetch_add(1, Ordering::SeqCst) + 1;
            limits.peak.fetch_max(now, Ordering::SeqCst);
            super::metrics::global().large_answers_held.fetch_add(1, Ordering::Relaxed);
            Ok(Slot { _permit: permit, limits })
        })
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later(ms: u64) -> Option<Instant> {
        Some(Instant::now() + Duration::from_millis(ms))
    }

    #[tokio::test]
    async fn small_answers_and_unscoped_calls_never_wait() {
        let l = LargeAnswers::new(1, 100);
        assert!(!must_wait(1000), "outside a request scope");
        assert!(!bounded() && !may_wait() && !is_large(1000));
        with_scope(l.clone(), async {
            assert!(!must_wait(100));
            assert!(must_wait(101) && may_wait() && is_large(101) && bounded());
            take_slot(later(1000)).await.unwrap();
            assert!(!must_wait(101) && !may_wait(), "the request holds its slot");
            assert!(is_large(101));
            take_slot(later(0)).await.unwrap();
            assert_eq!(l.held(), 1);
        })
        .await;
        assert_eq!(l.held(), 0, "released with the scope");
        assert_eq!(l.peak(), 1);
        let unbounded = LargeAnswers::new(0, 100);
        with_scope(unbounded.clone(), async { assert!(!must_wait(1 << 30) && !may_wait() && !is_large(1 << 30)) })
            .await;
    }

    #[tokio::test]
    async fn a_full_bound_answers_busy_at_the_deadline() {
        let l = LargeAnswers::new(1, 10);
        let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
        let (took_tx, took_rx) = tokio::sync::oneshot::channel::<()>();
        let holder = tokio::spawn(with_scope(l.clone(), async move {
            take_slot(later(1000)).await.unwrap();
            took_tx.send(()).unwrap();
            let _ = hold_rx.await;
        }));
        took_rx.await.unwrap();
        let e = with_scope(l.clone(), take_slot(later(20))).await.unwrap_err();
        assert_eq!(e.slots, 1);
        assert!(e.to_string().contains("busy"), "{e}");
        hold_tx.send(()).unwrap();
        holder.await.unwrap();
        with_scope(l.clone(), take_slot(later(1000))).await.unwrap();
        assert_eq!((l.held(), l.peak()), (0, 1));
    }

    /// Parallel calls of one request share its one slot (a second slot would be a deadlock risk).
    #[tokio::test]
    async fn one_request_holds_one_slot() {
        let l = LargeAnswers::new(2, 10);
        with_scope(l.clone(), async {
            let (a, b, c) = tokio::join!(take_slot(later(1000)), take_slot(later(1000)), take_slot(later(1000)));
            a.unwrap();
            b.unwrap();
            c.unwrap();
            assert_eq!(l.held(), 1);
        })
        .await;
        assert_eq!(l.peak(), 1);
    }
}
