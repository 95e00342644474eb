//! Cross tables of requests: service type (columns) × one dimension (rows), in
//! the layout of the centres' published activity reports.
//!
//! Figures come from records, so they are consistent by construction: a
//! table's total is the sum of its cells. `by theme` counts theme mentions (a
//! request may name several themes); the other dimensions count requests.

use clps_model::vocab::{self, CodeList};
use rusqlite::{Connection, params};
use serde::Serialize;

/// The row dimension of a cross table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
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

    fn sql(self) -> &'static str {
        match self {
            Dimension::Sector => {
                "SELECT sector, service_type, count(*) FROM requests
                 WHERE date >= ?1 AND date < ?2 GROUP BY 1, 2"
            }
            Dimension::Profession => {
                "SELECT profession, service_type, count(*) FROM requests
                 WHERE date >= ?1 AND date < ?2 GROUP BY 1, 2"
            }
            Dimension::ContactMode => {
                "SELECT contact_mode, service_type, count(*) FROM requests
                 WHERE date >= ?1 AND date < ?2 GROUP BY 1, 2"
            }
            Dimension::Theme => {
                "SELECT t.theme, r.service_type, count(*) FROM requests r
                 JOIN request_themes t ON t.request_id = r.id
                 WHERE r.date >= ?1 AND r.date < ?2 GROUP BY 1, 2"
            }
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
                line.push_str(&lpad(&n.to_string(), *w));
            }
            line.push_str("  ");
            line.push_str(&lpad(&total.to_string(), 5));
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

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// Computes the cross table of `year` from the request records.
pub fn cross_table(conn: &Connection, year: i32, by: Dimension) -> rusqlite::Result<CrossTable> {
    let mut table = CrossTable::empty(year, by);
    let mut stmt = conn.prepare_cached(by.sql())?;
    let rows = stmt.query_map(
        params![format!("{year:04}-"), format!("{:04}-", year + 1)],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )?;
    for row in rows {
        let (code, service, n) = row?;
        table.add(&code, &service, u64::try_from(n).unwrap_or(0));
    }
    Ok(table)
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
}
