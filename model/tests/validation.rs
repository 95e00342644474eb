//! `validate_change` as the hub uses it: legitimate changes pass, and each
//! forged one is refused for the right reason. Forgeries are written with the
//! raw Automerge API, as a hostile or buggy node would.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ObjId, ROOT, ReadDoc};
use clps_model::docs::appui::{AppuiDoc, ServiceInput};
use clps_model::docs::catalogue::{
    CatalogueDoc, Holding, RecordEdit, RecordId, Review, ReviewerRole,
};
use clps_model::docs::stats::FigureKey;
use clps_model::docs::{
    DocId, StatsDoc, ValidationError, genesis_change, validate_change, validate_changes,
};
use common::*;

const BUCKET: u16 = 42;

/// A bucket holding one record created by Charleroi-Thuin, as the hub has it,
/// and the record id.
fn hub_bucket() -> (AutoCommit, RecordId) {
    let id = id_in_bucket("charleroi-thuin", BUCKET, 0);
    let mut doc = CatalogueDoc::create(BUCKET, actor("charleroi-thuin", 1)).unwrap();
    doc.create_record(&id, &fields("Emotika")).unwrap();
    doc.set_holding(
        &id,
        &Holding {
            copies: 3,
            ..Holding::default()
        },
    )
    .unwrap();
    (doc.into_automerge(), id)
}

/// A replica of `hub` for `centre`, and the hub's heads at that point.
fn replica(hub: &mut AutoCommit, centre_id: &str) -> CatalogueDoc {
    let bytes = hub.save();
    CatalogueDoc::load(BUCKET, &bytes, actor(centre_id, 1)).unwrap()
}

fn new_changes(hub: &mut AutoCommit, doc: &mut AutoCommit) -> Vec<Change> {
    hub.get_changes_added(doc)
}

fn check(hub: &mut AutoCommit, changes: &[Change], author: &str) -> Result<(), ValidationError> {
    let doc_id = DocId::catalogue(BUCKET);
    validate_changes(&doc_id, hub.document(), changes, &centre(author))
}

fn record_obj(doc: &AutoCommit, id: &RecordId) -> ObjId {
    let (_, records) = doc.get(ROOT, "records").unwrap().unwrap();
    doc.get(&records, id.as_str()).unwrap().unwrap().1
}

fn inner(err: ValidationError) -> ValidationError {
    match err {
        ValidationError::Batch { source, .. } => *source,
        other => other,
    }
}

#[test]
fn legitimate_changes_are_accepted() {
    let (mut hub, id) = hub_bucket();
    let mut namur = replica(&mut hub, "namur");
    let new_id = id_in_bucket("namur", BUCKET, 0);
    namur
        .create_record(&new_id, &fields("Le Covid-19 et nous"))
        .unwrap();
    namur
        .edit_record(
            &id,
            &[
                RecordEdit::AddTheme("pandemie".into()),
                RecordEdit::Year(Some(2021)),
            ],
        )
        .unwrap();
    namur
        .set_holding(
            &id,
            &Holding {
                copies: 1,
                ..Holding::default()
            },
        )
        .unwrap();
    namur
        .set_review(
            &id,
            ReviewerRole::Documentaliste,
            &Review {
                rating: 5,
                text: "Bien".into(),
            },
        )
        .unwrap();
    namur.add_downloads(&id, "namur", 3).unwrap();
    namur.add_downloads(&id, "namur", 2).unwrap();
    namur.remove_holding(&id).unwrap();
    let changes = new_changes(&mut hub, namur.automerge_mut());
    assert_eq!(changes.len(), 7);
    check(&mut hub, &changes, "namur").unwrap();
    // One by one too, as a hub that applies each after checking it.
    for change in &changes {
        validate_change(
            &DocId::catalogue(BUCKET),
            hub.document(),
            change,
            &centre("namur"),
        )
        .unwrap();
        hub.apply_changes([change.clone()]).unwrap();
    }
}

