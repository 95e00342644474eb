//! The staff web application: a French, server-rendered adapter over the
//! node's operations ([`crate::app::Node`]).
//!
//! Pages are `maud` templates (escaping by default); forms work without
//! JavaScript, and the vendored htmx only refreshes search results as one
//! types. Every response carries `Content-Security-Policy: default-src
//! 'self'`. Sessions are HttpOnly, SameSite=Strict cookies (Secure over
//! TLS); every POST carries the session's CSRF token, checked before the
//! form is read; sign-in is throttled per login and per address.
//!
//! Handlers never open SQL or Automerge: they parse, call one operation,
//! render.

// A refused request is a whole response (a page saying why), returned early
// from handlers: boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod activities;
mod circulation;
pub(crate) mod fr;
mod import;
mod pages;
mod records;
mod report;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::accounts::{AccountError, Role, Session, Throttle};
use crate::app::catalogue::{
    CatalogueError, FieldError, HoldingForm, RecordForm, ReviewForm, Search,
};
use crate::app::{ErrorKind, Node};

pub use tls::load_server_config;

const SESSION_COOKIE: &str = "clps_session";
const LOGIN_COOKIE: &str = "clps_connexion";
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
const HTMX_JS: &str = include_str!("static/htmx-2.0.11.min.js");
const STYLE_CSS: &str = include_str!("static/style.css");

/// The address of the other end of a connection (for sign-in throttling).
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// What every handler reads.
#[derive(Clone)]
struct Web {
    node: Node,
    throttle: Arc<Throttle>,
    /// CSV files sent for import, from preview to summary.
    imports: Arc<import::Jobs>,
    /// Served over TLS: cookies get `Secure`.
    secure: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "impossible d'écouter sur {addr} : {}",
        crate::store::io_error_fr(source)
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "{0} n'est pas une adresse locale (127.0.0.1, ::1) : au-delà, l'application web ne sert qu'en HTTPS ; indiquez cert et key dans la section [web] de node.toml"
    )]
    NeedsTls(SocketAddr),
    #[error("HTTPS : {0}")]
    Tls(String),
}

/// Binds the web listener; the returned closure starts serving until
/// `shutdown` turns true.
pub async fn bind(
    node: Node,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<
    (
        SocketAddr,
        impl FnOnce(watch::Receiver<bool>) -> JoinHandle<std::io::Result<()>>,
    ),
    WebError,
> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(WebError::NeedsTls(addr));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    let secure = tls.is_some();
    let start = move |shutdown: watch::Receiver<bool>| {
        let app = router(Web {
            node,
            throttle: Arc::new(Throttle::default()),
            imports: Arc::default(),
            secure,
        });
        let service = app.into_make_service_with_connect_info::<Peer>();
        let mut stop = shutdown.clone();
        let stopped = async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::spawn(async move {
            match tls {
                None => {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(stopped)
                        .await
                }
                Some(config) => {
                    let listener = tls::TlsListener::new(listener, config, shutdown);
                    axum::serve(listener, service)
                        .with_graceful_shutdown(stopped)
                        .await
                }
            }
        })
    };
    Ok((local, start))
}

