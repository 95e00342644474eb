//! The integration harness: a hub on 127.0.0.1 port 0 with real mutual TLS,
//! certificates from `clps_hub::pki` in a temp dir, and nodes that are
//! `clps_node::link` clients over in-memory stores.
//!
//! Nothing here sleeps to wait for readiness: `Hub::bind` returns once the
//! hub listens, and every sync call returns once converged.
//!
//! `seeded` adds nodes on real SQLite stores, seeded like `clps-node seed`
//! (merged statistics, privacy capture, committee dashboard).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness

pub mod browser;
pub mod figures;
pub mod procs;
pub mod proxy;

pub mod seeded;
pub mod staff_web;

use std::path::{Path, PathBuf};

use anyhow::Context;
use automerge::Automerge;
use clps_hub::config::{Limits, SpaceConfig};
use clps_hub::{Config, Hub, Identity, pki};
use clps_model::docs::catalogue::{RecordFields, RecordId};
use clps_model::docs::{CatalogueDoc, DocId};
use clps_model::{CentreActor, CentreId};
use clps_node::link::{LinkConfig, MemoryStore};
use clps_proto::pb;
use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub struct Federation {
    pub dir: TempDir,
    pub hub: Hub,
}

pub fn centre(id: &str) -> CentreId {
    CentreId::new(id).expect("known centre")
}

pub fn all_centres() -> Vec<CentreId> {
    clps_model::centres::all()
        .iter()
        .map(|c| centre(&c.id))
        .collect()
}

impl Federation {
    /// A hub with the given extra spaces (the catalogue and stats are
    /// always there) and limits.
    pub async fn start(spaces: Vec<SpaceConfig>, limits: Limits) -> anyhow::Result<Federation> {
        Federation::start_with(spaces, limits, |_, _| Ok(())).await
    }

    /// [`Federation::start`], letting `prepare` adjust the configuration
    /// (and use the PKI directory) before the hub binds.
    pub async fn start_with(
        spaces: Vec<SpaceConfig>,
        limits: Limits,
        prepare: impl FnOnce(&mut Config, &Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Federation> {
        let dir = tempfile::tempdir()?;
        pki::init(&dir.path().join("pki"), &[])?;
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            metrics_listen: Some("127.0.0.1:0".parse()?),
            address_file: None,
            database: Some(dir.path().join("hub.sqlite")),
            spaces,
            limits,
            ..Config::default()
        }
        .with_pki_dir(&dir.path().join("pki"));
        let mut config = config;
        prepare(&mut config, &dir.path().join("pki"))?;
        let hub = Hub::bind(&config).await.context("hub bind")?;
        Ok(Federation { dir, hub })
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    /// Issues (once) a certificate for `identity` and returns a link config.
    pub fn link_config(&self, identity: &Identity) -> anyhow::Result<LinkConfig> {
        link_config_from(
            &self.pki_dir(),
            &self.pki_dir(),
            identity,
            self.hub.local_addr(),
        )
    }

    /// A client certificate from another CA, trusting the real hub.
    pub fn foreign_link_config(&self, identity: &Identity) -> anyhow::Result<LinkConfig> {
        let foreign = self.dir.path().join("foreign-pki");
        if !foreign.join(pki::CA_KEY).exists() {
            pki::init(&foreign, &[])?;
        }
        link_config_from(&self.pki_dir(), &foreign, identity, self.hub.local_addr())
    }

    /// A raw gRPC channel (generated stubs, or any codec) for `identity`.
    pub async fn channel(&self, identity: &Identity) -> anyhow::Result<Channel> {
        let config = self.link_config(identity)?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&config.ca_cert_pem))
            .identity(tonic::transport::Identity::from_pem(
                &config.cert_pem,
                &config.key_pem,
            ))
            .domain_name("localhost");
        Ok(Endpoint::from_shared(format!("https://{}", config.hub))?
            .tls_config(tls)?
            .connect()
            .await?)
    }

