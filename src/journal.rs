//! The operations journal (docs/gateway-state.md "The operations journal"): what a gateway has
//! started and not yet finished, so that no operation lives only in one process's memory.
//!
//! - An **operation** is a record of work that continues after the request was answered (a
//!   RunInstances rollback, watching deploy and stop/start jobs, CreateImage's restart of the
//!   instance) or an **idempotency record** (a ClientToken and the first answer). It carries the
//!   CloudStack keys it runs with (the store seals the secret), the steps done (`doc`), and a
//!   lease: the gateway working on it (`holder`) renews the lease while it runs; an operation
//!   whose lease ran out (its gateway died or was restarted) is taken over by another gateway, or
//!   by the same one after its restart, which finishes or undoes it.
//! - A **tombstone** is a terminated instance as DescribeInstances shows it (CloudStack hides
//!   destroyed VMs from their owners at once): a few hundred bytes per instance, kept for a
//!   bounded time and at most a bounded number per owner.
//!
//! The store implements this on its database (tables `operations` and `tombstones`), so every
//! gateway on one store shares it; `MemoryJournal` serves a gateway without a store (tests).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::ids::BoxFuture;

/// One journal entry.
#[derive(Clone, PartialEq)]
pub struct Op {
    /// `op-...`, random.
    pub id: String,
    /// What to do with it after a take-over (`undo-launch`, `watch-launch`, `watch-state`,
    /// `restart-instance`, `client-token`).
    pub kind: String,
    /// The region whose CloudStack it concerns: only that region's executor takes it over.
    pub region: String,
    /// The owning account (the object store's owner).
    pub owner: String,
    /// Idempotency key (unique in the store), e.g. owner + action + ClientToken.
    pub token: Option<String>,
    /// The CloudStack keys the work runs with; the store keeps the secret sealed.
    pub cs_key: String,
    pub cs_secret: String,
    /// Finished: nothing is left to do; kept for its answer (idempotency records).
    pub done: bool,
    pub doc: Value,
    /// Incremented by every update; an update names the version it read.
    pub version: i64,
    /// The gateway process working on it, and until when (unix seconds).
    pub holder: String,
    pub lease_until: i64,
    /// Unix seconds.
    pub created: i64,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("region", &self.region)
            .field("owner", &self.owner)
            .field("done", &self.done)
            .field("version", &self.version)
            .field("holder", &self.holder)
            .field("lease_until", &self.lease_until)
            .finish_non_exhaustive()
    }
}

/// A terminated instance, as DescribeInstances shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tomb {
    /// The EC2 instance id.
    pub id: String,
    pub owner: String,
    /// The instance's fields for DescribeInstances (docs/gateway-state.md).
    pub doc: Value,
    /// When it was terminated (unix seconds).
    pub at: i64,
}

pub trait Journal: Send + Sync {
    /// Store a new operation. When its `token` is already taken: the operation holding it
    /// (nothing stored).
    fn begin<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<Option<Op>, String>>;
    /// Replace the operation whose stored version is `op.version` (stored as version + 1): its
    /// kind, doc, done flag and lease. `false`: it changed or went meanwhile.
    fn update<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<bool, String>>;
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>>;
    fn by_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Op>, String>>;
    /// Unfinished operations of `region` whose lease ended before `now`, now leased to
    /// `holder` until `until` (each taken by one gateway only).
    fn take_expired<'a>(
        &'a self,
        region: &'a str,
        now: i64,
        holder: &'a str,
        until: i64,
    ) -> BoxFuture<'a, Result<Vec<Op>, String>>;
    /// Extend the lease of every unfinished operation `holder` works on.
    fn renew<'a>(&'a self, holder: &'a str, until: i64) -> BoxFuture<'a, Result<(), String>>;
    /// Forget finished operations created before `before`.
    fn prune_done(&self, before: i64) -> BoxFuture<'_, Result<(), String>>;
    /// Keep a tombstone (replacing one with the same id); then drop the owner's tombstones
    /// older than `expire_before` and all but the newest `keep`.
    fn bury<'a>(&'a self, t: &'a Tomb, keep: usize, expire_before: i64) -> BoxFuture<'a, Result<(), String>>;
    /// The owner's tombstones from `since` on, oldest first.
    fn tombs<'a>(&'a self, owner: &'a str, since: i64) -> BoxFuture<'a, Result<Vec<Tomb>, String>>;
    /// `tombs` for a listing (DescribeInstances): may answer from a read made up to a second ago
    /// (store/read_cache.rs); what other gateways wrote since may be missing, this gateway's own
    /// writes never are. A change (terminate, tag) reads `tombs`.
    fn tombs_for_listing<'a>(&'a self, owner: &'a str, since: i64) -> BoxFuture<'a, Result<Vec<Tomb>, String>> {
        self.tombs(owner, since)
    }
    fn unbury<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A fresh operation id.