#[test]
fn genesis_is_accepted_from_anyone_and_forgeries_are_not() {
    let doc_id = DocId::catalogue(BUCKET);
    let empty = automerge::Automerge::new();
    let genesis = genesis_change(&doc_id).unwrap();
    validate_change(&doc_id, &empty, &genesis, &centre("liege")).unwrap();
    // The genesis of another document is not this one's.
    let other = genesis_change(&DocId::catalogue(BUCKET + 1)).unwrap();
    assert!(matches!(
        validate_change(&doc_id, &empty, &other, &centre("liege")),
        Err(ValidationError::ForgedGenesis { .. })
    ));
}

#[test]
fn forged_actors_are_refused() {
    let (mut hub, id) = hub_bucket();
    // Liège's change relayed under Namur's certificate.
    let mut liege = replica(&mut hub, "liege");
    liege
        .edit_record(&id, &[RecordEdit::Title("x".into())])
        .unwrap();
    let changes = new_changes(&mut hub, liege.automerge_mut());
    assert!(matches!(
        inner(check(&mut hub, &changes, "namur").unwrap_err()),
        ValidationError::ForeignActor { .. }
    ));
    // An actor outside the scheme.
    let mut raw = hub.fork().with_actor(ActorId::from(vec![7u8; 16]));
    let record = record_obj(&raw, &id);
    raw.put(&record, "title", "y").unwrap();
    raw.commit();
    let changes = new_changes(&mut hub, &mut raw);
    assert!(matches!(
        inner(check(&mut hub, &changes, "namur").unwrap_err()),
        ValidationError::Actor(_)
    ));
}

#[test]
fn missing_dependencies_are_reported() {
    let (mut hub, id) = hub_bucket();
    let mut namur = replica(&mut hub, "namur");
    namur
        .edit_record(&id, &[RecordEdit::Title("a".into())])
        .unwrap();
    namur
        .edit_record(&id, &[RecordEdit::Title("b".into())])
        .unwrap();
    let changes = new_changes(&mut hub, namur.automerge_mut());
    let second = &changes[1];
    assert!(matches!(
        validate_change(
            &DocId::catalogue(BUCKET),
            hub.document(),
            second,
            &centre("namur")
        ),
        Err(ValidationError::MissingDependency(_))
    ));
}

/// Makes a raw change on a replica of `hub` as `centre_id`, returns it.
fn forge(
    hub: &mut AutoCommit,
    centre_id: &str,
    write: impl FnOnce(&mut AutoCommit),
) -> Vec<Change> {
    let mut doc = hub.fork().with_actor(actor(centre_id, 1).actor_id());
    write(&mut doc);
    doc.commit();
    new_changes(hub, &mut doc)
}

#[test]
fn foreign_holdings_are_refused() {
    let (mut hub, id) = hub_bucket();
    for key in ["charleroi-thuin/copies", "charleroi-thuin/availability"] {
        let changes = forge(&mut hub, "namur", |doc| {
            let record = record_obj(doc, &id);
            let (_, holdings) = doc.get(&record, "holdings").unwrap().unwrap();
            doc.put(&holdings, key, 0).unwrap();
        });
        assert!(matches!(
            inner(check(&mut hub, &changes, "namur").unwrap_err()),
            ValidationError::ForeignHoldings { .. }
        ));
    }
    let deleted = forge(&mut hub, "namur", |doc| {
        let record = record_obj(doc, &id);
        let (_, holdings) = doc.get(&record, "holdings").unwrap().unwrap();
        doc.delete(&holdings, "charleroi-thuin/copies").unwrap();
    });
    assert!(matches!(
        inner(check(&mut hub, &deleted, "namur").unwrap_err()),
        ValidationError::ForeignHoldings { .. }
    ));
    // Replacing the whole holdings map is refused as a structure change.
    let replaced = forge(&mut hub, "namur", |doc| {
        let record = record_obj(doc, &id);
        doc.put_object(&record, "holdings", automerge::ObjType::Map)
            .unwrap();
    });
    assert!(matches!(
        inner(check(&mut hub, &replaced, "namur").unwrap_err()),
        ValidationError::Structure { .. }
    ));
    // A write that loses a conflict is refused too: it stays in the history.
    let mut stale = hub.fork();
    let mut hub2 = hub.fork();
    {
        let mut owner =
            CatalogueDoc::from_automerge(BUCKET, hub2.fork(), actor("charleroi-thuin", 1)).unwrap();
        owner
            .set_holding(
                &id,
                &Holding {
                    copies: 9,
                    ..Holding::default()
                },
            )
            .unwrap();
        let mut owner_doc = owner.into_automerge();
        hub2.merge(&mut owner_doc).unwrap();
    }
    stale.set_actor(actor("namur", 1).actor_id());
    let record = record_obj(&stale, &id);
    let (_, holdings) = stale.get(&record, "holdings").unwrap().unwrap();
    stale.put(&holdings, "charleroi-thuin/copies", 0).unwrap();
    stale.commit();
    let changes = hub2.get_changes_added(&mut stale);
    assert!(matches!(
        inner(check(&mut hub2, &changes, "namur").unwrap_err()),
        ValidationError::ForeignHoldings { .. }
    ));
}

