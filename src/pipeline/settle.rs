//! Settling inbound entries: once a file's outcome is committed and acknowledged, its entry
//! leaves `in/` (removed, or set aside in `rejected/` when the archive does not keep it).
//!
//! Alone (the CLI), each file is made durable before its entry goes: the archive's copy and
//! each acknowledgement synced one by one. The daemon settles a pass at a time instead
//! ([`Gateway::group_syncs`]): the copies and acknowledgements of the pass are written
//! unsynced, and at the end of the pass one `syncfs` of each file system they are on (and
//! the SQLite store's) makes them durable, then the entries leave `in/`. The rule that
//! holds either way: **an entry leaves `in/` only once everything its outcome left is on
//! disk.** A crash or `kill -9` before that leaves the entry in `in/`: the next pass finds
//! its outcome committed under the entry's identity and finishes it (its acknowledgement
//! written again, synced, if what is in the outbox is not exactly it), never processes it
//! again. A power cut loses only unsynced writes, whose entries are all still in `in/`.

use super::ingest::Gateway;
use crate::sys::durable::{Entry, Pending};
use crate::sys::fsutil::{still_at, sync_file_systems, write_renamed_with};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

impl Gateway<'_> {
    /// From now on, settles a pass at a time (see the module): call [`Gateway::settle`] at
    /// the end of each.
    pub fn group_syncs(&mut self) {
        self.pending.get_or_insert_with(Pending::default);
    }

    /// Writes an outbound file: unsynced when a pass is settled at once (its folder is
    /// synced then), synced now otherwise.
    pub(crate) fn write_out(&mut self, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_out_with(dir, name, |w| w.write_all(bytes))
    }

    /// As [`write_out`](Self::write_out), for what `write` writes piece by piece.
    pub(crate) fn write_out_with(
        &mut self,
        dir: &Path,
        name: &str,
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let sync = match &mut self.pending {
            Some(pending) => {
                pending.dirs.insert(dir.to_path_buf());
                false
            }
            None => true,
        };
        write_renamed_with(dir, name, sync, write)?;
        Ok(())
    }

    /// Whether an archived copy must be synced now (else the pass's sync covers it).
    pub(crate) fn sync_archive_now(&mut self) -> bool {
        match &mut self.pending {
            Some(pending) => {
                pending.dirs.insert(self.layout.archive());
                false
            }
            None => true,
        }
    }

    /// The entry at `path` (as it was when opened: `identity`) leaves `in/`, removed or set
    /// aside, now or when the pass settles.
    pub(crate) fn leave_inbox(
        &mut self,
        path: &Path,
        identity: &std::fs::Metadata,
        set_aside: Option<(String, i64)>,
    ) -> Result<()> {
        let entry = Entry {
            path: path.to_path_buf(),
            identity: identity.clone(),
            set_aside,
        };
        match &mut self.pending {
            Some(pending) => {
                pending.entries.push(entry);
                Ok(())
            }
            None => self.leave(entry),
        }
    }

    /// Removes a control file once the entry it held has left `in/`.
    pub(crate) fn remove_control(&mut self, control: &Path) {
        match &mut self.pending {
            Some(pending) => pending.controls.push(control.to_path_buf()),
            None => {
                let _ = std::fs::remove_file(control);
            }
        }
    }

    /// Makes the pass's writes durable, then lets its entries leave `in/`. On failure the
    /// entries stay, to be finished by the next pass.
    pub fn settle(&mut self) -> Result<()> {
        let Some(pending) = self.pending.as_mut() else {
            return Ok(());
        };
        if pending.is_empty() {
            return Ok(());
        }
        if self.fault == Some(crate::sys::fault::Fault::AbortBeforeSettle)
            && !pending.entries.is_empty()
        {
            std::process::abort();
        }
        let Pending {
            mut dirs,
            entries,
            controls,
        } = std::mem::take(pending);
        if self.config.postgres.is_none() {
            if let Some(dir) = self.store.path().parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        sync_file_systems(dirs.iter().map(PathBuf::as_path))?;
        let mut failed = None;
        for entry in entries {
            if let Err(e) = self.leave(entry) {
                failed.get_or_insert(e);
            }
        }
        for control in controls {
            let _ = std::fs::remove_file(control);
        }
        failed.map_or(Ok(()), Err)
    }

    fn leave(&mut self, entry: Entry) -> Result<()> {
        let Entry {
            path,
            identity,
            set_aside,
        } = entry;
        if !still_at(&identity, &path) {
            if path.exists() {
                tracing::warn!(file = %path.display(), "the inbound file was replaced while it was processed: the replacement is left in in/ for the next pass");
            }
            return Ok(());
        }
        match set_aside {
            None => std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display())),
            Some((name, id)) => self.set_aside(&path, &name, id),
        }
    }
}

impl Drop for Gateway<'_> {
    /// A pass cut short (an error, a stop) settles what it finished.
    fn drop(&mut self) {
        if let Err(e) = self.settle() {
            tracing::warn!(error = %format!("{e:#}"), "inbound files left in in/ until the next pass: cannot make their outcome durable");
        }
    }
}
