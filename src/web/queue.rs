//! Exim's queue in the web view: `/queue` (the page) and `/api/v1/queue`
//! (the CLI's JSON), listed by the queue helper and joined with the log's
//! history of each recipient; `/audit` for admins. The view never runs Exim:
//! it asks the helper on its socket, as its own user, naming the
//! signed-in user.

use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::asker::{Asker, ask_helper};
use super::auth::Session;
use super::mask::Masking;
use super::reply::{answer, error_page, page};
use super::{App, WebError, bounded};
use crate::config::WebRole;
use crate::query::queue::{QueuedView, recipient_histories, views};
use crate::queue::filter::Filter;
use crate::queue::request::Verb;

/// Messages one answer lists at most.
const MAX_ROWS: usize = 1000;
/// The most listing read from the helper for one request.
const MAX_LISTING: u64 = 64 << 20;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/queue", get(queue_page))
        .route("/api/v1/queue", get(queue_api))
        .route("/audit", get(audit_page))
}

/// The choices of `/queue` and `/api/v1/queue` (the CLI's).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct QueueQuery {
    pub frozen: Option<String>,
    pub bounces: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub older: Option<String>,
    pub younger: Option<String>,
    pub limit: Option<usize>,
}

impl QueueQuery {
    /// The filter; a viewer may not choose by address (the answer would
    /// say whether one is queued).
    fn filter(&self, role: WebRole) -> Result<Filter, WebError> {
        if role == WebRole::Viewer && (self.sender.is_some() || self.recipient.is_some()) {
            return Err(WebError::Refused(
                axum::http::StatusCode::FORBIDDEN,
                "a viewer cannot choose queued messages by address".to_owned(),
            ));
        }
        let pattern = |name: &str, value: Option<&str>| -> Result<_, WebError> {
            bounded(name, value)?
                .map(|text| {
                    Filter::pattern(text)
                        .map_err(|err| WebError::BadRequest(format!("{name}: {err}")))
                })
                .transpose()
        };
        let age = |name: &str, value: Option<&str>| -> Result<Option<u64>, WebError> {
            bounded(name, value)?
                .map(|text| {
                    humantime::parse_duration(text)
                        .map(|d| d.as_secs())
                        .map_err(|err| WebError::BadRequest(format!("{name}: {err}")))
                })
                .transpose()
        };
        Ok(Filter {
            frozen: match self.frozen.as_deref() {
                Some("1" | "yes" | "frozen") => Some(true),
                Some("0" | "no" | "active") => Some(false),
                _ => None,
            },
            bounces: self
                .bounces
                .as_deref()
                .is_some_and(|b| b == "1" || b == "yes"),
            sender: pattern("sender", self.sender.as_deref())?,
            recipient: pattern("recipient", self.recipient.as_deref())?,
            older_than: age("older", self.older.as_deref())?,
            younger_than: age("younger", self.younger.as_deref())?,
        })
    }
}

/// The queue as `session` may see it: listed by the helper, chosen (the
/// first `limit`, and how many the choice takes in all), joined with the
/// log's history, masked for a viewer.
async fn listing(
    app: &App,
    asker: &Asker,
    query: &QueueQuery,
    masking: Masking,
) -> Result<(Vec<QueuedView>, usize), WebError> {
    let filter = query.filter(asker.session.role)?;
    let limit = query.limit.unwrap_or(MAX_ROWS).min(MAX_ROWS);
    let request = asker.request(app, Verb::List, Vec::new());
    let answer = ask_helper(
        app,
        request,
        std::time::Duration::from_secs(60),
        MAX_LISTING,
    )
    .await?;
    if !answer.reply.ok {
        return Err(WebError::Unavailable(answer.reply.error));
    }
    let now = crate::store::repo::now_ms() / 1000;
    let chosen = filter.choose(&answer.payload, now, limit);
    drop(answer);
    let (messages, matching) = (chosen.messages, chosen.matching);
    let rows = app
        .ask(move |conn| {
            let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
            let histories = recipient_histories(conn, &ids)?;
            Ok(views(&messages, &histories))
        })
        .await?;
    let rows = rows.into_iter().map(|row| masking.apply(row)).collect();
    Ok((rows, matching))
}

