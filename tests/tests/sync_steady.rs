//! Steady operation, as centres live it: every node runs one long
//! `clps-node serve` that is never restarted, while its centre edits the
//! same catalogue records as the others through the command line (titles,
//! copies, new notices), continuously. Nodes go offline for a while (their
//! link black-holes or refuses, and they keep editing) and come back; the
//! hub is killed and restarted. When the edits stop, the federation must
//! converge by itself within seconds: every node holds exactly the hub's
//! changes, nothing pending anywhere, and the hub's refusal table is empty.
//!
//! CI runs two nodes for 60 s. `CLPS_STEADY_SECONDS` and `CLPS_STEADY_NODES`
//! (up to 4) make it longer and wider, `CLPS_STEADY_PAUSE_MS` (150) is the
//! mean pause between two edits of one centre (0: as fast as the CLI goes);
//! `CLPS_FAULT_SEED` replays a schedule. The figures are printed at the end,
//! and while it converges, what each node still differs in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clps_tests::figures::{self, Rng};
use clps_tests::procs::{ProcFederation, node, node_ok, spawn_node};
use clps_tests::proxy::{Mode, Proxy};
use tokio::process::Child;

const CENTRES: [&str; 4] = ["namur", "liege", "bruxelles", "charleroi-thuin"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rejections(hub_db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(hub_db).unwrap();
    conn.prepare("SELECT identity || ' ' || doc_id || ' ' || reason FROM rejections")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn pick_index(rng: &mut Rng, len: usize) -> usize {
    usize::try_from(rng.below(u64::try_from(len).unwrap())).unwrap()
}

fn added_id(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .nth(1)
        .expect("« Notice ID ajoutée »")
        .to_owned()
}

/// One centre's day: edits through the CLI until `until`, on the shared
/// records and on notices of its own. Returns the number of writes.
async fn edit_loop(
    data: PathBuf,
    centre: &'static str,
    shared: Arc<Vec<String>>,
    seed: u64,
    until: Instant,
    last_edit: Arc<AtomicU64>,
    epoch: Instant,
) -> u64 {
    let mut rng = Rng::new(seed);
    let mut own: Vec<String> = Vec::new();
    let mut writes = 0u64;
    let pause = env_u64("CLPS_STEADY_PAUSE_MS", 150);
    while Instant::now() < until {
        // A centre's staff type one edit after another; the pause also keeps
        // four editors from saturating two cores with CLI processes.
        tokio::time::sleep(Duration::from_millis(rng.below(2 * pause + 1))).await;
        let pick = shared[pick_index(&mut rng, shared.len())].clone();
        let n = rng.below(1_000_000);
        let title = format!("Outil {n} ({centre})");
        let copies = (1 + rng.below(9)).to_string();
        let shelf = format!("{}-{}", &centre[..3], rng.below(500));
        let args: Vec<&str> = match rng.below(10) {
            0..=3 => vec!["catalogue", "edit", &pick, "--title", &title],
            4..=6 => vec![
                "catalogue",
                "holding",
                &pick,
                "--copies",
                &copies,
                "--shelf-mark",
                &shelf,
            ],
            7 if !own.is_empty() => {
                let mine = own[pick_index(&mut rng, own.len())].clone();
                let run = node(&data, &["catalogue", "edit", &mine, "--title", &title])
                    .await
                    .unwrap();
                assert!(run.ok, "{centre}: {}{}", run.stdout, run.stderr);
                writes += 1;
                continue;
            }
            _ => vec![
                "catalogue",
                "add",
                "--title",
                &title,
                "--type",
                "outil_pedagogique",
                "--theme",
                "evras",
            ],
        };
        let run = node(&data, &args).await.unwrap();
        assert!(run.ok, "{centre} {args:?}: {}{}", run.stdout, run.stderr);
        if args[1] == "add" {
            own.push(added_id(&run.stdout));
        }
        writes += 1;
        last_edit.store(
            u64::try_from(epoch.elapsed().as_millis()).unwrap(),
            Ordering::Relaxed,
        );
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_editing_the_same_records_converge_without_restarting_serve() {
    let seconds = env_u64("CLPS_STEADY_SECONDS", 60);
    let n = usize::try_from(env_u64("CLPS_STEADY_NODES", 2))
        .unwrap()
        .clamp(2, 4);
    let seed = figures::seed();
    let mut rng = Rng::new(seed);
    let epoch = Instant::now();

    // Each node reaches the hub through a proxy of its own (its network
    // link), chained to the federation's proxy (which follows the hub
    // across restarts).
    let mut fed = ProcFederation::start(&[], Vec::new()).await.unwrap();
    let mut links = Vec::new();
    for centre in &CENTRES[..n] {
        let link = Proxy::start(fed.proxy.addr()).await.unwrap();
        let data = fed.dir.path().join("nodes").join(centre);
        fed.add_node_through(centre, data, link.addr())
            .await
            .unwrap();
        links.push(link);
    }
    let datas: Vec<PathBuf> = fed.nodes.iter().map(|(_, d)| d.clone()).collect();

    // Records every centre will edit, created at the first node and synced.
    let mut shared = Vec::new();
    for i in 0..6 {
        let out = node_ok(
            &datas[0],
            &[
                "catalogue",
                "add",
                "--title",
                &format!("Outil partagé {i}"),
                "--type",
                "outil_pedagogique",
            ],
        )
        .await
        .unwrap();
        shared.push(added_id(&out));
    }
    fed.converge(Duration::from_secs(60)).await.unwrap();
    let shared = Arc::new(shared);

    let mut serves: Vec<Child> = datas
        .iter()
        .map(|d| spawn_node(d, &["serve"]).unwrap())
        .collect();

    let until = Instant::now() + Duration::from_secs(seconds);
    // Faults stop a few seconds before the edits do: the last edits are
    // made on a healed network, as after any outage.
    let faults_until = until - Duration::from_secs(5).min(Duration::from_secs(seconds / 4));
    let last_edit = Arc::new(AtomicU64::new(0));
    let editors: Vec<_> = datas
        .iter()
        .zip(CENTRES)
        .enumerate()
        .map(|(i, (d, c))| {
            tokio::spawn(edit_loop(
                d.clone(),
                c,
                shared.clone(),
                seed.wrapping_add(u64::try_from(i).unwrap() * 7919),
                until,
                last_edit.clone(),
                epoch,
            ))
        })
        .collect();

    let mut offline_periods = 0u64;
    let mut hub_restarts = 0u64;
    let mut offline: Vec<Option<Instant>> = vec![None; n];
    let mut next_restart = Instant::now() + Duration::from_secs(8 + rng.below(15));
    // The fault schedule's clock.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while Instant::now() < faults_until {
        tick.tick().await;
        for (i, link) in links.iter().enumerate() {
            match offline[i] {
                Some(back) if Instant::now() >= back => {
                    link.set_mode(Mode::Pass);
                    link.cut();
                    offline[i] = None;
                }
                None if rng.chance(2) => {
                    // 3 to 12 s offline, cut silently or refused.
                    link.set_mode(if rng.chance(50) {
                        Mode::BlackHole
                    } else {
                        Mode::Refuse
                    });
                    link.cut();
                    offline[i] =
                        Some(Instant::now() + Duration::from_millis(3000 + rng.below(9000)));
                    offline_periods += 1;
                }
                _ => {}
            }
        }
        if Instant::now() >= next_restart {
            fed.restart_hub().await.unwrap();
            hub_restarts += 1;
            next_restart = Instant::now() + Duration::from_secs(10 + rng.below(20));
        }
    }
    for link in &links {
        link.set_mode(Mode::Pass);
        link.cut();
    }

    let mut writes = 0;
    for editor in editors {
        writes += editor.await.unwrap();
    }
    let last = Duration::from_millis(last_edit.load(Ordering::Relaxed));
    // Converged by the serving links alone: no `sync` is run. Heads are
    // compared first (a few ms to read; the hub read before and after the
    // nodes, so a change in flight meanwhile is not taken for a stall), then
    // every change of every node against the hub.
    let bound = (epoch + last + Duration::from_secs(60)).saturating_duration_since(Instant::now());
    let mut shown = Instant::now();
    let converged = || {
        let before = hub_heads(&fed.hub_db());
        let nodes: Vec<_> = datas.iter().map(|d| node_heads(d)).collect();
        let after = hub_heads(&fed.hub_db());
        if before == after
            && nodes
                .iter()
                .all(|(h, pending)| *h == after && *pending == 0)
        {
            return true;
        }
        if shown.elapsed() > Duration::from_secs(2) {
            shown = Instant::now();
            let behind: Vec<String> = nodes
                .iter()
                .zip(CENTRES)
                .map(|((h, pending), c)| {
                    let differ = after
                        .iter()
                        .filter(|(d, heads)| h.get(*d) != Some(heads))
                        .count();
                    format!("{c}: {pending} pending, {differ} documents differ")
                })
                .collect();
            println!(
                "{:.1} s after the last edit: {}; refusals: {:?}",
                epoch.elapsed().saturating_sub(last).as_secs_f64(),
                behind.join("; "),
                rejections(&fed.hub_db())
            );
        }
        false
    };
    clps_tests::wait_within("converged 60 s after the last edit", bound, converged).await;
    let converged_after = epoch.elapsed().saturating_sub(last);
    // Every change of every node is at the hub (a statistics publication
    // may land while the databases are read: read again).
    clps_tests::wait_within(
        "every change of every node at the hub",
        Duration::from_secs(30),
        || fed.converged().unwrap(),
    )
    .await;
    for serve in &mut serves {
        assert!(
            serve.try_wait().unwrap().is_none(),
            "a `serve` exited during the run"
        );
    }
    let refusals = rejections(&fed.hub_db());
    let held = metric(&fed, "clps_hub_changes_held_total").await;
    println!(
        "steady sync: {n} nodes, {seconds} s, seed {seed}: {writes} CLI writes, \
         {offline_periods} offline periods, {hub_restarts} hub restarts, \
         converged {:.2} s after the last edit, {} refusals, {held} changes held \
         for their dependencies since the last hub start",
        converged_after.as_secs_f64(),
        refusals.len()
    );
    figures::record(&figures::Figures {
        scenario: "steady-sync".to_owned(),
        iterations: writes,
        faults_injected: offline_periods + hub_restarts,
        changes_acknowledged: writes,
        changes_lost: 0,
        inputs_fuzzed: 0,
        crashes_found: 0,
        seconds: epoch.elapsed().as_secs_f64(),
    });
    assert!(
        refusals.is_empty(),
        "the hub refused honest changes: {refusals:?}"
    );
    for serve in &mut serves {
        let _ = serve.start_kill();
    }
}

type Heads = std::collections::BTreeMap<String, String>;

/// The hub's documents and their heads (sorted hex, as the nodes write them).
fn hub_heads(hub_db: &Path) -> Heads {
    let conn = rusqlite::Connection::open(hub_db).unwrap();
    conn.prepare("SELECT doc_id, heads FROM documents")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap()
        .map(|row| {
            let (doc, bytes) = row.unwrap();
            let mut hex: Vec<String> = bytes
                .chunks(32)
                .map(|c| automerge::ChangeHash::try_from(c).unwrap().to_string())
                .collect();
            hex.sort();
            (doc, hex.join(","))
        })
        .collect()
}

/// A node's documents and heads, and how many changes it has pending.
fn node_heads(data: &Path) -> (Heads, i64) {
    let conn = rusqlite::Connection::open(data.join("node.sqlite")).unwrap();
    let heads = conn
        .prepare("SELECT doc_id, heads FROM shared_doc_heads")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Heads, _>>()
        .unwrap();
    let pending = conn
        .query_row("SELECT COUNT(*) FROM pending_changes", [], |r| r.get(0))
        .unwrap();
    (heads, pending)
}

/// A counter from the hub's metrics endpoint (0 if it cannot be read).
async fn metric(fed: &ProcFederation, name: &str) -> u64 {
    let Some(addr) = fed.hub.as_ref().and_then(|h| h.metrics_addr()) else {
        return 0;
    };
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// A document the hub refuses (here a point d'appui space the hub does not
/// know) does not stop the others: `sync` sends the catalogue, then exits
/// non-zero naming the refused document in French, and `status` shows it as
/// blocked until a sync goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_document_is_reported_and_shown_as_blocked() {
    let fed = ProcFederation::start(&["namur"], Vec::new()).await.unwrap();
    let data = fed.nodes[0].1.clone();
    node_ok(&data, &["appui", "create", "evras"]).await.unwrap();
    let added = node_ok(
        &data,
        &[
            "catalogue",
            "add",
            "--title",
            "Outil envoyé malgré le refus",
            "--type",
            "outil_pedagogique",
        ],
    )
    .await
    .unwrap();
    let run = node(&data, &["sync"]).await.unwrap();
    assert!(!run.ok, "sync must fail: {}", run.stdout);
    assert!(run.stdout.contains("appui/evras"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("synchronisation incomplète : 1 document refusé par le hub"),
        "{}",
        run.stderr
    );
    // The catalogue went through.
    let hub = clps_tests::procs::hub_holdings(&fed.hub_db()).unwrap();
    let (holdings, pending) = clps_tests::procs::node_holdings(&data.join("node.sqlite")).unwrap();
    let catalogue_changes: Vec<_> = holdings
        .changes
        .iter()
        .filter(|(d, _)| d.starts_with("catalogue/"))
        .flat_map(|(_, c)| c.iter().copied())
        .collect();
    assert!(!catalogue_changes.is_empty(), "{added}");
    assert!(catalogue_changes.iter().all(|c| hub.all().contains(c)));
    assert!(
        !pending.is_empty(),
        "the refused document's changes stay pending"
    );

    let status = node_ok(&data, &["status"]).await.unwrap();
    assert!(
        status.contains("documents bloqués") && status.contains("appui/evras"),
        "{status}"
    );
}

/// One `serve` per data directory: a second one is refused in French while
/// the first runs (the centre's other commands still work beside it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_one_data_directory_is_refused() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let fed = ProcFederation::start(&["namur"], Vec::new()).await.unwrap();
    let data = fed.nodes[0].1.clone();
    let mut first = spawn_node(&data, &["serve"]).unwrap();
    // It holds the lock once it says it is connected.
    let stderr = first.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Nœud connecté au hub") {
                return;
            }
        }
        panic!("serve exited");
    })
    .await
    .expect("serve starts");
    let second = node(&data, &["serve"]).await.unwrap();
    assert!(!second.ok);
    assert!(
        second
            .stderr
            .contains("un autre « clps-node serve » utilise déjà le répertoire de données"),
        "{}",
        second.stderr
    );
    node_ok(&data, &["status"]).await.unwrap();
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first serve runs on"
    );
    let _ = first.start_kill();
}

