//! Whether the database's files are still the ones its connections hold.
//! An operator (or a clean-up job) deleting the database or its WAL while
//! the daemon runs leaves SQLite writing to unlinked files: commits that
//! vanish at exit, or a new WAL beside an old index. Linux says which open
//! descriptors point to deleted files; the health task asks it.

use std::path::{Path, PathBuf};

/// The database's files (`db`, `db-wal`, `db-shm`) that this process holds
/// open although they were deleted or replaced.
pub fn deleted_while_open(database: &Path) -> Vec<PathBuf> {
    let Some(database) = absolute(database) else {
        return Vec::new();
    };
    let names: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = database.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        })
        .collect();
    let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut deleted: Vec<PathBuf> = descriptors
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?.strip_suffix(" (deleted)")?.to_owned();
            let target = PathBuf::from(target);
            names.contains(&target).then_some(target)
        })
        .collect();
    deleted.sort();
    deleted.dedup();
    deleted
}

/// `path` made absolute through its directory, which must still exist.
fn absolute(path: &Path) -> Option<PathBuf> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_file_that_was_deleted_is_found_by_name() {
        let dir = tempfile::TempDir::new().unwrap();
        let database = dir.path().join("x.db");
        let wal = dir.path().join("x.db-wal");
        let _open_db = std::fs::File::create(&database).unwrap();
        let _open_wal = std::fs::File::create(&wal).unwrap();
        assert!(deleted_while_open(&database).is_empty());
        std::fs::remove_file(&wal).unwrap();
        let found = deleted_while_open(&database);
        assert_eq!(found, [dir.path().canonicalize().unwrap().join("x.db-wal")]);
    }
}
