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
//! A new answer is made only in its turn (`turns.rs`: a heavy question's
//! slot, and room for its bytes among the answers in flight).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;
use super::mask::{Masking, mask_body};
use super::turns::{self, Turn};

/// How old an answer may be when it is given again.
pub(super) const FRESH_FOR: Duration = Duration::from_secs(5);

/// How old an answer may be when given while its successor is being made.
const STALE_FOR: Duration = Duration::from_secs(60);

/// Answers kept at most, and their bytes.
const MAX_ENTRIES: usize = 512;
const MAX_BYTES: usize = 64 << 20;

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
    let turn = match Turn::wait(&app, request.uri()).await {
        Ok(turn) => turn,
        Err(busy) => return busy,
    };
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let Ok(mut body) = axum::body::to_bytes(body, turns::MAX_ANSWER_BYTES).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer was too large",
        )
            .into_response();
    };
    if masking.masks() {
        body = Bytes::from(mask_body(&body));
    }
    let answer = Answer {
        made: Instant::now(),
        status: parts.status,
        headers: parts.headers,
        body,
    };
    let mut response = rebuild(&answer);
    *response.body_mut() = turn.held(answer.body.clone());
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
