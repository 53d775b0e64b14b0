//! `exim-pilot lines`: the stored raw lines, byte for byte, in the order
//! they were read (each generation from its start, generations in turn),
//! filtered by time, kind, a regular expression and source. With no filter
//! it gives back the log itself, so a day whose rotated file is gone can be
//! recovered; with `--grep` it is exigrep run on the database. One chunk is
//! decoded at a time: memory stays bounded whatever the database holds.

use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};
use regex::bytes::Regex;

use super::{QueryError, Window};
use crate::parse::{Kind, parse_line};
use crate::store::chunk::decode;
use crate::store::{Context, ResultExt, StoreError};

/// Which lines to print.
#[derive(Debug, Default)]
pub struct LineFilter {
    /// Lines logged within this window.
    pub window: Window,
    /// Only lines of this kind.
    pub kind: Option<Kind>,
    /// Only lines this regular expression matches.
    pub grep: Option<Regex>,
    /// The path the lines were read as.
    pub source: Option<String>,
    /// Only lines after this one: where the previous page ended.
    pub after: Option<LinePosition>,
}

/// Where a stored line is: its chunk and its offset in its source. Lines
/// come in chunk order, and by offset within a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePosition {
    /// The chunk's row id.
    pub chunk: i64,
    /// The line's offset in its source.
    pub offset: u64,
}

impl LinePosition {
    /// Reads `CHUNK:OFFSET`, as [`LinePosition::to_string`] writes it.
    pub fn parse(text: &str) -> Result<LinePosition, QueryError> {
        text.split_once(':')
            .and_then(|(chunk, offset)| {
                Some(LinePosition {
                    chunk: chunk.parse().ok()?,
                    offset: offset.parse().ok()?,
                })
            })
            .ok_or_else(|| {
                QueryError::BadArgument(format!(
                    "after: a position such as 12:3456 from a previous page, got {text:?}"
                ))
            })
    }
}

impl std::fmt::Display for LinePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.chunk, self.offset)
    }
}

impl LineFilter {
    /// Checks `--kind` and `--grep`.
    pub fn parse(
        window: Window,
        kind: Option<&str>,
        grep: Option<&str>,
        source: Option<String>,
    ) -> Result<LineFilter, QueryError> {
        let kind = kind
            .map(|name| {
                Kind::ALL
                    .into_iter()
                    .find(|kind| kind.name() == name)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                        QueryError::BadArgument(format!(
                            "--kind: one of {}, got {name:?}",
                            names.join(", ")
                        ))
                    })
            })
            .transpose()?;
        let grep = grep
            .map(|pattern| {
                regex::bytes::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|err| QueryError::BadArgument(format!("--grep: {err}")))
            })
            .transpose()?;
        Ok(LineFilter {
            window,
            kind,
            grep,
            source,
            after: None,
        })
    }
}

/// One stored line as `lines` prints it.
#[derive(Debug, serde::Serialize)]
pub struct LogLine<'a> {
    /// Where it is stored, to read on after it.
    #[serde(skip)]
    pub position: LinePosition,
    /// Its offset in its source generation.
    pub offset: u64,
    /// The path it was read as.
    pub source: &'a str,
    /// When it was logged (the time it counts at, for a continuation).
    pub time: Option<String>,
    /// Its kind, as `parse` names it.
    pub kind: &'static str,
    /// The Exim id of the message it belongs to, if any.
    pub message_id: Option<String>,
    /// The line (lossily decoded in JSON; raw bytes in text).
    #[serde(rename = "line", serialize_with = "lossy")]
    pub bytes: &'a [u8],
    /// Whether a newline followed it in the log (the last line of a
    /// finished file may have none).
    #[serde(skip)]
    pub newline: bool,
    /// Whether only the first `max_line_bytes` of it were kept.
    pub truncated: bool,
}

fn lossy<S: serde::Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&String::from_utf8_lossy(bytes))
}

