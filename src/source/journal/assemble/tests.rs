use super::*;

fn entry(cursor: &str, pid: &str, time_us: u64, message: &[u8]) -> JournalEntry {
    JournalEntry {
        cursor: cursor.to_owned(),
        realtime_us: time_us,
        source_realtime_us: None,
        boot_id: b"boot".to_vec(),
        pid: pid.as_bytes().to_vec(),
        message: Some(message.to_vec()),
        syslog_raw: None,
    }
}

/// What Exim's `write_syslog` sends for `line`: cut at each newline and
/// after 870 bytes, each piece prefixed `[n/m] ` or `[n\m] ` when there
/// are several (`\`: a newline followed the piece).
fn exim_pieces(line: &str) -> Vec<Vec<u8>> {
    let mut pieces: Vec<(Vec<u8>, bool)> = Vec::new();
    for (index, segment) in line.split('\n').enumerate() {
        if index > 0 {
            pieces.last_mut().unwrap().1 = true;
        }
        let bytes = segment.as_bytes();
        let mut start = 0;
        loop {
            let end = (start + 870).min(bytes.len());
            pieces.push((bytes[start..end].to_vec(), false));
            start = end;
            if start >= bytes.len() {
                break;
            }
        }
    }
    let total = pieces.len();
    if total == 1 {
        return vec![pieces.remove(0).0];
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, (text, newline))| {
            let mut piece = format!(
                "[{}{}{}] ",
                index + 1,
                if newline { '\\' } else { '/' },
                total
            )
            .into_bytes();
            piece.extend_from_slice(&text);
            piece
        })
        .collect()
}

#[test]
fn a_long_line_cut_into_pieces_is_whole_again() {
    let recipients: Vec<String> = (0..120).map(|n| format!("user{n}@example.org")).collect();
    let line = format!(
        "2026-12-01 10:00:00 1xYOcW-0000ED-2x <= a@example.com H=(client) [127.0.0.1] \
         P=esmtp S=420 for {}",
        recipients.join(" ")
    );
    let pieces = exim_pieces(&line);
    assert!(pieces.len() >= 3, "the line is cut: {}", pieces.len());
    let mut assembler = Assembler::default();
    let mut lines = Vec::new();
    for (n, piece) in pieces.iter().enumerate() {
        lines.extend(assembler.push(&entry(&format!("c{n}"), "7", 1, piece)));
    }
    assert_eq!(lines, vec![line.into_bytes()]);
    assert_eq!(assembler.partial_lines, 0);
}

#[test]
fn a_line_with_a_newline_becomes_the_two_lines_of_a_file() {
    let line = "2026-12-01 10:00:00 Warning: No server certificate defined; will use a selfsigned one.\n \
                Suggested action: either install a certificate or change tls_advertise_hosts option";
    let pieces = exim_pieces(line);
    assert_eq!(pieces.len(), 2);
    assert!(pieces[0].starts_with(b"[1\\2] 2026-12-01"));
    let mut assembler = Assembler::default();
    let mut lines = assembler.push(&entry("c1", "7", 1, &pieces[0]));
    assert!(lines.is_empty());
    lines.extend(assembler.push(&entry("c2", "7", 1, &pieces[1])));
    let expected: Vec<Vec<u8>> = line.split('\n').map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(lines, expected);
}

#[test]
fn other_processes_lines_between_the_pieces_pass_and_the_pieces_join() {
    let long = format!(
        "2026-12-01 10:00:00 1xYOcW-0000ED-2x == {} defer",
        "x".repeat(1500)
    );
    let pieces = exim_pieces(&long);
    let mut assembler = Assembler::default();
    let mut lines = assembler.push(&entry("c1", "7", 1, &pieces[0]));
    lines.extend(assembler.push(&entry("c2", "8", 1, b"2026-12-01 10:00:00 other")));
    lines.extend(assembler.push(&entry("c3", "7", 1, &pieces[1])));
    assert_eq!(
        lines,
        vec![b"2026-12-01 10:00:00 other".to_vec(), long.into_bytes()]
    );
}

