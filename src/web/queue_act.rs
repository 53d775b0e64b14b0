//! Acting on Exim's queue from the web view, for admins, when `[queue]
//! actions` is on: the queue page's form posts the chosen messages to
//! `/queue/confirm`, which asks the helper for a dry run (recorded, and
//! showing Exim's command) and answers a confirmation page; confirming posts
//! to `/queue/act`, which runs exactly what was shown. Both posts must come
//! from this site (same origin) with the user's form token; the
//! confirmation carries a token bound to the action, the ids, the reason
//! and an expiry; each user has a limit of actions per minute.

use axum::Router;
use axum::extract::{ConnectInfo, Extension, Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use maud::{Markup, html};

use super::auth::{Session, same_origin};
use super::reply::{error_page, page};
use super::{App, WebError};
use crate::config::WebRole;
use crate::queue::client;
use crate::queue::outcome::Outcome;
use crate::queue::request::{Actor, PROTOCOL_VERSION, Request, Verb};

/// How long a confirmation page may be confirmed.
const CONFIRM_WITHIN_MS: i64 = 5 * 60 * 1000;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/queue/confirm", post(confirm))
        .route("/queue/act", post(act))
}

/// The verbs the web view offers.
const VERBS: [Verb; 5] = [
    Verb::Freeze,
    Verb::Thaw,
    Verb::Remove,
    Verb::Deliver,
    Verb::GiveUp,
];

/// The user's form token: what the queue page's form carries.
pub(super) fn form_token(app: &App, session: &Session) -> String {
    app.tokens.sign(&["queue-form", &session.user])
}

/// Whether the queue page offers actions to `session`.
pub(super) fn offered(app: &App, session: &Session) -> bool {
    app.queue.actions && session.role == WebRole::Admin
}

/// The action part of the queue page: a form around the rows' checkboxes.
pub(super) fn action_form(app: &App, session: &Session) -> Markup {
    html! {
        p {
            label { "Action "
                select name="action" {
                    @for verb in VERBS { option value=(verb.name()) { (verb.name()) } }
                }
            }
            " "
            label { "Reason " input name="reason" maxlength="200"; }
            input type="hidden" name="form_token" value=(form_token(app, session));
            " " button type="submit" { "Review the chosen messages" }
        }
    }
}

/// The fields of both posts.
struct Posted {
    verb: Verb,
    ids: Vec<String>,
    reason: String,
    fields: Vec<(String, String)>,
}

