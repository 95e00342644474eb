//! The merge semantics the issue asks for, one scenario each: two or more
//! replicas edit offline, sync, and the typed view is checked.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use clps_model::docs::appui::{AppuiDoc, SelectionKey, ServiceInput};
use clps_model::docs::catalogue::{
    Availability, CatalogueDoc, Holding, MergePlan, RecordEdit, RecordId, Review, ReviewerRole,
    bucket_of, duplicate_candidates, merge_records,
};
use clps_model::docs::{DocError, genesis_change};
use common::*;

/// Two replicas of bucket `bucket`, the second loaded from the first's save
/// after `id` was created.
fn two_replicas(bucket: u16, id: &RecordId) -> (CatalogueDoc, CatalogueDoc) {
    let mut a = CatalogueDoc::create(bucket, actor("charleroi-thuin", 1)).unwrap();
    a.create_record(id, &fields("Le Covid-19 et nous")).unwrap();
    let b = CatalogueDoc::load(bucket, &a.save(), actor("namur", 1)).unwrap();
    (a, b)
}

fn sync(a: &mut CatalogueDoc, b: &mut CatalogueDoc) {
    sync_pair(a.automerge_mut(), b.automerge_mut());
}

#[test]
fn genesis_is_identical_everywhere_so_offline_creation_merges() {
    let id_a = id_in_bucket("liege", 7, 0);
    let id_b = id_in_bucket("namur", 7, 0);
    let mut a = CatalogueDoc::create(7, actor("liege", 1)).unwrap();
    let mut b = CatalogueDoc::create(7, actor("namur", 1)).unwrap();
    a.create_record(&id_a, &fields("Emotika")).unwrap();
    b.create_record(&id_b, &fields("Ma santé c'est..."))
        .unwrap();
    sync(&mut a, &mut b);
    assert_eq!(a.record_ids(), b.record_ids());
    assert_eq!(a.record_ids().len(), 2, "both offline records survive");
    let g1 = genesis_change(a.doc_id()).unwrap();
    let g2 = genesis_change(a.doc_id()).unwrap();
    assert_eq!(g1.hash(), g2.hash());
}

#[test]
fn different_fields_both_survive_and_one_commit_per_operation() {
    let id = id_in_bucket("charleroi-thuin", 3, 0);
    let (mut a, mut b) = two_replicas(3, &id);
    let before = a.automerge_mut().get_heads();
    a.edit_record(
        &id,
        &[
            RecordEdit::Title("Le Covid-19 et nous (2e éd.)".into()),
            RecordEdit::Year(Some(2021)),
            RecordEdit::AddPublic("adultes".into()),
        ],
    )
    .unwrap();
    let changes = a.automerge_mut().get_changes(&before);
    assert_eq!(changes.len(), 1, "one logical operation is one change");
    b.edit_record(&id, &[RecordEdit::ConditionsOfUse("Téléchargeable".into())])
        .unwrap();
    sync(&mut a, &mut b);
    let r = a.record(&id).unwrap();
    assert_eq!(r, b.record(&id).unwrap());
    assert_eq!(r.fields.title, "Le Covid-19 et nous (2e éd.)");
    assert_eq!(r.fields.year, Some(2021));
    assert_eq!(r.fields.conditions_of_use, "Téléchargeable");
    assert!(a.conflicts().is_empty(), "{:?}", a.conflicts());
}

