//! `clps-bench-search`: latency of the node's catalogue search over a
//! projection of the network's real size (~200,000 records).
//!
//! It initialises a node data directory through the library
//! (`Store::open`, `centre::init`), builds the 256 catalogue buckets with the
//! typed `CatalogueDoc` API as the ten centres would have written them, and
//! stores each bucket with `shared::store` as if it had just been received
//! from the hub, so the tables and the FTS5 index are the product's own
//! projection (`catalogue::project`). It then runs about a thousand realistic
//! queries (single words, two or three words, words typed without accents,
//! prefixes, function words, tool names, with and without theme, type, public
//! and centre filters) through `catalogue::search` with limit 20 and reports
//! latency percentiles. The target is p99 < 20 ms.
//!
//! `--data DIR` keeps the filled directory and reuses it on the next run
//! when it holds the requested number of records.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use clps_model::CentreId;
use clps_model::docs::catalogue;
use clps_model::docs::normalize::fold;
use clps_model::docs::{CATALOGUE_BUCKETS, CatalogueDoc, DocError, DocId};
use clps_node::catalogue::{SearchQuery, search};
use clps_node::store::{OpenMode, Store};
use rand::Rng;
use serde::Serialize;

use clps_bench::{
    GenRecord, Generator, TempDir, actors, load_average, machine, ms, thread_cpu_ms, write_record,
};

/// Seed of the record generator (the same catalogue as the granularity bench).
const SEED: u64 = 2021;

/// Results per query, as the CLI's default.
const LIMIT: usize = 20;

#[derive(Debug, Parser)]
#[command(
    name = "clps-bench-search",
    about = "Measures catalogue search latency over a projection of N records"
)]
struct Args {
    /// Records in the catalogue.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Queries measured (after a short warm-up).
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Node data directory to fill (kept) or reuse; a temporary one otherwise.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the N slowest queries.
    #[arg(long, default_value_t = 10)]
    slowest: usize,
    /// Experiment: set `PRAGMA mmap_size` to this many MB on the node's
    /// connection before the queries (the node itself does not set it).
    #[arg(long)]
    mmap_mb: Option<u64>,
}

/// One query as staff would type it, with the kind it stands for.
#[derive(Debug, Clone, Serialize)]
struct Case {
    kind: &'static str,
    text: String,
    theme: Option<String>,
    doc_type: Option<String>,
    public: Option<String>,
    centre: Option<String>,
}

impl Case {
    fn query(&self) -> SearchQuery {
        SearchQuery {
            text: self.text.clone(),
            theme: self.theme.clone(),
            doc_type: self.doc_type.clone(),
            public: self.public.clone(),
            centre: self.centre.clone(),
            available: false,
            age: None,
            year_from: None,
            year_to: None,
            limit: LIMIT,
        }
    }

    fn filtered(&self) -> bool {
        self.theme.is_some()
            || self.doc_type.is_some()
            || self.public.is_some()
            || self.centre.is_some()
    }

    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.text);
        for (name, value) in [
            ("theme", &self.theme),
            ("type", &self.doc_type),
            ("public", &self.public),
            ("centre", &self.centre),
        ] {
            if let Some(v) = value {
                s.push_str(&format!(" --{name} {v}"));
            }
        }
        s
    }
}

#[derive(Debug, Clone, Serialize)]
struct Timed {
    case: Case,
    /// Wall-clock time of `catalogue::search`.
    ms: f64,
    /// Time the storage thread spent on a CPU meanwhile: the machine is
    /// shared, and this part does not depend on what else runs.
    cpu_ms: f64,
    hits: usize,
}

#[derive(Debug, Clone, Serialize)]
struct Percentiles {
    n: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    cpus: usize,
    cpu_model: String,
    /// 1-minute load average before and after the queries.
    load_average: (f64, f64),
    records: usize,
    fill_s: Option<f64>,
    db_bytes: u64,
    limit: usize,
    overall: Percentiles,
    overall_cpu: Percentiles,
    by_kind: BTreeMap<String, Percentiles>,
    with_filters: Percentiles,
    without_filters: Percentiles,
    zero_hit_queries: usize,
    mmap_mb: Option<u64>,
    slowest: Vec<Timed>,
    /// Every query measured, in order.
    queries: Vec<Timed>,
}

