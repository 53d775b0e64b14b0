//! Who may look, and how much: `[web] auth = "users"` (argon2 password
//! hashes, sessions in signed cookies), `"proxy"` (a reverse proxy at a
//! configured address names the user in a header), or `"none"` (anyone
//! who can connect; the configuration allows it on loopback only).
//! Requests are limited per client address, failed sign-ins per address
//! and per name; a viewer's answers have every address masked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Form, FromRef, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use maud::html;
use serde::Deserialize;

use super::App;
use crate::config::{WebAuth, WebConfig, WebRole, WebUser};

/// The session cookie's name.
const COOKIE: &str = "exim_pilot_session";

/// Requests one user (or, before signing in, one client address) may make
/// per [`REQUEST_WINDOW`].
const REQUESTS_PER_WINDOW: u32 = 600;
const REQUEST_WINDOW: Duration = Duration::from_secs(10);

/// Failed sign-ins per name, and per client address (more: behind a proxy
/// many users share one), before a pause of [`FAILURE_WINDOW`].
const FAILURES_PER_NAME: u32 = 5;
const FAILURES_PER_ADDRESS: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// Keys a limiter remembers at most: its memory is bounded.
const LIMITER_KEYS: usize = 10_000;

/// Largest answer masked for a viewer (pages and answers are bounded far
/// below this).
const MASKED_BODY_BYTES: usize = 32 << 20;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// Their name (`local` without authentication).
    pub user: String,
    /// What they may see.
    pub role: WebRole,
}

