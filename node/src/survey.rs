//! Joint surveys at a node: every write loads the survey document
//! (`survey/<id>`) from `shared`, applies one typed operation and stores the
//! new changes as local (to be sent to the hub) in the same transaction as
//! any SQLite row it touches.
//!
//! When the survey shares raw answers they go into the document; otherwise
//! they stay in `survey_answers` (migration 0003) and each answer or code
//! recomputes this centre's counts, written into the document's
//! `aggregates` in the same transaction: the only thing that leaves the node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clps_model::CentreId;
use clps_model::docs::DocId;
use clps_model::docs::normalize::org_key;
use clps_model::docs::survey::{
    AnswerValue, CentreTally, CodeRef, Question, QuestionChange, Respondent, Stage, SurveyAnswer,
    SurveyDoc, SurveySettings,
};
use clps_model::survey_results::{self, SurveyResults};
use rusqlite::{Connection, OptionalExtension, params};

use crate::shared;
use crate::store::StoreError;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

fn doc_id(survey: &str) -> Result<DocId, StoreError> {
    DocId::survey(survey).map_err(|_| {
        invalid(format!(
            "identifiant d'enquête invalide « {survey} » : 1 à 64 caractères a-z, 0-9, '-' ou '_'"
        ))
    })
}

/// The survey as this node holds it, or `None`.
pub fn load(conn: &Connection, survey: &str) -> Result<Option<SurveyDoc>, StoreError> {
    let id = doc_id(survey)?;
    let actor = shared::node_actor(conn)?;
    match shared::load(conn, &id, &actor)? {
        Some(doc) => Ok(Some(SurveyDoc::from_automerge(survey, doc, actor)?)),
        None => Ok(None),
    }
}

/// The survey, which must exist here (created or received from the hub).
pub fn require(conn: &Connection, survey: &str) -> Result<SurveyDoc, StoreError> {
    match load(conn, survey)? {
        Some(doc) if doc.created_by().is_some() => Ok(doc),
        _ => Err(invalid(format!(
            "aucune enquête « {survey} » sur ce nœud : créez-la (survey create) ou synchronisez avec le hub"
        ))),
    }
}

/// Runs `f` on the survey document and stores its new changes, plus what
/// `rows` writes to SQLite, in one transaction.
fn write<T>(
    conn: &mut Connection,
    survey: &str,
    f: impl FnOnce(&mut SurveyDoc) -> Result<T, StoreError>,
    rows: impl FnOnce(&rusqlite::Transaction<'_>, &mut SurveyDoc, &T) -> Result<(), StoreError>,
) -> Result<T, StoreError> {
    let id = doc_id(survey)?;
    let actor = shared::node_actor(conn)?;
    // Load inside the (immediate) write transaction, see `shared::store`.
    let tx = conn.transaction()?;
    let am = shared::load_or_create(&tx, &id, &actor)?;
    let mut doc = SurveyDoc::from_automerge(survey, am, actor)?;
    doc.set_commit_time(shared::now());
    let before = doc.automerge_mut().get_heads();
    let out = f(&mut doc)?;
    rows(&tx, &mut doc, &out)?;
    let mut am = doc.into_automerge();
    shared::store(&tx, &id, &mut am, &before, true)?;
    tx.commit()?;
    Ok(out)
}

fn require_stage(doc: &SurveyDoc, allowed: &[Stage], what: &str) -> Result<(), StoreError> {
    let stage = doc.stage();
    if allowed.contains(&stage) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} impossible : l'enquête est {}",
            stage.label()
        )))
    }
}

/// Creates a survey: its settings, this centre as first participant.
pub fn create(
    conn: &mut Connection,
    survey: &str,
    settings: &SurveySettings,
) -> Result<(), StoreError> {
    if load(conn, survey)?.is_some_and(|d| d.created_by().is_some()) {
        return Err(invalid(format!("l'enquête « {survey} » existe déjà")));
    }
    write(
        conn,
        survey,
        |doc| Ok(doc.configure(settings)?),
        |_, _, _| Ok(()),
    )
}

/// Adds this centre to the participants.
pub fn join(conn: &mut Connection, survey: &str) -> Result<(), StoreError> {
    require(conn, survey)?;
    write(conn, survey, |doc| Ok(doc.participate()?), |_, _, _| Ok(()))
}

