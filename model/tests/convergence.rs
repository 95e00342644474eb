//! The CRDT invariant of the shared documents: ten replicas (one per centre)
//! make random concurrent operations of every kind on two catalogue buckets
//! and a point d'appui repository, exchanging documents in random order,
//! sometimes through the sync protocol and sometimes as validated change
//! batches the way the hub receives them. After a final exchange every
//! replica must have the same heads and the same typed content, and again
//! after a save/load round trip. Download counters must add up to the sum of
//! all increments, and every change ever made must pass the hub's validation.
//!
//! Failing inputs are written by proptest to
//! `tests/convergence.proptest-regressions` and replayed first.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use automerge::AutoCommit;
use clps_model::docs::appui::{self, AppuiDoc, SelectionKey, ServiceInput};
use clps_model::docs::catalogue::{
    self, CatalogueDoc, Holding, MergePlan, Record, RecordEdit, RecordId, Review, ReviewerRole,
    bucket_of, merge_records,
};
use clps_model::docs::{DocId, schema};
use clps_model::{CentreActor, CentreId};
use common::*;
use proptest::prelude::*;

const N: usize = 10;
const BUCKETS: [u16; 2] = [11, 12];
const SCHEME: &str = "assuetudes";
const THEMES: [&str; 4] = ["assuetudes", "evras", "sante_mentale", "pandemie"];
const TITLES: [&str; 3] = ["Emotika", "Émotika !", "Le Covid-19 et nous"];
const ORGS: [&str; 3] = ["Infor-Drogues ASBL", "infor drogues", "Centre Alfa"];
const WORDS: [&str; 4] = ["a", "é", " photo ", "jeu\n"];
const DISTRIBUTORS: [&str; 2] = ["site-clps", "cpas-charleroi"];

#[derive(Debug, Clone)]
enum Op {
    Title {
        r: usize,
        rec: usize,
        title: usize,
    },
    Year {
        r: usize,
        rec: usize,
        year: u16,
    },
    AddTheme {
        r: usize,
        rec: usize,
        theme: usize,
    },
    RemoveTheme {
        r: usize,
        rec: usize,
        theme: usize,
    },
    Splice {
        r: usize,
        rec: usize,
        pos: usize,
        delete: usize,
        word: usize,
    },
    Holding {
        r: usize,
        rec: usize,
        copies: u32,
    },
    Review {
        r: usize,
        rec: usize,
        rating: u8,
    },
    Downloads {
        r: usize,
        rec: usize,
        distributor: usize,
        count: u32,
    },
    Create {
        r: usize,
        bucket: usize,
        title: usize,
    },
    Merge {
        r: usize,
        a: usize,
        b: usize,
    },
    Service {
        r: usize,
        org: usize,
        note: bool,
    },
    Select {
        r: usize,
        rec: usize,
        theme: usize,
    },
    DocSplice {
        r: usize,
        pos: usize,
        word: usize,
    },
    NameVersion {
        r: usize,
        name: u8,
    },
    Sync {
        a: usize,
        b: usize,
        doc: usize,
        validated: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..N;
    let rec = 0..8usize;
    prop_oneof![
        (r.clone(), rec.clone(), 0..3usize).prop_map(|(r, rec, title)| Op::Title { r, rec, title }),
        (r.clone(), rec.clone(), 2000..2003u16).prop_map(|(r, rec, year)| Op::Year {
            r,
            rec,
            year
        }),
        (r.clone(), rec.clone(), 0..4usize).prop_map(|(r, rec, theme)| Op::AddTheme {
            r,
            rec,
            theme
        }),
        (r.clone(), rec.clone(), 0..4usize).prop_map(|(r, rec, theme)| Op::RemoveTheme {
            r,
            rec,
            theme
        }),
        (r.clone(), rec.clone(), 0..40usize, 0..3usize, 0..4usize).prop_map(
            |(r, rec, pos, delete, word)| Op::Splice {
                r,
                rec,
                pos,
                delete,
                word
            }
        ),
        (r.clone(), rec.clone(), 0..4u32).prop_map(|(r, rec, copies)| Op::Holding {
            r,
            rec,
            copies
        }),
        (r.clone(), rec.clone(), 1..=5u8).prop_map(|(r, rec, rating)| Op::Review {
            r,
            rec,
            rating
        }),
        (r.clone(), rec.clone(), 0..2usize, 1..10u32).prop_map(|(r, rec, distributor, count)| {
            Op::Downloads {
                r,
                rec,
                distributor,
                count,
            }
        }),
        (r.clone(), 0..2usize, 0..3usize).prop_map(|(r, bucket, title)| Op::Create {
            r,
            bucket,
            title
        }),
        (r.clone(), rec.clone(), rec.clone()).prop_map(|(r, a, b)| Op::Merge { r, a, b }),
        (r.clone(), 0..3usize, any::<bool>()).prop_map(|(r, org, note)| Op::Service {
            r,
            org,
            note
        }),
        (r.clone(), rec.clone(), 0..4usize).prop_map(|(r, rec, theme)| Op::Select {
            r,
            rec,
            theme
        }),
        (r.clone(), 0..40usize, 0..4usize).prop_map(|(r, pos, word)| Op::DocSplice {
            r,
            pos,
            word
        }),
        (r.clone(), 0..3u8).prop_map(|(r, name)| Op::NameVersion { r, name }),
        (r.clone(), 0..N, 0..3usize, any::<bool>()).prop_map(|(a, b, doc, validated)| Op::Sync {
            a,
            b,
            doc,
            validated
        }),
        // Exchanges are weighted up so that operations interleave with merges.
        (r, 0..N, 0..3usize, any::<bool>()).prop_map(|(a, b, doc, validated)| Op::Sync {
            a,
            b,
            doc,
            validated
        }),
    ]
}

struct Replica {
    centre: CentreId,
    buckets: [CatalogueDoc; 2],
    appui: AppuiDoc,
    next_local: u64,
}

impl Replica {
    fn doc_mut(&mut self, doc: usize) -> &mut AutoCommit {
        match doc {
            0 | 1 => self.buckets[doc].automerge_mut(),
            _ => self.appui.automerge_mut(),
        }
    }

