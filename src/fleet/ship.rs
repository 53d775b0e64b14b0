//! The replicator: ships the chunks this host has committed to the fleet's
//! PostgreSQL, exactly once.
//!
//! It reads chunks after the host's high-water mark from SQLite (read-only
//! work beside the writer, never slowing it), turns their lines into rows
//! ([`super::rows`]), and inserts them in one PostgreSQL transaction that
//! also moves the mark, from the value it read to the last chunk's id. A
//! crash at any point leaves either the rows and the mark or neither; a
//! batch sent again after an unknown outcome conflicts on the rows' keys
//! and adds nothing. PostgreSQL holds the truth: every session starts by
//! reading the mark there. Memory is one batch (`[fleet] batch_lines`).

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use deadpool_sqlite::rusqlite::Connection;
use tokio::sync::watch;

use super::pg::{self, FleetError};
use super::progress::FleetProgress;
use super::rows::{Month, Rows};
use crate::backoff::Backoff;
use crate::config::FleetConfig;
use crate::store::repo::{self, ChunkToShip};

/// How often an idle replicator looks for new chunks without being woken
/// (the writer wakes it after every commit: [`FleetProgress::committed`]).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often, at most, the confirmed mark is written to SQLite.
const SAVE_SHIPPED_EVERY: Duration = Duration::from_secs(2);
/// Commit observations kept for the lag (a bounded queue; when it is full
/// the oldest stay, so the lag is never under-stated).
const OBSERVATIONS: usize = 4096;

/// What the replicator needs.
pub struct Replicator {
    /// The `[fleet]` settings.
    pub config: FleetConfig,
    /// This host's SQLite file.
    pub database: PathBuf,
    /// How long a local read waits for SQLite's lock.
    pub busy_timeout: Duration,
    /// The first retry delay.
    pub backoff_min: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// Where the state is shown.
    pub progress: Arc<FleetProgress>,
    /// Connections to the fleet's PostgreSQL ([`pg::pool`]: made before
    /// the daemon starts, so that unusable settings stop it there).
    pub pool: deadpool_postgres::Pool,
}

/// The local side: this host's SQLite and what was seen of it.
struct Local {
    conn: Option<Connection>,
    /// (newest chunk id, when it was first seen), oldest first.
    observed: VecDeque<(i64, i64)>,
    saved_shipped: Option<(i64, Instant)>,
    /// Whether this process has held the host's mark: a database that
    /// has, and finds it held by another on reconnecting, is one of two
    /// machines replicating under one name, not a rebuilt database.
    held_mark: bool,
}

