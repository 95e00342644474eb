//! The node's side of the federation: its SQLite store as the link's
//! [`DocStore`], its connection settings (`node.toml` in the data directory)
//! and the `join`, `sync`, `serve` and `status` commands' work.
//!
//! `join` copies the centre's certificate, key and the federation CA into
//! `DIR/tls/` (key readable by the owner only) and writes `DIR/node.toml`;
//! the other commands read them. Nothing here touches SQLite directly: every
//! access goes through the storage actor.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use automerge::ChangeHash;
use clps_model::docs::DocId;
use serde::{Deserialize, Serialize};

use crate::link::{DocStore, LinkConfig, SyncReport};
use crate::shared;
use crate::store::{Store, StoreError};

/// `node.toml`: how this node reaches the hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `host:port` of the hub.
    pub hub: String,
    /// The name the hub's certificate carries (`localhost` for a hub on this machine).
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// PEM files, relative to the data directory unless absolute.
    #[serde(default = "default_ca")]
    pub ca: PathBuf,
    #[serde(default = "default_cert")]
    pub cert: PathBuf,
    #[serde(default = "default_key")]
    pub key: PathBuf,
    /// Seconds between looks for local changes while serving.
    #[serde(default = "default_poll")]
    pub local_poll_seconds: u64,
    /// The staff web application; absent, `serve` serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebConfig>,
}

/// `[web]` of `node.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// `address:port` to listen on. Beyond loopback, `cert` and `key` are
    /// required (HTTPS).
    pub listen: String,
    /// PEM certificate chain and key for HTTPS, relative to the data
    /// directory unless absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// Where the web application listens unless told otherwise.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8080";

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: DEFAULT_WEB_LISTEN.to_owned(),
            cert: None,
            key: None,
        }
    }
}

impl Default for NodeConfig {
    /// A node that has not joined yet: no hub, the web application on
    /// loopback.
    fn default() -> Self {
        NodeConfig {
            hub: String::new(),
            server_name: default_server_name(),
            ca: default_ca(),
            cert: default_cert(),
            key: default_key(),
            local_poll_seconds: default_poll(),
            web: Some(WebConfig::default()),
        }
    }
}

impl WebConfig {
    /// The address, and the TLS settings when a certificate is configured.
    pub fn resolve(
        &self,
        data: &Path,
    ) -> Result<
        (
            std::net::SocketAddr,
            Option<std::sync::Arc<rustls::ServerConfig>>,
        ),
        FederationError,
    > {
        let addr = self.listen.parse().map_err(|_| {
            FederationError::BadConfig(
                data.join(CONFIG_FILE),
                format!(
                    "[web] listen = « {} » n'est pas une adresse IP suivie d'un port (ex. {DEFAULT_WEB_LISTEN})",
                    self.listen
                ),
            )
        })?;
        let at = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                data.join(p)
            }
        };
        let tls = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(
                crate::web::load_server_config(&at(cert), &at(key)).map_err(|e| {
                    FederationError::BadConfig(data.join(CONFIG_FILE), e.to_string())
                })?,
            ),
            (None, None) => None,
            _ => {
                return Err(FederationError::BadConfig(
                    data.join(CONFIG_FILE),
                    "[web] demande à la fois cert et key pour servir en HTTPS".into(),
                ));
            }
        };
        Ok((addr, tls))
    }
}

fn default_server_name() -> String {
    "localhost".into()
}
fn default_ca() -> PathBuf {
    "tls/ca.pem".into()
}
fn default_cert() -> PathBuf {
    "tls/node.pem".into()
}
fn default_key() -> PathBuf {
    "tls/node.key".into()
}
fn default_poll() -> u64 {
    2
}

pub const CONFIG_FILE: &str = "node.toml";

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error(
        "ce nœud n'a pas rejoint la fédération : lancez « clps-node --data {0} join --hub ADRESSE --ca … --cert … --key … »"
    )]
    NotJoined(PathBuf),
    #[error("fichier de configuration {0} invalide : {1}")]
    BadConfig(PathBuf, String),
    #[error("impossible de lire {0} : {1}")]
    Read(PathBuf, String),
    #[error("impossible d'écrire {0} : {1}")]
    Write(PathBuf, String),
    #[error("le certificat {0} n'est pas au format PEM")]
    NotPem(PathBuf),
    #[error("liaison avec le hub : {0}")]
    Link(String),
}

