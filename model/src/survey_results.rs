//! The results of a joint survey, computed from a merged survey document:
//! per question, counts and percentages with their numerator and
//! denominator (one decimal, 59/71 → 83.1 %), a per-centre breakdown under
//! the small-cell rule, and response rates against the reference
//! population, network-wide and per centre. Rendered as a French table, as
//! CSV with French headers, or as JSON.
//!
//! Pure functions over [`crate::docs::survey`] reads: node and hub print the
//! same figures from the same document. Network totals are always exact;
//! the small-cell rule (see [`crate::stats::shown`]) masks per-centre cells
//! only, and a per-centre percentage whose count is masked is not shown
//! either, since it would give the count away.

use std::collections::BTreeMap;

use automerge::ReadDoc;
use serde::Serialize;

use crate::centres::CentreId;
use crate::docs::survey::{
    self, CentreTally, CodeRef, CodeSet, Question, QuestionKind, Respondent, Stage,
};
use crate::stats::shown;

/// The small-cell threshold committees use unless told otherwise.
pub const DEFAULT_SMALL_CELLS: u64 = 5;

/// A share: numerator over denominator, shown with one decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fraction {
    pub numerator: u64,
    pub denominator: u64,
}

impl Fraction {
    pub fn new(numerator: u64, denominator: u64) -> Fraction {
        Fraction {
            numerator,
            denominator,
        }
    }

    /// The percentage in tenths, rounded half up (59/71 → 831); `None` for
    /// an empty base.
    pub fn tenths(&self) -> Option<u64> {
        if self.denominator == 0 {
            return None;
        }
        let n = u128::from(self.numerator) * 1000;
        let d = u128::from(self.denominator);
        u64::try_from((n + d / 2) / d).ok()
    }

    /// `83.1` (for CSV and JSON), empty for an empty base.
    pub fn percent(&self) -> String {
        self.tenths()
            .map(|t| format!("{}.{}", t / 10, t % 10))
            .unwrap_or_default()
    }

    /// `83,1 %` (for French tables), `—` for an empty base.
    pub fn percent_fr(&self) -> String {
        self.tenths()
            .map(|t| format!("{},{} %", t / 10, t % 10))
            .unwrap_or_else(|| "—".to_owned())
    }

    pub fn percent_value(&self) -> Option<f64> {
        // Tenths are small integers: the conversion is exact.
        self.tenths().map(|t| t as f64 / 10.0)
    }
}

impl Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Shown::Exact(n) => s.serialize_u64(*n),
            Shown::Masked(text) => s.serialize_str(text),
        }
    }
}

/// A per-centre count as the view may show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Exact(u64),
    /// Below the small-cell threshold: `< 5`.
    Masked(String),
}

impl Shown {
    fn new(n: u64, threshold: Option<u64>) -> Shown {
        let text = shown(n, threshold);
        if text == n.to_string() {
            Shown::Exact(n)
        } else {
            Shown::Masked(text)
        }
    }

    pub fn text(&self) -> String {
        match self {
            Shown::Exact(n) => n.to_string(),
            Shown::Masked(t) => t.clone(),
        }
    }
}

/// Response of one centre's territory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CentreRate {
    pub centre: String,
    pub population: u64,
    pub respondents: Shown,
    /// `None` when the count is masked.
    pub rate: Option<String>,
}

/// One cell of a question: an option, a matrix row × option, a scale
/// value, yes/no, or a code applied to free text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellResult {
    pub code: String,
    pub label: String,
    pub count: u64,
    /// `count / respondents who answered the question`.
    pub share: Fraction,
    pub percent: String,
    pub per_centre: BTreeMap<String, Shown>,
}

/// Number questions: network summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumberSummary {
    pub n: u64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The results of one question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionResult {
    pub code: String,
    pub label: String,
    pub kind: String,
    /// Respondents who answered it: the base of its percentages.
    pub answered: u64,
    pub answered_per_centre: BTreeMap<String, Shown>,
    pub cells: Vec<CellResult>,
    pub number: Option<NumberSummary>,
}

