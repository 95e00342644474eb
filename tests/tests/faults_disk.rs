//! Disk full and read-only at a node: the node's data directory lives on a
//! small tmpfs (tests run as root in CI; `chmod` does not stop root, a
//! mount does). Filled up, then remounted read-only: local writes and a
//! sync that would store received changes fail with a clear French
//! sentence, nothing is acknowledged, `integrity_check` passes; once space
//! (or write access) returns the same commands succeed and the node
//! converges.
//!
//! Without the right to mount (an unprivileged CI), the scenario says so
//! and records itself as not run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clps_tests::figures::{self, Figures};
use clps_tests::procs::{self, ProcFederation, node, node_holdings, node_ok};

/// A tmpfs mounted for the test; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_owned()))
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a filler file until the filesystem is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0x5a; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    // Whatever the last partial block left: take it too.
    while file.write_all(&[0x5a]).is_ok() {}
    let _ = file.sync_all();
}

fn add_args(title: &str) -> Vec<String> {
    ["catalogue", "add", "--title", title, "--type", "ouvrage"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

async fn try_node(data: &Path, args: &[String]) -> procs::NodeRun {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    node(data, &args).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_and_read_only_fail_clearly_and_recover() {
    let started = Instant::now();
    let mut fed = ProcFederation::start(&["liege"], Vec::new()).await.unwrap();
    let mount_point = fed.dir.path().join("disk");
    let Some(disk) = Tmpfs::mount(&mount_point, "6m") else {
        println!("no tmpfs (mount refused): disk-full scenario not run here");
        figures::record(&Figures {
            scenario: "disk-full-readonly (not run: no mount)".to_owned(),
            ..Figures::default()
        });
        return;
    };
    let data = fed
        .add_node_at("namur", mount_point.join("namur"))
        .await
        .unwrap();
    let liege = fed.nodes[0].1.clone();
    assert!(try_node(&data, &add_args("Avant la panne")).await.ok);
    fed.converge(Duration::from_secs(60)).await.unwrap();
    let mut faults = 0;

    // Disk full.
    fill(&mount_point.join("filler"));
    faults += 1;
    let run = try_node(&data, &add_args("Pendant la panne")).await;
    assert!(!run.ok, "a write on a full disk fails");
    assert!(
        (run.stderr.contains("est plein") || run.stderr.contains("plein, en lecture seule"))
            && run.stderr.contains("rien n'a été écrit"),
        "clear French error: {}",
        run.stderr
    );
    // Another centre writes; receiving it needs space too.
    assert!(
        try_node(&liege, &add_args("Écrit à Liège pendant la panne"))
            .await
            .ok
    );
    node_ok(&liege, &["sync"]).await.unwrap();
    let run = try_node(&data, &["sync".to_owned()]).await;
    assert!(!run.ok, "a sync that cannot store fails: {}", run.stdout);
    assert!(run.stderr.contains("rien n'a été écrit"), "{}", run.stderr);

    // Space returns (reading needs a little too, for SQLite's shared
    // memory): the file is sound, nothing half-written, and the same
    // commands succeed.
    std::fs::remove_file(mount_point.join("filler")).unwrap();
    assert_eq!(procs::integrity_check(&data.join("node.sqlite")), "ok");
    let (_, pending) = node_holdings(&data.join("node.sqlite")).unwrap();
    assert!(pending.is_empty());
    let run = try_node(&data, &add_args("Après la panne")).await;
    assert!(run.ok, "write after space returned: {}", run.stderr);
    fed.converge(Duration::from_secs(60)).await.unwrap();

    // Read-only.
    disk.remount("ro");
    faults += 1;
    let run = try_node(&data, &add_args("Sur un disque en lecture seule")).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("lecture seule") && run.stderr.contains("rien n'a été écrit"),
        "clear French error: {}",
        run.stderr
    );
    disk.remount("rw");
    assert_eq!(procs::integrity_check(&data.join("node.sqlite")), "ok");
    let run = try_node(&data, &add_args("De nouveau inscriptible")).await;
    assert!(run.ok, "{}", run.stderr);
    fed.converge(Duration::from_secs(60)).await.unwrap();
    let titles = node_ok(&data, &["catalogue", "search", "panne"])
        .await
        .unwrap();
    assert!(
        titles.contains("Après la panne") && titles.contains("Liège"),
        "{titles}"
    );
    assert!(!titles.contains("Pendant la panne"));

    for file in fed.sqlite_files() {
        assert_eq!(procs::integrity_check(&file), "ok", "{}", file.display());
    }
    fed.kill_hub().await;
    drop(disk);
    figures::record(&Figures {
        scenario: "disk-full-readonly".to_owned(),
        iterations: 1,
        faults_injected: faults,
        changes_acknowledged: node_holdings(&liege.join("node.sqlite"))
            .map(|(h, _)| h.authors.len() as u64)
            .unwrap_or(0),
        seconds: started.elapsed().as_secs_f64(),
        ..Figures::default()
    });
}