impl NodeConfig {
    pub fn load(data: &Path) -> Result<NodeConfig, FederationError> {
        let path = data.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|_| FederationError::NotJoined(data.to_owned()))?;
        toml::from_str(&text).map_err(|e| FederationError::BadConfig(path, e.message().to_owned()))
    }

    /// The link settings, with the PEM files read.
    pub fn link_config(&self, data: &Path) -> Result<LinkConfig, FederationError> {
        let read = |p: &Path| -> Result<Vec<u8>, FederationError> {
            let path = if p.is_absolute() {
                p.to_owned()
            } else {
                data.join(p)
            };
            std::fs::read(&path).map_err(|e| FederationError::Read(path, e.to_string()))
        };
        let mut config = LinkConfig::new(
            self.hub.clone(),
            read(&self.ca)?,
            read(&self.cert)?,
            read(&self.key)?,
        );
        config.server_name = self.server_name.clone();
        config.local_poll = std::time::Duration::from_secs(self.local_poll_seconds.max(1));
        Ok(config)
    }
}

/// What `join` does with `[web]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebChoice {
    /// No web application.
    Off,
    /// As it was (the default address on a first join).
    Keep,
    /// Listen there.
    Listen(String),
}

/// Copies the TLS material into the data directory and writes `node.toml`.
/// Files are checked before anything is written.
pub fn join(
    data: &Path,
    hub: &str,
    server_name: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
    web: WebChoice,
) -> Result<NodeConfig, FederationError> {
    let read_pem = |p: &Path| -> Result<Vec<u8>, FederationError> {
        let bytes =
            std::fs::read(p).map_err(|e| FederationError::Read(p.to_owned(), e.to_string()))?;
        if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(FederationError::NotPem(p.to_owned()));
        }
        Ok(bytes)
    };
    let (ca, cert, key) = (read_pem(ca)?, read_pem(cert)?, read_pem(key)?);
    // A second join keeps the web settings the centre chose (its
    // certificate and key among them).
    let existing = NodeConfig::load(data).ok().map(|c| c.web);
    let web = match web {
        WebChoice::Off => None,
        WebChoice::Keep => existing.unwrap_or_else(|| Some(WebConfig::default())),
        WebChoice::Listen(listen) => Some(WebConfig {
            listen,
            ..existing.flatten().unwrap_or_default()
        }),
    };
    let config = NodeConfig {
        hub: hub.to_owned(),
        server_name: server_name.to_owned(),
        web,
        ..NodeConfig::default()
    };
    let write = |rel: &Path, bytes: &[u8], private: bool| -> Result<(), FederationError> {
        let path = data.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| FederationError::Write(parent.to_owned(), e.to_string()))?;
        }
        // Write then rename, so a crash never leaves half a key.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .map_err(|e| FederationError::Write(tmp.clone(), e.to_string()))?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| FederationError::Write(tmp.clone(), e.to_string()))?;
        }
        let _ = private;
        std::fs::rename(&tmp, &path)
            .map_err(|e| FederationError::Write(path.clone(), e.to_string()))
    };
    write(&config.ca, &ca, false)?;
    write(&config.cert, &cert, false)?;
    write(&config.key, &key, true)?;
    let text = toml::to_string(&config)
        .map_err(|e| FederationError::Write(data.join(CONFIG_FILE), e.to_string()))?;
    write(
        Path::new(CONFIG_FILE),
        format!("# Liaison de ce nœud avec le hub de la fédération (écrit par « clps-node join »).\n{text}").as_bytes(),
        false,
    )?;
    Ok(config)
}

/// The node's SQLite store as the link sees it.
#[derive(Clone)]
pub struct NodeDocStore {
    pub store: Store,
}

fn parse_heads(text: &str) -> Vec<ChangeHash> {
    text.split(',')
        .filter(|h| !h.is_empty())
        .filter_map(|h| ChangeHash::from_str(h).ok())
        .collect()
}

impl DocStore for NodeDocStore {
    type Error = StoreError;

