//! Gateway-held objects: the EC2 VPC objects CloudStack has no counterpart for (internet gateways,
//! route tables, DHCP options sets, per-VPC / per-subnet attributes; docs/vpc.md "The store").
//!
//! An object is a JSON document with a version; every change is a compare-and-set, and a batch of
//! changes (rows and uniqueness claims) is applied all or nothing. The store implements this
//! interface on its database so that every gateway sharing it sees the same objects; the
//! in-memory implementation serves a gateway without a store (tests).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::ids::BoxFuture;

/// One stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The EC2 id (`igw-...`), unique across kinds.
    pub id: String,
    /// `internet-gateway`, `route-table`, `dhcp-options`, `vpc-attributes`, ...
    pub kind: String,
    /// The owning CloudStack account.
    pub owner: String,
    /// The VPC the object belongs to, when it belongs to one.
    pub vpc: Option<String>,
    pub doc: Value,
    /// Incremented by every update; an update or delete names the version it read.
    pub version: i64,
}

/// One part of an atomic batch.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new object (its id must be free).
    Insert(Record),
    /// Replace the object whose current version is `record.version`; stored as version + 1.
    Update(Record),
    /// Remove the object at `version`, and every claim it holds.
    Delete { id: String, version: i64 },
    /// Take `claim` for `holder` (already held by the same holder is fine).
    Claim { claim: String, holder: String },
    /// Give `claim` back (only when `holder` holds it).
    Release { claim: String, holder: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// An object changed since it was read, an id is taken, or a claim is held by `holder`.
    Conflict { what: String, holder: Option<String> },
    /// The store failed (the message names no secret).
    Failed(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Conflict { what, .. } => write!(f, "conflicting change of {what}"),
            WriteError::Failed(e) => f.write_str(e),
        }
    }
}

/// A tag the gateway keeps for one account on a resource CloudStack will not tag for it (an
/// image another account owns) or does not hold (an empty snapshot): visible to that account
/// only (docs/gateway-state.md "Tags kept by the gateway").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTag {
    /// The EC2 id of the tagged resource (`ami-...`, `snap-...`).
    pub resource_id: String,
    /// The EC2 resource type (`image`, `snapshot`).
    pub resource_type: String,
    pub key: String,
    pub value: String,
}

/// One part of an atomic change of an account's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// Set the tag (a key already on the resource gets the new value).
    Put(AccountTag),
    /// Remove the resource's tags: with `key` that key only (with `value` only when it has that
    /// value); without `key` every tag of the resource.
    Remove { resource_id: String, key: Option<String>, value: Option<String> },
}

pub trait ObjectStore: Send + Sync {
    fn get<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Record>, String>>;
    /// Every object of `kind` the owner has, oldest first.
    fn list<'a>(&'a self, owner: &'a str, kind: &'a str) -> BoxFuture<'a, Result<Vec<Record>, String>>;
    /// `list` for a listing (DescribeInstances): may answer from a read made up to a second ago
    /// (store/read_cache.rs); what other gateways wrote since may be missing, this gateway's own
    /// writes never are. A change (e.g. termination protection checked by TerminateInstances)
    /// reads `list`.
    fn list_for_listing<'a>(&'a self, owner: &'a str, kind: &'a str) -> BoxFuture<'a, Result<Vec<Record>, String>> {
        self.list(owner, kind)
    }
    /// Who holds `claim`, if anyone.
    fn holder<'a>(&'a self, claim: &'a str) -> BoxFuture<'a, Result<Option<String>, String>>;
    fn write<'a>(&'a self, changes: Vec<Change>) -> BoxFuture<'a, Result<(), WriteError>>;
    /// The owner's tags, oldest first; only those of `resource_type` when it is given.
    fn account_tags<'a>(
        &'a self,
        owner: &'a str,
        resource_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<AccountTag>, String>>;
    /// Apply the changes to the owner's tags, all or nothing, in order.
    fn change_account_tags<'a>(&'a self, owner: &'a str, changes: Vec<TagChange>) -> BoxFuture<'a, Result<(), String>>;
}

/// The in-memory implementation (one process).
#[derive(Default)]
pub struct MemoryObjects {
    state: Mutex<MemState>,
}

#[derive(Default, Clone)]
struct MemState {
    objects: HashMap<String, (Record, u64)>,
    claims: HashMap<String, String>,
    seq: u64,
    /// (owner, tag), in the order they were first set.
    tags: Vec<(String, AccountTag)>,
}

impl MemState {
    fn apply(&mut self, c: Change) -> Result<(), WriteError> {
        let conflict = |what: &str, holder: Option<String>| WriteError::Conflict { what: what.to_string(), holder };
        match c {
            Change::Insert(r) => {
                if self.objects.contains_key(&r.id) {
                    return Err(conflict(&r.id, None));
                }
                self.seq += 1;
                self.objects.insert(r.id.clone(), (r, self.seq));
            }
            Change::Update(mut r) => match self.objects.get_mut(&r.id) {
                Some((cur, _)) if cur.version == r.version => {
                    r.version += 1;
                    r.owner = cur.owner.clone();
                    r.kind = cur.kind.clone();
                    *cur = r;
                }
                _ => return Err(conflict(&r.id, None)),
            },
            Change::Delete { id, version } => {
                match self.objects.get(&id) {
                    Some((cur, _)) if cur.version == version => {}
                    _ => return Err(conflict(&id, None)),
                }
                self.objects.remove(&id);
                self.claims.retain(|_, h| *h != id);
            }
            Change::Claim { claim, holder } => match self.claims.get(&claim) {
                Some(h) if *h != holder => return Err(conflict(&claim, Some(h.clone()))),
                _ => {
                    self.claims.insert(claim, holder);
                }
            },
            Change::Release { claim, holder } => {
                if self.claims.get(&claim) == Some(&holder) {
                    self.claims.remove(&claim);
                }
            }
        }
        Ok(())
    }
}

