//! The hub's configuration: a typed TOML file whose `Default` is the
//! development setup (loopback, certificates in `./pki`, database in
//! `./hub-data`). `deploy/hub.toml` is the commented example.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// gRPC over mutual TLS. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Prometheus `/metrics` over plain HTTP. `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// The committee dashboard: HTTPS with the same mutual TLS (committee
    /// certificates only). `None`: no dashboard.
    pub dashboard_listen: Option<SocketAddr>,
    /// Small-cell rule of committee views (dashboard): per-centre counts
    /// below it show as "< N"; network totals stay exact. 0 turns it off.
    pub small_cells: u64,
    /// Where to write the bound gRPC address once listening (for scripts
    /// that start the hub on port 0). `None`: only printed on stdout.
    pub address_file: Option<PathBuf>,
    /// The SQLite database. `None`: an in-memory database (tests only:
    /// nothing survives a restart).
    pub database: Option<PathBuf>,
    pub tls: TlsFiles,
    pub limits: Limits,
    /// The spaces beyond `catalogue` and `stats` (which every centre writes):
    /// points d'appui and surveys, with their members.
    pub spaces: Vec<SpaceConfig>,
}

/// PEM files made by `clps-hub pki init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation CA: client certificates must chain to it.
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Revoked client certificates: a PEM CRL signed by the federation CA
    /// (`clps-hub pki revoke` writes `ca.crl`), checked at every handshake.
    /// Read at start: restart the hub after a revocation. `None`: no
    /// certificate is revoked.
    pub crl: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest gRPC message accepted or sent. A bootstrap snapshot is one
    /// message, so this must exceed `max_doc_bytes`; tonic's 4 MiB default
    /// is too small for a large catalogue bucket.
    pub max_message_bytes: usize,
    /// Largest stored size of one document (snapshot + chunks). A sync
    /// message that would grow a document past it is refused with
    /// RESOURCE_EXHAUSTED.
    pub max_doc_bytes: usize,
    /// Outgoing messages buffered per session before the hub waits.
    pub session_buffer: usize,
    /// How long the hub waits for a slow client to take a message before it
    /// ends the session (stalled client).
    pub send_timeout_secs: u64,
    /// How long a new session may take to send its Hello.
    pub hello_timeout_secs: u64,
    /// How long a TLS handshake may take.
    pub handshake_timeout_secs: u64,
    /// Compact a document (rewrite its snapshot, drop its chunks) once it has
    /// this many chunks.
    pub compact_after_chunks: u64,
    /// Sessions one identity may hold open at once; one more is refused
    /// with RESOURCE_EXHAUSTED, so a looping or hostile node cannot starve
    /// the others.
    pub max_sessions_per_identity: usize,
    /// TLS connections one identity may hold open at once; one more is
    /// closed right after its handshake.
    pub max_connections_per_identity: usize,
    /// A connection from which nothing arrives for this long is closed (an
    /// authenticated client that never starts HTTP/2, or a silent one; a
    /// node pings every 10 s).
    pub idle_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceConfig {
    /// `appui:<scheme>` or `survey:<id>`.
    pub id: String,
    /// Centre ids with the write role; `"*"` means every centre.
    #[serde(default)]
    pub writers: Vec<String>,
    /// Centre ids with the read role only.
    #[serde(default)]
    pub readers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("lecture impossible : {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration invalide dans {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

impl Default for Config {
    fn default() -> Self {
        let all = || vec!["*".to_owned()];
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            dashboard_listen: None,
            small_cells: 5,
            address_file: None,
            database: Some(PathBuf::from("hub-data/hub.sqlite")),
            tls: TlsFiles::default(),
            limits: Limits::default(),
            spaces: [
                "appui:assuetudes",
                "appui:evras",
                "appui:covid",
                "survey:pcs-2020",
            ]
            .into_iter()
            .map(|id| SpaceConfig {
                id: id.to_owned(),
                writers: all(),
                readers: Vec::new(),
            })
            .collect(),
        }
    }
}

impl Default for TlsFiles {
    fn default() -> Self {
        TlsFiles {
            ca_cert: PathBuf::from("pki/ca.crt"),
            cert: PathBuf::from("pki/hub.crt"),
            key: PathBuf::from("pki/hub.key"),
            crl: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024 * 1024,
            max_doc_bytes: 48 * 1024 * 1024,
            session_buffer: 256,
            send_timeout_secs: 30,
            hello_timeout_secs: 10,
            handshake_timeout_secs: 10,
            compact_after_chunks: 64,
            max_sessions_per_identity: 16,
            max_connections_per_identity: 32,
            idle_timeout_secs: 30,
        }
    }
}

impl Limits {
    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs)
    }
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_secs(self.hello_timeout_secs)
    }
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
    /// What the TLS accept loop enforces.
    pub fn accept(&self) -> crate::tls::AcceptLimits {
        crate::tls::AcceptLimits {
            handshake_timeout: self.handshake_timeout(),
            idle_timeout: self.idle_timeout(),
            max_connections_per_identity: self.max_connections_per_identity.max(1),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        Ok(config.relative_to(path.parent().unwrap_or(Path::new("."))))
    }

    /// Resolves the relative paths of a configuration read from a file
    /// against that file's directory: `clps-hub stats --config
    /// /etc/clps/hub.toml` reads the same database wherever it is run from.
    pub fn relative_to(mut self, dir: &Path) -> Config {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(db) = self.database.as_mut() {
            resolve(db);
        }
        if let Some(file) = self.address_file.as_mut() {
            resolve(file);
        }
        resolve(&mut self.tls.ca_cert);
        resolve(&mut self.tls.cert);
        resolve(&mut self.tls.key);
        if let Some(crl) = self.tls.crl.as_mut() {
            resolve(crl);
        }
        self
    }

    /// Points the TLS files at a `pki init` directory.
    pub fn with_pki_dir(mut self, dir: &Path) -> Config {
        self.tls = TlsFiles {
            ca_cert: dir.join(crate::pki::CA_CERT),
            cert: dir.join(crate::pki::HUB_CERT),
            key: dir.join(crate::pki::HUB_KEY),
            crl: None,
        };
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../deploy/hub.toml");
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.limits.max_message_bytes, 64 * 1024 * 1024);
        assert!(config.spaces.iter().any(|s| s.id == "appui:evras"));
        let empty: Config = toml::from_str("").unwrap();
        assert_eq!(empty.listen, Config::default().listen);
    }

    #[test]
    fn relative_paths_are_resolved_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "database = \"data/hub.sqlite\"\n[tls]\nca_cert = \"/abs/ca.crt\"\ncert = \"pki/hub.crt\"\nkey = \"pki/hub.key\"\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.database, Some(dir.path().join("data/hub.sqlite")));
        assert_eq!(config.tls.ca_cert, PathBuf::from("/abs/ca.crt"));
        assert_eq!(config.tls.cert, dir.path().join("pki/hub.crt"));
    }
}
