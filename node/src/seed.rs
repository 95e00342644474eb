//! Realistic synthetic data: a year of a centre's records.
//!
//! With `--calibration` (Charleroi-Thuin, 2021) the requests reproduce every
//! cell of the published `by_sector` and `by_theme` tables; professions and
//! contact modes follow the published tables as closely as their own
//! inconsistency allows (see [`calibrated_column`]). Without it, `--scale F`
//! draws a year of the same shape, cell by cell, from the same figures.
//!
//! People are invented: first and last names are drawn from lists of common
//! names and combined at random, e-mails use the reserved `example.org`
//! domain. Everything is deterministic for a given seed and centre.
//!
//! The plan is computed first, in memory; it is then written month by month,
//! one transaction per month, so an interrupted seed leaves whole months.

use std::collections::BTreeMap;

use clps_model::CentreId;
use clps_model::seed_data::{self, Calibration, Cells};
use clps_model::vocab;
use rand::prelude::*;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::records::{Accompaniment, Event, Loan, Organisation, Person, Request};

const FIRST_NAMES: &[&str] = &[
    "Amélie",
    "Julien",
    "Sophie",
    "Karim",
    "Nathalie",
    "Thomas",
    "Aurore",
    "Mehdi",
    "Céline",
    "Olivier",
    "Fatima",
    "Grégory",
    "Laetitia",
    "Jérôme",
    "Inès",
    "Benoît",
    "Caroline",
    "Youssef",
    "Véronique",
    "Maxime",
    "Élodie",
    "Samuel",
    "Isabelle",
    "Rachid",
    "Delphine",
    "Quentin",
    "Marie",
    "Arnaud",
    "Sarah",
    "Pascal",
];
const LAST_NAMES: &[&str] = &[
    "Dubois",
    "Lambert",
    "Martin",
    "Dupont",
    "Leclercq",
    "Renard",
    "Lemaire",
    "Hermans",
    "Claes",
    "Jacobs",
    "Mertens",
    "Denis",
    "Laurent",
    "Collard",
    "Wauters",
    "Piret",
    "Gilson",
    "Lejeune",
    "Delvaux",
    "Marchal",
    "Bastin",
    "Charlier",
    "Jadot",
    "Hubert",
    "Simon",
    "Dumont",
    "François",
    "Noël",
    "Masson",
    "Poncelet",
];

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub centre: CentreId,
    pub year: i32,
    /// Reproduce the published figures exactly (Charleroi-Thuin 2021 only).
    pub calibration: bool,
    /// Size relative to the calibrated centre, when not calibrating.
    pub scale: f64,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SeedError {
    #[error(
        "les chiffres publiés ne sont connus que pour charleroi-thuin en {year}; pour {centre} en {asked}, utilisez --scale"
    )]
    NoCalibration {
        centre: String,
        year: i32,
        asked: i32,
    },
    #[error("l'échelle doit être un nombre positif (reçu {0})")]
    BadScale(f64),
    #[error("l'année {0} est hors de la plage admise (2000 à 2100)")]
    BadYear(i32),
}

/// Everything one seed writes, grouped by month (index 0 = January).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub organisations: Vec<Organisation>,
    pub persons: Vec<Person>,
    pub months: Vec<MonthPlan>,
}

#[derive(Debug, Clone, Default)]
pub struct MonthPlan {
    pub requests: Vec<Request>,
    pub loans: Vec<Loan>,
    pub accompaniments: Vec<Accompaniment>,
    pub events: Vec<Event>,
}

impl Plan {
    pub fn n_requests(&self) -> usize {
        self.months.iter().map(|m| m.requests.len()).sum()
    }
}