/// Applies questionnaire edits; returns the version this node now sees.
pub fn edit_questions(
    conn: &mut Connection,
    survey: &str,
    changes: &[QuestionChange],
) -> Result<u64, StoreError> {
    let doc = require(conn, survey)?;
    require_stage(
        &doc,
        &[Stage::Draft, Stage::Open],
        "modifier le questionnaire",
    )?;
    for c in changes {
        if let QuestionChange::Remove(code) = c
            && !doc.questions().contains_key(code)
        {
            return Err(invalid(format!(
                "aucune question « {code} » dans l'enquête"
            )));
        }
    }
    write(
        conn,
        survey,
        |doc| Ok(doc.edit_questions(changes)?),
        |_, _, _| Ok(()),
    )
}

/// The lifecycle steps staff take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Open,
    Close,
    Publish,
}

/// Moves the survey on one step.
pub fn step(
    conn: &mut Connection,
    survey: &str,
    step: Step,
    dates: (Option<String>, Option<String>),
) -> Result<Stage, StoreError> {
    let doc = require(conn, survey)?;
    let (needed, what) = match step {
        Step::Open => (Stage::Draft, "ouvrir l'enquête"),
        Step::Close => (Stage::Open, "clôturer l'enquête"),
        Step::Publish => (Stage::Closed, "publier l'enquête"),
    };
    require_stage(&doc, &[needed], what)?;
    if step == Step::Open && doc.questions().is_empty() {
        return Err(invalid("ouvrir une enquête sans question n'a pas de sens"));
    }
    write(
        conn,
        survey,
        |doc| {
            match step {
                Step::Open => doc.open(dates.0.as_deref(), dates.1.as_deref())?,
                Step::Close => doc.close()?,
                Step::Publish => doc.publish()?,
            }
            Ok(doc.stage())
        },
        |_, _, _| Ok(()),
    )
}

/// Reads a population CSV: `organisation,communes,centre`, communes
/// separated by `;`. Returns the respondents, or the first bad line.
pub fn read_population(path: &Path) -> Result<Vec<Respondent>, StoreError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| invalid(format!("lecture de {} impossible : {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| invalid(format!("en-tête illisible : {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(org), Some(centre)) = (col("organisation"), col("centre")) else {
        return Err(invalid(
            "le fichier doit avoir les colonnes organisation, communes et centre",
        ));
    };
    let communes = col("communes");
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| invalid(format!("ligne {line} illisible : {e}")))?;
        let name = row.get(org).unwrap_or("").trim();
        if name.is_empty() {
            return Err(invalid(format!("ligne {line} : organisation manquante")));
        }
        let c = row.get(centre).unwrap_or("").trim();
        let c = CentreId::new(c).map_err(|e| invalid(format!("ligne {line} : {e}")))?;
        let list: Vec<&str> = communes
            .and_then(|i| row.get(i))
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let r = Respondent::new(name, &list, c);
        if r.key.is_empty() {
            return Err(invalid(format!(
                "ligne {line} : nom d'organisation illisible"
            )));
        }
        if !seen.insert(r.key.clone()) {
            return Err(invalid(format!(
                "ligne {line} : « {name} » figure deux fois"
            )));
        }
        out.push(r);
    }
    Ok(out)
}

/// Adds or updates respondent organisations.
pub fn set_population(
    conn: &mut Connection,
    survey: &str,
    respondents: &[Respondent],
) -> Result<usize, StoreError> {
    let doc = require(conn, survey)?;
    require_stage(
        &doc,
        &[Stage::Draft, Stage::Open, Stage::Closed],
        "modifier la population",
    )?;
    write(
        conn,
        survey,
        |doc| Ok(doc.set_population(respondents)?),
        |_, _, _| Ok(()),
    )?;
    Ok(respondents.len())
}

/// Finds a respondent by key or by name.
pub fn find_respondent(doc: &SurveyDoc, name_or_key: &str) -> Result<Respondent, StoreError> {
    let population = doc.population();
    population
        .get(name_or_key)
        .or_else(|| population.get(&org_key(name_or_key)))
        .cloned()
        .ok_or_else(|| {
            invalid(format!(
                "« {name_or_key} » ne fait pas partie de la population de l'enquête"
            ))
        })
}

/// What recording an answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerOutcome {
    pub respondent: Respondent,
    /// An earlier answer of this respondent was replaced.
    pub replaced: bool,
    /// The answer went into the shared document (else it stayed here).
    pub shared: bool,
    pub version: u64,
}

