//! `exim-pilot ingest`: raw lines stored byte-exact, exactly once.

use std::io::Write;

use deadpool_sqlite::rusqlite::Connection;
use tempfile::TempDir;

use crate::util::{fixture, outcome, run};

fn ingest(dir: &TempDir, files: &[&std::path::Path]) -> (i32, String, String) {
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[ingest]\nbatch_size = 7\nmax_line_bytes = 4096\n").unwrap();
    let db = dir.path().join("x.db");
    let mut args = vec![
        "ingest".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
        "--db".to_owned(),
        db.display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    outcome(&run(&args))
}

/// (offset, real length, stored bytes, truncated) of every line, in file
/// order.
fn stored_lines(dir: &TempDir) -> Vec<(i64, i64, Vec<u8>, i64)> {
    let conn = Connection::open(dir.path().join("x.db")).unwrap();
    let mut lines = exim_pilot::store::repo::all_lines(&conn).unwrap();
    lines.sort_by_key(|(source, line)| (*source, line.offset));
    lines
        .into_iter()
        .map(|(_, line)| {
            let truncated = i64::from(line.is_truncated());
            (
                line.offset as i64,
                line.length as i64,
                line.bytes,
                truncated,
            )
        })
        .collect()
}

#[test]
fn the_bundled_sample_is_stored_line_for_line_and_a_second_run_adds_nothing() {
    let dir = TempDir::new().unwrap();
    let sample = fixture("sample/mainlog");
    let (status, stdout, stderr) = ingest(&dir, &[&sample]);
    assert_eq!(status, 0, "{stderr}");
    let content = std::fs::read(&sample).unwrap();
    let expected: Vec<&[u8]> = content
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let stored = stored_lines(&dir);
    assert_eq!(stored.len(), expected.len());
    for ((offset, length, raw, _), line) in stored.iter().zip(&expected) {
        assert_eq!(raw.as_slice(), *line);
        assert_eq!(*length as usize, line.len());
        assert_eq!(
            &content[*offset as usize..*offset as usize + line.len()],
            *line
        );
    }
    assert!(
        stdout.contains(&format!("{} new", expected.len())),
        "{stdout}"
    );

    let (status, stdout, _) = ingest(&dir, &[&sample]);
    assert_eq!(status, 0);
    assert!(
        stdout.contains("0 lines read"),
        "resumes from the checkpoint: {stdout}"
    );
    assert_eq!(stored_lines(&dir).len(), expected.len());
}

#[test]
fn an_appended_file_resumes_where_it_stopped_and_an_incomplete_line_waits() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(&log, b"2026-01-01 00:00:00 one\n2026-01-01 00:00:01 tw").unwrap();
    let (status, stdout, _) = ingest(&dir, &[&log]);
    assert_eq!(status, 0);
    assert!(
        stdout.contains("1 lines read") && stdout.contains("incomplete line"),
        "{stdout}"
    );

    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(b"o\n2026-01-01 00:00:02 three \xff\0\n")
        .unwrap();
    let (status, stdout, _) = ingest(&dir, &[&log]);
    assert_eq!(status, 0);
    assert!(stdout.contains("2 lines read from byte 24"), "{stdout}");
    let raws: Vec<Vec<u8>> = stored_lines(&dir).into_iter().map(|l| l.2).collect();
    assert_eq!(
        raws,
        vec![
            b"2026-01-01 00:00:00 one".to_vec(),
            b"2026-01-01 00:00:01 two".to_vec(),
            b"2026-01-01 00:00:02 three \xff\0".to_vec(),
        ]
    );
}

#[test]
fn a_gzip_copy_of_the_same_generation_is_the_same_source() {
    let dir = TempDir::new().unwrap();
    let plain = dir.path().join("mainlog.1");
    let mut content = Vec::new();
    for i in 0..50 {
        content.extend_from_slice(format!("2026-01-01 00:00:{i:02} line {i}\n").as_bytes());
    }
    std::fs::write(&plain, &content[..content.len() / 2 + 7]).unwrap();
    let (status, _, _) = ingest(&dir, &[&plain]);
    assert_eq!(status, 0);

    // Rotated and compressed: the rest is read from the gzip copy.
    let gz = dir.path().join("mainlog.1.gz");
    crate::util::write_gzip(&gz, &content);
    let (status, stdout, stderr) = ingest(&dir, &[&gz]);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.contains("already stored") && !stdout.contains("read from byte 0"),
        "{stdout}"
    );
    assert_eq!(stored_lines(&dir).len(), 50);
}