#[test]
fn provenance_rewrites_are_refused() {
    let (mut hub, id) = hub_bucket();
    let rewrite = forge(&mut hub, "namur", |doc| {
        let record = record_obj(doc, &id);
        doc.put(&record, "created_by", "namur").unwrap();
    });
    assert!(matches!(
        inner(check(&mut hub, &rewrite, "namur").unwrap_err()),
        ValidationError::ProvenanceRewrite { .. }
    ));
    let impersonate = forge(&mut hub, "namur", |doc| {
        let record = record_obj(doc, &id);
        doc.put(&record, "title", "x").unwrap();
        doc.put(&record, "last_edited_by", "liege").unwrap();
    });
    assert!(matches!(
        inner(check(&mut hub, &impersonate, "namur").unwrap_err()),
        ValidationError::ProvenanceNotAuthor { .. }
    ));
    // A new record claiming another creator.
    let new_id = id_in_bucket("namur", BUCKET, 0);
    let claimed = forge(&mut hub, "namur", |doc| {
        let (_, records) = doc.get(ROOT, "records").unwrap().unwrap();
        let record = doc
            .put_object(&records, new_id.as_str(), automerge::ObjType::Map)
            .unwrap();
        doc.put(&record, "created_by", "liege").unwrap();
    });
    assert!(matches!(
        inner(check(&mut hub, &claimed, "namur").unwrap_err()),
        ValidationError::ProvenanceNotAuthor { .. }
    ));
    // Deleting or replacing a record would erase others' holdings.
    for replace in [false, true] {
        let changes = forge(&mut hub, "namur", |doc| {
            let (_, records) = doc.get(ROOT, "records").unwrap().unwrap();
            if replace {
                doc.put_object(&records, id.as_str(), automerge::ObjType::Map)
                    .unwrap();
            } else {
                doc.delete(&records, id.as_str()).unwrap();
            }
        });
        assert!(matches!(
            inner(check(&mut hub, &changes, "namur").unwrap_err()),
            ValidationError::Structure { .. }
        ));
    }
    let root = forge(&mut hub, "namur", |doc| {
        doc.put(ROOT, "schema_version", 99).unwrap();
    });
    assert!(matches!(
        inner(check(&mut hub, &root, "namur").unwrap_err()),
        ValidationError::Structure { .. }
    ));
}