/// The results of a survey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurveyResults {
    pub survey: String,
    pub title: String,
    pub stage: Stage,
    pub version: u64,
    pub answers_shared: bool,
    pub population: u64,
    pub respondents: u64,
    pub response_rate: Fraction,
    pub response_rate_percent: String,
    pub centres: Vec<CentreRate>,
    /// Answers per questionnaire version they answered.
    pub versions: BTreeMap<u64, u64>,
    pub questions: Vec<QuestionResult>,
    /// The small-cell threshold applied to per-centre cells, if any.
    pub small_cells: Option<u64>,
}

impl SurveyResults {
    /// A question's results by code.
    pub fn question(&self, code: &str) -> Option<&QuestionResult> {
        self.questions.iter().find(|q| q.code == code)
    }
}

impl QuestionResult {
    pub fn cell(&self, code: &str) -> Option<&CellResult> {
        self.cells.iter().find(|c| c.code == code)
    }
}

/// Results of a merged survey document. `small_cells`: the threshold of
/// the small-cell rule, `None` to show every count.
pub fn from_doc<R: ReadDoc>(survey_id: &str, doc: &R, small_cells: Option<u64>) -> SurveyResults {
    let questions = survey::ordered_questions(doc);
    let population: Vec<Respondent> = survey::population(doc).into_values().collect();
    let tallies = survey::tallies(doc);
    let codes = survey::survey_codes(doc);
    let mut results = compute(&questions, &population, &tallies, &codes, small_cells);
    results.survey = survey_id.to_owned();
    results.title = survey::title(doc);
    results.stage = survey::stage_at(doc, None);
    results.version = survey::version_at(doc, None);
    results.answers_shared = survey::answers_shared_at(doc, None);
    results
}

/// Results from the parts: questions in display order, the reference
/// population, per-centre counts and the survey's own codes.
pub fn compute(
    questions: &[Question],
    population: &[Respondent],
    tallies: &BTreeMap<CentreId, CentreTally>,
    survey_codes: &BTreeMap<String, String>,
    small_cells: Option<u64>,
) -> SurveyResults {
    let mut pop_per_centre: BTreeMap<String, u64> = BTreeMap::new();
    for r in population {
        *pop_per_centre.entry(r.centre.to_string()).or_insert(0) += 1;
    }
    for c in tallies.keys() {
        pop_per_centre.entry(c.to_string()).or_insert(0);
    }
    let respondents: u64 = tallies.values().map(|t| t.respondents).sum();
    let n_population = u64::try_from(population.len()).unwrap_or(u64::MAX);
    let centres = pop_per_centre
        .iter()
        .map(|(centre, pop)| {
            let n = CentreId::new(centre)
                .ok()
                .and_then(|c| tallies.get(&c))
                .map(|t| t.respondents)
                .unwrap_or(0);
            let shown_n = Shown::new(n, small_cells);
            let rate = match shown_n {
                Shown::Exact(_) => Some(Fraction::new(n, *pop).percent()),
                Shown::Masked(_) => None,
            };
            CentreRate {
                centre: centre.clone(),
                population: *pop,
                respondents: shown_n,
                rate,
            }
        })
        .collect();
    let mut versions = BTreeMap::new();
    for t in tallies.values() {
        for (v, n) in &t.versions {
            *versions.entry(*v).or_insert(0) += n;
        }
    }
    let questions = questions
        .iter()
        .map(|q| question_result(q, tallies, survey_codes, small_cells))
        .collect();
    let rate = Fraction::new(respondents, n_population);
    SurveyResults {
        survey: String::new(),
        title: String::new(),
        stage: Stage::Draft,
        version: 0,
        answers_shared: false,
        population: n_population,
        respondents,
        response_rate: rate,
        response_rate_percent: rate.percent(),
        centres,
        versions,
        questions,
        small_cells,
    }
}

