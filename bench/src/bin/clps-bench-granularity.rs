//! `clps-bench-granularity`: what it costs to map the shared catalogue onto
//! Automerge documents, at the network's real size (~200,000 records):
//! (a) one document per record, (b) the fixed buckets the product uses
//! ([`CATALOGUE_BUCKETS`] documents, records placed by `bucket_of`), (c) one
//! single document, and a sweep over other bucket counts.
//!
//! For each option the binary re-executes itself twice, so that every memory
//! figure comes from a fresh process: a *build* worker writes the records
//! through the typed `CatalogueDoc` API with the ten centres' actors (one
//! change per logical operation, as the product commits: the record, then
//! each holding centre's holding), saves every document to a temporary
//! directory and prepares one edit made by another centre; a *measure*
//! worker reads the saved bytes, loads every document (`VmRSS` before and
//! after), applies the peer's edit, and runs Automerge's sync protocol for
//! that one edit between two peers that were up to date.
//!
//! Building is the slow part (Automerge's local operations cost about
//! 2.5 ms of CPU per record here), so by default not everything is built.
//! Option (b) builds 64 of its 256 buckets, each with exactly the records it
//! holds in the 200,000-record catalogue; (a) and (c) build 20,000 records;
//! the sweep builds a few documents at their real size (200,000 / B records
//! each). Per-document figures are then exact, except for (c), whose one
//! document is smaller than at full size (marked `≥`); totals are scaled to
//! the whole catalogue (marked `*`): documents are independent, so a total is
//! a sum over documents, and for (c) it is a linear extrapolation. `--full`
//! builds everything (about ten minutes of CPU per option).

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, bail};
use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use clap::Parser;
use clps_model::docs::catalogue::{self, RecordEdit, RecordId};
use clps_model::docs::{CATALOGUE_BUCKETS, CatalogueDoc};
use clps_model::{CentreActor, CentreId};
use serde::{Deserialize, Serialize};

use clps_bench::{GenRecord, Generator, TempDir, actors, load_average, machine, ms, rss_bytes};

/// Seed of the record generator: every run builds the same catalogue.
const SEED: u64 = 2021;

#[derive(Debug, Parser)]
#[command(
    name = "clps-bench-granularity",
    about = "Measures one document per record, fixed buckets and one single document for the shared catalogue"
)]
struct Args {
    /// Catalogue size to report for.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Records built for the per-record and single-document options (their
    /// totals are scaled to --records).
    #[arg(long, default_value_t = 20_000)]
    sample: usize,
    /// Buckets of the product's layout actually built, at their real size
    /// (those numbered below this); totals are scaled to all of them.
    #[arg(long, default_value_t = 64)]
    bucket_sample: u16,
    /// Bucket counts to compare with the product's, each built as a few
    /// documents of their real size; `--sweep` alone skips the sweep.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values = ["1024", "4096"])]
    sweep: Vec<u32>,
    /// Records built per bucket count of the sweep (rounded to whole documents).
    #[arg(long, default_value_t = 5_000)]
    sweep_sample: usize,
    /// Build (a), (b) and (c) at --records, without scaling (slow: about
    /// 2.5 ms of CPU per record).
    #[arg(long)]
    full: bool,
    /// Options to run: per-record, buckets, single (the sweep is separate).
    #[arg(long, value_delimiter = ',', default_values = ["per-record", "buckets", "single"])]
    options: Vec<Granularity>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one phase in this process.
    #[arg(long, hide = true)]
    worker: Option<String>,
    /// Internal: the option the worker builds or measures.
    #[arg(long, hide = true)]
    option: Option<Granularity>,
    /// Internal: where the worker reads and writes documents.
    #[arg(long, hide = true)]
    dir: Option<PathBuf>,
}

/// How records map to documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Granularity {
    /// (a) one document per record.
    PerRecord,
    /// (b) the product: CATALOGUE_BUCKETS documents, records hashed by id.
    Buckets,
    /// (c) the whole catalogue in one document.
    Single,
    /// Another bucket count, measured on a few documents of its real size.
    Sweep(u32),
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-record" => Ok(Granularity::PerRecord),
            "buckets" => Ok(Granularity::Buckets),
            "single" => Ok(Granularity::Single),
            _ => s
                .strip_prefix("buckets=")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .map(Granularity::Sweep)
                .ok_or_else(|| format!("unknown option « {s} » (per-record, buckets, single)")),
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Granularity::PerRecord => f.write_str("per-record"),
            Granularity::Buckets => f.write_str("buckets"),
            Granularity::Single => f.write_str("single"),
            Granularity::Sweep(n) => write!(f, "buckets={n}"),
        }
    }
}

