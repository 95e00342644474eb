//! The TLS channel to the hub, over a TCP connector that counts the bytes on
//! the wire (TLS records, HTTP/2 frames and compression included) so that
//! sync reports give real network costs.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use clps_proto::pb::sync_client::SyncClient;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::{LinkConfig, LinkError};

#[derive(Debug, Default)]
pub struct WireCounters {
    pub up: AtomicU64,
    pub down: AtomicU64,
}

struct Counted {
    inner: TcpStream,
    counters: Arc<WireCounters>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.counters
            .down
            .fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.counters
                .up
                .fetch_add(u64::try_from(*n).unwrap_or(0), Ordering::Relaxed);
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

/// Opens the channel (TCP + TLS handshake) and wraps it in the generated
/// client with compression and message limits set.
pub async fn connect(
    config: &LinkConfig,
    counters: Arc<WireCounters>,
) -> Result<SyncClient<Channel>, LinkError> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&config.ca_cert_pem))
        .identity(Identity::from_pem(&config.cert_pem, &config.key_pem))
        .domain_name(config.server_name.clone());
    let endpoint = Endpoint::from_shared(format!("https://{}", config.hub))
        .map_err(|_| LinkError::Address(config.hub.clone()))?
        .tls_config(tls)
        .map_err(LinkError::Connect)?
        .connect_timeout(config.connect_timeout)
        .http2_keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout)
        .keep_alive_while_idle(true);
    let hub = config.hub.clone();
    let connector = tower::service_fn(move |_uri| {
        let (hub, counters) = (hub.clone(), counters.clone());
        async move {
            let tcp = TcpStream::connect(hub.as_str()).await?;
            tcp.set_nodelay(true)?;
            Ok::<_, io::Error>(TokioIo::new(Counted {
                inner: tcp,
                counters,
            }))
        }
    });
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(LinkError::Connect)?;
    Ok(SyncClient::new(channel)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes)
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip))
}
