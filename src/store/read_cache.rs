//! The two store reads every DescribeInstances makes (the caller's tombstones and instance
//! attributes), reused for at most `STATE_READS_TTL`.
//!
//! Why: with SQLite each read is a hand-off to sqlx's worker thread and back (futex wake-ups and
//! context switches) plus statement and row decoding; together they were a quarter of the
//! gateway's CPU per 10-VM DescribeInstances (bench/README.md, session 7).
//!
//! What it answers: `Journal::tombs_for_listing` and `ObjectStore::list_for_listing` (for the kinds
//! in `CACHED_KINDS`), which only listings call; every other call, and every read made by a
//! change (TerminateInstances checking termination protection, CreateTags on a terminated
//! instance), goes to the store. Consistency (docs/operations.md, "Several gateways"):
//! - this process's own writes are seen at once: every write through this wrapper (`bury`,
//!   `unbury`, `write`) drops everything cached, and a read that started before a write finished
//!   is never kept (the generation check below), so read-your-writes holds per gateway;
//! - another gateway's writes to the same database are seen within `STATE_READS_TTL`, as the
//!   registered-key cache's (`STORE_KEYS_TTL`); EC2's own API is eventually consistent;
//! - a failed read is never cached;
//! - DescribeInstances with instance ids reads the store again when an id is neither listed by
//!   CloudStack nor in the reused read (terminated through another gateway within the second),
//!   so such an instance is never NotFound (instances::tombstones).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ids::BoxFuture;
use crate::journal::{Journal, Op, Tomb};
use crate::objects::{AccountTag, Change, ObjectStore, Record, TagChange, WriteError};

/// How long a read is reused.
pub const STATE_READS_TTL: Duration = Duration::from_secs(1);

/// The object kinds whose per-owner lists are cached: those DescribeInstances reads on every call.
pub const CACHED_KINDS: &[&str] = &["instance-attributes"];

/// More owners than this cached at once: start again (a bound, not an eviction policy).
const MAX_ENTRIES: usize = 4096;

struct Entry<T> {
    read_at: Instant,
    data: Arc<T>,
}

/// owner -> (the `since` it was read with, the tombstones from then on).
type TombReads = HashMap<String, (i64, Entry<Vec<Tomb>>)>;
/// (owner, kind) -> records.
type ListReads = HashMap<(String, String), Entry<Vec<Record>>>;

/// A `Journal` + `ObjectStore` in front of another one (the store), see the module docs.
pub struct StateReadCache<S: ?Sized> {
    inner: Arc<S>,
    ttl: Duration,
    /// Bumped after every write; a read keeps its answer only if no write ended meanwhile.
    generation: AtomicU64,
    tombs: Mutex<TombReads>,
    lists: Mutex<ListReads>,
}

impl<S: ?Sized> StateReadCache<S> {
    pub fn new(inner: Arc<S>) -> Self {
        Self::with_ttl(inner, STATE_READS_TTL)
    }

    pub fn with_ttl(inner: Arc<S>, ttl: Duration) -> Self {
        StateReadCache {
            inner,
            ttl,
            generation: AtomicU64::new(0),
            tombs: Mutex::new(HashMap::new()),
            lists: Mutex::new(HashMap::new()),
        }
    }

    /// After a write (finished or failed: a failure may have written part): forget everything.
    fn wrote(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        lock(&self.tombs).clear();
        lock(&self.lists).clear();
    }

    fn fresh<T>(&self, e: &Entry<T>) -> bool {
        e.read_at.elapsed() < self.ttl
    }
}

impl<S: Journal + ?Sized> StateReadCache<S> {
    /// Read the store; keep the answer unless a write ended while it was read.
    async fn read_tombs(&self, owner: &str, since: i64) -> Result<Vec<Tomb>, String> {
        let generation = self.generation.load(Ordering::SeqCst);
        let read_at = Instant::now();
        let data = Arc::new(self.inner.tombs(owner, since).await?);
        let mut map = lock(&self.tombs);
        if self.generation.load(Ordering::SeqCst) == generation {
            keep(&mut map, owner.to_string(), (since, Entry { read_at, data: data.clone() }));
        }
        drop(map);
        Ok(Arc::unwrap_or_clone(data))
    }
}

