//! The hub's document store: one thread owns the SQLite connection (a
//! storage actor); [`Store`] is the async handle that sends it commands and
//! awaits a `oneshot` reply.
//!
//! A document is a snapshot (`Automerge::save`, empty before the first
//! compaction) plus the incremental chunks (raw change bytes) accepted since.
//! An accepted change costs one transaction that inserts its chunk and
//! updates the document's heads; the hub acknowledges the change to the
//! node only after that transaction has committed. Compaction replaces the
//! snapshot and deletes the chunks in one transaction, so a crash at any
//! point leaves either the old or the new state.
//!
//! Migrations are the numbered files under `migrations/hub/`, embedded at
//! compile time and applied at open, tracked by `PRAGMA user_version`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

/// The migrations, in order; the version after applying `MIGRATIONS[i]` is
/// `i + 1`.
pub const MIGRATIONS: &[&str] = &[include_str!("../../migrations/hub/0001_documents.sql")];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("erreur SQLite")]
    Sqlite(#[from] rusqlite::Error),
    #[error("la base est au schéma {0}, plus récent que ce hub")]
    TooNew(i64),
    #[error("le fil de stockage s'est arrêté")]
    Closed,
    #[error("création du répertoire de la base impossible")]
    Dir(#[source] std::io::Error),
}

/// A document as stored.
#[derive(Debug, Clone, Default)]
pub struct StoredDoc {
    pub snapshot: Vec<u8>,
    pub chunks: Vec<Vec<u8>>,
    /// Heads after the last chunk (of the snapshot when there is none),
    /// concatenated 32-byte hashes.
    pub heads: Vec<u8>,
}

/// Size bookkeeping returned after a write.
#[derive(Debug, Clone, Copy, Default)]
pub struct DocSize {
    pub n_chunks: u64,
    pub n_bytes: u64,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Index(Reply<Vec<(String, Vec<u8>, u64)>>),
    Load(String, Reply<Option<StoredDoc>>),
    Append {
        doc_id: String,
        space: String,
        chunk: Vec<u8>,
        heads: Vec<u8>,
        reply: Reply<DocSize>,
    },
    Compact {
        doc_id: String,
        snapshot: Vec<u8>,
        heads: Vec<u8>,
        reply: Reply<DocSize>,
    },
    Reject {
        identity: String,
        doc_id: String,
        reason: String,
    },
}

/// Handle to the storage thread; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Command>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Applies the embedded migrations that `conn` has not seen yet.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(StoreError::TooNew(version));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if target <= version {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
    }
    Ok(())
}

fn open_connection(path: Option<&Path>) -> Result<Connection, StoreError> {
    let mut conn = match path {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(StoreError::Dir)?;
            }
            let conn = Connection::open(path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // FULL: a committed transaction survives power loss, which is what
            // an acknowledgement to a node promises.
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn
        }
        None => Connection::open_in_memory()?,
    };
    conn.pragma_update(None, "foreign_keys", true)?;
    migrate(&mut conn)?;
    Ok(conn)
}

