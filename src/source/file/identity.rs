//! Which file generation is this? Identity by content, not by name: a
//! fingerprint of the first line survives rename, copytruncate and
//! compression, so `mainlog`, `mainlog.1` and `mainlog.1.gz` holding the same
//! generation are one source.

use std::io::{self, BufRead, Read};

/// Bytes of the head hashed at most (the first line, or this much of it).
pub const FINGERPRINT_MAX_BYTES: usize = 4096;

pub use crate::pipeline::source::Fingerprint;

impl Fingerprint {
    /// Fingerprints the head of `reader`. `None` while the file has no
    /// complete first line yet (an identity must not change as it grows),
    /// unless the head already fills [`FINGERPRINT_MAX_BYTES`].
    pub fn of_head(reader: &mut impl BufRead) -> io::Result<Option<Fingerprint>> {
        let mut head = Vec::with_capacity(256);
        let mut limited = reader.by_ref().take(FINGERPRINT_MAX_BYTES as u64);
        limited.read_until(b'\n', &mut head)?;
        let complete = head.last() == Some(&b'\n') || head.len() == FINGERPRINT_MAX_BYTES;
        Ok(complete.then(|| Fingerprint::of_bytes(&head)))
    }

    /// The identity of a generation that starts like `self` but differs at
    /// `offset` (where `marker` was expected): derived, so that a later
    /// resume of the same rewritten file finds it again only by content.
    pub fn rewritten(self, offset: u64, marker: &[u8]) -> Fingerprint {
        let mut input = Vec::with_capacity(16 + 8 + marker.len() + 9);
        input.extend_from_slice(&self.0);
        input.extend_from_slice(&offset.to_be_bytes());
        input.extend_from_slice(marker);
        input.extend_from_slice(b"rewritten");
        Fingerprint::of_bytes(&input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_covers_the_first_line_only() {
        let a = Fingerprint::of_head(&mut &b"2024-01-01 00:00:00 first\nsecond\n"[..]).unwrap();
        let b = Fingerprint::of_head(&mut &b"2024-01-01 00:00:00 first\nother\n"[..]).unwrap();
        let c = Fingerprint::of_head(&mut &b"2024-01-01 00:00:01 first\nsecond\n"[..]).unwrap();
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn no_fingerprint_until_the_first_line_is_complete() {
        assert_eq!(Fingerprint::of_head(&mut &b""[..]).unwrap(), None);
        assert_eq!(
            Fingerprint::of_head(&mut &b"2024-01-01 00:00"[..]).unwrap(),
            None
        );
        let long = vec![b'x'; FINGERPRINT_MAX_BYTES + 10];
        assert!(Fingerprint::of_head(&mut &long[..]).unwrap().is_some());
    }
}