fn router(state: Web) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/connexion", get(login_form).post(login))
        .route("/deconnexion", post(logout))
        .route("/catalogue", get(search))
        .route("/notices/nouvelle", get(new_record_form))
        .route("/notices", post(create_record))
        .route("/notices/{id}", get(record).post(save_record))
        .route("/notices/{id}/modifier", get(edit_record_form))
        .route("/notices/{id}/exemplaires", post(save_holding))
        .route("/notices/{id}/avis", post(save_review))
        .route("/notices/{id}/conflit", post(keep_value))
        .route("/notices/{id}/exemplaire", post(circulation::add_copy))
        .route("/notices/{id}/reservations", post(circulation::reserve))
        .route(
            "/reservations/{id}/annuler",
            post(circulation::cancel_reservation),
        )
        .route("/pret", get(circulation::desk_get).post(circulation::lend))
        .route("/retour", post(circulation::give_back))
        .route("/prets/{id}/prolonger", post(circulation::renew))
        .route("/retards", get(circulation::overdue))
        .route("/doublons", get(duplicates))
        .route("/doublons/fusion", post(merge))
        .route(
            "/import",
            get(import::form)
                .post(import::upload)
                .layer(DefaultBodyLimit::max(crate::import::MAX_BYTES + 64 * 1024)),
        )
        .route("/import/{job}", get(import::show).post(import::start))
        .route("/import/{job}/rejets.csv", get(import::rejected))
        .route(
            "/demandes",
            get(records::requests).post(records::create_request),
        )
        .route("/demandes/nouvelle", get(records::new_request))
        .route(
            "/demandes/{id}",
            get(records::request).post(records::save_request),
        )
        .route(
            "/demandes/{id}/supprimer",
            get(records::confirm_delete_request).post(records::delete_request),
        )
        .route(
            "/organisations",
            get(records::organisations).post(records::create_organisation),
        )
        .route("/organisations/nouvelle", get(records::new_organisation))
        .route(
            "/organisations/{id}",
            get(records::organisation).post(records::save_organisation),
        )
        .route(
            "/organisations/{id}/supprimer",
            get(records::confirm_delete_organisation).post(records::delete_organisation),
        )
        .route(
            "/personnes",
            get(records::persons).post(records::create_person),
        )
        .route("/personnes/nouvelle", get(records::new_person))
        .route(
            "/personnes/{id}",
            get(records::person).post(records::save_person),
        )
        .route("/personnes/{id}/export.json", get(records::export_person))
        .route(
            "/personnes/{id}/effacer",
            get(records::confirm_erase_person).post(records::erase_person),
        )
        .route(
            "/personnes/{id}/supprimer",
            get(records::confirm_delete_person).post(records::delete_person),
        )
        .route(
            "/accompagnements",
            get(activities::accompaniments).post(activities::create_accompaniment),
        )
        .route(
            "/accompagnements/nouveau",
            get(activities::new_accompaniment),
        )
        .route(
            "/accompagnements/{id}",
            get(activities::accompaniment).post(activities::save_accompaniment),
        )
        .route(
            "/accompagnements/{id}/supprimer",
            get(activities::confirm_delete_accompaniment).post(activities::delete_accompaniment),
        )
        .route(
            "/evenements",
            get(activities::events).post(activities::create_event),
        )
        .route("/evenements/nouveau", get(activities::new_event))
        .route(
            "/evenements/{id}",
            get(activities::event).post(activities::save_event),
        )
        .route(
            "/evenements/{id}/supprimer",
            get(activities::confirm_delete_event).post(activities::delete_event),
        )
        .route("/rapport", get(report::report))
        .route("/rapport/{year}/{file}", get(report::download))
        .route("/publication", get(report::publication))
        .route("/synchronisation", get(sync_page).post(sync_now))
        .route("/comptes", get(accounts).post(add_account))
        .route("/comptes/{login}/etat", post(account_state))
        .route("/comptes/{login}/mot-de-passe", post(account_password))
        .route("/journal", get(journal))
        .route("/static/htmx.min.js", get(htmx))
        .route("/static/style.css", get(style))
        .fallback(not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn htmx() -> Response {
    asset(HTMX_JS, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

fn error_page(
    status: StatusCode,
    session: Option<&Session>,
    title: &str,
    message: &str,
) -> Response {
    page(status, pages::message(session, title, message))
}

async fn not_found(session: Option<Signed>) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        session.as_ref().map(|s| &s.session),
        "Page introuvable",
        "Cette adresse ne correspond à aucune page du nœud.",
    )
}

/// The status of an operation's failure.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A signed-in request. Anonymous requests are sent to the sign-in page,
/// with the page they asked for to come back to.
struct Signed {
    session: Session,
    token: String,
}

impl FromRequestParts<Web> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Response> {
        let to_login = || {
            let wanted = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let back: String = form_urlencoded::byte_serialize(wanted.as_bytes()).collect();
            Redirect::to(&format!("/connexion?suite={back}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        match web.node.session(&token).await {
            Ok(Some(session)) => Ok(Signed { session, token }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(error_page(
                status_of(e.kind()),
                None,
                "Nœud indisponible",
                &fr::account_error(&e),
            )),
        }
    }
}

impl axum::extract::OptionalFromRequestParts<Web> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        web: &Web,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Signed as FromRequestParts<Web>>::from_request_parts(parts, web)
                .await
                .ok(),
        )
    }
}