fn percentiles(times: &[f64]) -> Percentiles {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        // Nearest rank.
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    };
    Percentiles {
        n: sorted.len(),
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
        max_ms: sorted.last().copied().unwrap_or(0.0),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The store's API is async; this program only waits on it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    run(&runtime, args)
}

fn run(runtime: &tokio::runtime::Runtime, args: Args) -> anyhow::Result<()> {
    let (cpus, cpu_model) = machine();
    let temp = match &args.data {
        Some(_) => None,
        None => Some(TempDir::new("clps-bench-search")?),
    };
    let dir = match (&args.data, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path.clone(),
        (None, None) => anyhow::bail!("no data directory"),
    };
    let store = Store::open(&dir, OpenMode::Create)?;
    let existing = runtime.block_on(store.call(|c| {
        Ok(match clps_node::centre::identity(c)? {
            Some(_) => Some(clps_node::catalogue::count(c)?),
            None => None,
        })
    }))?;
    let fill_s = match existing {
        Some(n) if usize::try_from(n)? == args.records => {
            eprintln!("reusing {} with {n} records", dir.display());
            None
        }
        Some(n) => anyhow::bail!(
            "{} already holds {n} records, not {}; pick another --data",
            dir.display(),
            args.records
        ),
        None => Some(fill(runtime, &store, args.records)?),
    };
    let db_bytes = std::fs::metadata(dir.join(clps_node::store::DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0);

    if let Some(mb) = args.mmap_mb {
        runtime.block_on(store.call(move |c| {
            c.pragma_update(None, "mmap_size", mb * 1024 * 1024)?;
            Ok(())
        }))?;
    }
    let cases = queries(args.queries);
    let load_before = load_average();
    let warmup = queries_with_seed(50, SEED + 7);
    eprintln!("running {} queries (limit {LIMIT})…", cases.len());
    let timed = runtime.block_on(store.call(move |conn| {
        for case in &warmup {
            search(conn, &case.query())?;
        }
        let mut out = Vec::with_capacity(cases.len());
        for case in cases {
            let q = case.query();
            let cpu = thread_cpu_ms();
            let started = Instant::now();
            let hits = search(conn, &q)?;
            let wall = ms(started.elapsed());
            out.push(Timed {
                ms: wall,
                cpu_ms: thread_cpu_ms() - cpu,
                hits: hits.len(),
                case,
            });
        }
        Ok(out)
    }))?;

    let load_after = load_average();
    let all: Vec<f64> = timed.iter().map(|t| t.ms).collect();
    let all_cpu: Vec<f64> = timed.iter().map(|t| t.cpu_ms).collect();
    let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for t in &timed {
        by_kind
            .entry(t.case.kind.to_owned())
            .or_default()
            .push(t.ms);
    }
    let pick = |filtered: bool| -> Vec<f64> {
        timed
            .iter()
            .filter(|t| t.case.filtered() == filtered)
            .map(|t| t.ms)
            .collect()
    };
    let mut slowest = timed.clone();
    slowest.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    slowest.truncate(args.slowest);
    let report = Report {
        cpus,
        cpu_model,
        load_average: (load_before, load_after),
        records: args.records,
        fill_s,
        db_bytes,
        limit: LIMIT,
        overall: percentiles(&all),
        overall_cpu: percentiles(&all_cpu),
        by_kind: by_kind
            .iter()
            .map(|(k, v)| (k.clone(), percentiles(v)))
            .collect(),
        with_filters: percentiles(&pick(true)),
        without_filters: percentiles(&pick(false)),
        zero_hit_queries: timed.iter().filter(|t| t.hits == 0).count(),
        mmap_mb: args.mmap_mb,
        slowest,
        queries: timed.clone(),
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Initialises the node and fills the catalogue bucket by bucket. Buckets
/// are built in memory as the ten centres wrote them, on every core but
/// one, and handed to the storage thread, which stores and projects each
/// one while the next ones are being built.
fn fill(runtime: &tokio::runtime::Runtime, store: &Store, n: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let centre = CentreId::new("charleroi-thuin")?;
    runtime.block_on(store.call(move |c| clps_node::centre::init(c, &centre, *b"benchnod")))?;
    let mut generator = Generator::new(SEED);
    let actors = actors(&generator);
    let mut by_bucket: Vec<(u16, Vec<GenRecord>)> =
        (0..CATALOGUE_BUCKETS).map(|b| (b, Vec::new())).collect();
    for _ in 0..n {
        let record = generator.record();
        by_bucket[usize::from(catalogue::bucket_of(&record.id))]
            .1
            .push(record);
    }
    let builders = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .max(2)
        - 1;
    let progress = indicatif::ProgressBar::new(u64::from(CATALOGUE_BUCKETS));
    let (built, finished) = std::sync::mpsc::sync_channel::<
        Result<(u16, automerge::AutoCommit, Vec<automerge::ChangeHash>), DocError>,
    >(2);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for t in 0..builders {
            let built = built.clone();
            let (by_bucket, actors) = (&by_bucket, &actors);
            scope.spawn(move || {
                for (bucket, records) in by_bucket.iter().skip(t).step_by(builders) {
                    let result = (|| {
                        let mut doc = CatalogueDoc::create(*bucket, actors[0].clone())?;
                        let before = doc.automerge_mut().get_heads();
                        for record in records {
                            doc = write_record(doc, record, actors)?;
                        }
                        Ok((*bucket, doc.into_automerge(), before))
                    })();
                    if built.send(result).is_err() {
                        return;
                    }
                }
            });
        }
        drop(built);
        for result in finished {
            let (bucket, mut am, before) = result?;
            let doc_id = DocId::catalogue(bucket);
            runtime.block_on(store.call(move |conn| {
                let tx = conn.transaction()?;
                // Received from the hub: nothing to send back.
                clps_node::shared::store(&tx, &doc_id, &mut am, &before, false)?;
                tx.commit()?;
                Ok(())
            }))?;
            progress.inc(1);
        }
        Ok(())
    })?;
    progress.finish_and_clear();
    let projected = runtime.block_on(store.call(|c| clps_node::catalogue::count(c)))?;
    anyhow::ensure!(
        usize::try_from(projected)? == n,
        "projected {projected} records, expected {n}"
    );
    // No ANALYZE: the node never runs it, so the planner has no statistics
    // here either.
    Ok(started.elapsed().as_secs_f64())
}

fn queries(n: usize) -> Vec<Case> {
    queries_with_seed(n, SEED + 1)
}

/// Draws `n` queries. The generator is built with the catalogue's seed so
/// that its invented tool names are the ones in the records, then advanced
/// by `seed` draws so warm-up and measured queries differ.
fn queries_with_seed(n: usize, seed: u64) -> Vec<Case> {
    let mut g = Generator::new(SEED);
    for _ in 0..seed % 1000 {
        g.rng().random::<u32>();
    }
    let accent_free = [
        "assuetudes",
        "sante",
        "education",
        "emotions",
        "prevention",
        "securite",
        "precarite",
        "egalite",
        "harcelement",
        "interculturalite",
        "sexualite",
        "ecrans",
        "pedagogique",
        "activite physique",
        "sante mentale",
    ];
    let typos = ["alcol", "santee", "prevension", "harclement", "emotoins"];
    let centres: Vec<String> = g.centres().iter().map(|c| c.to_string()).collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let roll = g.rng().random_range(0..100);
        let (kind, text) = match roll {
            0..=24 => {
                let w = g.word();
                let w = match g.rng().random_range(0..3) {
                    0 => w.to_owned(),
                    1 => fold(w),
                    _ => w.to_uppercase(),
                };
                ("one word", w)
            }
            25..=34 => ("tool name", g.rare_word()),
            35..=54 => ("two words", format!("{} {}", g.word(), fold(g.word()))),
            55..=62 => (
                "three words",
                format!("{} {} {}", g.word(), g.word(), g.word()),
            ),
            63..=72 => {
                let i = g.rng().random_range(0..accent_free.len());
                ("accent-free", accent_free[i].to_owned())
            }
            73..=77 => (
                "with function word",
                format!("{} {} {}", g.word(), g.connector_word(), g.word()),
            ),
            78..=82 => {
                let w = fold(g.word());
                let cut = w.char_indices().nth(4).map_or(w.len(), |(i, _)| i);
                ("prefix", w[..cut].to_owned())
            }
            83..=86 => {
                let i = g.rng().random_range(0..typos.len());
                ("no match", typos[i].to_owned())
            }
            _ => ("filters only", String::new()),
        };
        let filtered = kind == "filters only" || g.rng().random_bool(0.4);
        let mut case = Case {
            kind,
            text,
            theme: None,
            doc_type: None,
            public: None,
            centre: None,
        };
        if filtered {
            // Mostly one filter, sometimes two, rarely three; themes are the
            // most used, publics the least.
            let n_filters = match g.rng().random_range(0..100) {
                0..=74 => 1,
                75..=94 => 2,
                _ => 3,
            };
            while [&case.theme, &case.doc_type, &case.public, &case.centre]
                .iter()
                .filter(|f| f.is_some())
                .count()
                < n_filters
            {
                match g.rng().random_range(0..100) {
                    0..=44 => case.theme = Some(g.theme()),
                    45..=69 => case.doc_type = Some(g.any_doc_type()),
                    70..=89 => {
                        let i = g.rng().random_range(0..centres.len());
                        case.centre = Some(centres[i].clone());
                    }
                    _ => case.public = Some(g.public()),
                }
            }
        }
        out.push(case);
    }
    out
}

