//! The activity report of a year (tables, server-side SVG charts, CSV and
//! XLSX downloads, a printable page) and the publication preview: exactly
//! the counts the centre's next `publish` sends, and nothing else.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clps_model::CentreId;
use clps_model::stats::{CrossTable, Dimension, split_cell};
use maud::{Markup, html};

use super::pages::{Nav, layout};
use super::{Signed, Web, error_page, fr, page, status_of};
use crate::app::local::{label, scheme_label};
use crate::app::report::{Figure, Report, Tally, event_kind_label, table_key};
use crate::records::List;

/// A table as every format renders it: labelled rows of numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    pub key: String,
    pub title: String,
    pub unit: String,
    pub row_header: String,
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<u64>)>,
    pub totals: Vec<u64>,
}

impl Grid {
    fn of_table(t: &CrossTable) -> Grid {
        let mut columns: Vec<String> = t
            .columns
            .iter()
            .map(|c| label(List::ServiceType, c))
            .collect();
        columns.push("Total".into());
        let caption = t.by.caption();
        let mut row_header = caption.to_owned();
        if let Some(first) = row_header.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        Grid {
            key: table_key(t.by).to_owned(),
            title: format!("Demandes par {caption} et type de service"),
            unit: t.base.to_owned(),
            row_header,
            columns,
            rows: t
                .rows
                .iter()
                .map(|r| {
                    let mut cells = r.cells.clone();
                    cells.push(r.total);
                    (r.label.clone(), cells)
                })
                .collect(),
            totals: t.column_totals.iter().copied().chain([t.total]).collect(),
        }
    }

    fn of_tally(t: &Tally) -> Grid {
        Grid {
            key: t.key.to_owned(),
            title: t.title.to_owned(),
            unit: t.unit.to_owned(),
            row_header: t.row_header.to_owned(),
            columns: vec!["Nombre".into()],
            rows: t.rows.iter().map(|(l, n)| (l.clone(), vec![*n])).collect(),
            totals: vec![t.total],
        }
    }

    fn months(r: &Report) -> Grid {
        Grid {
            key: "mois".into(),
            title: format!("Demandes par mois en {}", r.year),
            unit: "demandes".into(),
            row_header: "Mois".into(),
            columns: vec!["Demandes".into()],
            rows: fr::MONTHS
                .iter()
                .zip(r.months)
                .map(|(m, n)| ((*m).to_owned(), vec![n]))
                .collect(),
            totals: vec![r.requests()],
        }
    }

    fn year_on_year(r: &Report) -> Option<Grid> {
        let rows = r.year_on_year.as_ref()?;
        let before: u64 = rows.iter().map(|(_, b, _)| b).sum();
        let after: u64 = rows.iter().map(|(_, _, a)| a).sum();
        Some(Grid {
            key: "evolution".into(),
            title: format!(
                "Évolution des demandes par type de service, {} et {}",
                r.year - 1,
                r.year
            ),
            unit: "demandes".into(),
            row_header: "Type de service".into(),
            columns: vec![(r.year - 1).to_string(), r.year.to_string()],
            rows: rows
                .iter()
                .map(|(code, b, a)| (label(List::ServiceType, code), vec![*b, *a]))
                .collect(),
            totals: vec![before, after],
        })
    }

    /// The last column of each row: what a bar chart shows.
    fn bars(&self) -> Vec<(&str, u64)> {
        self.rows
            .iter()
            .map(|(l, cells)| (l.as_str(), cells.last().copied().unwrap_or(0)))
            .collect()
    }
}

/// Every grid of the report, in page order.
fn grids(r: &Report) -> Vec<Grid> {
    let mut out: Vec<Grid> = r.tables.iter().map(Grid::of_table).collect();
    out.push(Grid::months(r));
    out.extend(Grid::year_on_year(r));
    out.extend(r.tallies.iter().map(Grid::of_tally));
    out
}

