//! The node's copies of the shared Automerge documents.
//!
//! Each document is stored as its last compacted snapshot plus the incremental
//! saves made since, in one transaction with the projection update and the
//! list of local changes the hub has not acknowledged yet. Loading replays the
//! snapshot and the chunks; after [`COMPACT_AFTER`] chunks the next store
//! writes a fresh snapshot and drops them.

use automerge::{AutoCommit, ChangeHash};
use clps_model::docs::{self, DocId, DocKind};
use clps_model::{CentreActor, CentreId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::store::StoreError;

/// Incremental chunks kept before a document is compacted into a snapshot.
pub const COMPACT_AFTER: i64 = 32;

impl From<docs::DocError> for StoreError {
    fn from(e: docs::DocError) -> Self {
        StoreError::Invalid(format!("document partagé : {e}"))
    }
}

/// The actor this node writes shared documents with: its centre and the
/// instance tag drawn at `init`.
pub fn node_actor(conn: &Connection) -> Result<CentreActor, StoreError> {
    let identity = crate::centre::require_identity(conn)?;
    let mut instance = [0u8; 8];
    let bytes = hex::decode(&identity.instance)
        .map_err(|_| StoreError::Invalid("identifiant d'instance du nœud illisible".into()))?;
    if bytes.len() != instance.len() {
        return Err(StoreError::Invalid(
            "identifiant d'instance du nœud illisible".into(),
        ));
    }
    instance.copy_from_slice(&bytes);
    Ok(CentreActor::new(identity.centre, instance))
}

/// Heads as stored: hex, sorted, comma-separated.
pub fn heads_text(heads: &[ChangeHash]) -> String {
    let mut hex: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
    hex.sort();
    hex.join(",")
}

/// Loads a document, or `None` when this node has never had it.
pub fn load(
    conn: &Connection,
    doc_id: &DocId,
    actor: &CentreActor,
) -> Result<Option<AutoCommit>, StoreError> {
    let key = doc_id.to_string();
    let Some(snapshot): Option<Vec<u8>> = conn
        .query_row(
            "SELECT snapshot FROM shared_docs WHERE doc_id = ?1",
            [&key],
            |r| r.get(0),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut doc = docs::load_doc(doc_id, &snapshot, actor)?;
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
    let chunks = stmt.query_map([&key], |r| r.get::<_, Vec<u8>>(0))?;
    for chunk in chunks {
        doc.load_incremental(&chunk?)
            .map_err(|e| StoreError::Invalid(format!("document {key} illisible : {e}")))?;
    }
    Ok(Some(doc))
}

/// Loads a document or creates it (deterministic genesis, so two nodes
/// creating the same document offline agree on its root).
pub fn load_or_create(
    conn: &Connection,
    doc_id: &DocId,
    actor: &CentreActor,
) -> Result<AutoCommit, StoreError> {
    match load(conn, doc_id, actor)? {
        Some(doc) => Ok(doc),
        None => Ok(docs::create_doc(doc_id, actor)?),
    }
}

/// Persists what changed in `doc` since `before` and updates the projection.
/// `local` marks the new changes as made here, to be sent to the hub.
pub fn store(
    tx: &Transaction<'_>,
    doc_id: &DocId,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
    local: bool,
) -> Result<(), StoreError> {
    let key = doc_id.to_string();
    let after = doc.get_heads();
    if after == before {
        return Ok(());
    }
    let existing: Option<i64> = tx
        .query_row(
            "SELECT n_chunks FROM shared_docs WHERE doc_id = ?1",
            [&key],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        Some(n) if n < COMPACT_AFTER => {
            let chunk = doc.save_after(before);
            tx.execute(
                "INSERT INTO shared_doc_chunks (doc_id, seq, bytes) VALUES (?1, ?2, ?3)",
                params![key, n + 1, chunk],
            )?;
            tx.execute(
                "UPDATE shared_docs SET heads = ?2, n_chunks = ?3 WHERE doc_id = ?1",
                params![key, heads_text(&after), n + 1],
            )?;
        }
        _ => {
            let snapshot = doc.save();
            tx.execute(
                "INSERT INTO shared_docs (doc_id, snapshot, heads, n_chunks) VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT (doc_id) DO UPDATE SET snapshot = excluded.snapshot,
                   heads = excluded.heads, n_chunks = 0",
                params![key, snapshot, heads_text(&after)],
            )?;
            tx.execute("DELETE FROM shared_doc_chunks WHERE doc_id = ?1", [&key])?;
        }
    }
    if local {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO pending_changes (doc_id, hash) VALUES (?1, ?2)",
        )?;
        for change in doc.get_changes(before) {
            insert.execute(params![key, change.hash().to_string()])?;
        }
    }
    if let DocKind::Catalogue { bucket } = doc_id.kind() {
        crate::catalogue::project(tx, *bucket, doc, before)?;
    }
    Ok(())
}

/// Every shared document this node holds, with its stored heads.
pub fn list(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT doc_id, heads FROM shared_docs ORDER BY doc_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Changes made here and not yet acknowledged by the hub.
pub fn pending_count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM pending_changes", [], |r| r.get(0))?)
}

/// The centre this node writes as.
pub fn centre(conn: &Connection) -> Result<CentreId, StoreError> {
    Ok(crate::centre::require_identity(conn)?.centre)
}

/// Seconds since the epoch, for change timestamps.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
