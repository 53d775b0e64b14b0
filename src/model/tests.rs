//! The model's rules end to end, on an in-memory database. Every scenario
//! runs in one batch, in a batch per line, with caches that forget, and
//! with each batch applied before the one before it is written (as the
//! writer does while catching up), and all must leave the same rows: one
//! batch keeps states in memory, a batch per line reads them back from the
//! rows or takes them from the batch before.

use deadpool_sqlite::rusqlite::Connection;

use super::*;
use crate::parse::parse_line;

/// The rows a scenario leaves, as text, for comparing runs.
fn dump(conn: &Connection) -> Vec<String> {
    let mut rows = Vec::new();
    for sql in [
        "SELECT id, exim_id, received_ms, sender, status, frozen, completed_ms, last_event_ms,
                parent_exim_id, host_name_id, protocol_id, frozen_reason_id, had_deferral,
                had_failure FROM messages ORDER BY id",
        "SELECT id, message_id, address, status, final_address, parent_address, last_attempt_ms,
                delivered_ms FROM recipients ORDER BY id",
        "SELECT message_id, recipient_id, flag, attempted_ms, outcome FROM delivery_attempts
         ORDER BY id NULLS FIRST, recipient_id",
        "SELECT id, attempt_flag, attempt_ms, attempt_router_id, attempt_transport_id,
                attempt_error_text_id FROM recipients ORDER BY id",
        "SELECT message_id, stage, temporary FROM rejections ORDER BY id",
        "SELECT router_id, transport_id, error_text_id FROM attempts ORDER BY id",
        "SELECT id, text FROM texts ORDER BY id",
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

/// Applies `batch` to a model that starts from `carried`.
fn apply_batch<'b>(
    conn: &Connection,
    batch: &'b [Entry<'b>],
    carried: Carried,
    ids: &mut MessageIds,
    texts: &mut TextIds,
) -> Result<BatchModel<'b>, StoreError> {
    let mut model = BatchModel::begin(conn, carried)?;
    for entry in batch {
        let at = entry.prefix.map(|p| p.timestamp.local_ms());
        let message = model.message_row(conn, ids, entry)?;
        model.apply(conn, texts, entry, message, at)?;
    }
    Ok(model)
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
        let mut model = BatchModel::begin(&tx, Carried::default()).unwrap();
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
        crate::store::insert_texts(&tx, &texts.take_unwritten()).unwrap();
        model.flush(&tx).unwrap();
        tx.commit().unwrap();
    }
}