#[test]
fn same_field_has_one_winner_and_a_visible_conflict() {
    let id = id_in_bucket("charleroi-thuin", 4, 0);
    let (mut a, mut b) = two_replicas(4, &id);
    a.edit_record(&id, &[RecordEdit::Title("Titre A".into())])
        .unwrap();
    b.edit_record(&id, &[RecordEdit::Title("Titre B".into())])
        .unwrap();
    sync(&mut a, &mut b);
    let winner = a.record(&id).unwrap().fields.title;
    assert_eq!(winner, b.record(&id).unwrap().fields.title);
    let conflicts = a.conflicts();
    assert_eq!(conflicts, b.conflicts());
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].field, "title");
    assert_eq!(conflicts[0].values[0], winner, "the winner comes first");
    let all: BTreeSet<_> = conflicts[0].values.iter().cloned().collect();
    assert_eq!(
        all,
        BTreeSet::from(["Titre A".to_owned(), "Titre B".to_owned()])
    );

    // A steward resolves it by writing the field again.
    a.edit_record(&id, &[RecordEdit::Title("Titre C".into())])
        .unwrap();
    assert!(a.conflicts().is_empty());
}

#[test]
fn sets_are_add_wins() {
    let id = id_in_bucket("charleroi-thuin", 5, 0);
    let (mut a, mut b) = two_replicas(5, &id);
    a.edit_record(
        &id,
        &[
            RecordEdit::AddTheme("sante_mentale".into()),
            RecordEdit::RemoveTheme("competences_psychosociales".into()),
        ],
    )
    .unwrap();
    b.edit_record(&id, &[RecordEdit::AddTheme("pandemie".into())])
        .unwrap();
    sync(&mut a, &mut b);
    let themes = a.record(&id).unwrap().fields.themes;
    assert_eq!(
        themes,
        BTreeSet::from(["sante_mentale".to_owned(), "pandemie".to_owned()])
    );

    // A removal concurrent with a re-addition: the addition wins.
    a.edit_record(&id, &[RecordEdit::RemoveTheme("pandemie".into())])
        .unwrap();
    b.edit_record(&id, &[RecordEdit::RemoveTheme("pandemie".into())])
        .unwrap();
    b.edit_record(&id, &[RecordEdit::AddTheme("pandemie".into())])
        .unwrap();
    sync(&mut a, &mut b);
    assert!(a.record(&id).unwrap().fields.themes.contains("pandemie"));
    assert_eq!(a.record(&id), b.record(&id));
}

#[test]
fn text_merges_character_by_character() {
    let id = id_in_bucket("charleroi-thuin", 6, 0);
    let (mut a, mut b) = two_replicas(6, &id);
    // "Photo-expression." -> both insert at different places.
    a.edit_record(
        &id,
        &[RecordEdit::SpliceDescription {
            pos: 0,
            delete: 0,
            insert: "Outil de ".into(),
        }],
    )
    .unwrap();
    b.edit_record(
        &id,
        &[RecordEdit::SpliceDescription {
            pos: 16,
            delete: 0,
            insert: " : 77 photos".into(),
        }],
    )
    .unwrap();
    sync(&mut a, &mut b);
    assert_eq!(
        a.record(&id).unwrap().fields.description,
        "Outil de Photo-expression : 77 photos."
    );
    assert_eq!(a.record(&id), b.record(&id));
    assert!(matches!(
        a.edit_record(
            &id,
            &[RecordEdit::SpliceDescription {
                pos: 500,
                delete: 0,
                insert: "x".into()
            }]
        ),
        Err(DocError::Invalid(_))
    ));
}

#[test]
fn download_counters_add_up_across_centres_and_instances() {
    let id = id_in_bucket("charleroi-thuin", 8, 0);
    let (mut a, mut b) = two_replicas(8, &id);
    // A second installation of Charleroi-Thuin, offline too.
    let mut a2 = CatalogueDoc::load(8, &a.save(), actor("charleroi-thuin", 2)).unwrap();
    a.add_downloads(&id, "charleroi-thuin", 40).unwrap();
    a2.add_downloads(&id, "charleroi-thuin", 35).unwrap();
    a.add_downloads(&id, "cpas-charleroi", 62).unwrap();
    b.add_downloads(&id, "namur", 3).unwrap();
    b.add_downloads(&id, "namur", 4).unwrap();
    sync(&mut a, &mut a2);
    sync(&mut a, &mut b);
    sync(&mut a2, &mut b);
    let d = a.record(&id).unwrap().downloads;
    assert_eq!(d.get("charleroi-thuin"), Some(&75));
    assert_eq!(d.get("cpas-charleroi"), Some(&62));
    assert_eq!(d.get("namur"), Some(&7));
    assert_eq!(Some(d), b.record(&id).map(|r| r.downloads));
}