/// Calls `print` for every line `filter` selects, in log order. An error
/// from `print` (the reader went away) ends it as [`QueryError::Output`].
///
/// Long because it is one read loop over the chunks, each line filtered
/// by position, window, kind and pattern in that order (cheapest first).
pub fn each(
    conn: &Connection,
    filter: &LineFilter,
    print: &mut dyn FnMut(&LogLine<'_>) -> std::io::Result<()>,
) -> Result<(), QueryError> {
    let context = || Context::op("read lines").table("log_chunks");
    let windowed = filter.window.since.is_some() || filter.window.until.is_some();
    let (since, until) = filter.window.sql_bounds();
    let mut chunks = conn
        .prepare(
            "SELECT s.path, c.start_offset, c.end_offset, c.data, c.id
             FROM log_chunks c JOIN log_sources s ON s.id = c.source_id
             WHERE (?1 = 0 OR (c.last_ms >= ?2 AND c.first_ms <= ?3))
               AND (?4 IS NULL OR s.path = ?4)
               AND c.id >= ?5
             ORDER BY c.id",
        )
        .ctx(context)?;
    let first_chunk = filter.after.map_or(0, |after| after.chunk);
    let mut rows = chunks
        .query(params![windowed, since, until, filter.source, first_chunk])
        .ctx(context)?;
    let mut message_ids = MessageIds::new(conn)?;
    while let Some(row) = rows.next().ctx(context)? {
        let path: String = row.get(0).ctx(context)?;
        let start: i64 = row.get(1).ctx(context)?;
        let end: i64 = row.get(2).ctx(context)?;
        let data: Vec<u8> = row.get(3).ctx(context)?;
        let chunk: i64 = row.get(4).ctx(context)?;
        let lines = decode(u64::try_from(start).unwrap_or(0), &data)
            .map_err(|err| StoreError::other(context(), err))?;
        for (index, line) in lines.iter().enumerate() {
            if filter
                .after
                .is_some_and(|after| after.chunk == chunk && line.offset <= after.offset)
            {
                continue;
            }
            if windowed
                && !line
                    .logged_ms
                    .is_some_and(|ms| (since..=until).contains(&ms))
            {
                continue;
            }
            let kind = parse_line(&line.bytes).kind();
            if filter.kind.is_some_and(|wanted| wanted != kind)
                || filter
                    .grep
                    .as_ref()
                    .is_some_and(|re| !re.is_match(&line.bytes))
            {
                continue;
            }
            // A line ends where the next begins, or where its chunk ends.
            let line_end = lines
                .get(index + 1)
                .map_or(u64::try_from(end).unwrap_or(0), |next| next.offset);
            let printed = LogLine {
                position: LinePosition {
                    chunk,
                    offset: line.offset,
                },
                offset: line.offset,
                source: &path,
                time: line.logged_ms.map(super::format_ms),
                kind: kind.name(),
                message_id: line
                    .message
                    .map(|row| message_ids.get(row))
                    .transpose()?
                    .flatten(),
                bytes: &line.bytes,
                newline: line_end > line.offset + line.length,
                truncated: line.is_truncated(),
            };
            print(&printed).map_err(QueryError::Output)?;
        }
    }
    Ok(())
}

/// The id of the newest chunk of lines (0 when none): what the live view
/// resumes after. Chunks are committed whole, so every chunk after an id
/// is what was committed since.
pub fn newest_chunk(conn: &Connection) -> Result<i64, QueryError> {
    Ok(conn
        .query_row("SELECT coalesce(max(id), 0) FROM log_chunks", [], |row| {
            row.get(0)
        })
        .ctx(|| Context::op("find the newest lines").table("log_chunks"))?)
}

/// The lines committed after chunk `after`: at most `chunks` chunks, and
/// no more once their lines pass `max_bytes`; with the last chunk's id
/// (`None` when nothing was committed since).
pub fn committed_after(
    conn: &Connection,
    after: i64,
    chunks: i64,
    max_bytes: usize,
) -> Result<(Vec<crate::store::chunk::StoredLine>, Option<i64>), QueryError> {
    Ok(crate::store::repo::lines_of_chunks_after(
        conn, after, chunks, max_bytes,
    )?)
}

/// Exim ids of message rows, looked up once per row and remembered (a
/// message's lines come close together).
struct MessageIds<'c> {
    statement: deadpool_sqlite::rusqlite::CachedStatement<'c>,
    last: Option<(i64, Option<String>)>,
}

impl<'c> MessageIds<'c> {
    fn new(conn: &'c Connection) -> Result<Self, QueryError> {
        let statement = conn
            .prepare_cached("SELECT exim_id FROM messages WHERE id = ?1")
            .ctx(|| Context::op("read lines").table("messages"))?;
        Ok(MessageIds {
            statement,
            last: None,
        })
    }

    fn get(&mut self, row: i64) -> Result<Option<String>, QueryError> {
        if let Some((last, id)) = &self.last
            && *last == row
        {
            return Ok(id.clone());
        }
        let id: Option<String> = self
            .statement
            .query_row([row], |r| r.get(0))
            .optional()
            .ctx(|| Context::op("read lines").table("messages"))?;
        self.last = Some((row, id.clone()));
        Ok(id)
    }
}