impl Replicator {
    /// Runs until `shutdown` turns true, then ships what is committed by
    /// then and ends. Errors are logged and retried with backoff; the
    /// local daemon never waits for PostgreSQL.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let pool = self.pool.clone();
        let mut local = Local {
            conn: None,
            observed: VecDeque::new(),
            saved_shipped: None,
            held_mark: false,
        };
        let mut backoff = Backoff::new(self.backoff_min, self.backoff_max);
        let mut migrated = false;
        loop {
            let session = self.session(
                &pool,
                &mut local,
                &mut migrated,
                &mut backoff,
                &mut shutdown,
            );
            let err = match session.await {
                Ok(()) => return,
                Err(err) => err,
            };
            self.progress.up.store(false, Ordering::Relaxed);
            if !err.is_retryable() || matches!(err, FleetError::Contended(_)) {
                return self.give_up(&err);
            }
            let delay = backoff.next_delay();
            match &err {
                FleetError::Refused(_) | FleetError::Other(_) => tracing::error!(
                    host = %self.progress.host, error = %err,
                    "fleet replication failed: {err}; retrying in {delay:?}"
                ),
                _ => tracing::warn!(
                    host = %self.progress.host, error = %err,
                    "fleet replication paused: {err}; retrying in {delay:?}"
                ),
            }
            // Local progress still counts while PostgreSQL is away.
            let _ = self.observe(&mut local, None).await;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    fn give_up(&self, err: &FleetError) {
        self.progress.up.store(false, Ordering::Relaxed);
        self.progress.stopped.store(true, Ordering::Relaxed);
        tracing::error!(
            host = %self.progress.host, error = %err,
            "fleet replication stopped until exim-pilot restarts: {err}"
        );
    }

    /// One connection's life: claim the mark, then ship batch after batch.
    async fn session(
        &self,
        pool: &deadpool_postgres::Pool,
        local: &mut Local,
        migrated: &mut bool,
        backoff: &mut Backoff,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), FleetError> {
        let timeout = self.config.timeout;
        let mut client = pg::bounded(timeout, async { Ok(pool.get().await?) }).await?;
        if !*migrated {
            let applied = pg::bounded(timeout, pg::migrate(&mut client)).await?;
            if !applied.is_empty() {
                tracing::info!(migrations = ?applied, "fleet schema migrated: {}", applied.join(", "));
            }
            *migrated = true;
        }
        let name = self.with_local(local, repo::store_name).await?;
        let held_before = local.held_mark;
        let mut high_water = pg::bounded(timeout, self.claim(&client, &name, held_before)).await?;
        local.held_mark = true;
        self.progress.up.store(true, Ordering::Relaxed);
        backoff.reset();
        tracing::info!(
            host = %self.progress.host, high_water,
            "fleet replication connected; shipping chunks after {high_water}"
        );
        let mut months: BTreeSet<Month> = BTreeSet::new();
        loop {
            // Asked to stop: ship what the writer committed before it
            // stopped, then end (the daemon bounds the wait).
            let stopping = *shutdown.borrow();
            self.observe(local, Some(high_water)).await?;
            let batch_lines = self.config.batch_lines;
            let read = self
                .with_local(local, move |conn| {
                    let name = repo::store_name(conn)?;
                    Ok((name, repo::chunks_after(conn, high_water, batch_lines)?))
                })
                .await?;
            let (current_name, chunks) = read;
            if current_name != name {
                // The database file was replaced (rebuilt after deletion):
                // its chunk ids start again, under a new name.
                return Err(FleetError::Connection(
                    "this host's database was replaced; claiming again".to_owned(),
                ));
            }
            let Some(last) = chunks.last().map(|chunk| chunk.id) else {
                self.save_shipped(local, high_water, true).await;
                if stopping {
                    return Ok(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.progress.wake.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let raw_lines = self.config.raw_lines;
            let rows = tokio::task::spawn_blocking(move || build(&chunks, raw_lines))
                .await
                .map_err(|err| FleetError::Other(err.to_string()))?;
            let lines = rows.lines.keys.len();
            pg::bounded(
                timeout,
                self.ship(&mut client, &name, &rows, &mut months, high_water, last),
            )
            .await?;
            tracing::debug!(host = %self.progress.host, lines, high_water = last, "shipped");
            high_water = last;
            self.save_shipped(local, high_water, false).await;
        }
    }

    /// Reads this host's mark, creating it, or taking it over when the
    /// host's rows came from a database that is gone (rebuilt: its chunk
    /// ids began again). Rows already shipped stay; lines read again have
    /// the same keys, so they are not stored twice. A database that held
    /// the mark earlier in this run (`held_before`) and finds another's
    /// name on it was not rebuilt: another machine took the name while
    /// this one was away (a timeout, a restarted PostgreSQL), and taking
    /// it back would mix two machines' rows.
    async fn claim(
        &self,
        client: &tokio_postgres::Client,
        name: &str,
        held_before: bool,
    ) -> Result<i64, FleetError> {
        let host = &self.progress.host;
        client
            .execute(
                "INSERT INTO exim_pilot.replication (host, database_name, high_water)
                 VALUES ($1, $2, 0) ON CONFLICT (host) DO NOTHING",
                &[host, &name],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT database_name, high_water FROM exim_pilot.replication WHERE host = $1",
                &[host],
            )
            .await?;
        let (held_by, high_water): (String, i64) = (row.get(0), row.get(1));
        if held_by == name {
            return Ok(high_water);
        }
        if held_before {
            return Err(contended(
                host,
                "took the fleet mark while this one was disconnected",
            ));
        }
        let moved = client
            .execute(
                "UPDATE exim_pilot.replication SET database_name = $2, high_water = 0,
                     updated_at = now()
                 WHERE host = $1 AND database_name = $3",
                &[host, &name, &held_by],
            )
            .await?;
        // Said once the mark is this database's, not before: whoever reads
        // it (an operator, the fleet test) may act on it at once.
        if moved == 1 {
            tracing::warn!(
                host = %host, previous = %held_by, database = %name,
                "rows for host {host} came from another database ({held_by}); this one ({name}) \
                 continues the host from its own first chunk. If another machine also uses \
                 [fleet] host_name = {host:?}, give each its own name"
            );
            Ok(0)
        } else {
            Err(FleetError::Connection(
                "the mark changed while it was claimed".to_owned(),
            ))
        }
    }

    /// Inserts a batch's rows and moves the mark from `from` to `to`, in
    /// one transaction.
    async fn ship(
        &self,
        client: &mut deadpool_postgres::Object,
        name: &str,
        rows: &Rows,
        months: &mut BTreeSet<Month>,
        from: i64,
        to: i64,
    ) -> Result<(), FleetError> {
        let host = &self.progress.host;
        let tx = client.transaction().await?;
        let now = super::rows::month_of(repo::now_ms());
        let wanted = rows.months.difference(months);
        for &(year, month) in wanted.filter(|&&m| super::rows::has_partition(m, now)) {
            let (year, month) = (
                i32::try_from(year).unwrap_or(1),
                i32::try_from(month).unwrap_or(1),
            );
            tx.execute("SELECT exim_pilot.ensure_month($1, $2)", &[&year, &month])
                .await?;
        }
        // Lines new to PostgreSQL only: a batch shipped again (its COMMIT's
        // outcome unknown, or a rebuilt database) adds none, so the mark's
        // count stays the number of lines held.
        let inserted = super::insert::insert(&tx, host, rows).await?;
        let lines = i64::try_from(inserted).unwrap_or(i64::MAX);
        let moved = tx
            .execute(
                "UPDATE exim_pilot.replication
                 SET high_water = $4, lines = lines + $5, updated_at = now()
                 WHERE host = $1 AND database_name = $2 AND high_water = $3",
                &[host, &name, &from, &to, &lines],
            )
            .await?;
        if moved != 1 {
            // Dropping the transaction rolls it back.
            return Err(contended(
                host,
                "moved the fleet mark while this one shipped",
            ));
        }
        crate::pipeline::failpoint::hit("fleet-before-commit");
        tx.commit().await?;
        months.extend(rows.months.iter().copied());
        Ok(())
    }

    /// Notes the newest local chunk and how far behind PostgreSQL is;
    /// `high_water` is `None` while PostgreSQL cannot be asked (the last
    /// mark saved here stands in for it).
    async fn observe(&self, local: &mut Local, high_water: Option<i64>) -> Result<(), FleetError> {
        let shipped = match high_water {
            Some(mark) => mark,
            None => match local.saved_shipped {
                Some((mark, _)) => mark,
                None => self
                    .with_local(local, repo::load_shipped)
                    .await?
                    .unwrap_or(0),
            },
        };
        let (newest, unshipped) = self
            .with_local(local, move |conn| repo::chunks_beyond(conn, shipped))
            .await?;
        let now = repo::now_ms();
        if local.observed.back().is_none_or(|&(id, _)| id < newest)
            && local.observed.len() < OBSERVATIONS
        {
            local.observed.push_back((newest, now));
        }
        while local.observed.front().is_some_and(|&(id, _)| id <= shipped) {
            local.observed.pop_front();
        }
        let oldest = local.observed.front().map_or(0, |&(_, seen)| seen);
        self.progress
            .oldest_unshipped_ms
            .store(oldest, Ordering::Relaxed);
        self.progress
            .unshipped_lines
            .store(unshipped, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps the confirmed mark in SQLite for retention: at most every few
    /// seconds while shipping, and whenever caught up. A failure only
    /// makes retention keep more, so it is logged and left.
    async fn save_shipped(&self, local: &mut Local, high_water: i64, idle: bool) {
        let due = match local.saved_shipped {
            None => true,
            Some((mark, at)) => mark != high_water && (idle || at.elapsed() >= SAVE_SHIPPED_EVERY),
        };
        if !due {
            return;
        }
        match self
            .with_local(local, move |conn| repo::save_shipped(conn, high_water))
            .await
        {
            Ok(()) => local.saved_shipped = Some((high_water, Instant::now())),
            Err(err) => tracing::debug!(error = %err, "could not record the shipped mark yet"),
        }
    }

    /// Runs `f` on the local connection, on a blocking thread, opening it
    /// first if needed.
    async fn with_local<T: Send + 'static>(
        &self,
        local: &mut Local,
        f: impl FnOnce(&Connection) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, FleetError> {
        let conn = local.conn.take();
        let path = self.database.clone();
        let busy = self.busy_timeout;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let conn = match conn {
                Some(conn) => conn,
                None => match crate::store::open_connection(&path, busy) {
                    Ok(conn) => conn,
                    Err(err) => return (None, Err(err)),
                },
            };
            let result = f(&conn);
            (Some(conn), result)
        })
        .await
        .map_err(|err| FleetError::Other(err.to_string()))?;
        local.conn = conn;
        // A local error (busy, the file replaced) is retried like a broken
        // connection.
        result.map_err(|err| FleetError::Connection(format!("this host's database: {err}")))
    }
}

/// The error that stops replication: another database replicates as
/// `host`, having done `what`.
fn contended(host: &str, what: &str) -> FleetError {
    FleetError::Contended(format!(
        "another database {what} for host {host:?}: two machines replicate with \
         [fleet] host_name = {host:?}; give each its own name"
    ))
}

/// The rows of `chunks`.
fn build(chunks: &[ChunkToShip], raw_lines: bool) -> Rows {
    let mut rows = Rows::default();
    for chunk in chunks {
        rows.add_chunk(&chunk.fingerprint, &chunk.lines, raw_lines);
    }
    rows
}
