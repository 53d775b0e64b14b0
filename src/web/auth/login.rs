//! Signing in and out with `[web] auth = "users"`: the form, the password
//! check (argon2, as long for an unknown name as for a known one), the
//! failure pauses counted before each check, per name and address and per
//! address, and where to go afterwards (a path of this site only).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite, SignedCookieJar};
use maud::html;
use serde::Deserialize;

use super::sessions::Ticket;
use super::{COOKIE, same_origin};
use crate::config::WebAuth;
use crate::web::App;

/// `?next=` of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a path of this site only. Control
/// characters and spaces are refused outright: browsers drop a tab or a
/// newline from a URL, so `/\t/evil.example/` would be read as
/// `//evil.example/`, another site, and a newline cannot be a header.
pub(super) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.bytes().all(|b| b.is_ascii_graphic())
                && HeaderValue::from_str(path).is_ok() =>
        {
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
    (status, crate::web::reply::layout("", "Sign in", body)).into_response()
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

/// The 429 of a sign-in that must wait, saying for how long.
fn wait_page(next: &str, wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = login_page(
        StatusCode::TOO_MANY_REQUESTS,
        next,
        Some(&format!(
            "too many failed sign-ins: wait {seconds} s before trying again"
        )),
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
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
    // Counted before the check: concurrent guesses cannot pass together.
    let address = format!("address {}", peer.ip());
    let name_at_address = format!("name {} from {}", form.name, peer.ip());
    let auth = &app.auth;
    if let Err(wait) = auth.failures_by_address.begin(&address) {
        return wait_page(&next, wait);
    }
    if let Err(wait) = auth.failures_by_name.begin(&name_at_address) {
        auth.failures_by_address.succeeded(&address, false);
        return wait_page(&next, wait);
    }
    let user = auth.user(&form.name);
    let phc = user.map_or_else(|| DUMMY_HASH.clone(), |user| user.password_hash.clone());
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
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
    };
    auth.failures_by_name.succeeded(&name_at_address, true);
    auth.failures_by_address.succeeded(&address, false);
    let ticket = Ticket::issue(
        &auth.sessions,
        &user.name,
        auth.config.session_lifetime.as_secs(),
    );
    let mut cookie = Cookie::new(COOKIE, ticket.encode());
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    cookie.set_secure(auth.config.secure_cookies);
    tracing::info!(user = %user.name, address = %peer.ip(), "{} signed in to the web view from {}", user.name, peer.ip());
    (jar.add(cookie), Redirect::to(&next)).into_response()
}

pub(crate) async fn logout(State(app): State<App>, jar: SignedCookieJar) -> Response {
    if let Some(ticket) = jar.get(COOKIE).and_then(|c| Ticket::decode(c.value())) {
        let known = app.auth.user(&ticket.name).is_some();
        app.auth.sessions.revoke(&ticket, known);
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
        assert_eq!(local_path(Some("/\t/evil.example/")), "/");
        assert_eq!(local_path(Some("/\n/evil.example/")), "/");
        assert_eq!(local_path(Some("/ /x")), "/");
        assert_eq!(local_path(Some("/caf\u{e9}")), "/");
        assert_eq!(local_path(None), "/");
    }
}
