//! The shared catalogue as the node sees it: a projection of the catalogue
//! buckets into SQLite tables and an FTS5 index, and the operations staff run
//! on records (add, edit, holdings, reviews, duplicates, merge).
//!
//! The projection is incremental: after a bucket changes, the Automerge patches
//! between the old and new heads name the records touched
//! (`clps_model::docs::catalogue::changed_records`), and only those rows are
//! rewritten. A first load projects the whole bucket once, the same way.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{AutoCommit, ChangeHash};
use clps_model::CentreId;
use clps_model::docs::catalogue::{self, Holding, Record, RecordEdit, RecordFields, RecordId};
use clps_model::docs::{CatalogueDoc, DocId, MergePlan};
use clps_model::vocab;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::shared;
use crate::store::StoreError;

/// Rewrites the projection rows of the records changed since `before`
/// (those the new changes' operations touch).
/// Returns how many records were touched.
pub fn project(
    tx: &Transaction<'_>,
    bucket: u16,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
) -> Result<usize, StoreError> {
    if before.is_empty() {
        // A whole document (received or created): every record is new, and
        // reading them in one pass is far cheaper than a patch for every
        // character of every description.
        let records = catalogue::read_records(doc);
        for record in &records {
            insert_new(tx, bucket, record)?;
        }
        return Ok(records.len());
    }
    let changes = doc.get_changes(before);
    note_activity(tx, &changes)?;
    let ids = match catalogue::records_touched(doc, &changes) {
        Some(ids) => ids,
        None => {
            let after = doc.get_heads();
            catalogue::changed_records(&doc.diff(before, &after))
        }
    };
    for id in &ids {
        match catalogue::read_record(doc, id) {
            Some(record) => upsert(tx, bucket, &record)?,
            None => remove(tx, id)?,
        }
    }
    Ok(ids.len())
}

/// Remembers, per record, the latest of `changes` written by another centre
/// (its message names the action and the record).
fn note_activity(tx: &Transaction<'_>, changes: &[automerge::Change]) -> Result<(), StoreError> {
    let own = shared::centre(tx)?;
    let mut upsert = tx.prepare_cached(
        "INSERT INTO catalogue_activity (record_id, centre, action, at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (record_id) DO UPDATE SET centre = excluded.centre,
           action = excluded.action, at = excluded.at
         WHERE excluded.at >= catalogue_activity.at",
    )?;
    for change in changes {
        let Ok(author) = clps_model::CentreActor::parse(change.actor_id()) else {
            continue;
        };
        if author.centre == own {
            continue;
        }
        let Some((action, id)) = change.message().and_then(|m| m.split_once(' ')) else {
            continue;
        };
        if RecordId::parse(id).is_err() {
            continue;
        }
        upsert.execute(params![
            id,
            author.centre.as_str(),
            action,
            change.timestamp()
        ])?;
    }
    Ok(())
}

/// What other centres changed lately: (record, title, centre, action,
/// time), newest first.
pub type Activity = (RecordId, String, CentreId, String, i64);

pub fn recent_activity(conn: &Connection, limit: usize) -> Result<Vec<Activity>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.record_id, c.title, a.centre, a.action, a.at
         FROM catalogue_activity a JOIN catalogue c ON c.record_id = a.record_id
         WHERE c.merged_into IS NULL
         ORDER BY a.at DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, title, centre, action, at)| {
            Some((
                RecordId::parse(&id).ok()?,
                title,
                CentreId::new(&centre).ok()?,
                action,
                at,
            ))
        })
        .collect())
}

/// Projects `ids` again from `doc`: each record as the document has it, or
/// gone from the tables when the document no longer has it.
pub fn reproject(
    tx: &Transaction<'_>,
    bucket: u16,
    doc: &AutoCommit,
    ids: &BTreeSet<RecordId>,
) -> Result<(), StoreError> {
    for id in ids {
        match catalogue::read_record(doc, id) {
            Some(record) => upsert(tx, bucket, &record)?,
            None => remove(tx, id)?,
        }
    }
    Ok(())
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

/// The catalogue row of a record: `INSERT` with `on_conflict` appended.
/// Returns the number of rows written.
fn write_row(
    tx: &Transaction<'_>,
    bucket: u16,
    r: &Record,
    on_conflict: &str,
) -> Result<usize, StoreError> {
    let f = &r.fields;
    let sql = format!(
        "INSERT INTO catalogue (record_id, bucket, title, doc_type, creator, publisher, year, age_min,
           age_max, description, conditions, merged_into, created_by, last_edited_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) {on_conflict}"
    );
    Ok(tx.prepare_cached(&sql)?.execute(params![
        r.id.as_str(),
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
    ])?)
}