/// The cells a question shows, in questionnaire order: (code, label).
fn cells_of(
    q: &Question,
    tallies: &BTreeMap<CentreId, CentreTally>,
    survey_codes: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    match &q.kind {
        QuestionKind::SingleChoice | QuestionKind::MultipleChoice => q
            .options
            .iter()
            .map(|o| (o.code.clone(), o.label.clone()))
            .collect(),
        QuestionKind::YesNo => vec![
            ("oui".to_owned(), "Oui".to_owned()),
            ("non".to_owned(), "Non".to_owned()),
        ],
        QuestionKind::Scale { min, max } => (*min..=*max)
            .map(|n| (n.to_string(), n.to_string()))
            .collect(),
        QuestionKind::Matrix => q
            .rows
            .iter()
            .flat_map(|r| {
                q.options.iter().map(move |o| {
                    (
                        format!("{}/{}", r.code, o.code),
                        format!("{} — {}", r.label, o.label),
                    )
                })
            })
            .collect(),
        QuestionKind::FreeText => {
            let mut seen: Vec<String> = tallies
                .values()
                .filter_map(|t| t.questions.get(&q.code))
                .flat_map(|t| t.counts.keys().cloned())
                .collect();
            seen.sort();
            seen.dedup();
            seen.into_iter()
                .map(|cell| {
                    let label = cell
                        .split_once(':')
                        .and_then(|(list, code)| {
                            CodeSet::from_code(list).map(|set| CodeRef {
                                set,
                                code: code.to_owned(),
                            })
                        })
                        .map(|r| r.label(survey_codes))
                        .unwrap_or_else(|| cell.clone());
                    (cell, label)
                })
                .collect()
        }
        QuestionKind::Number => Vec::new(),
    }
}

fn question_result(
    q: &Question,
    tallies: &BTreeMap<CentreId, CentreTally>,
    survey_codes: &BTreeMap<String, String>,
    small_cells: Option<u64>,
) -> QuestionResult {
    let per_centre = |f: &dyn Fn(&CentreTally) -> u64| -> (u64, BTreeMap<String, Shown>) {
        let mut total = 0;
        let mut map = BTreeMap::new();
        for (centre, t) in tallies {
            let n = f(t);
            total += n;
            map.insert(centre.to_string(), Shown::new(n, small_cells));
        }
        (total, map)
    };
    let (answered, answered_per_centre) =
        per_centre(&|t: &CentreTally| t.questions.get(&q.code).map(|x| x.answered).unwrap_or(0));
    let cells = cells_of(q, tallies, survey_codes)
        .into_iter()
        .map(|(code, label)| {
            let (count, per) = per_centre(&|t: &CentreTally| {
                t.questions
                    .get(&q.code)
                    .and_then(|x| x.counts.get(&code))
                    .copied()
                    .unwrap_or(0)
            });
            let share = Fraction::new(count, answered);
            CellResult {
                percent: share.percent(),
                code,
                label,
                count,
                share,
                per_centre: per,
            }
        })
        .collect();
    let number = (q.kind == QuestionKind::Number).then(|| {
        let parts: Vec<_> = tallies
            .values()
            .filter_map(|t| t.questions.get(&q.code))
            .collect();
        let sum: f64 = parts.iter().map(|t| t.sum).sum();
        let min = parts.iter().filter_map(|t| t.min).reduce(f64::min);
        let max = parts.iter().filter_map(|t| t.max).reduce(f64::max);
        NumberSummary {
            n: answered,
            // Counts are far below 2^53: exact as f64.
            mean: (answered > 0).then(|| sum / answered as f64),
            min,
            max,
        }
    });
    QuestionResult {
        code: q.code.clone(),
        label: q.label.clone(),
        kind: q.kind.code().to_owned(),
        answered,
        answered_per_centre,
        cells,
        number,
    }
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())))
}

fn lpad(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(s.chars().count())))
}

fn number_fr(x: f64) -> String {
    format!("{x:.1}").replace('.', ",")
}