fn print_report(r: &Report) {
    println!();
    println!(
        "Catalogue search, {} records, limit {} ({} CPU(s), {})",
        r.records, r.limit, r.cpus, r.cpu_model
    );
    if let Some(s) = r.fill_s {
        println!("filled and projected in {s:.0} s");
    }
    println!(
        "database: {:.0} MB; load average {:.1} before the queries, {:.1} after",
        r.db_bytes as f64 / 1e6,
        r.load_average.0,
        r.load_average.1
    );
    println!();
    println!(
        "| {:<22} | {:>5} | {:>8} | {:>8} | {:>8} | {:>8} |",
        "queries", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(24),
        "-".repeat(7),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(10)
    );
    let line = |name: &str, p: &Percentiles| {
        println!(
            "| {:<22} | {:>5} | {:>8.2} | {:>8.2} | {:>8.2} | {:>8.2} |",
            name, p.n, p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms
        );
    };
    line("all", &r.overall);
    line("all, CPU time only", &r.overall_cpu);
    line("without filters", &r.without_filters);
    line("with filters", &r.with_filters);
    for (kind, p) in &r.by_kind {
        line(kind, p);
    }
    println!();
    println!(
        "target p99 < 20 ms: {} (p99 = {:.2} ms); {} queries found nothing",
        if r.overall.p99_ms < 20.0 {
            "met"
        } else {
            "MISSED"
        },
        r.overall.p99_ms,
        r.zero_hit_queries
    );
    if !r.slowest.is_empty() {
        println!();
        println!("slowest queries:");
        for t in &r.slowest {
            println!(
                "  {:>8.2} ms ({:>6.2} ms CPU)  {:>2} hits  [{}] {}",
                t.ms,
                t.cpu_ms,
                t.hits,
                t.case.kind,
                t.case.describe()
            );
        }
    }
}
