//! The file registry (every inbound file by sha256, mailbox, name, extraction time, outcome,
//! counts and its acknowledgement) and the quarantine.

use super::db::{args, Row, Sql, Tx};
use super::{parse_ts, ts, Store};
use crate::core::codes::Code;
use crate::core::ids::LaCode;
use crate::core::reconcile::Diff;
use crate::core::report::{DuplicateOf, FileReport, Outcome};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
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

fn file_row(r: &Row) -> Result<(FileRow, Option<String>, String)> {
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
        self.db()
            .row(
                "SELECT id, name, outcome, processed_at, response_code FROM files
                 WHERE sha256 = ?1 AND mailbox = ?2 AND name = ?3 AND outcome != 'duplicate'
                   AND dedup = 1
                 ORDER BY id DESC LIMIT 1",
                args![sha256, mailbox, name],
            )
            .context("cannot look up earlier files")?
            .map(|r| {
                Ok(DuplicateOf {
                    file_id: r.get(0)?,
                    file: r.get(1)?,
                    outcome: r.get(2)?,
                    processed_at: r.get(3)?,
                    response_code: r.get(4)?,
                })
            })
            .transpose()
    }

    /// The extraction time of the newest applied extract of an LA.
    pub fn last_applied_extract(&mut self, la: LaCode) -> Result<Option<DateTime<Utc>>> {
        let text: Option<String> = self
            .db()
            .value(
                "SELECT max(extracted_at) FROM files WHERE applied = 1 AND sender = ?1",
                args![la.to_string()],
            )?
            .flatten();
        text.as_deref().map(parse_ts).transpose()
    }

    /// The highest sequence number of the CP-IS uploads applied for an LA.
    pub fn last_applied_sequence(&mut self, la: LaCode) -> Result<Option<i64>> {
        Ok(self
            .db()
            .value(
                "SELECT max(sequence) FROM files WHERE applied = 1 AND sender = ?1",
                args![la.to_string()],
            )?
            .flatten())
    }

    /// The LA's newest applied file, as CP-IS's notification refers to it: its sequence
    /// number if it was a CP-IS upload, else its name.
    pub fn newest_applied_file(&mut self, la: LaCode) -> Result<Option<String>> {
        let row = self.db().row(
            "SELECT name, sequence FROM files WHERE applied = 1 AND sender = ?1
             ORDER BY extracted_at DESC, id DESC LIMIT 1",
            args![la.to_string()],
        )?;
        row.map(|r| {
            let sequence: Option<i64> = r.get(1)?;
            Ok(match sequence {
                Some(n) => n.to_string(),
                None => r.get(0)?,
            })
        })
        .transpose()
    }

    /// A processing of this very mailbox entry (same bytes, mailbox, name and `inbound`
    /// identity) committed before the gateway stopped, the entry still being in `in/`: (file
    /// id, stored report JSON). (A row from before migration 11, which had no identity, is
    /// found while it is not marked settled.) A new arrival of the same bytes is another
    /// entry, and is not found.
    pub fn find_taken(
        &mut self,
        sha256: &str,
        mailbox: &str,
        name: &str,
        inbound: &str,
    ) -> Result<Option<(i64, String)>> {
        self.db()
            .row(
                "SELECT id, report FROM files
                 WHERE sha256 = ?1 AND mailbox = ?2 AND name = ?3
                   AND (inbound = ?4 OR (settled = 0 AND inbound IS NULL))
                 ORDER BY id DESC LIMIT 1",
                args![sha256, mailbox, name, inbound],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
    }

    /// The flag response stored with an attendance file.
    pub fn file_response(&mut self, id: i64) -> Result<Option<String>> {
        Ok(self
            .db()
            .value("SELECT response FROM files WHERE id = ?1", args![id])?
            .flatten())
    }

    /// Marks a row from before migration 11 settled, once its inbound file has left `in/`.
    pub fn mark_settled(&mut self, id: i64) -> Result<()> {
        self.db()
            .execute("UPDATE files SET settled = 1 WHERE id = ?1", args![id])?;
        Ok(())
    }

    /// The extraction time of the newest applied extract, per LA code.
    pub fn last_applied_extracts(
        &mut self,
    ) -> Result<std::collections::BTreeMap<String, DateTime<Utc>>> {
        self.db()
            .rows(
                "SELECT sender, max(extracted_at) FROM files WHERE applied = 1 AND sender IS NOT NULL GROUP BY sender",
                args![],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, parse_ts(&r.get::<String>(1)?)?)))
            .collect()
    }

    /// Every registered processing of a file with this sha256 (oldest first).
    pub fn files_by_sha(&mut self, sha256: &str) -> Result<Vec<FileRow>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE sha256 = ?1 ORDER BY id");
        self.db()
            .rows(&sql, args![sha256])?
            .iter()
            .map(|r| finish_row(file_row(r)?))
            .collect()
    }

    pub fn file(&mut self, id: i64) -> Result<Option<FileRow>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1");
        self.db()
            .row(&sql, args![id])?
            .map(|r| finish_row(file_row(&r)?))
            .transpose()
    }

    /// Quarantine entries, pending only or all.
    pub fn quarantine(&mut self, pending_only: bool) -> Result<Vec<QuarantineEntry>> {
        let sql =
            format!(
            "SELECT q.id, q.file_id, f.name, f.mailbox, f.sha256, q.reason, q.state, f.processed_at
             FROM quarantine q JOIN files f ON f.id = q.file_id {} ORDER BY q.id",
            if pending_only { "WHERE q.state = 'pending'" } else { "" }
        );
        self.db()
            .rows(&sql, args![])?
            .iter()
            .map(|r| {
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
            })
            .collect()
    }

    /// Registers a file that changes no record (rejected, duplicate).
    /// `inbound`: see [`insert_file`].
    pub fn register(&mut self, report: &FileReport, inbound: Option<&str>) -> Result<i64> {
        let mut tx = self.write()?;
        let id = insert_file(&mut tx, report, false, inbound)?;
        tx.commit()?;
        Ok(id)
    }

    /// Registers a quarantined file and its entry; sets `report.quarantine_id`.
    pub fn register_quarantined(
        &mut self,
        report: &mut FileReport,
        reason: &str,
        inbound: Option<&str>,
    ) -> Result<i64> {
        let mut tx = self.write()?;
        let id = insert_file(&mut tx, report, false, inbound)?;
        let number = tx.insert(
            "INSERT INTO quarantine (file_id, reason) VALUES (?1, ?2) RETURNING id",
            args![id, reason],
        )?;
        report.quarantine_id = Some(quarantine_label(number));
        update_report(&mut tx, id, report, false)?;
        tx.commit()?;
        Ok(id)
    }

    /// Registers a file and applies its changes to the LA's records, in one transaction,
    /// in which the LA's records ended before `cold_before` are kept cold.
    /// `injected` holds the failures tests inject (none otherwise).
    #[allow(clippy::too_many_arguments)]
    pub fn apply_file(
        &mut self,
        report: &FileReport,
        la: LaCode,
        diff: &Diff,
        known_from: DateTime<Utc>,
        cold_before: chrono::NaiveDate,
        injected: Injected,
        inbound: Option<&str>,
    ) -> Result<i64> {
        let changes = &diff.changes;
        // A big file dirties more pages than the usual cache holds; spilling them to the
        // WAL mid-transaction costs more than the memory (about 128 bytes a change).
        let big = changes.len() > 50_000 && !self.db().is_pg();
        if big {
            let kib = (changes.len() / 8).min(512 * 1024) as i64;
            self.conn()?.pragma_update(None, "cache_size", -kib)?;
        }
        let result: Result<(i64, u64)> = (|| {
            let mut tx = self.write()?;
            let id = insert_file(&mut tx, report, true, inbound)?;
            super::records::write_changes(
                &mut tx,
                la,
                id,
                changes,
                known_from,
                injected.fail_after,
            )?;
            insert_retained(&mut tx, id, la, diff)?;
            let cold = super::records::keep_cold(&mut tx, la, cold_before)?;
            if let Some(pause) = injected.pause_before_commit {
                tracing::info!(file = %report.file, "pausing before commit (injected)");
                std::thread::sleep(pause);
            }
            tx.commit()?;
            Ok((id, cold))
        })();
        if big {
            self.conn()?
                .pragma_update(None, "cache_size", super::CACHE_KIB)?;
        }
        let (id, cold) = result?;
        let n = changes.len();
        self.wrote(&[
            ("records", n),
            ("record_versions", n),
            ("records_cold", cold as usize),
        ]);
        self.moved_out(cold as usize);
        Ok(id)
    }

    /// Applies a released quarantined file: its registry entry takes the new report
    /// (and, as [`Store::apply_file`], the records ended before `cold_before` go cold).
    #[allow(clippy::too_many_arguments)]
    pub fn release_quarantined(
        &mut self,
        number: i64,
        file_id: i64,
        report: &FileReport,
        la: LaCode,
        diff: &Diff,
        known_from: DateTime<Utc>,
        cold_before: chrono::NaiveDate,
    ) -> Result<()> {
        let mut tx = self.write()?;
        decide(&mut tx, number, "released", known_from)?;
        update_report(&mut tx, file_id, report, true)?;
        super::records::write_changes(&mut tx, la, file_id, &diff.changes, known_from, None)?;
        insert_retained(&mut tx, file_id, la, diff)?;
        super::records::keep_cold(&mut tx, la, cold_before)?;
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
        let mut tx = self.write()?;
        decide(&mut tx, number, "rejected", at)?;
        update_report(&mut tx, file_id, report, false)?;
        tx.commit()?;
        Ok(())
    }
}

