//! The centre's own records and its activity report, in a real browser.
//!
//! A Charleroi-Thuin node seeded with its 2021 year (`seed --calibration`)
//! serves its web application (`clps-node web`). In headless Chromium: a
//! documentaliste records a demande with the mouse, then the next one with
//! the keyboard only (counted: fewer than 10 actions), creating an
//! organisation on the spot; an invalid form shows its errors next to the
//! fields and writes nothing; she finds the demande in the filtered list,
//! sees it counted in the year's table and chart, downloads the table as
//! CSV and XLSX whose figures equal `clps-node stats`; the 2021 report shows
//! the printed cells and the three where the printed tables disagree; the
//! publication page names no person; a person's data is exported and then
//! erased on request, and the counts stay; a demande is deleted after
//! confirmation; a reader cannot write; a POST without CSRF token writes
//! nothing. axe-core runs in every page; screenshots go to
//! `target/web-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::Read;

use clps_tests::browser::{Browser, http, http_bytes};
use clps_tests::procs::node_ok;
use clps_tests::staff_web::{add_user, check_page, serve_with, sign_in};
use fantoccini::Locator;
use fantoccini::key::Key;

/// Sends keys to whatever has the focus, as a person at the keyboard does;
/// each call is one keyboard action (a word typed, Tab, Enter).
struct Keyboard<'a> {
    browser: &'a Browser,
    actions: usize,
}

impl Keyboard<'_> {
    async fn press(&mut self, keys: &str) {
        self.actions += 1;
        self.browser
            .client
            .active_element()
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }
}

fn key(k: Key) -> String {
    char::from(k).to_string()
}

/// The numbers of a CSV table (header and label column left out).
fn numbers(csv: &str, separator: char) -> Vec<Vec<u64>> {
    csv.trim_start_matches('\u{feff}')
        .lines()
        .skip(1)
        .map(|line| {
            line.rsplit(separator)
                .take_while(|cell| cell.parse::<u64>().is_ok())
                .map(|cell| cell.parse().unwrap())
                .collect::<Vec<u64>>()
                .into_iter()
                .rev()
                .collect()
        })
        .collect()
}

