//! The `clps-node` binary as staff run it: calibrated seed and statistics,
//! crash safety of the store, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rusqlite::Connection;

fn node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clps-node"))
}

fn run(data: &Path, args: &[&str]) -> Output {
    node()
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("clps-node runs")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The published figures: `../shared/domain` when it is beside the checkout
/// (the source of truth), else the copy embedded as seed data.
fn calibration() -> serde_json::Value {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/domain/calibration-charleroi-thuin-2021.json");
    let text = std::fs::read_to_string(shared)
        .unwrap_or_else(|_| clps_model::seed_data::CALIBRATION_JSON.to_owned());
    serde_json::from_str(&text).unwrap()
}

/// Parses the node's CSV into code → service → count (without the total row
/// and column).
fn parse_csv(csv: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.first().map(String::as_str), Some("code"));
    assert_eq!(header.last().map(String::as_str), Some("total"));
    let mut out = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        let code = record[0].to_owned();
        if code == "total" {
            continue;
        }
        let mut row = BTreeMap::new();
        for (i, service) in header.iter().enumerate().skip(1) {
            if service != "total" {
                row.insert(service.clone(), record[i].parse().unwrap());
            }
        }
        out.insert(code, row);
    }
    out
}

fn published(table: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    serde_json::from_value(calibration()["requests"][table]["cells"].clone()).unwrap()
}

/// Cells where two tables differ: (row, service, node's value, published value).
fn differences(
    ours: &BTreeMap<String, BTreeMap<String, u64>>,
    printed: &BTreeMap<String, BTreeMap<String, u64>>,
) -> Vec<(String, String, u64, u64)> {
    let mut out = Vec::new();
    for (code, row) in printed {
        for (service, n) in row {
            let mine = ours[code][service];
            if mine != *n {
                out.push((code.clone(), service.clone(), mine, *n));
            }
        }
    }
    out
}

fn seeded_charleroi() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "--centre", "charleroi-thuin"]);
    ok(
        dir.path(),
        &["seed", "--year", "2021", "--calibration", "--seed", "42"],
    );
    dir
}

#[test]
fn calibrated_seed_reproduces_the_published_sector_and_theme_tables() {
    let dir = seeded_charleroi();
    let by_sector = parse_csv(&ok(
        dir.path(),
        &[
            "stats", "--year", "2021", "--by", "sector", "--format", "csv",
        ],
    ));
    assert_eq!(differences(&by_sector, &published("by_sector")), vec![]);
    // Every row of the node's table is a published row, in vocabulary order.
    assert_eq!(by_sector.len(), published("by_sector").len());

    let by_theme = parse_csv(&ok(
        dir.path(),
        &[
            "stats", "--year", "2021", "--by", "theme", "--format", "csv",
        ],
    ));
    assert_eq!(differences(&by_theme, &published("by_theme")), vec![]);

    // The grand totals: 785 requests, 933 theme mentions.
    let csv = ok(
        dir.path(),
        &[
            "stats", "--year", "2021", "--by", "sector", "--format", "csv",
        ],
    );
    assert!(csv.lines().last().unwrap().ends_with(",785"), "{csv}");
    let csv = ok(
        dir.path(),
        &[
            "stats", "--year", "2021", "--by", "theme", "--format", "csv",
        ],
    );
    assert!(csv.lines().last().unwrap().ends_with(",933"), "{csv}");
}

#[test]
fn profession_and_contact_tables_differ_only_where_the_published_ones_are_inconsistent() {
    let dir = seeded_charleroi();
    let by_profession = parse_csv(&ok(
        dir.path(),
        &[
            "stats",
            "--year",
            "2021",
            "--by",
            "profession",
            "--format",
            "csv",
        ],
    ));
    // The printed profession table counts 786 requests (one more
    // accompagnement documentaire than by_sector): its largest cell gives it back.
    assert_eq!(
        differences(&by_profession, &published("by_profession")),
        vec![(
            "professionnel_sante".into(),
            "accompagnement_documentaire".into(),
            51,
            52
        )]
    );
    let by_contact = parse_csv(&ok(
        dir.path(),
        &[
            "stats",
            "--year",
            "2021",
            "--by",
            "contact-mode",
            "--format",
            "csv",
        ],
    ));
    // The printed contact table has one loan too few and two documentary
    // accompaniments too many against the 785 requests.
    assert_eq!(
        differences(&by_contact, &published("by_contact_mode")),
        vec![
            ("mail".into(), "pret".into(), 286, 285),
            ("rdv".into(), "accompagnement_documentaire".into(), 98, 100),
        ]
    );
}

