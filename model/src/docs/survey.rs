//! A joint survey (`survey/<id>`): for now only the container, its schema
//! version and the list of participating centres. The questionnaire, answers,
//! coding and synthesis come with the survey issue and will add their own
//! containers to the genesis under a new schema version.

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};

use crate::actor::CentreActor;
use crate::centres::CentreId;
use crate::docs::ids::DocId;
use crate::docs::schema::{self, DocError, get_obj, get_str, one_change, set_members};

const SURVEY: &str = "survey";
const PARTICIPANTS: &str = "participants";

pub(crate) fn genesis_content(doc: &mut AutoCommit, survey: &str) -> Result<(), DocError> {
    doc.put(ROOT, SURVEY, survey)?;
    doc.put_object(ROOT, PARTICIPANTS, ObjType::Map)?;
    Ok(())
}

/// One joint survey, written by one centre instance.
#[derive(Debug)]
pub struct SurveyDoc {
    doc: AutoCommit,
    doc_id: DocId,
    actor: CentreActor,
    time: i64,
}

impl SurveyDoc {
    pub fn create(survey: &str, actor: CentreActor) -> Result<SurveyDoc, DocError> {
        let doc_id = DocId::survey(survey).map_err(|e| DocError::Invalid(e.to_string()))?;
        let doc = schema::create_doc(&doc_id, &actor)?;
        Ok(SurveyDoc {
            doc,
            doc_id,
            actor,
            time: 0,
        })
    }

    pub fn load(survey: &str, bytes: &[u8], actor: CentreActor) -> Result<SurveyDoc, DocError> {
        let doc_id = DocId::survey(survey).map_err(|e| DocError::Invalid(e.to_string()))?;
        let doc = schema::load_doc(&doc_id, bytes, &actor)?;
        Ok(SurveyDoc {
            doc,
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

    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    pub fn survey_id(&self) -> String {
        get_str(&self.doc, &ROOT, SURVEY).unwrap_or_default()
    }

    pub fn schema_version(&self) -> u64 {
        schema::schema_version(&self.doc)
    }

    /// Lists this centre among the participants.
    pub fn participate(&mut self) -> Result<(), DocError> {
        let participants = schema::root_obj(&self.doc, PARTICIPANTS)?;
        let centre = self.actor.centre.to_string();
        one_change(&mut self.doc, self.time, "participate".to_owned(), |doc| {
            doc.put(&participants, centre.as_str(), true)?;
            Ok(())
        })
    }

    pub fn participants(&self) -> BTreeSet<CentreId> {
        participants(&self.doc)
    }
}

/// Participating centres of a survey document.
pub fn participants<R: ReadDoc>(doc: &R) -> BTreeSet<CentreId> {
    get_obj(doc, &ROOT, PARTICIPANTS)
        .map(|p| {
            set_members(doc, &p)
                .into_iter()
                .filter_map(|c| CentreId::new(&c).ok())
                .collect()
        })
        .unwrap_or_default()
}