/// The documented recovery of a blocked document: a change the hub refuses
/// (here a phone number in a title, written by an older node that did not
/// check it) blocks the bucket, and a later valid edit with it; `recover`
/// rebuilds the bucket from the hub's copy, keeps the valid edit, says what
/// it left out, and the next sync goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_document_is_rebuilt_from_the_hub_copy_keeping_valid_edits() {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ReadDoc};
    let fed = ProcFederation::start(&["namur"], Vec::new()).await.unwrap();
    let data = fed.nodes[0].1.clone();
    // Two notices of namur's numbering in one bucket.
    use clps_model::docs::catalogue::{RecordId, bucket_of, doc_id_of};
    let namur = clps_model::CentreId::new("namur").unwrap();
    let first = RecordId::from_local(&namur, 1);
    let second_n = (2..)
        .find(|n| bucket_of(&RecordId::from_local(&namur, *n)) == bucket_of(&first))
        .unwrap();
    let csv = data.join("export.csv");
    std::fs::write(
        &csv,
        format!("id_local,titre,type\n1,Outil de Namur,outil_pedagogique\n{second_n},Autre outil,outil_pedagogique\n"),
    )
    .unwrap();
    node_ok(&data, &["catalogue", "import", csv.to_str().unwrap()])
        .await
        .unwrap();
    node_ok(&data, &["sync"]).await.unwrap();
    let id = first.to_string();
    let other = RecordId::from_local(&namur, second_n).to_string();
    let key = doc_id_of(&first).to_string();

    // What an older node could have stored: a phone number in a title.
    let db = data.join("node.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut doc = AutoCommit::load(
        &clps_tests::procs::node_doc(&conn, &key)
            .unwrap()
            .unwrap()
            .save(),
    )
    .unwrap();
    let before = doc.get_heads();
    let mut forged = doc.fork().with_actor(
        clps_model::CentreActor::new(clps_model::CentreId::new("namur").unwrap(), [9; 8])
            .actor_id(),
    );
    let (_, records) = forged.get(automerge::ROOT, "records").unwrap().unwrap();
    let (_, record) = forged.get(&records, id.as_str()).unwrap().unwrap();
    forged
        .put(&record, "title", "Outil de Namur, appeler le 0470 12 34 56")
        .unwrap();
    forged.commit();
    let change = forged.get_changes(&before).pop().unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT n_chunks FROM shared_doc_heads WHERE doc_id = ?1",
            [&key],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "INSERT INTO shared_doc_chunks (doc_id, seq, bytes) VALUES (?1, ?2, ?3)",
        rusqlite::params![key, n + 1, change.raw_bytes()],
    )
    .unwrap();
    conn.execute(
        "UPDATE shared_doc_heads SET heads = ?2, n_chunks = ?3 WHERE doc_id = ?1",
        rusqlite::params![key, change.hash().to_string(), n + 1],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO pending_changes (doc_id, hash) VALUES (?1, ?2)",
        rusqlite::params![key, change.hash().to_string()],
    )
    .unwrap();
    drop(conn);

    // Blocked, and a valid edit made afterwards is blocked with it.
    assert!(!node(&data, &["sync"]).await.unwrap().ok);
    node_ok(&data, &["catalogue", "edit", &other, "--year", "2020"])
        .await
        .unwrap();
    let run = node(&data, &["sync"]).await.unwrap();
    assert!(!run.ok && run.stdout.contains(&key), "{}", run.stdout);

    let out = node_ok(&data, &["recover", &key]).await.unwrap();
    println!("{out}");
    assert!(out.contains("repris : ") && out.contains("année"), "{out}");
    assert!(out.contains("écartée"), "{out}");
    assert!(
        out.contains("champ écarté") && out.contains("titre"),
        "{out}"
    );
    let run = node(&data, &["sync"]).await.unwrap();
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let status = node_ok(&data, &["status"]).await.unwrap();
    assert!(!status.contains("documents bloqués"), "{status}");

    // At the hub: the year came through, the phone number did not.
    let hub = rusqlite::Connection::open(fed.hub_db()).unwrap();
    let at_hub = clps_tests::procs::hub_doc(&hub, &key).unwrap().unwrap();
    let read = |id: &str| {
        clps_model::docs::catalogue::read_record(&at_hub, &RecordId::parse(id).unwrap()).unwrap()
    };
    assert_eq!(read(&other).fields.year, Some(2020));
    assert_eq!(read(&id).fields.title, "Outil de Namur");
}