pub fn new_op_id() -> String {
    format!("op-{}", uuid::Uuid::new_v4().simple())
}

/// The in-memory journal (one process).
#[derive(Default)]
pub struct MemoryJournal {
    state: Mutex<MemState>,
}

#[derive(Default)]
struct MemState {
    ops: HashMap<String, Op>,
    tombs: HashMap<String, Tomb>,
}

impl MemoryJournal {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(async move { v })
}

impl Journal for MemoryJournal {
    fn begin<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<Option<Op>, String>> {
        let mut s = self.lock();
        if let Some(t) = &op.token
            && let Some(held) = s.ops.values().find(|o| o.token.as_ref() == Some(t))
        {
            return ready(Ok(Some(held.clone())));
        }
        s.ops.insert(op.id.clone(), op.clone());
        ready(Ok(None))
    }

    fn update<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<bool, String>> {
        let mut s = self.lock();
        let ok = match s.ops.get_mut(&op.id) {
            Some(cur) if cur.version == op.version => {
                *cur = Op { version: op.version + 1, ..op.clone() };
                true
            }
            _ => false,
        };
        ready(Ok(ok))
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        self.lock().ops.remove(id);
        ready(Ok(()))
    }

    fn by_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Op>, String>> {
        let o = self.lock().ops.values().find(|o| o.token.as_deref() == Some(token)).cloned();
        ready(Ok(o))
    }

    fn take_expired<'a>(
        &'a self,
        region: &'a str,
        now: i64,
        holder: &'a str,
        until: i64,
    ) -> BoxFuture<'a, Result<Vec<Op>, String>> {
        let mut s = self.lock();
        let mut out = Vec::new();
        for o in s.ops.values_mut() {
            if !o.done && o.region == region && o.lease_until < now {
                o.holder = holder.to_string();
                o.lease_until = until;
                o.version += 1;
                out.push(o.clone());
            }
        }
        out.sort_by_key(|o| o.created);
        ready(Ok(out))
    }

    fn renew<'a>(&'a self, holder: &'a str, until: i64) -> BoxFuture<'a, Result<(), String>> {
        for o in self.lock().ops.values_mut() {
            if !o.done && o.holder == holder {
                o.lease_until = until;
            }
        }
        ready(Ok(()))
    }

    fn prune_done(&self, before: i64) -> BoxFuture<'_, Result<(), String>> {
        self.lock().ops.retain(|_, o| !(o.done && o.created < before));
        ready(Ok(()))
    }

    fn bury<'a>(&'a self, t: &'a Tomb, keep: usize, expire_before: i64) -> BoxFuture<'a, Result<(), String>> {
        let mut s = self.lock();
        s.tombs.insert(t.id.clone(), t.clone());
        s.tombs.retain(|_, x| x.owner != t.owner || x.at >= expire_before);
        let mut mine: Vec<(i64, String)> =
            s.tombs.values().filter(|x| x.owner == t.owner).map(|x| (x.at, x.id.clone())).collect();
        if mine.len() > keep {
            mine.sort();
            for (_, id) in &mine[..mine.len() - keep] {
                s.tombs.remove(id);
            }
        }
        ready(Ok(()))
    }

    fn tombs<'a>(&'a self, owner: &'a str, since: i64) -> BoxFuture<'a, Result<Vec<Tomb>, String>> {
        let mut v: Vec<Tomb> =
            self.lock().tombs.values().filter(|t| t.owner == owner && t.at >= since).cloned().collect();
        v.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        ready(Ok(v))
    }

    fn unbury<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let mut s = self.lock();
        if s.tombs.get(id).is_some_and(|t| t.owner == owner) {
            s.tombs.remove(id);
        }
        ready(Ok(()))
    }
}

