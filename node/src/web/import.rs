//! Importing a library system's CSV export from the browser: upload, a
//! preview (detected encoding and separator, the first rows, how each column
//! is read), the import with a progress bar, the summary and the rejected
//! rows to download.
//!
//! An upload is kept in memory as a job until it is imported or replaced:
//! at most [`KEPT`] jobs per node, each visible only to the person who sent
//! it. The import itself is [`Node::import_decoded`]: the same code as
//! `clps-node catalogue import`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::pages::{self, Nav, Notice};
use super::{Signed, Web, editor_form, error_page, expired_form, fr, page, require_editor};
use crate::app::accounts::Session;
use crate::app::{ErrorKind, Node};
use crate::import::{self, Decoded, ImportError, ImportReport, Preview};

/// Uploads kept per node (the oldest finished ones go first).
const KEPT: usize = 8;
/// Rows shown in the preview.
const PREVIEW_ROWS: usize = 5;
/// Rejected rows listed on the summary page (all are in the download).
const LISTED_REJECTS: usize = 50;

#[derive(Debug)]
enum JobState {
    Ready,
    Running,
    Done(ImportReport),
    Failed(String),
}

/// One uploaded file, from its preview to its summary.
#[derive(Debug)]
pub(super) struct Job {
    owner: String,
    file_name: String,
    sent_at: i64,
    decoded: Decoded,
    preview: Preview,
    state: Mutex<JobState>,
    total: AtomicU64,
    written: AtomicU64,
}

impl import::Progress for Job {
    fn start(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }
    fn advance(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }
}

/// The uploads of this node, by random id.
#[derive(Debug, Default)]
pub(super) struct Jobs(Mutex<HashMap<String, Arc<Job>>>);

impl Jobs {
    fn insert(&self, id: String, job: Job) {
        let mut jobs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while jobs.len() >= KEPT {
            let oldest = jobs
                .iter()
                .filter(|(_, j)| {
                    !matches!(
                        *j.state.lock().unwrap_or_else(|p| p.into_inner()),
                        JobState::Running
                    )
                })
                .min_by_key(|(_, j)| j.sent_at)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => jobs.remove(&id),
                None => break,
            };
        }
        jobs.insert(id, Arc::new(job));
    }

    /// A job of this person's.
    fn get(&self, id: &str, login: &str) -> Option<Arc<Job>> {
        let jobs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get(id).filter(|j| j.owner == login).cloned()
    }
}

/// The import `id` of the signed-in editor who sent it.
fn own_job(web: &Web, signed: &Signed, id: &str) -> Result<Arc<Job>, Response> {
    require_editor(signed)?;
    web.imports
        .get(id, &signed.session.staff.login)
        .ok_or_else(|| gone(&signed.session))
}

fn gone(session: &Session) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        Some(session),
        "Import introuvable",
        "Cet import n'existe plus (le nœud a redémarré, ou d'autres fichiers ont été envoyés depuis) : envoyez le fichier à nouveau.",
    )
}

pub(super) async fn form(State(web): State<Web>, signed: Signed) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    page(
        StatusCode::OK,
        upload_page(&web.node, &signed.session, None),
    )
}

pub(super) async fn upload(
    State(web): State<Web>,
    signed: Signed,
    mut multipart: Multipart,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    let refused = |status: StatusCode, message: String| {
        page(
            status,
            upload_page(&web.node, &signed.session, Some(&message)),
        )
    };
    // The token comes first in the form: nothing else is read without it.
    let mut csrf_ok = false;
    let mut file: Option<(String, Bytes)> = None;
    loop {
        match multipart.next_field().await {
            Ok(None) => break,
            Ok(Some(field)) => match field.name() {
                Some("csrf") => {
                    let token = field.text().await.unwrap_or_default();
                    csrf_ok = super::same_token(&token, &signed.session.csrf);
                    if !csrf_ok {
                        return expired_form(&signed);
                    }
                }
                Some("fichier") if csrf_ok => {
                    let name = field.file_name().unwrap_or_default().to_owned();
                    match field.bytes().await {
                        Ok(bytes) => file = Some((name, bytes)),
                        Err(e) => return refused(e.status(), upload_error(e.status())),
                    }
                }
                _ if !csrf_ok => return expired_form(&signed),
                _ => {}
            },
            Err(e) => return refused(e.status(), upload_error(e.status())),
        }
    }
    if !csrf_ok {
        return expired_form(&signed);
    }
    let Some((file_name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choisissez un fichier CSV à importer.".into(),
        );
    };
    let read = tokio::task::spawn_blocking(move || {
        let decoded = import::decode(&bytes)?;
        let preview = import::preview(&decoded, PREVIEW_ROWS)?;
        Ok::<_, ImportError>((decoded, preview))
    })
    .await;
    let (decoded, preview) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            return refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Ce fichier ne peut pas être importé : {e}."),
            );
        }
        Err(_) => {
            return refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "La lecture du fichier s'est interrompue : rien n'a été écrit. Réessayez.".into(),
            );
        }
    };
    let id = hex::encode(web.node.random::<16>());
    web.imports.insert(
        id.clone(),
        Job {
            owner: signed.session.staff.login.clone(),
            file_name,
            sent_at: web.node.now(),
            decoded,
            preview,
            state: Mutex::new(JobState::Ready),
            total: AtomicU64::new(0),
            written: AtomicU64::new(0),
        },
    );
    super::see_other(&format!("/import/{id}"))
}

