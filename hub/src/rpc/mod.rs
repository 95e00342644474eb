//! The gRPC edge of the hub: the `clps.sync.v1.Sync` service. This is the
//! only module (with its children) that sees protobuf types; it converts
//! them to domain types (`DocId`, `SpaceId`, `Identity`) on the way in and
//! back on the way out, and maps errors to gRPC in `status` only.

mod session;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clps_proto::pb;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::access::{Access, Role};
use crate::config::Limits;
use crate::docs::Docs;
use crate::identity::Identity;
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
    next_session: AtomicU64,
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
            next_session: AtomicU64::new(1),
        }
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
    type SessionStream = ReceiverStream<Result<pb::ServerMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<pb::ClientMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let identity = identity_of(&request)?;
        let (tx, rx) = mpsc::channel(self.ctx.limits.session_buffer.max(1));
        let id = self.ctx.next_session.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(session::run(
            self.ctx.clone(),
            id,
            identity,
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
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