impl SurveyResults {
    fn centre_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = self
            .questions
            .iter()
            .flat_map(|q| q.answered_per_centre.keys().cloned())
            .collect();
        cols.sort();
        cols.dedup();
        cols
    }

    /// A French table for the terminal.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Enquête {} — {}\nÉtat : {} ; questionnaire version {}{}\n\n",
            self.survey,
            if self.title.is_empty() {
                "(sans titre)"
            } else {
                &self.title
            },
            self.stage.label(),
            self.version,
            if self.answers_shared {
                " ; réponses brutes partagées"
            } else {
                " ; seuls les agrégats sont partagés"
            }
        );
        out.push_str(&format!(
            "Taux de réponse : {} / {} = {}\n",
            self.respondents,
            self.population,
            self.response_rate.percent_fr()
        ));
        let cw = self
            .centres
            .iter()
            .map(|c| c.centre.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        out.push_str(&format!(
            "  {}  {}  {}  {}\n",
            pad("Centre", cw),
            lpad("Répondants", 10),
            lpad("Population", 10),
            lpad("Taux", 8)
        ));
        for c in &self.centres {
            let rate = c
                .rate
                .as_ref()
                .map(|r| format!("{} %", r.replace('.', ",")))
                .unwrap_or_else(|| "—".to_owned());
            out.push_str(&format!(
                "  {}  {}  {}  {}\n",
                pad(&c.centre, cw),
                lpad(&c.respondents.text(), 10),
                lpad(&c.population.to_string(), 10),
                lpad(&rate, 8)
            ));
        }
        if !self.versions.is_empty() {
            let v: Vec<String> = self
                .versions
                .iter()
                .map(|(v, n)| format!("v{v} : {n}"))
                .collect();
            out.push_str(&format!(
                "Réponses par version du questionnaire : {}\n",
                v.join(", ")
            ));
        }
        let cols = self.centre_columns();
        for (i, q) in self.questions.iter().enumerate() {
            out.push_str(&format!(
                "\nQ{}. {} ({}) — base : {} répondant(s)\n",
                i + 1,
                q.label,
                QuestionKind::from_code(&q.kind, (0, 1))
                    .map(|k| k.label())
                    .unwrap_or(&q.kind),
                q.answered
            ));
            if let Some(n) = &q.number {
                let f = |x: Option<f64>| x.map(number_fr).unwrap_or_else(|| "—".to_owned());
                out.push_str(&format!(
                    "  moyenne {} ; minimum {} ; maximum {}\n",
                    f(n.mean),
                    f(n.min),
                    f(n.max)
                ));
                continue;
            }
            if q.cells.is_empty() {
                out.push_str("  (aucune réponse codée)\n");
                continue;
            }
            let lw = q
                .cells
                .iter()
                .map(|c| c.label.chars().count())
                .max()
                .unwrap_or(8)
                .clamp(8, 48);
            let mut head = format!(
                "  {}  {}  {}",
                pad("Modalité", lw),
                lpad("Effectif", 8),
                lpad("%", 8)
            );
            for c in &cols {
                head.push_str("  ");
                head.push_str(&lpad(c, c.chars().count().max(5)));
            }
            out.push_str(&head);
            out.push('\n');
            for cell in &q.cells {
                let label: String = cell.label.chars().take(lw).collect();
                let mut line = format!(
                    "  {}  {}  {}",
                    pad(&label, lw),
                    lpad(&cell.count.to_string(), 8),
                    lpad(&cell.share.percent_fr(), 8)
                );
                for c in &cols {
                    line.push_str("  ");
                    let v = cell.per_centre.get(c).map(Shown::text).unwrap_or_default();
                    line.push_str(&lpad(&v, c.chars().count().max(5)));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        if let Some(t) = self.small_cells {
            out.push_str(&format!(
                "\nRègle des petits effectifs : par centre, les effectifs de 1 à {} sont affichés « < {t} » ; les totaux sont exacts.\n",
                t.saturating_sub(1)
            ));
        }
        out
    }

    /// CSV with French headers: one line per cell, then per-centre columns.
    /// The first lines give the response rates (`question` = `participation`).
    pub fn to_csv(&self) -> String {
        let cols = self.centre_columns();
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = [
            "question",
            "libelle_question",
            "modalite",
            "libelle_modalite",
            "effectif",
            "base",
            "pourcentage",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        header.extend(cols.iter().cloned());
        // Writing into a Vec cannot fail.
        let _ = w.write_record(&header);
        let mut rate = vec![
            "participation".to_owned(),
            "Taux de réponse".to_owned(),
            "reseau".to_owned(),
            "Réseau".to_owned(),
            self.respondents.to_string(),
            self.population.to_string(),
            self.response_rate.percent(),
        ];
        for c in &cols {
            rate.push(
                self.centres
                    .iter()
                    .find(|r| &r.centre == c)
                    .map(|r| r.respondents.text())
                    .unwrap_or_default(),
            );
        }
        let _ = w.write_record(&rate);
        for q in &self.questions {
            if let Some(n) = &q.number {
                let mut rec = vec![
                    q.code.clone(),
                    q.label.clone(),
                    "moyenne".to_owned(),
                    "Moyenne".to_owned(),
                    n.mean.map(|m| format!("{m:.1}")).unwrap_or_default(),
                    q.answered.to_string(),
                    String::new(),
                ];
                rec.extend(cols.iter().map(|_| String::new()));
                let _ = w.write_record(&rec);
            }
            for cell in &q.cells {
                let mut rec = vec![
                    q.code.clone(),
                    q.label.clone(),
                    cell.code.clone(),
                    cell.label.clone(),
                    cell.count.to_string(),
                    q.answered.to_string(),
                    cell.percent.clone(),
                ];
                for c in &cols {
                    rec.push(cell.per_centre.get(c).map(Shown::text).unwrap_or_default());
                }
                let _ = w.write_record(&rec);
            }
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_decimal_rounded_half_up() {
        assert_eq!(Fraction::new(59, 71).percent(), "83.1");
        assert_eq!(Fraction::new(66, 71).percent(), "93.0");
        assert_eq!(Fraction::new(56, 71).percent(), "78.9");
        assert_eq!(Fraction::new(71, 195).percent(), "36.4");
        assert_eq!(Fraction::new(1, 8).percent(), "12.5");
        assert_eq!(Fraction::new(1, 16).percent(), "6.3");
        assert_eq!(Fraction::new(59, 71).percent_fr(), "83,1 %");
        assert_eq!(Fraction::new(3, 0).percent(), "");
        assert_eq!(Fraction::new(0, 7).percent_value(), Some(0.0));
    }

    #[test]
    fn small_cells_mask_per_centre_counts_only() {
        let q = Question {
            code: "q".into(),
            label: "Q".into(),
            kind: QuestionKind::YesNo,
            options: vec![],
            rows: vec![],
            coding: None,
            position: 1,
        };
        let mut tallies = BTreeMap::new();
        for (c, yes, no) in [("namur", 3u64, 7u64), ("liege", 6, 0)] {
            let mut t = CentreTally {
                respondents: yes + no,
                ..CentreTally::default()
            };
            let qt = t.questions.entry("q".into()).or_default();
            qt.answered = yes + no;
            qt.counts.insert("oui".into(), yes);
            qt.counts.insert("non".into(), no);
            tallies.insert(CentreId::new(c).unwrap(), t);
        }
        let pop: Vec<Respondent> = (0..40)
            .map(|i| {
                Respondent::new(
                    &format!("PCS {i}"),
                    &[],
                    CentreId::new(if i % 2 == 0 { "namur" } else { "liege" }).unwrap(),
                )
            })
            .collect();
        let r = compute(&[q], &pop, &tallies, &BTreeMap::new(), Some(5));
        let yes = r.question("q").unwrap().cell("oui").unwrap();
        assert_eq!(yes.count, 9, "totals stay exact");
        assert_eq!(yes.percent, "56.3");
        assert_eq!(yes.per_centre["namur"], Shown::Masked("< 5".into()));
        assert_eq!(yes.per_centre["liege"], Shown::Exact(6));
        let no = r.question("q").unwrap().cell("non").unwrap();
        assert_eq!(
            no.per_centre["liege"],
            Shown::Exact(0),
            "zero is not masked"
        );
        assert_eq!(r.response_rate_percent, "40.0");
        assert!(r.to_table().contains("< 5"));
        assert!(r.to_csv().starts_with("question,libelle_question,modalite"));
        let open = compute(&[], &pop, &tallies, &BTreeMap::new(), None);
        assert!(open.centres.iter().all(|c| c.rate.is_some()));
    }
}