fn decide(tx: &mut Tx<'_>, number: i64, state: &str, at: DateTime<Utc>) -> Result<()> {
    let n = tx.execute(
        "UPDATE quarantine SET state = ?2, decided_at = ?3 WHERE id = ?1 AND state = 'pending'",
        args![number, state, ts(at)],
    )?;
    if n != 1 {
        anyhow::bail!("{} is not pending", quarantine_label(number));
    }
    Ok(())
}

/// Registers a file processing. `inbound`: the identity of the mailbox entry it came from
/// (`fsutil::inbound_identity`), so that after a stop this very entry is told from a new
/// arrival of the same bytes; `None` for a file named on the command line. The registration
/// is the file's settling: it is committed with the outcome.
pub(super) fn insert_file(
    tx: &mut Tx<'_>,
    report: &FileReport,
    applied: bool,
    inbound: Option<&str>,
) -> Result<i64> {
    let kind = serde_json::to_value(report.kind)?;
    tx.insert(
        "INSERT INTO files (sha256, mailbox, name, kind, sender, extracted_at, received_at,
            processed_at, outcome, response_code, applied, rows, valid_rows, invalid_rows, report,
            settled, dedup, inbound, sequence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 1, ?16, ?17, ?18)
         RETURNING id",
        args![
            report.sha256,
            report.mailbox.as_deref().unwrap_or(""),
            report.file,
            kind.as_str().unwrap_or("extract"),
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
            !report.refused_outside
                && !report
                    .file_errors
                    .iter()
                    .any(|p| matches!(p.code, Code::FileName | Code::NotAuthorised)),
            inbound,
            report.upload.map(|u| u.sequence as i64),
        ],
    )
}

