//! The committee dashboard: merged statistics in French, over HTTPS with
//! mutual TLS, for committee identities only.
//!
//! It listens on its own address (`dashboard_listen`) with the federation CA
//! and the hub's certificate, exactly like the gRPC listener: the handshake
//! refuses a client without a certificate of the CA, and `tls::accept_loop`
//! extracts the `Identity` once. A middleware then lets only
//! `Identity::Committee` through; a centre gets a 403 page. The dashboard is
//! read-only: every route is a GET that reads the store through
//! `stats_report`, and nothing here writes a document.
//!
//! Pages are rendered by `pages` (plain `format!` with an escape helper, and
//! inline SVG charts from `svg`): no template engine and no JavaScript.

mod pages;
mod svg;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::serve::IncomingStream;
use clps_model::CentreId;
use clps_model::stats::Dimension;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::stats_report::{self, ReportError};
use crate::store::Store;
use crate::tls::{self, Authenticated, ConnInfo};

pub use pages::escape;

/// What every request handler reads.
#[derive(Clone)]
struct Dashboard {
    store: Store,
    /// Small-cell rule for per-centre cells; `None`: off.
    small_cells: Option<u64>,
}

/// The authenticated connections, as axum's listener.
struct TlsListener {
    incoming: mpsc::Receiver<Result<Authenticated, io::Error>>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = Authenticated;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Authenticated, SocketAddr) {
        loop {
            match self.incoming.recv().await {
                Some(Ok(conn)) => {
                    let remote = tonic::transport::server::Connected::connect_info(&conn).remote;
                    return (conn, remote);
                }
                Some(Err(_)) => continue,
                // The accept loop stopped (shutdown): axum's graceful
                // shutdown ends the server, so just never yield again.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> ConnInfo {
        tonic::transport::server::Connected::connect_info(stream.io())
    }
}

/// Binds the dashboard listener; the returned closure starts serving until
/// `shutdown`.
pub async fn bind(
    addr: SocketAddr,
    tls_config: Arc<rustls::ServerConfig>,
    store: Store,
    small_cells: Option<u64>,
    limits: tls::AcceptLimits,
) -> io::Result<(
    SocketAddr,
    impl FnOnce(watch::Receiver<bool>) -> JoinHandle<io::Result<()>>,
)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let start = move |shutdown: watch::Receiver<bool>| {
        // Its own counters: dashboard traffic is not sync traffic.
        let incoming = tls::accept_loop(
            listener,
            tls_config,
            Arc::new(Metrics::default()),
            limits,
            shutdown.clone(),
        );
        let app = router(Dashboard { store, small_cells });
        let mut stop = shutdown;
        tokio::spawn(async move {
            axum::serve(
                TlsListener { incoming, local },
                app.into_make_service_with_connect_info::<ConnInfo>(),
            )
            .with_graceful_shutdown(async move {
                crate::server::stopped(&mut stop).await;
            })
            .await
        })
    };
    Ok((local, start))
}

fn router(state: Dashboard) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/table", get(table))
        .route("/years", get(years))
        .route("/stats.csv", get(csv))
        .fallback(not_found)
        .layer(middleware::from_fn(committee_only))
        .with_state(state)
}

/// Lets committee identities through; anyone else gets a 403 page.
async fn committee_only(request: Request, next: Next) -> Response {
    let identity = request
        .extensions()
        .get::<ConnectInfo<ConnInfo>>()
        .map(|info| info.0.identity.clone());
    match identity {
        Some(Identity::Committee(_)) => next.run(request).await,
        Some(identity) => {
            tracing::warn!(%identity, "dashboard refused to a non-committee identity");
            error_page(
                StatusCode::FORBIDDEN,
                "Accès refusé",
                "Le tableau de bord est réservé aux comités inter-CLPS : ce certificat est celui d'un centre, pas d'un comité.",
            )
        }
        None => error_page(
            StatusCode::FORBIDDEN,
            "Accès refusé",
            "Connexion non authentifiée : un certificat de comité est nécessaire.",
        ),
    }
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    (status, Html(pages::message_page(title, message))).into_response()
}

async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Page introuvable",
        "Cette page n'existe pas. Revenez à la vue d'ensemble.",
    )
}