#[test]
fn the_position_keeps_an_unfinished_line_across_a_restart() {
    let long = format!("2026-12-01 10:00:00 {}", "y".repeat(1000));
    let pieces = exim_pieces(&long);
    let mut assembler = Assembler::default();
    assert!(assembler.push(&entry("c1", "7", 1, &pieces[0])).is_empty());
    let position = assembler.position("s=1;b=b;m=1;t=2;x=3", 0);
    let (cursor, skip, mut restored) = Assembler::restore(&position).unwrap();
    assert_eq!((cursor.as_str(), skip), ("s=1;b=b;m=1;t=2;x=3", 0));
    assert_eq!(restored, assembler);
    let lines = restored.push(&entry("c2", "7", 1, &pieces[1]));
    assert_eq!(lines, vec![long.into_bytes()]);
    // With nothing unfinished the position is the cursor alone.
    assert_eq!(restored.position("c2", 0), b"c2");
    assert_eq!(
        Assembler::restore(&restored.position("c2", 1)).unwrap().1,
        1
    );
}

#[test]
fn missing_pieces_and_stray_pieces_are_stored_as_they_stand() {
    let mut assembler = Assembler::default();
    // Its first piece was before what was read.
    let lines = assembler.push(&entry("c1", "7", 1, b"[2/2] tail of a line"));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].ends_with(b"[2/2] tail of a line"));
    // A process that died between pieces: stored after the timeout.
    assert!(
        assembler
            .push(&entry("c2", "9", 1, b"[1/2] 2026-12-01 10:00:00 head"))
            .is_empty()
    );
    let lines = assembler.push(&entry(
        "c3",
        "8",
        1 + PENDING_FOR_US + 1,
        b"2026-12-01 10:00:31 next",
    ));
    assert_eq!(
        lines,
        vec![
            b"2026-12-01 10:00:00 head".to_vec(),
            b"2026-12-01 10:00:31 next".to_vec()
        ]
    );
    assert_eq!(assembler.partial_lines, 2);
}

#[test]
fn without_exims_timestamp_the_entrys_time_is_put_first() {
    let mut assembler = Assembler::default();
    let lines = assembler.push(&entry(
        "c1",
        "7",
        1_764_583_200_000_000,
        b"1xYOcW-0000ED-2x Completed",
    ));
    assert_eq!(lines.len(), 1);
    let line = String::from_utf8(lines[0].clone()).unwrap();
    assert!(starts_with_timestamp(line.as_bytes()), "{line}");
    assert!(line.ends_with(" 1xYOcW-0000ED-2x Completed"), "{line}");
}

#[test]
fn syslog_raw_keeps_what_journald_stripped() {
    let mut with_raw = entry("c1", "7", 1, b"2026-12-01 10:00:00 ends in spaces");
    with_raw.syslog_raw =
        Some(b"<22>Dec  1 10:00:00 exim[7]: 2026-12-01 10:00:00 ends in spaces  \n".to_vec());
    let lines = Assembler::default().push(&with_raw);
    assert_eq!(
        lines,
        vec![b"2026-12-01 10:00:00 ends in spaces  ".to_vec()]
    );
}

#[test]
fn cursors_name_the_same_entry_by_boot_times_and_hash() {
    let a = "s=aa;i=10;b=bb;m=5;t=61a0;x=77";
    let b = "s=cc;i=99;b=bb;m=5;t=61a0;x=77";
    assert!(same_entry(a, b));
    assert!(!same_entry(a, "s=aa;i=10;b=bb;m=6;t=61a0;x=77"));
    assert!(!same_entry("garbage", "garbage"));
    assert_eq!(cursor_time_us(a), Some(0x61a0));
}

/// A real Exim 4.96 (Debian 12) logging with `log_file_path = syslog :
/// /var/log/exim4/%slog`: its journal entries, exported, make exactly the
/// lines it wrote to its file, a line cut for length and one cut at a
/// newline included (fixtures/journal/README.md).
#[test]
fn exims_own_syslog_pieces_make_the_lines_of_its_file() {
    let export = include_bytes!("../../../../fixtures/journal/exim-syslog.export");
    let mainlog = include_bytes!("../../../../fixtures/journal/exim-syslog.mainlog");
    assert!(memchr::memmem::find(export, b"MESSAGE=[1/2] ").is_some());
    assert!(memchr::memmem::find(export, b"MESSAGE=[1\\2] ").is_some());
    let mut reader = std::io::Cursor::new(&export[..]);
    let mut assembler = Assembler::default();
    let mut lines = Vec::new();
    while let Some(entry) = crate::source::journal::read_entry(&mut reader).unwrap() {
        lines.extend(assembler.push(&entry));
    }
    let expected: Vec<Vec<u8>> = mainlog
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert!(expected.iter().any(|line| line.len() > 870));
    assert_eq!(lines.len(), expected.len());
    assert_eq!(lines, expected);
    assert_eq!(assembler.partial_lines, 0);
}
