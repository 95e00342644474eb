//! The client side of a session: drives one `DocPeer` per document from the
//! hub's messages and the local store, and decides when the session has
//! converged.
//!
//! A document is *converged* when no message of ours is awaiting an answer
//! and our heads equal the heads the hub last announced for it; it is
//! *refused* when the hub refused it (or sent us something unusable for
//! it). A one-shot session ends when every document it touched is one or
//! the other.
//!
//! A refusal never freezes a document in a serving session: the hub's
//! pushes for it are still received and stored, and our side starts over
//! (a fresh sync state) after a delay that doubles from [`RETRY_MIN`] up to
//! [`RETRY_MAX`], so a refusal that no longer holds heals by itself and one
//! that does costs one message per delay. Every refusal is in the report and
//! the log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use automerge::{AutoCommit, Automerge, ChangeHash, ReadDoc};
use clps_model::docs::{DocId, SpaceId};
use clps_model::sync::{DocPeer, Effect, accept_all, digest_by_space};
use clps_proto::pb;
use clps_proto::pb::client_message::Kind as ClientKind;
use clps_proto::pb::server_message::Kind as ServerKind;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::transport::{self, WireCounters};
use super::{DocFailure, DocStore, LinkConfig, LinkError, LinkStatus, SpaceStatus, SyncReport};

/// How often a serving link asks the store whether anything was committed.
const WATCH: std::time::Duration = std::time::Duration::from_millis(10);

/// First delay before a refused document is synced again from scratch.
pub const RETRY_MIN: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest delay between two attempts for a document the hub keeps refusing.
pub const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Once,
    Serve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocState {
    Fetching,
    Syncing,
    Converged,
    /// The hub refused our last message (or sent one we could not use):
    /// hub pushes are still taken, ours wait for the retry.
    Refused,
}

struct NodeDoc {
    doc: Automerge,
    peer: DocPeer,
    hub_heads: Option<Vec<ChangeHash>>,
    state: DocState,
    /// A message of ours awaits the hub's answer.
    outstanding: bool,
    /// Refusals in a row, for the retry delay.
    refusals: u32,
}

impl NodeDoc {
    fn new(doc: Automerge, peer: DocPeer, state: DocState, outstanding: bool) -> NodeDoc {
        NodeDoc {
            doc,
            peer,
            hub_heads: None,
            state,
            outstanding,
            refusals: 0,
        }
    }
}