async fn queue_api(
    State(app): State<App>,
    asker: Asker,
    masking: Masking,
    Query(query): Query<QueueQuery>,
) -> Response {
    answer(
        listing(&app, &asker, &query, masking)
            .await
            .map(|(rows, _)| rows),
    )
}

async fn queue_page(
    State(app): State<App>,
    asker: Asker,
    masking: Masking,
    Query(query): Query<QueueQuery>,
) -> Response {
    let session = &asker.session;
    let acts = super::queue_act::offered(&app, session);
    let (rows, matching) = match listing(&app, &asker, &query, masking).await {
        Ok(listed) => listed,
        Err(error) => return error_page(&error),
    };
    let frozen = rows.iter().filter(|r| r.frozen).count();
    let body = html! {
        h1 { "Exim's queue" }
        form.query method="get" action="/queue" {
            label { "Frozen"
                select name="frozen" {
                    option value="" { "either" }
                    option value="1" selected[query.frozen.as_deref() == Some("1")] { "frozen" }
                    option value="0" selected[query.frozen.as_deref() == Some("0")] { "active" }
                }
            }
            label { "Older than" input name="older" value=[query.older.as_deref()] placeholder="2h"; }
            label { "Younger than" input name="younger" value=[query.younger.as_deref()] placeholder="30m"; }
            @if session.role == WebRole::Admin {
                label { "Sender" input name="sender" value=[query.sender.as_deref()] placeholder="@example\\.com$"; }
                label { "Recipient" input name="recipient" value=[query.recipient.as_deref()]; }
            }
            button type="submit" { "Show" }
        }
        p.muted {
            (matching) " message(s)"
            @if matching > rows.len() { ", the first " (rows.len()) " shown" }
            "; of those shown, " (frozen) " frozen"
        }
        form method="post" action="/queue/confirm" {
        @if acts { (super::queue_act::action_form(&app, session)) }
        table {
            thead { tr { th { "Message" } th { "Size" } th { "Sender" } th { "Recipient" } th { "Attempts" } th { "Why it waits" } } }
            tbody {
                @for row in &rows {
                    @for (index, recipient) in row.recipients.iter().filter(|r| !r.delivered).enumerate() {
                        tr {
                            td {
                                @if index == 0 {
                                    @if acts { input type="checkbox" name="id" value=(row.queue_id); " " }
                                    a href=(format!("/message/{}", row.queue_id)) { (row.queue_id) }
                                    @if session.role == WebRole::Admin { " " a href=(format!("/queue/{}", row.queue_id)) { "(spool)" } }
                                    @if row.frozen { " " span.status.status-frozen { "frozen" } }
                                }
                            }
                            td.num { @if index == 0 { (row.message_size) } }
                            td { @if index == 0 { (if row.sender.is_empty() { "<>" } else { row.sender.as_str() }) } }
                            td { (recipient.address) }
                            td.num { (recipient.attempts) }
                            td { (recipient.delay_reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        }
    };
    page("/queue", "Queue", body)
}

/// `/audit`: the audit log, newest first (admins only: it names people and
/// addresses).
async fn audit_page(State(app): State<App>, Extension(session): Extension<Session>) -> Response {
    if session.role != WebRole::Admin {
        return error_page(&WebError::Refused(
            axum::http::StatusCode::FORBIDDEN,
            "the audit log is for admins".to_owned(),
        ));
    }
    let filter = crate::query::audit::AuditFilter::default();
    let rows = match app
        .ask(move |conn| Ok(crate::query::audit::find(conn, &filter)?))
        .await
    {
        Ok(rows) => rows,
        Err(error) => return error_page(&error),
    };
    let body = html! {
        h1 { "Audit log" }
        table {
            thead { tr { th { "When" } th { "Who" } th { "From" } th { "What" } th { "Message" } th { "Outcome" } th { "Confirmed" } } }
            tbody {
                @for row in &rows {
                    tr {
                        td { (row.at) }
                        td { (row.actor) " (" (row.origin) ")" }
                        td { (row.client_ip.as_deref().unwrap_or("")) }
                        td { (row.action) }
                        td { @if let Some(id) = &row.message_id { a href=(format!("/message/{id}")) { (id) } } }
                        td { (row.outcome.as_deref().unwrap_or("")) }
                        td { (row.confirmed_at.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    };
    page("/audit", "Audit", body)
}
