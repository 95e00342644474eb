//! Ctrl-C during the main job leaves no process behind: the orchestrator
//! stops the hub and the ten nodes it started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `target/<profile>/`, where cargo puts the workspace's binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                out.push(format!("{}: {cmdline}", name.to_string_lossy()));
            }
        }
    }
    out
}

#[test]
fn ctrl_c_stops_the_hub_and_every_node() {
    let bins = bin_dir();
    for program in ["clps-federation", "clps-hub", "clps-node"] {
        assert!(
            bins.join(program).is_file(),
            "{program} missing in {}: run `cargo test --workspace` (it builds every binary)",
            bins.display()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("fed");
    let mut child = Command::new(bins.join("clps-federation"))
        .arg("--dir")
        .arg(&work)
        .args(["--records-per-centre", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the ten `clps-node serve` processes are up and have converged
    // once: the orchestrator announces the next step.
    let mut seen = Vec::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("exemplaires partagés") {
            break;
        }
    }
    // Keep reading what it says while it stops.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    assert!(
        seen.iter().any(|l| l.contains("exemplaires partagés")),
        "the federation did not come up: {seen:#?}"
    );
    let work_s = work.to_string_lossy().into_owned();
    let running = processes_mentioning(&work_s);
    assert!(
        running.iter().filter(|p| p.contains("clps-node")).count() >= 10
            && running.iter().any(|p| p.contains("clps-hub")),
        "hub and ten nodes should be running: {running:#?}"
    );

    // Ctrl-C to the orchestrator alone (not its process group).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let tail = drain.join().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "interrupted exit code; it said: {tail:#?}"
    );
    let left = processes_mentioning(&work_s);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}
