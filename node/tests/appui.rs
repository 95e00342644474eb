//! `clps-node appui …` as staff run it on one node: membership, the services
//! directory (one entry per organisation, personal addresses refused), tool
//! selections and counts from the catalogue, co-written documents whose named
//! versions read back byte for byte, and the published HTML page opened in a
//! real browser (headless Chromium, which `.ci/run` installs).
//!
//! Three centres editing offline and merging through a real hub are tested in
//! `tests/tests/appui.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

fn fails(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// A library export: three EVRAS teaching tools, one EVRAS brochure (not a
/// tool), one assuétudes tool.
const EXPORT: &str = "\
id_local,titre,type,auteurs,editeur,annee,themes,publics,description,cote,exemplaires
1,Des femmes et des hommes,outil_pedagogique,Fédération Laïque de Centres de Planning Familial,FLCPF,2018,evras;genre,adolescents,Programme d'animations,OP-DFH,2
2,Le jeu du consentement,outil_pedagogique,O'YES,O'YES,2020,evras,adolescents,Cartes de discussion,OP-CON,1
3,Zizi sexuel l'expo,outil_pedagogique,Cité des sciences,Cité des sciences,2015,evras,enfants,Exposition-jeu,OP-ZIZ,1
4,Joyeux bordel !,brochure,SIPS,SIPS,2019,evras,,Brochure,BR-JOY,3
5,Des Racines et des Elles,outil_pedagogique,Fares,Fares,2017,assuetudes;genre,,Outil sur les consommations,OP-RAC,1
";

/// `target/` of this build: the test runs from `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_owned()
}

fn chromium(args: &[&str], page: &Path) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let found = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output();
    match found {
        Ok(out) => out,
        Err(e) => panic!(
            "chromium introuvable ({e}) : ce test ouvre la page publiée dans un vrai navigateur. \
             `.ci/run` l'installe (apt-get install -y chromium) ; installez-le ou lancez .ci/run"
        ),
    }
}

