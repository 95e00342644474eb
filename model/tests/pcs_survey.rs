//! The 2020 joint survey of the Plans de Cohésion Sociale, re-created end
//! to end in shared documents: 195 reference PCS assigned to the centres
//! whose territory covers them, 71 answers collected by seven centres, the
//! centres' documents merged into the hub's copy through validation, and
//! the published figures read back (93.0 / 83.1 / 78.9 %, 59 / 44 / 33 / 31
//! PCS, 36.4 % response). Also: two centres edit the questionnaire while a
//! third collects answers, and everything converges with each answer
//! keeping the version it answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use automerge::AutoCommit;
use clps_model::docs::survey::{
    AnswerValue, CentreTally, Choice, CodeRef, CodeSet, Question, QuestionChange, QuestionKind,
    Respondent, Stage, SurveyDoc, SurveySettings,
};
use clps_model::docs::{DocId, genesis_change};
use clps_model::survey_results::{self, Shown};
use common::{actor, centre, push_validated, sync_pair};

/// The arrondissement of each published respondent, as the centre whose
/// territory covers it.
const NAMED: &[(&str, &str)] = &[
    ("Amay", "huy-waremme"),
    ("Ans", "liege"),
    ("Aywaille", "liege"),
    ("Beaumont", "charleroi-thuin"),
    ("Beauraing", "namur"),
    ("Beauvechain", "brabant-wallon"),
    ("Beyne-Heusay", "liege"),
    ("Blegny", "liege"),
    ("Braine-le-Château", "brabant-wallon"),
    ("Braine-le-Comte", "mons-soignies"),
    ("Brunehaut", "hainaut-occidental"),
    ("Celles", "hainaut-occidental"),
    ("Chapelle-lez-Herlaimont", "charleroi-thuin"),
    ("Châtelet", "charleroi-thuin"),
    ("Chimay", "charleroi-thuin"),
    ("Ciney", "namur"),
    ("Comblain-au-Pont - Hamoir - Ferrières", "huy-waremme"),
    ("Comines-Warneton", "hainaut-occidental"),
    ("Doische", "namur"),
    ("Dour", "mons-soignies"),
    ("Erquelinnes", "charleroi-thuin"),
    ("Esneux", "liege"),
    ("Estaimpuis", "hainaut-occidental"),
    ("Flémalle", "liege"),
    ("Fléron", "liege"),
    ("Fleurus", "charleroi-thuin"),
    ("Florennes", "namur"),
    ("Fontaine-l'Évêque", "charleroi-thuin"),
    ("Froidchapelle", "charleroi-thuin"),
    ("Genappe", "brabant-wallon"),
    ("Gerpinnes", "charleroi-thuin"),
    ("Herve", "verviers"),
    ("Jemeppe-sur-Sambre", "namur"),
    ("Jodoigne", "brabant-wallon"),
    ("La Bruyère", "namur"),
    ("Liège", "liege"),
    ("Lobbes - Merbes-le-Château", "charleroi-thuin"),
    ("Malmedy", "verviers"),
    ("Manage", "mons-soignies"),
    ("Marchin", "huy-waremme"),
    ("Mettet", "namur"),
    ("Momignies", "charleroi-thuin"),
    ("Morlanwelz", "charleroi-thuin"),
    ("Neupré", "liege"),
    ("Nivelles", "brabant-wallon"),
    ("Ottignies-Louvain-la-Neuve", "brabant-wallon"),
    ("Oupeye", "liege"),
    ("Péruwelz", "hainaut-occidental"),
    ("Pont-à-Celles", "charleroi-thuin"),
    ("Quiévrain", "mons-soignies"),
    ("Rebecq", "brabant-wallon"),
    ("Rixensart", "brabant-wallon"),
    ("Rumes", "hainaut-occidental"),
    ("Rochefort", "namur"),
    ("Saint-Georges-sur-Meuse", "huy-waremme"),
    ("Seneffe", "mons-soignies"),
    ("Sivry-Rance", "charleroi-thuin"),
    ("Soignies", "mons-soignies"),
    ("Soumagne", "liege"),
    ("Sprimont", "liege"),
    ("Thimister-Clermont", "verviers"),
    ("Theux", "verviers"),
    ("Thuin", "charleroi-thuin"),
    ("Tubize", "brabant-wallon"),
    ("Verlaine", "huy-waremme"),
    ("Verviers", "verviers"),
    ("Viroinval", "namur"),
    ("Visé", "liege"),
    ("Walhain", "brabant-wallon"),
    ("Wavre", "brabant-wallon"),
];

