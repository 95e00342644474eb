//! Bounded fuzzing (cargo-fuzz needs nightly; these are proptest runs with
//! a fixed number of cases) of every decoder that reads bytes from the
//! network or from outside: Automerge sync messages through `DocPeer` with
//! the hub's validation gate, single changes through `validate_change`,
//! protobuf frames (`ClientMessage`, `ServerMessage`), snapshots through
//! `load_doc` and the node's `persist_received`, and the node's CSV import.
//!
//! Inputs are random bytes and mutations (flips, inserts, deletes,
//! truncations) of valid seeds. A panic is caught, the input is kept under
//! `tests/fixtures/fuzz/` as `crash-<target>-<hash>.bin`, and the run fails;
//! `fixtures_replay_without_panic` replays every kept file on every target.
//! A structure-aware target forges whole changes the way another Automerge
//! library could write them (any field name, any value type, nested
//! objects, huge strings, another centre's keys, e-mails and phone numbers
//! in text) and sends them through `DocPeer` with the hub's gate: nothing
//! panics, and whatever is accepted still reads back as a valid record.
//! CI draws the same inputs every run (`CLPS_FAULT_SEED` picks others);
//! `CLPS_SOAK_SECONDS` raises the number of cases and draws fresh ones;
//! `CLPS_FUZZ_CASES=N` runs N cases per target (50,000 at most for the two
//! that touch SQLite or files, 100,000 for forged changes), for release-mode
//! runs:
//! `CLPS_FUZZ_CASES=1500000 cargo test --release -p clps-tests --test faults_fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use automerge::{Automerge, Change, ObjType, ReadDoc, ScalarValue};
use clps_hub::Identity;
use clps_hub::access::Role;
use clps_model::docs::catalogue::{RecordEdit, RecordFields, RecordId, bucket_of};
use clps_model::docs::{CatalogueDoc, DocId};
use clps_model::sync::DocPeer;
use clps_model::{CentreActor, CentreId};
use clps_node::federation::NodeDocStore;
use clps_node::link::DocStore;
use clps_node::store::Store;
use clps_proto::pb;
use clps_tests::figures::{self, Figures};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use prost::Message as _;

static INPUTS: AtomicU64 = AtomicU64::new(0);
static CRASHES: AtomicU64 = AtomicU64::new(0);
/// Forged changes tried, and how many of them the gate accepted.
static FORGED: AtomicU64 = AtomicU64::new(0);
static FORGED_ACCEPTED: AtomicU64 = AtomicU64::new(0);

fn cases() -> u32 {
    if let Some(n) = std::env::var("CLPS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if figures::soak().is_some() {
        50_000
    } else {
        2_000
    }
}

/// Targets that open SQLite or write a file per case run fewer of them.
fn cases_for(target: &str) -> u32 {
    match target {
        "persist" | "csv" => cases().min(50_000),
        // Loads and saves a whole document per case.
        "forged" => cases().min(100_000),
        _ => cases(),
    }
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz")
}

fn namur() -> CentreId {
    CentreId::new("namur").unwrap()
}

