//! The file registry (every inbound file by sha256, mailbox, name, extraction time, outcome,
//! counts and its acknowledgement) and the quarantine.

use super::{parse_ts, ts, Store};
use crate::core::codes::Code;
use crate::core::ids::LaCode;
use crate::core::reconcile::Diff;
use crate::core::report::{DuplicateOf, FileReport, Outcome};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::Serialize;

/// A registered file.
#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: i64,
    pub sha256: String,
    pub mailbox: String,
    pub name: String,
    pub sender: Option<String>,
    pub extracted_at: Option<DateTime<Utc>>,
    pub processed_at: DateTime<Utc>,
    pub outcome: String,
    pub applied: bool,
    pub report: String,
}

/// A file waiting for (or given) an operator's decision.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineEntry {
    pub id: String,
    #[serde(skip)]
    pub number: i64,
    pub file_id: i64,
    pub file: String,
    pub mailbox: String,
    pub sha256: String,
    pub reason: String,
    pub state: String,
    pub quarantined_at: String,
}

const FILE_COLUMNS: &str =
    "id, sha256, mailbox, name, sender, extracted_at, processed_at, outcome, applied, report";

fn file_row(r: &Row<'_>) -> rusqlite::Result<(FileRow, Option<String>, String)> {
    Ok((
        FileRow {
            id: r.get(0)?,
            sha256: r.get(1)?,
            mailbox: r.get(2)?,
            name: r.get(3)?,
            sender: r.get(4)?,
            extracted_at: None,
            processed_at: DateTime::UNIX_EPOCH,
            outcome: r.get(7)?,
            applied: r.get(8)?,
            report: r.get(9)?,
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

fn finish_row(
    (mut row, extracted, processed): (FileRow, Option<String>, String),
) -> Result<FileRow> {
    row.extracted_at = extracted.as_deref().map(parse_ts).transpose()?;
    row.processed_at = parse_ts(&processed)?;
    Ok(row)
}

/// Failures injected into [`Store::apply_file`] by tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Injected {
    /// Fail after this many record writes, inside the transaction.
    pub fail_after: Option<u64>,
    /// Hold the transaction open this long before committing.
    pub pause_before_commit: Option<std::time::Duration>,
}

/// The id operators type for a quarantine entry.
pub fn quarantine_label(number: i64) -> String {
    format!("Q{number}")
}

impl Store {
    /// The latest processing of the same file (same name and bytes) from the same mailbox,
    /// duplicates aside. The name counts: it carries the extraction time, so yesterday's
    /// list sent again unchanged under today's name is today's extract, not a duplicate.
    pub fn find_processed(
        &mut self,
        sha256: &str,
        mailbox: &str,
        name: &str,
    ) -> Result<Option<DuplicateOf>> {
        self.conn()
            .prepare_cached(
                "SELECT id, name, outcome, processed_at, response_code FROM files
                 WHERE sha256 = ?1 AND mailbox = ?2 AND name = ?3 AND outcome != 'duplicate'
                   AND dedup
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![sha256, mailbox, name], |r| {
                Ok(DuplicateOf {
                    file_id: r.get(0)?,
                    file: r.get(1)?,
                    outcome: r.get(2)?,
                    processed_at: r.get(3)?,
                    response_code: r.get(4)?,
                })
            })
            .optional()
            .context("cannot look up earlier files")
    }

    /// The extraction time of the newest applied extract of an LA.
    pub fn last_applied_extract(&mut self, la: LaCode) -> Result<Option<DateTime<Utc>>> {
        let text: Option<String> = self
            .conn()
            .prepare_cached(
                "SELECT max(extracted_at) FROM files WHERE applied = 1 AND sender = ?1",
            )?
            .query_row(params![la.to_string()], |r| r.get(0))?;
        text.as_deref().map(parse_ts).transpose()
    }

    /// A processing of this very file (same bytes, mailbox and name) whose inbound file was
    /// not yet moved out of `in/` when the gateway stopped: (file id, stored report JSON).
    pub fn find_unsettled(
        &mut self,
        sha256: &str,
        mailbox: &str,
        name: &str,
    ) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, report FROM files
                 WHERE sha256 = ?1 AND mailbox = ?2 AND name = ?3 AND NOT settled
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![sha256, mailbox, name], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    /// The flag response stored with an attendance file.
    pub fn file_response(&mut self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT response FROM files WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Records that a file's inbound copy has left `in/`.
    pub fn mark_settled(&mut self, id: i64) -> Result<()> {
        self.conn()
            .execute("UPDATE files SET settled = 1 WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// The extraction time of the newest applied extract, per LA code.
    pub fn last_applied_extracts(
        &mut self,
    ) -> Result<std::collections::BTreeMap<String, DateTime<Utc>>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT sender, max(extracted_at) FROM files WHERE applied = 1 AND sender IS NOT NULL GROUP BY sender",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(la, at)| Ok((la, parse_ts(&at)?)))
            .collect()
    }

    /// Every registered processing of a file with this sha256 (oldest first).
    pub fn files_by_sha(&mut self, sha256: &str) -> Result<Vec<FileRow>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE sha256 = ?1 ORDER BY id");
        let rows = self
            .conn()
            .prepare(&sql)?
            .query_map(params![sha256], file_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish_row).collect()
    }

    pub fn file(&mut self, id: i64) -> Result<Option<FileRow>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1");
        let row = self
            .conn()
            .prepare(&sql)?
            .query_row(params![id], file_row)
            .optional()?;
        row.map(finish_row).transpose()
    }

    /// Quarantine entries, pending only or all.
    pub fn quarantine(&mut self, pending_only: bool) -> Result<Vec<QuarantineEntry>> {
        let sql =
            format!(
            "SELECT q.id, q.file_id, f.name, f.mailbox, f.sha256, q.reason, q.state, f.processed_at
             FROM quarantine q JOIN files f ON f.id = q.file_id {} ORDER BY q.id",
            if pending_only { "WHERE q.state = 'pending'" } else { "" }
        );
        let entries = self
            .conn()
            .prepare(&sql)?
            .query_map([], |r| {
                let number: i64 = r.get(0)?;
                Ok(QuarantineEntry {
                    id: quarantine_label(number),
                    number,
                    file_id: r.get(1)?,
                    file: r.get(2)?,
                    mailbox: r.get(3)?,
                    sha256: r.get(4)?,
                    reason: r.get(5)?,
                    state: r.get(6)?,
                    quarantined_at: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(entries)
    }

    /// Registers a file that changes no record (rejected, duplicate).
    /// `settled`: the inbound file is already where it stays (see `mark_settled`).
    pub fn register(&mut self, report: &FileReport, settled: bool) -> Result<i64> {
        let tx = self.conn().transaction()?;
        let id = insert_file(&tx, report, false, settled)?;
        tx.commit()?;
        Ok(id)
    }

    /// Registers a quarantined file and its entry; sets `report.quarantine_id`.
    pub fn register_quarantined(
        &mut self,
        report: &mut FileReport,
        reason: &str,
        settled: bool,
    ) -> Result<i64> {
        let tx = self.conn().transaction()?;
        let id = insert_file(&tx, report, false, settled)?;
        tx.execute(
            "INSERT INTO quarantine (file_id, reason) VALUES (?1, ?2)",
            params![id, reason],
        )?;
        report.quarantine_id = Some(quarantine_label(tx.last_insert_rowid()));
        update_report(&tx, id, report, false)?;
        tx.commit()?;
        Ok(id)
    }

    /// Registers a file and applies its changes to the LA's records, in one transaction.
    /// `injected` holds the failures tests inject (none otherwise).
    pub fn apply_file(
        &mut self,
        report: &FileReport,
        la: LaCode,
        diff: &Diff,
        known_from: DateTime<Utc>,
        injected: Injected,
        settled: bool,
    ) -> Result<i64> {
        let changes = &diff.changes;
        // A big file dirties more pages than the usual cache holds; spilling them to the
        // WAL mid-transaction costs more than the memory (about 128 bytes a change).
        let big = changes.len() > 50_000;
        if big {
            let kib = (changes.len() / 8).min(512 * 1024) as i64;
            self.conn().pragma_update(None, "cache_size", -kib)?;
        }
        let result = (|| {
            let tx = self.conn().transaction()?;
            let id = insert_file(&tx, report, true, settled)?;
            super::records::write_changes(&tx, la, id, changes, known_from, injected.fail_after)?;
            insert_retained(&tx, id, la, diff)?;
            if let Some(pause) = injected.pause_before_commit {
                std::thread::sleep(pause);
            }
            tx.commit()?;
            Ok(id)
        })();
        if big {
            self.conn()
                .pragma_update(None, "cache_size", super::CACHE_KIB)?;
        }
        result
    }

    /// Applies a released quarantined file: its registry entry takes the new report.
    pub fn release_quarantined(
        &mut self,
        number: i64,
        file_id: i64,
        report: &FileReport,
        la: LaCode,
        diff: &Diff,
        known_from: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.conn().transaction()?;
        decide(&tx, number, "released", known_from)?;
        update_report(&tx, file_id, report, true)?;
        super::records::write_changes(&tx, la, file_id, &diff.changes, known_from, None)?;
        insert_retained(&tx, file_id, la, diff)?;
        tx.commit()?;
        Ok(())
    }

    /// Rejects a quarantined file for good.
    pub fn reject_quarantined(
        &mut self,
        number: i64,
        file_id: i64,
        report: &FileReport,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.conn().transaction()?;
        decide(&tx, number, "rejected", at)?;
        update_report(&tx, file_id, report, false)?;
        tx.commit()?;
        Ok(())
    }
}

fn decide(tx: &Transaction<'_>, number: i64, state: &str, at: DateTime<Utc>) -> Result<()> {
    let n = tx.execute(
        "UPDATE quarantine SET state = ?2, decided_at = ?3 WHERE id = ?1 AND state = 'pending'",
        params![number, state, ts(at)],
    )?;
    if n != 1 {
        anyhow::bail!("{} is not pending", quarantine_label(number));
    }
    Ok(())
}

pub(super) fn insert_file(
    tx: &Transaction<'_>,
    report: &FileReport,
    applied: bool,
    settled: bool,
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO files (sha256, mailbox, name, kind, sender, extracted_at, received_at,
            processed_at, outcome, response_code, applied, rows, valid_rows, invalid_rows, report,
            settled, dedup)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        report.sha256,
        report.mailbox.as_deref().unwrap_or(""),
        report.file,
        serde_json::to_value(report.kind)?
            .as_str()
            .unwrap_or("extract"),
        report.sender,
        report.extracted_at.map(ts),
        ts(report.received_at),
        ts(report.processed_at),
        report.outcome.as_str(),
        report.response_code,
        applied,
        report.rows as i64,
        report.valid_rows as i64,
        report.invalid_rows as i64,
        serde_json::to_string(report)?,
        settled,
        !report.refused_outside
            && !report
                .file_errors
                .iter()
                .any(|p| matches!(p.code, Code::FileName | Code::NotAuthorised)),
    ])?;
    Ok(tx.last_insert_rowid())
}

fn update_report(tx: &Transaction<'_>, id: i64, report: &FileReport, applied: bool) -> Result<()> {
    tx.execute(
        "UPDATE files SET outcome = ?2, response_code = ?3, applied = ?4, processed_at = ?5,
            report = ?6 WHERE id = ?1",
        params![
            id,
            report.outcome.as_str(),
            report.response_code,
            applied,
            ts(report.processed_at),
            serde_json::to_string(report)?
        ],
    )?;
    Ok(())
}

impl Outcome {
    /// Whether a file with this outcome has changed records.
    pub fn applies(self) -> bool {
        matches!(self, Outcome::Accepted | Outcome::Partial)
    }
}

/// Records which open records a file kept only because a rejected row named them.
fn insert_retained(tx: &Transaction<'_>, file_id: i64, la: LaCode, diff: &Diff) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO retained (file_id, la_code, nhs, plan_type) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for key in &diff.retained {
        stmt.execute(params![
            file_id,
            la.as_u16(),
            key.nhs.value() as i64,
            key.plan_type.as_str()
        ])?;
    }
    Ok(())
}

/// A remote transport's health, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TransportStatus {
    pub name: String,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

impl Store {
    /// Records a remote transport's successful poll.
    pub fn transport_ok(&mut self, name: &str, at: DateTime<Utc>) -> Result<()> {
        self.conn().execute(
            "INSERT INTO transports (name, last_success) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET last_success = ?2",
            params![name, ts(at)],
        )?;
        Ok(())
    }

    /// Records a remote transport's failure (never a secret: the message is the error's).
    pub fn transport_failed(&mut self, name: &str, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO transports (name, last_error, last_error_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET last_error = ?2, last_error_at = ?3",
            params![name, error, ts(at)],
        )?;
        Ok(())
    }

    /// Every transport's last success and last error.
    pub fn transports(&mut self) -> Result<Vec<TransportStatus>> {
        let mut stmt = self.conn().prepare(
            "SELECT name, last_success, last_error, last_error_at FROM transports ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TransportStatus {
                name: r.get(0)?,
                last_success: r.get(1)?,
                last_error: r.get(2)?,
                last_error_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A file as `status` lists it among things that need attention.
#[derive(Debug, Clone, Serialize)]
pub struct FileBrief {
    pub file: String,
    pub mailbox: String,
    pub sender: Option<String>,
    pub processed_at: String,
    pub outcome: String,
    /// The file error codes, comma-separated (empty when none).
    pub codes: String,
}

const BRIEF: &str = "SELECT name, mailbox, sender, processed_at, outcome,
        coalesce((SELECT group_concat(json_extract(e.value, '$.code'), ',')
                  FROM json_each(files.report, '$.file_errors') e), '')
     FROM files";

fn brief(r: &Row<'_>) -> rusqlite::Result<FileBrief> {
    Ok(FileBrief {
        file: r.get(0)?,
        mailbox: r.get(1)?,
        sender: r.get(2)?,
        processed_at: r.get(3)?,
        outcome: r.get(4)?,
        codes: r.get(5)?,
    })
}

impl Store {
    /// Files rejected since `since`, newest first.
    pub fn rejected_since(&mut self, since: DateTime<Utc>) -> Result<Vec<FileBrief>> {
        let sql =
            format!("{BRIEF} WHERE outcome = 'rejected' AND processed_at >= ?1 ORDER BY id DESC");
        let rows = self
            .conn()
            .prepare(&sql)?
            .query_map(params![ts(since)], brief)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Each LA's most recent extract file (any outcome), by LA code.
    pub fn last_extract_files(&mut self) -> Result<std::collections::BTreeMap<String, FileBrief>> {
        let sql = format!(
            "{BRIEF} WHERE id IN (SELECT max(id) FROM files WHERE kind = 'extract'
                 AND sender IS NOT NULL GROUP BY sender)"
        );
        let rows: Vec<FileBrief> = self
            .conn()
            .prepare(&sql)?
            .query_map([], brief)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|b| Some((b.sender.clone()?, b)))
            .collect())
    }
}

/// An archived inbound file as `archive list` shows it: its latest processing.
#[derive(Debug, Clone, Serialize)]
pub struct ArchivedFile {
    pub sha256: String,
    pub file: String,
    pub mailbox: String,
    pub extracted_at: Option<String>,
    pub processed_at: String,
    pub outcome: String,
    pub applied: bool,
}

impl Store {
    /// Files whose sha256 starts with `prefix` or whose name is `prefix`: (sha256, name).
    pub fn find_files(&mut self, prefix: &str) -> Result<Vec<(String, String)>> {
        let rows = self
            .conn()
            .prepare(
                "SELECT DISTINCT sha256, name FROM files
                 WHERE substr(sha256, 1, length(?1)) = lower(?1) OR name = ?1 ORDER BY name",
            )?
            .query_map(params![prefix], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every extract processed (the latest processing of each sha256 per mailbox), newest
    /// first; only `mailbox`'s with `Some`.
    pub fn archived(&mut self, mailbox: Option<&str>) -> Result<Vec<ArchivedFile>> {
        let rows = self
            .conn()
            .prepare(
                "SELECT sha256, name, mailbox, extracted_at, processed_at, outcome, applied FROM files
                 WHERE id IN (SELECT max(id) FROM files WHERE kind = 'extract' GROUP BY sha256, mailbox)
                   AND (?1 IS NULL OR mailbox = ?1)
                 ORDER BY id DESC",
            )?
            .query_map(params![mailbox], |r| {
                Ok(ArchivedFile {
                    sha256: r.get(0)?,
                    file: r.get(1)?,
                    mailbox: r.get(2)?,
                    extracted_at: r.get(3)?,
                    processed_at: r.get(4)?,
                    outcome: r.get(5)?,
                    applied: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
