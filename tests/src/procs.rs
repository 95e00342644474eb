//! The federation as real processes: `clps-hub serve` and `clps-node`
//! commands (the binaries cargo built next to the test executable), node
//! data directories with SQLite, and a [`Proxy`] in front of the hub so a
//! restarted hub keeps the address the nodes joined with. Processes can be
//! killed with SIGKILL at any moment.
//!
//! Readiness is never slept on: the hub is ready when it prints
//! "hub à l'écoute sur ADDR"; a node command is done when it exits.
//! Also reads SQLite files directly (after the fact) to say which changes
//! each side holds, and runs `PRAGMA integrity_check`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use automerge::{Automerge, ChangeHash};
use clps_hub::config::{Limits, SpaceConfig};
use clps_hub::{Config, Identity, pki};
use clps_model::CentreActor;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::figures::bin_dir;
use crate::proxy::Proxy;

/// Upper bound for one node command (a sync included).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// A running `clps-hub serve`.
pub struct HubProcess {
    child: Child,
    pub addr: SocketAddr,
    metrics: std::sync::Arc<std::sync::Mutex<Option<SocketAddr>>>,
}

impl HubProcess {
    /// The metrics endpoint, once the hub has printed it.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        *self.metrics.lock().unwrap()
    }

    /// SIGKILL, then reaps the process.
    pub async fn kill9(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Starts `clps-hub serve --config FILE` and waits for its listening line.
pub async fn start_hub(config: &Path, log: &Path) -> anyhow::Result<HubProcess> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = Command::new(bin_dir().join("clps-hub"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .context("spawn clps-hub (run `cargo build --workspace` first)")?;
    let stdout = child.stdout.take().context("hub stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = line.strip_prefix("hub à l'écoute sur ") {
                return Ok::<_, anyhow::Error>(addr.trim().parse::<SocketAddr>()?);
            }
        }
        bail!("the hub exited before listening")
    })
    .await
    .context("hub did not start in time")??;
    // Keep draining stdout so the hub never blocks on a full pipe.
    let metrics = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = metrics.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line
                .strip_prefix("métriques sur http://")
                .and_then(|rest| rest.strip_suffix("/metrics"))
                .and_then(|a| a.parse().ok())
            {
                *seen.lock().unwrap() = Some(addr);
            }
        }
    });
    Ok(HubProcess {
        child,
        addr,
        metrics,
    })
}

