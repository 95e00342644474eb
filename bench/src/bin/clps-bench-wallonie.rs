//! `clps-bench-wallonie`: the federation at the network's real scale.
//!
//! Builds the workload "wallonie": a hub and ten nodes as separate processes
//! on loopback, with mutual TLS; 200,000 catalogue records spread over the
//! ten centres (30 % of them held by a second centre), every node holding the
//! converged catalogue and its calibrated year of local records. Then it
//! measures:
//!
//! - **bootstrap**: an empty eleventh node (a second machine of Namur) joins
//!   and receives everything (`clps-node sync`, wall time and wire bytes);
//! - **floor**: `Automerge::load()` of the same saved documents, in this
//!   process, one after the other;
//! - **reconnect**: the same node, now up to date, syncs again;
//! - **search**: local catalogue search on a node's database, p50 and p99,
//!   while the network is quiet;
//! - **first edit of a bucket**: the working set is the records of
//!   `--working-buckets` buckets; each is first edited once, alone, while no
//!   process holds it in memory (every process loads it on the way);
//! - **propagation**: edits of distinct working-set records at random
//!   serving nodes, one every `--edit-gap-ms` after the previous one is
//!   written; the time until every other serving node's database shows each
//!   one (polled every millisecond; `propagation.csv` in the work directory);
//! - **throughput**: all ten nodes edit working-set records as fast as they
//!   can for `--throughput-seconds`; changes per second the hub accepted
//!   meanwhile (its Prometheus counter);
//! - **memory and disk**: peak RSS (`VmHWM`) of the hub and of the serving
//!   nodes; database bytes per catalogue record at the hub and at a node.
//!
//! The setup is not measured: the catalogue is built in this process and
//! written into the hub's and the nodes' databases as the state they reach
//! after a full sync (same documents, same heads), so that the figures are
//! those of a running network, not of its first day.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use automerge::{Automerge, ChangeHash};
use clap::Parser;
use clps_bench::{GenRecord, Generator, actors, build_docs_each, load_average, machine, ms};
use clps_hub::identity::Identity;
use clps_hub::{Config, pki};
use clps_model::CentreId;
use clps_model::docs::catalogue::{RecordEdit, RecordId};
use clps_model::docs::{CATALOGUE_BUCKETS, DocId, catalogue};
use clps_node::catalogue::SearchQuery;
use clps_node::store::{OpenMode, Store};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Seed of the record generator: every run builds the same catalogue.
const SEED: u64 = 2021;

#[derive(Parser)]
#[command(
    name = "clps-bench-wallonie",
    about = "The federation at the network's real scale: a hub and ten nodes on loopback"
)]
struct Args {
    /// Catalogue records across the ten centres.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Edits timed for propagation.
    #[arg(long, default_value_t = 1_000)]
    edits: usize,
    /// Catalogue buckets whose records the propagation and throughput edits
    /// target (the records staff are working on); each is first edited once
    /// while no process has it in memory, which gives the cold figure.
    #[arg(long, default_value_t = 16)]
    working_buckets: usize,
    /// Pause between two propagation edits (ms).
    #[arg(long, default_value_t = 20)]
    edit_gap_ms: u64,
    /// How long all ten nodes edit for the throughput figure (s).
    #[arg(long, default_value_t = 20)]
    throughput_seconds: u64,
    /// Searches timed on one node.
    #[arg(long, default_value_t = 1_000)]
    searches: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Work in this directory and keep it (default: a temporary one, removed).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize)]
struct Figures {
    records: usize,
    bootstrap_s: f64,
    bootstrap_bytes: u64,
    floor_load_s: f64,
    bootstrap_over_floor: f64,
    reconnect_s: f64,
    reconnect_bytes: u64,
    propagation_p50_ms: f64,
    propagation_p99_ms: f64,
    propagation_max_ms: f64,
    propagation_edits: usize,
    propagation_undelivered: usize,
    working_set_records: usize,
    cold_edits: usize,
    cold_p50_ms: f64,
    cold_max_ms: f64,
    changes_per_s: f64,
    throughput_edits: u64,
    hub_rss_mib: f64,
    node_rss_mib: f64,
    bootstrap_node_rss_mib: f64,
    disk_bytes_per_record: f64,
    hub_disk_bytes_per_record: f64,
    search_p50_ms: f64,
    search_p99_ms: f64,
    catalogue_docs: usize,
    catalogue_bytes: u64,
    setup_s: f64,
    total_s: f64,
    cores: usize,
    cpu: String,
    load_average_end: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.records == 0 {
        bail!("--records must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (_guard, dir) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            if std::fs::read_dir(dir)?.next().is_some() {
                bail!("{} is not empty", dir.display());
            }
            (None, dir.clone())
        }
        None => {
            let tmp = clps_bench::TempDir::new("clps-wallonie")?;
            let path = tmp.path.clone();
            (Some(tmp), path)
        }
    };
    let started = Instant::now();
    let mut net = Network::new(dir)?;
    let result = runtime.block_on(run(&args, &mut net, started));
    net.stop();
    let figures = result?;
    print_table(&figures);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("figures written to {}", path.display());
    }
    Ok(())
}

