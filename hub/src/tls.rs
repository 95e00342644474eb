//! Mutual TLS at accept time: the rustls server configuration (client
//! certificates verified against the federation CA by
//! `WebPkiClientVerifier`), the accept loop, and [`ConnInfo`], the typed
//! identity tonic hands to every request of the connection.
//!
//! The handshake runs in its own task per connection, bounded by a timeout,
//! so a slow or hostile client never delays the others. A certificate from
//! another CA, a revoked one (the CRL of `tls.crl`), or one without a
//! `clps://` identity, ends the connection here: no RPC handler ever runs
//! for it.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::identity::Identity;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("lecture impossible : {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("PEM invalide dans {0}")]
    Pem(std::path::PathBuf),
    #[error("configuration TLS invalide")]
    Rustls(#[from] rustls::Error),
    #[error("vérificateur des clients invalide")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// What every request of a connection knows about its caller.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub identity: Identity,
    pub remote: SocketAddr,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Builds the server side of mutual TLS from PEM files.
pub fn server_config(
    ca_cert: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    // gRPC runs over HTTP/2 only; grpcio clients insist on ALPN "h2".
    build(ca_cert, cert, key, None, vec![b"h2".to_vec()])
}

/// Mutual TLS from the configured files, with the revocation list when
/// `files.crl` names one: a revoked certificate fails the handshake like a
/// certificate from another CA, before any handler runs.
pub fn server_config_for(
    files: &crate::config::TlsFiles,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    build(
        &files.ca_cert,
        &files.cert,
        &files.key,
        files.crl.as_deref(),
        alpn,
    )
}

fn build(
    ca_cert: &Path,
    cert: &Path,
    key: &Path,
    crl: Option<&Path>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(ca_cert)?) {
        let ca = ca.map_err(|_| TlsError::Pem(ca_cert.to_owned()))?;
        roots.add(ca)?;
    }
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl) = crl {
        let crls = CertificateRevocationListDer::pem_slice_iter(&read(crl)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlsError::Pem(crl.to_owned()))?;
        // Only client certificates are listed; the CA itself is not.
        builder = builder.with_crls(crls).only_check_end_entity_revocation();
    }
    let verifier = builder.build()?;
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem(cert.to_owned()))?;
    let key_der =
        PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::Pem(key.to_owned()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// A TCP stream that counts the bytes crossing it (TLS records included),
/// for the wire-bytes metrics.
pub struct Counted<T> {
    inner: T,
    metrics: Arc<Metrics>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        Metrics::add(&self.metrics.wire_bytes_in, u64::try_from(n).unwrap_or(0));
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            Metrics::add(&self.metrics.wire_bytes_out, u64::try_from(*n).unwrap_or(0));
        }
        poll
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the accept loop enforces on every connection.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    pub handshake_timeout: Duration,
    /// Nothing read for this long closes the connection.
    pub idle_timeout: Duration,
    pub max_connections_per_identity: usize,
}

/// An accepted, authenticated connection.
pub struct Authenticated {
    io: TlsStream<Counted<TcpStream>>,
    info: ConnInfo,
    idle: Duration,
    /// When the connection is closed if nothing more arrives.
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// This connection's place among its identity's open connections.
    _slot: crate::identity::Slot,
}

impl Connected for Authenticated {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Authenticated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::info!(remote = %self.info.remote, identity = %self.info.identity, "idle connection closed");
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "nothing received from the client in time",
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for Authenticated {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Accepts TCP connections until `shutdown`, runs each handshake in its own
/// task and yields the authenticated ones.
pub fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    metrics: Arc<Metrics>,
    limits: AcceptLimits,
    mut shutdown: watch::Receiver<bool>,
) -> mpsc::Receiver<Result<Authenticated, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let handshake_timeout = limits.handshake_timeout;
    let open = crate::identity::PerIdentity::default();
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                _ = crate::server::stopped(&mut shutdown) => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off a little.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, metrics, open) =
                (acceptor.clone(), tx.clone(), metrics.clone(), open.clone());
            tokio::spawn(async move {
                let counted = Counted {
                    inner: tcp,
                    metrics: metrics.clone(),
                };
                let result =
                    tokio::time::timeout(handshake_timeout, acceptor.accept(counted)).await;
                let io = match result {
                    Ok(Ok(io)) => io,
                    Ok(Err(e)) => {
                        Metrics::add(&metrics.handshakes_failed, 1);
                        tracing::warn!(%remote, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        Metrics::add(&metrics.handshakes_failed, 1);
                        tracing::warn!(%remote, "TLS handshake timed out");
                        return;
                    }
                };
                let identity = io
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .ok_or(crate::identity::IdentityError::Missing)
                    .and_then(|cert| Identity::from_cert_der(cert));
                let identity = match identity {
                    Ok(identity) => identity,
                    Err(e) => {
                        Metrics::add(&metrics.handshakes_failed, 1);
                        tracing::warn!(%remote, error = %e, "client certificate has no usable identity");
                        return;
                    }
                };
                let Some(slot) = open.take(&identity, limits.max_connections_per_identity) else {
                    Metrics::add(&metrics.connections_refused, 1);
                    tracing::warn!(%remote, %identity, "too many connections for one identity");
                    return;
                };
                tracing::info!(%remote, %identity, "client authenticated");
                let conn = Authenticated {
                    io,
                    info: ConnInfo { identity, remote },
                    idle: limits.idle_timeout,
                    deadline: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                    _slot: slot,
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
    rx
}
