//! The node's link to the hub: a gRPC client over mutual TLS that runs the
//! `clps.sync.v1` session (see `proto/` and `clps_model::sync` for the
//! protocol). This module and the hub's `rpc` are the only places that see
//! protobuf types.
//!
//! The node's storage is reached only through [`DocStore`], so the same code
//! runs on the node's SQLite store and on [`MemoryStore`] in tests.
//! Durability: everything the link sends comes from the store (local edits
//! are durable before they are ever sent), and every change received from the
//! hub is persisted through [`DocStore::persist_received`] before the link
//! answers the message that carried it. A local change leaves the pending
//! list only once the hub has shown, by its heads, that it stored it.
//!
//! Entry points: [`sync_once`] (one session, returns when every document has
//! converged), [`serve`] (a long-lived session, reconnecting with exponential
//! backoff), [`hub_status`] (per space: do our heads match the hub's?).

mod config;
mod engine;
mod memory;
mod transport;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use clps_model::docs::{DocId, SpaceId};

pub use config::LinkConfig;
pub use memory::{MemoryStore, MemoryStoreError};

/// The node's shared-document storage, as the link needs it. Every method
/// is async so that an implementation can hand the work to a storage thread.
pub trait DocStore: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every shared document held locally, with its current heads.
    fn list_docs(
        &self,
    ) -> impl Future<Output = Result<Vec<(DocId, Vec<ChangeHash>)>, Self::Error>> + Send;

    /// The document as stored, or `None` if the node does not have it.
    fn load_doc(
        &self,
        doc_id: &DocId,
    ) -> impl Future<Output = Result<Option<automerge::Automerge>, Self::Error>> + Send;

    /// Merges bytes received from the hub (a saved document or concatenated
    /// changes: `Automerge::load_incremental` semantics) into the stored
    /// document, creating it if needed, in one transaction. It must merge,
    /// never replace: local edits made meanwhile survive. Received changes
    /// are not pending.
    fn persist_received(
        &self,
        doc_id: &DocId,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// [`DocStore::persist_received`] for a whole document the hub sent (a
    /// bootstrap): `loaded` is `AutoCommit::load(&bytes)`, done on another
    /// thread while the previous document was being stored (`None` if it
    /// failed), so that the store need not load it again.
    fn persist_snapshot(
        &self,
        doc_id: &DocId,
        bytes: Vec<u8>,
        loaded: Option<automerge::AutoCommit>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        drop(loaded);
        async move { self.persist_received(doc_id, &bytes).await }
    }

    /// A number that changes whenever anything is committed to the store
    /// (by this process or another), cheap enough to ask every few
    /// milliseconds: a serving link looks for local changes only when it
    /// moves. Stores that cannot tell return 0 and rely on the slow poll.
    fn data_version(&self) -> impl Future<Output = Result<u64, Self::Error>> + Send {
        async { Ok(0) }
    }

    /// Whether `persist_received` failed because the bytes were not a
    /// usable document (the document fails, the session goes on) rather
    /// than because the store did (the session stops).
    fn is_unreadable(error: &Self::Error) -> bool;

    /// Local changes the hub has not acknowledged yet.
    fn pending_changes(
        &self,
    ) -> impl Future<Output = Result<Vec<(DocId, ChangeHash)>, Self::Error>> + Send;

    /// The hub now holds these local changes: drop them from the pending list.
    fn acknowledge(
        &self,
        doc_id: &DocId,
        changes: &[ChangeHash],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Called at the end of every converged sync (also in [`serve`]), e.g. to
    /// record the time of the last sync. Does nothing by default.
    fn sync_finished(
        &self,
        _report: &SyncReport,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("lecture impossible : {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("adresse du hub invalide « {0} »")]
    Address(String),
    #[error("connexion au hub impossible")]
    Connect(#[source] tonic::transport::Error),
    #[error("le hub a mis fin à la session : {0}")]
    Status(#[from] tonic::Status),
    #[error("le hub a fermé la session avant la convergence")]
    Closed,
    #[error("pas de convergence en {0:?}")]
    Timeout(Duration),
    #[error("message inattendu du hub : {0}")]
    Protocol(String),
    #[error("échec de la base locale")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl LinkError {
    fn store(e: impl std::error::Error + Send + Sync + 'static) -> LinkError {
        LinkError::Store(Box::new(e))
    }
}

/// A per-document refusal from the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocFailure {
    pub doc_id: String,
    pub code: tonic::Code,
    pub message: String,
}

/// What one sync moved, and what it cost.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// How the hub named us (`centre/namur`, `committee/...`).
    pub identity: String,
    pub spaces_checked: usize,
    /// Spaces whose digests matched: skipped without a per-document exchange.
    pub spaces_in_sync: usize,
    /// Documents that received changes or a snapshot from the hub.
    pub docs_down: usize,
    /// Documents whose local changes the hub acknowledged.
    pub docs_up: usize,
    pub changes_down: usize,
    /// Local (pending) changes the hub acknowledged.
    pub changes_up: usize,
    pub snapshots_down: usize,
    pub messages_up: usize,
    pub messages_down: usize,
    /// Protobuf bytes of the session messages.
    pub payload_bytes_up: u64,
    pub payload_bytes_down: u64,
    /// Bytes on the TCP connection (TLS, HTTP/2, compression included).
    pub wire_bytes_up: u64,
    pub wire_bytes_down: u64,
    pub elapsed: Duration,
    /// Per-document refusals (forged actor, read-only, not a member...).
    pub failures: Vec<DocFailure>,
}

/// How our heads compare with the hub's, per space we are a member of.
#[derive(Debug, Clone)]
pub struct LinkStatus {
    pub identity: String,
    /// Space, our role in it (`true` = write), and whether heads match.
    pub spaces: Vec<SpaceStatus>,
    /// Local changes not yet acknowledged by the hub, per document.
    pub pending: BTreeMap<DocId, usize>,
    pub checked_at: std::time::SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceStatus {
    pub space: SpaceId,
    pub can_write: bool,
    pub heads_match: bool,
}

/// One sync session: exchanges digests, fetches missing documents, syncs the
/// documents whose heads differ, and returns once every one has converged
/// (or was refused), or `config.sync_timeout` has passed.
pub async fn sync_once(
    config: &LinkConfig,
    store: &impl DocStore,
) -> Result<SyncReport, LinkError> {
    let started = Instant::now();
    let report = tokio::time::timeout(
        config.sync_timeout,
        engine::run_session(config, store, engine::Mode::Once, || {}),
    )
    .await
    .map_err(|_| LinkError::Timeout(config.sync_timeout))??;
    let report = SyncReport {
        elapsed: started.elapsed(),
        ..report
    };
    store
        .sync_finished(&report)
        .await
        .map_err(LinkError::store)?;
    Ok(report)
}

/// Keeps a session open with the hub until `shutdown` resolves: changes
/// accepted from other nodes arrive as the hub pushes them, local changes
/// are picked up as soon as the store commits them. A lost connection is
/// retried after a delay that doubles from `backoff_min` to `backoff_max`,
/// jittered (each delay is drawn between half of it and all of it, so nodes
/// cut off together do not come back together), and starts over from
/// `backoff_min` as soon as a session is established (the hub's Welcome
/// arrived): a node comes back within `backoff_min` of a hub restart.
pub async fn serve(
    config: &LinkConfig,
    store: &impl DocStore,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LinkError> {
    use rand::Rng as _;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = config.backoff_min;
    loop {
        let mut established = false;
        let result = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            result = engine::run_session(config, store, engine::Mode::Serve, || established = true) => result,
        };
        if established {
            backoff = config.backoff_min;
        }
        let delay = jittered(backoff, rand::rng().random_range(0.5..=1.0));
        match result {
            Ok(_) => tracing::info!(retry_in = ?delay, "hub closed the session"),
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "sync session failed"),
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        backoff = (backoff * 2).min(config.backoff_max);
    }
}

/// `backoff` scaled by `factor` (in `0.5..=1.0`).
fn jittered(backoff: Duration, factor: f64) -> Duration {
    backoff.mul_f64(factor.clamp(0.0, 1.0))
}

/// The hub's copy of one document (`None` if the hub has none).
pub async fn fetch_hub_copy(
    config: &LinkConfig,
    doc_id: &DocId,
) -> Result<Option<Vec<u8>>, LinkError> {
    engine::fetch_hub_copy(config, doc_id).await
}

/// Asks the hub, with one Hello, which of our spaces match its heads.
pub async fn hub_status(
    config: &LinkConfig,
    store: &impl DocStore,
) -> Result<LinkStatus, LinkError> {
    engine::status(config, store).await
}