/// A form body: the pairs as sent (a key may repeat).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &Bytes) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, key: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Compares two tokens in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The form of a signed-in POST, once its CSRF token is checked.
fn checked_form(signed: &Signed, body: &Bytes) -> Result<Form, Response> {
    let form = Form::parse(body);
    if same_token(&form.get("csrf"), &signed.session.csrf) {
        Ok(form)
    } else {
        Err(expired_form(signed))
    }
}

/// A POST whose CSRF token is missing or wrong.
fn expired_form(signed: &Signed) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        Some(&signed.session),
        "Formulaire expiré",
        "Ce formulaire n'a pas été envoyé depuis une page de ce nœud, ou la session a changé depuis : rien n'a été écrit. Rechargez la page et recommencez.",
    )
}

fn require_editor(signed: &Signed) -> Result<(), Response> {
    if signed.session.staff.role.can_edit() {
        Ok(())
    } else {
        Err(error_page(
            StatusCode::FORBIDDEN,
            Some(&signed.session),
            "Accès en lecture seule",
            "Votre compte permet de consulter, pas de modifier. Demandez un compte de documentaliste à la personne qui administre le nœud.",
        ))
    }
}

/// The form of a POST that changes the catalogue or runs a sync.
fn editor_form(signed: &Signed, body: &Bytes) -> Result<Form, Response> {
    let form = checked_form(signed, body)?;
    require_editor(signed)?;
    Ok(form)
}

/// The form of a POST of the accounts pages.
fn admin_form(signed: &Signed, body: &Bytes) -> Result<Form, Response> {
    let form = checked_form(signed, body)?;
    require_admin(signed)?;
    Ok(form)
}

fn require_admin(signed: &Signed) -> Result<(), Response> {
    if signed.session.staff.role.is_admin() {
        Ok(())
    } else {
        Err(error_page(
            StatusCode::FORBIDDEN,
            Some(&signed.session),
            "Réservé à l'administration",
            "Seul un compte d'administration peut gérer les comptes et lire le journal.",
        ))
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Where to go back after signing in: a page of this site only.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

// ---- Sign-in ---------------------------------------------------------------

#[derive(serde::Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    suite: String,
}

async fn login_form(State(web): State<Web>, Query(q): Query<LoginQuery>) -> Response {
    let token = hex::encode(web.node.random::<16>());
    let mut response = page(
        StatusCode::OK,
        pages::login(&web.node, &token, safe_next(&q.suite), None, ""),
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, 3600, web.secure),
    );
    response
}

async fn login(
    State(web): State<Web>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let next = form.get("suite");
    let next = safe_next(&next).to_owned();
    let login = form.get("identifiant").trim().to_lowercase();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_token(&form.get("csrf"), &expected) {
        return error_page(
            StatusCode::FORBIDDEN,
            None,
            "Formulaire expiré",
            "Ce formulaire de connexion a expiré ou ne vient pas de ce nœud. Rechargez la page de connexion et recommencez.",
        );
    }
    let retry = |message: String, status: StatusCode| {
        page(
            status,
            pages::login(&web.node, &expected, &next, Some(&message), &login),
        )
    };
    let keys = [format!("login:{login}"), format!("ip:{}", peer.ip())];
    if let Some(wait) = keys.iter().filter_map(|k| web.throttle.wait(k)).max() {
        return retry(
            fr::account_error(&AccountError::Throttled(wait)),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    match web.node.sign_in(&login, &form.get("mot_de_passe")).await {
        Ok((token, _)) => {
            for k in &keys {
                web.throttle.succeeded(k);
            }
            let mut response = see_other(&next);
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &token,
                    crate::app::accounts::SESSION_SECONDS,
                    web.secure,
                ),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(LOGIN_COOKIE, "", 0, web.secure),
            );
            response
        }
        Err(e) => {
            if matches!(e, AccountError::WrongCredentials) {
                for k in &keys {
                    web.throttle.failed(k);
                }
            }
            retry(fr::account_error(&e), status_of(e.kind()))
        }
    }
}

