//! The health side's tables: presentations (flagged children only), the notification
//! outbox and its batches, the hash-chained access log and the not-found counts.

use super::db::{args, Guarded, Sql};
use super::{ts, Store};
use crate::core::attendance::Attendance;
use crate::core::ids::LaCode;
use crate::core::matching::ChildRecord;
use crate::core::nhs::NhsNumber;
use crate::core::plan::PlanType;
use crate::core::report::FileReport;
use anyhow::{anyhow, Result};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A presentation as shown to another health professional: never staff names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresentationView {
    pub attended_at: String,
    pub org_ods: String,
    pub org_name: String,
    pub setting: String,
}

/// One row of a notification file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRow {
    pub nhs: NhsNumber,
    pub local_ref: Option<String>,
    pub plan_type: String,
    pub attended_at: String,
    pub org_ods: String,
    pub org_name: String,
    pub setting: String,
    pub user_name: String,
    pub user_role: String,
}

/// The hash of the access log's first entry's predecessor.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How entries are hashed now: version 2 covers when the entry was written as well.
pub const HASH_VERSION: i64 = 2;

/// An access-log entry as hashed: every field as the store holds it (as text).
pub struct Entry<'a> {
    pub id: i64,
    /// When the look-up says it happened (an attendance's time).
    pub at: &'a str,
    pub nhs: i64,
    pub org: &'a str,
    pub user: &'a str,
    pub role: &'a str,
    pub setting: &'a str,
    /// `0` or `1` as stored: any other value hashes differently, so a change is seen.
    pub silent: &'a str,
    pub result: &'a str,
    /// When the gateway wrote it (by its own clock): hashed from version 2 on.
    pub written_at: &'a str,
}

/// An access-log entry's hash: SHA-256 over the previous hash and a canonical encoding of
/// the entry (its fields joined by the unit separator, which no field may hold). Version 1
/// (entries written before migration 11) did not cover `written_at`; `None`: a version
/// this gateway does not know (never matches).
pub fn entry_hash(prev: &str, e: &Entry<'_>, version: i64) -> Option<String> {
    let (id, nhs) = (e.id.to_string(), e.nhs.to_string());
    let mut fields = vec![
        prev, &id, e.at, &nhs, e.org, e.user, e.role, e.setting, e.silent, e.result,
    ];
    match version {
        1 => {}
        2 => fields.push(e.written_at),
        _ => return None,
    }
    Some(hex::encode(Sha256::digest(
        fields.join("\u{1f}").as_bytes(),
    )))
}

/// The access log's head: entry count and the newest entry's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogHead {
    pub entries: u64,
    pub hash: String,
}

impl std::fmt::Display for LogHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.entries, self.hash)
    }
}

/// Health-side writes of one file (or one query), in one transaction.
pub struct HealthTx<'c> {
    tx: Guarded<'c>,
    last_hash: String,
    last_id: i64,
    /// Not-found look-ups per (day, organisation), written at commit.
    not_found: std::collections::HashMap<(String, String), i64>,
    /// When its access-log entries are written (the gateway's clock; not in the hash).
    written_at: String,
}