#[test]
fn holdings_and_reviews_are_per_centre() {
    let id = id_in_bucket("charleroi-thuin", 9, 0);
    let (mut a, mut b) = two_replicas(9, &id);
    a.set_holding(
        &id,
        &Holding {
            copies: 2,
            shelf_mark: "OP-COV-1".into(),
            availability: Availability::Available,
        },
    )
    .unwrap();
    b.set_holding(
        &id,
        &Holding {
            copies: 1,
            shelf_mark: "PS 12".into(),
            availability: Availability::OnLoan,
        },
    )
    .unwrap();
    b.set_review(
        &id,
        ReviewerRole::Documentaliste,
        &Review {
            rating: 4,
            text: "Très utilisé en animation.".into(),
        },
    )
    .unwrap();
    sync(&mut a, &mut b);
    let r = a.record(&id).unwrap();
    assert_eq!(r.holdings.len(), 2);
    assert_eq!(r.holdings[&centre("namur")].copies, 1);
    assert_eq!(
        r.holdings[&centre("charleroi-thuin")].shelf_mark,
        "OP-COV-1"
    );
    assert_eq!(r.reviews.len(), 1);
    assert_eq!(r.created_by, Some(centre("charleroi-thuin")));
    a.remove_holding(&id).unwrap();
    assert_eq!(a.record(&id).unwrap().holdings.len(), 1);
    assert!(matches!(
        a.set_review(
            &id,
            ReviewerRole::Equipe,
            &Review {
                rating: 9,
                text: String::new()
            }
        ),
        Err(DocError::Invalid(_))
    ));
}

#[test]
fn duplicates_are_found_despite_accents_case_and_punctuation() {
    let id1 = id_in_bucket("charleroi-thuin", 10, 0);
    let id2 = id_in_bucket("liege", 10, 0);
    let id3 = id_in_bucket("namur", 10, 0);
    let mut doc = CatalogueDoc::create(10, actor("liege", 1)).unwrap();
    doc.create_record(&id1, &fields("Je me sens bien quand..."))
        .unwrap();
    let mut f = fields("JE ME SENS BIEN QUAND");
    f.publisher = "clps de charleroi thuin".into();
    doc.create_record(&id2, &f).unwrap();
    let mut other_year = fields("Je me sens bien quand");
    other_year.year = Some(2013);
    doc.create_record(&id3, &other_year).unwrap();
    let pairs = duplicate_candidates(&doc.records());
    let expected = if id1 < id2 { (id1, id2) } else { (id2, id1) };
    assert_eq!(pairs, vec![expected]);
}

