//! Who may look, and how much: `[web] auth = "users"` (argon2 password
//! hashes, sessions in signed cookies: `login.rs`, `sessions.rs`), `"proxy"`
//! (a reverse proxy at a configured address names the user in a header),
//! or `"none"` (anyone who can connect; the configuration allows it on
//! loopback only). Every request passes [`guard`]: the Host it names, the
//! request limit (`limits.rs`), the session (a viewer's answers are masked
//! by the handlers, `../mask.rs`).

mod limits;
mod login;
mod sessions;
mod tokens;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRef, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Key, SignedCookieJar};

use super::App;
use crate::config::{WebAuth, WebConfig, WebRole, WebUser};
use limits::{FailureBackoff, Limiter};
pub use login::hash_password;
pub(crate) use login::{login, login_form, logout};
use sessions::{Sessions, Ticket};
pub(crate) use tokens::Tokens;

/// The session cookie's name.
const COOKIE: &str = "exim_pilot_session";

/// Requests one user (or, before signing in, one client address) may make
/// per [`REQUEST_WINDOW`].
const REQUESTS_PER_WINDOW: u32 = 600;
const REQUEST_WINDOW: Duration = Duration::from_secs(10);

/// Failed sign-ins per name from one address, and per address (more:
/// behind a proxy many users share one), before each further try waits a
/// pause that doubles up to [`LONGEST_PAUSE`].
const FREE_FAILURES_PER_NAME: u32 = 5;
const FREE_FAILURES_PER_ADDRESS: u32 = 20;
const LONGEST_PAUSE: Duration = Duration::from_secs(300);
/// Failures are forgotten after this long without a try.
const FAILURE_MEMORY: Duration = Duration::from_secs(900);

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// Their name (`local` without authentication).
    pub user: String,
    /// What they may see.
    pub role: WebRole,
}

/// The sign-in state of a server.
pub(crate) struct Auth {
    config: WebConfig,
    key: Key,
    sessions: Sessions,
    requests: Limiter,
    failures_by_name: FailureBackoff,
    failures_by_address: FailureBackoff,
}

impl Auth {
    /// How users sign in (`none`, `users`, `proxy`), as the queue helper
    /// records it.
    pub(crate) fn method(&self) -> &'static str {
        match self.config.auth {
            WebAuth::None => "none",
            WebAuth::Users(_) => "users",
            WebAuth::Proxy { .. } => "proxy",
        }
    }

    /// A new key each start: signing in again after a restart is the price
    /// of keeping no secret on disk.
    pub(crate) fn new(config: WebConfig) -> Self {
        Auth {
            config,
            key: Key::generate(),
            sessions: Sessions::default(),
            requests: Limiter::new(REQUEST_WINDOW, REQUESTS_PER_WINDOW),
            failures_by_name: FailureBackoff::new(
                FREE_FAILURES_PER_NAME,
                LONGEST_PAUSE,
                FAILURE_MEMORY,
            ),
            failures_by_address: FailureBackoff::new(
                FREE_FAILURES_PER_ADDRESS,
                LONGEST_PAUSE,
                FAILURE_MEMORY,
            ),
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
                let ticket = Ticket::decode(jar.get(COOKIE)?.value())?;
                if !self.sessions.live(&ticket) {
                    return None;
                }
                // The role is the configuration's now, not the cookie's.
                let user = self.user(&ticket.name)?;
                Some(Session {
                    user: user.name.clone(),
                    role: user.role,
                })
            }
        }
    }

    /// Whether `peer` is the configured reverse proxy.
    pub(crate) fn is_proxy(&self, peer: IpAddr) -> bool {
        matches!(&self.config.auth, WebAuth::Proxy { addresses, .. } if addresses.contains(&peer))
    }
}

impl FromRef<App> for Key {
    fn from_ref(app: &App) -> Key {
        app.auth.key.clone()
    }
}

/// The address a connection was accepted on (set by the server for each
/// request), which a request's Host must name unless it names one of
/// `[web] server_names`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAddr(pub SocketAddr);

