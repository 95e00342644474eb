//! `catalogue import FILE.csv`: records exported by a library system.
//!
//! Column mapping (header names, case and accents ignored; `;` separates
//! several values in one cell):
//!
//! | column        | field                         | required |
//! |---------------|-------------------------------|----------|
//! | `id_local`    | the centre's own record number; makes the import idempotent | yes |
//! | `titre`       | title                         | yes |
//! | `type`        | document type (code or French label) | yes |
//! | `auteurs`     | creator statement             | no |
//! | `editeur`     | publisher                     | no |
//! | `annee`       | year                          | no |
//! | `themes`      | themes (codes or labels)      | no |
//! | `publics`     | target publics (slugs)        | no |
//! | `age_min`, `age_max` | age range              | no |
//! | `description` | description                   | no |
//! | `conditions`  | conditions of use             | no |
//! | `langues`     | ISO 639-1 codes               | no |
//! | `liens`       | http(s) links                 | no |
//! | `cote`        | shelf mark of this centre's copies | no |
//! | `exemplaires` | number of copies held here    | no (default 1) |
//!
//! The shared record id is derived from the centre and `id_local`, so the
//! same file imported twice creates nothing new. Rows are checked one by one;
//! a bad row is reported with its line number and reason and skipped, the
//! others are written in transactions of [`BATCH`] rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use automerge::ChangeHash;
use clps_model::CentreId;
use clps_model::docs::catalogue::{self, Holding, RecordFields, RecordId};
use clps_model::docs::{CatalogueDoc, DocId};
use clps_model::vocab::{self, CodeList};
use rusqlite::Connection;

use crate::shared;
use crate::store::StoreError;

/// Rows written per transaction.
pub const BATCH: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: usize,
    pub created: usize,
    pub already_present: usize,
    /// (line number in the file, reason), in file order.
    pub rejected: Vec<(u64, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("impossible de lire {0} : {1}")]
    Read(String, String),
    #[error("colonne obligatoire absente : {0}")]
    MissingColumn(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Folds a header or label for matching: lower case, accents and spaces removed.
fn fold(s: &str) -> String {
    clps_model::docs::normalize::fold(s).replace(' ', "_")
}

fn code_of(list: &CodeList, value: &str) -> Option<String> {
    let wanted = fold(value);
    list.0
        .iter()
        .find(|c| fold(&c.code) == wanted || fold(&c.label) == wanted)
        .map(|c| c.code.clone())
}

fn split(cell: &str) -> Vec<String> {
    cell.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A stable number for a local id that is not numeric (FNV-1a).
fn local_number(local: &str) -> u64 {
    local.parse().unwrap_or_else(|_| {
        local.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    })
}

struct Columns(BTreeMap<String, usize>);

impl Columns {
    fn get<'r>(&self, row: &'r csv::StringRecord, name: &str) -> &'r str {
        self.0
            .get(name)
            .and_then(|i| row.get(*i))
            .map(str::trim)
            .unwrap_or("")
    }
}

/// One parsed row: the shared record, and this centre's holding.
type Parsed = (u64, RecordId, RecordFields, Holding);