/// The full-text entry and the theme, public and holding rows of a record
/// whose old full-text entry is gone (or never existed); `rowid` is its
/// catalogue row. A leftover theme, public or holding row is replaced.
fn write_dependents(tx: &Transaction<'_>, rowid: i64, r: &Record) -> Result<(), StoreError> {
    let id = r.id.as_str();
    let f = &r.fields;
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
    let mut theme = tx.prepare_cached("INSERT OR REPLACE INTO catalogue_themes VALUES (?1, ?2)")?;
    for t in &f.themes {
        theme.execute(params![id, t])?;
    }
    let mut public =
        tx.prepare_cached("INSERT OR REPLACE INTO catalogue_publics VALUES (?1, ?2)")?;
    for p in &f.publics {
        public.execute(params![id, p])?;
    }
    let mut holding = tx.prepare_cached(
        "INSERT OR REPLACE INTO catalogue_holdings (record_id, centre, copies, shelf_mark, availability)
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

fn upsert(tx: &Transaction<'_>, bucket: u16, r: &Record) -> Result<(), StoreError> {
    let id = r.id.as_str();
    write_row(
        tx,
        bucket,
        r,
        "ON CONFLICT (record_id) DO UPDATE SET bucket = excluded.bucket, title = excluded.title,
           doc_type = excluded.doc_type, creator = excluded.creator, publisher = excluded.publisher,
           year = excluded.year, age_min = excluded.age_min, age_max = excluded.age_max,
           description = excluded.description, conditions = excluded.conditions,
           merged_into = excluded.merged_into, created_by = excluded.created_by,
           last_edited_by = excluded.last_edited_by",
    )?;
    let rowid: i64 = tx
        .prepare_cached("SELECT rowid FROM catalogue WHERE record_id = ?1")?
        .query_row([id], |row| row.get(0))?;
    tx.prepare_cached("DELETE FROM catalogue_fts WHERE rowid = ?1")?
        .execute([rowid])?;
    for table in [
        "catalogue_themes",
        "catalogue_publics",
        "catalogue_holdings",
    ] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE record_id = ?1"))?
            .execute([id])?;
    }
    write_dependents(tx, rowid, r)
}

/// [`upsert`] for a record of a bucket this node did not hold, so with no
/// row yet: plain inserts, without the lookups and deletes that clear an
/// old row (a bootstrap inserts 200,000). Should a row exist after all, the
/// record goes through [`upsert`].
fn insert_new(tx: &Transaction<'_>, bucket: u16, r: &Record) -> Result<(), StoreError> {
    if write_row(tx, bucket, r, "ON CONFLICT (record_id) DO NOTHING")? == 0 {
        return upsert(tx, bucket, r);
    }
    write_dependents(tx, tx.last_insert_rowid(), r)
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
    /// Only records with a copy on the shelf (available) somewhere, or at
    /// `centre` when it is given.
    pub available: bool,
    /// Only records whose age range includes this age.
    pub age: Option<u8>,
    /// Only records published in or after this year.
    pub year_from: Option<u16>,
    /// Only records published in or before this year.
    pub year_to: Option<u16>,
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

/// Matches up to which a text search is ranked by FTS5's bm25 `rank`.
/// Ranking costs about 3 µs per match, so over 200,000 records a common
/// word (« santé » is in most of them) would take hundreds of milliseconds;
/// above this many matches a query is *broad* and ordered without bm25 (see
/// [`search`]).
pub const RANKED_MATCHES: usize = 2000;

/// Records a single word may appear in for its query to be ranked by bm25:
/// bm25 first counts, for every word, all the records that hold it, which
/// for « santé » alone costs several milliseconds.
pub const RANKED_WORD_RECORDS: usize = 10_000;

/// Newest matches among which a broad query looks for titles holding every
/// word (checking a title means reading positions, about 1 µs a record).
pub const TITLE_WINDOW: usize = 2000;

/// Words of a query as FTS5 will tokenise them. Single letters (the `l` of
/// « l'alcool », « à ») are dropped when the query has longer words: as a
/// prefix they would match almost every record and cost the most.
fn query_words(text: &str) -> Vec<&str> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| w.chars().nth(1).is_some()) {
        words
            .into_iter()
            .filter(|w| w.chars().nth(1).is_some())
            .collect()
    } else {
        words
    }
}