fn upload_error(status: StatusCode) -> String {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "Ce fichier dépasse {} Mo : découpez-le en plusieurs fichiers.",
            import::MAX_BYTES / 1024 / 1024
        )
    } else {
        "L'envoi du fichier s'est interrompu : rien n'a été écrit. Réessayez.".into()
    }
}

pub(super) async fn show(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match own_job(&web, &signed, &id) {
        Ok(job) => page(
            StatusCode::OK,
            job_page(&web.node, &signed.session, &id, &job),
        ),
        Err(r) => r,
    }
}

pub(super) async fn start(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = editor_form(&signed, &body) {
        return r;
    }
    let job = match own_job(&web, &signed, &id) {
        Ok(job) => job,
        Err(r) => return r,
    };
    if let Some(first) = job.preview.missing.first() {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&signed.session),
            "Import impossible",
            &format!(
                "La colonne obligatoire « {first} » manque dans ce fichier : rien n'a été écrit."
            ),
        );
    }
    {
        let mut state = job.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, JobState::Ready) {
            // Already started (a second click, a reload): show where it is.
            drop(state);
            return super::see_other(&format!("/import/{id}"));
        }
        *state = JobState::Running;
    }
    let node = web.node.clone();
    let login = signed.session.staff.login.clone();
    tokio::spawn(async move {
        let progress: Arc<dyn import::Progress> = job.clone();
        let outcome = node
            .import_decoded(job.decoded.clone(), progress, Some(&login))
            .await;
        let finished = match outcome {
            Ok(report) => JobState::Done(report),
            Err(e) => {
                tracing::warn!(error = %e, "web import failed");
                JobState::Failed(import_error(&e))
            }
        };
        *job.state.lock().unwrap_or_else(|p| p.into_inner()) = finished;
    });
    super::see_other(&format!("/import/{id}"))
}

fn import_error(e: &ImportError) -> String {
    match e.kind() {
        ErrorKind::Unavailable => fr::unavailable().to_owned(),
        ErrorKind::Invalid => format!("{e}."),
        _ => "Le catalogue partagé a refusé l'import. Les lots de notices écrits avant l'incident restent dans le catalogue ; relancer le même fichier ne crée pas de doublon.".into(),
    }
}

pub(super) async fn rejected(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let job = match own_job(&web, &signed, &id) {
        Ok(job) => job,
        Err(r) => return r,
    };
    let report = match &*job.state.lock().unwrap_or_else(|p| p.into_inner()) {
        JobState::Done(report) => report.clone(),
        _ => return super::see_other(&format!("/import/{id}")),
    };
    match import::rejected_csv(&job.decoded, &report) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"lignes-rejetees.csv\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&signed.session),
            "Lignes rejetées",
            &format!("Le fichier des lignes rejetées n'a pas pu être préparé : {e}."),
        ),
    }
}

// ---- Pages -----------------------------------------------------------------

fn upload_page(node: &Node, session: &Session, error: Option<&str>) -> Markup {
    let n = error.map(|e| Notice::Error(e.to_owned(), Vec::new()));
    pages::layout_refreshing(
        node,
        Some(session),
        "Importer des notices",
        Nav::Import,
        None,
        html! {
            h1 { "Importer des notices" }
            (pages::notice(n.as_ref()))
            p {
                "Envoyez l'export CSV de votre logiciel documentaire (PMB, Koha, un tableur). "
                "Le nœud reconnaît l'encodage (UTF-8 ou Windows) et le séparateur (point-virgule, virgule ou tabulation), "
                "puis montre un aperçu : rien n'est écrit avant que vous confirmiez. "
                "Importer deux fois le même fichier ne crée pas de doublon."
            }
            form method="post" action="/import" enctype="multipart/form-data" class="stack" {
                (pages::csrf(session))
                label for="fichier" { "Fichier CSV" }
                input type="file" id="fichier" name="fichier" accept=".csv,.txt,text/csv" required
                    aria-describedby="fichier-aide";
                p id="fichier-aide" class="hint" {
                    "Jusqu'à " (import::MAX_BYTES / 1024 / 1024) " Mo ; une ligne d'en-tête nomme les colonnes."
                }
                button type="submit" { "Voir l'aperçu" }
            }
            h2 { "Colonnes lues" }
            table {
                thead { tr { th scope="col" { "Colonne" } th scope="col" { "Ce qu'elle remplit" } th scope="col" { "Obligatoire" } } }
                tbody {
                    @for (column, what) in import::COLUMNS {
                        tr {
                            td { code { (column) } }
                            td { (what) }
                            td { @if import::REQUIRED.contains(&column) { "oui" } @else { "non" } }
                        }
                    }
                }
            }
            p class="hint" {
                "Les en-têtes sont reconnus sans tenir compte des majuscules ni des accents. "
                "Dans une cellule, le point-virgule sépare plusieurs valeurs (thématiques, publics, langues, liens) ; "
                "les types de document et les thématiques s'écrivent en toutes lettres ou par leur code."
            }
        },
    )
}