    pub async fn list_spaces(&self, identity: &Identity) -> anyhow::Result<pb::ListSpacesResponse> {
        let mut client = pb::sync_client::SyncClient::new(self.channel(identity).await?);
        Ok(client
            .list_spaces(pb::ListSpacesRequest {})
            .await?
            .into_inner())
    }
}

fn link_config_from(
    server_ca_dir: &Path,
    client_pki: &Path,
    identity: &Identity,
    addr: std::net::SocketAddr,
) -> anyhow::Result<LinkConfig> {
    let stem = match identity {
        Identity::Centre(c) => format!("centre-{c}"),
        Identity::Committee(n) => format!("committee-{n}"),
    };
    let cert = client_pki.join(format!("{stem}.crt"));
    if !cert.exists() {
        pki::issue(client_pki, identity)?;
    }
    let mut config = LinkConfig::from_files(
        addr.to_string(),
        &server_ca_dir.join(pki::CA_CERT),
        &cert,
        &client_pki.join(format!("{stem}.key")),
    )?;
    config.sync_timeout = std::time::Duration::from_secs(60);
    Ok(config)
}

/// One node: a centre (or committee) with its in-memory store.
pub struct Node {
    pub identity: Identity,
    pub actor: CentreActor,
    pub store: MemoryStore,
    pub config: LinkConfig,
}

impl Node {
    pub fn new(federation: &Federation, identity: Identity, instance: u8) -> anyhow::Result<Node> {
        let actor_centre = match &identity {
            Identity::Centre(c) => c.clone(),
            // A committee has no actor of its own; any local edit it makes
            // is one the hub must refuse.
            Identity::Committee(_) => centre("namur"),
        };
        Ok(Node {
            config: federation.link_config(&identity)?,
            identity,
            actor: CentreActor::new(actor_centre, [instance; 8]),
            store: MemoryStore::new(),
        })
    }

    pub fn centre(federation: &Federation, id: &str) -> anyhow::Result<Node> {
        Node::new(federation, Identity::Centre(centre(id)), 1)
    }

    /// Opens a catalogue bucket as this node (created if absent).
    pub fn bucket(&self, bucket: u16) -> anyhow::Result<CatalogueDoc> {
        self.bucket_as(bucket, self.actor.clone())
    }

    pub fn bucket_as(&self, bucket: u16, actor: CentreActor) -> anyhow::Result<CatalogueDoc> {
        Ok(match self.store.doc(&DocId::catalogue(bucket)) {
            Some(doc) => CatalogueDoc::load(bucket, &doc.save(), actor)?,
            None => CatalogueDoc::create(bucket, actor)?,
        })
    }

    /// Stores the edits of `doc` as local (pending) changes.
    pub fn commit(&self, mut doc: CatalogueDoc) -> anyhow::Result<()> {
        let id = doc.doc_id().clone();
        let automerge: Automerge = doc.automerge_mut().document().clone();
        self.store.commit_local(&id, &automerge)?;
        Ok(())
    }

    /// Creates a record with a few fields; returns its id.
    pub fn create_record(&self, local_number: u64, title: &str) -> anyhow::Result<RecordId> {
        let centre = self.actor.centre.clone();
        let id = RecordId::from_local(&centre, local_number);
        let mut doc = self.bucket(clps_model::docs::catalogue::bucket_of(&id))?;
        doc.create_record(
            &id,
            &RecordFields {
                title: title.to_owned(),
                doc_type: "ouvrage".to_owned(),
                description: format!("Outil catalogué par {centre}"),
                ..RecordFields::default()
            },
        )?;
        self.commit(doc)?;
        Ok(id)
    }
}

/// Waits until `condition` holds, up to ten seconds, then panics naming
/// `what`. For outcomes the code under test announces nowhere a test could
/// subscribe to (a hub counter, another process's heads), never for
/// readiness: servers are waited for by their listening line.
pub async fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    wait_within(what, std::time::Duration::from_secs(10), condition).await;
}

/// [`wait_for`] with a bound of the caller's (a federation converging after
/// minutes of edits may take longer than ten seconds).
pub async fn wait_within(
    what: &str,
    bound: std::time::Duration,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + bound;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in time: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
