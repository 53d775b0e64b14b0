//! The model's rules end to end, on an in-memory database. Every scenario
//! runs twice, with the lines in one batch and with a batch per line, and
//! both must leave the same rows: one batch keeps states in memory, a
//! batch per line reads them back from the rows.

use deadpool_sqlite::rusqlite::Connection;

use super::*;
use crate::parse::parse_line;

/// The rows a scenario leaves, as text, for comparing runs.
fn dump(conn: &Connection) -> Vec<String> {
    let mut rows = Vec::new();
    for sql in [
        "SELECT id, exim_id, received_ms, sender, status, frozen, completed_ms, last_event_ms,
                parent_exim_id FROM messages ORDER BY id",
        "SELECT id, message_id, address, status, final_address, parent_address, last_attempt_ms,
                delivered_ms FROM recipients ORDER BY id",
        "SELECT message_id, recipient_id, flag, attempted_ms, outcome FROM delivery_attempts ORDER BY id",
        "SELECT message_id, stage, temporary FROM rejections ORDER BY id",
    ] {
        let mut statement = conn.prepare(sql).unwrap();
        let columns = statement.column_count();
        let table = statement
            .query_map([], |row| {
                Ok((0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join(" "))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.extend(table);
    }
    rows
}

/// Applies `lines` as the writer would, `per_batch` lines to a batch.
fn apply_batches(lines: &[&str], per_batch: usize) -> Connection {
    apply_with(lines, per_batch, false)
}

/// Applies `lines`, `per_batch` to a batch; with `forgetful`, the id cache
/// forgets everything after each line, as it does when full.
fn apply_with(lines: &[&str], per_batch: usize, forgetful: bool) -> Connection {
    let mut conn = crate::store::migrated_in_memory();
    conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
    apply_in_batches(&mut conn, lines, per_batch, forgetful);
    conn
}

/// Applies `lines` to `conn` as the writer would (without the raw lines
/// and their counts), `per_batch` lines to a transaction; with
/// `forgetful`, the caches forget everything after each line.
pub(crate) fn apply_in_batches(
    conn: &mut Connection,
    lines: &[&str],
    per_batch: usize,
    forgetful: bool,
) {
    let mut ids = MessageIds::default();
    let mut texts = TextIds::default();
    for batch in lines.chunks(per_batch) {
        let tx = conn.transaction().unwrap();
        texts.revalidate(&tx).unwrap();
        let mut model = BatchModel::begin(&tx).unwrap();
        for line in batch {
            let entry = parse_line(line.as_bytes());
            let at = entry.prefix.map(|p| p.timestamp.local_ms());
            let message = model.message_row(&tx, &mut ids, &entry).unwrap();
            model.apply(&tx, &mut texts, &entry, message, at).unwrap();
            if forgetful {
                ids.clear();
                texts.clear();
            }
        }
        model.flush(&tx, &mut texts).unwrap();
        tx.commit().unwrap();
    }
}

/// Applies lines in one batch, after checking that a batch per line
/// leaves the same rows.
fn apply_lines(lines: &[&str]) -> Connection {
    let whole = apply_batches(lines, lines.len().max(1));
    let one_by_one = apply_batches(lines, 1);
    assert_eq!(
        dump(&whole),
        dump(&one_by_one),
        "batching changed the outcome"
    );
    let forgetful = apply_with(lines, lines.len().max(1), true);
    assert_eq!(
        dump(&whole),
        dump(&forgetful),
        "the id cache changed the outcome"
    );
    whole
}

fn message(conn: &Connection, exim_id: &str) -> (String, i64, Option<i64>) {
    conn.query_row(
        "SELECT status, frozen, received_ms FROM messages WHERE exim_id = ?1",
        [exim_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// Address, final address (stored only when it differs; known once
/// tried), status.
fn recipients(conn: &Connection, exim_id: &str) -> Vec<(String, Option<String>, String)> {
    conn.prepare(
        "SELECT r.address,
                CASE r.status WHEN 'pending' THEN r.final_address
                              ELSE coalesce(r.final_address, r.address) END,
                r.status
         FROM recipients r
         JOIN messages m ON m.id = r.message_id WHERE m.exim_id = ?1 ORDER BY r.id",
    )
    .unwrap()
    .query_map([exim_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

const ID: &str = "1smkL5-00000000e65-24eQ";

#[test]
fn received_deferred_then_delivered_then_completed() {
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net c@example.net",
        "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ == b@example.net R=dnslookup T=remote_smtp defer (-44): 451 4.7.1 later",
    ]);
    assert_eq!(message(&conn, ID).0, "deferred");
    assert_eq!(recipients(&conn, ID)[0].2, "deferred");
    assert_eq!(recipients(&conn, ID)[1].2, "pending");
    let conn2 = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net c@example.net",
        "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ == b@example.net R=dnslookup T=remote_smtp defer (-44): 451 4.7.1 later",
        "2024-01-01 10:05:00 1smkL5-00000000e65-24eQ => b@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2] C=\"250 OK\"",
        "2024-01-01 10:05:00 1smkL5-00000000e65-24eQ -> c@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2] C=\"250 OK\"",
        "2024-01-01 10:05:01 1smkL5-00000000e65-24eQ == b@example.net R=dnslookup T=remote_smtp defer (-44): a stale deferral",
        "2024-01-01 10:05:02 1smkL5-00000000e65-24eQ Completed",
    ]);
    assert_eq!(message(&conn2, ID).0, "completed");
    let statuses: Vec<String> = recipients(&conn2, ID).into_iter().map(|r| r.2).collect();
    assert_eq!(
        statuses,
        ["delivered", "delivered"],
        "a deferral never undoes a delivery"
    );
    let attempts: i64 = conn2
        .query_row("SELECT count(*) FROM delivery_attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempts, 4);
}

#[test]
fn bounce_creates_a_linked_bounce_message_that_freezes() {
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1WQstC-0000qD-Vl <= a@example.com U=a P=local S=10 for x@example.org",
        "2024-01-01 10:00:01 1WQstC-0000qD-Vl ** x@example.org R=dnslookup T=remote_smtp: 550 5.1.1 unknown",
        "2024-01-01 10:00:01 1WQstD-0000qH-EP <= <> R=1WQstC-0000qD-Vl U=Debian-exim P=local S=1579 for a@example.com",
        "2024-01-01 10:00:01 1WQstC-0000qD-Vl Completed",
        "2024-01-01 10:00:02 1WQstD-0000qH-EP ** a@example.com: Unrouteable address",
        "2024-01-01 10:00:02 1WQstD-0000qH-EP Frozen (delivery error message)",
        // A queue run later: still frozen, since the `Frozen` line, for its reason.
        "2024-01-01 10:30:00 1WQstD-0000qH-EP Message is frozen",
    ]);
    let (frozen_ms, reason): (i64, String) = conn
        .query_row(
            "SELECT frozen_ms, (SELECT text FROM texts WHERE id = frozen_reason_id)
             FROM messages WHERE exim_id = '1WQstD-0000qH-EP'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (
            crate::parse::format_seconds(frozen_ms / 1000),
            reason.as_str()
        ),
        ("2024-01-01 10:00:02".to_owned(), "(delivery error message)")
    );
    assert_eq!(message(&conn, "1WQstC-0000qD-Vl").0, "completed");
    assert_eq!(recipients(&conn, "1WQstC-0000qD-Vl")[0].2, "bounced");
    let (status, frozen, _) = message(&conn, "1WQstD-0000qH-EP");
    assert_eq!((status.as_str(), frozen), ("frozen", 1));
    let parent: String = conn
        .query_row(
            "SELECT parent_exim_id FROM messages WHERE exim_id = '1WQstD-0000qH-EP'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(parent, "1WQstC-0000qD-Vl");
    let sender: String = conn
        .query_row(
            "SELECT sender FROM messages WHERE exim_id = '1WQstD-0000qH-EP'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sender, "<>");
}

#[test]
fn lines_before_the_reception_make_a_placeholder_it_fills_in() {
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ >> b@example.net R=all T=smtp H=mx [192.0.2.2] C=\"250 OK\"",
    ]);
    let (status, _, received) = message(&conn, ID);
    assert_eq!(
        (status.as_str(), received),
        ("received", None),
        "a placeholder"
    );
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ >> b@example.net R=all T=smtp H=mx [192.0.2.2] C=\"250 OK\"",
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net",
    ]);
    let (_, _, received) = message(&conn, ID);
    assert!(received.is_some());
    assert_eq!(
        recipients(&conn, ID),
        [(
            "b@example.net".to_owned(),
            Some("b@example.net".to_owned()),
            "delivered".to_owned()
        )]
    );
    let stored: Option<String> = conn
        .query_row("SELECT final_address FROM recipients", [], |row| row.get(0))
        .unwrap();
    assert_eq!(stored, None, "an unchanged address is stored once");
}

#[test]
fn frozen_then_thawed_and_rejected_after_data() {
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com U=a P=local S=10 for b@example.net",
        "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ Message is frozen",
    ]);
    assert_eq!(
        message(&conn, ID),
        ("frozen".to_owned(), 1, Some(1_704_103_200_000))
    );
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com U=a P=local S=10 for b@example.net",
        "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ Message is frozen",
        "2024-01-01 10:00:02 1smkL5-00000000e65-24eQ Unfrozen by forced delivery",
    ]);
    assert_eq!(
        (message(&conn, ID).0.as_str(), message(&conn, ID).1),
        ("deferred", 0)
    );
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1xWZzU-0001uz-1g H=(vm) [127.0.0.1]:46076 F=<g@outside.example> rejected after DATA: content rejected",
    ]);
    assert_eq!(message(&conn, "1xWZzU-0001uz-1g").0, "rejected");
    let (stage, sender, temporary): (String, String, i64) = conn
        .query_row("SELECT stage, sender, temporary FROM rejections", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (stage.as_str(), sender.as_str(), temporary),
        ("after_data", "g@outside.example", 0)
    );
}