/// CSV for a French-locale spreadsheet: UTF-8 with BOM, `;`, labels.
pub fn to_csv(g: &Grid) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    let mut header = vec![g.row_header.clone()];
    header.extend(g.columns.iter().cloned());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(&header);
    for (label, cells) in &g.rows {
        let mut rec = vec![label.clone()];
        rec.extend(cells.iter().map(u64::to_string));
        let _ = w.write_record(&rec);
    }
    let mut rec = vec!["Total".to_owned()];
    rec.extend(g.totals.iter().map(u64::to_string));
    let _ = w.write_record(&rec);
    let body = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
    format!("\u{feff}{body}")
}

/// The same table as an Excel workbook of one sheet, numbers as numbers.
pub fn to_xlsx(g: &Grid, centre: &str, year: i32) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet();
    let name: String = g
        .key
        .chars()
        .filter(|c| !"[]:*?/\\".contains(*c))
        .take(31)
        .collect();
    sheet.set_name(name)?;
    sheet.write_string_with_format(0, 0, format!("{} — {centre}, {year}", g.title), &bold)?;
    sheet.write_string(1, 0, format!("Unité : {}", g.unit))?;
    sheet.write_string_with_format(3, 0, &g.row_header, &bold)?;
    for (i, c) in g.columns.iter().enumerate() {
        sheet.write_string_with_format(3, (i + 1) as u16, c, &bold)?;
    }
    let mut row = 4u32;
    for (label, cells) in &g.rows {
        sheet.write_string(row, 0, label)?;
        for (i, n) in cells.iter().enumerate() {
            sheet.write_number(row, (i + 1) as u16, *n as f64)?;
        }
        row += 1;
    }
    sheet.write_string_with_format(row, 0, "Total", &bold)?;
    for (i, n) in g.totals.iter().enumerate() {
        sheet.write_number_with_format(row, (i + 1) as u16, *n as f64, &bold)?;
    }
    sheet.set_column_width(0, 48)?;
    for i in 0..g.columns.len() {
        sheet.set_column_width((i + 1) as u16, 14)?;
    }
    book.save_to_buffer()
}