fn step(started: Instant, what: &str) {
    eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
}

async fn run(args: &Args, net: &mut Network, started: Instant) -> anyhow::Result<Figures> {
    let mut figures = Figures {
        records: args.records,
        ..Figures::default()
    };
    (figures.cores, figures.cpu) = machine();

    step(
        started,
        &format!("building {} catalogue records", args.records),
    );
    let mut generator = Generator::new(SEED);
    let writers = actors(&generator);
    let mut layout: Vec<(u16, Vec<GenRecord>)> =
        (0..CATALOGUE_BUCKETS).map(|b| (b, Vec::new())).collect();
    for _ in 0..args.records {
        let record = generator.record();
        layout[usize::from(catalogue::bucket_of(&record.id))]
            .1
            .push(record);
    }
    let by_bucket: Vec<Vec<RecordId>> = layout
        .iter()
        .map(|(_, r)| r.iter().map(|r| r.id.clone()).collect())
        .collect();
    step(
        started,
        "writing them into a node database as they are built",
    );
    // Three busy threads on two cores: the two builders and the store's.
    let n_docs = layout.len();
    let (built, arriving) = tokio::sync::mpsc::channel(4);
    let builder = tokio::task::spawn_blocking(move || {
        build_docs_each(&layout, &writers, &|_, doc| {
            built.blocking_send(doc).is_ok()
        })
    });
    let template = net.dir.join("template");
    let snapshots = write_template(&template, arriving, n_docs).await;
    // A failed write stops the builders: its error is the one to report.
    let built = builder.await?;
    let snapshots = snapshots?;
    built?;
    figures.catalogue_docs = snapshots.len();
    figures.catalogue_bytes = snapshots.iter().map(|(_, b, _)| b.len() as u64).sum();

    step(started, "certificates and the hub's database");
    net.pki()?;
    seed_hub(&net.hub_db(), &snapshots).await?;

    step(
        started,
        "ten nodes: catalogue, identity, calibrated local year",
    );
    for (i, centre) in CentreId::all_ids().iter().enumerate() {
        net.make_node(&template, centre, i)?;
    }
    std::fs::remove_dir_all(&template)?;

    step(started, "starting the hub and the ten nodes");
    net.start_hub()?;
    for centre in CentreId::all_ids() {
        net.join(centre.as_str(), &net.node_dir(centre.as_str()))?;
    }
    net.serve_all()?;
    figures.setup_s = started.elapsed().as_secs_f64();

    step(
        started,
        "floor: Automerge::load of the saved catalogue documents",
    );
    let t = Instant::now();
    for (_, bytes, _) in &snapshots {
        let doc = Automerge::load(bytes).context("a saved document does not load")?;
        std::hint::black_box(doc.get_heads());
    }
    figures.floor_load_s = t.elapsed().as_secs_f64();
    drop(snapshots);

    step(started, "bootstrap: an empty eleventh node joins");
    let eleventh = net.dir.join("nodes").join("namur-2");
    net.node_cmd(&eleventh, &["init", "--centre", "namur"])?;
    net.join("namur", &eleventh)?;
    let t = Instant::now();
    let out = net.node_cmd(&eleventh, &["sync"])?;
    figures.bootstrap_s = t.elapsed().as_secs_f64();
    let (up, down) = wire_bytes(&out)?;
    figures.bootstrap_bytes = up + down;
    figures.bootstrap_over_floor = figures.bootstrap_s / figures.floor_load_s.max(1e-9);
    let held = count_records(&eleventh)?;
    if held != args.records {
        bail!(
            "the eleventh node holds {held} records after bootstrap, {} expected",
            args.records
        );
    }
    figures.bootstrap_node_rss_mib = net.last_child_peak_mib;
    eprintln!(
        "  bootstrap {:.2} s, {} bytes; floor {:.2} s; ratio {:.2}",
        figures.bootstrap_s,
        figures.bootstrap_bytes,
        figures.floor_load_s,
        figures.bootstrap_over_floor
    );

    step(started, "reconnect: the up-to-date node syncs again");
    let t = Instant::now();
    let out = net.node_cmd(&eleventh, &["sync"])?;
    figures.reconnect_s = t.elapsed().as_secs_f64();
    let (up, down) = wire_bytes(&out)?;
    figures.reconnect_bytes = up + down;
    eprintln!(
        "  reconnect {:.3} s, {} bytes",
        figures.reconnect_s, figures.reconnect_bytes
    );

    // While the network is quiet, as staff search between edits.
    step(
        started,
        &format!("search: {} queries on one node", args.searches),
    );
    let searches = search(
        &net.node_dir("charleroi-thuin").join("node.sqlite"),
        args.searches,
        &mut generator,
    )?;
    figures.search_p50_ms = percentile(&searches, 0.50);
    figures.search_p99_ms = percentile(&searches, 0.99);
    eprintln!(
        "  search p50 {:.2} ms, p99 {:.2} ms",
        figures.search_p50_ms, figures.search_p99_ms
    );

    let stores = net.open_stores()?;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    // The working set: the records of a few buckets, each first edited
    // once, alone, while no process holds it in memory (the cold figure:
    // every process loads the bucket on the way).
    let mut buckets: Vec<&Vec<RecordId>> = by_bucket.iter().filter(|b| !b.is_empty()).collect();
    buckets.shuffle(&mut rng);
    buckets.truncate(args.working_buckets.max(1));
    let working: Vec<RecordId> = buckets.iter().flat_map(|b| b.iter().cloned()).collect();
    figures.working_set_records = working.len();
    step(
        started,
        &format!(
            "first edit of {} buckets no process has loaded ({} records)",
            buckets.len(),
            working.len()
        ),
    );
    let firsts: Vec<RecordId> = buckets
        .iter()
        .filter_map(|b| b.choose(&mut rng).cloned())
        .collect();
    let cold = propagation(net, &stores, &firsts, 0, true, &mut rng).await?;
    figures.cold_edits = cold.len();
    figures.cold_p50_ms = percentile(&cold, 0.50);
    figures.cold_max_ms = percentile(&cold, 1.0);
    eprintln!(
        "  first edit of a bucket p50 {:.1} ms, max {:.1} ms",
        figures.cold_p50_ms, figures.cold_max_ms
    );

    step(
        started,
        &format!(
            "propagation: {} edits at random nodes, one every {} ms",
            args.edits, args.edit_gap_ms
        ),
    );
    // Distinct records: a record edited twice could show the second edit
    // before the first was seen, and the first would count as lost.
    let picks: Vec<RecordId> = working
        .choose_multiple(&mut rng, args.edits)
        .cloned()
        .collect();
    let latencies = propagation(net, &stores, &picks, args.edit_gap_ms, false, &mut rng).await?;
    figures.propagation_edits = latencies.len();
    figures.propagation_undelivered = picks.len().saturating_sub(latencies.len());
    figures.propagation_p50_ms = percentile(&latencies, 0.50);
    figures.propagation_p99_ms = percentile(&latencies, 0.99);
    figures.propagation_max_ms = percentile(&latencies, 1.0);
    eprintln!(
        "  propagation p50 {:.1} ms, p99 {:.1} ms, {} undelivered",
        figures.propagation_p50_ms, figures.propagation_p99_ms, figures.propagation_undelivered
    );

    step(
        started,
        &format!(
            "throughput: ten nodes edit for {} s",
            args.throughput_seconds
        ),
    );
    (figures.changes_per_s, figures.throughput_edits) =
        throughput(net, &stores, &working, args, &mut rng).await?;
    eprintln!(
        "  {:.0} accepted changes/s ({} edits)",
        figures.changes_per_s, figures.throughput_edits
    );
    drop(stores);

    step(started, "memory and disk");
    figures.hub_rss_mib = net.hub_peak_mib()?;
    figures.node_rss_mib = net.nodes_peak_mib()?;
    let records = args.records as f64;
    figures.hub_disk_bytes_per_record = sqlite_bytes(&net.hub_db()) as f64 / records;
    figures.disk_bytes_per_record =
        sqlite_bytes(&net.node_dir("charleroi-thuin").join("node.sqlite")) as f64 / records;

    figures.load_average_end = load_average();
    figures.total_s = started.elapsed().as_secs_f64();
    step(started, "done");
    Ok(figures)
}

