//! Answers to operators' questions, read from the database: `stats`,
//! `trace` and `stuck` (and from the fleet's PostgreSQL: `fleet`). Read-only, fixed SQL, every value bound.
//!
//! Times are the log's own clock (see the schema). A window bound is a
//! date (`2024-03-01`), a date and time (`2024-03-01 14:00[:00]`), or an
//! age (`2h`, `3d`) counted back from the newest line in the database, so
//! questions about old logs and live ones work the same way.

/// SQL for the last error of recipient `r` (a row of `recipients`): its
/// latest later attempt's, if it has any, else its first attempt's. A
/// macro, so that constant statements can `concat!` it.
macro_rules! last_error_of_r {
    () => {
        "CASE WHEN EXISTS (SELECT 1 FROM attempts a
                           WHERE a.message_id = r.message_id AND a.recipient_id = r.id)
              THEN (SELECT a.error_text FROM later_attempts a
                    WHERE a.message_id = r.message_id AND a.recipient_id = r.id
                    ORDER BY a.attempted_ms DESC, a.id DESC LIMIT 1)
              ELSE (SELECT f.error_text FROM first_attempts f WHERE f.recipient_id = r.id) END"
    };
}

pub mod audit;
#[cfg(feature = "fleet")]
pub mod fleet;
pub mod flow;
pub mod health;
pub mod lines;
pub mod metrics;
pub mod queue;
pub mod stats;
pub mod stuck;
pub mod trace;

use std::path::Path;

use deadpool_sqlite::rusqlite::Connection;

use crate::store::repo::NO_TIME_MINUTE;
use crate::store::{ReadOnly, StoreError};

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The arguments are wrong: one clear line, exit status 2.
    #[error("{0}")]
    BadArgument(String),
    #[error(transparent)]
    /// The database could not answer.
    Store(#[from] StoreError),
    /// Writing the answer failed (its reader went away: `| head`).
    #[error("writing the output: {0}")]
    Output(std::io::Error),
}

/// Opens the database read-only (queries work while the daemon writes),
/// saying what to do when it holds nothing this version can read yet.
pub fn open(path: &Path) -> Result<Connection, QueryError> {
    let missing = |what: String| Err(QueryError::BadArgument(what));
    match crate::store::open_read_only(path)? {
        ReadOnly::Ready(conn) => Ok(conn),
        ReadOnly::Missing => missing(format!(
            "no database at {}: start the daemon or run `exim-pilot ingest` first, or pass --db",
            path.display()
        )),
        ReadOnly::Empty => missing(format!(
            "{} holds no exim-pilot data yet: start the daemon or run `exim-pilot ingest`",
            path.display()
        )),
        ReadOnly::Older(version) => missing(format!(
            "{} has schema version {version}, older than the {} this exim-pilot reads: run \
             the daemon or `exim-pilot ingest` once with this version to upgrade it",
            path.display(),
            crate::store::latest_version()
        )),
    }
}

/// A time window in the log's clock, in milliseconds; open ends are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// The first millisecond in it, if bounded.
    pub since: Option<i64>,
    /// The last millisecond in it, if bounded.
    pub until: Option<i64>,
}