#[test]
fn directory_selections_counts_and_published_page_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init", "--centre", "charleroi-thuin"]);
    let csv = d.join("export.csv");
    std::fs::write(&csv, EXPORT).unwrap();
    ok(d, &["catalogue", "import", csv.to_str().unwrap()]);

    // Nothing can be written before the repository exists and we are a member.
    let err = fails(
        d,
        &["appui", "service", "add", "evras", "--name", "Sida'sos"],
    );
    assert!(
        err.contains("n'a pas le dépôt du point d'appui « evras »"),
        "{err}"
    );
    let out = ok(d, &["appui", "create", "evras"]);
    assert!(out.contains("Point d'appui EVRAS"), "{out}");
    let err = fails(d, &["appui", "create", "evras"]);
    assert!(err.contains("existe déjà"), "{err}");
    ok(d, &["appui", "invite", "evras", "--centre", "namur"]);
    let members = ok(d, &["appui", "members", "evras"]);
    assert!(members.contains("2 centre(s) membre(s)"), "{members}");

    // Directory: the second spelling of the same organisation lands on the
    // same entry.
    ok(
        d,
        &[
            "appui",
            "service",
            "add",
            "evras",
            "--name",
            "Centre de planning familial « Le Blé en herbe » ASBL",
            "--type",
            "centre_planning",
            "--sector",
            "promotion_sante_prevention",
            "--commune",
            "Charleroi",
            "--commune",
            "Thuin",
            "--theme",
            "evras",
            "--offer",
            "Animations EVRAS en classe, de la 5e primaire à la rhéto",
            "--contact-email",
            "accueil@bleenherbe.be",
            "--contact-phone",
            "071 00 00 00",
            "--note",
            "Intervient aussi dans l'enseignement spécialisé",
        ],
    );
    let out = ok(
        d,
        &[
            "appui",
            "service",
            "add",
            "evras",
            "--name",
            "Centre de planning familial Le Blé en Herbe",
            "--commune",
            "Fontaine-l'Évêque",
        ],
    );
    assert!(
        out.contains("répertoriée par : CLPS de Charleroi-Thuin"),
        "{out}"
    );
    ok(
        d,
        &[
            "appui",
            "service",
            "add",
            "evras",
            "--name",
            "O'YES",
            "--type",
            "asbl",
            "--theme",
            "evras",
            "--theme",
            "genre",
            "--offer",
            "Formations pour enseignants",
        ],
    );
    // Organisation-level contact only.
    let err = fails(
        d,
        &[
            "appui",
            "service",
            "add",
            "evras",
            "--name",
            "Sida'sos",
            "--contact-email",
            "marie.dubois@sidasos.be",
        ],
    );
    assert!(
        err.contains("« marie.dubois@sidasos.be » ressemble à l'adresse d'une personne"),
        "{err}"
    );
    let err = fails(
        d,
        &[
            "appui",
            "service",
            "add",
            "evras",
            "--name",
            "Sida'sos",
            "--note",
            "voir avec marie@sidasos.be",
        ],
    );
    assert!(err.contains("données personnelles"), "{err}");
    let err = fails(
        d,
        &[
            "appui", "service", "add", "evras", "--name", "Sida'sos", "--sector", "sante",
        ],
    );
    assert!(
        err.contains("« sante » n'est pas un code de la liste des secteurs"),
        "{err}"
    );
    let list = ok(d, &["appui", "service", "list", "evras"]);
    assert!(list.contains("2 entrée(s) au répertoire"), "{list}");
    assert!(
        list.contains("communes Charleroi, Fontaine-l'Évêque, Thuin"),
        "{list}"
    );
    assert!(
        list.contains("note de charleroi-thuin : Intervient aussi"),
        "{list}"
    );
    assert!(!list.contains("Sida'sos"), "{list}");

    // Selections and counts computed from the catalogue.
    ok(
        d,
        &[
            "appui",
            "select",
            "evras",
            "--record",
            "charleroi-thuin.2",
            "--theme",
            "evras",
            "--public",
            "adolescents",
            "--why",
            "Aborde le consentement sans jugement",
        ],
    );
    ok(
        d,
        &[
            "appui",
            "select",
            "evras",
            "--record",
            "charleroi-thuin.1",
            "--theme",
            "evras",
            "--public",
            "adolescents",
            "--why",
            "Déconstruit les stéréotypes de genre",
        ],
    );
    ok(
        d,
        &[
            "appui",
            "select",
            "evras",
            "--record",
            "charleroi-thuin.5",
            "--theme",
            "genre",
            "--public",
            "adultes",
        ],
    );
    let selections = ok(d, &["appui", "selection", "list", "evras"]);
    assert!(selections.contains("EVRAS / adolescents"), "{selections}");
    assert!(
        selections.contains("Le jeu du consentement [charleroi-thuin.2]"),
        "{selections}"
    );
    assert!(
        selections.contains("charleroi-thuin : Déconstruit"),
        "{selections}"
    );
    assert!(
        selections.contains("3 outil(s) sélectionné(s)"),
        "{selections}"
    );
    let counts = ok(d, &["appui", "tools-count", "evras"]);
    let line = |theme: &str| -> Vec<String> {
        counts
            .lines()
            .find(|l| l.starts_with(theme))
            .unwrap_or_else(|| panic!("{theme} missing: {counts}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // Three EVRAS tools (the brochure is not a teaching tool), two selected.
    assert_eq!(line("EVRAS")[1..], ["3", "2"], "{counts}");
    assert_eq!(line("Genre")[1..], ["2", "1"], "{counts}");

    // Meeting and document, then publication.
    ok(
        d,
        &[
            "appui",
            "event",
            "add",
            "evras",
            "--date",
            "2021-12-03",
            "--video",
            "--centre",
            "charleroi-thuin",
            "--centre",
            "namur",
            "--agenda",
            "Texte de référence",
        ],
    );
    let body = d.join("body.md");
    std::fs::write(&body, "# L'EVRAS à l'école\n\nUn texte <co-écrit> & partagé.\n\n- pour les écoles\n- pour les PMS\n").unwrap();
    ok(
        d,
        &[
            "appui",
            "doc",
            "create",
            "evras",
            "--id",
            "texte-reference",
            "--title",
            "L'EVRAS à l'école",
            "--file",
            body.to_str().unwrap(),
        ],
    );
    ok(
        d,
        &[
            "appui",
            "doc",
            "version",
            "evras",
            "--id",
            "texte-reference",
            "--name",
            "publié 2021-12",
        ],
    );
    let out_dir = d.join("site");
    let out = ok(
        d,
        &[
            "appui",
            "export",
            "evras",
            "--format",
            "html",
            "--out",
            out_dir.to_str().unwrap(),
            "--doc",
            "texte-reference",
            "--version",
            "publié 2021-12",
        ],
    );
    assert!(out.contains("2 service(s), 2 sélection(s)"), "{out}");
    ok(
        d,
        &[
            "appui",
            "export",
            "evras",
            "--format",
            "markdown",
            "--out",
            out_dir.to_str().unwrap(),
            "--doc",
            "texte-reference",
        ],
    );
    let md = std::fs::read_to_string(out_dir.join("point-appui-evras.md")).unwrap();
    assert!(md.contains("## Répertoire des services (2)"), "{md}");
    assert!(md.contains("- **Le jeu du consentement**"), "{md}");
    assert!(md.contains("| EVRAS | 3 | 2 |"), "{md}");
    assert!(md.contains("- pour les PMS"), "{md}");

    // The page in a real browser: the DOM lists the directory and selections.
    let page = out_dir.join("point-appui-evras.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Un texte &lt;co-écrit&gt; &amp; partagé."),
        "{html}"
    );
    let dom = chromium(&["--dump-dom"], &page);
    assert!(
        dom.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8(dom.stdout).unwrap();
    for expected in [
        "<h1>Point d'appui EVRAS</h1>",
        "Répertoire des services (2)",
        // The last spelling written names the entry.
        "<h3>Centre de planning familial Le Blé en Herbe</h3>",
        "<h3>O'YES</h3>",
        "Répertorié par : CLPS de Charleroi-Thuin",
        "Intervient aussi dans l'enseignement spécialisé",
        "Le jeu du consentement",
        "Des femmes et des hommes",
        "Des Racines et des Elles",
        "Aborde le consentement sans jugement",
        "<td>EVRAS</td><td>3</td><td>2</td>",
        "version « publié 2021-12 »",
        "<li>pour les PMS</li>",
    ] {
        assert!(
            dom.contains(expected),
            "« {expected} » missing from the DOM:\n{dom}"
        );
    }
    // The browser parsed the page into the expected structure.
    assert_eq!(
        dom.matches("<article class=\"service\"").count(),
        2,
        "{dom}"
    );
    assert_eq!(dom.matches("<tr data-record=").count(), 3, "{dom}");
    assert!(
        !dom.contains("<co-écrit>"),
        "escaped text must not become markup"
    );

    let artefacts = target_dir().join("test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("appui-evras.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
            "--hide-scrollbars",
        ],
        &page,
    );
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    std::fs::copy(&page, artefacts.join("point-appui-evras.html")).unwrap();
}

#[test]
fn a_named_version_reads_back_byte_identical_after_later_edits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init", "--centre", "namur"]);
    ok(d, &["appui", "create", "evras"]);
    // Accents, a combining character, CRLF, tabs, emoji, no final newline.
    let v1 = "Texte de référence\r\n\r\nL'EVRAS à l'école\tpage 1 — e\u{301}té 🌱\n\n  indenté";
    let file = d.join("v1.md");
    std::fs::write(&file, v1).unwrap();
    ok(
        d,
        &[
            "appui",
            "doc",
            "create",
            "evras",
            "--id",
            "ref",
            "--title",
            "Référence",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    ok(
        d,
        &[
            "appui",
            "doc",
            "version",
            "evras",
            "--id",
            "ref",
            "--name",
            "publié 2021-12",
        ],
    );
    for (i, text) in [
        "Texte de référence (révisé)\r\n\r\nL'EVRAS à l'école\tpage 1 — été 🌱\n\n  indenté\nAjout",
        "Tout réécrit.",
        "",
        "Nouvelle version\n",
    ]
    .iter()
    .enumerate()
    {
        let f = d.join(format!("v{}.md", i + 2));
        std::fs::write(&f, text).unwrap();
        ok(
            d,
            &[
                "appui",
                "doc",
                "edit",
                "evras",
                "--id",
                "ref",
                "--file",
                f.to_str().unwrap(),
            ],
        );
        let now = run(d, &["appui", "doc", "show", "evras", "--id", "ref"]);
        assert_eq!(now.stdout, text.as_bytes());
    }
    let back = run(
        d,
        &[
            "appui",
            "doc",
            "show",
            "evras",
            "--id",
            "ref",
            "--version",
            "publié 2021-12",
        ],
    );
    assert!(back.status.success());
    assert_eq!(
        back.stdout,
        v1.as_bytes(),
        "{}",
        String::from_utf8_lossy(&back.stdout)
    );
    let err = fails(
        d,
        &[
            "appui",
            "doc",
            "show",
            "evras",
            "--id",
            "ref",
            "--version",
            "brouillon",
        ],
    );
    assert!(
        err.contains("n'a pas de version nommée « brouillon »"),
        "{err}"
    );
    let list = ok(d, &["appui", "doc", "list", "evras"]);
    assert!(list.contains("versions : publié 2021-12"), "{list}");
}
