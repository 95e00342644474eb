//! A joint survey (`survey/<id>`): lifecycle, the questionnaire the
//! participating centres co-edit, the reference population of respondent
//! organisations, and either the raw answers or each centre's aggregate
//! counts, with the coding of free-text answers.
//!
//! ```text
//! survey       : str
//! participants : { <centre>: true }                      (a centre adds only itself)
//! meta         : { title, created_by : str, answers_shared : bool, opens, closes : "YYYY-MM-DD" }
//! status       : { opened | closed | published : <centre> }   (each key written once, in order)
//! questions    : { "<q>|label" | "<q>|kind" | "<q>|options" | "<q>|rows" | "<q>|coding" : str
//!                  "<q>|position" : uint, "<q>|scale_min" | "<q>|scale_max" : int, "<q>|removed" : bool }
//! revisions    : { "version" : counter, "<version>|<centre>|<instance hex>" : "<q> <q>..." }
//! population   : { "<org>|name" : str, "<org>|centre" : <centre>, "<org>|commune|<name>" : true }
//! answers      : { "<org>|centre" : str, "<org>|version" : uint, "<org>|heads" : "hash,hash",
//!                  "<org>|q|<q>" : JSON of an [`AnswerValue`] }     (only when answers_shared)
//! coding       : { "<org>|<q>|<list>|<code>" : <coding centre> }
//! codes        : { <code> : label }                      (the survey's own codes)
//! aggregates   : { "<centre>|respondents" | "<centre>|version|<v>" | "<centre>|answered|<q>"
//!                  | "<centre>|count|<q>|<cell>" : uint, "<centre>|sum|<q>" | "<centre>|min|<q>"
//!                  | "<centre>|max|<q>" : f64 }          (only that centre writes its keys)
//! ```
//!
//! Everything below the containers is a flat composite key holding a scalar,
//! so two centres editing offline never create two objects under one key:
//! edits of different questions, or of different fields of one question,
//! merge; the same field edited twice shows Automerge's deterministic winner.
//!
//! **Versions.** Every batch of questionnaire edits increments the `version`
//! counter and logs a revision entry. Counters add up on merge, so two
//! centres editing concurrently from version 3 both see 4 locally and the
//! merged questionnaire is version 5. An answer records the version its
//! collector saw *and* the document heads at that moment, which pin the
//! exact questionnaire answered even when two concurrent version 4s exist
//! ([`SurveyDoc::questions_at`]).
//!
//! **Lifecycle.** `draft → open → closed → published`, stored as three keys
//! that are only ever added, so the stage converges to the furthest one any
//! centre reached. Settings change only in draft; the questionnaire changes
//! until close; answers are written only while open.
//!
//! **Privacy.** Respondents are organisations (a PCS and its communes), never
//! people. When the survey does not share raw answers they stay in the
//! collecting node's SQLite and only per-question counts enter `aggregates`.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

use crate::actor::CentreActor;
use crate::centres::CentreId;
use crate::docs::ids::DocId;
use crate::docs::normalize::org_key;
use crate::docs::schema::{
    self, DocError, check_free_text, check_slug, get_bool, get_obj, get_scalar, get_str, get_u64,
    one_change, set_members,
};
use crate::vocab;

/// The schema version of survey documents: 2 added the questionnaire,
/// population, answers, coding and aggregates containers.
pub const SURVEY_SCHEMA_VERSION: u64 = 2;

pub(crate) mod keys {
    pub const SURVEY: &str = "survey";
    pub const PARTICIPANTS: &str = "participants";
    pub const META: &str = "meta";
    pub const STATUS: &str = "status";
    pub const QUESTIONS: &str = "questions";
    pub const REVISIONS: &str = "revisions";
    pub const POPULATION: &str = "population";
    pub const ANSWERS: &str = "answers";
    pub const CODING: &str = "coding";
    pub const CODES: &str = "codes";
    pub const AGGREGATES: &str = "aggregates";

    pub const TITLE: &str = "title";
    pub const CREATED_BY: &str = "created_by";
    pub const ANSWERS_SHARED: &str = "answers_shared";
    pub const OPENS: &str = "opens";
    pub const CLOSES: &str = "closes";
    pub const OPENED: &str = "opened";
    pub const CLOSED: &str = "closed";
    pub const PUBLISHED: &str = "published";
    pub const VERSION: &str = "version";
    pub const CENTRE: &str = "centre";
    pub const HEADS: &str = "heads";
    pub const NAME: &str = "name";
    pub const COMMUNE: &str = "commune";
    pub const Q: &str = "q";
}

use keys as k;

const SEP: char = '|';

const CONTAINERS: [&str; 10] = [
    k::PARTICIPANTS,
    k::META,
    k::STATUS,
    k::QUESTIONS,
    k::REVISIONS,
    k::POPULATION,
    k::ANSWERS,
    k::CODING,
    k::CODES,
    k::AGGREGATES,
];

pub(crate) fn genesis_content(doc: &mut AutoCommit, survey: &str) -> Result<(), DocError> {
    doc.put(ROOT, k::SURVEY, survey)?;
    for key in CONTAINERS {
        doc.put_object(ROOT, key, ObjType::Map)?;
    }
    // The counter is created by the genesis so every replica increments the
    // same one.
    let revisions = get_obj(doc, &ROOT, k::REVISIONS)
        .ok_or_else(|| DocError::Invalid("genesis lost its revisions".to_owned()))?;
    doc.put(&revisions, k::VERSION, ScalarValue::counter(0))?;
    Ok(())
}

/// Where a survey stands. Ordered: a later stage is greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Draft,
    Open,
    Closed,
    Published,
}

impl Stage {
    /// The French word staff read.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Draft => "brouillon",
            Stage::Open => "ouverte",
            Stage::Closed => "clôturée",
            Stage::Published => "publiée",
        }
    }
}

/// The kind of a question, with what it needs to be answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum QuestionKind {
    SingleChoice,
    MultipleChoice,
    /// A whole number from `min` to `max` inclusive (e.g. 1 to 5).
    Scale {
        min: i64,
        max: i64,
    },
    Number,
    YesNo,
    FreeText,
    /// Rows × options: for each row, the options that apply.
    Matrix,
}

impl QuestionKind {
    pub fn code(&self) -> &'static str {
        match self {
            QuestionKind::SingleChoice => "single_choice",
            QuestionKind::MultipleChoice => "multiple_choice",
            QuestionKind::Scale { .. } => "scale",
            QuestionKind::Number => "number",
            QuestionKind::YesNo => "yes_no",
            QuestionKind::FreeText => "free_text",
            QuestionKind::Matrix => "matrix",
        }
    }

    /// The kind named `code`; a scale gets the bounds given.
    pub fn from_code(code: &str, scale: (i64, i64)) -> Option<QuestionKind> {
        Some(match code {
            "single_choice" => QuestionKind::SingleChoice,
            "multiple_choice" => QuestionKind::MultipleChoice,
            "scale" => QuestionKind::Scale {
                min: scale.0,
                max: scale.1,
            },
            "number" => QuestionKind::Number,
            "yes_no" => QuestionKind::YesNo,
            "free_text" => QuestionKind::FreeText,
            "matrix" => QuestionKind::Matrix,
            _ => return None,
        })
    }

    /// The French name of the kind.
    pub fn label(&self) -> &'static str {
        match self {
            QuestionKind::SingleChoice => "choix unique",
            QuestionKind::MultipleChoice => "choix multiple",
            QuestionKind::Scale { .. } => "échelle",
            QuestionKind::Number => "nombre",
            QuestionKind::YesNo => "oui/non",
            QuestionKind::FreeText => "texte libre",
            QuestionKind::Matrix => "matrice",
        }
    }
}

