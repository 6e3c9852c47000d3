//! The small, frequent writes of the store (docs/gateway-state.md "Group commit"): the operations
//! journal's records and the id cache's rows, as data (`Write`: one statement, one row of
//! arguments per execution), so that each backend can run them its cheapest way.
//!
//! A file-backed SQLite store has one writer at a time. Concurrent requests that each committed
//! alone queued in SQLite's busy handler (sleeps of 1 ms and more), so one thread of the store's
//! own (`SqliteWriter`) takes every write waiting at that moment and runs them in one
//! transaction on a connection of its own, then answers each with its own outcome: a write is
//! answered only once its transaction committed. The statements run on that thread: one hand-off
//! per batch, where sqlx's connection thread took two per statement plus two for BEGIN and
//! COMMIT (bench/README.md "Session 12": a third of the gateway's CPU per RunInstances).
//!
//! A statement that fails fails alone (SQLite undoes the statement, not the transaction); a
//! commit that fails fails every write of its batch. PostgreSQL has no single writer, and an
//! in-memory SQLite database is one connection's own: their writes go straight to the pool
//! (`run_on`).

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::oneshot;

/// A value for one `$n` parameter.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
    Null,
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_string())
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Arg {
        Arg::Int(n)
    }
}

impl From<Option<String>> for Arg {
    fn from(s: Option<String>) -> Arg {
        s.map_or(Arg::Null, Arg::Text)
    }
}

/// One statement (parameters `$1`, `$2`, ...) run once per row of arguments, in order; answers
/// the rows affected, summed.
#[derive(Debug)]
pub struct Write {
    pub sql: &'static str,
    pub rows: Vec<Vec<Arg>>,
}

impl Write {
    pub fn one(sql: &'static str, args: Vec<Arg>) -> Write {
        Write { sql, rows: vec![args] }
    }
}

/// Run `w` on a connection of the pool (PostgreSQL, in-memory SQLite): its rows in order, the
/// first error ending it.
pub async fn run_on(c: &mut AnyConnection, w: Write) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    for row in w.rows {
        let mut q = sqlx::query(w.sql);
        for a in row {
            q = match a {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
                Arg::Null => q.bind(None::<String>),
            };
        }
        n += q.execute(&mut *c).await?.rows_affected();
    }
    Ok(n)
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<u64, String>>,
}

/// Writes in one transaction at most.
const BATCH_MAX: usize = 256;

/// The group-commit thread of a file-backed SQLite store (and of its clones). It ends when
/// `close` is called or every handle is dropped.
pub struct SqliteWriter {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

impl SqliteWriter {
    /// Open a connection of its own to the database file at `path` (already made and migrated
    /// by the pool) with the pool's settings, and start its thread.
    pub fn open(path: &std::path::Path, busy: Duration) -> Result<SqliteWriter, String> {
        let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
        conn.busy_timeout(busy).map_err(|e| e.to_string())?;
        // The pool's settings (store/mod.rs): WAL is the file's own and already set; the
        // others are per connection.
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;").map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| e.to_string())?;
        Ok(SqliteWriter { queue: Mutex::new(Some(tx)) })
    }

    /// Run `write` in the next batch; answers once that batch committed.
    pub async fn write(&self, write: Write) -> Result<u64, String> {
        let (done, answer) = oneshot::channel();
        let stopped = || Err("the store's writer stopped".into());
        {
            let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let Some(tx) = q.as_ref() else { return Err("the store is closed".into()) };
            if tx.send(Job { write, done }).is_err() {
                return stopped();
            }
        }
        answer.await.unwrap_or_else(|_| stopped())
    }

    /// Stop taking writes; the thread ends after the writes already queued.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn writer(mut conn: rusqlite::Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch);
    }
}