/// Valid inputs to mutate, built once.
struct Seeds {
    doc_id: DocId,
    /// The document before the seeded changes (what the hub holds).
    base: Automerge,
    snapshot: Vec<u8>,
    changes: Vec<Vec<u8>>,
    sync_message: Vec<u8>,
    client_frames: Vec<Vec<u8>>,
    server_frames: Vec<Vec<u8>>,
    csv: Vec<u8>,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let actor = CentreActor::new(namur(), [3; 8]);
        let id = RecordId::from_local(&namur(), 1);
        let bucket = bucket_of(&id);
        let mut doc = CatalogueDoc::create(bucket, actor).unwrap();
        let base = doc.automerge_mut().document().clone();
        doc.create_record(
            &id,
            &RecordFields {
                title: "Le jeu des émotions".to_owned(),
                doc_type: "ouvrage".to_owned(),
                description: "Un outil pour parler de ce qu'on ressent".to_owned(),
                ..RecordFields::default()
            },
        )
        .unwrap();
        doc.edit_record(&id, &[RecordEdit::AddTheme("evras".to_owned())])
            .unwrap();
        let full = doc.automerge_mut().document().clone();
        let changes: Vec<Vec<u8>> = full
            .get_changes(&base.get_heads())
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        let sync_message = automerge::sync::Message {
            heads: full.get_heads(),
            need: vec![],
            have: vec![],
            changes: automerge::sync::ChunkList::from(changes.clone()),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        }
        .encode();
        let doc_id = DocId::catalogue(bucket);
        let client = |kind| pb::ClientMessage { kind: Some(kind) }.encode_to_vec();
        let server = |kind| pb::ServerMessage { kind: Some(kind) }.encode_to_vec();
        use pb::client_message::Kind as C;
        use pb::server_message::Kind as S;
        let heads: Vec<Vec<u8>> = full.get_heads().iter().map(|h| h.0.to_vec()).collect();
        Seeds {
            snapshot: full.save(),
            client_frames: vec![
                client(C::Hello(pb::Hello {
                    spaces: vec![pb::SpaceDigest {
                        space: "catalogue".to_owned(),
                        digest: vec![1; 32],
                        n_docs: 3,
                    }],
                    client: "fuzz".to_owned(),
                })),
                client(C::Sync(pb::DocSync {
                    doc_id: doc_id.to_string(),
                    message: sync_message.clone(),
                })),
                client(C::Fetch(pb::Fetch {
                    doc_ids: vec![doc_id.to_string()],
                })),
            ],
            server_frames: vec![
                server(S::Snapshot(pb::Snapshot {
                    doc_id: doc_id.to_string(),
                    document: full.save(),
                    heads: heads.clone(),
                })),
                server(S::Idle(pb::DocIdle {
                    doc_id: doc_id.to_string(),
                    heads,
                })),
                server(S::Error(pb::DocError {
                    doc_id: doc_id.to_string(),
                    code: 7,
                    message: "refusé".to_owned(),
                })),
            ],
            csv: "id_local;titre;type;auteurs;annee;themes;publics;age_min;age_max;exemplaires\n\
                  1;Le jeu des émotions;ouvrage;Collectif;2019;evras;enfants;6;12;2\n\
                  2;\"Affiche « Bouger »\";affiche;;2021;;;;;1\n"
                .replace(';', ",")
                .into_bytes(),
            doc_id,
            base,
            changes,
            sync_message,
        }
    })
}

/// Runs `target` on `input`; a panic is counted and the input kept.
fn guarded(target: &str, input: &[u8], run: impl FnOnce(&[u8])) {
    INPUTS.fetch_add(1, Ordering::Relaxed);
    if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
        CRASHES.fetch_add(1, Ordering::Relaxed);
        let hash = clps_model::text::fnv1a(input.iter().copied());
        let dir = fixtures_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("crash-{target}-{hash:016x}.bin"));
        std::fs::write(&path, input).unwrap();
        println!("crasher kept: {}", path.display());
    }
}

// ---- the targets -------------------------------------------------------

fn hub_sync(bytes: &[u8]) {
    let seeds = seeds();
    let mut doc = seeds.base.clone();
    let identity = Identity::Centre(namur());
    let doc_id = seeds.doc_id.clone();
    let mut gate = clps_hub::validate::Gate::new(&doc_id, &identity, Role::Write);
    let heads = doc.get_heads();
    let mut peer = DocPeer::new();
    if peer.receive(&mut doc, bytes, &mut gate).is_err() {
        // A refused message leaves the document as it was.
        assert_eq!(doc.get_heads(), heads);
    }
    let _ = automerge::sync::Message::decode(bytes);
}

fn single_change(bytes: &[u8]) {
    if let Ok(change) = Change::try_from(bytes) {
        let seeds = seeds();
        let _ = clps_model::docs::validate_change(&seeds.doc_id, &seeds.base, &change, &namur());
    }
}

fn frames(bytes: &[u8]) {
    let _ = pb::ClientMessage::decode(bytes);
    let _ = pb::ServerMessage::decode(bytes);
}

fn snapshot(bytes: &[u8]) {
    let seeds = seeds();
    let actor = CentreActor::new(namur(), [5; 8]);
    let _ = clps_model::docs::load_doc(&seeds.doc_id, bytes, &actor);
    let _ = Automerge::load(bytes);
}

/// One in-memory node, shared by the cases (its store must survive any
/// input: after each case it still loads every document it holds).
fn node() -> &'static (tokio::runtime::Runtime, NodeDocStore) {
    static NODE: OnceLock<(tokio::runtime::Runtime, NodeDocStore)> = OnceLock::new();
    NODE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = Store::in_memory().unwrap();
        rt.block_on(store.call(|c| clps_node::centre::init(c, &namur(), [6; 8])))
            .unwrap();
        (rt, NodeDocStore { store })
    })
}

fn persist_received(bytes: &[u8]) {
    let (rt, node) = node();
    let doc_id = seeds().doc_id.clone();
    rt.block_on(async {
        let _ = node.persist_received(&doc_id, bytes).await;
        // Whatever happened, the stored copy still loads.
        node.load_doc(&doc_id).await.unwrap();
    });
}

fn csv_import(bytes: &[u8]) {
    let (rt, node) = node();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("import.csv");
    std::fs::write(&path, bytes).unwrap();
    rt.block_on(node.store.call(move |c| {
        let _ = clps_node::import::import(c, &path, &indicatif::ProgressBar::hidden());
        Ok(())
    }))
    .unwrap();
}