/// Computes the whole year in memory. Organisation and person references in
/// the plan are 1-based positions in `organisations` / `persons`; the writer
/// maps them to row ids.
pub fn plan(options: &SeedOptions) -> Result<Plan, SeedError> {
    let cal = seed_data::calibration();
    if !(2000..=2100).contains(&options.year) {
        return Err(SeedError::BadYear(options.year));
    }
    if options.calibration && (options.centre.as_str() != cal.centre || options.year != cal.year) {
        return Err(SeedError::NoCalibration {
            centre: options.centre.to_string(),
            year: cal.year,
            asked: options.year,
        });
    }
    let scale = if options.calibration {
        1.0
    } else {
        options.scale
    };
    if !(scale.is_finite() && scale > 0.0 && scale <= 100.0) {
        return Err(SeedError::BadScale(options.scale));
    }
    // Mix the centre into the seed so two centres seeded with the same N differ.
    let centre_salt = clps_model::text::fnv1a(options.centre.as_str().bytes());
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ centre_salt);

    let communes = communes_of(&options.centre);
    let organisations = organisations(&mut rng, &communes, scale);
    let persons = persons(&mut rng, organisations.len(), scale);

    let mut requests = if options.calibration {
        calibrated_requests(&mut rng, cal)
    } else {
        scaled_requests(&mut rng, cal, scale)
    };
    requests.shuffle(&mut rng);
    let year = options.year;
    for q in &mut requests {
        q.date = random_date(&mut rng, year);
        link_requester(&mut rng, q, &organisations, persons.len());
    }

    let loans = loans(&mut rng, cal, scale, year, organisations.len());
    let accompaniments = accompaniments(&mut rng, cal, scale, year, &communes, organisations.len());
    let events = events(&mut rng, &options.centre, scale, year);

    let mut months = vec![MonthPlan::default(); 12];
    let month_of = |date: &str| -> usize {
        date.get(5..7)
            .and_then(|m| m.parse::<usize>().ok())
            .map_or(0, |m| m.saturating_sub(1).min(11))
    };
    for q in requests {
        months[month_of(&q.date)].requests.push(q);
    }
    for l in loans {
        months[month_of(&l.out_date)].loans.push(l);
    }
    for a in accompaniments {
        months[month_of(&a.start_date)].accompaniments.push(a);
    }
    for e in events {
        months[month_of(&e.start_date)].events.push(e);
    }
    for m in &mut months {
        m.requests.sort_by(|a, b| a.date.cmp(&b.date));
    }
    Ok(Plan {
        organisations,
        persons,
        months,
    })
}

fn communes_of(centre: &CentreId) -> Vec<String> {
    let extra: &[&str] = match centre.as_str() {
        "charleroi-thuin" => &[
            "Charleroi",
            "Thuin",
            "Fleurus",
            "Châtelet",
            "Courcelles",
            "Gerpinnes",
            "Chimay",
            "Beaumont",
            "Fontaine-l'Évêque",
            "Pont-à-Celles",
            "Lobbes",
            "Momignies",
        ],
        _ => &[],
    };
    let mut out: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    let c = centre.centre();
    out.push(c.city.clone());
    out.extend(c.territory.iter().cloned());
    out.sort();
    out.dedup();
    out
}

fn organisations(rng: &mut ChaCha8Rng, communes: &[String], scale: f64) -> Vec<Organisation> {
    // Roughly the 110 member institutions of the calibrated centre.
    let n = ((110.0 * scale).round() as usize).max(8);
    let kinds: &[(&str, &str, &str)] = &[
        ("enseignement", "école", "École communale"),
        ("enseignement", "école", "Athénée royal"),
        ("aide_jeunesse", "AMO", "AMO"),
        ("soins_sante", "maison médicale", "Maison médicale"),
        ("promotion_sante_prevention", "service PSE", "Service PSE"),
        ("social", "CPAS", "CPAS"),
        (
            "sante_mentale",
            "service de santé mentale",
            "Service de santé mentale",
        ),
        ("handicap", "service d'accueil", "Service d'accueil de jour"),
        ("insertion", "CPAS", "Service d'insertion"),
        ("pouvoirs_locaux", "PCS", "Plan de cohésion sociale"),
        ("jeunesse", "maison de jeunes", "Maison de jeunes"),
        ("aines", "maison de repos", "Résidence"),
        (
            "soins_sante",
            "planning familial",
            "Centre de planning familial",
        ),
    ];
    (0..n)
        .map(|i| {
            let (sector, org_type, prefix) = kinds[i % kinds.len()];
            let commune = communes[rng.random_range(0..communes.len())].clone();
            Organisation {
                id: 0,
                name: format!("{prefix} de {commune} ({})", i / kinds.len() + 1),
                org_type: org_type.to_owned(),
                sector: sector.to_owned(),
                commune,
            }
        })
        .collect()
}

