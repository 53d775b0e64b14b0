//! The daemon's health as the database shows it: where each source's read
//! position stands and when it last moved, the gaps recorded, the host
//! problems of the last day (from the per-minute line counts), and the
//! newest audit records. Read-only; the web view's health page.

use deadpool_sqlite::rusqlite::Connection;
use serde::Serialize;

use super::{QueryError, format_ms};
use crate::parse::Kind;
use crate::store::{Context, ResultExt};

/// Gaps and audit records listed, at most (the newest).
const LIMIT: i64 = 100;

/// One source's read position.
#[derive(Debug, Serialize)]
pub struct SourceState {
    /// The path it was first read as.
    pub path: String,
    /// Bytes stored from it.
    pub offset: u64,
    /// When its position last moved (wall clock).
    pub updated_at: String,
}

/// A gap: bytes that could not be read.
#[derive(Debug, Serialize)]
pub struct GapRecord {
    /// The file.
    pub path: String,
    /// Its first byte not read.
    pub start: i64,
    /// The end, when known.
    pub end: Option<i64>,
    /// Why.
    pub reason: String,
    /// When it was found (wall clock).
    pub detected_at: String,
}

/// An audit record.
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    /// When (wall clock).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// The details, as recorded (JSON).
    pub detail: String,
}

/// A stall of the daemon's reader that has not ended (as its audit
/// records say).
#[derive(Debug, Serialize)]
pub struct StallState {
    /// What it reads.
    pub source: String,
    /// Since when it has failed or hung (wall clock).
    pub since: String,
    /// The error, or what hangs.
    pub reason: String,
}

/// The health page's facts.
#[derive(Debug, Serialize)]
pub struct Health {
    /// When a read position last moved: the last commit (wall clock).
    pub last_commit_at: Option<String>,
    /// Seconds from the last commit to now: the daemon's lag when lines
    /// are waiting, its idleness when none are.
    pub seconds_since_commit: Option<i64>,
    /// The newest line's time (the log's clock).
    pub newest_line_at: Option<String>,
    /// The reader's stall, while it lasts.
    pub stall: Option<StallState>,
    /// Every source, most recently moved first.
    pub sources: Vec<SourceState>,
    /// Gaps recorded, in all.
    pub gap_count: i64,
    /// The newest gaps.
    pub gaps: Vec<GapRecord>,
    /// Host problems in the day up to the newest line, most frequent first.
    pub host_problems: Vec<ProblemCount>,
    /// The newest audit records.
    pub audit: Vec<AuditEntry>,
}

/// Lines of one host-problem kind (`Kind::HOST_PROBLEMS`) in the day up to
/// the newest line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProblemCount {
    /// The kind's name.
    pub kind: String,
    /// Its lines in that day.
    pub lines: u64,
    /// The minute of the last one, in the log's clock.
    pub last_at: String,
}

/// The host problems of the day up to `newest_ms`, most frequent first.
fn host_problems(conn: &Connection, newest_ms: i64) -> Result<Vec<ProblemCount>, QueryError> {
    let context = || Context::op("read the host problems").table("line_counts");
    let mut statement = conn
        .prepare_cached(
            "SELECT kind, sum(lines), max(minute_ms) FROM line_counts
             WHERE minute_ms > ?1 GROUP BY kind",
        )
        .ctx(context)?;
    let mut rows = statement
        .query([newest_ms - 24 * 3600 * 1000])
        .ctx(context)?;
    let mut problems = Vec::new();
    while let Some(row) = rows.next().ctx(context)? {
        let kind: String = row.get(0).ctx(context)?;
        if !Kind::HOST_PROBLEMS.iter().any(|k| k.name() == kind) {
            continue;
        }
        problems.push(ProblemCount {
            kind,
            lines: u64::try_from(row.get::<_, i64>(1).ctx(context)?).unwrap_or(0),
            last_at: format_ms(row.get(2).ctx(context)?),
        });
    }
    problems.sort_by(|a, b| b.lines.cmp(&a.lines).then_with(|| a.kind.cmp(&b.kind)));
    Ok(problems)
}

/// Reads the health facts.
pub fn read(conn: &Connection) -> Result<Health, QueryError> {
    // Most recently moved first: the first moved at the last commit.
    let positions = crate::store::repo::source_positions(conn)?;
    let last_commit_ms = positions.first().map(|p| p.updated_ms);
    let sources: Vec<SourceState> = positions
        .into_iter()
        .map(|p| SourceState {
            path: p.path,
            offset: p.position.byte_offset,
            updated_at: format_ms(p.updated_ms),
        })
        .collect();
    let context = || Context::op("read the health facts").table("ingest_gaps");
    let gap_count: i64 = conn
        .query_row("SELECT count(*) FROM ingest_gaps", [], |row| row.get(0))
        .ctx(context)?;
    let gaps = conn
        .prepare_cached(
            "SELECT path, start_offset, end_offset, reason, detected_ms FROM ingest_gaps
             ORDER BY id DESC LIMIT ?1",
        )
        .ctx(context)?
        .query_map([LIMIT], |row| {
            Ok(GapRecord {
                path: row.get(0)?,
                start: row.get(1)?,
                end: row.get(2)?,
                reason: row.get(3)?,
                detected_at: format_ms(row.get(4)?),
            })
        })
        .ctx(context)?
        .collect::<Result<_, _>>()
        .ctx(context)?;
    let audit_context = || Context::op("read the audit log").table("audit_log");
    let audit = conn
        .prepare_cached(
            "SELECT at_ms, actor, action, detail FROM audit_log ORDER BY at_ms DESC, id DESC LIMIT ?1",
        )
        .ctx(audit_context)?
        .query_map([LIMIT], |row| {
            Ok(AuditEntry {
                at: format_ms(row.get(0)?),
                actor: row.get(1)?,
                action: row.get(2)?,
                detail: row.get(3)?,
            })
        })
        .ctx(audit_context)?
        .collect::<Result<_, _>>()
        .ctx(audit_context)?;
    let newest = crate::store::repo::newest_line_ms(conn)?;
    let stall = crate::store::repo::open_stall(conn)?.map(|open| {
        let details: serde_json::Value = serde_json::from_str(&open.details).unwrap_or_default();
        let text = |key: &str| details[key].as_str().unwrap_or_default().to_owned();
        StallState {
            source: text("source"),
            since: format_ms(details["since_ms"].as_i64().unwrap_or(open.recorded_ms)),
            reason: text("reason"),
        }
    });
    Ok(Health {
        last_commit_at: last_commit_ms.map(format_ms),
        seconds_since_commit: last_commit_ms
            .map(|at| (crate::store::repo::now_ms() - at).max(0) / 1000),
        newest_line_at: newest.map(format_ms),
        stall,
        sources,
        gap_count,
        gaps,
        host_problems: match newest {
            Some(newest) => host_problems(conn, newest)?,
            None => Vec::new(),
        },
        audit,
    })
}
