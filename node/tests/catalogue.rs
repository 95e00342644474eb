//! The shared catalogue at one node: import, accent-insensitive search kept
//! up to date incrementally, duplicates and merge, and the privacy rule that
//! no person recorded locally ever appears in a shared document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use automerge::{AutoCommit, AutoSerde};
use rusqlite::Connection;

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clps-node"))
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

const EXPORT: &str = "\
id_local,titre,type,auteurs,editeur,annee,themes,publics,description,cote,exemplaires
1,Emotika,outil_pedagogique,CLPS de Charleroi-Thuin et CPAS de Charleroi,CLPS de Charleroi-Thuin,2019,competences_psychosociales;Santé mentale,enfants,Six séances d'animation sur les émotions,OP-EMO,2
2,Le Covid-19 et nous,Outil pédagogique,CLPS de Charleroi-Thuin,CLPS de Charleroi-Thuin,2020,pandemie,adolescents;adultes,Photo-expression : 77 photos,OP-COV,1
3,Des Racines et des Elles,outil_pedagogique,Fares et Vie Féminine,Fares,,Assuétudes;genre,,Outil sur les consommations au féminin,OP-RAC,1
4,,outil_pedagogique,x,,,,,,,
5,Truc,mauvais_type,,,,,,,,
6,Autre,dvd,,,deux mille,,,,,
7,Joyeux bordel !,brochure,SIPS,SIPS,,evras,,Écrire à jean.dupont@example.org pour commander,,1
";

fn node_with_import() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "--centre", "charleroi-thuin"]);
    std::fs::write(dir.path().join("export.csv"), EXPORT).unwrap();
    dir
}

