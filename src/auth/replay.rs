//! Signed requests that may be used only once: SOAP envelopes (a captured WS-Security request
//! must not run twice inside its freshness window) and the registration calls. The key is a
//! digest of what was verified (decoded signature bytes and the signed time), never of the text
//! as sent, so re-spelling the same signature (other whitespace, an XML comment) is the same key.
//!
//! One gateway: [`MemoryReplayGuard`]. Gateways sharing a store: the store's `used_signatures`
//! table behind this trait (wired by the application layer), so a request replayed to another
//! gateway behind the same balancer is caught too.

use dashmap::DashMap;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::credentials::BoxFuture;
use crate::base::Ec2Error;

/// A digest naming one verified request: SHA-256 over a purpose label and the verified parts,
/// each length-prefixed so no two different inputs collide by concatenation.
pub fn replay_key(purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in std::iter::once(purpose.as_bytes()).chain(parts.iter().copied()) {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

pub trait ReplayGuard: Send + Sync {
    /// Record `key` as used until `until` (after which the verifier refuses the request as
    /// expired anyway). `Ok(false)`: already used. `Err`: the guard could not answer (then the
    /// request is refused with a retryable error rather than risk running twice).
    fn first_use<'a>(
        &'a self,
        key: [u8; 32],
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Ec2Error>>;
}

/// Per-process guard, bounded.
#[derive(Debug, Default)]
pub struct MemoryReplayGuard {
    seen: DashMap<[u8; 32], OffsetDateTime>,
}

const MEMORY_CAP: usize = 200_000;

impl MemoryReplayGuard {
    pub fn first_use_now(&self, key: [u8; 32], until: OffsetDateTime, now: OffsetDateTime) -> bool {
        if self.seen.len() >= MEMORY_CAP {
            self.seen.retain(|_, t| *t > now);
        }
        match self.seen.entry(key) {
            dashmap::Entry::Occupied(mut e) => {
                if *e.get() > now {
                    return false;
                }
                e.insert(until);
                true
            }
            dashmap::Entry::Vacant(e) => {
                e.insert(until);
                true
            }
        }
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn first_use<'a>(
        &'a self,
        key: [u8; 32],
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<bool, Ec2Error>> {
        Box::pin(std::future::ready(Ok(self.first_use_now(key, until, now))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_length_prefixed() {
        assert_ne!(replay_key("p", &[b"ab", b"c"]), replay_key("p", &[b"a", b"bc"]));
        assert_ne!(replay_key("soap", &[b"x"]), replay_key("registration", &[b"x"]));
        assert_eq!(replay_key("p", &[b"x"]), replay_key("p", &[b"x"]));
    }

    #[test]
    fn memory_guard_window() {
        let now = OffsetDateTime::now_utc();
        let g = MemoryReplayGuard::default();
        let k = replay_key("t", &[b"sig"]);
        let until = now + time::Duration::minutes(5);
        assert!(g.first_use_now(k, until, now));
        assert!(!g.first_use_now(k, until, now + time::Duration::minutes(1)));
        // Once the window is over the verifier refuses it anyway; the guard may forget it.
        assert!(g.first_use_now(k, until, now + time::Duration::minutes(6)));
    }
}