/// Creates a node database holding `docs` as a node does after receiving
/// them (snapshot, projection, full-text index), and returns every stored
/// document: id, saved bytes, heads.
async fn write_template(
    dir: &Path,
    mut docs: tokio::sync::mpsc::Receiver<clps_model::docs::CatalogueDoc>,
    n: usize,
) -> anyhow::Result<Vec<(DocId, Vec<u8>, Vec<ChangeHash>)>> {
    let store = Store::open(dir, OpenMode::Create)?;
    let centre = CentreId::new("charleroi-thuin")?;
    store
        .call(move |c| clps_node::centre::init(c, &centre, *b"template"))
        .await?;
    let mut i = 0;
    while let Some(doc) = docs.recv().await {
        let bucket = doc.bucket();
        let mut doc = doc.into_automerge();
        store
            .call(move |c| {
                let tx = c.transaction()?;
                clps_node::shared::store(&tx, &DocId::catalogue(bucket), &mut doc, &[], false)?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        i += 1;
        if i % 32 == 0 || i == n {
            eprint!("\r  {i}/{n} documents");
        }
    }
    if i != n {
        bail!("{i} documents built, {n} expected");
    }
    eprintln!();
    drop(store);
    let conn = rusqlite::Connection::open(dir.join("node.sqlite"))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let mut stmt = conn.prepare(
        "SELECT d.doc_id, d.snapshot, h.heads, h.n_chunks FROM shared_docs d
             JOIN shared_doc_heads h USING (doc_id) ORDER BY d.doc_id",
    )?;
    let mut out = Vec::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (id, snapshot, heads, n_chunks) = row?;
        if n_chunks != 0 {
            bail!("{id} was stored in chunks");
        }
        let heads = heads
            .split(',')
            .map(|h| h.parse::<ChangeHash>())
            .collect::<Result<Vec<_>, _>>()?;
        out.push((DocId::parse(&id)?, snapshot, heads));
    }
    Ok(out)
}

/// Writes the documents into the hub's database as it holds them after the
/// nodes uploaded them: one compacted snapshot each.
async fn seed_hub(db: &Path, docs: &[(DocId, Vec<u8>, Vec<ChangeHash>)]) -> anyhow::Result<()> {
    let store = clps_hub::store::Store::open(Some(db))?;
    for (id, bytes, heads) in docs {
        let heads = clps_hub::docs::heads_to_bytes(heads);
        let key = id.to_string();
        store
            .append(&key, &id.space().to_string(), bytes.clone(), heads.clone())
            .await?;
        store.compact(&key, bytes.clone(), heads).await?;
    }
    Ok(())
}

/// The hub, the nodes and the files they share.
struct Network {
    dir: PathBuf,
    bins: PathBuf,
    hub: Option<Child>,
    hub_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    nodes: Vec<(String, Child)>,
    /// Peak RSS of the last node command run to its end (MiB).
    last_child_peak_mib: f64,
}

impl Network {
    fn new(dir: PathBuf) -> anyhow::Result<Network> {
        let bins = std::env::current_exe()?
            .parent()
            .context("no directory for the benchmark binary")?
            .to_path_buf();
        for program in ["clps-hub", "clps-node"] {
            if !bins.join(program).is_file() {
                bail!(
                    "{program} is not in {}: run the benchmark with ./bench/wallonie.sh, which builds every binary",
                    bins.display()
                );
            }
        }
        Ok(Network {
            dir,
            bins,
            hub: None,
            hub_addr: None,
            metrics_addr: None,
            nodes: Vec::new(),
            last_child_peak_mib: 0.0,
        })
    }

    fn pki_dir(&self) -> PathBuf {
        self.dir.join("pki")
    }

    fn hub_db(&self) -> PathBuf {
        self.dir.join("hub").join("hub.sqlite")
    }

    fn node_dir(&self, centre: &str) -> PathBuf {
        self.dir.join("nodes").join(centre)
    }

    fn pki(&self) -> anyhow::Result<()> {
        pki::init(&self.pki_dir(), &[])?;
        for centre in CentreId::all_ids() {
            pki::issue(&self.pki_dir(), &Identity::Centre(centre))?;
        }
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            metrics_listen: Some("127.0.0.1:0".parse()?),
            database: Some(self.hub_db()),
            ..Config::default()
        }
        .with_pki_dir(&self.pki_dir());
        std::fs::write(self.dir.join("hub.toml"), toml::to_string(&config)?)?;
        Ok(())
    }

    /// A copy of the template database under the centre's identity, with
    /// its calibrated local year.
    fn make_node(
        &mut self,
        template: &Path,
        centre: &CentreId,
        index: usize,
    ) -> anyhow::Result<()> {
        let dir = self.node_dir(centre.as_str());
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(template.join("node.sqlite"), dir.join("node.sqlite"))?;
        let conn = rusqlite::Connection::open(dir.join("node.sqlite"))?;
        let instance: String = format!("b0{:02x}{}", index, "00".repeat(6));
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'centre_id'",
            [centre.as_str()],
        )?;
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'instance'",
            [&instance],
        )?;
        drop(conn);
        let year = ["seed", "--year", "2021"];
        if centre.as_str() == "charleroi-thuin" {
            self.node_cmd(&dir, &[&year[..], &["--calibration"]].concat())?;
        } else {
            let scale = clps_model::seed_data::relative_size(centre.as_str()).to_string();
            self.node_cmd(&dir, &[&year[..], &["--scale", &scale]].concat())?;
        }
        Ok(())
    }

    /// Runs `clps-node --data DIR ARGS` to its end; its stdout.
    fn node_cmd(&mut self, data: &Path, args: &[&str]) -> anyhow::Result<String> {
        let child = Command::new(self.bins.join("clps-node"))
            .arg("--data")
            .arg(data)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        // Sample the peak RSS while it runs (VmHWM is gone once it exits).
        let peak = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Some(kb) = peak_kib(pid) {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let output = child.wait_with_output()?;
        done.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        self.last_child_peak_mib = peak.load(Ordering::Relaxed) as f64 / 1024.0;
        if !output.status.success() {
            bail!(
                "clps-node {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn start_hub(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.join("hub.log"))?;
        let mut child = Command::new(self.bins.join("clps-hub"))
            .arg("serve")
            .arg("--config")
            .arg(self.dir.join("hub.toml"))
            .env(
                "RUST_LOG",
                std::env::var("CLPS_BENCH_HUB_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()?;
        let stdout = child.stdout.take().context("hub stdout")?;
        self.hub = Some(child);
        let mut lines = BufReader::new(stdout).lines();
        while self.hub_addr.is_none() || self.metrics_addr.is_none() {
            let Some(line) = lines.next() else {
                bail!("the hub exited before listening (see hub.log)");
            };
            let line = line?;
            if let Some(addr) = line.strip_prefix("hub à l'écoute sur ") {
                self.hub_addr = Some(addr.trim().parse()?);
            } else if let Some(rest) = line.strip_prefix("métriques sur http://") {
                self.metrics_addr = Some(rest.trim_end_matches("/metrics").trim().parse()?);
            }
        }
        // Keep draining stdout so the hub never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(())
    }

    fn join(&mut self, centre: &str, data: &Path) -> anyhow::Result<()> {
        let hub = self.hub_addr.context("hub not started")?.to_string();
        let pki = self.pki_dir();
        let ca = pki.join(pki::CA_CERT);
        let cert = pki.join(format!("centre-{centre}.crt"));
        let key = pki.join(format!("centre-{centre}.key"));
        self.node_cmd(
            data,
            &[
                "join",
                "--hub",
                &hub,
                "--ca",
                path_str(&ca)?,
                "--cert",
                path_str(&cert)?,
                "--key",
                path_str(&key)?,
                "--web",
                "aucune",
            ],
        )?;
        Ok(())
    }

    /// Starts `clps-node serve` on the ten nodes and waits until each has
    /// converged with the hub once.
    fn serve_all(&mut self) -> anyhow::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for centre in CentreId::all_ids() {
            let dir = self.node_dir(centre.as_str());
            let log = std::fs::File::create(dir.join("serve.log"))?;
            let mut child = Command::new(self.bins.join("clps-node"))
                .arg("--data")
                .arg(&dir)
                .arg("serve")
                .env("CLPS_LOG", "clps_node=info")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::piped())
                .spawn()?;
            let stderr = child.stderr.take().context("node stderr")?;
            let tx = tx.clone();
            let name = centre.to_string();
            let mut log = std::fs::File::create(dir.join("serve.err"))?;
            std::thread::spawn(move || {
                let mut announced = false;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = writeln!(log, "{line}");
                    if !announced && line.contains("converged with the hub") {
                        announced = true;
                        let _ = tx.send(name.clone());
                    }
                }
            });
            self.nodes.push((centre.to_string(), child));
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut ready = 0;
        while ready < self.nodes.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(_) => ready += 1,
                Err(_) => bail!(
                    "only {ready} of {} nodes converged with the hub (see nodes/*/serve.err)",
                    self.nodes.len()
                ),
            }
        }
        Ok(())
    }

    fn open_stores(&self) -> anyhow::Result<Vec<(String, Store)>> {
        CentreId::all_ids()
            .into_iter()
            .map(|c| {
                let store = Store::open(&self.node_dir(c.as_str()), OpenMode::Existing)?;
                Ok((c.to_string(), store))
            })
            .collect()
    }

    fn hub_peak_mib(&self) -> anyhow::Result<f64> {
        let pid = self.hub.as_ref().context("hub not started")?.id();
        Ok(peak_kib(pid).context("hub has exited")? as f64 / 1024.0)
    }

    fn nodes_peak_mib(&self) -> anyhow::Result<f64> {
        let mut peak = 0u64;
        for (name, child) in &self.nodes {
            let kb = peak_kib(child.id()).with_context(|| format!("node {name} has exited"))?;
            peak = peak.max(kb);
        }
        Ok(peak as f64 / 1024.0)
    }

    /// Changes the hub has accepted since it started.
    fn accepted(&self) -> anyhow::Result<u64> {
        let addr = self.metrics_addr.context("no metrics address")?;
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        text.lines()
            .find_map(|l| l.strip_prefix("clps_hub_changes_accepted_total "))
            .context("no clps_hub_changes_accepted_total in the hub's metrics")?
            .trim()
            .parse::<f64>()
            .map(|v| v as u64)
            .context("unreadable clps_hub_changes_accepted_total")
    }

    fn stop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(hub) = &mut self.hub {
            let _ = hub.kill();
            let _ = hub.wait();
        }
    }
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// `VmHWM` of a process, KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix("VmHWM:")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

