//! An operator's decisions about a file already processed: a quarantined file released
//! (applied as the records stand now) or rejected, and an archived file replayed. Each is
//! taken in the file's mailbox's write turn, on the archived copy checked against the
//! bytes received.

use super::check::{check_named, CheckedExtract, Keep};
use super::ingest::{altered, Gateway, Rules};
use crate::core::codes::Code;
use crate::core::extract::FileProblem;
use crate::core::ids::{LaCode, MailboxId};
use crate::core::report::{FileReport, Outcome};
use crate::sys::fsutil::archive_path;
use anyhow::{anyhow, bail, Result};

/// The LA a quarantined file came from.
fn la_of(file: &crate::store::FileRow, label: &str) -> Result<LaCode> {
    match file.sender.as_deref().map(LaCode::parse) {
        Some(Ok(la)) => Ok(la),
        _ => bail!("{label} has no LA"),
    }
}

/// When a registered file was first received (its stored acknowledgement says), so that a
/// decision taken later does not make it look newly arrived.
fn first_received(file: &crate::store::FileRow) -> Option<chrono::DateTime<chrono::Utc>> {
    let stored: serde_json::Value = serde_json::from_str(&file.report).ok()?;
    crate::store::parse_ts(stored["received_at"].as_str()?).ok()
}

/// What releasing a quarantined file would do (`quarantine show`).
#[derive(Debug, serde::Serialize)]
pub struct ReleasePreview {
    pub id: String,
    pub file: String,
    pub mailbox: String,
    /// The LA's open records now.
    pub open_before: u64,
    pub changes: crate::core::report::Changes,
    /// The records a release would close by absence, as the LA knows them.
    pub closing: Vec<Closing>,
    /// A newer extract was applied since: a release would be refused.
    pub superseded: bool,
}

/// A record a release would close: the LA's reference, the plan type, the NHS number masked.
#[derive(Debug, serde::Serialize)]
pub struct Closing {
    pub local_ref: Option<String>,
    pub plan_type: &'static str,
    pub nhs_number: String,
}

/// What `replay` did.
pub enum Replayed {
    /// Already applied, and not forced: nothing done.
    AlreadyApplied {
        file_id: i64,
        processed_at: String,
    },
    Ran(Box<FileReport>),
}

