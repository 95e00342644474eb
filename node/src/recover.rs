//! Rebuilding a document the hub refused, from the hub's copy.
//!
//! A document is blocked when the hub refuses one of this centre's changes:
//! every later local change of it depends on the refused one, so none of
//! them can be delivered. [`recover`] fetches the hub's copy and replays
//! this centre's pending changes on it with the hub's own rules
//! (`clps_model::docs::replay`): each valid change whose dependencies are
//! there is kept as it is. For a catalogue bucket, the records those left
//! out changes touched are then brought to their local state field by field
//! (title, type, authors, publisher, year, ages, conditions, description,
//! this centre's copies), each field a change of its own that must pass the
//! same rules; what cannot pass is reported. In those records the local
//! value wins over a concurrent edit from another centre (the centre edited
//! them last, as far as it knows); sets and reviews are not brought back. The rebuilt document replaces
//! the local one in one transaction, and its changes the hub lacks become
//! the pending list.

use std::collections::BTreeSet;

use automerge::{AutoCommit, Automerge, Change, ChangeHash};
use clps_model::docs::catalogue::{self, Record, RecordEdit, RecordId};
use clps_model::docs::{CatalogueDoc, DocId, DocKind};

use crate::link::{LinkConfig, LinkError, fetch_hub_copy};
use crate::shared;
use crate::store::{Store, StoreError};

/// What a rebuild kept and what it left out.
#[derive(Debug, Clone, Default)]
pub struct RecoverReport {
    /// Pending changes of this centre replayed as they were.
    pub kept: usize,
    /// Fields brought back to their local value by a new change
    /// (`record: field`).
    pub reapplied: Vec<String>,
    /// Changes left out, with the rule that refused them.
    pub dropped: Vec<(ChangeHash, String)>,
    /// Fields whose local value the rules refuse (`record: field — why`).
    pub fields_dropped: Vec<String>,
    /// Changes now waiting to be sent.
    pub pending: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("la copie du hub est inaccessible")]
    Link(#[from] LinkError),
    #[error("ce nœud n'a pas le document {0}")]
    Unknown(String),
    #[error("la copie du hub de {doc} est illisible : {why}")]
    Unreadable { doc: String, why: String },
}

/// Rebuilds `doc_id` from the hub's copy and this centre's valid changes.
pub async fn recover(
    store: &Store,
    link: &LinkConfig,
    doc_id: &DocId,
) -> Result<RecoverReport, RecoverError> {
    let hub_copy = fetch_hub_copy(link, doc_id).await?;
    let base = match hub_copy {
        Some(bytes) => Automerge::load(&bytes).map_err(|e| RecoverError::Unreadable {
            doc: doc_id.to_string(),
            why: e.to_string(),
        })?,
        None => Automerge::new(),
    };
    let id = doc_id.clone();
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let report = rebuild(&tx, &id, base)?;
            tx.commit()?;
            Ok(report)
        })
        .await
        .map_err(|e| match e {
            StoreError::Invalid(why) if why.starts_with("unknown:") => {
                RecoverError::Unknown(doc_id.to_string())
            }
            other => RecoverError::Store(other),
        })
}

fn rebuild(
    tx: &rusqlite::Transaction<'_>,
    doc_id: &DocId,
    base: Automerge,
) -> Result<RecoverReport, StoreError> {
    let actor = shared::node_actor(tx)?;
    let author = actor.centre.clone();
    let Some(mut local) = shared::load(tx, doc_id, &actor)? else {
        return Err(StoreError::Invalid(format!("unknown:{doc_id}")));
    };
    let hub_heads = base.get_heads();
    let mut stmt = tx.prepare("SELECT hash FROM pending_changes WHERE doc_id = ?1")?;
    let pending: Vec<ChangeHash> = stmt
        .query_map([doc_id.to_string()], |r| r.get::<_, String>(0))?
        .filter_map(|h| h.ok().and_then(|h| h.parse().ok()))
        .collect();
    drop(stmt);
    let changes: Vec<Change> = pending
        .iter()
        .filter_map(|h| local.get_change_by_hash(h))
        .collect();
    let replayed = clps_model::docs::replay(doc_id, base, changes, &author);
    let mut report = RecoverReport {
        kept: replayed.kept.len(),
        dropped: replayed.dropped.clone(),
        ..RecoverReport::default()
    };
    let mut rebuilt = AutoCommit::load(&replayed.doc.save())
        .map_err(|e| StoreError::Invalid(format!("document {doc_id} illisible : {e}")))?
        .with_actor(actor.actor_id());
    let mut records: BTreeSet<RecordId> = BTreeSet::new();
    if let DocKind::Catalogue { bucket } = doc_id.kind() {
        records.extend(catalogue::record_ids(&local));
        records.extend(catalogue::record_ids(&rebuilt));
        if !report.dropped.is_empty() {
            let left_out: Vec<Change> = report
                .dropped
                .iter()
                .filter_map(|(h, _)| local.get_change_by_hash(h))
                .collect();
            let touched = catalogue::records_touched(&local, &left_out)
                .unwrap_or_else(|| catalogue::record_ids(&local).into_iter().collect());
            rebuilt = reapply_records(*bucket, rebuilt, &local, &touched, &actor, &mut report)?;
        }
    }
    let pending: Vec<ChangeHash> = rebuilt
        .get_changes(&hub_heads)
        .iter()
        .map(Change::hash)
        .collect();
    report.pending = pending.len();
    shared::replace(tx, doc_id, &mut rebuilt, &pending, &records)?;
    Ok(report)
}