impl Granularity {
    fn label(self) -> String {
        match self {
            Granularity::PerRecord => "(a) one doc per record".to_owned(),
            Granularity::Buckets => format!("(b) {CATALOGUE_BUCKETS} buckets (product)"),
            Granularity::Single => "(c) one single doc".to_owned(),
            Granularity::Sweep(n) => format!("    {n} buckets (sweep)"),
        }
    }
}

/// How many documents of how many records an option builds, and how many
/// documents the full catalogue would have.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Plan {
    /// Records of the whole catalogue.
    catalogue_records: usize,
    docs_built: usize,
    records_per_doc: usize,
    records_built: usize,
    docs_full: usize,
}

fn plan(option: Granularity, args: &Args) -> Plan {
    let records = args.records.max(1);
    let sample = if args.full {
        records
    } else {
        args.sample.clamp(1, records)
    };
    match option {
        Granularity::PerRecord => Plan {
            catalogue_records: records,
            docs_built: sample,
            records_per_doc: 1,
            records_built: sample,
            docs_full: records,
        },
        Granularity::Buckets => {
            let all = usize::from(CATALOGUE_BUCKETS);
            let built = if args.full {
                all
            } else {
                usize::from(args.bucket_sample).clamp(1, all)
            };
            Plan {
                catalogue_records: records,
                docs_built: built,
                records_per_doc: records.div_ceil(all),
                // Expected; the build reports the exact count.
                records_built: records * built / all,
                docs_full: all,
            }
        }
        Granularity::Single => Plan {
            catalogue_records: records,
            docs_built: 1,
            records_per_doc: sample,
            records_built: sample,
            docs_full: 1,
        },
        Granularity::Sweep(n) => {
            let n = n as usize;
            let per_doc = records.div_ceil(n);
            let docs = args.sweep_sample.div_ceil(per_doc).clamp(1, n);
            Plan {
                catalogue_records: records,
                docs_built: docs,
                records_per_doc: per_doc,
                records_built: docs * per_doc,
                docs_full: n,
            }
        }
    }
}

/// What the build worker reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BuildReport {
    records: usize,
    docs: usize,
    changes: usize,
    /// Wall time of the build, on every core.
    build_wall_ms: f64,
    /// Sum of the build threads' time on a CPU: the single-core cost.
    build_cpu_ms: f64,
    /// Saving every document, one after the other.
    save_ms: f64,
    save_bytes: u64,
    peak_rss_bytes: u64,
}

/// What the build worker leaves for the measure worker besides the documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeerEdit {
    /// Index of the document that holds the edited record.
    doc_index: usize,
    record: String,
}

/// Messages and bytes until two peers are both idle.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct SyncCost {
    messages: usize,
    bytes: usize,
    ms: f64,
}

/// What the measure worker reports, for the documents built.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MeasureReport {
    load_ms: f64,
    /// Resident memory of one loaded copy of every document built: VmRSS
    /// after loading minus before (the saved bytes already in memory), or,
    /// on small samples, the mean growth per further copy.
    loaded_rss_bytes: u64,
    rss_copies: usize,
    /// The document that holds the edited record: its saved size, and the
    /// median time to load it alone and to save it (a node does both for
    /// every edit: `shared::load`, then a snapshot every 32 edits).
    doc_bytes: usize,
    load_doc_ms: f64,
    save_doc_ms: f64,
    /// Median time to apply the peer's change to the loaded document.
    apply_ms: f64,
    /// Median time to copy that document: the hub's sync peer stages every
    /// incoming message on a copy before accepting it.
    clone_ms: f64,
    /// Size of the peer's change as sent.
    change_bytes: usize,
    /// Two peers at the same heads whose sync states are established (a
    /// live session); one of them receives the edit, then they sync.
    sync_live: SyncCost,
    /// The same edit when the peers start from fresh sync states (a
    /// reconnect): Automerge's first message carries a Bloom filter of every
    /// change of the document.
    sync_reconnect: SyncCost,
    /// At a reconnect after any change in the space, the hub lists the heads
    /// of every document of the space (`clps_model::sync`): id and 32 bytes
    /// per head, per document.
    heads_listing_bytes: u64,
}