/// An option (or a matrix row): a stable code and the label respondents read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub code: String,
    pub label: String,
}

impl Choice {
    pub fn new(code: &str, label: &str) -> Choice {
        Choice {
            code: code.to_owned(),
            label: label.to_owned(),
        }
    }
}

/// The code lists free-text answers are coded against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeSet {
    DeterminantLayers,
    OttawaAxes,
    /// The survey's own codes (`codes` container).
    Survey,
}

impl CodeSet {
    pub const ALL: [CodeSet; 3] = [
        CodeSet::DeterminantLayers,
        CodeSet::OttawaAxes,
        CodeSet::Survey,
    ];

    pub fn code(self) -> &'static str {
        match self {
            CodeSet::DeterminantLayers => "determinant_layers",
            CodeSet::OttawaAxes => "ottawa_axes",
            CodeSet::Survey => "survey",
        }
    }

    pub fn from_code(code: &str) -> Option<CodeSet> {
        CodeSet::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// A code applied to a free-text answer: a list and a code of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CodeRef {
    pub set: CodeSet,
    pub code: String,
}

impl CodeRef {
    /// Parses `list:code` or a bare code, looked up in the shared lists and
    /// then in `survey_codes`.
    pub fn parse(s: &str, survey_codes: &BTreeMap<String, String>) -> Result<CodeRef, DocError> {
        let v = vocab::get();
        if let Some((list, code)) = s.split_once(':') {
            let set = CodeSet::from_code(list).ok_or_else(|| DocError::UnknownCode {
                list: "code lists",
                code: list.to_owned(),
            })?;
            let r = CodeRef {
                set,
                code: code.to_owned(),
            };
            r.check(survey_codes)?;
            return Ok(r);
        }
        let set = if v.determinant_layers.contains(s) {
            CodeSet::DeterminantLayers
        } else if v.ottawa_axes.contains(s) {
            CodeSet::OttawaAxes
        } else {
            CodeSet::Survey
        };
        let r = CodeRef {
            set,
            code: s.to_owned(),
        };
        r.check(survey_codes)?;
        Ok(r)
    }

    fn check(&self, survey_codes: &BTreeMap<String, String>) -> Result<(), DocError> {
        let v = vocab::get();
        let ok = match self.set {
            CodeSet::DeterminantLayers => v.determinant_layers.contains(&self.code),
            CodeSet::OttawaAxes => v.ottawa_axes.contains(&self.code),
            CodeSet::Survey => survey_codes.contains_key(&self.code),
        };
        if ok {
            Ok(())
        } else {
            Err(DocError::UnknownCode {
                list: self.set.code(),
                code: self.code.clone(),
            })
        }
    }

    /// The label of the code.
    pub fn label(&self, survey_codes: &BTreeMap<String, String>) -> String {
        let v = vocab::get();
        match self.set {
            CodeSet::DeterminantLayers => v.determinant_layers.label(&self.code),
            CodeSet::OttawaAxes => v.ottawa_axes.label(&self.code),
            CodeSet::Survey => survey_codes.get(&self.code).map(String::as_str),
        }
        .unwrap_or(&self.code)
        .to_owned()
    }

    /// `list:code`, the cell name of coded counts.
    pub fn cell(&self) -> String {
        format!("{}:{}", self.set.code(), self.code)
    }
}

/// One question of the questionnaire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub code: String,
    pub label: String,
    #[serde(flatten)]
    pub kind: QuestionKind,
    /// Options of choice and matrix questions, in display order.
    #[serde(default)]
    pub options: Vec<Choice>,
    /// Rows of a matrix question.
    #[serde(default)]
    pub rows: Vec<Choice>,
    /// The list free-text answers are meant to be coded against.
    #[serde(default)]
    pub coding: Option<CodeSet>,
    /// Display order; ties break on the code.
    #[serde(default)]
    pub position: u64,
}

impl Question {
    /// Checks the question is complete for its kind.
    pub fn check(&self) -> Result<(), DocError> {
        check_slug(&self.code)?;
        if self.label.trim().is_empty() {
            return Err(DocError::Invalid(format!(
                "question {} has no label",
                self.code
            )));
        }
        check_free_text("question label", &self.label)?;
        let needs_options = matches!(
            self.kind,
            QuestionKind::SingleChoice | QuestionKind::MultipleChoice | QuestionKind::Matrix
        );
        if needs_options && self.options.is_empty() {
            return Err(DocError::Invalid(format!(
                "question {} needs options",
                self.code
            )));
        }
        if self.kind == QuestionKind::Matrix && self.rows.is_empty() {
            return Err(DocError::Invalid(format!(
                "matrix question {} needs rows",
                self.code
            )));
        }
        if let QuestionKind::Scale { min, max } = self.kind
            && (min >= max || max - min > 100)
        {
            return Err(DocError::Invalid(format!(
                "scale of question {} must go up from min to max (at most 100 steps)",
                self.code
            )));
        }
        for list in [&self.options, &self.rows] {
            let mut seen = BTreeSet::new();
            for c in list {
                check_slug(&c.code)?;
                check_free_text("option label", &c.label)?;
                if !seen.insert(c.code.as_str()) {
                    return Err(DocError::Invalid(format!(
                        "question {} lists « {} » twice",
                        self.code, c.code
                    )));
                }
            }
        }
        Ok(())
    }

    /// The label of an option code, or the code.
    pub fn option_label<'a>(&'a self, code: &'a str) -> &'a str {
        self.options
            .iter()
            .find(|o| o.code == code)
            .map(|o| o.label.as_str())
            .unwrap_or(code)
    }

    /// The label of a matrix row code, or the code.
    pub fn row_label<'a>(&'a self, code: &'a str) -> &'a str {
        self.rows
            .iter()
            .find(|o| o.code == code)
            .map(|o| o.label.as_str())
            .unwrap_or(code)
    }
}

/// One edit of the questionnaire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionChange {
    /// Adds the question, or updates the fields that differ.
    Put(Question),
    /// Withdraws a question (its answers stay; results leave it out).
    Remove(String),
}

/// An answer to one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerValue {
    Choice(String),
    Choices(BTreeSet<String>),
    Scale(i64),
    Number(f64),
    YesNo(bool),
    Text(String),
    /// Row code → option codes that apply.
    Matrix(BTreeMap<String, BTreeSet<String>>),
}

