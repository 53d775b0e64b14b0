//! The follower's state machine against real files in a temporary
//! directory: growth, rotation, copytruncate, truncation, resume.

use super::*;
use std::io::Write;

fn read_all(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Collects items as a writer would receive them.
type Collect = crate::pipeline::source::Collected;

/// The lines collected, as text.
fn lines(collected: &Collect) -> Vec<String> {
    collected
        .line_items()
        .iter()
        .map(|line| String::from_utf8_lossy(&line.bytes).into_owned())
        .collect()
}

fn settings() -> FollowSettings {
    FollowSettings {
        rotate_grace: Duration::ZERO,
        ..FollowSettings::new(1024)
    }
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// A `mainlog` holding `initial`, followed and read until quiet.
fn following(initial: &str) -> (tempfile::TempDir, PathBuf, Follower, Collect) {
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append(&log, initial);
    let mut follower = Follower::new(log.clone(), settings(), Positions::default());
    let mut sink = Collect::default();
    poll_until_quiet(&mut follower, &mut sink);
    (dir, log, follower, sink)
}

fn poll_until_quiet(follower: &mut Follower, sink: &mut Collect) {
    for _ in 0..10 {
        let outcome = follower.poll(sink).unwrap();
        if !outcome.again && outcome.lines == 0 {
            return;
        }
    }
}

#[test]
fn follows_growth_and_holds_a_partial_line() {
    let (_dir, log, mut follower, mut sink) = following("one\ntw");
    assert_eq!(lines(&sink), ["one"]);
    append(&log, "o\nthree\n");
    poll_until_quiet(&mut follower, &mut sink);
    assert_eq!(lines(&sink), ["one", "two", "three"]);
}

#[test]
fn rename_rotation_drains_the_old_file_then_reads_the_new_one() {
    let (dir, log, mut follower, mut sink) = following("a1\n");
    std::fs::rename(&log, dir.path().join("mainlog.1")).unwrap();
    // Written to the renamed file after the rename (Exim's stat/write race).
    append(&dir.path().join("mainlog.1"), "a2\nlast-without-newline");
    append(&log, "b1\n");
    poll_until_quiet(&mut follower, &mut sink);
    assert_eq!(lines(&sink), ["a1", "a2", "last-without-newline", "b1"]);
}

#[test]
fn copytruncate_takes_unread_bytes_from_the_copy() {
    let (dir, log, mut follower, mut sink) = following("c1\n");
    append(&log, "c2\nc3\n");
    std::fs::write(dir.path().join("mainlog.1"), read_all(&log)).unwrap();
    std::fs::write(&log, "d1\n").unwrap();
    poll_until_quiet(&mut follower, &mut sink);
    assert_eq!(lines(&sink), ["c1", "c2", "c3", "d1"]);
    assert!(sink.gaps().is_empty());
}

#[test]
fn truncation_without_a_copy_is_a_gap() {
    let (_dir, log, mut follower, mut sink) = following("e1\n");
    // Grows (seen by a poll that reads nothing more: simulate by
    // checking size only), then is truncated before the bytes are read.
    if let Some(tracked) = follower.current.as_mut() {
        tracked.last_size = 10;
    }
    std::fs::write(&log, "f1\n").unwrap();
    poll_until_quiet(&mut follower, &mut sink);
    assert_eq!(lines(&sink), ["e1", "f1"]);
    let gaps = sink.gaps();
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].start, gaps[0].end), (3, Some(10)));
}

#[test]
fn truncated_and_regrown_between_polls_is_detected_by_the_marker() {
    let (_dir, log, mut follower, mut sink) = following("g1 old line\n");
    // Rewritten, longer than before, same inode.
    std::fs::write(&log, "h1 a new first line, longer\nh2\n").unwrap();
    poll_until_quiet(&mut follower, &mut sink);
    assert_eq!(
        lines(&sink),
        ["g1 old line", "h1 a new first line, longer", "h2"]
    );
}