#[test]
fn an_alias_delivered_to_two_final_addresses_is_one_recipient_with_two_attempts() {
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com U=a P=local S=10 for list@example.org",
        "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ => bob <list@example.org> R=aliases T=local_delivery",
        "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ -> carol <list@example.org> R=aliases T=local_delivery",
    ]);
    assert_eq!(
        recipients(&conn, ID),
        [(
            "list@example.org".to_owned(),
            Some("carol".to_owned()),
            "delivered".to_owned()
        )]
    );
    let finals: Vec<String> = conn
        .prepare("SELECT final_address FROM delivery_attempts ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(finals, ["bob", "carol"]);
}

#[test]
fn a_generated_log_leaves_the_same_rows_whatever_the_batch_size() {
    let mut generator = crate::synth::Generator::new(3);
    let mut content = Vec::new();
    generator.write(3000, &mut content).unwrap();
    generator.finish(&mut content).unwrap();
    let text = String::from_utf8(content).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let reference = dump(&apply_batches(&lines, lines.len()));
    assert!(reference.len() > 1000, "the log makes rows");
    for per_batch in [1, 7, 256] {
        assert_eq!(
            dump(&apply_batches(&lines, per_batch)),
            reference,
            "{per_batch} lines per batch"
        );
    }
    assert_eq!(
        dump(&apply_with(&lines, lines.len(), true)),
        reference,
        "the id cache forgetting everything after each line"
    );
}

#[test]
fn an_error_naming_its_recipient_is_stored_once_and_read_back_whole() {
    let errors = [
        "SMTP error from remote mail server after RCPT TO:<b@example.net>: 550 5.1.1 User unknown",
        "SMTP error from remote mail server after RCPT TO:<c@example.net>: 550 5.1.1 User unknown",
    ];
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net c@example.net",
        &format!(
            "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ ** b@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2]: {}",
            errors[0]
        ),
        &format!(
            "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ ** c@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2]: {}",
            errors[1]
        ),
    ]);
    let read: Vec<String> = conn
        .prepare("SELECT error_text FROM delivery_attempts ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(read, errors);
    let stored: i64 = conn
        .query_row(
            "SELECT count(*) FROM texts WHERE text LIKE 'SMTP error%'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, 1, "one text for both recipients");
}