type Target = (&'static str, fn(&[u8]), fn(&Seeds) -> Vec<Vec<u8>>);

fn targets() -> Vec<Target> {
    vec![
        ("sync", hub_sync, |s| vec![s.sync_message.clone()]),
        ("change", single_change, |s| s.changes.clone()),
        ("frame", frames, |s| {
            s.client_frames
                .iter()
                .chain(&s.server_frames)
                .cloned()
                .collect()
        }),
        ("snapshot", snapshot, |s| vec![s.snapshot.clone()]),
        ("persist", persist_received, |s| {
            vec![s.snapshot.clone(), s.changes.concat()]
        }),
        ("csv", csv_import, |s| vec![s.csv.clone()]),
    ]
}

/// A mutation of a seed: (seed index, edits of (position, kind, byte)).
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        prop::collection::vec((any::<u16>(), 0u8..4, any::<u8>()), 1..8),
    )
        .prop_map(move |(i, edits)| {
            let mut bytes = seeds[i].clone();
            for (pos, kind, byte) in edits {
                let len = bytes.len();
                let at = if len == 0 { 0 } else { usize::from(pos) % len };
                match kind {
                    0 if len > 0 => bytes[at] ^= byte | 1,
                    1 => bytes.insert(at, byte),
                    2 if len > 0 => {
                        bytes.remove(at);
                    }
                    3 => bytes.truncate(at),
                    _ => {}
                }
            }
            bytes
        })
}

fn run_target(name: &'static str, target: fn(&[u8]), seeds: Vec<Vec<u8>>) {
    let config = ProptestConfig {
        cases: cases_for(name),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let strategy = prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated(seeds),];
    // CI replays the same inputs (CLPS_FAULT_SEED picks others); a soak
    // draws fresh ones each run.
    let seed = if figures::soak().is_some() {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    } else {
        figures::seed()
    };
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed.wrapping_add(i as u64 + name.len() as u64)).to_le_bytes());
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    TestRunner::new_with_rng(config, rng)
        .run(&strategy, |input| {
            guarded(name, &input, target);
            Ok(())
        })
        .unwrap();
}

#[test]
fn decoders_survive_random_and_mutated_input() {
    let started = Instant::now();
    // Panics are caught and kept; keep the default hook from flooding the log.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (name, target, seeds_of) in targets() {
        run_target(name, target, seeds_of(seeds()));
    }
    std::panic::set_hook(hook);
    let inputs = INPUTS.load(Ordering::Relaxed);
    let crashes = CRASHES.load(Ordering::Relaxed);
    figures::record(&Figures {
        scenario: "fuzz-decoders".to_owned(),
        iterations: u64::from(cases()),
        inputs_fuzzed: inputs,
        crashes_found: crashes,
        seconds: started.elapsed().as_secs_f64(),
        ..Figures::default()
    });
    assert_eq!(
        crashes,
        0,
        "crashers kept under {}",
        fixtures_dir().display()
    );
}

/// One forged operation: where, which key, what value.
#[derive(Debug, Clone)]
struct Forge {
    place: u8,
    key: u8,
    value: u8,
    len: u16,
}

const FORGE_KEYS: [&str; 16] = [
    "title",
    "doc_type",
    "year",
    "age_min",
    "description",
    "themes",
    "holdings",
    "reviews",
    "downloads",
    "merged_into",
    "created_by",
    "last_edited_by",
    "namur/copies",
    "liege/shelf_mark",
    "namur/documentaliste/rating",
    "../x|y",
];

fn forged_text(value: u8, len: u16) -> String {
    let len = usize::from(len);
    match value % 4 {
        0 => "a".repeat(len),
        1 => format!("voir marie.dupont@example.org {}", "b".repeat(len % 64)),
        2 => format!("tél. 0470 12 34 56 {}", "c".repeat(len % 64)),
        _ => "é".repeat(len % 600),
    }
}

