//! Merged statistics for the inter-CLPS committees, computed from the
//! centres' statistics documents (`stats/<centre>`) the hub stores.
//!
//! A report names the document heads it was computed from, so it can be
//! reproduced exactly later; each figure says which centres it includes and
//! as of when. The small-cell rule applies to per-centre cells in displays
//! and exports; network totals stay exact.

use std::collections::BTreeMap;

use automerge::AutoCommit;
use clps_model::docs::DocId;
use clps_model::stats::{self, CentreFigures, CrossTable, Dimension, MergedTable};
use serde::Serialize;

use crate::store::{Store, StoreError};

/// Everything a committee view needs for one year and dimension.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub merged: MergedTable,
    /// `doc id -> heads (hex)`: the exact inputs of this report.
    pub computed_from: BTreeMap<String, Vec<String>>,
    /// Network total of the same table the year before, when available.
    pub previous_year_total: Option<u64>,
    pub events: Vec<stats::NetworkEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("document {0} unreadable: {1}")]
    Doc(String, String),
}

/// Loads every centre's statistics document from the hub's store.
pub async fn load_figures(
    store: &Store,
) -> Result<(Vec<CentreFigures>, BTreeMap<String, Vec<String>>), ReportError> {
    let mut out = Vec::new();
    let mut heads = BTreeMap::new();
    for (doc_id, _, _) in store.index().await? {
        let Ok(id) = DocId::parse(&doc_id) else {
            continue;
        };
        let clps_model::docs::DocKind::Stats { centre } = id.kind() else {
            continue;
        };
        let Some(stored) = store.load(&doc_id).await? else {
            continue;
        };
        let mut doc = AutoCommit::load(&stored.snapshot)
            .map_err(|e| ReportError::Doc(doc_id.clone(), e.to_string()))?;
        for chunk in &stored.chunks {
            doc.load_incremental(chunk)
                .map_err(|e| ReportError::Doc(doc_id.clone(), e.to_string()))?;
        }
        let as_of = doc
            .get_changes(&[])
            .iter()
            .map(|c| c.timestamp())
            .max()
            .filter(|t| *t > 0);
        heads.insert(
            doc_id.clone(),
            doc.get_heads().iter().map(|h| h.to_string()).collect(),
        );
        out.push(CentreFigures {
            centre: centre.clone(),
            figures: clps_model::docs::stats::figures(&doc),
            as_of,
        });
    }
    Ok((out, heads))
}

/// The network report for `year` by `by`.
pub async fn report(store: &Store, year: i32, by: Dimension) -> Result<Report, ReportError> {
    let (centres, computed_from) = load_figures(store).await?;
    let merged = stats::merge(&centres, year, by);
    let previous = stats::merge(&centres, year - 1, by);
    Ok(Report {
        merged,
        computed_from,
        previous_year_total: (!previous.included.is_empty()).then_some(previous.network.total),
        events: stats::merged_events(&centres, year),
    })
}

/// CSV of a report: the node's shape for the network (or one centre), or
/// with `per_centre` one column group per centre (`<centre>:<service>`).
pub fn to_csv(
    report: &Report,
    centre: Option<&str>,
    per_centre: bool,
    small_cells: Option<u64>,
) -> String {
    let m = &report.merged;
    if !per_centre {
        let table = match centre {
            Some(c) => m
                .per_centre
                .get(c)
                .cloned()
                .unwrap_or_else(|| CrossTable::empty(m.year, m.by)),
            None => m.network.clone(),
        };
        // The network table is exact; a single centre's cells follow the rule.
        return if centre.is_some() {
            masked_csv(&table, small_cells)
        } else {
            table.to_csv()
        };
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["code".to_owned()];
    for c in &m.included {
        for s in &m.network.columns {
            header.push(format!("{c}:{s}"));
        }
        header.push(format!("{c}:total"));
    }
    header.push("total".to_owned());
    let _ = w.write_record(&header);
    for (i, row) in m.network.rows.iter().enumerate() {
        let mut rec = vec![row.code.clone()];
        for c in &m.included {
            if let Some(t) = m.per_centre.get(c) {
                rec.extend(
                    t.rows[i]
                        .cells
                        .iter()
                        .map(|n| stats::shown(*n, small_cells)),
                );
                rec.push(stats::shown(t.rows[i].total, small_cells));
            }
        }
        rec.push(row.total.to_string());
        let _ = w.write_record(&rec);
    }
    let mut rec = vec!["total".to_owned()];
    for c in &m.included {
        if let Some(t) = m.per_centre.get(c) {
            rec.extend(
                t.column_totals
                    .iter()
                    .map(|n| stats::shown(*n, small_cells)),
            );
            rec.push(stats::shown(t.total, small_cells));
        }
    }
    rec.push(m.network.total.to_string());
    let _ = w.write_record(&rec);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn masked_csv(table: &CrossTable, small_cells: Option<u64>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["code".to_owned()];
    header.extend(table.columns.iter().cloned());
    header.push("total".to_owned());
    let _ = w.write_record(&header);
    for row in &table.rows {
        let mut rec = vec![row.code.clone()];
        rec.extend(row.cells.iter().map(|n| stats::shown(*n, small_cells)));
        rec.push(stats::shown(row.total, small_cells));
        let _ = w.write_record(&rec);
    }
    let mut rec = vec!["total".to_owned()];
    rec.extend(
        table
            .column_totals
            .iter()
            .map(|n| stats::shown(*n, small_cells)),
    );
    rec.push(stats::shown(table.total, small_cells));
    let _ = w.write_record(&rec);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The French table a committee reads in a terminal.
pub fn to_table(report: &Report, centre: Option<&str>, small_cells: Option<u64>) -> String {
    let m = &report.merged;
    let mut out = String::new();
    let scope = match centre {
        Some(c) => format!("centre {c}"),
        None => "réseau des CLPS".to_owned(),
    };
    out.push_str(&format!("Statistiques fusionnées — {scope}\n"));
    match centre {
        Some(c) => {
            let t = m
                .per_centre
                .get(c)
                .cloned()
                .unwrap_or_else(|| CrossTable::empty(m.year, m.by));
            out.push_str(&t.to_table_with(|n| stats::shown(n, small_cells)));
        }
        None => out.push_str(&m.network.to_table()),
    }
    out.push_str(&format!(
        "\nCentres inclus ({}/10) : {}\n",
        m.included.len(),
        m.included.join(", ")
    ));
    if !m.missing.is_empty() {
        out.push_str(&format!(
            "Centres sans données pour {} : {}\n",
            m.year,
            m.missing.join(", ")
        ));
    }
    if let Some(prev) = report.previous_year_total {
        let change = if prev > 0 {
            format!(
                " ({:+.1} %)",
                (m.network.total as f64 - prev as f64) * 100.0 / prev as f64
            )
        } else {
            String::new()
        };
        out.push_str(&format!("Année précédente : {prev}{change}\n"));
    }
    if small_cells.is_some() && centre.is_some() {
        out.push_str("Les cellules de moins de 5 sont masquées (« < 5 ») ; les totaux du réseau sont exacts.\n");
    }
    out.push_str(&format!(
        "Calculé à partir de {} document(s) de statistiques (têtes dans l'export JSON).\n",
        report.computed_from.len()
    ));
    out
}
