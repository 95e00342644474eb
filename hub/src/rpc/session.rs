//! One sync session: the task that serves one node's `Session` stream.
//!
//! The task reads the Hello, answers with a Welcome (per member space: in
//! sync, or the hub's heads of every document), subscribes to the change
//! broadcast of each member space, then loops over three event sources:
//! client messages, broadcasts from other sessions, and hub shutdown. For
//! every document it keeps a `DocPeer` (the sans-IO sync core); the effects
//! it returns are carried out in order, so a change is committed to SQLite
//! before the reply that acknowledges it is queued.
//!
//! Outgoing messages go through a bounded channel; a client that stops
//! reading for `send_timeout` ends its own session and nobody else's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use automerge::ChangeHash;
use clps_model::docs::{DocId, SpaceId};
use clps_model::sync::{DocPeer, Effect, space_digest};
use clps_proto::pb;
use clps_proto::pb::client_message::Kind as ClientKind;
use clps_proto::pb::server_message::Kind as ServerKind;
use prost::Message as _;
use tokio_stream::StreamExt;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tonic::{Status, Streaming};

use super::outbound::Sent;
use super::status::{DocRefusal, SessionError};
use super::{RpcContext, role_to_pb};
use crate::access::Role;
use crate::docs::DocChanged;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::validate;

type Out = super::outbound::Outbox;

struct Session {
    ctx: Arc<RpcContext>,
    id: u64,
    identity: Identity,
    out: Out,
    roles: BTreeMap<SpaceId, Role>,
    peers: HashMap<DocId, DocPeer>,
    /// Heads the client is known to hold, from a space found in sync at
    /// the Hello: a push to such a document sends the new changes at once
    /// instead of first discovering the client's heads.
    client_heads: HashMap<DocId, Vec<ChangeHash>>,
}

fn heads_to_pb(heads: &[ChangeHash]) -> Vec<Vec<u8>> {
    heads.iter().map(|h| h.0.to_vec()).collect()
}

fn server(kind: ServerKind) -> pb::ServerMessage {
    pb::ServerMessage { kind: Some(kind) }
}