impl Store {
    /// Starts the transaction for one attendance file or query, written at `now`.
    pub fn health_tx(&mut self, now: DateTime<Utc>) -> Result<HealthTx<'_>> {
        let mut tx = self.write()?;
        let (last_id, last_hash) = tx
            .row(
                "SELECT id, hash FROM access_log ORDER BY id DESC LIMIT 1",
                args![],
            )?
            .map(|r| Ok::<_, anyhow::Error>((r.get(0)?, r.get(1)?)))
            .transpose()?
            .unwrap_or_else(|| (0, GENESIS.to_owned()));
        Ok(HealthTx {
            tx,
            last_hash,
            last_id,
            not_found: Default::default(),
            written_at: ts(now),
        })
    }

    /// Every NHS number that has a record (open or closed), to skip look-ups that would
    /// find nothing.
    pub fn known_nhs(&mut self) -> Result<rustc_hash::FxHashSet<i64>> {
        let mut set = rustc_hash::FxHashSet::default();
        self.db()
            .each_row("SELECT DISTINCT nhs FROM records", args![], &mut |r| {
                set.insert(r.get(0)?);
                Ok(())
            })?;
        Ok(set)
    }

    /// Notifications queued and not yet written to a file.
    pub fn pending_notifications(&mut self) -> Result<u64> {
        self.db()
            .one(
                "SELECT count(*) FROM notifications WHERE batch_id IS NULL",
                args![],
            )?
            .get(0)
    }

    /// Batches whose file is not known to be written yet: (id, LA, file name).
    pub fn unwritten_batches(&mut self) -> Result<Vec<(i64, u16, String)>> {
        self.db()
            .rows(
                "SELECT id, la_code, file_name FROM notify_batches WHERE written = 0 ORDER BY id",
                args![],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .collect()
    }

    /// Puts every pending notification of each LA into a new batch named for it; returns
    /// the new batches (id, LA, file name). The name is recorded before any file exists.
    pub fn open_batches(&mut self, now: DateTime<Utc>) -> Result<Vec<(i64, u16, String)>> {
        let mut tx = self.write()?;
        let las: Vec<u16> = tx.column(
            "SELECT DISTINCT la_code FROM notifications WHERE batch_id IS NULL ORDER BY la_code",
            args![],
        )?;
        let mut out = Vec::new();
        for la in las {
            let mut at = now;
            let name = loop {
                let name = format!(
                    "CPIS_NOTIFY_{la:03}_{}.csv",
                    crate::core::date::format_compact_utc(at)
                );
                let taken = tx
                    .row(
                        "SELECT 1 FROM notify_batches WHERE file_name = ?1",
                        args![name],
                    )?
                    .is_some();
                if !taken {
                    break name;
                }
                at += Duration::seconds(1);
            };
            let id = tx.insert(
                "INSERT INTO notify_batches (la_code, file_name, created_at) VALUES (?1, ?2, ?3)
                 RETURNING id",
                args![la, name, ts(now)],
            )?;
            tx.execute(
                "UPDATE notifications SET batch_id = ?1 WHERE la_code = ?2 AND batch_id IS NULL",
                args![id, la],
            )?;
            out.push((id, la, name));
        }
        tx.commit()?;
        Ok(out)
    }

    /// The rows of a batch, in the order they were queued.
    pub fn batch_rows(&mut self, batch: i64) -> Result<Vec<NotifyRow>> {
        let rows = self.db().rows(
            "SELECT p.nhs, n.local_ref, n.plan_type, p.attended_at, p.org_ods, p.org_name, p.setting,
                    p.user_name, p.user_role
             FROM notifications n JOIN presentations p ON p.id = n.presentation_id
             WHERE n.batch_id = ?1 ORDER BY n.id",
            args![batch],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let nhs: i64 = r.get(0)?;
            out.push(NotifyRow {
                nhs: u64::try_from(nhs)
                    .ok()
                    .and_then(NhsNumber::from_value)
                    .ok_or_else(|| anyhow!("bad NHS number in the store"))?,
                local_ref: r.get(1)?,
                plan_type: r.get(2)?,
                attended_at: r.get(3)?,
                org_ods: r.get(4)?,
                org_name: r.get(5)?,
                setting: r.get(6)?,
                user_name: r.get(7)?,
                user_role: r.get(8)?,
            });
        }
        Ok(out)
    }

    pub fn mark_batch_written(&mut self, batch: i64) -> Result<()> {
        self.db().execute(
            "UPDATE notify_batches SET written = 1 WHERE id = ?1",
            args![batch],
        )?;
        Ok(())
    }

    /// The access log's head: how many entries it has and the newest one's hash (the
    /// genesis hash when empty). Written down elsewhere (the nightly report, a ticket), it
    /// lets `audit verify --expect-head` tell a log that was cut or rewritten.
    pub fn access_log_head(&mut self) -> Result<LogHead> {
        let r = self.db().one(
            "SELECT (SELECT count(*) FROM access_log),
                    (SELECT hash FROM access_log ORDER BY id DESC LIMIT 1)",
            args![],
        )?;
        Ok(LogHead {
            entries: r.get(0)?,
            hash: r
                .get::<Option<String>>(1)?
                .unwrap_or_else(|| GENESIS.to_owned()),
        })
    }

    /// The hash of the access log's `n`-th entry (1 = first), if it has that many.
    pub fn access_log_hash_at(&mut self, n: u64) -> Result<Option<String>> {
        if n == 0 {
            return Ok(Some(GENESIS.to_owned()));
        }
        self.db().value(
            "SELECT hash FROM access_log ORDER BY id LIMIT 1 OFFSET ?1",
            args![(n - 1) as i64],
        )
    }

    /// Walks the access log; the id of the first entry whose hash or link does not match.
    pub fn verify_access_log(&mut self) -> Result<(u64, Option<i64>)> {
        self.verify_access_log_upto(i64::MAX)
    }

    /// [`Store::verify_access_log`] over the entries up to id `last` only.
    pub fn verify_access_log_upto(&mut self, last: i64) -> Result<(u64, Option<i64>)> {
        let mut prev = GENESIS.to_owned();
        let mut n = 0;
        let mut broken = None;
        // Versions only ever go up along the chain: an entry turned back to an older one
        // (to leave a field out of its hash) breaks it.
        let mut newest_version = 1;
        self.db().each_row(
            "SELECT id, at, nhs, org_ods, user_name, user_role, setting, silent, result, prev_hash,
                    hash, written_at, hash_version
             FROM access_log WHERE id <= ?1 ORDER BY id",
            args![last],
            &mut |r| {
                if broken.is_some() {
                    return Ok(());
                }
                n += 1;
                let id: i64 = r.get(0)?;
                // A value of the wrong type (tampering) is hashed as its text, never an error.
                let text = |i: usize| r.text(i).unwrap_or_default();
                let (at, org, user, role) = (text(1), text(3), text(4), text(5));
                let (setting, silent, result, written_at) = (text(6), text(7), text(8), text(11));
                let entry = Entry {
                    id,
                    at: &at,
                    nhs: r.get::<i64>(2).unwrap_or(-1),
                    org: &org,
                    user: &user,
                    role: &role,
                    setting: &setting,
                    silent: &silent,
                    result: &result,
                    written_at: &written_at,
                };
                let version = r.get::<i64>(12).unwrap_or(-1);
                let expected = entry_hash(&prev, &entry, version);
                let stored = text(10);
                // No field may hold the separator (it is taken out when an entry is written):
                // one that does could move text from one field to the next unseen.
                let smuggled = [
                    &at,
                    &org,
                    &user,
                    &role,
                    &setting,
                    &silent,
                    &result,
                    &written_at,
                ]
                .iter()
                .any(|f| f.contains('\u{1f}'));
                if text(9) != prev
                    || Some(&stored) != expected.as_ref()
                    || smuggled
                    || version < newest_version
                {
                    broken = Some(id);
                }
                newest_version = newest_version.max(version);
                prev = stored;
                Ok(())
            },
        )?;
        Ok((n, broken))
    }
}

