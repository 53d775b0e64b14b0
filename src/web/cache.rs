//! Answers kept for a few seconds: a page that sums a day of mail (the
//! flow, statistics, a domain's messages) costs tens to hundreds of
//! milliseconds, and a room of support staff, or a dashboard, asks for the
//! same ones again and again. Keyed by the address asked (path and query).
//! One request at a time makes an answer; while it does, the others get
//! the previous answer if there is one not older than [`STALE_FOR`] (else
//! they wait for the new one). Answers are cached after authentication,
//! keyed by role as well, so every user gets what their role may see; a
//! viewer's answer passes the address pattern once more here, as a net
//! under the handlers' field masking. Bounded in entries and bytes.
//!
//! Memory in all is bounded here too: a new answer reserves the largest
//! answer's bytes before it is made, gives back what it did not use once
//! made, and holds the rest until its body has been sent; answers that
//! would pass [`IN_FLIGHT_BYTES`] wait (and fail with 503 after
//! [`RESERVE_WAIT`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use futures_util::StreamExt as _;

use super::App;
use super::auth::{Masking, mask_body};

/// How old an answer may be when it is given again.
pub(super) const FRESH_FOR: Duration = Duration::from_secs(5);

/// How old an answer may be when given while its successor is being made.
const STALE_FOR: Duration = Duration::from_secs(60);

/// Answers kept at most, and their bytes.
const MAX_ENTRIES: usize = 512;
const MAX_BYTES: usize = 64 << 20;

/// The largest answer made (a page of lines is bounded well below it).
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Bytes of new answers being made or sent at once, at most.
pub(super) const IN_FLIGHT_BYTES: usize = 128 << 20;

/// How long a request waits for room among the answers in flight.
const RESERVE_WAIT: Duration = Duration::from_secs(10);

/// Answers in flight are counted in KiB (a semaphore's permits).
const KIB: usize = 1024;

/// Room for answers in flight, in KiB.
pub(super) fn in_flight_budget() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_BYTES / KIB))
}

/// How long a heavy question waits for its turn.
const HEAVY_WAIT: Duration = Duration::from_secs(30);

/// Heavy questions answered at once: half the cores, at least one.
pub(super) fn heavy_slots() -> Arc<tokio::sync::Semaphore> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Arc::new(tokio::sync::Semaphore::new((cores / 2).max(1)))
}

/// Whether a request asks a heavy question: the statistics or flow of a
/// window, a domain's messages, or a pattern over the log's lines.
fn heavy(uri: &axum::http::Uri) -> bool {
    let query = axum::extract::Query::<HashMap<String, String>>::try_from_uri(uri)
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

/// One kept answer.
#[derive(Clone)]
struct Answer {
    made: Instant,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// One address's answer, when it was last asked for, and the lock held
/// while one is being made.
struct Slot {
    answer: Mutex<Option<Answer>>,
    used: Mutex<Instant>,
    making: tokio::sync::Mutex<()>,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            answer: Mutex::new(None),
            used: Mutex::new(Instant::now()),
            making: tokio::sync::Mutex::new(()),
        }
    }
}

impl Slot {
    fn used(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn answer(&self) -> std::sync::MutexGuard<'_, Option<Answer>> {
        self.answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept answer, if it is younger than `age`.
    fn younger_than(&self, age: Duration) -> Option<Answer> {
        self.answer()
            .as_ref()
            .filter(|answer| answer.made.elapsed() < age)
            .cloned()
    }
}

/// The cache: a slot per address.
#[derive(Default)]
pub(super) struct Cache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Cache {
    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slots.len() >= MAX_ENTRIES && !slots.contains_key(key) {
            // The quarter asked for least recently goes: the answers asked
            // for often stay, however many others come once.
            let mut ages: Vec<(Duration, String)> = slots
                .iter()
                .map(|(key, slot)| (slot.used().elapsed(), key.clone()))
                .collect();
            ages.sort_unstable_by_key(|(age, _)| std::cmp::Reverse(*age));
            for (_, old) in ages.iter().take(MAX_ENTRIES / 4) {
                slots.remove(old);
            }
        }
        let slot = Arc::clone(slots.entry(key.to_owned()).or_default());
        *slot.used() = Instant::now();
        slot
    }

    /// The bytes of the answers kept.
    fn bytes(&self) -> usize {
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots
            .values()
            .filter_map(|slot| slot.answer().as_ref().map(|a| a.body.len()))
            .sum()
    }
}

/// Whether an address's answer may be kept: not the live page or stream
/// (they change with every commit and depend on the role), nor sign-in.
fn cacheable(method: &Method, path: &str) -> bool {
    method == Method::GET
        && !matches!(path, "/live" | "/api/v1/live" | "/login" | "/logout")
        && !path.starts_with("/assets/")
}

