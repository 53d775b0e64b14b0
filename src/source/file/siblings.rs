//! The rotated generations of a log: `mainlog.1`, `mainlog.2.gz` (Debian's
//! logrotate), `mainlog.01`, `mainlog.02.gz` (exicyclog) and
//! `main.log-20261126`, `main.log-20261125.gz` (logrotate's `dateext`, the
//! default on RHEL), listed oldest first: the order they are read in.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A rotated generation: its age rank (smaller = newer; 1 is `.1`) and path.
/// Dated generations rank after numbered ones, newest date first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Generation {
    /// Its age rank (smaller is newer).
    pub number: u64,
    /// Where it is.
    pub path: PathBuf,
}

/// Ranks for dated generations count down from here.
const DATED_RANKS: u64 = 10_000_000_000;

/// The rotated generations of `live` that exist now, oldest first. When a
/// number exists both plain and compressed (logrotate is compressing it),
/// the plain file is listed first; both hold the same generation.
pub fn rotated_generations(live: &Path) -> Vec<Generation> {
    let (Some(dir), Some(base)) = (live.parent(), live.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let base = base.as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut generations: Vec<(u64, bool, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let rest = name.as_encoded_bytes().strip_prefix(base)?;
            let (suffix, compressed) = match rest.strip_suffix(b".gz") {
                Some(suffix) => (suffix, true),
                None => (rest, false),
            };
            let number = match suffix.split_first()? {
                (b'.', digits) => crate::parse::parse_decimal::<u64>(digits).filter(|n| *n > 0)?,
                (b'-', date) => DATED_RANKS - date_rank(date)?,
                _ => return None,
            };
            Some((number, compressed, entry.path()))
        })
        .collect();
    // Oldest (highest number) first; plain before compressed within one.
    generations.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    generations
        .into_iter()
        .map(|(number, _, path)| Generation { number, path })
        .collect()
}

/// `YYYYMMDD` or `YYYYMMDDHH` (logrotate's `dateformat` for daily and
/// hourly rotation) as `YYYYMMDDHH`; `None` for anything else.
fn date_rank(date: &[u8]) -> Option<u64> {
    if !(date.len() == 8 || date.len() == 10) {
        return None;
    }
    let value = crate::parse::parse_decimal::<u64>(date)?;
    let (day_value, hour) = if date.len() == 8 {
        (value, 0)
    } else {
        (value / 100, value % 100)
    };
    let (month, day) = (day_value / 100 % 100, day_value % 100);
    let plausible = (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24;
    plausible.then_some(day_value * 100 + hour)
}

/// A hash of the names, sizes and modification times of the rotated
/// generations: cheap (no file is opened), and it changes with every
/// rotation and every late write to a rotated file.
pub fn siblings_signature(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for generation in rotated_generations(path) {
        generation.path.hash(&mut hasher);
        if let Ok(metadata) = std::fs::metadata(&generation.path) {
            metadata.len().hash(&mut hasher);
            metadata.modified().ok().hash(&mut hasher);
            metadata.ino().hash(&mut hasher);
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_logrotate_and_exicyclog_generations_oldest_first() {
        let dir = tempfile::TempDir::new().unwrap();
        for name in [
            "mainlog",
            "mainlog.1",
            "mainlog.2.gz",
            "mainlog.10.gz",
            "mainlog.02.gz",
            "mainlog.01",
            "mainlog.1.gz",
            "mainlog.old",
            "mainlog.0",
            "rejectlog.1",
            "mainlog.3.bz2",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let found: Vec<(u64, String)> = rotated_generations(&dir.path().join("mainlog"))
            .into_iter()
            .map(|g| {
                (
                    g.number,
                    g.path.file_name().unwrap().to_string_lossy().into_owned(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                (10, "mainlog.10.gz".to_owned()),
                (2, "mainlog.02.gz".to_owned()),
                (2, "mainlog.2.gz".to_owned()),
                (1, "mainlog.01".to_owned()),
                (1, "mainlog.1".to_owned()),
                (1, "mainlog.1.gz".to_owned()),
            ]
        );
    }

    #[test]
    fn finds_dateext_generations_oldest_first() {
        let dir = tempfile::TempDir::new().unwrap();
        for name in [
            "main.log",
            "main.log-20261126",
            "main.log-20261124.gz",
            "main.log-20261125.gz",
            "main.log-2026112613",
            "main.log-20261399",
            "main.log-backup",
            "reject.log-20261126",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let found: Vec<String> = rotated_generations(&dir.path().join("main.log"))
            .into_iter()
            .map(|g| g.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [
                "main.log-20261124.gz",
                "main.log-20261125.gz",
                "main.log-20261126",
                "main.log-2026112613",
            ]
        );
    }
}
