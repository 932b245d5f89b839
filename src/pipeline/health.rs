//! The health side (SPEC 4): attendance files, `query`, the notification outbox.
//!
//! For each attendance the child's records are matched at `attended_at` (open records
//! flag; records ended within 12 months are shown, marked ended, and notify nobody). Only a
//! flagged child's attendance is stored (a presentation) and logged in the access log;
//! anything else leaves only a count. Unscheduled settings queue a notification to every LA
//! with an open record, unless the same user at the same organisation saw the child in the
//! previous 24 hours; scheduled settings are silent reads. Notifications are written per LA
//! in batches whose file name is recorded first, so each is written exactly once.

use crate::core::access_notification::{self, Access, Notification};
use crate::core::attendance::Attendance;
use crate::core::ids::{LaCode, MailboxId, OdsCode};
use crate::core::matching::{flags_at, las_to_notify, Flag, Status};
use crate::core::outbound::{csv_cell, stem};
use crate::core::report::{AttendanceCounts, FileReport, Outcome};
use crate::core::validate::RowProblem;
use crate::pipeline::ingest::{rewrite_unless_there, Gateway, Intake, Rules};
use crate::store::{HealthTx, PresentationView};
use crate::sys::fsutil::{inbound_identity, write_atomic, Opened};
use anyhow::{anyhow, Result};
use serde::Serialize;
use std::path::Path;

/// What one look-up found.
#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    pub nhs_number: String,
    pub flagged: bool,
    pub flags: Vec<Flag>,
    pub presentations: Vec<PresentationView>,
    pub notified: Vec<LaCode>,
    #[serde(skip)]
    pub silent: bool,
}

/// A flagged row of a flag response.
#[derive(Debug, Serialize)]
struct FlaggedRow<'a> {
    row: u64,
    attended_at: String,
    setting: &'static str,
    #[serde(flatten)]
    lookup: &'a Lookup,
}

/// `CPIS_FLAGS_<stem>.json`.
#[derive(Debug, Serialize)]
struct FlagResponse<'a> {
    file: &'a str,
    sha256: &'a str,
    processed_at: String,
    rows: u64,
    flagged: Vec<FlaggedRow<'a>>,
    /// Rows of children with no plan open at the attendance but one ended within the
    /// year: shown, marked ended, notifying nobody.
    ended_only: Vec<FlaggedRow<'a>>,
    not_flagged_rows: Vec<u64>,
    rejected: &'a [RowProblem],
    /// Rejected rows' problems beyond the first 10,000, counted by code (as the ack's).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rejected_unlisted: &'a [crate::core::report::Unlisted],
}

fn flagged_row<'a>((a, lookup): &'a (&Attendance, Lookup)) -> FlaggedRow<'a> {
    FlaggedRow {
        row: a.row,
        attended_at: crate::store::ts(a.attended_at),
        setting: a.setting.as_str(),
        lookup,
    }
}

/// Matches one attendance and records what must be recorded (read ahead by
/// [`HealthTx::read_ahead`]).
pub fn look_up(tx: &mut HealthTx<'_>, a: &Attendance) -> Result<Lookup> {
    look_up_as(tx, a, Recorded::AsSetting)
}

/// What a look-up leaves behind besides its access-log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// As an attendance file or `query`: a flagged child's presentation is stored, and at
    /// unscheduled care its LAs are notified.
    AsSetting,
    /// A silent read (the API's `IsUnscheduledAccessEvent: false`, its AuditEvent
    /// search): nothing stored, nobody notified; who looked is logged all the same.
    SilentRead,
}

fn look_up_as(tx: &mut HealthTx<'_>, a: &Attendance, recorded: Recorded) -> Result<Lookup> {
    let records = tx.child_records(a)?.to_vec();
    let flags = flags_at(&records, a.attended_at);
    let silent = recorded == Recorded::SilentRead || !a.setting.is_unscheduled();
    if flags.is_empty() {
        tx.count_not_found(a.attended_at, &a.org_ods);
        return Ok(Lookup {
            nhs_number: a.nhs.full(),
            flagged: false,
            flags,
            presentations: Vec::new(),
            notified: Vec::new(),
            silent,
        });
    }
    // Flagged only if a record is open at the attendance (SPEC 4.1). Records ended within
    // the year are shown and the look-up is logged (a record was found), but nothing of the
    // attendance is kept and nobody is notified.
    let flagged = flags.iter().any(|f| f.status == Status::Open);
    let mut presentations = Vec::new();
    let mut notified = Vec::new();
    if flagged {
        presentations = tx.recent_presentations(a)?;
        if recorded == Recorded::AsSetting {
            let repeat = tx.seen_within_a_day(a)?;
            let presentation = tx.add_presentation(a)?;
            if !silent && !repeat {
                queue_notifications(tx, a, &records, &flags, presentation, &mut notified)?;
            }
        }
    }
    let result: Vec<String> = flags
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}",
                f.la_code,
                f.plan_type,
                if f.status == Status::Open {
                    "open"
                } else {
                    "ended"
                }
            )
        })
        .collect();
    tx.log_access(
        a.attended_at,
        a.nhs,
        &a.org_ods,
        &a.user_name,
        &a.user_role,
        a.setting.as_str(),
        silent,
        &result.join(";"),
    );
    Ok(Lookup {
        nhs_number: a.nhs.full(),
        flagged,
        flags,
        presentations,
        notified,
        silent,
    })
}