/// Whether `host` (a Host header) names this server: the address the
/// connection came in on, `localhost` on loopback, or one of `names`. Any
/// other name is a DNS rebinding: a page of another site whose name was
/// pointed at this address, reading it with the visitor's access.
fn host_allowed(host: &str, local: SocketAddr, names: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((literal, port))
                if port.is_empty()
                    || port[1..].bytes().all(|b| b.is_ascii_digit()) && port.starts_with(':') =>
            {
                literal
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                name
            }
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip == local.ip();
    }
    (name == "localhost" && local.ip().is_loopback())
        || names
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&name))
}

/// Every request passes here: the Host it names, the request limit, then
/// the session (the sign-in page and the assets need none).
pub(crate) async fn guard(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: SignedCookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let local = request.extensions().get::<LocalAddr>().copied();
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // A request without Host (HTTP/1.0) is no browser's: nothing rebinds it.
    if let (Some(host), Some(LocalAddr(local))) = (&host, local)
        && !host_allowed(host, local, &app.auth.config.server_names)
    {
        return refuse(
            api,
            StatusCode::MISDIRECTED_REQUEST,
            &format!(
                "this server does not answer to the name {host:?}: reach it by its address, \
                 or add the name to [web] server_names"
            ),
        );
    }
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
    if role == WebRole::Viewer && names_an_address(request.uri()) {
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            "a viewer cannot search by address: any answer, even an empty one, would tell \
             whether the address exists; search by id, IP or domain, or ask an admin",
        );
    }
    // Handlers mask their answers' fields for a viewer (`Masking`), and
    // the cache passes every kept answer through the pattern as a net.
    request
        .extensions_mut()
        .insert(super::mask::Masking::of(session.role));
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// Whether a request names a mail address: a search (`q`, `grep`) or a
/// path holding `@`, decoded.
fn names_an_address(uri: &axum::http::Uri) -> bool {
    let path_has = uri.path().contains('@') || uri.path().to_ascii_lowercase().contains("%40");
    let query_has =
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(uri)
            .map(|query| query.0.values().any(|value| value.contains('@')))
            // Undecodable: refused later anyway; judged by its raw text here.
            .unwrap_or_else(|_| {
                uri.query()
                    .is_some_and(|q| q.contains('@') || q.to_ascii_lowercase().contains("%40"))
            });
    path_has || query_has
}

fn refuse(api: bool, status: StatusCode, message: &str) -> Response {
    let error = super::WebError::Refused(status, message.to_owned());
    if api {
        super::reply::error_response(&error)
    } else {
        super::reply::error_page(&error)
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

/// Whether a form post comes from this site's own pages: browsers send
/// `Origin` (or `Sec-Fetch-Site`) with a POST; a cross-site one is refused.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_search_naming_an_address_is_told_apart_from_others() {
        for named in [
            "/api/v1/search?q=alice%40test.example",
            "/?q=alice@test.example",
            "/log?since=1d&grep=bob%40x",
            "/api/v1/message/%3Cid%40host%3E",
        ] {
            assert!(names_an_address(&named.parse().unwrap()), "{named}");
        }
        for other in [
            "/api/v1/search?q=1abcde-000001-AB",
            "/?q=test.example",
            "/log?since=1d",
        ] {
            assert!(!names_an_address(&other.parse().unwrap()), "{other}");
        }
    }

    #[test]
    fn only_this_servers_own_names_pass_the_host_check() {
        let local: SocketAddr = "127.0.0.1:8025".parse().unwrap();
        let names = vec!["mail.example.org".to_owned()];
        for good in [
            "127.0.0.1:8025",
            "127.0.0.1",
            "localhost:8025",
            "LOCALHOST",
            "mail.example.org",
            "Mail.Example.Org.:443",
        ] {
            assert!(host_allowed(good, local, &names), "{good}");
        }
        for bad in [
            "rebind.evil.example",
            "rebind.evil.example:8025",
            "127.0.0.2:8025",
            "[::1]:8025",
            "127.0.0.1:80x",
            "mail.example.org.evil.example",
            "",
        ] {
            assert!(!host_allowed(bad, local, &names), "{bad}");
        }
        let v6: SocketAddr = "[::1]:8025".parse().unwrap();
        assert!(host_allowed("[::1]:8025", v6, &[]));
        assert!(host_allowed("localhost", v6, &[]));
        let public: SocketAddr = "192.0.2.10:8025".parse().unwrap();
        assert!(
            !host_allowed("localhost:8025", public, &[]),
            "localhost is loopback only"
        );
        assert!(host_allowed("192.0.2.10:8025", public, &[]));
    }
}
