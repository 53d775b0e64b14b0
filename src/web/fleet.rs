//! The fleet in the web view, when `[fleet] postgres` is configured: a
//! message's journey across hosts (`trace --fleet`) and the figures of
//! every host (`stats --fleet`), as a page (`/fleet`) and as JSON
//! (`/api/v1/fleet/trace`, `/api/v1/fleet/stats`), the same answers as the
//! CLI's. Read-only: the queries only SELECT.

use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::mask::Masking;
use super::reply::{answer, page};
use super::{App, WebError, bounded};
use crate::fleet::{FleetError, pg};
use crate::query::fleet::{stats, trace};
use crate::query::trace::Target;

/// The fleet's PostgreSQL as the web view reaches it.
pub(super) struct FleetView {
    pool: deadpool_postgres::Pool,
    timeout: Duration,
}

impl FleetView {
    /// A pool for `config` (nothing connects until a request asks).
    pub(super) fn new(config: &crate::config::FleetConfig) -> Result<FleetView, FleetError> {
        Ok(FleetView {
            pool: pg::pool(config)?,
            timeout: config.timeout,
        })
    }
}

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/fleet", get(fleet_page))
        .route("/api/v1/fleet/trace", get(trace_api))
        .route("/api/v1/fleet/stats", get(stats_api))
}

impl From<FleetError> for WebError {
    fn from(err: FleetError) -> Self {
        match err {
            FleetError::Argument(message) => WebError::BadRequest(message),
            other => WebError::Unavailable(other.to_string()),
        }
    }
}

/// `?q=` (a trace), or `?host=&since=&until=` (the figures).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct FleetQuery {
    pub q: Option<String>,
    pub host: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

impl App {
    /// Runs `ask` with a checked connection to the fleet's PostgreSQL,
    /// within `[fleet] timeout` and the view's bound on queries at once.
    async fn ask_fleet<T, F>(&self, ask: F) -> Result<T, WebError>
    where
        F: AsyncFnOnce(&tokio_postgres::Client) -> Result<T, FleetError>,
    {
        let Some(fleet) = &self.fleet else {
            return Err(WebError::NotFound(
                "no fleet database: set [fleet] postgres in the configuration to see every \
                 host here"
                    .to_owned(),
            ));
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| WebError::Unavailable("the server is stopping".to_owned()))?;
        Ok(pg::bounded(fleet.timeout, async {
            let client = fleet.pool.get().await?;
            pg::check_schema(&client).await?;
            ask(&client).await
        })
        .await?)
    }
}

/// The journeys `q` names, as `trace --fleet --json` prints them.
async fn journeys(
    app: &App,
    query: &FleetQuery,
    masking: Masking,
) -> Result<Vec<trace::Journey>, WebError> {
    let Some(text) = bounded("q", query.q.as_deref())? else {
        return Err(WebError::BadRequest(
            "give an Exim id, an address, a Message-ID header or an IP address".to_owned(),
        ));
    };
    let target = Target::parse(text)?;
    let found = app
        .ask_fleet(async |client| trace::find(client, &target).await)
        .await?;
    if found.is_empty() {
        return Err(WebError::NotFound(format!(
            "no message in the fleet matches {text:?}"
        )));
    }
    Ok(masking.apply(found))
}

/// Every host's figures (or one host's), as `stats --fleet --json`.
async fn figures(app: &App, query: &FleetQuery) -> Result<stats::FleetStats, WebError> {
    let host = bounded("host", query.host.as_deref())?.map(str::to_owned);
    let since = bounded("since", query.since.as_deref())?.map(str::to_owned);
    let until = bounded("until", query.until.as_deref())?.map(str::to_owned);
    app.ask_fleet(async |client| {
        let host = host.as_deref();
        let (since, until) =
            stats::window(client, host, since.as_deref(), until.as_deref()).await?;
        stats::compute(client, host, since, until).await
    })
    .await
}

async fn trace_api(
    State(app): State<App>,
    masking: Masking,
    Query(query): Query<FleetQuery>,
) -> Response {
    answer(journeys(&app, &query, masking).await)
}

async fn stats_api(State(app): State<App>, Query(query): Query<FleetQuery>) -> Response {
    answer(figures(&app, &query).await)
}

async fn fleet_page(
    State(app): State<App>,
    masking: Masking,
    Query(query): Query<FleetQuery>,
) -> Response {
    let form = html! {
        form.query method="get" action="/fleet" {
            label { "Exim id, address, Message-ID or IP, on any host"
                input name="q" value=[query.q.as_deref()] autofocus placeholder="1xWZzS-0001uN-1x, alice@example.com, 192.0.2.1"; }
            button type="submit" { "Trace" }
        }
    };
    let asked = query.q.as_deref().is_some_and(|q| !q.trim().is_empty());
    let answer: Result<Markup, WebError> = if asked {
        journeys(&app, &query, masking)
            .await
            .map(|found| journeys_html(&found))
    } else {
        figures(&app, &query)
            .await
            .map(|report| figures_html(&report))
    };
    let code = answer.as_ref().err().map(WebError::status);
    let body = match answer {
        Ok(markup) => markup,
        Err(error) => html! { p.error { (error.message()) } },
    };
    let mut response = page(
        "/fleet",
        "Fleet",
        html! { h1 { "The fleet" } (form) (body) },
    );
    if let Some(code) = code {
        *response.status_mut() = code;
    }
    response
}

fn journeys_html(journeys: &[trace::Journey]) -> Markup {
    html! {
        p.muted { (journeys.len()) " journey(s)" }
        @for (n, journey) in journeys.iter().enumerate() {
            section.journey {
                h2 {
                    "Journey " (n + 1) ": " (journey.messages.len()) " message(s) on " (journey.hosts.join(", "))
                }
                @if !journey.header_message_ids.is_empty() {
                    p.muted { "Message-ID " (journey.header_message_ids.join(", ")) }
                }
                @if !journey.hops.is_empty() {
                    ul {
                        @for hop in &journey.hops {
                            li { (hop.from.host) " " code { (hop.from.exim_id) } " → " (hop.to.host) " " code { (hop.to.exim_id) } " (" (hop.by) ")" }
                        }
                    }
                }
                table.log {
                    thead { tr { th { "Host" } th { "Line" } } }
                    tbody {
                        @for line in &journey.lines {
                            tr { td { (line.host) } td { code { (line.text) } } }
                        }
                    }
                }
            }
        }
    }
}

fn figures_html(report: &stats::FleetStats) -> Markup {
    let columns: Vec<(&str, &stats::Figures)> = report
        .hosts
        .iter()
        .map(|(host, figures)| (host.as_str(), figures))
        .chain(std::iter::once(("total", &report.total)))
        .collect();
    html! {
        @if report.hosts.is_empty() {
            p.muted { "No host has shipped any line yet." }
        } @else {
            table {
                thead { tr { th { "" } @for (name, _) in &columns { th.num { (name) } } } }
                tbody {
                    @for (label, value) in stats::ROWS {
                        tr { td { (label) } @for (_, figures) in &columns { td.num { (value(figures)) } } }
                    }
                }
            }
        }
    }
}