#[test]
fn concurrent_merges_across_buckets_converge() {
    // Two records of the same tool in different buckets.
    let x = id_in_bucket("charleroi-thuin", 20, 0);
    let y = id_in_bucket("bruxelles", 21, 0);
    let mut a20 = CatalogueDoc::create(20, actor("charleroi-thuin", 1)).unwrap();
    let mut a21 = CatalogueDoc::create(21, actor("charleroi-thuin", 1)).unwrap();
    a20.create_record(&x, &fields("Emotika")).unwrap();
    let mut fy = fields("Émotika !");
    fy.themes.insert("sante_mentale".into());
    let mut b21 = CatalogueDoc::create(21, actor("bruxelles", 1)).unwrap();
    b21.create_record(&y, &fy).unwrap();
    sync_pair(a21.automerge_mut(), b21.automerge_mut());
    let mut b20 = CatalogueDoc::load(20, &a20.save(), actor("bruxelles", 1)).unwrap();

    let mut all = a20.records();
    all.extend(a21.records());
    assert_eq!(duplicate_candidates(&all).len(), 1);

    // Both centres merge, in opposite argument orders, offline.
    let plan_a = MergePlan::new(&x, &y).unwrap();
    let plan_b = MergePlan::new(&y, &x).unwrap();
    assert_eq!(plan_a, plan_b);
    assert!(!plan_a.same_bucket());
    let (a_surv, a_alias, b_surv, b_alias) = if bucket_of(&plan_a.survivor) == 20 {
        (&mut a20, &mut a21, &mut b20, &mut b21)
    } else {
        (&mut a21, &mut a20, &mut b21, &mut b20)
    };
    merge_records(&plan_a, a_surv, Some(a_alias)).unwrap();
    merge_records(&plan_b, b_surv, Some(b_alias)).unwrap();
    // Merging again changes nothing.
    let heads = a_surv.automerge_mut().get_heads();
    merge_records(&plan_a, a_surv, Some(a_alias)).unwrap();
    assert_eq!(heads, a_surv.automerge_mut().get_heads());

    sync_pair(a20.automerge_mut(), b20.automerge_mut());
    sync_pair(a21.automerge_mut(), b21.automerge_mut());
    assert_eq!(a20.records(), b20.records());
    assert_eq!(a21.records(), b21.records());
    assert_eq!(
        a20.automerge_mut().get_heads(),
        b20.automerge_mut().get_heads()
    );
    let mut merged = a20.records();
    merged.extend(a21.records());
    let survivor = merged.iter().find(|r| r.id == plan_a.survivor).unwrap();
    let alias = merged.iter().find(|r| r.id == plan_a.alias).unwrap();
    assert_eq!(alias.merged_into.as_ref(), Some(&plan_a.survivor));
    assert!(survivor.aliases.contains(&plan_a.alias));
    assert!(survivor.fields.themes.contains("sante_mentale"));
    assert!(duplicate_candidates(&merged).is_empty());
    assert!(a20.conflicts().is_empty() && a21.conflicts().is_empty());
}

#[test]
fn same_bucket_merge_is_one_change() {
    let x = id_in_bucket("charleroi-thuin", 30, 0);
    let y = id_in_bucket("liege", 30, 0);
    let mut doc = CatalogueDoc::create(30, actor("liege", 1)).unwrap();
    doc.create_record(&x, &fields("Emotika")).unwrap();
    doc.create_record(&y, &fields("Emotika")).unwrap();
    let before = doc.automerge_mut().get_heads();
    let plan = MergePlan::new(&x, &y).unwrap();
    merge_records(&plan, &mut doc, None).unwrap();
    assert_eq!(doc.automerge_mut().get_changes(&before).len(), 1);
    assert_eq!(
        doc.record(&plan.alias).unwrap().merged_into,
        Some(plan.survivor.clone())
    );
}

#[test]
fn same_organisation_listed_offline_by_two_centres_is_one_entry() {
    let mut a = AppuiDoc::create("assuetudes", actor("charleroi-thuin", 1)).unwrap();
    let mut b = AppuiDoc::create("assuetudes", actor("namur", 1)).unwrap();
    a.join().unwrap();
    b.join().unwrap();
    let ka = a
        .upsert_service(&ServiceInput {
            name: "Infor-Drogues ASBL".into(),
            sector: Some("promotion_sante_prevention".into()),
            communes: BTreeSet::from(["Charleroi".into()]),
            note: Some("Intervient en classe sur demande.".into()),
            email: Some("info@infordrogues.be".into()),
            ..ServiceInput::default()
        })
        .unwrap();
    let kb = b
        .upsert_service(&ServiceInput {
            name: "infor drogues".into(),
            communes: BTreeSet::from(["Namur".into()]),
            themes: BTreeSet::from(["assuetudes".into()]),
            note: Some("Permanence téléphonique.".into()),
            ..ServiceInput::default()
        })
        .unwrap();
    assert_eq!(ka, kb);
    sync_pair(a.automerge_mut(), b.automerge_mut());
    let services = a.services();
    assert_eq!(services, b.services());
    assert_eq!(services.len(), 1);
    let s = &services[0];
    assert_eq!(s.notes.len(), 2);
    assert_eq!(s.listed_by.len(), 2);
    assert_eq!(s.communes.len(), 2);
    assert_eq!(s.email, "info@infordrogues.be");
    // The two spellings of the name are a visible conflict.
    assert_eq!(a.conflicts().len(), 1);
    assert_eq!(a.members().len(), 2);

    // A person's address is refused.
    let refused = a.upsert_service(&ServiceInput {
        name: "Infor-Drogues".into(),
        email: Some("marie.dupont@infordrogues.be".into()),
        ..ServiceInput::default()
    });
    assert!(matches!(refused, Err(DocError::PersonalData { .. })));
}

