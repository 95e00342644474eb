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
//! The file's encoding (UTF-8, with or without a byte-order mark, UTF-16
//! with one, else Windows-1252 as spreadsheets on Windows write it) and its
//! separator (`;`, `,` or tab, whichever the header line uses most) are
//! detected, so an export opens as it is. [`preview`] shows what will be
//! read before anything is written.
//!
//! The shared record id is derived from the centre and `id_local`, so the
//! same file imported twice creates nothing new. Rows are checked one by one;
//! a bad row is reported with its line number and reason and skipped, the
//! others are written in transactions of [`BATCH`] rows. [`rejected_csv`]
//! gives the rejected rows back, with their reason, to fix and import again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

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

/// Largest file read, in bytes: a centre's export of 20,000 records is
/// about 6 MB; the web application keeps up to 8 uploads in memory.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Columns that must be present.
pub const REQUIRED: [&str; 3] = ["id_local", "titre", "type"];

/// Every column read, with what it fills (French, for the preview).
pub const COLUMNS: [(&str, &str); 16] = [
    ("id_local", "numéro de la notice au centre"),
    ("titre", "titre"),
    ("type", "type de document"),
    ("auteurs", "auteurs"),
    ("editeur", "éditeur"),
    ("annee", "année"),
    ("themes", "thématiques"),
    ("publics", "publics"),
    ("age_min", "âge minimum"),
    ("age_max", "âge maximum"),
    ("description", "description"),
    ("conditions", "conditions d'utilisation"),
    ("langues", "langues"),
    ("liens", "liens"),
    ("cote", "cote des exemplaires du centre"),
    ("exemplaires", "nombre d'exemplaires du centre"),
];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("impossible de lire {0} : {1}")]
    Read(String, String),
    #[error("le fichier est vide")]
    Empty,
    #[error("le fichier dépasse {} Mo : découpez-le en plusieurs fichiers", MAX_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("colonne obligatoire absente : {0} (colonnes trouvées : {1})")]
    MissingColumn(&'static str, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// What kind of failure this is, for an adapter's status.
    pub fn kind(&self) -> crate::app::ErrorKind {
        match self {
            ImportError::Store(e) => e.kind(),
            _ => crate::app::ErrorKind::Invalid,
        }
    }
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
    local
        .parse()
        .unwrap_or_else(|_| clps_model::text::fnv1a(local.bytes()))
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

/// Where an import reports how far it is (a terminal bar, a web page).
pub trait Progress: Send + Sync {
    /// The number of rows to write is known.
    fn start(&self, total: u64);
    /// `n` more rows are written.
    fn advance(&self, n: u64);
}

impl Progress for indicatif::ProgressBar {
    fn start(&self, total: u64) {
        self.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.inc(n);
    }
}

/// A file's text once its encoding is known, and its separator.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub text: Arc<str>,
    /// The encoding's usual name (`UTF-8`, `windows-1252`, `UTF-16LE`).
    pub encoding: &'static str,
    pub separator: u8,
}

impl Decoded {
    /// The separator as staff name it.
    pub fn separator_label(&self) -> &'static str {
        match self.separator {
            b';' => "point-virgule (;)",
            b'\t' => "tabulation",
            _ => "virgule (,)",
        }
    }

    /// The line (from 1) where the byte at `offset` is. The reader's own
    /// line count is one short after a CRLF header, as Windows writes them.
    fn line_of(&self, position: Option<&csv::Position>) -> u64 {
        let Some(offset) = position.map(|p| p.byte() as usize) else {
            return 0;
        };
        // A record may be said to start at the line break before it.
        let bytes = self.text.as_bytes();
        let start = bytes
            .iter()
            .skip(offset)
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .map_or(bytes.len(), |n| offset + n);
        let before = bytes.get(..start).unwrap_or_default();
        1 + before.iter().filter(|&&b| b == b'\n').count() as u64
    }

    fn reader(&self) -> csv::Reader<&[u8]> {
        csv::ReaderBuilder::new()
            .flexible(true)
            .delimiter(self.separator)
            .from_reader(self.text.as_bytes())
    }
}

/// Detects the encoding and the separator of a file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Decoded, ImportError> {
    if bytes.len() > MAX_BYTES {
        return Err(ImportError::TooLarge);
    }
    let (encoding, bom) = match encoding_rs::Encoding::for_bom(bytes) {
        Some((enc, len)) => (enc, len),
        None if std::str::from_utf8(bytes).is_ok() => (encoding_rs::UTF_8, 0),
        None => (encoding_rs::WINDOWS_1252, 0),
    };
    let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
    if text.trim().is_empty() {
        return Err(ImportError::Empty);
    }
    let separator = detect_separator(&text);
    Ok(Decoded {
        text: Arc::from(text.into_owned()),
        encoding: encoding.name(),
        separator,
    })
}

