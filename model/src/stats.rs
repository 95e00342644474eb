//! Cross tables of requests — service type (columns) × one dimension (rows),
//! in the layout of the centres' published activity reports — and the figures
//! a centre publishes in its statistics document, with their merge into
//! network tables for the inter-CLPS committees.
//!
//! A node computes its tables from records, so they are consistent by
//! construction: a table's total is the sum of its cells. `by theme` counts
//! theme mentions (a request may name several themes); the other dimensions
//! count requests.

use crate::text::capitalise;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::centres::CentreId;
use crate::docs::stats::FigureKey;
use crate::vocab::{self, CodeList};

/// The row dimension of a cross table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dimension {
    Sector,
    Theme,
    Profession,
    ContactMode,
}

impl Dimension {
    pub fn codes(self) -> &'static CodeList {
        let v = vocab::get();
        match self {
            Dimension::Sector => &v.requester_sectors,
            Dimension::Theme => &v.themes,
            Dimension::Profession => &v.requester_professions,
            Dimension::ContactMode => &v.contact_modes,
        }
    }

    /// French caption of the row dimension.
    pub fn caption(self) -> &'static str {
        match self {
            Dimension::Sector => "secteur du demandeur",
            Dimension::Theme => "thématique",
            Dimension::Profession => "profession du demandeur",
            Dimension::ContactMode => "mode de contact",
        }
    }

    /// What one counted unit is.
    pub fn base(self) -> &'static str {
        match self {
            Dimension::Theme => "mentions de thématiques (une demande peut en citer plusieurs)",
            _ => "demandes",
        }
    }
}

/// Short column headers for the terminal table; the legend gives full labels.
const SHORT_SERVICE_LABELS: [&str; 8] = [
    "Prêt",
    "Acc. doc.",
    "Diffusion",
    "Acc. méth.",
    "Subvention",
    "Logistique",
    "Réorient.",
    "Non renc.",
];

/// A service type × dimension table for one year.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossTable {
    pub year: i32,
    pub by: Dimension,
    pub base: &'static str,
    /// Service type codes, in vocabulary order.
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    pub column_totals: Vec<u64>,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub code: String,
    pub label: String,
    pub cells: Vec<u64>,
    pub total: u64,
}

impl CrossTable {
    /// An all-zero table in vocabulary order.
    pub fn empty(year: i32, by: Dimension) -> CrossTable {
        let services = &vocab::get().service_types;
        CrossTable {
            year,
            by,
            base: by.base(),
            columns: services.codes().map(str::to_owned).collect(),
            rows: by
                .codes()
                .0
                .iter()
                .map(|c| Row {
                    code: c.code.clone(),
                    label: c.label.clone(),
                    cells: vec![0; services.len()],
                    total: 0,
                })
                .collect(),
            column_totals: vec![0; services.len()],
            total: 0,
        }
    }

    /// Adds `n` to one cell, keeping the totals right. Unknown codes are
    /// ignored here: records are validated before they are written.
    pub fn add(&mut self, row_code: &str, service: &str, n: u64) {
        let Some(col) = self.columns.iter().position(|c| c == service) else {
            return;
        };
        let Some(row) = self.rows.iter_mut().find(|r| r.code == row_code) else {
            return;
        };
        row.cells[col] += n;
        row.total += n;
        self.column_totals[col] += n;
        self.total += n;
    }

    /// One cell, by codes.
    pub fn cell(&self, row_code: &str, service: &str) -> Option<u64> {
        let col = self.columns.iter().position(|c| c == service)?;
        self.rows
            .iter()
            .find(|r| r.code == row_code)
            .map(|r| r.cells[col])
    }

