//! The mail flow page (`/flow`): a window's totals, the flow chart with
//! Exim's queue under it, and the top lists and time bands of `stats`.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};

use super::mask::Masking;
use super::pages::window_fields;
use super::reply::{error_page, page};
use super::{App, WindowQuery, chart};
use crate::query::{flow, stats};

pub(super) fn routes() -> Router<App> {
    Router::new().route("/flow", get(flow_page))
}

async fn flow_page(
    State(app): State<App>,
    masking: Masking,
    Query(mut window): Query<WindowQuery>,
) -> Response {
    // The last day unless asked: all-time statistics of a large database
    // take seconds, which a page opened by a click should not.
    if window.since.is_none() && window.until.is_none() {
        window.since = Some("1d".to_owned());
    }
    let asked = window.clone();
    let read = app
        .ask(move |conn| {
            let window = asked.window(conn)?;
            Ok((
                masking.apply(stats::compute(conn, window)?),
                flow::compute(conn, window)?,
            ))
        })
        .await;
    let (report, flow) = match read {
        Ok(read) => read,
        Err(error) => return error_page(&error),
    };
    let labels: Vec<String> = flow.buckets.iter().map(|b| b.start.clone()).collect();
    let counts: Vec<Vec<u64>> = flow.buckets.iter().map(|b| b.counts.to_vec()).collect();
    let cards = [
        ("received", report.counts.received),
        ("delivered", report.counts.delivered),
        ("deferred", report.counts.deferred),
        ("bounced", report.counts.bounced),
        (
            "rejected",
            report.counts.rejected + report.counts.temporarily_rejected,
        ),
        ("completed", report.counts.completed),
        ("frozen", report.counts.frozen),
    ];
    let bands = |rows: &[stats::Row]| -> Vec<(String, u64)> {
        rows.iter().map(|r| (r.key.clone(), r.count)).collect()
    };
    let body = html! {
        h1 { "Mail flow" }
        form.query method="get" action="/flow" {
            (window_fields(&window))
            button type="submit" { "Show" }
        }
        p.muted {
            (report.since.as_deref().unwrap_or("From the first line"))
            " to " (report.until.as_deref().unwrap_or("the newest line"))
            "; the chart per " (flow.step) "."
        }
        div.cards {
            @for (name, value) in cards {
                div.card id=(format!("total-{name}")) {
                    div.value { (value) }
                    div.label { (name) }
                }
            }
        }
        div.legend {
            @for name in &flow.series { span { i class=(format!("s-{name}")) {} (name) } }
        }
        (chart::stacked_bars(&flow.series, &labels, &counts))
        (queue_chart(&flow, &labels))
        div.columns {
            div { h2 { "Top senders" } (top_table(&report.top_senders)) }
            div { h2 { "Top recipient domains" } (top_table(&report.top_recipient_domains)) }
            div { h2 { "Top sending hosts" } (top_table(&report.top_sending_hosts)) }
            div { h2 { "Rejection reasons" } (top_table(&report.rejections_by_reason)) }
            div { h2 { "Queue time (received to completed)" } (chart::bars(&bands(&report.queue_times))) }
            div { h2 { "Delivery time (DT=)" } (chart::bars(&bands(&report.delivery_times))) }
        }
    };
    page("/flow", "Mail flow", body)
}

/// Exim's queue over the flow chart's buckets, as the daemon counted it
/// through the queue helper; a line saying why when it never did.
fn queue_chart(flow: &flow::Flow, labels: &[String]) -> Markup {
    let values: Vec<Vec<Option<u64>>> = flow
        .buckets
        .iter()
        .map(|b| vec![b.queue.map(|q| q.messages), b.queue.map(|q| q.frozen)])
        .collect();
    let counted = flow.buckets.iter().any(|b| b.queue.is_some());
    html! {
        h2 { "Exim's queue" }
        @if counted {
            div.legend {
                span { i.l-messages {} "messages" }
                span { i.l-frozen {} "frozen" }
            }
            (chart::levels("Exim's queue", &["messages", "frozen"], labels, &values))
        } @else {
            p.muted {
                "The queue was not counted in this window: the daemon counts it once a minute "
                "through the queue helper, when its socket is enabled (" a href="/queue" { "queue" } ")."
            }
        }
    }
}

fn top_table(rows: &[stats::Row]) -> Markup {
    html! {
        table {
            tbody {
                @for row in rows {
                    tr {
                        td { (row.key) }
                        td.num { (row.count) }
                    }
                }
                @if rows.is_empty() { tr { td.muted { "none" } } }
            }
        }
    }
}