fn persons(rng: &mut ChaCha8Rng, n_orgs: usize, scale: f64) -> Vec<Person> {
    let n = ((160.0 * scale).round() as usize).max(10);
    (0..n)
        .map(|i| {
            let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
            let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
            let email = format!(
                "{}.{}{}@example.org",
                ascii_slug(first),
                ascii_slug(last),
                i
            );
            Person {
                id: 0,
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                phone: Some(format!(
                    "+32 71 {:02} {:02} {:02}",
                    i % 100,
                    (i * 7) % 100,
                    (i * 13) % 100
                )),
                email: Some(email),
                organisation_id: Some(rng.random_range(1..=n_orgs as i64)),
            }
        })
        .collect()
}

/// Lower-case ASCII for e-mail local parts: accents dropped, others removed.
fn ascii_slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            let c = c.to_lowercase().next().unwrap_or(c);
            Some(match c {
                'à' | 'â' | 'ä' => 'a',
                'é' | 'è' | 'ê' | 'ë' => 'e',
                'î' | 'ï' => 'i',
                'ô' | 'ö' => 'o',
                'ù' | 'û' | 'ü' => 'u',
                'ç' => 'c',
                c if c.is_ascii_alphanumeric() => c,
                _ => return None,
            })
        })
        .collect()
}

fn random_date(rng: &mut ChaCha8Rng, year: i32) -> String {
    let month = rng.random_range(1..=12u8);
    let days = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    format!("{year:04}-{month:02}-{:02}", rng.random_range(1..=days))
}

fn link_requester(rng: &mut ChaCha8Rng, q: &mut Request, orgs: &[Organisation], n_persons: usize) {
    let same_sector: Vec<usize> = orgs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.sector == q.sector)
        .map(|(i, _)| i + 1)
        .collect();
    if !same_sector.is_empty() && rng.random_bool(0.7) {
        q.organisation_id = Some(same_sector[rng.random_range(0..same_sector.len())] as i64);
    }
    if rng.random_bool(0.5) {
        let person = rng.random_range(1..=n_persons as i64);
        q.person_id = Some(person);
        if rng.random_bool(0.3) {
            q.note = NOTES[rng.random_range(0..NOTES.len())].to_owned();
        }
    }
}

const NOTES: &[&str] = &[
    "Rappeler la personne pour fixer le retour de l'outil.",
    "Animation prévue en classe de 5e primaire, deux groupes.",
    "Souhaite un outil pour un groupe d'adolescents en AMO.",
    "Demande liée à une situation de harcèlement dans l'établissement.",
    "A déjà emprunté cet outil l'an passé, très satisfaite.",
];

/// The service type codes, in vocabulary order.
fn services() -> Vec<String> {
    vocab::get()
        .service_types
        .codes()
        .map(str::to_owned)
        .collect()
}

