//! The fault suite's figures: each scenario writes one line (its latest
//! run) to `target/faults/<scenario>.tsv`; [`table`] and
//! `tests/faults_report.sh` print them as one summary table.
//!
//! Soak mode: `CLPS_SOAK_SECONDS=600` makes the looping scenarios run for
//! that long instead of their fixed CI iterations, and the fuzz targets run
//! more cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // test harness

use std::path::PathBuf;
use std::time::Duration;

/// One scenario's figures.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub scenario: String,
    pub iterations: u64,
    pub faults_injected: u64,
    pub changes_acknowledged: u64,
    pub changes_lost: u64,
    pub inputs_fuzzed: u64,
    pub crashes_found: u64,
    pub seconds: f64,
}

const HEADER: [&str; 8] = [
    "scenario",
    "iterations",
    "faults injected",
    "changes acknowledged",
    "changes lost",
    "inputs fuzzed",
    "crashes found",
    "seconds",
];

/// `target/`, where cargo puts the binaries (the test executable lives in
/// `target/<profile>/deps/`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// `target/<profile>/`, where the workspace's binaries are.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(2).unwrap().to_path_buf()
}

fn figures_dir() -> PathBuf {
    target_dir().join("faults")
}

/// The soak budget, when `CLPS_SOAK_SECONDS` is set.
pub fn soak() -> Option<Duration> {
    std::env::var("CLPS_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

/// Records (replaces) a scenario's line and prints it.
pub fn record(figures: &Figures) {
    let dir = figures_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let line = format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.1}\n",
        figures.scenario,
        figures.iterations,
        figures.faults_injected,
        figures.changes_acknowledged,
        figures.changes_lost,
        figures.inputs_fuzzed,
        figures.crashes_found,
        figures.seconds
    );
    std::fs::write(dir.join(format!("{}.tsv", figures.scenario)), &line).unwrap();
    println!("{}", HEADER.join("\t"));
    print!("{line}");
}

/// Every recorded scenario as a Markdown table, with a total line.
pub fn table() -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(figures_dir()) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "tsv")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                rows.push(text.trim().split('\t').map(str::to_owned).collect());
            }
        }
    }
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len())));
    let mut totals = [0f64; 7];
    for row in &rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
        for (i, cell) in row.iter().skip(1).enumerate().take(7) {
            totals[i] += cell.parse::<f64>().unwrap_or(0.0);
        }
    }
    let totals: Vec<String> = totals
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i == 6 {
                format!("{t:.1}")
            } else {
                format!("{t:.0}")
            }
        })
        .collect();
    out.push_str(&format!("| **total** | {} |\n", totals.join(" | ")));
    out
}

/// A small seeded generator (SplitMix64): the same seed replays the same
/// fault schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seed of a run: `CLPS_FAULT_SEED`, or a fixed one.
pub fn seed() -> u64 {
    std::env::var("CLPS_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c1_0509)
}