/// One option's row: totals scaled to the full catalogue where marked.
#[derive(Debug, Clone, Serialize)]
struct Row {
    option: String,
    label: String,
    plan: Plan,
    reported_records: usize,
    /// Totals are scaled from the documents built.
    scaled: bool,
    /// Per-document figures come from a document smaller than at full size.
    undersized: bool,
    save_bytes: u64,
    save_s: f64,
    load_s: f64,
    loaded_rss_bytes: u64,
    build_cpu_s: f64,
    doc_bytes: usize,
    load_doc_ms: f64,
    save_doc_ms: f64,
    apply_ms: f64,
    clone_ms: f64,
    change_bytes: usize,
    sync_live: SyncCost,
    sync_reconnect: SyncCost,
    heads_listing_bytes: u64,
    build: BuildReport,
    measure: MeasureReport,
}

#[derive(Debug, Serialize)]
struct Report {
    cpus: usize,
    cpu_model: String,
    /// 1-minute load average at the start and the end of the run.
    load_average: (f64, f64),
    run_s: f64,
    records: usize,
    catalogue_buckets: u16,
    rows: Vec<Row>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.worker.as_deref() {
        Some(phase) => {
            let option = args.option.context("--option is required with --worker")?;
            let dir = args
                .dir
                .clone()
                .context("--dir is required with --worker")?;
            let out = match phase {
                "build" => serde_json::to_string(&build(option, plan(option, &args), &dir)?)?,
                "measure" => serde_json::to_string(&measure(&dir)?)?,
                other => bail!("unknown worker phase {other}"),
            };
            println!("{out}");
            Ok(())
        }
        None => run(&args),
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let (cpus, cpu_model) = machine();
    eprintln!("machine: {cpus} CPU(s), {cpu_model}");
    let started = Instant::now();
    let load_before = load_average();
    let mut options = args.options.clone();
    options.extend(args.sweep.iter().map(|n| Granularity::Sweep(*n)));
    let mut rows = Vec::new();
    for option in options {
        let plan = plan(option, args);
        eprintln!(
            "{}: building {} document(s) of {} record(s)…",
            option.label().trim(),
            plan.docs_built,
            plan.records_per_doc
        );
        let dir = TempDir::new("clps-bench-granularity")?;
        let build: BuildReport = worker("build", option, args, &dir.path)?;
        eprintln!(
            "  built in {:.1} s ({:.1} s of CPU), saved {} in {:.1} s; measuring…",
            build.build_wall_ms / 1000.0,
            build.build_cpu_ms / 1000.0,
            human_bytes(build.save_bytes),
            build.save_ms / 1000.0
        );
        let measure: MeasureReport = worker("measure", option, args, &dir.path)?;
        rows.push(row(option, plan, args.records, build, measure));
    }
    let report = Report {
        cpus,
        cpu_model,
        load_average: (load_before, load_average()),
        run_s: started.elapsed().as_secs_f64(),
        records: args.records,
        catalogue_buckets: CATALOGUE_BUCKETS,
        rows,
    };
    print_tables(&report);
    println!();
    println!(
        "run time {:.0} s; load average {:.1} at the start, {:.1} at the end",
        report.run_s, report.load_average.0, report.load_average.1
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs one phase in a fresh copy of this binary and parses its JSON answer.
fn worker<T: for<'de> Deserialize<'de>>(
    phase: &str,
    option: Granularity,
    args: &Args,
    dir: &Path,
) -> anyhow::Result<T> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--worker", phase])
        .arg("--option")
        .arg(option.to_string())
        .arg("--records")
        .arg(args.records.to_string())
        .arg("--sample")
        .arg(args.sample.to_string())
        .arg("--sweep-sample")
        .arg(args.sweep_sample.to_string())
        .arg("--bucket-sample")
        .arg(args.bucket_sample.to_string())
        .arg("--dir")
        .arg(dir);
    if args.full {
        command.arg("--full");
    }
    let out = command.output().context("starting a worker")?;
    if !out.status.success() {
        bail!(
            "{phase} worker for {option} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("reading the worker's report")
}

/// Scales totals from the documents built to the full catalogue. Documents
/// are independent, so for (a), (b) and the sweep a total is the sum over
/// the full number of documents of the same size; for (c) it is a linear
/// extrapolation of one growing document.
fn row(
    option: Granularity,
    plan: Plan,
    records: usize,
    build: BuildReport,
    measure: MeasureReport,
) -> Row {
    let plan = Plan {
        records_built: build.records,
        ..plan
    };
    let factor = match option {
        Granularity::Single => records as f64 / plan.records_built.max(1) as f64,
        _ => plan.docs_full as f64 / plan.docs_built.max(1) as f64,
    };
    let doc_factor = plan.docs_full as f64 / plan.docs_built.max(1) as f64;
    let total = |x: f64| x * factor;
    Row {
        option: option.to_string(),
        label: option.label(),
        plan,
        reported_records: records,
        scaled: plan.docs_built != plan.docs_full || plan.records_built != records,
        undersized: option == Granularity::Single && plan.records_built != records,
        save_bytes: total(build.save_bytes as f64) as u64,
        save_s: total(build.save_ms) / 1000.0,
        load_s: total(measure.load_ms) / 1000.0,
        loaded_rss_bytes: total(measure.loaded_rss_bytes as f64) as u64,
        build_cpu_s: total(build.build_cpu_ms) / 1000.0,
        doc_bytes: measure.doc_bytes,
        load_doc_ms: measure.load_doc_ms,
        save_doc_ms: measure.save_doc_ms,
        apply_ms: measure.apply_ms,
        clone_ms: measure.clone_ms,
        change_bytes: measure.change_bytes,
        sync_live: measure.sync_live,
        sync_reconnect: measure.sync_reconnect,
        heads_listing_bytes: (measure.heads_listing_bytes as f64 * doc_factor) as u64,
        build,
        measure,
    }
}

fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

fn print_table(header: &[&str], lines: Vec<Vec<String>>) {
    let mut all = vec![header.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()];
    all.extend(lines);
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            all.iter()
                .map(|l| l.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, line) in all.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("| {} |", cells.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("|-{}-|", rule.join("-|-"));
        }
    }
}

fn print_tables(report: &Report) {
    println!();
    println!(
        "Catalogue granularity at {} records ({} CPU(s), {})",
        report.records, report.cpus, report.cpu_model
    );
    println!();
    println!("Whole catalogue (every document):");
    print_table(
        &[
            "option",
            "built",
            "docs",
            "records/doc",
            "saved size",
            "save all",
            "load all",
            "RSS, all loaded",
            "build (1 core)",
        ],
        report
            .rows
            .iter()
            .map(|r| {
                let star = if r.scaled { "*" } else { "" };
                vec![
                    r.label.clone(),
                    format!("{} × {}", r.plan.docs_built, r.plan.records_per_doc),
                    r.plan.docs_full.to_string(),
                    match r.option.as_str() {
                        "single" => report.records.to_string(),
                        _ => r.plan.records_per_doc.to_string(),
                    },
                    format!("{}{star}", human_bytes(r.save_bytes)),
                    format!("{:.1} s{star}", r.save_s),
                    format!("{:.1} s{star}", r.load_s),
                    format!("{}{star}", human_bytes(r.loaded_rss_bytes)),
                    format!("{:.0} s{star}", r.build_cpu_s),
                ]
            })
            .collect(),
    );
    println!();
    println!("One record edited by another centre (the document that holds it):");
    print_table(
        &[
            "option",
            "doc size",
            "load doc",
            "save doc",
            "apply change",
            "copy doc",
            "change",
            "sync, live session",
            "sync, reconnect",
            "heads listing",
        ],
        report
            .rows
            .iter()
            .map(|r| {
                let ge = if r.undersized { " ≥" } else { "" };
                let star = if r.scaled && r.plan.docs_full > 1 {
                    "*"
                } else {
                    ""
                };
                let sync = |s: &SyncCost| {
                    format!(
                        "{} msg, {}, {:.1} ms",
                        s.messages,
                        human_bytes(s.bytes as u64),
                        s.ms
                    )
                };
                vec![
                    r.label.clone(),
                    format!("{}{ge}", human_bytes(r.doc_bytes as u64)),
                    format!("{:.2} ms{ge}", r.load_doc_ms),
                    format!("{:.2} ms{ge}", r.save_doc_ms),
                    format!("{:.2} ms{ge}", r.apply_ms),
                    format!("{:.2} ms{ge}", r.clone_ms),
                    human_bytes(r.change_bytes as u64),
                    sync(&r.sync_live),
                    format!("{}{ge}", sync(&r.sync_reconnect)),
                    format!("{}{star}", human_bytes(r.heads_listing_bytes)),
                ]
            })
            .collect(),
    );
    println!();
    if report.rows.iter().any(|r| r.scaled) {
        println!(
            "* scaled from the documents built (« built »: documents × records) to {} records: documents are \
             independent, so totals add up; for (c) a linear extrapolation of one growing document.",
            report.records
        );
    }
    if report.rows.iter().any(|r| r.undersized) {
        println!(
            "≥ measured on the sample-sized single document; at full size the document is larger and the cost higher."
        );
    }
    println!(
        "load/save doc = AutoCommit::load / save of that one document (medians); apply = load_incremental of the \
         peer's change; copy doc = clone (the hub stages every incoming message on a copy); sync = automerge::sync \
         messages until both peers are idle, established states (live) or fresh ones (reconnect); heads listing = \
         what the hub answers at a reconnect when anything in the catalogue space changed."
    );
}

// ---------------------------------------------------------------------------
// Build worker

/// The next local number of `centre` whose id falls in `bucket`:
/// `CatalogueDoc` keeps each record in its bucket, so a document of any size
/// is built as a document of one bucket holding only that bucket's ids.
fn id_in_bucket(centre: &CentreId, counter: &mut u64, bucket: u16) -> RecordId {
    loop {
        *counter += 1;
        let id = RecordId::from_local(centre, *counter);
        if catalogue::bucket_of(&id) == bucket {
            return id;
        }
    }
}

/// The documents to build: their bucket and records, in order.
fn layout(
    option: Granularity,
    plan: Plan,
    generator: &mut Generator,
) -> Vec<(u16, Vec<GenRecord>)> {
    match option {
        Granularity::PerRecord => (0..plan.records_built)
            .map(|_| {
                let record = generator.record();
                (catalogue::bucket_of(&record.id), vec![record])
            })
            .collect(),
        Granularity::Buckets => {
            // The whole catalogue is drawn; the buckets numbered below
            // `docs_built` are kept, exactly as they would be at full size.
            let mut docs: Vec<(u16, Vec<GenRecord>)> = (0..plan.docs_built)
                .map(|b| (u16::try_from(b).unwrap_or(0), Vec::new()))
                .collect();
            for _ in 0..plan.catalogue_records {
                let record = generator.record();
                let bucket = usize::from(catalogue::bucket_of(&record.id));
                if let Some((_, records)) = docs.get_mut(bucket) {
                    records.push(record);
                }
            }
            docs
        }
        Granularity::Single | Granularity::Sweep(_) => {
            let mut counters = vec![0u64; generator.centres().len()];
            (0..plan.docs_built)
                .map(|d| {
                    let bucket = u16::try_from(d % usize::from(CATALOGUE_BUCKETS)).unwrap_or(0);
                    let records = (0..plan.records_per_doc)
                        .map(|_| {
                            let mut record = generator.record();
                            record.id = id_in_bucket(
                                &generator.centres()[record.creator],
                                &mut counters[record.creator],
                                bucket,
                            );
                            record
                        })
                        .collect();
                    (bucket, records)
                })
                .collect()
        }
    }
}

fn build(option: Granularity, plan: Plan, dir: &Path) -> anyhow::Result<BuildReport> {
    let mut generator = Generator::new(SEED);
    let actors = actors(&generator);
    let layout = layout(option, plan, &mut generator);
    let records: usize = layout.iter().map(|(_, r)| r.len()).sum();
    let changes: usize = layout
        .iter()
        .flat_map(|(_, r)| r)
        .map(|r| 1 + r.holdings.len())
        .sum();

    let started = Instant::now();
    let (mut docs, build_cpu_ms) = clps_bench::build_docs(&layout, &actors)?;
    let build_wall_ms = ms(started.elapsed());

    let started = Instant::now();
    let saved: Vec<Vec<u8>> = docs.iter_mut().map(CatalogueDoc::save).collect();
    let save_ms = ms(started.elapsed());
    let save_bytes: u64 = saved.iter().map(|b| b.len() as u64).sum();
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join("docs.bin"))?);
    for bytes in &saved {
        file.write_all(&u64::try_from(bytes.len())?.to_le_bytes())?;
        file.write_all(bytes)?;
    }
    file.flush()?;
    drop(file);
    drop(saved);

    // The edit another centre makes to a record in the middle of the
    // catalogue: a new title and a few words inserted in the description,
    // one change, as `catalogue edit` writes it.
    let doc_index = layout
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| !r.is_empty())
        .map(|(i, _)| i)
        .nth(layout.len() / 2)
        .or_else(|| layout.iter().position(|(_, r)| !r.is_empty()))
        .context("no record built")?;
    let records_of_doc = &layout[doc_index].1;
    let record = &records_of_doc[records_of_doc.len() / 2];
    let peer_actor = CentreActor::new(
        generator.centres()[(record.creator + 1) % actors.len()].clone(),
        *b"peer0001",
    );
    let bucket = docs[doc_index].bucket();
    let mut fork = docs[doc_index].automerge_mut().fork();
    let before: Vec<ChangeHash> = fork.get_heads();
    let mut peer = CatalogueDoc::from_automerge(bucket, fork, peer_actor)?;
    peer.set_commit_time(record.time + 86_400 * 30);
    peer.edit_record(
        &record.id,
        &[
            RecordEdit::Title(format!("{} (nouvelle édition)", record.fields.title)),
            RecordEdit::SpliceDescription {
                pos: 0,
                delete: 0,
                insert: "Réédition revue et augmentée. ".to_owned(),
            },
        ],
    )?;
    let change = peer.automerge_mut().save_after(&before);
    std::fs::write(dir.join("peer_change.bin"), change)?;
    std::fs::write(
        dir.join("peer_edit.json"),
        serde_json::to_vec(&PeerEdit {
            doc_index,
            record: record.id.to_string(),
        })?,
    )?;

