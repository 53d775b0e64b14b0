//! The live page: the newest lines rendered on the server, then each line
//! as it is committed, pushed over server-sent events. New lines are found
//! by chunk: a chunk of lines never spans two commits, so "every chunk
//! after id N" is exactly what was committed since, and N is the event id
//! a browser sends back (`Last-Event-ID`) to resume without a gap.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use maud::html;
use serde::Deserialize;

use super::auth::Session;
use super::mask::Masking;
use super::reply::{self, PAGE_LINE_BYTES, error_page, error_response, shown_line};
use super::{App, WebError};
use crate::query::lines;

/// How often a stream looks for new chunks.
const POLL: Duration = Duration::from_millis(250);

/// Chunks read per look, at most, and no more once their lines pass
/// [`PAGE_LINE_BYTES`] (a backlog is sent in steps).
const CHUNKS_PER_POLL: i64 = 16;

/// Lines the page shows before any event.
const FIRST_LINES: usize = 50;

/// Streams open at once, at most: each holds a request slot of the
/// browser and polls the database.
pub(super) const MAX_STREAMS: usize = 16;

/// Streams one user, or one client address (the trusted proxy's aside),
/// may hold: nobody takes them all.
pub(super) const STREAMS_PER_CLIENT: usize = 4;

/// The newest chunk's id, and the lines of the newest chunks (oldest
/// first), at most [`FIRST_LINES`], as `masking` shows them.
fn newest(
    conn: &deadpool_sqlite::rusqlite::Connection,
    masking: Masking,
) -> Result<(i64, Vec<String>), WebError> {
    let last = lines::newest_chunk(conn)?;
    // Both chunks whatever their size: two chunks are bounded by the
    // chunk size and the longest line.
    let (lines, _) = lines::committed_after(conn, (last - 2).max(0), 2, usize::MAX)?;
    let skip = lines.len().saturating_sub(FIRST_LINES);
    let lines = lines
        .into_iter()
        .skip(skip)
        .map(|line| shown_line(masking, &line.bytes).0)
        .collect();
    Ok((last, lines))
}

pub(super) async fn page(State(app): State<App>, masking: Masking) -> Response {
    let (last, lines) = match app.ask(move |conn| newest(conn, masking)).await {
        Ok(found) => found,
        Err(error) => return error_page(&error),
    };
    let body = html! {
        h1 { "Live" }
        p.muted {
            "The newest lines; with JavaScript, each line is added as it is committed. "
            button type="button" id="live-pause" hidden { "Pause" }
            span id="live-state" {}
        }
        pre.lines id="live" data-after=(last) {
            @for line in &lines { (line) "\n" }
        }
    };
    reply::page("/live", "Live", body)
}

/// `?after=`: the chunk id to start after (else `Last-Event-ID`, else now).
#[derive(Debug, Default, Deserialize)]
pub(super) struct LiveQuery {
    after: Option<i64>,
}

/// The slots a stream holds while it is open: one of all, one of its
/// user's and, unless it comes through the trusted proxy, one of its
/// address's.
type StreamSlots = (
    tokio::sync::OwnedSemaphorePermit,
    super::slots::Slot<String>,
    Option<super::slots::Slot<std::net::IpAddr>>,
);

/// Takes a stream's slots, or says which bound refuses it.
fn admit(app: &App, session: &Session, peer: std::net::IpAddr) -> Result<StreamSlots, WebError> {
    let busy =
        |message: String| WebError::Refused(axum::http::StatusCode::TOO_MANY_REQUESTS, message);
    let Some(user_slot) = app.streams_per_user.take(session.user.clone()) else {
        return Err(busy(format!(
            "{STREAMS_PER_CLIENT} live streams are open for {} already; close one",
            session.user
        )));
    };
    let address_slot = if app.auth.is_proxy(peer) {
        None
    } else {
        match app.streams_per_address.take(peer) {
            Some(slot) => Some(slot),
            None => {
                return Err(busy(format!(
                    "{STREAMS_PER_CLIENT} live streams are open from {peer} already; close one"
                )));
            }
        }
    };
    let Ok(total) = app.streams.clone().try_acquire_owned() else {
        return Err(WebError::Refused(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} live streams are open already; close one"),
        ));
    };
    Ok((total, user_slot, address_slot))
}

pub(super) async fn events(
    State(app): State<App>,
    masking: Masking,
    axum::Extension(session): axum::Extension<Session>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> Response {
    let permit = match admit(&app, &session, peer.ip()) {
        Ok(permit) => permit,
        Err(refused) => return error_response(&refused),
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let after = match query.after.or(resume) {
        Some(after) => after,
        None => match app.ask(move |conn| newest(conn, masking)).await {
            Ok((last, _)) => last,
            Err(error) => return error_response(&error),
        },
    };
    let stopping = app.stopping.clone();
    let state = (app, after, permit, stopping, masking);
    let stream = stream::unfold(
        state,
        |(app, after, permit, mut stopping, masking)| async move {
            loop {
                if *stopping.borrow() {
                    return None;
                }
                let read = app
                    .ask(move |conn| {
                        Ok(lines::committed_after(
                            conn,
                            after,
                            CHUNKS_PER_POLL,
                            PAGE_LINE_BYTES,
                        )?)
                    })
                    .await;
                match read {
                    Ok((lines, Some(last))) => {
                        let data: Vec<String> = lines
                            .into_iter()
                            .map(|line| shown_line(masking, &line.bytes).0)
                            .collect();
                        let event = Event::default()
                            .id(last.to_string())
                            .json_data(&data)
                            .unwrap_or_else(|_| Event::default().comment("unencodable"));
                        return Some((
                            Ok::<_, std::convert::Infallible>(event),
                            (app, last, permit, stopping, masking),
                        ));
                    }
                    Ok((_, None)) => {}
                    Err(error) => {
                        tracing::warn!(
                            error = error.message(),
                            "the live stream cannot read: {}",
                            error.message()
                        );
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stopping.changed() => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