#[test]
fn seeding_is_deterministic_and_refuses_to_seed_twice() {
    let a = seeded_charleroi();
    let b = seeded_charleroi();
    let dump = |d: &Path| {
        let c = Connection::open(d.join("node.sqlite")).unwrap();
        let mut stmt = c
            .prepare("SELECT date, service_type, sector, profession, contact_mode FROM requests ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
    };
    assert_eq!(dump(a.path()), dump(b.path()));
    let out = run(
        a.path(),
        &["seed", "--year", "2021", "--calibration", "--seed", "42"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("déjà des demandes en 2021"));
    assert_eq!(dump(a.path()).len(), 785);
}

#[test]
fn scaled_centres_draw_a_year_of_the_same_shape() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "--centre", "namur"]);
    let out = run(dir.path(), &["seed", "--year", "2021", "--calibration"]);
    assert!(
        !out.status.success(),
        "calibration is only for charleroi-thuin"
    );
    ok(
        dir.path(),
        &["seed", "--year", "2021", "--scale", "0.5", "--seed", "3"],
    );
    let by_sector = parse_csv(&ok(
        dir.path(),
        &[
            "stats", "--year", "2021", "--by", "sector", "--format", "csv",
        ],
    ));
    let total: u64 = by_sector.values().flat_map(|r| r.values()).sum();
    assert!(
        (300..=500).contains(&total),
        "half of 785, give or take: {total}"
    );
    // The largest cell of the published table stays the largest kind of request.
    assert!(by_sector["enseignement"]["pret"] > by_sector["social"]["pret"]);
}