impl AnswerValue {
    /// Checks the value fits the question.
    pub fn check(&self, q: &Question) -> Result<(), DocError> {
        let bad = |what: String| DocError::Invalid(format!("question {} : {what}", q.code));
        let option = |code: &str| {
            if q.options.iter().any(|o| o.code == code) {
                Ok(())
            } else {
                Err(bad(format!("« {code} » is not one of its options")))
            }
        };
        match (&q.kind, self) {
            (QuestionKind::SingleChoice, AnswerValue::Choice(c)) => option(c),
            (QuestionKind::MultipleChoice, AnswerValue::Choices(cs)) => {
                cs.iter().try_for_each(|c| option(c))
            }
            (QuestionKind::Scale { min, max }, AnswerValue::Scale(n)) => {
                if n < min || n > max {
                    Err(bad(format!("{n} is outside {min}..{max}")))
                } else {
                    Ok(())
                }
            }
            (QuestionKind::Number, AnswerValue::Number(n)) => {
                if n.is_finite() {
                    Ok(())
                } else {
                    Err(bad("not a finite number".to_owned()))
                }
            }
            (QuestionKind::YesNo, AnswerValue::YesNo(_)) => Ok(()),
            (QuestionKind::FreeText, AnswerValue::Text(t)) => {
                check_free_text("free-text answer", t)
            }
            (QuestionKind::Matrix, AnswerValue::Matrix(m)) => {
                for (row, opts) in m {
                    if !q.rows.iter().any(|r| &r.code == row) {
                        return Err(bad(format!("« {row} » is not one of its rows")));
                    }
                    opts.iter().try_for_each(|c| option(c))?;
                }
                Ok(())
            }
            _ => Err(bad(format!("expects an answer of kind {}", q.kind.code()))),
        }
    }

    /// Reads an answer from a file's JSON value for question `q`: a string
    /// (option code or label, « oui »/« non », text), a list of them, a
    /// number, a boolean, or for a matrix an object `row: [options]`.
    pub fn from_json(q: &Question, value: &serde_json::Value) -> Result<AnswerValue, DocError> {
        use serde_json::Value as J;
        let bad = || {
            DocError::Invalid(format!(
                "question {} : this value does not fit a {} question",
                q.code,
                q.kind.code()
            ))
        };
        let option_code = |s: &str| -> String {
            q.options
                .iter()
                .find(|o| o.code == s || o.label == s)
                .map(|o| o.code.clone())
                .unwrap_or_else(|| s.to_owned())
        };
        let codes = |v: &J| -> Result<BTreeSet<String>, DocError> {
            match v {
                J::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(option_code).ok_or_else(bad))
                    .collect(),
                J::String(s) => Ok(BTreeSet::from([option_code(s)])),
                _ => Err(bad()),
            }
        };
        let value = match (&q.kind, value) {
            (QuestionKind::SingleChoice, J::String(s)) => AnswerValue::Choice(option_code(s)),
            (QuestionKind::MultipleChoice, v) => AnswerValue::Choices(codes(v)?),
            (QuestionKind::Scale { .. }, J::Number(n)) => {
                AnswerValue::Scale(n.as_i64().ok_or_else(bad)?)
            }
            (QuestionKind::Number, J::Number(n)) => {
                AnswerValue::Number(n.as_f64().ok_or_else(bad)?)
            }
            (QuestionKind::YesNo, J::Bool(b)) => AnswerValue::YesNo(*b),
            (QuestionKind::YesNo, J::String(s)) => {
                AnswerValue::YesNo(parse_yes_no(s).ok_or_else(bad)?)
            }
            (QuestionKind::FreeText, J::String(s)) => AnswerValue::Text(s.clone()),
            (QuestionKind::Matrix, J::Object(rows)) => {
                let mut m = BTreeMap::new();
                for (row, v) in rows {
                    let row = q
                        .rows
                        .iter()
                        .find(|r| &r.code == row || &r.label == row)
                        .map(|r| r.code.clone())
                        .unwrap_or_else(|| row.clone());
                    m.insert(row, codes(v)?);
                }
                AnswerValue::Matrix(m)
            }
            _ => return Err(bad()),
        };
        value.check(q)?;
        Ok(value)
    }
}

/// « oui », « non » and their usual spellings.
pub fn parse_yes_no(s: &str) -> Option<bool> {
    match crate::docs::normalize::fold(s).trim() {
        "oui" | "o" | "yes" | "y" | "1" | "true" => Some(true),
        "non" | "n" | "no" | "0" | "false" => Some(false),
        _ => None,
    }
}

/// A respondent organisation of the reference population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Respondent {
    /// `org_key(name)`: the stable key answers are filed under.
    pub key: String,
    pub name: String,
    pub communes: BTreeSet<String>,
    /// The centre whose territory covers it: it alone collects its answer.
    #[serde(serialize_with = "centre_str")]
    pub centre: CentreId,
}

impl Respondent {
    pub fn new(name: &str, communes: &[&str], centre: CentreId) -> Respondent {
        Respondent {
            key: org_key(name),
            name: name.to_owned(),
            communes: communes.iter().map(|c| (*c).to_owned()).collect(),
            centre,
        }
    }
}

/// One respondent organisation's answer, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurveyAnswer {
    pub respondent: String,
    /// The collecting centre (the respondent's centre).
    #[serde(serialize_with = "centre_str")]
    pub centre: CentreId,
    /// The questionnaire version the collector had.
    pub version: u64,
    /// The survey document's heads when the answer was taken.
    #[serde(skip)]
    pub heads: Vec<ChangeHash>,
    pub values: BTreeMap<String, AnswerValue>,
}

/// The counts one question gathers at one centre.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QuestionTally {
    /// Respondents who answered the question.
    pub answered: u64,
    /// Cells: an option code, `row/option` for a matrix, the value for a
    /// scale, `oui`/`non`, or `list:code` for coded free text.
    pub counts: BTreeMap<String, u64>,
    /// Number questions: sum, smallest and largest answer.
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Everything one centre contributes to the results: counts only.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CentreTally {
    pub respondents: u64,
    /// Answers per questionnaire version.
    pub versions: BTreeMap<u64, u64>,
    pub questions: BTreeMap<String, QuestionTally>,
}

impl CentreTally {
    /// Adds one answer (and the codes applied to it).
    pub fn add(
        &mut self,
        questions: &BTreeMap<String, Question>,
        answer: &SurveyAnswer,
        codes: &BTreeMap<String, BTreeSet<CodeRef>>,
    ) {
        self.respondents += 1;
        *self.versions.entry(answer.version).or_insert(0) += 1;
        for (code, value) in &answer.values {
            if !questions.contains_key(code) {
                continue;
            }
            let t = self.questions.entry(code.clone()).or_default();
            t.answered += 1;
            let mut bump = |cell: String| *t.counts.entry(cell).or_insert(0) += 1;
            match value {
                AnswerValue::Choice(c) => bump(c.clone()),
                AnswerValue::Choices(cs) => cs.iter().for_each(|c| bump(c.clone())),
                AnswerValue::Scale(n) => bump(n.to_string()),
                AnswerValue::YesNo(b) => bump(if *b { "oui" } else { "non" }.to_owned()),
                AnswerValue::Matrix(m) => {
                    for (row, opts) in m {
                        opts.iter().for_each(|o| bump(format!("{row}/{o}")));
                    }
                }
                AnswerValue::Text(_) => {
                    for c in codes.get(code).into_iter().flatten() {
                        bump(c.cell());
                    }
                }
                AnswerValue::Number(n) => {
                    t.sum += n;
                    t.min = Some(t.min.map_or(*n, |m| m.min(*n)));
                    t.max = Some(t.max.map_or(*n, |m| m.max(*n)));
                }
            }
        }
    }
}