    /// CSV: `code,<service type codes>,total`, one row per code in
    /// vocabulary order, and a last row `total`.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["code".to_owned()];
        header.extend(self.columns.iter().cloned());
        header.push("total".to_owned());
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&header);
        for row in &self.rows {
            let mut rec = vec![row.code.clone()];
            rec.extend(row.cells.iter().map(u64::to_string));
            rec.push(row.total.to_string());
            let _ = w.write_record(&rec);
        }
        let mut rec = vec!["total".to_owned()];
        rec.extend(self.column_totals.iter().map(u64::to_string));
        rec.push(self.total.to_string());
        let _ = w.write_record(&rec);
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// A French table for the terminal, with a legend of the service types.
    pub fn to_table(&self) -> String {
        self.to_table_with(|n| n.to_string())
    }

    /// The same table with each count rendered by `show` (e.g. the
    /// small-cell rule of committee views).
    pub fn to_table_with(&self, show: impl Fn(u64) -> String) -> String {
        let services = &vocab::get().service_types;
        let label_width = self
            .rows
            .iter()
            .map(|r| r.label.chars().count())
            .max()
            .unwrap_or(0)
            .max(self.by.caption().chars().count())
            .max(5);
        let widths: Vec<usize> = SHORT_SERVICE_LABELS
            .iter()
            .map(|l| l.chars().count().max(5))
            .collect();
        let mut out = format!(
            "Demandes {} par type de service et {} — base : {}\n\n",
            self.year,
            self.by.caption(),
            self.base
        );
        let pad =
            |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
        let lpad =
            |s: &str, w: usize| format!("{}{s}", " ".repeat(w.saturating_sub(s.chars().count())));
        let mut line = pad(&capitalise(self.by.caption()), label_width);
        for (label, w) in SHORT_SERVICE_LABELS.iter().zip(&widths) {
            line.push_str("  ");
            line.push_str(&lpad(label, *w));
        }
        line.push_str("  Total");
        out.push_str(&line);
        out.push('\n');
        out.push_str(&"-".repeat(line.chars().count()));
        out.push('\n');
        let mut emit = |label: &str, cells: &[u64], total: u64| {
            let mut line = pad(label, label_width);
            for (n, w) in cells.iter().zip(&widths) {
                line.push_str("  ");
                line.push_str(&lpad(&show(*n), *w));
            }
            line.push_str("  ");
            line.push_str(&lpad(&show(total), 5));
            out.push_str(&line);
            out.push('\n');
        };
        for row in &self.rows {
            emit(&row.label, &row.cells, row.total);
        }
        emit("Total", &self.column_totals, self.total);
        out.push_str("\nTypes de service :\n");
        for (short, code) in SHORT_SERVICE_LABELS.iter().zip(services.0.iter()) {
            out.push_str(&format!("  {short} = {}\n", code.label));
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Sector,
        Dimension::Theme,
        Dimension::Profession,
        Dimension::ContactMode,
    ];

    /// The command-line spelling: `sector`, `theme`, `profession`, `contact-mode`.
    pub fn arg(self) -> &'static str {
        match self {
            Dimension::Sector => "sector",
            Dimension::Theme => "theme",
            Dimension::Profession => "profession",
            Dimension::ContactMode => "contact-mode",
        }
    }

    /// The statistics-document table holding this dimension's request counts.
    pub fn table(self) -> &'static str {
        match self {
            Dimension::Sector => "req_sector",
            Dimension::Theme => "req_theme",
            Dimension::Profession => "req_profession",
            Dimension::ContactMode => "req_contact",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("dimension inconnue « {0} » (sector, theme, profession ou contact-mode)")]
pub struct UnknownDimension(pub String);

impl std::str::FromStr for Dimension {
    type Err = UnknownDimension;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.arg() == s)
            .ok_or_else(|| UnknownDimension(s.to_owned()))
    }
}

/// Separator inside a figure cell: codes use single `_` and centre ids `-`,
/// never `--`.
pub const SEP: &str = "--";

/// The cell of a monthly request count: `<mm>--<row code>--<service type>`.
pub fn request_cell(month: u8, row: &str, service: &str) -> String {
    format!("{month:02}{SEP}{row}{SEP}{service}")
}

/// Splits a cell into its parts.
pub fn split_cell(cell: &str) -> Vec<&str> {
    cell.split(SEP).collect()
}