/// A node command's outcome.
#[derive(Debug)]
pub struct NodeRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Spawns `clps-node --data DIR ARGS...` (killable).
pub fn spawn_node(data: &Path, args: &[&str]) -> anyhow::Result<Child> {
    Command::new(bin_dir().join("clps-node"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawn clps-node")
}

/// Runs a node command to its end (bounded by [`COMMAND_TIMEOUT`]).
pub async fn node(data: &Path, args: &[&str]) -> anyhow::Result<NodeRun> {
    let child = spawn_node(data, args)?;
    finish(child).await
}

/// Waits for a spawned node command (bounded by [`COMMAND_TIMEOUT`]).
pub async fn finish(child: Child) -> anyhow::Result<NodeRun> {
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .context("node command did not finish in time")??;
    Ok(NodeRun {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs a node command that must succeed.
pub async fn node_ok(data: &Path, args: &[&str]) -> anyhow::Result<String> {
    let run = node(data, args).await?;
    if !run.ok {
        bail!(
            "clps-node {args:?} failed: {}{}",
            run.stdout.trim(),
            run.stderr.trim()
        );
    }
    Ok(run.stdout)
}

/// `PRAGMA integrity_check` of a SQLite file ("ok" when sound).
pub fn integrity_check(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Change hashes per document, and which of them were made by `centre`.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    pub changes: BTreeMap<String, BTreeSet<ChangeHash>>,
    /// Changes whose actor is a centre actor (genesis left out), with it.
    pub authors: BTreeMap<ChangeHash, String>,
}

impl Holdings {
    pub fn all(&self) -> BTreeSet<ChangeHash> {
        self.changes.values().flatten().copied().collect()
    }

    pub fn authored_by(&self, centre: &str) -> BTreeSet<ChangeHash> {
        self.authors
            .iter()
            .filter(|(_, c)| c.as_str() == centre)
            .map(|(h, _)| *h)
            .collect()
    }

    fn add(&mut self, doc_id: String, doc: &Automerge) {
        let set = self.changes.entry(doc_id).or_default();
        for change in doc.get_changes(&[]) {
            set.insert(change.hash());
            if let Ok(actor) = CentreActor::parse(change.actor_id()) {
                self.authors
                    .insert(change.hash(), actor.centre.as_str().to_owned());
            }
        }
    }
}

/// One shared document as a node database stores it (snapshot, then its
/// chunks), or `None` if the node does not have it.
pub fn node_doc(conn: &rusqlite::Connection, doc_id: &str) -> anyhow::Result<Option<Automerge>> {
    use rusqlite::OptionalExtension;
    let Some(snapshot): Option<Vec<u8>> = conn
        .query_row(
            "SELECT snapshot FROM shared_docs WHERE doc_id = ?1",
            [doc_id],
            |r| r.get(0),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut doc = Automerge::load(&snapshot)?;
    let chunks: Vec<Vec<u8>> = conn
        .prepare("SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1 ORDER BY seq")?
        .query_map([doc_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for chunk in chunks {
        doc.load_incremental(&chunk)?;
    }
    Ok(Some(doc))
}

/// One document as the hub's database stores it, or `None`.
pub fn hub_doc(conn: &rusqlite::Connection, doc_id: &str) -> anyhow::Result<Option<Automerge>> {
    use rusqlite::OptionalExtension;
    let Some(snapshot): Option<Vec<u8>> = conn
        .query_row(
            "SELECT snapshot FROM documents WHERE doc_id = ?1",
            [doc_id],
            |r| r.get(0),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut doc = if snapshot.is_empty() {
        Automerge::new()
    } else {
        Automerge::load(&snapshot)?
    };
    let chunks: Vec<Vec<u8>> = conn
        .prepare("SELECT data FROM chunks WHERE doc_id = ?1 ORDER BY seq")?
        .query_map([doc_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for chunk in chunks {
        doc.load_incremental(&chunk)?;
    }
    Ok(Some(doc))
}

fn doc_ids(conn: &rusqlite::Connection, table: &str) -> anyhow::Result<Vec<String>> {
    Ok(conn
        .prepare(&format!("SELECT doc_id FROM {table}"))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

/// Reads a node database: its documents' changes, and its pending list.
pub fn node_holdings(path: &Path) -> anyhow::Result<(Holdings, BTreeSet<ChangeHash>)> {
    let conn = rusqlite::Connection::open(path)?;
    let mut holdings = Holdings::default();
    for id in doc_ids(&conn, "shared_docs")? {
        if let Some(doc) = node_doc(&conn, &id)? {
            holdings.add(id, &doc);
        }
    }
    let pending: Vec<String> = conn
        .prepare("SELECT hash FROM pending_changes")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let pending = pending
        .iter()
        .map(|h| h.parse::<ChangeHash>())
        .collect::<Result<_, _>>()?;
    Ok((holdings, pending))
}

/// Reads a hub database: every stored document's changes.
pub fn hub_holdings(path: &Path) -> anyhow::Result<Holdings> {
    let mut holdings = Holdings::default();
    if !path.exists() {
        return Ok(holdings);
    }
    let conn = rusqlite::Connection::open(path)?;
    for id in doc_ids(&conn, "documents")? {
        if let Some(doc) = hub_doc(&conn, &id)? {
            holdings.add(id, &doc);
        }
    }
    Ok(holdings)
}

/// A PKI, a hub config, a proxy and node data directories, in a temp dir.
pub struct ProcFederation {
    pub dir: tempfile::TempDir,
    pub proxy: Proxy,
    pub hub: Option<HubProcess>,
    /// (centre id, data directory), in the order given.
    pub nodes: Vec<(String, PathBuf)>,
}

impl ProcFederation {
    /// Creates the PKI, starts the hub and the proxy, and inits and joins
    /// one node per centre.
    pub async fn start(centres: &[&str], spaces: Vec<SpaceConfig>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let pki_dir = dir.path().join("pki");
        pki::init(&pki_dir, &[])?;
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            metrics_listen: Some("127.0.0.1:0".parse()?),
            address_file: None,
            database: Some(dir.path().join("hub").join("hub.sqlite")),
            spaces,
            limits: Limits::default(),
            ..Config::default()
        }
        .with_pki_dir(&pki_dir);
        std::fs::write(dir.path().join("hub.toml"), toml::to_string(&config)?)?;
        let hub = start_hub(&dir.path().join("hub.toml"), &dir.path().join("hub.log")).await?;
        let proxy = Proxy::start(hub.addr).await?;
        let mut fed = ProcFederation {
            dir,
            proxy,
            hub: Some(hub),
            nodes: Vec::new(),
        };
        for centre in centres {
            fed.add_node(centre).await?;
        }
        Ok(fed)
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    pub fn hub_config(&self) -> PathBuf {
        self.dir.path().join("hub.toml")
    }

    pub fn hub_db(&self) -> PathBuf {
        self.dir.path().join("hub").join("hub.sqlite")
    }

    /// Inits `DIR/nodes/<centre>` and joins it through the proxy.
    pub async fn add_node(&mut self, centre: &str) -> anyhow::Result<PathBuf> {
        let data = self.dir.path().join("nodes").join(centre);
        self.add_node_at(centre, data).await
    }

    /// Inits a node in `data` and joins it through the proxy.
    pub async fn add_node_at(&mut self, centre: &str, data: PathBuf) -> anyhow::Result<PathBuf> {
        let hub = self.proxy.addr();
        self.add_node_through(centre, data, hub).await
    }

    /// Inits a node in `data` and joins it with `hub` as the hub's address
    /// (a proxy of its own, say, standing for the node's network link).
    pub async fn add_node_through(
        &mut self,
        centre: &str,
        data: PathBuf,
        hub: SocketAddr,
    ) -> anyhow::Result<PathBuf> {
        let pki_dir = self.pki_dir();
        let pair = pki::issue(
            &pki_dir,
            &Identity::Centre(clps_model::CentreId::new(centre)?),
        )?;
        node_ok(&data, &["init", "--centre", centre]).await?;
        let hub = hub.to_string();
        node_ok(
            &data,
            &[
                "join",
                "--hub",
                &hub,
                "--ca",
                pki_dir.join(pki::CA_CERT).to_str().unwrap(),
                "--cert",
                pair.cert_path.to_str().unwrap(),
                "--key",
                pair.key_path.to_str().unwrap(),
                "--web",
                "127.0.0.1:0",
            ],
        )
        .await?;
        self.nodes.push((centre.to_owned(), data.clone()));
        Ok(data)
    }

    /// Kills the hub with SIGKILL.
    pub async fn kill_hub(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.kill9().await;
        }
    }

    /// Starts the hub again (new port; the proxy follows it).
    pub async fn restart_hub(&mut self) -> anyhow::Result<()> {
        self.kill_hub().await;
        let hub = start_hub(&self.hub_config(), &self.dir.path().join("hub.log")).await?;
        self.proxy.set_target(hub.addr);
        self.hub = Some(hub);
        Ok(())
    }

    /// Every SQLite file of the federation (nodes and hub).
    pub fn sqlite_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .nodes
            .iter()
            .map(|(_, d)| d.join("node.sqlite"))
            .collect();
        if self.hub_db().exists() {
            files.push(self.hub_db());
        }
        files
    }

    /// Syncs every node, in rounds, until no node has pending changes and
    /// every node holds the same changes as the hub; bounded by `deadline`.
    pub async fn converge(&self, deadline: Duration) -> anyhow::Result<usize> {
        let until = tokio::time::Instant::now() + deadline;
        let mut rounds = 0;
        loop {
            rounds += 1;
            for (_, data) in &self.nodes {
                // A failed sync is retried in the next round.
                let _ = node(data, &["sync"]).await?;
            }
            if self.converged()? {
                return Ok(rounds);
            }
            if tokio::time::Instant::now() > until {
                bail!("no convergence after {rounds} rounds");
            }
        }
    }

    /// Whether every node holds exactly the hub's changes, nothing pending.
    pub fn converged(&self) -> anyhow::Result<bool> {
        let hub = hub_holdings(&self.hub_db())?.all();
        for (_, data) in &self.nodes {
            let (holdings, pending) = node_holdings(&data.join("node.sqlite"))?;
            if !pending.is_empty() || holdings.all() != hub {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
