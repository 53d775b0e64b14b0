//! Acting on Exim's queue from the web view, for admins, when `[queue]
//! actions` is on: the queue page's form posts the chosen messages to
//! `/queue/confirm`, which asks the helper for a dry run (recorded, and
//! showing Exim's command) and answers a confirmation page; confirming posts
//! to `/queue/act`, which runs exactly what was shown. Both posts must come
//! from this site (same origin) with the user's form token; the
//! confirmation carries a token bound to the action, the ids, the reason
//! and an expiry; each user has a limit of actions per minute. Also a
//! queued message's spool files for admins: `/queue/{id}` (headers and
//! message log) and `/queue/{id}/body` (plain text, recorded).

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use maud::{Markup, html};

use super::asker::{Asker, ask_helper};
use super::auth::{Session, same_origin};
use super::reply::{error_page, page};
use super::{App, WebError};
use crate::config::WebRole;
use crate::queue::outcome::Outcome;
use crate::queue::request::Verb;

/// How long a confirmation page may be confirmed.
const CONFIRM_WITHIN_MS: i64 = 5 * 60 * 1000;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/queue/confirm", post(confirm))
        .route("/queue/act", post(act))
        .route("/queue/{id}", axum::routing::get(queued_message))
        .route("/queue/{id}/body", axum::routing::get(queued_body))
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
    asker: &Asker,
    posted: &Posted,
    dry_run: bool,
) -> Result<crate::queue::helper::Reply, WebError> {
    let mut request = asker.request(app, posted.verb, posted.ids.clone());
    request.dry_run = dry_run;
    request.reason.clone_from(&posted.reason);
    let answer = ask_helper(app, request, std::time::Duration::from_secs(660), 0).await?;
    if !answer.reply.ok {
        return Err(WebError::Refused(StatusCode::FORBIDDEN, answer.reply.error));
    }
    Ok(answer.reply)
}

/// What both posts check first (see [`posted`]), and the helper's answer
/// to the request they make (a dry run for the confirmation page).
async fn checked_and_asked(
    app: &App,
    asker: &Asker,
    headers: &HeaderMap,
    fields: Vec<(String, String)>,
    dry_run: bool,
    confirmed: impl FnOnce(&Posted) -> Result<(), WebError>,
) -> Result<(Posted, crate::queue::helper::Reply), WebError> {
    let posted = posted(app, &asker.session, headers, fields)?;
    confirmed(&posted)?;
    let reply = ask(app, asker, &posted, dry_run).await?;
    Ok((posted, reply))
}

/// The confirmation token of what a confirmation page shows.
fn confirmation(app: &App, session: &Session, posted: &Posted, expires: &str) -> String {
    let parts = confirmation_parts(session, posted, expires);
    let parts: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
    app.tokens.sign(&parts)
}

/// What a confirmation token is bound to.
fn confirmation_parts<'a>(
    session: &'a Session,
    posted: &'a Posted,
    expires: &'a str,
) -> [std::borrow::Cow<'a, str>; 6] {
    [
        "queue-confirm".into(),
        session.user.as_str().into(),
        posted.verb.name().into(),
        posted.ids.join(",").into(),
        posted.reason.as_str().into(),
        expires.into(),
    ]
}

async fn confirm(
    State(app): State<App>,
    asker: Asker,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let session = &asker.session;
    let (posted, reply) =
        match checked_and_asked(&app, &asker, &headers, fields, true, |_| Ok(())).await {
            Ok(done) => done,
            Err(error) => return error_page(&error),
        };
    let expires = (crate::store::repo::now_ms() + CONFIRM_WITHIN_MS).to_string();
    let token = confirmation(&app, session, &posted, &expires);
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
            input type="hidden" name="form_token" value=(form_token(&app, session));
            button type="submit" { "Confirm" }
            " " a href="/queue" { "Cancel" }
        }
    };
    page("/queue", "Confirm", body)
}

async fn act(
    State(app): State<App>,
    asker: Asker,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let session = &asker.session;
    let shown = |posted: &Posted| -> Result<(), WebError> {
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
        let parts = confirmation_parts(session, posted, &expires);
        let parts: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
        if !fresh || !app.tokens.verify(&parts, &token) {
            return Err(WebError::Refused(
                StatusCode::FORBIDDEN,
                "this confirmation is not the one shown, or it expired: review the action again"
                    .to_owned(),
            ));
        }
        if !app.tokens.allow(&session.user, posted.ids.len() > 1) {
            return Err(WebError::Refused(
                StatusCode::TOO_MANY_REQUESTS,
                "too many actions this minute: wait a moment".to_owned(),
            ));
        }
        Ok(())
    };
    let (posted, reply) =
        match checked_and_asked(&app, &asker, &headers, fields, false, shown).await {
            Ok(done) => done,
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

/// `/queue/{id}`: a queued message's headers and its message log as Exim
/// keeps them, for admins (they hold every address); the body behind a
/// link of its own, since reading it is recorded.
async fn queued_message(
    State(app): State<App>,
    asker: Asker,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let headers = match shown(&app, &asker, Verb::ShowHeaders, &id).await {
        Ok(text) => text,
        Err(error) => return error_page(&error),
    };
    // A message without a message log (message_logs = false) still shows.
    let log = shown(&app, &asker, Verb::ShowLog, &id)
        .await
        .unwrap_or_else(|error| error.message().to_owned());
    let body = html! {
        h1 { "Queued message " (id) }
        p { a href=(format!("/message/{id}")) { "What the log says of it" } " · "
            a href=(format!("/queue/{id}/body")) { "Its body (as plain text; recorded in the audit log)" } }
        h2 { "Headers (Exim's spool file)" }
        pre { (headers) }
        h2 { "Message log" }
        pre { (log) }
    };
    page("/queue", "Queued message", body)
}

/// `/queue/{id}/body`: the body as plain text (never rendered as HTML),
/// cut at 1 MiB; the helper records who read it.
async fn queued_body(
    State(app): State<App>,
    asker: Asker,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match shown(&app, &asker, Verb::ShowBody, &id).await {
        Ok(text) => (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                ),
                (axum::http::header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        Err(error) => error_page(&error),
    }
}

/// What the helper shows of message `id` (`verb` is one of the show verbs),
/// for an admin.
async fn shown(app: &App, asker: &Asker, verb: Verb, id: &str) -> Result<String, WebError> {
    if asker.session.role != WebRole::Admin {
        return Err(WebError::Refused(
            StatusCode::FORBIDDEN,
            "a queued message's spool files are for admins: they hold every address".to_owned(),
        ));
    }
    let request = asker.request(app, verb, vec![id.to_owned()]);
    let answer = ask_helper(app, request, std::time::Duration::from_secs(30), 1 << 20).await?;
    if !answer.reply.ok {
        return Err(WebError::NotFound(answer.reply.error));
    }
    Ok(String::from_utf8_lossy(&answer.payload).into_owned())
}