/// Tests shared by every implementation (the store's run them on SQLite and PostgreSQL).
pub async fn conformance(j: &dyn Journal) {
    use serde_json::json;
    let op = |id: &str, token: Option<&str>| Op {
        id: id.into(),
        kind: "client-token".into(),
        region: "r1".into(),
        owner: "acct".into(),
        token: token.map(str::to_string),
        cs_key: "key".into(),
        cs_secret: "secret".into(),
        done: false,
        doc: json!({"n": 1}),
        version: 0,
        holder: "g1".into(),
        lease_until: 100,
        created: 10,
    };
    let a = op(&new_op_id(), Some("t1"));
    assert_eq!(j.begin(&a).await.unwrap(), None);
    // The token is taken: the holder comes back, nothing is stored.
    let b = op(&new_op_id(), Some("t1"));
    assert_eq!(j.begin(&b).await.unwrap().map(|o| o.id), Some(a.id.clone()));
    let got = j.by_token("t1").await.unwrap().unwrap();
    assert_eq!((got.cs_secret.as_str(), &got.doc), ("secret", &json!({"n": 1})));
    // Compare-and-set.
    let mut next = got.clone();
    next.doc = json!({"n": 2});
    assert!(j.update(&next).await.unwrap());
    assert!(!j.update(&next).await.unwrap());
    // An operation may become another kind (a launch answered becomes the watch of its deploys).
    let mut other = j.by_token("t1").await.unwrap().unwrap();
    other.kind = "watch-launch".into();
    assert!(j.update(&other).await.unwrap());
    let mut back = j.by_token("t1").await.unwrap().unwrap();
    assert_eq!((back.kind.as_str(), back.version), ("watch-launch", 2));
    back.kind = "client-token".into();
    assert!(j.update(&back).await.unwrap());
    // Leases: another gateway takes over an expired one, once.
    let c = op(&new_op_id(), None);
    assert_eq!(j.begin(&c).await.unwrap(), None);
    assert!(j.take_expired("r1", 50, "g2", 200).await.unwrap().is_empty());
    assert!(j.take_expired("r2", 150, "g2", 200).await.unwrap().is_empty());
    let taken = j.take_expired("r1", 150, "g2", 200).await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|o| o.holder == "g2" && o.lease_until == 200));
    assert!(j.take_expired("r1", 150, "g3", 300).await.unwrap().is_empty());
    j.renew("g2", 400).await.unwrap();
    assert!(j.take_expired("r1", 350, "g3", 500).await.unwrap().is_empty());
    // Done operations are never taken over; pruned by age.
    let mut d = j.by_token("t1").await.unwrap().unwrap();
    d.done = true;
    assert!(j.update(&d).await.unwrap());
    assert!(j.take_expired("r1", 1000, "g3", 1100).await.unwrap().iter().all(|o| o.id == c.id));
    j.prune_done(11).await.unwrap();
    assert!(j.by_token("t1").await.unwrap().is_none());
    j.remove(&c.id).await.unwrap();
    assert!(j.take_expired("r1", 5000, "g3", 5100).await.unwrap().is_empty());
    // Tombstones: per owner, bounded by age and count, oldest first.
    let t = |id: &str, owner: &str, at: i64| Tomb { id: id.into(), owner: owner.into(), doc: json!({"id": id}), at };
    for i in 0..5 {
        j.bury(&t(&format!("i-{i}"), "acct", 100 + i), 3, 0).await.unwrap();
    }
    j.bury(&t("i-other", "other", 100), 3, 0).await.unwrap();
    let ids: Vec<String> = j.tombs("acct", 0).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["i-2", "i-3", "i-4"]);
    assert_eq!(j.tombs("acct", 104).await.unwrap().len(), 1);
    j.bury(&t("i-5", "acct", 200), 3, 104).await.unwrap();
    let ids: Vec<String> = j.tombs("acct", 0).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["i-4", "i-5"]);
    j.unbury("other", "i-4").await.unwrap();
    assert_eq!(j.tombs("acct", 0).await.unwrap().len(), 2);
    j.unbury("acct", "i-4").await.unwrap();
    assert_eq!(j.tombs("acct", 0).await.unwrap().len(), 1);
    assert_eq!(j.tombs("other", 0).await.unwrap().len(), 1);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_journal_conforms() {
        super::conformance(&super::MemoryJournal::default()).await;
    }
}
