//! `exim-pilot serve`: the read-only web view. Pages rendered on the
//! server (maud, checked at compile time) and a JSON API under
//! `/api/v1/` with the CLI's `--json` shapes, over the same queries as the
//! CLI. Every request opens the database read-only; nothing here writes.
//!
//! Every asset is in the binary (mail hosts often have no internet), no
//! script is inline, and a strict Content-Security-Policy says so; the
//! pages work without JavaScript. Inputs are bounded: the length of each
//! parameter, the time window, the rows returned.
//!
//! ```text
//! browser ──► axum router ──► pages.rs (HTML) ─┐
//!                        └──► api.rs (JSON)   ─┴─► query::* on a read-only connection
//! ```

mod api;
mod asker;
mod auth;
mod cache;
mod chart;
#[cfg(feature = "fleet")]
mod fleet;
mod flow_page;
mod live;
mod mask;
mod pages;
mod queue;
mod queue_act;
mod reply;
mod server;
mod slots;
mod turns;

pub use auth::hash_password;
pub use server::MAX_CONNECTIONS;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use deadpool_sqlite::rusqlite::Connection;
use serde::Deserialize;

use crate::query::{self, QueryError, Window};

/// What `serve` needs besides its listener.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The database, opened read-only per request.
    pub database: PathBuf,
    /// `[web]`: who may look.
    pub config: crate::config::WebConfig,
    /// `[fleet]`, for the fleet's pages.
    pub fleet: Option<crate::config::FleetConfig>,
    /// `[queue]`: the queue helper's socket.
    pub queue: crate::config::QueueConfig,
}

/// Longest value of any query parameter, in bytes.
pub const MAX_PARAMETER_BYTES: usize = 512;

/// Longest time window a page or the API reads, when both ends are given.
pub const MAX_WINDOW_DAYS: i64 = 400;

/// Requests answered at once; more wait for one of these (bounding the
/// database connections and threads).
const CONCURRENT_QUERIES: usize = 8;

/// The Content-Security-Policy of every response: nothing but this
/// origin's own scripts, styles and images; no inline anything.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Shared by every handler.
#[derive(Clone)]
struct App {
    database: Arc<PathBuf>,
    permits: Arc<tokio::sync::Semaphore>,
    auth: Arc<auth::Auth>,
    /// Live streams open, bounded in all, per user and per address.
    streams: Arc<tokio::sync::Semaphore>,
    streams_per_user: Arc<slots::Slots<String>>,
    streams_per_address: Arc<slots::Slots<std::net::IpAddr>>,
    /// True once the server is stopping: live streams end, or the
    /// graceful shutdown would wait for them forever.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// Answers kept for a few seconds.
    cache: Arc<cache::Cache>,
    /// Room for new answers being made or sent, in KiB.
    answer_bytes: Arc<tokio::sync::Semaphore>,
    /// Turns for heavy questions (statistics, domains, patterns).
    heavy: Arc<tokio::sync::Semaphore>,
    /// The fleet's PostgreSQL, when configured.
    #[cfg(feature = "fleet")]
    fleet: Option<Arc<fleet::FleetView>>,
    /// `[queue]`: where the queue helper listens.
    queue: Arc<crate::config::QueueConfig>,
    /// Form and confirmation tokens of queue actions, and their limits.
    tokens: Arc<auth::Tokens>,
}

/// Why a request could not be answered, with its status.
#[derive(Debug)]
pub(crate) enum WebError {
    /// The request is wrong: 400, with what to change.
    BadRequest(String),
    /// Nothing matches: 404.
    NotFound(String),
    /// The database cannot answer: 503.
    Unavailable(String),
    /// Not allowed, or not now: the status says which.
    Refused(StatusCode, String),
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Refused(status, _) => *status,
        }
    }

    fn message(&self) -> &str {
        match self {
            WebError::BadRequest(m)
            | WebError::NotFound(m)
            | WebError::Unavailable(m)
            | WebError::Refused(_, m) => m,
        }
    }
}

impl From<QueryError> for WebError {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::BadArgument(message) => WebError::BadRequest(message),
            other => WebError::Unavailable(other.to_string()),
        }
    }
}

impl App {
    /// Runs `ask` on a read-only connection on a blocking thread.
    async fn ask<T, F>(&self, ask: F) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, WebError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| WebError::Unavailable("the server is stopping".to_owned()))?;
        let database = Arc::clone(&self.database);
        tokio::task::spawn_blocking(move || {
            let conn = query::open(&database)?;
            ask(&conn)
        })
        .await
        .map_err(|err| WebError::Unavailable(format!("the query failed: {err}")))?
    }
}

impl App {
    /// The client's address: the TCP peer, or the address the configured
    /// reverse proxy puts last in `X-Forwarded-For` when the peer is that
    /// proxy (any other client's header is ignored).
    fn client_ip(&self, peer: std::net::SocketAddr, headers: &axum::http::HeaderMap) -> String {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .map(str::trim)
            .filter(|value| value.parse::<std::net::IpAddr>().is_ok());
        match forwarded {
            Some(client) if self.auth.is_proxy(peer.ip()) => client.to_owned(),
            _ => peer.ip().to_string(),
        }
    }
}