/// The separator the header line uses most, outside quotes.
fn detect_separator(text: &str) -> u8 {
    let mut counts = [(b';', 0usize), (b',', 0), (b'\t', 0)];
    let mut quoted = false;
    for c in text.bytes() {
        match c {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == c) {
                    slot.1 += 1;
                }
            }
            _ => {}
        }
    }
    // Ties go to the first: `;` is what French-locale spreadsheets write.
    counts
        .iter()
        .fold(
            (b',', 0),
            |best, &(s, n)| if n > best.1 { (s, n) } else { best },
        )
        .0
}

/// What a file holds, shown before it is imported.
#[derive(Debug, Clone)]
pub struct Preview {
    pub encoding: &'static str,
    pub separator: &'static str,
    /// Each header with what it fills, `None` when it is not read.
    pub headers: Vec<(String, Option<&'static str>)>,
    /// The first rows, cell by cell.
    pub rows: Vec<Vec<String>>,
    /// Data rows in the file.
    pub total_rows: usize,
    /// Required columns that are absent.
    pub missing: Vec<&'static str>,
}

/// The header map of a file, or the first required column it lacks.
fn columns(decoded: &Decoded) -> Result<(csv::StringRecord, Columns), ImportError> {
    let mut reader = decoded.reader();
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Read("l'en-tête".into(), e.to_string()))?
        .clone();
    let cols = Columns(
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| (fold(h), i))
            .collect(),
    );
    Ok((headers, cols))
}

fn missing(cols: &Columns) -> Vec<&'static str> {
    REQUIRED
        .into_iter()
        .filter(|r| !cols.0.contains_key(*r))
        .collect()
}

/// The first `n` rows of a decoded file and how its columns are read.
pub fn preview(decoded: &Decoded, n: usize) -> Result<Preview, ImportError> {
    let (headers, cols) = columns(decoded)?;
    let mut reader = decoded.reader();
    let mut rows = Vec::new();
    let mut total_rows = 0;
    for row in reader.records() {
        total_rows += 1;
        if rows.len() < n {
            rows.push(match row {
                Ok(r) => r.iter().map(str::to_owned).collect(),
                Err(e) => vec![format!("ligne illisible : {e}")],
            });
        }
    }
    Ok(Preview {
        encoding: decoded.encoding,
        separator: decoded.separator_label(),
        headers: headers
            .iter()
            .map(|h| {
                let what = COLUMNS
                    .iter()
                    .find(|(c, _)| *c == fold(h))
                    .map(|(_, what)| *what);
                (h.to_owned(), what)
            })
            .collect(),
        rows,
        total_rows,
        missing: missing(&cols),
    })
}

/// Reads a file from disk and imports it ([`import_decoded`]).
pub fn import(
    conn: &mut Connection,
    path: &Path,
    progress: &dyn Progress,
) -> Result<ImportReport, ImportError> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ImportError::Read(display, crate::store::io_error_fr(&e).to_owned()))?;
    import_decoded(conn, &decode(&bytes)?, progress)
}