pub(super) async fn run(
    ctx: Arc<RpcContext>,
    id: u64,
    identity: Identity,
    inbound: Streaming<pb::ClientMessage>,
    out: Out,
) {
    let metrics = ctx.metrics.clone();
    Metrics::add(&metrics.sessions_total, 1);
    Metrics::add(&metrics.sessions_active, 1);
    let started = Instant::now();
    let roles = ctx.access.visible(&identity).into_iter().collect();
    let mut session = Session {
        ctx,
        id,
        identity: identity.clone(),
        out: out.clone(),
        roles,
        peers: HashMap::new(),
        client_heads: HashMap::new(),
    };
    tracing::info!(session = id, %identity, "session opened");
    match session.drive(inbound).await {
        Ok(()) => tracing::info!(
            session = id,
            %identity,
            secs = started.elapsed().as_secs_f64(),
            "session closed"
        ),
        Err(e) => {
            tracing::warn!(session = id, %identity, error = %e, "session ended with an error");
            // Ahead of anything still queued: a stalled client learns why.
            out.fail(Status::from(e));
        }
    }
    metrics
        .sessions_active
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

impl Session {
    async fn drive(
        &mut self,
        mut inbound: Streaming<pb::ClientMessage>,
    ) -> Result<(), SessionError> {
        let hello_timeout = self.ctx.limits.hello_timeout();
        let first = tokio::time::timeout(hello_timeout, inbound.message())
            .await
            .map_err(|_| SessionError::HelloTimeout(hello_timeout.as_secs()))?
            .map_err(SessionError::Stream)?;
        let hello = match first {
            None => return Ok(()),
            Some(message) => {
                self.count_in(&message);
                match message.kind {
                    Some(ClientKind::Hello(hello)) => hello,
                    _ => return Err(SessionError::NoHello),
                }
            }
        };
        let mut subscriptions = StreamMap::new();
        for space in self.roles.keys() {
            subscriptions.insert(
                space.clone(),
                BroadcastStream::new(self.ctx.docs.subscribe(space)),
            );
        }
        let welcome = self.welcome(&hello);
        self.send(server(ServerKind::Welcome(welcome))).await?;

        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            tokio::select! {
                _ = crate::server::stopped(&mut shutdown) => return Err(SessionError::ShuttingDown),
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        self.count_in(&message);
                        self.handle(message).await?;
                    }
                    Ok(None) => return Ok(()),
                    Err(status) => return Err(SessionError::Stream(status)),
                },
                Some((space, notice)) = subscriptions.next() => self.on_notice(&space, notice).await?,
            }
        }
    }

    fn count_in(&self, message: &pb::ClientMessage) {
        let n = u64::try_from(message.encoded_len()).unwrap_or(0);
        Metrics::add(&self.ctx.metrics.payload_bytes_in, n);
        if let Some(tap) = &self.ctx.tap {
            let _ = tap.send((self.identity.clone(), message.encode_to_vec()));
        }
    }

    async fn send(&self, message: pb::ServerMessage) -> Result<(), SessionError> {
        let size = message.encoded_len();
        match self
            .out
            .send(message, size, self.ctx.limits.send_timeout())
            .await
        {
            Sent::Queued => {
                Metrics::add(
                    &self.ctx.metrics.payload_bytes_out,
                    u64::try_from(size).unwrap_or(0),
                );
                Ok(())
            }
            // The client hung up: its stream is gone, nothing more to say.
            Sent::Gone => Ok(()),
            Sent::Stalled => Err(SessionError::Stalled),
        }
    }

    fn welcome(&mut self, hello: &pb::Hello) -> pb::Welcome {
        let theirs: HashMap<SpaceId, &[u8]> = hello
            .spaces
            .iter()
            .filter_map(|s| Some((SpaceId::parse(&s.space).ok()?, s.digest.as_slice())))
            .collect();
        let empty = space_digest([]);
        let mut known = Vec::new();
        let spaces: Vec<pb::SpaceState> = self
            .roles
            .iter()
            .map(|(space, role)| {
                let docs = self.ctx.docs.space_heads(space);
                let ours = space_digest(docs.iter().map(|(d, h)| (d, h.as_slice())));
                let their = theirs.get(space).copied().unwrap_or(&empty);
                let in_sync = their == ours.as_slice();
                if in_sync {
                    known.extend(docs.iter().cloned());
                }
                pb::SpaceState {
                    space: space.to_string(),
                    role: role_to_pb(*role) as i32,
                    in_sync,
                    docs: if in_sync {
                        Vec::new()
                    } else {
                        docs.iter()
                            .map(|(d, h)| pb::DocHeads {
                                doc_id: d.to_string(),
                                heads: heads_to_pb(h),
                            })
                            .collect()
                    },
                }
            })
            .collect();
        self.client_heads.extend(known);
        pb::Welcome {
            identity: self.identity.to_string(),
            spaces,
        }
    }

    async fn handle(&mut self, message: pb::ClientMessage) -> Result<(), SessionError> {
        match message.kind {
            Some(ClientKind::Sync(sync)) => {
                let started = Instant::now();
                let result = self.sync_doc(&sync.doc_id, &sync.message).await;
                self.ctx.metrics.observe_sync(started.elapsed());
                match result {
                    Ok(replies) => {
                        for reply in replies {
                            self.send(reply).await?;
                        }
                        Ok(())
                    }
                    Err(refusal) => self.refuse(&sync.doc_id, refusal).await,
                }
            }
            Some(ClientKind::Fetch(fetch)) => {
                // Each document once, however often it is named.
                let mut seen = std::collections::HashSet::new();
                for doc_id in fetch.doc_ids.iter().filter(|d| seen.insert(d.as_str())) {
                    match self.snapshot(doc_id).await {
                        Ok(reply) => self.send(reply).await?,
                        Err(refusal) => self.refuse(doc_id, refusal).await?,
                    }
                }
                Ok(())
            }
            // A second Hello is harmless: answer it as the first.
            Some(ClientKind::Hello(hello)) => {
                let welcome = self.welcome(&hello);
                self.send(server(ServerKind::Welcome(welcome))).await
            }
            None => Err(SessionError::Empty),
        }
    }

    fn role(&self, doc_id: &DocId) -> Result<Role, DocRefusal> {
        self.roles
            .get(&doc_id.space())
            .copied()
            .ok_or(DocRefusal::NoAccess)
    }

    async fn refuse(&self, doc_id: &str, refusal: DocRefusal) -> Result<(), SessionError> {
        // A valid id is short; an invalid one is echoed (reply, log, table)
        // by a prefix only.
        let shortened;
        let doc_id = if doc_id.len() > 128 {
            let mut end = 128;
            while !doc_id.is_char_boundary(end) {
                end -= 1;
            }
            shortened = format!("{}…", &doc_id[..end]);
            shortened.as_str()
        } else {
            doc_id
        };
        Metrics::add(&self.ctx.metrics.doc_errors, 1);
        if refusal.is_rejected_change() {
            Metrics::add(&self.ctx.metrics.changes_rejected, 1);
            self.ctx.docs.store().log_rejection(
                self.identity.to_string(),
                doc_id.to_owned(),
                refusal.to_string(),
            );
        }
        tracing::warn!(session = self.id, identity = %self.identity, doc = doc_id, error = %refusal, "document request refused");
        self.send(server(ServerKind::Error(refusal.to_pb(doc_id))))
            .await
    }

    /// Validates, merges and commits one sync message; returns the replies.
    async fn sync_doc(
        &mut self,
        doc_id: &str,
        message: &[u8],
    ) -> Result<Vec<pb::ServerMessage>, DocRefusal> {
        let doc_id = DocId::parse(doc_id)?;
        let role = self.role(&doc_id)?;
        let entry = self
            .ctx
            .docs
            .get(&doc_id, role == Role::Write)
            .await?
            .ok_or(DocRefusal::NotFound)?;
        let mut guard = entry.lock().await;
        let limit = self.ctx.limits.max_doc_bytes;
        let incoming = u64::try_from(message.len()).unwrap_or(u64::MAX);
        if guard.stored_bytes.saturating_add(incoming) > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(DocRefusal::TooLarge { limit });
        }
        // Changes held for their dependencies, by this session's other
        // documents: one session may not hold more than a document's worth.
        let held_elsewhere: usize = self
            .peers
            .iter()
            .filter(|(d, _)| **d != doc_id)
            .map(|(_, p)| p.held_bytes())
            .sum();
        let peer = self.peers.entry(doc_id.clone()).or_default();
        let held_before = peer.held_total();
        let mut gate = validate::Gate::new(&doc_id, &self.identity, role);
        let effects = match peer.receive(&mut guard.doc, message, &mut gate) {
            Ok(effects) => effects,
            Err(e) => {
                peer.reset();
                return Err(e.into());
            }
        };
        let held_now = peer.held_total().saturating_sub(held_before);
        if held_now > 0 {
            Metrics::add(&self.ctx.metrics.changes_held, held_now);
            tracing::debug!(
                session = self.id,
                doc = %doc_id,
                held = peer.held(),
                "changes held until their dependencies arrive"
            );
        }
        let mut replies = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(persist) => {
                    if let Err(e) = self
                        .ctx
                        .docs
                        .commit(&doc_id, &mut guard, &persist, self.id)
                        .await
                    {
                        // Memory is ahead of disk: roll memory back.
                        if let Err(reload) = self.ctx.docs.reload(&doc_id, &mut guard).await {
                            tracing::error!(doc = %doc_id, error = %reload, "reload after failed commit failed");
                        }
                        peer.reset();
                        return Err(e.into());
                    }
                    Metrics::add(
                        &self.ctx.metrics.changes_accepted,
                        u64::try_from(persist.n_changes).unwrap_or(0),
                    );
                    tracing::info!(
                        session = self.id,
                        identity = %self.identity,
                        doc = %doc_id,
                        changes = persist.n_changes,
                        bytes = persist.bytes.len(),
                        "changes stored"
                    );
                }
                Effect::Send(bytes) => replies.push(server(ServerKind::Sync(pb::DocSync {
                    doc_id: doc_id.to_string(),
                    message: bytes,
                }))),
                Effect::Idle { heads } => replies.push(server(ServerKind::Idle(pb::DocIdle {
                    doc_id: doc_id.to_string(),
                    heads: heads_to_pb(&heads),
                }))),
            }
        }
        // Checked once what was applied is stored: only the held changes
        // are dropped.
        if held_elsewhere.saturating_add(peer.held_bytes()) > limit {
            peer.reset();
            return Err(DocRefusal::TooMuchHeld { limit });
        }
        Ok(replies)
    }

    /// A whole document for a node that has none of it.
    async fn snapshot(&mut self, doc_id: &str) -> Result<pb::ServerMessage, DocRefusal> {
        let doc_id = DocId::parse(doc_id)?;
        self.role(&doc_id)?;
        let (bytes, heads) = match self.ctx.docs.stored_snapshot(&doc_id).await? {
            Some((bytes, heads)) => (Arc::new(bytes), heads),
            None => {
                let entry = self
                    .ctx
                    .docs
                    .get(&doc_id, false)
                    .await?
                    .ok_or(DocRefusal::NotFound)?;
                let mut guard = entry.lock().await;
                if !guard.exists() {
                    return Err(DocRefusal::NotFound);
                }
                (guard.snapshot(), guard.doc.get_heads())
            }
        };
        // Headroom for the envelope around the document bytes.
        let limit = self.ctx.limits.max_message_bytes.saturating_sub(64 * 1024);
        if bytes.len() > limit {
            return Err(DocRefusal::TooLarge { limit });
        }
        self.peers
            .insert(doc_id.clone(), DocPeer::peer_has(heads.clone()));
        Metrics::add(&self.ctx.metrics.snapshots_sent, 1);
        Ok(server(ServerKind::Snapshot(pb::Snapshot {
            doc_id: doc_id.to_string(),
            // A stored snapshot is ours alone: no copy of it.
            document: Arc::try_unwrap(bytes).unwrap_or_else(|shared| shared.as_ref().clone()),
            heads: heads_to_pb(&heads),
        })))
    }

    /// Another session stored changes: offer them to our client.
    async fn on_notice(
        &mut self,
        space: &SpaceId,
        notice: Result<DocChanged, BroadcastStreamRecvError>,
    ) -> Result<(), SessionError> {
        match notice {
            Ok(changed) if changed.origin == self.id => Ok(()),
            Ok(changed) => self.push(&changed.doc_id).await,
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                tracing::debug!(session = self.id, %space, missed = n, "lagged behind broadcasts");
                for (doc_id, _) in self.ctx.docs.space_heads(space) {
                    self.push(&doc_id).await?;
                }
                Ok(())
            }
        }
    }

    async fn push(&mut self, doc_id: &DocId) -> Result<(), SessionError> {
        let entry = match self.ctx.docs.get(doc_id, false).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::error!(doc = %doc_id, error = %e, "cannot load document to push");
                return Ok(());
            }
        };
        let message = {
            let guard = entry.lock().await;
            let known = &mut self.client_heads;
            self.peers
                .entry(doc_id.clone())
                .or_insert_with(|| {
                    known
                        .remove(doc_id)
                        .map(DocPeer::peer_has)
                        .unwrap_or_default()
                })
                .generate(&guard.doc)
        };
        match message {
            Some(bytes) => {
                self.send(server(ServerKind::Sync(pb::DocSync {
                    doc_id: doc_id.to_string(),
                    message: bytes,
                })))
                .await
            }
            None => Ok(()),
        }
    }
}
