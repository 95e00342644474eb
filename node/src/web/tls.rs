//! HTTPS for a web application listening beyond loopback: the centre's own
//! certificate and key (PEM), rustls, handshakes done off the accept loop
//! with a deadline so that a silent client holds nothing.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::WebError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a PEM certificate chain and its private key.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, WebError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| {
            WebError::Tls(format!(
                "{} : {}",
                p.display(),
                crate::store::io_error_fr(&e)
            ))
        })
    };
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| WebError::Tls(format!("{} n'est pas un certificat PEM", cert.display())))?;
    if certs.is_empty() {
        return Err(WebError::Tls(format!(
            "{} ne contient aucun certificat",
            cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| {
            WebError::Tls(format!(
                "{} ne contient aucune clé privée PEM",
                key.display()
            ))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WebError::Tls(format!("certificat et clé ne vont pas ensemble : {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS connections, as axum's listener.
pub(super) struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub(super) fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        mut shutdown: watch::Receiver<bool>,
    ) -> TlsListener {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, incoming) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = shutdown.changed() => break,
                };
                let Ok((stream, peer)) = accepted else {
                    // Out of file descriptors and the like: give the
                    // system a moment rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener { incoming, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => conn,
            // The accept loop stopped (shutdown): graceful shutdown ends
            // the server, so never yield again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