const WALLOON: [&str; 9] = [
    "brabant-wallon",
    "charleroi-thuin",
    "hainaut-occidental",
    "huy-waremme",
    "liege",
    "luxembourg",
    "mons-soignies",
    "namur",
    "verviers",
];

/// The 195 PCS: the 70 named ones, then 125 placeholders spread over the
/// nine Walloon centres (the first one, in Luxembourg, is the 71st
/// respondent the report counts but does not name).
fn population() -> Vec<Respondent> {
    let mut out: Vec<Respondent> = NAMED
        .iter()
        .map(|(name, c)| {
            let communes: Vec<&str> = name.split(" - ").collect();
            Respondent::new(name, &communes, centre(c))
        })
        .collect();
    for i in 0..125 {
        let c = WALLOON[(i + 5) % WALLOON.len()];
        out.push(Respondent::new(
            &format!("PCS de référence {:03}", i + 1),
            &[],
            centre(c),
        ));
    }
    out
}

fn choices(codes: &[(&str, &str)]) -> Vec<Choice> {
    codes.iter().map(|(c, l)| Choice::new(c, l)).collect()
}

/// The questionnaire of `pcs-survey-2020.json`.
fn questionnaire() -> Vec<QuestionChange> {
    let seed: serde_json::Value =
        serde_json::from_str(clps_model::seed_data::PCS_SURVEY_JSON).unwrap();
    let label = |i: usize| seed["questions"][i]["label"].as_str().unwrap().to_owned();
    let publics = choices(&[
        ("personnes_agees", "Personnes âgées"),
        ("familles", "Familles"),
        ("adolescents", "Adolescents"),
        ("handicap", "Personnes présentant un handicap"),
    ]);
    vec![
        QuestionChange::Put(Question {
            code: "impact_activites".into(),
            label: label(0),
            kind: QuestionKind::MultipleChoice,
            options: choices(&[
                ("suppression", "Suppression"),
                ("report", "Report"),
                ("adaptation", "Adaptation"),
            ]),
            rows: vec![],
            coding: None,
            position: 0,
        }),
        QuestionChange::Put(Question {
            code: "publics_attention".into(),
            label: label(1),
            kind: QuestionKind::MultipleChoice,
            options: publics.clone(),
            rows: vec![],
            coding: None,
            position: 0,
        }),
        QuestionChange::Put(Question {
            code: "implication_public".into(),
            label: label(2),
            kind: QuestionKind::SingleChoice,
            options: choices(&[
                ("pas_implique", "Public pas impliqué"),
                ("occasionnellement", "Occasionnellement consulté"),
                ("regulierement", "Régulièrement consulté"),
                ("associe", "Associé aux décisions"),
            ]),
            rows: vec![],
            coding: None,
            position: 0,
        }),
        QuestionChange::Put(Question {
            code: "canaux".into(),
            label: label(3),
            kind: QuestionKind::Matrix,
            options: choices(&[
                ("reseaux_sociaux", "Réseaux sociaux"),
                ("contacts_directs", "Contacts directs"),
                ("courrier", "Courrier"),
                ("telephone", "Appels téléphoniques"),
            ]),
            rows: publics,
            coding: None,
            position: 0,
        }),
        QuestionChange::Put(Question {
            code: "nouvelles_actions".into(),
            label: label(4),
            kind: QuestionKind::FreeText,
            options: vec![],
            rows: vec![],
            coding: Some(CodeSet::DeterminantLayers),
            position: 0,
        }),
    ]
}