#[test]
fn import_reports_rejected_rows_and_is_idempotent() {
    let dir = node_with_import();
    let file = dir.path().join("export.csv");
    let first = ok(dir.path(), &["catalogue", "import", file.to_str().unwrap()]);
    assert!(first.contains("ligne 5 rejetée : titre vide"), "{first}");
    assert!(
        first.contains("ligne 6 rejetée : type de document inconnu « mauvais_type »"),
        "{first}"
    );
    assert!(
        first.contains("ligne 7 rejetée : annee n'est pas un nombre"),
        "{first}"
    );
    // The shared schema refuses an e-mail address in free text: row rejected.
    assert!(first.contains("ligne 8 rejetée"), "{first}");
    assert!(
        first.contains("3 notice(s) créée(s), 0 déjà présente(s), 4 rejetée(s)"),
        "{first}"
    );
    let db = dir.path().join("node.sqlite");
    let changes = |db: &Path| -> (i64, i64) {
        let c = Connection::open(db).unwrap();
        let records: i64 = c
            .query_row("SELECT count(*) FROM catalogue", [], |r| r.get(0))
            .unwrap();
        let pending: i64 = c
            .query_row("SELECT count(*) FROM pending_changes", [], |r| r.get(0))
            .unwrap();
        (records, pending)
    };
    let after_first = changes(&db);
    assert_eq!(after_first.0, 3);
    let second = ok(dir.path(), &["catalogue", "import", file.to_str().unwrap()]);
    assert!(
        second.contains("0 notice(s) créée(s), 3 déjà présente(s)"),
        "{second}"
    );
    assert_eq!(
        changes(&db),
        after_first,
        "a second import writes no change"
    );

    // A file without a required column fails before writing anything.
    std::fs::write(dir.path().join("bad.csv"), "titre,type\nX,dvd\n").unwrap();
    let out = run(
        dir.path(),
        &[
            "catalogue",
            "import",
            dir.path().join("bad.csv").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("colonne obligatoire absente : id_local")
    );
    let out = run(dir.path(), &["catalogue", "import", "/nonexistent.csv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("impossible de lire"));
    assert_eq!(changes(&db), after_first);
}

#[test]
fn search_ignores_accents_and_follows_edits_and_merges() {
    let dir = node_with_import();
    let file = dir.path().join("export.csv");
    ok(dir.path(), &["catalogue", "import", file.to_str().unwrap()]);
    // "assuetudes" finds the theme label "Assuétudes"; "emotions" finds "émotions".
    assert!(
        ok(dir.path(), &["catalogue", "search", "assuetudes"]).contains("Des Racines et des Elles")
    );
    assert!(ok(dir.path(), &["catalogue", "search", "EMOTIONS"]).contains("Emotika"));
    let by_theme = ok(dir.path(), &["catalogue", "search", "--theme", "pandemie"]);
    assert!(by_theme.contains("Le Covid-19 et nous") && by_theme.contains("1 résultat(s)"));
    let held = ok(
        dir.path(),
        &["catalogue", "search", "--centre", "charleroi-thuin"],
    );
    assert!(held.contains("3 résultat(s)"), "{held}");
    assert!(
        ok(dir.path(), &["catalogue", "search", "--centre", "namur"]).contains("0 résultat(s)")
    );
    // FTS syntax in the query is neutralised, not an error.
    ok(dir.path(), &["catalogue", "search", "\"NEAR( OR *"]);

    // An edit is projected at once.
    ok(
        dir.path(),
        &[
            "catalogue",
            "edit",
            "charleroi-thuin.1",
            "--title",
            "Émotika, édition 2021",
        ],
    );
    assert!(ok(dir.path(), &["catalogue", "search", "edition"]).contains("charleroi-thuin.1"));

    // A duplicate created by hand is proposed, merged, and the alias leaves search.
    let added = ok(
        dir.path(),
        &[
            "catalogue",
            "add",
            "--title",
            "Le COVID 19 et nous",
            "--type",
            "outil_pedagogique",
            "--publisher",
            "CLPS de Charleroi-Thuin",
            "--year",
            "2020",
            "--theme",
            "tic",
            "--copies",
            "2",
            "--shelf-mark",
            "COV-BIS",
        ],
    );
    let new_id = added.split_whitespace().nth(1).unwrap().to_owned();
    // The centre's copies are on the duplicate only.
    ok(
        dir.path(),
        &["catalogue", "holding", "charleroi-thuin.2", "--copies", "0"],
    );
    let dups = ok(dir.path(), &["catalogue", "duplicates"]);
    assert!(
        dups.contains(&new_id) && dups.contains("charleroi-thuin.2"),
        "{dups}"
    );
    let merged = ok(
        dir.path(),
        &["catalogue", "merge", &new_id, "charleroi-thuin.2"],
    );
    assert!(
        merged.contains("charleroi-thuin.2 est conservée"),
        "{merged}"
    );
    let hits = ok(dir.path(), &["catalogue", "search", "covid"]);
    assert!(
        hits.contains("1 résultat(s)") && hits.contains("charleroi-thuin.2"),
        "{hits}"
    );
    let shown = ok(dir.path(), &["catalogue", "show", "charleroi-thuin.2"]);
    assert!(
        shown.contains("TIC") && shown.contains(&new_id),
        "themes and alias carried over: {shown}"
    );
    // The copies declared on the duplicate stay visible on the survivor,
    // and a search by centre still finds them.
    assert!(
        shown.contains("charleroi-thuin : 2") && shown.contains("COV-BIS"),
        "copies carried over: {shown}"
    );
    let held = ok(
        dir.path(),
        &[
            "catalogue",
            "search",
            "covid",
            "--centre",
            "charleroi-thuin",
        ],
    );
    assert!(
        held.contains("1 résultat(s)") && held.contains("charleroi-thuin.2"),
        "{held}"
    );
    assert!(ok(dir.path(), &["catalogue", "duplicates"]).contains("0 doublon(s)"));
}

/// Every byte and every value of every shared document this node saved.
fn shared_document_texts(db: &Path) -> Vec<String> {
    let c = Connection::open(db).unwrap();
    let mut stmt = c
        .prepare("SELECT doc_id, snapshot FROM shared_docs")
        .unwrap();
    let docs: Vec<(String, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for (doc_id, snapshot) in docs {
        let mut doc = AutoCommit::load(&snapshot).unwrap();
        let mut chunks = c
            .prepare("SELECT bytes FROM shared_doc_chunks WHERE doc_id = ?1")
            .unwrap();
        for chunk in chunks
            .query_map([&doc_id], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
        {
            doc.load_incremental(&chunk.unwrap()).unwrap();
        }
        out.push(serde_json::to_string(&AutoSerde::from(&doc)).unwrap());
        out.push(String::from_utf8_lossy(&doc.save_nocompress()).into_owned());
        out.push(String::from_utf8_lossy(&snapshot).into_owned());
    }
    out
}

#[test]
fn no_person_recorded_locally_appears_in_any_shared_document() {
    let dir = node_with_import();
    ok(dir.path(), &["seed", "--year", "2021", "--calibration"]);
    ok(
        dir.path(),
        &[
            "person",
            "add",
            "--first-name",
            "Bérénice",
            "--last-name",
            "Vanderauwera",
            "--email",
            "berenice.v@ecole-exemple.be",
        ],
    );
    ok(
        dir.path(),
        &[
            "request",
            "add",
            "--date",
            "2021-05-05",
            "--service",
            "pret",
            "--sector",
            "enseignement",
            "--profession",
            "enseignant_directeur",
            "--contact",
            "mail",
            "--theme",
            "evras",
            "--person",
            "161",
            "--note",
            "Situation délicate en 3e secondaire, rappeler Bérénice",
        ],
    );
    let file = dir.path().join("export.csv");
    ok(dir.path(), &["catalogue", "import", file.to_str().unwrap()]);
    ok(
        dir.path(),
        &[
            "catalogue",
            "review",
            "charleroi-thuin.1",
            "--role",
            "documentaliste",
            "--rating",
            "5",
            "--text",
            "Très apprécié des écoles",
        ],
    );

    let db = dir.path().join("node.sqlite");
    let c = Connection::open(&db).unwrap();
    let mut stmt = c
        .prepare("SELECT first_name || ' ' || last_name, last_name, email FROM persons")
        .unwrap();
    let persons: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(persons.len() > 100);
    let mut stmt = c
        .prepare("SELECT note FROM requests WHERE note != ''")
        .unwrap();
    let notes: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!notes.is_empty());

    let texts = shared_document_texts(&db);
    assert!(
        texts.iter().any(|t| t.contains("Emotika")),
        "the catalogue was shared"
    );
    for text in &texts {
        for (full, last, email) in &persons {
            assert!(!text.contains(full.as_str()), "person {full} leaked");
            assert!(!text.contains(email.as_str()), "e-mail {email} leaked");
            // Surnames that are also common words could appear legitimately;
            // the invented one must not.
            if last == "Vanderauwera" {
                assert!(!text.contains(last.as_str()));
            }
        }
        for note in &notes {
            assert!(!text.contains(note.as_str()), "note leaked: {note}");
        }
    }
}

/// Before a shared text is written, the node refuses one that holds the
/// full name of one of its own contacts, in French and naming the field;
/// nothing is written.
#[test]
fn a_contact_s_name_never_enters_a_shared_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init", "--centre", "namur"]);
    ok(
        d,
        &[
            "person",
            "add",
            "--first-name",
            "Inès",
            "--last-name",
            "Claes",
        ],
    );
    let db = d.join("node.sqlite");
    let pending = |db: &Path| -> i64 {
        Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM pending_changes", [], |r| r.get(0))
            .unwrap()
    };
    let before = pending(&db);
    for (field, value) in [
        ("--description", "Animation proposée par ines CLAES en 2021"),
        ("--title", "Claes Inès raconte"),
    ] {
        let mut args = vec![
            "catalogue",
            "add",
            "--title",
            "Outil",
            "--type",
            "outil_pedagogique",
        ];
        if field == "--title" {
            args[3] = value;
        } else {
            args.extend([field, value]);
        }
        let out = run(d, &args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("contient le nom de Inès Claes, une personne de vos contacts"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(pending(&db), before, "nothing was written");
    // A name that is not a contact's, and the contact's first name alone,
    // are fine.
    ok(
        d,
        &[
            "catalogue",
            "add",
            "--title",
            "Inès et les émotions",
            "--type",
            "outil_pedagogique",
            "--description",
            "Écrit par Marie Curie",
        ],
    );
}
