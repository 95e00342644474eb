//! A seeded federation: a hub (gRPC and the committee dashboard, both on
//! port 0) and centre nodes on their real SQLite stores, seeded, published
//! and synced through the same library calls as `clps-node seed`,
//! `clps-node sync` and `clps-node stats` (the CLI is a thin layer over them).
//!
//! Charleroi-Thuin is seeded with the published 2021 figures
//! (`seed --calibration`); the other centres with `--scale` (the sizes of
//! `clps-federation`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clps_hub::config::Limits;
use clps_hub::{Config, Hub, Identity, PayloadTap, pki};
use clps_model::CentreId;
use clps_model::stats::Dimension;
use clps_node::federation::NodeDocStore;
use clps_node::link::{LinkConfig, SyncReport, sync_once};
use clps_node::seed::{self, SeedOptions};
use clps_node::store::{OpenMode, Store};

use crate::{Federation, centre};

/// A hub with its dashboard listening (port 0), optionally tapped.
pub async fn start_hub(tap: Option<PayloadTap>) -> anyhow::Result<Federation> {
    let dir = tempfile::tempdir()?;
    pki::init(&dir.path().join("pki"), &[])?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        metrics_listen: None,
        dashboard_listen: Some("127.0.0.1:0".parse()?),
        database: Some(dir.path().join("hub.sqlite")),
        limits: Limits::default(),
        ..Config::default()
    }
    .with_pki_dir(&dir.path().join("pki"));
    let hub = Hub::bind_with_tap(&config, tap).await.context("hub bind")?;
    Ok(Federation { dir, hub })
}

impl Federation {
    /// The hub's database, opened as `clps-hub stats` opens it.
    pub fn hub_store(&self) -> anyhow::Result<clps_hub::store::Store> {
        Ok(clps_hub::store::Store::open(Some(
            &self.dir.path().join("hub.sqlite"),
        ))?)
    }
}

/// A centre's node on its own SQLite store.
pub struct SeededNode {
    pub centre: CentreId,
    pub dir: PathBuf,
    pub store: Store,
    pub config: LinkConfig,
}

/// Creates, initialises and seeds `centre`'s node for `year`, like
/// `clps-node init` then `clps-node seed` (calibrated for charleroi-thuin
/// 2021, scaled otherwise).
pub async fn seed_node(fed: &Federation, id: &str, year: i32) -> anyhow::Result<SeededNode> {
    let node = init_node(fed, id).await?;
    let scale = clps_model::seed_data::relative_size(id);
    node.seed_year(year, id == "charleroi-thuin" && year == 2021, scale)
        .await?;
    Ok(node)
}

/// `clps-node init --centre ID` in the federation's temp dir, with the
/// centre's link settings (certificate issued by the test PKI).
pub async fn init_node(fed: &Federation, id: &str) -> anyhow::Result<SeededNode> {
    let centre_id = centre(id);
    let dir = fed.dir.path().join("nodes").join(id);
    let store = Store::open(&dir, OpenMode::Create)?;
    let c = centre_id.clone();
    let instance = [centre_id.as_str().len() as u8; 8];
    store
        .call(move |conn| clps_node::centre::init(conn, &c, instance))
        .await?;
    Ok(SeededNode {
        config: fed.link_config(&Identity::Centre(centre_id.clone()))?,
        centre: centre_id,
        dir,
        store,
    })
}

impl SeededNode {
    /// `clps-node seed --year Y (--calibration | --scale S)`: one
    /// transaction for the people, then one per month.
    pub async fn seed_year(&self, year: i32, calibration: bool, scale: f64) -> anyhow::Result<()> {
        let plan = Arc::new(seed::plan(&SeedOptions {
            centre: self.centre.clone(),
            year,
            calibration,
            scale,
            seed: 1,
        })?);
        let p = plan.clone();
        let ids = Arc::new(
            self.store
                .call(move |c| {
                    let tx = c.transaction()?;
                    let ids = seed::write_people(&tx, &p)?;
                    tx.commit()?;
                    Ok(ids)
                })
                .await?,
        );
        for month in 0..plan.months.len() {
            let (p, ids) = (plan.clone(), ids.clone());
            self.store
                .call(move |c| {
                    let tx = c.transaction()?;
                    seed::write_month(&tx, &p.months[month], &ids)?;
                    tx.commit()?;
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    /// `clps-node sync`: publish the aggregates, then one sync session.
    pub async fn sync(&self) -> anyhow::Result<SyncReport> {
        self.store.call(clps_node::publish::publish).await?;
        let docs = NodeDocStore {
            store: self.store.clone(),
        };
        Ok(sync_once(&self.config, &docs).await?)
    }

    /// `clps-node stats --year Y --by D --format csv`.
    pub async fn stats_csv(&self, year: i32, by: Dimension) -> anyhow::Result<String> {
        let table = self
            .store
            .call(move |c| Ok(clps_node::stats::cross_table(c, year, by)?))
            .await?;
        Ok(table.to_csv())
    }

    /// Every private string this node holds: person names ("first last"
    /// and last names), e-mails, phones, and free-text notes.
    pub async fn private_strings(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .store
            .call(|c| {
                let mut out = Vec::new();
                let mut stmt = c.prepare(
                    "SELECT first_name, last_name, coalesce(email, ''), coalesce(phone, '') FROM persons",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })?;
                for row in rows {
                    let (first, last, email, phone) = row?;
                    out.push(format!("{first} {last}"));
                    out.push(last);
                    out.push(email);
                    out.push(phone);
                }
                for sql in [
                    "SELECT note FROM requests",
                    "SELECT note FROM accompaniments",
                ] {
                    let mut stmt = c.prepare(sql)?;
                    for note in stmt.query_map([], |r| r.get::<_, String>(0))? {
                        out.push(note?);
                    }
                }
                Ok(out)
            })
            .await?
            .into_iter()
            // Very short strings would match by accident (and say nothing).
            .filter(|s| s.chars().count() >= 5)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect())
    }
}

/// Every centre, seeded for `year`.
pub async fn seed_all(fed: &Federation, year: i32) -> anyhow::Result<Vec<SeededNode>> {
    let mut nodes = Vec::new();
    for c in clps_model::centres::all() {
        nodes.push(seed_node(fed, &c.id, year).await?);
    }
    Ok(nodes)
}

/// The published 2021 calibration, from `../shared` when present (the
/// source of truth), else the copy embedded in `clps-model`.
pub fn calibration_json() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/domain/calibration-charleroi-thuin-2021.json");
    std::fs::read_to_string(path)
        .unwrap_or_else(|_| clps_model::seed_data::CALIBRATION_JSON.to_owned())
}