#[test]
fn delete_and_recreate_and_a_missing_path() {
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    let mut follower = Follower::new(log.clone(), settings(), Positions::default());
    let mut sink = Collect::default();
    poll_until_quiet(&mut follower, &mut sink);
    append(&log, "i1\n");
    poll_until_quiet(&mut follower, &mut sink);
    std::fs::remove_file(&log).unwrap();
    poll_until_quiet(&mut follower, &mut sink);
    append(&log, "j1\n");
    poll_until_quiet(&mut follower, &mut sink);
    assert_eq!(lines(&sink), ["i1", "j1"]);
}

#[test]
fn resume_finishes_generations_rotated_while_stopped_including_gzip() {
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append(&log, "k1\nk2\n");
    let mut positions = Positions::default();
    let mut sink = Collect::default();
    {
        let mut follower = Follower::new(log.clone(), settings(), positions.clone());
        poll_until_quiet(&mut follower, &mut sink);
        positions = follower.positions.clone();
    }
    // While stopped: more lines, two rotations, the older compressed.
    append(&log, "k3\n");
    let k = read_all(&log);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&k).unwrap();
    std::fs::write(dir.path().join("mainlog.2.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.path().join("mainlog.1"), "l1\nl2\n").unwrap();
    std::fs::write(&log, "m1\n").unwrap();

    let latest = Fingerprint::of_head(&mut &b"k1\n"[..])
        .unwrap()
        .map(|fingerprint| LastRead {
            fingerprint,
            offset: 6,
            committed_ms: 0,
        });
    let mut follower = Follower::new(log.clone(), settings(), positions);
    follower.resume(latest, &mut sink).unwrap();
    poll_until_quiet(&mut follower, &mut sink);
    assert_eq!(lines(&sink), ["k1", "k2", "k3", "l1", "l2", "m1"]);
    assert!(sink.gaps().is_empty());
}

#[test]
fn a_generation_gone_while_stopped_is_a_gap() {
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    std::fs::write(&log, "n1\n").unwrap();
    let gone = Fingerprint::of_head(&mut &b"old first line\n"[..])
        .unwrap()
        .unwrap();
    let mut positions = Positions::default();
    positions.set(gone, 500, b"x\n");
    let mut follower = Follower::new(log.clone(), settings(), positions);
    let mut sink = Collect::default();
    follower
        .resume(
            Some(LastRead {
                fingerprint: gone,
                offset: 500,
                committed_ms: i64::MAX,
            }),
            &mut sink,
        )
        .unwrap();
    poll_until_quiet(&mut follower, &mut sink);
    assert_eq!(lines(&sink), ["n1"]);
    let gaps = sink.gaps();
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].start, gaps[0].end), (500, None));
}

#[test]
fn a_truncated_gzip_generation_is_read_once_on_resume_and_its_gap_sent_once() {
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("mainlog");
    append(&log, "g0\n");
    let mut positions = Positions::default();
    let mut sink = Collect::default();
    {
        let mut follower = Follower::new(log.clone(), settings(), positions.clone());
        poll_until_quiet(&mut follower, &mut sink);
        positions = follower.positions.clone();
    }
    // While stopped: many more lines, rotated into a .gz cut in half.
    let more: String = (1..3000).map(|i| format!("g{i}\n")).collect();
    append(&log, &more);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&read_all(&log)).unwrap();
    let whole = gz.finish().unwrap();
    std::fs::write(dir.path().join("mainlog.1.gz"), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(&log, "h0\n").unwrap();

    let latest = Fingerprint::of_head(&mut &b"g0\n"[..])
        .unwrap()
        .map(|fingerprint| LastRead {
            fingerprint,
            offset: 3,
            committed_ms: 0,
        });
    let mut follower = Follower::new(log.clone(), settings(), positions);
    follower.resume(latest, &mut sink).unwrap();
    poll_until_quiet(&mut follower, &mut sink);
    let read = lines(&sink);
    assert!(read.len() > 2 && read.len() < 3001, "{}", read.len());
    assert_eq!(read.last().map(String::as_str), Some("h0"));
    let gaps = sink.gaps();
    assert_eq!(
        gaps.len(),
        1,
        "the damaged generation is read once: {gaps:?}"
    );
}
