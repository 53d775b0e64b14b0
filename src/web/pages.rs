//! The HTML pages: search, a message, stuck recipients and frozen
//! messages, the log, and health (the mail flow is `flow_page.rs`'s). Rendered on the server with maud (escaped by
//! default, checked at compile time); each works without JavaScript.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};

use super::api::{LinesQuery, SearchQuery, StuckQuery, find_messages, read_lines, stuck_rows};
use super::mask::Masking;
use super::reply::{error_page, page};
use super::{App, WebError, WindowQuery};
use crate::query::{health, trace};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(search))
        .route("/message/{id}", get(message))
        .route("/stuck", get(stuck_page))
        .route("/log", get(log_page))
        .route("/health", get(health_page))
}

pub(super) fn window_fields(window: &WindowQuery) -> Markup {
    html! {
        label { "Since" input name="since" value=[window.since.as_deref()] placeholder="2d, 2026-11-26 or 2026-11-26 13:00"; }
        label { "Until" input name="until" value=[window.until.as_deref()] placeholder="(the newest line)"; }
    }
}

fn status(status: &str) -> Markup {
    html! { span class=(format!("status status-{status}")) { (status) } }
}

async fn search(
    State(app): State<App>,
    masking: Masking,
    Query(query): Query<SearchQuery>,
) -> Response {
    let form = html! {
        form.query method="get" action="/" {
            label { "Message id, address, Message-ID, IP or domain"
                input name="q" value=[query.q.as_deref()] autofocus placeholder="1xWZzS-0001uN-1x, alice@example.com, 192.0.2.1, example.com"; }
            (window_fields(&query.window))
            button type="submit" { "Search" }
        }
    };
    if query.q.as_deref().is_none_or(|q| q.trim().is_empty()) {
        return page(
            "/",
            "Search",
            html! { h1 { "Find a message" } (form) p.muted { "Every message, recipient and line exim-pilot stored, by Exim id, address, Message-ID header, IP or domain (a domain within at most 31 days)." } },
        );
    }
    let found = app
        .ask(move |conn| find_messages(conn, &query, false, masking))
        .await;
    let results = match &found {
        Ok(messages) => html! {
            p.muted { (messages.len()) " message(s)" }
            table {
                thead { tr { th { "Received" } th { "Id" } th { "Sender" } th { "Recipients" } th { "Status" } th.num { "Size" } } }
                tbody {
                    @for message in messages {
                        tr {
                            td { (message.received_at.as_deref().unwrap_or("(not seen)")) }
                            td { a href=(format!("/message/{}", message.id)) { (message.id) } }
                            td { (message.sender.as_deref().unwrap_or("")) }
                            td { (recipients(&message.recipients)) }
                            td { (status(&message.status)) }
                            td.num { (message.size.map(|s| s.to_string()).unwrap_or_default()) }
                        }
                    }
                }
            }
        },
        Err(error) => html! { p.error { (error.message()) } },
    };
    let code = found.as_ref().err().map(WebError::status);
    let mut response = page(
        "/",
        "Search",
        html! { h1 { "Find a message" } (form) (results) },
    );
    if let Some(code) = code {
        *response.status_mut() = code;
    }
    response
}

/// A message's recipients in a cell: the first few, and how many more.
fn recipients(recipients: &[trace::TracedRecipient]) -> Markup {
    const SHOWN: usize = 5;
    html! {
        @for (index, recipient) in recipients.iter().take(SHOWN).enumerate() {
            @if index > 0 { ", " }
            (recipient.address)
        }
        @if recipients.len() > SHOWN { " and " (recipients.len() - SHOWN) " more" }
    }
}