    Ok(BuildReport {
        records,
        docs: docs.len(),
        changes,
        build_wall_ms,
        build_cpu_ms,
        save_ms,
        save_bytes,
        peak_rss_bytes: rss_bytes("VmHWM"),
    })
}

// ---------------------------------------------------------------------------
// Measure worker

fn read_docs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut all = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut all)?;
    let mut out = Vec::new();
    let mut rest = all.as_slice();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(8).context("truncated docs.bin")?;
        let len = usize::try_from(u64::from_le_bytes(len.try_into()?))?;
        let (bytes, tail) = tail.split_at_checked(len).context("truncated docs.bin")?;
        out.push(bytes.to_vec());
        rest = tail;
    }
    Ok(out)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

/// Runs Automerge's sync protocol until neither peer has anything to send,
/// starting with `first`. Messages are encoded and decoded as on the wire.
fn converge(
    first: &mut AutoCommit,
    first_state: &mut sync::State,
    second: &mut AutoCommit,
    second_state: &mut sync::State,
) -> anyhow::Result<SyncCost> {
    let started = Instant::now();
    let mut cost = SyncCost::default();
    for _ in 0..100 {
        let mut quiet = true;
        if let Some(message) = first.sync().generate_sync_message(first_state) {
            let bytes = message.encode();
            cost.messages += 1;
            cost.bytes += bytes.len();
            second
                .sync()
                .receive_sync_message(second_state, sync::Message::decode(&bytes)?)?;
            quiet = false;
        }
        if let Some(message) = second.sync().generate_sync_message(second_state) {
            let bytes = message.encode();
            cost.messages += 1;
            cost.bytes += bytes.len();
            first
                .sync()
                .receive_sync_message(first_state, sync::Message::decode(&bytes)?)?;
            quiet = false;
        }
        if quiet {
            cost.ms = ms(started.elapsed());
            if first.get_heads() != second.get_heads() {
                bail!("sync ended with different heads");
            }
            return Ok(cost);
        }
    }
    bail!("sync did not converge in 100 rounds")
}

