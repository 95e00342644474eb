//! The centre's activity report for a year, and what its next publication
//! sends to the network. Every figure is counted from the node's records by
//! the same functions as `clps-node stats` and `publish`, so the page, the
//! CLI and the network agree by construction.

use std::collections::BTreeMap;

use clps_model::docs::stats::FigureKey;
use clps_model::seed_data;
use clps_model::stats::{CrossTable, Dimension};
use rusqlite::{Connection, params};

use super::Node;
use super::local::{LocalError, label, scheme_label};
use crate::records::List;
use crate::store::StoreError;

/// A one-dimension table: labelled rows and their counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Stable name, for file names and anchors.
    pub key: &'static str,
    pub title: &'static str,
    /// What the row header names (« Type de document »).
    pub row_header: &'static str,
    /// What one counted unit is.
    pub unit: &'static str,
    pub rows: Vec<(String, u64)>,
    pub total: u64,
}

/// A printed cell of the published report that differs from the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub by: Dimension,
    pub row: String,
    pub service: String,
    pub printed: u64,
    pub computed: u64,
}

/// The report compared with the centre's published tables (Charleroi-Thuin
/// 2021, transcribed cell by cell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calibration {
    pub cells: usize,
    pub equal: usize,
    pub gaps: Vec<Gap>,
    pub printed_total: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub year: i32,
    /// Years that have any record, oldest first.
    pub years: Vec<i32>,
    /// Service type × sector, theme, profession, contact mode.
    pub tables: Vec<CrossTable>,
    /// Demandes per month, January first.
    pub months: [u64; 12],
    /// Demandes per service type, the year before and this year; `None`
    /// when the year before has no demande.
    pub year_on_year: Option<Vec<(String, u64, u64)>>,
    pub tallies: Vec<Tally>,
    pub calibration: Option<Calibration>,
}

impl Report {
    /// A table of the report by its key (`secteur`, `theme`... or a tally's).
    pub fn table(&self, key: &str) -> Option<&CrossTable> {
        self.tables.iter().find(|t| table_key(t.by) == key)
    }

    pub fn tally(&self, key: &str) -> Option<&Tally> {
        self.tallies.iter().find(|t| t.key == key)
    }

    pub fn requests(&self) -> u64 {
        self.months.iter().sum()
    }
}

/// The key of a cross table, for file names.
pub fn table_key(by: Dimension) -> &'static str {
    match by {
        Dimension::Sector => "secteur",
        Dimension::Theme => "thematique",
        Dimension::Profession => "profession",
        Dimension::ContactMode => "mode-de-contact",
    }
}

