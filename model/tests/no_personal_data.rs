//! Automerge keeps every value ever written, so personal data must never
//! reach a shared document. This test plays a centre's day: local records
//! name people (requesters, the documentaliste who reviewed a tool, a
//! borrower, a contact person at a partner organisation), and the centre
//! publishes what the federation shares through the typed API. None of those
//! names, e-mail addresses or phone numbers may appear in any saved shared
//! document, uncompressed, nor in its full history.
//!
//! The node engineer extends this with the node's own local store and
//! projection; here the "local" side is a plain list.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use clps_model::docs::appui::{AppuiDoc, Event, Place, SelectionKey, ServiceInput};
use clps_model::docs::catalogue::{
    Availability, CatalogueDoc, Holding, RecordFields, RecordId, Review, ReviewerRole, bucket_of,
};
use clps_model::docs::{DocError, schema};
use common::*;

/// People a centre knows locally. Nothing about them may be shared.
struct LocalPerson {
    name: &'static str,
    email: &'static str,
    phone: &'static str,
}

const LOCAL_PEOPLE: [LocalPerson; 4] = [
    LocalPerson {
        name: "Marie Dupont",
        email: "marie.dupont@ecole-saint-joseph.be",
        phone: "0471 23 45 67",
    },
    LocalPerson {
        name: "Jean-Pierre Lambotte",
        email: "jp.lambotte@cpas-charleroi.be",
        phone: "0498 76 54 32",
    },
    LocalPerson {
        name: "Sophie Verhaegen",
        email: "sophie.verhaegen@infordrogues.be",
        phone: "0485 11 22 33",
    },
    LocalPerson {
        name: "Karim Benali",
        email: "karim.benali@clps-ct.be",
        phone: "0477 99 88 77",
    },
];

#[derive(serde::Deserialize)]
struct ToolsFile {
    tools: Vec<Tool>,
}

#[derive(serde::Deserialize)]
struct Tool {
    title: String,
    #[serde(default)]
    creator: String,
    #[serde(rename = "type")]
    doc_type: String,
    #[serde(default)]
    themes: Vec<String>,
    #[serde(default)]
    year: Option<u16>,
    #[serde(default)]
    facts: String,
    #[serde(default)]
    created_by_centre: Option<String>,
}

