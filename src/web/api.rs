//! The JSON API under `/api/v1/`: each answer in the shape the CLI's
//! `--json` prints for the same question (`trace`, `stats`, `stuck`,
//! `lines`), plus the flow and health the pages draw.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{App, WebError, WindowQuery, bounded};
use crate::query::{flow, health, lines, stats, stuck, trace};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/search", get(search))
        .route("/api/v1/message/{id}", get(message))
        .route("/api/v1/stats", get(stats_api))
        .route("/api/v1/flow", get(flow_api))
        .route("/api/v1/stuck", get(stuck_api))
        .route("/api/v1/lines", get(lines_api))
        .route("/api/v1/health", get(health_api))
        .route("/api/v1/live", get(super::live::events))
}

/// An error as JSON: `{"error": "..."}` with its status.
pub(super) fn error_response(error: &WebError) -> Response {
    (
        error.status(),
        Json(serde_json::json!({ "error": error.message() })),
    )
        .into_response()
}

pub(super) fn answer<T: serde::Serialize>(result: Result<T, WebError>) -> Response {
    match result {
        Ok(value) => ([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response(),
        Err(error) => error_response(&error),
    }
}

/// `?q=` and a window: what `trace` finds.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    pub q: Option<String>,
    #[serde(flatten)]
    pub window: WindowQuery,
}

/// Messages `q` names, as `trace --json` prints them.
pub(crate) fn find_messages(
    conn: &deadpool_sqlite::rusqlite::Connection,
    query: &SearchQuery,
    related: bool,
) -> Result<Vec<trace::TracedMessage>, WebError> {
    let Some(text) = bounded("q", query.q.as_deref())? else {
        return Err(WebError::BadRequest(
            "give a message id, an address, a Message-ID header, an IP address or a domain to search for".to_owned(),
        ));
    };
    let target = trace::Target::parse(text)?;
    let window = query.window.window(conn)?;
    let messages = trace::find(conn, &target, window, related)?;
    if messages.is_empty() {
        return Err(WebError::NotFound(format!(
            "no message in the database matches {text:?}"
        )));
    }
    Ok(messages)
}

async fn search(State(app): State<App>, Query(query): Query<SearchQuery>) -> Response {
    answer(
        app.ask(move |conn| find_messages(conn, &query, false))
            .await,
    )
}

async fn message(State(app): State<App>, Path(id): Path<String>) -> Response {
    answer(
        app.ask(move |conn| {
            let query = SearchQuery {
                q: Some(id),
                window: WindowQuery::default(),
            };
            find_messages(conn, &query, true)
        })
        .await,
    )
}

async fn stats_api(State(app): State<App>, Query(window): Query<WindowQuery>) -> Response {
    answer(
        app.ask(move |conn| Ok(stats::compute(conn, window.window(conn)?)?))
            .await,
    )
}

async fn flow_api(State(app): State<App>, Query(window): Query<WindowQuery>) -> Response {
    answer(
        app.ask(move |conn| Ok(flow::compute(conn, window.window(conn)?)?))
            .await,
    )
}

/// `?older_than=`: as `stuck --older-than`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StuckQuery {
    pub older_than: Option<String>,
}

/// What `stuck` lists for the query's age (4 hours by default).
pub(crate) fn stuck_rows(
    conn: &deadpool_sqlite::rusqlite::Connection,
    query: &StuckQuery,
) -> Result<Vec<stuck::Stuck>, WebError> {
    let text = bounded("older_than", query.older_than.as_deref())?.unwrap_or("4h");
    let age = humantime::parse_duration(text).map_err(|err| {
        WebError::BadRequest(format!(
            "older_than: not an age such as 4h or 2d ({err}), got {text:?}"
        ))
    })?;
    Ok(stuck::find(
        conn,
        i64::try_from(age.as_millis()).unwrap_or(i64::MAX),
    )?)
}

async fn stuck_api(State(app): State<App>, Query(query): Query<StuckQuery>) -> Response {
    answer(app.ask(move |conn| stuck_rows(conn, &query)).await)
}

/// A window and the filters of `lines`.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct LinesQuery {
    #[serde(flatten)]
    pub window: WindowQuery,
    pub kind: Option<String>,
    pub grep: Option<String>,
}

/// Lines a page shows at most; the API's answer says when there were more.
pub(crate) const MAX_LINES: usize = 2000;

/// One line as `lines --json` prints it, owned.
#[derive(Debug, serde::Serialize)]
pub(crate) struct LineJson {
    pub offset: u64,
    pub source: String,
    pub time: Option<String>,
    pub kind: &'static str,
    pub message_id: Option<String>,
    pub line: String,
    pub truncated: bool,
}

/// The lines of a window, at most [`MAX_LINES`], and whether there were
/// more.
pub(crate) fn read_lines(
    conn: &deadpool_sqlite::rusqlite::Connection,
    query: &LinesQuery,
) -> Result<(Vec<LineJson>, bool), WebError> {
    let window = query.window.window(conn)?;
    if window.since.is_none() && window.until.is_none() {
        return Err(WebError::BadRequest(
            "give a window (since, until): the log is read a window at a time".to_owned(),
        ));
    }
    let filter = lines::LineFilter::parse(
        window,
        bounded("kind", query.kind.as_deref())?,
        bounded("grep", query.grep.as_deref())?,
        None,
    )?;
    let mut found = Vec::new();
    let mut more = false;
    let read = lines::each(conn, &filter, &mut |line| {
        if found.len() == MAX_LINES {
            more = true;
            return Err(std::io::Error::other("enough lines"));
        }
        found.push(LineJson {
            offset: line.offset,
            source: line.source.to_owned(),
            time: line.time.clone(),
            kind: line.kind,
            message_id: line.message_id.clone(),
            line: String::from_utf8_lossy(line.bytes).into_owned(),
            truncated: line.truncated,
        });
        Ok(())
    });
    match read {
        Ok(()) => {}
        Err(crate::query::QueryError::Output(_)) if more => {}
        Err(err) => return Err(err.into()),
    }
    Ok((found, more))
}

async fn lines_api(State(app): State<App>, Query(query): Query<LinesQuery>) -> Response {
    answer(
        app.ask(move |conn| {
            let (lines, more) = read_lines(conn, &query)?;
            Ok(serde_json::json!({ "lines": lines, "more": more }))
        })
        .await,
    )
}

async fn health_api(State(app): State<App>) -> Response {
    answer(app.ask(|conn| Ok(health::read(conn)?)).await)
}