/// The wire bytes (sent, received) that `clps-node sync` reports.
fn wire_bytes(out: &str) -> anyhow::Result<(u64, u64)> {
    let line = out
        .lines()
        .find(|l| l.starts_with("Synchronisé avec le hub"))
        .with_context(|| format!("no sync report in « {} »", out.trim()))?;
    let tail = line.rsplit(" ; ").next().unwrap_or_default();
    let numbers: Vec<u64> = tail
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    match numbers[..] {
        [up, down] => Ok((up, down)),
        _ => bail!("unreadable sync report « {line} »"),
    }
}

fn count_records(data: &Path) -> anyhow::Result<usize> {
    let conn = rusqlite::Connection::open(data.join("node.sqlite"))?;
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM catalogue", [], |r| r.get(0))?;
    Ok(usize::try_from(n)?)
}

fn sqlite_bytes(path: &Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        total += std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len());
    }
    total
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One edit being watched for: where it was made, what marks it, when it
/// committed, and when each other node showed it.
struct Watched {
    origin: usize,
    record: String,
    marker: String,
    committed: Instant,
    /// The commit time on the wall clock, to read the nodes' and the hub's
    /// logs against `propagation.csv`.
    committed_unix_ms: u128,
    seen: Vec<Option<Instant>>,
}