#[test]
fn long_lines_are_stored_truncated_with_their_real_length() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut content = b"2026-01-01 00:00:00 ".to_vec();
    content.extend(std::iter::repeat_n(b'x', 10_000));
    content.extend_from_slice(b"\n2026-01-01 00:00:01 short\n");
    std::fs::write(&log, &content).unwrap();
    let (status, stdout, _) = ingest(&dir, &[&log]);
    assert_eq!(status, 0);
    assert!(stdout.contains("1 truncated"), "{stdout}");
    let stored = stored_lines(&dir);
    assert_eq!(
        (stored[0].1, stored[0].2.len(), stored[0].3),
        (10_020, 4096, 1)
    );
    assert_eq!(stored[1].0, 10_021);
}

#[test]
fn an_unreachable_database_exits_75() {
    let dir = TempDir::new().unwrap();
    let (status, _, stderr) = outcome(&run(&[
        "ingest",
        "--db",
        "/nonexistent/dir/x.db",
        fixture("sample/mainlog").to_str().unwrap(),
    ]));
    assert_eq!(status, 75, "{stderr}");
    assert!(stderr.contains("/nonexistent/dir/x.db"), "{stderr}");
    drop(dir);
}

#[test]
fn lines_are_stored_with_their_kind_time_and_message_id() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(
        &log,
        "2024-05-06 07:08:09.250 [12] 1smkL5-00000000e65-24eQ <= a@example.com U=a P=local S=10\n\
         2024-05-06 07:08:10 1smkL5-00000000e65-24eQ Warning: something odd\n  \
         and its continuation\n\
         2024-05-06 07:08:11 SMTP connection from [192.0.2.1] lost\n\
         not an exim line\n",
    )
    .unwrap();
    let (status, _, stderr) = ingest(&dir, &[&log]);
    assert_eq!(status, 0, "{stderr}");
    let db = dir.path().join("x.db");
    let rows: Vec<(Option<i64>, Option<String>)> = crate::util::lines_with_messages(&db)
        .into_iter()
        .map(|(line, id)| (line.logged_ms, id))
        .collect();
    let id = Some("1smkL5-00000000e65-24eQ".to_owned());
    // 2024-05-06 07:08:09.250 as milliseconds of the log's own clock.
    let at = 1_714_979_289_250;
    assert_eq!(
        rows,
        vec![
            (Some(at), id.clone()),
            (Some(at + 750), id.clone()),
            (Some(at + 750), id.clone()),
            (Some(at + 1750), None),
            (None, None),
        ]
    );
    for kind in [
        "reception",
        "warning",
        "continuation",
        "connection_lost",
        "unrecognised",
    ] {
        assert_eq!(crate::util::lines_of_kind(&db, kind), 1, "{kind}");
    }
}

#[test]
fn the_real_exim_sample_has_no_unrecognised_lines() {
    let dir = TempDir::new().unwrap();
    let (status, _, _) = ingest(&dir, &[&fixture("sample/mainlog")]);
    assert_eq!(status, 0);
    let db = dir.path().join("x.db");
    let count = |kind: &str| crate::util::lines_of_kind(&db, kind);
    assert_eq!(count("unrecognised"), 0);
    let content = std::fs::read_to_string(fixture("sample/mainlog")).unwrap();
    assert_eq!(count("reception") as usize, content.matches(" <= ").count());
    assert_eq!(count("delivery") as usize, content.matches(" => ").count());
    assert_eq!(count("failure") as usize, content.matches(" ** ").count());
}

