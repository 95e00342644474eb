//! `clps-hub recover`: rebuilds a lost hub database from the nodes' own
//! copies of the shared documents.
//!
//! Every node keeps every shared document of its spaces (snapshot + chunks
//! in `shared_docs` / `shared_doc_chunks` of its `node.sqlite`), so the
//! network as a whole still holds everything the hub had acknowledged. The
//! operator stops the hub, gathers the nodes' data directories or their
//! `clps-node backup` files, and runs
//! `clps-hub recover --config hub.toml --from-node DIR_OR_FILE ...`.
//!
//! A node cannot simply re-upload another centre's changes over a session
//! (the hub only accepts changes whose actor is the caller's centre), so the
//! recovery reads the files offline instead. Authorship is intrinsic to each
//! change (its actor names the centre), so every change is validated with
//! `validate::check_change` as if its own centre had sent it, in causal
//! order, against the document rebuilt so far: a change the hub would have
//! refused (a forged actor written into a compromised node's file, a write
//! outside the centre's spaces) is left out, and so is anything built on it.
//!
//! This is the one place where the hub reads a node's database, and only
//! offline, from files the operator hands it. The node files are opened
//! read-only; the hub database is written only if it holds no document yet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use automerge::Automerge;
use clps_model::CentreActor;
use clps_model::docs::schema::genesis_actor;
use clps_model::docs::{self, DocId};
use rusqlite::{Connection, OpenFlags};

use crate::access::{Access, AccessError};
use crate::config::Config;
use crate::docs::heads_to_bytes;
use crate::identity::Identity;
use crate::store::{Store, StoreError};
use crate::validate;