fn measure(dir: &Path) -> anyhow::Result<MeasureReport> {
    let saved = read_docs(&dir.join("docs.bin"))?;
    let change = std::fs::read(dir.join("peer_change.bin"))?;
    let edit: PeerEdit = serde_json::from_slice(&std::fs::read(dir.join("peer_edit.json"))?)?;
    let record = RecordId::parse(&edit.record)?;

    let rss_before = rss_bytes("VmRSS");
    let started = Instant::now();
    let mut docs: Vec<AutoCommit> = saved
        .iter()
        .map(|bytes| AutoCommit::load(bytes))
        .collect::<Result<_, _>>()?;
    let load_ms = ms(started.elapsed());
    let rss_first = rss_bytes("VmRSS");
    // The heap grows in lumps and a load leaves garbage the allocator keeps,
    // so on a small sample the first copy's delta says little. Further
    // copies, loaded once the allocator is warm, give the marginal cost.
    let records: usize = docs.iter().map(|d| catalogue::record_ids(d).len()).sum();
    let copies = if records >= 100_000 {
        1
    } else {
        (20_000 / records.max(1)).clamp(2, 8)
    };
    let mut extra = Vec::new();
    for _ in 1..copies {
        extra.push(
            saved
                .iter()
                .map(|bytes| AutoCommit::load(bytes))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    let rss_last = rss_bytes("VmRSS");
    let loaded_rss_bytes = if copies > 1 {
        rss_last.saturating_sub(rss_first) / (copies as u64 - 1)
    } else {
        rss_first.saturating_sub(rss_before)
    };
    drop(extra);

    let target_bytes = saved.get(edit.doc_index).context("no such document")?;
    let reps = if target_bytes.len() > 10_000_000 {
        3
    } else {
        9
    };
    let mut loads = Vec::new();
    for _ in 0..reps {
        let started = Instant::now();
        let doc = AutoCommit::load(target_bytes)?;
        loads.push(ms(started.elapsed()));
        drop(doc);
    }
    let target = docs.get_mut(edit.doc_index).context("no such document")?;
    let mut saves = Vec::new();
    for _ in 0..reps {
        let started = Instant::now();
        let bytes = target.save();
        saves.push(ms(started.elapsed()));
        drop(bytes);
    }
    let target = &*target;
    let mut clones = Vec::new();
    let mut applies = Vec::new();
    for _ in 0..reps {
        let started = Instant::now();
        let mut copy = target.clone();
        clones.push(ms(started.elapsed()));
        let started = Instant::now();
        copy.load_incremental(&change)?;
        applies.push(ms(started.elapsed()));
        let edited = catalogue::read_record(&copy, &record).context("edited record missing")?;
        if !edited.fields.title.ends_with("(nouvelle édition)") {
            bail!("the peer's edit was not applied");
        }
    }

    // Two peers at the same heads with an established session: a first
    // exchange (heads and a Bloom filter, nothing else) sets up the states,
    // then one peer receives the edit and they sync again.
    let mut a = target.clone();
    let mut b = target.clone();
    let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
    converge(&mut a, &mut sa, &mut b, &mut sb)?;
    b.load_incremental(&change)?;
    let sync_live = converge(&mut b, &mut sb, &mut a, &mut sa)?;

    // The same edit after a reconnect, from fresh sync states.
    let mut a = target.clone();
    let mut b = target.clone();
    b.load_incremental(&change)?;
    let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
    let sync_reconnect = converge(&mut b, &mut sb, &mut a, &mut sa)?;

    // What the hub sends when the space digest differs: every document's id
    // and heads. A per-record document would be named after its record.
    let heads_listing_bytes = docs
        .iter_mut()
        .map(|d| {
            let ids = catalogue::record_ids(&*d);
            let id_len = match ids.as_slice() {
                [only] => "catalogue/".len() + only.as_str().len(),
                _ => "catalogue/000".len(),
            };
            (id_len + 32 * d.get_heads().len()) as u64
        })
        .sum();

    Ok(MeasureReport {
        load_ms,
        loaded_rss_bytes,
        rss_copies: copies,
        doc_bytes: target_bytes.len(),
        load_doc_ms: median(loads),
        save_doc_ms: median(saves),
        apply_ms: median(applies),
        clone_ms: median(clones),
        change_bytes: change.len(),
        sync_live,
        sync_reconnect,
        heads_listing_bytes,
    })
}
