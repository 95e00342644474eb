//! The node's copies of the shared Automerge documents.
//!
//! Each document is stored as its last compacted snapshot plus the incremental
//! saves made since, in one transaction with the projection update and the
//! list of local changes the hub has not acknowledged yet. Loading replays the
//! snapshot and the chunks; after [`COMPACT_AFTER`] chunks the next store
//! writes a fresh snapshot and drops them.
//!
//! Loading a catalogue bucket costs tens to hundreds of milliseconds at the
//! network's size, so the thread that owns the connection (the storage
//! actor) keeps a copy of each document it has loaded, with the stored heads
//! it matches. A load compares those heads with the row (one indexed read):
//! equal, the copy is cloned; behind (another process appended chunks), the
//! new chunks are applied to it; anything else, the document is loaded from
//! scratch. The copy is a cache, never the truth: a heads mismatch always
//! falls back to the stored bytes.

use std::cell::RefCell;
use std::collections::HashMap;

use automerge::{AutoCommit, ChangeHash};
use clps_model::docs::{self, DocId, DocKind};
use clps_model::{CentreActor, CentreId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::store::StoreError;

/// Incremental chunks kept before a document is compacted into a snapshot.
pub const COMPACT_AFTER: i64 = 32;

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

/// Documents kept in memory per storage thread (about one per catalogue
/// bucket plus the other shared documents).
const CACHE_DOCS: usize = 320;

/// A loaded document and the stored state it matches.
struct Cached {
    doc: AutoCommit,
    heads: String,
    n_chunks: i64,
}

thread_local! {
    /// Keyed by database path and document id. A document's content is
    /// determined by its heads, so a hit is exact whatever wrote it.
    static CACHE: RefCell<HashMap<(String, String), Cached>> = RefCell::new(HashMap::new());
}

fn cache_key(conn: &Connection, doc_id: &str) -> (String, String) {
    (
        conn.path().unwrap_or_default().to_owned(),
        doc_id.to_owned(),
    )
}

fn remember(conn: &Connection, key: &str, doc: &mut AutoCommit, n_chunks: i64) {
    let entry = Cached {
        doc: doc.clone(),
        heads: heads_text(&doc.get_heads()),
        n_chunks,
    };
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHE_DOCS {
            cache.clear();
        }
        cache.insert(cache_key(conn, key), entry);
    });
}

/// Brings the cached copy of `key` from `before` to `doc`'s heads by
/// applying the new changes only (a copy at other heads is replaced by a
/// clone of `doc`).
fn advance(
    conn: &Connection,
    key: &str,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
    n_chunks: i64,
) {
    let cached = CACHE.with(|cache| cache.borrow_mut().remove(&cache_key(conn, key)));
    if let Some(mut cached) = cached
        && cached.heads == heads_text(before)
    {
        let changes = doc.get_changes(before);
        if cached.doc.apply_changes(changes).is_ok() {
            let heads = heads_text(&cached.doc.get_heads());
            if heads == heads_text(&doc.get_heads()) {
                cached.heads = heads;
                cached.n_chunks = n_chunks;
                CACHE.with(|cache| cache.borrow_mut().insert(cache_key(conn, key), cached));
                return;
            }
        }
    }
    remember(conn, key, doc, n_chunks);
}

/// The cached copy of `key` brought up to the stored `heads`, if it can be.
fn from_cache(
    conn: &Connection,
    key: &str,
    heads: &str,
    n_chunks: i64,
) -> Result<Option<AutoCommit>, StoreError> {
    let cached = CACHE.with(|cache| cache.borrow_mut().remove(&cache_key(conn, key)));
    let Some(mut cached) = cached else {
        return Ok(None);
    };
    if cached.heads != heads {
        if n_chunks <= cached.n_chunks {
            return Ok(None);
        }
        let mut stmt = conn.prepare_cached(
            "SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        for chunk in stmt.query_map(params![key, cached.n_chunks], |r| r.get::<_, Vec<u8>>(0))? {
            if cached.doc.load_incremental(&chunk?).is_err() {
                return Ok(None);
            }
        }
        if heads_text(&cached.doc.get_heads()) != heads {
            return Ok(None);
        }
        cached.heads = heads.to_owned();
        cached.n_chunks = n_chunks;
    }
    let doc = cached.doc.clone();
    CACHE.with(|cache| cache.borrow_mut().insert(cache_key(conn, key), cached));
    Ok(Some(doc))
}