/// The delay before the `n`-th retry in a row (n ≥ 1).
fn retry_delay(n: u32) -> std::time::Duration {
    RETRY_MIN
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

fn heads_from_pb(heads: &[Vec<u8>]) -> Result<Vec<ChangeHash>, LinkError> {
    heads
        .iter()
        .map(|h| {
            ChangeHash::try_from(h.as_slice())
                .map_err(|_| LinkError::Protocol("a head is not a 32-byte hash".to_owned()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(sorted)
}

fn parse_doc_id(s: &str) -> Result<DocId, LinkError> {
    DocId::parse(s).map_err(|e| LinkError::Protocol(format!("document id « {s} »: {e}")))
}

struct Engine<'a, S> {
    store: &'a S,
    tx: mpsc::Sender<pb::ClientMessage>,
    docs: BTreeMap<DocId, NodeDoc>,
    pending: HashMap<DocId, Vec<ChangeHash>>,
    report: SyncReport,
    docs_down: BTreeSet<DocId>,
    docs_up: BTreeSet<DocId>,
    welcomed: bool,
    /// Our heads as the Hello described them: what an `in_sync` answer
    /// vouches for.
    hello_heads: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Heads the hub is known to hold (from the Welcome) for documents not
    /// yet synced in this session: their first message carries our new
    /// changes at once instead of first discovering the hub's heads.
    hub_known: HashMap<DocId, Vec<ChangeHash>>,
    /// Refused documents and when to try them again (serve mode).
    retry: BTreeMap<DocId, tokio::time::Instant>,
    mode: Mode,
}

async fn hello_message(
    config: &LinkConfig,
    store: &impl DocStore,
) -> Result<pb::ClientMessage, LinkError> {
    hello_with_heads(config, store).await.map(|(m, _)| m)
}

async fn hello_with_heads(
    config: &LinkConfig,
    store: &impl DocStore,
) -> Result<(pb::ClientMessage, BTreeMap<DocId, Vec<ChangeHash>>), LinkError> {
    let local = store.list_docs().await.map_err(LinkError::store)?;
    let spaces = digest_by_space(local.iter().map(|(d, h)| (d, h.as_slice())))
        .into_iter()
        .map(|s| pb::SpaceDigest {
            space: s.space.to_string(),
            digest: s.digest.to_vec(),
            n_docs: u32::try_from(s.n_docs).unwrap_or(u32::MAX),
        })
        .collect();
    let heads = local.into_iter().map(|(d, h)| (d, sorted(h))).collect();
    Ok((
        pb::ClientMessage {
            kind: Some(ClientKind::Hello(pb::Hello {
                spaces,
                client: config.client_name.clone(),
            })),
        },
        heads,
    ))
}

/// A message from the hub; a snapshot comes already loaded.
struct Ahead {
    message: pb::ServerMessage,
    loaded: Option<AutoCommit>,
}

/// Aborts the read-ahead task when the session ends.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the hub's stream one message ahead of the engine and loads each
/// snapshot on a blocking thread: during a bootstrap the next document is
/// loaded (Automerge, one core) while the engine stores the previous one
/// (projection and full-text index, the store's thread). Order is kept.
fn read_ahead(
    mut inbound: tonic::Streaming<pb::ServerMessage>,
) -> (mpsc::Receiver<Result<Ahead, tonic::Status>>, Reader) {
    let (tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        loop {
            let ahead = match inbound.message().await {
                Ok(Some(message)) => match &message.kind {
                    Some(ServerKind::Snapshot(snapshot)) => {
                        let bytes = snapshot.document.clone();
                        let loaded =
                            tokio::task::spawn_blocking(move || AutoCommit::load(&bytes).ok())
                                .await
                                .ok()
                                .flatten();
                        Ok(Ahead { message, loaded })
                    }
                    _ => Ok(Ahead {
                        message,
                        loaded: None,
                    }),
                },
                Ok(None) => break,
                Err(status) => Err(status),
            };
            let failed = ahead.is_err();
            if tx.send(ahead).await.is_err() || failed {
                break;
            }
        }
    });
    (rx, Reader(task))
}

/// Runs one session to its end. `welcomed` is called once, when the hub's
/// Welcome has arrived: the session is established (the reconnect backoff
/// starts over from there).
pub async fn run_session(
    config: &LinkConfig,
    store: &impl DocStore,
    mode: Mode,
    mut welcomed: impl FnMut(),
) -> Result<SyncReport, LinkError> {
    let counters = Arc::new(WireCounters::default());
    let mut client = transport::connect(config, counters.clone()).await?;
    let (tx, rx) = mpsc::channel(64);
    let mut engine = Engine {
        store,
        tx,
        docs: BTreeMap::new(),
        pending: HashMap::new(),
        report: SyncReport::default(),
        docs_down: BTreeSet::new(),
        docs_up: BTreeSet::new(),
        welcomed: false,
        hello_heads: BTreeMap::new(),
        hub_known: HashMap::new(),
        retry: BTreeMap::new(),
        mode,
    };
    let (hello, hello_heads) = hello_with_heads(config, store).await?;
    engine.hello_heads = hello_heads;
    engine.send(hello).await?;
    let inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    let (mut inbound, _reader) = read_ahead(inbound);
    let mut poll = tokio::time::interval(config.local_poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Serve mode looks at the store's data version every WATCH and lists
    // the documents only when it moved: a local edit leaves within
    // milliseconds without polling the whole list.
    let mut watch = tokio::time::interval(WATCH);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_version = store.data_version().await.map_err(LinkError::store)?;
    let mut reported = false;
    loop {
        if engine.welcomed && engine.all_done() {
            if mode == Mode::Once {
                break;
            }
            if !reported {
                reported = true;
                engine.finish_report(&counters);
                let refused = engine.refused();
                if refused.is_empty() {
                    tracing::info!(report = ?engine.report, "converged with the hub");
                } else {
                    tracing::warn!(
                        report = ?engine.report,
                        refused = ?refused,
                        "converged with the hub except for refused documents (retried later)"
                    );
                }
                store
                    .sync_finished(&engine.report)
                    .await
                    .map_err(LinkError::store)?;
            }
        } else {
            reported = false;
        }
        let was_welcomed = engine.welcomed;
        tokio::select! {
            message = inbound.recv() => match message {
                Some(Ok(ahead)) => {
                    engine.on_message(ahead.message, ahead.loaded).await?;
                    if engine.welcomed && !was_welcomed {
                        welcomed();
                    }
                }
                Some(Err(status)) => return Err(status.into()),
                None if mode == Mode::Once => return Err(LinkError::Closed),
                None => break,
            },
            _ = poll.tick(), if mode == Mode::Serve && engine.welcomed => engine.poll_local().await?,
            _ = watch.tick(), if mode == Mode::Serve && engine.welcomed => {
                let version = store.data_version().await.map_err(LinkError::store)?;
                if version != seen_version {
                    seen_version = version;
                    engine.poll_local().await?;
                }
                engine.retry_due().await?;
            }
        }
    }
    engine.finish_report(&counters);
    Ok(engine.report)
}

pub async fn status(config: &LinkConfig, store: &impl DocStore) -> Result<LinkStatus, LinkError> {
    let counters = Arc::new(WireCounters::default());
    let mut client = transport::connect(config, counters).await?;
    let (tx, rx) = mpsc::channel(1);
    tx.send(hello_message(config, store).await?)
        .await
        .map_err(|_| LinkError::Closed)?;
    let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    let welcome = match inbound.message().await? {
        Some(pb::ServerMessage {
            kind: Some(ServerKind::Welcome(welcome)),
        }) => welcome,
        Some(_) => return Err(LinkError::Protocol("expected a Welcome".to_owned())),
        None => return Err(LinkError::Closed),
    };
    drop(tx);
    let mut spaces = Vec::new();
    for s in welcome.spaces {
        let space = SpaceId::parse(&s.space).map_err(|e| LinkError::Protocol(e.to_string()))?;
        spaces.push(SpaceStatus {
            space,
            can_write: s.role == pb::Role::Write as i32,
            heads_match: s.in_sync,
        });
    }
    let mut pending = BTreeMap::new();
    for (doc_id, _) in store.pending_changes().await.map_err(LinkError::store)? {
        *pending.entry(doc_id).or_insert(0) += 1;
    }
    Ok(LinkStatus {
        identity: welcome.identity,
        spaces,
        pending,
        checked_at: std::time::SystemTime::now(),
    })
}

/// The hub's copy of one document (`None` if the hub has none), for a node
/// that rebuilds a blocked document from it.
pub async fn fetch_hub_copy(
    config: &LinkConfig,
    doc_id: &DocId,
) -> Result<Option<Vec<u8>>, LinkError> {
    let counters = Arc::new(WireCounters::default());
    let mut client = transport::connect(config, counters).await?;
    let (tx, rx) = mpsc::channel(4);
    let send = |kind| pb::ClientMessage { kind: Some(kind) };
    tx.send(send(ClientKind::Hello(pb::Hello {
        spaces: Vec::new(),
        client: config.client_name.clone(),
    })))
    .await
    .map_err(|_| LinkError::Closed)?;
    let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    tx.send(send(ClientKind::Fetch(pb::Fetch {
        doc_ids: vec![doc_id.to_string()],
    })))
    .await
    .map_err(|_| LinkError::Closed)?;
    loop {
        match inbound.message().await? {
            Some(pb::ServerMessage {
                kind: Some(ServerKind::Snapshot(snapshot)),
            }) if snapshot.doc_id == doc_id.to_string() => return Ok(Some(snapshot.document)),
            Some(pb::ServerMessage {
                kind: Some(ServerKind::Error(error)),
            }) if error.doc_id == doc_id.to_string() => {
                return match tonic::Code::from_i32(error.code) {
                    tonic::Code::NotFound => Ok(None),
                    _ => Err(LinkError::Protocol(format!(
                        "le hub refuse de fournir {doc_id} : {}",
                        error.message
                    ))),
                };
            }
            Some(_) => continue,
            None => return Err(LinkError::Closed),
        }
    }
}

impl<S: DocStore> Engine<'_, S> {
    async fn send(&mut self, message: pb::ClientMessage) -> Result<(), LinkError> {
        self.report.messages_up += 1;
        self.report.payload_bytes_up += u64::try_from(message.encoded_len()).unwrap_or(0);
        self.tx.send(message).await.map_err(|_| LinkError::Closed)
    }

    async fn send_sync(&mut self, doc_id: &DocId, message: Vec<u8>) -> Result<(), LinkError> {
        self.send(pb::ClientMessage {
            kind: Some(ClientKind::Sync(pb::DocSync {
                doc_id: doc_id.to_string(),
                message,
            })),
        })
        .await
    }

    fn all_done(&self) -> bool {
        self.docs
            .values()
            .all(|d| matches!(d.state, DocState::Converged | DocState::Refused))
    }

    /// Documents refused in this session and not yet accepted since.
    fn refused(&self) -> Vec<String> {
        self.docs
            .iter()
            .filter(|(_, d)| d.state == DocState::Refused)
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// Marks a document refused: our side stops speaking until the retry.
    fn refuse(&mut self, doc_id: &DocId) {
        if let Some(nd) = self.docs.get_mut(doc_id) {
            nd.state = DocState::Refused;
            nd.outstanding = false;
            nd.peer.reset();
            nd.refusals = nd.refusals.saturating_add(1);
            if self.mode == Mode::Serve {
                let delay = retry_delay(nd.refusals);
                tracing::info!(doc = %doc_id, retry_in = ?delay, "document will be synced again");
                self.retry
                    .insert(doc_id.clone(), tokio::time::Instant::now() + delay);
            }
        }
    }

    /// Starts over, from a fresh sync state, every refused document whose
    /// delay has passed.
    async fn retry_due(&mut self) -> Result<(), LinkError> {
        let now = tokio::time::Instant::now();
        let due: Vec<DocId> = self
            .retry
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(d, _)| d.clone())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        self.refresh_pending().await?;
        for doc_id in due {
            self.retry.remove(&doc_id);
            let Some(nd) = self.docs.get_mut(&doc_id) else {
                continue;
            };
            if nd.state != DocState::Refused {
                continue;
            }
            let mut loaded = self
                .store
                .load_doc(&doc_id)
                .await
                .map_err(LinkError::store)?
                .unwrap_or_default();
            nd.doc.merge(&mut loaded).map_err(LinkError::store)?;
            nd.peer = DocPeer::new();
            nd.state = DocState::Syncing;
            let message = nd.peer.generate(&nd.doc);
            nd.outstanding = message.is_some();
            if let Some(message) = message {
                self.send_sync(&doc_id, message).await?;
            }
        }
        Ok(())
    }

    fn finish_report(&mut self, counters: &WireCounters) {
        self.report.docs_down = self.docs_down.len();
        self.report.docs_up = self.docs_up.len();
        self.report.wire_bytes_up = counters.up.load(Ordering::Relaxed);
        self.report.wire_bytes_down = counters.down.load(Ordering::Relaxed);
    }

    async fn load_local(&self, doc_id: &DocId) -> Result<Automerge, LinkError> {
        Ok(self
            .store
            .load_doc(doc_id)
            .await
            .map_err(LinkError::store)?
            .unwrap_or_default())
    }

    async fn refresh_pending(&mut self) -> Result<(), LinkError> {
        self.pending.clear();
        for (doc_id, hash) in self
            .store
            .pending_changes()
            .await
            .map_err(LinkError::store)?
        {
            self.pending.entry(doc_id).or_default().push(hash);
        }
        Ok(())
    }

    /// The hub holds everything we have of `doc_id`: our pending changes to
    /// it are acknowledged.
    async fn acknowledge(&mut self, doc_id: &DocId) -> Result<(), LinkError> {
        if let Some(hashes) = self.pending.remove(doc_id)
            && !hashes.is_empty()
        {
            self.store
                .acknowledge(doc_id, &hashes)
                .await
                .map_err(LinkError::store)?;
            self.report.changes_up += hashes.len();
            self.docs_up.insert(doc_id.clone());
        }
        Ok(())
    }

    /// A sync state for a document this session has not synced yet.
    fn first_peer(&mut self, doc_id: &DocId, doc: &Automerge) -> DocPeer {
        match self.hub_known.remove(doc_id) {
            Some(heads) if heads.iter().all(|h| doc.get_change_by_hash(h).is_some()) => {
                DocPeer::peer_has(heads)
            }
            _ => DocPeer::new(),
        }
    }

    async fn start_sync(&mut self, doc_id: &DocId) -> Result<(), LinkError> {
        let doc = self.load_local(doc_id).await?;
        let mut peer = self.first_peer(doc_id, &doc);
        let message = peer.generate(&doc);
        let outstanding = message.is_some();
        self.docs.insert(
            doc_id.clone(),
            NodeDoc::new(doc, peer, DocState::Syncing, outstanding),
        );
        if let Some(message) = message {
            self.send_sync(doc_id, message).await?;
        }
        Ok(())
    }

    async fn check_converged(&mut self, doc_id: &DocId) -> Result<(), LinkError> {
        let Some(nd) = self.docs.get_mut(doc_id) else {
            return Ok(());
        };
        let converged = nd.state == DocState::Syncing
            && !nd.outstanding
            && nd.hub_heads.as_ref() == Some(&sorted(nd.doc.get_heads()));
        if converged {
            nd.state = DocState::Converged;
            nd.refusals = 0;
            // Refused earlier in this session, accepted since.
            let id = doc_id.to_string();
            self.report.failures.retain(|f| f.doc_id != id);
            self.acknowledge(doc_id).await?;
        }
        Ok(())
    }

    async fn on_message(
        &mut self,
        message: pb::ServerMessage,
        loaded: Option<AutoCommit>,
    ) -> Result<(), LinkError> {
        self.report.messages_down += 1;
        self.report.payload_bytes_down += u64::try_from(message.encoded_len()).unwrap_or(0);
        match message.kind {
            Some(ServerKind::Welcome(welcome)) => self.on_welcome(welcome).await,
            Some(ServerKind::Sync(sync)) => self.on_sync(sync).await,
            Some(ServerKind::Snapshot(snapshot)) => self.on_snapshot(snapshot, loaded).await,
            Some(ServerKind::Idle(idle)) => self.on_idle(idle).await,
            Some(ServerKind::Error(error)) => {
                self.on_error(error);
                Ok(())
            }
            None => Err(LinkError::Protocol("empty message".to_owned())),
        }
    }

    async fn on_welcome(&mut self, welcome: pb::Welcome) -> Result<(), LinkError> {
        self.report.identity = welcome.identity;
        self.refresh_pending().await?;
        let local: BTreeMap<DocId, Vec<ChangeHash>> = self
            .store
            .list_docs()
            .await
            .map_err(LinkError::store)?
            .into_iter()
            .map(|(d, h)| (d, sorted(h)))
            .collect();
        let mut member = BTreeSet::new();
        let mut fetch = Vec::new();
        let mut to_sync = Vec::new();
        let mut in_sync_docs = Vec::new();
        for space_state in welcome.spaces {
            let space = SpaceId::parse(&space_state.space)
                .map_err(|e| LinkError::Protocol(e.to_string()))?;
            self.report.spaces_checked += 1;
            let local_in_space = local.iter().filter(|(d, _)| d.space() == space);
            if space_state.in_sync {
                self.report.spaces_in_sync += 1;
                // The hub vouched for the heads of our Hello. A document
                // written locally since then holds changes it has not seen:
                // sync it rather than acknowledge its pending changes.
                for (d, h) in local_in_space {
                    if let Some(vouched) = self.hello_heads.get(d) {
                        self.hub_known.insert(d.clone(), vouched.clone());
                    }
                    if self.hello_heads.get(d) == Some(h) {
                        in_sync_docs.push(d.clone());
                    } else {
                        to_sync.push(d.clone());
                    }
                }
                member.insert(space);
                continue;
            }
            let mut hub_docs = BTreeMap::new();
            for dh in &space_state.docs {
                hub_docs.insert(parse_doc_id(&dh.doc_id)?, heads_from_pb(&dh.heads)?);
            }
            self.hub_known
                .extend(hub_docs.iter().map(|(d, h)| (d.clone(), h.clone())));
            for (doc_id, hub_heads) in &hub_docs {
                match local.get(doc_id) {
                    None => fetch.push(doc_id.clone()),
                    Some(ours) if ours == hub_heads => in_sync_docs.push(doc_id.clone()),
                    Some(_) => to_sync.push(doc_id.clone()),
                }
            }
            to_sync.extend(
                local_in_space
                    .filter(|(d, h)| !h.is_empty() && !hub_docs.contains_key(*d))
                    .map(|(d, _)| d.clone()),
            );
            member.insert(space);
        }
        // Documents of spaces we are not a member of: ask anyway, so that
        // the refusal shows in the report instead of a silent skip.
        to_sync.extend(
            local
                .iter()
                .filter(|(d, h)| !h.is_empty() && !member.contains(&d.space()))
                .map(|(d, _)| d.clone()),
        );
        self.welcomed = true;
        for doc_id in in_sync_docs {
            self.acknowledge(&doc_id).await?;
        }
        for doc_id in &to_sync {
            self.start_sync(doc_id).await?;
        }
        if !fetch.is_empty() {
            for doc_id in &fetch {
                self.docs.insert(
                    doc_id.clone(),
                    NodeDoc::new(Automerge::new(), DocPeer::new(), DocState::Fetching, true),
                );
            }
            self.send(pb::ClientMessage {
                kind: Some(ClientKind::Fetch(pb::Fetch {
                    doc_ids: fetch.iter().map(ToString::to_string).collect(),
                })),
            })
            .await?;
        }
        Ok(())
    }

    async fn on_sync(&mut self, sync: pb::DocSync) -> Result<(), LinkError> {
        let doc_id = parse_doc_id(&sync.doc_id)?;
        if !self.docs.contains_key(&doc_id) {
            // A push for a document this session has not touched yet.
            let doc = self.load_local(&doc_id).await?;
            let peer = self.first_peer(&doc_id, &doc);
            self.docs.insert(
                doc_id.clone(),
                NodeDoc::new(doc, peer, DocState::Syncing, false),
            );
        }
        let Some(nd) = self.docs.get_mut(&doc_id) else {
            return Ok(());
        };
        // A refused document still takes what the hub pushes; our answer
        // waits for the retry.
        let refused = nd.state == DocState::Refused;
        if !refused {
            nd.state = DocState::Syncing;
        }
        let effects = match nd.peer.receive(&mut nd.doc, &sync.message, &mut accept_all) {
            Ok(effects) => effects,
            Err(e) => {
                tracing::warn!(doc = %doc_id, error = %e, "hub sent an unusable sync message");
                self.report.failures.push(DocFailure {
                    doc_id: doc_id.to_string(),
                    code: tonic::Code::Internal,
                    message: format!("message du hub inutilisable : {e}"),
                });
                self.refuse(&doc_id);
                return Ok(());
            }
        };
        nd.hub_heads = nd.peer.their_heads().map(|h| sorted(h.to_vec()));
        let mut outgoing = None;
        for effect in effects {
            match effect {
                Effect::Persist(persist) => {
                    self.store
                        .persist_received(&doc_id, &persist.bytes)
                        .await
                        .map_err(LinkError::store)?;
                    self.report.changes_down += persist.n_changes;
                    self.docs_down.insert(doc_id.clone());
                }
                Effect::Send(bytes) if !refused => outgoing = Some(bytes),
                Effect::Send(_) | Effect::Idle { .. } => {}
            }
        }
        if refused {
            // Our reply was not sent: the next attempt starts afresh.
            if let Some(nd) = self.docs.get_mut(&doc_id) {
                nd.peer.reset();
            }
            return Ok(());
        }
        if let Some(nd) = self.docs.get_mut(&doc_id) {
            nd.outstanding = outgoing.is_some();
        }
        if let Some(bytes) = outgoing {
            self.send_sync(&doc_id, bytes).await?;
        }
        self.check_converged(&doc_id).await
    }

    async fn on_snapshot(
        &mut self,
        snapshot: pb::Snapshot,
        loaded: Option<AutoCommit>,
    ) -> Result<(), LinkError> {
        let doc_id = parse_doc_id(&snapshot.doc_id)?;
        let hub_heads = heads_from_pb(&snapshot.heads)?;
        let before = self.load_local(&doc_id).await?.stats().num_changes;
        // The store loads the snapshot once and keeps the loaded copy; local
        // edits made while it was on its way are merged, never replaced.
        if let Err(e) = self
            .store
            .persist_snapshot(&doc_id, snapshot.document, loaded)
            .await
        {
            if !S::is_unreadable(&e) {
                return Err(LinkError::store(e));
            }
            self.report.failures.push(DocFailure {
                doc_id: doc_id.to_string(),
                code: tonic::Code::Internal,
                message: format!("instantané illisible : {e}"),
            });
            self.refuse(&doc_id);
            return Ok(());
        }
        let doc = self.load_local(&doc_id).await?;
        self.report.snapshots_down += 1;
        // Counted from the change graph: listing the changes would encode
        // each of them again (100 ms for a bucket of 800 records).
        let received = doc.stats().num_changes.saturating_sub(before);
        self.report.changes_down += usize::try_from(received).unwrap_or(usize::MAX);
        self.docs_down.insert(doc_id.clone());
        let mut peer = DocPeer::peer_has(hub_heads.clone());
        let message = if sorted(doc.get_heads()) == hub_heads {
            None
        } else {
            peer.generate(&doc)
        };
        let mut nd = NodeDoc::new(doc, peer, DocState::Syncing, message.is_some());
        nd.hub_heads = Some(hub_heads);
        self.docs.insert(doc_id.clone(), nd);
        if let Some(message) = message {
            self.send_sync(&doc_id, message).await?;
        }
        self.check_converged(&doc_id).await
    }

    async fn on_idle(&mut self, idle: pb::DocIdle) -> Result<(), LinkError> {
        let doc_id = parse_doc_id(&idle.doc_id)?;
        let heads = heads_from_pb(&idle.heads)?;
        let Some(nd) = self.docs.get_mut(&doc_id) else {
            return Ok(());
        };
        if nd.state == DocState::Refused {
            return Ok(());
        }
        nd.hub_heads = Some(heads.clone());
        nd.outstanding = false;
        let message = if sorted(nd.doc.get_heads()) == heads {
            None
        } else {
            // The hub thinks we agree but we do not (a change crossed our
            // message): speak again.
            nd.peer.peer_answered(heads);
            nd.peer.generate(&nd.doc)
        };
        if let Some(message) = message {
            nd.outstanding = true;
            self.send_sync(&doc_id, message).await?;
        }
        self.check_converged(&doc_id).await
    }

    fn on_error(&mut self, error: pb::DocError) {
        let code = tonic::Code::from_i32(error.code);
        tracing::warn!(doc = %error.doc_id, ?code, message = %error.message, "hub refused a document");
        if let Ok(doc_id) = DocId::parse(&error.doc_id) {
            self.refuse(&doc_id);
        }
        // One entry per document: the latest refusal.
        self.report.failures.retain(|f| f.doc_id != error.doc_id);
        self.report.failures.push(DocFailure {
            doc_id: error.doc_id,
            code,
            message: error.message,
        });
    }

    /// Serve mode: pick up documents the node changed since we last looked.
    async fn poll_local(&mut self) -> Result<(), LinkError> {
        let local = self.store.list_docs().await.map_err(LinkError::store)?;
        let mut changed = Vec::new();
        for (doc_id, heads) in local {
            match self.docs.get(&doc_id) {
                Some(nd) if sorted(nd.doc.get_heads()) == sorted(heads.clone()) => {}
                // Sent again at its retry.
                Some(nd) if nd.state == DocState::Refused => {}
                _ if heads.is_empty() => {}
                // Not synced in this session, and still at heads the hub
                // holds (the Welcome said so): nothing to send, nothing to
                // load.
                None if self.hub_known.get(&doc_id).map(|h| sorted(h.clone()))
                    == Some(sorted(heads.clone())) => {}
                _ => changed.push(doc_id),
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.refresh_pending().await?;
        for doc_id in changed {
            let mut loaded = self.load_local(&doc_id).await?;
            match self.docs.get_mut(&doc_id) {
                Some(nd) => {
                    nd.doc.merge(&mut loaded).map_err(LinkError::store)?;
                    nd.state = DocState::Syncing;
                    if let Some(message) = nd.peer.generate(&nd.doc) {
                        nd.outstanding = true;
                        self.send_sync(&doc_id, message).await?;
                    }
                }
                None => self.start_sync(&doc_id).await?,
            }
        }
        Ok(())
    }
}