#[test]
fn shared_documents_never_hold_local_people() {
    let tools: ToolsFile =
        serde_json::from_str(include_str!("../data/tools-named-in-reports.json")).unwrap();
    let me = actor("charleroi-thuin", 1);
    let mut buckets: std::collections::BTreeMap<u16, CatalogueDoc> = Default::default();
    let mut ids = Vec::new();

    for (n, tool) in tools.tools.iter().enumerate() {
        let creator = centre(
            tool.created_by_centre
                .as_deref()
                .unwrap_or("charleroi-thuin"),
        );
        let id = RecordId::from_local(&creator, n as u64 + 1);
        let bucket = bucket_of(&id);
        let doc = buckets
            .entry(bucket)
            .or_insert_with(|| CatalogueDoc::create(bucket, actor(creator.as_str(), 1)).unwrap());
        let fields = RecordFields {
            title: tool.title.clone(),
            doc_type: tool.doc_type.clone(),
            creator: tool.creator.clone(),
            publisher: tool.creator.clone(),
            year: tool.year,
            themes: tool.themes.iter().cloned().collect(),
            publics: BTreeSet::from(["professionnels".to_owned()]),
            description: tool.facts.clone(),
            languages: BTreeSet::from(["fr".to_owned()]),
            ..RecordFields::default()
        };
        doc.create_record(&id, &fields).unwrap();
        ids.push(id);
    }

    // Local events that involve people, and what reaches the shared base.
    let tool = ids[0].clone();
    let bucket = bucket_of(&tool);
    let mut doc = CatalogueDoc::load(
        bucket,
        &buckets.get_mut(&bucket).unwrap().save(),
        me.clone(),
    )
    .unwrap();
    // Marie Dupont borrows it: only the availability is shared.
    doc.set_holding(
        &tool,
        &Holding {
            copies: 2,
            shelf_mark: "OP-EMO-01".into(),
            availability: Availability::OnLoan,
        },
    )
    .unwrap();
    // Karim Benali, documentaliste, reviews it: signed by centre and role.
    doc.set_review(
        &tool,
        ReviewerRole::Documentaliste,
        &Review {
            rating: 5,
            text: "Très demandé par les écoles primaires.".into(),
        },
    )
    .unwrap();
    doc.add_downloads(&tool, "charleroi-thuin", 75).unwrap();
    doc.add_downloads(&tool, "cpas-charleroi", 62).unwrap();
    // Someone pastes a contact into the description: refused.
    let pasted = doc.edit_record(
        &tool,
        &[clps_model::docs::RecordEdit::ReplaceDescription(format!(
            "Contact : {}",
            LOCAL_PEOPLE[0].email
        ))],
    );
    assert!(matches!(pasted, Err(DocError::PersonalData { .. })));
    buckets.insert(bucket, doc);

    // The point d'appui directory: the contact person stays local, the
    // organisation's generic desk is shared; a personal address is refused.
    let mut appui = AppuiDoc::create("assuetudes", me).unwrap();
    appui.join().unwrap();
    appui
        .upsert_service(&ServiceInput {
            name: "Infor-Drogues ASBL".into(),
            sector: Some("promotion_sante_prevention".into()),
            communes: BTreeSet::from(["Charleroi".into(), "Thuin".into()]),
            themes: BTreeSet::from(["assuetudes".into()]),
            offer_to_schools: Some("Animations en classe à partir de la 5e primaire.".into()),
            email: Some("info@infordrogues.be".into()),
            phone: Some("02 227 52 52".into()),
            note: Some("Partenaire depuis 2007.".into()),
            ..ServiceInput::default()
        })
        .unwrap();
    let personal = appui.upsert_service(&ServiceInput {
        name: "Infor-Drogues ASBL".into(),
        email: Some(LOCAL_PEOPLE[2].email.into()),
        ..ServiceInput::default()
    });
    assert!(matches!(personal, Err(DocError::PersonalData { .. })));
    let note = appui.upsert_service(&ServiceInput {
        name: "Infor-Drogues ASBL".into(),
        note: Some(format!("demander {}", LOCAL_PEOPLE[2].email)),
        ..ServiceInput::default()
    });
    assert!(matches!(note, Err(DocError::PersonalData { .. })));
    appui
        .select_tool(
            &SelectionKey {
                theme: "assuetudes".into(),
                public: "enseignants".into(),
            },
            &tool,
            Some("Adapté au fondamental."),
        )
        .unwrap();
    appui
        .add_event(&Event {
            id: "ev-2021-03".into(),
            title: "Inter-points d'appui Assuétudes".into(),
            date: "2021-03-18".into(),
            place: Place::Video,
            centres_present: BTreeSet::from([centre("charleroi-thuin"), centre("namur")]),
            agenda: "1. Tour de table\n2. Répertoire".into(),
            minutes: String::new(),
        })
        .unwrap();
    appui
        .create_document("etat-des-lieux", "État des lieux 2021", "Synthèse commune.")
        .unwrap();

    // Every saved document, uncompressed so that strings are searchable,
    // plus the history rendered as JSON.
    let mut saved: Vec<Vec<u8>> = Vec::new();
    for doc in buckets.values_mut() {
        saved.push(doc.automerge_mut().save_nocompress());
        saved.push(doc.save());
        for change in doc.automerge_mut().get_changes(&[]) {
            saved.push(format!("{:?}", change.decode()).into_bytes());
        }
    }
    saved.push(appui.automerge_mut().save_nocompress());
    for change in appui.automerge_mut().get_changes(&[]) {
        saved.push(format!("{:?}", change.decode()).into_bytes());
    }
    // Sanity: the search does find shared content.
    assert!(saved.iter().any(|b| contains(b, "Emotika")));
    assert!(saved.iter().any(|b| contains(b, "info@infordrogues.be")));

    for person in &LOCAL_PEOPLE {
        let last_name = person.name.rsplit(' ').next().unwrap();
        for needle in [person.name, last_name, person.email, person.phone] {
            for bytes in &saved {
                assert!(
                    !contains(bytes, needle),
                    "« {needle} » leaked into a shared document"
                );
            }
        }
    }
    for doc in buckets.values() {
        schema::check_root(doc.automerge(), doc.doc_id()).unwrap();
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The shared record types have no field that could name a person: every
/// field is listed here with what it holds. Adding a field fails this test
/// until someone states what it holds.
#[test]
fn shared_record_types_have_no_person_field() {
    let record = clps_model::docs::catalogue::Record {
        id: RecordId::parse("r-1").unwrap(),
        fields: RecordFields::default(),
        reviews: Default::default(),
        holdings: Default::default(),
        downloads: Default::default(),
        merged_into: None,
        aliases: Default::default(),
        created_by: None,
        last_edited_by: None,
    };
    let shown = format!(
        "{record:?} {:?} {:?}",
        Review::default(),
        Holding::default()
    );
    let fields: BTreeSet<&str> = shown
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| {
            w.chars().next().is_some_and(char::is_lowercase) && shown.contains(&format!(" {w}: "))
        })
        .collect();
    let allowed = BTreeSet::from([
        // Record: ids, publication data, codes, per-centre maps.
        "id",
        "fields",
        "reviews",
        "holdings",
        "downloads",
        "merged_into",
        "aliases",
        "created_by",
        "last_edited_by",
        // RecordFields: `creator` is the printed authorship statement of a
        // published item (usually an organisation), public bibliographic data.
        "title",
        "doc_type",
        "creator",
        "publisher",
        "year",
        "themes",
        "publics",
        "age_min",
        "age_max",
        "description",
        "conditions_of_use",
        "languages",
        "links",
        // Review (keyed by centre and ReviewerRole) and Holding (keyed by centre).
        "rating",
        "text",
        "copies",
        "shelf_mark",
        "availability",
    ]);
    let unexpected: Vec<_> = fields.difference(&allowed).collect();
    assert!(
        unexpected.is_empty(),
        "new fields need a privacy review: {unexpected:?}"
    );
    // Reviews are signed by a closed list of roles, never by a free name.
    assert!(
        ReviewerRole::ALL
            .iter()
            .all(|r| ReviewerRole::from_code(r.code()) == Some(*r))
    );
}
