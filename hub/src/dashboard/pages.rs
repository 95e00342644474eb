//! The dashboard's HTML pages, in French: pure functions from the centres'
//! figures (or a `stats_report::Report`) to a page, so they are tested
//! without a server. Every value that comes from a document goes through
//! [`escape`]; the rest is fixed text.
//!
//! The small-cell rule applies to every per-centre figure (cells, row
//! totals, centre totals, centre bars); network figures stay exact.

use clps_model::text::capitalise;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use clps_model::CentreId;
use clps_model::stats::{self, CentreFigures, CrossTable, Dimension, MergedTable};

use super::ComputedFrom;
use super::svg;
use crate::stats_report::Report;

pub use clps_model::text::escape_html as escape;

const STYLE: &str = "body{font-family:system-ui,'DejaVu Sans',sans-serif;margin:0;color:#1d2733;background:#f6f7f9}\
header{background:#124e66;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}\
nav a{color:#fff;margin-right:18px;text-decoration:none}nav a.active{font-weight:bold;text-decoration:underline}\
main{padding:16px 24px;max-width:1200px}h2{font-size:18px;margin-top:28px}\
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:10px 16px;min-width:150px}\
.card .n{font-size:26px;font-weight:bold;color:#124e66}.card .l{font-size:13px;color:#556}\
table{border-collapse:collapse;background:#fff;font-size:13px;margin:8px 0}th,td{border:1px solid #d5dbe1;padding:3px 7px}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:bold;background:#eef2f5}\
.note{font-size:13px;color:#556}.missing{color:#a33}form{margin:8px 0}footer{font-size:12px;color:#667;padding:16px 24px}\
svg text{font-family:system-ui,'DejaVu Sans',sans-serif}";

fn layout(title: &str, active: &str, body: &str) -> String {
    let link = |href: &str, key: &str, label: &str| {
        let class = if key == active {
            " class=\"active\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{class}>{label}</a>")
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{title} — Comités inter-CLPS</title>\
<style>{STYLE}</style></head><body><header><h1>Statistiques fusionnées des CLPS</h1><nav>{}{}{}</nav></header>\
<main>{body}</main><footer>Tableau de bord en lecture seule, réservé aux comités inter-CLPS. \
Seuls des comptages quittent les centres.</footer></body></html>\n",
        link("/", "overview", "Vue d'ensemble"),
        link("/table", "table", "Tableaux croisés"),
        link("/years", "years", "Évolution annuelle"),
        title = escape(title),
    )
}

/// A page with one message (errors, refusals).
pub fn message_page(title: &str, message: &str) -> String {
    layout(
        title,
        "",
        &format!("<h2>{}</h2><p>{}</p>", escape(title), escape(message)),
    )
}

pub fn no_data_page() -> String {
    layout(
        "Aucune donnée",
        "",
        "<h2>Aucune donnée</h2><p>Aucun centre n'a encore publié de statistiques de demandes.</p>",
    )
}

fn centre_name(id: &str) -> String {
    CentreId::new(id)
        .map(|c| c.centre().name.clone())
        .unwrap_or_else(|_| id.to_owned())
}

/// Years for which at least one centre published request figures.
pub fn years_of(centres: &[CentreFigures]) -> Vec<i32> {
    let years: BTreeSet<i32> = centres
        .iter()
        .flat_map(|c| c.figures.keys())
        .filter(|k| k.table.starts_with("req_"))
        .map(|k| i32::from(k.year))
        .collect();
    years.into_iter().collect()
}

/// Network requests per month of `year` (January first).
pub fn monthly(centres: &[CentreFigures], year: i32) -> [u64; 12] {
    let mut months = [0u64; 12];
    for c in centres {
        for (key, n) in &c.figures {
            if i32::from(key.year) != year || key.table != Dimension::Sector.table() {
                continue;
            }
            let month: usize = stats::split_cell(&key.cell)
                .first()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if let Some(slot) = month.checked_sub(1).and_then(|i| months.get_mut(i)) {
                *slot += n;
            }
        }
    }
    months
}

/// `dd/mm/yyyy hh:mm UTC`, or a dash when unknown.
fn when(seconds: Option<i64>) -> String {
    let format = time::macros::format_description!("[day]/[month]/[year] [hour]:[minute] UTC");
    seconds
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "—".to_owned())
}

fn change(now: u64, before: u64) -> String {
    if before == 0 {
        return "—".to_owned();
    }
    let pct = (now as f64 - before as f64) * 100.0 / before as f64;
    format!("{pct:+.1} %").replace('.', ",")
}