/// Checks an answer as staff gave it, in French: the survey is open, the
/// respondent belongs to this centre, every value fits its question.
pub fn check_answer(
    conn: &Connection,
    survey: &str,
    respondent: &str,
    values: &BTreeMap<String, AnswerValue>,
) -> Result<(SurveyDoc, Respondent), StoreError> {
    let doc = require(conn, survey)?;
    require_stage(&doc, &[Stage::Open], "répondre")?;
    let r = find_respondent(&doc, respondent)?;
    let centre = shared::centre(conn)?;
    if r.centre != centre {
        return Err(invalid(format!(
            "« {} » est suivi par le centre {} : seul ce centre recueille sa réponse",
            r.name, r.centre
        )));
    }
    let questions = doc.questions();
    for (code, v) in values {
        let q = questions
            .get(code)
            .ok_or_else(|| invalid(format!("aucune question « {code} » dans l'enquête")))?;
        v.check(q)
            .map_err(|e| invalid(format!("réponse à « {} » refusée : {e}", q.label)))?;
    }
    Ok((doc, r))
}

/// Records (or replaces) one respondent organisation's answer.
pub fn answer(
    conn: &mut Connection,
    survey: &str,
    respondent: &str,
    values: &BTreeMap<String, AnswerValue>,
) -> Result<AnswerOutcome, StoreError> {
    let (doc, r) = check_answer(conn, survey, respondent, values)?;
    let version = doc.version();
    if doc.answers_shared() {
        let key = r.key.clone();
        let replaced = write(
            conn,
            survey,
            |doc| Ok(doc.record_answer(&key, values)?),
            |_, _, _| Ok(()),
        )?;
        return Ok(AnswerOutcome {
            respondent: r,
            replaced,
            shared: true,
            version,
        });
    }
    let json = serde_json::to_string(values)
        .map_err(|e| invalid(format!("réponse impossible à enregistrer : {e}")))?;
    let replaced: bool = conn
        .query_row(
            "SELECT 1 FROM survey_answers WHERE survey = ?1 AND respondent = ?2",
            params![survey, r.key],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    let key = r.key.clone();
    write(
        conn,
        survey,
        |doc| {
            let heads = heads_text(doc);
            Ok(heads)
        },
        |tx, doc, heads| {
            tx.execute(
                "INSERT INTO survey_answers (survey, respondent, version, heads, answers, answered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (survey, respondent) DO UPDATE SET version = excluded.version,
                   heads = excluded.heads, answers = excluded.answers, answered_at = excluded.answered_at",
                params![survey, key, i64::try_from(version).unwrap_or(i64::MAX), heads, json, shared::now()],
            )?;
            // A replaced answer's codes no longer apply to its new text.
            tx.execute(
                "DELETE FROM survey_codings WHERE survey = ?1 AND respondent = ?2",
                params![survey, key],
            )?;
            publish_aggregates(tx, survey, doc)
        },
    )?;
    Ok(AnswerOutcome {
        respondent: r,
        replaced,
        shared: false,
        version,
    })
}

fn heads_text(doc: &mut SurveyDoc) -> String {
    shared::heads_text(&doc.automerge_mut().get_heads())
}

/// The answers kept at this node for a survey.
pub fn local_answers(conn: &Connection, survey: &str) -> Result<Vec<SurveyAnswer>, StoreError> {
    let centre = shared::centre(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT respondent, version, heads, answers FROM survey_answers WHERE survey = ?1 ORDER BY respondent",
    )?;
    let rows = stmt.query_map([survey], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (respondent, version, heads, json) = row?;
        let values = serde_json::from_str(&json)
            .map_err(|e| invalid(format!("réponse de {respondent} illisible : {e}")))?;
        out.push(SurveyAnswer {
            respondent,
            centre: centre.clone(),
            version: u64::try_from(version).unwrap_or(0),
            heads: heads.split(',').filter_map(|h| h.parse().ok()).collect(),
            values,
        });
    }
    Ok(out)
}

fn local_codes(
    conn: &Connection,
    survey: &str,
    codes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, BTreeMap<String, BTreeSet<CodeRef>>>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT respondent, question, code FROM survey_codings WHERE survey = ?1",
    )?;
    let rows = stmt.query_map([survey], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<CodeRef>>> = BTreeMap::new();
    for row in rows {
        let (respondent, question, code) = row?;
        if let Ok(c) = CodeRef::parse(&code, codes) {
            out.entry(respondent)
                .or_default()
                .entry(question)
                .or_default()
                .insert(c);
        }
    }
    Ok(out)
}

/// Recomputes this centre's counts from the answers kept here and writes
/// them into the document (aggregates-only surveys).
fn publish_aggregates(
    conn: &Connection,
    survey: &str,
    doc: &mut SurveyDoc,
) -> Result<(), StoreError> {
    let questions: BTreeMap<String, Question> = doc.questions();
    let codes = local_codes(conn, survey, &doc.survey_codes())?;
    let empty = BTreeMap::new();
    let mut tally = CentreTally::default();
    for a in local_answers(conn, survey)? {
        tally.add(&questions, &a, codes.get(&a.respondent).unwrap_or(&empty));
    }
    doc.set_aggregates(&tally)?;
    Ok(())
}

/// Adds one of the survey's own codes.
pub fn add_code(
    conn: &mut Connection,
    survey: &str,
    code: &str,
    label: &str,
) -> Result<(), StoreError> {
    require(conn, survey)?;
    write(
        conn,
        survey,
        |doc| Ok(doc.add_code(code, label)?),
        |_, _, _| Ok(()),
    )
}

/// Codes a free-text answer: in the document when answers are shared,
/// here (and in this centre's counts) otherwise.
pub fn code(
    conn: &mut Connection,
    survey: &str,
    respondent: &str,
    question: &str,
    code: &str,
) -> Result<CodeRef, StoreError> {
    let doc = require(conn, survey)?;
    require_stage(&doc, &[Stage::Open, Stage::Closed], "coder une réponse")?;
    let r = find_respondent(&doc, respondent)?;
    let code = CodeRef::parse(code, &doc.survey_codes()).map_err(|_| {
        invalid(format!(
            "code inconnu « {code} » : un code de determinant_layers, de ottawa_axes ou de l'enquête (liste:code)"
        ))
    })?;
    if !doc
        .questions()
        .get(question)
        .is_some_and(|q| q.kind == clps_model::docs::survey::QuestionKind::FreeText)
    {
        return Err(invalid(format!(
            "« {question} » n'est pas une question à texte libre de l'enquête"
        )));
    }
    if doc.answers_shared() {
        let (key, c) = (r.key.clone(), code.clone());
        write(
            conn,
            survey,
            |doc| {
                doc.code_answer(&key, question, &c).map_err(|_| {
                    invalid(format!(
                        "« {} » n'a pas de réponse en texte libre à « {question} »",
                        r.name
                    ))
                })
            },
            |_, _, _| Ok(()),
        )?;
        return Ok(code);
    }
    let has: bool = local_answers(conn, survey)?.iter().any(|a| {
        a.respondent == r.key && matches!(a.values.get(question), Some(AnswerValue::Text(_)))
    });
    if !has {
        return Err(invalid(format!(
            "aucune réponse en texte libre de « {} » à « {question} » sur ce nœud",
            r.name
        )));
    }
    let cell = code.cell();
    write(
        conn,
        survey,
        |_| Ok(()),
        |tx, doc, _| {
            tx.execute(
                "INSERT OR IGNORE INTO survey_codings (survey, respondent, question, code) VALUES (?1, ?2, ?3, ?4)",
                params![survey, r.key, question, cell],
            )?;
            publish_aggregates(tx, survey, doc)
        },
    )?;
    Ok(code)
}

/// The results from the merged document this node holds.
pub fn results(
    conn: &Connection,
    survey: &str,
    small_cells: Option<u64>,
) -> Result<SurveyResults, StoreError> {
    let doc = require(conn, survey)?;
    Ok(survey_results::from_doc(
        survey,
        doc.automerge(),
        small_cells,
    ))
}

/// The surveys this node holds: id, title, stage.
pub fn list(conn: &Connection) -> Result<Vec<(String, String, Stage)>, StoreError> {
    let mut out = Vec::new();
    for (id, _) in shared::list(conn)? {
        if let Some(survey) = id.strip_prefix("survey/")
            && let Some(doc) = load(conn, survey)?
        {
            out.push((survey.to_owned(), doc.title(), doc.stage()));
        }
    }
    Ok(out)
}