fn job_page(node: &Node, session: &Session, id: &str, job: &Job) -> Markup {
    let state = job.state.lock().unwrap_or_else(|p| p.into_inner());
    let running = matches!(*state, JobState::Running);
    let title = match &*state {
        JobState::Ready => "Aperçu de l'import",
        JobState::Running => "Import en cours",
        JobState::Done(_) => "Import terminé",
        JobState::Failed(_) => "Import interrompu",
    };
    let p = &job.preview;
    pages::layout_refreshing(
        node,
        Some(session),
        title,
        Nav::Import,
        running.then_some(1),
        html! {
            h1 { (title) }
            dl class="facts" {
                dt { "Fichier" } dd { (if job.file_name.is_empty() { "sans nom" } else { &job.file_name }) }
                dt { "Encodage" } dd { (p.encoding) }
                dt { "Séparateur" } dd { (p.separator) }
                dt { "Lignes de données" } dd { (p.total_rows) }
                dt { "Envoyé le" } dd { (fr::date_time(job.sent_at)) }
            }
            @match &*state {
                JobState::Ready => {
                    @if p.missing.is_empty() {
                        form method="post" action=(format!("/import/{id}")) {
                            (pages::csrf(session))
                            button type="submit" {
                                "Importer " (fr::count(p.total_rows as i64, "ligne", "lignes"))
                            }
                            " "
                            a href="/import" { "Choisir un autre fichier" }
                        }
                    } @else {
                        p class="notice error" role="alert" {
                            "Colonne obligatoire absente : "
                            (p.missing.join(", "))
                            ". Renommez l'en-tête de la colonne correspondante dans le fichier, puis envoyez-le à nouveau. Rien n'a été écrit."
                        }
                        p { a href="/import" { "Choisir un autre fichier" } }
                    }
                }
                JobState::Running => {
                    @let total = job.total.load(Ordering::Relaxed);
                    @let written = job.written.load(Ordering::Relaxed);
                    p role="status" {
                        label for="avancement" { "Notices écrites : " (written) " sur " (total) }
                        " "
                        progress id="avancement" max=(total.max(1)) value=(written) { (written) " sur " (total) }
                    }
                    p class="hint" { "Cette page se met à jour toute seule. Vous pouvez la quitter : l'import continue." }
                }
                JobState::Done(report) => (summary(id, report)),
                JobState::Failed(message) => {
                    p class="notice error" role="alert" { (message) }
                    p { a href="/import" { "Importer un fichier" } }
                }
            }
            @if matches!(*state, JobState::Ready) {
                h2 { "Premières lignes" }
                div class="scroll" {
                    table {
                        thead {
                            tr { @for (header, _) in &p.headers { th scope="col" { (header) } } }
                            tr class="read-as" {
                                @for (_, what) in &p.headers {
                                    td { @match what { Some(w) => { "→ " (w) }, None => em { "non lue" } } }
                                }
                            }
                        }
                        tbody {
                            @for row in &p.rows {
                                tr { @for cell in row { td { (cell) } } }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn summary(id: &str, report: &ImportReport) -> Markup {
    html! {
        p class="notice done" role="status" {
            (fr::count(report.rows as i64, "ligne lue", "lignes lues")) " : "
            (fr::count(report.created as i64, "notice créée", "notices créées")) ", "
            (fr::count(report.already_present as i64, "déjà présente", "déjà présentes")) ", "
            (fr::count(report.rejected.len() as i64, "ligne rejetée", "lignes rejetées")) "."
        }
        @if report.created > 0 {
            p { "Les autres centres recevront les nouvelles notices à la prochaine synchronisation." }
        }
        @if !report.rejected.is_empty() {
            h2 { "Lignes rejetées" }
            p {
                a href=(format!("/import/{id}/rejets.csv")) download="lignes-rejetees.csv" {
                    "Télécharger les lignes rejetées (CSV)"
                }
                " : chaque ligne avec son motif, à corriger puis importer à nouveau."
            }
            table {
                thead { tr { th scope="col" { "Ligne du fichier" } th scope="col" { "Motif" } } }
                tbody {
                    @for (line, reason) in report.rejected.iter().take(LISTED_REJECTS) {
                        tr { td { (line) } td { (reason) } }
                    }
                }
            }
            @if report.rejected.len() > LISTED_REJECTS {
                p class="hint" { "Les " (LISTED_REJECTS) " premières sont listées ; le fichier les contient toutes." }
            }
        }
        p { a href="/catalogue" { "Voir l'outilthèque" } " · " a href="/import" { "Importer un autre fichier" } }
    }
}
