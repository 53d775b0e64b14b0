//! `stats --fleet [--host H]`: the figures of `stats` that add up across
//! hosts, per host and in total, from the fleet's PostgreSQL.
//!
//! They are counted as `stats` counts them on each host (lines by kind,
//! `<=` lines and their `S=`, `=>`/`->` lines, rejections by permanence,
//! deliveries by transport), so the fleet's total is the sum of the hosts'
//! reports. Figures that do not add up (distinct hosts, top lists) stay
//! with each host's own `stats`. Read-only, fixed SQL.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio_postgres::Client;

use crate::fleet::pg::FleetError;
use crate::query::stats::LineCounts;

/// The figures of one host, or of the fleet: the counts `stats` names
/// from lines, and the volume and transports that add up too.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Lines by kind, and what they name.
    #[serde(flatten)]
    pub counts: LineCounts,
    /// Bytes received (the `S=` of `<=` lines).
    pub received_volume: u64,
    /// `=>` lines.
    pub delivered_messages: u64,
    /// `=>` lines per transport.
    pub by_transport: BTreeMap<String, u64>,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.counts.add(&other.counts);
        self.received_volume += other.received_volume;
        self.delivered_messages = self.counts.delivered_messages();
        for (transport, n) in &other.by_transport {
            *self.by_transport.entry(transport.clone()).or_default() += n;
        }
    }

    /// Names the counts from the lines by kind read for one host.
    fn name_kinds(&mut self) {
        let counts = std::mem::take(&mut self.counts);
        let (rejected, temporarily) = (counts.rejected, counts.temporarily_rejected);
        self.counts = LineCounts::from_kinds(counts.kinds, rejected, temporarily);
        self.delivered_messages = self.counts.delivered_messages();
    }
}

/// The report: each host's figures and their sum.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct FleetStats {
    /// The window's start, if bounded.
    pub since: Option<String>,
    /// The window's end, if bounded.
    pub until: Option<String>,
    /// Each host's figures.
    pub hosts: BTreeMap<String, Figures>,
    /// Their sum.
    pub total: Figures,
}

/// The figures of every host (or of `host`) for lines logged from `since`
/// to `until` (milliseconds in the log's clock, inclusive).
///
/// Long because it reads each table's figures per host with one query and
/// adds them into the same per-host rows, one block per table.
pub async fn compute(
    client: &Client,
    host: Option<&str>,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<FleetStats, FleetError> {
    let (lo, hi) = (since, until);
    let host_filter = "($1::text IS NULL OR host = $1)";
    let mut hosts: BTreeMap<String, Figures> = BTreeMap::new();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&host, &lo, &hi];
    let count =
        |row: &tokio_postgres::Row, i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    for row in client
        .query(
            &format!(
                "SELECT host, kind, count(*) FROM exim_pilot.lines
                 WHERE {host_filter} AND {} GROUP BY host, kind",
                within("logged_at")
            ),
            &params,
        )
        .await?
    {
        let figures = hosts.entry(row.get(0)).or_default();
        figures.counts.kinds.insert(row.get(1), count(&row, 2));
    }
    for row in client
        .query(
            &format!(
                "SELECT host, coalesce(sum(size), 0)::bigint FROM exim_pilot.messages
                 WHERE {host_filter} AND {} GROUP BY host",
                within("received_at")
            ),
            &params,
        )
        .await?
    {
        hosts.entry(row.get(0)).or_default().received_volume = count(&row, 1);
    }
    for row in client
        .query(
            &format!(
                "SELECT host, count(*) FILTER (WHERE NOT temporary),
                        count(*) FILTER (WHERE temporary)
                 FROM exim_pilot.rejections
                 WHERE {host_filter} AND {} GROUP BY host",
                within("rejected_at")
            ),
            &params,
        )
        .await?
    {
        let figures = hosts.entry(row.get(0)).or_default();
        figures.counts.rejected = count(&row, 1);
        figures.counts.temporarily_rejected = count(&row, 2);
    }
    for row in client
        .query(
            &format!(
                "SELECT host, coalesce(transport, ''), count(*) FROM exim_pilot.deliveries
                 WHERE {host_filter} AND {} AND flag = '=>'
                 GROUP BY host, transport",
                within("delivered_at")
            ),
            &params,
        )
        .await?
    {
        let figures = hosts.entry(row.get(0)).or_default();
        figures.by_transport.insert(row.get(1), count(&row, 2));
    }
    let mut total = Figures::default();
    for figures in hosts.values_mut() {
        figures.name_kinds();
        total.add(figures);
    }
    Ok(FleetStats {
        since: since.map(crate::query::format_ms),
        until: until.map(crate::query::format_ms),
        hosts,
        total,
    })
}

/// `--since` and `--until` (the forms `stats` takes; an age counts back
/// from the newest line of the fleet, or of `host`) as milliseconds.
pub async fn window(
    client: &Client,
    host: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), FleetError> {
    let newest = newest_ms(client, host).await?;
    let bound = |text: Option<&str>, flag: &str| {
        text.map(|text| {
            crate::query::bound(text, flag, || {
                newest.ok_or_else(|| {
                    crate::query::QueryError::BadArgument(
                        "the fleet holds no lines to count an age back from".to_owned(),
                    )
                })
            })
        })
        .transpose()
        .map_err(|err| FleetError::Argument(err.to_string()))
    };
    let (since, until) = (bound(since, "--since")?, bound(until, "--until")?);
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(FleetError::Argument("--since is after --until".to_owned()));
    }
    Ok((since, until))
}