/// One column of a published table as a multiset of row codes, adjusted to
/// `n` entries: when the printed column has more entries than the column has
/// requests, the largest cell gives them back; when it has fewer, the largest
/// cell takes the rest. This is where the published tables' own
/// inconsistency (785 vs 786 requests) is absorbed.
pub fn calibrated_column(cells: &Cells, service: &str, n: usize, order: &[&str]) -> Vec<String> {
    let mut counts: Vec<(String, u64)> = order
        .iter()
        .map(|code| {
            let c = cells
                .get(*code)
                .and_then(|row| row.get(service))
                .copied()
                .unwrap_or(0);
            ((*code).to_owned(), c)
        })
        .collect();
    let sum: u64 = counts.iter().map(|(_, c)| c).sum();
    let target = n as u64;
    if sum != target
        && let Some(largest) = counts.iter_mut().max_by_key(|(_, c)| *c)
    {
        largest.1 = (largest.1 + target).saturating_sub(sum);
    }
    counts
        .into_iter()
        .flat_map(|(code, c)| std::iter::repeat_n(code, c as usize))
        .collect()
}

/// Deals theme mentions to requests: each request gets at least one theme and
/// never the same theme twice. Mentions of one theme are contiguous and no
/// theme has more mentions than the column has requests, so dealing them
/// round-robin gives distinct themes per request.
fn deal_themes(requests: &mut [&mut Request], mentions: &[String]) {
    if requests.is_empty() {
        return;
    }
    for (i, theme) in mentions.iter().enumerate() {
        let q = &mut requests[i % requests.len()];
        if !q.themes.contains(theme) {
            q.themes.push(theme.clone());
        }
    }
}

fn calibrated_requests(rng: &mut ChaCha8Rng, cal: &Calibration) -> Vec<Request> {
    let v = vocab::get();
    let sectors: Vec<&str> = v.requester_sectors.codes().collect();
    let themes: Vec<&str> = v.themes.codes().collect();
    let professions: Vec<&str> = v.requester_professions.codes().collect();
    let modes: Vec<&str> = v.contact_modes.codes().collect();
    let mut out = Vec::new();
    for service in services() {
        // Requests of this column, one per by_sector cell entry: exact.
        let n_exact: u64 = sectors
            .iter()
            .map(|s| cell(&cal.requests.by_sector.cells, s, &service))
            .sum();
        let column_sectors = calibrated_column(
            &cal.requests.by_sector.cells,
            &service,
            n_exact as usize,
            &sectors,
        );
        let n = column_sectors.len();
        if n == 0 {
            continue;
        }
        let mut profs =
            calibrated_column(&cal.requests.by_profession.cells, &service, n, &professions);
        let mut contact =
            calibrated_column(&cal.requests.by_contact_mode.cells, &service, n, &modes);
        profs.shuffle(rng);
        contact.shuffle(rng);
        let mut column: Vec<Request> = column_sectors
            .into_iter()
            .zip(profs)
            .zip(contact)
            .map(|((sector, profession), contact_mode)| Request {
                service_type: service.clone(),
                sector,
                profession,
                contact_mode,
                ..Request::default()
            })
            .collect();
        column.shuffle(rng);
        // Theme mentions: exact, every cell of by_theme.
        let mentions: Vec<String> = themes
            .iter()
            .flat_map(|t| {
                std::iter::repeat_n(
                    (*t).to_owned(),
                    cell(&cal.requests.by_theme.cells, t, &service) as usize,
                )
            })
            .collect();
        let mut refs: Vec<&mut Request> = column.iter_mut().collect();
        deal_themes(&mut refs, &mentions);
        out.extend(column);
    }
    out
}

fn cell(cells: &Cells, row: &str, service: &str) -> u64 {
    cells
        .get(row)
        .and_then(|r| r.get(service))
        .copied()
        .unwrap_or(0)
}

/// Draws a count around `expected` (deterministic rounding with a random
/// fractional part), so scaled tables keep their shape without being exact.
fn draw(rng: &mut ChaCha8Rng, expected: f64) -> u64 {
    let jitter = 1.0 + (rng.random::<f64>() - 0.5) * 0.3;
    let x = (expected * jitter).max(0.0);
    let base = x.floor();
    base as u64 + u64::from(rng.random::<f64>() < x - base)
}

fn weighted<'a>(rng: &mut ChaCha8Rng, weights: &'a [(String, u64)]) -> Option<&'a str> {
    let total: u64 = weights.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut pick = rng.random_range(0..total);
    for (code, w) in weights {
        if pick < *w {
            return Some(code);
        }
        pick -= w;
    }
    None
}