/// Survey settings chosen at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveySettings {
    pub title: String,
    /// Raw answers enter the shared document; otherwise only counts do.
    pub answers_shared: bool,
}

/// One joint survey, written by one centre instance.
#[derive(Debug)]
pub struct SurveyDoc {
    doc: AutoCommit,
    doc_id: DocId,
    actor: CentreActor,
    time: i64,
}

fn doc_id_of(survey: &str) -> Result<DocId, DocError> {
    DocId::survey(survey).map_err(|e| DocError::Invalid(e.to_string()))
}

impl SurveyDoc {
    pub fn create(survey: &str, actor: CentreActor) -> Result<SurveyDoc, DocError> {
        let doc_id = doc_id_of(survey)?;
        let doc = schema::create_doc(&doc_id, &actor)?;
        Ok(SurveyDoc {
            doc,
            doc_id,
            actor,
            time: 0,
        })
    }

    pub fn load(survey: &str, bytes: &[u8], actor: CentreActor) -> Result<SurveyDoc, DocError> {
        let doc_id = doc_id_of(survey)?;
        let doc = schema::load_doc(&doc_id, bytes, &actor)?;
        Ok(SurveyDoc {
            doc,
            doc_id,
            actor,
            time: 0,
        })
    }

    /// Wraps a document already loaded for `survey` (checks its root).
    pub fn from_automerge(
        survey: &str,
        doc: AutoCommit,
        actor: CentreActor,
    ) -> Result<SurveyDoc, DocError> {
        let doc_id = doc_id_of(survey)?;
        schema::check_root(&doc, &doc_id)?;
        Ok(SurveyDoc {
            doc: doc.with_actor(actor.actor_id()),
            doc_id,
            actor,
            time: 0,
        })
    }

    pub fn doc_id(&self) -> &DocId {
        &self.doc_id
    }

    pub fn set_commit_time(&mut self, unix_seconds: i64) {
        self.time = unix_seconds;
    }

    pub fn automerge(&self) -> &AutoCommit {
        &self.doc
    }

    pub fn automerge_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    pub fn into_automerge(self) -> AutoCommit {
        self.doc
    }

    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    pub fn survey_id(&self) -> String {
        get_str(&self.doc, &ROOT, k::SURVEY).unwrap_or_default()
    }

    pub fn schema_version(&self) -> u64 {
        schema::schema_version(&self.doc)
    }

    fn centre(&self) -> String {
        self.actor.centre.to_string()
    }

    fn container(&self, key: &str) -> Result<ObjId, DocError> {
        schema::root_obj(&self.doc, key)
    }

    fn require_stage(&self, allowed: &[Stage], what: &str) -> Result<(), DocError> {
        let stage = self.stage();
        if allowed.contains(&stage) {
            Ok(())
        } else {
            Err(DocError::Invalid(format!(
                "{what} is not possible while the survey is {}",
                stage.label()
            )))
        }
    }

    /// Lists this centre among the participants.
    pub fn participate(&mut self) -> Result<(), DocError> {
        let participants = self.container(k::PARTICIPANTS)?;
        let centre = self.centre();
        one_change(&mut self.doc, self.time, "participate".to_owned(), |doc| {
            doc.put(&participants, centre.as_str(), true)?;
            Ok(())
        })
    }

    pub fn participants(&self) -> BTreeSet<CentreId> {
        participants(&self.doc)
    }

    /// Sets the title and the sharing of raw answers (draft only) and lists
    /// this centre as a participant, in one change.
    pub fn configure(&mut self, settings: &SurveySettings) -> Result<(), DocError> {
        self.require_stage(&[Stage::Draft], "changing the settings")?;
        check_free_text("survey title", &settings.title)?;
        let meta = self.container(k::META)?;
        let participants = self.container(k::PARTICIPANTS)?;
        let centre = self.centre();
        let first = get_str(&self.doc, &meta, k::CREATED_BY).is_none();
        one_change(&mut self.doc, self.time, "configure".to_owned(), |doc| {
            doc.put(&meta, k::TITLE, settings.title.as_str())?;
            doc.put(&meta, k::ANSWERS_SHARED, settings.answers_shared)?;
            if first {
                doc.put(&meta, k::CREATED_BY, centre.as_str())?;
            }
            doc.put(&participants, centre.as_str(), true)?;
            Ok(())
        })
    }

    pub fn title(&self) -> String {
        get_obj(&self.doc, &ROOT, k::META)
            .and_then(|m| get_str(&self.doc, &m, k::TITLE))
            .unwrap_or_default()
    }

    pub fn created_by(&self) -> Option<CentreId> {
        get_obj(&self.doc, &ROOT, k::META)
            .and_then(|m| get_str(&self.doc, &m, k::CREATED_BY))
            .and_then(|c| CentreId::new(&c).ok())
    }

    /// Whether raw answers enter the shared document (false until configured).
    pub fn answers_shared(&self) -> bool {
        answers_shared_at(&self.doc, None)
    }

    /// Planned opening and closing dates.
    pub fn dates(&self) -> (Option<String>, Option<String>) {
        let meta = get_obj(&self.doc, &ROOT, k::META);
        let get = |key| meta.as_ref().and_then(|m| get_str(&self.doc, m, key));
        (get(k::OPENS), get(k::CLOSES))
    }

    pub fn stage(&self) -> Stage {
        stage_at(&self.doc, None)
    }

    /// Opens the survey for answers, with its planned dates (`YYYY-MM-DD`).
    pub fn open(&mut self, opens: Option<&str>, closes: Option<&str>) -> Result<(), DocError> {
        self.require_stage(&[Stage::Draft], "opening")?;
        for d in [opens, closes].into_iter().flatten() {
            check_date(d)?;
        }
        if let (Some(a), Some(b)) = (opens, closes)
            && a > b
        {
            return Err(DocError::Invalid(format!(
                "survey closes ({b}) before it opens ({a})"
            )));
        }
        let meta = self.container(k::META)?;
        let status = self.container(k::STATUS)?;
        let centre = self.centre();
        one_change(&mut self.doc, self.time, "open".to_owned(), |doc| {
            // Dates are settings, written in the same change as the opening
            // but under the rule "settings in draft": see validate.
            if let Some(d) = opens {
                doc.put(&meta, k::OPENS, d)?;
            }
            if let Some(d) = closes {
                doc.put(&meta, k::CLOSES, d)?;
            }
            doc.put(&status, k::OPENED, centre.as_str())?;
            Ok(())
        })
    }