async fn logout(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    if let Err(r) = checked_form(&signed, &body) {
        return r;
    }
    let _ = web.node.sign_out(&signed.token).await;
    let mut response = see_other("/connexion");
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, web.secure),
    );
    response
}

// ---- Home and synchronisation ---------------------------------------------

async fn home(State(web): State<Web>, signed: Signed) -> Response {
    let overview = web.node.sync_overview().await;
    let journal = if signed.session.staff.role.is_admin() {
        web.node.journal(8).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let count = web.node.facets().await.map_or(0, |f| f.records);
    let arrivals = web.node.recent_from_others(10).await.unwrap_or_default();
    match overview {
        Ok(o) => page(
            StatusCode::OK,
            pages::home(&web.node, &signed.session, &o, count, &arrivals, &journal),
        ),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Nœud indisponible",
            &fr::sync_error(&e),
        ),
    }
}

async fn sync_page(State(web): State<Web>, signed: Signed) -> Response {
    let reachable = web
        .node
        .hub_reachable(std::time::Duration::from_secs(3))
        .await
        .ok();
    match web.node.sync_overview().await {
        Ok(o) => page(
            StatusCode::OK,
            pages::sync(&web.node, &signed.session, &o, reachable, None),
        ),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Synchronisation",
            &fr::sync_error(&e),
        ),
    }
}

async fn sync_now(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    if let Err(r) = editor_form(&signed, &body) {
        return r;
    }
    let done = web.node.sync_now().await;
    let (reachable, outcome) = match &done {
        Ok(d) => (Some(true), Ok(d.clone())),
        Err(e) => (None, Err(fr::sync_error(e))),
    };
    match web.node.sync_overview().await {
        Ok(o) => page(
            if done.is_ok() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            pages::sync(&web.node, &signed.session, &o, reachable, Some(outcome)),
        ),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Synchronisation",
            &fr::sync_error(&e),
        ),
    }
}

// ---- Catalogue -------------------------------------------------------------

#[derive(serde::Deserialize, Default, Debug, Clone)]
struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    doc_type: String,
    #[serde(default)]
    theme: String,
    #[serde(default)]
    public: String,
    #[serde(default)]
    centre: String,
    #[serde(default)]
    dispo: String,
    #[serde(default)]
    age: String,
    #[serde(default)]
    depuis: String,
    #[serde(default)]
    jusque: String,
    #[serde(default)]
    page: String,
}