/// The time window of a request, as text (the CLI's forms).
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
pub(crate) struct WindowQuery {
    pub since: Option<String>,
    pub until: Option<String>,
}

impl WindowQuery {
    /// The window, checked: each end's length, and at most
    /// [`MAX_WINDOW_DAYS`] between two given ends.
    fn window(&self, conn: &Connection) -> Result<Window, WebError> {
        let since = bounded("since", self.since.as_deref())?;
        let until = bounded("until", self.until.as_deref())?;
        let window = Window::parse(conn, since, until)?;
        if let (Some(since), Some(until)) = (window.since, window.until)
            && until - since > MAX_WINDOW_DAYS * 86_400_000
        {
            return Err(WebError::BadRequest(format!(
                "the window is {} days long; ask for at most {MAX_WINDOW_DAYS} days",
                (until - since) / 86_400_000
            )));
        }
        Ok(window)
    }
}

/// A parameter's value, `None` when empty, refused when longer than
/// [`MAX_PARAMETER_BYTES`].
pub(crate) fn bounded<'a>(name: &str, value: Option<&'a str>) -> Result<Option<&'a str>, WebError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) if value.len() > MAX_PARAMETER_BYTES => Err(WebError::BadRequest(format!(
            "{name} is {} bytes long; at most {MAX_PARAMETER_BYTES} are read",
            value.len()
        ))),
        Some(value) => Ok(Some(value)),
    }
}

/// `/fleet` in a build without the fleet: says so.
#[cfg(not(feature = "fleet"))]
async fn fleet_not_built() -> Response {
    reply::error_page(&WebError::NotFound(
        "this exim-pilot was built without the `fleet` feature: no fleet pages".to_owned(),
    ))
}

/// The router: pages, the API, the embedded assets, and the headers every
/// response carries.
fn router(settings: &WebSettings, stopping: tokio::sync::watch::Receiver<bool>) -> Router {
    #[cfg(feature = "fleet")]
    let fleet = settings
        .fleet
        .as_ref()
        .and_then(|config| match fleet::FleetView::new(config) {
            Ok(view) => Some(Arc::new(view)),
            Err(err) => {
                tracing::error!(error = %err, "the fleet pages are off: {err}");
                None
            }
        });
    let app = App {
        database: Arc::new(settings.database.clone()),
        permits: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_QUERIES)),
        auth: Arc::new(auth::Auth::new(settings.config.clone())),
        streams: Arc::new(tokio::sync::Semaphore::new(live::MAX_STREAMS)),
        streams_per_user: slots::Slots::new(live::STREAMS_PER_CLIENT),
        streams_per_address: slots::Slots::new(live::STREAMS_PER_CLIENT),
        stopping,
        cache: Arc::new(cache::Cache::default()),
        answer_bytes: turns::in_flight_budget(),
        heavy: turns::heavy_slots(),
        #[cfg(feature = "fleet")]
        fleet,
        queue: Arc::new(settings.queue.clone()),
        tokens: Arc::new(auth::Tokens::new()),
    };
    #[cfg(feature = "fleet")]
    let fleet_routes = fleet::routes();
    #[cfg(not(feature = "fleet"))]
    let fleet_routes = Router::new().route("/fleet", get(fleet_not_built));
    Router::new()
        .merge(pages::routes())
        .merge(flow_page::routes())
        .merge(api::routes())
        .merge(fleet_routes)
        .merge(queue::routes())
        .merge(queue_act::routes())
        .route("/live", get(live::page))
        .route("/api/v1/live", get(live::events))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", axum::routing::post(auth::logout))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .fallback(not_found)
        // Inside the guard: only signed-in requests reach the cache, and
        // a viewer's answer is masked after it.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            cache::answer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::guard,
        ))
        .with_state(app)
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
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
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/style.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/app.js"),
    )
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let error = WebError::NotFound(format!("no page at {}", uri.path()));
    if uri.path().starts_with("/api/") {
        reply::error_response(&error)
    } else {
        reply::error_page(&error)
    }
}

/// Serves on `listener` until SIGTERM or SIGINT.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: WebSettings,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(
        address = %address,
        database = %settings.database.display(),
        "serving the web view on http://{address}/ from {} (read-only)",
        settings.database.display()
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let proxies = match &settings.config.auth {
        crate::config::WebAuth::Proxy { addresses, .. } => addresses.clone(),
        _ => Vec::new(),
    };
    server::serve(
        listener,
        router(&settings, stopping),
        move |peer| proxies.contains(&peer),
        async move {
            stop_requested().await;
            let _ = stop.send(true);
        },
    )
    .await;
    tracing::info!("stopped serving the web view");
    Ok(())
}

async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
