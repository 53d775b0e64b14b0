//! Positioned reads of an open file (`pread`): the bytes before a read
//! position and the first line, checked without moving the reader.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;

use super::identity::Fingerprint;
use super::input::MarkerCheck;

/// Compares the bytes before `offset` in `file` with `marker`.
pub fn check_marker(file: &File, offset: u64, marker: &[u8]) -> std::io::Result<MarkerCheck> {
    if offset == 0 {
        return Ok(MarkerCheck::Matches);
    }
    let start = offset.saturating_sub(marker.len() as u64);
    let mut found = vec![0u8; (offset - start) as usize];
    let mut filled = 0;
    while filled < found.len() {
        match file.read_at(&mut found[filled..], start + filled as u64) {
            Ok(0) => return Ok(MarkerCheck::TooShort),
            Ok(n) => filled += n,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    if marker.is_empty() {
        // Nothing to compare, but the file reaches the offset.
        return Ok(MarkerCheck::Matches);
    }
    Ok(if found == marker[marker.len() - found.len()..] {
        MarkerCheck::Matches
    } else {
        MarkerCheck::Differs
    })
}

/// The fingerprint of the file's first line, read without moving anything.
pub fn head_fingerprint(file: &File) -> std::io::Result<Option<Fingerprint>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let limit = super::identity::FINGERPRINT_MAX_BYTES;
    while head.len() < limit {
        let n = match file.read_at(&mut chunk, head.len() as u64) {
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if memchr::memchr(b'\n', &head).is_some() {
            break;
        }
    }
    head.truncate(limit);
    Fingerprint::of_head(&mut &head[..])
}
