//! The shared catalogue as the node sees it: a projection of the catalogue
//! buckets into SQLite tables and an FTS5 index, and the operations staff run
//! on records (add, edit, holdings, reviews, duplicates, merge).
//!
//! The projection is incremental: after a bucket changes, the Automerge patches
//! between the old and new heads name the records touched
//! (`clps_model::docs::catalogue::changed_records`), and only those rows are
//! rewritten. A first load projects the whole bucket once, the same way.

use std::collections::BTreeMap;

use automerge::{AutoCommit, ChangeHash};
use clps_model::docs::catalogue::{self, Holding, Record, RecordEdit, RecordFields, RecordId};
use clps_model::docs::{CatalogueDoc, DocId, MergePlan};
use clps_model::vocab;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::shared;
use crate::store::StoreError;

/// Rewrites the projection rows of the records changed since `before`.
/// Returns how many records were touched.
pub fn project(
    tx: &Transaction<'_>,
    bucket: u16,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
) -> Result<usize, StoreError> {
    let after = doc.get_heads();
    let patches = doc.diff(before, &after);
    let ids = catalogue::changed_records(&patches);
    for id in &ids {
        match catalogue::read_record(doc, id) {
            Some(record) => upsert(tx, bucket, &record)?,
            None => remove(tx, id)?,
        }
    }
    Ok(ids.len())
}

fn theme_labels(record: &Record) -> String {
    let themes = &vocab::get().themes;
    record
        .fields
        .themes
        .iter()
        .map(|code| themes.label(code).unwrap_or(code))
        .collect::<Vec<_>>()
        .join(" ")
}

fn upsert(tx: &Transaction<'_>, bucket: u16, r: &Record) -> Result<(), StoreError> {
    let id = r.id.as_str();
    let f = &r.fields;
    tx.prepare_cached(
        "INSERT INTO catalogue (record_id, bucket, title, doc_type, creator, publisher, year, age_min,
           age_max, description, conditions, merged_into, created_by, last_edited_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (record_id) DO UPDATE SET bucket = excluded.bucket, title = excluded.title,
           doc_type = excluded.doc_type, creator = excluded.creator, publisher = excluded.publisher,
           year = excluded.year, age_min = excluded.age_min, age_max = excluded.age_max,
           description = excluded.description, conditions = excluded.conditions,
           merged_into = excluded.merged_into, created_by = excluded.created_by,
           last_edited_by = excluded.last_edited_by",
    )?
    .execute(params![
        id,
        bucket,
        f.title,
        f.doc_type,
        f.creator,
        f.publisher,
        f.year,
        f.age_min,
        f.age_max,
        f.description,
        f.conditions_of_use,
        r.merged_into.as_ref().map(RecordId::as_str),
        r.created_by.as_ref().map(|c| c.as_str()),
        r.last_edited_by.as_ref().map(|c| c.as_str()),
    ])?;
    let rowid: i64 = tx
        .prepare_cached("SELECT rowid FROM catalogue WHERE record_id = ?1")?
        .query_row([id], |row| row.get(0))?;
    tx.prepare_cached("DELETE FROM catalogue_fts WHERE rowid = ?1")?
        .execute([rowid])?;
    tx.prepare_cached(
        "INSERT INTO catalogue_fts (rowid, title, creator, publisher, description, themes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        rowid,
        f.title,
        f.creator,
        f.publisher,
        f.description,
        theme_labels(r)
    ])?;
    for table in [
        "catalogue_themes",
        "catalogue_publics",
        "catalogue_holdings",
    ] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE record_id = ?1"))?
            .execute([id])?;
    }
    let mut theme = tx.prepare_cached("INSERT INTO catalogue_themes VALUES (?1, ?2)")?;
    for t in &f.themes {
        theme.execute(params![id, t])?;
    }
    let mut public = tx.prepare_cached("INSERT INTO catalogue_publics VALUES (?1, ?2)")?;
    for p in &f.publics {
        public.execute(params![id, p])?;
    }
    let mut holding = tx.prepare_cached(
        "INSERT INTO catalogue_holdings (record_id, centre, copies, shelf_mark, availability)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (centre, h) in &r.holdings {
        holding.execute(params![
            id,
            centre.as_str(),
            h.copies,
            h.shelf_mark,
            h.availability.code()
        ])?;
    }
    Ok(())
}