fn year_select(name: &str, years: &[i32], selected: Option<i32>) -> String {
    let mut out = format!("<select name=\"{name}\">");
    for y in years.iter().rev() {
        let sel = if Some(*y) == selected {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option value=\"{y}\"{sel}>{y}</option>");
    }
    out.push_str("</select>");
    out
}

fn dimension_select(selected: Dimension) -> String {
    let mut out = "<select name=\"by\">".to_owned();
    for d in Dimension::ALL {
        let sel = if d == selected { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{}\"{sel}>{}</option>",
            d.arg(),
            escape(d.caption())
        );
    }
    out.push_str("</select>");
    out
}

fn small_cell_note(small_cells: Option<u64>) -> String {
    match small_cells {
        Some(t) => format!(
            "<p class=\"note\">Règle des petites cellules : les chiffres par centre inférieurs à {t} \
sont affichés « &lt; {t} » ; les totaux du réseau sont exacts.</p>"
        ),
        None => {
            "<p class=\"note\">Règle des petites cellules désactivée sur ce hub.</p>".to_owned()
        }
    }
}

fn computed_from_footer(computed_from: &ComputedFrom) -> String {
    let mut out = format!(
        "<details class=\"note\"><summary>Calculé à partir de {} document(s) de statistiques \
(têtes Automerge, pour reproduire ces chiffres)</summary><ul>",
        computed_from.len()
    );
    for (doc, heads) in computed_from {
        let _ = write!(
            out,
            "<li><code>{}</code> : <code>{}</code></li>",
            escape(doc),
            escape(&heads.join(", "))
        );
    }
    out.push_str("</ul></details>");
    out
}