/// Queues a notification to every LA with a record open at the attendance.
fn queue_notifications(
    tx: &mut HealthTx<'_>,
    a: &Attendance,
    records: &[crate::core::matching::ChildRecord],
    flags: &[Flag],
    presentation: i64,
    notified: &mut Vec<LaCode>,
) -> Result<()> {
    for la in las_to_notify(flags) {
        for r in records.iter().filter(|r| r.la == la) {
            if crate::core::matching::status_on(&r.fields, a.attended_at.date_naive())
                == Some(Status::Open)
            {
                tx.queue_notification(
                    la,
                    presentation,
                    r.plan_type,
                    r.fields.local_ref.as_deref(),
                )?;
            }
        }
        notified.push(la);
    }
    Ok(())
}

impl Gateway<'_> {
    /// Processes an attendance file from a health organisation's mailbox.
    pub fn ingest_attendance(
        &mut self,
        opened: Opened,
        path: &Path,
        name: &str,
        mailbox: &MailboxId,
        rules: &Rules,
    ) -> Result<FileReport> {
        let _turn = self.turn(&mailbox.to_string())?;
        // In a file of any size, most children have no record: know which do up front.
        let big = opened.meta.len() > 64 * 1024;
        let identity = opened.meta.clone();
        let known = if big {
            Some(self.store.known_nhs(crate::core::matching::shown_since(
                self.clock.now(),
                self.config.attendance_max_age_days,
            ))?)
        } else {
            None
        };
        let has_record = |n: crate::core::nhs::NhsNumber| {
            known
                .as_ref()
                .is_none_or(|k| k.contains(&(n.value() as i64)))
        };
        let checked = crate::pipeline::check::check_attendance(
            opened.file,
            name,
            Some(mailbox),
            self.config,
            self.clock,
            rules.refusal.as_ref(),
            Some(&has_record),
        )?;
        let (mut report, valid, unknown) = (checked.report, checked.valid, checked.unknown);
        // From a mailbox, the entry's identity is committed with the outcome (see ingest).
        let inbound = (rules.intake == Intake::Move).then(|| inbound_identity(&identity));
        if let Some(entry) = &inbound {
            if let Some(id) = self.finish_taken_attendance(&report, mailbox, entry)? {
                self.store.mark_settled(id)?;
                self.settle_attendance(path, &identity, rules)?;
                return Ok(report);
            }
        }
        let inbound = inbound.as_deref();
        if report.file_errors.is_empty() && !rules.allow_repeat {
            if let Some(previous) =
                self.store
                    .find_processed(&report.sha256, &mailbox.to_string(), &report.file)?
            {
                report.outcome = Outcome::Duplicate;
                report.response_code = previous.response_code();
                report.duplicate_of = Some(previous);
                report.processed_at = self.clock.now();
                self.store.register(&report, inbound)?;
                self.acknowledge(&report, mailbox, false)?;
                self.settle_attendance(path, &identity, rules)?;
                return Ok(report);
            }
        }
        let mut counts = AttendanceCounts::default();
        let mut tx = self.store.health_tx(self.clock.now())?;
        let id = tx.register_file(&report, inbound)?;
        let mut lookups = Vec::new();
        let mut not_flagged_rows = Vec::new();
        if report.file_errors.is_empty() {
            for (row, day) in &unknown {
                tx.count_not_found_on(*day, &report.sender.clone().unwrap_or_default());
                not_flagged_rows.push(*row);
                counts.not_flagged += 1;
            }
            tx.read_ahead(&valid)?;
            for a in &valid {
                let found = look_up(&mut tx, a)?;
                if !found.flagged {
                    counts.not_flagged += 1;
                } else {
                    counts.flagged += 1;
                    counts.notifications_queued += found.notified.len() as u64;
                    counts.silent_reads += u64::from(found.silent);
                }
                lookups.push((a, found));
            }
            report.attendance = Some(counts);
        }
        report.processed_at = self.clock.now();
        let response = FlagResponse {
            file: &report.file,
            sha256: &report.sha256,
            processed_at: crate::store::ts(report.processed_at),
            rows: report.rows,
            flagged: lookups
                .iter()
                .filter(|(_, l)| l.flagged)
                .map(flagged_row)
                .collect(),
            ended_only: lookups
                .iter()
                .filter(|(_, l)| !l.flagged && !l.flags.is_empty())
                .map(flagged_row)
                .collect(),
            not_flagged_rows: {
                not_flagged_rows.extend(
                    lookups
                        .iter()
                        .filter(|(_, l)| !l.flagged)
                        .map(|(a, _)| a.row),
                );
                not_flagged_rows.sort_unstable();
                not_flagged_rows
            },
            rejected: &report.row_errors,
            rejected_unlisted: &report.row_errors_unlisted,
        };
        let mut response_json = serde_json::to_vec_pretty(&response)?;
        response_json.push(b'\n');
        let response_text = String::from_utf8_lossy(&response_json).into_owned();
        tx.finish_file(id, &report, &response_text)?;
        let written = tx.commit()?;
        self.store.wrote(&written);
        if self.fault == Some(crate::sys::fault::Fault::AbortAfterCommit) {
            std::process::abort();
        }
        if report.file_errors.is_empty() {
            let out = self.layout.outbox(mailbox);
            self.write_out(&out, &flags_name(&report.file), &response_json)?;
        }
        self.acknowledge(&report, mailbox, true)?;
        self.settle_attendance(path, &identity, rules)?;
        Ok(report)
    }

    /// An attendance file committed before a stop but still in `in/`: send what is missing.
    fn finish_taken_attendance(
        &mut self,
        report: &FileReport,
        mailbox: &MailboxId,
        entry: &str,
    ) -> Result<Option<i64>> {
        let Some((id, stored)) =
            self.store
                .find_taken(&report.sha256, &mailbox.to_string(), &report.file, entry)?
        else {
            return Ok(None);
        };
        let out = self.layout.outbox(mailbox);
        if let Some(response) = self.store.file_response(id)? {
            rewrite_unless_there(&out, &flags_name(&report.file), response.as_bytes())?;
        }
        self.rewrite_ack(report, mailbox, &serde_json::from_str(&stored)?)?;
        Ok(Some(id))
    }

    /// Attendance files are never archived (they name children who may not be flagged):
    /// from a mailbox, the file is deleted once its outcome is committed (and durable: see
    /// `settle`).
    fn settle_attendance(
        &mut self,
        path: &Path,
        identity: &std::fs::Metadata,
        rules: &Rules,
    ) -> Result<()> {
        if rules.intake == Intake::Move {
            self.leave_inbox(path, identity, None)?;
        }
        Ok(())
    }

    /// `query`: one look-up as a health professional would make at registration.
    pub fn query(&mut self, a: &Attendance) -> Result<Lookup> {
        self.query_as(a, Recorded::AsSetting)
    }

    /// One look-up, leaving behind what `recorded` says.
    pub fn query_as(&mut self, a: &Attendance, recorded: Recorded) -> Result<Lookup> {
        let mut tx = self.store.health_tx(self.clock.now())?;
        tx.read_ahead(std::slice::from_ref(a))?;
        let found = look_up_as(&mut tx, a, recorded)?;
        let written = tx.commit()?;
        self.store.wrote(&written);
        Ok(found)
    }

    /// Writes queued notifications, one file per LA (and finishes any batch a stop left
    /// unwritten). Returns how many files were written.
    pub fn flush_notifications(&mut self) -> Result<usize> {
        let _turn = self.turn("notifications")?;
        let mut batches = self.store.unwritten_batches()?;
        batches.extend(
            self.store
                .open_batches(self.clock.now(), &self.config.notify_cpis)?,
        );
        let mut written = 0;
        let mut failures = Vec::new();
        for (id, la, name) in batches {
            // One LA's outbox failing (full disk, wrong permissions) must not hold the others.
            match self.write_batch(id, la, &name) {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => failures.push(format!("{name}: {e:#}")),
            }
        }
        if !failures.is_empty() {
            return Err(anyhow!(
                "{} notification file(s) not written, kept queued: {}",
                failures.len(),
                failures.join("; ")
            ));
        }
        Ok(written)
    }

    /// Writes one batch's file unless it is already delivered, then marks it written.
    fn write_batch(&mut self, id: i64, la: u16, name: &str) -> Result<bool> {
        let la =
            LaCode::parse(&format!("{la:03}")).map_err(|e| anyhow!("bad LA in the store: {e}"))?;
        let out = self.layout.outbox(&MailboxId::La(la));
        // Already delivered (written, perhaps taken away by a transport): never twice.
        let write = !out.join(name).exists() && !out.join("sent").join(name).exists();
        if write {
            let rows = self.store.batch_rows(id)?;
            let bytes = if name.ends_with(".xml") {
                self.access_notification(la, &rows)?
            } else {
                notification_csv(&rows)
            };
            write_atomic(&out, name, &bytes)?;
            if self.fault == Some(crate::sys::fault::Fault::AbortAfterNotifyWrite) {
                std::process::abort();
            }
            tracing::info!(la = %la, file = %name, notifications = rows.len(), "notifications written");
        }
        self.store.mark_batch_written(id)?;
        Ok(write)
    }

    /// CP-IS's `CP-ISAccessToServiceNotification` of a batch for `la`.
    fn access_notification(
        &mut self,
        la: LaCode,
        rows: &[crate::store::NotifyRow],
    ) -> Result<Vec<u8>> {
        let asid = self.config.asid.as_deref().ok_or_else(|| {
            anyhow!("gateway.asid is not configured: CP-IS's notification cannot be written")
        })?;
        let upload_ref = self
            .store
            .newest_applied_file(la)?
            .unwrap_or_else(|| "none".to_owned());
        let mut numbers = Vec::with_capacity(rows.len());
        for r in rows {
            let at = chrono::DateTime::parse_from_rfc3339(&r.attended_at)
                .map_err(|e| anyhow!("bad attendance time in the store: {e}"))?;
            numbers.push((r.nhs.full(), at.with_timezone(&chrono::Utc)));
        }
        let accesses: Vec<Access<'_>> = rows
            .iter()
            .zip(&numbers)
            .map(|(r, (nhs, at))| Access {
                nhs_number: nhs,
                plan_type: &r.plan_type,
                local_ref: r.local_ref.as_deref(),
                attended_at: *at,
                org_ods: &r.org_ods,
                org_name: &r.org_name,
                user_name: &r.user_name,
                user_role: &r.user_role,
            })
            .collect();
        let head = Notification {
            created: self.clock.now(),
            la_code: &la.to_string(),
            la_name: la.name(),
            asid,
            upload_ref: &upload_ref,
        };
        let mut new_id = || uuid::Uuid::new_v4().to_string().to_uppercase();
        Ok(access_notification::document(&head, &accesses, &mut new_id).into_bytes())
    }
}