/// A number filter of the search form: empty is no filter; anything else
/// must be a whole number within `max`, or the field says why.
fn number_filter<T: TryFrom<u64>>(
    value: &str,
    max: u64,
    what: &str,
    name: &'static str,
    errors: &mut Vec<(&'static str, String)>,
) -> Option<T> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match value.parse::<u64>() {
        Ok(n) if n <= max => T::try_from(n).ok(),
        _ => {
            errors.push((
                name,
                format!("« {value} » n'est pas {what} : ce filtre n'est pas appliqué."),
            ));
            None
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

async fn search(
    State(web): State<Web>,
    signed: Signed,
    Query(params): Query<SearchParams>,
) -> Response {
    let mut errors = Vec::new();
    let age = number_filter(&params.age, 120, "un âge", "age", &mut errors);
    let year_from = number_filter(&params.depuis, 9999, "une année", "depuis", &mut errors);
    let year_to = number_filter(&params.jusque, 9999, "une année", "jusque", &mut errors);
    let q = Search {
        age,
        year_from,
        year_to,
        text: params.q.trim().to_owned(),
        doc_type: non_empty(&params.doc_type),
        theme: non_empty(&params.theme),
        public: non_empty(&params.public),
        centre: non_empty(&params.centre),
        available: params.dispo == "1",
        page: params.page.parse().unwrap_or(1),
        per_page: 20,
    };
    let facets = web.node.facets().await.unwrap_or_default();
    match web.node.search(q).await {
        Ok(results) => page(
            StatusCode::OK,
            pages::search(
                &web.node,
                &signed.session,
                &params,
                &results,
                &facets,
                &errors,
            ),
        ),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Recherche",
            &fr::catalogue_error(&e),
        ),
    }
}

#[derive(serde::Deserialize, Default)]
struct Done {
    #[serde(default)]
    fait: String,
}

async fn record(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let text = match done.fait.as_str() {
        "ajoutee" => Some(
            "Notice ajoutée au catalogue partagé : les autres centres la recevront à la prochaine synchronisation.",
        ),
        "modifiee" => Some(
            "Notice modifiée : les autres centres recevront la modification à la prochaine synchronisation.",
        ),
        "inchangee" => Some("Aucune modification : la notice est restée telle quelle."),
        "exemplaires" => Some("Les exemplaires du centre sont à jour."),
        "avis" => Some("L'avis du centre est à jour."),
        "conflit" => Some("Valeur gardée : tous les centres verront celle-ci."),
        "exemplaire" => Some(
            "Exemplaire ajouté : les autres centres verront le nombre d'exemplaires et la disponibilité à la prochaine synchronisation.",
        ),
        "reservation" => Some("Réservation ajoutée à la file."),
        "reservation-annulee" => Some("Réservation annulée."),
        "fusion" => {
            Some("Doublons fusionnés : les exemplaires de chaque centre restent sur cette notice.")
        }
        _ => None,
    };
    let notice = text.map(|t| pages::Notice::Done(t.to_owned()));
    record_page(&web, &signed, &id, StatusCode::OK, notice).await
}

/// The record page, with a notice above it (saved, or what went wrong).
async fn record_page(
    web: &Web,
    signed: &Signed,
    id: &str,
    status: StatusCode,
    notice: Option<pages::Notice>,
) -> Response {
    match web.node.record(id).await {
        Ok(view) => {
            let copies = web.node.copies(id).await.unwrap_or_default();
            let queue = web.node.reservations(id).await.unwrap_or_default();
            let choices = web.node.choices().await.unwrap_or_default();
            let desk = maud::html! {
                (circulation::record_section(signed, id, &copies, &queue))
                (records::datalists(&choices))
            };
            page(
                status,
                pages::record(
                    &web.node,
                    &signed.session,
                    &view,
                    notice.as_ref(),
                    desk,
                    !copies.is_empty(),
                ),
            )
        }
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Notice introuvable",
            &fr::catalogue_error(&e),
        ),
    }
}

fn record_form(form: &Form) -> RecordForm {
    RecordForm {
        title: form.get("title"),
        doc_type: form.get("doc_type"),
        creator: form.get("creator"),
        publisher: form.get("publisher"),
        year: form.get("year"),
        themes: form.all("themes"),
        publics: form.get("publics"),
        age_min: form.get("age_min"),
        age_max: form.get("age_max"),
        description: form.get("description"),
        conditions: form.get("conditions"),
        languages: form.get("languages"),
        links: form.get("links"),
    }
}

async fn new_record_form(State(web): State<Web>, signed: Signed) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    page(
        StatusCode::OK,
        pages::record_form(
            &web.node,
            &signed.session,
            None,
            &RecordForm::default(),
            None,
            &[],
            None,
        ),
    )
}

async fn create_record(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    let form = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let fields = record_form(&form);
    let holding = match form.get("copies").trim() {
        "" | "0" => None,
        _ => match (HoldingForm {
            copies: form.get("copies"),
            shelf_mark: form.get("shelf_mark"),
            availability: "available".into(),
        })
        .parse()
        {
            Ok(h) => Some(h),
            Err(errors) => {
                return invalid_form(&web, &signed, None, &fields, None, errors, None);
            }
        },
    };
    match web
        .node
        .add_record(&fields, holding, Some(&signed.session.staff.login))
        .await
    {
        Ok(id) => see_other(&format!("/notices/{id}?fait=ajoutee")),
        Err(CatalogueError::Invalid(errors)) => {
            invalid_form(&web, &signed, None, &fields, None, errors, None)
        }
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Notice non ajoutée",
            &fr::catalogue_error(&e),
        ),
    }
}

fn invalid_form(
    web: &Web,
    signed: &Signed,
    id: Option<&str>,
    form: &RecordForm,
    base: Option<&RecordForm>,
    errors: Vec<FieldError>,
    message: Option<String>,
) -> Response {
    page(
        StatusCode::UNPROCESSABLE_ENTITY,
        pages::record_form(
            &web.node,
            &signed.session,
            id,
            form,
            base,
            &errors,
            message.as_deref(),
        ),
    )
}