/// The answer of the i-th respondent (0..71): the counts of the report by
/// construction.
fn answer(i: usize) -> BTreeMap<String, AnswerValue> {
    let set = |pairs: &[(&str, bool)]| -> BTreeSet<String> {
        pairs
            .iter()
            .filter(|(_, on)| *on)
            .map(|(c, _)| (*c).to_owned())
            .collect()
    };
    let mut a = BTreeMap::new();
    a.insert(
        "impact_activites".to_owned(),
        AnswerValue::Choices(set(&[
            ("suppression", i < 66),
            ("report", i >= 12),
            ("adaptation", i % 71 < 56),
        ])),
    );
    a.insert(
        "publics_attention".to_owned(),
        AnswerValue::Choices(set(&[
            ("personnes_agees", i < 59),
            ("familles", i >= 27),
            ("adolescents", i < 33),
            ("handicap", i >= 40),
        ])),
    );
    a.insert(
        "implication_public".to_owned(),
        AnswerValue::Choice(
            if i.is_multiple_of(3) {
                "occasionnellement"
            } else {
                "pas_implique"
            }
            .into(),
        ),
    );
    a.insert(
        "canaux".to_owned(),
        AnswerValue::Matrix(BTreeMap::from([(
            "personnes_agees".to_owned(),
            set(&[("telephone", true), ("courrier", i.is_multiple_of(2))]),
        )])),
    );
    a.insert(
        "nouvelles_actions".to_owned(),
        AnswerValue::Text(format!("Distribution de colis et appels aux aînés ({i})")),
    );
    a
}

fn survey_id() -> DocId {
    DocId::survey("pcs-2020").unwrap()
}

/// The hub's copy: the genesis, then whatever the centres push.
fn hub_doc() -> AutoCommit {
    let mut hub = AutoCommit::new();
    hub.apply_changes([genesis_change(&survey_id()).unwrap()])
        .unwrap();
    hub
}

/// A centre's replica of the hub's copy.
fn replica(hub: &mut AutoCommit, centre_id: &str, instance: u8) -> SurveyDoc {
    SurveyDoc::load("pcs-2020", &hub.save(), actor(centre_id, instance)).unwrap()
}

/// The creator sets the survey up and opens it; returns the hub copy.
fn set_up(answers_shared: bool) -> AutoCommit {
    let mut hub = hub_doc();
    let mut ct = replica(&mut hub, "charleroi-thuin", 1);
    ct.configure(&SurveySettings {
        title: "Les PCS face à la crise du Covid".into(),
        answers_shared,
    })
    .unwrap();
    assert_eq!(ct.edit_questions(&questionnaire()).unwrap(), 1);
    ct.set_population(&population()).unwrap();
    ct.open(Some("2020-12-01"), Some("2021-01-31")).unwrap();
    push_validated(&survey_id(), ct.automerge_mut(), &mut hub);
    hub
}

/// The respondents, in answer order: the 70 named, then one placeholder.
fn respondents() -> Vec<Respondent> {
    let pop = population();
    let mut r: Vec<Respondent> = pop[..70].to_vec();
    r.push(pop[70].clone());
    r
}

