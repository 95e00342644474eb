//! `clps-node survey …` end to end through the binary: a centre creates a
//! survey, imports its questionnaire (TOML) and population (CSV), opens it,
//! records answers from a file and interactively, re-answers, codes a free
//! text, and prints the results; in a survey that keeps answers at the
//! centre, only counts enter the shared document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clps-node"))
}

fn run(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = node()
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    ok_in(data, args, "")
}

fn ok_in(data: &Path, args: &[&str], stdin: &str) -> String {
    let out = run(data, args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(data: &Path, args: &[&str]) -> String {
    let out = run(data, args, "");
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

const QUESTIONS: &str = r#"
[[questions]]
code = "impact_activites"
label = "Impact de la crise sur les activités du PCS"
kind = "multiple_choice"
options = ["Suppression", "Report", "Adaptation"]

[[questions]]
code = "satisfaction"
label = "Satisfaction"
kind = "scale"
min = 1
max = 5

[[questions]]
code = "nouvelles_actions"
label = "Nouvelles actions mises en place"
kind = "free_text"
coding = "determinant_layers"
"#;

const POPULATION: &str = "organisation,communes,centre
Chimay,Chimay,charleroi-thuin
Thuin,Thuin,charleroi-thuin
Lobbes - Merbes-le-Château,Lobbes;Merbes-le-Château,charleroi-thuin
Namur,Namur,namur
";

fn set_up(dir: &Path, share: bool) -> std::path::PathBuf {
    let data = dir.join("node");
    ok(&data, &["init", "--centre", "charleroi-thuin"]);
    std::fs::write(dir.join("q.toml"), QUESTIONS).unwrap();
    std::fs::write(dir.join("pop.csv"), POPULATION).unwrap();
    let mut create = vec![
        "survey",
        "create",
        "pcs-2020",
        "--title",
        "Les PCS et le Covid",
    ];
    if share {
        create.push("--share-answers");
    }
    ok(&data, &create);
    let out = ok(
        &data,
        &[
            "survey",
            "question",
            "import",
            "pcs-2020",
            dir.join("q.toml").to_str().unwrap(),
        ],
    );
    assert!(out.contains("version 1"), "{out}");
    let out = ok(
        &data,
        &[
            "survey",
            "population",
            "pcs-2020",
            dir.join("pop.csv").to_str().unwrap(),
        ],
    );
    assert!(out.contains("4 organisation(s)"), "{out}");
    fails(&data, &["survey", "close", "pcs-2020"]);
    ok(
        &data,
        &[
            "survey",
            "open",
            "pcs-2020",
            "--from",
            "2020-12-01",
            "--to",
            "2021-01-31",
        ],
    );
    data
}

#[test]
fn a_centre_runs_a_survey_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = set_up(dir.path(), true);
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"responses": [
            {"respondent": "Chimay", "answers": {"impact_activites": ["Suppression", "report"], "satisfaction": 4,
             "nouvelles_actions": "Appels aux aînés isolés"}},
            {"respondent": "Lobbes - Merbes-le-Château", "answers": {"impact_activites": ["suppression"]}}
        ]}"#,
    )
    .unwrap();
    let out = ok(
        &data,
        &[
            "survey",
            "answer",
            "pcs-2020",
            "--file",
            dir.path().join("a.json").to_str().unwrap(),
        ],
    );
    assert!(out.contains("Réponse de « Chimay » ajoutée"), "{out}");
    // Interactive, in French: Thuin answers, then re-answers (replaced).
    let out = ok_in(
        &data,
        &["survey", "answer", "pcs-2020", "--respondent", "Thuin"],
        "3\n9\n5\nColis\n",
    );
    assert!(out.contains("Q2. Satisfaction (échelle)"), "{out}");
    assert!(out.contains("Réponse refusée"), "{out}");
    let out = ok_in(
        &data,
        &["survey", "answer", "pcs-2020", "--respondent", "Thuin"],
        "1,3\n\n\n",
    );
    assert!(out.contains("remplacée"), "{out}");
    // Namur is not this centre's respondent.
    let err = fails(
        &data,
        &["survey", "answer", "pcs-2020", "--respondent", "Namur"],
    );
    assert!(err.contains("suivi par le centre namur"), "{err}");
    ok(
        &data,
        &[
            "survey",
            "code",
            "pcs-2020",
            "--respondent",
            "Chimay",
            "--question",
            "nouvelles_actions",
            "--code",
            "reseaux_sociaux",
        ],
    );
    let csv = ok(
        &data,
        &[
            "survey",
            "results",
            "pcs-2020",
            "--format",
            "csv",
            "--no-small-cells",
        ],
    );
    assert!(
        csv.contains("participation,Taux de réponse,reseau,Réseau,3,4,75.0,3\n"),
        "{csv}"
    );
    assert!(csv.contains("impact_activites,Impact de la crise sur les activités du PCS,suppression,Suppression,3,3,100.0"), "{csv}");
    assert!(csv.contains("determinant_layers:reseaux_sociaux"), "{csv}");
    let table = ok(&data, &["survey", "results", "pcs-2020"]);
    assert!(
        table.contains("Taux de réponse : 3 / 4 = 75,0 %"),
        "{table}"
    );
    assert!(table.contains("< 5"), "{table}");
    ok(&data, &["survey", "close", "pcs-2020"]);
    let err = fails(
        &data,
        &["survey", "answer", "pcs-2020", "--respondent", "Thuin"],
    );
    assert!(err.contains("clôturée"), "{err}");
    ok(&data, &["survey", "publish", "pcs-2020"]);
    let show = ok(&data, &["survey", "show", "pcs-2020"]);
    assert!(show.contains("publiée"), "{show}");
}