/// Query parameters, all optional and parsed by hand so that a bad value
/// gets a French answer.
#[derive(Debug, Default, serde::Deserialize)]
struct Params {
    year: Option<String>,
    by: Option<String>,
    centre: Option<String>,
    per_centre: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error("année invalide « {0} »")]
    Year(String),
    #[error("{0}")]
    Dimension(#[from] clps_model::stats::UnknownDimension),
    #[error("centre inconnu « {0} »")]
    Centre(String),
    #[error("lecture des statistiques impossible")]
    Report(#[from] ReportError),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Report(e) => {
                tracing::error!(error = %e, "dashboard cannot read the statistics");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Erreur du hub",
                    "Les statistiques ne peuvent pas être lues pour le moment.",
                )
            }
            other => error_page(
                StatusCode::BAD_REQUEST,
                "Requête invalide",
                &other.to_string(),
            ),
        }
    }
}

struct Parsed {
    year: Option<i32>,
    by: Dimension,
    centre: Option<String>,
    per_centre: bool,
}

fn parse(params: &Params) -> Result<Parsed, PageError> {
    let year = match params.year.as_deref().filter(|y| !y.is_empty()) {
        Some(y) => Some(
            y.parse::<i32>()
                .ok()
                .filter(|y| (1900..=9999).contains(y))
                .ok_or_else(|| PageError::Year(y.to_owned()))?,
        ),
        None => None,
    };
    let by = match params.by.as_deref().filter(|b| !b.is_empty()) {
        Some(b) => b.parse()?,
        None => Dimension::Sector,
    };
    let centre = match params.centre.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            CentreId::new(c)
                .map_err(|_| PageError::Centre(c.to_owned()))?
                .to_string(),
        ),
        None => None,
    };
    let per_centre = matches!(
        params.per_centre.as_deref(),
        Some("1" | "true" | "on" | "oui")
    );
    Ok(Parsed {
        year,
        by,
        centre,
        per_centre,
    })
}

/// The latest year any centre published requests for, if any.
fn default_year(years: &[i32]) -> Option<i32> {
    years.last().copied()
}

async fn overview(
    State(state): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let p = parse(&params)?;
    let (centres, computed_from) = stats_report::load_figures(&state.store).await?;
    let years = pages::years_of(&centres);
    let year = p.year.or_else(|| default_year(&years));
    Ok(Html(pages::overview_page(
        &centres,
        &computed_from,
        &years,
        year,
        state.small_cells,
    )))
}

async fn table(
    State(state): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let p = parse(&params)?;
    let (centres, _) = stats_report::load_figures(&state.store).await?;
    let years = pages::years_of(&centres);
    let Some(year) = p.year.or_else(|| default_year(&years)) else {
        return Ok(Html(pages::no_data_page()));
    };
    let report = stats_report::report(&state.store, year, p.by).await?;
    Ok(Html(pages::table_page(
        &report,
        &years,
        p.centre.as_deref(),
        state.small_cells,
    )))
}

async fn years(
    State(state): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Html<String>, PageError> {
    let p = parse(&params)?;
    let (centres, _) = stats_report::load_figures(&state.store).await?;
    Ok(Html(pages::years_page(&centres, p.by, state.small_cells)))
}

async fn csv(
    State(state): State<Dashboard>,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    let p = parse(&params)?;
    let year = match p.year {
        Some(y) => y,
        None => {
            let (centres, _) = stats_report::load_figures(&state.store).await?;
            match default_year(&pages::years_of(&centres)) {
                Some(y) => y,
                None => {
                    return Ok(error_page(
                        StatusCode::NOT_FOUND,
                        "Aucune donnée",
                        "Aucun centre n'a encore publié de statistiques.",
                    ));
                }
            }
        }
    };
    let report = stats_report::report(&state.store, year, p.by).await?;
    let body = stats_report::to_csv(
        &report,
        p.centre.as_deref(),
        p.per_centre && p.centre.is_none(),
        state.small_cells,
    );
    let scope = match (&p.centre, p.per_centre) {
        (Some(c), _) => c.clone(),
        (None, true) => "par-centre".to_owned(),
        (None, false) => "reseau".to_owned(),
    };
    let filename = format!("clps-demandes-{year}-{}-{scope}.csv", p.by.arg());
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Heads of the documents a page was computed from, for its footer.
pub(crate) type ComputedFrom = BTreeMap<String, Vec<String>>;