/// A cross table from one centre's published figures for a year (months summed).
pub fn table_from_figures(
    figures: &BTreeMap<FigureKey, u64>,
    year: i32,
    by: Dimension,
) -> CrossTable {
    let mut table = CrossTable::empty(year, by);
    for (key, n) in figures {
        if i32::from(key.year) != year || key.table != by.table() {
            continue;
        }
        if let [_month, row, service] = split_cell(&key.cell)[..] {
            table.add(row, service, *n);
        }
    }
    table
}

/// One centre's statistics document as the hub reads it.
#[derive(Debug, Clone)]
pub struct CentreFigures {
    pub centre: CentreId,
    pub figures: BTreeMap<FigureKey, u64>,
    /// When the centre last published (seconds since the epoch), if known.
    pub as_of: Option<i64>,
}

/// The network's table for a year: per-centre columns and exact totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergedTable {
    pub year: i32,
    pub by: Dimension,
    pub network: CrossTable,
    pub per_centre: BTreeMap<String, CrossTable>,
    /// Centres whose figures for the year are included.
    pub included: Vec<String>,
    /// Centres with no figures for the year.
    pub missing: Vec<String>,
    /// Publication time per included centre.
    pub as_of: BTreeMap<String, Option<i64>>,
}

/// Sums the centres' tables cell by cell. Network totals are exact; the
/// small-cell rule applies to displays, not to this sum.
pub fn merge(centres: &[CentreFigures], year: i32, by: Dimension) -> MergedTable {
    let mut network = CrossTable::empty(year, by);
    let mut per_centre = BTreeMap::new();
    let mut included = Vec::new();
    let mut as_of = BTreeMap::new();
    for c in centres {
        let has_year = c
            .figures
            .keys()
            .any(|k| i32::from(k.year) == year && k.table.starts_with("req_"));
        if !has_year {
            continue;
        }
        let table = table_from_figures(&c.figures, year, by);
        for row in &table.rows {
            for (service, n) in table.columns.iter().zip(&row.cells) {
                network.add(&row.code, service, *n);
            }
        }
        included.push(c.centre.to_string());
        as_of.insert(c.centre.to_string(), c.as_of);
        per_centre.insert(c.centre.to_string(), table);
    }
    let present: BTreeSet<&str> = included.iter().map(String::as_str).collect();
    let missing = CentreId::all_ids()
        .into_iter()
        .map(|c| c.to_string())
        .filter(|c| !present.contains(c.as_str()))
        .collect();
    MergedTable {
        year,
        by,
        network,
        per_centre,
        included,
        missing,
        as_of,
    }
}

/// A count as a committee sees it: below `threshold` (and above zero) it
/// shows as "< threshold" when the small-cell rule is on.
pub fn shown(n: u64, threshold: Option<u64>) -> String {
    match threshold {
        Some(t) if n > 0 && n < t => format!("< {t}"),
        _ => n.to_string(),
    }
}

/// An event as published: co-organised events carry the same key at every
/// organiser, so the network counts them once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkEvent {
    pub key: String,
    pub month: u8,
    pub kind: String,
    pub participants: u64,
    pub organisers: BTreeSet<String>,
}

