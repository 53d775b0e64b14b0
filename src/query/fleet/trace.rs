//! `trace --fleet`: a message's whole journey across the fleet's hosts.
//!
//! The target (an Exim id, an address, an IP address or a Message-ID
//! header) finds messages on any host; each is then joined to the others
//! of its journey by two edges: a delivery whose receiving Exim answered
//! `250 OK id=X` leads to message X on the host that logged its reception
//! (exact), and messages carrying the same Message-ID header belong
//! together (exilog's join, which also catches non-Exim hops). Bounces join
//! their parent on the same host. The journey's lines are then printed in
//! time order, each labelled with its host. Read-only, fixed SQL.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tokio_postgres::Client;

use crate::fleet::pg::FleetError;
use crate::query::trace::Target;

/// Messages gathered into journeys, at most.
const MAX_MESSAGES: usize = 200;
/// Lines printed per journey, at most.
const MAX_LINES: i64 = 5000;
/// Bytes of a line read from PostgreSQL, at most: a journey is an
/// overview, and its answer stays bounded (`lines` on the host prints a
/// line whole).
const MAX_LINE_BYTES: i32 = 4096;

/// One message on one host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HostMessage {
    /// The host that logged it.
    pub host: String,
    /// Exim's queue id there.
    pub exim_id: String,
}

/// A hop from one host's delivery to the next host's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The message that was delivered.
    pub from: HostMessage,
    /// The message the next host made of it.
    pub to: HostMessage,
    /// `confirmation` (the receiver's `id=` in `C=`) or `message-id`.
    pub by: &'static str,
}

/// One line of a journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JourneyLine {
    /// The host that logged it.
    pub host: String,
    /// When, in that host's log clock.
    pub logged_at: String,
    /// The message it is about.
    pub exim_id: Option<String>,
    /// The parser's kind of line.
    pub kind: String,
    /// The line as logged, or a summary when the host ships no raw lines.
    pub text: String,
}

/// The messages of one journey and their lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Journey {
    /// The Message-ID headers its messages carry.
    pub header_message_ids: Vec<String>,
    /// The hosts it crossed.
    pub hosts: Vec<String>,
    /// Its messages.
    pub messages: Vec<HostMessage>,
    /// The hops known exactly (confirmations, bounces).
    pub hops: Vec<Hop>,
    /// Its lines in time order.
    pub lines: Vec<JourneyLine>,
}

/// The journeys of `target`, oldest first.
pub async fn find(client: &Client, target: &Target) -> Result<Vec<Journey>, FleetError> {
    let seeds = seeds(client, target).await?;
    let mut found: BTreeSet<HostMessage> = BTreeSet::new();
    let mut edges: Vec<Hop> = Vec::new();
    let mut queue: Vec<HostMessage> = seeds;
    while let Some(message) = queue.pop() {
        if found.len() >= MAX_MESSAGES || !found.insert(message.clone()) {
            continue;
        }
        for hop in neighbours(client, &message).await? {
            let other = if hop.from == message {
                hop.to.clone()
            } else {
                hop.from.clone()
            };
            if !edges.contains(&hop) {
                edges.push(hop);
            }
            if !found.contains(&other) {
                queue.push(other);
            }
        }
    }
    let mut journeys = Vec::new();
    for component in components(&found, &edges) {
        journeys.push(journey(client, component, &edges).await?);
    }
    journeys.sort_by(|a, b| {
        let first = |j: &Journey| j.lines.first().map(|l| l.logged_at.clone());
        first(a).cmp(&first(b))
    });
    Ok(journeys)
}

/// The messages the target names directly.
async fn seeds(client: &Client, target: &Target) -> Result<Vec<HostMessage>, FleetError> {
    let limit = i64::try_from(MAX_MESSAGES).unwrap_or(i64::MAX);
    let (sql, value) = match target {
        Target::MessageId(id) => (
            "SELECT DISTINCT host, exim_id FROM exim_pilot.lines WHERE exim_id = $1 LIMIT $2",
            id.clone(),
        ),
        Target::Address(address) => (
            "SELECT host, exim_id FROM exim_pilot.messages WHERE lower(sender) = lower($1)
             UNION SELECT host, exim_id FROM exim_pilot.messages WHERE header_message_id = $1
             UNION SELECT host, exim_id FROM exim_pilot.deliveries WHERE lower(recipient) = lower($1)
             LIMIT $2",
            address.clone(),
        ),
        Target::Ip(ip) => (
            "SELECT host, exim_id FROM exim_pilot.messages WHERE peer_ip = $1
             UNION SELECT host, exim_id FROM exim_pilot.deliveries WHERE peer_ip = $1
             LIMIT $2",
            ip.clone(),
        ),
        Target::Domain(_) => {
            return Err(FleetError::Argument(
                "trace --fleet takes an Exim id, an address, a Message-ID header or an IP \
                 address, not a domain"
                    .to_owned(),
            ));
        }
    };
    let rows = client.query(sql, &[&value, &limit]).await?;
    Ok(rows
        .iter()
        .map(|row| HostMessage {
            host: row.get(0),
            exim_id: row.get(1),
        })
        .collect())
}