/// `CPIS_FLAGS_<stem>.json`
pub fn flags_name(file: &str) -> String {
    format!("CPIS_FLAGS_{}.json", stem(file))
}

/// The notification CSV (SPEC 4.3), every cell escaped against formula injection.
pub fn notification_csv(rows: &[crate::store::NotifyRow]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "nhs_number",
        "local_ref",
        "plan_type",
        "attended_at",
        "org_ods",
        "org_name",
        "setting",
        "user_name",
        "user_role",
    ]);
    for r in rows {
        let nhs = r.nhs.full();
        let _ = w.write_record([
            nhs.as_str(),
            &csv_cell(r.local_ref.as_deref().unwrap_or("")),
            &csv_cell(&r.plan_type),
            &csv_cell(&r.attended_at),
            &csv_cell(&r.org_ods),
            &csv_cell(&r.org_name),
            &csv_cell(&r.setting),
            &csv_cell(&r.user_name),
            &csv_cell(&r.user_role),
        ]);
    }
    w.into_inner().unwrap_or_default()
}

/// Checks the organisation of a query: a configured health organisation.
pub fn query_org(gateway: &Gateway<'_>, ods: &str) -> Result<OdsCode> {
    let code = OdsCode::parse(ods).ok_or_else(|| anyhow!("--org {ods:?} is not an ODS code"))?;
    if !gateway.config.is_party(&MailboxId::Health(code.clone())) {
        return Err(anyhow!("--org {ods} is not a configured health organisation ([[health_org]] in the configuration)"));
    }
    Ok(code)
}
