//! `clps-node survey …`: joint surveys for staff, in French. Creation and
//! settings, the co-edited questionnaire (from flags or a TOML/JSON file),
//! the lifecycle, the reference population (CSV), answers (asked question
//! by question in the terminal, or read from a file), coding of free text
//! and results.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use clps_model::docs::survey::{
    AnswerValue, Choice, CodeSet, Question, QuestionChange, QuestionKind, SurveySettings,
    parse_yes_no,
};
use clps_model::survey_results::DEFAULT_SMALL_CELLS;
use serde::Deserialize;

use crate::cli::CliError;
use crate::store::{Store, StoreError};
use crate::survey::{self, Step};

#[derive(Debug, Subcommand)]
pub enum SurveyCommand {
    /// Crée une enquête commune (document partagé survey/ID).
    Create {
        /// Identifiant court : a-z, 0-9, '-' ou '_' (par exemple pcs-2020).
        id: String,
        #[arg(long)]
        title: String,
        /// Les réponses brutes sont partagées ; sinon seuls les comptages quittent le centre.
        #[arg(long)]
        share_answers: bool,
    },
    /// Liste les enquêtes connues de ce nœud.
    List,
    /// Affiche une enquête : état, questionnaire, population.
    Show { id: String },
    /// Inscrit ce centre parmi les participants.
    Join { id: String },
    /// Questionnaire : ajouter, modifier, retirer, importer des questions.
    #[command(subcommand)]
    Question(QuestionCommand),
    /// Ouvre l'enquête aux réponses.
    Open {
        id: String,
        /// Date d'ouverture prévue (AAAA-MM-JJ).
        #[arg(long)]
        from: Option<String>,
        /// Date de clôture prévue (AAAA-MM-JJ).
        #[arg(long)]
        to: Option<String>,
    },
    /// Clôture l'enquête : plus aucune réponse.
    Close { id: String },
    /// Publie les résultats.
    Publish { id: String },
    /// Importe la population de référence (CSV : organisation,communes,centre ; communes séparées par « ; »).
    Population { id: String, file: PathBuf },
    /// Enregistre la réponse d'une organisation (question par question, ou depuis un fichier).
    Answer {
        id: String,
        /// Organisation répondante (nom ou clé).
        #[arg(long)]
        respondent: Option<String>,
        /// Réponses en JSON ou TOML : { respondent, answers = { question = valeur } } ou [[responses]].
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Ajoute un code propre à l'enquête pour coder les textes libres.
    AddCode {
        id: String,
        code: String,
        label: String,
    },
    /// Code une réponse en texte libre (determinant_layers, ottawa_axes ou code de l'enquête).
    Code {
        id: String,
        #[arg(long)]
        respondent: String,
        #[arg(long)]
        question: String,
        /// Code, ou liste:code (par exemple ottawa_axes:action_communautaire).
        #[arg(long)]
        code: String,
    },
    /// Résultats calculés sur le document fusionné que détient ce nœud.
    Results {
        id: String,
        #[arg(long, value_enum, default_value_t = ResultsFormat::Table)]
        format: ResultsFormat,
        /// Seuil de la règle des petits effectifs par centre (5 par défaut).
        #[arg(long, conflicts_with = "no_small_cells")]
        small_cells: Option<u64>,
        /// Affiche tous les effectifs par centre.
        #[arg(long)]
        no_small_cells: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultsFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum QuestionCommand {
    /// Ajoute une question.
    Add(QuestionArgs),
    /// Modifie une question : seuls les champs donnés changent (options et lignes sont remplacées).
    Edit(QuestionArgs),
    /// Retire une question.
    Remove { id: String, code: String },
    /// Ajoute ou met à jour les questions d'un fichier TOML ou JSON (une seule version).
    Import { id: String, file: PathBuf },
}

#[derive(Debug, Args)]
pub struct QuestionArgs {
    /// Enquête.
    id: String,
    /// Code de la question (a-z, 0-9, '_', '-').
    #[arg(long)]
    code: String,
    #[arg(long)]
    label: Option<String>,
    /// single_choice, multiple_choice, scale, number, yes_no, free_text ou matrix.
    #[arg(long)]
    kind: Option<String>,
    /// Option : code=Libellé, ou un libellé seul (répétable).
    #[arg(long = "option")]
    options: Vec<String>,
    /// Ligne d'une matrice : code=Libellé (répétable).
    #[arg(long = "row")]
    rows: Vec<String>,
    /// Bornes d'une échelle.
    #[arg(long)]
    min: Option<i64>,
    #[arg(long)]
    max: Option<i64>,
    /// Liste de codage des textes libres : determinant_layers, ottawa_axes ou survey.
    #[arg(long)]
    coding: Option<String>,
    /// Rang d'affichage.
    #[arg(long)]
    position: Option<u64>,
}

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

fn choice(spec: &str) -> Choice {
    match spec.split_once('=') {
        Some((code, label)) => Choice::new(code.trim(), label.trim()),
        None => Choice::new(&crate::text::slug(spec), spec.trim()),
    }
}

fn coding(s: Option<&str>) -> Result<Option<CodeSet>, CliError> {
    s.map(|c| {
        CodeSet::from_code(c).ok_or_else(|| {
            usage(format!(
                "liste de codage inconnue « {c} » (determinant_layers, ottawa_axes ou survey)"
            ))
        })
    })
    .transpose()
}

fn kind(code: &str, min: Option<i64>, max: Option<i64>) -> Result<QuestionKind, CliError> {
    QuestionKind::from_code(code, (min.unwrap_or(1), max.unwrap_or(5))).ok_or_else(|| {
        usage(format!(
            "type de question inconnu « {code} » (single_choice, multiple_choice, scale, number, yes_no, free_text, matrix)"
        ))
    })
}

impl QuestionArgs {
    /// Applies the flags onto `base` (an existing question, or a new one).
    fn apply(self, base: Option<Question>) -> Result<Question, CliError> {
        let mut q = match base {
            Some(q) => q,
            None => Question {
                code: self.code.clone(),
                label: self
                    .label
                    .clone()
                    .ok_or_else(|| usage("indiquez le libellé de la question (--label)"))?,
                kind: kind(
                    self.kind
                        .as_deref()
                        .ok_or_else(|| usage("indiquez le type de la question (--kind)"))?,
                    self.min,
                    self.max,
                )?,
                options: Vec::new(),
                rows: Vec::new(),
                coding: None,
                position: 0,
            },
        };
        if let Some(l) = self.label {
            q.label = l;
        }
        if let Some(k) = self.kind {
            q.kind = kind(&k, self.min, self.max)?;
        } else if let QuestionKind::Scale { min, max } = q.kind {
            q.kind = QuestionKind::Scale {
                min: self.min.unwrap_or(min),
                max: self.max.unwrap_or(max),
            };
        }
        if !self.options.is_empty() {
            q.options = self.options.iter().map(|s| choice(s)).collect();
        }
        if !self.rows.is_empty() {
            q.rows = self.rows.iter().map(|s| choice(s)).collect();
        }
        if let Some(c) = coding(self.coding.as_deref())? {
            q.coding = Some(c);
        }
        if let Some(p) = self.position {
            q.position = p;
        }
        q.check()
            .map_err(|e| usage(format!("question « {} » incomplète : {e}", q.code)))?;
        Ok(q)
    }
}

/// A question as written in a questionnaire file.
#[derive(Debug, Deserialize)]
struct QuestionSpec {
    code: String,
    label: String,
    kind: String,
    #[serde(default)]
    options: Vec<ChoiceSpec>,
    #[serde(default)]
    rows: Vec<ChoiceSpec>,
    min: Option<i64>,
    max: Option<i64>,
    coding: Option<String>,
    #[serde(default)]
    position: u64,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChoiceSpec {
    Label(String),
    Full { code: String, label: String },
}

impl ChoiceSpec {
    fn choice(&self) -> Choice {
        match self {
            ChoiceSpec::Label(l) => choice(l),
            ChoiceSpec::Full { code, label } => Choice::new(code, label),
        }
    }
}

#[derive(Debug, Deserialize)]
struct QuestionFile {
    questions: Vec<QuestionSpec>,
}

fn read_value(path: &Path) -> Result<serde_json::Value, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("lecture de {} impossible : {e}", path.display())))?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if is_toml {
        toml::from_str(&text)
            .map_err(|e| usage(format!("{} n'est pas un TOML valide : {e}", path.display())))
    } else {
        serde_json::from_str(&text)
            .map_err(|e| usage(format!("{} n'est pas un JSON valide : {e}", path.display())))
    }
}

/// Reads a questionnaire file (`questions = [...]`).
pub fn read_questions(path: &Path) -> Result<Vec<Question>, CliError> {
    let file: QuestionFile = serde_json::from_value(read_value(path)?).map_err(|e| {
        usage(format!(
            "{} : questionnaire illisible ({e}) ; attendu questions = [{{ code, label, kind, options }}]",
            path.display()
        ))
    })?;
    file.questions
        .into_iter()
        .map(|s| {
            let q = Question {
                kind: kind(&s.kind, s.min, s.max)?,
                options: s.options.iter().map(ChoiceSpec::choice).collect(),
                rows: s.rows.iter().map(ChoiceSpec::choice).collect(),
                coding: coding(s.coding.as_deref())?,
                position: s.position,
                code: s.code,
                label: s.label,
            };
            q.check()
                .map_err(|e| usage(format!("question « {} » incomplète : {e}", q.code)))?;
            Ok(q)
        })
        .collect()
}

/// One respondent's answers, by question code.
pub type Answers = BTreeMap<String, AnswerValue>;

/// Reads an answers file: one `{ respondent, answers }` or `responses = [...]`.
/// Values are checked against `questions`.
pub fn read_answers(
    path: &Path,
    questions: &BTreeMap<String, Question>,
) -> Result<Vec<(String, Answers)>, CliError> {
    let value = read_value(path)?;
    let entries: Vec<serde_json::Value> = match &value {
        serde_json::Value::Array(items) => items.clone(),
        serde_json::Value::Object(map) if map.contains_key("responses") => map["responses"]
            .as_array()
            .cloned()
            .ok_or_else(|| usage("« responses » doit être une liste"))?,
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    for e in entries {
        let respondent = e["respondent"]
            .as_str()
            .ok_or_else(|| usage("chaque réponse indique son organisation (respondent)"))?
            .to_owned();
        let answers = e["answers"].as_object().ok_or_else(|| {
            usage(format!(
                "{respondent} : les réponses vont dans answers = {{ question = valeur }}"
            ))
        })?;
        let mut values = BTreeMap::new();
        for (code, v) in answers {
            let q = questions
                .get(code)
                .ok_or_else(|| usage(format!("{respondent} : aucune question « {code} »")))?;
            let v = AnswerValue::from_json(q, v)
                .map_err(|err| usage(format!("{respondent} : « {} » : {err}", q.label)))?;
            values.insert(code.clone(), v);
        }
        out.push((respondent, values));
    }
    Ok(out)
}

/// Asks each question in the terminal; an empty line skips it.
fn ask(
    questions: &[Question],
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<BTreeMap<String, AnswerValue>, CliError> {
    let io = |e: std::io::Error| usage(format!("terminal illisible : {e}"));
    let mut values = BTreeMap::new();
    for (i, q) in questions.iter().enumerate() {
        loop {
            writeln!(out, "\nQ{}. {} ({})", i + 1, q.label, q.kind.label()).map_err(io)?;
            for (n, o) in q.options.iter().enumerate() {
                writeln!(out, "  {}. {}", n + 1, o.label).map_err(io)?;
            }
            let hint = match &q.kind {
                QuestionKind::SingleChoice => "numéro de l'option".to_owned(),
                QuestionKind::MultipleChoice => "numéros séparés par des virgules".to_owned(),
                QuestionKind::Scale { min, max } => format!("de {min} à {max}"),
                QuestionKind::Number => "un nombre".to_owned(),
                QuestionKind::YesNo => "oui ou non".to_owned(),
                QuestionKind::FreeText => "texte".to_owned(),
                QuestionKind::Matrix => {
                    "pour chaque ligne, numéros séparés par des virgules".to_owned()
                }
            };
            let mut read = |prompt: &str| -> Result<String, CliError> {
                write!(out, "{prompt} ").map_err(io)?;
                out.flush().map_err(io)?;
                let mut line = String::new();
                input.read_line(&mut line).map_err(io)?;
                Ok(line.trim().to_owned())
            };
            let picks = |line: &str| -> Option<Vec<String>> {
                line.split([',', ' ', ';'])
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<usize>()
                            .ok()
                            .and_then(|n| n.checked_sub(1))
                            .and_then(|n| q.options.get(n))
                            .or_else(|| q.options.iter().find(|o| o.code == s))
                            .map(|o| o.code.clone())
                    })
                    .collect()
            };
            let parsed: Option<Option<AnswerValue>> = if q.kind == QuestionKind::Matrix {
                let mut m = BTreeMap::new();
                let mut ok = true;
                for r in &q.rows {
                    let line = read(&format!("  {} ({hint}) :", r.label))?;
                    match picks(&line) {
                        Some(p) if !p.is_empty() => {
                            m.insert(r.code.clone(), p.into_iter().collect());
                        }
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                ok.then(|| (!m.is_empty()).then_some(AnswerValue::Matrix(m)))
            } else {
                let line = read(&format!("({hint}, vide pour passer) >"))?;
                if line.is_empty() {
                    Some(None)
                } else {
                    match &q.kind {
                        QuestionKind::SingleChoice => picks(&line)
                            .filter(|p| p.len() == 1)
                            .map(|p| p.into_iter().next().map(AnswerValue::Choice)),
                        QuestionKind::MultipleChoice => picks(&line)
                            .map(|p| Some(AnswerValue::Choices(p.into_iter().collect()))),
                        QuestionKind::Scale { .. } => {
                            line.parse().ok().map(|n| Some(AnswerValue::Scale(n)))
                        }
                        QuestionKind::Number => line
                            .replace(',', ".")
                            .parse()
                            .ok()
                            .map(|n| Some(AnswerValue::Number(n))),
                        QuestionKind::YesNo => {
                            parse_yes_no(&line).map(|b| Some(AnswerValue::YesNo(b)))
                        }
                        QuestionKind::FreeText => Some(Some(AnswerValue::Text(line))),
                        QuestionKind::Matrix => None,
                    }
                }
            };
            match parsed {
                Some(Some(v)) => match v.check(q) {
                    Ok(()) => {
                        values.insert(q.code.clone(), v);
                        break;
                    }
                    Err(e) => writeln!(out, "Réponse refusée : {e}").map_err(io)?,
                },
                Some(None) => break,
                None => writeln!(out, "Réponse non comprise ({hint}), recommencez.").map_err(io)?,
            }
        }
    }
    Ok(values)
}

fn print_outcome(o: &survey::AnswerOutcome) {
    let place = if o.shared {
        "dans le document partagé"
    } else {
        "sur ce nœud (seuls les comptages sont partagés)"
    };
    if o.replaced {
        println!(
            "Réponse de « {} » remplacée (une seule réponse par organisation) — questionnaire version {}, gardée {place}",
            o.respondent.name, o.version
        );
    } else {
        println!(
            "Réponse de « {} » ajoutée {place} — questionnaire version {}",
            o.respondent.name, o.version
        );
    }
}

pub async fn run(store: &Store, command: SurveyCommand) -> Result<(), CliError> {
    match command {
        SurveyCommand::Create {
            id,
            title,
            share_answers,
        } => {
            let settings = SurveySettings {
                title,
                answers_shared: share_answers,
            };
            let s = id.clone();
            store
                .call(move |c| survey::create(c, &s, &settings))
                .await?;
            println!(
                "Enquête « {id} » créée (brouillon) ; {}",
                if share_answers {
                    "les réponses brutes seront partagées"
                } else {
                    "seuls les comptages quitteront chaque centre"
                }
            );
        }
        SurveyCommand::List => {
            let list = store.call(|c| survey::list(c)).await?;
            for (id, title, stage) in &list {
                println!("{id:<24} {} — {title}", stage.label());
            }
            println!("{} enquête(s)", list.len());
        }
        SurveyCommand::Show { id } => {
            let doc = store.call(move |c| survey::require(c, &id)).await?;
            let (opens, closes) = doc.dates();
            println!("Enquête {} — {}", doc.survey_id(), doc.title());
            println!(
                "  état : {} ; questionnaire version {}",
                doc.stage().label(),
                doc.version()
            );
            if opens.is_some() || closes.is_some() {
                println!(
                    "  dates : du {} au {}",
                    opens.unwrap_or_else(|| "?".into()),
                    closes.unwrap_or_else(|| "?".into())
                );
            }
            println!(
                "  réponses brutes : {}",
                if doc.answers_shared() {
                    "partagées"
                } else {
                    "gardées par chaque centre"
                }
            );
            let participants: Vec<String> =
                doc.participants().iter().map(|c| c.to_string()).collect();
            println!("  participants : {}", participants.join(", "));
            println!("  population : {} organisation(s)", doc.population().len());
            for (i, q) in doc.ordered_questions().iter().enumerate() {
                println!(
                    "  Q{}. [{}] {} ({})",
                    i + 1,
                    q.code,
                    q.label,
                    q.kind.label()
                );
                for o in &q.options {
                    println!("       - {} = {}", o.code, o.label);
                }
                for r in &q.rows {
                    println!("       ligne {} = {}", r.code, r.label);
                }
            }
        }
        SurveyCommand::Join { id } => {
            let s = id.clone();
            store.call(move |c| survey::join(c, &s)).await?;
            println!("Le centre participe à l'enquête « {id} »");
        }
        SurveyCommand::Question(q) => question(store, q).await?,
        SurveyCommand::Open { id, from, to } => {
            let s = id.clone();
            store
                .call(move |c| survey::step(c, &s, Step::Open, (from, to)))
                .await?;
            println!("Enquête « {id} » ouverte aux réponses");
        }
        SurveyCommand::Close { id } => {
            let s = id.clone();
            store
                .call(move |c| survey::step(c, &s, Step::Close, (None, None)))
                .await?;
            println!("Enquête « {id} » clôturée : plus aucune réponse n'est acceptée");
        }
        SurveyCommand::Publish { id } => {
            let s = id.clone();
            store
                .call(move |c| survey::step(c, &s, Step::Publish, (None, None)))
                .await?;
            println!("Enquête « {id} » publiée");
        }
        SurveyCommand::Population { id, file } => {
            let respondents = survey::read_population(&file)?;
            let s = id.clone();
            let n = store
                .call(move |c| survey::set_population(c, &s, &respondents))
                .await?;
            println!("Population de « {id} » : {n} organisation(s) importée(s)");
        }
        SurveyCommand::Answer {
            id,
            respondent,
            file,
        } => {
            let s = id.clone();
            let doc = store.call(move |c| survey::require(c, &s)).await?;
            let entries = match (file, respondent) {
                (Some(file), None) => read_answers(&file, &doc.questions())?,
                (Some(_), Some(_)) => {
                    return Err(usage(
                        "--respondent et --file s'excluent : le fichier nomme ses organisations",
                    ));
                }
                (None, Some(r)) => {
                    let s = id.clone();
                    let r2 = r.clone();
                    // Check the respondent before asking anything.
                    store
                        .call(move |c| survey::check_answer(c, &s, &r2, &BTreeMap::new()))
                        .await?;
                    println!(
                        "Enquête « {} » — réponse de « {r} » (questionnaire version {})",
                        doc.title(),
                        doc.version()
                    );
                    let stdin = std::io::stdin();
                    let values = ask(
                        &doc.ordered_questions(),
                        &mut stdin.lock(),
                        &mut std::io::stdout(),
                    )?;
                    vec![(r, values)]
                }
                (None, None) => {
                    return Err(usage(
                        "indiquez l'organisation (--respondent) ou un fichier de réponses (--file)",
                    ));
                }
            };
            for (respondent, values) in entries {
                let s = id.clone();
                let outcome = store
                    .call(move |c| survey::answer(c, &s, &respondent, &values))
                    .await?;
                print_outcome(&outcome);
            }
        }
        SurveyCommand::AddCode { id, code, label } => {
            let (s, c2, l2) = (id.clone(), code.clone(), label.clone());
            store
                .call(move |c| survey::add_code(c, &s, &c2, &l2))
                .await?;
            println!("Code « {code} » ({label}) ajouté à l'enquête « {id} »");
        }
        SurveyCommand::Code {
            id,
            respondent,
            question,
            code,
        } => {
            let (r, q) = (respondent.clone(), question.clone());
            let code = store
                .call(move |c| survey::code(c, &id, &r, &q, &code))
                .await?;
            println!(
                "Réponse de « {respondent} » à « {question} » codée {}",
                code.cell()
            );
        }
        SurveyCommand::Results {
            id,
            format,
            small_cells,
            no_small_cells,
        } => {
            let threshold = if no_small_cells {
                None
            } else {
                Some(small_cells.unwrap_or(DEFAULT_SMALL_CELLS))
            };
            let results = store
                .call(move |c| survey::results(c, &id, threshold))
                .await?;
            match format {
                ResultsFormat::Table => print!("{}", results.to_table()),
                ResultsFormat::Csv => print!("{}", results.to_csv()),
                ResultsFormat::Json => println!("{}", results.to_json()),
            }
        }
    }
    Ok(())
}

async fn question(store: &Store, command: QuestionCommand) -> Result<(), CliError> {
    let (id, changes, what) = match command {
        QuestionCommand::Add(args) => {
            let s = args.id.clone();
            let doc = store.call(move |c| survey::require(c, &s)).await?;
            if doc.questions().contains_key(&args.code) {
                return Err(usage(format!(
                    "la question « {} » existe déjà : utilisez « question edit »",
                    args.code
                )));
            }
            let id = args.id.clone();
            let q = args.apply(None)?;
            let what = format!("Question « {} » ajoutée", q.code);
            (id, vec![QuestionChange::Put(q)], what)
        }
        QuestionCommand::Edit(args) => {
            let s = args.id.clone();
            let doc = store.call(move |c| survey::require(c, &s)).await?;
            let Some(base) = doc.questions().get(&args.code).cloned() else {
                return Err(usage(format!(
                    "aucune question « {} » dans l'enquête",
                    args.code
                )));
            };
            let id = args.id.clone();
            let q = args.apply(Some(base))?;
            let what = format!("Question « {} » modifiée", q.code);
            (id, vec![QuestionChange::Put(q)], what)
        }
        QuestionCommand::Remove { id, code } => {
            let what = format!("Question « {code} » retirée");
            (id, vec![QuestionChange::Remove(code)], what)
        }
        QuestionCommand::Import { id, file } => {
            let questions = read_questions(&file)?;
            let what = format!("{} question(s) importée(s)", questions.len());
            (
                id,
                questions.into_iter().map(QuestionChange::Put).collect(),
                what,
            )
        }
    };
    let version = store
        .call(move |c| survey::edit_questions(c, &id, &changes))
        .await
        .map_err(|e: StoreError| CliError::Store(e))?;
    println!("{what} — questionnaire version {version}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn terminal_answers_are_asked_in_french_and_parsed() {
        let qs = vec![
            Question {
                code: "impact".into(),
                label: "Impact".into(),
                kind: QuestionKind::MultipleChoice,
                options: vec![
                    Choice::new("suppression", "Suppression"),
                    Choice::new("report", "Report"),
                ],
                rows: vec![],
                coding: None,
                position: 1,
            },
            Question {
                code: "ok".into(),
                label: "D'accord ?".into(),
                kind: QuestionKind::YesNo,
                options: vec![],
                rows: vec![],
                coding: None,
                position: 2,
            },
            Question {
                code: "n".into(),
                label: "Combien ?".into(),
                kind: QuestionKind::Number,
                options: vec![],
                rows: vec![],
                coding: None,
                position: 3,
            },
        ];
        let mut input = "1, 2\npeut-être\noui\n2,5\n".as_bytes();
        let mut out = Vec::new();
        let v = ask(&qs, &mut input, &mut out).unwrap();
        let shown = String::from_utf8(out).unwrap();
        assert!(shown.contains("Réponse non comprise"), "{shown}");
        assert_eq!(
            v["impact"],
            AnswerValue::Choices(["report".to_owned(), "suppression".to_owned()].into())
        );
        assert_eq!(v["ok"], AnswerValue::YesNo(true));
        assert_eq!(v["n"], AnswerValue::Number(2.5));
        assert_eq!(crate::text::slug("Réseaux sociaux"), "reseaux_sociaux");
    }
}