/// A word as an FTS5 phrase, quoted so that FTS5 syntax characters are
/// neutralised; words of three characters or more may match as prefixes.
fn phrase(word: &str, prefix: bool) -> String {
    if prefix && word.chars().nth(2).is_some() {
        format!("\"{word}\"*")
    } else {
        format!("\"{word}\"")
    }
}

/// Turns what staff type into the widest FTS5 query [`search`] runs: every
/// word must appear, words of three characters or more as prefixes, with
/// FTS5 syntax characters neutralised.
pub fn fts_query(text: &str) -> Option<String> {
    let words = query_words(text);
    (!words.is_empty()).then(|| {
        words
            .iter()
            .map(|w| phrase(w, true))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// The FTS5 queries a text search runs, narrowest first: every word as a
/// whole word, then the last word as a prefix (someone still typing), then
/// every word as a prefix ([`fts_query`]). Later ones only fill the page.
fn match_stages(text: &str) -> Vec<String> {
    let words = query_words(text);
    let last = words.len().saturating_sub(1);
    let mut stages: Vec<String> = Vec::new();
    for prefix_from in [words.len(), last, 0] {
        let query = words
            .iter()
            .enumerate()
            .map(|(i, w)| phrase(w, i >= prefix_from))
            .collect::<Vec<_>>()
            .join(" ");
        if !query.is_empty() && !stages.contains(&query) {
            stages.push(query);
        }
    }
    stages
}

/// The filters of a query as SQL on `catalogue c`, with their arguments.
/// `c.doc_type` is written `+c.doc_type` so that SQLite never drives a
/// search from the type index: the plans below are chosen on purpose, and
/// the node keeps no planner statistics.
fn filter_sql(q: &SearchQuery) -> (String, Vec<Value>) {
    let mut sql = String::from("c.merged_into IS NULL");
    let mut args = Vec::new();
    // The type is a column of the row already read: checked before the
    // filters that need an index lookup each.
    if let Some(doc_type) = &q.doc_type {
        sql.push_str(" AND +c.doc_type = ?");
        args.push(Value::Text(doc_type.clone()));
    }
    if let Some(theme) = &q.theme {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM catalogue_themes t WHERE t.theme = ? AND t.record_id = c.record_id)",
        );
        args.push(Value::Text(theme.clone()));
    }
    if let Some(public) = &q.public {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM catalogue_publics p WHERE p.public = ? AND p.record_id = c.record_id)",
        );
        args.push(Value::Text(public.clone()));
    }
    if let Some(centre) = &q.centre {
        sql.push_str(
            // The record's own copies, or those of a duplicate merged into it.
            " AND EXISTS (SELECT 1 FROM catalogue_holdings h WHERE h.centre = ? AND h.copies > 0 AND h.record_id IN \
               (SELECT c.record_id UNION ALL SELECT a.record_id FROM catalogue a WHERE a.merged_into = c.record_id))",
        );
        args.push(Value::Text(centre.clone()));
    }
    if q.available {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM catalogue_holdings h WHERE h.availability = 'available' AND h.copies > 0 \
               AND (? IS NULL OR h.centre = ?) AND h.record_id IN \
               (SELECT c.record_id UNION ALL SELECT a.record_id FROM catalogue a WHERE a.merged_into = c.record_id))",
        );
        args.push(q.centre.clone().map(Value::Text).unwrap_or(Value::Null));
        args.push(q.centre.clone().map(Value::Text).unwrap_or(Value::Null));
    }
    if let Some(age) = q.age {
        // A record without any age bound says nothing of its public's age.
        sql.push_str(
            " AND (c.age_min IS NOT NULL OR c.age_max IS NOT NULL) \
               AND coalesce(c.age_min, 0) <= ? AND coalesce(c.age_max, 255) >= ?",
        );
        args.push(Value::Integer(i64::from(age)));
        args.push(Value::Integer(i64::from(age)));
    }
    if let Some(year) = q.year_from {
        sql.push_str(" AND c.year >= ?");
        args.push(Value::Integer(i64::from(year)));
    }
    if let Some(year) = q.year_to {
        sql.push_str(" AND c.year <= ?");
        args.push(Value::Integer(i64::from(year)));
    }
    (sql, args)
}

