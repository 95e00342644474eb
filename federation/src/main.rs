//! `clps-federation`: the README's main job. It builds a throwaway
//! federation on this machine — a PKI, a hub and ten `clps-node serve`
//! processes with real mutual TLS on loopback — seeds each centre's year and
//! a shared catalogue, makes concurrent offline edits at several centres on
//! the same records, brings them back online, waits for convergence and
//! prints what a newcomer should see: per node its counts and heads, that the
//! ten nodes hold identical shared documents, and the network's merged
//! statistics in French.
//!
//! Every child process is killed when this process exits or is interrupted
//! (Ctrl-C); `--keep-running` leaves the federation up until Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use clps_model::CentreId;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The demo account `--keep-running` creates at every centre.
const DEMO_LOGIN: &str = "documentaliste";
const DEMO_PASSWORD: &str = "demo-clps-2021";

#[derive(Debug, Parser)]
#[command(
    name = "clps-federation",
    about = "Démonstration : dix CLPS et un hub sur cette machine, avec TLS mutuel"
)]
struct Args {
    /// Working directory (default: a new temporary directory, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Leave the hub and the nodes running until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
    /// Write a JSON summary to this file.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Catalogue records each centre imports.
    #[arg(long, default_value_t = 300)]
    records_per_centre: usize,
    /// Where clps-hub and clps-node are (default: next to this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Seconds to wait for convergence before giving up.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
}

/// Every child process, killed on drop (normal exit, error or Ctrl-C).
#[derive(Default)]
struct Children {
    running: BTreeMap<String, Child>,
}

impl Children {
    fn add(&mut self, name: &str, child: Child) {
        self.running.insert(name.to_owned(), child);
    }

    /// Asks a child to stop (SIGINT: the hub and nodes shut down cleanly),
    /// then kills it if it has not exited within a few seconds.
    async fn stop(&mut self, name: &str) {
        if let Some(mut child) = self.running.remove(name) {
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }

    async fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        // Nodes first, then the hub.
        for name in names.iter().filter(|n| *n != "hub") {
            self.stop(name).await;
        }
        self.stop("hub").await;
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.running.values_mut() {
            let _ = child.start_kill();
        }
    }
}

struct Federation {
    dir: PathBuf,
    bin: PathBuf,
    children: Children,
    hub_addr: String,
    progress: indicatif::ProgressBar,
}

impl Federation {
    fn node_dir(&self, centre: &str) -> PathBuf {
        self.dir.join("nodes").join(centre)
    }

