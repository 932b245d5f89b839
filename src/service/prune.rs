//! Retention (`prune`, and nightly after the report): deletes archived inbound files,
//! delivered outbox files, report folders, refused entries, MESH messages kept aside and
//! partial MESH and SFTP downloads past their time
//! (`[retention]`), walking the folders with `walkdir`. Record history and the access log
//! are never pruned; an archived file whose processing is not settled, or that waits in
//! quarantine, is never deleted. Every deletion is logged; the counts go to the store for
//! `status`.

use crate::core::retention::{expired, report_day_end, Kept};
use crate::pipeline::ingest::Gateway;
use crate::store::PruneCounts;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::path::Path;
use walkdir::WalkDir;

/// The modification time of a file, as a UTC time.
fn mtime(meta: &std::fs::Metadata) -> Option<DateTime<Utc>> {
    meta.modified().ok().map(DateTime::<Utc>::from)
}

impl Gateway<'_> {
    /// Deletes (or, with `dry_run`, lists) what is past its time. Returns the counts.
    pub fn prune(&mut self, dry_run: bool) -> Result<PruneCounts> {
        let now = self.clock.now();
        let r = self.config.retention;
        let mut counts = PruneCounts::default();
        let facts = self.store.archive_facts()?;
        let remove = |path: &Path, what: &str, dir: bool| -> Result<()> {
            if dry_run {
                tracing::info!(kind = what, path = %path.display(), "would delete (dry run)");
                return Ok(());
            }
            if dir {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            }
            .with_context(|| format!("cannot delete {}", path.display()))?;
            tracing::info!(kind = what, path = %path.display(), "deleted (retention)");
            Ok(())
        };
        for entry in files(&self.layout.archive()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            let (at, pinned) = match facts.get(&name) {
                Some(f) => (Some(f.last_processed), f.keep),
                // Not in the registry: a temporary file or a copy whose commit never came.
                None => (mtime(&meta), false),
            };
            if at.is_some_and(|at| expired(Kept::Archive { pinned }, at, r.archive_days, now)) {
                remove(entry.path(), "archive", false)?;
                counts.archive += 1;
            }
        }
        let mailboxes = self.layout.root().join("mailboxes");
        for entry in files(&mailboxes) {
            let in_sent = entry
                .path()
                .parent()
                .is_some_and(|p| p.file_name().is_some_and(|n| n == "sent"));
            let Ok(meta) = entry.metadata() else { continue };
            if in_sent && mtime(&meta).is_some_and(|at| expired(Kept::Sent, at, r.sent_days, now)) {
                remove(entry.path(), "sent", false)?;
                counts.sent += 1;
            }
        }
        // Refused entries, MESH messages kept aside, and partial MESH and SFTP downloads
        // left behind by a crash all go after `rejected_days`.
        let mesh = self.layout.mesh();
        for entry in files(&self.layout.rejected())
            .chain(files(&mesh.join("kept")))
            .chain(files(&mesh.join("incoming")))
            .chain(files(&self.layout.sftp().join("incoming")))
        {
            let Ok(meta) = entry.metadata() else { continue };
            if mtime(&meta).is_some_and(|at| expired(Kept::Rejected, at, r.rejected_days, now)) {
                remove(entry.path(), "rejected", false)?;
                counts.rejected += 1;
            }
        }
        let reports = self.layout.reports();
        let before = counts.reports;
        // Each day's folder, and each previewed day's (previews are not counted).
        for (dir, counted) in [(reports.clone(), true), (reports.join("preview"), false)] {
            for entry in WalkDir::new(&dir)
                .min_depth(1)
                .max_depth(1)
                .into_iter()
                .flatten()
            {
                let day = entry.file_name().to_str().and_then(|n| n.parse().ok());
                if let Some(day) = day.filter(|_| entry.file_type().is_dir()) {
                    if expired(Kept::Report, report_day_end(day), r.reports_days, now) {
                        remove(entry.path(), "report", true)?;
                        counts.reports += u64::from(counted);
                    }
                }
            }
        }
        if !dry_run && counts.reports > before && reports.join("index.html").is_file() {
            // The history page lists only the days that are left.
            crate::reporting::write_history(&reports)?;
        }
        if !dry_run {
            self.store.record_prune(now, counts)?;
        }
        Ok(counts)
    }
}

/// Every plain file below `dir` (none if it does not exist), never following links.
fn files(dir: &Path) -> impl Iterator<Item = walkdir::DirEntry> {
    WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
}
