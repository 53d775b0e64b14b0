//! The rotated generations of a log: `mainlog.1`, `mainlog.2.gz` (Debian's
//! logrotate) and `mainlog.01`, `mainlog.02.gz` (exicyclog), numbered from
//! the newest.

use std::path::{Path, PathBuf};

/// A rotated generation: its number (1 = newest) and path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Generation {
    pub number: u32,
    pub path: PathBuf,
}

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
    let mut generations: Vec<(u32, bool, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let suffix = name
                .as_encoded_bytes()
                .strip_prefix(base)?
                .strip_prefix(b".")?;
            let (digits, compressed) = match suffix.strip_suffix(b".gz") {
                Some(digits) => (digits, true),
                None => (suffix, false),
            };
            let number = crate::parse::parse_decimal::<u32>(digits)?;
            (number > 0).then(|| (number, compressed, entry.path()))
        })
        .collect();
    // Oldest (highest number) first; plain before compressed within one.
    generations.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    generations
        .into_iter()
        .map(|(number, _, path)| Generation { number, path })
        .collect()
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
        let found: Vec<(u32, String)> = rotated_generations(&dir.path().join("mainlog"))
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
}
