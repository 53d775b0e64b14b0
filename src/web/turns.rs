//! What a new answer waits for before it is made, so that one client
//! cannot take the cores, the database or the memory from everyone else:
//! a heavy question (the statistics or flow of a window, a domain's
//! messages, a pattern over the log) waits for one of few slots, then
//! every answer reserves the largest answer's bytes from a budget for all
//! answers in flight, gives back what it did not use once made, and holds
//! the rest until its body's last step has been sent. Past either bound a
//! request waits, then gets 503.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::App;

/// The largest answer made (a page of lines is bounded well below it).
pub(super) const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Bytes of new answers being made or sent at once, at most.
const IN_FLIGHT_BYTES: usize = 128 << 20;

/// How long a request waits for room among the answers in flight.
const RESERVE_WAIT: Duration = Duration::from_secs(10);

/// Answers in flight are counted in KiB (a semaphore's permits).
const KIB: usize = 1024;

/// Room for answers in flight, in KiB.
pub(super) fn in_flight_budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(IN_FLIGHT_BYTES / KIB))
}

/// How long a heavy question waits for its turn.
const HEAVY_WAIT: Duration = Duration::from_secs(30);

/// Heavy questions answered at once: half the cores, at least one.
pub(super) fn heavy_slots() -> Arc<Semaphore> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Arc::new(Semaphore::new((cores / 2).max(1)))
}

/// Whether a request asks a heavy question: the statistics or flow of a
/// window, a domain's messages, or a pattern over the log's lines.
fn heavy(uri: &Uri) -> bool {
    let query =
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
    let nonempty = |name: &str| query.get(name).is_some_and(|v| !v.trim().is_empty());
    match uri.path() {
        "/flow" | "/api/v1/stats" | "/api/v1/flow" => true,
        "/" | "/api/v1/search" => query.get("q").is_some_and(|q| {
            matches!(
                crate::query::trace::Target::parse(q.trim()),
                Ok(crate::query::trace::Target::Domain(_))
            )
        }),
        "/log" | "/api/v1/lines" => nonempty("grep"),
        _ => false,
    }
}

/// The size of a body sent in steps: the reservation is held until the
/// last step has been taken.
const STEP_BYTES: usize = 64 << 10;

/// A request's turn: its heavy slot, if it needed one, and the room
/// reserved for its answer.
pub(super) struct Turn {
    _heavy: Option<OwnedSemaphorePermit>,
    reserved: OwnedSemaphorePermit,
}

impl Turn {
    /// Waits for the turn of a request for `uri`; a 503 when it does not
    /// come in time.
    pub(super) async fn wait(app: &App, uri: &Uri) -> Result<Turn, Response> {
        let busy = |what: &str| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                format!("too many {what} are being answered; try again shortly"),
            )
                .into_response()
        };
        let heavy = if heavy(uri) {
            match tokio::time::timeout(HEAVY_WAIT, app.heavy.clone().acquire_owned()).await {
                Ok(Ok(permit)) => Some(permit),
                _ => return Err(busy("heavy questions (statistics, domains, patterns)")),
            }
        } else {
            None
        };
        let reserve = app
            .answer_bytes
            .clone()
            .acquire_many_owned(u32::try_from(MAX_ANSWER_BYTES / KIB).unwrap_or(u32::MAX));
        match tokio::time::timeout(RESERVE_WAIT, reserve).await {
            Ok(Ok(reserved)) => Ok(Turn {
                _heavy: heavy,
                reserved,
            }),
            _ => Err(busy("large answers")),
        }
    }

    /// `body`, sent in steps: the heavy slot is given back now, the room
    /// `body` does not use too, the rest after the last step.
    pub(super) fn held(self, body: Bytes) -> Body {
        let mut reserved = self.reserved;
        let used = body.len() / KIB + 1;
        drop(reserved.split(reserved.num_permits().saturating_sub(used)));
        let steps: Vec<Bytes> = (0..body.len())
            .step_by(STEP_BYTES)
            .map(|at| body.slice(at..(at + STEP_BYTES).min(body.len())))
            .collect();
        let mut reserved = Some(reserved);
        let stream = futures_util::stream::iter(steps.into_iter().map(Some).chain([None]))
            .filter_map(move |step| {
                if step.is_none() {
                    reserved.take();
                }
                std::future::ready(step.map(Ok::<_, std::convert::Infallible>))
            });
        Body::from_stream(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_domains_and_patterns_are_heavy_the_rest_is_not() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        for path in [
            "/flow?since=1d",
            "/api/v1/stats",
            "/?q=example.com",
            "/api/v1/search?q=example.com&since=2d",
            "/log?since=1h&grep=foo",
        ] {
            assert!(heavy(&uri(path)), "{path}");
        }
        for path in [
            "/?q=1vXyZa-000001-AB",
            "/api/v1/search?q=192.0.2.1",
            "/message/1vXyZa-000001-AB",
            "/log?since=1h&grep=",
            "/stuck",
            "/health",
        ] {
            assert!(!heavy(&uri(path)), "{path}");
        }
    }
}
