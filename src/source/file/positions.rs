//! Where reading of each known source generation stopped, as loaded from
//! the database, and which generation a file is once rewrites in place are
//! taken into account.

use std::collections::HashMap;

use super::identity::Fingerprint;
use super::input::MarkerCheck;
use crate::store::repo::{ReadPosition, SourcePosition};

/// The stored read position of every known source, by fingerprint.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    by_fingerprint: HashMap<Fingerprint, ReadPosition>,
}

impl Positions {
    /// From the rows the store returned.
    pub fn from_rows(rows: &[SourcePosition]) -> Self {
        let by_fingerprint = rows
            .iter()
            .filter_map(|row| {
                let bytes: [u8; 16] = row.fingerprint.as_slice().try_into().ok()?;
                Some((Fingerprint(bytes), row.position.clone()))
            })
            .collect();
        Positions { by_fingerprint }
    }

    /// Where reading of `fingerprint` stopped, and the bytes before it.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<(u64, &[u8])> {
        self.by_fingerprint
            .get(fingerprint)
            .map(|position| (position.byte_offset, position.marker.as_slice()))
    }

    /// Which generation a file whose first line has fingerprint `head` is,
    /// and where reading of it stopped.
    ///
    /// A file rewritten in place (its first line unchanged) no longer holds
    /// at its stored position what was read there: it gets an identity
    /// derived from that position ([`Fingerprint::rewritten`]). Rewritten
    /// again, it no longer matches the first rewrite's position either, and
    /// gets an identity derived from that one, and so on: each rewrite is a
    /// generation of its own, found again on resume by the same walk.
    /// `check` compares the file's bytes before an offset with a marker.
    pub fn resolve(
        &self,
        head: Fingerprint,
        mut check: impl FnMut(u64, &[u8]) -> std::io::Result<MarkerCheck>,
    ) -> std::io::Result<Resolved> {
        let mut fingerprint = head;
        for _ in 0..MAX_REWRITES {
            let Some((offset, marker)) = self.get(&fingerprint) else {
                return Ok(Resolved {
                    fingerprint,
                    position: ReadPosition::default(),
                });
            };
            match check(offset, marker)? {
                MarkerCheck::Matches => {
                    return Ok(Resolved {
                        fingerprint,
                        position: ReadPosition {
                            byte_offset: offset,
                            marker: marker.to_vec(),
                        },
                    });
                }
                MarkerCheck::TooShort | MarkerCheck::Differs => {
                    fingerprint = fingerprint.rewritten(offset, marker);
                }
            }
        }
        Err(std::io::Error::other(format!(
            "the file was rewritten in place more than {MAX_REWRITES} times"
        )))
    }

    /// Whether `fingerprint` is the generation of a file with first line
    /// `head`, or one of its rewrites, by the stored positions alone.
    pub fn is_generation_of(&self, head: Fingerprint, fingerprint: Fingerprint) -> bool {
        let mut current = head;
        for _ in 0..MAX_REWRITES {
            if current == fingerprint {
                return true;
            }
            let Some((offset, marker)) = self.get(&current) else {
                return false;
            };
            current = current.rewritten(offset, marker);
        }
        false
    }

    /// Records that reading of `fingerprint` got to `offset`.
    pub fn set(&mut self, fingerprint: Fingerprint, offset: u64, marker: &[u8]) {
        let position = ReadPosition {
            byte_offset: offset,
            marker: marker.to_vec(),
        };
        self.by_fingerprint.insert(fingerprint, position);
    }
}

/// Rewrites in place of one file followed before giving up: each is a
/// stored position, so a longer chain means something rewrites the log
/// in a loop.
const MAX_REWRITES: usize = 64;

/// The generation a file was resolved to, and where to read it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The generation: the head's, or a rewrite's derived one.
    pub fingerprint: Fingerprint,
    /// Where to read from (its marker empty at 0).
    pub position: ReadPosition,
}