impl HealthTx<'_> {
    /// Every record of a child (all LAs) with its current fields.
    pub fn child_records(&mut self, nhs: NhsNumber) -> Result<Vec<ChildRecord>> {
        let mut out = Vec::new();
        self.tx.each_row(
            "SELECT r.la_code, r.plan_type, v.start_date, v.end_date, v.edt_phone, v.office_phone,
                    v.local_ref, v.expected_delivery
             FROM records r JOIN record_versions v ON v.id = r.version WHERE r.nhs = ?1",
            args![nhs.value() as i64],
            &mut |r| {
                let la: u16 = r.get(0)?;
                let plan: String = r.get(1)?;
                out.push(ChildRecord {
                    la: LaCode::parse(&format!("{la:03}"))
                        .map_err(|e| anyhow!("bad LA in the store: {e}"))?,
                    plan_type: PlanType::parse(&plan)
                        .ok_or_else(|| anyhow!("bad plan type in the store"))?,
                    fields: super::records::fields(r, 2)?,
                });
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The child's last `limit` presentations at unscheduled care up to `until` (never one
    /// after the moment asked about, even if it was recorded first), newest first.
    pub fn recent_presentations(
        &mut self,
        nhs: NhsNumber,
        limit: usize,
        until: DateTime<Utc>,
    ) -> Result<Vec<PresentationView>> {
        self.tx
            .rows(
                "SELECT attended_at, org_ods, org_name, setting FROM presentations
                 WHERE nhs = ?1 AND unscheduled = 1 AND attended_at <= ?3
                 ORDER BY attended_at DESC, id DESC LIMIT ?2",
                args![nhs.value() as i64, limit as i64, ts(until)],
            )?
            .iter()
            .map(|r| {
                Ok(PresentationView {
                    attended_at: r.get(0)?,
                    org_ods: r.get(1)?,
                    org_name: r.get(2)?,
                    setting: r.get(3)?,
                })
            })
            .collect()
    }

    /// Whether the same user at the same organisation saw this child in the 24 hours up to
    /// this attendance (SPEC 4.3: repeat views notify once).
    pub fn seen_within_a_day(&mut self, a: &Attendance) -> Result<bool> {
        let since = ts(a.attended_at - Duration::hours(24));
        Ok(self
            .tx
            .row(
                "SELECT 1 FROM presentations WHERE nhs = ?1 AND org_ods = ?2
                    AND user_name = ?3 AND attended_at >= ?4 AND attended_at <= ?5 LIMIT 1",
                args![
                    a.nhs.value() as i64,
                    a.org_ods,
                    a.user_name,
                    since,
                    ts(a.attended_at)
                ],
            )?
            .is_some())
    }

    /// Stores a flagged child's attendance as a presentation.
    pub fn add_presentation(&mut self, a: &Attendance, file_id: Option<i64>) -> Result<i64> {
        self.tx.insert(
            "INSERT INTO presentations (nhs, attended_at, org_ods, org_name, setting, unscheduled,
                user_name, user_role, file_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             RETURNING id",
            args![
                a.nhs.value() as i64,
                ts(a.attended_at),
                a.org_ods,
                a.org_name,
                a.setting.as_str(),
                a.setting.is_unscheduled(),
                a.user_name,
                a.user_role,
                file_id
            ],
        )
    }

    /// Queues a notification to an LA about one of its records.
    pub fn queue_notification(
        &mut self,
        la: LaCode,
        presentation: i64,
        plan: PlanType,
        local_ref: Option<&str>,
    ) -> Result<()> {
        self.tx.execute(
            "INSERT INTO notifications (la_code, presentation_id, plan_type, local_ref) VALUES (?1, ?2, ?3, ?4)",
            args![la.as_u16(), presentation, plan.as_str(), local_ref],
        )?;
        Ok(())
    }

    /// Appends an access-log entry, chained to the previous one.
    #[allow(clippy::too_many_arguments)]
    pub fn log_access(
        &mut self,
        at: DateTime<Utc>,
        nhs: NhsNumber,
        org: &str,
        user: &str,
        role: &str,
        setting: &str,
        silent: bool,
        result: &str,
    ) -> Result<()> {
        let next_id: i64 = self
            .tx
            .one("SELECT coalesce(max(id), 0) + 1 FROM access_log", args![])?
            .get(0)?;
        let at = ts(at);
        let clean = |s: &str| s.replace('\u{1f}', " ");
        let (org, user, role, setting, result) = (
            clean(org),
            clean(user),
            clean(role),
            clean(setting),
            clean(result),
        );
        let nhs = nhs.value() as i64;
        let entry = Entry {
            id: next_id,
            at: &at,
            nhs,
            org: &org,
            user: &user,
            role: &role,
            setting: &setting,
            silent: if silent { "1" } else { "0" },
            result: &result,
            written_at: &self.written_at,
        };
        let hash = entry_hash(&self.last_hash, &entry, HASH_VERSION).expect("a known version");
        self.tx.execute(
            "INSERT INTO access_log (id, at, nhs, org_ods, user_name, user_role, setting, silent,
                result, prev_hash, hash, written_at, hash_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            args![
                next_id,
                at,
                nhs,
                org,
                user,
                role,
                setting,
                silent,
                result,
                self.last_hash,
                hash,
                self.written_at,
                HASH_VERSION
            ],
        )?;
        self.last_hash = hash;
        self.last_id = next_id;
        Ok(())
    }

    /// Counts a look-up that found nothing (no personal data kept).
    pub fn count_not_found(&mut self, at: DateTime<Utc>, org: &str) {
        self.count_not_found_on(at.date_naive(), org);
    }

    /// Counts a look-up on `day` that found nothing.
    pub fn count_not_found_on(&mut self, day: chrono::NaiveDate, org: &str) {
        *self
            .not_found
            .entry((day.to_string(), org.to_owned()))
            .or_default() += 1;
    }

    /// Registers the attendance file itself (its report is finished later).
    pub fn register_file(&mut self, report: &FileReport, inbound: Option<&str>) -> Result<i64> {
        super::files::insert_file(&mut self.tx, report, false, inbound)
    }

    /// Stores the file's final report and flag response.
    pub fn finish_file(&mut self, id: i64, report: &FileReport, response: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE files SET outcome = ?2, response_code = ?3, report = ?4, response = ?5, processed_at = ?6 WHERE id = ?1",
            args![id, report.outcome.as_str(), report.response_code, serde_json::to_string(report)?, response, ts(report.processed_at)],
        )?;
        Ok(())
    }

    pub fn commit(mut self) -> Result<()> {
        for ((day, org), n) in &self.not_found {
            self.tx.execute(
                "INSERT INTO lookup_counts (day, org_ods, not_found) VALUES (?1, ?2, ?3)
                 ON CONFLICT (day, org_ods) DO UPDATE
                 SET not_found = lookup_counts.not_found + excluded.not_found",
                args![day, org, n],
            )?;
        }
        self.tx.commit()
    }
}