/// A message's page: its summary, recipients, attempts and lines.
///
/// Long because it is the page's markup, top to bottom.
async fn message(State(app): State<App>, masking: Masking, Path(id): Path<String>) -> Response {
    let wanted = id.clone();
    let found = app
        .ask(move |conn| {
            let query = SearchQuery {
                q: Some(wanted),
                window: WindowQuery::default(),
            };
            find_messages(conn, &query, true, masking)
        })
        .await;
    let messages = match found {
        Ok(messages) => messages,
        Err(error) => return error_page(&error),
    };
    let Some(main) = messages.iter().find(|m| m.id == id) else {
        return error_page(&WebError::NotFound(format!("no message {id}")));
    };
    let related: Vec<&trace::TracedMessage> = messages.iter().filter(|m| m.id != id).collect();
    let body = html! {
        h1 { "Message " (main.id) " " (status(&main.status)) }
        table {
            tbody {
                tr { th { "Sender" } td { (main.sender.as_deref().unwrap_or("(reception not seen)")) } }
                tr { th { "Received" } td { (main.received_at.as_deref().unwrap_or("")) } }
                tr { th { "Completed" } td { (main.completed_at.as_deref().unwrap_or("")) } }
                tr { th { "From host" } td { (main.host.as_deref().unwrap_or("")) } }
                tr { th { "Size" } td { (main.size.map(|s| s.to_string()).unwrap_or_default()) } }
                tr { th { "Subject" } td { (main.subject.as_deref().unwrap_or("")) } }
                tr { th { "Message-ID" } td { (main.header_message_id.as_deref().unwrap_or("")) } }
                @if let Some(parent) = &main.parent {
                    tr { th { "A bounce of" } td { a href=(format!("/message/{parent}")) { (parent) } } }
                }
                @if main.frozen { tr { th { "Frozen" } td { "yes" } } }
            }
        }
        h2 { "Recipients" }
        table {
            thead { tr { th { "Address" } th { "Delivered to" } th { "Status" } } }
            tbody {
                @for recipient in &main.recipients {
                    tr {
                        td { (recipient.address) }
                        td { (recipient.final_address.as_deref().unwrap_or("")) }
                        td { (status(&recipient.status)) }
                    }
                }
            }
        }
        @if !related.is_empty() {
            h2 { "Related messages" }
            ul {
                @for other in &related {
                    li {
                        a href=(format!("/message/{}", other.id)) { (other.id) } " "
                        @if other.parent.as_deref() == Some(main.id.as_str()) { "(its bounce) " }
                        (status(&other.status))
                    }
                }
            }
        }
        h2 { "Delivery attempts" }
        table.attempts {
            thead { tr { th { "When" } th { "" } th { "Address" } th { "Router" } th { "Transport" } th { "Host" } th { "TLS" } th { "Code" } th { "Error or confirmation" } th.num { "QT" } th.num { "DT" } } }
            tbody {
                @for attempt in &main.attempts {
                    tr class=(format!("outcome-{}", attempt.outcome)) {
                        td { (attempt.at) }
                        td { (attempt.flag) }
                        td { (attempt.address.as_deref().unwrap_or("")) }
                        td { (attempt.router.as_deref().unwrap_or("")) }
                        td { (attempt.transport.as_deref().unwrap_or("")) }
                        td { (attempt.host.as_deref().unwrap_or("")) }
                        td {
                            (attempt.tls_cipher.as_deref().unwrap_or(""))
                            @match attempt.certificate_verified {
                                Some(true) => " (verified)",
                                Some(false) => " (not verified)",
                                None => "",
                            }
                        }
                        td { (attempt.smtp_code.as_deref().unwrap_or("")) }
                        td { (attempt.error.as_deref().or(attempt.confirmation.as_deref()).unwrap_or("")) }
                        td.num { (seconds(attempt.queue_time_ms)) }
                        td.num { (seconds(attempt.delivery_time_ms)) }
                    }
                }
                @if main.attempts.is_empty() { tr { td.muted { "none" } } }
            }
        }
        h2 { "Log lines" }
        pre.lines { @for line in &main.lines { (line) "\n" } }
        @if main.lines_left_out > 0 {
            p.muted { (main.lines_left_out) " more line(s) left out: a page holds a bounded amount of text. "
                a href=(format!("/log?since=1970-01-01&grep={}", main.id)) { "Read them in the log" } }
        }
    };
    page("", &format!("Message {id}"), body)
}

/// Milliseconds as Exim would log them, roughly: `12s`, `3m4s`.
fn seconds(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return String::new() };
    let total = ms / 1000;
    match total {
        0..60 => format!("{total}s"),
        60..3600 => format!("{}m{}s", total / 60, total % 60),
        _ => format!("{}h{}m", total / 3600, total % 3600 / 60),
    }
}

async fn stuck_page(
    State(app): State<App>,
    masking: Masking,
    Query(query): Query<StuckQuery>,
) -> Response {
    let older_than = query.older_than.clone().unwrap_or_else(|| "4h".to_owned());
    let report = match app.ask(move |conn| stuck_rows(conn, &query, masking)).await {
        Ok(report) => report,
        Err(error) => return error_page(&error),
    };
    let rows = &report.waiting;
    let body = html! {
        h1 { "Stuck and frozen" }
        form.query method="get" action="/stuck" {
            label { "Waiting longer than" input name="older_than" value=(older_than); }
            button type="submit" { "Show" }
        }
        p.muted { (rows.len()) " recipient(s) pending or deferred, oldest first. What is in Exim's queue now, and acting on it: " a href="/queue" { "the queue" } "." }
        table {
            thead { tr { th { "Received" } th { "Message" } th { "Recipient" } th { "Status" } th { "Last attempt" } th { "Last error" } } }
            tbody {
                @for row in rows {
                    tr {
                        td { (row.received_at.as_deref().unwrap_or("(not seen)")) }
                        td { a href=(format!("/message/{}", row.message)) { (row.message) } }
                        td { (row.address.as_deref().unwrap_or("(not logged yet)")) }
                        td { (status(&row.status)) }
                        td { (row.last_attempt_at.as_deref().unwrap_or("")) }
                        td {
                            @if let Some(error) = &row.last_error { (error) }
                            @else if let Some(held) = &row.held { "held: " (held) }
                        }
                    }
                }
            }
        }
        h2 { "Frozen messages" }
        p.muted { (report.frozen.len()) " message(s) frozen, oldest first: Exim will not try them until thawed." }
        table id="frozen" {
            thead { tr { th { "Received" } th { "Message" } th { "Frozen since" } th { "Why" } th.num { "Waiting recipients" } } }
            tbody {
                @for row in &report.frozen {
                    tr {
                        td { (row.received_at.as_deref().unwrap_or("(not seen)")) }
                        td { a href=(format!("/message/{}", row.message)) { (row.message) } }
                        td { (row.frozen_at.as_deref().unwrap_or("")) }
                        td { (row.reason.as_deref().unwrap_or("(no reason given)")) }
                        td.num { (row.waiting_recipients) }
                    }
                }
                @if report.frozen.is_empty() { tr { td.muted { "none" } } }
            }
        }
    };
    page("/stuck", "Stuck", body)
}