#[test]
fn foreign_reviews_and_download_counters_are_refused() {
    let (mut hub, id) = hub_bucket();
    let review = forge(&mut hub, "namur", |doc| {
        let record = record_obj(doc, &id);
        let (_, reviews) = doc.get(&record, "reviews").unwrap().unwrap();
        doc.put(&reviews, "liege/documentaliste/rating", 1).unwrap();
    });
    assert!(matches!(
        inner(check(&mut hub, &review, "namur").unwrap_err()),
        ValidationError::ForeignKey { .. }
    ));
    let mut owner =
        CatalogueDoc::from_automerge(BUCKET, hub.fork(), actor("charleroi-thuin", 1)).unwrap();
    owner.add_downloads(&id, "charleroi-thuin", 5).unwrap();
    let mut owner_doc = owner.into_automerge();
    hub.merge(&mut owner_doc).unwrap();
    let key = format!("charleroi-thuin/charleroi-thuin/{}", hex::encode([1u8; 8]));
    let counter = forge(&mut hub, "namur", |doc| {
        let record = record_obj(doc, &id);
        let (_, downloads) = doc.get(&record, "downloads").unwrap().unwrap();
        doc.increment(&downloads, key.as_str(), 1000).unwrap();
    });
    assert!(matches!(
        inner(check(&mut hub, &counter, "namur").unwrap_err()),
        ValidationError::ForeignKey { .. }
    ));
}

#[test]
fn foreign_appui_notes_are_refused() {
    let doc_id = DocId::appui("assuetudes").unwrap();
    let mut a = AppuiDoc::create("assuetudes", actor("liege", 1)).unwrap();
    a.upsert_service(&ServiceInput {
        name: "Centre Alfa".into(),
        note: Some("Partenaire historique".into()),
        ..ServiceInput::default()
    })
    .unwrap();
    let mut hub = a.automerge_mut().fork();
    let mut namur = AppuiDoc::from_automerge("assuetudes", hub.fork(), actor("namur", 1)).unwrap();
    namur
        .upsert_service(&ServiceInput {
            name: "centre alfa".into(),
            note: Some("Aussi actif à Namur".into()),
            ..ServiceInput::default()
        })
        .unwrap();
    let legit = hub.get_changes_added(namur.automerge_mut());
    validate_changes(&doc_id, hub.document(), &legit, &centre("namur")).unwrap();

    let mut forged = hub.fork().with_actor(actor("namur", 1).actor_id());
    let (_, services) = forged.get(ROOT, "services").unwrap().unwrap();
    forged
        .put(&services, "centre-alfa|note|liege", "réécrit")
        .unwrap();
    forged.commit();
    let changes = hub.get_changes_added(&mut forged);
    assert!(matches!(
        inner(validate_changes(&doc_id, hub.document(), &changes, &centre("namur")).unwrap_err()),
        ValidationError::ForeignKey { .. }
    ));
}

#[test]
fn statistics_are_written_by_their_centre_only() {
    let mut liege = StatsDoc::create(actor("liege", 1)).unwrap();
    let mut hub = liege.automerge_mut().fork();
    liege
        .set_figures(&BTreeMap::from([(
            FigureKey {
                year: 2021,
                table: "req_sector".into(),
                cell: "03--enseignement--pret".into(),
            },
            785,
        )]))
        .unwrap();
    let changes = hub.get_changes_added(liege.automerge_mut());
    let doc_id = DocId::stats(centre("liege"));
    validate_changes(&doc_id, hub.document(), &changes, &centre("liege")).unwrap();

    let mut forged = hub.fork().with_actor(actor("namur", 1).actor_id());
    let (_, figures) = forged.get(ROOT, "figures").unwrap().unwrap();
    forged
        .put(&figures, "2021/req_sector/03--enseignement--pret", 1)
        .unwrap();
    forged.commit();
    let changes = hub.get_changes_added(&mut forged);
    assert!(matches!(
        inner(validate_changes(&doc_id, hub.document(), &changes, &centre("namur")).unwrap_err()),
        ValidationError::ForeignStats { .. }
    ));

    // Counts only: a name as a co-organiser, an unknown table, a string.
    for (key, value) in [
        (
            "2021/event_org/e0123456789abcdef--kwazimodo_consultance",
            automerge::ScalarValue::Uint(1),
        ),
        ("2021/noms/marie_dupont", automerge::ScalarValue::Uint(1)),
        (
            "2021/req_sector/03--enseignement--pret",
            automerge::ScalarValue::Str("785".into()),
        ),
    ] {
        let mut forged = hub.fork().with_actor(actor("liege", 2).actor_id());
        let (_, figures) = forged.get(ROOT, "figures").unwrap().unwrap();
        forged.put(&figures, key, value).unwrap();
        forged.commit();
        let changes = hub.get_changes_added(&mut forged);
        assert!(
            matches!(
                inner(
                    validate_changes(&doc_id, hub.document(), &changes, &centre("liege"))
                        .unwrap_err()
                ),
                ValidationError::Schema { .. }
            ),
            "{key}"
        );
    }
    let mut ok = hub.fork().with_actor(actor("liege", 2).actor_id());
    let (_, figures) = ok.get(ROOT, "figures").unwrap().unwrap();
    ok.put(&figures, "2021/event_org/e0123456789abcdef--namur", 1u64)
        .unwrap();
    ok.commit();
    let changes = hub.get_changes_added(&mut ok);
    validate_changes(&doc_id, hub.document(), &changes, &centre("liege")).unwrap();
}

