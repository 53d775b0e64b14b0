//! The JSON API under `/api/v1/`: each answer in the shape the CLI's
//! `--json` prints for the same question (`trace`, `stats`, `stuck`,
//! `lines`), plus the flow and health the pages draw.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::mask::Masking;
use super::reply::{PAGE_LINE_BYTES, SHOWN_LINE_BYTES, answer, shown_line};
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
}

/// `?q=` and a window: what `trace` finds.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    pub q: Option<String>,
    #[serde(flatten)]
    pub window: WindowQuery,
}

/// Messages `q` names, as `trace --json` prints them: their lines within
/// [`PAGE_LINE_BYTES`] between them, each cut to [`SHOWN_LINE_BYTES`],
/// masked for a viewer.
pub(crate) fn find_messages(
    conn: &deadpool_sqlite::rusqlite::Connection,
    query: &SearchQuery,
    related: bool,
    masking: Masking,
) -> Result<Vec<trace::TracedMessage>, WebError> {
    let Some(text) = bounded("q", query.q.as_deref())? else {
        return Err(WebError::BadRequest(
            "give a message id, an address, a Message-ID header, an IP address or a domain to search for".to_owned(),
        ));
    };
    let target = trace::Target::parse(text)?;
    let window = query.window.window(conn)?;
    let mut messages = trace::find(conn, &target, window, related, PAGE_LINE_BYTES)?;
    if messages.is_empty() {
        return Err(WebError::NotFound(format!(
            "no message in the database matches {text:?}"
        )));
    }
    for line in messages.iter_mut().flat_map(|m| m.lines.iter_mut()) {
        if line.len() > SHOWN_LINE_BYTES {
            let mut end = SHOWN_LINE_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str(" [cut: the line goes on]");
        }
    }
    Ok(masking.apply(messages))
}

async fn search(
    State(app): State<App>,
    masking: Masking,
    Query(query): Query<SearchQuery>,
) -> Response {
    answer(
        app.ask(move |conn| find_messages(conn, &query, false, masking))
            .await,
    )
}

async fn message(State(app): State<App>, masking: Masking, Path(id): Path<String>) -> Response {
    answer(
        app.ask(move |conn| {
            let query = SearchQuery {
                q: Some(id),
                window: WindowQuery::default(),
            };
            find_messages(conn, &query, true, masking)
        })
        .await,
    )
}

async fn stats_api(
    State(app): State<App>,
    masking: Masking,
    Query(window): Query<WindowQuery>,
) -> Response {
    answer(
        app.ask(move |conn| Ok(masking.apply(stats::compute(conn, window.window(conn)?)?)))
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

/// What `stuck` lists for the query's age (4 hours by default), masked
/// for a viewer.
pub(crate) fn stuck_rows(
    conn: &deadpool_sqlite::rusqlite::Connection,
    query: &StuckQuery,
    masking: Masking,
) -> Result<stuck::StuckReport, WebError> {
    let text = bounded("older_than", query.older_than.as_deref())?.unwrap_or("4h");
    let age = humantime::parse_duration(text).map_err(|err| {
        WebError::BadRequest(format!(
            "older_than: not an age such as 4h or 2d ({err}), got {text:?}"
        ))
    })?;
    Ok(masking.apply(stuck::find(
        conn,
        i64::try_from(age.as_millis()).unwrap_or(i64::MAX),
    )?))
}

async fn stuck_api(
    State(app): State<App>,
    masking: Masking,
    Query(query): Query<StuckQuery>,
) -> Response {
    answer(app.ask(move |conn| stuck_rows(conn, &query, masking)).await)
}

/// A window, the filters of `lines`, and where the previous page ended.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
pub(crate) struct LinesQuery {
    #[serde(flatten)]
    pub window: WindowQuery,
    pub kind: Option<String>,
    pub grep: Option<String>,
    pub after: Option<String>,
}

/// Lines a page shows at most; the answer says where to read on.
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

/// One page of lines.
#[derive(Debug, serde::Serialize)]
pub(crate) struct LinesPage {
    pub lines: Vec<LineJson>,
    /// Whether more lines match after these.
    pub more: bool,
    /// Where the next page starts (`after=`), when there is one.
    pub next: Option<String>,
}

/// The lines of a window after `after`: at most [`MAX_LINES`] and
/// [`PAGE_LINE_BYTES`] (always one), masked for a viewer.
pub(crate) fn read_lines(
    conn: &deadpool_sqlite::rusqlite::Connection,
    query: &LinesQuery,
    masking: Masking,
) -> Result<LinesPage, WebError> {
    let window = query.window.window(conn)?;
    if window.since.is_none() && window.until.is_none() {
        return Err(WebError::BadRequest(
            "give a window (since, until): the log is read a window at a time".to_owned(),
        ));
    }
    let mut filter = lines::LineFilter::parse(
        window,
        bounded("kind", query.kind.as_deref())?,
        bounded("grep", query.grep.as_deref())?,
        None,
    )?;
    filter.after = bounded("after", query.after.as_deref())?
        .map(lines::LinePosition::parse)
        .transpose()?;
    let mut page = LinesPage {
        lines: Vec::new(),
        more: false,
        next: None,
    };
    let mut bytes = 0usize;
    let mut last = None;
    let read = lines::each(conn, &filter, &mut |line| {
        let shown = line.bytes.len().min(SHOWN_LINE_BYTES);
        if page.lines.len() == MAX_LINES
            || (!page.lines.is_empty() && bytes + shown > PAGE_LINE_BYTES)
        {
            page.more = true;
            return Err(std::io::Error::other("enough lines"));
        }
        bytes += shown;
        last = Some(line.position);
        let (text, cut) = shown_line(masking, line.bytes);
        page.lines.push(LineJson {
            offset: line.offset,
            source: line.source.to_owned(),
            time: line.time.clone(),
            kind: line.kind,
            message_id: line.message_id.clone(),
            line: text,
            truncated: line.truncated || cut,
        });
        Ok(())
    });
    match read {
        Ok(()) => {}
        Err(crate::query::QueryError::Output(_)) if page.more => {}
        Err(err) => return Err(err.into()),
    }
    if page.more {
        page.next = last.map(|position| position.to_string());
    }
    Ok(page)
}

async fn lines_api(
    State(app): State<App>,
    masking: Masking,
    Query(query): Query<LinesQuery>,
) -> Response {
    answer(app.ask(move |conn| read_lines(conn, &query, masking)).await)
}

async fn health_api(State(app): State<App>) -> Response {
    answer(app.ask(|conn| Ok(health::read(conn)?)).await)
}
