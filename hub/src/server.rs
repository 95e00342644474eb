//! The hub's lifecycle: [`Hub::bind`] returns once both listeners are bound
//! (so `local_addr()` is known and tests can connect at once, with no sleep),
//! [`Hub::shutdown`] asks every task to stop, [`Hub::join`] waits for them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clps_proto::FILE_DESCRIPTOR_SET;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;

use crate::access::{Access, AccessError};
use crate::config::Config;
use crate::dashboard;
use crate::docs::{Docs, DocsError};
use crate::metrics::{self, Metrics};
use crate::rpc::{RpcContext, SyncServer, SyncService};
use crate::store::{Store, StoreError};
use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("configuration TLS impossible")]
    Tls(#[from] TlsError),
    #[error("ouverture de la base des documents impossible")]
    Store(#[from] StoreError),
    #[error("chargement des documents impossible")]
    Docs(#[from] DocsError),
    #[error("configuration des espaces invalide")]
    Access(#[from] AccessError),
    #[error("écoute impossible sur {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("service de réflexion gRPC impossible à construire")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("écriture du fichier d'adresse impossible")]
    AddressFile(#[source] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("le serveur gRPC s'est arrêté en erreur")]
    Grpc(#[from] tonic::transport::Error),
    #[error("le serveur de métriques s'est arrêté en erreur")]
    Metrics(#[source] std::io::Error),
    #[error("le tableau de bord s'est arrêté en erreur")]
    Dashboard(#[source] std::io::Error),
    #[error("une tâche du serveur a paniqué ou a été annulée")]
    Join(#[from] tokio::task::JoinError),
}

pub struct Hub {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    dashboard_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    metrics_task: Option<JoinHandle<std::io::Result<()>>>,
    dashboard_task: Option<JoinHandle<std::io::Result<()>>>,
}

/// A copy of every client message the hub receives, encoded, with the
/// identity that sent it (tests use it to check what leaves a node).
pub type PayloadTap = tokio::sync::mpsc::UnboundedSender<(crate::Identity, Vec<u8>)>;

impl Hub {
    /// Opens the store, binds the gRPC and metrics listeners and starts
    /// serving in the background.
    pub async fn bind(config: &Config) -> Result<Hub, BindError> {
        Hub::bind_with_tap(config, None).await
    }

    /// [`Hub::bind`], also sending every received client message to `tap`.
    pub async fn bind_with_tap(config: &Config, tap: Option<PayloadTap>) -> Result<Hub, BindError> {
        // gRPC runs over HTTP/2 only; grpcio clients insist on ALPN "h2".
        let tls_config = tls::server_config_for(&config.tls, vec![b"h2".to_vec()])?;
        let store = Store::open(config.database.as_deref())?;
        let metrics = Arc::new(Metrics::default());
        let dashboard_store = store.clone();
        let docs = Docs::open(store, metrics.clone(), config.limits.compact_after_chunks).await?;
        let access = Access::from_config(&config.spaces)?;
        let (shutdown, shutdown_rx) = watch::channel(false);

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| BindError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| BindError::Listen {
            addr: config.listen,
            source,
        })?;

        let (metrics_addr, metrics_task) = match config.metrics_listen {
            Some(addr) => {
                let (bound, start) = metrics::bind(addr, metrics.clone())
                    .await
                    .map_err(|source| BindError::Listen { addr, source })?;
                (Some(bound), Some(start(shutdown_rx.clone())))
            }
            None => (None, None),
        };

        let (dashboard_addr, dashboard_task) = match config.dashboard_listen {
            Some(addr) => {
                // Same CA, certificate and revocation list as gRPC.
                let dashboard_tls =
                    tls::server_config_for(&config.tls, vec![b"http/1.1".to_vec()])?;
                let (bound, start) = dashboard::bind(
                    addr,
                    dashboard_tls,
                    dashboard_store,
                    (config.small_cells > 0).then_some(config.small_cells),
                    config.limits.accept(),
                )
                .await
                .map_err(|source| BindError::Listen { addr, source })?;
                (Some(bound), Some(start(shutdown_rx.clone())))
            }
            None => (None, None),
        };

        let limits = config.limits.clone();
        let incoming = tls::accept_loop(
            listener,
            tls_config,
            metrics.clone(),
            limits.accept(),
            shutdown_rx.clone(),
        );
        let mut ctx = RpcContext::new(
            docs,
            access,
            metrics.clone(),
            limits.clone(),
            shutdown_rx.clone(),
        );
        ctx.tap = tap;
        let ctx = Arc::new(ctx);
        let sync = SyncServer::new(SyncService::new(ctx))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes)
            .accept_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip);
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<SyncServer<SyncService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        let mut stop = shutdown_rx.clone();
        let grpc = tokio::spawn(
            Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(10)))
                .http2_keepalive_timeout(Some(Duration::from_secs(5)))
                .add_service(health)
                .add_service(reflection)
                .add_service(sync)
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming), async move {
                    stopped(&mut stop).await;
                }),
        );
        if let Some(path) = &config.address_file {
            std::fs::write(path, format!("{local_addr}\n")).map_err(BindError::AddressFile)?;
        }
        tracing::info!(%local_addr, ?metrics_addr, ?dashboard_addr, "hub listening");
        Ok(Hub {
            local_addr,
            metrics_addr,
            dashboard_addr,
            metrics,
            shutdown,
            grpc,
            metrics_task,
            dashboard_task,
        })
    }

    /// The bound gRPC address (the real port when the config asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The bound dashboard address, when `dashboard_listen` is set.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard_addr
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Stops accepting, ends every session with UNAVAILABLE, stops metrics.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until every task has stopped (after [`Self::shutdown`]).
    pub async fn join(self) -> Result<(), ServeError> {
        self.grpc.await??;
        if let Some(task) = self.metrics_task {
            task.await?.map_err(ServeError::Metrics)?;
        }
        if let Some(task) = self.dashboard_task {
            task.await?.map_err(ServeError::Dashboard)?;
        }
        Ok(())
    }
}

/// Resolves once shutdown is requested (or the hub is gone). Returns `()`
/// so that no watch guard is held across an await.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