/// The hops that touch `message`: deliveries confirmed by another Exim,
/// deliveries another host confirmed with this id, the same Message-ID
/// header elsewhere, and bounces on the same host.
async fn neighbours(client: &Client, message: &HostMessage) -> Result<Vec<Hop>, FleetError> {
    let rows = client
        .query(
            "SELECT 'confirmation', d.host, d.exim_id, m.host, m.exim_id
               FROM exim_pilot.deliveries d JOIN exim_pilot.messages m ON m.exim_id = d.remote_id
              WHERE d.host = $1 AND d.exim_id = $2 AND m.host <> d.host
             UNION
             SELECT 'confirmation', d.host, d.exim_id, m.host, m.exim_id
               FROM exim_pilot.deliveries d JOIN exim_pilot.messages m ON m.exim_id = d.remote_id
              WHERE m.host = $1 AND m.exim_id = $2 AND d.host <> m.host
             UNION
             SELECT 'message-id', a.host, a.exim_id, b.host, b.exim_id
               FROM exim_pilot.messages a JOIN exim_pilot.messages b
                 ON b.header_message_id = a.header_message_id
              WHERE a.host = $1 AND a.exim_id = $2 AND (b.host, b.exim_id) <> (a.host, a.exim_id)
             UNION
             SELECT 'bounce', p.host, p.exim_id, c.host, c.exim_id
               FROM exim_pilot.messages c JOIN exim_pilot.messages p
                 ON p.host = c.host AND p.exim_id = c.parent_exim_id
              WHERE (c.host = $1 AND c.exim_id = $2) OR (p.host = $1 AND p.exim_id = $2)
             LIMIT 1000",
            &[&message.host, &message.exim_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Hop {
            by: match row.get::<_, &str>(0) {
                "confirmation" => "confirmation",
                "message-id" => "message-id",
                _ => "bounce",
            },
            from: HostMessage {
                host: row.get(1),
                exim_id: row.get(2),
            },
            to: HostMessage {
                host: row.get(3),
                exim_id: row.get(4),
            },
        })
        .collect())
}

