//! The health side's tables: presentations (flagged children only), the notification
//! outbox and its batches, the hash-chained access log and the not-found counts.

use super::db::{args, marks, padded, Arg, Guarded, Param, Sql, KEYS_PER_STATEMENT};
use super::{ts, Store};
use crate::core::attendance::Attendance;
use crate::core::ids::LaCode;
use crate::core::matching::{ended_shown_from, ChildRecord};
use crate::core::nhs::NhsNumber;
use crate::core::plan::PlanType;
use crate::core::report::FileReport;
use crate::core::seen::{Presentation, Seen, PRESENTATIONS_SHOWN};
use anyhow::{anyhow, Result};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub use crate::core::seen::PresentationView;

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
///
/// What the look-ups read is read up front ([`HealthTx::read_ahead`]: a few statements
/// for the whole file), and what they write is kept and written at commit in bulk: the
/// cost of a file follows its rows, not round trips per row.
pub struct HealthTx<'c> {
    tx: Guarded<'c>,
    last_hash: String,
    last_id: i64,
    /// Not-found look-ups per (day, organisation), written at commit.
    not_found: std::collections::HashMap<(String, String), i64>,
    /// When its access-log entries are written (the gateway's clock; not in the hash).
    written_at: String,
    /// The records of every child read ahead (by NHS number; none: no record).
    records: HashMap<i64, Vec<ChildRecord>>,
    /// Their presentations from `seen_since` on (and the last shown before), with the
    /// ones this transaction adds.
    seen: Seen,
    seen_since: Option<DateTime<Utc>>,
    /// Ids for the presentations this transaction may add.
    presentation_ids: std::vec::IntoIter<i64>,
    /// The attendance file registered in this transaction (none for a query).
    file_id: Option<i64>,
    presentations: Vec<(Presentation, String)>,
    notifications: Vec<(u16, i64, PlanType, Option<String>)>,
    log: Vec<LogRow>,
}