const HIT_COLUMNS: &str = "c.rowid, c.record_id, c.title, c.doc_type, c.publisher, c.year";

/// How many records match an FTS5 query, counting no further than `cap + 1`
/// (FTS5 stops reading the posting lists there).
fn count_matches(conn: &Connection, query: &str, cap: usize) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM catalogue_fts WHERE catalogue_fts MATCH ?1 LIMIT ?2)",
        )?
        .query_row(params![query, cap as i64 + 1], |r| r.get(0))?)
}

/// The newest `window` matches of an FTS5 query: how many there are (at
/// most `window`) and the smallest rowid among them.
fn newest_matches(
    conn: &Connection,
    query: &str,
    window: usize,
) -> Result<(usize, Option<i64>), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*), min(rowid) FROM (SELECT rowid FROM catalogue_fts
             WHERE catalogue_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2)",
        )?
        .query_row(params![query, window as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?)
}

/// Collects hits from `sql` until `out` holds `limit`, skipping records
/// already found by an earlier stage. Rows are pulled one at a time, so a
/// plan that streams in order stops as soon as the page is full.
fn collect(
    conn: &Connection,
    sql: &str,
    args: &[Value],
    limit: usize,
    out: &mut Vec<Hit>,
    seen: &mut BTreeSet<i64>,
) -> Result<(), StoreError> {
    if out.len() >= limit {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        if !seen.insert(rowid) {
            continue;
        }
        out.push(Hit {
            record_id: row.get(1)?,
            title: row.get(2)?,
            doc_type: row.get(3)?,
            publisher: row.get(4)?,
            year: row.get(5)?,
        });
        if out.len() >= limit {
            break;
        }
    }
    Ok(())
}