async fn edit(store: &Store, record: &RecordId, marker: String) -> anyhow::Result<()> {
    let record = record.clone();
    store
        .call(move |c| {
            clps_node::catalogue::edit(c, &record, &[RecordEdit::ConditionsOfUse(marker)])
        })
        .await?;
    Ok(())
}

/// Edits `picks` in turn, each at a random node, `gap_ms` apart (or each
/// once the previous one is everywhere, if `one_at_a_time`); the time each
/// took to reach every other node (ms).
async fn propagation(
    net: &Network,
    stores: &[(String, Store)],
    picks: &[RecordId],
    gap_ms: u64,
    one_at_a_time: bool,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Vec<f64>> {
    let n = stores.len();
    let watched: Arc<Mutex<Vec<Watched>>> = Arc::new(Mutex::new(Vec::new()));
    let finished = Arc::new(AtomicBool::new(false));
    let paths: Vec<PathBuf> = stores
        .iter()
        .map(|(c, _)| net.node_dir(c).join("node.sqlite"))
        .collect();
    let watcher = {
        let (watched, finished) = (watched.clone(), finished.clone());
        std::thread::spawn(move || watch(&paths, &watched, &finished))
    };
    let marker_base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    for (k, record) in picks.iter().enumerate() {
        let origin = rng.random_range(0..n);
        let marker = format!("wallonie-propagation-{marker_base}-{k}");
        edit(&stores[origin].1, record, marker.clone()).await?;
        let committed = Instant::now();
        let committed_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut seen = vec![None; n];
        seen[origin] = Some(committed);
        watched
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push(Watched {
                origin,
                record: record.to_string(),
                marker,
                committed,
                committed_unix_ms,
                seen,
            });
        if (k + 1) % 100 == 0 {
            eprint!("\r  {}/{} edits", k + 1, picks.len());
        }
        if one_at_a_time {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline
                && watched
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .last()
                    .is_some_and(|w| w.seen.iter().any(Option::is_none))
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
    }
    eprintln!();
    // Every edit gets up to a minute after the last one to arrive.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = watched
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .iter()
            .filter(|w| w.seen.iter().any(Option::is_none))
            .count();
        if pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    finished.store(true, Ordering::Relaxed);
    watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the watcher panicked"))??;
    let watched = watched.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let name = if one_at_a_time {
        "first-edits.csv"
    } else {
        "propagation.csv"
    };
    write_arrivals(&net.dir.join(name), stores, &watched)?;
    Ok(watched
        .iter()
        .filter_map(|w| {
            let last = w
                .seen
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != w.origin)
                .map(|(_, s)| *s)
                .collect::<Option<Vec<Instant>>>()?
                .into_iter()
                .max()?;
            Some(ms(last.duration_since(w.committed)))
        })
        .collect())
}

/// One line per edit: when it was committed (Unix ms), where, and how long
/// each node took to show it (ms, empty if never), for reading against the
/// logs of a run kept with `--dir`.
fn write_arrivals(
    path: &Path,
    stores: &[(String, Store)],
    watched: &[Watched],
) -> anyhow::Result<()> {
    let mut out = String::from("edit,committed_unix_ms,origin");
    for (centre, _) in stores {
        out.push(',');
        out.push_str(centre);
    }
    out.push('\n');
    for (k, w) in watched.iter().enumerate() {
        out.push_str(&format!(
            "{k},{},{}",
            w.committed_unix_ms, stores[w.origin].0
        ));
        for seen in &w.seen {
            out.push(',');
            if let Some(at) = seen {
                out.push_str(&format!("{:.1}", ms(at.duration_since(w.committed))));
            }
        }
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// Polls every node's database (read-only) for the watched edits; a
/// database is read again only when its data version moved.
fn watch(
    paths: &[PathBuf],
    watched: &Mutex<Vec<Watched>>,
    finished: &AtomicBool,
) -> anyhow::Result<()> {
    let conns = paths
        .iter()
        .map(|p| {
            let c = rusqlite::Connection::open_with_flags(
                p,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            c.busy_timeout(Duration::from_secs(10))?;
            Ok(c)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut versions = vec![-1i64; conns.len()];
    while !finished.load(Ordering::Relaxed) {
        for (i, conn) in conns.iter().enumerate() {
            let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            if version == versions[i] {
                continue;
            }
            let wanted: Vec<(usize, String, String)> = watched
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .iter()
                .enumerate()
                .filter(|(_, w)| w.seen[i].is_none())
                .map(|(k, w)| (k, w.record.clone(), w.marker.clone()))
                .collect();
            let mut stmt =
                conn.prepare_cached("SELECT conditions FROM catalogue WHERE record_id = ?1")?;
            let mut arrived = Vec::new();
            for (k, record, marker) in wanted {
                let conditions: Option<String> = stmt
                    .query_row([&record], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })?;
                if conditions.as_deref() == Some(marker.as_str()) {
                    arrived.push(k);
                }
            }
            let now = Instant::now();
            let mut list = watched.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for k in arrived {
                list[k].seen[i].get_or_insert(now);
            }
            // Seen only when nothing is left to find at this version: an
            // edit registered after the read is looked for next round.
            versions[i] = version;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

async fn throughput(
    net: &Network,
    stores: &[(String, Store)],
    records: &[RecordId],
    args: &Args,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<(f64, u64)> {
    let before = net.accepted()?;
    let until = Instant::now() + Duration::from_secs(args.throughput_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (_, store)) in stores.iter().enumerate() {
        let store = store.clone();
        let mut local = ChaCha8Rng::seed_from_u64(rng.random());
        let records = records.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut made = 0u64;
            while Instant::now() < until {
                let Some(record) = records.choose(&mut local) else {
                    break;
                };
                edit(&store, record, format!("wallonie-débit-{i}-{made}")).await?;
                made += 1;
            }
            Ok::<u64, anyhow::Error>(made)
        }));
    }
    let mut made = 0;
    for task in tasks {
        made += task.await??;
    }
    // Accepted while the nodes edit: what the network sustains.
    let accepted = net.accepted()? - before;
    let elapsed = started.elapsed().as_secs_f64();
    // Let the backlog drain (bounded) so that later figures start quiet.
    let deadline = Instant::now() + Duration::from_secs(30);
    while net.accepted()? - before < made && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((accepted as f64 / elapsed, made))
}

fn search(db: &Path, n: usize, generator: &mut Generator) -> anyhow::Result<Vec<f64>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let text = match i % 4 {
            0 => generator.word().to_owned(),
            1 => format!("{} {}", generator.word(), generator.word()),
            2 => generator.rare_word(),
            _ => String::new(),
        };
        let query = SearchQuery {
            text,
            theme: (i % 3 == 0).then(|| generator.theme()),
            doc_type: (i % 5 == 0).then(|| generator.any_doc_type()),
            public: None,
            centre: None,
            available: false,
            age: None,
            year_from: None,
            year_to: None,
            limit: 20,
        };
        let t = Instant::now();
        let hits = clps_node::catalogue::search(&conn, &query)?;
        times.push(ms(t.elapsed()));
        std::hint::black_box(hits);
    }
    Ok(times)
}

fn print_table(f: &Figures) {
    let rows: Vec<(&str, String, String)> = vec![
        ("records", f.records.to_string(), String::new()),
        (
            "catalogue documents",
            format!(
                "{} ({:.1} MB saved)",
                f.catalogue_docs,
                f.catalogue_bytes as f64 / 1e6
            ),
            String::new(),
        ),
        (
            "bootstrap",
            format!(
                "{:.2} s, {:.1} MB on the wire",
                f.bootstrap_s,
                f.bootstrap_bytes as f64 / 1e6
            ),
            String::new(),
        ),
        (
            "floor (Automerge load)",
            format!("{:.2} s", f.floor_load_s),
            String::new(),
        ),
        (
            "bootstrap / floor",
            format!("{:.2}", f.bootstrap_over_floor),
            verdict(f.bootstrap_over_floor <= 2.0, "≤ 2"),
        ),
        (
            "reconnect",
            format!("{:.3} s, {} bytes", f.reconnect_s, f.reconnect_bytes),
            verdict(
                f.reconnect_s < 1.0 && f.reconnect_bytes < 65_536,
                "< 1 s, < 64 KiB",
            ),
        ),
        (
            "propagation p50 / p99 / max",
            format!(
                "{:.1} / {:.1} / {:.1} ms ({} edits over {} records, {} undelivered)",
                f.propagation_p50_ms,
                f.propagation_p99_ms,
                f.propagation_max_ms,
                f.propagation_edits,
                f.working_set_records,
                f.propagation_undelivered
            ),
            verdict(
                f.propagation_p99_ms < 100.0 && f.propagation_undelivered == 0,
                "p99 < 100 ms",
            ),
        ),
        (
            "first edit of a bucket p50 / max",
            format!(
                "{:.1} / {:.1} ms ({} buckets, every process loads it)",
                f.cold_p50_ms, f.cold_max_ms, f.cold_edits
            ),
            String::new(),
        ),
        (
            "throughput",
            format!(
                "{:.0} accepted changes/s while the ten nodes edit ({} edits made)",
                f.changes_per_s, f.throughput_edits
            ),
            String::new(),
        ),
        (
            "hub peak RSS",
            format!("{:.0} MiB", f.hub_rss_mib),
            verdict(f.hub_rss_mib < 1024.0, "< 1 GiB"),
        ),
        (
            "node peak RSS (serving / bootstrap)",
            format!(
                "{:.0} / {:.0} MiB",
                f.node_rss_mib, f.bootstrap_node_rss_mib
            ),
            String::new(),
        ),
        (
            "disk per record (node / hub)",
            format!(
                "{:.0} / {:.0} bytes",
                f.disk_bytes_per_record, f.hub_disk_bytes_per_record
            ),
            String::new(),
        ),
        (
            "search p50 / p99",
            format!("{:.2} / {:.2} ms", f.search_p50_ms, f.search_p99_ms),
            verdict(f.search_p99_ms < 20.0, "p99 < 20 ms"),
        ),
        (
            "machine",
            format!(
                "{} cores, {}; load average at the end {:.1}",
                f.cores, f.cpu, f.load_average_end
            ),
            String::new(),
        ),
        (
            "time",
            format!("setup {:.0} s, total {:.0} s", f.setup_s, f.total_s),
            String::new(),
        ),
    ];
    let width = rows
        .iter()
        .map(|(k, _, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!();
    println!("wallonie: a hub and ten nodes on loopback, mutual TLS");
    for (key, value, target) in rows {
        let pad = width - key.chars().count();
        if target.is_empty() {
            println!("  {key}{}  {value}", " ".repeat(pad));
        } else {
            println!("  {key}{}  {value}  [{target}]", " ".repeat(pad));
        }
    }
}

fn verdict(met: bool, target: &str) -> String {
    if met {
        format!("target {target}: met")
    } else {
        format!("target {target}: NOT met")
    }
}