/// Reads the whole file first (so a missing column fails before anything is
/// written), then writes the good rows in batches.
pub fn import_decoded(
    conn: &mut Connection,
    decoded: &Decoded,
    progress: &dyn Progress,
) -> Result<ImportReport, ImportError> {
    let (headers, cols) = columns(decoded)?;
    if let Some(first) = missing(&cols).first() {
        let found: Vec<&str> = headers.iter().collect();
        return Err(ImportError::MissingColumn(first, found.join(", ")));
    }
    let mut reader = decoded.reader();
    let centre = shared::centre(conn)?;
    let mut report = ImportReport::default();
    let mut good: Vec<Parsed> = Vec::new();
    let mut seen = BTreeSet::new();
    for row in reader.records() {
        report.rows += 1;
        match row {
            Err(e) => {
                let line = decoded.line_of(e.position());
                report
                    .rejected
                    .push((line, format!("ligne illisible : {e}")));
            }
            Ok(row) => {
                let line = decoded.line_of(row.position());
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
    progress.start(good.len() as u64);
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
        progress.advance(batch.len() as u64);
    }
    report.rejected.sort();
    Ok(report)
}

/// The rejected rows as a CSV file (UTF-8 with a byte-order mark, `;`, as a
/// French-locale spreadsheet opens it): a `ligne` and a `motif` column, then
/// the row's own cells under the file's headers.
pub fn rejected_csv(decoded: &Decoded, report: &ImportReport) -> Result<Vec<u8>, ImportError> {
    let reasons: BTreeMap<u64, &str> = report
        .rejected
        .iter()
        .map(|(line, reason)| (*line, reason.as_str()))
        .collect();
    let (headers, _) = columns(decoded)?;
    let mut out = csv::WriterBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    let write = |out: &mut csv::Writer<Vec<u8>>, cells: Vec<String>| {
        out.write_record(cells)
            .map_err(|e| ImportError::Read("les lignes rejetées".into(), e.to_string()))
    };
    let mut head = vec!["ligne".to_owned(), "motif".to_owned()];
    head.extend(headers.iter().map(str::to_owned));
    write(&mut out, head)?;
    let mut reader = decoded.reader();
    let mut record = csv::StringRecord::new();
    loop {
        let line = decoded.line_of(Some(reader.position()));
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = decoded.line_of(record.position());
                if let Some(reason) = reasons.get(&line) {
                    let mut cells = vec![line.to_string(), (*reason).to_owned()];
                    cells.extend(record.iter().map(str::to_owned));
                    write(&mut out, cells)?;
                }
            }
            Err(e) => {
                let line = e.position().map_or(line, |p| decoded.line_of(Some(p)));
                if let Some(reason) = reasons.get(&line) {
                    write(&mut out, vec![line.to_string(), (*reason).to_owned()])?;
                }
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
            }
        }
    }
    out.into_inner()
        .map_err(|e| ImportError::Read("les lignes rejetées".into(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1252_with_semicolons_is_read_as_written() {
        // « Éducation à la santé » as Excel on Windows saves it.
        let bytes = b"id_local;titre;type\r\n1;\xC9ducation \xE0 la sant\xE9;livre\r\n";
        let decoded = decode(bytes).expect("decoded");
        assert_eq!(decoded.encoding, "windows-1252");
        assert_eq!(decoded.separator, b';');
        let preview = preview(&decoded, 5).expect("preview");
        assert_eq!(preview.rows[0][1], "Éducation à la santé");
        assert_eq!(preview.total_rows, 1);
        assert!(preview.missing.is_empty());
    }

    #[test]
    fn utf8_bom_commas_and_quoted_separators() {
        let text = "\u{feff}id_local,titre,type\n1,\"Jeux; coopératifs, et plus\",jeu\n";
        let decoded = decode(text.as_bytes()).expect("decoded");
        assert_eq!(decoded.encoding, "UTF-8");
        assert_eq!(decoded.separator, b',');
        let preview = preview(&decoded, 5).expect("preview");
        assert_eq!(preview.headers[0].0, "id_local");
        assert_eq!(preview.rows[0][1], "Jeux; coopératifs, et plus");
    }

    #[test]
    fn tabs_and_missing_columns_are_reported() {
        let decoded = decode(b"numero\ttitre\n1\tx\n").expect("decoded");
        assert_eq!(decoded.separator, b'\t');
        let preview = preview(&decoded, 5).expect("preview");
        assert_eq!(preview.missing, vec!["id_local", "type"]);
        assert_eq!(preview.headers[0].1, None);
        assert_eq!(preview.headers[1].1, Some("titre"));
    }

    #[test]
    fn line_numbers_count_crlf_lines_too() {
        for text in [
            "a;b\r\n1;x\r\n2;y\r\n",
            "a;b\n1;x\n2;y\n",
            "a;b\n\"1\nsuite\";x\n2;y\n",
        ] {
            let decoded = decode(text.as_bytes()).expect("decoded");
            let lines: Vec<u64> = decoded
                .reader()
                .records()
                .map(|r| decoded.line_of(r.expect("row").position()))
                .collect();
            let second = if text.contains("suite") { 4 } else { 3 };
            assert_eq!(lines, vec![2, second], "{text:?}");
        }
    }

    #[test]
    fn empty_files_are_refused() {
        assert!(matches!(decode(b" \r\n"), Err(ImportError::Empty)));
    }

    #[test]
    fn rejected_rows_come_back_with_their_reason() {
        let decoded =
            decode("id_local;titre;type\n1;Bon;livre\n2;;livre\n3;Mauvais;fusée\n".as_bytes())
                .expect("decoded");
        let report = ImportReport {
            rows: 3,
            created: 1,
            already_present: 0,
            rejected: vec![(3, "titre vide".into()), (4, "type inconnu".into())],
        };
        let out = rejected_csv(&decoded, &report).expect("csv");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "\u{feff}ligne;motif;id_local;titre;type\n3;titre vide;2;;livre\n4;type inconnu;3;Mauvais;fusée\n"
        );
    }
}
