//! The hub's survey rules (`validate`, rule 8): each forbidden write is made
//! on a centre's replica, bypassing the typed API where it would refuse,
//! and must be refused by `validate_changes` against the hub's copy; the
//! legitimate counterpart of each is accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc, ScalarValue};
use clps_model::docs::survey::{
    AnswerValue, CentreTally, Choice, Question, QuestionChange, QuestionKind, Respondent,
    SurveyDoc, SurveySettings,
};
use clps_model::docs::{DocId, ValidationError, genesis_change, validate_changes};
use common::{actor, centre, push_validated};

fn id() -> DocId {
    DocId::survey("regles").unwrap()
}

fn replica(hub: &mut AutoCommit, c: &str) -> SurveyDoc {
    SurveyDoc::load("regles", &hub.save(), actor(c, 7)).unwrap()
}

/// A hub copy with a configured survey (shared answers or not), one yes/no
/// question and two respondents, one at Namur and one at Liège.
fn hub(shared: bool, open: bool) -> AutoCommit {
    let mut hub = AutoCommit::new();
    hub.apply_changes([genesis_change(&id()).unwrap()]).unwrap();
    let mut n = replica(&mut hub, "namur");
    n.configure(&SurveySettings {
        title: "Règles".into(),
        answers_shared: shared,
    })
    .unwrap();
    n.edit_questions(&[QuestionChange::Put(Question {
        code: "q".into(),
        label: "Une question ?".into(),
        kind: QuestionKind::YesNo,
        options: vec![],
        rows: vec![],
        coding: None,
        position: 0,
    })])
    .unwrap();
    n.set_population(&[
        Respondent::new("PCS de Namur", &["Namur"], centre("namur")),
        Respondent::new("PCS de Liège", &["Liège"], centre("liege")),
    ])
    .unwrap();
    if open {
        n.open(None, None).unwrap();
    }
    push_validated(&id(), n.automerge_mut(), &mut hub);
    hub
}

/// Validates what `doc` adds to `hub` as sent by `author`.
fn check(hub: &mut AutoCommit, doc: &mut SurveyDoc, author: &str) -> Result<(), ValidationError> {
    let changes = hub.get_changes_added(doc.automerge_mut());
    validate_changes(&id(), hub.document(), &changes, &centre(author))
}

