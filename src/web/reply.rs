//! What every answer is made of, below the pages, the API, the live view
//! and the guard alike: the frame of a page, an error as a page or as
//! JSON, a JSON answer, and a stored line as an answer shows it.

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::WebError;
use super::mask::Masking;

const NAV: [(&str, &str); 8] = [
    ("/", "Search"),
    ("/fleet", "Fleet"),
    ("/flow", "Mail flow"),
    ("/stuck", "Stuck"),
    ("/queue", "Queue"),
    ("/live", "Live"),
    ("/log", "Log"),
    ("/health", "Health"),
];

/// The frame of every page.
pub(crate) fn layout(here: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · exim-pilot" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header {
                    span.brand { "exim-pilot" }
                    @for (href, name) in NAV {
                        a href=(href) class=[(href == here).then_some("here")] { (name) }
                    }
                    form.signout method="post" action="/logout" { button type="submit" { "Sign out" } }
                }
                main { (body) }
            }
        }
    }
}

pub(crate) fn page(here: &str, title: &str, body: Markup) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        layout(here, title, body),
    )
        .into_response()
}

/// An error as a page, with its status.
pub(crate) fn error_page(error: &WebError) -> Response {
    let body = html! {
        h1 { "Cannot answer" }
        p.error { (error.message()) }
        p { a href="/" { "Back to the search" } }
    };
    (error.status(), layout("", "Error", body)).into_response()
}

/// An error as JSON: `{"error": "..."}` with its status.
pub(crate) fn error_response(error: &WebError) -> Response {
    (
        error.status(),
        Json(serde_json::json!({ "error": error.message() })),
    )
        .into_response()
}

pub(crate) fn answer<T: serde::Serialize>(result: Result<T, WebError>) -> Response {
    match result {
        Ok(value) => ([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response(),
        Err(error) => error_response(&error),
    }
}

/// Bytes of line text one answer holds at most (lines, or a search's
/// messages' lines, between them): with escaping, an answer stays within
/// what the cache keeps, and memory per request is bounded whatever the
/// lines' lengths.
pub(crate) const PAGE_LINE_BYTES: usize = 1 << 20;

/// The longest line shown whole; longer ones are cut here and marked
/// (`lines` on the command line prints them whole).
pub(crate) const SHOWN_LINE_BYTES: usize = 256 << 10;

/// A line as a page shows it: cut to [`SHOWN_LINE_BYTES`], and masked for a
/// viewer. True when it was cut.
pub(crate) fn shown_line(masking: Masking, bytes: &[u8]) -> (String, bool) {
    let cut = bytes.len() > SHOWN_LINE_BYTES;
    (
        masking.line(&bytes[..bytes.len().min(SHOWN_LINE_BYTES)]),
        cut,
    )
}