impl Window {
    /// Parses `--since` and `--until`.
    pub fn parse(
        conn: &Connection,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<Window, QueryError> {
        let newest = || newest_line_ms(conn);
        let since = since
            .map(|text| bound(text, "--since", newest))
            .transpose()?;
        let until = until
            .map(|text| bound(text, "--until", newest))
            .transpose()?;
        if let (Some(since), Some(until)) = (since, until)
            && since > until
        {
            return Err(QueryError::BadArgument(
                "--since is after --until".to_owned(),
            ));
        }
        Ok(Window { since, until })
    }

    /// The bounds for SQL `BETWEEN ?1 AND ?2`. Open ends are widened, but
    /// not to the minute that counts lines without a time, which only a
    /// report without any window includes.
    pub fn sql_bounds(&self) -> (i64, i64) {
        (
            self.since.unwrap_or(NO_TIME_MINUTE + 1),
            self.until.unwrap_or(i64::MAX),
        )
    }
}

/// What ages count back from: the log's clock, or, with no line stored
/// yet, the wall clock (not 1970).
fn newest_line_ms(conn: &Connection) -> Result<i64, QueryError> {
    Ok(crate::store::repo::newest_line_ms(conn)?.unwrap_or_else(crate::store::repo::now_ms))
}

/// One window bound: an age (back from the newest line), `today` or
/// `yesterday` (local midnight), or a date and time: the log's own form
/// (`2024-03-01`, `2024-03-01 14:00`, `2024-03-01 14:00:05`) or ISO 8601 /
/// RFC 3339 (`2024-03-01T14:00:05`, with fractions, `Z` or `+02:00`).
pub(crate) fn bound(
    text: &str,
    flag: &str,
    newest: impl Fn() -> Result<i64, QueryError>,
) -> Result<i64, QueryError> {
    let text = text.trim();
    if let Ok(age) = humantime::parse_duration(text) {
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let at = newest()?.saturating_sub(age);
        if at < 0 {
            return Err(QueryError::BadArgument(format!(
                "{flag}: an age of {text} reaches back before 1970; give a date or a shorter age"
            )));
        }
        return Ok(at);
    }
    if let Some(days_back) = match text {
        "today" => Some(0),
        "yesterday" => Some(1),
        _ => None,
    } {
        let now = crate::store::repo::now_ms();
        let local = now + crate::localtime::utc_offset_ms(now);
        return Ok(local - local.rem_euclid(86_400_000) - days_back * 86_400_000);
    }
    let (naive, offset_ms) = split_offset(text);
    let padded = match naive.len() {
        10 => format!("{naive} 00:00:00"),
        16 => format!("{naive}:00"),
        _ => naive.clone(),
    };
    match crate::parse::parse_line(format!("{padded} x").as_bytes()).prefix {
        // The calendar check: 2026-02-30 would otherwise count on into
        // March, and 24:00 into the next day.
        Some(prefix) if padded.len() == 19 && format_ms(prefix.timestamp.local_ms()) == padded => {
            let naive_ms = prefix.timestamp.local_ms();
            Ok(match offset_ms {
                // The log is written in the host's local time: an instant
                // given with its offset is shown as the log would have it.
                Some(offset) => {
                    let utc = naive_ms - offset;
                    utc + crate::localtime::utc_offset_ms(utc)
                }
                None => naive_ms,
            })
        }
        Some(_) if padded.len() == 19 => Err(QueryError::BadArgument(format!(
            "{flag}: no such date or time: {text:?}"
        ))),
        _ => Err(QueryError::BadArgument(format!(
            "{flag}: not a date such as 2024-03-01, 2024-03-01 14:00, 2024-03-01T14:00:00Z, \
             today, or an age such as 2h, got {text:?}"
        ))),
    }
}

/// `2024-03-01T14:00:05.250+02:00` as the log's form `2024-03-01 14:00:05`
/// and the offset in ms (`Z`: 0; none: `None`). Fractions of a second are
/// dropped: lines have whole seconds.
fn split_offset(text: &str) -> (String, Option<i64>) {
    let mut naive = text.to_owned();
    if naive.len() > 10 && matches!(naive.as_bytes()[10], b'T' | b't') {
        naive.replace_range(10..11, " ");
    }
    let mut offset = None;
    if naive.len() > 16 {
        if let Some(stripped) = naive.strip_suffix(['Z', 'z']) {
            naive = stripped.to_owned();
            offset = Some(0);
        } else if let Some(at) = naive[16..].rfind(['+', '-']).map(|at| at + 16) {
            let sign = if naive.as_bytes()[at] == b'-' { -1 } else { 1 };
            let digits: String = naive[at + 1..].chars().filter(|c| *c != ':').collect();
            if let (4, Ok(hhmm)) = (digits.len(), digits.parse::<i64>()) {
                offset = Some(sign * ((hhmm / 100) * 3600 + hhmm % 100 * 60) * 1000);
                naive.truncate(at);
            }
        }
    }
    if naive.len() > 19 && naive.as_bytes()[19] == b'.' {
        naive.truncate(19);
    }
    (naive, offset)
}

/// `text` with every control character but newline and tab made visible
/// (`\x1b`, `\u{9b}`): a log line can carry bytes from a sender (a subject,
/// an SMTP response) that a terminal would obey as escape sequences, to
/// retitle the window, move the cursor or hide what follows.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let is_control = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if is_control(c) && (c as u32) < 0x80 => {
                escaped.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_control(c) => escaped.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => escaped.push(c),
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// Formats log-clock milliseconds as `YYYY-MM-DD HH:MM:SS`.
pub fn format_ms(ms: i64) -> String {
    crate::parse::format_seconds(ms.div_euclid(1000))
}

/// The steps of SQLite's plan for `sql`, its parameters unbound, for tests
/// that check a query is answered from indexes.
#[cfg(test)]
pub(crate) fn query_plan(conn: &Connection, sql: &str) -> Vec<String> {
    use deadpool_sqlite::rusqlite::params_from_iter;
    use deadpool_sqlite::rusqlite::types::Null;
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let unbound = std::iter::repeat_n(Null, statement.parameter_count());
    statement
        .query_map(params_from_iter(unbound), |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_made_visible_but_text_is_kept() {
        assert_eq!(escape_controls("plain\tline\n"), "plain\tline\n");
        assert_eq!(
            escape_controls("T=\"\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\""),
            "T=\"\\x1b]0;pwned\\x07\\x1b[2J\\u{9b}31m\""
        );
        assert_eq!(escape_controls("naïve \u{7f}"), "naïve \\x7f");
    }

    #[test]
    fn impossible_dates_and_ages_before_1970_are_refused() {
        let conn = conn_with_newest(1_700_000_000_000);
        for (text, expected) in [
            ("2026-02-30", "no such date or time"),
            ("2026-02-29", "no such date or time"),
            // The parser itself refuses these; either way, a clear error.
            ("2026-01-01 24:00", "2026-01-01 24:00"),
            ("2026-01-01 23:60", "2026-01-01 23:60"),
            ("1000000years", "reaches back before 1970"),
        ] {
            let err = Window::parse(&conn, Some(text), None).unwrap_err();
            assert!(err.to_string().contains(expected), "{text}: {err}");
        }
        let window = Window::parse(&conn, Some("2024-02-29"), None).unwrap();
        assert_eq!(
            window.since.map(format_ms).as_deref(),
            Some("2024-02-29 00:00:00")
        );
    }

    fn conn_with_newest(ms: i64) -> Connection {
        let conn = crate::store::migrated_in_memory();
        conn.execute_batch(&format!(
            "INSERT INTO log_sources (id, fingerprint, path, first_seen_ms) VALUES (1, x'00', 't', 0);
             INSERT INTO log_chunks (source_id, start_offset, end_offset, lines, first_ms, last_ms, data)
             VALUES (1, 0, 1, 1, {ms}, {ms}, x'');"
        ))
        .unwrap();
        conn
    }

    #[test]
    fn window_bounds_are_dates_times_or_ages() {
        let conn = conn_with_newest(1_709_290_800_000); // 2024-03-01 11:00:00
        let window = Window::parse(&conn, Some("2024-03-01"), Some("2024-03-01 12:30")).unwrap();
        assert_eq!(window.since, Some(1_709_251_200_000));
        assert_eq!(window.until, Some(1_709_296_200_000));
        let window = Window::parse(&conn, Some("2h"), None).unwrap();
        assert_eq!(window.since, Some(1_709_290_800_000 - 7_200_000));
        assert_eq!(format_ms(1_709_290_800_000), "2024-03-01 11:00:00");
    }

    #[test]
    fn iso_8601_and_rfc_3339_forms_and_today() {
        let conn = conn_with_newest(1_700_000_000_000);
        let at = |text: &str| {
            Window::parse(&conn, Some(text), None)
                .unwrap_or_else(|err| panic!("{text}: {err}"))
                .since
                .unwrap()
        };
        let naive = at("2026-09-22 23:59:59");
        assert_eq!(at("2026-09-22T23:59:59"), naive);
        assert_eq!(at("2026-09-22T23:59:59.750"), naive);
        assert_eq!(at("2026-09-22T23:59"), at("2026-09-22 23:59"));
        // With an offset, the instant is shown in the host's local time.
        let utc = 1_790_121_599_000; // 2026-09-22T23:59:59Z
        assert_eq!(
            at("2026-09-22T23:59:59Z"),
            utc + crate::localtime::utc_offset_ms(utc)
        );
        let plus_two = utc - 2 * 3_600_000;
        assert_eq!(
            at("2026-09-22T23:59:59+02:00"),
            plus_two + crate::localtime::utc_offset_ms(plus_two)
        );
        assert_eq!(
            at("2026-09-22T23:59:59+0200"),
            at("2026-09-22T23:59:59+02:00")
        );
        let minus = utc + 5 * 3_600_000 + 30 * 60_000;
        assert_eq!(
            at("2026-09-22T23:59:59-05:30"),
            minus + crate::localtime::utc_offset_ms(minus)
        );
        let today = at("today");
        assert_eq!(today % 86_400_000, 0);
        assert_eq!(at("yesterday"), today - 86_400_000);
        let now = crate::store::repo::now_ms();
        let local_now = now + crate::localtime::utc_offset_ms(now);
        assert!(today <= local_now && local_now - today < 86_400_000);
    }

    #[test]
    fn bad_bounds_are_one_clear_line() {
        let conn = conn_with_newest(0);
        for (since, until) in [
            (Some("last tuesday"), None),
            (None, Some("2024-13-01")),
            (Some("2024-03-02"), Some("2024-03-01")),
        ] {
            let err = Window::parse(&conn, since, until).unwrap_err();
            assert!(matches!(err, QueryError::BadArgument(_)), "{err}");
            assert!(!err.to_string().contains('\n'));
        }
    }
}