/// `column` within the window `$2`..`$3` (milliseconds; NULL: open).
fn within(column: &str) -> String {
    format!(
        "{column} >= coalesce('epoch'::timestamp + $2::bigint * interval '1 millisecond', '-infinity')
         AND {column} <= coalesce('epoch'::timestamp + $3::bigint * interval '1 millisecond', 'infinity')"
    )
}

/// The newest line's time in the fleet (or of `host`), for ages such as
/// `--since 2h`.
pub async fn newest_ms(client: &Client, host: Option<&str>) -> Result<Option<i64>, FleetError> {
    let row = client
        .query_one(
            "SELECT (extract(epoch FROM max(logged_at)) * 1000)::bigint FROM exim_pilot.lines
             WHERE ($1::text IS NULL OR host = $1) AND logged_at < now()::timestamp + interval '1 day'",
            &[&host],
        )
        .await?;
    Ok(row.get(0))
}

/// A figure's label and how to read it.
pub type FigureRow = (&'static str, fn(&Figures) -> u64);

/// The figures as the report and the web view list them.
pub const ROWS: [FigureRow; 12] = [
    ("lines", |f| f.counts.lines),
    ("received", |f| f.counts.received),
    ("received bytes", |f| f.received_volume),
    ("delivered", |f| f.counts.delivered),
    ("delivered messages", |f| f.delivered_messages),
    ("deferred", |f| f.counts.deferred),
    ("bounced", |f| f.counts.bounced),
    ("completed", |f| f.counts.completed),
    ("rejected", |f| f.counts.rejected),
    ("temporarily rejected", |f| f.counts.temporarily_rejected),
    ("frozen", |f| f.counts.frozen),
    ("unrecognised", |f| f.counts.unrecognised),
];

/// The report as text: a table with a column per host and the total.
pub fn render(stats: &FleetStats) -> String {
    let mut out = String::new();
    let window = match (&stats.since, &stats.until) {
        (None, None) => "all lines".to_owned(),
        (since, until) => format!(
            "{} to {}",
            since.as_deref().unwrap_or("the first line"),
            until.as_deref().unwrap_or("the last line")
        ),
    };
    out.push_str(&format!("Fleet summary ({window})\n\n"));
    let mut columns: Vec<(&str, &Figures)> = stats
        .hosts
        .iter()
        .map(|(host, figures)| (host.as_str(), figures))
        .collect();
    columns.push(("total", &stats.total));
    let width = columns
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(5)
        .max(12);
    out.push_str(&format!("{:<22}", ""));
    for (name, _) in &columns {
        out.push_str(&format!(" {name:>width$}"));
    }
    out.push('\n');
    for (label, value) in ROWS {
        out.push_str(&format!("{label:<22}"));
        for (_, figures) in &columns {
            out.push_str(&format!(" {:>width$}", value(figures)));
        }
        out.push('\n');
    }
    if !stats.total.by_transport.is_empty() {
        out.push_str("\nDeliveries (=>) by transport\n");
        for transport in stats.total.by_transport.keys() {
            let label = if transport.is_empty() {
                "(none)"
            } else {
                transport
            };
            out.push_str(&format!("{label:<22}"));
            for (_, figures) in &columns {
                let n = figures.by_transport.get(transport).copied().unwrap_or(0);
                out.push_str(&format!(" {n:>width$}"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_the_sum_and_named_figures_follow_the_kinds() {
        let mut a = Figures {
            received_volume: 100,
            ..Figures::default()
        };
        a.counts.kinds = [
            ("reception".into(), 3),
            ("delivery".into(), 2),
            ("delivery_more".into(), 1),
        ]
        .into();
        a.name_kinds();
        assert_eq!(
            (
                a.counts.lines,
                a.counts.received,
                a.counts.delivered,
                a.delivered_messages
            ),
            (6, 3, 3, 2)
        );
        let mut b = Figures::default();
        b.counts.kinds = [("reception".into(), 1), ("frozen".into(), 4)].into();
        b.counts.rejected = 2;
        b.name_kinds();
        let mut total = Figures::default();
        total.add(&a);
        total.add(&b);
        assert_eq!(total.counts.lines, 11);
        assert_eq!(total.counts.received, 4);
        assert_eq!(total.counts.frozen, 4);
        assert_eq!(total.counts.rejected, 2);
        assert_eq!(total.received_volume, 100);
        let stats = FleetStats {
            hosts: [("mx1".into(), a), ("mx2".into(), b)].into(),
            total,
            ..FleetStats::default()
        };
        let text = render(&stats);
        assert!(
            text.contains(&format!(
                "\n{:<22} {:>12} {:>12} {:>12}\n",
                "received", 3, 1, 4
            )),
            "{text}"
        );
    }
}