    pub fn close(&mut self) -> Result<(), DocError> {
        self.require_stage(&[Stage::Open], "closing")?;
        self.status(k::CLOSED)
    }

    pub fn publish(&mut self) -> Result<(), DocError> {
        self.require_stage(&[Stage::Closed], "publishing")?;
        self.status(k::PUBLISHED)
    }

    fn status(&mut self, key: &'static str) -> Result<(), DocError> {
        let status = self.container(k::STATUS)?;
        let centre = self.centre();
        one_change(&mut self.doc, self.time, key.to_owned(), |doc| {
            doc.put(&status, key, centre.as_str())?;
            Ok(())
        })
    }

    /// Applies a batch of questionnaire edits as one change and one new
    /// version. Returns the version this replica now sees.
    pub fn edit_questions(&mut self, changes: &[QuestionChange]) -> Result<u64, DocError> {
        self.require_stage(&[Stage::Draft, Stage::Open], "editing the questionnaire")?;
        if changes.is_empty() {
            return Ok(self.version());
        }
        let current = self.questions();
        let mut touched = BTreeSet::new();
        for c in changes {
            match c {
                QuestionChange::Put(q) => {
                    q.check()?;
                    touched.insert(q.code.clone());
                }
                QuestionChange::Remove(code) => {
                    if !current.contains_key(code) {
                        return Err(DocError::Invalid(format!("no question {code} to remove")));
                    }
                    touched.insert(code.clone());
                }
            }
        }
        let questions = self.container(k::QUESTIONS)?;
        let revisions = self.container(k::REVISIONS)?;
        let next = self.version() + 1;
        let entry = format!(
            "{next}{SEP}{}{SEP}{}",
            self.centre(),
            hex::encode(self.actor.instance)
        );
        let summary = touched.into_iter().collect::<Vec<_>>().join(" ");
        let n_existing = u64::try_from(current.len()).unwrap_or(u64::MAX);
        one_change(
            &mut self.doc,
            self.time,
            "questionnaire".to_owned(),
            |doc| {
                let mut added = 0u64;
                for c in changes {
                    match c {
                        QuestionChange::Put(q) => {
                            let old = current.get(&q.code);
                            let mut q = q.clone();
                            if old.is_none() && q.position == 0 {
                                added += 1;
                                q.position = n_existing + added;
                            } else if let Some(old) = old
                                && q.position == 0
                            {
                                q.position = old.position;
                            }
                            put_question(doc, &questions, &q, old)?;
                        }
                        QuestionChange::Remove(code) => {
                            doc.put(&questions, qkey(code, "removed").as_str(), true)?;
                        }
                    }
                }
                doc.increment(&revisions, k::VERSION, 1)?;
                doc.put(&revisions, entry.as_str(), summary.as_str())?;
                Ok(())
            },
        )?;
        Ok(self.version())
    }

    /// The questionnaire version this replica sees.
    pub fn version(&self) -> u64 {
        version_at(&self.doc, None)
    }

    /// The revision log: (version seen by the editor, centre, questions touched).
    pub fn revisions(&self) -> Vec<(u64, CentreId, String)> {
        let Some(obj) = get_obj(&self.doc, &ROOT, k::REVISIONS) else {
            return Vec::new();
        };
        let mut out: Vec<_> = self
            .doc
            .keys(&obj)
            .filter_map(|key| {
                let mut parts = key.split(SEP);
                let v = parts.next()?.parse().ok()?;
                let centre = CentreId::new(parts.next()?).ok()?;
                Some((
                    v,
                    centre,
                    get_str(&self.doc, &obj, &key).unwrap_or_default(),
                ))
            })
            .collect();
        out.sort();
        out
    }

    /// Current questions (withdrawn ones left out), by code.
    pub fn questions(&self) -> BTreeMap<String, Question> {
        questions_of(&self.doc)
    }

    /// The questions in display order.
    pub fn ordered_questions(&self) -> Vec<Question> {
        ordered(self.questions())
    }

    /// The questionnaire as it was at `heads` (e.g. the heads an answer
    /// recorded).
    pub fn questions_at(
        &mut self,
        heads: &[ChangeHash],
    ) -> Result<BTreeMap<String, Question>, DocError> {
        let past = self.doc.fork_at(heads)?;
        Ok(questions_of(&past))
    }