impl<S: ObjectStore + ?Sized> StateReadCache<S> {
    async fn read_list(&self, owner: &str, kind: &str) -> Result<Vec<Record>, String> {
        if !CACHED_KINDS.contains(&kind) {
            return self.inner.list(owner, kind).await;
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let read_at = Instant::now();
        let data = Arc::new(self.inner.list(owner, kind).await?);
        let mut map = lock(&self.lists);
        if self.generation.load(Ordering::SeqCst) == generation {
            keep(&mut map, (owner.to_string(), kind.to_string()), Entry { read_at, data: data.clone() });
        }
        drop(map);
        Ok(Arc::unwrap_or_clone(data))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn keep<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: V) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(k, v);
}

impl<S: Journal + ?Sized> Journal for StateReadCache<S> {
    fn begin<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<Option<Op>, String>> {
        self.inner.begin(op)
    }
    fn update<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<bool, String>> {
        self.inner.update(op)
    }
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        self.inner.remove(id)
    }
    fn by_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Op>, String>> {
        self.inner.by_token(token)
    }
    fn take_expired<'a>(
        &'a self,
        region: &'a str,
        now: i64,
        holder: &'a str,
        until: i64,
    ) -> BoxFuture<'a, Result<Vec<Op>, String>> {
        self.inner.take_expired(region, now, holder, until)
    }
    fn renew<'a>(&'a self, holder: &'a str, until: i64) -> BoxFuture<'a, Result<(), String>> {
        self.inner.renew(holder, until)
    }
    fn prune_done(&self, before: i64) -> BoxFuture<'_, Result<(), String>> {
        self.inner.prune_done(before)
    }

    fn bury<'a>(&'a self, t: &'a Tomb, keep: usize, expire_before: i64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let r = self.inner.bury(t, keep, expire_before).await;
            self.wrote();
            r
        })
    }

    /// Always the store; the answer also refreshes what listings reuse.
    fn tombs<'a>(&'a self, owner: &'a str, since: i64) -> BoxFuture<'a, Result<Vec<Tomb>, String>> {
        Box::pin(async move { self.read_tombs(owner, since).await })
    }

    /// Tombstones only age: a list read with an earlier `since` answers a later one by filtering.
    fn tombs_for_listing<'a>(&'a self, owner: &'a str, since: i64) -> BoxFuture<'a, Result<Vec<Tomb>, String>> {
        Box::pin(async move {
            if let Some((read_since, e)) = lock(&self.tombs).get(owner)
                && *read_since <= since
                && self.fresh(e)
            {
                return Ok(e.data.iter().filter(|t| t.at >= since).cloned().collect());
            }
            self.read_tombs(owner, since).await
        })
    }

    fn unbury<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let r = self.inner.unbury(owner, id).await;
            self.wrote();
            r
        })
    }
}

impl<S: ObjectStore + ?Sized> ObjectStore for StateReadCache<S> {
    fn get<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Record>, String>> {
        self.inner.get(owner, id)
    }