fn month_counts(db: &Path, table: &str, column: &str) -> BTreeMap<String, i64> {
    let c = Connection::open(db).unwrap();
    let mut stmt = c
        .prepare(&format!(
            "SELECT substr({column}, 6, 2), count(*) FROM {table} GROUP BY 1"
        ))
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn store_survives_kill_9_in_the_middle_of_a_seed() {
    let reference = seeded_charleroi();
    let ref_db = reference.path().join("node.sqlite");
    let ref_requests = month_counts(&ref_db, "requests", "date");
    let ref_loans = month_counts(&ref_db, "loans", "out_date");

    // Kill after the k-th committed batch, while the next one is being written.
    for k in [1usize, 2, 4, 7, 11] {
        let dir = tempfile::tempdir().unwrap();
        ok(dir.path(), &["init", "--centre", "charleroi-thuin"]);
        let mut child = node()
            .arg("--data")
            .arg(dir.path())
            .args(["seed", "--year", "2021", "--calibration", "--seed", "42"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        for _ in 0..k {
            if lines.next().is_none() {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let db = dir.path().join("node.sqlite");
        let c = Connection::open(&db).unwrap();
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "after kill at batch {k}");
        // All or nothing: a month is either wholly there or absent.
        for (month, n) in month_counts(&db, "requests", "date") {
            assert_eq!(
                Some(&n),
                ref_requests.get(&month),
                "requests of month {month}, kill at {k}"
            );
        }
        for (month, n) in month_counts(&db, "loans", "out_date") {
            assert_eq!(
                Some(&n),
                ref_loans.get(&month),
                "loans of month {month}, kill at {k}"
            );
        }
        let orphan_requests: i64 = c
            .query_row(
                "SELECT count(*) FROM requests r WHERE NOT EXISTS (SELECT 1 FROM request_themes t WHERE t.request_id = r.id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphan_requests, 0);
        let orgs: i64 = c
            .query_row("SELECT count(*) FROM organisations", [], |r| r.get(0))
            .unwrap();
        assert!(orgs == 0 || orgs == 110, "{orgs}");
        // The node still opens and reports.
        ok(dir.path(), &["status"]);
    }
}

fn assert_one_sentence_error(out: &Output, needle: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(needle),
        "expected « {needle} » in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_gets_one_clear_sentence_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ct");
    // Missing data directory.
    assert_one_sentence_error(
        &run(&data, &["stats", "--year", "2021", "--by", "sector"]),
        "n'existe pas",
    );
    assert!(!data.exists(), "nothing created");
    std::fs::create_dir(&data).unwrap();
    assert_one_sentence_error(&run(&data, &["status"]), "n'est pas initialisé");
    assert_one_sentence_error(
        &run(&data, &["init", "--centre", "atlantis"]),
        "centre inconnu",
    );
    ok(&data, &["init", "--centre", "charleroi-thuin"]);
    assert_one_sentence_error(
        &run(&data, &["init", "--centre", "namur"]),
        "déjà initialisé",
    );

    let base = [
        "request",
        "add",
        "--date",
        "2021-03-04",
        "--service",
        "pret",
        "--sector",
        "enseignement",
        "--profession",
        "animateur",
        "--contact",
        "mail",
        "--theme",
        "evras",
    ];
    let with = |replace: (&str, &str)| -> Vec<String> {
        let mut args: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        if let Some(i) = args.iter().position(|a| a == replace.0) {
            args[i + 1] = replace.1.to_owned();
        }
        args
    };
    let run_vec = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&data, &refs)
    };
    assert_one_sentence_error(
        &run_vec(with(("--sector", "astronautique"))),
        "code inconnu « astronautique »",
    );
    assert_one_sentence_error(&run_vec(with(("--date", "2021-13-01"))), "date invalide");
    assert_one_sentence_error(&run_vec(with(("--theme", "nope"))), "la thématique");
    let mut args = with(("--date", "2021-03-04"));
    args.extend(["--person".to_owned(), "12".to_owned()]);
    assert_one_sentence_error(&run_vec(args), "aucun(e) personne n° 12");
    assert_one_sentence_error(
        &run(&data, &["request", "show", "99"]),
        "aucun(e) demande n° 99",
    );
    assert!(ok(&data, &["request", "list"]).contains("0 demande(s)"));

    // A good one goes in, can be edited and deleted.
    assert!(run_vec(with(("--date", "2021-03-04"))).status.success());
    ok(
        &data,
        &[
            "request",
            "edit",
            "1",
            "--theme",
            "tic",
            "--theme",
            "assuetudes",
        ],
    );
    let shown = ok(&data, &["request", "show", "1"]);
    assert!(
        shown.contains("assuetudes") && shown.contains("tic") && !shown.contains("evras"),
        "{shown}"
    );
    assert_one_sentence_error(
        &run(&data, &["request", "edit", "1", "--contact", "pigeon"]),
        "mode de contact",
    );
    assert!(ok(&data, &["request", "show", "1"]).contains("mail"));
    ok(&data, &["request", "delete", "1"]);
    assert!(ok(&data, &["request", "list"]).contains("0 demande(s)"));

    // A foreign SQLite file in place of the node database.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    Connection::open(foreign.join("node.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE x(y)")
        .unwrap();
    assert_one_sentence_error(
        &run(&foreign, &["status"]),
        "n'est pas une base de données de nœud CLPS",
    );

    // A database written by a newer schema is refused, untouched.
    let c = Connection::open(data.join("node.sqlite")).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    assert_one_sentence_error(&run(&data, &["status"]), "version plus récente");
}

#[test]
fn every_record_kind_round_trips_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init", "--centre", "liege"]);
    ok(
        d,
        &[
            "org",
            "add",
            "--name",
            "École Saint-Joseph",
            "--type",
            "école",
            "--sector",
            "enseignement",
            "--commune",
            "Liège",
        ],
    );
    ok(
        d,
        &[
            "person",
            "add",
            "--first-name",
            "Inès",
            "--last-name",
            "Claes",
            "--email",
            "ines@example.org",
            "--org",
            "1",
        ],
    );
    ok(
        d,
        &[
            "loan",
            "add",
            "--item",
            "OP-12",
            "--doc-type",
            "outil_pedagogique",
            "--org",
            "1",
            "--out",
            "2021-02-01",
            "--due",
            "2021-02-21",
        ],
    );
    ok(d, &["loan", "edit", "1", "--returned", "2021-02-18"]);
    ok(
        d,
        &[
            "accompaniment",
            "add",
            "--title",
            "Projet EVRAS",
            "--scheme",
            "evras",
            "--start",
            "2021-04-01",
            "--theme",
            "evras",
            "--axis",
            "participation",
        ],
    );
    ok(
        d,
        &[
            "event",
            "add",
            "--kind",
            "atelier",
            "--title",
            "Atelier outils",
            "--start",
            "2021-05-06",
            "--organiser",
            "liege",
            "--organiser",
            "verviers",
            "--participants",
            "enseignant_directeur=12",
        ],
    );
    assert!(ok(d, &["loan", "show", "1"]).contains("2021-02-18"));
    assert!(ok(d, &["event", "list"]).contains("12 participants"));
    assert!(ok(d, &["person", "show", "1"]).contains("ines@example.org"));
    let status = ok(d, &["status"]);
    assert!(
        status.contains("prêt : 1") && status.contains("organisation : 1"),
        "{status}"
    );
    let out = run(
        d,
        &[
            "loan",
            "add",
            "--item",
            "X",
            "--doc-type",
            "outil_pedagogique",
            "--out",
            "2021-02-10",
            "--due",
            "2021-02-01",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn published_figures_rebuild_the_node_tables_and_follow_deletions() {
    use clps_model::stats::{Dimension, table_from_figures};
    let dir = seeded_charleroi();
    let out = ok(dir.path(), &["publish"]);
    assert!(out.contains("cellule(s) mise(s) à jour"), "{out}");
    // Nothing changed: nothing to publish.
    assert!(ok(dir.path(), &["publish"]).contains(" 0 cellule(s)"));
    let figures = |d: &Path| {
        let store = clps_node::store::Store::open(d, clps_node::store::OpenMode::Existing).unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(store.call(|c| clps_node::publish::published(c)))
            .unwrap()
    };
    let published = figures(dir.path());
    for by in Dimension::ALL {
        let csv = ok(
            dir.path(),
            &[
                "stats",
                "--year",
                "2021",
                "--by",
                by.arg(),
                "--format",
                "csv",
            ],
        );
        assert_eq!(
            table_from_figures(&published, 2021, by).to_csv(),
            csv,
            "{by:?}"
        );
    }
    // Only counts: no cell names a person or carries free text.
    for key in published.keys() {
        assert!(
            key.cell
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        );
    }
    // A deleted request leaves the published figures.
    ok(dir.path(), &["request", "delete", "1"]);
    ok(dir.path(), &["publish"]);
    let after = figures(dir.path());
    let total = |f: &BTreeMap<_, u64>| table_from_figures(f, 2021, Dimension::Sector).total;
    assert_eq!(total(&after), 784);

    // A machine of the centre that holds no record of 2021 yet (a second
    // one, or one reinstalled) leaves the centre's 2021 figures alone.
    let c = Connection::open(dir.path().join("node.sqlite")).unwrap();
    c.execute_batch(
        "DELETE FROM requests; DELETE FROM loans; DELETE FROM accompaniments; DELETE FROM events;",
    )
    .unwrap();
    drop(c);
    assert!(ok(dir.path(), &["publish"]).contains(" 0 cellule(s)"));
    assert_eq!(figures(dir.path()), after);
}

#[test]
fn online_backup_is_a_checked_copy_and_never_overwrites() {
    let dir = seeded_charleroi();
    let target = dir.path().join("backup.sqlite");
    let out = ok(dir.path(), &["backup", "--to", target.to_str().unwrap()]);
    assert!(out.contains("intégrité vérifiée"), "{out}");
    let c = Connection::open(&target).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 785);
    let again = run(dir.path(), &["backup", "--to", target.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("existe déjà"));
    // The backup is a working node directory once put in place.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&target, restored.path().join("node.sqlite")).unwrap();
    assert!(ok(restored.path(), &["status"]).contains("demande : 785"));
}

/// A data directory holds personal data: it is created for its owner only
/// (0700, database 0600, backups too). Output piped into a reader that
/// stops early ends quietly with the exit code of SIGPIPE, not a panic.
#[test]
fn data_stays_private_and_a_closed_pipe_is_not_a_panic() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Stdio;
    let dir = seeded_charleroi();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let fresh = dir.path().join("nouveau");
    ok(&fresh, &["init", "--centre", "namur"]);
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("node.sqlite")), 0o600);
    let backup = dir.path().join("sauvegarde.sqlite");
    ok(&fresh, &["backup", "--to", backup.to_str().unwrap()]);
    assert_eq!(mode(&backup), 0o600);

    // `clps-node request list --year 2021 | head -1`, with a reader that is
    // gone before anything is written.
    let mut child = node()
        .arg("--data")
        .arg(dir.path())
        .args(["request", "list", "--year", "2021"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