    async fn list_docs(&self) -> Result<Vec<(DocId, Vec<ChangeHash>)>, StoreError> {
        let rows = self.store.call(|c| shared::list(c)).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, heads)| Some((DocId::parse(&id).ok()?, parse_heads(&heads))))
            .collect())
    }

    async fn load_doc(&self, doc_id: &DocId) -> Result<Option<automerge::Automerge>, StoreError> {
        let doc_id = doc_id.clone();
        self.store
            .call(move |c| {
                let actor = shared::node_actor(c)?;
                Ok(shared::load(c, &doc_id, &actor)?.map(|mut d| d.document().clone()))
            })
            .await
    }

    async fn persist_received(&self, doc_id: &DocId, bytes: &[u8]) -> Result<(), StoreError> {
        let (doc_id, bytes) = (doc_id.clone(), bytes.to_vec());
        self.store
            .call(move |c| persist(c, &doc_id, bytes, None))
            .await
    }

    async fn persist_snapshot(
        &self,
        doc_id: &DocId,
        bytes: Vec<u8>,
        loaded: Option<automerge::AutoCommit>,
    ) -> Result<(), StoreError> {
        let doc_id = doc_id.clone();
        self.store
            .call(move |c| persist(c, &doc_id, bytes, loaded))
            .await
    }

    fn is_unreadable(error: &StoreError) -> bool {
        matches!(error, StoreError::Invalid(_))
    }

    async fn data_version(&self) -> Result<u64, StoreError> {
        self.store
            .call(|c| {
                // data_version moves on other connections' commits,
                // total_changes on this one's.
                let other: i64 = c.pragma_query_value(None, "data_version", |r| r.get(0))?;
                let own = c.total_changes();
                Ok(u64::try_from(other).unwrap_or(0).rotate_left(32) ^ own)
            })
            .await
    }

    async fn pending_changes(&self) -> Result<Vec<(DocId, ChangeHash)>, StoreError> {
        self.store
            .call(|c| {
                let mut stmt =
                    c.prepare("SELECT doc_id, hash FROM pending_changes ORDER BY doc_id")?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, hash) = row?;
                    if let (Ok(id), Ok(hash)) = (DocId::parse(&id), ChangeHash::from_str(&hash)) {
                        out.push((id, hash));
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn acknowledge(&self, doc_id: &DocId, changes: &[ChangeHash]) -> Result<(), StoreError> {
        let doc_id = doc_id.to_string();
        let hashes: Vec<String> = changes.iter().map(|h| h.to_string()).collect();
        self.store
            .call(move |c| {
                let tx = c.transaction()?;
                for hash in &hashes {
                    tx.execute(
                        "DELETE FROM pending_changes WHERE doc_id = ?1 AND hash = ?2",
                        [&doc_id, hash],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn sync_finished(&self, report: &SyncReport) -> Result<(), StoreError> {
        let summary = format!(
            "{}|{}|{}|{}|{}",
            shared::now(),
            report.changes_up,
            report.changes_down,
            report.wire_bytes_up,
            report.wire_bytes_down
        );
        let blocked: Vec<(String, String, String)> = report
            .failures
            .iter()
            .map(|f| (f.doc_id.clone(), format!("{:?}", f.code), f.message.clone()))
            .collect();
        let now = shared::now();
        self.store
            .call(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('last_sync', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [summary],
                )?;
                // The refusals of this sync replace the previous ones: a
                // document that went through is no longer blocked.
                tx.execute("DELETE FROM blocked_docs WHERE doc_id NOT IN (SELECT value FROM json_each(?1))",
                    [serde_json::to_string(&blocked.iter().map(|b| &b.0).collect::<Vec<_>>()).unwrap_or_default()])?;
                for (doc_id, code, reason) in &blocked {
                    tx.execute(
                        "INSERT INTO blocked_docs (doc_id, code, reason, since) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (doc_id) DO UPDATE SET code = excluded.code, reason = excluded.reason",
                        rusqlite::params![doc_id, code, reason, now],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }
}

/// A shared document the hub refused at the last sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedDoc {
    pub doc_id: String,
    /// The gRPC code, as its name (`PermissionDenied`...).
    pub code: String,
    /// The hub's reason (its own words, for the operator).
    pub reason: String,
    pub since: i64,
}

/// The documents the hub refused at the last sync.
pub fn blocked_docs(conn: &rusqlite::Connection) -> Result<Vec<BlockedDoc>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT doc_id, code, reason, since FROM blocked_docs ORDER BY doc_id")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(BlockedDoc {
                doc_id: r.get(0)?,
                code: r.get(1)?,
                reason: r.get(2)?,
                since: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// `last_sync` as recorded: (unix time, changes up, changes down).
pub fn last_sync(conn: &rusqlite::Connection) -> Result<Option<(i64, u64, u64)>, StoreError> {
    use rusqlite::OptionalExtension;
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'last_sync'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value.and_then(|v| {
        let mut parts = v.split('|');
        Some((
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        ))
    }))
}

/// Merges received bytes into the stored document, or stores them as the
/// snapshot of a document this node never had (a bootstrap), loaded from
/// `loaded` when the caller already did it.
fn persist(
    c: &mut rusqlite::Connection,
    doc_id: &DocId,
    bytes: Vec<u8>,
    loaded: Option<automerge::AutoCommit>,
) -> Result<(), StoreError> {
    let actor = shared::node_actor(c)?;
    let Some(mut doc) = shared::load(c, doc_id, &actor)? else {
        let loaded = loaded.or_else(|| automerge::AutoCommit::load(&bytes).ok());
        let mut doc = clps_model::docs::load_doc_with(doc_id, &bytes, loaded, &actor)?;
        let tx = c.transaction()?;
        shared::store_new(&tx, doc_id, &mut doc, bytes)?;
        tx.commit()?;
        return Ok(());
    };
    let before = doc.get_heads();
    doc.load_incremental(&bytes)
        .map_err(|e| StoreError::Invalid(format!("document {doc_id} reçu illisible : {e}")))?;
    let tx = c.transaction()?;
    shared::store(&tx, doc_id, &mut doc, &before, false)?;
    tx.commit()?;
    Ok(())
}
