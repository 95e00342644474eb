//! Crashes: `kill -9` of the hub and of node processes (the real
//! `clps-hub` and `clps-node` binaries, SQLite on disk) at seeded random
//! moments during syncs, during local writes, and during a long-lived
//! `serve`. After every hub kill, every change some node had seen
//! acknowledged (it left the node's pending list) must be in the hub's
//! database; at the end everything converges, every change written anywhere
//! is everywhere, and `PRAGMA integrity_check` passes on every file.
//!
//! CI runs a fixed number of iterations; `CLPS_SOAK_SECONDS` turns it into
//! a soak that loops until the budget is spent. `CLPS_FAULT_SEED` replays a
//! schedule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use clps_tests::figures::{self, Figures, Rng};
use clps_tests::procs::{self, ProcFederation, finish, hub_holdings, node_holdings, spawn_node};
use tokio::process::Child;

const CENTRES: [&str; 3] = ["namur", "liege", "bruxelles"];
const CI_ITERATIONS: u64 = 20;

/// Everything each node has seen leave its pending list, so far.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeMap<String, BTreeSet<ChangeHash>>,
}

impl Ledger {
    /// Reads every node: its own changes minus its pending list were
    /// acknowledged by the hub.
    fn observe(&mut self, fed: &ProcFederation) {
        for (centre, data) in &fed.nodes {
            let (holdings, pending) = node_holdings(&data.join("node.sqlite")).unwrap();
            let acked: BTreeSet<ChangeHash> = holdings
                .authored_by(centre)
                .difference(&pending)
                .copied()
                .collect();
            self.acknowledged
                .entry(centre.clone())
                .or_default()
                .extend(acked);
        }
    }

    fn all(&self) -> BTreeSet<ChangeHash> {
        self.acknowledged.values().flatten().copied().collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_hub_and_nodes_loses_no_acknowledged_change() {
    let started = Instant::now();
    let soak = figures::soak();
    let seed = figures::seed();
    let mut rng = Rng::new(seed);
    let mut fed = ProcFederation::start(&CENTRES, Vec::new()).await.unwrap();
    let mut ledger = Ledger::default();
    let mut faults = 0u64;
    let mut lost = 0u64;
    let mut serial = 0u64;

    // A long-lived `serve` on the last node, killed and restarted at random.
    let serve_data = fed.nodes[2].1.clone();
    let mut serve: Option<Child> = Some(spawn_node(&serve_data, &["serve"]).unwrap());

    let mut iteration = 0u64;
    loop {
        let more = match soak {
            Some(budget) => started.elapsed() < budget,
            None => iteration < CI_ITERATIONS,
        };
        if !more {
            break;
        }
        iteration += 1;
        // Local writes and syncs, concurrently, on random nodes.
        let mut children: Vec<Child> = Vec::new();
        for (centre, data) in &fed.nodes {
            if rng.chance(70) {
                serial += 1;
                let title = format!("Outil {serial} de {centre} (itération {iteration})");
                let args = ["catalogue", "add", "--title", &title, "--type", "ouvrage"];
                children.push(spawn_node(data, &args).unwrap());
            }
            if rng.chance(70) {
                children.push(spawn_node(data, &["sync"]).unwrap());
            }
        }
        let kill_hub = rng.chance(40);
        tokio::time::sleep(Duration::from_millis(rng.below(600))).await;
        // Faults: SIGKILL some node processes, maybe the hub, maybe serve.
        for child in &mut children {
            if rng.chance(40) {
                let _ = child.start_kill();
                faults += 1;
            }
        }
        if kill_hub {
            fed.kill_hub().await;
            faults += 1;
        }
        if rng.chance(30)
            && let Some(mut s) = serve.take()
        {
            let _ = s.start_kill();
            let _ = s.wait().await;
            faults += 1;
        }
        for child in children {
            // Killed or not, each one ends (a sync without hub fails fast).
            let _ = finish(child).await.unwrap();
        }
        if let Some(mut s) = serve.take() {
            // Stop it for the observation (a kill, too: it is never asked nicely).
            let _ = s.start_kill();
            let _ = s.wait().await;
        }
        ledger.observe(&fed);
        if fed.hub.is_none() {
            // The hub died: whatever it had acknowledged must be on its disk.
            let at_hub = hub_holdings(&fed.hub_db()).unwrap().all();
            let missing: Vec<_> = ledger.all().difference(&at_hub).copied().collect();
            lost += missing.len() as u64;
            assert!(
                missing.is_empty(),
                "iteration {iteration} (seed {seed}): acknowledged changes missing at the hub: {missing:?}"
            );
            fed.restart_hub().await.unwrap();
        }
        serve = Some(spawn_node(&serve_data, &["serve"]).unwrap());
    }
    if let Some(mut s) = serve.take() {
        let _ = s.start_kill();
        let _ = s.wait().await;
    }

    // Heal: sync until everyone agrees, then check everything.
    let rounds = fed.converge(Duration::from_secs(120)).await.unwrap();
    ledger.observe(&fed);
    let at_hub = hub_holdings(&fed.hub_db()).unwrap();
    let mut written = 0usize;
    for (centre, data) in &fed.nodes {
        let (holdings, pending) = node_holdings(&data.join("node.sqlite")).unwrap();
        assert!(pending.is_empty(), "{centre}: pending after convergence");
        let authored = holdings.authored_by(centre);
        written += authored.len();
        for (other, other_data) in &fed.nodes {
            let (theirs, _) = node_holdings(&other_data.join("node.sqlite")).unwrap();
            let theirs = theirs.all();
            let missing: Vec<_> = authored.difference(&theirs).collect();
            assert!(
                missing.is_empty(),
                "{other} lacks changes of {centre}: {missing:?}"
            );
        }
        assert!(
            authored.is_subset(&at_hub.all()),
            "hub lacks changes of {centre}"
        );
    }
    let acknowledged = ledger.all().len() as u64;
    assert!(acknowledged > 0);
    for file in fed.sqlite_files() {
        assert_eq!(procs::integrity_check(&file), "ok", "{}", file.display());
    }
    // The titles written by processes that were not killed are searchable
    // on every node (the projection followed the documents).
    let records: Vec<u64> = {
        let mut out = Vec::new();
        for (_, data) in &fed.nodes {
            let docs = procs::node_ok(data, &["docs"]).await.unwrap();
            let value: serde_json::Value = serde_json::from_str(&docs).unwrap();
            out.push(value["catalogue_records"].as_u64().unwrap());
        }
        out
    };
    assert!(records.windows(2).all(|w| w[0] == w[1]), "{records:?}");
    println!(
        "seed {seed}: {iteration} iterations, {faults} kills, {written} changes written, {acknowledged} acknowledged, {rounds} healing round(s), {} records",
        records[0]
    );
    fed.kill_hub().await;
    figures::record(&Figures {
        scenario: "crash-kill9".to_owned(),
        iterations: iteration,
        faults_injected: faults,
        changes_acknowledged: acknowledged,
        changes_lost: lost,
        seconds: started.elapsed().as_secs_f64(),
        ..Figures::default()
    });
}