#[test]
fn the_pcs_survey_is_recreated_and_merged_at_the_hub() {
    let mut hub = set_up(true);
    let answering = respondents();
    let by_centre: BTreeSet<String> = answering.iter().map(|r| r.centre.to_string()).collect();
    assert!(by_centre.len() >= 7, "{by_centre:?}");
    // Each centre collects its own PCS offline, on its replica.
    let mut replicas: BTreeMap<String, SurveyDoc> = by_centre
        .iter()
        .map(|c| (c.clone(), replica(&mut hub, c, 2)))
        .collect();
    for (i, r) in answering.iter().enumerate() {
        let rep = replicas.get_mut(r.centre.as_str()).unwrap();
        assert!(
            !rep.record_answer(&r.key, &answer(i)).unwrap(),
            "first answer"
        );
    }
    // Another centre's respondent is refused before anything is written.
    let namur = replicas.get_mut("namur").unwrap();
    let err = namur
        .record_answer(&answering[1].key, &answer(1))
        .unwrap_err();
    assert!(err.to_string().contains("liege"), "{err}");
    // Liège codes one free-text answer against the determinant layers.
    let code = CodeRef::parse("reseaux_sociaux", &BTreeMap::new()).unwrap();
    replicas
        .get_mut("liege")
        .unwrap()
        .code_answer(
            &clps_model::docs::normalize::org_key("Liège"),
            "nouvelles_actions",
            &code,
        )
        .unwrap();
    // The centres sync with the hub in turn; every change is validated.
    for rep in replicas.values_mut() {
        rep.participate().unwrap();
        push_validated(&survey_id(), rep.automerge_mut(), &mut hub);
    }
    let results = survey_results::from_doc("pcs-2020", &hub, None);
    assert_eq!(results.population, 195);
    assert_eq!(results.respondents, 71);
    assert_eq!(results.response_rate_percent, "36.4");
    let impact = results.question("impact_activites").unwrap();
    assert_eq!(impact.answered, 71);
    let pct = |code: &str| {
        let c = impact.cell(code).unwrap();
        (c.count, c.share.denominator, c.percent.clone())
    };
    assert_eq!(pct("suppression"), (66, 71, "93.0".into()));
    assert_eq!(pct("report"), (59, 71, "83.1".into()));
    assert_eq!(pct("adaptation"), (56, 71, "78.9".into()));
    let publics = results.question("publics_attention").unwrap();
    let counts: Vec<u64> = ["personnes_agees", "familles", "adolescents", "handicap"]
        .iter()
        .map(|c| publics.cell(c).unwrap().count)
        .collect();
    assert_eq!(counts, vec![59, 44, 33, 31]);
    // Per centre: the breakdown adds up to the totals.
    let supp = impact.cell("suppression").unwrap();
    let sum: u64 = supp
        .per_centre
        .values()
        .map(|s| match s {
            Shown::Exact(n) => *n,
            Shown::Masked(_) => panic!("no masking asked"),
        })
        .sum();
    assert_eq!(sum, 66);
    let ct = results
        .centres
        .iter()
        .find(|c| c.centre == "charleroi-thuin")
        .unwrap();
    assert_eq!(ct.respondents, Shown::Exact(15));
    let coded = results.question("nouvelles_actions").unwrap();
    assert_eq!(
        coded
            .cell("determinant_layers:reseaux_sociaux")
            .unwrap()
            .count,
        1
    );
    assert_eq!(results.versions, BTreeMap::from([(1, 71)]));

    // With the small-cell rule, small per-centre cells are masked and
    // totals stay exact.
    let masked = survey_results::from_doc("pcs-2020", &hub, Some(5));
    let hw = masked
        .question("impact_activites")
        .unwrap()
        .cell("report")
        .unwrap();
    assert_eq!(hw.count, 59);
    assert_eq!(hw.per_centre["luxembourg"], Shown::Masked("< 5".into()));
    assert!(
        hw.per_centre
            .values()
            .any(|s| matches!(s, Shown::Exact(n) if *n >= 5))
    );
    let table = masked.to_table();
    assert!(
        table.contains("Taux de réponse : 71 / 195 = 36,4 %"),
        "{table}"
    );
    assert!(table.contains("83,1 %"), "{table}");
    let csv = masked.to_csv();
    assert!(
        csv.contains(
            "impact_activites,Impact de la crise sur les activités du PCS,report,Report,59,71,83.1"
        ),
        "{csv}"
    );
    assert!(
        masked
            .to_json()
            .contains("\"response_rate_percent\": \"36.4\"")
    );

    // Closing, then publishing; a late answer is refused locally.
    let mut ct = replica(&mut hub, "charleroi-thuin", 1);
    ct.close().unwrap();
    assert!(ct.record_answer(&answering[3].key, &answer(3)).is_err());
    ct.publish().unwrap();
    push_validated(&survey_id(), ct.automerge_mut(), &mut hub);
    assert_eq!(
        clps_model::docs::survey::stage_at(&hub, None),
        Stage::Published
    );
}

#[test]
fn aggregates_only_surveys_give_the_same_figures() {
    let mut hub = set_up(false);
    let answering = respondents();
    let mut tallies: BTreeMap<String, CentreTally> = BTreeMap::new();
    let questions: BTreeMap<String, Question> = replica(&mut hub, "namur", 3).questions();
    for (i, r) in answering.iter().enumerate() {
        // Raw answers stay at the node: here, in the test's memory.
        let rep = replica(&mut hub, r.centre.as_str(), 3);
        rep.check_answer(&r.key, &answer(i)).unwrap();
        let stored = clps_model::docs::survey::SurveyAnswer {
            respondent: r.key.clone(),
            centre: r.centre.clone(),
            version: rep.version(),
            heads: Vec::new(),
            values: answer(i),
        };
        tallies
            .entry(r.centre.to_string())
            .or_default()
            .add(&questions, &stored, &BTreeMap::new());
    }
    for (c, tally) in &tallies {
        let mut rep = replica(&mut hub, c, 3);
        // The raw answer is refused in the shared document.
        assert!(rep.record_answer("x", &BTreeMap::new()).is_err());
        rep.set_aggregates(tally).unwrap();
        push_validated(&survey_id(), rep.automerge_mut(), &mut hub);
    }
    let results = survey_results::from_doc("pcs-2020", &hub, Some(5));
    assert_eq!(results.respondents, 71);
    assert_eq!(results.response_rate_percent, "36.4");
    let impact = results.question("impact_activites").unwrap();
    assert_eq!(impact.cell("report").unwrap().percent, "83.1");
    let publics = results.question("publics_attention").unwrap();
    assert_eq!(publics.cell("handicap").unwrap().count, 31);
    assert!(clps_model::docs::survey::answers(&hub).is_empty());
}

