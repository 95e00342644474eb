//! `clps-hub survey results SURVEY`: the merged results of a joint survey,
//! read from the hub's document store (the same SQLite file the running
//! hub writes, opened alongside it in WAL mode) and computed by
//! `clps_model::survey_results`, as a French table, CSV or JSON.

use std::path::{Path, PathBuf};

use automerge::AutoCommit;
use clap::{Subcommand, ValueEnum};
use clps_model::docs::{DocId, schema};
use clps_model::survey_results::{self, DEFAULT_SMALL_CELLS, SurveyResults};

use crate::Config;
use crate::store::{Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum SurveyCommand {
    /// Résultats fusionnés d'une enquête commune.
    Results {
        /// Identifiant de l'enquête (par exemple pcs-2020).
        survey: String,
        /// Base SQLite du hub.
        #[arg(long, conflicts_with = "config", required_unless_present = "config")]
        database: Option<PathBuf>,
        /// Ou le fichier de configuration du hub (pour y lire la base).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Seuil de la règle des petits effectifs par centre (5 par défaut).
        #[arg(long, conflicts_with = "no_small_cells")]
        small_cells: Option<u64>,
        /// Affiche tous les effectifs par centre.
        #[arg(long)]
        no_small_cells: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum SurveyCliError {
    #[error("identifiant d'enquête invalide « {0} »")]
    BadId(String),
    #[error("la base du hub {0} n'existe pas")]
    NoDatabase(PathBuf),
    #[error("la configuration n'indique pas de base de données (database)")]
    InMemory,
    #[error("configuration illisible")]
    Config(#[from] crate::config::ConfigError),
    #[error("lecture de la base du hub impossible")]
    Store(#[from] StoreError),
    #[error("le hub n'a pas (encore) l'enquête « {0} »")]
    Unknown(String),
    #[error("le document de l'enquête est illisible")]
    Document(#[source] automerge::AutomergeError),
    #[error("le document n'est pas celui de l'enquête")]
    Schema(#[from] schema::DocError),
}

/// The survey document as the hub stores it: snapshot, then chunks.
pub async fn load_survey(database: &Path, survey: &str) -> Result<AutoCommit, SurveyCliError> {
    let doc_id = DocId::survey(survey).map_err(|_| SurveyCliError::BadId(survey.to_owned()))?;
    if !database.exists() {
        return Err(SurveyCliError::NoDatabase(database.to_owned()));
    }
    let store = Store::open(Some(database))?;
    let stored = store
        .load(&doc_id.to_string())
        .await?
        .ok_or_else(|| SurveyCliError::Unknown(survey.to_owned()))?;
    let mut doc = AutoCommit::new();
    if !stored.snapshot.is_empty() {
        doc.load_incremental(&stored.snapshot)
            .map_err(SurveyCliError::Document)?;
    }
    for chunk in &stored.chunks {
        doc.load_incremental(chunk)
            .map_err(SurveyCliError::Document)?;
    }
    schema::check_root(&doc, &doc_id)?;
    Ok(doc)
}

/// The merged results of `survey` in the hub's database.
pub async fn results(
    database: &Path,
    survey: &str,
    small_cells: Option<u64>,
) -> Result<SurveyResults, SurveyCliError> {
    let doc = load_survey(database, survey).await?;
    Ok(survey_results::from_doc(survey, &doc, small_cells))
}

/// Runs the subcommand and prints its output.
pub async fn run(command: SurveyCommand) -> Result<(), SurveyCliError> {
    match command {
        SurveyCommand::Results {
            survey,
            database,
            config,
            format,
            small_cells,
            no_small_cells,
        } => {
            let database = match (database, config) {
                (Some(d), _) => d,
                (None, Some(c)) => Config::load(&c)?.database.ok_or(SurveyCliError::InMemory)?,
                (None, None) => return Err(SurveyCliError::InMemory),
            };
            let threshold = if no_small_cells {
                None
            } else {
                Some(small_cells.unwrap_or(DEFAULT_SMALL_CELLS))
            };
            let r = results(&database, &survey, threshold).await?;
            match format {
                Format::Table => print!("{}", r.to_table()),
                Format::Csv => print!("{}", r.to_csv()),
                Format::Json => println!("{}", r.to_json()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clps_model::docs::survey::{
        AnswerValue, Question, QuestionChange, QuestionKind, Respondent, SurveyDoc, SurveySettings,
    };
    use clps_model::{CentreActor, CentreId};

    #[tokio::test]
    async fn results_are_read_from_the_hub_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        let namur = CentreActor::new(CentreId::new("namur").unwrap(), [1; 8]);
        let mut doc = SurveyDoc::create("essai", namur).unwrap();
        doc.configure(&SurveySettings {
            title: "Essai".into(),
            answers_shared: true,
        })
        .unwrap();
        doc.edit_questions(&[QuestionChange::Put(Question {
            code: "q".into(),
            label: "Oui ?".into(),
            kind: QuestionKind::YesNo,
            options: vec![],
            rows: vec![],
            coding: None,
            position: 0,
        })])
        .unwrap();
        let pop: Vec<Respondent> = (0..4)
            .map(|i| Respondent::new(&format!("PCS {i}"), &[], CentreId::new("namur").unwrap()))
            .collect();
        doc.set_population(&pop).unwrap();
        doc.open(None, None).unwrap();
        doc.record_answer(
            &pop[0].key,
            &[("q".to_owned(), AnswerValue::YesNo(true))].into(),
        )
        .unwrap();
        // As the hub stores accepted changes: one chunk each.
        let store = Store::open(Some(&path)).unwrap();
        let heads = Vec::new();
        for change in doc.automerge_mut().get_changes(&[]) {
            store
                .append(
                    "survey/essai",
                    "survey:essai",
                    change.raw_bytes().to_vec(),
                    heads.clone(),
                )
                .await
                .unwrap();
        }
        drop(store);
        let r = results(&path, "essai", None).await.unwrap();
        assert_eq!((r.respondents, r.population), (1, 4));
        assert_eq!(r.response_rate_percent, "25.0");
        assert!(matches!(
            results(&path, "absente", None).await,
            Err(SurveyCliError::Unknown(_))
        ));
    }
}