fn tally(
    conn: &Connection,
    sql: &str,
    year: i32,
    labels: impl Fn(&str) -> String,
) -> Result<(Vec<(String, u64)>, u64), StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows: Vec<(String, i64)> = stmt
        .query_map(
            params![format!("{year:04}-"), format!("{:04}-", year + 1)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let total = rows.iter().map(|(_, n)| *n as u64).sum();
    Ok((
        rows.into_iter()
            .map(|(code, n)| (labels(&code), n as u64))
            .collect(),
        total,
    ))
}

fn years(conn: &Connection) -> Result<Vec<i32>, StoreError> {
    crate::publish::years(conn)
}

fn by_service(table: &CrossTable) -> Vec<(String, u64)> {
    table
        .columns
        .iter()
        .cloned()
        .zip(table.column_totals.iter().copied())
        .collect()
}

fn compute(conn: &Connection, centre: &str, year: i32) -> Result<Report, StoreError> {
    let mut tables = Vec::new();
    for by in Dimension::ALL {
        tables.push(crate::stats::cross_table(conn, year, by)?);
    }
    let mut months = [0u64; 12];
    let mut stmt = conn.prepare_cached(
        "SELECT CAST(substr(date, 6, 2) AS INTEGER), count(*) FROM requests
         WHERE date >= ?1 AND date < ?2 GROUP BY 1",
    )?;
    for row in stmt.query_map(
        params![format!("{year:04}-"), format!("{:04}-", year + 1)],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )? {
        let (m, n) = row?;
        if let Some(slot) = usize::try_from(m - 1).ok().and_then(|i| months.get_mut(i)) {
            *slot = n as u64;
        }
    }
    let previous = crate::stats::cross_table(conn, year - 1, Dimension::Sector)?;
    let year_on_year = (previous.total > 0).then(|| {
        let now = tables
            .iter()
            .find(|t| t.by == Dimension::Sector)
            .map(by_service)
            .unwrap_or_default();
        by_service(&previous)
            .into_iter()
            .zip(now)
            .map(|((code, before), (_, after))| (code, before, after))
            .collect()
    });
    let mut tallies = Vec::new();
    let mut add = |key, title, row_header, unit, sql: &str, labels: &dyn Fn(&str) -> String| {
        let (rows, total) = tally(conn, sql, year, labels)?;
        tallies.push(Tally {
            key,
            title,
            row_header,
            unit,
            rows,
            total,
        });
        Ok::<(), StoreError>(())
    };
    add(
        "prets-type",
        "Prêts par type de document",
        "Type de document",
        "prêts",
        "SELECT document_type, count(*) FROM loans WHERE out_date >= ?1 AND out_date < ?2
         GROUP BY 1 ORDER BY 2 DESC, 1",
        &|c| label(List::DocumentType, c),
    )?;
    add(
        "prets-thematique",
        "Prêts par thématique",
        "Thématique",
        "prêts",
        "SELECT coalesce(theme, ''), count(*) FROM loans WHERE out_date >= ?1 AND out_date < ?2
         GROUP BY 1 ORDER BY 2 DESC, 1",
        &|c| {
            if c.is_empty() {
                "Sans thématique".to_owned()
            } else {
                label(List::Theme, c)
            }
        },
    )?;
    add(
        "accompagnements-dispositif",
        "Accompagnements par dispositif",
        "Dispositif",
        "accompagnements",
        "SELECT scheme, count(*) FROM accompaniments WHERE start_date >= ?1 AND start_date < ?2
         GROUP BY 1 ORDER BY 2 DESC, 1",
        &|c| scheme_label(c).to_owned(),
    )?;
    add(
        "accompagnements-axe",
        "Accompagnements par axe",
        "Axe",
        "mentions d'axes (un accompagnement peut en avoir plusieurs)",
        "SELECT x.axis, count(*) FROM accompaniments a JOIN accompaniment_axes x ON x.accompaniment_id = a.id
         WHERE a.start_date >= ?1 AND a.start_date < ?2 GROUP BY 1 ORDER BY 2 DESC, 1",
        &|c| label(List::Axis, c),
    )?;
    add(
        "accompagnements-thematique",
        "Accompagnements par thématique",
        "Thématique",
        "mentions de thématiques",
        "SELECT t.theme, count(*) FROM accompaniments a JOIN accompaniment_themes t ON t.accompaniment_id = a.id
         WHERE a.start_date >= ?1 AND a.start_date < ?2 GROUP BY 1 ORDER BY 2 DESC, 1",
        &|c| label(List::Theme, c),
    )?;
    add(
        "evenements",
        "Formations, ateliers et concertations",
        "Type",
        "événements",
        "SELECT kind, count(*) FROM events WHERE start_date >= ?1 AND start_date < ?2
         GROUP BY 1 ORDER BY 2 DESC, 1",
        &|c| event_kind_label(c).to_owned(),
    )?;
    add(
        "participants",
        "Participants aux événements par profession",
        "Profession",
        "participants",
        "SELECT p.profession, sum(p.n) FROM events e JOIN event_participants p ON p.event_id = e.id
         WHERE e.start_date >= ?1 AND e.start_date < ?2 GROUP BY 1 ORDER BY 2 DESC, 1",
        &|c| label(List::Profession, c),
    )?;
    let cal = seed_data::calibration();
    let calibration = (cal.centre == centre && cal.year == year).then(|| calibrate(&tables));
    Ok(Report {
        year,
        years: years(conn)?,
        tables,
        months,
        year_on_year,
        tallies,
        calibration,
    })
}

/// Compares every printed cell with the records' figure.
fn calibrate(tables: &[CrossTable]) -> Calibration {
    let cal = seed_data::calibration();
    let published = [
        (Dimension::Sector, &cal.requests.by_sector),
        (Dimension::Theme, &cal.requests.by_theme),
        (Dimension::Profession, &cal.requests.by_profession),
        (Dimension::ContactMode, &cal.requests.by_contact_mode),
    ];
    let mut out = Calibration {
        cells: 0,
        equal: 0,
        gaps: Vec::new(),
        printed_total: cal.requests.total_requests,
    };
    for (by, table) in published {
        let Some(ours) = tables.iter().find(|t| t.by == by) else {
            continue;
        };
        for (row, cells) in &table.cells {
            for (service, printed) in cells {
                out.cells += 1;
                let computed = ours.cell(row, service).unwrap_or(0);
                if computed == *printed {
                    out.equal += 1;
                } else {
                    out.gaps.push(Gap {
                        by,
                        row: row.clone(),
                        service: service.clone(),
                        printed: *printed,
                        computed,
                    });
                }
            }
        }
    }
    out
}

pub fn event_kind_label(kind: &str) -> &str {
    match kind {
        "formation" => "Formations",
        "atelier" => "Ateliers d'échange",
        "concertation" => "Concertations",
        _ => kind,
    }
}

/// One figure of the statistics document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub key: FigureKey,
    /// What the next publication sends.
    pub value: u64,
    /// What the network holds now (`None`: never published).
    pub published: Option<u64>,
}