/// A fork of the hub's bucket writing as `centre`, the way a client built on
/// another Automerge library would: raw operations, any value type.
fn forger(hub: &mut AutoCommit, centre_id: &str) -> AutoCommit {
    hub.fork().with_actor(actor(centre_id, 1).actor_id())
}

fn schema_refusal(hub: &mut AutoCommit, forged: &mut AutoCommit, author: &str) -> String {
    forged.commit();
    let changes = new_changes(hub, forged);
    assert!(!changes.is_empty());
    match check(hub, &changes, author).map_err(inner) {
        Err(
            e @ (ValidationError::Schema { .. }
            | ValidationError::Record { .. }
            | ValidationError::TooLarge { .. }
            | ValidationError::Structure { .. }),
        ) => e.to_string(),
        other => panic!("expected a schema refusal, got {other:?}"),
    }
}

/// A new record of `centre` in the bucket, written field by field.
fn raw_record(doc: &mut AutoCommit, id: &str, title_as_text: bool) -> ObjId {
    let (_, records) = doc.get(ROOT, "records").unwrap().unwrap();
    let record = doc
        .put_object(&records, id, automerge::ObjType::Map)
        .unwrap();
    if title_as_text {
        let title = doc
            .put_object(&record, "title", automerge::ObjType::Text)
            .unwrap();
        doc.splice_text(&title, 0, 0, "Emotika").unwrap();
    } else {
        doc.put(&record, "title", "Emotika").unwrap();
    }
    doc.put(&record, "doc_type", "outil_pedagogique").unwrap();
    for key in ["creator", "publisher", "conditions_of_use"] {
        doc.put(&record, key, "").unwrap();
    }
    doc.put_object(&record, "description", automerge::ObjType::Text)
        .unwrap();
    for key in [
        "themes",
        "publics",
        "languages",
        "links",
        "reviews",
        "holdings",
        "downloads",
        "aliases",
    ] {
        doc.put_object(&record, key, automerge::ObjType::Map)
            .unwrap();
    }
    record
}

