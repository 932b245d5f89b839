//! What a pass has written unsynced and what waits for it to be on disk: the folders to
//! sync, and the inbound entries (and their control files) to leave `in/` after the sync
//! (`pipeline::settle` says why and when).

use std::collections::BTreeSet;
use std::path::PathBuf;

/// What a pass leaves to settle.
#[derive(Debug, Default)]
pub struct Pending {
    /// Folders written unsynced (their file systems are synced).
    pub dirs: BTreeSet<PathBuf>,
    pub entries: Vec<Entry>,
    /// Control files, removed after the entries they held.
    pub controls: Vec<PathBuf>,
}

/// An inbound entry to leave `in/`.
#[derive(Debug)]
pub struct Entry {
    pub path: PathBuf,
    /// The entry as it was opened: a replacement is left alone.
    pub identity: std::fs::Metadata,
    /// Set aside under this name (the entry's and its registration's) rather than removed.
    pub set_aside: Option<(String, i64)>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.entries.is_empty() && self.controls.is_empty()
    }
}
