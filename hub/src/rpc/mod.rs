//! The gRPC edge of the hub: the `clps.sync.v1.Sync` service. This is the
//! only module (with its children) that sees protobuf types; it converts
//! them to domain types (`DocId`, `SpaceId`, `Identity`) on the way in and
//! back on the way out, and maps errors to gRPC in `status` only.

mod outbound;
mod session;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clps_proto::pb;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use crate::access::{Access, Role};
use crate::config::Limits;
use crate::docs::Docs;
use crate::identity::{Identity, PerIdentity, Slot};
use crate::metrics::Metrics;
use crate::tls::ConnInfo;

pub use clps_proto::pb::sync_server::SyncServer;

/// What every session and handler shares.
pub struct RpcContext {
    pub docs: Docs,
    pub access: Access,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub shutdown: watch::Receiver<bool>,
    /// Receives a copy of every client message (tests; `None` in service).
    pub tap: Option<crate::server::PayloadTap>,
    next_session: AtomicU64,
    /// Open sessions per identity, for `limits.max_sessions_per_identity`.
    open_sessions: PerIdentity,
}

impl RpcContext {
    pub fn new(
        docs: Docs,
        access: Access,
        metrics: Arc<Metrics>,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> RpcContext {
        RpcContext {
            docs,
            access,
            metrics,
            limits,
            shutdown,
            tap: None,
            next_session: AtomicU64::new(1),
            open_sessions: PerIdentity::default(),
        }
    }

    /// Takes a session slot for `identity`, or `None` when it already holds
    /// `max_sessions_per_identity` sessions.
    fn session_slot(&self, identity: &Identity) -> Option<Slot> {
        self.open_sessions
            .take(identity, self.limits.max_sessions_per_identity)
    }
}

pub struct SyncService {
    ctx: Arc<RpcContext>,
}

impl SyncService {
    pub fn new(ctx: Arc<RpcContext>) -> SyncService {
        SyncService { ctx }
    }
}

fn identity_of<T>(request: &Request<T>) -> Result<Identity, Status> {
    request
        .extensions()
        .get::<ConnInfo>()
        .map(|info| info.identity.clone())
        .ok_or_else(status::unauthenticated)
}

pub(crate) fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Read => pb::Role::Read,
        Role::Write => pb::Role::Write,
    }
}

#[tonic::async_trait]
impl pb::sync_server::Sync for SyncService {
    type SessionStream = outbound::Outbound;

    async fn session(
        &self,
        request: Request<Streaming<pb::ClientMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let identity = identity_of(&request)?;
        let Some(slot) = self.ctx.session_slot(&identity) else {
            Metrics::add(&self.ctx.metrics.sessions_refused, 1);
            tracing::warn!(%identity, "too many sessions for one identity");
            return Err(status::too_many_sessions(
                self.ctx.limits.max_sessions_per_identity,
            ));
        };
        let (tx, rx) = outbound::channel(
            self.ctx.limits.session_buffer,
            self.ctx.limits.max_message_bytes,
        );
        let id = self.ctx.next_session.fetch_add(1, Ordering::Relaxed);
        let ctx = self.ctx.clone();
        let inbound = request.into_inner();
        tokio::spawn(async move {
            session::run(ctx, id, identity, inbound, tx).await;
            drop(slot);
        });
        Ok(Response::new(rx))
    }

    async fn list_spaces(
        &self,
        request: Request<pb::ListSpacesRequest>,
    ) -> Result<Response<pb::ListSpacesResponse>, Status> {
        let identity = identity_of(&request)?;
        let spaces = self
            .ctx
            .access
            .visible(&identity)
            .into_iter()
            .map(|(space, role)| pb::SpaceInfo {
                doc_ids: self
                    .ctx
                    .docs
                    .space_heads(&space)
                    .into_iter()
                    .map(|(d, _)| d.to_string())
                    .collect(),
                space: space.to_string(),
                role: role_to_pb(role) as i32,
            })
            .collect();
        tracing::debug!(%identity, "list spaces");
        Ok(Response::new(pb::ListSpacesResponse {
            identity: identity.to_string(),
            spaces,
        }))
    }
}
