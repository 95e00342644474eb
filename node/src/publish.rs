//! The aggregates a node publishes in its statistics document
//! (`stats/<centre>`): counts over the shared code lists, per year and month.
//! Only counts leave the node; a count that drops to zero is published as 0
//! so the hub's figures follow deletions.
//!
//! Tables (cells are `--`-separated codes, see `clps_model::stats`):
//!
//! | table            | cell                                   | counts |
//! |------------------|----------------------------------------|--------|
//! | `req_sector`, `req_profession`, `req_contact` | `mm--<code>--<service>` | requests |
//! | `req_theme`      | `mm--<theme>--<service>`               | theme mentions |
//! | `loans`          | `mm--<document type>--<theme or none>` | loans |
//! | `acc_scheme`, `acc_theme`, `acc_axis` | `mm--<code>`      | accompaniments (themes/axes: mentions) |
//! | `events`         | `mm--<kind>--<event key>`              | participants |
//! | `event_org`      | `<event key>--<centre id>`             | 1 per co-organising centre |
//! | `event_partners` | `<event key>`                          | organisers that are not centres (never named) |
//! | `holdings`       | `all--<document type>`                 | records this centre holds |
//!
//! An event key is derived from the event's date and normalised title, so a
//! co-organised event recorded at two centres carries the same key and the
//! hub counts it once.

use std::collections::BTreeMap;

use clps_model::docs::stats::FigureKey;
use clps_model::docs::{DocId, StatsDoc};
use clps_model::stats::{Dimension, SEP, request_cell};
use rusqlite::{Connection, params};

use crate::shared;
use crate::store::StoreError;

fn month(date: &str) -> u8 {
    date.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(0)
}