/// The connected groups of `messages` under `edges`.
fn components(messages: &BTreeSet<HostMessage>, edges: &[Hop]) -> Vec<Vec<HostMessage>> {
    let index: BTreeMap<&HostMessage, usize> =
        messages.iter().enumerate().map(|(i, m)| (m, i)).collect();
    let mut parent: Vec<usize> = (0..messages.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for hop in edges {
        if let (Some(&a), Some(&b)) = (index.get(&hop.from), index.get(&hop.to)) {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            parent[ra] = rb;
        }
    }
    let mut groups: BTreeMap<usize, Vec<HostMessage>> = BTreeMap::new();
    for (i, message) in messages.iter().enumerate() {
        groups
            .entry(root(&mut parent, i))
            .or_default()
            .push(message.clone());
    }
    groups.into_values().collect()
}

/// A journey's details and lines.
async fn journey(
    client: &Client,
    messages: Vec<HostMessage>,
    edges: &[Hop],
) -> Result<Journey, FleetError> {
    let hosts: Vec<String> = messages.iter().map(|m| m.host.clone()).collect();
    let ids: Vec<String> = messages.iter().map(|m| m.exim_id.clone()).collect();
    let rows = client
        .query(
            "SELECT l.host, to_char(l.logged_at, 'YYYY-MM-DD HH24:MI:SS'), l.exim_id, l.kind,
                    substring(l.raw from 1 for $4), d.flag, d.recipient, d.transport, d.peer_name,
                    m.sender, length(l.raw) > $4
               FROM unnest($1::text[], $2::text[]) AS j(host, exim_id)
               JOIN exim_pilot.lines l ON l.host = j.host AND l.exim_id = j.exim_id
               LEFT JOIN exim_pilot.deliveries d ON d.host = l.host AND d.source = l.source
                    AND d.line_offset = l.line_offset AND d.delivered_at = l.logged_at
               LEFT JOIN exim_pilot.messages m ON m.host = l.host AND m.source = l.source
                    AND m.line_offset = l.line_offset AND m.received_at = l.logged_at
              ORDER BY l.logged_at, l.host, l.line_offset
              LIMIT $3",
            &[&hosts, &ids, &MAX_LINES, &MAX_LINE_BYTES],
        )
        .await?;
    let lines = rows
        .iter()
        .map(|row| {
            let kind: String = row.get(3);
            let raw: Option<Vec<u8>> = row.get(4);
            let cut: Option<bool> = row.get(10);
            let text = match raw {
                Some(raw) if cut == Some(true) => {
                    format!("{} [cut: the line goes on]", String::from_utf8_lossy(&raw))
                }
                Some(raw) => String::from_utf8_lossy(&raw).into_owned(),
                None => summary(row, &kind),
            };
            JourneyLine {
                host: row.get(0),
                logged_at: row.get(1),
                exim_id: row.get(2),
                kind,
                text,
            }
        })
        .collect();
    let header_rows = client
        .query(
            "SELECT DISTINCT m.header_message_id
               FROM unnest($1::text[], $2::text[]) AS j(host, exim_id)
               JOIN exim_pilot.messages m ON m.host = j.host AND m.exim_id = j.exim_id
              WHERE m.header_message_id IS NOT NULL ORDER BY 1",
            &[&hosts, &ids],
        )
        .await?;
    let mut distinct_hosts = hosts.clone();
    distinct_hosts.sort();
    distinct_hosts.dedup();
    let hops = edges
        .iter()
        .filter(|hop| hop.by != "message-id" && messages.contains(&hop.from))
        .cloned()
        .collect();
    Ok(Journey {
        header_message_ids: header_rows.iter().map(|row| row.get(0)).collect(),
        hosts: distinct_hosts,
        messages,
        hops,
        lines,
    })
}

/// A line's gist from its rows, for hosts that ship no raw lines.
fn summary(row: &tokio_postgres::Row, kind: &str) -> String {
    let flag: Option<String> = row.get(5);
    let sender: Option<String> = row.get(9);
    match (flag, sender) {
        (Some(flag), _) => {
            let recipient: String = row.get(6);
            let transport: Option<String> = row.get(7);
            let peer: Option<String> = row.get(8);
            let mut text = format!("{flag} {recipient}");
            if let Some(transport) = transport {
                text.push_str(&format!(" T={transport}"));
            }
            if let Some(peer) = peer {
                text.push_str(&format!(" H={peer}"));
            }
            text
        }
        (None, Some(sender)) => format!("<= {sender}"),
        (None, None) => format!("[{kind}]"),
    }
}

/// The journeys as text: a heading per journey, its hops, then its lines
/// in time order, each with its host.
pub fn render(journeys: &[Journey]) -> String {
    let mut out = String::new();
    if journeys.is_empty() {
        out.push_str("no messages found in the fleet\n");
        return out;
    }
    let width = journeys
        .iter()
        .flat_map(|j| j.hosts.iter())
        .map(String::len)
        .max()
        .unwrap_or(0);
    for (n, journey) in journeys.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "journey {}: {} message(s) on {}",
            n + 1,
            journey.messages.len(),
            journey.hosts.join(", ")
        ));
        if !journey.header_message_ids.is_empty() {
            out.push_str(&format!(
                ", Message-ID {}",
                journey.header_message_ids.join(", ")
            ));
        }
        out.push('\n');
        for hop in &journey.hops {
            out.push_str(&format!(
                "  hop: {} {} -> {} {} ({})\n",
                hop.from.host, hop.from.exim_id, hop.to.host, hop.to.exim_id, hop.by
            ));
        }
        for line in &journey.lines {
            out.push_str(&format!("  {:<width$}  {}\n", line.host, line.text));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(host: &str, id: &str) -> HostMessage {
        HostMessage {
            host: host.into(),
            exim_id: id.into(),
        }
    }

    #[test]
    fn hops_join_messages_into_journeys() {
        let messages: BTreeSet<HostMessage> =
            [m("a", "1"), m("b", "2"), m("c", "3"), m("a", "4")].into();
        let edges = [
            Hop {
                from: m("a", "1"),
                to: m("b", "2"),
                by: "confirmation",
            },
            Hop {
                from: m("b", "2"),
                to: m("c", "3"),
                by: "message-id",
            },
        ];
        let groups = components(&messages, &edges);
        assert_eq!(groups.len(), 2);
        assert!(groups.contains(&vec![m("a", "1"), m("b", "2"), m("c", "3")]));
        assert!(groups.contains(&vec![m("a", "4")]));
    }

    #[test]
    fn render_labels_each_line_with_its_host() {
        let journey = Journey {
            header_message_ids: vec!["x@y".into()],
            hosts: vec!["mx".into(), "relay".into()],
            messages: vec![m("mx", "1"), m("relay", "2")],
            hops: vec![Hop {
                from: m("mx", "1"),
                to: m("relay", "2"),
                by: "confirmation",
            }],
            lines: vec![
                JourneyLine {
                    host: "mx".into(),
                    logged_at: "2024-01-01 00:00:00".into(),
                    exim_id: Some("1".into()),
                    kind: "reception".into(),
                    text: "2024-01-01 00:00:00 1 <= a@b".into(),
                },
                JourneyLine {
                    host: "relay".into(),
                    logged_at: "2024-01-01 00:00:01".into(),
                    exim_id: Some("2".into()),
                    kind: "reception".into(),
                    text: "2024-01-01 00:00:01 2 <= a@b".into(),
                },
            ],
        };
        let text = render(&[journey]);
        assert_eq!(
            text,
            "journey 1: 2 message(s) on mx, relay, Message-ID x@y\n\
             \x20 hop: mx 1 -> relay 2 (confirmation)\n\
             \x20 mx     2024-01-01 00:00:00 1 <= a@b\n\
             \x20 relay  2024-01-01 00:00:01 2 <= a@b\n"
        );
        assert_eq!(render(&[]), "no messages found in the fleet\n");
    }
}