/// A document's current heads and chunk count (migration 0004: in rows of
/// their own, away from the snapshots).
pub(crate) const SELECT_HEADS: &str =
    "SELECT heads, n_chunks FROM shared_doc_heads WHERE doc_id = ?1";

/// Every document's current heads.
pub(crate) const LIST_HEADS: &str = "SELECT doc_id, heads FROM shared_doc_heads ORDER BY doc_id";

/// Loads a document, or `None` when this node has never had it.
pub fn load(
    conn: &Connection,
    doc_id: &DocId,
    actor: &CentreActor,
) -> Result<Option<AutoCommit>, StoreError> {
    let key = doc_id.to_string();
    let Some((heads, n_chunks)): Option<(String, i64)> = conn
        .query_row(SELECT_HEADS, [&key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
    else {
        return Ok(None);
    };
    if let Some(doc) = from_cache(conn, &key, &heads, n_chunks)? {
        return Ok(Some(doc.with_actor(actor.actor_id())));
    }
    let snapshot: Vec<u8> = conn.query_row(
        "SELECT snapshot FROM shared_docs WHERE doc_id = ?1",
        [&key],
        |r| r.get(0),
    )?;
    let mut doc = docs::load_doc(doc_id, &snapshot, actor)?;
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
    let chunks = stmt.query_map([&key], |r| r.get::<_, Vec<u8>>(0))?;
    for chunk in chunks {
        doc.load_incremental(&chunk?)
            .map_err(|e| StoreError::Invalid(format!("document {key} illisible : {e}")))?;
    }
    // Cached only when the copy is exactly the stored state (the row was
    // read before the chunks; a writer in between shows as a mismatch).
    if heads_text(&doc.get_heads()) == heads {
        remember(conn, &key, &mut doc, n_chunks);
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
    if doc.get_heads() == before {
        return Ok(());
    }
    let existing: Option<(i64, String)> = tx
        .query_row(SELECT_HEADS, [&key], |r| Ok((r.get(1)?, r.get(0)?)))
        .optional()?;
    // Callers load inside the write transaction, so the copy in hand is the
    // stored one. If it is not (a document loaded before the transaction
    // and stored meanwhile by another process), local changes are refused:
    // replaying them could reuse sequence numbers of this node's actor.
    // Received changes are replayed onto the stored document, so nothing the
    // other writer stored is ever compacted away.
    let mut rebased_before = None;
    if let Some((_, stored_heads)) = &existing
        && *stored_heads != heads_text(before)
    {
        if local {
            return Err(StoreError::Invalid(format!(
                "le document {key} a été modifié par un autre processus pendant l'opération ; recommencez"
            )));
        }
        let ours = doc.get_changes(before);
        let mut fresh = load_raw(tx, &key)?;
        fresh.set_actor(doc.get_actor().clone());
        let fresh_before = fresh.get_heads();
        fresh
            .apply_changes(ours)
            .map_err(|e| StoreError::Invalid(format!("document {key} illisible : {e}")))?;
        *doc = fresh;
        rebased_before = Some(fresh_before);
    }
    let before: &[ChangeHash] = rebased_before.as_deref().unwrap_or(before);
    let after = doc.get_heads();
    if after == before {
        return Ok(());
    }
    if local {
        validate_own(tx, doc_id, doc, before)?;
        check_contacts(tx, doc, before)?;
    }
    let existing = existing.map(|(n, _)| n);
    let n_chunks = match existing {
        Some(n) if n < COMPACT_AFTER => n + 1,
        _ => 0,
    };
    match existing {
        Some(n) if n < COMPACT_AFTER => {
            let chunk = doc.save_after(before);
            tx.execute(
                "INSERT INTO shared_doc_chunks (doc_id, seq, bytes) VALUES (?1, ?2, ?3)",
                params![key, n + 1, chunk],
            )?;
            tx.execute(
                "UPDATE shared_doc_heads SET heads = ?2, n_chunks = ?3 WHERE doc_id = ?1",
                params![key, heads_text(&after), n + 1],
            )?;
        }
        _ => {
            let snapshot = doc.save();
            write_snapshot(tx, &key, &snapshot, &heads_text(&after))?;
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
    // Should the transaction roll back, the stored heads will not match the
    // copy and the next load reads the stored bytes.
    advance(tx, &key, doc, before, n_chunks);
    Ok(())
}

/// Runs the hub's validation on this node's new changes before they are
/// committed (the same function, `clps_model::docs`): an honest node never
/// sends a change the hub refuses. Each change is judged on the document as
/// it left it.
fn validate_own(
    conn: &Connection,
    doc_id: &DocId,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
) -> Result<(), StoreError> {
    let author = centre(conn)?;
    let changes = doc.get_changes(before);
    let last = changes.len().saturating_sub(1);
    let whole = doc.document();
    for (i, change) in changes.iter().enumerate() {
        let forked;
        let view = if i == last {
            whole
        } else {
            forked = whole
                .fork_at(&[change.hash()])
                .map_err(|e| StoreError::Invalid(format!("document {doc_id} illisible : {e}")))?;
            &forked
        };
        docs::validate_own_change(doc_id, view, change, &author).map_err(|e| {
            StoreError::Invalid(format!(
                "modification de {doc_id} refusée : elle ne respecte pas les règles des documents partagés ({e})"
            ))
        })?;
    }
    Ok(())
}

/// Refuses local changes whose text holds the full name of one of this
/// centre's own contacts (`persons`: first and last name, in either order,
/// accents and case ignored). Only the node can check this, since only it
/// knows its contacts; the hub's rules (e-mail addresses, phone numbers)
/// apply everywhere.
fn check_contacts(
    conn: &Connection,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
) -> Result<(), StoreError> {
    use automerge::legacy::{Key, ObjectId, OpType};
    use automerge::{ReadDoc, ScalarValue};
    use clps_model::docs::normalize::fold;
    let changes = doc.get_changes(before);
    if changes.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached("SELECT first_name, last_name FROM persons")?;
    let mut names: Vec<(String, String)> = Vec::new();
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (first, last) = row?;
        let (f, l) = (fold(&first), fold(&last));
        if f.chars().count() >= 2 && l.chars().count() >= 2 {
            names.push((format!(" {f} {l} "), format!("{first} {last}")));
            names.push((format!(" {l} {f} "), format!("{first} {last}")));
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    // Every string a change writes: map values by their key, text
    // insertions gathered per text object.
    let mut written: Vec<(String, String)> = Vec::new();
    let mut texts: HashMap<ObjectId, String> = HashMap::new();
    for change in &changes {
        let Ok(expanded) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode()))
        else {
            continue;
        };
        for op in &expanded.operations {
            let OpType::Put(ScalarValue::Str(value)) = &op.action else {
                continue;
            };
            match &op.key {
                Key::Map(key) => written.push((key.to_string(), value.to_string())),
                Key::Seq(_) => texts.entry(op.obj.clone()).or_default().push_str(value),
            }
        }
    }
    let whole = doc.document();
    for (obj, inserted) in texts {
        let ObjectId::Id(opid) = &obj else { continue };
        let Ok(text_obj) = whole.import_obj(&format!("{}@{}", opid.counter(), opid.actor())) else {
            continue;
        };
        let field = whole
            .parents(&text_obj)
            .ok()
            .and_then(|p| p.path().pop())
            .map(|(_, prop)| prop.to_string())
            .unwrap_or_default();
        // The whole text as it now stands, and what was typed.
        let current = whole.text(&text_obj).unwrap_or_default();
        written.push((field.clone(), current));
        written.push((field, inserted));
    }
    for (key, value) in written {
        let folded = format!(" {} ", fold(&value));
        if let Some((_, name)) = names.iter().find(|(n, _)| folded.contains(n.as_str())) {
            let field = key.rsplit('/').next().unwrap_or(&key).to_owned();
            return Err(StoreError::Invalid(format!(
                "le champ « {} » contient le nom de {name}, une personne de vos contacts : \
                 les documents partagés ne contiennent jamais de données personnelles ; retirez ce nom",
                field_label(&field)
            )));
        }
    }
    Ok(())
}

/// The French name of a shared field, for staff.
fn field_label(field: &str) -> &str {
    match field {
        "title" => "titre",
        "creator" => "auteurs",
        "publisher" => "éditeur",
        "description" => "description",
        "conditions_of_use" => "conditions d'utilisation",
        "shelf_mark" => "cote",
        "text" => "avis",
        "body" => "texte",
        "minutes" => "compte rendu",
        "agenda" => "ordre du jour",
        "place" => "lieu",
        "note" => "note",
        other => other,
    }
}

/// Replaces a document wholesale (a rebuild from the hub's copy): `doc`
/// becomes its snapshot, `pending` its only pending changes, and the
/// catalogue projection of `records` (the old and new records of the
/// bucket) follows it. One transaction, like every write.
pub fn replace(
    tx: &Transaction<'_>,
    doc_id: &DocId,
    doc: &mut AutoCommit,
    pending: &[ChangeHash],
    records: &std::collections::BTreeSet<docs::catalogue::RecordId>,
) -> Result<(), StoreError> {
    let key = doc_id.to_string();
    let snapshot = doc.save();
    write_snapshot(tx, &key, &snapshot, &heads_text(&doc.get_heads()))?;
    tx.execute("DELETE FROM shared_doc_chunks WHERE doc_id = ?1", [&key])?;
    tx.execute("DELETE FROM pending_changes WHERE doc_id = ?1", [&key])?;
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO pending_changes (doc_id, hash) VALUES (?1, ?2)")?;
    for hash in pending {
        insert.execute(params![key, hash.to_string()])?;
    }
    if let DocKind::Catalogue { bucket } = doc_id.kind() {
        crate::catalogue::reproject(tx, *bucket, doc, records)?;
    }
    CACHE.with(|cache| cache.borrow_mut().remove(&cache_key(tx, &key)));
    remember(tx, &key, doc, 0);
    Ok(())
}

/// Stores a document this node did not have, received whole: `saved` (the
/// bytes `doc` was loaded from) becomes its snapshot without saving it
/// again. Should another writer have stored the document meanwhile, the
/// received changes are merged into it as [`store`] does.
pub fn store_new(
    tx: &Transaction<'_>,
    doc_id: &DocId,
    doc: &mut AutoCommit,
    saved: Vec<u8>,
) -> Result<(), StoreError> {
    let key = doc_id.to_string();
    let known: Option<i64> = tx
        .query_row("SELECT 1 FROM shared_docs WHERE doc_id = ?1", [&key], |r| {
            r.get(0)
        })
        .optional()?;
    if known.is_some() {
        return store(tx, doc_id, doc, &[], false);
    }
    write_snapshot(tx, &key, &saved, &heads_text(&doc.get_heads()))?;
    if let DocKind::Catalogue { bucket } = doc_id.kind() {
        crate::catalogue::project(tx, *bucket, doc, &[])?;
    }
    remember(tx, &key, doc, 0);
    Ok(())
}

/// Writes a document's snapshot and its heads (no chunk since).
fn write_snapshot(
    tx: &Transaction<'_>,
    key: &str,
    snapshot: &[u8],
    heads: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO shared_docs (doc_id, snapshot, heads, n_chunks) VALUES (?1, ?2, ?3, 0)
         ON CONFLICT (doc_id) DO UPDATE SET snapshot = excluded.snapshot,
           heads = excluded.heads, n_chunks = 0",
        params![key, snapshot, heads],
    )?;
    tx.execute(
        "INSERT INTO shared_doc_heads (doc_id, heads, n_chunks) VALUES (?1, ?2, 0)
         ON CONFLICT (doc_id) DO UPDATE SET heads = excluded.heads, n_chunks = 0",
        params![key, heads],
    )?;
    Ok(())
}

/// The stored document as it is, without schema checks (for rebasing).
fn load_raw(conn: &Connection, key: &str) -> Result<AutoCommit, StoreError> {
    let snapshot: Vec<u8> = conn.query_row(
        "SELECT snapshot FROM shared_docs WHERE doc_id = ?1",
        [key],
        |r| r.get(0),
    )?;
    let unreadable = |e: automerge::AutomergeError| {
        StoreError::Invalid(format!("document {key} illisible : {e}"))
    };
    let mut doc = AutoCommit::load(&snapshot).map_err(unreadable)?;
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
    for chunk in stmt.query_map([key], |r| r.get::<_, Vec<u8>>(0))? {
        doc.load_incremental(&chunk?).map_err(unreadable)?;
    }
    Ok(doc)
}

/// Every shared document this node holds, with its stored heads.
pub fn list(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(LIST_HEADS)?;
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
    crate::text::now()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{OpenMode, Store};
    use clps_model::docs::catalogue::{RecordFields, RecordId};
    use clps_model::docs::{CatalogueDoc, catalogue};

    fn fields(title: &str) -> RecordFields {
        RecordFields {
            title: title.into(),
            doc_type: "dossier".into(),
            ..RecordFields::default()
        }
    }

    fn title(c: &mut Connection, id: &RecordId) -> Result<String, StoreError> {
        Ok(crate::catalogue::show(c, id)?
            .map(|r| r.fields.title)
            .unwrap_or_default())
    }

    /// Each store's thread keeps its own copy of the documents it loaded.
    /// What the other store (another process) writes meanwhile is always
    /// seen: appended chunks are applied to the copy, and a compaction in
    /// between makes the copy fall back to the stored bytes.
    #[tokio::test]
    async fn the_cached_copy_follows_what_another_writer_stored() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path(), OpenMode::Create).unwrap();
        let namur = CentreId::new("namur").unwrap();
        a.call(|c| crate::centre::init(c, &CentreId::new("namur").unwrap(), [1; 8]))
            .await
            .unwrap();
        let b = Store::open(dir.path(), OpenMode::Existing).unwrap();
        let id = (0..10_000u64)
            .map(|n| RecordId::from_local(&namur, n))
            .find(|id| catalogue::bucket_of(id) == 3)
            .unwrap();
        let i = id.clone();
        a.call(move |c| crate::catalogue::add(c, &i, &fields("v0"), None))
            .await
            .unwrap();
        // B edits (one chunk): A's copy catches up and shows it.
        for round in 1..=3 {
            let i = id.clone();
            let t = format!("b{round}");
            b.call(move |c| crate::catalogue::edit(c, &i, &[catalogue::RecordEdit::Title(t)]))
                .await
                .unwrap();
            let i = id.clone();
            assert_eq!(
                a.call(move |c| title(c, &i)).await.unwrap(),
                format!("b{round}")
            );
            // A edits on top of its caught-up copy: B sees it.
            let i = id.clone();
            let t = format!("a{round}");
            a.call(move |c| crate::catalogue::edit(c, &i, &[catalogue::RecordEdit::Title(t)]))
                .await
                .unwrap();
            let i = id.clone();
            assert_eq!(
                b.call(move |c| title(c, &i)).await.unwrap(),
                format!("a{round}")
            );
        }
        // B writes past a compaction: A's copy is stale on chunk numbers too.
        for round in 0..=COMPACT_AFTER + 2 {
            let i = id.clone();
            let t = format!("compact{round}");
            b.call(move |c| crate::catalogue::edit(c, &i, &[catalogue::RecordEdit::Title(t)]))
                .await
                .unwrap();
        }
        let i = id.clone();
        assert_eq!(
            a.call(move |c| title(c, &i)).await.unwrap(),
            format!("compact{}", COMPACT_AFTER + 2)
        );
        // Both copies hold the same changes as the stored document.
        async fn heads(s: &Store) -> String {
            s.call(|c| {
                let actor = node_actor(c)?;
                Ok(heads_text(
                    &load(c, &DocId::catalogue(3), &actor)?.unwrap().get_heads(),
                ))
            })
            .await
            .unwrap()
        }
        let stored: String = Connection::open(dir.path().join("node.sqlite"))
            .unwrap()
            .query_row(
                "SELECT heads FROM shared_doc_heads WHERE doc_id = 'catalogue/003'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(heads(&a).await, stored);
        assert_eq!(heads(&b).await, stored);
    }

    /// Two processes (here two stores on one file, like `serve` and a staff
    /// command) write the same document. A local write from a stale copy is
    /// refused (it would reuse this node's sequence numbers); received
    /// changes from a stale copy are replayed onto the stored document, even
    /// when that write compacts, and lose nothing.
    #[tokio::test]
    async fn a_stale_copy_never_loses_the_other_writers_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path(), OpenMode::Create).unwrap();
        a.call(|c| crate::centre::init(c, &CentreId::new("namur").unwrap(), [1; 8]))
            .await
            .unwrap();
        let b = Store::open(dir.path(), OpenMode::Existing).unwrap();
        let ids: Vec<RecordId> = (0..40_000u64)
            .map(|n| RecordId::from_local(&CentreId::new("namur").unwrap(), n))
            .filter(|id| catalogue::bucket_of(id) == 7)
            .take(COMPACT_AFTER as usize + 2)
            .collect();
        let first: Vec<RecordId> = ids[..COMPACT_AFTER as usize].to_vec();
        a.call(move |c| {
            for id in &first {
                crate::catalogue::add(c, id, &fields("rempli"), None)?;
            }
            Ok(())
        })
        .await
        .unwrap();
        let (x, y) = (ids[ids.len() - 2].clone(), ids[ids.len() - 1].clone());
        fn load_bucket(c: &mut Connection) -> Result<AutoCommit, StoreError> {
            let actor = node_actor(c)?;
            Ok(load(c, &DocId::catalogue(7), &actor)?.unwrap_or_default())
        }
        // A change made elsewhere (another centre), received later.
        let liege = CentreActor::new(CentreId::new("liege").unwrap(), [2; 8]);
        let mut elsewhere = a.call(load_bucket).await.unwrap().fork();
        elsewhere.set_actor(liege.actor_id());
        let mut elsewhere = CatalogueDoc::from_automerge(7, elsewhere, liege).unwrap();
        let before_elsewhere = elsewhere.automerge_mut().get_heads();
        elsewhere
            .create_record(&y, &fields("écrit à Liège"))
            .unwrap();
        let received = elsewhere.automerge_mut().save_after(&before_elsewhere);

        // A loads the bucket (stale from now on)...
        let stale = a.call(load_bucket).await.unwrap();
        // ...B stores a local change to it...
        let bx = x.clone();
        b.call(move |c| crate::catalogue::add(c, &bx, &fields("écrit par B"), None))
            .await
            .unwrap();
        // ...a local write from A's stale copy is refused...
        let mut stale_local = CatalogueDoc::from_automerge(
            7,
            stale.clone(),
            a.call(|c| node_actor(c)).await.unwrap(),
        )
        .unwrap();
        let before = stale_local.automerge_mut().get_heads();
        stale_local.create_record(&ids[0], &fields("doublon")).ok();
        stale_local
            .edit_record(&ids[0], &[catalogue::RecordEdit::Title("périmé".into())])
            .unwrap();
        let mut am = stale_local.into_automerge();
        let refused = a
            .call(move |c| {
                let tx = c.transaction()?;
                store(&tx, &DocId::catalogue(7), &mut am, &before, true)?;
                tx.commit()?;
                Ok(())
            })
            .await;
        assert!(
            refused.is_err(),
            "a local write from a stale copy is refused"
        );
        // ...while received changes on A's stale copy are replayed (this write compacts).
        let mut stale_received = stale;
        let before = stale_received.get_heads();
        stale_received.load_incremental(&received).unwrap();
        a.call(move |c| {
            let tx = c.transaction()?;
            store(
                &tx,
                &DocId::catalogue(7),
                &mut stale_received,
                &before,
                false,
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
        .unwrap();
        let (has_x, has_y, title, n_chunks) = a
            .call(move |c| {
                let doc = load_bucket(c)?;
                let n: i64 = c.query_row(
                    "SELECT n_chunks FROM shared_doc_heads WHERE doc_id = 'catalogue/007'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((
                    catalogue::read_record(&doc, &x).is_some(),
                    catalogue::read_record(&doc, &y).is_some(),
                    catalogue::read_record(&doc, &ids[0]).map(|r| r.fields.title),
                    n,
                ))
            })
            .await
            .unwrap();
        assert!(has_x, "B's record survived the stale write");
        assert!(has_y, "the received record is stored");
        assert_eq!(
            title.as_deref(),
            Some("rempli"),
            "the refused edit left no trace"
        );
        assert_eq!(n_chunks, 0, "the last write compacted");
    }
}