    /// Always the store; for a cached kind the answer also refreshes what listings reuse.
    fn list<'a>(&'a self, owner: &'a str, kind: &'a str) -> BoxFuture<'a, Result<Vec<Record>, String>> {
        Box::pin(async move { self.read_list(owner, kind).await })
    }

    fn list_for_listing<'a>(&'a self, owner: &'a str, kind: &'a str) -> BoxFuture<'a, Result<Vec<Record>, String>> {
        Box::pin(async move {
            if CACHED_KINDS.contains(&kind)
                && let Some(e) = lock(&self.lists).get(&(owner.to_string(), kind.to_string()))
                && self.fresh(e)
            {
                return Ok(e.data.as_ref().clone());
            }
            self.read_list(owner, kind).await
        })
    }

    fn holder<'a>(&'a self, claim: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        self.inner.holder(claim)
    }

    fn write<'a>(&'a self, changes: Vec<Change>) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(async move {
            let r = self.inner.write(changes).await;
            self.wrote();
            r
        })
    }

    fn account_tags<'a>(
        &'a self,
        owner: &'a str,
        resource_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<AccountTag>, String>> {
        self.inner.account_tags(owner, resource_type)
    }

    fn change_account_tags<'a>(&'a self, owner: &'a str, changes: Vec<TagChange>) -> BoxFuture<'a, Result<(), String>> {
        self.inner.change_account_tags(owner, changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::MemoryJournal;
    use crate::objects::MemoryObjects;
    use serde_json::json;

    fn tomb(id: &str, at: i64) -> Tomb {
        Tomb { id: id.into(), owner: "o".into(), doc: json!({}), at }
    }

    /// A journal whose tombstones also change behind the cache's back (another gateway).
    #[tokio::test]
    async fn tombstones_reused_own_writes_seen_others_after_the_ttl() {
        let shared = Arc::new(MemoryJournal::default());
        let c = StateReadCache::with_ttl(shared.clone(), Duration::from_millis(300));
        c.bury(&tomb("i-1", 100), 10, 0).await.unwrap();
        assert_eq!(c.tombs_for_listing("o", 0).await.unwrap().len(), 1);
        // Another gateway's write: not seen by listings while the read is fresh ...
        shared.bury(&tomb("i-2", 200), 10, 0).await.unwrap();
        assert_eq!(c.tombs_for_listing("o", 0).await.unwrap().len(), 1);
        // ... a later `since` is answered from the same read, an earlier one is not (the read
        // did not cover it) ...
        assert_eq!(c.tombs_for_listing("o", 150).await.unwrap().len(), 0);
        assert_eq!(c.tombs_for_listing("o", -1).await.unwrap().len(), 2);
        // ... and a change's read always goes to the store.
        shared.unbury("o", "i-2").await.unwrap();
        assert_eq!(c.tombs("o", 0).await.unwrap().len(), 1);
        // Own writes at once.
        c.unbury("o", "i-1").await.unwrap();
        assert!(c.tombs_for_listing("o", 0).await.unwrap().is_empty());
        shared.bury(&tomb("i-3", 300), 10, 0).await.unwrap();
        assert!(c.tombs_for_listing("o", 0).await.unwrap().is_empty(), "reused");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(c.tombs_for_listing("o", 0).await.unwrap().len(), 1, "another gateway's write after the ttl");
    }

    #[tokio::test]
    async fn only_the_listed_kinds_are_cached_and_writes_drop_them() {
        let shared = Arc::new(MemoryObjects::default());
        let c = StateReadCache::with_ttl(shared.clone(), Duration::from_secs(60));
        let rec = |id: &str, kind: &str| Record {
            id: id.into(),
            kind: kind.into(),
            owner: "o".into(),
            vpc: None,
            doc: json!({}),
            version: 0,
        };
        assert!(c.list_for_listing("o", CACHED_KINDS[0]).await.unwrap().is_empty());
        shared.write(vec![Change::Insert(rec("a", CACHED_KINDS[0]))]).await.unwrap();
        shared.write(vec![Change::Insert(rec("b", "route-table"))]).await.unwrap();
        assert!(c.list_for_listing("o", CACHED_KINDS[0]).await.unwrap().is_empty(), "reused");
        assert_eq!(c.list("o", CACHED_KINDS[0]).await.unwrap().len(), 1, "a change's read goes to the store");
        assert_eq!(c.list_for_listing("o", "route-table").await.unwrap().len(), 1, "not a cached kind");
        shared.write(vec![Change::Insert(rec("d", CACHED_KINDS[0]))]).await.unwrap();
        assert_eq!(c.list_for_listing("o", CACHED_KINDS[0]).await.unwrap().len(), 1, "refreshed by that read");
        c.write(vec![Change::Insert(rec("c", CACHED_KINDS[0]))]).await.unwrap();
        assert_eq!(c.list_for_listing("o", CACHED_KINDS[0]).await.unwrap().len(), 3, "own write seen");
    }
}