    /// Record ids this replica sees, over both buckets, sorted.
    fn record_ids(&self) -> Vec<RecordId> {
        let mut ids: Vec<RecordId> = self.buckets.iter().flat_map(|b| b.record_ids()).collect();
        ids.sort();
        ids
    }

    fn pick(&self, rec: usize) -> Option<RecordId> {
        let ids = self.record_ids();
        (!ids.is_empty()).then(|| ids[rec % ids.len()].clone())
    }

    fn bucket_for(&mut self, id: &RecordId) -> &mut CatalogueDoc {
        let b = bucket_of(id);
        let i = BUCKETS.iter().position(|x| *x == b).unwrap();
        &mut self.buckets[i]
    }
}

fn doc_id(doc: usize) -> DocId {
    match doc {
        0 | 1 => DocId::catalogue(BUCKETS[doc]),
        _ => DocId::appui(SCHEME).unwrap(),
    }
}

/// The ten replicas, all starting from one seed state: two records per
/// bucket (some of them duplicates) and a co-written document.
fn replicas() -> Vec<Replica> {
    let seed_actor = actor("charleroi-thuin", 0xAA);
    let mut seed_buckets = Vec::new();
    for (i, bucket) in BUCKETS.iter().enumerate() {
        let mut doc = CatalogueDoc::create(*bucket, seed_actor.clone()).unwrap();
        for n in 0..2 {
            let id = id_in_bucket("charleroi-thuin", *bucket, 1000 * (i as u64 + 1) + 100 * n);
            doc.create_record(&id, &fields(TITLES[n as usize])).unwrap();
        }
        seed_buckets.push(doc.save());
    }
    let mut appui_doc = AppuiDoc::create(SCHEME, seed_actor).unwrap();
    appui_doc
        .create_document("doc-0", "État des lieux", "Texte commun.")
        .unwrap();
    let appui_bytes = appui_doc.save();

    CentreId::all_ids()
        .into_iter()
        .enumerate()
        .map(|(i, centre)| {
            let a = CentreActor::new(centre.clone(), [i as u8; 8]);
            Replica {
                buckets: [
                    CatalogueDoc::load(BUCKETS[0], &seed_buckets[0], a.clone()).unwrap(),
                    CatalogueDoc::load(BUCKETS[1], &seed_buckets[1], a.clone()).unwrap(),
                ],
                appui: AppuiDoc::load(SCHEME, &appui_bytes, a).unwrap(),
                centre,
                next_local: 0,
            }
        })
        .collect()
}

/// What the final state must contain, tracked alongside the random run.
#[derive(Default)]
struct Expected {
    downloads: BTreeMap<(RecordId, String), i64>,
    holdings: BTreeMap<(RecordId, CentreId), u32>,
}

fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

fn exchange(reps: &mut [Replica], a: usize, b: usize, doc: usize, validated: bool) {
    if a == b {
        return;
    }
    let (ra, rb) = two_mut(reps, a, b);
    let (da, db) = (ra.doc_mut(doc), rb.doc_mut(doc));
    let before = (da.get_heads(), db.get_heads());
    if validated {
        push_validated(&doc_id(doc), da, db);
        push_validated(&doc_id(doc), db, da);
    } else {
        sync_pair(da, db);
    }
    if doc < BUCKETS.len() {
        assert_touched_covers_diff(da, &before.0);
        assert_touched_covers_diff(db, &before.1);
    }
}

/// The records a node re-projects after receiving changes (found from the
/// changes' operations) include every record a diff shows changed.
fn assert_touched_covers_diff(doc: &mut AutoCommit, before: &[automerge::ChangeHash]) {
    let after = doc.get_heads();
    if after == before {
        return;
    }
    let changes = doc.get_changes(before);
    let touched = catalogue::records_touched(doc, &changes)
        .expect("every operation of a received change lies in a record");
    let diffed = catalogue::changed_records(&doc.diff(before, &after));
    assert!(
        diffed.is_subset(&touched),
        "diff {diffed:?}, operations {touched:?}"
    );
}

fn apply(reps: &mut [Replica], op: &Op, expected: &mut Expected) {
    match op.clone() {
        Op::Title { r, rec, title } => {
            if let Some(id) = reps[r].pick(rec) {
                reps[r]
                    .bucket_for(&id)
                    .edit_record(&id, &[RecordEdit::Title(TITLES[title].into())])
                    .unwrap();
            }
        }
        Op::Year { r, rec, year } => {
            if let Some(id) = reps[r].pick(rec) {
                reps[r]
                    .bucket_for(&id)
                    .edit_record(&id, &[RecordEdit::Year(Some(year))])
                    .unwrap();
            }
        }
        Op::AddTheme { r, rec, theme } | Op::RemoveTheme { r, rec, theme } => {
            if let Some(id) = reps[r].pick(rec) {
                let code = THEMES[theme].to_owned();
                let edit = if matches!(op, Op::AddTheme { .. }) {
                    RecordEdit::AddTheme(code)
                } else {
                    RecordEdit::RemoveTheme(code)
                };
                reps[r].bucket_for(&id).edit_record(&id, &[edit]).unwrap();
            }
        }
        Op::Splice {
            r,
            rec,
            pos,
            delete,
            word,
        } => {
            if let Some(id) = reps[r].pick(rec) {
                let doc = reps[r].bucket_for(&id);
                let len = doc.record(&id).unwrap().fields.description.chars().count();
                let pos = pos % (len + 1);
                let delete = delete.min(len - pos);
                doc.edit_record(
                    &id,
                    &[RecordEdit::SpliceDescription {
                        pos,
                        delete,
                        insert: WORDS[word].into(),
                    }],
                )
                .unwrap();
            }
        }
        Op::Holding { r, rec, copies } => {
            if let Some(id) = reps[r].pick(rec) {
                let centre = reps[r].centre.clone();
                reps[r]
                    .bucket_for(&id)
                    .set_holding(
                        &id,
                        &Holding {
                            copies,
                            shelf_mark: format!("S{copies}"),
                            ..Holding::default()
                        },
                    )
                    .unwrap();
                expected.holdings.insert((id, centre), copies);
            }
        }
        Op::Review { r, rec, rating } => {
            if let Some(id) = reps[r].pick(rec) {
                let role = ReviewerRole::ALL[usize::from(rating) % ReviewerRole::ALL.len()];
                reps[r]
                    .bucket_for(&id)
                    .set_review(
                        &id,
                        role,
                        &Review {
                            rating,
                            text: format!("note {rating}"),
                        },
                    )
                    .unwrap();
            }
        }
        Op::Downloads {
            r,
            rec,
            distributor,
            count,
        } => {
            if let Some(id) = reps[r].pick(rec) {
                let d = DISTRIBUTORS[distributor];
                reps[r]
                    .bucket_for(&id)
                    .add_downloads(&id, d, count)
                    .unwrap();
                *expected.downloads.entry((id, d.to_owned())).or_default() += i64::from(count);
            }
        }
        Op::Create { r, bucket, title } => {
            let rep = &mut reps[r];
            let id = id_in_bucket(rep.centre.as_str(), BUCKETS[bucket], rep.next_local);
            rep.next_local = local_number(&id) + 1;
            rep.buckets[bucket]
                .create_record(&id, &fields(TITLES[title]))
                .unwrap();
        }
        Op::Merge { r, a, b } => {
            let (Some(x), Some(y)) = (reps[r].pick(a), reps[r].pick(b)) else {
                return;
            };
            let Ok(plan) = MergePlan::new(&x, &y) else {
                return;
            };
            let rep = &mut reps[r];
            let sb = BUCKETS
                .iter()
                .position(|b| *b == bucket_of(&plan.survivor))
                .unwrap();
            let ab = BUCKETS
                .iter()
                .position(|b| *b == bucket_of(&plan.alias))
                .unwrap();
            if sb == ab {
                merge_records(&plan, &mut rep.buckets[sb], None).unwrap();
            } else {
                let (s, al) = two_mut(&mut rep.buckets, sb, ab);
                merge_records(&plan, s, Some(al)).unwrap();
            }
        }
        Op::Service { r, org, note } => {
            let centre = reps[r].centre.clone();
            reps[r]
                .appui
                .upsert_service(&ServiceInput {
                    name: ORGS[org].into(),
                    communes: [centre.centre().city.clone()].into(),
                    note: note.then(|| format!("Note de {centre}")),
                    ..ServiceInput::default()
                })
                .unwrap();
        }
        Op::Select { r, rec, theme } => {
            if let Some(id) = reps[r].pick(rec) {
                let sel = SelectionKey {
                    theme: THEMES[theme].into(),
                    public: "adolescents".into(),
                };
                reps[r].appui.select_tool(&sel, &id, Some("Utile")).unwrap();
            }
        }
        Op::DocSplice { r, pos, word } => {
            let len = reps[r].appui.documents()[0].body.chars().count();
            reps[r]
                .appui
                .splice_document("doc-0", pos % (len + 1), 0, WORDS[word])
                .unwrap();
        }
        Op::NameVersion { r, name } => {
            reps[r]
                .appui
                .name_version("doc-0", &format!("v{name}"))
                .unwrap();
        }
        Op::Sync {
            a,
            b,
            doc,
            validated,
        } => exchange(reps, a, b, doc, validated),
    }
}

/// Everything a user can read from a replica, in a canonical form.
#[derive(Debug, PartialEq)]
struct Export {
    records: Vec<Vec<Record>>,
    conflicts: Vec<Vec<catalogue::FieldConflict>>,
    services: Vec<appui::ServiceEntry>,
    selections: String,
    documents: Vec<appui::CoDocument>,
    appui_conflicts: Vec<appui::AppuiConflict>,
    versions: Vec<Option<String>>,
}

fn export(rep: &Replica) -> Export {
    Export {
        records: rep.buckets.iter().map(|b| b.records()).collect(),
        conflicts: rep.buckets.iter().map(|b| b.conflicts()).collect(),
        services: rep.appui.services(),
        selections: format!("{:?}", rep.appui.selections()),
        documents: rep.appui.documents(),
        appui_conflicts: rep.appui.conflicts(),
        versions: (0..3)
            .map(|n| rep.appui.version_text("doc-0", &format!("v{n}")).unwrap())
            .collect(),
    }
}

/// The one-pass read of a whole bucket gives what reading each record by
/// its keys gives, conflicts, counters and merges included.
fn assert_whole_bucket_reads(rep: &Replica, when: &str) {
    for bucket in &rep.buckets {
        let one_by_one: Vec<Record> = bucket
            .record_ids()
            .iter()
            .filter_map(|id| bucket.record(id))
            .collect();
        assert_eq!(bucket.records(), one_by_one, "{when}, {}", rep.centre);
    }
}

fn run(ops: &[Op]) {
    let mut reps = replicas();
    let mut expected = Expected::default();
    for op in ops {
        apply(&mut reps, op, &mut expected);
    }
    for rep in &reps {
        assert_whole_bucket_reads(rep, "before the final exchange");
    }
    // Final exchange: replica 0 gathers everything, then hands it back.
    for doc in 0..3 {
        for round in 0..2 {
            for i in 1..N {
                exchange(&mut reps, 0, i, doc, (i + round) % 2 == 0);
            }
        }
    }

    let reference = export(&reps[0]);
    let heads: Vec<Vec<Vec<automerge::ChangeHash>>> = reps
        .iter_mut()
        .map(|rep| (0..3).map(|d| rep.doc_mut(d).get_heads()).collect())
        .collect();
    for (i, rep) in reps.iter().enumerate() {
        assert_eq!(heads[i], heads[0], "heads of replica {i}");
        assert_eq!(export(rep), reference, "content of replica {i}");
        assert_whole_bucket_reads(rep, "converged");
    }

    // Save/load round trip.
    for rep in reps.iter_mut() {
        let a = CentreActor::new(rep.centre.clone(), [0xEE; 8]);
        let mut loaded = Replica {
            buckets: [
                CatalogueDoc::load(BUCKETS[0], &rep.buckets[0].save(), a.clone()).unwrap(),
                CatalogueDoc::load(BUCKETS[1], &rep.buckets[1].save(), a.clone()).unwrap(),
            ],
            appui: AppuiDoc::load(SCHEME, &rep.appui.save(), a).unwrap(),
            centre: rep.centre.clone(),
            next_local: 0,
        };
        for d in 0..3 {
            assert_eq!(loaded.doc_mut(d).get_heads(), rep.doc_mut(d).get_heads());
        }
        assert_eq!(export(&loaded), reference);
    }

    // Counters add up, holdings are each centre's last write.
    let records: BTreeMap<RecordId, Record> = reference
        .records
        .iter()
        .flatten()
        .map(|r| (r.id.clone(), r.clone()))
        .collect();
    for ((id, d), total) in &expected.downloads {
        assert_eq!(
            records[id].downloads.get(d),
            Some(total),
            "downloads of {id} via {d}"
        );
    }
    for ((id, centre), copies) in &expected.holdings {
        assert_eq!(records[id].holdings[centre].copies, *copies);
    }
    // Every merged record points at a record that lists it as an alias.
    for r in records.values() {
        if let Some(s) = &r.merged_into {
            assert!(records[s].aliases.contains(&r.id));
        }
    }

    // Every change ever made passes the hub's validation, from an empty hub.
    for doc in 0..3 {
        let mut hub = AutoCommit::new();
        push_validated(&doc_id(doc), reps[0].doc_mut(doc), &mut hub);
        schema::check_root(&hub, &doc_id(doc)).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 200,
        // Integration tests have no lib.rs beside them, so the default
        // persistence cannot find where to write; name the file instead.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/convergence.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ten_replicas_converge(ops in proptest::collection::vec(op(), 20..80)) {
        run(&ops);
    }
}

/// A fixed scenario that exercises every operation at least once, so a
/// regression shows up even when the random cases happen to miss one.
#[test]
fn every_operation_kind_converges() {
    let mut ops = Vec::new();
    for r in 0..N {
        ops.push(Op::Title {
            r,
            rec: r,
            title: r % 3,
        });
        ops.push(Op::AddTheme {
            r,
            rec: r + 1,
            theme: r % 4,
        });
        ops.push(Op::RemoveTheme {
            r,
            rec: r + 2,
            theme: 0,
        });
        ops.push(Op::Splice {
            r,
            rec: r,
            pos: r * 3,
            delete: 1,
            word: r % 4,
        });
        ops.push(Op::Holding {
            r,
            rec: r,
            copies: r as u32,
        });
        ops.push(Op::Review {
            r,
            rec: r + 3,
            rating: 1 + (r % 5) as u8,
        });
        ops.push(Op::Downloads {
            r,
            rec: 0,
            distributor: r % 2,
            count: 3,
        });
        ops.push(Op::Create {
            r,
            bucket: r % 2,
            title: r % 3,
        });
        ops.push(Op::Merge { r, a: r, b: r + 1 });
        ops.push(Op::Service {
            r,
            org: r % 3,
            note: true,
        });
        ops.push(Op::Select {
            r,
            rec: r,
            theme: r % 4,
        });
        ops.push(Op::DocSplice {
            r,
            pos: r,
            word: r % 4,
        });
        ops.push(Op::NameVersion {
            r,
            name: (r % 3) as u8,
        });
        ops.push(Op::Year {
            r,
            rec: r,
            year: 2000 + r as u16,
        });
        ops.push(Op::Sync {
            a: r,
            b: (r + 3) % N,
            doc: r % 3,
            validated: r % 2 == 0,
        });
    }
    run(&ops);
}

/// Found by the property test: a replica that writes `last_edited_by` with
/// the value a conflicted key already shows makes Automerge emit a delete of
/// the other value, which validation first refused as a provenance rewrite.
#[test]
fn regression_conflicted_provenance_resolved_by_delete() {
    run(&vec![
        Op::Holding {
            r: 9,
            rec: 3,
            copies: 0,
        },
        Op::Review {
            r: 0,
            rec: 3,
            rating: 1,
        },
        Op::Sync {
            a: 9,
            b: 0,
            doc: 1,
            validated: false,
        },
        Op::Title {
            r: 0,
            rec: 0,
            title: 0,
        },
        Op::Title {
            r: 0,
            rec: 0,
            title: 0,
        },
        Op::DocSplice {
            r: 5,
            pos: 22,
            word: 3,
        },
        Op::Year {
            r: 5,
            rec: 7,
            year: 2002,
        },
        Op::Sync {
            a: 2,
            b: 7,
            doc: 0,
            validated: false,
        },
        Op::AddTheme {
            r: 1,
            rec: 7,
            theme: 3,
        },
        Op::Select {
            r: 7,
            rec: 7,
            theme: 0,
        },
        Op::NameVersion { r: 6, name: 2 },
        Op::DocSplice {
            r: 1,
            pos: 29,
            word: 3,
        },
        Op::DocSplice {
            r: 9,
            pos: 34,
            word: 2,
        },
        Op::NameVersion { r: 4, name: 2 },
        Op::Downloads {
            r: 9,
            rec: 7,
            distributor: 1,
            count: 3,
        },
        Op::DocSplice {
            r: 6,
            pos: 2,
            word: 3,
        },
        Op::Sync {
            a: 9,
            b: 3,
            doc: 1,
            validated: true,
        },
        Op::Holding {
            r: 9,
            rec: 5,
            copies: 3,
        },
        Op::Year {
            r: 1,
            rec: 6,
            year: 2002,
        },
        Op::RemoveTheme {
            r: 5,
            rec: 3,
            theme: 2,
        },
    ]);
}
