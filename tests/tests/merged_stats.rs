//! Merged statistics end to end (issue 6, "done when"): ten seeded nodes
//! publish and sync; the hub's merged 2021 `by_sector` table equals the
//! cell-by-cell sum of the ten nodes' own `clps-node stats --by sector
//! --format csv` tables, and its charleroi-thuin column equals the
//! published cells. The same run captures every client message the hub
//! receives (decoded at the application level, after TLS) and the hub's
//! stored documents, and finds none of the nodes' people or notes in them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use automerge::{AutoCommit, AutoSerde, Automerge, ReadDoc};
use clps_hub::stats_report;
use clps_model::stats::Dimension;
use clps_proto::pb;
use clps_proto::pb::client_message::Kind;
use clps_tests::seeded;
use prost::Message as _;

/// `code -> column -> value` from a `code,<services>,total` CSV.
fn parse_csv(text: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), header.len(), "{line}");
        let row = header[1..]
            .iter()
            .zip(&fields[1..])
            .map(|(h, v)| ((*h).to_owned(), v.parse::<u64>().unwrap()))
            .collect();
        out.insert(fields[0].to_owned(), row);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_2021_by_sector_is_the_sum_of_the_nodes_and_nothing_personal_reaches_the_hub() {
    let started = Instant::now();
    let (tap, mut tapped) = tokio::sync::mpsc::unbounded_channel();
    let fed = seeded::start_hub(Some(tap)).await.unwrap();
    let nodes = seeded::seed_all(&fed, 2021).await.unwrap();
    let seeded_at = started.elapsed();
    for node in &nodes {
        let report = node.sync().await.unwrap();
        assert!(report.failures.is_empty(), "{}: {report:?}", node.centre);
    }
    let synced_at = started.elapsed();

    // (a) The merged table is the cell-by-cell sum of the nodes' own CSVs.
    let mut sum: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for node in &nodes {
        let csv = node.stats_csv(2021, Dimension::Sector).await.unwrap();
        for (code, row) in parse_csv(&csv) {
            let target = sum.entry(code).or_default();
            for (col, n) in row {
                *target.entry(col).or_default() += n;
            }
        }
    }
    let hub_store = fed.hub_store().unwrap();
    let report = stats_report::report(&hub_store, 2021, Dimension::Sector)
        .await
        .unwrap();
    assert_eq!(
        report.merged.included.len(),
        10,
        "{:?}",
        report.merged.missing
    );
    let merged = parse_csv(&stats_report::to_csv(&report, None, false, None));
    assert_eq!(merged, sum, "hub table vs sum of the ten node tables");
    let network_total = merged["total"]["total"];
    assert!(network_total > 5000, "{network_total}");

    // ... and the charleroi-thuin column equals the published cells.
    let calibration: serde_json::Value = serde_json::from_str(&seeded::calibration_json()).unwrap();
    let published = calibration["requests"]["by_sector"]["cells"]
        .as_object()
        .unwrap();
    let charleroi = parse_csv(&stats_report::to_csv(
        &report,
        Some("charleroi-thuin"),
        false,
        None,
    ));
    let mut n_cells = 0;
    for (sector, row) in &charleroi {
        if sector == "total" {
            continue;
        }
        for (service, n) in row {
            if service == "total" {
                continue;
            }
            let expected = published
                .get(sector)
                .and_then(|r| r.get(service))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            assert_eq!(*n, expected, "charleroi-thuin {sector} × {service}");
            n_cells += 1;
        }
    }
    assert!(n_cells >= 150, "{n_cells} cells compared");
    // Every published cell is a cell of the merged table.
    for (sector, row) in published {
        for service in row.as_object().unwrap().keys() {
            assert!(
                charleroi.get(sector).and_then(|r| r.get(service)).is_some(),
                "{sector} × {service} missing at the hub"
            );
        }
    }
    // The per-centre export carries the same column.
    let per_centre = stats_report::to_csv(&report, None, true, None);
    let header = per_centre.lines().next().unwrap();
    assert!(header.contains("charleroi-thuin:pret"), "{header}");

    let compared_at = started.elapsed();

    // (b) Privacy: everything the hub received, decoded, and everything it
    // stored, against every private string of every node.
    let mut private: BTreeSet<String> = BTreeSet::new();
    for node in &nodes {
        private.extend(node.private_strings().await.unwrap());
    }
    assert!(
        private.iter().any(|s| s.contains('@')) && private.len() > 200,
        "the seed wrote people, e-mails and notes: {}",
        private.len()
    );
    let mut texts: Vec<String> = Vec::new();
    let mut messages = 0usize;
    let mut payload_bytes = 0usize;
    let mut changes: BTreeMap<String, Automerge> = BTreeMap::new();
    let mut senders = BTreeSet::new();
    while let Ok((identity, bytes)) = tapped.try_recv() {
        messages += 1;
        payload_bytes += bytes.len();
        senders.insert(identity.to_string());
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
        let message = pb::ClientMessage::decode(bytes.as_slice()).unwrap();
        if let Some(Kind::Sync(sync)) = message.kind {
            let decoded = automerge::sync::Message::decode(&sync.message).unwrap();
            let doc = changes
                .entry(format!("{identity}|{}", sync.doc_id))
                .or_default();
            for chunk in decoded.changes.iter() {
                // Change chunks may be DEFLATE-compressed: load them to read
                // their values.
                doc.load_incremental(chunk).unwrap();
            }
        }
    }
    assert_eq!(senders.len(), 10, "{senders:?}");
    assert!(
        senders.iter().all(|s| s.starts_with("centre/")),
        "{senders:?}"
    );
    let mut n_changes = 0;
    for (key, doc) in &changes {
        n_changes += doc.get_changes(&[]).len();
        assert!(
            doc.get_missing_deps(&[]).is_empty(),
            "{key}: every change the node sent was captured"
        );
        texts.push(serde_json::to_string(&AutoSerde::from(doc)).unwrap());
        texts.push(String::from_utf8_lossy(&doc.save_nocompress()).into_owned());
    }
    assert!(
        changes.keys().filter(|k| k.contains("|stats/")).count() == 10,
        "each centre sent its statistics document: {:?}",
        changes.keys()
    );
    let mut stored = 0;
    for (doc_id, _, _) in hub_store.index().await.unwrap() {
        let loaded = hub_store.load(&doc_id).await.unwrap().unwrap();
        let mut doc = AutoCommit::load(&loaded.snapshot).unwrap();
        for chunk in &loaded.chunks {
            doc.load_incremental(chunk).unwrap();
        }
        texts.push(serde_json::to_string(&AutoSerde::from(&doc)).unwrap());
        texts.push(String::from_utf8_lossy(&doc.save_nocompress()).into_owned());
        stored += 1;
    }
    // The capture is not vacuous: it holds the published figures.
    assert!(
        texts.iter().any(|t| t.contains("req_sector")),
        "figures were captured"
    );
    let captured_at = started.elapsed();
    // One automaton for the 2,000-odd strings: a plain `contains` per pair
    // takes the best part of a minute on megabytes of saved documents.
    let secrets: Vec<&String> = private.iter().collect();
    let matcher = aho_corasick::AhoCorasick::new(&secrets).unwrap();
    let scanned: usize = texts.iter().map(String::len).sum();
    assert!(
        matcher
            .find(&format!("{{\"note\":\"{}\"}}", secrets[0]))
            .is_some(),
        "the matcher finds a planted string"
    );
    for text in &texts {
        if let Some(hit) = matcher.find(text) {
            panic!(
                "private string « {} » reached the hub",
                secrets[hit.pattern().as_usize()]
            );
        }
    }
    println!(
        "seeded 10 nodes in {:.1} s, synced in {:.1} s, tables compared in {:.1} s; network total {network_total} requests; \
         captured {messages} messages ({payload_bytes} B, {n_changes} changes) and {stored} stored documents in {:.1} s; \
         checked {} private strings against {scanned} bytes; total {:.1} s",
        seeded_at.as_secs_f64(),
        (synced_at - seeded_at).as_secs_f64(),
        (compared_at - synced_at).as_secs_f64(),
        (captured_at - compared_at).as_secs_f64(),
        private.len(),
        started.elapsed().as_secs_f64()
    );
}