impl MemoryObjects {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ObjectStore for MemoryObjects {
    fn get<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Record>, String>> {
        let r = self.lock().objects.get(id).filter(|(r, _)| r.owner == owner).map(|(r, _)| r.clone());
        Box::pin(async move { Ok(r) })
    }

    fn list<'a>(&'a self, owner: &'a str, kind: &'a str) -> BoxFuture<'a, Result<Vec<Record>, String>> {
        let mut v: Vec<(Record, u64)> =
            self.lock().objects.values().filter(|(r, _)| r.owner == owner && r.kind == kind).cloned().collect();
        v.sort_by_key(|(_, seq)| *seq);
        Box::pin(async move { Ok(v.into_iter().map(|(r, _)| r).collect()) })
    }

    fn holder<'a>(&'a self, claim: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        let h = self.lock().claims.get(claim).cloned();
        Box::pin(async move { Ok(h) })
    }

    fn write<'a>(&'a self, changes: Vec<Change>) -> BoxFuture<'a, Result<(), WriteError>> {
        let mut guard = self.lock();
        // All or nothing: apply to a copy, keep it only when every change applied.
        let mut next = guard.clone();
        let r = changes.into_iter().try_for_each(|c| next.apply(c));
        if r.is_ok() {
            *guard = next;
        }
        Box::pin(async move { r })
    }

    fn account_tags<'a>(
        &'a self,
        owner: &'a str,
        resource_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<AccountTag>, String>> {
        let v: Vec<AccountTag> = self
            .lock()
            .tags
            .iter()
            .filter(|(o, t)| o == owner && resource_type.is_none_or(|rt| t.resource_type == rt))
            .map(|(_, t)| t.clone())
            .collect();
        Box::pin(async move { Ok(v) })
    }

    fn change_account_tags<'a>(&'a self, owner: &'a str, changes: Vec<TagChange>) -> BoxFuture<'a, Result<(), String>> {
        let mut g = self.lock();
        for c in changes {
            match c {
                TagChange::Put(t) => {
                    match g
                        .tags
                        .iter_mut()
                        .find(|(o, x)| o == owner && x.resource_id == t.resource_id && x.key == t.key)
                    {
                        Some((_, x)) => *x = t,
                        None => g.tags.push((owner.to_string(), t)),
                    }
                }
                TagChange::Remove { resource_id, key, value } => g.tags.retain(|(o, x)| {
                    !(o == owner
                        && x.resource_id == resource_id
                        && key.as_ref().is_none_or(|k| *k == x.key)
                        && value.as_ref().is_none_or(|v| *v == x.value))
                }),
            }
        }
        Box::pin(async move { Ok(()) })
    }
}

/// A fresh random EC2 id: `<prefix>-` + 17 lowercase hex digits.
pub fn new_id(prefix: &str) -> String {
    let n: u128 = rand::random();
    format!("{prefix}-{:017x}", n & ((1u128 << 68) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(id: &str) -> Record {
        Record {
            id: id.into(),
            kind: "route-table".into(),
            owner: "a".into(),
            vpc: Some("vpc-1".into()),
            doc: json!({"routes": []}),
            version: 0,
        }
    }

    #[tokio::test]
    async fn batches_are_all_or_nothing_and_versions_compare() {
        let m = MemoryObjects::default();
        m.write(vec![
            Change::Insert(rec("rtb-1")),
            Change::Claim { claim: "main:vpc-1".into(), holder: "rtb-1".into() },
        ])
        .await
        .unwrap();
        // The claim is taken: the whole batch fails and rtb-2 is not stored.
        let e = m
            .write(vec![
                Change::Insert(rec("rtb-2")),
                Change::Claim { claim: "main:vpc-1".into(), holder: "rtb-2".into() },
            ])
            .await
            .unwrap_err();
        assert_eq!(e, WriteError::Conflict { what: "main:vpc-1".into(), holder: Some("rtb-1".into()) });
        assert!(m.get("a", "rtb-2").await.unwrap().is_none());
        // Stale version -> conflict; current version -> stored as version + 1.
        let cur = m.get("a", "rtb-1").await.unwrap().unwrap();
        m.write(vec![Change::Update(cur.clone())]).await.unwrap();
        assert!(matches!(m.write(vec![Change::Update(cur)]).await, Err(WriteError::Conflict { .. })));
        assert_eq!(m.get("a", "rtb-1").await.unwrap().unwrap().version, 1);
        // Other owners see nothing; delete drops the claims the object held.
        assert!(m.get("b", "rtb-1").await.unwrap().is_none());
        m.write(vec![Change::Delete { id: "rtb-1".into(), version: 1 }]).await.unwrap();
        assert_eq!(m.holder("main:vpc-1").await.unwrap(), None);
        let id = new_id("igw");
        assert!(id.starts_with("igw-") && id.len() == 21 && id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
