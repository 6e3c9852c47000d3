//! Group commit for the small, frequent writes of a SQLite store (docs/gateway-state.md "Group
//! commit"): the operations journal's records and the id cache's rows. SQLite has one writer at a
//! time; concurrent requests that each commit alone queue in SQLite's busy handler (sleeps of 1
//! ms and more) and each commit rewrites the same index pages. Here one task takes every write
//! waiting at that moment and runs them in one transaction, then answers each with its own
//! outcome: a write is answered only once its transaction committed, as before.
//!
//! A statement that fails fails alone (SQLite undoes the statement, not the transaction); a
//! commit that fails fails every write of its batch. PostgreSQL has no such single writer: its
//! writes go straight to the pool.

use std::sync::Mutex;

use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use crate::ids::BoxFuture;

/// One write: statements on the batch's connection, answering rows affected.
pub type WriteFn =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<u64, sqlx::Error>> + Send + 'static>;

struct Job {
    run: WriteFn,
    done: oneshot::Sender<Result<u64, String>>,
}

/// Writes in one transaction at most.
const BATCH_MAX: usize = 256;

/// The queue of one store handle (and its clones).
#[derive(Default)]
pub struct Committer {
    queue: Mutex<Option<mpsc::UnboundedSender<Job>>>,
}

impl Committer {
    /// Run `run` in the next batch; answers once that batch committed.
    pub async fn write(&self, pool: &AnyPool, run: WriteFn) -> Result<u64, String> {
        let (done, answer) = oneshot::channel();
        let job = Job { run, done };
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let unsent = match q.as_ref() {
                Some(tx) => tx.send(job).err().map(|e| e.0),
                None => Some(job),
            };
            // No writer task yet, or it is gone (its runtime ended): a new one, in this runtime.
            if let Some(job) = unsent {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(writer(pool.clone(), rx));
                let _ = tx.send(job);
                *q = Some(tx);
            }
        }
        answer.await.unwrap_or_else(|_| Err("the store's writer stopped".into()))
    }
}

async fn writer(pool: AnyPool, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        run_batch(&pool, batch).await;
    }
}

async fn run_batch(pool: &AnyPool, batch: Vec<Job>) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let e = e.to_string();
            for j in batch {
                let _ = j.done.send(Err(e.clone()));
            }
            return;
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for j in batch {
        let r = (j.run)(&mut tx).await.map_err(|e| e.to_string());
        outcomes.push((j.done, r));
    }
    match tx.commit().await {
        Ok(()) => {
            for (done, r) in outcomes {
                let _ = done.send(r);
            }
        }
        Err(e) => {
            let e = e.to_string();
            for (done, _) in outcomes {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}