#[test]
fn forged_values_ids_and_personal_data_are_refused() {
    let (mut hub, id) = hub_bucket();

    // A record of the honest shape, with an id of namur's own: accepted.
    let mut ok = forger(&mut hub, "namur");
    let own = id_in_bucket("namur", BUCKET, 0);
    raw_record(&mut ok, own.as_str(), false);
    ok.commit();
    let changes = new_changes(&mut hub, &mut ok);
    check(&mut hub, &changes, "namur").unwrap();

    // Squatting an id of Liège's numbering.
    let mut f = forger(&mut hub, "namur");
    let squatted = id_in_bucket("liege", BUCKET, 0);
    raw_record(&mut f, squatted.as_str(), false);
    let why = schema_refusal(&mut hub, &mut f, "namur");
    assert!(why.contains("only by that centre"), "{why}");

    // An id outside the grammar.
    let mut f = forger(&mut hub, "namur");
    raw_record(&mut f, "../../x|y", false);
    schema_refusal(&mut hub, &mut f, "namur");

    // A title as a Text object (what a plain string is in JS Automerge 3).
    let mut f = forger(&mut hub, "namur");
    raw_record(&mut f, id_in_bucket("namur", BUCKET, 1_000).as_str(), true);
    let why = schema_refusal(&mut hub, &mut f, "namur");
    assert!(why.contains("/title"), "{why}");

    let record = record_obj(&hub, &id);
    // A year as a string.
    let mut f = forger(&mut hub, "namur");
    f.put(&record, "year", "2020").unwrap();
    let why = schema_refusal(&mut hub, &mut f, "namur");
    assert!(why.contains("/year") && why.contains("unsigned"), "{why}");

    // A field the schema does not have.
    let mut f = forger(&mut hub, "namur");
    f.put(&record, "notes_internes", "x").unwrap();
    schema_refusal(&mut hub, &mut f, "namur");

    // Holdings as a list, in a new record.
    let mut f = forger(&mut hub, "namur");
    let new = raw_record(&mut f, id_in_bucket("namur", BUCKET, 2_000).as_str(), false);
    f.delete(&new, "holdings").unwrap();
    f.put_object(&new, "holdings", automerge::ObjType::List)
        .unwrap();
    schema_refusal(&mut hub, &mut f, "namur");

    // An e-mail address typed into the description, character by character.
    let mut f = forger(&mut hub, "namur");
    let (_, description) = f.get(&record, "description").unwrap().unwrap();
    f.splice_text(&description, 0, 0, "contact : marie.dupont@example.org ")
        .unwrap();
    let why = schema_refusal(&mut hub, &mut f, "namur");
    assert!(why.contains("e-mail"), "{why}");

    // A phone number as a shelf mark.
    let mut f = forger(&mut hub, "namur");
    let (_, holdings) = f.get(&record, "holdings").unwrap().unwrap();
    f.put(&holdings, "namur/shelf_mark", "0470/12.34.56")
        .unwrap();
    let why = schema_refusal(&mut hub, &mut f, "namur");
    assert!(why.contains("phone"), "{why}");

    // 6 MB in a title: one change far beyond what a change may hold.
    let mut f = forger(&mut hub, "namur");
    let big: String = (0..6_000_000u32)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
        .collect();
    f.put(&record, "title", big).unwrap();
    schema_refusal(&mut hub, &mut f, "namur");

    // A long title within a small change is refused by its length.
    let mut f = forger(&mut hub, "namur");
    f.put(&record, "title", "é".repeat(501)).unwrap();
    let why = schema_refusal(&mut hub, &mut f, "namur");
    assert!(why.contains("500"), "{why}");
}

#[test]
fn the_node_runs_the_same_rules_on_its_own_changes() {
    let (mut hub, id) = hub_bucket();
    let doc_id = DocId::catalogue(BUCKET);
    let mut f = forger(&mut hub, "namur");
    let record = record_obj(&f, &id);
    f.put(&record, "year", "2020").unwrap();
    f.commit();
    let change = new_changes(&mut hub, &mut f).pop().unwrap();
    let err =
        clps_model::docs::validate_own_change(&doc_id, f.document(), &change, &centre("namur"))
            .unwrap_err();
    assert!(err.to_string().contains("/year"), "{err}");

    // The typed operations of an honest node pass it.
    let mut namur = replica(&mut hub, "namur");
    let own = id_in_bucket("namur", BUCKET, 0);
    namur
        .create_record(&own, &fields("Le Covid-19 et nous"))
        .unwrap();
    let heads = hub.get_heads();
    let change = namur.automerge_mut().get_changes(&heads).pop().unwrap();
    clps_model::docs::validate_own_change(
        &doc_id,
        namur.automerge_mut().document(),
        &change,
        &centre("namur"),
    )
    .unwrap();
}