impl Figure {
    pub fn changes(&self) -> bool {
        self.published != Some(self.value)
    }
}

/// What leaves the centre: every figure of its statistics document.
#[derive(Debug, Clone)]
pub struct Publication {
    /// When the figures last changed in the document (seconds).
    pub last: Option<i64>,
    pub figures: Vec<Figure>,
}

fn publication(conn: &Connection) -> Result<Publication, StoreError> {
    let held = crate::publish::years(conn)?;
    let mut current: BTreeMap<FigureKey, u64> = BTreeMap::new();
    for year in &held {
        current.extend(crate::publish::aggregates(conn, *year)?);
    }
    let published = crate::publish::published(conn)?;
    let mut figures: Vec<Figure> = current
        .iter()
        .map(|(k, v)| Figure {
            key: k.clone(),
            value: *v,
            published: published.get(k).copied(),
        })
        .collect();
    for (k, v) in &published {
        if *v != 0 && !current.contains_key(k) && held.contains(&i32::from(k.year)) {
            figures.push(Figure {
                key: k.clone(),
                value: 0,
                published: Some(*v),
            });
        }
    }
    figures.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Publication {
        last: crate::publish::last_published(conn)?,
        figures,
    })
}

impl Node {
    /// The activity report of `year`.
    pub async fn report(&self, year: i32) -> Result<Report, LocalError> {
        let centre = self.centre().as_str().to_owned();
        Ok(self
            .store()
            .call(move |c| compute(c, &centre, year))
            .await?)
    }

    /// The figures the next publication sends, next to what the network has.
    pub async fn publication(&self) -> Result<Publication, LocalError> {
        Ok(self.store().call(|c| publication(c)).await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::app::local::RequestForm;
    use clps_model::CentreId;

    #[tokio::test]
    async fn report_counts_what_was_recorded_and_publication_shows_it() {
        let node = Node::in_memory(&CentreId::new("namur").unwrap(), 1_700_000_000, 3)
            .await
            .unwrap();
        for (date, service, themes) in [
            ("2021-01-10", "pret", vec!["evras"]),
            ("2021-01-20", "pret", vec!["evras", "tic"]),
            ("2021-03-02", "diffusion", vec!["tic"]),
            ("2020-05-05", "pret", vec!["tic"]),
        ] {
            let form = RequestForm {
                date: date.into(),
                service_type: service.into(),
                sector: "enseignement".into(),
                profession: "enseignant_directeur".into(),
                contact_mode: "mail".into(),
                themes: themes.into_iter().map(str::to_owned).collect(),
                ..RequestForm::default()
            };
            node.save_request(None, &form, None).await.unwrap();
        }
        let r = node.report(2021).await.unwrap();
        assert_eq!(r.requests(), 3);
        assert_eq!(r.months[0], 2);
        assert_eq!(r.months[2], 1);
        let sector = r.table("secteur").unwrap();
        assert_eq!(sector.cell("enseignement", "pret"), Some(2));
        let theme = r.table("thematique").unwrap();
        assert_eq!(theme.total, 4, "theme mentions");
        let yoy = r.year_on_year.as_ref().unwrap();
        assert!(yoy.contains(&("pret".to_owned(), 1, 2)));
        assert_eq!(r.years, vec![2020, 2021]);
        assert!(r.calibration.is_none());

        let p = node.publication().await.unwrap();
        assert_eq!(p.last, None);
        assert!(p.figures.iter().all(|f| f.published.is_none()));
        let sent: u64 = p
            .figures
            .iter()
            .filter(|f| f.key.year == 2021 && f.key.table == "req_sector")
            .map(|f| f.value)
            .sum();
        assert_eq!(sent, 3);
        node.store().call(crate::publish::publish).await.unwrap();
        let p = node.publication().await.unwrap();
        assert!(p.last.is_some());
        assert!(p.figures.iter().all(|f| !f.changes()));
    }
}
