//! The hub's live documents: loaded lazily from the store, shared by every
//! session, with a per-space index of heads (for digests and listings) and a
//! per-space broadcast channel that tells the other sessions a document moved.
//!
//! Each document sits behind its own async mutex. A session holds it while it
//! validates, merges and commits an incoming message, so no other session
//! ever sees a change that is not yet durable; it releases it before sending
//! anything to its client, so a slow client never holds a document.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use automerge::{Automerge, ChangeHash};
use clps_model::docs::{DocId, SpaceId};
use clps_model::sync::{Persist, space_digest};
use tokio::sync::broadcast;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Capacity of each space's change broadcast; a session that falls further
/// behind gets `Lagged` and re-announces every document of the space.
const BROADCAST_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("échec du stockage")]
    Store(#[from] StoreError),
    #[error("le document stocké {0} est corrompu")]
    Corrupt(String),
}

/// A document in memory.
pub struct HubDoc {
    pub doc: Automerge,
    /// Snapshot + chunk bytes in the store.
    pub stored_bytes: u64,
    pub n_chunks: u64,
    /// The last `save()`, reused for snapshots until the document moves.
    snapshot: Option<(Vec<ChangeHash>, Arc<Vec<u8>>)>,
}

impl HubDoc {
    fn empty() -> HubDoc {
        HubDoc {
            doc: Automerge::new(),
            stored_bytes: 0,
            n_chunks: 0,
            snapshot: None,
        }
    }

    /// Whether the document has any change (an empty one was only opened).
    pub fn exists(&self) -> bool {
        !self.doc.get_heads().is_empty()
    }

    /// The compressed snapshot of the document as it stands.
    pub fn snapshot(&mut self) -> Arc<Vec<u8>> {
        let heads = self.doc.get_heads();
        match &self.snapshot {
            Some((at, bytes)) if *at == heads => bytes.clone(),
            _ => {
                let bytes = Arc::new(self.doc.save());
                self.snapshot = Some((heads, bytes.clone()));
                bytes
            }
        }
    }
}

/// Tells sessions that a document has new changes.
#[derive(Debug, Clone)]
pub struct DocChanged {
    pub doc_id: DocId,
    /// The session that brought the change, which need not hear of it.
    pub origin: u64,
}

pub type SharedDoc = Arc<tokio::sync::Mutex<HubDoc>>;

pub struct Docs {
    store: Store,
    metrics: Arc<Metrics>,
    compact_after_chunks: u64,
    open: Mutex<HashMap<DocId, SharedDoc>>,
    index: RwLock<BTreeMap<SpaceId, BTreeMap<DocId, Vec<ChangeHash>>>>,
    channels: Mutex<HashMap<SpaceId, broadcast::Sender<DocChanged>>>,
}

pub fn heads_to_bytes(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

pub fn heads_from_bytes(bytes: &[u8]) -> Option<Vec<ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    bytes
        .chunks_exact(32)
        .map(|c| ChangeHash::try_from(c).ok())
        .collect()
}

