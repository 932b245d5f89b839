//! The ingest pipeline for one extract (SPEC 3), in the order the SPEC gives: authorisation,
//! duplicate, staleness, validation, error rate, the pure reconciliation diff, the guards,
//! then one transaction; only after the commit, the acknowledgement.
//!
//! The file is opened once (never through a link, never blocking on a FIFO) and read
//! through that handle; every byte read is also written into a new file of the archive,
//! kept under its sha256 before anything is committed. From the CLI (`Intake::Copy`) the
//! operator's file stays where it was; from a mailbox (`Intake::Move`) the entry is removed
//! once its outcome, with the entry's identity, is committed. Either way it is never lost.
//! `Gateway` (configuration, clock, folders, store) is the context every step runs in.

use super::cpis_ack;
use crate::config::Config;
use crate::core::codes::Code;
use crate::core::extract::FileProblem;
use crate::core::filename::InboundKind;
use crate::core::ids::{LaCode, MailboxId};
use crate::core::outbound::{ack_csv, ack_csv_name, ack_json_name, ack_xml_name, has_problems};
use crate::core::reconcile::{quarantine_reason, reconcile};
use crate::core::report::{FileKind, FileReport, Outcome};
use crate::pipeline::check::{check_opened, CheckedExtract, Keep};
use crate::store::Store;
use crate::sys::clock::Clock;
use crate::sys::fault::Fault;
use crate::sys::fsutil::{archive_path, inbound_identity, keep_copy, open_inbound, write_atomic};
use crate::sys::layout::Layout;
use anyhow::{anyhow, bail, Context, Result};
use sha2::Digest;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What becomes of the inbound file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Intake {
    /// Copied into the archive before anything is committed; the original stays (CLI).
    #[default]
    Copy,
    /// Moved into the archive once its outcome is committed (a mailbox's `in/`).
    Move,
}

/// How to treat the duplicate and staleness rules, and the inbound file.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Run the file even if the same bytes were processed before (replay).
    pub allow_repeat: bool,
    /// Also run it if it is not newer than the last applied extract (replay --force).
    pub allow_stale: bool,
    pub intake: Intake,
    /// A file error found outside the file (e.g. its control file names another sender).
    pub refusal: Option<FileProblem>,
    /// The sha256 the file must have (replay: the archived copy must be what was received).
    pub expect_sha256: Option<String>,
}

/// The gateway: configuration, clock, folders and store.
pub struct Gateway<'a> {
    pub config: &'a Config,
    pub clock: &'a dyn Clock,
    pub layout: Layout,
    pub store: Store,
    pub(crate) fault: Option<Fault>,
    /// What the pass leaves to settle, when a pass settles at once (`settle`).
    pub(crate) pending: Option<crate::sys::durable::Pending>,
}

/// The largest acknowledgement read back to see whether it is whole (a larger one is
/// written again).
const ACK_READ_MAX: usize = 64 << 20;

/// Writes `dir/name` (synced) unless it holds exactly `bytes` already.
pub(super) fn rewrite_unless_there(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    if !crate::sys::fsutil::holds_exactly(&dir.join(name), bytes) {
        write_atomic(dir, name, bytes)?;
    }
    Ok(())
}

/// The LA a CP-IS upload came from, when `report` is of one in an LA's mailbox: it gets
/// CP-IS's own acknowledgement too.
fn upload_sender(report: &FileReport, mailbox: &MailboxId) -> Option<LaCode> {
    match mailbox {
        MailboxId::La(la) if cpis_ack::is_upload(report) => Some(*la),
        _ => None,
    }
}

/// Fails if an archived file's bytes are no longer those received: an altered copy is
/// never applied.
pub(super) fn altered(name: &str, received: &str, now: &str) -> Result<()> {
    if received != now {
        bail!(
            "the archived copy of {name} has been altered since it was received (sha256 {received} then, {now} now): it is not used; restore the original from a backup, or ask the sender for it again"
        );
    }
    Ok(())
}