fn remove(tx: &Transaction<'_>, id: &RecordId) -> Result<(), StoreError> {
    let rowid: Option<i64> = tx
        .query_row(
            "SELECT rowid FROM catalogue WHERE record_id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(rowid) = rowid {
        tx.execute("DELETE FROM catalogue_fts WHERE rowid = ?1", [rowid])?;
    }
    for table in [
        "catalogue",
        "catalogue_themes",
        "catalogue_publics",
        "catalogue_holdings",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE record_id = ?1"),
            [id.as_str()],
        )?;
    }
    Ok(())
}

/// A search with its filters. An empty text lists by title.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    pub theme: Option<String>,
    pub doc_type: Option<String>,
    pub public: Option<String>,
    /// Only records this centre holds.
    pub centre: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub record_id: String,
    pub title: String,
    pub doc_type: String,
    pub publisher: String,
    pub year: Option<i64>,
}

/// Turns what staff type into an FTS5 query: every word must appear, as a
/// prefix, with FTS5 syntax characters neutralised.
pub fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

pub fn search(conn: &Connection, q: &SearchQuery) -> Result<Vec<Hit>, StoreError> {
    let mut sql = String::from(
        "SELECT c.record_id, c.title, c.doc_type, c.publisher, c.year FROM catalogue c",
    );
    let mut args: Vec<String> = Vec::new();
    let fts = fts_query(&q.text);
    if let Some(fts) = &fts {
        sql.push_str(" JOIN catalogue_fts f ON f.rowid = c.rowid AND catalogue_fts MATCH ?");
        args.push(fts.clone());
    }
    sql.push_str(" WHERE c.merged_into IS NULL");
    if let Some(theme) = &q.theme {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM catalogue_themes t WHERE t.theme = ? AND t.record_id = c.record_id)",
        );
        args.push(theme.clone());
    }
    if let Some(public) = &q.public {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM catalogue_publics p WHERE p.public = ? AND p.record_id = c.record_id)",
        );
        args.push(public.clone());
    }
    if let Some(centre) = &q.centre {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM catalogue_holdings h WHERE h.centre = ? AND h.record_id = c.record_id AND h.copies > 0)",
        );
        args.push(centre.clone());
    }
    if let Some(doc_type) = &q.doc_type {
        sql.push_str(" AND c.doc_type = ?");
        args.push(doc_type.clone());
    }
    sql.push_str(if fts.is_some() {
        " ORDER BY f.rank"
    } else {
        " ORDER BY c.title"
    });
    sql.push_str(&format!(" LIMIT {}", q.limit.max(1)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok(Hit {
            record_id: r.get(0)?,
            title: r.get(1)?,
            doc_type: r.get(2)?,
            publisher: r.get(3)?,
            year: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Opens the bucket that holds `id`, runs `edit` on it as this node, and
/// stores the result (one transaction, projection included).
pub fn with_bucket<T>(
    conn: &mut Connection,
    id: &RecordId,
    edit: impl FnOnce(&mut CatalogueDoc) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let actor = shared::node_actor(conn)?;
    let bucket = catalogue::bucket_of(id);
    let doc_id = DocId::catalogue(bucket);
    let doc = shared::load_or_create(conn, &doc_id, &actor)?;
    let mut doc = CatalogueDoc::from_automerge(bucket, doc, actor)?;
    doc.set_commit_time(shared::now());
    let before = doc.automerge_mut().get_heads();
    let out = edit(&mut doc)?;
    let mut am = doc.into_automerge();
    let tx = conn.transaction()?;
    shared::store(&tx, &doc_id, &mut am, &before, true)?;
    tx.commit()?;
    Ok(out)
}

/// Creates a record, with this centre's holding when `holding` is given.
pub fn add(
    conn: &mut Connection,
    id: &RecordId,
    fields: &RecordFields,
    holding: Option<Holding>,
) -> Result<(), StoreError> {
    with_bucket(conn, id, |doc| {
        doc.create_record(id, fields)?;
        if let Some(h) = &holding {
            doc.set_holding(id, h)?;
        }
        Ok(())
    })
}

pub fn edit(conn: &mut Connection, id: &RecordId, edits: &[RecordEdit]) -> Result<(), StoreError> {
    with_bucket(conn, id, |doc| Ok(doc.edit_record(id, edits)?))
}

/// Reads one record from its bucket.
pub fn show(conn: &Connection, id: &RecordId) -> Result<Option<Record>, StoreError> {
    let actor = shared::node_actor(conn)?;
    let doc_id = catalogue::doc_id_of(id);
    Ok(shared::load(conn, &doc_id, &actor)?.and_then(|doc| catalogue::read_record(&doc, id)))
}

/// Every record of every bucket this node holds (data-steward commands).
pub fn all_records(conn: &Connection) -> Result<Vec<(AutoCommit, Vec<Record>)>, StoreError> {
    let actor = shared::node_actor(conn)?;
    let mut out = Vec::new();
    for (doc_id, _) in shared::list(conn)? {
        let Ok(id) = DocId::parse(&doc_id) else {
            continue;
        };
        if !matches!(id.kind(), clps_model::docs::DocKind::Catalogue { .. }) {
            continue;
        }
        if let Some(doc) = shared::load(conn, &id, &actor)? {
            let records = catalogue::read_records(&doc);
            out.push((doc, records));
        }
    }
    Ok(out)
}

/// Conflicting field values across the catalogue, for a data steward.
pub fn conflicts(conn: &Connection) -> Result<Vec<catalogue::FieldConflict>, StoreError> {
    Ok(all_records(conn)?
        .iter()
        .flat_map(|(doc, _)| catalogue::conflicts(doc))
        .collect())
}

/// Candidate duplicate pairs over the whole catalogue.
pub fn duplicates(conn: &Connection) -> Result<Vec<(Record, Record)>, StoreError> {
    let records: Vec<Record> = all_records(conn)?
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    let by_id: BTreeMap<RecordId, Record> =
        records.iter().map(|r| (r.id.clone(), r.clone())).collect();
    Ok(catalogue::duplicate_candidates(&records)
        .into_iter()
        .filter_map(|(a, b)| Some((by_id.get(&a)?.clone(), by_id.get(&b)?.clone())))
        .collect())
}

/// Merges two duplicates: the smaller id survives, the other becomes its
/// alias. The same merge made at two centres converges to the same result.
pub fn merge(conn: &mut Connection, a: &RecordId, b: &RecordId) -> Result<MergePlan, StoreError> {
    let plan = MergePlan::new(a, b)?;
    let actor = shared::node_actor(conn)?;
    let now = shared::now();
    let open =
        |conn: &Connection, id: &RecordId| -> Result<(CatalogueDoc, Vec<ChangeHash>), StoreError> {
            let bucket = catalogue::bucket_of(id);
            let doc = shared::load_or_create(conn, &DocId::catalogue(bucket), &actor)?;
            let mut doc = CatalogueDoc::from_automerge(bucket, doc, actor.clone())?;
            doc.set_commit_time(now);
            let before = doc.automerge_mut().get_heads();
            Ok((doc, before))
        };
    let (mut survivor, survivor_before) = open(conn, &plan.survivor)?;
    let tx = conn.transaction()?;
    if plan.same_bucket() {
        catalogue::merge_records(&plan, &mut survivor, None)?;
    } else {
        let (mut alias, alias_before) = open(&tx, &plan.alias)?;
        catalogue::merge_records(&plan, &mut survivor, Some(&mut alias))?;
        let alias_id = alias.doc_id().clone();
        let mut am = alias.into_automerge();
        shared::store(&tx, &alias_id, &mut am, &alias_before, true)?;
    }
    let survivor_id = survivor.doc_id().clone();
    let mut am = survivor.into_automerge();
    shared::store(&tx, &survivor_id, &mut am, &survivor_before, true)?;
    tx.commit()?;
    Ok(plan)
}

/// Number of projected records (aliases included).
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM catalogue", [], |r| r.get(0))?)
}
