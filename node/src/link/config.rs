//! How the node reaches the hub: address, TLS material and timeouts.

use std::path::Path;
use std::time::Duration;

use super::LinkError;

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// `host:port` of the hub.
    pub hub: String,
    /// The name the hub's certificate must carry (`localhost` in dev).
    pub server_name: String,
    /// PEM: the federation CA, our certificate, our private key.
    pub ca_cert_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub connect_timeout: Duration,
    /// Upper bound for one [`super::sync_once`].
    pub sync_timeout: Duration,
    /// Largest message accepted or sent; must match the hub's (64 MiB).
    pub max_message_bytes: usize,
    /// Reconnect delays: the first retry after a lost session, and the cap
    /// while the hub stays unreachable.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// HTTP/2 pings on an idle connection, and how long an unanswered one
    /// waits: a silent cut is noticed within their sum.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// How often [`super::serve`] looks for local changes to send.
    pub local_poll: Duration,
    /// Free text sent in the Hello, for the hub's logs.
    pub client_name: String,
}

impl LinkConfig {
    pub fn new(
        hub: impl Into<String>,
        ca_cert_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Self {
        LinkConfig {
            hub: hub.into(),
            server_name: "localhost".to_owned(),
            ca_cert_pem,
            cert_pem,
            key_pem,
            connect_timeout: Duration::from_secs(10),
            sync_timeout: Duration::from_secs(300),
            max_message_bytes: 64 * 1024 * 1024,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(4),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
            local_poll: Duration::from_secs(5),
            client_name: format!("clps-node {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Reads the three PEM files.
    pub fn from_files(
        hub: impl Into<String>,
        ca_cert: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<Self, LinkError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| LinkError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Ok(LinkConfig::new(
            hub,
            read(ca_cert)?,
            read(cert)?,
            read(key)?,
        ))
    }
}