fn short(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(max - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

/// A horizontal bar chart of each row's last column, as inline SVG.
fn bar_chart(g: &Grid) -> Markup {
    let bars: Vec<(&str, u64)> = g.bars().into_iter().filter(|(_, n)| *n > 0).collect();
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if max == 0 {
        return html! { p class="hint" { "Aucune donnée pour cette année." } };
    }
    let (label_w, bar_w, row_h) = (300u64, 360u64, 22u64);
    let height = row_h * bars.len() as u64 + 8;
    let title_id = format!("graphique-{}", g.key);
    html! {
        svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby=(title_id)
            viewBox={ "0 0 " (label_w + bar_w + 60) " " (height) } width="100%" {
            title id=(title_id) { (g.title) " (graphique)" }
            @for (i, (label, n)) in bars.iter().enumerate() {
                @let y = i as u64 * row_h + 4;
                @let w = (n * bar_w).div_ceil(max).max(1);
                text x=(label_w - 8) y=(y + 15) text-anchor="end" font-size="12" { (short(label, 44)) }
                rect class="bar" x=(label_w) y=(y + 2) width=(w) height=(row_h - 6) fill="#2f6f9f" {}
                text x=(label_w + w + 6) y=(y + 15) font-size="12" { (n) }
            }
        }
    }
}

/// Two bars per row (the year before, lighter, then this year), for the
/// year-on-year table.
fn pair_chart(g: &Grid) -> Markup {
    let rows: Vec<(&str, u64, u64)> = g
        .rows
        .iter()
        .filter_map(|(l, c)| match c.as_slice() {
            [before, after] if before + after > 0 => Some((l.as_str(), *before, *after)),
            _ => None,
        })
        .collect();
    let max = rows.iter().map(|(_, b, a)| *b.max(a)).max().unwrap_or(0);
    if max == 0 {
        return html! { p class="hint" { "Aucune donnée pour ces deux années." } };
    }
    let (label_w, bar_w, row_h) = (300u64, 360u64, 34u64);
    let height = row_h * rows.len() as u64 + 30;
    let title_id = format!("graphique-{}", g.key);
    let (first, second) = (
        g.columns.first().cloned().unwrap_or_default(),
        g.columns.get(1).cloned().unwrap_or_default(),
    );
    html! {
        svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby=(title_id)
            viewBox={ "0 0 " (label_w + bar_w + 60) " " (height) } width="100%" {
            title id=(title_id) { (g.title) " (graphique : " (first) " en clair, " (second) " en foncé)" }
            rect x=(label_w) y="6" width="12" height="10" fill="#9cc3e0" {}
            text x=(label_w + 16) y="15" font-size="12" { (first) }
            rect x=(label_w + 70) y="6" width="12" height="10" fill="#2f6f9f" {}
            text x=(label_w + 86) y="15" font-size="12" { (second) }
            @for (i, (label, before, after)) in rows.iter().enumerate() {
                @let y = i as u64 * row_h + 26;
                @let wb = (before * bar_w).div_ceil(max);
                @let wa = (after * bar_w).div_ceil(max);
                text x=(label_w - 8) y=(y + 18) text-anchor="end" font-size="12" { (short(label, 44)) }
                rect x=(label_w) y=(y + 2) width=(wb) height="12" fill="#9cc3e0" {}
                text x=(label_w + wb + 6) y=(y + 12) font-size="11" { (before) }
                rect class="bar" x=(label_w) y=(y + 16) width=(wa) height="12" fill="#2f6f9f" {}
                text x=(label_w + wa + 6) y=(y + 26) font-size="11" { (after) }
            }
        }
    }
}

/// Demandes per month as vertical bars.
fn month_chart(r: &Report) -> Markup {
    let max = r.months.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return html! { p class="hint" { "Aucune demande cette année." } };
    }
    let (w, h, top, bottom) = (720u64, 220u64, 20u64, 30u64);
    let slot = w / 12;
    let plot = h - top - bottom;
    html! {
        svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="graphique-mois"
            viewBox={ "0 0 " (w) " " (h) } width="100%" {
            title id="graphique-mois" { "Demandes par mois en " (r.year) " (graphique)" }
            @for (i, n) in r.months.iter().enumerate() {
                @let bar_h = (n * plot).div_ceil(max);
                @let x = i as u64 * slot + 8;
                rect class="bar" x=(x) y=(top + plot - bar_h) width=(slot - 16) height=(bar_h) fill="#2f6f9f" {}
                text x=(x + (slot - 16) / 2) y=(top + plot - bar_h - 4) text-anchor="middle" font-size="12" { (n) }
                text x=(x + (slot - 16) / 2) y=(h - 10) text-anchor="middle" font-size="12" { (fr::MONTHS_SHORT[i]) }
            }
        }
    }
}

fn grid_table(g: &Grid, year: i32) -> Markup {
    html! {
        div class="table-scroll" tabindex="0" role="region" aria-label=(g.title) {
        table class="report" {
            caption { (g.title) " — " span class="hint" { (g.unit) } }
            thead {
                tr {
                    th scope="col" { (g.row_header) }
                    @for c in &g.columns { th scope="col" class="num" { (c) } }
                }
            }
            tbody {
                @for (label, cells) in &g.rows {
                    tr {
                        th scope="row" { (label) }
                        @for n in cells { td class="num" { (n) } }
                    }
                }
            }
            tfoot {
                tr {
                    th scope="row" { "Total" }
                    @for n in &g.totals { td class="num" { (n) } }
                }
            }
        }
        }
        p class="downloads noprint" {
            "Télécharger : "
            a href={ "/rapport/" (year) "/" (g.key) ".csv" } download { "CSV (tableur)" }
            " · "
            a href={ "/rapport/" (year) "/" (g.key) ".xlsx" } download { "Excel (XLSX)" }
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub(super) struct YearQuery {
    #[serde(default)]
    annee: String,
}

pub(super) async fn report(
    State(web): State<Web>,
    signed: Signed,
    Query(q): Query<YearQuery>,
) -> Response {
    let this_year = fr::this_year(web.node.now());
    let asked = q.annee.trim();
    let mut wrong = None;
    let year = if asked.is_empty() {
        None
    } else {
        match asked.parse::<i32>() {
            Ok(y) if (1990..=this_year + 1).contains(&y) => Some(y),
            _ => {
                wrong = Some(asked.to_owned());
                None
            }
        }
    };
    let year = match year {
        Some(y) => y,
        None => match web.node.report(this_year).await {
            // The latest year that has records, or this year.
            Ok(r) => r.years.last().copied().unwrap_or(this_year),
            Err(e) => {
                return error_page(
                    status_of(e.kind()),
                    Some(&signed.session),
                    "Rapport d'activité",
                    &fr::local_error(&e),
                );
            }
        },
    };
    match web.node.report(year).await {
        Ok(r) => page(
            if wrong.is_some() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            },
            report_page(&web, &signed, &r, this_year, wrong.as_deref()),
        ),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Rapport d'activité",
            &fr::local_error(&e),
        ),
    }
}

fn report_page(
    web: &Web,
    signed: &Signed,
    r: &Report,
    this_year: i32,
    wrong: Option<&str>,
) -> Markup {
    let mut years = r.years.clone();
    for y in [this_year, r.year] {
        if !years.contains(&y) {
            years.push(y);
        }
    }
    years.sort_unstable();
    years.reverse();
    let centre = fr::centre_name(web.node.centre());
    let all = grids(r);
    let tables: Vec<&Grid> = all.iter().take(4).collect();
    let rest: Vec<&Grid> = all.iter().skip(4).collect();
    let events = r.tally("evenements").map_or(0, |t| t.total);
    let loans = r.tally("prets-type").map_or(0, |t| t.total);
    let accompaniments = r.tally("accompagnements-dispositif").map_or(0, |t| t.total);
    layout(
        &web.node,
        Some(&signed.session),
        &format!("Rapport d'activité {}", r.year),
        Nav::Report,
        html! {
            h1 { "Rapport d'activité " (r.year) }
            p class="subtitle" { (centre) }
            form class="filters noprint" method="get" action="/rapport" {
                p class={ "field" @if wrong.is_some() { " invalid" } } {
                    label for="annee" { "Année" }
                    select id="annee" name="annee" aria-invalid=[wrong.map(|_| "true")] aria-describedby=[wrong.map(|_| "annee-erreur")] {
                        @for y in &years { option value=(y) selected[*y == r.year] { (y) } }
                    }
                    @if let Some(w) = wrong {
                        span class="field-error" id="annee-erreur" { "« " (w) " » n'est pas une année du rapport : voici " (r.year) "." }
                    }
                }
                p { button type="submit" { "Afficher" } }
            }
            p class="noprint" {
                a href="/publication" { "Ce que le centre publie pour le réseau" }
                " · Pour un PDF, imprimez cette page depuis le navigateur (Ctrl+P) : menus et boutons disparaissent à l'impression."
            }
            section aria-labelledby="en-bref" {
                h2 id="en-bref" { "En bref" }
                ul class="facts" {
                    li { (fr::count(r.requests() as i64, "demande", "demandes")) }
                    li { (fr::count(loans as i64, "prêt", "prêts")) }
                    li { (fr::count(accompaniments as i64, "accompagnement", "accompagnements")) }
                    li { (fr::count(events as i64, "formation, atelier ou concertation", "formations, ateliers et concertations")) }
                }
            }
            @if let Some(c) = &r.calibration {
                section aria-labelledby="calibration" {
                    h2 id="calibration" { "Comparaison avec le rapport d'activité imprimé" }
                    p { (c.equal) " cellules sur " (c.cells) " des tableaux imprimés sont égales à celles que le nœud compte ; le rapport imprimé annonce " (c.printed_total) " demandes, le nœud en compte " (r.requests()) "." }
                    @if !c.gaps.is_empty() {
                        p { "Les tableaux imprimés ont été comptés à la main et ne s'accordent pas entre eux : le tableau par secteur compte " (c.printed_total) " demandes, ceux par profession et par mode de contact une de plus. Les chiffres du nœud viennent des fiches de demande elles-mêmes, une par demande : ils sont cohérents d'un tableau à l'autre et ne diffèrent de l'imprimé qu'ici :" }
                        table class="report" {
                            caption { "Cellules où l'imprimé et les fiches diffèrent" }
                            thead { tr { th scope="col" { "Tableau" } th scope="col" { "Ligne" } th scope="col" { "Type de service" } th scope="col" class="num" { "Imprimé" } th scope="col" class="num" { "Compté" } } }
                            tbody {
                                @for g in &c.gaps {
                                    tr {
                                        td { "par " (g.by.caption()) }
                                        td { (g.by.codes().label(&g.row).unwrap_or(&g.row)) }
                                        td { (label(List::ServiceType, &g.service)) }
                                        td class="num" { (g.printed) }
                                        td class="num" { (g.computed) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="demandes" {
                h2 id="demandes" { "Demandes" }
                h3 { "Par mois" }
                (month_chart(r))
                @for g in &tables {
                    h3 { (g.title) }
                    (bar_chart(g))
                    (grid_table(g, r.year))
                }
            }
            @for g in &rest {
                section aria-labelledby={ "t-" (g.key) } {
                    h2 id={ "t-" (g.key) } { (g.title) }
                    @if g.key == "evolution" { (pair_chart(g)) } @else if g.key != "mois" { (bar_chart(g)) }
                    (grid_table(g, r.year))
                    @if g.key == "evolution" {
                        p class="hint" { "Même centre, mêmes fiches : les deux années sont comptées de la même façon." }
                    }
                }
            }
            @if r.year_on_year.is_none() {
                p class="hint" { "Pas de demande en " (r.year - 1) " : pas d'évolution à montrer." }
            }
        },
    )
}

pub(super) async fn download(
    State(web): State<Web>,
    signed: Signed,
    Path((year, file)): Path<(String, String)>,
) -> Response {
    let not_found = || {
        error_page(
            StatusCode::NOT_FOUND,
            Some(&signed.session),
            "Tableau introuvable",
            "Ce tableau n'existe pas dans le rapport d'activité.",
        )
    };
    let Ok(year) = year.parse::<i32>() else {
        return not_found();
    };
    let Some((key, ext)) = file.rsplit_once('.') else {
        return not_found();
    };
    let r = match web.node.report(year).await {
        Ok(r) => r,
        Err(e) => {
            return error_page(
                status_of(e.kind()),
                Some(&signed.session),
                "Rapport d'activité",
                &fr::local_error(&e),
            );
        }
    };
    let Some(g) = grids(&r).into_iter().find(|g| g.key == key) else {
        return not_found();
    };
    let name = format!("rapport-{year}-{key}.{ext}");
    let disposition = format!("attachment; filename=\"{name}\"");
    match ext {
        "csv" => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            to_csv(&g),
        )
            .into_response(),
        "xlsx" => match to_xlsx(&g, fr::centre_name(web.node.centre()), year) {
            Ok(bytes) => (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                            .to_owned(),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                bytes,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "xlsx export failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some(&signed.session),
                    "Export impossible",
                    "Le fichier Excel n'a pas pu être produit ; le CSV du même tableau s'ouvre aussi dans un tableur.",
                )
            }
        },
        _ => not_found(),
    }
}

// ---- Publication -------------------------------------------------------------

/// The French name of a statistics table.
fn table_name(table: &str) -> &'static str {
    match table {
        "req_sector" => "Demandes par secteur et type de service",
        "req_profession" => "Demandes par profession et type de service",
        "req_contact" => "Demandes par mode de contact et type de service",
        "req_theme" => "Mentions de thématiques par type de service",
        "loans" => "Prêts par type de document et thématique",
        "acc_scheme" => "Accompagnements par dispositif",
        "acc_theme" => "Accompagnements par thématique",
        "acc_axis" => "Accompagnements par axe",
        "events" => "Participants par événement",
        "event_org" => "Centres co-organisateurs des événements",
        "event_partners" => "Partenaires non-centres des événements (nombre, jamais nommés)",
        "holdings" => "Notices détenues par type de document",
        _ => "Autre tableau",
    }
}

fn month_of(part: &str) -> String {
    part.parse::<usize>()
        .ok()
        .and_then(|m| m.checked_sub(1))
        .and_then(|i| fr::MONTHS.get(i))
        .map_or_else(|| part.to_owned(), |m| (*m).to_owned())
}

/// What one cell of a statistics table counts, in words.
fn cell_words(table: &str, cell: &str) -> String {
    let parts = split_cell(cell);
    let dimension = |t: &str| Dimension::ALL.into_iter().find(|d| d.table() == t);
    match (table, parts.as_slice()) {
        (t, [m, code, service]) if dimension(t).is_some() => {
            let by = dimension(t).unwrap_or(Dimension::Sector);
            format!(
                "{} · {} · {}",
                month_of(m),
                by.codes().label(code).unwrap_or(code),
                label(List::ServiceType, service)
            )
        }
        ("loans", [m, doc, theme]) => format!(
            "{} · {} · {}",
            month_of(m),
            label(List::DocumentType, doc),
            if *theme == "none" {
                "sans thématique".to_owned()
            } else {
                label(List::Theme, theme)
            }
        ),
        ("acc_scheme", [m, code]) => format!("{} · {}", month_of(m), scheme_label(code)),
        ("acc_theme", [m, code]) => format!("{} · {}", month_of(m), label(List::Theme, code)),
        ("acc_axis", [m, code]) => format!("{} · {}", month_of(m), label(List::Axis, code)),
        ("events", [m, kind, key]) => {
            format!(
                "{} · {} · événement {key}",
                month_of(m),
                event_kind_label(kind)
            )
        }
        ("event_org", [key, centre]) => format!(
            "événement {key} · {}",
            CentreId::new(centre)
                .map_or_else(|_| (*centre).to_owned(), |c| fr::centre_name(&c).to_owned())
        ),
        ("event_partners", [key]) => format!("événement {key}"),
        ("holdings", [_, doc]) => label(List::DocumentType, doc),
        _ => cell.to_owned(),
    }
}

pub(super) async fn publication(State(web): State<Web>, signed: Signed) -> Response {
    let p = match web.node.publication().await {
        Ok(p) => p,
        Err(e) => {
            return error_page(
                status_of(e.kind()),
                Some(&signed.session),
                "Publication",
                &fr::local_error(&e),
            );
        }
    };
    let mut groups: BTreeMap<(u16, String), Vec<&Figure>> = BTreeMap::new();
    for f in &p.figures {
        groups
            .entry((f.key.year, f.key.table.clone()))
            .or_default()
            .push(f);
    }
    let changes = p.figures.iter().filter(|f| f.changes()).count();
    page(
        StatusCode::OK,
        layout(
            &web.node,
            Some(&signed.session),
            "Ce que le centre publie",
            Nav::Report,
            html! {
                h1 { "Ce que le centre publie pour le réseau" }
                p { "À chaque synchronisation, le nœud envoie au réseau les comptages ci-dessous, et rien d'autre : ni nom, ni organisation, ni note, ni demande une à une. Les comités inter-CLPS lisent ces chiffres, fusionnés avec ceux des autres centres." }
                p role="status" {
                    @match p.last {
                        Some(t) => { "Dernière mise à jour des chiffres publiés : " (fr::date_time(t)) ". " }
                        None => { "Le centre n'a encore rien publié. " }
                    }
                    @if changes == 0 {
                        "Rien n'a changé depuis : la prochaine synchronisation n'enverra aucun chiffre nouveau."
                    } @else {
                        (fr::count(changes as i64, "chiffre changera", "chiffres changeront")) " à la prochaine synchronisation (marqués ci-dessous)."
                    }
                }
                p class="noprint" { a href="/synchronisation" { "Synchroniser maintenant" } " · " a href="/rapport" { "Rapport d'activité" } }
                @if groups.is_empty() {
                    p { "Aucune demande, aucun prêt, aucun accompagnement ni événement : il n'y a rien à publier." }
                } @else {
                    table class="list" {
                        caption { "Tableaux publiés" }
                        thead { tr {
                            th scope="col" { "Année" } th scope="col" { "Tableau" }
                            th scope="col" class="num" { "Cellules" } th scope="col" class="num" { "Somme" }
                            th scope="col" class="num" { "À envoyer" }
                        } }
                        tbody {
                            @for ((year, table), figures) in &groups {
                                tr {
                                    td { (year) }
                                    td { a href={ "#" (year) "-" (table) } { (table_name(table)) } }
                                    td class="num" { (figures.len()) }
                                    td class="num" { (figures.iter().map(|f| f.value).sum::<u64>()) }
                                    td class="num" { (figures.iter().filter(|f| f.changes()).count()) }
                                }
                            }
                        }
                    }
                    @for ((year, table), figures) in &groups {
                        details id={ (year) "-" (table) } {
                            summary { (year) " — " (table_name(table)) " (" (fr::count(figures.len() as i64, "cellule", "cellules")) ")" }
                            table class="list" {
                                thead { tr {
                                    th scope="col" { "Ce qui est compté" }
                                    th scope="col" class="num" { "Envoyé" }
                                    th scope="col" class="num" { "Publié aujourd'hui" }
                                } }
                                tbody {
                                    @for f in figures {
                                        tr class=[f.changes().then_some("changes")] {
                                            td { (cell_words(table, &f.key.cell)) }
                                            td class="num" { (f.value) @if f.changes() { " (nouveau)" } }
                                            td class="num" { @match f.published { Some(n) => (n), None => "—" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn grid() -> Grid {
        Grid {
            key: "secteur".into(),
            title: "Demandes par secteur".into(),
            unit: "demandes".into(),
            row_header: "Secteur du demandeur".into(),
            columns: vec!["Prêt".into(), "Diffusion".into(), "Total".into()],
            rows: vec![
                ("Enseignement; écoles".into(), vec![3, 1, 4]),
                ("Aide à la jeunesse".into(), vec![0, 2, 2]),
            ],
            totals: vec![3, 3, 6],
        }
    }

    #[test]
    fn csv_opens_in_a_french_spreadsheet() {
        let csv = to_csv(&grid());
        assert!(csv.starts_with('\u{feff}'));
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(lines[0], "Secteur du demandeur;Prêt;Diffusion;Total");
        // A label holding the separator is quoted, not split.
        assert_eq!(lines[1], "\"Enseignement; écoles\";3;1;4");
        assert_eq!(lines[3], "Total;3;3;6");
    }

    #[test]
    fn xlsx_is_a_zip_workbook() {
        let bytes = to_xlsx(&grid(), "CLPS de Namur", 2021).unwrap();
        assert_eq!(&bytes[..2], b"PK");
        assert!(bytes.len() > 1000);
    }

    #[test]
    fn year_on_year_draws_both_years_per_row() {
        let g = Grid {
            key: "evolution".into(),
            columns: vec!["2020".into(), "2021".into()],
            rows: vec![
                ("Prêt".into(), vec![10, 20]),
                ("Diffusion".into(), vec![0, 0]),
                ("Logistique".into(), vec![4, 0]),
            ],
            totals: vec![14, 20],
            ..grid()
        };
        let svg = pair_chart(&g).into_string();
        // Two legend swatches, then two bars per row that has any count.
        assert_eq!(svg.matches("<rect").count(), 2 + 2 * 2, "{svg}");
        assert!(
            svg.contains(">Prêt<") && !svg.contains(">Diffusion<"),
            "{svg}"
        );
        assert!(
            svg.contains("width=\"360\""),
            "the largest count fills the width"
        );
    }

    #[test]
    fn cells_are_said_in_words() {
        assert_eq!(
            cell_words("req_sector", "03--enseignement--pret"),
            "mars · Enseignement · Prêt de ressources documentaires"
        );
        assert_eq!(cell_words("holdings", "all--affiche"), "Affiche");
    }
}