async fn edit_record_form(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_editor(&signed) {
        return r;
    }
    match web.node.record(&id).await {
        Ok(view) => {
            let form = RecordForm::from_fields(&view.record.fields);
            page(
                StatusCode::OK,
                pages::record_form(
                    &web.node,
                    &signed.session,
                    Some(view.record.id.as_str()),
                    &form,
                    Some(&form),
                    &[],
                    None,
                ),
            )
        }
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Notice introuvable",
            &fr::catalogue_error(&e),
        ),
    }
}

async fn save_record(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let fields = record_form(&form);
    let base: RecordForm = serde_json::from_str(&form.get("base")).unwrap_or_default();
    match web
        .node
        .edit_record(&id, &base, &fields, Some(&signed.session.staff.login))
        .await
    {
        Ok(_) => see_other(&format!("/notices/{id}?fait=modifiee")),
        Err(CatalogueError::NoChange) => see_other(&format!("/notices/{id}?fait=inchangee")),
        Err(CatalogueError::Invalid(errors)) => {
            invalid_form(&web, &signed, Some(&id), &fields, Some(&base), errors, None)
        }
        Err(e @ CatalogueError::Changed(_)) => {
            // Show the record as it is now, with the person's text kept in
            // the form so nothing typed is lost.
            let current = web
                .node
                .record(&id)
                .await
                .map(|v| RecordForm::from_fields(&v.record.fields))
                .unwrap_or_default();
            page(
                StatusCode::CONFLICT,
                pages::record_form(
                    &web.node,
                    &signed.session,
                    Some(&id),
                    &RecordForm {
                        description: current.description.clone(),
                        ..fields
                    },
                    Some(&current),
                    &[],
                    Some(&format!(
                        "{} Votre texte était : « {} »",
                        fr::catalogue_error(&e),
                        form.get("description")
                    )),
                ),
            )
        }
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Notice non modifiée",
            &fr::catalogue_error(&e),
        ),
    }
}

async fn save_holding(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let holding = HoldingForm {
        copies: form.get("copies"),
        shelf_mark: form.get("shelf_mark"),
        availability: form.get("availability"),
    };
    let result = match holding.parse() {
        Ok(h) => {
            web.node
                .set_holding(&id, h, Some(&signed.session.staff.login))
                .await
        }
        Err(errors) => Err(CatalogueError::Invalid(errors)),
    };
    after_record_write(&web, &signed, &id, result, "exemplaires").await
}

async fn save_review(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let review = ReviewForm {
        role: form.get("role"),
        rating: form.get("rating"),
        text: form.get("text"),
    };
    let result = match review.parse() {
        Ok((role, review)) => {
            web.node
                .set_review(&id, role, review, Some(&signed.session.staff.login))
                .await
        }
        Err(errors) => Err(CatalogueError::Invalid(errors)),
    };
    after_record_write(&web, &signed, &id, result, "avis").await
}

async fn keep_value(
    State(web): State<Web>,
    signed: Signed,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let result = web
        .node
        .keep_value(
            &id,
            &form.get("field"),
            &form.get("value"),
            Some(&signed.session.staff.login),
        )
        .await;
    after_record_write(&web, &signed, &id, result, "conflit").await
}

/// After a write from the record page: back to it, saying what happened.
async fn after_record_write(
    web: &Web,
    signed: &Signed,
    id: &str,
    result: Result<(), CatalogueError>,
    what: &str,
) -> Response {
    match result {
        Ok(()) => see_other(&format!("/notices/{id}?fait={what}")),
        Err(e) => {
            let status = status_of(e.kind());
            let fields = match &e {
                CatalogueError::Invalid(errors) => errors.clone(),
                _ => Vec::new(),
            };
            record_page(
                web,
                signed,
                id,
                status,
                Some(pages::Notice::Error(fr::catalogue_error(&e), fields)),
            )
            .await
        }
    }
}