    /// Adds or updates respondent organisations (one change).
    pub fn set_population(&mut self, respondents: &[Respondent]) -> Result<(), DocError> {
        self.require_stage(
            &[Stage::Draft, Stage::Open, Stage::Closed],
            "changing the population",
        )?;
        for r in respondents {
            if r.key.is_empty() || r.key != org_key(&r.name) {
                return Err(DocError::Invalid(format!(
                    "respondent « {} » must be keyed by its folded name",
                    r.name
                )));
            }
            check_free_text("respondent name", &r.name)?;
            for c in &r.communes {
                check_free_text("commune", c)?;
                if c.contains(SEP) {
                    return Err(DocError::Invalid(format!("commune « {c} » contains « | »")));
                }
            }
        }
        let population = self.container(k::POPULATION)?;
        let current = self.population();
        one_change(&mut self.doc, self.time, "population".to_owned(), |doc| {
            for r in respondents {
                let old = current.get(&r.key);
                if old.map(|o| &o.name) != Some(&r.name) {
                    doc.put(&population, pkey(&r.key, k::NAME).as_str(), r.name.as_str())?;
                }
                if old.map(|o| &o.centre) != Some(&r.centre) {
                    doc.put(
                        &population,
                        pkey(&r.key, k::CENTRE).as_str(),
                        r.centre.as_str(),
                    )?;
                }
                for c in &r.communes {
                    if !old.is_some_and(|o| o.communes.contains(c)) {
                        let key = format!("{}{SEP}{}{SEP}{c}", r.key, k::COMMUNE);
                        doc.put(&population, key.as_str(), true)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// The reference population, by key.
    pub fn population(&self) -> BTreeMap<String, Respondent> {
        population_of(&self.doc)
    }

    /// Records (or replaces) a respondent's answer in the shared document.
    /// Only for surveys that share raw answers; the respondent must be one
    /// of this centre's. Returns true when an earlier answer was replaced.
    pub fn record_answer(
        &mut self,
        respondent: &str,
        values: &BTreeMap<String, AnswerValue>,
    ) -> Result<bool, DocError> {
        if !self.answers_shared() {
            return Err(DocError::Invalid(
                "this survey keeps raw answers at each centre: only aggregates enter the document"
                    .to_owned(),
            ));
        }
        self.check_answer(respondent, values)?;
        let version = self.version();
        let heads = schema_heads(&mut self.doc);
        let answers = self.container(k::ANSWERS)?;
        let existing: Vec<String> = self
            .doc
            .keys(&answers)
            .filter(|key| key.split(SEP).next() == Some(respondent))
            .collect();
        let replaced = !existing.is_empty();
        let centre = self.centre();
        let mut encoded = BTreeMap::new();
        for (q, v) in values {
            let json = serde_json::to_string(v)
                .map_err(|e| DocError::Invalid(format!("answer cannot be encoded: {e}")))?;
            encoded.insert(format!("{respondent}{SEP}{}{SEP}{q}", k::Q), json);
        }
        one_change(&mut self.doc, self.time, "answer".to_owned(), |doc| {
            for key in &existing {
                if key.split(SEP).nth(1) == Some(k::Q) && !encoded.contains_key(key) {
                    doc.delete(&answers, key.as_str())?;
                }
            }
            doc.put(
                &answers,
                pkey(respondent, k::CENTRE).as_str(),
                centre.as_str(),
            )?;
            doc.put(&answers, pkey(respondent, k::VERSION).as_str(), version)?;
            doc.put(
                &answers,
                pkey(respondent, k::HEADS).as_str(),
                heads.as_str(),
            )?;
            for (key, json) in &encoded {
                doc.put(&answers, key.as_str(), json.as_str())?;
            }
            Ok(())
        })?;
        Ok(replaced)
    }

    /// Checks an answer before it is written anywhere (shared document or a
    /// node's own database): survey open, respondent of this centre, values
    /// fitting the current questions.
    pub fn check_answer(
        &self,
        respondent: &str,
        values: &BTreeMap<String, AnswerValue>,
    ) -> Result<(), DocError> {
        self.require_stage(&[Stage::Open], "answering")?;
        let population = self.population();
        let Some(r) = population.get(respondent) else {
            return Err(DocError::Invalid(format!(
                "« {respondent} » is not in the survey's reference population"
            )));
        };
        if r.centre != self.actor.centre {
            return Err(DocError::NotOwner {
                owner: r.centre.to_string(),
            });
        }
        let questions = self.questions();
        for (code, v) in values {
            let q = questions
                .get(code)
                .ok_or_else(|| DocError::Invalid(format!("no question {code} in the survey")))?;
            v.check(q)?;
        }
        Ok(())
    }

    /// Every raw answer in the document.
    pub fn answers(&self) -> BTreeMap<String, SurveyAnswer> {
        answers_of(&self.doc)
    }

    /// Adds the survey's own code (for coding free text).
    pub fn add_code(&mut self, code: &str, label: &str) -> Result<(), DocError> {
        self.require_stage(&[Stage::Draft, Stage::Open, Stage::Closed], "adding a code")?;
        check_slug(code)?;
        check_free_text("code label", label)?;
        let codes = self.container(k::CODES)?;
        one_change(&mut self.doc, self.time, "code".to_owned(), |doc| {
            doc.put(&codes, code, label)?;
            Ok(())
        })
    }

    /// The survey's own codes.
    pub fn survey_codes(&self) -> BTreeMap<String, String> {
        survey_codes_of(&self.doc)
    }

    /// Codes a shared free-text answer (answers_shared surveys).
    pub fn code_answer(
        &mut self,
        respondent: &str,
        question: &str,
        code: &CodeRef,
    ) -> Result<(), DocError> {
        self.require_stage(&[Stage::Open, Stage::Closed], "coding")?;
        code.check(&self.survey_codes())?;
        let answers = self.answers();
        let answer = answers
            .get(respondent)
            .ok_or_else(|| DocError::Invalid(format!("no shared answer from « {respondent} »")))?;
        match answer.values.get(question) {
            Some(AnswerValue::Text(_)) => {}
            _ => {
                return Err(DocError::Invalid(format!(
                    "« {respondent} » gave no free-text answer to {question}"
                )));
            }
        }
        let coding = self.container(k::CODING)?;
        let key = format!(
            "{respondent}{SEP}{question}{SEP}{}{SEP}{}",
            code.set.code(),
            code.code
        );
        let centre = self.centre();
        one_change(&mut self.doc, self.time, "coding".to_owned(), |doc| {
            doc.put(&coding, key.as_str(), centre.as_str())?;
            Ok(())
        })
    }

    /// Codes applied to shared answers: respondent → question → codes.
    pub fn codings(&self) -> BTreeMap<String, BTreeMap<String, BTreeSet<CodeRef>>> {
        codings_of(&self.doc)
    }

    /// Replaces this centre's aggregate counts (one change): the way answers
    /// kept at the node reach the network.
    pub fn set_aggregates(&mut self, tally: &CentreTally) -> Result<(), DocError> {
        self.require_stage(&[Stage::Open, Stage::Closed], "publishing aggregates")?;
        let obj = self.container(k::AGGREGATES)?;
        let centre = self.centre();
        let mut next: BTreeMap<String, ScalarValue> = BTreeMap::new();
        let mut put_u = |key: String, n: u64| {
            next.insert(key, ScalarValue::Uint(n));
        };
        put_u(format!("{centre}{SEP}respondents"), tally.respondents);
        for (v, n) in &tally.versions {
            put_u(format!("{centre}{SEP}version{SEP}{v}"), *n);
        }
        for (q, t) in &tally.questions {
            put_u(format!("{centre}{SEP}answered{SEP}{q}"), t.answered);
            for (cell, n) in &t.counts {
                put_u(format!("{centre}{SEP}count{SEP}{q}{SEP}{cell}"), *n);
            }
        }
        for (q, t) in &tally.questions {
            if let (Some(min), Some(max)) = (t.min, t.max) {
                next.insert(format!("{centre}{SEP}sum{SEP}{q}"), ScalarValue::F64(t.sum));
                next.insert(format!("{centre}{SEP}min{SEP}{q}"), ScalarValue::F64(min));
                next.insert(format!("{centre}{SEP}max{SEP}{q}"), ScalarValue::F64(max));
            }
        }
        let prefix = format!("{centre}{SEP}");
        let stale: Vec<String> = self
            .doc
            .keys(&obj)
            .filter(|key| key.starts_with(&prefix) && !next.contains_key(key))
            .collect();
        let changed: Vec<(String, ScalarValue)> = next
            .into_iter()
            .filter(|(key, v)| get_scalar(&self.doc, &obj, key).as_ref() != Some(v))
            .collect();
        if stale.is_empty() && changed.is_empty() {
            return Ok(());
        }
        one_change(&mut self.doc, self.time, "aggregates".to_owned(), |doc| {
            for key in &stale {
                doc.delete(&obj, key.as_str())?;
            }
            for (key, v) in changed {
                doc.put(&obj, key.as_str(), v)?;
            }
            Ok(())
        })
    }

    /// Every centre's aggregate counts.
    pub fn aggregates(&self) -> BTreeMap<CentreId, CentreTally> {
        aggregates_of(&self.doc)
    }

    /// Per-centre counts the results are computed from: the raw answers
    /// (with their codes) when the survey shares them, the centres'
    /// aggregates otherwise.
    pub fn tallies(&self) -> BTreeMap<CentreId, CentreTally> {
        tallies_of(&self.doc)
    }
}

fn centre_str<S: serde::Serializer>(c: &CentreId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.as_str())
}

fn check_date(d: &str) -> Result<(), DocError> {
    let b = d.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(DocError::Invalid(format!(
            "« {d} » is not a date YYYY-MM-DD"
        )))
    }
}

fn schema_heads(doc: &mut AutoCommit) -> String {
    let mut hex: Vec<String> = doc.get_heads().iter().map(ChangeHash::to_string).collect();
    hex.sort();
    hex.join(",")
}

fn qkey(code: &str, field: &str) -> String {
    format!("{code}{SEP}{field}")
}

fn pkey(org: &str, field: &str) -> String {
    format!("{org}{SEP}{field}")
}

fn choices_json(list: &[Choice]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// Writes the fields of `q` that differ from `old`, so concurrent edits of
/// different fields of one question both survive.
fn put_question(
    doc: &mut AutoCommit,
    obj: &ObjId,
    q: &Question,
    old: Option<&Question>,
) -> Result<(), DocError> {
    let put = |doc: &mut AutoCommit, field: &str, value: ScalarValue| -> Result<(), DocError> {
        let key = qkey(&q.code, field);
        if get_scalar(doc, obj, &key).as_ref() != Some(&value) {
            doc.put(obj, key.as_str(), value)?;
        }
        Ok(())
    };
    put(doc, "label", ScalarValue::Str(q.label.as_str().into()))?;
    put(doc, "kind", ScalarValue::Str(q.kind.code().into()))?;
    put(doc, "position", ScalarValue::Uint(q.position))?;
    if let QuestionKind::Scale { min, max } = q.kind {
        put(doc, "scale_min", ScalarValue::Int(min))?;
        put(doc, "scale_max", ScalarValue::Int(max))?;
    }
    if !q.options.is_empty() || old.is_some_and(|o| !o.options.is_empty()) {
        put(
            doc,
            "options",
            ScalarValue::Str(choices_json(&q.options).into()),
        )?;
    }
    if !q.rows.is_empty() || old.is_some_and(|o| !o.rows.is_empty()) {
        put(doc, "rows", ScalarValue::Str(choices_json(&q.rows).into()))?;
    }
    let coding = q.coding.map(CodeSet::code).unwrap_or("");
    if !coding.is_empty() || old.is_some_and(|o| o.coding.is_some()) {
        put(doc, "coding", ScalarValue::Str(coding.into()))?;
    }
    // Putting a question back after it was withdrawn restores it.
    if get_bool(doc, obj, &qkey(&q.code, "removed")) == Some(true) {
        put(doc, "removed", ScalarValue::Boolean(false))?;
    }
    Ok(())
}

fn ordered(questions: BTreeMap<String, Question>) -> Vec<Question> {
    let mut list: Vec<Question> = questions.into_values().collect();
    list.sort_by(|a, b| a.position.cmp(&b.position).then(a.code.cmp(&b.code)));
    list
}

/// Participating centres of a survey document.
pub fn participants<R: ReadDoc>(doc: &R) -> BTreeSet<CentreId> {
    get_obj(doc, &ROOT, k::PARTICIPANTS)
        .map(|p| {
            set_members(doc, &p)
                .into_iter()
                .filter_map(|c| CentreId::new(&c).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A scalar of a root container, now or as it was at `heads`.
fn scalar_at<R: ReadDoc>(
    doc: &R,
    container: &str,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<ScalarValue> {
    let obj = get_obj(doc, &ROOT, container)?;
    let got = match heads {
        Some(h) => doc.get_at(&obj, key, h),
        None => doc.get(&obj, key),
    };
    match got {
        Ok(Some((Value::Scalar(s), _))) => Some(s.into_owned()),
        _ => None,
    }
}

/// The stage, now or as it was at `heads`.
pub fn stage_at<R: ReadDoc>(doc: &R, heads: Option<&[ChangeHash]>) -> Stage {
    let has = |key| scalar_at(doc, k::STATUS, key, heads).is_some();
    if has(k::PUBLISHED) {
        Stage::Published
    } else if has(k::CLOSED) {
        Stage::Closed
    } else if has(k::OPENED) {
        Stage::Open
    } else {
        Stage::Draft
    }
}

/// Whether raw answers are shared, now or at `heads`.
pub fn answers_shared_at<R: ReadDoc>(doc: &R, heads: Option<&[ChangeHash]>) -> bool {
    matches!(
        scalar_at(doc, k::META, k::ANSWERS_SHARED, heads),
        Some(ScalarValue::Boolean(true))
    )
}

/// The centre a respondent is assigned to, now or at `heads`.
pub fn respondent_centre_at<R: ReadDoc>(
    doc: &R,
    respondent: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<String> {
    match scalar_at(doc, k::POPULATION, &pkey(respondent, k::CENTRE), heads)? {
        ScalarValue::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

/// The questionnaire version, now or at `heads`.
pub fn version_at<R: ReadDoc>(doc: &R, heads: Option<&[ChangeHash]>) -> u64 {
    match scalar_at(doc, k::REVISIONS, k::VERSION, heads) {
        Some(ScalarValue::Counter(c)) => u64::try_from(i64::from(&c)).unwrap_or(0),
        _ => 0,
    }
}

fn questions_of<R: ReadDoc>(doc: &R) -> BTreeMap<String, Question> {
    let Some(obj) = get_obj(doc, &ROOT, k::QUESTIONS) else {
        return BTreeMap::new();
    };
    let codes: BTreeSet<String> = doc
        .keys(&obj)
        .filter_map(|key| key.split(SEP).next().map(str::to_owned))
        .collect();
    let mut out = BTreeMap::new();
    for code in codes {
        let field = |f: &str| get_str(doc, &obj, &qkey(&code, f));
        if get_bool(doc, &obj, &qkey(&code, "removed")) == Some(true) {
            continue;
        }
        let int = |f: &str| match get_scalar(doc, &obj, &qkey(&code, f)) {
            Some(ScalarValue::Int(n)) => n,
            Some(ScalarValue::Uint(n)) => i64::try_from(n).unwrap_or(0),
            _ => 0,
        };
        let Some(kind) = field("kind")
            .and_then(|kc| QuestionKind::from_code(&kc, (int("scale_min"), int("scale_max"))))
        else {
            continue;
        };
        let list = |f: &str| -> Vec<Choice> {
            field(f)
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default()
        };
        out.insert(
            code.clone(),
            Question {
                label: field("label").unwrap_or_default(),
                kind,
                options: list("options"),
                rows: list("rows"),
                coding: field("coding").and_then(|c| CodeSet::from_code(&c)),
                position: get_u64(doc, &obj, &qkey(&code, "position")).unwrap_or(0),
                code,
            },
        );
    }
    out
}

/// The questions of any survey document, in display order.
pub fn ordered_questions<R: ReadDoc>(doc: &R) -> Vec<Question> {
    ordered(questions_of(doc))
}

fn population_of<R: ReadDoc>(doc: &R) -> BTreeMap<String, Respondent> {
    let Some(obj) = get_obj(doc, &ROOT, k::POPULATION) else {
        return BTreeMap::new();
    };
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut centres: BTreeMap<String, CentreId> = BTreeMap::new();
    let mut communes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in doc.keys(&obj) {
        let parts: Vec<&str> = key.splitn(3, SEP).collect();
        match parts[..] {
            [org, f] if f == k::NAME => {
                names.insert(org.to_owned(), get_str(doc, &obj, &key).unwrap_or_default());
            }
            [org, f] if f == k::CENTRE => {
                if let Some(c) = get_str(doc, &obj, &key).and_then(|c| CentreId::new(&c).ok()) {
                    centres.insert(org.to_owned(), c);
                }
            }
            [org, f, commune] if f == k::COMMUNE => {
                communes
                    .entry(org.to_owned())
                    .or_default()
                    .insert(commune.to_owned());
            }
            _ => {}
        }
    }
    centres
        .into_iter()
        .map(|(key, centre)| {
            let r = Respondent {
                name: names.get(&key).cloned().unwrap_or_else(|| key.clone()),
                communes: communes.remove(&key).unwrap_or_default(),
                key: key.clone(),
                centre,
            };
            (key, r)
        })
        .collect()
}

/// The reference population of any survey document.
pub fn population<R: ReadDoc>(doc: &R) -> BTreeMap<String, Respondent> {
    population_of(doc)
}

fn answers_of<R: ReadDoc>(doc: &R) -> BTreeMap<String, SurveyAnswer> {
    let Some(obj) = get_obj(doc, &ROOT, k::ANSWERS) else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<String, SurveyAnswer> = BTreeMap::new();
    let mut values: BTreeMap<String, BTreeMap<String, AnswerValue>> = BTreeMap::new();
    for key in doc.keys(&obj) {
        let parts: Vec<&str> = key.splitn(3, SEP).collect();
        match parts[..] {
            [org, f] if f == k::CENTRE => {
                let Some(centre) = get_str(doc, &obj, &key).and_then(|c| CentreId::new(&c).ok())
                else {
                    continue;
                };
                let heads = get_str(doc, &obj, &pkey(org, k::HEADS))
                    .map(|h| h.split(',').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or_default();
                out.insert(
                    org.to_owned(),
                    SurveyAnswer {
                        respondent: org.to_owned(),
                        centre,
                        version: get_u64(doc, &obj, &pkey(org, k::VERSION)).unwrap_or(0),
                        heads,
                        values: BTreeMap::new(),
                    },
                );
            }
            [org, f, q] if f == k::Q => {
                if let Some(v) =
                    get_str(doc, &obj, &key).and_then(|j| serde_json::from_str(&j).ok())
                {
                    values
                        .entry(org.to_owned())
                        .or_default()
                        .insert(q.to_owned(), v);
                }
            }
            _ => {}
        }
    }
    for (org, v) in values {
        if let Some(a) = out.get_mut(&org) {
            a.values = v;
        }
    }
    out
}

/// The raw answers of any survey document.
pub fn answers<R: ReadDoc>(doc: &R) -> BTreeMap<String, SurveyAnswer> {
    answers_of(doc)
}

fn survey_codes_of<R: ReadDoc>(doc: &R) -> BTreeMap<String, String> {
    let Some(obj) = get_obj(doc, &ROOT, k::CODES) else {
        return BTreeMap::new();
    };
    doc.keys(&obj)
        .map(|key| {
            let label = get_str(doc, &obj, &key).unwrap_or_default();
            (key, label)
        })
        .collect()
}

/// The survey's own codes in any survey document.
pub fn survey_codes<R: ReadDoc>(doc: &R) -> BTreeMap<String, String> {
    survey_codes_of(doc)
}

fn codings_of<R: ReadDoc>(doc: &R) -> BTreeMap<String, BTreeMap<String, BTreeSet<CodeRef>>> {
    let Some(obj) = get_obj(doc, &ROOT, k::CODING) else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<CodeRef>>> = BTreeMap::new();
    for key in doc.keys(&obj) {
        let parts: Vec<&str> = key.split(SEP).collect();
        if let [org, q, list, code] = parts[..]
            && let Some(set) = CodeSet::from_code(list)
        {
            out.entry(org.to_owned())
                .or_default()
                .entry(q.to_owned())
                .or_default()
                .insert(CodeRef {
                    set,
                    code: code.to_owned(),
                });
        }
    }
    out
}

fn aggregates_of<R: ReadDoc>(doc: &R) -> BTreeMap<CentreId, CentreTally> {
    let Some(obj) = get_obj(doc, &ROOT, k::AGGREGATES) else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<CentreId, CentreTally> = BTreeMap::new();
    for key in doc.keys(&obj) {
        let parts: Vec<&str> = key.splitn(4, SEP).collect();
        let Some(centre) = parts.first().and_then(|c| CentreId::new(c).ok()) else {
            continue;
        };
        let uint = get_u64(doc, &obj, &key).unwrap_or(0);
        let float = match get_scalar(doc, &obj, &key) {
            Some(ScalarValue::F64(f)) => f,
            _ => 0.0,
        };
        let t = out.entry(centre).or_default();
        match parts[1..] {
            ["respondents"] => t.respondents = uint,
            ["version", v] => {
                if let Ok(v) = v.parse() {
                    t.versions.insert(v, uint);
                }
            }
            ["answered", q] => t.questions.entry(q.to_owned()).or_default().answered = uint,
            ["count", q, cell] => {
                t.questions
                    .entry(q.to_owned())
                    .or_default()
                    .counts
                    .insert(cell.to_owned(), uint);
            }
            ["sum", q] => t.questions.entry(q.to_owned()).or_default().sum = float,
            ["min", q] => t.questions.entry(q.to_owned()).or_default().min = Some(float),
            ["max", q] => t.questions.entry(q.to_owned()).or_default().max = Some(float),
            _ => {}
        }
    }
    out
}

fn tallies_of<R: ReadDoc>(doc: &R) -> BTreeMap<CentreId, CentreTally> {
    if !answers_shared_at(doc, None) {
        return aggregates_of(doc);
    }
    let questions = questions_of(doc);
    let codings = codings_of(doc);
    let population = population_of(doc);
    let mut out: BTreeMap<CentreId, CentreTally> = BTreeMap::new();
    let empty = BTreeMap::new();
    for (org, answer) in answers_of(doc) {
        // Counted at the respondent's centre: the one that collected it.
        let centre = population
            .get(&org)
            .map(|r| r.centre.clone())
            .unwrap_or_else(|| answer.centre.clone());
        out.entry(centre).or_default().add(
            &questions,
            &answer,
            codings.get(&org).unwrap_or(&empty),
        );
    }
    out
}

/// Per-centre counts of any survey document (see [`SurveyDoc::tallies`]).
pub fn tallies<R: ReadDoc>(doc: &R) -> BTreeMap<CentreId, CentreTally> {
    tallies_of(doc)
}

/// The title of any survey document.
pub fn title<R: ReadDoc>(doc: &R) -> String {
    get_obj(doc, &ROOT, k::META)
        .and_then(|m| get_str(doc, &m, k::TITLE))
        .unwrap_or_default()
}

/// Which centre alone may write a key of an aggregates container.
pub(crate) fn aggregate_owner(key: &str) -> &str {
    key.split(SEP).next().unwrap_or("")
}

/// The respondent an `answers` or `coding` key is about.
pub(crate) fn key_respondent(key: &str) -> &str {
    key.split(SEP).next().unwrap_or("")
}