#[test]
fn concurrent_questionnaire_edits_converge_and_answers_keep_their_version() {
    let mut hub = set_up(true);
    let mut a = replica(&mut hub, "charleroi-thuin", 4);
    let mut b = replica(&mut hub, "namur", 4);
    let mut c = replica(&mut hub, "liege", 4);
    assert_eq!(c.version(), 1);
    let liege: Vec<Respondent> = respondents()
        .into_iter()
        .filter(|r| r.centre.as_str() == "liege")
        .collect();
    // Liège collects two answers on version 1 while A and B edit offline.
    c.record_answer(&liege[0].key, &answer(0)).unwrap();
    let mut q1 = c.questions()["impact_activites"].clone();
    q1.label = "Impact de la crise sur les activités".into();
    assert_eq!(a.edit_questions(&[QuestionChange::Put(q1)]).unwrap(), 2);
    let mut q3 = b.questions()["implication_public"].clone();
    q3.options
        .push(Choice::new("co_construit", "Co-construction"));
    let extra = Question {
        code: "budget".into(),
        label: "Budget consacré (euros)".into(),
        kind: QuestionKind::Number,
        options: vec![],
        rows: vec![],
        coding: None,
        position: 0,
    };
    assert_eq!(
        b.edit_questions(&[QuestionChange::Put(q3), QuestionChange::Put(extra)])
            .unwrap(),
        2
    );
    c.record_answer(&liege[1].key, &answer(1)).unwrap();
    // A and B meet first (both version 2 locally, 3 once merged).
    sync_pair(a.automerge_mut(), b.automerge_mut());
    assert_eq!(a.version(), 3);
    // Liège syncs with A, then answers on the merged questionnaire.
    sync_pair(a.automerge_mut(), c.automerge_mut());
    let mut late = answer(2);
    late.insert("budget".into(), AnswerValue::Number(1500.0));
    c.record_answer(&liege[2].key, &late).unwrap();
    // Re-answering replaces, and keeps one answer per respondent.
    assert!(c.record_answer(&liege[0].key, &answer(0)).unwrap());
    // Everyone converges, at the hub too.
    for doc in [&mut a, &mut b, &mut c] {
        push_validated(&survey_id(), doc.automerge_mut(), &mut hub);
    }
    for doc in [&mut a, &mut b, &mut c] {
        sync_pair(doc.automerge_mut(), &mut hub);
    }
    let heads = hub.get_heads();
    for doc in [&mut a, &mut b, &mut c] {
        assert_eq!(doc.automerge_mut().get_heads(), heads);
    }
    let questions = a.questions();
    assert_eq!(
        questions["impact_activites"].label,
        "Impact de la crise sur les activités"
    );
    assert_eq!(questions["implication_public"].options.len(), 5);
    assert!(questions.contains_key("budget"));
    assert_eq!(a.version(), 3);
    assert_eq!(a.revisions().len(), 3);
    let answers = a.answers();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[&liege[1].key].version, 1);
    assert_eq!(answers[&liege[2].key].version, 3);
    assert_eq!(
        answers[&liege[0].key].version, 3,
        "the re-answer replaced the first one"
    );
    // The heads an answer recorded give back the questionnaire it answered.
    let old = a
        .questions_at(&answers[&liege[1].key].heads.clone())
        .unwrap();
    assert!(!old.contains_key("budget"));
    assert_eq!(old["implication_public"].options.len(), 4);
    let results = survey_results::from_doc("pcs-2020", &hub, None);
    assert_eq!(results.versions, BTreeMap::from([(1, 1), (3, 2)]));
    let budget = results.question("budget").unwrap().number.clone().unwrap();
    assert_eq!((budget.n, budget.mean), (1, Some(1500.0)));
}