impl Store {
    /// Opens (or creates) the database and starts its thread. `None` opens an
    /// in-memory database.
    pub fn open(path: Option<&Path>) -> Result<Store, StoreError> {
        let conn = open_connection(path)?;
        let (tx, rx) = mpsc::channel(256);
        std::thread::Builder::new()
            .name("hub-store".to_owned())
            .spawn(move || run(conn, rx))
            .map_err(StoreError::Dir)?;
        Ok(Store { tx })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Every stored document: id, heads (concatenated hashes), stored bytes.
    pub async fn index(&self) -> Result<Vec<(String, Vec<u8>, u64)>, StoreError> {
        self.call(Command::Index).await
    }

    pub async fn load(&self, doc_id: &str) -> Result<Option<StoredDoc>, StoreError> {
        let doc_id = doc_id.to_owned();
        self.call(|reply| Command::Load(doc_id, reply)).await
    }

    /// Appends a chunk and records the new heads, in one transaction;
    /// returns once it has committed.
    pub async fn append(
        &self,
        doc_id: &str,
        space: &str,
        chunk: Vec<u8>,
        heads: Vec<u8>,
    ) -> Result<DocSize, StoreError> {
        let (doc_id, space) = (doc_id.to_owned(), space.to_owned());
        self.call(|reply| Command::Append {
            doc_id,
            space,
            chunk,
            heads,
            reply,
        })
        .await
    }

    /// Replaces the snapshot and drops the chunks, in one transaction.
    pub async fn compact(
        &self,
        doc_id: &str,
        snapshot: Vec<u8>,
        heads: Vec<u8>,
    ) -> Result<DocSize, StoreError> {
        let doc_id = doc_id.to_owned();
        self.call(|reply| Command::Compact {
            doc_id,
            snapshot,
            heads,
            reply,
        })
        .await
    }

    /// Records a refused change for the operators; best effort.
    pub fn log_rejection(&self, identity: String, doc_id: String, reason: String) {
        let _ = self.tx.try_send(Command::Reject {
            identity,
            doc_id,
            reason,
        });
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Command>) {
    while let Some(command) = rx.blocking_recv() {
        match command {
            Command::Index(reply) => {
                let _ = reply.send(index(&conn));
            }
            Command::Load(doc_id, reply) => {
                let _ = reply.send(load(&conn, &doc_id));
            }
            Command::Append {
                doc_id,
                space,
                chunk,
                heads,
                reply,
            } => {
                let _ = reply.send(append(&mut conn, &doc_id, &space, &chunk, &heads));
            }
            Command::Compact {
                doc_id,
                snapshot,
                heads,
                reply,
            } => {
                let _ = reply.send(compact(&mut conn, &doc_id, &snapshot, &heads));
            }
            Command::Reject {
                identity,
                doc_id,
                reason,
            } => {
                if let Err(e) = conn.execute(
                    "INSERT INTO rejections (at, identity, doc_id, reason) VALUES (?1, ?2, ?3, ?4)",
                    params![now(), identity, doc_id, reason],
                ) {
                    tracing::warn!(error = %e, "could not record a rejection");
                }
            }
        }
    }
}

fn index(conn: &Connection) -> Result<Vec<(String, Vec<u8>, u64)>, StoreError> {
    let mut stmt = conn.prepare("SELECT doc_id, heads, n_bytes FROM documents ORDER BY doc_id")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, heads, n) = row?;
        out.push((id, heads, u64::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}

fn load(conn: &Connection, doc_id: &str) -> Result<Option<StoredDoc>, StoreError> {
    let row: Option<(Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT snapshot, heads FROM documents WHERE doc_id = ?1",
            [doc_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((snapshot, heads)) = row else {
        return Ok(None);
    };
    let mut stmt = conn.prepare("SELECT data FROM chunks WHERE doc_id = ?1 ORDER BY seq")?;
    let chunks = stmt
        .query_map([doc_id], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(StoredDoc {
        snapshot,
        chunks,
        heads,
    }))
}

fn size(tx: &rusqlite::Transaction<'_>, doc_id: &str) -> Result<DocSize, StoreError> {
    let (n_chunks, n_bytes): (i64, i64) = tx.query_row(
        "SELECT n_chunks, n_bytes FROM documents WHERE doc_id = ?1",
        [doc_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(DocSize {
        n_chunks: u64::try_from(n_chunks).unwrap_or(0),
        n_bytes: u64::try_from(n_bytes).unwrap_or(0),
    })
}

fn append(
    conn: &mut Connection,
    doc_id: &str,
    space: &str,
    chunk: &[u8],
    heads: &[u8],
) -> Result<DocSize, StoreError> {
    let tx = conn.transaction()?;
    let len = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO documents (doc_id, space, snapshot, heads, n_chunks, n_bytes, updated_at)
         VALUES (?1, ?2, x'', ?3, 0, 0, ?4)
         ON CONFLICT (doc_id) DO NOTHING",
        params![doc_id, space, heads, now()],
    )?;
    tx.execute(
        "INSERT INTO chunks (doc_id, seq, data)
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM chunks WHERE doc_id = ?1), ?2)",
        params![doc_id, chunk],
    )?;
    tx.execute(
        "UPDATE documents SET heads = ?2, n_chunks = n_chunks + 1, n_bytes = n_bytes + ?3,
         updated_at = ?4 WHERE doc_id = ?1",
        params![doc_id, heads, len, now()],
    )?;
    let size = size(&tx, doc_id)?;
    tx.commit()?;
    Ok(size)
}

fn compact(
    conn: &mut Connection,
    doc_id: &str,
    snapshot: &[u8],
    heads: &[u8],
) -> Result<DocSize, StoreError> {
    let tx = conn.transaction()?;
    let len = i64::try_from(snapshot.len()).unwrap_or(i64::MAX);
    tx.execute("DELETE FROM chunks WHERE doc_id = ?1", [doc_id])?;
    tx.execute(
        "UPDATE documents SET snapshot = ?2, heads = ?3, n_chunks = 0, n_bytes = ?4,
         updated_at = ?5 WHERE doc_id = ?1",
        params![doc_id, snapshot, heads, len, now()],
    )?;
    let size = size(&tx, doc_id)?;
    tx.commit()?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn migrations_apply_on_a_fresh_database_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, i64::try_from(MIGRATIONS.len()).unwrap());
        for table in ["documents", "chunks", "rejections"] {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}");
        }
    }

    #[tokio::test]
    async fn append_then_compact_round_trips() {
        let store = Store::open(None).unwrap();
        let s1 = store
            .append("stats/namur", "stats", vec![1, 2], vec![9; 32])
            .await
            .unwrap();
        let s2 = store
            .append("stats/namur", "stats", vec![3], vec![8; 32])
            .await
            .unwrap();
        assert_eq!((s1.n_chunks, s2.n_chunks, s2.n_bytes), (1, 2, 3));
        let doc = store.load("stats/namur").await.unwrap().unwrap();
        assert_eq!(doc.chunks, vec![vec![1, 2], vec![3]]);
        let s3 = store
            .compact("stats/namur", vec![7; 5], vec![8; 32])
            .await
            .unwrap();
        assert_eq!((s3.n_chunks, s3.n_bytes), (0, 5));
        let doc = store.load("stats/namur").await.unwrap().unwrap();
        assert!(doc.chunks.is_empty());
        assert_eq!(doc.snapshot, vec![7; 5]);
        assert!(store.load("stats/liege").await.unwrap().is_none());
        assert_eq!(store.index().await.unwrap().len(), 1);
    }
}