/// The network's events of a year, each once, with every organiser named.
pub fn merged_events(centres: &[CentreFigures], year: i32) -> Vec<NetworkEvent> {
    let mut events: BTreeMap<String, NetworkEvent> = BTreeMap::new();
    for c in centres {
        for (key, n) in &c.figures {
            if i32::from(key.year) != year {
                continue;
            }
            let parts = split_cell(&key.cell);
            match (key.table.as_str(), &parts[..]) {
                ("events", [month, kind, event]) => {
                    let e = events
                        .entry((*event).to_owned())
                        .or_insert_with(|| NetworkEvent {
                            key: (*event).to_owned(),
                            month: month.parse().unwrap_or(0),
                            kind: (*kind).to_owned(),
                            participants: 0,
                            organisers: BTreeSet::new(),
                        });
                    // An `event_org` cell (whose table name sorts first)
                    // may have created the entry without its kind and month.
                    if e.kind.is_empty() {
                        e.kind = (*kind).to_owned();
                        e.month = month.parse().unwrap_or(0);
                    }
                    // Each organiser reports the same event: take the largest
                    // count rather than adding them up.
                    e.participants = e.participants.max(*n);
                    e.organisers.insert(c.centre.to_string());
                }
                ("event_org", [event, organiser]) => {
                    if let Some(e) = events.get_mut(*event) {
                        e.organisers.insert((*organiser).to_owned());
                    } else {
                        events.insert(
                            (*event).to_owned(),
                            NetworkEvent {
                                key: (*event).to_owned(),
                                month: 0,
                                kind: String::new(),
                                participants: 0,
                                organisers: [(*organiser).to_owned(), c.centre.to_string()]
                                    .into_iter()
                                    .collect(),
                            },
                        );
                    }
                }
                _ => {}
            }
        }
    }
    events
        .into_values()
        .filter(|e| !e.kind.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn csv_has_the_published_layout() {
        let mut t = CrossTable::empty(2021, Dimension::Sector);
        t.add("enseignement", "pret", 3);
        t.add("social", "diffusion", 2);
        let csv = t.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "code,pret,accompagnement_documentaire,diffusion,accompagnement_methodologique,subvention,logistique,reorientation,non_rencontree,total"
        );
        assert_eq!(lines[1], "enseignement,3,0,0,0,0,0,0,0,3");
        assert_eq!(lines.len(), 1 + 20 + 1);
        assert_eq!(*lines.last().unwrap(), "total,3,0,2,0,0,0,0,0,5");
        assert!(t.to_table().contains("Aide à la jeunesse"));
    }

    fn figures(centre: &str, cells: &[(&str, &str, u64)], events: &[(&str, u64)]) -> CentreFigures {
        let mut f = BTreeMap::new();
        for (row, service, n) in cells {
            f.insert(
                FigureKey {
                    year: 2021,
                    table: "req_sector".into(),
                    cell: request_cell(3, row, service),
                },
                *n,
            );
        }
        for (event, n) in events {
            f.insert(
                FigureKey {
                    year: 2021,
                    table: "events".into(),
                    cell: format!("05{SEP}atelier{SEP}{event}"),
                },
                *n,
            );
        }
        CentreFigures {
            centre: CentreId::new(centre).unwrap(),
            figures: f,
            as_of: Some(1),
        }
    }

    #[test]
    fn merge_sums_cells_and_names_missing_centres() {
        let a = figures(
            "namur",
            &[("enseignement", "pret", 3), ("social", "pret", 1)],
            &[("evt-1", 20)],
        );
        let b = figures(
            "liege",
            &[("enseignement", "pret", 4)],
            &[("evt-1", 18), ("evt-2", 7)],
        );
        let m = merge(&[a.clone(), b.clone()], 2021, Dimension::Sector);
        assert_eq!(m.network.cell("enseignement", "pret"), Some(7));
        assert_eq!(m.network.total, 8);
        assert_eq!(m.per_centre["namur"].total, 4);
        assert_eq!(m.included, vec!["namur".to_string(), "liege".to_string()]);
        assert_eq!(m.missing.len(), 8);
        let events = merged_events(&[a, b], 2021);
        assert_eq!(events.len(), 2, "the co-organised event counts once");
        assert_eq!(events[0].organisers.len(), 2);
        assert_eq!(events[0].participants, 20);
        assert_eq!(shown(3, Some(5)), "< 5");
        assert_eq!(shown(0, Some(5)), "0");
        assert_eq!(shown(7, Some(5)), "7");
        assert_eq!(shown(3, None), "3");
    }

    /// `event_org` sorts before `events` in a centre's figures: the event an
    /// organiser cell created first must still get its kind and be counted.
    #[test]
    fn an_event_with_a_co_organiser_is_counted() {
        let mut a = figures("namur", &[], &[("evt-1", 20)]);
        a.figures.insert(
            FigureKey {
                year: 2021,
                table: "event_org".into(),
                cell: format!("evt-1{SEP}liege"),
            },
            1,
        );
        let b = figures("liege", &[], &[("evt-1", 18)]);
        let events = merged_events(&[a, b], 2021);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, "atelier");
        assert_eq!(events[0].month, 5);
        assert_eq!(events[0].participants, 20);
        assert_eq!(events[0].organisers.len(), 2);
    }
}
