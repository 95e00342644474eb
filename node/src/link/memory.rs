//! An in-memory [`DocStore`] for tests and examples: documents as Automerge
//! values in a map, with the same pending/acknowledge bookkeeping as the
//! node's SQLite store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use automerge::{Automerge, AutomergeError, ChangeHash};
use clps_model::docs::DocId;

use super::DocStore;

#[derive(Debug, thiserror::Error)]
pub enum MemoryStoreError {
    #[error("received bytes are not an automerge document or changes")]
    Load(#[from] AutomergeError),
}

#[derive(Default)]
struct MemDoc {
    doc: Automerge,
    pending: BTreeSet<ChangeHash>,
}

#[derive(Default)]
pub struct MemoryStore {
    docs: Mutex<BTreeMap<DocId, MemDoc>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<DocId, MemDoc>> {
        self.docs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records local edits: every change of `doc` that the store lacks is
    /// merged and becomes pending.
    pub fn commit_local(&self, doc_id: &DocId, doc: &Automerge) -> Result<usize, MemoryStoreError> {
        let mut docs = self.lock();
        let entry = docs.entry(doc_id.clone()).or_default();
        let new: Vec<_> = doc.get_changes(&entry.doc.get_heads());
        let new: Vec<_> = new
            .into_iter()
            .filter(|c| entry.doc.get_change_meta_by_hash(&c.hash()).is_none())
            .collect();
        let n = new.len();
        entry.pending.extend(new.iter().map(|c| c.hash()));
        entry.doc.apply_changes(new)?;
        Ok(n)
    }

    /// A copy of a stored document.
    pub fn doc(&self, doc_id: &DocId) -> Option<Automerge> {
        self.lock().get(doc_id).map(|d| d.doc.clone())
    }

    pub fn doc_ids(&self) -> Vec<DocId> {
        self.lock().keys().cloned().collect()
    }

    pub fn heads(&self, doc_id: &DocId) -> Vec<ChangeHash> {
        self.lock()
            .get(doc_id)
            .map(|d| d.doc.get_heads())
            .unwrap_or_default()
    }

    pub fn n_pending(&self) -> usize {
        self.lock().values().map(|d| d.pending.len()).sum()
    }
}

impl DocStore for MemoryStore {
    type Error = MemoryStoreError;

    async fn list_docs(&self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, Self::Error> {
        Ok(self
            .lock()
            .iter()
            .map(|(id, d)| (id.clone(), d.doc.get_heads()))
            .collect())
    }

    async fn load_doc(&self, doc_id: &DocId) -> Result<Option<Automerge>, Self::Error> {
        Ok(self.lock().get(doc_id).map(|d| d.doc.clone()))
    }

    async fn persist_received(&self, doc_id: &DocId, bytes: &[u8]) -> Result<(), Self::Error> {
        let mut docs = self.lock();
        let entry = docs.entry(doc_id.clone()).or_default();
        // Load into a copy first so that bad bytes leave the document as it was.
        let mut staged = entry.doc.clone();
        staged.load_incremental(bytes)?;
        entry.doc = staged;
        Ok(())
    }

    fn is_unreadable(_: &Self::Error) -> bool {
        true
    }

    async fn pending_changes(&self) -> Result<Vec<(DocId, ChangeHash)>, Self::Error> {
        Ok(self
            .lock()
            .iter()
            .flat_map(|(id, d)| d.pending.iter().map(|h| (id.clone(), *h)))
            .collect())
    }

    async fn acknowledge(&self, doc_id: &DocId, changes: &[ChangeHash]) -> Result<(), Self::Error> {
        if let Some(d) = self.lock().get_mut(doc_id) {
            for h in changes {
                d.pending.remove(h);
            }
        }
        Ok(())
    }
}