fn column_weights(cells: &Cells, service: &str, order: &[&str]) -> Vec<(String, u64)> {
    order
        .iter()
        .map(|c| ((*c).to_owned(), cell(cells, c, service)))
        .collect()
}

fn scaled_requests(rng: &mut ChaCha8Rng, cal: &Calibration, scale: f64) -> Vec<Request> {
    let v = vocab::get();
    let sectors: Vec<&str> = v.requester_sectors.codes().collect();
    let themes: Vec<&str> = v.themes.codes().collect();
    let professions: Vec<&str> = v.requester_professions.codes().collect();
    let modes: Vec<&str> = v.contact_modes.codes().collect();
    let mut out = Vec::new();
    for service in services() {
        let prof_w = column_weights(&cal.requests.by_profession.cells, &service, &professions);
        let mode_w = column_weights(&cal.requests.by_contact_mode.cells, &service, &modes);
        let theme_w = column_weights(&cal.requests.by_theme.cells, &service, &themes);
        let n_requests: u64 = sectors
            .iter()
            .map(|s| cell(&cal.requests.by_sector.cells, s, &service))
            .sum();
        let n_mentions: u64 = theme_w.iter().map(|(_, w)| w).sum();
        // Extra themes per request beyond the first, as in the calibration.
        let extra_rate = if n_requests == 0 {
            0.0
        } else {
            (n_mentions.saturating_sub(n_requests)) as f64 / n_requests as f64
        };
        for sector in &sectors {
            let n = draw(
                rng,
                cell(&cal.requests.by_sector.cells, sector, &service) as f64 * scale,
            );
            for _ in 0..n {
                let mut themes = Vec::new();
                let wanted = 1 + usize::from(rng.random::<f64>() < extra_rate);
                for _ in 0..8 {
                    if themes.len() >= wanted {
                        break;
                    }
                    if let Some(t) = weighted(rng, &theme_w)
                        && !themes.iter().any(|x: &String| x == t)
                    {
                        themes.push(t.to_owned());
                    }
                }
                if themes.is_empty() {
                    themes.push("autres".to_owned());
                }
                out.push(Request {
                    service_type: service.clone(),
                    sector: (*sector).to_owned(),
                    profession: weighted(rng, &prof_w).unwrap_or("ne_sais_pas").to_owned(),
                    contact_mode: weighted(rng, &mode_w).unwrap_or("autre").to_owned(),
                    themes,
                    ..Request::default()
                });
            }
        }
    }
    out
}

fn expand(counts: &BTreeMap<String, u64>, scale: f64, rng: &mut ChaCha8Rng) -> Vec<String> {
    counts
        .iter()
        .flat_map(|(code, n)| {
            let n = if (scale - 1.0).abs() < f64::EPSILON {
                *n
            } else {
                draw(rng, *n as f64 * scale)
            };
            std::iter::repeat_n(code.clone(), n as usize).collect::<Vec<_>>()
        })
        .collect()
}

fn add_days(date: &str, days: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(date, &format)
        .ok()
        .and_then(|d| d.checked_add(time::Duration::days(days)))
        .and_then(|d| d.format(&format).ok())
        .unwrap_or_else(|| date.to_owned())
}

