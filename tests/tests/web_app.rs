//! The staff web application in a real browser, as a centre uses it.
//!
//! A hub and two nodes (Namur, Liège) run as real processes over mutual TLS,
//! each node's `clps-node serve` serving its web application. In headless
//! Chromium (WebDriver): anonymous pages send to sign-in; Namur's admin
//! creates a documentaliste; she signs in, searches « education » and finds
//! « Éducation… » records, opens one, edits its description; an invalid
//! form shows French errors next to its fields and writes nothing; a POST
//! without the CSRF token is refused with 403; the edit then appears on
//! Liège's record page. axe-core runs in every page: no serious or critical
//! violation. Screenshots go to `target/web-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use clps_tests::browser::{Browser, http};
use clps_tests::procs::{ProcFederation, node_ok};
use clps_tests::staff_web::{add_user, check_page, serve, serve_with, sign_in};

const CATALOGUE: &str = "id_local,titre,type,auteurs,editeur,annee,themes,publics,description,cote,exemplaires
1,\"Éducation à la santé : repères pour l'école\",dossier,\"Question Santé\",\"Question Santé\",2019,alimentation;assuetudes,enseignants,\"Un dossier pour aborder la santé en classe.\",D-001,2
2,\"Jeu des émotions\",outil_pedagogique,\"Cultures & Santé\",\"Cultures & Santé\",2020,competences_psychosociales,enfants,\"Un jeu de cartes sur les émotions.\",J-002,1
3,\"L'éducation du patient en pratique\",ouvrage,\"Fédération des maisons médicales\",\"Fédération des maisons médicales\",2018,education_patient,adultes,\"Des repères pour les soignants.\",O-003,1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_documentalist_finds_and_edits_a_tool_and_another_centre_sees_it() {
    let fed = ProcFederation::start(&["namur", "liege"], Vec::new())
        .await
        .unwrap();
    let namur = fed.nodes[0].1.clone();
    let liege = fed.nodes[1].1.clone();
    let csv = fed.dir.path().join("catalogue.csv");
    std::fs::write(&csv, CATALOGUE).unwrap();
    node_ok(&namur, &["catalogue", "import", csv.to_str().unwrap()])
        .await
        .unwrap();
    add_user(&namur, "admin", "admin", "mot de passe de l'admin").await;
    add_user(&liege, "admin", "admin", "mot de passe de Liège").await;
    let (_namur_serve, namur_addr) = serve(&namur).await;
    let (_liege_serve, liege_addr) = serve(&liege).await;
    let namur_url = format!("http://{namur_addr}");
    let liege_url = format!("http://{liege_addr}");
    let b = Browser::start().await.unwrap();

    // Anonymous: sent to sign-in, and back to the page asked for after.
    b.goto(&format!("{namur_url}/catalogue?q=jeu"))
        .await
        .unwrap();
    assert_eq!(
        b.path().await.unwrap(),
        "/connexion?suite=%2Fcatalogue%3Fq%3Djeu"
    );
    check_page(&b, "01-connexion").await;
    b.fill("#identifiant", "admin").await.unwrap();
    b.fill("#mot_de_passe", "pas le bon").await.unwrap();
    b.click("main button[type=submit]").await.unwrap();
    b.wait_for_text("body", "Identifiant ou mot de passe incorrect.")
        .await
        .unwrap();
    sign_in(&b, &namur_url, "admin", "mot de passe de l'admin").await;
    assert_eq!(b.wait_for_path("/").await.unwrap(), "/");
    check_page(&b, "02-accueil").await;

    // The admin creates a documentaliste.
    b.click_text("Comptes").await.unwrap();
    b.fill("form[action='/comptes'] #identifiant", "marie")
        .await
        .unwrap();
    b.fill("form[action='/comptes'] #mot_de_passe", "court")
        .await
        .unwrap();
    // The browser's own minlength check would stop the form: remove it so
    // the server's answer is what is tested.
    b.client
        .execute(
            "document.querySelectorAll('[minlength]').forEach(e => e.removeAttribute('minlength'))",
            vec![],
        )
        .await
        .unwrap();
    b.click("form[action='/comptes'] button").await.unwrap();
    b.wait_for_text(
        "body",
        "Le mot de passe doit compter au moins 10 caractères.",
    )
    .await
    .unwrap();
    b.fill("form[action='/comptes'] #identifiant", "marie")
        .await
        .unwrap();
    b.fill(
        "form[action='/comptes'] #mot_de_passe",
        "le mot de passe de marie",
    )
    .await
    .unwrap();
    b.click("form[action='/comptes'] button").await.unwrap();
    b.wait_for_text("body", "Compte « marie » créé (Documentaliste).")
        .await
        .unwrap();
    check_page(&b, "03-comptes").await;
    b.click_text("Se déconnecter").await.unwrap();
    b.wait_for_path("/connexion").await.unwrap();

    // The documentaliste signs in and searches without accents.
    sign_in(&b, &namur_url, "marie", "le mot de passe de marie").await;
    b.click_text("Outilthèque").await.unwrap();
    b.fill("#q", "education").await.unwrap();
    b.click(".search .q button").await.unwrap();
    let results = b
        .wait_for_text("#resultats", "L'éducation du patient en pratique")
        .await
        .unwrap();
    assert!(
        results.contains("Éducation à la santé : repères pour l'école"),
        "{results}"
    );
    assert!(
        results.contains("L'éducation du patient en pratique"),
        "{results}"
    );
    assert!(!results.contains("Jeu des émotions"), "{results}");
    assert!(
        results.contains("CLPS-Namur : 2 exemplaires, disponible"),
        "{results}"
    );
    check_page(&b, "04-recherche").await;

    // Opens the record, then edits its description.
    b.click_text("Éducation à la santé : repères pour l'école")
        .await
        .unwrap();
    let record_path = b.wait_for_path("/notices/").await.unwrap();
    let page = b
        .wait_for_text("body", "Exemplaires dans le réseau")
        .await
        .unwrap();
    for expected in [
        "Type de document",
        "Dossier",
        "Alimentation",
        "Question Santé",
        "Exemplaires dans le réseau",
        "D-001",
    ] {
        assert!(page.contains(expected), "{expected} missing in {page}");
    }
    check_page(&b, "05-notice").await;
    // Liège holds the record before it is edited, so the edit reaches it as
    // a change (listed on its home page) rather than inside a new document.
    let id = record_path.trim_start_matches("/notices/").to_owned();
    let started = Instant::now();
    while node_ok(&liege, &["catalogue", "show", &id]).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the record did not reach Liège within 60 s"
        );
        tokio::task::yield_now().await;
    }
    b.click_text("Modifier la notice").await.unwrap();
    check_page(&b, "06-modifier").await;

    // An invalid form: French errors next to the fields, nothing written.
    b.fill("#year", "deux mille").await.unwrap();
    b.fill("#title", "").await.unwrap();
    b.fill(
        "#description",
        "Écrire à marie@example.org pour le réserver.",
    )
    .await
    .unwrap();
    b.click(".record-form button[type=submit]").await.unwrap();
    b.wait_for_text("body", "champs sont à corriger")
        .await
        .unwrap();
    assert_eq!(
        b.text("#year-erreur").await.unwrap(),
        "« deux mille » n'est pas un nombre."
    );
    assert_eq!(
        b.text("#title-erreur").await.unwrap(),
        "Ce champ est obligatoire."
    );
    assert!(
        b.text("#description-erreur")
            .await
            .unwrap()
            .starts_with("Une adresse e-mail ou un numéro de téléphone ne peut pas figurer")
    );
    b.wait_for_text("body", "3 champs sont à corriger : rien n'a été écrit.")
        .await
        .unwrap();
    check_page(&b, "07-formulaire-invalide").await;
    b.goto(&format!("{namur_url}{record_path}")).await.unwrap();
    b.wait_for_text("body", "Un dossier pour aborder la santé en classe.")
        .await
        .unwrap();

    // The same form, right this time.
    b.click_text("Modifier la notice").await.unwrap();
    b.fill(
        "#description",
        "Un dossier pour aborder la santé en classe, mis à jour par Namur.",
    )
    .await
    .unwrap();
    b.click(".record-form button[type=submit]").await.unwrap();
    let page = b.wait_for_text("body", "Notice modifiée").await.unwrap();
    assert!(page.contains("mis à jour par Namur"), "{page}");

    // A POST without the CSRF token is refused, and writes nothing.
    let session = b.cookie("clps_session").await.unwrap();
    let cookie = format!("clps_session={session}");
    let (status, _) = http(
        namur_addr,
        "POST",
        &format!("{record_path}/exemplaires"),
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "copies=9&shelf_mark=X&availability=available",
    )
    .await
    .unwrap();
    assert_eq!(status, 403);
    let (status, body) = http(namur_addr, "GET", &record_path, &[("Cookie", &cookie)], "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(!body.contains("<td>9</td>"), "the holding changed");

    // Circulation at Namur: a copy with a barcode, lent at the desk; a
    // loan noted on paper a month ago is entered with its real days and is
    // overdue, with its reminder letter.
    b.goto(&format!("{namur_url}{record_path}")).await.unwrap();
    b.fill("#nouveau_code", "NA-0001").await.unwrap();
    b.fill("#nouvelle_cote", "D-001").await.unwrap();
    b.click_text("Ajouter l'exemplaire").await.unwrap();
    b.wait_for_text("main", "Exemplaire ajouté").await.unwrap();
    b.fill("#nouveau_code", "NA-0002").await.unwrap();
    b.click_text("Ajouter l'exemplaire").await.unwrap();
    let page = b
        .wait_for_text("#nos-exemplaires + table", "NA-0002")
        .await
        .unwrap();
    assert!(page.contains("Disponible"), "{page}");
    b.click_text("Prêts").await.unwrap();
    b.wait_for_text("h1", "Prêts et retours").await.unwrap();
    check_page(&b, "40-pret").await;
    b.fill("#code_barre", "NA-0001").await.unwrap();
    b.fill("#organisation", "École des Canaris").await.unwrap();
    b.fill("#personne", "Zoé Canari").await.unwrap();
    b.click("form[action='/pret'] button").await.unwrap();
    let page = b.wait_for_text("main", "Prêté :").await.unwrap();
    assert!(page.contains("à École des Canaris (Zoé Canari)"), "{page}");
    // The same copy again: refused with a sentence, nothing written.
    b.fill("#code_barre", "NA-0001").await.unwrap();
    b.fill("#organisation", "Athénée des Canaris")
        .await
        .unwrap();
    b.click("form[action='/pret'] button").await.unwrap();
    let page = b
        .wait_for_text("main", "est déjà en prêt jusqu'au")
        .await
        .unwrap();
    assert!(page.contains("1 exemplaire dehors"), "{page}");
    b.fill("#code_barre", "NA-0002").await.unwrap();
    b.fill("#organisation", "CPAS des Canaris").await.unwrap();
    let format = time_format();
    let today = time::OffsetDateTime::now_utc().date();
    let ago = |days: i64| {
        (today - time::Duration::days(days))
            .format(&format)
            .unwrap()
    };
    b.fill("#date", &ago(40)).await.unwrap();
    b.fill("#retour_prevu", &ago(12)).await.unwrap();
    b.click("form[action='/pret'] button").await.unwrap();
    b.wait_for_text("main", "2 exemplaires dehors")
        .await
        .unwrap();
    b.click_text("Les prêts en retard et les lettres de rappel")
        .await
        .unwrap();
    let page = b.wait_for_text("main", "1 prêt en retard").await.unwrap();
    assert!(
        page.contains("CPAS des Canaris") && page.contains("12"),
        "{page}"
    );
    let letter = b.text("pre.letter-text").await.unwrap();
    assert!(
        letter.contains("Objet : rappel de retour")
            && letter
                .contains("« Éducation à la santé : repères pour l'école » (exemplaire NA-0002)"),
        "{letter}"
    );
    check_page(&b, "41-retards").await;
    let csrf_of = |html: &str| {
        html.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_owned()
    };
    let namur_cookie = format!("clps_session={}", b.cookie("clps_session").await.unwrap());

    // Liège's own web application shows the edit once the hub has passed it on.
    sign_in(&b, &liege_url, "admin", "mot de passe de Liège").await;
    let started = Instant::now();
    loop {
        b.goto(&format!("{liege_url}{record_path}")).await.unwrap();
        let page = b.body().await.unwrap();
        if page.contains("mis à jour par Namur") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the edit did not reach Liège within 60 s: {page}"
        );
    }
    check_page(&b, "08-notice-liege").await;
    // Liège sees Namur's copies and that none is free (both are out), and
    // never a borrower.
    let started = Instant::now();
    loop {
        b.goto(&format!("{liege_url}{record_path}")).await.unwrap();
        let page = b.text("main").await.unwrap();
        let network = b.text("#reseau + table").await.unwrap_or_default();
        if network.contains("Namur") && network.contains("en prêt") {
            assert!(!page.contains("Canari"), "{page}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Namur's loan did not reach Liège within 60 s: {page}"
        );
    }
    // A return at Namur's desk: the copy is free again at Liège.
    let (_, desk) = http(namur_addr, "GET", "/pret", &[("Cookie", &namur_cookie)], "")
        .await
        .unwrap();
    let (status, body) = http(
        namur_addr,
        "POST",
        "/retour",
        &[
            ("Cookie", &namur_cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={}&code_barre=NA-0001", csrf_of(&desk)),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("l'exemplaire est disponible"), "{body}");
    let started = Instant::now();
    loop {
        b.goto(&format!("{liege_url}{record_path}")).await.unwrap();
        let page = b.text("main").await.unwrap();
        if b.text("#reseau + table")
            .await
            .unwrap_or_default()
            .contains("disponible")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the return did not reach Liège within 60 s: {page}"
        );
    }
    b.click_text("Accueil").await.unwrap();
    let home = b
        .wait_for_text("body", "Reçu des autres centres")
        .await
        .unwrap();
    assert!(
        // The latest of Namur's changes to the record: its copies (the return).
        home.contains("CLPS-Namur exemplaires Éducation à la santé : repères pour l'école"),
        "{home}"
    );
    check_page(&b, "08b-accueil-liege").await;
    b.click_text("Synchronisation").await.unwrap();
    b.wait_for_text("body", "Dernière synchronisation réussie")
        .await
        .unwrap();
    check_page(&b, "09-synchronisation").await;
}

fn time_format() -> &'static [time::format_description::BorrowedFormatItem<'static>] {
    time::macros::format_description!("[day]/[month]/[year]")
}

/// A library system's export as Excel saves it on Windows: Windows-1252,
/// semicolons, CRLF. Two good rows, an unknown type, an empty title.
fn windows_export() -> Vec<u8> {
    let text = "id_local;titre;type;themes;cote;exemplaires\r\n\
                 10;Éducation aux médias : un carnet;dossier;alimentation;M-010;1\r\n\
                 11;Les écrans en famille;ouvrage;;E-011;2\r\n\
                 12;Le jeu de l'oie de la santé;fusée;;J-012;1\r\n\
                 13;;ouvrage;;X-013;1\r\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_centre_offline_imports_its_export_and_a_reader_only_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("namur");
    node_ok(&data, &["init", "--centre", "namur"])
        .await
        .unwrap();
    add_user(&data, "admin", "admin", "mot de passe de l'admin").await;
    add_user(&data, "lecteur", "lecture", "mot de passe du lecteur").await;
    let export = dir.path().join("export-pmb.csv");
    std::fs::write(&export, windows_export()).unwrap();
    let wrong = dir.path().join("sans-type.csv");
    std::fs::write(&wrong, "id_local,titre\n1,Un titre\n").unwrap();
    // `web` serves without a hub (a centre offline).
    let (_web, addr) = serve_with(&data, &["web", "--listen", "127.0.0.1:0"]).await;
    let url = format!("http://{addr}");
    let b = Browser::start().await.unwrap();
    sign_in(&b, &url, "admin", "mot de passe de l'admin").await;

    // A file without a required column: the preview says which, and offers
    // no import.
    b.click_text("Import").await.unwrap();
    check_page(&b, "10-import").await;
    b.client
        .find(fantoccini::Locator::Css("#fichier"))
        .await
        .unwrap()
        .send_keys(wrong.to_str().unwrap())
        .await
        .unwrap();
    b.click("form[action='/import'] button").await.unwrap();
    let page = b
        .wait_for_text("body", "Colonne obligatoire absente : type")
        .await
        .unwrap();
    assert!(!page.contains("Importer 1 ligne"), "{page}");

    // The real export: encoding and separator detected, accents intact.
    b.click_text("Choisir un autre fichier").await.unwrap();
    b.client
        .find(fantoccini::Locator::Css("#fichier"))
        .await
        .unwrap()
        .send_keys(export.to_str().unwrap())
        .await
        .unwrap();
    b.click("form[action='/import'] button").await.unwrap();
    let page = b.wait_for_text("body", "Aperçu de l'import").await.unwrap();
    for expected in [
        "windows-1252",
        "point-virgule (;)",
        "export-pmb.csv",
        "Éducation aux médias : un carnet",
        "→ titre",
        "→ cote des exemplaires du centre",
    ] {
        assert!(page.contains(expected), "{expected} missing in {page}");
    }
    assert_eq!(b.text("dl.facts dd:nth-of-type(4)").await.unwrap(), "4");
    check_page(&b, "11-import-apercu").await;
    b.click_text("Importer 4 lignes").await.unwrap();
    let page = b.wait_for_text("body", "Import terminé").await.unwrap();
    assert!(
        page.contains("4 lignes lues : 2 notices créées, 0 déjà présente, 2 lignes rejetées."),
        "{page}"
    );
    assert!(
        page.contains("type de document inconnu « fusée »"),
        "{page}"
    );
    assert!(page.contains("titre vide"), "{page}");
    check_page(&b, "12-import-termine").await;

    // The rejected rows come back as a file to correct, with their reason.
    let import_path = b.path().await.unwrap();
    let session = b.cookie("clps_session").await.unwrap();
    let cookie = format!("clps_session={session}");
    let (status, body) = http(
        addr,
        "GET",
        &format!("{import_path}/rejets.csv"),
        &[("Cookie", &cookie)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("ligne;motif;id_local;titre;type;themes;cote;exemplaires\n"),
        "{body}"
    );
    assert!(
        body.contains(
            "4;type de document inconnu « fusée »;12;Le jeu de l'oie de la santé;fusée;;J-012;1\n"
        ),
        "{body}"
    );
    assert!(
        body.contains("5;titre vide;13;;ouvrage;;X-013;1\n"),
        "{body}"
    );

    // The imported records are in the outilthèque, with this centre's copies.
    b.click_text("Voir l'outilthèque").await.unwrap();
    b.fill("#q", "medias").await.unwrap();
    b.click(".search .q button").await.unwrap();
    let results = b
        .wait_for_text("#resultats", "Éducation aux médias : un carnet")
        .await
        .unwrap();
    assert!(results.contains("CLPS-Namur : 1 exemplaire"), "{results}");

    // The other pages pass axe too.
    b.click_text("Doublons").await.unwrap();
    b.wait_for_path("/doublons").await.unwrap();
    check_page(&b, "13-doublons").await;
    b.click_text("Journal").await.unwrap();
    b.wait_for_text("body", "import de notices").await.unwrap();
    check_page(&b, "14-journal").await;
    b.goto(&format!("{url}/notices/nouvelle")).await.unwrap();
    b.wait_for_text("h1", "Nouvelle notice").await.unwrap();
    check_page(&b, "15-nouvelle-notice").await;
    b.goto(&format!("{url}/nulle-part")).await.unwrap();
    b.wait_for_text("h1", "Page introuvable").await.unwrap();
    check_page(&b, "16-page-introuvable").await;
    b.goto(&format!("{url}/")).await.unwrap();
    b.click_text("Se déconnecter").await.unwrap();
    b.wait_for_path("/connexion").await.unwrap();

    // A read-only account consults, and cannot write even by hand.
    sign_in(&b, &url, "lecteur", "mot de passe du lecteur").await;
    let header = b.text("header").await.unwrap();
    assert!(!header.contains("Import"), "{header}");
    assert!(!header.contains("Comptes"), "{header}");
    b.click_text("Outilthèque").await.unwrap();
    b.fill("#q", "ecrans").await.unwrap();
    b.click(".search .q button").await.unwrap();
    b.wait_for_text("#resultats", "Les écrans en famille")
        .await
        .unwrap();
    // Age and year filters: a word is explained next to its field and not
    // applied; a record without an age range is not for « 12 ans ».
    b.goto(&format!("{url}/catalogue?q=ecrans&age=douze&depuis=2000"))
        .await
        .unwrap();
    assert_eq!(
        b.text("#f-age-erreur").await.unwrap(),
        "« douze » n'est pas un âge : ce filtre n'est pas appliqué."
    );
    check_page(&b, "16b-filtre-invalide").await;
    b.goto(&format!("{url}/catalogue?q=ecrans&age=12"))
        .await
        .unwrap();
    b.wait_for_text("#resultats", "Aucune notice ne correspond.")
        .await
        .unwrap();
    b.goto(&format!("{url}/catalogue?q=ecrans")).await.unwrap();
    b.click_text("Les écrans en famille").await.unwrap();
    let page = b.wait_for_text("body", "E-011").await.unwrap();
    assert!(!page.contains("Modifier la notice"), "{page}");
    check_page(&b, "17-notice-lecture").await;
    let record_path = b.path().await.unwrap();
    b.goto(&format!("{url}{record_path}/modifier"))
        .await
        .unwrap();
    b.wait_for_text("h1", "Accès en lecture seule")
        .await
        .unwrap();
    let session = b.cookie("clps_session").await.unwrap();
    let cookie = format!("clps_session={session}");
    let csrf = {
        // The reader's own token, taken from the sign-out form.
        let page = http(addr, "GET", "/", &[("Cookie", &cookie)], "")
            .await
            .unwrap()
            .1;
        page.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned()
    };
    let (status, _) = http(
        addr,
        "POST",
        &format!("{record_path}/exemplaires"),
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={csrf}&copies=9&shelf_mark=X&availability=available"),
    )
    .await
    .unwrap();
    assert_eq!(status, 403);
    let (status, body) = http(addr, "GET", &record_path, &[("Cookie", &cookie)], "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("E-011") && !body.contains(">X<"), "{body}");
    let (status, _) = http(addr, "GET", "/import", &[("Cookie", &cookie)], "")
        .await
        .unwrap();
    assert_eq!(status, 403);
}
