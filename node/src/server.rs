//! [`NodeServer`]: what `clps-node serve` and `clps-node web` run, with a
//! visible lifecycle. `bind` returns once every listener is bound (their
//! addresses known), `shutdown` asks every part to stop, `join` waits for
//! them and reports the first failure.
//!
//! The parts: the link with the hub (when the node has joined and the link
//! is wanted), the publisher of the centre's figures, and the staff web
//! application (when `[web]` is configured or an address is given).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::Node;
use crate::federation::NodeDocStore;
use crate::link::LinkConfig;

/// How often the publisher refreshes the centre's published figures.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(10);

/// What to run.
pub struct ServeOptions {
    /// The link with the hub; `None`: work offline.
    pub link: Option<LinkConfig>,
    /// The web application's address, and its TLS settings.
    pub web: Option<(SocketAddr, Option<Arc<rustls::ServerConfig>>)>,
    /// Publish the centre's figures every [`PUBLISH_EVERY`].
    pub publish: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    #[error("application web : {0}")]
    WebStopped(String),
    #[error("liaison avec le hub : {0}")]
    Link(String),
}

pub struct NodeServer {
    web_addr: Option<SocketAddr>,
    shutdown: Arc<watch::Sender<bool>>,
    parts: JoinSet<Result<(), ServeError>>,
}

impl std::fmt::Debug for NodeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeServer")
            .field("web_addr", &self.web_addr)
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl NodeServer {
    /// Binds the listeners and starts every part.
    pub async fn bind(node: Node, options: ServeOptions) -> Result<NodeServer, ServeError> {
        let (shutdown, stopped) = watch::channel(false);
        let mut parts = JoinSet::new();
        let mut web_addr = None;
        if let Some((addr, tls)) = options.web {
            let (local, start) = crate::web::bind(node.clone(), addr, tls).await?;
            web_addr = Some(local);
            let serving = start(stopped.clone());
            parts.spawn(async move {
                match serving.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(ServeError::WebStopped(e.to_string())),
                    Err(e) => Err(ServeError::WebStopped(e.to_string())),
                }
            });
        }
        if let Some(link) = options.link {
            let docs = NodeDocStore {
                store: node.store().clone(),
            };
            let mut stop = stopped.clone();
            parts.spawn(async move {
                crate::link::serve(&link, &docs, async move {
                    wait_true(&mut stop).await;
                })
                .await
                .map_err(|e| ServeError::Link(crate::cli::error_chain(&e)))
            });
        }
        if options.publish {
            let store = node.store().clone();
            let mut stop = stopped.clone();
            parts.spawn(async move {
                let mut tick = tokio::time::interval(PUBLISH_EVERY);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = wait_true(&mut stop) => return Ok(()),
                    }
                    if let Err(e) = store.call(crate::publish::publish).await {
                        tracing::warn!(error = %e, "publishing statistics failed");
                    }
                }
            });
        }
        Ok(NodeServer {
            web_addr,
            shutdown: Arc::new(shutdown),
            parts,
        })
    }

    /// Where the web application listens (port 0 resolved).
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// Asks every part to stop; [`NodeServer::join`] waits for them.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A handle that stops the server from elsewhere (a signal handler).
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shutdown.clone())
    }

    /// Waits until every part has stopped. The first failure is returned,
    /// and the other parts are asked to stop as soon as it happens.
    pub async fn join(mut self) -> Result<(), ServeError> {
        let mut first_error = None;
        while let Some(joined) = self.parts.join_next().await {
            let result = joined.unwrap_or_else(|e| Err(ServeError::WebStopped(e.to_string())));
            if let Err(e) = result {
                let _ = self.shutdown.send(true);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Stops a [`NodeServer`] from another task.
#[derive(Clone, Debug)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