impl Docs {
    /// Loads the heads index from the store.
    pub async fn open(
        store: Store,
        metrics: Arc<Metrics>,
        compact_after_chunks: u64,
    ) -> Result<Docs, DocsError> {
        let mut index: BTreeMap<SpaceId, BTreeMap<DocId, Vec<ChangeHash>>> = BTreeMap::new();
        for (id, heads, _) in store.index().await? {
            let doc_id = DocId::parse(&id).map_err(|_| DocsError::Corrupt(id.clone()))?;
            let heads = heads_from_bytes(&heads).ok_or(DocsError::Corrupt(id))?;
            index
                .entry(doc_id.space())
                .or_default()
                .insert(doc_id, heads);
        }
        Ok(Docs {
            store,
            metrics,
            compact_after_chunks: compact_after_chunks.max(1),
            open: Mutex::new(HashMap::new()),
            index: RwLock::new(index),
            channels: Mutex::new(HashMap::new()),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The documents of a space with their heads, sorted by id.
    pub fn space_heads(&self, space: &SpaceId) -> Vec<(DocId, Vec<ChangeHash>)> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index
            .get(space)
            .map(|docs| docs.iter().map(|(d, h)| (d.clone(), h.clone())).collect())
            .unwrap_or_default()
    }

    pub fn digest(&self, space: &SpaceId) -> [u8; 32] {
        let docs = self.space_heads(space);
        space_digest(docs.iter().map(|(d, h)| (d, h.as_slice())))
    }

    pub fn subscribe(&self, space: &SpaceId) -> broadcast::Receiver<DocChanged> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(space.clone())
            .or_insert_with(|| broadcast::channel(BROADCAST_CAPACITY).0)
            .subscribe()
    }

    async fn load_from_store(&self, doc_id: &DocId) -> Result<Option<HubDoc>, DocsError> {
        let Some(stored) = self.store.load(&doc_id.to_string()).await? else {
            return Ok(None);
        };
        let corrupt = |_| DocsError::Corrupt(doc_id.to_string());
        let mut doc = if stored.snapshot.is_empty() {
            Automerge::new()
        } else {
            Automerge::load(&stored.snapshot).map_err(corrupt)?
        };
        let mut bytes = stored.snapshot.len();
        for chunk in &stored.chunks {
            doc.load_incremental(chunk).map_err(corrupt)?;
            bytes += chunk.len();
        }
        // A compacted document with no chunk since: its stored snapshot is
        // what save() would produce, so a fetch sends it as it is.
        let snapshot = (stored.chunks.is_empty() && !stored.snapshot.is_empty())
            .then(|| (doc.get_heads(), Arc::new(stored.snapshot)));
        Ok(Some(HubDoc {
            doc,
            stored_bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
            n_chunks: u64::try_from(stored.chunks.len()).unwrap_or(u64::MAX),
            snapshot,
        }))
    }

    /// What a bootstrap sends of a document nobody has opened since the
    /// hub started, when it was compacted with no chunk since: the stored
    /// snapshot and its heads, without loading it (an Automerge load of a
    /// catalogue bucket costs about 200 ms). `None` when the document must
    /// be loaded to be sent.
    pub async fn stored_snapshot(
        &self,
        doc_id: &DocId,
    ) -> Result<Option<(Vec<u8>, Vec<ChangeHash>)>, DocsError> {
        let is_open = || {
            self.open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(doc_id)
        };
        if is_open() {
            return Ok(None);
        }
        // The store answers one command at a time, so the snapshot, its
        // chunks and the heads read here belong together.
        let Some(stored) = self.store.load(&doc_id.to_string()).await? else {
            return Ok(None);
        };
        if !stored.chunks.is_empty() || stored.snapshot.is_empty() {
            return Ok(None);
        }
        let heads = heads_from_bytes(&stored.heads)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| DocsError::Corrupt(doc_id.to_string()))?;
        Ok(Some((stored.snapshot, heads)))
    }

    /// The live document, loaded from the store on first use. A document
    /// that is not stored yet is opened empty when `create` is set, and is
    /// `None` otherwise.
    pub async fn get(&self, doc_id: &DocId, create: bool) -> Result<Option<SharedDoc>, DocsError> {
        if let Some(doc) = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(doc_id)
        {
            return Ok(Some(doc.clone()));
        }
        let loaded = match self.load_from_store(doc_id).await? {
            Some(doc) => doc,
            None if create => HubDoc::empty(),
            None => return Ok(None),
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Another session may have loaded it meanwhile: keep the first.
        let doc = open
            .entry(doc_id.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(loaded)))
            .clone();
        Ok(Some(doc))
    }

    /// Makes merged changes durable, then updates the index and tells the
    /// other sessions. Called with the document locked, after the merge.
    pub async fn commit(
        &self,
        doc_id: &DocId,
        hub_doc: &mut HubDoc,
        persist: &Persist,
        origin: u64,
    ) -> Result<(), DocsError> {
        let id = doc_id.to_string();
        let space = doc_id.space();
        let heads = heads_to_bytes(&persist.heads);
        let size = self
            .store
            .append(&id, space.as_str(), persist.bytes.clone(), heads.clone())
            .await?;
        hub_doc.stored_bytes = size.n_bytes;
        hub_doc.n_chunks = size.n_chunks;
        if size.n_chunks >= self.compact_after_chunks {
            let snapshot = hub_doc.snapshot();
            let size = self
                .store
                .compact(&id, snapshot.as_ref().clone(), heads)
                .await?;
            hub_doc.stored_bytes = size.n_bytes;
            hub_doc.n_chunks = size.n_chunks;
            Metrics::add(&self.metrics.compactions, 1);
        }
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(space.clone())
            .or_default()
            .insert(doc_id.clone(), persist.heads.clone());
        let sender = self
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&space)
            .cloned();
        if let Some(sender) = sender {
            // No receiver is fine: nobody else is connected to this space.
            let _ = sender.send(DocChanged {
                doc_id: doc_id.clone(),
                origin,
            });
        }
        Ok(())
    }

    /// Replaces the in-memory state of a document by what the store holds,
    /// after a failed commit left memory ahead of disk.
    pub async fn reload(&self, doc_id: &DocId, hub_doc: &mut HubDoc) -> Result<(), DocsError> {
        *hub_doc = self
            .load_from_store(doc_id)
            .await?
            .unwrap_or_else(HubDoc::empty);
        Ok(())
    }
}