/// `PRAGMA application_id` of a node database ("CLPS" in ASCII), as
/// `clps_node::store::APPLICATION_ID`; the hub does not depend on the node.
const NODE_APPLICATION_ID: i32 = 0x434c_5053;
/// The database file inside a node's data directory.
const NODE_DB_FILE: &str = "node.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("la configuration du hub ne nomme pas de base de données (database)")]
    NoDatabase,
    #[error(
        "la base du hub {0} contient déjà {1} document(s) : déplacez-la avant de la reconstruire"
    )]
    NotEmpty(PathBuf, usize),
    #[error("indiquez au moins un nœud avec --from-node")]
    NoSource,
    #[error("{0} n'est pas une base de nœud CLPS lisible")]
    NotANode(PathBuf, #[source] Option<rusqlite::Error>),
    #[error("le document {doc} de {path} est illisible")]
    Corrupt {
        path: PathBuf,
        doc: String,
        #[source]
        source: Box<automerge::AutomergeError>,
    },
    #[error("configuration des espaces invalide")]
    Access(#[from] AccessError),
    #[error("écriture de la base du hub impossible")]
    Store(#[from] StoreError),
}

/// What a recovery found and wrote.
#[derive(Debug, Clone, Default)]
pub struct RecoverReport {
    pub sources: usize,
    /// Documents written to the hub database.
    pub docs: usize,
    /// Changes kept (validated), genesis changes included.
    pub changes: usize,
    /// Changes left out: (document, reason).
    pub refused: Vec<(String, String)>,
    /// Documents left out entirely: (document, reason).
    pub skipped: Vec<(String, String)>,
}

/// The node database behind a `--from-node` argument: a data directory or
/// a database file (a `clps-node backup`).
fn node_db_path(source: &Path) -> PathBuf {
    if source.is_dir() {
        source.join(NODE_DB_FILE)
    } else {
        source.to_owned()
    }
}

/// Reads every shared document of one node database.
fn read_node(
    source: &Path,
    skipped: &mut Vec<(String, String)>,
) -> Result<Vec<(DocId, Automerge)>, RecoverError> {
    let path = node_db_path(source);
    let not_a_node = |e: Option<rusqlite::Error>| RecoverError::NotANode(path.clone(), e);
    if !path.is_file() {
        return Err(not_a_node(None));
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_a_node(Some(e)))?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| not_a_node(Some(e)))?;
    if app_id != NODE_APPLICATION_ID {
        return Err(not_a_node(None));
    }
    let rows: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT doc_id, snapshot FROM shared_docs ORDER BY doc_id")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| not_a_node(Some(e)))?;
    let mut out = Vec::new();
    for (id, snapshot) in rows {
        let Ok(doc_id) = DocId::parse(&id) else {
            skipped.push((id, "identifiant de document invalide".to_owned()));
            continue;
        };
        let corrupt = |source| RecoverError::Corrupt {
            path: path.clone(),
            doc: id.clone(),
            source: Box::new(source),
        };
        let mut doc = Automerge::load(&snapshot).map_err(corrupt)?;
        let chunks: Vec<Vec<u8>> = conn
            .prepare("SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1 ORDER BY seq")
            .and_then(|mut stmt| {
                stmt.query_map([&id], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| not_a_node(Some(e)))?;
        for chunk in chunks {
            doc.load_incremental(&chunk).map_err(corrupt)?;
        }
        out.push((doc_id, doc));
    }
    Ok(out)
}

/// Keeps the changes of `merged` that the hub would have accepted from
/// their own centres, in causal order; returns the rebuilt document.
fn validated(
    doc_id: &DocId,
    merged: &Automerge,
    access: &Access,
    refused: &mut Vec<(String, String)>,
) -> Automerge {
    let space = doc_id.space();
    let mut rebuilt = Automerge::new();
    let changes = merged.get_changes(&[]);
    for change in docs::causal_order(changes) {
        let verdict = if change.actor_id() == &genesis_actor() {
            // The genesis is accepted from anyone iff byte-identical to ours;
            // the author passed is not looked at.
            let anyone = clps_model::centres::all()
                .first()
                .and_then(|c| clps_model::CentreId::new(&c.id).ok());
            match anyone {
                Some(centre) => docs::validate_change(doc_id, &rebuilt, &change, &centre)
                    .map_err(|e| e.to_string()),
                None => Err("no centre known".to_owned()),
            }
        } else {
            match CentreActor::parse(change.actor_id()) {
                Err(e) => Err(e.to_string()),
                Ok(actor) => {
                    let identity = Identity::Centre(actor.centre);
                    match access.role(&identity, &space) {
                        None => Err(format!("{identity} is not a member of space {space}")),
                        Some(role) => {
                            validate::check_change(doc_id, &rebuilt, &change, &identity, role)
                        }
                    }
                }
            }
        };
        match verdict {
            Ok(()) => {
                if let Err(e) = rebuilt.apply_changes([change.clone()]) {
                    refused.push((doc_id.to_string(), e.to_string()));
                }
            }
            Err(reason) => {
                refused.push((doc_id.to_string(), format!("{}: {reason}", change.hash())))
            }
        }
    }
    rebuilt
}

/// Rebuilds the hub database named by `config` from node databases.
pub async fn recover(config: &Config, sources: &[PathBuf]) -> Result<RecoverReport, RecoverError> {
    if sources.is_empty() {
        return Err(RecoverError::NoSource);
    }
    let database = config.database.as_deref().ok_or(RecoverError::NoDatabase)?;
    let access = Access::from_config(&config.spaces)?;
    let mut report = RecoverReport {
        sources: sources.len(),
        ..RecoverReport::default()
    };
    // Read every source before touching the hub database: a bad file stops
    // the recovery with nothing written.
    let mut merged: BTreeMap<DocId, Automerge> = BTreeMap::new();
    for source in sources {
        for (doc_id, mut doc) in read_node(source, &mut report.skipped)? {
            let target = merged.entry(doc_id.clone()).or_default();
            target
                .merge(&mut doc)
                .map_err(|source_error| RecoverError::Corrupt {
                    path: node_db_path(source),
                    doc: doc_id.to_string(),
                    source: Box::new(source_error),
                })?;
        }
    }
    let store = Store::open(Some(database))?;
    let existing = store.index().await?.len();
    if existing > 0 {
        return Err(RecoverError::NotEmpty(database.to_owned(), existing));
    }
    for (doc_id, doc) in &merged {
        // Committees read every space the hub knows, and only those.
        let reader = Identity::Committee("recover".to_owned());
        if access.role(&reader, &doc_id.space()).is_none() {
            report
                .skipped
                .push((doc_id.to_string(), "espace inconnu de ce hub".to_owned()));
            continue;
        }
        let rebuilt = validated(doc_id, doc, &access, &mut report.refused);
        let heads = rebuilt.get_heads();
        if heads.is_empty() {
            continue;
        }
        report.changes += rebuilt.get_changes(&[]).len();
        let bytes = rebuilt.save();
        let id = doc_id.to_string();
        let heads = heads_to_bytes(&heads);
        store
            .append(&id, doc_id.space().as_str(), bytes.clone(), heads.clone())
            .await?;
        // One snapshot, no chunk: what a compacted document looks like.
        store.compact(&id, bytes, heads).await?;
        report.docs += 1;
    }
    Ok(report)
}