fn run_batch(conn: &mut rusqlite::Connection, batch: Vec<Job>) {
    // IMMEDIATE: the write lock from the start, waited for under the busy timeout.
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = e.to_string();
        for j in batch {
            let _ = j.done.send(Err(e.clone()));
        }
        return;
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    for j in jobs.by_ref() {
        let r = run_one(conn, j.write);
        let failed = r.as_ref().err().cloned();
        outcomes.push((j.done, r));
        // Some errors (a full disk, an I/O error) make SQLite roll the whole transaction back:
        // then nothing of this batch stands, and the rest must not run outside a transaction.
        if let Some(e) = failed.filter(|_| conn.is_autocommit()) {
            for done in outcomes.into_iter().map(|(d, _)| d).chain(jobs.map(|j| j.done)) {
                let _ = done.send(Err(e.clone()));
            }
            return;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for (done, r) in outcomes {
                let _ = done.send(r);
            }
        }
        Err(e) => {
            // Whatever is left of the transaction goes (an error may have ended it already).
            let _ = conn.execute_batch("ROLLBACK");
            let e = e.to_string();
            for (done, _) in outcomes {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}

fn run_one(conn: &rusqlite::Connection, w: Write) -> Result<u64, String> {
    let mut stmt = conn.prepare_cached(w.sql).map_err(|e| e.to_string())?;
    let mut n = 0;
    for row in w.rows {
        for (i, a) in row.into_iter().enumerate() {
            let name = format!("${}", i + 1);
            let bound = match a {
                Arg::Text(s) => stmt.raw_bind_parameter(name.as_str(), s),
                Arg::Int(v) => stmt.raw_bind_parameter(name.as_str(), v),
                Arg::Null => stmt.raw_bind_parameter(name.as_str(), rusqlite::types::Null),
            };
            bound.map_err(|e| e.to_string())?;
        }
        n += stmt.raw_execute().map_err(|e| e.to_string())? as u64;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("ec2bridge-writer-{}.db", uuid::Uuid::new_v4()));
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, x TEXT);").unwrap();
        path
    }

    fn insert(k: &str, n: i64) -> Write {
        Write::one("INSERT INTO t (k, n, x) VALUES ($1, $2, $3)", vec![k.into(), n.into(), Arg::Null])
    }

    #[tokio::test]
    async fn writes_commit_and_a_failed_statement_fails_alone() {
        let path = table();
        let w = std::sync::Arc::new(SqliteWriter::open(&path, Duration::from_secs(5)).unwrap());
        // Many at once share batches; the duplicate key fails alone, the others commit.
        let mut tasks = Vec::new();
        for i in 0..50 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move { w.write(insert(&format!("k{i}"), i)).await }));
        }
        let w2 = w.clone();
        let dup = tokio::spawn(async move { w2.write(insert("k7", 99)).await });
        let many = Write {
            sql: "UPDATE t SET n = n + 1000 WHERE k = $1",
            rows: vec![vec!["k1".into()], vec!["k2".into()], vec!["nope".into()]],
        };
        let mut failed = 0;
        for t in tasks {
            failed += t.await.unwrap().is_err() as i64;
        }
        // k7 is written once: by its insert or by the duplicate, whichever ran first.
        let dup = dup.await.unwrap();
        assert_eq!(failed + dup.is_err() as i64, 1);
        assert_eq!(w.write(many).await, Ok(2));
        let c = rusqlite::Connection::open(&path).unwrap();
        let (count, sum): (i64, i64) =
            c.query_row("SELECT COUNT(*), SUM(n) FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        let k7: i64 = if dup.is_ok() { 99 } else { 7 };
        assert_eq!((count, sum), (50, (0..50).sum::<i64>() - 7 + k7 + 2000));
        let null: Option<String> = c.query_row("SELECT x FROM t WHERE k = 'k3'", [], |r| r.get(0)).unwrap();
        assert_eq!(null, None);
        w.close();
        assert_eq!(w.write(insert("late", 1)).await, Err("the store is closed".into()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
