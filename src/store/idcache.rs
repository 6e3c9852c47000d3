//! The executor's EC2 id -> CloudStack uuid cache backed by the store, so that gateways sharing a
//! database (and a restarted gateway) resolve ids another one rendered without listing first.
//!
//! A memory layer sits in front: lookups hit the database only on a memory miss, and only ids the
//! memory layer has not seen are written (a DescribeInstances of 1,000 VMs writes nothing the
//! second time). Store errors never fail a request: the executor then lists, as on any miss.

use crate::ids::{BoxFuture, IdCache, Kind, MemoryIdCache};

use super::Store;

pub struct StoreIdCache {
    store: Store,
    memory: MemoryIdCache,
}

impl StoreIdCache {
    pub fn new(store: Store) -> Self {
        StoreIdCache { store, memory: MemoryIdCache::default() }
    }
}

impl IdCache for StoreIdCache {
    fn lookup<'a>(&'a self, ec2_id: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            if let Some(u) = self.memory.get(ec2_id) {
                return Some(u);
            }
            match self.store.get_uuid(ec2_id).await {
                Ok(Some((_, uuid))) => {
                    self.memory.insert(ec2_id.to_string(), uuid.clone());
                    Some(uuid)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "id cache lookup in the store failed");
                    None
                }
            }
        })
    }

    fn record<'a>(&'a self, entries: Vec<(Kind, String, String)>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let fresh: Vec<(String, Kind, String)> = entries
                .into_iter()
                .filter(|(_, id, uuid)| !self.memory.holds(id, uuid))
                .map(|(kind, id, uuid)| (id, kind, uuid))
                .collect();
            if fresh.is_empty() {
                return;
            }
            match self.store.put_ids(&fresh).await {
                Ok(()) => {
                    for (id, _, uuid) in fresh {
                        self.memory.insert(id, uuid);
                    }
                }
                // Not remembered in memory either, so the next sighting tries the store again.
                Err(e) => tracing::warn!(error = %e, entries = fresh.len(), "id cache write to the store failed"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{KeySource, generate_key_base64};

    #[tokio::test]
    async fn shared_through_the_store_and_written_once() {
        let store = Store::open("sqlite::memory:", &KeySource::Base64(generate_key_base64().unwrap())).await.unwrap();
        let a = StoreIdCache::new(store.clone());
        let id = crate::ids::ec2_id(Kind::Instance, "uuid-1");
        a.record(vec![(Kind::Instance, id.clone(), "uuid-1".into())]).await;
        assert_eq!(a.lookup(&id).await.as_deref(), Some("uuid-1"));
        // Another gateway on the same database knows it without having seen it.
        let b = StoreIdCache::new(store.clone());
        assert_eq!(b.lookup(&id).await.as_deref(), Some("uuid-1"));
        assert_eq!(store.get_uuid(&id).await.unwrap(), Some((Kind::Instance, "uuid-1".into())));
        assert_eq!(b.lookup("i-00000000000000000").await, None);
        // A store that fails costs a miss, never an error.
        store.close().await;
        let c = StoreIdCache::new(store.clone());
        assert_eq!(c.lookup(&id).await, None);
        c.record(vec![(Kind::Image, "ami-1".into(), "u".into())]).await;
        assert_eq!(a.lookup(&id).await.as_deref(), Some("uuid-1"), "memory layer still answers");
    }
}