/// Checks what every post must be: an admin's, actions on, from this
/// site, with the user's form token, a known verb, valid ids within the
/// bulk limit.
fn posted(
    app: &App,
    session: &Session,
    headers: &HeaderMap,
    fields: Vec<(String, String)>,
) -> Result<Posted, WebError> {
    let refused = |why: &str| WebError::Refused(StatusCode::FORBIDDEN, why.to_owned());
    if !app.queue.actions {
        return Err(refused("queue actions are off ([queue] actions = false)"));
    }
    if session.role != WebRole::Admin {
        return Err(refused("acting on the queue needs the admin role"));
    }
    if !same_origin(headers) {
        return Err(refused("a form from another site is refused"));
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !field("form_token").is_some_and(|t| app.tokens.verify(&["queue-form", &session.user], t)) {
        return Err(refused(
            "the form's token is missing or not yours: reload the queue page",
        ));
    }
    let verb = VERBS
        .into_iter()
        .find(|v| Some(v.name()) == field("action"))
        .ok_or_else(|| WebError::BadRequest("no such action".to_owned()))?;
    let ids: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .collect();
    if ids.is_empty() {
        return Err(WebError::BadRequest(
            "choose at least one message".to_owned(),
        ));
    }
    if ids.len() > app.queue.bulk_limit {
        return Err(WebError::BadRequest(format!(
            "{} messages, over [queue] bulk_limit = {}",
            ids.len(),
            app.queue.bulk_limit
        )));
    }
    let reason = field("reason").unwrap_or("").chars().take(200).collect();
    Ok(Posted {
        verb,
        ids,
        reason,
        fields,
    })
}

/// Asks the helper of the verb's tier, naming the signed-in user.
async fn ask(
    app: &App,
    session: &Session,
    client_ip: String,
    posted: &Posted,
    dry_run: bool,
) -> Result<crate::queue::helper::Reply, WebError> {
    let request = Request {
        v: PROTOCOL_VERSION,
        request_id: format!("web-{}-{}", session.user, crate::store::repo::now_ms()),
        verb: posted.verb,
        ids: posted.ids.clone(),
        dry_run,
        reason: posted.reason.clone(),
        selection: String::new(),
        origin: "web".to_owned(),
        actor: Actor {
            user: session.user.clone(),
            role: session.role.name().to_owned(),
            auth: app.auth.method().to_owned(),
            client_ip,
        },
    };
    let socket = client::socket_for(&app.queue, &request).to_path_buf();
    let answer = tokio::task::spawn_blocking(move || {
        client::ask(&socket, &request, std::time::Duration::from_secs(660), 0)
    })
    .await
    .map_err(|err| WebError::Unavailable(err.to_string()))?
    .map_err(|err| match err {
        client::ClientError::Request(refusal) => WebError::BadRequest(refusal.to_string()),
        other => WebError::Unavailable(other.to_string()),
    })?;
    if !answer.reply.ok {
        return Err(WebError::Refused(StatusCode::FORBIDDEN, answer.reply.error));
    }
    Ok(answer.reply)
}

/// The confirmation token of what a confirmation page shows.
fn confirmation(app: &App, session: &Session, posted: &Posted, expires: &str) -> String {
    let ids = posted.ids.join(",");
    app.tokens.sign(&[
        "queue-confirm",
        &session.user,
        posted.verb.name(),
        &ids,
        &posted.reason,
        expires,
    ])
}

async fn confirm(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let posted = match posted(&app, &session, &headers, fields) {
        Ok(posted) => posted,
        Err(error) => return error_page(&error),
    };
    let reply = match ask(&app, &session, app.client_ip(peer, &headers), &posted, true).await {
        Ok(reply) => reply,
        Err(error) => return error_page(&error),
    };
    let expires = (crate::store::repo::now_ms() + CONFIRM_WITHIN_MS).to_string();
    let token = confirmation(&app, &session, &posted, &expires);
    let body = html! {
        h1 { "Confirm: " (posted.verb.name()) " " (posted.ids.len()) " message(s)" }
        p { "Exim will run: " code { (reply.argv.join(" ")) } }
        @if !posted.reason.is_empty() { p { "Reason: " (posted.reason) } }
        p.muted { "This review was recorded in the audit log as a dry run. Confirm within five minutes." }
        form method="post" action="/queue/act" {
            ul { @for id in &posted.ids { li { (id) input type="hidden" name="id" value=(id); } } }
            input type="hidden" name="action" value=(posted.verb.name());
            input type="hidden" name="reason" value=(posted.reason);
            input type="hidden" name="expires" value=(expires);
            input type="hidden" name="confirm" value=(token);
            input type="hidden" name="form_token" value=(form_token(&app, &session));
            button type="submit" { "Confirm" }
            " " a href="/queue" { "Cancel" }
        }
    };
    page("/queue", "Confirm", body)
}

async fn act(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let posted = match posted(&app, &session, &headers, fields) {
        Ok(posted) => posted,
        Err(error) => return error_page(&error),
    };
    let field = |name: &str| {
        posted
            .fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let expires = field("expires").unwrap_or_default();
    let fresh = expires
        .parse::<i64>()
        .is_ok_and(|at| at >= crate::store::repo::now_ms());
    let token = field("confirm").unwrap_or_default();
    if !fresh
        || !app.tokens.verify(
            &[
                "queue-confirm",
                &session.user,
                posted.verb.name(),
                &posted.ids.join(","),
                &posted.reason,
                &expires,
            ],
            &token,
        )
    {
        return error_page(&WebError::Refused(
            StatusCode::FORBIDDEN,
            "this confirmation is not the one shown, or it expired: review the action again"
                .to_owned(),
        ));
    }
    if !app.tokens.allow(&session.user, posted.ids.len() > 1) {
        return error_page(&WebError::Refused(
            StatusCode::TOO_MANY_REQUESTS,
            "too many actions this minute: wait a moment".to_owned(),
        ));
    }
    let reply = match ask(
        &app,
        &session,
        app.client_ip(peer, &headers),
        &posted,
        false,
    )
    .await
    {
        Ok(reply) => reply,
        Err(error) => return error_page(&error),
    };
    let body = html! {
        h1 { (posted.verb.name()) ": what Exim did" }
        table {
            thead { tr { th { "Message" } th { "Outcome" } } }
            tbody {
                @for (id, outcome) in posted.ids.iter().zip(reply.outcomes.iter().copied().chain(std::iter::repeat(Outcome::Unknown))) {
                    tr { td { a href=(format!("/message/{id}")) { (id) } } td { (outcome.name()) } }
                }
            }
        }
        p { a href="/queue" { "Back to the queue" } " · " a href="/audit" { "The audit log" } }
    };
    page("/queue", "Done", body)
}