async fn log_page(
    State(app): State<App>,
    masking: Masking,
    Query(mut query): Query<LinesQuery>,
) -> Response {
    if query.window.since.is_none() && query.window.until.is_none() {
        query.window.since = Some("1h".to_owned());
    }
    let shown = query.clone();
    let read = app.ask(move |conn| read_lines(conn, &query, masking)).await;
    let form = html! {
        form.query method="get" action="/log" {
            (window_fields(&shown.window))
            label { "Kind" input name="kind" value=[shown.kind.as_deref()] placeholder="rejection, delivery, ..."; }
            label { "Matching" input name="grep" value=[shown.grep.as_deref()] placeholder="a regular expression"; }
            button type="submit" { "Show" }
        }
    };
    let body = match read {
        Ok(found) => {
            let next = found.next.as_ref().map(|after| {
                let mut next = shown.clone();
                next.after = Some(after.clone());
                format!(
                    "/log?{}",
                    serde_urlencoded::to_string(&next).unwrap_or_default()
                )
            });
            html! {
                h1 { "The log" }
                (form)
                p.muted {
                    (found.lines.len()) " line(s)"
                    @if let Some(next) = &next { ", more after them: " a href=(next) { "next page" } }
                    " "
                    button type="button" data-wrap-toggle hidden { "Wrap long lines" }
                }
                pre.lines { @for line in &found.lines { (line.line) "\n" } }
                @if let Some(next) = &next { p { a href=(next) { "Next page" } } }
            }
        }
        Err(error) => {
            let mut response = page(
                "/log",
                "Log",
                html! { h1 { "The log" } (form) p.error { (error.message()) } },
            );
            *response.status_mut() = error.status();
            return response;
        }
    };
    page("/log", "Log", body)
}

async fn health_page(State(app): State<App>) -> Response {
    let health = match app.ask(|conn| Ok(health::read(conn)?)).await {
        Ok(health) => health,
        Err(error) => return error_page(&error),
    };
    let body = html! {
        h1 { "Health" }
        @if let Some(stall) = &health.stall {
            p.error id="stalled" {
                "The daemon's reading of " (stall.source) " has stalled since " (stall.since) ": " (stall.reason)
                ". Nothing new is stored until it reads again."
            }
        }
        div.cards {
            div.card id="last-commit" { div.value { (health.last_commit_at.as_deref().unwrap_or("never")) } div.label { "last commit" } }
            div.card id="since-commit" {
                div.value { (health.seconds_since_commit.map_or_else(|| "-".to_owned(), |s| seconds(Some(s * 1000)))) }
                div.label { "since the last commit" }
            }
            div.card id="newest-line" { div.value { (health.newest_line_at.as_deref().unwrap_or("none")) } div.label { "newest line (log clock)" } }
            div.card id="gaps" { div.value { (health.gap_count) } div.label { "gaps recorded" } }
        }
        h2 { "Read positions" }
        table {
            thead { tr { th { "Source" } th.num { "Bytes stored" } th { "Last moved" } } }
            tbody { @for source in &health.sources { tr { td { (source.path) } td.num { (source.offset) } td { (source.updated_at) } } } }
        }
        h2 { "Gaps: bytes that could not be read" }
        table {
            thead { tr { th { "Found" } th { "File" } th.num { "From" } th.num { "To" } th { "Why" } } }
            tbody {
                @for gap in &health.gaps {
                    tr { td { (gap.detected_at) } td { (gap.path) } td.num { (gap.start) } td.num { (gap.end.map(|e| e.to_string()).unwrap_or_else(|| "its end".to_owned())) } td { (gap.reason) } }
                }
                @if health.gaps.is_empty() { tr { td.muted { "none" } } }
            }
        }
        h2 { "Host problems in the last day of the log" }
        table id="host-problems" {
            thead { tr { th { "Kind" } th.num { "Lines" } th { "Last" } } }
            tbody {
                @for problem in &health.host_problems {
                    tr {
                        td { a href=(format!("/log?kind={}", problem.kind)) { (problem.kind) } }
                        td.num { (problem.lines) }
                        td { (problem.last_at) }
                    }
                }
                @if health.host_problems.is_empty() { tr { td.muted { "none" } } }
            }
        }
        h2 { "Audit log" }
        table {
            thead { tr { th { "When" } th { "Who" } th { "What" } th { "Details" } } }
            tbody { @for entry in &health.audit { tr { td { (entry.at) } td { (entry.actor) } td { (entry.action) } td { (entry.detail) } } } }
        }
    };
    page("/health", "Health", body)
}