fn refused(r: Result<(), ValidationError>) -> String {
    match r {
        Err(ValidationError::Batch { source, .. }) => source.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn yes() -> BTreeMap<String, AnswerValue> {
    BTreeMap::from([("q".to_owned(), AnswerValue::YesNo(true))])
}

fn container(doc: &SurveyDoc, key: &str) -> automerge::ObjId {
    doc.automerge().get(ROOT, key).unwrap().unwrap().1
}

#[test]
fn a_centre_answers_only_for_its_own_respondents() {
    let mut hub = hub(true, true);
    let mut namur = replica(&mut hub, "namur");
    namur.record_answer("pcs-de-namur", &yes()).unwrap();
    assert!(check(&mut hub, &mut namur, "namur").is_ok());
    // The typed API refuses Liège's respondent; a forged write is refused
    // by the hub.
    assert!(namur.record_answer("pcs-de-liege", &yes()).is_err());
    let mut forged = replica(&mut hub, "namur");
    let answers = container(&forged, "answers");
    let am = forged.automerge_mut();
    am.put(&answers, "pcs-de-liege|centre", "namur").unwrap();
    am.put(&answers, "pcs-de-liege|q|q", "{\"yes_no\":true}")
        .unwrap();
    am.commit();
    let why = refused(check(&mut hub, &mut forged, "namur"));
    assert!(why.contains("not assigned to namur"), "{why}");
}

#[test]
fn answers_only_while_open_and_only_when_shared() {
    // Draft: refused.
    let mut draft = hub(true, false);
    let mut n = replica(&mut draft, "namur");
    assert!(n.record_answer("pcs-de-namur", &yes()).is_err());
    let answers = container(&n, "answers");
    n.automerge_mut()
        .put(&answers, "pcs-de-namur|centre", "namur")
        .unwrap();
    n.automerge_mut().commit();
    assert!(refused(check(&mut draft, &mut n, "namur")).contains("only while the survey is open"));

    // Aggregates-only survey: raw answers refused even when open.
    let mut private = hub(false, true);
    let mut n = replica(&mut private, "namur");
    assert!(n.record_answer("pcs-de-namur", &yes()).is_err());
    let answers = container(&n, "answers");
    n.automerge_mut()
        .put(&answers, "pcs-de-namur|centre", "namur")
        .unwrap();
    n.automerge_mut().commit();
    assert!(refused(check(&mut private, &mut n, "namur")).contains("keeps raw answers"));
}

#[test]
fn an_answer_taken_before_the_close_is_accepted_one_after_is_not() {
    let mut hub = hub(true, true);
    let mut liege = replica(&mut hub, "liege");
    // Offline, Liège collects an answer; meanwhile Namur closes.
    liege.record_answer("pcs-de-liege", &yes()).unwrap();
    let mut namur = replica(&mut hub, "namur");
    namur.close().unwrap();
    push_validated(&id(), namur.automerge_mut(), &mut hub);
    // Liège syncs later: its answer was taken while open, as it saw it.
    assert!(check(&mut hub, &mut liege, "liege").is_ok());
    push_validated(&id(), liege.automerge_mut(), &mut hub);
    // Once Liège has seen the close, a new answer is refused.
    let mut late = replica(&mut hub, "liege");
    assert!(late.record_answer("pcs-de-liege", &yes()).is_err());
    let answers = container(&late, "answers");
    late.automerge_mut()
        .put(&answers, "pcs-de-liege|version", 99_u64)
        .unwrap();
    late.automerge_mut().commit();
    assert!(refused(check(&mut hub, &mut late, "liege")).contains("clôturée"));
    // The questionnaire is frozen too.
    let mut q = replica(&mut hub, "liege");
    let questions = container(&q, "questions");
    q.automerge_mut()
        .put(&questions, "q|label", "Autre ?")
        .unwrap();
    q.automerge_mut().commit();
    assert!(refused(check(&mut hub, &mut q, "liege")).contains("frozen"));
}

#[test]
fn lifecycle_keys_go_in_order_and_name_their_author() {
    let mut hub = hub(true, false);
    // Closing a draft: refused.
    let mut n = replica(&mut hub, "namur");
    let status = container(&n, "status");
    n.automerge_mut().put(&status, "closed", "namur").unwrap();
    n.automerge_mut().commit();
    assert!(refused(check(&mut hub, &mut n, "namur")).contains("closed"));
    // Opening in another centre's name: refused.
    let mut n = replica(&mut hub, "namur");
    n.automerge_mut().put(&status, "opened", "liege").unwrap();
    n.automerge_mut().commit();
    assert!(check(&mut hub, &mut n, "namur").is_err());
    // Settings after opening: refused.
    let mut n = replica(&mut hub, "namur");
    n.open(Some("2020-12-01"), None).unwrap();
    assert!(check(&mut hub, &mut n, "namur").is_ok());
    push_validated(&id(), n.automerge_mut(), &mut hub);
    let mut n = replica(&mut hub, "namur");
    assert!(
        n.configure(&SurveySettings {
            title: "x".into(),
            answers_shared: false
        })
        .is_err()
    );
    let meta = container(&n, "meta");
    n.automerge_mut()
        .put(&meta, "answers_shared", false)
        .unwrap();
    n.automerge_mut().commit();
    assert!(refused(check(&mut hub, &mut n, "namur")).contains("draft"));
}

#[test]
fn participants_versions_and_aggregates_belong_to_their_author() {
    let mut hub = hub(false, true);
    let mut n = replica(&mut hub, "namur");
    let participants = container(&n, "participants");
    n.automerge_mut().put(&participants, "liege", true).unwrap();
    n.automerge_mut().commit();
    assert!(refused(check(&mut hub, &mut n, "namur")).contains("only add itself"));

    let mut n = replica(&mut hub, "namur");
    let revisions = container(&n, "revisions");
    n.automerge_mut()
        .increment(&revisions, "version", 2)
        .unwrap();
    n.automerge_mut().commit();
    assert!(refused(check(&mut hub, &mut n, "namur")).contains("by one"));

    let mut n = replica(&mut hub, "namur");
    let aggregates = container(&n, "aggregates");
    n.automerge_mut()
        .put(&aggregates, "liege|respondents", 3_u64)
        .unwrap();
    n.automerge_mut().commit();
    assert!(matches!(
        check(&mut hub, &mut n, "namur"),
        Err(ValidationError::Batch { source, .. }) if matches!(*source, ValidationError::ForeignKey { .. })
    ));

    // The legitimate counterparts.
    let mut n = replica(&mut hub, "namur");
    n.participate().unwrap();
    n.set_aggregates(&CentreTally {
        respondents: 1,
        ..CentreTally::default()
    })
    .unwrap();
    n.edit_questions(&[QuestionChange::Put(Question {
        code: "choix".into(),
        label: "Un choix".into(),
        kind: QuestionKind::SingleChoice,
        options: vec![Choice::new("a", "A")],
        rows: vec![],
        coding: None,
        position: 0,
    })])
    .unwrap();
    assert!(check(&mut hub, &mut n, "namur").is_ok());
    assert_eq!(
        n.automerge()
            .get(&aggregates, "namur|respondents")
            .unwrap()
            .unwrap()
            .0
            .into_scalar()
            .ok(),
        Some(ScalarValue::Uint(1))
    );
    // Nested objects never enter a survey.
    let mut n = replica(&mut hub, "namur");
    let codes = container(&n, "codes");
    n.automerge_mut()
        .put_object(&codes, "x", automerge::ObjType::Map)
        .unwrap();
    n.automerge_mut().commit();
    assert!(matches!(
        check(&mut hub, &mut n, "namur"),
        Err(ValidationError::Batch { source, .. }) if matches!(*source, ValidationError::Structure { .. })
    ));
}
