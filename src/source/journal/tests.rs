//! The journal source against a stand-in journalctl that prints a real
//! Exim's exported entries (fixtures/journal), honouring `--cursor` as the
//! real one does: from that entry on, or from the next one left when it is
//! gone.

use std::os::unix::fs::PermissionsExt;

use super::*;

const EXPORT: &[u8] = include_bytes!("../../../fixtures/journal/exim-syslog.export");
const MAINLOG: &[u8] = include_bytes!("../../../fixtures/journal/exim-syslog.mainlog");

use crate::pipeline::source::Collected;

/// A directory with `export` as the journal, and a journalctl that prints
/// it and records its arguments in `args`.
struct FakeJournal {
    dir: tempfile::TempDir,
}

impl FakeJournal {
    fn new(export: &[u8]) -> Self {
        Self::pausing(export, 0.0)
    }

    /// One that pauses `pause` seconds after its first entry, longer than a
    /// poll waits: the source sees the pieces of a split line in two polls.
    fn pausing(export: &[u8], pause: f64) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join("export"), export).unwrap();
        let script = dir.path().join("journalctl");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
printf '%s\n' "$@" >"{dir}/args"
cursor=
for argument in "$@"; do
  case $argument in --cursor=*) cursor=${{argument#--cursor=}} ;; esac
done
awk -v cursor="$cursor" 'BEGIN {{ RS = ""; ORS = "\n\n"; found = 0 }}
  {{ entries[NR] = $0; if (cursor != "" && index($0, "__CURSOR=" cursor "\n") == 1) found = NR }}
  END {{ for (n = (found ? found : 1); n <= NR; n++) {{
    print entries[n]; fflush(); if (n == (found ? found : 1)) system("sleep {pause}") }} }}' "{dir}/export"
"#,
                dir = dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeJournal { dir }
    }

    fn settings(&self) -> JournalSettings {
        JournalSettings {
            identifier: "exim".to_owned(),
            unit: None,
            max_line_bytes: 1 << 20,
            program: self.dir.path().join("journalctl"),
        }
    }

    fn args(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("args"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Reads to the end from `start`.
    fn read(&self, start: Option<ReadPosition>, window: Window) -> Collected {
        let mut source = JournalSource::new(self.settings(), start, window, false);
        let mut collected = Collected::default();
        while !source.finished() {
            source.poll(&mut collected).unwrap();
        }
        collected
    }
}

/// The bytes of the lines collected.
fn bytes(collected: &Collected) -> Vec<Vec<u8>> {
    collected
        .line_items()
        .iter()
        .map(|l| l.bytes.clone())
        .collect()
}

fn mainlog_lines() -> Vec<Vec<u8>> {
    MAINLOG
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn start_after(line: &LineItem) -> Option<ReadPosition> {
    Some(ReadPosition {
        byte_offset: line.end,
        marker: line.resume.as_bytes().to_vec(),
    })
}

#[test]
fn reads_exims_lines_with_the_safe_journalctl_arguments() {
    let journal = FakeJournal::new(EXPORT);
    let collected = journal.read(None, Window::default());
    let lines: Vec<Vec<u8>> = bytes(&collected);
    assert_eq!(lines, mainlog_lines());
    assert!(collected.gaps().is_empty());
    let args = journal.args();
    for expected in [
        "--output=export",
        "--merge",
        "--all",
        "PRIORITY=6",
        "SYSLOG_IDENTIFIER=exim",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--after-cursor")),
        "{args:?}"
    );
    // Offsets count the bytes of the lines, as a file's would.
    let last = collected.line_items().last().unwrap().end;
    assert_eq!(last, MAINLOG.len() as u64);
}

#[test]
fn resuming_at_any_line_stores_every_later_line_once() {
    let journal = FakeJournal::new(EXPORT);
    let all = journal.read(None, Window::default());
    let all_lines = all.line_items();
    let expected = mainlog_lines();
    // Every position, those inside a split line and inside an entry that
    // made two lines included.
    for (index, line) in all_lines.iter().enumerate() {
        let resumed = journal.read(start_after(line), Window::default());
        assert!(
            resumed.gaps().is_empty(),
            "a gap resuming after line {index}"
        );
        let mut lines: Vec<Vec<u8>> = expected[..=index].to_vec();
        lines.extend(resumed.line_items().iter().map(|l| l.bytes.clone()));
        let text = |lines: &[Vec<u8>]| -> Vec<String> {
            lines
                .iter()
                .map(|l| String::from_utf8_lossy(&l[..l.len().min(60)]).into_owned())
                .collect()
        };
        assert!(
            lines == expected,
            "resuming after line {index} (position {:?}):\n{:#?}\nexpected\n{:#?}",
            String::from_utf8_lossy(line.resume.as_bytes()),
            text(&lines[..lines.len().min(6)]),
            text(&expected[..6])
        );
        if let Some(first) = resumed.line_items().first() {
            assert_eq!(first.start, line.end, "offsets go on after line {index}");
        }
        assert!(journal.args().iter().any(|a| a.starts_with("--cursor=")));
    }
}

#[test]
fn a_cursor_whose_entries_were_vacuumed_is_a_gap_then_the_rest() {
    let journal = FakeJournal::new(EXPORT);
    let all = journal.read(None, Window::default());
    let stored = all.line_items()[9];
    // The journal loses its first 40 entries (the stored cursor's among them).
    let text = std::str::from_utf8(EXPORT).unwrap();
    let kept: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .skip(40)
        .collect();
    let vacuumed = FakeJournal::new(format!("{}\n\n", kept.join("\n\n")).as_bytes());
    let resumed = vacuumed.read(start_after(stored), Window::default());
    let gaps = resumed.gaps();
    assert_eq!(gaps.len(), 1);
    assert!(
        gaps[0].reason.contains("no longer holds"),
        "{}",
        gaps[0].reason
    );
    assert!(matches!(resumed.0[0], Item::Gap(_)), "the gap comes first");
    let resumed_lines = resumed.line_items();
    assert!(!resumed_lines.is_empty());
    let expected = mainlog_lines();
    let tail: Vec<Vec<u8>> = resumed_lines.iter().map(|l| l.bytes.clone()).collect();
    assert!(
        expected.ends_with(&tail),
        "the lines left are Exim's last ones"
    );
    assert!(tail.len() < expected.len() - 10);
}

#[test]
fn since_and_until_go_to_journalctl_when_nothing_was_read() {
    let journal = FakeJournal::new(EXPORT);
    journal.read(
        None,
        Window {
            since: Some("2026-12-01 00:00".to_owned()),
            until: Some("2026-12-02 00:00".to_owned()),
        },
    );
    let args = journal.args();
    assert!(
        args.contains(&"--since=2026-12-01 00:00".to_owned()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--until=2026-12-02 00:00".to_owned()),
        "{args:?}"
    );
    assert!(!args.contains(&"--follow".to_owned()));
}

#[test]
fn a_backlog_line_split_across_two_polls_is_whole() {
    // The fixture's first line is cut into two pieces; the pause falls
    // between them. The pieces are old: the wall clock must not age them.
    let journal = FakeJournal::pausing(EXPORT, 0.5);
    let collected = journal.read(None, Window::default());
    let lines: Vec<Vec<u8>> = bytes(&collected);
    assert_eq!(lines, mainlog_lines());
}

/// `EXPORT` with an entry of Exim's identifier but no `MESSAGE` (as
/// `logger` or `systemd-cat` can write) after its `after`th entry.
fn with_empty_entry(after: usize) -> Vec<u8> {
    let text = std::str::from_utf8(EXPORT).unwrap();
    let mut entries: Vec<String> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    entries.insert(
        after,
        "__CURSOR=s=9d02c1a113ad4889a67914ad51533c67;i=ffff;b=f1c891455832462295c1a4c0ec703caa;\
         m=5899c0f79;t=66193af9a62af;x=1\n__REALTIME_TIMESTAMP=1796136794481327\n\
         _BOOT_ID=f1c891455832462295c1a4c0ec703caa\nPRIORITY=6\nSYSLOG_IDENTIFIER=exim\n\
         SYSLOG_PID=4242\n_PID=4242"
            .to_owned(),
    );
    format!("{}\n\n", entries.join("\n\n")).into_bytes()
}

#[test]
fn an_entry_without_message_is_skipped_and_counted_once_not_a_stall() {
    let journal = FakeJournal::new(&with_empty_entry(10));
    let collected = journal.read(None, Window::default());
    assert_eq!(
        bytes(&collected),
        mainlog_lines(),
        "every line after it too"
    );
    let gaps = collected.gaps();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(
        gaps[0].reason.contains("without MESSAGE"),
        "{}",
        gaps[0].reason
    );
    assert_eq!(gaps[0].end, Some(gaps[0].start + 1), "one offset for it");
    // Resumed from just before it (a restart before the next line was
    // stored), the same gap: recorded once in the database.
    let before = collected
        .line_items()
        .into_iter()
        .take_while(|line| line.end <= gaps[0].start)
        .last()
        .unwrap();
    let resumed = journal.read(start_after(before), Window::default());
    assert_eq!(resumed.gaps().len(), 1);
    assert_eq!(resumed.gaps()[0].start, gaps[0].start);
    assert_eq!(resumed.gaps()[0].end, gaps[0].end);
    // Resumed after it, nothing of it again.
    let after = collected
        .line_items()
        .into_iter()
        .find(|line| line.start > gaps[0].start)
        .unwrap();
    let resumed = journal.read(start_after(after), Window::default());
    assert!(resumed.gaps().is_empty());
}

#[test]
fn a_binary_message_with_newlines_makes_one_stored_line_per_line_and_no_empty_one() {
    let mut export = Vec::new();
    export.extend_from_slice(
        b"__CURSOR=s=1;i=1;b=f1;m=1;t=1;x=1\n__REALTIME_TIMESTAMP=1796136794481327\n\
          _BOOT_ID=f1\nPRIORITY=6\nSYSLOG_IDENTIFIER=exim\nSYSLOG_PID=4242\nMESSAGE\n",
    );
    let message = b"2026-12-01 14:53:14 first\nsecond\xff\nthird\n";
    export.extend_from_slice(&(message.len() as u64).to_le_bytes());
    export.extend_from_slice(message);
    export.extend_from_slice(b"\n\n");
    let mut reader = std::io::Cursor::new(export);
    let entry = read_entry(&mut reader).unwrap().unwrap();
    let lines = Assembler::default().push(&entry);
    assert_eq!(
        lines,
        vec![
            b"2026-12-01 14:53:14 first".to_vec(),
            b"second\xff".to_vec(),
            b"third".to_vec()
        ]
    );
    assert!(lines.iter().all(|line| !line.contains(&b'\n')));
}