/// An access-log entry to write (as stored).
struct LogRow {
    id: i64,
    at: String,
    nhs: i64,
    org: String,
    user: String,
    role: String,
    setting: String,
    silent: bool,
    result: String,
    prev_hash: String,
    hash: String,
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
            records: HashMap::new(),
            seen: Seen::default(),
            seen_since: None,
            presentation_ids: Vec::new().into_iter(),
            file_id: None,
            presentations: Vec::new(),
            notifications: Vec::new(),
            log: Vec::new(),
        })
    }

    /// Every NHS number with a record a look-up could show: open, or ended on or after
    /// `ended_since` (records ended earlier show nothing), to skip look-ups that would find
    /// nothing. Read through the open records and the indexes of end dates (in `records`
    /// and `records_cold`): the years of closed records are not (a record has an end date
    /// exactly when it is closed). A number of a record reopened since it went cold may
    /// be among them: it only costs that child a look-up.
    pub fn known_nhs(
        &mut self,
        ended_since: chrono::NaiveDate,
    ) -> Result<rustc_hash::FxHashSet<i64>> {
        let mut set = rustc_hash::FxHashSet::default();
        let since = ended_since.to_string();
        let cold = if super::records::cold_reaches(self.db(), &since)? {
            " UNION SELECT nhs FROM records_cold WHERE end_date >= ?1"
        } else {
            ""
        };
        self.db().each_row(
            &format!(
                "SELECT nhs FROM records WHERE open = 1
                 UNION SELECT nhs FROM records WHERE end_date >= ?1{cold}"
            ),
            args![since],
            &mut |r| {
                set.insert(r.get(0)?);
                Ok(())
            },
        )?;
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

    /// Puts every pending notification of each LA into a new batch named for it (`.xml`
    /// for the LAs in `cpis`, told in CP-IS's own message; `.csv` for the others); returns
    /// the new batches (id, LA, file name). The name is recorded before any file exists.
    pub fn open_batches(
        &mut self,
        now: DateTime<Utc>,
        cpis: &[crate::core::ids::LaCode],
    ) -> Result<Vec<(i64, u16, String)>> {
        let mut tx = self.write()?;
        let las: Vec<u16> = tx.column(
            "SELECT DISTINCT la_code FROM notifications WHERE batch_id IS NULL ORDER BY la_code",
            args![],
        )?;
        let mut out = Vec::new();
        for la in las {
            let mut at = now;
            let extension = if cpis.iter().any(|c| c.as_u16() == la) {
                "xml"
            } else {
                "csv"
            };
            let name = loop {
                let name = format!(
                    "CPIS_NOTIFY_{la:03}_{}.{extension}",
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
        let walk = self.walk_access_log(ChainPoint::genesis(), i64::MAX)?;
        Ok((walk.entries, walk.broken))
    }

    /// Walks the access log from `from` (an entry already verified, or the genesis) up to
    /// id `last`: the entries walked (all of them), the last one's hash, and the first that
    /// does not match.
    pub(super) fn walk_access_log(&mut self, from: ChainPoint, last: i64) -> Result<ChainWalk> {
        let mut prev = from.hash;
        let mut n = 0;
        let mut broken = None;
        let mut last_id = from.entry_id;
        // Versions only ever go up along the chain: an entry turned back to an older one
        // (to leave a field out of its hash) breaks it.
        let mut newest_version = from.hash_version;
        self.db().each_row(
            "SELECT id, at, nhs, org_ods, user_name, user_role, setting, silent, result, prev_hash,
                    hash, written_at, hash_version
             FROM access_log WHERE id > ?1 AND id <= ?2 ORDER BY id",
            args![from.entry_id, last],
            &mut |r| {
                n += 1;
                let id: i64 = r.get(0)?;
                // A value of the wrong type (tampering) is hashed as its text, never an error.
                let text = |i: usize| r.text(i).unwrap_or_default();
                if broken.is_some() {
                    // Counted to the end, not checked: the chain is broken already.
                    (prev, last_id) = (text(10), id);
                    return Ok(());
                }
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
                last_id = id;
                Ok(())
            },
        )?;
        Ok(ChainWalk {
            entries: n,
            broken,
            end: ChainPoint {
                entry_id: last_id,
                hash: prev,
                hash_version: newest_version,
            },
        })
    }
}

/// A point of the access-log chain: an entry (0 and the genesis hash before the first),
/// its hash and the newest hash version up to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChainPoint {
    pub entry_id: i64,
    pub hash: String,
    pub hash_version: i64,
}

impl ChainPoint {
    pub fn genesis() -> ChainPoint {
        ChainPoint {
            entry_id: 0,
            hash: GENESIS.to_owned(),
            hash_version: 1,
        }
    }
}

/// What a walk of the chain found.
pub(super) struct ChainWalk {
    /// Entries walked.
    pub entries: u64,
    /// The first entry that does not match, if any.
    pub broken: Option<i64>,
    /// Where the walk ended (the last entry read).
    pub end: ChainPoint,
}

impl HealthTx<'_> {
    /// Reads what the look-ups of `attendances` need, in a few statements: every record
    /// of the children they name, and the presentations of those with a record from a
    /// day before the earliest attendance on (with the last shown before that), which is
    /// all a look-up of any of them asks about.
    pub fn read_ahead(&mut self, attendances: &[Attendance]) -> Result<()> {
        let Some(earliest) = attendances.iter().map(|a| a.attended_at).min() else {
            return Ok(());
        };
        if self.seen_since.is_some() {
            return Err(anyhow!("the look-ups of a transaction are read ahead once"));
        }
        let since = earliest - Duration::hours(24);
        let mut children: Vec<i64> = attendances.iter().map(|a| a.nhs.value() as i64).collect();
        children.sort_unstable();
        children.dedup();
        // Records kept cold ended before any look-up made when they went cold could show
        // them; an attendance older than that (the largest age allowed since raised) reads
        // them too.
        let shown_from = ended_shown_from(earliest.date_naive()).to_string();
        let cold = super::records::cold_reaches(&mut *self.tx, &shown_from)?;
        for chunk in children.chunks(KEYS_PER_STATEMENT) {
            self.read_records(chunk, cold.then_some(shown_from.as_str()))?;
        }
        children.retain(|n| self.records.contains_key(n));
        for chunk in children.chunks(KEYS_PER_STATEMENT) {
            self.read_presentations(chunk, &ts(since))?;
        }
        // A presentation at most per attendance of a child with a record.
        let may_add = attendances
            .iter()
            .filter(|a| self.records.contains_key(&(a.nhs.value() as i64)))
            .count();
        self.presentation_ids = self.tx.allocate_ids("presentations", may_add)?.into_iter();
        self.seen_since = Some(since);
        Ok(())
    }

    /// Reads the records of `children`, and with `cold_since` in the same statement their
    /// records kept cold that ended on or after it, each the last time its key ended and
    /// only if the key is not back in `records`.
    fn read_records(&mut self, children: &[i64], cold_since: Option<&str>) -> Result<()> {
        let children = &padded(children)[..];
        let mut params: Vec<&dyn Param> = children.iter().map(|n| n as &dyn Param).collect();
        let list = marks(1, children.len());
        let columns = "r.nhs, r.la_code, r.plan_type, v.start_date, v.end_date, v.edt_phone,
                       v.office_phone, v.local_ref, v.expected_delivery";
        let mut sql = format!(
            "SELECT {columns} FROM records r JOIN record_versions v ON v.id = r.version
              WHERE r.nhs IN ({list})"
        );
        if let Some(since) = &cold_since {
            params.push(since);
            sql.push_str(&format!(
                " UNION ALL
                 SELECT {columns} FROM records_cold r JOIN record_versions v ON v.id = r.version
                  WHERE r.nhs IN ({list}) AND r.end_date >= ?{}
                    AND NOT EXISTS (SELECT 1 FROM records h WHERE h.nhs = r.nhs
                        AND h.la_code = r.la_code AND h.plan_type = r.plan_type)
                    AND NOT EXISTS (SELECT 1 FROM records_cold d WHERE d.nhs = r.nhs
                        AND d.la_code = r.la_code AND d.plan_type = r.plan_type
                        AND d.version > r.version)",
                children.len() + 1
            ));
        }
        let records = &mut self.records;
        self.tx
            .each_row(&format!("{sql} ORDER BY 1, 2, 3"), &params, &mut |r| {
                let la: u16 = r.get(1)?;
                let plan: String = r.get(2)?;
                records.entry(r.get(0)?).or_default().push(ChildRecord {
                    la: LaCode::parse(&format!("{la:03}"))
                        .map_err(|e| anyhow!("bad LA in the store: {e}"))?,
                    plan_type: PlanType::parse(&plan)
                        .ok_or_else(|| anyhow!("bad plan type in the store"))?,
                    fields: super::records::fields(r, 3)?,
                });
                Ok(())
            })
    }

    fn read_presentations(&mut self, children: &[i64], since: &str) -> Result<()> {
        let children = &padded(children)[..];
        let mut params: Vec<&dyn Param> = vec![&since];
        params.extend(children.iter().map(|n| n as &dyn Param));
        let list = marks(2, children.len());
        let seen = &mut self.seen;
        self.tx.each_row(
            &format!(
                "SELECT id, nhs, attended_at, org_ods, org_name, setting, unscheduled, user_name
                 FROM presentations WHERE nhs IN ({list}) AND attended_at >= ?1
                 UNION ALL
                 SELECT id, nhs, attended_at, org_ods, org_name, setting, unscheduled, user_name
                 FROM (SELECT p.*, row_number() OVER (PARTITION BY nhs
                                                     ORDER BY attended_at DESC, id DESC) AS n
                       FROM presentations p
                       WHERE nhs IN ({list}) AND unscheduled = 1 AND attended_at < ?1) older
                 WHERE n <= {PRESENTATIONS_SHOWN}"
            ),
            &params,
            &mut |r| {
                seen.add(Presentation {
                    id: r.get(0)?,
                    nhs: r.get(1)?,
                    attended_at: r.get(2)?,
                    org_ods: r.get(3)?,
                    org_name: r.get(4)?,
                    setting: r.get(5)?,
                    unscheduled: r.get::<i64>(6)? != 0,
                    user_name: r.get(7)?,
                });
                Ok(())
            },
        )
    }

    /// Fails unless `at`'s look-up was read ahead.
    fn read_for(&self, nhs: NhsNumber, at: DateTime<Utc>) -> Result<()> {
        let covered = self
            .seen_since
            .is_some_and(|since| at - Duration::hours(24) >= since);
        if !covered {
            return Err(anyhow!(
                "the look-up of {nhs} at {} was not read ahead",
                ts(at)
            ));
        }
        Ok(())
    }

    /// Every record of a child (all LAs) with its current fields.
    pub fn child_records(&mut self, a: &Attendance) -> Result<&[ChildRecord]> {
        self.read_for(a.nhs, a.attended_at)?;
        Ok(self
            .records
            .get(&(a.nhs.value() as i64))
            .map_or(&[], Vec::as_slice))
    }

    /// The child's last [`PRESENTATIONS_SHOWN`] presentations at unscheduled care up to
    /// the attendance (never one after the moment asked about, even if it was recorded
    /// first), newest first.
    pub fn recent_presentations(&mut self, a: &Attendance) -> Result<Vec<PresentationView>> {
        self.read_for(a.nhs, a.attended_at)?;
        Ok(self.seen.recent(
            a.nhs.value() as i64,
            PRESENTATIONS_SHOWN,
            &ts(a.attended_at),
        ))
    }

    /// Whether the same user at the same organisation saw this child in the 24 hours up to
    /// this attendance (SPEC 4.3: repeat views notify once).
    pub fn seen_within_a_day(&mut self, a: &Attendance) -> Result<bool> {
        self.read_for(a.nhs, a.attended_at)?;
        Ok(self.seen.seen_by(
            a.nhs.value() as i64,
            &a.org_ods,
            &a.user_name,
            &ts(a.attended_at - Duration::hours(24)),
            &ts(a.attended_at),
        ))
    }

    /// Stores a flagged child's attendance as a presentation (of the file registered in
    /// this transaction, if any).
    pub fn add_presentation(&mut self, a: &Attendance) -> Result<i64> {
        self.read_for(a.nhs, a.attended_at)?;
        let id = self
            .presentation_ids
            .next()
            .ok_or_else(|| anyhow!("more presentations than attendances read ahead"))?;
        let p = Presentation {
            id,
            nhs: a.nhs.value() as i64,
            attended_at: ts(a.attended_at),
            org_ods: a.org_ods.clone(),
            org_name: a.org_name.clone(),
            setting: a.setting.as_str().to_owned(),
            unscheduled: a.setting.is_unscheduled(),
            user_name: a.user_name.clone(),
        };
        self.seen.add(p.clone());
        self.presentations.push((p, a.user_role.clone()));
        Ok(id)
    }

    /// Queues a notification to an LA about one of its records, at a presentation this
    /// transaction added (which proves the foreign key PostgreSQL does not check: see
    /// migration 13).
    pub fn queue_notification(
        &mut self,
        la: LaCode,
        presentation: i64,
        plan: PlanType,
        local_ref: Option<&str>,
    ) -> Result<()> {
        // Added in id order: a binary search finds it.
        if self
            .presentations
            .binary_search_by_key(&presentation, |(p, _)| p.id)
            .is_err()
        {
            return Err(anyhow!(
                "a notification at presentation {presentation}, which this transaction did not add"
            ));
        }
        self.notifications.push((
            la.as_u16(),
            presentation,
            plan,
            local_ref.map(str::to_owned),
        ));
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
    ) {
        // The transaction read the newest entry under the write lock: nobody else appends.
        let clean = |s: &str| s.replace('\u{1f}', " ");
        let mut row = LogRow {
            id: self.last_id + 1,
            at: ts(at),
            nhs: nhs.value() as i64,
            org: clean(org),
            user: clean(user),
            role: clean(role),
            setting: clean(setting),
            silent,
            result: clean(result),
            prev_hash: std::mem::take(&mut self.last_hash),
            hash: String::new(),
        };
        let entry = Entry {
            id: row.id,
            at: &row.at,
            nhs: row.nhs,
            org: &row.org,
            user: &row.user,
            role: &row.role,
            setting: &row.setting,
            silent: if silent { "1" } else { "0" },
            result: &row.result,
            written_at: &self.written_at,
        };
        row.hash = entry_hash(&row.prev_hash, &entry, HASH_VERSION).expect("a known version");
        self.last_hash = row.hash.clone();
        self.last_id = row.id;
        self.log.push(row);
    }

    /// Writes what the look-ups kept, each table in one go (presentations first: the
    /// notifications refer to them).
    fn write_kept(&mut self) -> Result<()> {
        let presentations = std::mem::take(&mut self.presentations);
        self.tx.insert_rows(
            "presentations",
            &[
                "id",
                "nhs",
                "attended_at",
                "org_ods",
                "org_name",
                "setting",
                "unscheduled",
                "user_name",
                "user_role",
                "file_id",
            ],
            presentations.iter().map(|(p, role)| {
                vec![
                    Arg::Int(p.id),
                    Arg::Int(p.nhs),
                    Arg::Text(&p.attended_at),
                    Arg::Text(&p.org_ods),
                    Arg::Text(&p.org_name),
                    Arg::Text(&p.setting),
                    Arg::Int(i64::from(p.unscheduled)),
                    Arg::Text(&p.user_name),
                    Arg::Text(role),
                    self.file_id.map_or(Arg::Null, Arg::Int),
                ]
            }),
        )?;
        let notifications = std::mem::take(&mut self.notifications);
        self.tx.insert_rows(
            "notifications",
            &["la_code", "presentation_id", "plan_type", "local_ref"],
            notifications
                .iter()
                .map(|(la, presentation, plan, local_ref)| {
                    vec![
                        Arg::Int((*la).into()),
                        Arg::Int(*presentation),
                        Arg::Text(plan.as_str()),
                        local_ref.as_deref().map_or(Arg::Null, Arg::Text),
                    ]
                }),
        )?;
        let log = std::mem::take(&mut self.log);
        self.tx.insert_rows(
            "access_log",
            &[
                "id",
                "at",
                "nhs",
                "org_ods",
                "user_name",
                "user_role",
                "setting",
                "silent",
                "result",
                "prev_hash",
                "hash",
                "written_at",
                "hash_version",
            ],
            log.iter().map(|e| {
                vec![
                    Arg::Int(e.id),
                    Arg::Text(&e.at),
                    Arg::Int(e.nhs),
                    Arg::Text(&e.org),
                    Arg::Text(&e.user),
                    Arg::Text(&e.role),
                    Arg::Text(&e.setting),
                    Arg::Int(i64::from(e.silent)),
                    Arg::Text(&e.result),
                    Arg::Text(&e.prev_hash),
                    Arg::Text(&e.hash),
                    Arg::Text(&self.written_at),
                    Arg::Int(HASH_VERSION),
                ]
            }),
        )?;
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

    /// Registers the attendance file itself (its report is finished later): the file of
    /// every presentation this transaction adds.
    pub fn register_file(&mut self, report: &FileReport, inbound: Option<&str>) -> Result<i64> {
        if self.file_id.is_some() {
            return Err(anyhow!("one attendance file per transaction"));
        }
        let id = super::files::insert_file(&mut self.tx, report, false, inbound)?;
        self.file_id = Some(id);
        Ok(id)
    }

    /// Stores the file's final report and flag response.
    pub fn finish_file(&mut self, id: i64, report: &FileReport, response: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE files SET outcome = ?2, response_code = ?3, report = ?4, response = ?5, processed_at = ?6 WHERE id = ?1",
            args![id, report.outcome.as_str(), report.response_code, serde_json::to_string(report)?, response, ts(report.processed_at)],
        )?;
        Ok(())
    }

    /// Commits; returns how many rows the look-ups wrote to each table (for
    /// [`Store::wrote`]).
    pub fn commit(mut self) -> Result<[(&'static str, usize); 3]> {
        let written = [
            ("presentations", self.presentations.len()),
            ("notifications", self.notifications.len()),
            ("access_log", self.log.len()),
        ];
        self.write_kept()?;
        for ((day, org), n) in &self.not_found {
            self.tx.execute(
                "INSERT INTO lookup_counts (day, org_ods, not_found) VALUES (?1, ?2, ?3)
                 ON CONFLICT (day, org_ods) DO UPDATE
                 SET not_found = lookup_counts.not_found + excluded.not_found",
                args![day, org, n],
            )?;
        }
        self.tx.commit()?;
        Ok(written)
    }
}