/// Searches the projection.
///
/// Without text, records are listed by title (a walk of the title index
/// that stops once the page is full). With text, [`match_stages`] are tried
/// in turn: whole words first; a query whose words match fewer records than
/// the limit (before filters) is widened to prefixes.
///
/// The whole-word stage is ranked by FTS5 `rank` (bm25), best first, when
/// that is cheap: at most [`RANKED_MATCHES`] matches, each word in at most
/// [`RANKED_WORD_RECORDS`] records. Otherwise (a broad query such as
/// « santé », or a prefix stage) records whose title holds every word come
/// first — looked for among the [`TITLE_WINDOW`] newest matches — then every
/// other match, newest first within each group. FTS5 walks its posting
/// lists backwards and the search stops at the limit, so the cost no longer
/// grows with the number of matches.
///
/// Filters are checked on each candidate as it streams by. A broad word
/// with filters that leave fewer records than the limit is the slowest case
/// left: every match is checked (see `BENCHMARKS.md`).
pub fn search(conn: &Connection, q: &SearchQuery) -> Result<Vec<Hit>, StoreError> {
    let limit = q.limit.max(1);
    let (filters, filter_args) = filter_sql(q);
    let mut hits = Vec::new();
    let mut seen = BTreeSet::new();
    let stages = match_stages(&q.text);
    if stages.is_empty() {
        // The LIMIT tells the planner only a page is wanted, so it walks
        // `catalogue_title` instead of sorting every record.
        let sql = format!(
            "SELECT {HIT_COLUMNS} FROM catalogue c WHERE {filters} ORDER BY c.title, c.record_id LIMIT {limit}"
        );
        collect(conn, &sql, &filter_args, limit, &mut hits, &mut seen)?;
        return Ok(hits);
    }
    // The FTS table drives (CROSS JOIN keeps it outermost) and the catalogue
    // row is found by rowid; FTS5 itself returns rows in rank or rowid order.
    let from = "FROM catalogue_fts f CROSS JOIN catalogue c ON c.rowid = f.rowid";
    let ranked_sql = format!(
        "SELECT {HIT_COLUMNS} {from} WHERE catalogue_fts MATCH ? AND {filters} ORDER BY f.rank"
    );
    let newest_sql = format!(
        "SELECT {HIT_COLUMNS} {from} WHERE catalogue_fts MATCH ? AND {filters} ORDER BY f.rowid DESC"
    );
    let window_sql = format!(
        "SELECT {HIT_COLUMNS} {from} WHERE catalogue_fts MATCH ? AND f.rowid >= ? AND {filters}
         ORDER BY f.rowid DESC"
    );
    let words = query_words(&q.text);
    for (i, stage) in stages.into_iter().enumerate() {
        if hits.len() >= limit {
            break;
        }
        let (matches, oldest) = newest_matches(conn, &stage, TITLE_WINDOW)?;
        let Some(oldest) = oldest else {
            continue;
        };
        let ranked = i == 0
            && matches <= RANKED_MATCHES.min(TITLE_WINDOW - 1)
            && words.iter().try_fold(true, |cheap, word| {
                Ok::<bool, StoreError>(
                    cheap
                        && count_matches(conn, &phrase(word, false), RANKED_WORD_RECORDS)?
                            <= RANKED_WORD_RECORDS,
                )
            })?;
        let args = |head: Vec<Value>| -> Vec<Value> {
            head.into_iter()
                .chain(filter_args.iter().cloned())
                .collect()
        };
        if ranked {
            let head = vec![Value::Text(stage)];
            collect(conn, &ranked_sql, &args(head), limit, &mut hits, &mut seen)?;
        } else {
            let titles = Value::Text(format!("title : ({stage})"));
            if matches < TITLE_WINDOW {
                collect(
                    conn,
                    &newest_sql,
                    &args(vec![titles]),
                    limit,
                    &mut hits,
                    &mut seen,
                )?;
            } else {
                let head = vec![titles, Value::Integer(oldest)];
                collect(conn, &window_sql, &args(head), limit, &mut hits, &mut seen)?;
            }
            let head = vec![Value::Text(stage)];
            collect(conn, &newest_sql, &args(head), limit, &mut hits, &mut seen)?;
        }
        if matches >= limit {
            // The words match enough records: filters narrowed the page, and
            // prefixes are not wanted.
            break;
        }
    }
    Ok(hits)
}

/// Opens the bucket that holds `id`, runs `edit` on it as this node, and
/// stores the result (one transaction, projection included).
pub fn with_bucket<T>(
    conn: &mut Connection,
    id: &RecordId,
    edit: impl FnOnce(&mut CatalogueDoc) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    with_bucket_then(conn, id, edit, |_| Ok(()))
}