async fn duplicates(State(web): State<Web>, signed: Signed) -> Response {
    match web.node.duplicates().await {
        Ok(pairs) => page(
            StatusCode::OK,
            pages::duplicates(&web.node, &signed.session, &pairs, None),
        ),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Doublons",
            &fr::catalogue_error(&e),
        ),
    }
}

async fn merge(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    let form = match editor_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match web
        .node
        .merge(
            &form.get("a"),
            &form.get("b"),
            Some(&signed.session.staff.login),
        )
        .await
    {
        Ok(plan) => see_other(&format!("/notices/{}?fait=fusion", plan.survivor)),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Fusion impossible",
            &fr::catalogue_error(&e),
        ),
    }
}

// ---- Accounts --------------------------------------------------------------

async fn accounts(State(web): State<Web>, signed: Signed) -> Response {
    accounts_page(&web, &signed, StatusCode::OK, None).await
}

async fn accounts_page(
    web: &Web,
    signed: &Signed,
    status: StatusCode,
    notice: Option<pages::Notice>,
) -> Response {
    if let Err(r) = require_admin(signed) {
        return r;
    }
    match web.node.users().await {
        Ok(users) => page(
            status,
            pages::accounts(&web.node, &signed.session, &users, notice.as_ref()),
        ),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Comptes",
            &fr::account_error(&e),
        ),
    }
}

async fn add_account(State(web): State<Web>, signed: Signed, body: Bytes) -> Response {
    let form = match admin_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let login = form.get("identifiant").trim().to_lowercase();
    let Some(role) = Role::from_code(&form.get("role")) else {
        return accounts_page(
            &web,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(pages::Notice::Error(
                "Choisissez un rôle dans la liste.".into(),
                Vec::new(),
            )),
        )
        .await;
    };
    let result = web
        .node
        .add_user(
            &login,
            role,
            &form.get("mot_de_passe"),
            Some(&signed.session.staff.login),
        )
        .await;
    account_result(
        &web,
        &signed,
        result.map(|_| format!("Compte « {login} » créé ({}).", fr::role_label(role))),
    )
    .await
}

async fn account_result(
    web: &Web,
    signed: &Signed,
    result: Result<String, AccountError>,
) -> Response {
    match result {
        Ok(done) => {
            accounts_page(web, signed, StatusCode::OK, Some(pages::Notice::Done(done))).await
        }
        Err(e) => {
            accounts_page(
                web,
                signed,
                status_of(e.kind()),
                Some(pages::Notice::Error(fr::account_error(&e), Vec::new())),
            )
            .await
        }
    }
}

async fn account_state(
    State(web): State<Web>,
    signed: Signed,
    Path(login): Path<String>,
    body: Bytes,
) -> Response {
    let form = match admin_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let active = form.get("actif") == "1";
    let result = web
        .node
        .set_user_active(&login, active, Some(&signed.session.staff.login))
        .await
        .map(|()| {
            if active {
                format!("Compte « {login} » réactivé.")
            } else {
                format!("Compte « {login} » désactivé : ses sessions sont fermées.")
            }
        });
    account_result(&web, &signed, result).await
}

async fn account_password(
    State(web): State<Web>,
    signed: Signed,
    Path(login): Path<String>,
    body: Bytes,
) -> Response {
    let form = match admin_form(&signed, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let result = web
        .node
        .reset_password(
            &login,
            &form.get("mot_de_passe"),
            Some(&signed.session.staff.login),
        )
        .await
        .map(|()| {
            format!("Nouveau mot de passe de « {login} » en place : ses sessions sont fermées.")
        });
    account_result(&web, &signed, result).await
}

async fn journal(State(web): State<Web>, signed: Signed) -> Response {
    if let Err(r) = require_admin(&signed) {
        return r;
    }
    match web.node.journal(200).await {
        Ok(lines) => page(
            StatusCode::OK,
            pages::journal(&web.node, &signed.session, &lines),
        ),
        Err(e) => error_page(
            status_of(e.kind()),
            Some(&signed.session),
            "Journal",
            &fr::account_error(&e),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/catalogue?q=jeu"), "/catalogue?q=jeu");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
        assert_eq!(safe_next(""), "/");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abcd", "abce"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", "a"));
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; clps_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