#[test]
fn the_real_exim_sample_gives_each_message_the_outcome_exim_had() {
    let dir = TempDir::new().unwrap();
    let (status, _, stderr) = ingest(&dir, &[&fixture("sample/mainlog")]);
    assert_eq!(status, 0, "{stderr}");
    let conn = Connection::open(dir.path().join("x.db")).unwrap();
    let messages: Vec<(String, String, String, Option<String>)> = crate::util::query_all(
        &conn,
        "SELECT exim_id, coalesce(sender, ''), status, parent_exim_id FROM messages ORDER BY id",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    );
    let expected = [
        ("1xWZzS-0001uN-1x", "a@outside.example", "completed", None),
        ("1xWZzS-0001uR-2j", "b@outside.example", "completed", None),
        ("1xWZzT-0001uX-0I", "c@outside.example", "completed", None),
        ("1xWZzT-0001ud-14", "c@outside.example", "completed", None),
        ("1xWZzT-0001uj-1r", "d@outside.example", "completed", None),
        ("1xWZzT-0001un-20", "<>", "frozen", Some("1xWZzT-0001uj-1r")),
        ("1xWZzT-0001uq-2c", "e@outside.example", "deferred", None),
        ("1xWZzU-0001uz-1g", "", "rejected", None),
        ("1xWZzU-0001v1-2g", "h@outside.example", "completed", None),
        ("1xWZzU-0001v5-2o", "i@outside.example", "completed", None),
        ("1xWZzV-0001v9-0M", "root@vm", "completed", None),
    ];
    let expected: Vec<(String, String, String, Option<String>)> = expected
        .iter()
        .map(|(id, sender, status, parent)| {
            (
                id.to_string(),
                sender.to_string(),
                status.to_string(),
                parent.map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(messages, expected);
    let recipient_states: Vec<(String, i64)> = crate::util::query_all(
        &conn,
        "SELECT status, count(*) FROM recipients GROUP BY status ORDER BY status",
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    assert_eq!(
        recipient_states,
        [
            ("bounced".to_owned(), 2),
            ("deferred".to_owned(), 1),
            ("delivered".to_owned(), 10)
        ]
    );
    let lines = crate::util::lines_with_messages(&dir.path().join("x.db"));
    for (line, linked) in lines {
        let parsed = exim_pilot::parse::parse_line(&line.bytes)
            .message_id()
            .map(|id| id.as_str().to_owned());
        if parsed.is_some() {
            assert_eq!(linked, parsed, "every line with an id links to its message");
        }
    }
    let rejections: i64 = conn
        .query_row("SELECT count(*) FROM rejections", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rejections, 3);
}

#[test]
#[cfg(feature = "synth")]
fn a_generated_log_gives_every_message_and_recipient_its_known_final_state() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut generator = exim_pilot::synth::Generator::new(11);
    let mut content = Vec::new();
    generator.write(20_000, &mut content).unwrap();
    generator.finish(&mut content).unwrap();
    std::fs::write(&log, &content).unwrap();
    let (status, _, stderr) = ingest(&dir, &[&log]);
    assert_eq!(status, 0, "{stderr}");

    let conn = Connection::open(dir.path().join("x.db")).unwrap();
    /// (message id, status, frozen, [(recipient, status)])
    type MessageState = (String, String, bool, Vec<(String, String)>);
    let mut stored: Vec<MessageState> = Vec::new();
    let rows: Vec<(i64, String, String, i64)> = crate::util::query_all(
        &conn,
        "SELECT id, exim_id, status, frozen FROM messages ORDER BY exim_id",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    );
    for (id, exim_id, status, frozen) in rows {
        let recipients: Vec<(String, String)> = conn
            .prepare("SELECT address, status FROM recipients WHERE message_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        stored.push((exim_id, status, frozen != 0, recipients));
    }
    let mut expected: Vec<MessageState> = generator
        .outcomes()
        .iter()
        .map(|o| {
            (
                o.id.clone(),
                o.status.to_owned(),
                o.frozen,
                o.recipients
                    .iter()
                    .map(|(a, s)| (a.clone(), s.to_string()))
                    .collect(),
            )
        })
        .collect();
    expected.sort();
    assert!(expected.len() > 2000, "a meaningful number of messages");
    assert_eq!(stored.len(), expected.len());
    for (stored, expected) in stored.iter().zip(&expected) {
        assert_eq!(stored, expected);
    }
}