pub(super) async fn answer(
    State(app): State<App>,
    masking: Masking,
    request: Request,
    next: Next,
) -> Response {
    if !cacheable(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let role = if masking.masks() { "viewer" } else { "admin" };
    let key = format!(
        "{role} {}",
        request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path(), |p| p.as_str())
    );
    let slot = app.cache.slot(&key);
    if let Some(answer) = slot.younger_than(FRESH_FOR) {
        return rebuild(&answer);
    }
    let making = match slot.making.try_lock() {
        Ok(making) => making,
        Err(_) => {
            // Another request is making it: the previous answer will do.
            if let Some(answer) = slot.younger_than(STALE_FOR) {
                return rebuild(&answer);
            }
            let making = slot.making.lock().await;
            if let Some(answer) = slot.younger_than(FRESH_FOR) {
                return rebuild(&answer);
            }
            making
        }
    };
    // A heavy answer (a window's statistics, a domain's messages, a
    // pattern over the log) waits for one of few slots before it reserves
    // anything: a client asking for many cannot take the cores, the
    // database or the answer bytes from everyone else.
    let _heavy = if heavy(request.uri()) {
        match tokio::time::timeout(HEAVY_WAIT, app.heavy.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, "5")],
                    "too many heavy questions (statistics, domains, patterns) are being \
                     answered; try again shortly",
                )
                    .into_response();
            }
        }
    } else {
        None
    };
    let reserve = app
        .answer_bytes
        .clone()
        .acquire_many_owned(u32::try_from(MAX_ANSWER_BYTES / KIB).unwrap_or(u32::MAX));
    let Ok(Ok(mut reserved)) = tokio::time::timeout(RESERVE_WAIT, reserve).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "5")],
            "too many large answers are being sent; try again shortly",
        )
            .into_response();
    };
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let Ok(mut body) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer was too large",
        )
            .into_response();
    };
    if masking.masks() {
        body = Bytes::from(mask_body(&body));
    }
    let used = body.len() / KIB + 1;
    if let Some(unused) = reserved.split(reserved.num_permits().saturating_sub(used)) {
        drop(unused);
    }
    let answer = Answer {
        made: Instant::now(),
        status: parts.status,
        headers: parts.headers,
        body,
    };
    let mut response = rebuild(&answer);
    *response.body_mut() = held(answer.body.clone(), reserved);
    // A failure (the database down) is not kept: the next request tries.
    if answer.status.is_success() || answer.status.is_client_error() {
        *slot.answer() = Some(answer);
    }
    drop(making);
    if app.cache.bytes() > MAX_BYTES {
        app.cache
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
    response
}

/// `body` sent in steps, `reserved` given back after the last.
fn held(body: Bytes, reserved: tokio::sync::OwnedSemaphorePermit) -> Body {
    let steps: Vec<Bytes> = (0..body.len())
        .step_by(STEP_BYTES)
        .map(|at| body.slice(at..(at + STEP_BYTES).min(body.len())))
        .collect();
    let mut reserved = Some(reserved);
    let stream = futures_util::stream::iter(steps.into_iter().map(Some).chain([None])).filter_map(
        move |step| {
            if step.is_none() {
                reserved.take();
            }
            std::future::ready(step.map(Ok::<_, std::convert::Infallible>))
        },
    );
    Body::from_stream(stream)
}

fn rebuild(answer: &Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body.clone()));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers.clone();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_domains_and_patterns_are_heavy_the_rest_is_not() {
        let uri = |text: &str| text.parse::<axum::http::Uri>().unwrap();
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

    #[test]
    fn the_live_stream_sign_in_and_assets_are_never_kept() {
        assert!(cacheable(&Method::GET, "/flow"));
        assert!(cacheable(&Method::GET, "/api/v1/stats"));
        for path in ["/live", "/api/v1/live", "/login", "/assets/app.js"] {
            assert!(!cacheable(&Method::GET, path), "{path}");
        }
        assert!(!cacheable(&Method::POST, "/flow"));
    }

    #[test]
    fn a_full_cache_drops_the_answers_asked_for_least_recently() {
        let cache = Cache::default();
        *cache.slot("kept").answer() = Some(Answer {
            made: Instant::now() - Duration::from_secs(30),
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"y"),
        });
        for n in 0..MAX_ENTRIES + 50 {
            let slot = cache.slot(&n.to_string());
            *slot.answer() = Some(Answer {
                made: Instant::now() - Duration::from_secs(30),
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: Bytes::from_static(b"x"),
            });
            // The one asked for all along.
            let _ = cache.slot("kept");
        }
        let slots = cache.slots.lock().unwrap();
        assert!(slots.len() <= MAX_ENTRIES);
        assert!(slots.contains_key("kept"));
    }

    #[test]
    fn the_cache_stays_within_its_entries() {
        let cache = Cache::default();
        for n in 0..MAX_ENTRIES + 50 {
            let slot = cache.slot(&n.to_string());
            *slot.answer() = Some(Answer {
                made: Instant::now() - STALE_FOR,
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: Bytes::from_static(b"x"),
            });
        }
        assert!(cache.slots.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