/// The numbers of the first sheet of an XLSX workbook, in order.
fn xlsx_numbers(bytes: &[u8]) -> Vec<u64> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut xml = String::new();
    zip.by_name("xl/worksheets/sheet1.xml")
        .unwrap()
        .read_to_string(&mut xml)
        .unwrap();
    // Numbers only: a string cell (`t="s"`) holds an index into the
    // shared strings.
    xml.split("<c ")
        .skip(1)
        .filter_map(|cell| cell.split("</c>").next())
        .filter(|cell| !cell.contains("t=\"s\""))
        .filter_map(|cell| cell.split("<v>").nth(1)?.split("</v>").next())
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|f| f as u64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_centre_records_its_demandes_and_reads_its_activity_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("charleroi");
    node_ok(&data, &["init", "--centre", "charleroi-thuin"])
        .await
        .unwrap();
    node_ok(&data, &["seed", "--year", "2021", "--calibration"])
        .await
        .unwrap();
    add_user(&data, "doc", "documentaliste", "mot de passe de la doc").await;
    add_user(&data, "lecteur", "lecture", "mot de passe du lecteur").await;
    let (_web, addr) = serve_with(&data, &["web", "--listen", "127.0.0.1:0"]).await;
    let url = format!("http://{addr}");
    let b = Browser::start().await.unwrap();
    sign_in(&b, &url, "doc", "mot de passe de la doc").await;

    // The list of the seeded year.
    b.click_text("Demandes").await.unwrap();
    let page = b.wait_for_text("main", "785 demandes").await.unwrap();
    assert!(page.contains("Prêt de ressources documentaires"), "{page}");
    check_page(&b, "20-demandes").await;

    // A first demande, with the mouse: a new organisation and person are
    // created on the spot.
    b.click_text("Nouvelle demande").await.unwrap();
    b.wait_for_text("h1", "Nouvelle demande").await.unwrap();
    check_page(&b, "21-demande-nouvelle").await;
    let select = |css: &'static str, value: &'static str| {
        let b = &b;
        async move {
            b.client
                .find(Locator::Css(css))
                .await
                .unwrap()
                .select_by_value(value)
                .await
                .unwrap();
        }
    };
    select("#service", "pret").await;
    select("#secteur", "enseignement").await;
    select("#profession", "enseignant_directeur").await;
    select("#contact", "mail").await;
    b.click("#theme-evras").await.unwrap();
    b.fill("#organisation", "École communale des Canaris")
        .await
        .unwrap();
    b.fill("#personne", "Marie Dubois").await.unwrap();
    b.fill("#note", "Souhaite un jeu pour une classe de 5e")
        .await
        .unwrap();
    b.click_text("Enregistrer et nouvelle").await.unwrap();
    let page = b
        .wait_for_text("main", "ajoutée aux contacts")
        .await
        .unwrap();
    assert!(
        page.contains("organisation « École communale des Canaris » ajoutée aux contacts")
            && page.contains("personne « Marie Dubois » ajoutée aux contacts"),
        "{page}"
    );
    // The usual values are kept for the next one; the names are not.
    let kept = b
        .client
        .find(Locator::Css("#secteur"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("enseignement"));
    assert!(
        b.client
            .find(Locator::Css("#theme-evras"))
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap()
    );
    assert_eq!(
        b.client
            .find(Locator::Css("#organisation"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    check_page(&b, "22-demande-suivante").await;

    // The next demande with the keyboard only: the service list has the
    // focus; a letter picks, Tab moves on, Enter in a text field saves.
    let mut kb = Keyboard {
        browser: &b,
        actions: 0,
    };
    kb.press("Diff").await;
    kb.press(&key(Key::Tab)).await;
    kb.press("Lycée provincial des Canaris").await;
    kb.press(&key(Key::Enter)).await;
    b.wait_for_text(
        "main",
        "organisation « Lycée provincial des Canaris » ajoutée",
    )
    .await
    .unwrap();
    println!("second demande: {} keyboard actions", kb.actions);
    assert!(kb.actions < 10, "{} keyboard actions", kb.actions);

    // Invalid input: shown next to the fields, nothing written.
    b.fill("#personne", "Marie").await.unwrap();
    b.click("#theme-evras").await.unwrap(); // unchecked: no theme left
    b.click_text("Enregistrer et nouvelle").await.unwrap();
    let page = b.wait_for_text("main", "rien n'a été écrit").await.unwrap();
    assert!(page.contains("2 champs sont à corriger"), "{page}");
    let person_error = b.text("#personne-erreur").await.unwrap();
    assert!(
        person_error.contains("le prénom puis le nom"),
        "{person_error}"
    );
    let themes_error = b.text("#themes-erreur").await.unwrap();
    assert_eq!(themes_error, "Cochez au moins une thématique.");
    check_page(&b, "23-demande-erreurs").await;
    b.goto(&format!("{url}/demandes")).await.unwrap();
    b.wait_for_text("main", "787 demandes").await.unwrap();

    // The list, filtered by service and period: the keyboard demande.
    let today = b.text("tbody tr:first-child td:first-child").await.unwrap();
    let iso = {
        let p: Vec<&str> = today.split('/').collect();
        format!("{}-{}-{}", p[2], p[1], p[0])
    };
    b.fill("#du", &today).await.unwrap();
    b.fill("#au", &today).await.unwrap();
    b.client
        .find(Locator::Css("select#service"))
        .await
        .unwrap()
        .select_by_value("diffusion")
        .await
        .unwrap();
    b.click_text("Filtrer").await.unwrap();
    let page = b.wait_for_text("main", "1 demande\n").await.unwrap();
    assert!(page.contains("Lycée provincial des Canaris"), "{page}");
    // A wrong filter is said next to its field and left out.
    b.goto(&format!("{url}/demandes?du=31/02/2021"))
        .await
        .unwrap();
    let err = b.text("#du-erreur").await.unwrap();
    assert!(err.contains("n'est pas une date"), "{err}");
    b.wait_for_text("main", "787 demandes").await.unwrap();

    // A training co-organised with Namur, and an accompaniment.
    b.click_text("Activités").await.unwrap();
    b.wait_for_text("main", "0 accompagnement").await.unwrap();
    check_page(&b, "31-accompagnements").await;
    b.click_text("Formations, ateliers, concertations")
        .await
        .unwrap();
    b.click_text("Nouvel événement").await.unwrap();
    b.wait_for_text("h1", "Nouvel événement").await.unwrap();
    select("#genre", "formation").await;
    b.fill("#titre", "Formation EVRAS des Canaris")
        .await
        .unwrap();
    b.click("#centre-namur").await.unwrap();
    b.fill("#participants_enseignant_directeur", "douze")
        .await
        .unwrap();
    b.click_text("Ajouter l'événement").await.unwrap();
    b.wait_for_text("#participants-erreur", "n'est pas un nombre de personnes")
        .await
        .unwrap();
    check_page(&b, "32-evenement-erreur").await;
    b.fill("#participants_enseignant_directeur", "12")
        .await
        .unwrap();
    b.fill("#participants_travailleur_social", "3")
        .await
        .unwrap();
    b.click_text("Ajouter l'événement").await.unwrap();
    b.wait_for_text("main", "Événement ajouté").await.unwrap();
    b.click_text("Retour à la liste").await.unwrap();
    let page = b.wait_for_text("main", "1 événement").await.unwrap();
    assert!(page.contains("15 participants"), "{page}");
    assert!(page.contains("CLPS-CT, CLPS-Namur"), "{page}");
    check_page(&b, "33-evenements").await;
    b.goto(&format!("{url}/accompagnements/nouveau"))
        .await
        .unwrap();
    b.fill("#titre", "Projet EVRAS en 5e").await.unwrap();
    select("#dispositif", "evras").await;
    b.fill("#organisation", "École communale des Canaris")
        .await
        .unwrap();
    b.click("#themes-evras").await.unwrap();
    b.click("#axes-capacites_agir").await.unwrap();
    check_page(&b, "34-accompagnement").await;
    b.click_text("Ajouter l'accompagnement").await.unwrap();
    b.wait_for_text("main", "Accompagnement ajouté")
        .await
        .unwrap();

    // This year's report counts both; CSV and XLSX equal `clps-node stats`.
    let year = &iso[..4];
    b.click_text("Rapport d'activité").await.unwrap();
    let page = b
        .wait_for_text("h1", &format!("Rapport d'activité {year}"))
        .await
        .unwrap();
    assert!(page.contains(year));
    let main = b.text("main").await.unwrap();
    assert!(
        main.contains("2 demandes")
            && main.contains("1 accompagnement")
            && main.contains("1 formation, atelier ou concertation"),
        "{main}"
    );
    let participants = b
        .text("#t-participants + svg, section[aria-labelledby=t-participants]")
        .await
        .unwrap();
    assert!(
        participants.contains("12") && participants.contains("15"),
        "{participants}"
    );
    let charts = b.client.find_all(Locator::Css("svg.chart")).await.unwrap();
    assert!(charts.len() >= 4, "{} charts", charts.len());
    check_page(&b, "24-rapport-annee").await;
    b.client
        .execute(
            "document.querySelector('table.report').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("24b-rapport-tableau").await.unwrap();
    let session = b.cookie("clps_session").await.unwrap();
    let cookie = format!("clps_session={session}");
    let (status, csv) = http(
        addr,
        "GET",
        &format!("/rapport/{year}/secteur.csv"),
        &[("Cookie", &cookie)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(csv.starts_with('\u{feff}'), "BOM");
    assert!(csv.contains("Enseignement;1;0;1;"), "{csv}");
    let stats = node_ok(
        &data,
        &["stats", "--year", year, "--by", "sector", "--format", "csv"],
    )
    .await
    .unwrap();
    assert_eq!(numbers(&csv, ';'), numbers(&stats, ','));
    let (status, xlsx) = http_bytes(
        addr,
        "GET",
        &format!("/rapport/{year}/secteur.xlsx"),
        &[("Cookie", &cookie)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let flat: Vec<u64> = numbers(&stats, ',').into_iter().flatten().collect();
    assert_eq!(xlsx_numbers(&xlsx), flat);

    // 2021: the printed tables, and the three cells where they disagree.
    b.goto(&format!("{url}/rapport?annee=2021")).await.unwrap();
    let page = b
        .wait_for_text("#calibration", "Comparaison")
        .await
        .unwrap();
    assert!(page.contains("Comparaison avec le rapport d'activité imprimé"));
    let section = b
        .text("section[aria-labelledby=calibration]")
        .await
        .unwrap();
    assert!(section.contains("le nœud en compte 785"), "{section}");
    let rows = b
        .client
        .find_all(Locator::Css(
            "section[aria-labelledby=calibration] tbody tr",
        ))
        .await
        .unwrap();
    let mut gaps = Vec::new();
    for row in rows {
        let cells = row.find_all(Locator::Css("td")).await.unwrap();
        let mut texts = Vec::new();
        for c in cells {
            texts.push(c.text().await.unwrap());
        }
        gaps.push((texts[3].clone(), texts[4].clone()));
    }
    gaps.sort();
    assert_eq!(
        gaps,
        vec![
            ("100".to_owned(), "98".to_owned()),
            ("285".to_owned(), "286".to_owned()),
            ("52".to_owned(), "51".to_owned()),
        ],
        "the three cells where the printed tables disagree"
    );
    check_page(&b, "25-rapport-2021").await;

    // What leaves the centre: counts, no name.
    b.click_text("Ce que le centre publie pour le réseau")
        .await
        .unwrap();
    let page = b
        .wait_for_text("main", "Ce que le centre publie")
        .await
        .unwrap();
    assert!(page.contains("Le centre n'a encore rien publié"), "{page}");
    let html = b.client.source().await.unwrap();
    for canary in ["Dubois", "Canaris", "classe de 5e"] {
        assert!(!html.contains(canary), "{canary} in the publication page");
    }
    check_page(&b, "26-publication").await;

    // Contacts: the new organisation, linked to its demande.
    b.goto(&format!("{url}/organisations?q=Canaris"))
        .await
        .unwrap();
    b.wait_for_text("main", "2 organisations").await.unwrap();
    check_page(&b, "27-organisations").await;
    b.click_text("École communale des Canaris").await.unwrap();
    let page = b.wait_for_text("main", "Liée à").await.unwrap();
    assert!(
        page.contains("1 demande") && page.contains("Marie Dubois"),
        "{page}"
    );

    // Right of access, then erasure on request: the name goes, the counts stay.
    b.click_text("Marie Dubois").await.unwrap();
    b.wait_for_text("main", "Ses droits").await.unwrap();
    check_page(&b, "28-personne").await;
    let person_path = b.path().await.unwrap();
    let (status, export) = http(
        addr,
        "GET",
        &format!("{person_path}/export.json"),
        &[("Cookie", &cookie)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let export: serde_json::Value = serde_json::from_str(&export).unwrap();
    assert_eq!(export["person"]["last_name"], "Dubois");
    assert_eq!(
        export["requests"][0]["note"],
        "Souhaite un jeu pour une classe de 5e"
    );
    b.click_text("Effacer à sa demande…").await.unwrap();
    b.wait_for_text("h1", "Effacer Marie Dubois").await.unwrap();
    check_page(&b, "29-effacement").await;
    b.click_text("Effacer définitivement").await.unwrap();
    let page = b.wait_for_text("main", "Personne effacée").await.unwrap();
    assert!(
        page.contains("1 demande gardée sans nom, 1 note vidée"),
        "{page}"
    );
    b.goto(&format!("{url}/personnes?q=Dubois%20Marie"))
        .await
        .unwrap();
    b.wait_for_text("main", "0 personne").await.unwrap();
    b.goto(&format!("{url}/rapport?annee={year}"))
        .await
        .unwrap();
    let main = b.wait_for_text("main", "En bref").await.unwrap();
    assert!(main.contains("2 demandes"), "{main}");

    // Deleting a demande asks first.
    b.goto(&format!("{url}/demandes?service=diffusion&du={iso}"))
        .await
        .unwrap();
    b.wait_for_text("main", "1 demande").await.unwrap();
    b.click("tbody tr:first-child a").await.unwrap();
    b.click_text("Supprimer cette demande…").await.unwrap();
    let page = b.wait_for_text("h1", "Supprimer la demande").await.unwrap();
    assert!(page.contains("?"));
    check_page(&b, "30-demande-suppression").await;
    b.click_text("Supprimer définitivement").await.unwrap();
    b.wait_for_text("main", "supprimée").await.unwrap();
    b.wait_for_text("main", "786 demandes").await.unwrap();

    // A POST without the CSRF token writes nothing.
    let (status, _) = http(
        addr,
        "POST",
        "/demandes",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "date=2021-03-01&service=pret&secteur=enseignement&profession=enseignant_directeur&contact=mail&themes=evras",
    )
    .await
    .unwrap();
    assert_eq!(status, 403);

    // A reader reads and cannot write.
    b.click("header form.who button").await.unwrap();
    b.wait_for_path("/connexion").await.unwrap();
    sign_in(&b, &url, "lecteur", "mot de passe du lecteur").await;
    b.goto(&format!("{url}/demandes")).await.unwrap();
    let page = b.wait_for_text("main", "786 demandes").await.unwrap();
    assert!(!page.contains("Nouvelle demande"), "{page}");
    b.goto(&format!("{url}/demandes/nouvelle")).await.unwrap();
    b.wait_for_text("h1", "Accès en lecture seule")
        .await
        .unwrap();
    b.client.close().await.unwrap();
}