/// Applies `lines`, `per_batch` to a batch, each batch before the batch
/// before it is written, from what that one left: as the writer prepares a
/// batch while the one before commits.
fn apply_ahead(lines: &[&str], per_batch: usize) -> Connection {
    let mut conn = crate::store::migrated_in_memory();
    conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
    let entries: Vec<Vec<_>> = lines
        .chunks(per_batch)
        .map(|batch| {
            batch
                .iter()
                .map(|line| parse_line(line.as_bytes()))
                .collect()
        })
        .collect();
    let mut ids = MessageIds::default();
    let mut texts = TextIds::default();
    let mut carried = Carried::default();
    let mut unwritten = None;
    let write = |conn: &mut Connection, (model, new_texts): (BatchModel<'_>, Vec<_>)| {
        let tx = conn.transaction().unwrap();
        crate::store::insert_texts(&tx, &new_texts).unwrap();
        model.flush(&tx).unwrap();
        tx.commit().unwrap();
    };
    for batch in &entries {
        texts.revalidate(&conn).unwrap();
        if !carried.settled_enough() {
            // The writer prepares such a batch after the one before commits.
            if let Some(previous) = unwritten.take() {
                write(&mut conn, previous);
            }
            carried = Carried::default();
            texts.settle();
        }
        let mut model = match apply_batch(
            &conn,
            batch,
            std::mem::take(&mut carried),
            &mut ids,
            &mut texts,
        ) {
            Ok(model) => model,
            Err(_) => {
                // As the writer does: start over once the batch before
                // is written, reading everything from the database.
                if let Some(previous) = unwritten.take() {
                    write(&mut conn, previous);
                }
                (ids, texts) = (MessageIds::default(), TextIds::default());
                texts.revalidate(&conn).unwrap();
                apply_batch(&conn, batch, Carried::default(), &mut ids, &mut texts).unwrap()
            }
        };
        carried = model.carry();
        let new_texts = texts.take_unwritten();
        if let Some(previous) = unwritten.replace((model, new_texts)) {
            write(&mut conn, previous);
        }
    }
    if let Some(previous) = unwritten.take() {
        write(&mut conn, previous);
    }
    conn
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
    for per_batch in [1, 2, 3] {
        assert_eq!(
            dump(&whole),
            dump(&apply_ahead(lines, per_batch)),
            "applying each batch of {per_batch} before the one before it was written changed the \
             outcome"
        );
    }
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
    // Each recipient's first attempt is in its row, the later ones rows
    // of `attempts`, in the order the log gave them.
    let held: Vec<(String, Option<String>)> = conn2
        .prepare("SELECT address, attempt_flag FROM recipients ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        held,
        [
            ("b@example.net".to_owned(), Some("==".to_owned())),
            ("c@example.net".to_owned(), Some("->".to_owned()))
        ]
    );
    let later: Vec<String> = conn2
        .prepare("SELECT flag FROM attempts ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(later, ["=>", "=="]);
    let flags: (bool, bool) = conn2
        .query_row("SELECT had_deferral, had_failure FROM messages", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(flags, (true, false), "deferred once, never failed");
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
    for per_batch in [1, 7, 256] {
        assert_eq!(
            dump(&apply_ahead(&lines, per_batch)),
            reference,
            "{per_batch} lines per batch, each applied before the one before was written"
        );
    }
}

#[test]
fn recipients_all_discarded_at_once_stay_discarded_in_the_batches_after() {
    // The discard changes recipients the batch does not hold; the batch
    // after it must see them discarded, not as the batch before left them.
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net c@example.net",
        "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ == b@example.net R=dnslookup T=remote_smtp defer (-44): SMTP error from remote mail server after RCPT TO:<b@example.net>: 451 4.7.1 later",
        "2024-01-01 10:00:02 1smkL5-00000000e65-24eQ => blackhole (DATA ACL discarded recipients)",
        "2024-01-01 10:00:03 1smkL5-00000000e65-24eQ == c@example.net R=dnslookup T=remote_smtp defer (-44): SMTP error from remote mail server after RCPT TO:<c@example.net>: 451 4.7.1 later",
        "2024-01-01 10:00:04 1smkL5-00000000e65-24eQ Completed",
    ]);
    let statuses: Vec<(String, String)> = conn
        .prepare("SELECT address, status FROM recipients ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        statuses[0],
        ("b@example.net".to_owned(), "discarded".to_owned())
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

#[test]
fn a_line_after_completed_in_a_later_batch_finds_the_message_as_it_was_left() {
    // The batch that completes a message does not carry its state: a batch
    // applied ahead that touches it again starts over once that one is
    // written.
    let conn = apply_lines(&[
        "2024-01-01 10:00:00 1smkL5-00000000e65-24eQ <= a@example.com H=(x) [192.0.2.1] P=esmtp S=100 for b@example.net",
        "2024-01-01 10:00:01 1smkL5-00000000e65-24eQ => b@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2] C=\"250 OK\"",
        "2024-01-01 10:00:02 1smkL5-00000000e65-24eQ Completed",
        "2024-01-01 10:00:03 1smkL5-00000000e65-24eQ => b@example.net R=dnslookup T=remote_smtp H=mx [192.0.2.2] C=\"250 OK\"",
    ]);
    let recipients: i64 = conn
        .query_row("SELECT count(*) FROM recipients", [], |row| row.get(0))
        .unwrap();
    assert_eq!(recipients, 1);
}
