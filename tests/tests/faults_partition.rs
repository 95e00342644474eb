//! Partitions: nodes reach the hub through a TCP proxy under test control
//! that passes, delays, black-holes, refuses or cuts connections (also in
//! the middle of a sync), while centres keep editing on both sides of the
//! cut, one of them through a long-lived `serve`. After every round, every
//! change that left a node's pending list is at the hub; after healing,
//! everyone converges with every edit kept.
//!
//! CI runs a fixed number of seeded rounds; `CLPS_SOAK_SECONDS` loops for
//! that long; `CLPS_FAULT_SEED` replays a schedule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use clps_hub::Identity;
use clps_hub::config::Limits;
use clps_model::docs::catalogue::{RecordEdit, bucket_of};
use clps_node::link::{DocStore, LinkConfig, MemoryStore, serve, sync_once};
use clps_tests::figures::{self, Figures, Rng};
use clps_tests::proxy::{Mode, Proxy};
use clps_tests::{Federation, Node};

const CI_ROUNDS: u64 = 20;

/// Changes in `store` written by `node`'s actor.
fn authored(node: &Node, store: &MemoryStore) -> BTreeSet<ChangeHash> {
    let actor = node.actor.actor_id();
    store
        .doc_ids()
        .iter()
        .filter_map(|d| store.doc(d))
        .flat_map(|doc| {
            doc.get_changes(&[])
                .iter()
                .filter(|c| c.actor_id() == &actor)
                .map(|c| c.hash())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn all_changes(store: &MemoryStore) -> BTreeSet<ChangeHash> {
    store
        .doc_ids()
        .iter()
        .filter_map(|d| store.doc(d))
        .flat_map(|doc| {
            doc.get_changes(&[])
                .iter()
                .map(|c| c.hash())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn pending(store: &MemoryStore) -> BTreeSet<ChangeHash> {
    store
        .pending_changes()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, h)| h)
        .collect()
}

fn through(config: &LinkConfig, proxy: &Proxy) -> LinkConfig {
    let mut config = config.clone();
    config.hub = proxy.addr().to_string();
    config.connect_timeout = Duration::from_secs(2);
    // A black-holed sync gives up after this; a real one takes far less.
    config.sync_timeout = Duration::from_secs(3);
    config.backoff_min = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(400);
    config.local_poll = Duration::from_millis(100);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_heal_and_every_acknowledged_change_is_at_the_hub() {
    let started = Instant::now();
    let seed = figures::seed();
    let mut rng = Rng::new(seed);
    let fed = Federation::start(Vec::new(), Limits::default())
        .await
        .unwrap();
    let mut nodes = vec![
        Node::centre(&fed, "namur").unwrap(),
        Node::centre(&fed, "liege").unwrap(),
        Node::centre(&fed, "bruxelles").unwrap(),
    ];
    let mut proxies = Vec::new();
    for node in nodes.iter_mut().take(2) {
        let proxy = Proxy::start(fed.hub.local_addr()).await.unwrap();
        node.config = through(&node.config, &proxy);
        proxies.push(proxy);
    }
    let observer = Node::new(&fed, Identity::Committee("inter-clps".to_owned()), 9).unwrap();
    // A shared record everyone edits, on different fields.
    let shared = nodes[0].create_record(1, "Le jeu des émotions").unwrap();
    sync_once(&nodes[0].config, &nodes[0].store).await.unwrap();
    for node in &nodes[1..] {
        sync_once(&node.config, &node.store).await.unwrap();
    }
    // liege also keeps a serve session open, through its proxy.
    let nodes = Arc::new(nodes);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let nodes = nodes.clone();
        tokio::spawn(async move {
            serve(&nodes[1].config, &nodes[1].store, async {
                let _ = stopped.await;
            })
            .await
        })
    };

    let soak = figures::soak();
    let mut round = 0u64;
    let mut acknowledged: BTreeSet<ChangeHash> = BTreeSet::new();
    let mut lost = 0u64;
    let mut serial = 10u64;
    loop {
        let more = match soak {
            Some(budget) => started.elapsed() < budget,
            None => round < CI_ROUNDS,
        };
        if !more {
            break;
        }
        round += 1;
        // Edits on every side.
        for (i, node) in nodes.iter().enumerate() {
            if rng.chance(60) {
                serial += 1;
                node.create_record(serial, &format!("Outil {serial} (tour {round})"))
                    .unwrap();
            }
            if rng.chance(40) {
                let mut doc = node.bucket(bucket_of(&shared)).unwrap();
                let edit = match i {
                    0 => RecordEdit::Title(format!("Le jeu des émotions, tour {round}")),
                    1 => RecordEdit::AgeRange {
                        min: Some(6 + (round % 4) as u8),
                        max: Some(12),
                    },
                    _ => RecordEdit::Publisher(format!("Éditeur {round}")),
                };
                doc.edit_record(&shared, &[edit]).unwrap();
                node.commit(doc).unwrap();
            }
        }
        // Faults on the proxied links.
        let mut cut_later = Vec::new();
        for (i, proxy) in proxies.iter().enumerate() {
            match rng.below(10) {
                0..=3 => proxy.set_mode(Mode::Pass),
                4..=5 => proxy.set_mode(Mode::Delay(Duration::from_millis(5 + rng.below(40)))),
                6 => proxy.set_mode(Mode::BlackHole),
                7 => proxy.set_mode(Mode::Refuse),
                _ => cut_later.push((i, rng.below(60))),
            }
        }
        let syncs = async {
            let (a, b, c) = tokio::join!(
                sync_once(&nodes[0].config, &nodes[0].store),
                sync_once(&nodes[1].config, &nodes[1].store),
                sync_once(&nodes[2].config, &nodes[2].store),
            );
            [a.is_ok(), b.is_ok(), c.is_ok()]
        };
        let cuts = async {
            for (i, delay) in cut_later {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                proxies[i].cut();
            }
        };
        let (ok, ()) = tokio::join!(syncs, cuts);
        assert!(ok[2], "the directly connected node always syncs");
        for proxy in &proxies {
            proxy.set_mode(Mode::Pass);
        }
        // Whatever left a pending list is at the hub.
        for node in nodes.iter() {
            let acked: BTreeSet<_> = authored(node, &node.store)
                .difference(&pending(&node.store).await)
                .copied()
                .collect();
            acknowledged.extend(acked);
        }
        sync_once(&observer.config, &observer.store).await.unwrap();
        let at_hub = all_changes(&observer.store);
        let missing: Vec<_> = acknowledged.difference(&at_hub).collect();
        lost += missing.len() as u64;
        assert!(
            missing.is_empty(),
            "round {round} (seed {seed}): acknowledged but not at the hub: {missing:?}"
        );
    }

    // Heal: every link passes; sync until everyone agrees.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for node in nodes.iter() {
            let _ = sync_once(&node.config, &node.store).await;
        }
        sync_once(&observer.config, &observer.store).await.unwrap();
        let hub = all_changes(&observer.store);
        let mut done = true;
        for node in nodes.iter() {
            done &= pending(&node.store).await.is_empty() && all_changes(&node.store) == hub;
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence after healing");
    }
    let hub = all_changes(&observer.store);
    for node in nodes.iter() {
        assert!(authored(node, &node.store).is_subset(&hub));
        acknowledged.extend(authored(node, &node.store));
    }
    // The three centres' edits of the shared record all survived.
    let merged = nodes[2].bucket(bucket_of(&shared)).unwrap();
    let record = merged.record(&shared).unwrap();
    let view = observer.bucket(bucket_of(&shared)).unwrap();
    assert_eq!(view.record(&shared).unwrap().fields, record.fields);

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    let faults: u64 = proxies.iter().map(Proxy::faults).sum();
    println!(
        "seed {seed}: {round} rounds, {faults} link faults, {} changes acknowledged",
        acknowledged.len()
    );
    fed.hub.shutdown();
    fed.hub.join().await.unwrap();
    figures::record(&Figures {
        scenario: "partition-proxy".to_owned(),
        iterations: round,
        faults_injected: faults,
        changes_acknowledged: acknowledged.len() as u64,
        changes_lost: lost,
        seconds: started.elapsed().as_secs_f64(),
        ..Figures::default()
    });
}
