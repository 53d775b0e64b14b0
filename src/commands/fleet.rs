//! `trace --fleet`, `stats --fleet` and `fleet migrate|status|prune`: ask
//! or look after the fleet's PostgreSQL.

use std::io::Write as _;

use anyhow::Result;

use crate::cli::{FleetAction, WindowArgs};
use crate::config::{Config, FleetConfig};
use crate::exit::{CONFIG, Failure, TEMPFAIL, USAGE};
use crate::fleet::{FleetError, partitions, pg};
use crate::query::fleet::{stats, trace};
use crate::query::trace::Target;

/// The `[fleet]` section, or a clear error that there is none.
fn configured(config: &Config) -> Result<&FleetConfig> {
    config.fleet.as_ref().ok_or_else(|| {
        Failure::new(
            CONFIG,
            "no fleet database: set [fleet] postgres in the configuration file".to_owned(),
        )
        .into()
    })
}

/// An error with the exit status its class calls for.
fn failure(err: FleetError) -> anyhow::Error {
    let status = match err {
        FleetError::Connection(_) | FleetError::Timeout(_) => TEMPFAIL,
        FleetError::Schema(_) | FleetError::Setup(_) | FleetError::Refused(_) => CONFIG,
        FleetError::Contended(_) | FleetError::Argument(_) | FleetError::Other(_) => USAGE,
    };
    Failure::new(status, err.to_string()).into()
}

async fn client(config: &FleetConfig) -> Result<deadpool_postgres::Object> {
    pg::connect_for_queries(config).await.map_err(failure)
}

/// `exim-pilot trace --fleet`
pub async fn trace(config: &Config, json: bool, query_text: &str) -> Result<()> {
    let fleet = configured(config)?;
    let target = Target::parse(query_text).map_err(|err| Failure::new(USAGE, err.to_string()))?;
    let client = client(fleet).await?;
    let journeys = pg::bounded(fleet.timeout, trace::find(&client, &target))
        .await
        .map_err(failure)?;
    if journeys.is_empty() {
        return Err(Failure::new(
            USAGE,
            format!("no message in the fleet matches {query_text:?}"),
        )
        .into());
    }
    let mut out = crate::output::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&journeys)?)?;
    } else {
        write!(out, "{}", trace::render(&journeys))?;
    }
    out.flush()?;
    Ok(())
}

/// `exim-pilot stats --fleet [--host H]`
pub async fn stats(
    config: &Config,
    window: &WindowArgs,
    host: Option<&str>,
    json: bool,
) -> Result<()> {
    let fleet = configured(config)?;
    let client = client(fleet).await?;
    let (since, until) = pg::bounded(
        fleet.timeout,
        stats::window(
            &client,
            host,
            window.since.as_deref(),
            window.until.as_deref(),
        ),
    )
    .await
    .map_err(failure)?;
    let report = pg::bounded(fleet.timeout, stats::compute(&client, host, since, until))
        .await
        .map_err(failure)?;
    let mut out = crate::output::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", stats::render(&report))?;
    }
    out.flush()?;
    Ok(())
}

/// `exim-pilot fleet ...`
///
/// Long because it is one match arm per `fleet` subcommand (migrate,
/// status, prune), each the glue between a fleet query and its output.
pub async fn run(config: &Config, action: FleetAction) -> Result<()> {
    let fleet = configured(config)?;
    let pool = pg::pool(fleet).map_err(failure)?;
    let mut client = pg::bounded(fleet.timeout, async { Ok(pool.get().await?) })
        .await
        .map_err(failure)?;
    let mut out = crate::output::stdout();
    match action {
        FleetAction::Migrate => {
            let applied = pg::bounded(fleet.timeout, pg::migrate(&mut client))
                .await
                .map_err(failure)?;
            if applied.is_empty() {
                writeln!(
                    out,
                    "the fleet schema is current (version {})",
                    pg::SCHEMA_VERSION
                )?;
            } else {
                writeln!(out, "applied: {}", applied.join(", "))?;
            }
        }
        FleetAction::Status { json } => {
            pg::check_schema(&client).await.map_err(failure)?;
            let rows = client
                .query(
                    "SELECT host, database_name, high_water, lines,
                            to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS TZ')
                     FROM exim_pilot.replication ORDER BY host",
                    &[],
                )
                .await
                .map_err(|err| failure(err.into()))?;
            let hosts: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    serde_json::json!({
                        "host": row.get::<_, String>(0),
                        "database": row.get::<_, String>(1),
                        "high_water": row.get::<_, i64>(2),
                        "lines": row.get::<_, i64>(3),
                        "updated_at": row.get::<_, String>(4),
                    })
                })
                .collect();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&hosts)?)?;
            } else {
                for row in &rows {
                    writeln!(
                        out,
                        "{}: {} lines shipped, through chunk {} of database {}, last at {}",
                        row.get::<_, String>(0),
                        row.get::<_, i64>(3),
                        row.get::<_, i64>(2),
                        row.get::<_, String>(1),
                        row.get::<_, String>(4),
                    )?;
                }
            }
        }
        FleetAction::Prune { keep_months } => {
            pg::check_schema(&client).await.map_err(failure)?;
            let now = crate::store::repo::now_ms();
            let (year, month) = crate::fleet::month_of(now);
            let months_back = i64::from(keep_months) - 1;
            let index = year * 12 + i64::from(month) - 1 - months_back;
            let keep_from = (
                index.div_euclid(12),
                u32::try_from(index.rem_euclid(12) + 1).unwrap_or(1),
            );
            let dropped = partitions::drop_before(&client, keep_from)
                .await
                .map_err(failure)?;
            writeln!(
                out,
                "kept {:04}-{:02} onwards; dropped {} partition(s){}{}",
                keep_from.0,
                keep_from.1,
                dropped.len(),
                if dropped.is_empty() { "" } else { ": " },
                dropped.join(", ")
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