impl Gateway<'_> {
    /// Releases (applies) a quarantined file.
    pub fn release(&mut self, label: &str) -> Result<FileReport> {
        let _turn = self.turn_of_entry(label)?;
        let (number, file, mailbox) = self.pending(label)?;
        let la = la_of(&file, label)?;
        if let (Some(last), Some(at)) = (self.store.last_applied_extract(la)?, file.extracted_at) {
            if at <= last {
                bail!(
                    "{label} ({}) was extracted at {} but a newer extract of {} has been applied since: reject it instead",
                    file.name,
                    at.to_rfc3339(),
                    last.to_rfc3339()
                );
            }
        }
        let checked = self.recheck(&file, &mailbox, true)?;
        let mut report = checked.report.clone();
        if !report.outcome.applies() {
            bail!(
                "{label} no longer validates ({}): reject it",
                report.outcome.as_str()
            );
        }
        report.quarantine_id = Some(label.to_owned());
        report.received_at = first_received(&file).unwrap_or(report.received_at);
        Ok(self
            .apply(checked, report, la, &mailbox, Some((number, file.id)), None)?
            .0)
    }

    /// A quarantined (archived) file checked again as it stands now; refused if the
    /// archived bytes are no longer those received.
    fn recheck(
        &self,
        file: &crate::store::FileRow,
        mailbox: &MailboxId,
        rows: bool,
    ) -> Result<CheckedExtract> {
        let path = archive_path(&self.layout.archive(), &file.sha256);
        let keep = Keep {
            rows,
            copy_into: None,
        };
        let checked = check_named(
            &path,
            &file.name,
            Some(mailbox),
            self.config,
            self.clock,
            keep,
        )?;
        altered(&file.name, &file.sha256, &checked.report.sha256)?;
        Ok(checked)
    }

    /// What releasing a quarantined file would do now, without doing it: the counts per
    /// outcome and the records it would close by absence.
    pub fn preview_release(&mut self, label: &str) -> Result<ReleasePreview> {
        let (_, file, mailbox) = self.pending(label)?;
        let la = la_of(&file, label)?;
        let checked = self.recheck(&file, &mailbox, true)?;
        let diff = self.diff(checked, la)?;
        let mut closing = Vec::new();
        for change in diff
            .changes
            .iter()
            .filter(|c| c.kind == crate::core::reconcile::ChangeKind::ClosedByAbsence)
        {
            let local_ref = match change.previous {
                Some(id) => self.store.version(id)?.and_then(|v| v.fields.local_ref),
                None => None,
            };
            closing.push(Closing {
                local_ref,
                plan_type: change.key.plan_type.as_str(),
                nhs_number: change.key.nhs.to_string(),
            });
        }
        closing.sort_by(|a, b| a.local_ref.cmp(&b.local_ref));
        let superseded = match (self.store.last_applied_extract(la)?, file.extracted_at) {
            (Some(last), Some(at)) => at <= last,
            _ => false,
        };
        Ok(ReleasePreview {
            id: label.to_owned(),
            file: file.name,
            mailbox: mailbox.to_string(),
            open_before: diff.open_before,
            changes: diff.counts,
            closing,
            superseded,
        })
    }

    /// Rejects a quarantined file for good.
    pub fn reject(&mut self, label: &str) -> Result<FileReport> {
        let _turn = self.turn_of_entry(label)?;
        let (number, file, mailbox) = self.pending(label)?;
        let checked = self.recheck(&file, &mailbox, false)?;
        let mut report = checked.report;
        report.received_at = first_received(&file).unwrap_or(report.received_at);
        report.outcome = Outcome::Rejected;
        report.file_errors = vec![FileProblem::new(
            Code::Quarantined,
            "an operator rejected the file after quarantine: nothing was applied, send a corrected extract",
        )];
        report.response_code = report.outcome.response_code(&report.file_errors);
        report.quarantine_id = Some(label.to_owned());
        report.processed_at = self.clock.now();
        self.store
            .reject_quarantined(number, file.id, &report, report.processed_at)?;
        self.acknowledge(&report, &mailbox, true)?;
        Ok(report)
    }

    /// The write turn of a quarantine entry's mailbox (the entry is read again, in the turn).
    fn turn_of_entry(&mut self, label: &str) -> Result<crate::store::Turn> {
        let (_, _, mailbox) = self.pending(label)?;
        self.turn(&mailbox.to_string())
    }

    fn pending(&mut self, label: &str) -> Result<(i64, crate::store::FileRow, MailboxId)> {
        let entry = self
            .store
            .quarantine(false)?
            .into_iter()
            .find(|q| q.id.eq_ignore_ascii_case(label))
            .ok_or_else(|| anyhow!("no quarantine entry {label:?} (see `quarantine list`)"))?;
        if entry.state != "pending" {
            bail!("{} was already {}", entry.id, entry.state);
        }
        let file = self
            .store
            .file(entry.file_id)?
            .ok_or_else(|| anyhow!("{label}: its file is missing from the registry"))?;
        let mailbox = MailboxId::parse(&file.mailbox).map_err(|e| anyhow!(e))?;
        Ok((entry.number, file, mailbox))
    }

    /// Runs an archived file again.
    pub fn replay(&mut self, sha256: &str, force: bool) -> Result<Replayed> {
        let files = self.store.files_by_sha(sha256)?;
        let Some(latest) = files.last() else {
            bail!("no file with sha256 {sha256} was ever processed");
        };
        if let Some(applied) = files.iter().rev().find(|f| f.applied) {
            if !force {
                return Ok(Replayed::AlreadyApplied {
                    file_id: applied.id,
                    processed_at: crate::store::ts(applied.processed_at),
                });
            }
        }
        let path = archive_path(&self.layout.archive(), sha256);
        if !path.exists() {
            bail!("the archive has no copy of {sha256} ({})", path.display());
        }
        let mailbox = MailboxId::parse(&latest.mailbox).map_err(|e| anyhow!(e))?;
        let name = latest.name.clone();
        let rules = Rules {
            allow_repeat: true,
            allow_stale: force,
            expect_sha256: Some(sha256.to_owned()),
            ..Rules::default()
        };
        let report = self.ingest_named(&path, &name, &mailbox, &rules)?;
        Ok(Replayed::Ran(Box::new(report)))
    }
}