/// The overview: network totals for a year, included and missing centres,
/// freshness, per-centre bars and the monthly trend.
pub fn overview_page(
    centres: &[CentreFigures],
    computed_from: &ComputedFrom,
    years: &[i32],
    year: Option<i32>,
    small_cells: Option<u64>,
) -> String {
    let Some(year) = year else {
        return no_data_page();
    };
    let requests = stats::merge(centres, year, Dimension::Sector);
    let themes = stats::merge(centres, year, Dimension::Theme);
    let previous = stats::merge(centres, year - 1, Dimension::Sector);
    let events = stats::merged_events(centres, year);
    let participants: u64 = events.iter().map(|e| e.participants).sum();
    let co_organised = events.iter().filter(|e| e.organisers.len() > 1).count();

    let mut body = format!(
        "<h2>Vue d'ensemble {year}</h2><form method=\"get\" action=\"/\">Année : {} <button>Afficher</button></form>",
        year_select("year", years, Some(year))
    );
    let card = |n: String, label: &str| {
        format!(
            "<div class=\"card\"><div class=\"n\">{n}</div><div class=\"l\">{}</div></div>",
            escape(label)
        )
    };
    body.push_str("<div class=\"cards\">");
    body.push_str(&card(
        requests.network.total.to_string(),
        "demandes dans le réseau",
    ));
    body.push_str(&card(
        themes.network.total.to_string(),
        "mentions de thématiques",
    ));
    body.push_str(&card(
        format!("{}/10", requests.included.len()),
        "centres inclus",
    ));
    body.push_str(&card(
        events.len().to_string(),
        &format!("événements ({co_organised} co-organisés, comptés une fois)"),
    ));
    body.push_str(&card(
        participants.to_string(),
        "participants aux événements",
    ));
    if let Some((now, before, n)) = like_for_like(&requests, &previous) {
        body.push_str(&card(
            change(now, before),
            &format!(
                "par rapport à {} à périmètre constant ({n} centre(s) présents les deux années : {before} → {now} demandes)",
                year - 1
            ),
        ));
    }
    body.push_str("</div>");

    body.push_str("<h2>Centres inclus et fraîcheur des données</h2>");
    body.push_str(&centres_table(&requests, small_cells));
    if requests.missing.is_empty() {
        body.push_str("<p class=\"note\">Les dix centres ont publié leurs chiffres.</p>");
    } else {
        let _ = write!(
            body,
            "<p class=\"missing\">Sans données pour {year} : {}. Les totaux du réseau ne les incluent pas.</p>",
            escape(
                &requests
                    .missing
                    .iter()
                    .map(|c| centre_name(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
    }
    body.push_str(&small_cell_note(small_cells));

    body.push_str("<h2>Demandes par centre</h2>");
    let bars: Vec<svg::Bar> = requests
        .per_centre
        .iter()
        .map(|(c, t)| svg::Bar::masked(centre_name(c), t.total, small_cells))
        .collect();
    body.push_str(&svg::bars(&bars));

    body.push_str("<h2>Tendance mensuelle des demandes du réseau</h2>");
    let mut series = vec![svg::Series {
        name: year.to_string(),
        values: monthly(centres, year).to_vec(),
    }];
    if !previous.included.is_empty() {
        series.push(svg::Series {
            name: (year - 1).to_string(),
            values: monthly(centres, year - 1).to_vec(),
        });
    }
    body.push_str(&svg::lines(&MONTHS.map(str::to_owned), &series));
    if !previous.included.is_empty() && previous.included != requests.included {
        body.push_str(
            "<p class=\"note\">Attention : les centres inclus diffèrent d'une année à l'autre.</p>",
        );
    }
    body.push_str(&computed_from_footer(computed_from));
    layout(&format!("Vue d'ensemble {year}"), "overview", &body)
}

/// Totals of the centres included both years (now, before, how many), so
/// that a centre joining the network is not read as growth.
fn like_for_like(now: &MergedTable, before: &MergedTable) -> Option<(u64, u64, usize)> {
    let common: Vec<&String> = now
        .included
        .iter()
        .filter(|c| before.per_centre.contains_key(*c))
        .collect();
    if common.is_empty() {
        return None;
    }
    let total = |m: &MergedTable| -> u64 {
        common
            .iter()
            .filter_map(|c| m.per_centre.get(*c))
            .map(|t| t.total)
            .sum()
    };
    Some((total(now), total(before), common.len()))
}

const MONTHS: [&str; 12] = [
    "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
    "déc.",
];

fn centres_table(merged: &MergedTable, small_cells: Option<u64>) -> String {
    let mut out = format!(
        "<table><tr><th>Centre</th><th class=\"n\">Demandes {}</th><th>Publié le</th><th>État</th></tr>",
        merged.year
    );
    for centre in clps_model::centres::all() {
        let id = centre.id.as_str();
        match merged.per_centre.get(id) {
            Some(t) => {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>inclus</td></tr>",
                    escape(&centre.name),
                    escape(&stats::shown(t.total, small_cells)),
                    when(merged.as_of.get(id).copied().flatten())
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td class=\"n\">—</td><td>—</td><td class=\"missing\">sans données</td></tr>",
                    escape(&centre.name)
                );
            }
        }
    }
    let _ = write!(
        out,
        "<tr class=\"total\"><td>Réseau</td><td class=\"n\">{}</td><td></td><td>{}/10</td></tr></table>",
        merged.network.total,
        merged.included.len()
    );
    out
}

fn cross_table_html(table: &CrossTable, show: impl Fn(u64) -> String) -> String {
    let services = &clps_model::vocab::get().service_types;
    let mut out = format!(
        "<table><tr><th>{}</th>",
        escape(&capitalise(table.by.caption()))
    );
    for code in &table.columns {
        let _ = write!(
            out,
            "<th class=\"n\">{}</th>",
            escape(services.label(code).unwrap_or(code))
        );
    }
    out.push_str("<th class=\"n\">Total</th></tr>");
    for row in &table.rows {
        let _ = write!(out, "<tr><td>{}</td>", escape(&row.label));
        for n in &row.cells {
            let _ = write!(out, "<td class=\"n\">{}</td>", escape(&show(*n)));
        }
        let _ = write!(
            out,
            "<td class=\"n\">{}</td></tr>",
            escape(&show(row.total))
        );
    }
    out.push_str("<tr class=\"total\"><td>Total</td>");
    for n in &table.column_totals {
        let _ = write!(out, "<td class=\"n\">{}</td>", escape(&show(*n)));
    }
    let _ = write!(
        out,
        "<td class=\"n\">{}</td></tr></table>",
        escape(&show(table.total))
    );
    out
}

/// Rows of the dimension × included centres (row totals, masked), with the
/// exact network total last.
fn comparison_html(merged: &MergedTable, small_cells: Option<u64>) -> String {
    let mut out = format!(
        "<table><tr><th>{}</th>",
        escape(&capitalise(merged.by.caption()))
    );
    for c in &merged.included {
        let _ = write!(out, "<th class=\"n\">{}</th>", escape(&centre_name(c)));
    }
    out.push_str("<th class=\"n\">Réseau</th></tr>");
    for (i, row) in merged.network.rows.iter().enumerate() {
        let _ = write!(out, "<tr><td>{}</td>", escape(&row.label));
        for c in &merged.included {
            let n = merged
                .per_centre
                .get(c)
                .and_then(|t| t.rows.get(i))
                .map(|r| r.total)
                .unwrap_or(0);
            let _ = write!(
                out,
                "<td class=\"n\">{}</td>",
                escape(&stats::shown(n, small_cells))
            );
        }
        let _ = write!(out, "<td class=\"n\">{}</td></tr>", row.total);
    }
    out.push_str("<tr class=\"total\"><td>Total</td>");
    for c in &merged.included {
        let n = merged.per_centre.get(c).map(|t| t.total).unwrap_or(0);
        let _ = write!(
            out,
            "<td class=\"n\">{}</td>",
            escape(&stats::shown(n, small_cells))
        );
    }
    let _ = write!(
        out,
        "<td class=\"n\">{}</td></tr></table>",
        merged.network.total
    );
    out
}

/// Cross tables for one year and dimension: the network's (or one
/// centre's), the per-centre comparison, a bar chart and CSV links.
pub fn table_page(
    report: &Report,
    years: &[i32],
    centre: Option<&str>,
    small_cells: Option<u64>,
) -> String {
    let m = &report.merged;
    let (year, by) = (m.year, m.by);
    let mut body = format!(
        "<h2>Demandes {year} par type de service et {}</h2>\
<form method=\"get\" action=\"/table\">Année : {} Dimension : {} Centre : <select name=\"centre\"><option value=\"\">tout le réseau</option>",
        escape(by.caption()),
        year_select("year", years, Some(year)),
        dimension_select(by),
    );
    for c in clps_model::centres::all() {
        let sel = if Some(c.id.as_str()) == centre {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<option value=\"{}\"{sel}>{}</option>",
            escape(&c.id),
            escape(&c.name)
        );
    }
    body.push_str("</select> <button>Afficher</button></form>");
    let _ = write!(
        body,
        "<p class=\"note\">Base : {}. Centres inclus : {}/10.</p>",
        escape(m.network.base),
        m.included.len()
    );
    match centre {
        Some(c) => {
            let _ = write!(body, "<h2>{}</h2>", escape(&centre_name(c)));
            match m.per_centre.get(c) {
                Some(t) => body.push_str(&cross_table_html(t, |n| stats::shown(n, small_cells))),
                None => {
                    let _ = write!(
                        body,
                        "<p class=\"missing\">Ce centre n'a pas publié de chiffres pour {year}.</p>"
                    );
                }
            }
        }
        None => {
            body.push_str("<h2>Réseau (totaux exacts)</h2>");
            body.push_str(&cross_table_html(&m.network, |n| n.to_string()));
        }
    }
    if let Some(prev) = report.previous_year_total {
        let _ = write!(
            body,
            "<p>Année précédente ({}) : {prev} ; évolution du réseau : {}.</p>",
            year - 1,
            change(m.network.total, prev)
        );
    }
    body.push_str("<h2>Comparaison par centre</h2>");
    body.push_str(&comparison_html(m, small_cells));
    body.push_str(&small_cell_note(small_cells));
    body.push_str("<h2>Répartition dans le réseau</h2>");
    let bars: Vec<svg::Bar> = m
        .network
        .rows
        .iter()
        .map(|r| svg::Bar::exact(r.label.clone(), r.total))
        .collect();
    body.push_str(&svg::bars(&bars));
    let base = format!("/stats.csv?year={year}&amp;by={}", by.arg());
    let _ = write!(
        body,
        "<h2>Télécharger (CSV)</h2><ul><li><a href=\"{base}\">réseau</a></li>\
<li><a href=\"{base}&amp;per_centre=1\">une colonne par centre et type de service</a></li>"
    );
    if let Some(c) = centre {
        let _ = write!(
            body,
            "<li><a href=\"{base}&amp;centre={}\">{}</a></li>",
            escape(c),
            escape(&centre_name(c))
        );
    }
    body.push_str("</ul>");
    body.push_str(&computed_from_footer(&report.computed_from));
    layout(&format!("Tableaux croisés {year}"), "table", &body)
}

/// Year on year: network total per year, and each centre's (masked).
pub fn years_page(centres: &[CentreFigures], by: Dimension, small_cells: Option<u64>) -> String {
    let years = years_of(centres);
    let mut body = format!(
        "<h2>Évolution annuelle — {}</h2><form method=\"get\" action=\"/years\">Dimension : {} <button>Afficher</button></form>\
<p class=\"note\">Base : {}.</p>",
        escape(by.caption()),
        dimension_select(by),
        escape(by.base())
    );
    if years.is_empty() {
        body.push_str("<p>Aucun centre n'a encore publié de statistiques.</p>");
        return layout("Évolution annuelle", "years", &body);
    }
    let merged: BTreeMap<i32, MergedTable> = years
        .iter()
        .map(|y| (*y, stats::merge(centres, *y, by)))
        .collect();
    body.push_str("<table><tr><th>Année</th><th class=\"n\">Centres inclus</th><th class=\"n\">Réseau</th><th class=\"n\">Évolution (périmètre constant)</th>");
    for c in clps_model::centres::all() {
        let _ = write!(body, "<th class=\"n\">{}</th>", escape(&c.short));
    }
    body.push_str("</tr>");
    let mut before: Option<&MergedTable> = None;
    for (year, m) in &merged {
        let _ = write!(
            body,
            "<tr><td>{year}</td><td class=\"n\">{}/10</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            m.included.len(),
            m.network.total,
            before
                .and_then(|b| like_for_like(m, b))
                .map_or_else(|| "—".to_owned(), |(now, b, _)| change(now, b))
        );
        for c in clps_model::centres::all() {
            let cell = m
                .per_centre
                .get(c.id.as_str())
                .map_or_else(|| "—".to_owned(), |t| stats::shown(t.total, small_cells));
            let _ = write!(body, "<td class=\"n\">{}</td>", escape(&cell));
        }
        body.push_str("</tr>");
        before = Some(m);
    }
    body.push_str("</table>");
    body.push_str(&small_cell_note(small_cells));
    body.push_str("<h2>Tendance du réseau</h2>");
    body.push_str(&svg::lines(
        &years.iter().map(i32::to_string).collect::<Vec<_>>(),
        &[svg::Series {
            name: "réseau".to_owned(),
            values: merged.values().map(|m| m.network.total).collect(),
        }],
    ));
    layout("Évolution annuelle", "years", &body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clps_model::docs::stats::FigureKey;

    fn centre(id: &str, cells: &[(u16, &str, &str, u64)]) -> CentreFigures {
        let mut figures = BTreeMap::new();
        for (year, row, service, n) in cells {
            figures.insert(
                FigureKey {
                    year: *year,
                    table: "req_sector".into(),
                    cell: stats::request_cell(3, row, service),
                },
                *n,
            );
        }
        CentreFigures {
            centre: CentreId::new(id).unwrap(),
            figures,
            as_of: Some(1_640_000_000),
        }
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">l'été & co</a>"),
            "&lt;a href=&quot;x&quot;&gt;l&#39;été &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn overview_shows_exact_network_totals_and_masks_small_centres() {
        let centres = vec![
            centre("namur", &[(2021, "enseignement", "pret", 40)]),
            centre(
                "liege",
                &[
                    (2021, "enseignement", "pret", 3),
                    (2020, "social", "pret", 30),
                ],
            ),
        ];
        let years = years_of(&centres);
        assert_eq!(years, vec![2020, 2021]);
        let page = overview_page(&centres, &BTreeMap::new(), &years, Some(2021), Some(5));
        assert!(page.contains("<div class=\"n\">43</div>"), "{page}");
        assert!(page.contains("&lt; 5"), "liège's 3 is masked");
        assert!(page.contains("2/10"));
        assert!(page.contains("sans données"));
        assert!(
            page.contains("-90,0 %"),
            "like for like: liège 3 against 30; namur is new"
        );
        assert_eq!(monthly(&centres, 2021)[2], 43);
        let years_page = years_page(&centres, Dimension::Sector, Some(5));
        assert!(years_page.contains("<td class=\"n\">43</td>"));
    }

    #[test]
    fn table_page_lists_every_code_and_links_csv() {
        let centres = vec![centre("namur", &[(2021, "enseignement", "pret", 7)])];
        let report = Report {
            merged: stats::merge(&centres, 2021, Dimension::Sector),
            computed_from: BTreeMap::new(),
            previous_year_total: None,
            events: Vec::new(),
        };
        let page = table_page(&report, &[2021], Some("namur"), Some(5));
        assert!(page.contains("Enseignement"));
        assert!(page.contains("/stats.csv?year=2021&amp;by=sector&amp;per_centre=1"));
        assert!(page.contains(">7<"));
    }
}