fn loans(
    rng: &mut ChaCha8Rng,
    cal: &Calibration,
    scale: f64,
    year: i32,
    n_orgs: usize,
) -> Vec<Loan> {
    let mut types = expand(&cal.loans.by_document_type, scale, rng);
    // Themes of loans: the published top themes, the rest spread over others.
    let mut themes = Vec::new();
    let others: Vec<&str> = vocab::get()
        .themes
        .codes()
        .filter(|c| !cal.loans.by_theme_top.contains_key(*c))
        .collect();
    for code in expand(&cal.loans.by_theme_top, scale, rng) {
        if code == "other_themes" {
            themes.push(others[rng.random_range(0..others.len())].to_owned());
        } else {
            themes.push(code);
        }
    }
    themes.shuffle(rng);
    types.shuffle(rng);
    types
        .into_iter()
        .enumerate()
        .map(|(i, document_type)| {
            let out_date = random_date(rng, year);
            let due_date = add_days(&out_date, 21);
            let returned = rng
                .random_bool(0.9)
                .then(|| add_days(&out_date, rng.random_range(3..30)));
            Loan {
                id: 0,
                item_ref: format!(
                    "{}-{:05}",
                    document_type.to_uppercase().replace('_', ""),
                    rng.random_range(1..2000)
                ),
                document_type,
                theme: themes.get(i).cloned(),
                organisation_id: Some(rng.random_range(1..=n_orgs as i64)),
                out_date,
                due_date,
                returned_date: returned,
            }
        })
        .collect()
}

fn accompaniments(
    rng: &mut ChaCha8Rng,
    cal: &Calibration,
    scale: f64,
    year: i32,
    communes: &[String],
    n_orgs: usize,
) -> Vec<Accompaniment> {
    let mut schemes = expand(&cal.accompaniments.by_scheme, scale, rng);
    schemes.shuffle(rng);
    let mut out: Vec<Accompaniment> = schemes
        .into_iter()
        .enumerate()
        .map(|(i, scheme)| Accompaniment {
            id: 0,
            title: format!("Accompagnement de projet n° {}", i + 1),
            scheme,
            commune: communes[rng.random_range(0..communes.len())].clone(),
            start_date: random_date(rng, year),
            themes: Vec::new(),
            axes: Vec::new(),
            organisation_id: Some(rng.random_range(1..=n_orgs as i64)),
            note: String::new(),
        })
        .collect();
    if out.is_empty() {
        return out;
    }
    let n = out.len();
    let axes = expand(&cal.accompaniments.by_axis, scale, rng);
    let themes = expand(&cal.accompaniments.by_theme_top, scale, rng);
    for (i, axis) in axes.into_iter().enumerate() {
        let a = &mut out[i % n];
        if !a.axes.contains(&axis) {
            a.axes.push(axis);
        }
    }
    for (i, theme) in themes.into_iter().enumerate() {
        let a = &mut out[i % n];
        if !a.themes.contains(&theme) {
            a.themes.push(theme);
        }
    }
    for a in &mut out {
        if a.themes.is_empty() {
            a.themes.push("autres".to_owned());
        }
    }
    out
}