#[test]
fn tool_selections_keep_each_centres_reason() {
    let mut a = AppuiDoc::create("evras", actor("liege", 1)).unwrap();
    let mut b = AppuiDoc::create("evras", actor("luxembourg", 1)).unwrap();
    let sel = SelectionKey {
        theme: "evras".into(),
        public: "adolescents".into(),
    };
    let tool = RecordId::parse("r-0001").unwrap();
    a.select_tool(&sel, &tool, Some("Bon support de discussion"))
        .unwrap();
    b.select_tool(&sel, &tool, Some("Utilisé en 4e secondaire"))
        .unwrap();
    sync_pair(a.automerge_mut(), b.automerge_mut());
    let selections = a.selections();
    assert_eq!(selections, b.selections());
    assert_eq!(selections[&sel][&tool].why.len(), 2);
    a.unselect_tool(&sel, &tool).unwrap();
    assert!(a.selections().is_empty());
}

#[test]
fn named_versions_read_back_exactly() {
    let mut a = AppuiDoc::create("covid", actor("huy-waremme", 1)).unwrap();
    a.create_document("doc-01", "Guide d'entretien", "Question 1.")
        .unwrap();
    let mut b = AppuiDoc::load("covid", &a.save(), actor("mons-soignies", 1)).unwrap();
    a.splice_document("doc-01", 11, 0, " Question 2.").unwrap();
    b.splice_document("doc-01", 0, 0, "Intro. ").unwrap();
    sync_pair(a.automerge_mut(), b.automerge_mut());
    let v1 = a.documents()[0].body.clone();
    assert_eq!(v1, "Intro. Question 1. Question 2.");
    a.name_version("doc-01", "v1 validée").unwrap();
    a.splice_document("doc-01", 0, 7, "").unwrap();
    sync_pair(a.automerge_mut(), b.automerge_mut());
    assert_eq!(b.documents()[0].body, "Question 1. Question 2.");
    assert_eq!(b.version_text("doc-01", "v1 validée").unwrap(), Some(v1));
    assert_eq!(b.version_text("doc-01", "v9").unwrap(), None);
}

#[test]
fn records_go_to_their_bucket_only() {
    let id = id_in_bucket("namur", 1, 0);
    let mut doc = CatalogueDoc::create(2, actor("namur", 1)).unwrap();
    assert!(matches!(
        doc.create_record(&id, &fields("x")),
        Err(DocError::WrongBucket { .. })
    ));
    assert!(bucket_of(&id) < clps_model::docs::CATALOGUE_BUCKETS);
    let mut bad = fields("x");
    bad.doc_type = "cassette".into();
    let mut doc1 = CatalogueDoc::create(1, actor("namur", 1)).unwrap();
    assert!(matches!(
        doc1.create_record(&id, &bad),
        Err(DocError::UnknownCode { .. })
    ));
    let mut mail = fields("x");
    mail.description = "Contact : jean.martin@ecole.be".into();
    assert!(matches!(
        doc1.create_record(&id, &mail),
        Err(DocError::PersonalData { .. })
    ));
    // A failed operation leaves nothing behind.
    assert!(doc1.record_ids().is_empty());
}