/// Writes one forged operation into `doc` (errors of the library ignored:
/// they are inputs a forger could not produce).
fn forge(doc: &mut automerge::AutoCommit, record: &automerge::ObjId, op: &Forge) {
    use automerge::transaction::Transactable;
    let key = FORGE_KEYS[usize::from(op.key) % FORGE_KEYS.len()];
    let target = match op.place % 4 {
        0 => record.clone(),
        1 => match doc.get(record, "holdings") {
            Ok(Some((_, obj))) => obj,
            _ => return,
        },
        2 => match doc.get(record, "reviews") {
            Ok(Some((_, obj))) => obj,
            _ => return,
        },
        _ => {
            // A new record under a key of the list.
            let Ok(Some((_, records))) = doc.get(automerge::ROOT, "records") else {
                return;
            };
            match doc.put_object(&records, key, ObjType::Map) {
                Ok(obj) => obj,
                Err(_) => return,
            }
        }
    };
    let _ = match op.value % 10 {
        0 => doc.put(&target, key, forged_text(op.value, op.len)),
        1 => doc.put(&target, key, u64::from(op.len)),
        2 => doc.put(&target, key, -i64::from(op.len)),
        3 => doc.put(&target, key, f64::from(op.len) / 3.0),
        4 => doc.put(&target, key, op.len.is_multiple_of(2)),
        5 => doc.put(&target, key, ScalarValue::counter(i64::from(op.len))),
        6 => doc
            .put_object(&target, key, ObjType::Text)
            .and_then(|t| doc.splice_text(&t, 0, 0, &forged_text(op.value / 10, op.len))),
        7 => doc.put_object(&target, key, ObjType::List).map(|_| ()),
        8 => doc.put_object(&target, key, ObjType::Map).map(|_| ()),
        _ => match doc.get(record, "description") {
            Ok(Some((_, text))) => {
                doc.splice_text(&text, 0, 0, &forged_text(op.value / 10, op.len))
            }
            _ => Ok(()),
        },
    };
}

/// The forged change, sent as the hub receives it.
fn forged_change(ops: &[Forge]) {
    FORGED.fetch_add(1, Ordering::Relaxed);
    let seeds = seeds();
    let mut hub = seeds.base.clone();
    let genuine: Vec<Change> = seeds
        .changes
        .iter()
        .map(|b| Change::try_from(b.as_slice()).unwrap())
        .collect();
    hub.apply_changes(genuine).unwrap();
    let mut doc = automerge::AutoCommit::load(&hub.save())
        .unwrap()
        .with_actor(CentreActor::new(namur(), [3; 8]).actor_id());
    let id = RecordId::from_local(&namur(), 1);
    let (_, records) = doc.get(automerge::ROOT, "records").unwrap().unwrap();
    let (_, record) = doc.get(&records, id.as_str()).unwrap().unwrap();
    for op in ops {
        forge(&mut doc, &record, op);
    }
    doc.commit();
    let changes = doc.get_changes(&hub.get_heads());
    if changes.is_empty() {
        return;
    }
    let message = automerge::sync::Message {
        heads: doc.get_heads(),
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(
            changes
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect::<Vec<_>>(),
        ),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    let identity = Identity::Centre(namur());
    let mut gate = clps_hub::validate::Gate::new(&seeds.doc_id, &identity, Role::Write);
    let before = hub.get_heads();
    match DocPeer::new().receive(&mut hub, &message, &mut gate) {
        Err(_) => assert_eq!(hub.get_heads(), before, "a refusal changed the document"),
        Ok(_) => {
            if hub.get_heads() != before {
                FORGED_ACCEPTED.fetch_add(1, Ordering::Relaxed);
            }
            // Accepted: every record still reads back whole.
            for record in clps_model::docs::catalogue::read_records(&hub) {
                assert!(!record.fields.title.is_empty(), "{record:?}");
                assert!(!record.fields.description.contains('@'), "{record:?}");
            }
        }
    }
}

#[test]
fn forged_changes_are_refused_or_read_back_whole() {
    let started = Instant::now();
    let config = ProptestConfig {
        cases: cases_for("forged"),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let strategy = prop::collection::vec(
        (any::<u8>(), any::<u8>(), any::<u8>(), 0u16..2_000).prop_map(
            |(place, key, value, len)| Forge {
                place,
                key,
                value,
                len: if value % 13 == 0 {
                    len.saturating_mul(30)
                } else {
                    len
                },
            },
        ),
        1..6,
    );
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&figures::seed().to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    TestRunner::new_with_rng(config, rng)
        .run(&strategy, |ops| {
            forged_change(&ops);
            Ok(())
        })
        .unwrap();
    figures::record(&Figures {
        scenario: "fuzz-forged-changes".to_owned(),
        iterations: u64::from(cases_for("forged")),
        inputs_fuzzed: FORGED.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        ..Figures::default()
    });
    println!(
        "forged changes: {} tried, {} accepted (each read back whole)",
        FORGED.load(Ordering::Relaxed),
        FORGED_ACCEPTED.load(Ordering::Relaxed)
    );
}

#[test]
fn fixtures_replay_without_panic() {
    let Ok(entries) = std::fs::read_dir(fixtures_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        for (name, target, _) in targets() {
            let result = catch_unwind(AssertUnwindSafe(|| target(&bytes)));
            assert!(
                result.is_ok(),
                "{} panics in {name}",
                entry.path().display()
            );
        }
    }
}