fn update_report(tx: &mut Tx<'_>, id: i64, report: &FileReport, applied: bool) -> Result<()> {
    tx.execute(
        "UPDATE files SET outcome = ?2, response_code = ?3, applied = ?4, processed_at = ?5,
            report = ?6 WHERE id = ?1",
        args![
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
fn insert_retained(tx: &mut Tx<'_>, file_id: i64, la: LaCode, diff: &Diff) -> Result<()> {
    for key in &diff.retained {
        tx.execute(
            "INSERT INTO retained (file_id, la_code, nhs, plan_type) VALUES (?1, ?2, ?3, ?4)",
            args![
                file_id,
                la.as_u16(),
                key.nhs.value() as i64,
                key.plan_type.as_str()
            ],
        )?;
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
        self.db().execute(
            "INSERT INTO transports (name, last_success) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET last_success = excluded.last_success",
            args![name, ts(at)],
        )?;
        Ok(())
    }

    /// Records a remote transport's failure (never a secret: the message is the error's).
    pub fn transport_failed(&mut self, name: &str, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.db().execute(
            "INSERT INTO transports (name, last_error, last_error_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error,
                 last_error_at = excluded.last_error_at",
            args![name, error, ts(at)],
        )?;
        Ok(())
    }

    /// Every transport's last success and last error.
    pub fn transports(&mut self) -> Result<Vec<TransportStatus>> {
        self.db()
            .rows(
                "SELECT name, last_success, last_error, last_error_at FROM transports ORDER BY name",
                args![],
            )?
            .iter()
            .map(|r| {
                Ok(TransportStatus {
                    name: r.get(0)?,
                    last_success: r.get(1)?,
                    last_error: r.get(2)?,
                    last_error_at: r.get(3)?,
                })
            })
            .collect()
    }
}

/// A file a transport left on its remote, and why.
#[derive(Debug, Clone, Serialize)]
pub struct LeftOnRemote {
    pub file_name: String,
    pub note: String,
    pub at: String,
}

impl Store {
    /// Records that `remote` left `file_name` where it is, and why.
    pub fn remote_file_left(
        &mut self,
        remote: &str,
        file_name: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO remote_files (remote, file_name, note, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (remote, file_name) DO UPDATE SET note = excluded.note, at = excluded.at",
            args![remote, file_name, note, ts(at)],
        )?;
        Ok(())
    }

    /// Forgets what was said of the files of `remote` that are not `still_there` (taken,
    /// or gone from the remote).
    pub fn remote_files_settled(&mut self, remote: &str, still_there: &[&str]) -> Result<()> {
        let left: Vec<String> = self.db().column(
            "SELECT file_name FROM remote_files WHERE remote = ?1",
            args![remote],
        )?;
        for name in left.iter().filter(|n| !still_there.contains(&n.as_str())) {
            self.db().execute(
                "DELETE FROM remote_files WHERE remote = ?1 AND file_name = ?2",
                args![remote, name],
            )?;
        }
        Ok(())
    }

    /// The files `remote` leaves behind, oldest first.
    pub fn remote_files_left(&mut self, remote: &str) -> Result<Vec<LeftOnRemote>> {
        self.db()
            .rows(
                "SELECT file_name, note, at FROM remote_files WHERE remote = ?1 ORDER BY at, file_name",
                args![remote],
            )?
            .iter()
            .map(|r| {
                Ok(LeftOnRemote {
                    file_name: r.get(0)?,
                    note: r.get(1)?,
                    at: r.get(2)?,
                })
            })
            .collect()
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

fn brief(r: &Row) -> Result<FileBrief> {
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
        self.db()
            .rows(&sql, args![ts(since)])?
            .iter()
            .map(brief)
            .collect()
    }

    /// Each LA's most recent extract file (any outcome), by LA code.
    pub fn last_extract_files(&mut self) -> Result<std::collections::BTreeMap<String, FileBrief>> {
        let sql = format!(
            "{BRIEF} WHERE id IN (SELECT max(id) FROM files WHERE kind = 'extract'
                 AND sender IS NOT NULL GROUP BY sender)"
        );
        let rows: Vec<FileBrief> = self
            .db()
            .rows(&sql, args![])?
            .iter()
            .map(brief)
            .collect::<Result<_>>()?;
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
        self.db()
            .rows(
                "SELECT DISTINCT sha256, name FROM files
                 WHERE substr(sha256, 1, length(CAST(?1 AS TEXT))) = lower(CAST(?1 AS TEXT))
                    OR name = CAST(?1 AS TEXT)
                 ORDER BY name",
                args![prefix],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// Every extract processed (the latest processing of each sha256 per mailbox), newest
    /// first; only `mailbox`'s with `Some`.
    pub fn archived(&mut self, mailbox: Option<&str>) -> Result<Vec<ArchivedFile>> {
        self.db()
            .rows(
                "SELECT sha256, name, mailbox, extracted_at, processed_at, outcome, applied FROM files
                 WHERE id IN (SELECT max(id) FROM files WHERE kind = 'extract' GROUP BY sha256, mailbox)
                   AND (CAST(?1 AS TEXT) IS NULL OR mailbox = CAST(?1 AS TEXT))
                 ORDER BY id DESC",
                args![mailbox],
            )?
            .iter()
            .map(|r| {
                Ok(ArchivedFile {
                    sha256: r.get(0)?,
                    file: r.get(1)?,
                    mailbox: r.get(2)?,
                    extracted_at: r.get(3)?,
                    processed_at: r.get(4)?,
                    outcome: r.get(5)?,
                    applied: r.get(6)?,
                })
            })
            .collect()
    }
}