fn parse_row(
    cols: &Columns,
    row: &csv::StringRecord,
    centre: &CentreId,
    line: u64,
) -> Result<Parsed, String> {
    let v = vocab::get();
    let local = cols.get(row, "id_local");
    if local.is_empty() {
        return Err("id_local vide".into());
    }
    let title = cols.get(row, "titre");
    if title.is_empty() {
        return Err("titre vide".into());
    }
    let raw_type = cols.get(row, "type");
    let doc_type = code_of(&v.document_types, raw_type)
        .ok_or_else(|| format!("type de document inconnu « {raw_type} »"))?;
    let mut themes = BTreeSet::new();
    for t in split(cols.get(row, "themes")) {
        themes
            .insert(code_of(&v.themes, &t).ok_or_else(|| format!("thématique inconnue « {t} »"))?);
    }
    let number = |name: &str| -> Result<Option<u64>, String> {
        let cell = cols.get(row, name);
        if cell.is_empty() {
            Ok(None)
        } else {
            cell.parse()
                .map(Some)
                .map_err(|_| format!("{name} n'est pas un nombre : « {cell} »"))
        }
    };
    let year = number("annee")?
        .map(|y| u16::try_from(y).map_err(|_| format!("année invalide « {y} »")))
        .transpose()?;
    let age = |name: &str| -> Result<Option<u8>, String> {
        number(name)?
            .map(|a| u8::try_from(a).map_err(|_| format!("{name} invalide « {a} »")))
            .transpose()
    };
    let fields = RecordFields {
        title: title.to_owned(),
        doc_type,
        creator: cols.get(row, "auteurs").to_owned(),
        publisher: cols.get(row, "editeur").to_owned(),
        year,
        themes,
        publics: split(cols.get(row, "publics"))
            .into_iter()
            .map(|p| fold(&p).replace(['\'', '-'], "_"))
            .collect(),
        age_min: age("age_min")?,
        age_max: age("age_max")?,
        description: cols.get(row, "description").to_owned(),
        conditions_of_use: cols.get(row, "conditions").to_owned(),
        languages: split(cols.get(row, "langues"))
            .into_iter()
            .map(|l| l.to_lowercase())
            .collect(),
        links: split(cols.get(row, "liens")).into_iter().collect(),
    };
    let copies = number("exemplaires")?.unwrap_or(1);
    let holding = Holding {
        copies: u32::try_from(copies).map_err(|_| format!("exemplaires invalide « {copies} »"))?,
        shelf_mark: cols.get(row, "cote").to_owned(),
        availability: catalogue::Availability::Available,
    };
    Ok((
        line,
        RecordId::from_local(centre, local_number(local)),
        fields,
        holding,
    ))
}

/// Reads the whole file first (so a missing column fails before anything is
/// written), then writes the good rows in batches.
pub fn import(
    conn: &mut Connection,
    path: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<ImportReport, ImportError> {
    let display = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| ImportError::Read(display.clone(), e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Read(display.clone(), e.to_string()))?
        .clone();
    let cols = Columns(
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| (fold(h), i))
            .collect(),
    );
    for required in ["id_local", "titre", "type"] {
        if !cols.0.contains_key(required) {
            return Err(ImportError::MissingColumn(required));
        }
    }
    let centre = shared::centre(conn)?;
    let mut report = ImportReport::default();
    let mut good: Vec<Parsed> = Vec::new();
    let mut seen = BTreeSet::new();
    for row in reader.records() {
        report.rows += 1;
        match row {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                report
                    .rejected
                    .push((line, format!("ligne illisible : {e}")));
            }
            Ok(row) => {
                let line = row.position().map_or(0, |p| p.line());
                match parse_row(&cols, &row, &centre, line) {
                    Ok(parsed) if !seen.insert(parsed.1.clone()) => report
                        .rejected
                        .push((line, "id_local en double dans le fichier".into())),
                    Ok(parsed) => good.push(parsed),
                    Err(reason) => report.rejected.push((line, reason)),
                }
            }
        }
    }
    progress.set_length(good.len() as u64);
    let actor = shared::node_actor(conn)?;
    for batch in good.chunks(BATCH) {
        // Group by bucket so each touched bucket is loaded and saved once.
        let mut by_bucket: BTreeMap<u16, Vec<&Parsed>> = BTreeMap::new();
        for parsed in batch {
            by_bucket
                .entry(catalogue::bucket_of(&parsed.1))
                .or_default()
                .push(parsed);
        }
        let tx = conn.transaction().map_err(StoreError::from)?;
        for (bucket, rows) in by_bucket {
            let doc_id = DocId::catalogue(bucket);
            let doc = shared::load_or_create(&tx, &doc_id, &actor)?;
            let mut doc = CatalogueDoc::from_automerge(bucket, doc, actor.clone())
                .map_err(StoreError::from)?;
            doc.set_commit_time(shared::now());
            let before: Vec<ChangeHash> = doc.automerge_mut().get_heads();
            for (line, id, fields, holding) in rows {
                if doc.record(id).is_some() {
                    report.already_present += 1;
                    continue;
                }
                // The shared schema has the last word (free text, links...):
                // a refusal there rejects the row, not the import.
                if let Err(e) = doc.create_record(id, fields) {
                    report.rejected.push((*line, e.to_string()));
                    continue;
                }
                doc.set_holding(id, holding).map_err(StoreError::from)?;
                report.created += 1;
            }
            let mut am = doc.into_automerge();
            shared::store(&tx, &doc_id, &mut am, &before, true)?;
        }
        tx.commit().map_err(StoreError::from)?;
        progress.inc(batch.len() as u64);
    }
    report.rejected.sort();
    Ok(report)
}