/// Counts per key in fixed windows.
struct Limiter {
    window: Duration,
    max: u32,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    fn new(window: Duration, max: u32) -> Self {
        Limiter {
            window,
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one for `key`; false when it is over the limit.
    fn hit(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut counts = self.counts();
        if counts.len() >= LIMITER_KEYS && !counts.contains_key(key) {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
            if counts.len() >= LIMITER_KEYS {
                // Full of live keys (a flood from many addresses): start
                // over rather than grow or refuse everyone.
                counts.clear();
            }
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.max
    }

    /// Whether `key` is over the limit now, without counting.
    fn blocked(&self, key: &str) -> bool {
        let now = Instant::now();
        self.counts().get(key).is_some_and(|(start, count)| {
            now.duration_since(*start) < self.window && *count >= self.max
        })
    }

    fn forget(&self, key: &str) {
        self.counts().remove(key);
    }
}

/// The sign-in state of a server.
pub(crate) struct Auth {
    config: WebConfig,
    key: Key,
    /// Sessions signed out before they expired: nonce → expiry (seconds).
    revoked: Mutex<HashMap<String, u64>>,
    requests: Limiter,
    failures_by_name: Limiter,
    failures_by_address: Limiter,
}

impl Auth {
    /// A new key each start: signing in again after a restart is the price
    /// of keeping no secret on disk.
    pub(crate) fn new(config: WebConfig) -> Self {
        Auth {
            config,
            key: Key::generate(),
            revoked: Mutex::new(HashMap::new()),
            requests: Limiter::new(REQUEST_WINDOW, REQUESTS_PER_WINDOW),
            failures_by_name: Limiter::new(FAILURE_WINDOW, FAILURES_PER_NAME),
            failures_by_address: Limiter::new(FAILURE_WINDOW, FAILURES_PER_ADDRESS),
        }
    }

    fn user(&self, name: &str) -> Option<&WebUser> {
        match &self.config.auth {
            WebAuth::Users(users) => users.iter().find(|u| u.name == name),
            _ => None,
        }
    }

    /// The session a request carries, if any.
    fn session(&self, peer: IpAddr, jar: &SignedCookieJar, headers: &HeaderMap) -> Option<Session> {
        match &self.config.auth {
            WebAuth::None => Some(Session {
                user: "local".to_owned(),
                role: WebRole::Admin,
            }),
            WebAuth::Proxy {
                header,
                addresses,
                role,
            } => {
                if !addresses.contains(&peer) {
                    return None;
                }
                let user = headers.get(header.as_str())?.to_str().ok()?.trim();
                (!user.is_empty() && user.len() <= 128).then(|| Session {
                    user: user.to_owned(),
                    role: *role,
                })
            }
            WebAuth::Users(_) => {
                let cookie = jar.get(COOKIE)?;
                let mut parts = cookie.value().split('|');
                let (name, expires, nonce) = (parts.next()?, parts.next()?, parts.next()?);
                let expires: u64 = expires.parse().ok()?;
                if expires <= now_seconds() || self.revoked().contains_key(nonce) {
                    return None;
                }
                // The role is the configuration's now, not the cookie's.
                let user = self.user(name)?;
                Some(Session {
                    user: user.name.clone(),
                    role: user.role,
                })
            }
        }
    }

    fn revoked(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl FromRef<App> for Key {
    fn from_ref(app: &App) -> Key {
        app.auth.key.clone()
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every request passes here: the request limit, then the session (the
/// sign-in page and the assets need none), then, for a viewer, the
/// answer's addresses masked.
pub(crate) async fn guard(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: SignedCookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let session = app.auth.session(peer.ip(), &jar, request.headers());
    // Limited per user once known (behind a proxy every user shares its
    // address), per address before. Without authentication only loopback
    // clients reach the view, and they could read the database anyway.
    if app.auth.config.auth != WebAuth::None {
        let key = session.as_ref().map_or_else(
            || format!("address {}", peer.ip()),
            |s| format!("user {}", s.user),
        );
        if !app.auth.requests.hit(&key) {
            return refuse(
                api,
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests; slow down",
            );
        }
    }
    let path = request.uri().path().to_owned();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(request).await;
    }
    let Some(session) = session else {
        return match &app.auth.config.auth {
            WebAuth::Proxy { .. } => refuse(
                api,
                StatusCode::FORBIDDEN,
                "sign in through the reverse proxy: this address, or a request without its user header, is not trusted",
            ),
            _ if api => refuse(api, StatusCode::UNAUTHORIZED, "sign in first: POST /login"),
            _ => {
                let next_page = request.uri().path_and_query().map_or("/", |p| p.as_str());
                Redirect::to(&format!("/login?next={}", encode(next_page))).into_response()
            }
        };
    };
    let role = session.role;
    request.extensions_mut().insert(session);
    let response = next.run(request).await;
    match role {
        WebRole::Admin => response,
        // A stream never ends: it masks each event itself.
        WebRole::Viewer if super::live::is_event_stream(&response) => response,
        WebRole::Viewer => mask_response(response).await,
    }
}

fn refuse(api: bool, status: StatusCode, message: &str) -> Response {
    let error = super::WebError::Refused(status, message.to_owned());
    if api {
        super::api::error_response(&error)
    } else {
        super::pages::error_page(&error)
    }
}

/// Percent-encodes all but unreserved characters, for a `next=` value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `alice@example.com` as a viewer sees it: `a***@example.com`.
pub(crate) fn mask_addresses(text: &str) -> std::borrow::Cow<'_, str> {
    static ADDRESS: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"([A-Za-z0-9._%+=-])[A-Za-z0-9._%+=-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)",
        )
        .ok()
    });
    match ADDRESS.as_ref() {
        Some(address) => address.replace_all(text, "$1***@$2"),
        // Never reached: the pattern is fixed. Mask everything rather than
        // show what a viewer may not see.
        None => std::borrow::Cow::Owned(String::new()),
    }
}

async fn mask_response(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MASKED_BODY_BYTES).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer was too large to mask",
        )
            .into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let masked = mask_addresses(&text).into_owned();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(masked))
}

/// `?next=` of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a path of this site only.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn login_page(status: StatusCode, next: &str, message: Option<&str>) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(message) = message { p.error { (message) } }
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            p { label { "Name " input name="name" autocomplete="username" required autofocus; } }
            p { label { "Password " input name="password" type="password" autocomplete="current-password" required; } }
            button type="submit" { "Sign in" }
        }
    };
    (status, super::pages::layout("", "Sign in", body)).into_response()
}

pub(crate) async fn login_form(State(app): State<App>, Query(query): Query<NextQuery>) -> Response {
    if !matches!(app.auth.config.auth, WebAuth::Users(_)) {
        return Redirect::to("/").into_response();
    }
    login_page(StatusCode::OK, &local_path(query.next.as_deref()), None)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// A hash to verify against for unknown names, so that the answer takes
/// as long whether or not the name exists.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("not a password of anyone's").unwrap_or_default());

/// An argon2id PHC string for `password` (`serve --hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| err.to_string())
}

fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Whether a form post comes from this site's own pages: browsers send
/// `Origin` (or `Sec-Fetch-Site`) with a POST; a cross-site one is refused.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        // No Origin: not a browser's cross-site form (curl, tests).
        (None, _) => true,
        (Some(_), None) => false,
    }
}

pub(crate) async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: SignedCookieJar,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref());
    if !matches!(app.auth.config.auth, WebAuth::Users(_)) {
        return Redirect::to("/").into_response();
    }
    if !same_origin(&headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            &next,
            Some("the form was posted from another site"),
        );
    }
    let address = peer.ip().to_string();
    if app.auth.failures_by_address.blocked(&address)
        || app.auth.failures_by_name.blocked(&form.name)
    {
        return login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some("too many failed sign-ins: wait five minutes"),
        );
    }
    let phc = app
        .auth
        .user(&form.name)
        .map_or_else(|| DUMMY_HASH.clone(), |user| user.password_hash.clone());
    let known = app.auth.user(&form.name).is_some();
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    if !(known && verified) {
        app.auth.failures_by_address.hit(&address);
        app.auth.failures_by_name.hit(&form.name);
        tracing::warn!(
            user = %form.name,
            address = %peer.ip(),
            "failed sign-in to the web view as {:?} from {}",
            form.name,
            peer.ip()
        );
        return login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("wrong name or password"),
        );
    }
    app.auth.failures_by_name.forget(&form.name);
    let expires = now_seconds() + app.auth.config.session_lifetime.as_secs();
    let nonce = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let mut cookie = Cookie::new(COOKIE, format!("{}|{expires}|{nonce}", form.name));
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    cookie.set_secure(app.auth.config.secure_cookies);
    tracing::info!(user = %form.name, address = %peer.ip(), "{} signed in to the web view from {}", form.name, peer.ip());
    (jar.add(cookie), Redirect::to(&next)).into_response()
}

pub(crate) async fn logout(State(app): State<App>, jar: SignedCookieJar) -> Response {
    if let Some(cookie) = jar.get(COOKIE)
        && let Some((expires, nonce)) = cookie
            .value()
            .split('|')
            .nth(1)
            .zip(cookie.value().split('|').nth(2))
    {
        let expires: u64 = expires.parse().unwrap_or(0);
        let now = now_seconds();
        let mut revoked = app.auth.revoked();
        // Bounded: expired revocations are dropped first.
        revoked.retain(|_, until| *until > now);
        if revoked.len() < LIMITER_KEYS {
            revoked.insert(nonce.to_owned(), expires);
        }
    }
    (
        jar.remove(Cookie::build(COOKIE).path("/")),
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_for_viewers_wherever_they_stand() {
        assert_eq!(mask_addresses("alice@example.com"), "a***@example.com");
        assert_eq!(
            mask_addresses("F=&lt;bob.smith+tag@mail.example.org&gt; rejected"),
            "F=&lt;b***@mail.example.org&gt; rejected"
        );
        assert_eq!(
            mask_addresses("{\"sender\":\"x@y.example\",\"host\":\"[192.0.2.1]\"}"),
            "{\"sender\":\"x***@y.example\",\"host\":\"[192.0.2.1]\"}"
        );
        assert_eq!(mask_addresses("no address here"), "no address here");
    }

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsf", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn after_signing_in_only_a_path_of_this_site_is_followed() {
        assert_eq!(local_path(Some("/flow?since=1d")), "/flow?since=1d");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn a_limiter_counts_per_key_in_its_window_and_stays_bounded() {
        let limiter = Limiter::new(Duration::from_secs(60), 3);
        assert!(limiter.hit("a") && limiter.hit("a") && limiter.hit("a"));
        assert!(!limiter.hit("a"));
        assert!(limiter.blocked("a"));
        assert!(limiter.hit("b"));
        limiter.forget("a");
        assert!(!limiter.blocked("a"));
        for n in 0..LIMITER_KEYS + 10 {
            limiter.hit(&n.to_string());
        }
        assert!(limiter.counts().len() <= LIMITER_KEYS);
    }

    #[test]
    fn a_cross_site_post_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8025".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "http://127.0.0.1:8025".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&headers));
    }
}
