//! Who asks the queue helper through a web request: the signed-in user and
//! the client's address, and the requests made in their name.

use axum::extract::ConnectInfo;
use axum::response::Response;

use super::auth::Session;
use super::reply::error_page;
use super::{App, WebError};
use crate::queue::client;
use crate::queue::request::{Actor, PROTOCOL_VERSION, Request, Verb};

/// Who asks the queue helper through this request: the signed-in user and
/// the client's address (see `App::client_ip`).
pub(super) struct Asker {
    /// The signed-in user.
    pub session: Session,
    /// The client's address.
    pub client_ip: String,
}

impl Asker {
    /// A request of `verb` on `ids` in this user's name.
    pub(super) fn request(&self, app: &App, verb: Verb, ids: Vec<String>) -> Request {
        Request {
            v: PROTOCOL_VERSION,
            request_id: format!("web-{}-{}", self.session.user, crate::store::repo::now_ms()),
            verb,
            ids,
            dry_run: false,
            reason: String::new(),
            selection: String::new(),
            origin: "web".to_owned(),
            actor: Actor {
                user: self.session.user.clone(),
                role: self.session.role.name().to_owned(),
                auth: app.auth.method().to_owned(),
                client_ip: self.client_ip.clone(),
            },
        }
    }
}

impl axum::extract::FromRequestParts<App> for Asker {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, Self::Rejection> {
        let session = parts.extensions.get::<Session>().cloned().ok_or_else(|| {
            error_page(&WebError::Refused(
                axum::http::StatusCode::UNAUTHORIZED,
                "sign in first".to_owned(),
            ))
        })?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer)
            .ok_or_else(|| error_page(&WebError::Unavailable("no peer address".to_owned())))?;
        let client_ip = app.client_ip(peer, &parts.headers);
        Ok(Asker { session, client_ip })
    }
}

/// Sends `request` to the helper of its verb's tier on a blocking thread,
/// within `timeout` per read and `max_payload` bytes of output. A request
/// the protocol refuses is the caller's mistake (400); a helper that cannot
/// be reached, 503. Whether the helper ran it (`reply.ok`) is the caller's
/// to judge.
pub(super) async fn ask_helper(
    app: &App,
    request: Request,
    timeout: std::time::Duration,
    max_payload: u64,
) -> Result<client::Answer, WebError> {
    let socket = client::socket_for(&app.queue, &request).to_path_buf();
    tokio::task::spawn_blocking(move || client::ask(&socket, &request, timeout, max_payload))
        .await
        .map_err(|err| WebError::Unavailable(err.to_string()))?
        .map_err(|err| match err {
            client::ClientError::Request(refusal) => WebError::BadRequest(refusal.to_string()),
            other => WebError::Unavailable(other.to_string()),
        })
}