/// One field brought back: a typed operation on the rebuilt bucket.
type Attempt = Box<dyn Fn(&mut CatalogueDoc) -> Result<(), clps_model::docs::DocError>>;

/// The local record's fields, as edits of the rebuilt one.
fn edits(local: &Record, rebuilt: &Record) -> Vec<(&'static str, RecordEdit)> {
    let (l, r) = (&local.fields, &rebuilt.fields);
    let mut out = Vec::new();
    if l.title != r.title {
        out.push(("titre", RecordEdit::Title(l.title.clone())));
    }
    if l.doc_type != r.doc_type {
        out.push(("type", RecordEdit::DocType(l.doc_type.clone())));
    }
    if l.creator != r.creator {
        out.push(("auteurs", RecordEdit::Creator(l.creator.clone())));
    }
    if l.publisher != r.publisher {
        out.push(("éditeur", RecordEdit::Publisher(l.publisher.clone())));
    }
    if l.year != r.year {
        out.push(("année", RecordEdit::Year(l.year)));
    }
    if (l.age_min, l.age_max) != (r.age_min, r.age_max) {
        out.push((
            "âges",
            RecordEdit::AgeRange {
                min: l.age_min,
                max: l.age_max,
            },
        ));
    }
    if l.conditions_of_use != r.conditions_of_use {
        out.push((
            "conditions d'utilisation",
            RecordEdit::ConditionsOfUse(l.conditions_of_use.clone()),
        ));
    }
    if l.description != r.description {
        out.push((
            "description",
            RecordEdit::ReplaceDescription(l.description.clone()),
        ));
    }
    out
}

/// Brings the records the left-out changes touched back to their local
/// state, one field per change, keeping only what the rules accept.
fn reapply_records(
    bucket: u16,
    rebuilt: AutoCommit,
    local: &AutoCommit,
    touched: &BTreeSet<RecordId>,
    actor: &clps_model::CentreActor,
    report: &mut RecoverReport,
) -> Result<AutoCommit, StoreError> {
    let doc_id = DocId::catalogue(bucket);
    let invalid = |e: clps_model::docs::DocError| StoreError::Invalid(e.to_string());
    let mut doc = CatalogueDoc::from_automerge(bucket, rebuilt, actor.clone()).map_err(invalid)?;
    let mine = &actor.centre;
    for id in touched {
        let Some(local_record) = catalogue::read_record(local, id) else {
            continue;
        };
        let id = id.clone();
        let current = doc.record(&id);
        // One trial per field: kept if the change passes the hub's rules.
        let mut attempts: Vec<(String, Attempt)> = Vec::new();
        match &current {
            None => {
                let fields = local_record.fields.clone();
                let rid = id.clone();
                attempts.push((
                    "notice".to_owned(),
                    Box::new(move |d| d.create_record(&rid, &fields)),
                ));
            }
            Some(current) => {
                for (label, edit) in edits(&local_record, current) {
                    let rid = id.clone();
                    attempts.push((
                        label.to_owned(),
                        Box::new(move |d| d.edit_record(&rid, std::slice::from_ref(&edit))),
                    ));
                }
            }
        }
        let own_local = local_record.holdings.get(mine).cloned();
        let own_now = current.as_ref().and_then(|r| r.holdings.get(mine).cloned());
        if let Some(holding) = own_local
            && Some(&holding) != own_now.as_ref()
        {
            let rid = id.clone();
            attempts.push((
                "exemplaires".to_owned(),
                Box::new(move |d| d.set_holding(&rid, &holding)),
            ));
        }
        for (field, attempt) in attempts {
            let trial_base = doc.automerge_mut().fork();
            let before = doc.automerge_mut().get_heads();
            let outcome = attempt(&mut doc).map_err(|e| e.to_string()).and_then(|()| {
                let am = doc.automerge_mut();
                let change = am
                    .get_changes(&before)
                    .pop()
                    .ok_or_else(|| "nothing to change".to_owned())?;
                clps_model::docs::validate_own_change(&doc_id, am.document(), &change, mine)
                    .map_err(|e| e.to_string())
            });
            match outcome {
                Ok(()) => report.reapplied.push(format!("{id} : {field}")),
                Err(why) => {
                    report
                        .fields_dropped
                        .push(format!("{id} : {field} — {why}"));
                    doc = CatalogueDoc::from_automerge(
                        bucket,
                        trial_base.with_actor(actor.actor_id()),
                        actor.clone(),
                    )
                    .map_err(invalid)?;
                }
            }
        }
    }
    Ok(doc.into_automerge())
}