#[test]
fn answers_kept_at_the_centre_leave_only_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = set_up(dir.path(), false);
    std::fs::write(
        dir.path().join("a.toml"),
        "respondent = \"Chimay\"\n[answers]\nimpact_activites = [\"report\"]\nnouvelles_actions = \"Ateliers au CPAS de Chimay\"\n",
    )
    .unwrap();
    let out = ok(
        &data,
        &[
            "survey",
            "answer",
            "pcs-2020",
            "--file",
            dir.path().join("a.toml").to_str().unwrap(),
        ],
    );
    assert!(out.contains("sur ce nœud"), "{out}");
    ok(
        &data,
        &[
            "survey",
            "code",
            "pcs-2020",
            "--respondent",
            "Chimay",
            "--question",
            "nouvelles_actions",
            "--code",
            "ottawa_axes:action_communautaire",
        ],
    );
    let json = ok(
        &data,
        &[
            "survey",
            "results",
            "pcs-2020",
            "--format",
            "json",
            "--no-small-cells",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["respondents"], 1);
    assert_eq!(v["answers_shared"], false);
    // The shared document holds counts, never the text of the answer.
    let conn = rusqlite::Connection::open(data.join("node.sqlite")).unwrap();
    let mut doc = automerge::AutoCommit::new();
    let snapshot: Vec<u8> = conn
        .query_row(
            "SELECT snapshot FROM shared_docs WHERE doc_id = 'survey/pcs-2020'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    doc.load_incremental(&snapshot).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT bytes FROM shared_doc_chunks WHERE doc_id = 'survey/pcs-2020' ORDER BY seq",
        )
        .unwrap();
    for chunk in stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
        doc.load_incremental(&chunk.unwrap()).unwrap();
    }
    assert!(clps_model::docs::survey::answers(&doc).is_empty());
    let counts = clps_model::docs::survey::tallies(&doc);
    assert_eq!(counts.values().map(|t| t.respondents).sum::<u64>(), 1);
    let raw: String = conn
        .query_row("SELECT answers FROM survey_answers", [], |r| r.get(0))
        .unwrap();
    assert!(raw.contains("Ateliers au CPAS"));
    let codes = &v["questions"][2]["cells"][0];
    assert_eq!(codes["code"], "ottawa_axes:action_communautaire");
    assert_eq!(codes["count"], 1);
}
