//! Helpers shared by the model's integration tests: centre actors, record
//! fixtures in a chosen bucket, and exchanging documents between replicas
//! the way nodes and the hub do (sync protocol, or validated change batches).

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeSet;

use automerge::AutoCommit;
use automerge::sync::{State, SyncDoc};
use clps_model::docs::catalogue::{RecordFields, RecordId, bucket_of};
use clps_model::docs::{DocId, causal_order, validate_changes};
use clps_model::{CentreActor, CentreId};

pub fn centre(id: &str) -> CentreId {
    CentreId::new(id).unwrap()
}

pub fn actor(id: &str, instance: u8) -> CentreActor {
    CentreActor::new(centre(id), [instance; 8])
}

/// A record id of `centre` whose bucket is `bucket`, found by walking the
/// local numbering from `start`.
pub fn id_in_bucket(centre_id: &str, bucket: u16, start: u64) -> RecordId {
    let c = centre(centre_id);
    (start..)
        .map(|n| RecordId::from_local(&c, n))
        .find(|id| bucket_of(id) == bucket)
        .unwrap()
}

/// The local number of a `<centre>.<n>` record id.
pub fn local_number(id: &RecordId) -> u64 {
    id.as_str()
        .rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap()
}

pub fn fields(title: &str) -> RecordFields {
    RecordFields {
        title: title.to_owned(),
        doc_type: "outil_pedagogique".to_owned(),
        creator: "CLPS de Charleroi-Thuin".to_owned(),
        publisher: "CLPS de Charleroi-Thuin".to_owned(),
        year: Some(2020),
        themes: BTreeSet::from(["competences_psychosociales".to_owned()]),
        publics: BTreeSet::from(["adolescents".to_owned()]),
        age_min: Some(12),
        age_max: Some(18),
        description: "Photo-expression.".to_owned(),
        conditions_of_use: "Prêt gratuit".to_owned(),
        languages: BTreeSet::from(["fr".to_owned()]),
        links: BTreeSet::new(),
    }
}

/// Runs the sync protocol between two documents until neither has anything
/// to send.
pub fn sync_pair(a: &mut AutoCommit, b: &mut AutoCommit) {
    let mut sa = State::new();
    let mut sb = State::new();
    for _ in 0..32 {
        let ma = a.sync().generate_sync_message(&mut sa);
        let mb = b.sync().generate_sync_message(&mut sb);
        if ma.is_none() && mb.is_none() {
            return;
        }
        if let Some(m) = ma {
            b.sync().receive_sync_message(&mut sb, m).unwrap();
        }
        if let Some(m) = mb {
            a.sync().receive_sync_message(&mut sa, m).unwrap();
        }
    }
    panic!("sync did not settle");
}

/// Sends `from`'s changes that `to` lacks as the hub would receive them:
/// grouped by author centre, causally ordered, validated, then applied.
pub fn push_validated(doc_id: &DocId, from: &mut AutoCommit, to: &mut AutoCommit) {
    let missing = causal_order(to.get_changes_added(from));
    let mut batch: Vec<automerge::Change> = Vec::new();
    let mut batch_author: Option<CentreId> = None;
    let mut flush = |batch: &mut Vec<automerge::Change>, author: &Option<CentreId>| {
        if batch.is_empty() {
            return;
        }
        // The genesis actor is not a centre; any author may relay it.
        let author = author.clone().unwrap_or_else(|| centre("namur"));
        validate_changes(doc_id, to.document(), batch, &author)
            .unwrap_or_else(|e| panic!("legit change refused: {e:?}"));
        to.apply_changes(std::mem::take(batch)).unwrap();
    };
    for change in missing {
        let author = CentreActor::parse(change.actor_id()).ok().map(|a| a.centre);
        if author != batch_author {
            flush(&mut batch, &batch_author);
            batch_author = author;
        }
        batch.push(change);
    }
    flush(&mut batch, &batch_author);
}