fn slug(s: &str) -> String {
    clps_model::docs::normalize::fold(s)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The key a co-organised event shares across its organisers.
pub fn event_key(start_date: &str, title: &str) -> String {
    let text = format!("{start_date}|{}", slug(title));
    let hash = clps_model::text::fnv1a(text.bytes());
    format!("e{hash:016x}")
}

/// Every figure of `year` computed from the records.
pub fn aggregates(conn: &Connection, year: i32) -> Result<BTreeMap<FigureKey, u64>, StoreError> {
    let y =
        u16::try_from(year).map_err(|_| StoreError::Invalid(format!("année invalide {year}")))?;
    let (from, to) = (format!("{year:04}-"), format!("{:04}-", year + 1));
    let mut out = BTreeMap::new();
    let mut put = |table: &str, cell: String, n: i64| {
        let key = FigureKey {
            year: y,
            table: table.to_owned(),
            cell,
        };
        *out.entry(key).or_insert(0) += u64::try_from(n).unwrap_or(0);
    };
    for by in Dimension::ALL {
        let sql = match by {
            Dimension::Sector => {
                "SELECT date AS d, sector AS code, service_type AS service FROM requests WHERE date >= ?1 AND date < ?2"
            }
            Dimension::Profession => {
                "SELECT date AS d, profession AS code, service_type AS service FROM requests WHERE date >= ?1 AND date < ?2"
            }
            Dimension::ContactMode => {
                "SELECT date AS d, contact_mode AS code, service_type AS service FROM requests WHERE date >= ?1 AND date < ?2"
            }
            Dimension::Theme => {
                "SELECT r.date AS d, t.theme AS code, r.service_type AS service FROM requests r JOIN request_themes t ON t.request_id = r.id WHERE r.date >= ?1 AND r.date < ?2"
            }
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT substr(d, 6, 2), code, service, count(*) FROM ({sql}) GROUP BY 1, 2, 3"
        ))?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (m, code, service, n) = row?;
            put(
                by.table(),
                request_cell(month(&format!("0000-{m}")), &code, &service),
                n,
            );
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT out_date, document_type, coalesce(theme, 'none'), count(*) FROM loans
         WHERE out_date >= ?1 AND out_date < ?2 GROUP BY substr(out_date, 6, 2), 2, 3",
    )?;
    for row in stmt.query_map(params![from, to], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })? {
        let (date, doc_type, theme, n) = row?;
        put(
            "loans",
            format!("{:02}{SEP}{doc_type}{SEP}{theme}", month(&date)),
            n,
        );
    }
    for (table, sql) in [
        (
            "acc_scheme",
            "SELECT a.start_date, a.scheme FROM accompaniments a WHERE a.start_date >= ?1 AND a.start_date < ?2",
        ),
        (
            "acc_theme",
            "SELECT a.start_date, t.theme FROM accompaniments a JOIN accompaniment_themes t ON t.accompaniment_id = a.id WHERE a.start_date >= ?1 AND a.start_date < ?2",
        ),
        (
            "acc_axis",
            "SELECT a.start_date, x.axis FROM accompaniments a JOIN accompaniment_axes x ON x.accompaniment_id = a.id WHERE a.start_date >= ?1 AND a.start_date < ?2",
        ),
    ] {
        let mut stmt = conn.prepare_cached(sql)?;
        for row in stmt.query_map(params![from, to], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (date, code) = row?;
            put(table, format!("{:02}{SEP}{code}", month(&date)), 1);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, e.kind, e.title, e.start_date, coalesce((SELECT sum(n) FROM event_participants p WHERE p.event_id = e.id), 0)
         FROM events e WHERE e.start_date >= ?1 AND e.start_date < ?2",
    )?;
    let events: Vec<(i64, String, String, String, i64)> = stmt
        .query_map(params![from, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, kind, title, date, participants) in events {
        let key = event_key(&date, &title);
        put(
            "events",
            format!("{:02}{SEP}{kind}{SEP}{key}", month(&date)),
            participants,
        );
        let mut org =
            conn.prepare_cached("SELECT organiser FROM event_organisers WHERE event_id = ?1")?;
        let organisers: Vec<String> = org
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for organiser in organisers {
            // Only centres are named: a partner organisation or a person
            // typed as organiser never leaves the centre, only their count.
            match clps_model::CentreId::new(&organiser) {
                Ok(centre) => put("event_org", format!("{key}{SEP}{centre}"), 1),
                Err(_) => put("event_partners", key.clone(), 1),
            }
        }
    }
    let centre = shared::centre(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT c.doc_type, count(*) FROM catalogue_holdings h JOIN catalogue c ON c.record_id = h.record_id
         WHERE h.centre = ?1 AND h.copies > 0 AND c.merged_into IS NULL GROUP BY 1",
    )?;
    for row in stmt.query_map([centre.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (doc_type, n) = row?;
        put("holdings", format!("all{SEP}{doc_type}"), n);
    }
    // Event keys and organiser slugs must stay slugs.
    out.retain(|k, _| k.cell.len() <= 64);
    Ok(out)
}

/// Years that have any record, for publication.
pub fn years(conn: &Connection) -> Result<Vec<i32>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT CAST(substr(d, 1, 4) AS INTEGER) FROM (
           SELECT date AS d FROM requests UNION SELECT out_date FROM loans
           UNION SELECT start_date FROM accompaniments UNION SELECT start_date FROM events) ORDER BY 1",
    )?;
    Ok(stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Writes the figures that changed into the statistics document (one change),
/// zeroing cells that disappeared. Returns the number of cells written.
///
/// Only the years this node holds records of are its to publish: a second
/// machine of the centre, or one just reinstalled, receives the centre's
/// figures before it holds any record, and publishing then would zero them
/// all at every centre.
pub fn publish(conn: &mut Connection) -> Result<usize, StoreError> {
    let actor = shared::node_actor(conn)?;
    let doc_id = DocId::stats(actor.centre.clone());
    let held = years(conn)?;
    let mut current = BTreeMap::new();
    for year in &held {
        current.extend(aggregates(conn, *year)?);
    }
    let tx = conn.transaction()?;
    let doc = shared::load_or_create(&tx, &doc_id, &actor)?;
    let bytes = {
        let mut doc = doc;
        doc.save()
    };
    let mut stats = StatsDoc::load(&bytes, actor)?;
    stats.set_commit_time(shared::now());
    let published = stats.figures();
    let mut diff: BTreeMap<FigureKey, u64> = current
        .iter()
        .filter(|(k, v)| published.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for (k, v) in &published {
        if *v != 0 && !current.contains_key(k) && held.contains(&i32::from(k.year)) {
            diff.insert(k.clone(), 0);
        }
    }
    if diff.is_empty() {
        return Ok(0);
    }
    let before = stats.automerge_mut().get_heads();
    stats.set_figures(&diff)?;
    let mut am = std::mem::take(stats.automerge_mut());
    shared::store(&tx, &doc_id, &mut am, &before, true)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('published_at', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [shared::now().to_string()],
    )?;
    tx.commit()?;
    Ok(diff.len())
}

/// When the published figures last changed (seconds), if ever.
pub fn last_published(conn: &Connection) -> Result<Option<i64>, StoreError> {
    use rusqlite::OptionalExtension;
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'published_at'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()))
}

/// The node's own published figures, as the hub will read them.
pub fn published(conn: &Connection) -> Result<BTreeMap<FigureKey, u64>, StoreError> {
    let actor = shared::node_actor(conn)?;
    let doc_id = DocId::stats(actor.centre.clone());
    Ok(shared::load(conn, &doc_id, &actor)?
        .map(|doc| clps_model::docs::stats::figures(&doc))
        .unwrap_or_default())
}