    fn step(&self, message: &str) {
        self.progress.set_message(message.to_owned());
        self.progress.inc(1);
        if self.progress.is_hidden() {
            // Not eprintln!: a closed stderr (a reader that went away) must
            // not abort the run.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "… [{:>5.1} s] {message}",
                self.progress.elapsed().as_secs_f64()
            );
        }
    }

    /// Runs a command to completion; fails with its stderr.
    async fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(self.bin.join(program))
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("cannot run {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A node command that reads `input` on its standard input.
    async fn node_with_input(&self, centre: &str, args: &[&str], input: &str) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new(self.bin.join("clps-node"))
            .arg("--data")
            .arg(self.node_dir(centre))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run clps-node")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "clps-node {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The web address a node's `serve` printed in its log.
    fn web_address(&self, centre: &str) -> Option<String> {
        let log = std::fs::read_to_string(self.node_dir(centre).join("serve.log")).ok()?;
        log.lines().rev().find_map(|line| {
            let rest = line.split("application web sur ").nth(1)?;
            Some(rest.split_whitespace().next()?.to_owned())
        })
    }

    async fn node(&self, centre: &str, args: &[&str]) -> Result<String> {
        let dir = self.node_dir(centre);
        let mut full = vec!["--data", dir.to_str().unwrap_or_default()];
        full.extend_from_slice(args);
        self.run("clps-node", &full).await
    }

    async fn start_hub(&mut self) -> Result<()> {
        let pki = self.dir.join("pki");
        let config = format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndatabase = \"{db}\"\n\n[tls]\nca_cert = \"{pki}/ca.crt\"\ncert = \"{pki}/hub.crt\"\nkey = \"{pki}/hub.key\"\n\n[[spaces]]\nid = \"appui:assuetudes\"\nwriters = [\"*\"]\n\n[[spaces]]\nid = \"appui:evras\"\nwriters = [\"*\"]\n\n[[spaces]]\nid = \"appui:covid\"\nwriters = [\"*\"]\n",
            db = self.dir.join("hub").join("hub.sqlite").display(),
            pki = pki.display()
        );
        std::fs::create_dir_all(self.dir.join("hub"))?;
        std::fs::write(self.dir.join("hub.toml"), config)?;
        let log = std::fs::File::create(self.dir.join("hub").join("hub.log"))?;
        let mut child = Command::new(self.bin.join("clps-hub"))
            .args(["serve", "--config"])
            .arg(self.dir.join("hub.toml"))
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start clps-hub")?;
        let stdout = child.stdout.take().context("hub stdout")?;
        self.children.add("hub", child);
        // The hub prints its address once it listens: wait for that line.
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("hub à l'écoute sur ") {
                    return Ok::<_, anyhow::Error>(addr.trim().to_owned());
                }
            }
            bail!("the hub exited before listening (see hub/hub.log)")
        })
        .await
        .context("the hub did not start within 30 s")??;
        // Keep draining the hub's stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.hub_addr = addr;
        Ok(())
    }

    fn start_node(&mut self, centre: &str) -> Result<()> {
        let dir = self.node_dir(centre);
        let log = std::fs::File::create(dir.join("serve.log"))?;
        let child = Command::new(self.bin.join("clps-node"))
            .arg("--data")
            .arg(&dir)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the node of {centre}"))?;
        self.children.add(centre, child);
        Ok(())
    }

    async fn docs(&self, centre: &str) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.node(centre, &["docs"]).await?)?)
    }

    /// Waits until every node holds the same documents with the same heads
    /// and has nothing left to send; returns the common document map.
    async fn wait_converged(
        &self,
        centres: &[String],
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        let started = Instant::now();
        loop {
            let mut first: Option<serde_json::Value> = None;
            let mut same = true;
            for centre in centres {
                let docs = self.docs(centre).await?;
                if docs["pending_changes"].as_i64() != Some(0) {
                    same = false;
                    break;
                }
                match &first {
                    None => first = Some(docs["docs"].clone()),
                    Some(f) if *f != docs["docs"] => {
                        same = false;
                        break;
                    }
                    Some(_) => {}
                }
            }
            if same && let Some(docs) = first {
                return Ok(docs);
            }
            if started.elapsed() > timeout {
                bail!("the nodes did not converge within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// A centre's catalogue export, in the CSV layout `clps-node catalogue import` reads.
fn catalogue_csv(centre: &str, n: usize, seed: u64) -> String {
    let v = clps_model::vocab::get();
    let themes: Vec<&str> = v.themes.codes().collect();
    let types = [
        ("outil_pedagogique", 5),
        ("dossier", 4),
        ("brochure", 3),
        ("ouvrage", 2),
        ("article_revue", 6),
        ("affiche", 1),
        ("dvd", 1),
        ("livre_enfants", 1),
    ];
    let starts = [
        "Parler de",
        "Animer autour de",
        "Comprendre",
        "Agir sur",
        "Jeux et",
        "Guide pratique :",
        "Dossier thématique :",
        "Photo-expression :",
        "Repères pour",
        "Outils pour aborder",
    ];
    let publishers = [
        "Cultures & Santé",
        "Question Santé",
        "FCPPF",
        "Mutualité chrétienne",
        "Infor-Drogues",
        "Observatoire de la Santé du Hainaut",
        "Fédération des maisons médicales",
        "Prospective Jeunesse",
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = String::from(
        "id_local,titre,type,auteurs,editeur,annee,themes,publics,description,cote,exemplaires\n",
    );
    let weights: u32 = types.iter().map(|(_, w)| w).sum();
    for i in 0..n {
        let mut pick = rng.random_range(0..weights);
        let doc_type = types
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map_or("dossier", |(t, _)| t);
        let t1 = themes[rng.random_range(0..themes.len())];
        let t2 = themes[rng.random_range(0..themes.len())];
        let label = v.themes.label(t1).unwrap_or(t1).to_lowercase();
        let publisher = publishers[rng.random_range(0..publishers.len())];
        out.push_str(&format!(
            "{local},\"{start} {label} ({centre} {i})\",{doc_type},\"{publisher}\",\"{publisher}\",{year},{t1};{t2},adultes,\"Ressource sur {label} pour les professionnels.\",{shelf}-{i:05},{copies}\n",
            local = 1000 + i,
            start = starts[rng.random_range(0..starts.len())],
            year = rng.random_range(1998..2022),
            shelf = &centre[..3].to_uppercase(),
            copies = rng.random_range(1..4),
        ));
    }
    // Tools named in the reports, catalogued at several centres: duplicates.
    for (j, tool) in clps_model::seed_data::named_tools().iter().enumerate() {
        if (j + centre.len()).is_multiple_of(3) {
            out.push_str(&format!(
                "{},\"{}\",{},\"{}\",\"{}\",{},{},,,OP-{j:03},1\n",
                j + 1,
                tool.title.replace('"', "'"),
                tool.doc_type,
                tool.creator.clone().unwrap_or_default().replace('"', "'"),
                tool.creator.clone().unwrap_or_default().replace('"', "'"),
                tool.year.map(|y| y.to_string()).unwrap_or_default(),
                tool.themes.join(";"),
            ));
        }
    }
    out
}

fn short_heads(docs: &serde_json::Value) -> String {
    // A digest of every document's heads: equal digests, equal documents.
    let text = docs.to_string();
    let hash = clps_model::text::fnv1a(text.bytes());
    format!("{hash:016x}")
}

async fn run(args: &Args, fed: &mut Federation) -> Result<serde_json::Value> {
    let started = Instant::now();
    let centres: Vec<String> = CentreId::all_ids().iter().map(|c| c.to_string()).collect();
    let pki = fed.dir.join("pki");
    let pki_s = pki.to_str().unwrap_or_default().to_owned();

    fed.step("autorité de certification et certificats des dix centres");
    fed.run("clps-hub", &["pki", "init", "--dir", &pki_s])
        .await?;
    for centre in &centres {
        fed.run(
            "clps-hub",
            &["pki", "issue", "--dir", &pki_s, "--centre", centre],
        )
        .await?;
    }
    fed.run(
        "clps-hub",
        &[
            "pki",
            "issue",
            "--dir",
            &pki_s,
            "--committee",
            "comite-inter-clps",
        ],
    )
    .await?;

    fed.step("démarrage du hub (TLS mutuel sur 127.0.0.1)");
    fed.start_hub().await?;
    let hub_addr = fed.hub_addr.clone();

    for (i, centre) in centres.iter().enumerate() {
        fed.step(&format!(
            "nœud {centre} : initialisation, année 2021, catalogue"
        ));
        std::fs::create_dir_all(fed.node_dir(centre))?;
        fed.node(centre, &["init", "--centre", centre]).await?;
        let cert = pki.join(format!("centre-{centre}.crt"));
        let key = pki.join(format!("centre-{centre}.key"));
        fed.node(
            centre,
            &[
                "join",
                "--hub",
                &hub_addr,
                "--ca",
                pki.join("ca.crt").to_str().unwrap_or_default(),
                "--cert",
                cert.to_str().unwrap_or_default(),
                "--key",
                key.to_str().unwrap_or_default(),
                "--web",
                "127.0.0.1:0",
            ],
        )
        .await?;
        if centre == "charleroi-thuin" {
            fed.node(
                centre,
                &["seed", "--year", "2021", "--calibration", "--seed", "2021"],
            )
            .await?;
        } else {
            let scale = clps_model::seed_data::relative_size(centre);
            fed.node(
                centre,
                &[
                    "seed",
                    "--year",
                    "2021",
                    "--scale",
                    &scale.to_string(),
                    "--seed",
                    "2021",
                ],
            )
            .await?;
        }
        let csv = fed.node_dir(centre).join("catalogue-export.csv");
        std::fs::write(
            &csv,
            catalogue_csv(centre, args.records_per_centre, i as u64 + 1),
        )?;
        fed.node(
            centre,
            &["catalogue", "import", csv.to_str().unwrap_or_default()],
        )
        .await?;
    }

    // A first one-shot sync per node, twice around, brings everyone the
    // others' catalogue and figures; then the nodes stay online.
    for round in 1..=2 {
        for centre in &centres {
            fed.step(&format!("synchronisation {round}/2 : {centre}"));
            fed.node(centre, &["sync"]).await?;
        }
    }
    fed.step("dix nœuds en ligne (clps-node serve)");
    for centre in &centres {
        fed.start_node(centre)?;
    }
    let timeout = Duration::from_secs(args.timeout);
    fed.wait_converged(&centres, timeout).await?;

    fed.step("exemplaires partagés : chaque centre signale des notices d'un autre");
    for (i, centre) in centres.iter().enumerate() {
        let other = &centres[(i + 1) % centres.len()];
        for k in 0..5 {
            let id = format!("{other}.{}", 1000 + k * 7);
            fed.node(
                centre,
                &[
                    "catalogue",
                    "holding",
                    &id,
                    "--copies",
                    "1",
                    "--shelf-mark",
                    &format!("P-{k}"),
                ],
            )
            .await?;
        }
    }
    fed.wait_converged(&centres, timeout).await?;

    fed.step("hors ligne : trois centres modifient les mêmes notices");
    let offline = ["namur", "liege", "bruxelles"];
    for centre in offline {
        fed.children.stop(centre).await;
    }
    let target = "charleroi-thuin.1000";
    fed.node(
        "namur",
        &[
            "catalogue",
            "edit",
            target,
            "--title",
            "Parler des émotions (édition Namur)",
            "--add-theme",
            "sante_mentale",
        ],
    )
    .await?;
    fed.node(
        "liege",
        &[
            "catalogue",
            "edit",
            target,
            "--title",
            "Parler des émotions (édition Liège)",
            "--add-theme",
            "famille_parentalite",
        ],
    )
    .await?;
    fed.node(
        "bruxelles",
        &[
            "catalogue",
            "edit",
            target,
            "--description",
            "Outil révisé à Bruxelles : séances adaptées au secondaire.",
            "--add-theme",
            "interculturalite",
        ],
    )
    .await?;
    // The same duplicate pair, merged at two centres while offline.
    let dup_out = fed.node("namur", &["catalogue", "duplicates"]).await?;
    let pair: Option<(String, String)> = dup_out.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        let a = words.next()?;
        let arrow = words.next()?;
        let b = words.next()?;
        (arrow == "↔").then(|| (a.to_owned(), b.to_owned()))
    });
    if let Some((a, b)) = &pair {
        fed.node("namur", &["catalogue", "merge", a, b]).await?;
        fed.node("liege", &["catalogue", "merge", b, a]).await?;
    }

    fed.step("retour en ligne et convergence");
    for centre in offline {
        fed.start_node(centre)?;
    }
    let docs = fed.wait_converged(&centres, timeout).await?;
    fed.progress.finish_and_clear();

    // What a newcomer should see.
    println!("\nFédération des CLPS : dix nœuds et un hub (TLS mutuel, {hub_addr})\n");
    println!(
        "{:<20} {:>9} {:>7} {:>8} {:>9} {:>10}  têtes",
        "centre", "demandes", "prêts", "notices", "documents", "en attente"
    );
    let mut digests = Vec::new();
    let mut catalogue_records = 0;
    for centre in &centres {
        let d = fed.docs(centre).await?;
        let digest = short_heads(&d["docs"]);
        catalogue_records = d["catalogue_records"].as_i64().unwrap_or(0);
        // serde_json values ignore width: format them as strings first.
        let cell = |v: &serde_json::Value| v.to_string();
        println!(
            "{:<20} {:>9} {:>7} {:>8} {:>9} {:>10}  {digest}",
            centre,
            cell(&d["records"]["requests"]),
            cell(&d["records"]["loans"]),
            cell(&d["catalogue_records"]),
            d["docs"].as_object().map_or(0, |m| m.len()),
            cell(&d["pending_changes"]),
        );
        digests.push(digest);
    }
    let converged = digests.windows(2).all(|w| w[0] == w[1]);
    let n_docs = docs.as_object().map_or(0, |m| m.len());
    if converged {
        println!(
            "\nLes dix nœuds détiennent des documents partagés identiques ({n_docs} documents, {catalogue_records} notices)."
        );
    } else {
        println!("\nATTENTION : les nœuds ne détiennent pas les mêmes documents.");
    }
    let record = fed.node("namur", &["catalogue", "show", target]).await?;
    println!("\nNotice modifiée hors ligne par trois centres, après fusion :\n{record}");
    let conflicts = fed.node("namur", &["catalogue", "conflicts"]).await?;
    if let Some(line) = conflicts.lines().find(|l| l.starts_with(target)) {
        println!("Conflit visible pour le gestionnaire de données : {line}");
    }
    if let Some((a, b)) = &pair {
        println!(
            "Doublons {a} et {b} fusionnés en même temps à Namur et à Liège : un seul résultat."
        );
    }

    let config = fed.dir.join("hub.toml");
    let config_s = config.to_str().unwrap_or_default();
    let table = fed
        .run(
            "clps-hub",
            &[
                "stats", "--config", config_s, "--year", "2021", "--by", "sector",
            ],
        )
        .await?;
    println!("\n{table}");
    let json: serde_json::Value = serde_json::from_str(
        &fed.run(
            "clps-hub",
            &[
                "stats", "--config", config_s, "--year", "2021", "--by", "sector", "--format",
                "json",
            ],
        )
        .await?,
    )?;
    let merged_requests = json["network"]["total"].as_u64().unwrap_or(0);
    Ok(serde_json::json!({
        "nodes": centres.len(),
        "converged": converged,
        "shared_documents": n_docs,
        "catalogue_records": catalogue_records,
        "merged_requests": merged_requests,
        "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match main_inner(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("erreur : {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn main_inner(args: Args) -> Result<std::process::ExitCode> {
    let bin = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .context("no directory for this program")?,
    };
    for program in ["clps-hub", "clps-node"] {
        if !bin.join(program).is_file() {
            bail!(
                "{program} est introuvable dans {} : lancez ./deploy/federation.sh, qui compile tout",
                bin.display()
            );
        }
    }
    let (dir, temporary) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("clps-federation-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)?;
    // The hub's configuration names files by absolute path (relative ones
    // would be read from the configuration's own directory).
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let progress = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(37)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("[{elapsed_precise}] {bar:25} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut fed = Federation {
        dir: dir.clone(),
        bin,
        children: Children::default(),
        hub_addr: String::new(),
        progress,
    };
    let outcome = tokio::select! {
        result = run(&args, &mut fed) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    let code = match outcome {
        None => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\ninterrompu : arrêt du hub et des nœuds…"
            );
            fed.children.stop_all().await;
            if temporary {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Ok(std::process::ExitCode::from(130));
        }
        Some(Err(e)) => {
            fed.children.stop_all().await;
            eprintln!("(journaux conservés dans {})", dir.display());
            return Err(e);
        }
        Some(Ok(summary)) => {
            if let Some(path) = &args.summary {
                std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            println!(
                "Terminé en {} s : {} nœuds, convergence {}.",
                summary["seconds"],
                summary["nodes"],
                if summary["converged"] == true {
                    "atteinte"
                } else {
                    "NON atteinte"
                }
            );
            if summary["converged"] == true {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    };
    if args.keep_running {
        let centres: Vec<String> = CentreId::all_ids().iter().map(|c| c.to_string()).collect();
        for centre in &centres {
            fed.node_with_input(
                centre,
                &["user", "add", DEMO_LOGIN, "--role", "documentaliste"],
                &format!("{DEMO_PASSWORD}\n"),
            )
            .await?;
        }
        println!("\nLa fédération reste en marche (Ctrl-C pour l'arrêter) :");
        println!(
            "  application web de chaque centre (compte de démonstration « {DEMO_LOGIN} », mot de passe « {DEMO_PASSWORD} ») :"
        );
        for centre in &centres {
            println!(
                "    {:<18} {}",
                centre,
                fed.web_address(centre)
                    .unwrap_or_else(|| "(adresse introuvable dans serve.log)".into())
            );
        }
        println!(
            "  hub           {} (configuration : {})",
            fed.hub_addr,
            dir.join("hub.toml").display()
        );
        println!(
            "  nœuds         {}/nodes/<centre> (clps-node --data … status)",
            dir.display()
        );
        println!(
            "  statistiques  clps-hub stats --config {} --year 2021 --by theme",
            dir.join("hub.toml").display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    fed.children.stop_all().await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(code)
}
