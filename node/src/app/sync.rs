//! Synchronisation as staff see it: what waits to be sent, what the hub
//! refused, when the last sync went through, and « synchroniser maintenant ».

use std::time::Duration;

use super::{ErrorKind, Node};
use crate::federation::{BlockedDoc, FederationError, NodeConfig, NodeDocStore};
use crate::store::StoreError;

/// The state of the node's link with the hub, from its own records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOverview {
    /// `host:port` of the hub; `None` before `join`.
    pub hub: Option<String>,
    /// (unix time, changes sent, changes received) of the last sync.
    pub last_sync: Option<(i64, u64, u64)>,
    /// Changes waiting to be sent, per document.
    pub pending: Vec<(String, i64)>,
    pub blocked: Vec<BlockedDoc>,
    /// Shared documents held.
    pub documents: usize,
}

/// What one « synchroniser maintenant » did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncDone {
    pub sent: usize,
    pub received: usize,
    pub refused: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("this node has not joined a federation")]
    NotJoined,
    #[error(transparent)]
    Config(#[from] FederationError),
    #[error("hub unreachable: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SyncError::NotJoined => ErrorKind::NotFound,
            SyncError::Config(_) | SyncError::Unreachable(_) => ErrorKind::Unavailable,
            SyncError::Store(e) => e.kind(),
        }
    }
}

impl Node {
    fn node_config(&self) -> Result<NodeConfig, SyncError> {
        let data = self.data_dir().ok_or(SyncError::NotJoined)?;
        match NodeConfig::load(data) {
            Ok(config) => Ok(config),
            Err(FederationError::NotJoined(_)) => Err(SyncError::NotJoined),
            Err(e) => Err(e.into()),
        }
    }

    /// What the synchronisation page shows.
    pub async fn sync_overview(&self) -> Result<SyncOverview, SyncError> {
        let hub = self.node_config().ok().map(|c| c.hub);
        let (last_sync, pending, blocked, documents) = self
            .store()
            .call(|conn| {
                let pending = conn
                    .prepare(
                        "SELECT doc_id, count(*) FROM pending_changes GROUP BY doc_id ORDER BY doc_id",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
                Ok((
                    crate::federation::last_sync(conn)?,
                    pending,
                    crate::federation::blocked_docs(conn)?,
                    crate::shared::list(conn)?.len(),
                ))
            })
            .await?;
        Ok(SyncOverview {
            hub,
            last_sync,
            pending,
            blocked,
            documents,
        })
    }

    /// Whether the hub answers, within `timeout`.
    pub async fn hub_reachable(&self, timeout: Duration) -> Result<bool, SyncError> {
        let data = self.data_dir().ok_or(SyncError::NotJoined)?;
        let link = self.node_config()?.link_config(data)?;
        let docs = NodeDocStore {
            store: self.store().clone(),
        };
        Ok(matches!(
            tokio::time::timeout(timeout, crate::link::hub_status(&link, &docs)).await,
            Ok(Ok(_))
        ))
    }

    /// Publishes the centre's figures and runs one sync with the hub.
    pub async fn sync_now(&self) -> Result<SyncDone, SyncError> {
        let data = self.data_dir().ok_or(SyncError::NotJoined)?;
        let mut link = self.node_config()?.link_config(data)?;
        link.sync_timeout = link.sync_timeout.min(Duration::from_secs(60));
        self.store().call(crate::publish::publish).await?;
        let docs = NodeDocStore {
            store: self.store().clone(),
        };
        let report = crate::link::sync_once(&link, &docs)
            .await
            .map_err(|e| SyncError::Unreachable(e.to_string()))?;
        Ok(SyncDone {
            sent: report.changes_up,
            received: report.changes_down,
            refused: report.failures.iter().map(|f| f.doc_id.clone()).collect(),
            seconds: report.elapsed.as_secs_f64(),
        })
    }
}