/// [`with_bucket`], running `then` in the same transaction once the
/// document is stored (the local journal of staff actions).
pub fn with_bucket_then<T>(
    conn: &mut Connection,
    id: &RecordId,
    edit: impl FnOnce(&mut CatalogueDoc) -> Result<T, StoreError>,
    then: impl FnOnce(&Transaction<'_>) -> Result<(), StoreError>,
) -> Result<T, StoreError> {
    let actor = shared::node_actor(conn)?;
    let bucket = catalogue::bucket_of(id);
    let doc_id = DocId::catalogue(bucket);
    // Load inside the (immediate) write transaction: no other process can
    // store this document between our read and our write.
    let tx = conn.transaction()?;
    let doc = shared::load_or_create(&tx, &doc_id, &actor)?;
    let mut doc = CatalogueDoc::from_automerge(bucket, doc, actor)?;
    doc.set_commit_time(shared::now());
    let before = doc.automerge_mut().get_heads();
    let out = edit(&mut doc)?;
    let mut am = doc.into_automerge();
    shared::store(&tx, &doc_id, &mut am, &before, true)?;
    then(&tx)?;
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

/// Reads one record from its bucket. A record other duplicates were merged
/// into also shows their holdings: each centre's copies stay visible after
/// a merge (a centre that declared copies on both keeps the survivor's,
/// unless it holds none of it).
pub fn show(conn: &Connection, id: &RecordId) -> Result<Option<Record>, StoreError> {
    let actor = shared::node_actor(conn)?;
    let read = |id: &RecordId| -> Result<Option<Record>, StoreError> {
        let doc_id = catalogue::doc_id_of(id);
        Ok(shared::load(conn, &doc_id, &actor)?.and_then(|doc| catalogue::read_record(&doc, id)))
    };
    let Some(mut record) = read(id)? else {
        return Ok(None);
    };
    for alias in record.aliases.clone() {
        if let Some(alias) = read(&alias)? {
            for (centre, holding) in alias.holdings {
                let own = record.holdings.entry(centre).or_insert(holding.clone());
                if own.copies == 0 {
                    *own = holding;
                }
            }
        }
    }
    Ok(Some(record))
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
    let tx = conn.transaction()?;
    let (mut survivor, survivor_before) = open(&tx, &plan.survivor)?;
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

/// Each centre's copies of a record, its merged duplicates' included, from
/// the projection (what a result line shows).
pub fn holdings_of(
    conn: &Connection,
    id: &RecordId,
) -> Result<Vec<(CentreId, Holding)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT centre, copies, shelf_mark, availability FROM catalogue_holdings
         WHERE record_id = ?1 OR record_id IN (SELECT record_id FROM catalogue WHERE merged_into = ?1)
         ORDER BY centre, record_id = ?1 DESC",
    )?;
    let rows = stmt.query_map([id.as_str()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out: Vec<(CentreId, Holding)> = Vec::new();
    for row in rows {
        let (centre, copies, shelf_mark, availability) = row?;
        let Ok(centre) = CentreId::new(&centre) else {
            continue;
        };
        // The record's own holding comes first; an alias's only fills in
        // for a centre that holds none of the survivor.
        if let Some((_, own)) = out.iter_mut().find(|(c, _)| *c == centre) {
            if own.copies > 0 {
                continue;
            }
        } else {
            out.push((centre.clone(), Holding::default()));
        }
        if let Some((_, h)) = out.iter_mut().find(|(c, _)| *c == centre) {
            *h = Holding {
                copies: u32::try_from(copies).unwrap_or(0),
                shelf_mark,
                availability: catalogue::Availability::from_code(&availability).unwrap_or_default(),
            };
        }
    }
    Ok(out)
}

/// Records that are not aliases of another.
pub fn count_live(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM catalogue WHERE merged_into IS NULL")?
        .query_row([], |r| r.get(0))?)
}

/// Publics in use (most used first, at most 60) and the centres holding copies.
pub fn facets(conn: &mut Connection) -> Result<crate::app::catalogue::Facets, StoreError> {
    let publics = conn
        .prepare_cached(
            "SELECT public, count(*) AS n FROM catalogue_publics GROUP BY public ORDER BY n DESC, public LIMIT 60",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
    // One index seek per centre of the network, not a scan of every holding.
    let mut holds = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM catalogue_holdings WHERE centre = ?1 AND copies > 0)",
    )?;
    let mut centres = Vec::new();
    for centre in clps_model::centres::all() {
        if holds.query_row([&centre.id], |r| r.get::<_, bool>(0))? {
            centres.extend(CentreId::new(&centre.id).ok());
        }
    }
    centres.sort();
    drop(holds);
    Ok(crate::app::catalogue::Facets {
        publics,
        centres,
        records: count_live(conn)?,
    })
}

/// A change of a record's history: (unix time, centre, action).
pub type HistoryLine = (i64, Option<CentreId>, String);

/// The conflicting fields of one record and its history (newest first), read
/// from its bucket: each change says what it did to which record, and its
/// actor names the centre (the hub checked both).
pub fn record_story(
    conn: &Connection,
    id: &RecordId,
) -> Result<(Vec<catalogue::FieldConflict>, Vec<HistoryLine>), StoreError> {
    let actor = shared::node_actor(conn)?;
    let Some(mut doc) = shared::load(conn, &catalogue::doc_id_of(id), &actor)? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let conflicts = catalogue::record_conflicts(&doc, id);
    let suffix = format!(" {id}");
    // Metadata only: rebuilding every change of a bucket with its operations
    // costs hundreds of milliseconds at the network's size.
    let mut history: Vec<HistoryLine> = doc
        .get_changes_meta(&[])
        .into_iter()
        .filter_map(|change| {
            let message = change.message.as_deref()?;
            let action = message.strip_suffix(suffix.as_str())?;
            let centre = clps_model::CentreActor::parse(&change.actor)
                .map(|a| a.centre)
                .ok();
            Some((change.timestamp, centre, action.to_owned()))
        })
        .collect();
    history.reverse();
    history.truncate(50);
    Ok((conflicts, history))
}

/// Records that look like the same item as `record` (same folded title,
/// publisher and year), found through the title index.
pub fn likely_duplicates(
    conn: &Connection,
    record: &Record,
) -> Result<Vec<(RecordId, String)>, StoreError> {
    let key = catalogue::duplicate_key(&record.fields);
    let words = query_words(&record.fields.title);
    if key.0.is_empty() || words.is_empty() {
        return Ok(Vec::new());
    }
    // Same folded title, so every word is in the candidate's: asking for the
    // three longest (the rarest, usually) keeps the index lookups short.
    let mut rare = words.clone();
    rare.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    rare.truncate(3);
    let query = format!(
        "title : ({})",
        rare.iter()
            .map(|w| phrase(w, false))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // The key is read from the projection: loading each candidate's bucket
    // would cost a document load per title word match.
    let mut stmt = conn.prepare_cached(
        "SELECT c.record_id, c.title, c.creator, c.publisher, c.year
         FROM catalogue_fts f CROSS JOIN catalogue c ON c.rowid = f.rowid
         WHERE catalogue_fts MATCH ?1 AND c.merged_into IS NULL AND c.record_id != ?2 LIMIT 200",
    )?;
    let rows = stmt
        .query_map(params![query, record.id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<u16>>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, title, creator, publisher, year)| {
            catalogue::duplicate_key_of(title, creator, publisher, *year) == key
        })
        .filter_map(|(id, title, ..)| RecordId::parse(&id).ok().map(|id| (id, title)))
        .collect())
}

/// Number of projected records (aliases included).
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM catalogue", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::Store;

    #[test]
    fn queries_widen_from_whole_words_to_prefixes() {
        assert_eq!(
            match_stages("l'alcool à l'école"),
            [
                "\"alcool\" \"école\"",
                "\"alcool\" \"école\"*",
                "\"alcool\"* \"école\"*"
            ]
        );
        // Short words never expand: as prefixes they match nearly everything.
        assert_eq!(match_stages("de"), ["\"de\""]);
        assert_eq!(match_stages("à"), ["\"à\""]);
        assert!(match_stages(" ,; ").is_empty());
        assert_eq!(
            fts_query("\"NEAR( OR *").as_deref(),
            Some("\"NEAR\"* \"OR\"")
        );
    }

    #[tokio::test]
    async fn whole_words_come_first_and_prefixes_fill_the_page() {
        let store = Store::in_memory().unwrap();
        let found = store
            .call(|conn| {
                let namur = CentreId::new("namur").unwrap();
                crate::centre::init(conn, &namur, *b"testnode")?;
                for (n, title) in [
                    (1, "Jeux coopératifs"),
                    (2, "Le jeu de l'oie"),
                    (3, "Les jeunes et l'alcool"),
                ] {
                    let fields = RecordFields {
                        title: title.to_owned(),
                        doc_type: "outil_pedagogique".to_owned(),
                        ..RecordFields::default()
                    };
                    add(conn, &RecordId::from_local(&namur, n), &fields, None)?;
                }
                let ids = |text: &str, limit: usize| -> Result<Vec<String>, StoreError> {
                    let q = SearchQuery {
                        text: text.to_owned(),
                        limit,
                        ..SearchQuery::default()
                    };
                    Ok(search(conn, &q)?.into_iter().map(|h| h.record_id).collect())
                };
                Ok([
                    ids("jeu", 20)?,
                    ids("jeu", 1)?,
                    ids("JEUX", 20)?,
                    ids("", 2)?,
                ])
            })
            .await
            .unwrap();
        // The whole word first, then prefix matches, newest first.
        assert_eq!(found[0], ["namur.2", "namur.3", "namur.1"]);
        assert_eq!(found[1], ["namur.2"]);
        assert_eq!(found[2], ["namur.1"]);
        // Without text, by title.
        assert_eq!(found[3], ["namur.1", "namur.2"]);
    }
}
