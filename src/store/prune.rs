//! What retention needs from the store: which archived files may go (never one whose inbound
//! file is not settled, nor one waiting in quarantine), and what each run deleted.

use super::db::{args, Sql};
use super::{parse_ts, ts, Store};
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// What the registry says of an archived file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveFacts {
    /// When it was last processed (released, replayed ...).
    pub last_processed: DateTime<Utc>,
    /// It must stay: a processing not yet settled, or a quarantine entry still pending.
    pub keep: bool,
}

/// How many files (or report days) a retention run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneCounts {
    pub archive: u64,
    pub sent: u64,
    pub reports: u64,
    pub rejected: u64,
}

impl Store {
    /// Every sha256 the registry knows, with what retention must know of it.
    pub fn archive_facts(&mut self) -> Result<HashMap<String, ArchiveFacts>> {
        self.db()
            .rows(
                "SELECT f.sha256, max(f.processed_at),
                        max(CASE WHEN f.settled = 0 OR EXISTS (SELECT 1 FROM quarantine q
                            WHERE q.file_id = f.id AND q.state = 'pending') THEN 1 ELSE 0 END)
                 FROM files f GROUP BY f.sha256",
                args![],
            )?
            .iter()
            .map(|r| {
                Ok((
                    r.get(0)?,
                    ArchiveFacts {
                        last_processed: parse_ts(&r.get::<String>(1)?)?,
                        keep: r.get(2)?,
                    },
                ))
            })
            .collect()
    }

    /// Records what a retention run deleted.
    pub fn record_prune(&mut self, at: DateTime<Utc>, c: PruneCounts) -> Result<()> {
        self.db().execute(
            "INSERT INTO prunes (at, archive, sent, reports, rejected) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![
                ts(at),
                c.archive as i64,
                c.sent as i64,
                c.reports as i64,
                c.rejected as i64
            ],
        )?;
        Ok(())
    }

    /// The last retention run: when, and what it deleted.
    pub fn last_prune(&mut self) -> Result<Option<(String, PruneCounts)>> {
        self.db()
            .row(
                "SELECT at, archive, sent, reports, rejected FROM prunes ORDER BY id DESC LIMIT 1",
                args![],
            )?
            .map(|r| {
                Ok((
                    r.get(0)?,
                    PruneCounts {
                        archive: r.get(1)?,
                        sent: r.get(2)?,
                        reports: r.get(3)?,
                        rejected: r.get(4)?,
                    },
                ))
            })
            .transpose()
    }
}