fn events(rng: &mut ChaCha8Rng, centre: &CentreId, scale: f64, year: i32) -> Vec<Event> {
    let n = ((14.0 * scale).round() as usize).max(2);
    let titles = [
        ("formation", "Formation aux compétences psychosociales"),
        ("atelier", "Atelier d'échange de pratiques EVRAS"),
        ("concertation", "Concertation locale Assuétudes"),
        ("atelier", "Présentation d'outils pédagogiques"),
        ("formation", "Formation à l'animation en photo-expression"),
    ];
    let professions: Vec<&str> = vocab::get().requester_professions.codes().collect();
    // Neighbouring centres co-organise some events (counted once network-wide).
    let partners: Vec<CentreId> = CentreId::all_ids()
        .into_iter()
        .filter(|c| c != centre)
        .collect();
    (0..n)
        .map(|i| {
            let (kind, title) = titles[i % titles.len()];
            let start_date = random_date(rng, year);
            let mut organisers = vec![centre.to_string()];
            if i % 5 == 4 {
                let mut shuffled = partners.clone();
                shuffled.shuffle(rng);
                organisers.extend(shuffled.into_iter().take(2).map(|c| c.to_string()));
            }
            let participants = (0..3)
                .map(|_| {
                    (
                        professions[rng.random_range(0..professions.len())].to_owned(),
                        rng.random_range(2..15),
                    )
                })
                .collect();
            Event {
                id: 0,
                kind: kind.to_owned(),
                title: format!("{title} ({})", i + 1),
                end_date: start_date.clone(),
                start_date,
                organisers,
                participants,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ct() -> CentreId {
        CentreId::new("charleroi-thuin").unwrap()
    }

    #[test]
    fn calibration_only_for_the_published_centre_and_year() {
        let opts = SeedOptions {
            centre: CentreId::new("namur").unwrap(),
            year: 2021,
            calibration: true,
            scale: 1.0,
            seed: 1,
        };
        assert!(matches!(plan(&opts), Err(SeedError::NoCalibration { .. })));
        let opts = SeedOptions {
            centre: ct(),
            year: 2022,
            ..opts
        };
        assert!(matches!(plan(&opts), Err(SeedError::NoCalibration { .. })));
    }

    #[test]
    fn plans_are_deterministic_and_every_request_has_a_theme() {
        let opts = SeedOptions {
            centre: ct(),
            year: 2021,
            calibration: true,
            scale: 1.0,
            seed: 7,
        };
        let a = plan(&opts).unwrap();
        let b = plan(&opts).unwrap();
        assert_eq!(a.n_requests(), 785);
        let dates = |p: &Plan| -> Vec<String> {
            p.months
                .iter()
                .flat_map(|m| m.requests.iter().map(|q| q.date.clone()))
                .collect()
        };
        assert_eq!(dates(&a), dates(&b));
        for m in &a.months {
            for q in &m.requests {
                q.validate().unwrap();
            }
        }
        let mentions: usize = a
            .months
            .iter()
            .flat_map(|m| &m.requests)
            .map(|q| q.themes.len())
            .sum();
        assert_eq!(mentions, 933);
    }
}

/// Row ids of the organisations and persons written for a plan, so that
/// plan positions (1-based) map to database ids.
#[derive(Debug, Default)]
pub struct IdMap {
    organisations: Vec<i64>,
    persons: Vec<i64>,
}

impl IdMap {
    fn org(&self, position: Option<i64>) -> Option<i64> {
        position.and_then(|p| {
            self.organisations
                .get(usize::try_from(p - 1).ok()?)
                .copied()
        })
    }
    fn person(&self, position: Option<i64>) -> Option<i64> {
        position.and_then(|p| self.persons.get(usize::try_from(p - 1).ok()?).copied())
    }
}

/// Writes the plan's organisations and persons (one transaction).
pub fn write_people(
    tx: &rusqlite::Transaction<'_>,
    plan: &Plan,
) -> Result<IdMap, crate::records::OpError> {
    let mut ids = IdMap::default();
    for o in &plan.organisations {
        ids.organisations
            .push(crate::records::save_organisation(tx, o)?);
    }
    for p in &plan.persons {
        let mut p = p.clone();
        p.organisation_id = ids.org(p.organisation_id);
        ids.persons.push(crate::records::save_person(tx, &p)?);
    }
    Ok(ids)
}

/// Writes one month of the plan (one transaction).
pub fn write_month(
    tx: &rusqlite::Transaction<'_>,
    month: &MonthPlan,
    ids: &IdMap,
) -> Result<usize, crate::records::OpError> {
    use crate::records::{save_accompaniment, save_event, save_loan, save_request};
    for q in &month.requests {
        let mut q = q.clone();
        q.organisation_id = ids.org(q.organisation_id);
        q.person_id = ids.person(q.person_id);
        save_request(tx, &q)?;
    }
    for l in &month.loans {
        let mut l = l.clone();
        l.organisation_id = ids.org(l.organisation_id);
        save_loan(tx, &l)?;
    }
    for a in &month.accompaniments {
        let mut a = a.clone();
        a.organisation_id = ids.org(a.organisation_id);
        save_accompaniment(tx, &a)?;
    }
    for e in &month.events {
        save_event(tx, e)?;
    }
    Ok(month.requests.len() + month.loans.len() + month.accompaniments.len() + month.events.len())
}
