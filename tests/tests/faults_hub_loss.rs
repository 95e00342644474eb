//! Hub loss: the hub's database is deleted; `clps-hub recover` rebuilds it
//! from the nodes' data directories (or their `clps-node backup` files)
//! alone, and nothing the hub had is lost. Each change is revalidated for
//! its own actor's centre, so a change the hub would have refused, found in
//! a tampered node file, stays out; and recovery refuses to overwrite a
//! database that holds documents.
//!
//! Known limit (no per-change signatures): a tampered file can carry a
//! change in another centre's name that the rules accept; recovery cannot
//! tell it from a genuine one. Feed it the nodes' own files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use automerge::Automerge;
use clps_model::docs::DocId;
use clps_model::{CentreActor, CentreId};
use clps_tests::figures::{self, Figures};
use clps_tests::procs::{self, ProcFederation, hub_holdings, node_holdings, node_ok};
use tokio::process::Command;

async fn add_record(data: &Path, title: &str) -> String {
    let out = node_ok(
        data,
        &["catalogue", "add", "--title", title, "--type", "ouvrage"],
    )
    .await
    .unwrap();
    // « Notice r-… ajoutée au catalogue partagé »
    out.split_whitespace().nth(1).unwrap().to_owned()
}

async fn recover(fed: &ProcFederation, sources: &[&Path]) -> procs::NodeRun {
    let mut command = Command::new(figures::bin_dir().join("clps-hub"));
    command.arg("recover").arg("--config").arg(fed.hub_config());
    for source in sources {
        command.arg("--from-node").arg(source);
    }
    let output = command.output().await.unwrap();
    procs::NodeRun {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Appends to a copy of a node database one change, in another centre's
/// name, that the hub's rules refuse (a write to a document's root).
fn forge_into(db: &Path, victim: &str) -> automerge::ChangeHash {
    let conn = rusqlite::Connection::open(db).unwrap();
    let (id, snapshot, n): (String, Vec<u8>, i64) = conn
        .query_row(
            "SELECT d.doc_id, d.snapshot, h.n_chunks FROM shared_docs d JOIN shared_doc_heads h USING (doc_id)
             WHERE d.doc_id LIKE 'catalogue/%' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let mut doc = Automerge::load(&snapshot).unwrap();
    let chunks: Vec<Vec<u8>> = conn
        .prepare("SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1 ORDER BY seq")
        .unwrap()
        .query_map([&id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for chunk in chunks {
        doc.load_incremental(&chunk).unwrap();
    }
    let doc_id = DocId::parse(&id).unwrap();
    let actor = CentreActor::new(CentreId::new(victim).unwrap(), [9; 8]);
    let mut forged = clps_model::docs::load_doc(&doc_id, &doc.save(), &actor).unwrap();
    let before = forged.get_heads();
    use automerge::transaction::Transactable;
    forged
        .put(
            automerge::ROOT,
            "forged",
            "written in another centre's name",
        )
        .unwrap();
    let hash = forged.get_heads()[0];
    let chunk = forged.save_after(&before);
    conn.execute(
        "INSERT INTO shared_doc_chunks (doc_id, seq, bytes) VALUES (?1, ?2, ?3)",
        rusqlite::params![id, n + 1, chunk],
    )
    .unwrap();
    conn.execute(
        "UPDATE shared_doc_heads SET n_chunks = ?2 WHERE doc_id = ?1",
        rusqlite::params![id, n + 1],
    )
    .unwrap();
    hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_hub_database_is_rebuilt_from_the_nodes() {
    let started = Instant::now();
    let mut fed = ProcFederation::start(&["namur", "liege", "bruxelles"], Vec::new())
        .await
        .unwrap();
    let nodes: Vec<_> = fed.nodes.iter().map(|(_, d)| d.clone()).collect();
    // Each centre catalogues, namur edits liege's record, everyone syncs.
    let mut ids = Vec::new();
    for (i, data) in nodes.iter().enumerate() {
        for k in 0..3 {
            ids.push(add_record(data, &format!("Outil {k} du nœud {i}")).await);
        }
    }
    fed.converge(Duration::from_secs(60)).await.unwrap();
    node_ok(
        &nodes[0],
        &[
            "catalogue",
            "edit",
            &ids[3],
            "--title",
            "Titre revu par Namur",
        ],
    )
    .await
    .unwrap();
    fed.converge(Duration::from_secs(60)).await.unwrap();
    // One more local change that never reached the hub.
    add_record(&nodes[2], "Outil jamais synchronisé").await;

    let before = hub_holdings(&fed.hub_db()).unwrap();
    assert!(before.all().len() >= 10);

    // The hub and its database are lost.
    fed.kill_hub().await;
    std::fs::remove_dir_all(fed.hub_db().parent().unwrap()).unwrap();

    // liege hands in a backup file; bruxelles's data directory also comes
    // with a tampered copy holding a change forged in liege's name.
    let backup = fed.dir.path().join("liege-backup.sqlite");
    node_ok(&nodes[1], &["backup", "--to", backup.to_str().unwrap()])
        .await
        .unwrap();
    let tampered = fed.dir.path().join("bruxelles-tampered.sqlite");
    node_ok(&nodes[2], &["backup", "--to", tampered.to_str().unwrap()])
        .await
        .unwrap();
    let forged = forge_into(&tampered, "liege");

    let run = recover(&fed, &[&nodes[0], &backup, &nodes[2], &tampered]).await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("base du hub reconstruite à partir de 4 nœud(s)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("modification écartée") && run.stdout.contains(&forged.to_string()),
        "the forged change is reported: {}",
        run.stdout
    );
    let rebuilt = hub_holdings(&fed.hub_db()).unwrap();
    let lost: Vec<_> = before.all().difference(&rebuilt.all()).copied().collect();
    assert!(lost.is_empty(), "lost in recovery: {lost:?}");
    assert!(!rebuilt.all().contains(&forged));
    assert_eq!(procs::integrity_check(&fed.hub_db()), "ok");

    // A second run refuses to overwrite the rebuilt database.
    let again = recover(&fed, &[&nodes[0]]).await;
    assert!(!again.ok);
    assert!(
        again.stderr.contains("contient déjà"),
        "{}{}",
        again.stdout,
        again.stderr
    );

    // The rebuilt hub serves; the pending change goes up; all converge.
    fed.restart_hub().await.unwrap();
    fed.converge(Duration::from_secs(60)).await.unwrap();
    let after = hub_holdings(&fed.hub_db()).unwrap();
    assert!(before.all().is_subset(&after.all()));
    for data in &nodes {
        let (holdings, pending) = node_holdings(&data.join("node.sqlite")).unwrap();
        assert!(pending.is_empty());
        assert_eq!(holdings.all(), after.all());
        assert_eq!(procs::integrity_check(&data.join("node.sqlite")), "ok");
    }
    fed.kill_hub().await;
    figures::record(&Figures {
        scenario: "hub-loss-recover".to_owned(),
        iterations: 1,
        faults_injected: 2, // the lost database, the forged change
        changes_acknowledged: before.all().len() as u64,
        changes_lost: lost.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        ..Figures::default()
    });
}