impl<'a> Gateway<'a> {
    /// Opens the store (creating it and the root if needed).
    pub fn open(config: &'a Config, clock: &'a dyn Clock) -> Result<Gateway<'a>> {
        let layout = Layout::new(&config.root);
        crate::sys::fsutil::create_private_dir(layout.root())?;
        let store = Store::open_at(&config.store_location())?;
        let fault = Fault::from_env()?;
        Ok(Gateway {
            config,
            clock,
            layout,
            store,
            fault,
            pending: None,
        })
    }

    /// Opens the store of an existing root, creating nothing: a command that only looks or
    /// decides must not leave a new empty store wherever it happens to run.
    pub fn open_existing(config: &'a Config, clock: &'a dyn Clock) -> Result<Gateway<'a>> {
        let store = Layout::new(&config.root).store();
        if config.postgres.is_some() && !config.root.is_dir() {
            // The store is shared, but this node's mailboxes, archive and reports are not
            // there: the wrong folder or configuration.
            bail!(
                "no gateway root at {} (configuration: {}; store: {}): run this where the gateway's config.toml is, give it with --config, or create the root with `cpis-gateway init`",
                config.root.display(),
                config.origin,
                config.store_location()
            );
        }
        if config.postgres.is_none() && !store.exists() {
            bail!(
                "no gateway store at {} (configuration: {}; root: {}): run this where the gateway's config.toml is, give it with --config, or create a new store with `cpis-gateway init`",
                store.display(),
                config.origin,
                config.root.display()
            );
        }
        Gateway::open(config, clock)
    }

    /// Creates every party's mailbox folders (idempotent). Tries them all; the error names
    /// every one that could not be made.
    pub fn init_mailboxes(&self) -> Result<usize> {
        let las = self
            .config
            .local_authorities
            .iter()
            .map(|&la| MailboxId::La(la));
        let orgs = self
            .config
            .health_orgs
            .iter()
            .map(|h| MailboxId::Health(h.ods.clone()));
        let mut made = 0;
        let mut failures = Vec::new();
        for id in las.chain(orgs) {
            match crate::sys::fsutil::create_private_dir(&self.layout.inbox(&id))
                .and_then(|()| crate::sys::fsutil::create_private_dir(&self.layout.outbox(&id)))
            {
                Ok(()) => made += 1,
                Err(e) => failures.push(format!("{id}: {e:#}")),
            }
        }
        crate::sys::fsutil::create_private_dir(&self.layout.archive())?;
        if !failures.is_empty() {
            bail!("mailbox folders could not be made: {}", failures.join("; "));
        }
        Ok(made)
    }

    /// Processes one file as if dropped into `mailbox`.
    pub fn ingest(
        &mut self,
        path: &Path,
        mailbox: &MailboxId,
        rules: &Rules,
    ) -> Result<FileReport> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow!("{} is not a file", path.display()))?;
        self.ingest_named(path, &name, mailbox, rules)
    }

    pub(super) fn ingest_named(
        &mut self,
        path: &Path,
        name: &str,
        mailbox: &MailboxId,
        rules: &Rules,
    ) -> Result<FileReport> {
        let opened =
            match open_inbound(path).with_context(|| format!("cannot open {}", path.display()))? {
                Ok(opened) => opened,
                Err(why) if rules.intake == Intake::Move => {
                    return self.refuse(path, mailbox, &format!("{name:?}: {why}"))
                }
                Err(why) => bail!("{}: {why}; name the file itself", path.display()),
            };
        if let Ok(crate::core::filename::InboundName {
            kind: InboundKind::Attendance { .. },
            ..
        }) = crate::core::filename::parse_inbound_name(name)
        {
            return self.ingest_attendance(opened, path, name, mailbox, rules);
        }
        // Nobody else may hold a name for the bytes the gateway is about to apply and keep.
        if rules.intake == Intake::Move && opened.meta.nlink() > 1 {
            return self.refuse(
                path,
                mailbox,
                &format!("{name:?} has other hard links: mailboxes take only files of their own"),
            );
        }
        let identity = opened.meta.clone();
        let archive = self.layout.archive();
        let mut checked = check_opened(
            opened,
            name,
            Some(mailbox),
            self.config,
            self.clock,
            Keep {
                rows: true,
                copy_into: Some(&archive),
            },
        )
        .with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(expected) = &rules.expect_sha256 {
            altered(name, expected, &checked.report.sha256)?;
        }
        // The archive keeps the copy made while the file was read: exactly the bytes that
        // were hashed and are applied, in a file of the gateway's own, which nobody who can
        // still write to the inbound file can change. It is kept before anything is
        // committed; from a mailbox, synced before the inbound entry goes (now, or with the
        // pass: see `settle`).
        if let Some(copy) = checked.kept.copy.take() {
            let sync = rules.intake == Intake::Move && self.sync_archive_now();
            keep_copy(&archive, copy, &checked.report.sha256, sync)?;
        }
        let mut report = checked.report.clone();
        if let Some(problem) = &rules.refusal {
            report.file_errors.push(problem.clone());
            report.refused_outside = true;
            report.conclude();
        }
        let _turn = self.turn(&mailbox.to_string())?;
        // From a mailbox, the entry's identity is committed with its outcome: after a stop,
        // this very entry is finished, never processed again; new bytes are new.
        let inbound = (rules.intake == Intake::Move).then(|| inbound_identity(&identity));
        let recovered = match &inbound {
            Some(entry) => self.recover(&report, mailbox, entry)?,
            None => None,
        };
        let (report, file_id) = match &recovered {
            Some(done) => done.clone(),
            None => self.decide(checked, report, mailbox, rules, inbound.as_deref())?,
        };
        if rules.intake == Intake::Move {
            // Not archived (larger than the gateway takes): set aside, not kept.
            let set_aside = (!archive_path(&archive, &report.sha256).exists())
                .then(|| (name.to_owned(), file_id));
            self.leave_inbox(path, &identity, set_aside)?;
            if recovered.is_some() {
                // A row from before migration 11 waits for this (a newer one is settled).
                self.store.mark_settled(file_id)?;
            }
        }
        Ok(report)
    }

    /// Moves an inbound entry the gateway will not keep into `rejected/`.
    pub(super) fn set_aside(&self, path: &Path, name: &str, file_id: i64) -> Result<()> {
        let dir = self.layout.rejected();
        crate::sys::fsutil::create_private_dir(&dir)?;
        let stamp = crate::core::date::format_compact_utc(self.clock.now());
        let target = dir.join(format!(
            "{stamp}_{file_id}_{}",
            crate::core::outbound::stem(name)
        ));
        std::fs::rename(path, &target)
            .with_context(|| format!("cannot move {} to {}", path.display(), target.display()))
    }

    /// Refuses an inbound entry without processing it (a name the gateway does not take, a
    /// symbolic link, not a plain file): registered as rejected with `FILE_NAME`, told to
    /// the sender, and moved to `rejected/`.
    pub fn refuse(&mut self, path: &Path, mailbox: &MailboxId, reason: &str) -> Result<FileReport> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sha256 = match open_inbound(path)? {
            Ok(opened) => crate::sys::hashing::HashingReader::new(
                opened.file,
                indicatif::ProgressBar::hidden(),
            )
            .finish()?,
            // Never follow a link nor read a FIFO: identify the entry by its name.
            Err(_) => hex::encode(sha2::Sha256::digest(path.as_os_str().as_encoded_bytes())),
        };
        // Registered as the kind of file the mailbox takes (a hospital's refusals are not
        // an LA's extracts in any figure).
        let kind = match mailbox {
            MailboxId::La(_) => FileKind::Extract,
            MailboxId::Health(_) => FileKind::Attendance,
        };
        let mut report = FileReport::new(&name, Some(mailbox.to_string()), kind, self.clock.now());
        report.sha256 = sha256;
        report.file_errors.push(FileProblem::new(
            Code::FileName,
            format!("{reason}: the file was set aside unread"),
        ));
        report.conclude();
        let _turn = self.turn(&mailbox.to_string())?;
        // The entry itself (a link is not followed): refused once, whatever stops between.
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot look at {}", path.display()))?;
        let entry = inbound_identity(&meta);
        let id = match self.recover(&report, mailbox, &entry)? {
            Some((_, id)) => {
                self.store.mark_settled(id)?;
                id
            }
            None => {
                let id = self.store.register(&report, Some(&entry))?;
                self.acknowledge(&report, mailbox, true)?;
                id
            }
        };
        self.leave_inbox(path, &meta, Some((name.clone(), id)))?;
        tracing::warn!(file = %name, mailbox = %mailbox, reason, "refused");
        Ok(report)
    }

    /// A file already processed whose inbound copy was still in `in/` when the gateway
    /// stopped: its outcome stands; the acknowledgement is written again if it is missing.
    fn recover(
        &mut self,
        fresh: &FileReport,
        mailbox: &MailboxId,
        entry: &str,
    ) -> Result<Option<(FileReport, i64)>> {
        let Some((id, stored)) =
            self.store
                .find_taken(&fresh.sha256, &mailbox.to_string(), &fresh.file, entry)?
        else {
            return Ok(None);
        };
        let stored_json: serde_json::Value = serde_json::from_str(&stored)?;
        let mut report = fresh.clone();
        report.outcome = serde_json::from_value(stored_json["outcome"].clone())?;
        report.changes = serde_json::from_value(stored_json["changes"].clone())?;
        report.quarantine_id = serde_json::from_value(stored_json["quarantine_id"].clone())?;
        report.response_code = report.outcome.response_code(&report.file_errors);
        self.rewrite_ack(&report, mailbox, &stored_json)?;
        tracing::info!(file = %report.file, mailbox = %mailbox, file_id = id, "finished a file processed before a stop");
        Ok(Some((report, id)))
    }

    /// After a stop: writes the stored acknowledgement again (synced) unless the outbox
    /// holds exactly it (a power cut may have left an unsynced one empty).
    pub(crate) fn rewrite_ack(
        &self,
        report: &FileReport,
        mailbox: &MailboxId,
        stored: &serde_json::Value,
    ) -> Result<()> {
        let out = self.layout.outbox(mailbox);
        let name = ack_json_name(&report.file);
        // The ack first written holds the same fields in another order: compared as JSON.
        let there = crate::sys::fsutil::open_inbound(&out.join(&name))
            .ok()
            .and_then(Result::ok)
            .and_then(|mut o| crate::sys::fsutil::read_at_most(&mut o.file, ACK_READ_MAX).ok())
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        if there.as_ref() != Some(stored) {
            let mut json = serde_json::to_vec_pretty(stored)?;
            json.push(b'\n');
            write_atomic(&out, &name, &json)?;
        }
        if has_problems(report) {
            rewrite_unless_there(&out, &ack_csv_name(&report.file), &ack_csv(report))?;
        }
        if let Some(la) = upload_sender(report, mailbox) {
            let archived = archive_path(&self.layout.archive(), &report.sha256);
            crate::sys::fsutil::write_renamed_with(&out, &ack_xml_name(&report.file), true, |w| {
                cpis_ack::write(report, la, &archived, w)
            })?;
        }
        Ok(())
    }

    /// Everything after the check: duplicate, staleness, reconciliation, commit, ack.
    /// Returns the report and the file's registry id.
    fn decide(
        &mut self,
        checked: CheckedExtract,
        mut report: FileReport,
        mailbox: &MailboxId,
        rules: &Rules,
        inbound: Option<&str>,
    ) -> Result<(FileReport, i64)> {
        let unauthorised = report
            .file_errors
            .iter()
            .any(|p| p.code == Code::NotAuthorised);
        if !unauthorised && !rules.allow_repeat {
            if let Some(previous) =
                self.store
                    .find_processed(&report.sha256, &mailbox.to_string(), &report.file)?
            {
                report.outcome = Outcome::Duplicate;
                report.file_errors.clear();
                report.response_code = previous.response_code();
                report.duplicate_of = Some(previous);
                report.processed_at = self.clock.now();
                let id = self.store.register(&report, inbound)?;
                self.acknowledge(&report, mailbox, false)?;
                return Ok((report, id));
            }
        }
        if let Some(problem) = self.staleness(&checked, rules)? {
            report.file_errors.push(problem);
            report.conclude();
        }
        let la = match (&checked.name, report.outcome) {
            (Some(n), Outcome::Accepted | Outcome::Partial) if report.file_errors.is_empty() => {
                match n.kind {
                    InboundKind::Extract { la, .. } => la,
                    InboundKind::Attendance { .. } => {
                        bail!("an attendance file reached the extract pipeline")
                    }
                }
            }
            _ => {
                report.processed_at = self.clock.now();
                let id = self.store.register(&report, inbound)?;
                self.acknowledge(&report, mailbox, true)?;
                return Ok((report, id));
            }
        };
        self.apply(checked, report, la, mailbox, None, inbound)
    }

    /// `STALE` unless the extract is newer than the LA's last applied one (or `allow_stale`).
    fn staleness(
        &mut self,
        checked: &CheckedExtract,
        rules: &Rules,
    ) -> Result<Option<FileProblem>> {
        let Some(name) = &checked.name else {
            return Ok(None);
        };
        let InboundKind::Extract { la, .. } = name.kind else {
            return Ok(None);
        };
        if rules.allow_stale || !checked.report.file_errors.is_empty() {
            return Ok(None);
        }
        if let Some(upload) = checked.report.upload {
            if let Some(last) = self
                .store
                .last_applied_sequence(la)?
                .filter(|&last| upload.sequence as i64 <= last)
            {
                return Ok(Some(FileProblem::new(
                    Code::Stale,
                    format!(
                        "the upload's sequence number (File/id) is {} but upload {last} of LA {la} is already applied: each upload must carry a higher number (an operator can replay this one with --force)",
                        upload.sequence
                    ),
                )));
            }
        }
        let Some(last) = self
            .store
            .last_applied_extract(la)?
            .filter(|last| name.at <= *last)
        else {
            return Ok(None);
        };
        Ok(Some(FileProblem::new(
            Code::Stale,
            format!(
                "the file was extracted at {} but an extract of {} is already applied: send a newer extract (an operator can replay this one with --force)",
                name.at.to_rfc3339(),
                last.to_rfc3339()
            ),
        )))
    }

    /// The pure diff of a checked extract against the LA's records as they are now.
    pub(super) fn diff(
        &mut self,
        checked: CheckedExtract,
        la: LaCode,
    ) -> Result<crate::core::reconcile::Diff> {
        let extraction_date = checked
            .report
            .extracted_at
            .map(|t| t.date_naive())
            .ok_or_else(|| anyhow!("an extract without extraction time"))?;
        // Every open record of the LA, and the closed ones the extract names (to reopen
        // them); the LA's other closed records cannot change and are not read.
        let mut current = self.store.open_records(la)?;
        let open: rustc_hash::FxHashSet<_> = current.iter().map(|r| r.key).collect();
        let named: Vec<_> = checked
            .kept
            .valid
            .iter()
            .map(|row| row.key())
            .filter(|key| !open.contains(key))
            .collect();
        current.extend(self.store.closed_records(la, &named)?);
        Ok(reconcile(
            &current,
            checked.kept.valid,
            &checked.kept.rejected_keys,
            extraction_date,
        ))
    }

    /// Reconciles a checked file and commits it, or quarantines it.
    /// `released` is the quarantine entry being released (guards then do not apply).
    pub(super) fn apply(
        &mut self,
        checked: CheckedExtract,
        mut report: FileReport,
        la: LaCode,
        mailbox: &MailboxId,
        released: Option<(i64, i64)>,
        inbound: Option<&str>,
    ) -> Result<(FileReport, i64)> {
        let diff = self.diff(checked, la)?;
        if released.is_none() {
            if let Some(reason) =
                quarantine_reason(&diff, report.valid_rows, self.config.max_closure_share)
            {
                report.outcome = Outcome::Quarantined;
                report.response_code = report.outcome.response_code(&[]);
                report.quarantine_reason = Some(reason.clone());
                report.processed_at = self.clock.now();
                let id = self
                    .store
                    .register_quarantined(&mut report, &reason, inbound)?;
                tracing::warn!(file = %report.file, mailbox = %mailbox, %reason, "quarantined");
                self.acknowledge(&report, mailbox, true)?;
                return Ok((report, id));
            }
        }
        report.changes = Some(diff.counts);
        report.processed_at = self.clock.now();
        // Records ended before any look-up from now on could show them go cold.
        let cold_before = crate::core::matching::shown_since(
            report.processed_at,
            self.config.attendance_max_age_days,
        );
        let id = match released {
            None => self.store.apply_file(
                &report,
                la,
                &diff,
                report.processed_at,
                cold_before,
                crate::store::Injected {
                    fail_after: match self.fault {
                        Some(Fault::ApplyAfter(n)) => Some(n),
                        _ => None,
                    },
                    pause_before_commit: match self.fault {
                        Some(Fault::PauseBeforeCommit(d)) => Some(d),
                        _ => None,
                    },
                },
                inbound,
            )?,
            Some((number, file_id)) => {
                self.store.release_quarantined(
                    number,
                    file_id,
                    &report,
                    la,
                    &diff,
                    report.processed_at,
                    cold_before,
                )?;
                file_id
            }
        };
        if self.fault == Some(Fault::AbortAfterCommit) {
            std::process::abort();
        }
        self.acknowledge(&report, mailbox, true)?;
        Ok((report, id))
    }

    /// Writes `CPIS_ACK_<stem>.json` (and `.csv` when there are row problems) to the
    /// sender's outbox. A duplicate's ack does not replace one still waiting there.
    pub(crate) fn acknowledge(
        &mut self,
        report: &FileReport,
        mailbox: &MailboxId,
        replace: bool,
    ) -> Result<()> {
        let out = self.layout.outbox(mailbox);
        let json_name = ack_json_name(&report.file);
        if !replace && out.join(&json_name).exists() {
            return Ok(());
        }
        if has_problems(report) {
            self.write_out(&out, &ack_csv_name(&report.file), &ack_csv(report))?;
        }
        // Before the JSON, whose presence says the acknowledgement is written.
        if let Some(la) = upload_sender(report, mailbox) {
            let archived = archive_path(&self.layout.archive(), &report.sha256);
            self.write_out_with(&out, &ack_xml_name(&report.file), |w| {
                cpis_ack::write(report, la, &archived, w)
            })?;
        }
        let mut json = serde_json::to_vec_pretty(report)?;
        json.push(b'\n');
        self.write_out(&out, &json_name, &json)?;
        Ok(())
    }

    /// The write turn of `name` (a mailbox, `notifications` or `report`): see
    /// `store::Turn`.
    pub(crate) fn turn(&mut self, name: &str) -> Result<crate::store::Turn> {
        crate::store::take_turn(
            &mut self.store,
            name,
            &self.layout.write_lock(),
            self.config.lease,
        )
    }
}
