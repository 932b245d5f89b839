//! The figures behind the morning report, as they stood at the end of a day: the record
//! history answers "what was open then" (a version is current from its `known_from` until
//! its successor's), the file registry "what arrived during the day", so that a report for
//! a past day, rebuilt later, says what the report written that night said.

use super::db::{args, Db, Param, Row, Sql};
use super::health::ChainPoint;
use super::{parse_ts, ts, Store};
use crate::core::codes::Code;
use crate::core::dq::{
    Day, HealthRejected, LaDay, LaFigures, LatestFile, LogCheck, Outcomes, QuarantinedFile,
};
use crate::core::dq_files::DqItem;
use crate::core::ids::LaCode;
use crate::core::nhs::NhsNumber;
use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

fn full(nhs: i64) -> String {
    u64::try_from(nhs)
        .ok()
        .and_then(NhsNumber::from_value)
        .map(NhsNumber::full)
        .unwrap_or_default()
}

/// One local day as UTC instants: (`from`, `to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayWindow {
    pub date: NaiveDate,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One of an LA's recent files, for its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLine {
    pub name: String,
    pub processed_at: DateTime<Utc>,
    pub outcome: String,
    pub rows: u64,
    pub invalid_rows: u64,
    /// File error codes, then row error codes with counts.
    pub codes: Vec<(String, u64)>,
}

/// A nightly report that could not be written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportFailure {
    pub date: String,
    pub failed_at: String,
    pub error: String,
}

/// The 30-day trends: the nation's days, and each LA's.
#[derive(Debug, Clone, Default)]
pub struct Trends {
    pub national: Vec<Day>,
    pub per_la: BTreeMap<LaCode, Vec<LaDay>>,
}

/// The records open at `?1`, as (`la_code`, `nhs`, `plan_type`, `version`): today's open
/// records that no version known since `?1` replaced, and, for each record a later version
/// replaced, the version current at `?1` (the predecessor of the first later one) if it was
/// open. It reads the open records and the versions known since `?1` (by index): the work
/// done since, never the years of closed records and their history.
const OPEN_AT: &str = "recent AS (SELECT id, previous FROM record_versions WHERE known_from > ?1),
    open_at AS (
      SELECT c.la_code, c.nhs, c.plan_type, c.version FROM records c
       WHERE c.open = 1 AND c.version NOT IN (SELECT id FROM recent)
      UNION ALL
      SELECT p.la_code, p.nhs, p.plan_type, p.id FROM recent r JOIN record_versions p ON p.id = r.previous
       WHERE p.known_from <= ?1 AND p.end_date IS NULL)";

/// A file's codes: its file errors, then its row error codes by count (most first).
const CODES: &str = "SELECT code, n FROM (
      SELECT json_extract(e.value, '$.code') AS code, 1000000000 AS n, 0 AS k
        FROM files f, json_each(f.report, '$.file_errors') e WHERE f.id = ?1
      UNION ALL
      SELECT code, sum(n), 1 FROM (
        SELECT json_extract(e.value, '$.code') AS code, 1 AS n
          FROM files f, json_each(f.report, '$.row_errors') e
          WHERE f.id = ?1 AND json_extract(e.value, '$.severity') = 'error'
        UNION ALL
        SELECT json_extract(e.value, '$.code'), CAST(json_extract(e.value, '$.count') AS INTEGER)
          FROM files f, json_each(f.report, '$.row_errors_unlisted') e
          WHERE f.id = ?1 AND json_extract(e.value, '$.severity') = 'error') AS r
      GROUP BY 1) AS c
    ORDER BY k, n DESC, code LIMIT 4";

/// The LA a registered file (`f`) counts for: the LA whose mailbox it arrived in, whatever
/// its name claims (a file another LA's name refused as `NOT_AUTHORISED` is the sender's
/// mistake, and a file refused unread has no name to go by). A health organisation's
/// mailbox counts for no LA. Only text checked to be three digits is cast.
const FILE_LA: &str = "CAST(CASE WHEN length(f.mailbox) = 5
      AND substr(f.mailbox, 1, 2) = 'LA' AND substr(f.mailbox, 3, 1) BETWEEN '0' AND '9'
      AND substr(f.mailbox, 4, 1) BETWEEN '0' AND '9' AND substr(f.mailbox, 5, 1) BETWEEN '0' AND '9'
      THEN substr(f.mailbox, 3) END AS INTEGER)";

fn la_of(code: i64) -> Option<LaCode> {
    LaCode::parse(&format!("{code:03}")).ok()
}

impl Store {
    /// When the previous report was written.
    pub fn last_report_at(&mut self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self.db().value(
            "SELECT generated_at FROM reports ORDER BY id DESC LIMIT 1",
            args![],
        )?;
        t.as_deref().map(parse_ts).transpose()
    }

    pub fn record_report(
        &mut self,
        date: NaiveDate,
        at: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO reports (report_date, generated_at, covers_from) VALUES (?1, ?2, ?3)",
            args![date.to_string(), ts(at), since.map(ts)],
        )?;
        Ok(())
    }

    /// Records that the report of `date` could not be written, and why.
    pub fn report_failed(&mut self, date: NaiveDate, at: DateTime<Utc>, error: &str) -> Result<()> {
        self.db().execute(
            "INSERT INTO report_failures (report_date, failed_at, error) VALUES (?1, ?2, ?3)
             ON CONFLICT (report_date) DO UPDATE SET failed_at = excluded.failed_at, error = excluded.error",
            args![date.to_string(), ts(at), error],
        )?;
        Ok(())
    }

    /// The reports that failed and have not been written since: (date, when, why), oldest
    /// first.
    pub fn failed_reports(&mut self) -> Result<Vec<ReportFailure>> {
        self.db()
            .rows(
                "SELECT report_date, failed_at, error FROM report_failures
                 WHERE report_date NOT IN (SELECT report_date FROM reports) ORDER BY report_date",
                args![],
            )?
            .iter()
            .map(|r| {
                Ok(ReportFailure {
                    date: r.get(0)?,
                    failed_at: r.get(1)?,
                    error: r.get(2)?,
                })
            })
            .collect()
    }

    /// The report dates written (not previews) from `from` on.
    pub fn reported_days(
        &mut self,
        from: NaiveDate,
    ) -> Result<std::collections::BTreeSet<NaiveDate>> {
        let days: Vec<String> = self.db().column(
            "SELECT DISTINCT report_date FROM reports WHERE report_date >= ?1",
            args![from.to_string()],
        )?;
        Ok(days.iter().filter_map(|d| d.parse().ok()).collect())
    }

    /// When the first file ever arrived (the store knows nothing before).
    pub fn first_file_at(&mut self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self
            .db()
            .value("SELECT min(received_at) FROM files", args![])?
            .flatten();
        t.as_deref().map(parse_ts).transpose()
    }

    /// A file's codes (see [`CODES`]).
    fn file_codes(&mut self, id: i64) -> Result<Vec<(String, u64)>> {
        self.db()
            .rows(CODES, args![id])?
            .iter()
            .map(|r| {
                let n: i64 = r.get(1)?;
                Ok((
                    r.get::<String>(0)?,
                    if n >= 1_000_000_000 { 1 } else { n as u64 },
                ))
            })
            .collect()
    }

    /// Every LA's figures: changes and files during (`from`, `to`], state at `to`.
    pub fn la_figures_at(
        &mut self,
        las: &[LaCode],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        edd_before: NaiveDate,
    ) -> Result<BTreeMap<u16, LaFigures>> {
        let (from_s, to_s) = (ts(from), ts(to));
        let mut out: BTreeMap<u16, LaFigures> = las
            .iter()
            .map(|la| (la.as_u16(), LaFigures::default()))
            .collect();
        let conn = self.db();
        let window = args![from_s, to_s];
        let at_end = args![to_s];
        each_figure(
            conn,
            &mut out,
            "SELECT CAST(sender AS INTEGER), max(extracted_at) FROM files
             WHERE applied = 1 AND kind = 'extract' AND processed_at <= ?1 GROUP BY 1",
            at_end,
            |f, r| {
                f.last_extract_at = Some(parse_ts(&r.get::<String>(1)?)?);
                Ok(())
            },
        )?;
        each_figure(
            conn,
            &mut out,
            &format!(
                "WITH {OPEN_AT} SELECT la_code, plan_type, count(*) FROM open_at GROUP BY 1, 2"
            ),
            at_end,
            |f, r| {
                f.open[plan_index(&r.get::<String>(1)?)] = r.get(2)?;
                Ok(())
            },
        )?;
        each_figure(
            conn,
            &mut out,
            &format!(
                "SELECT CAST(sender AS INTEGER), {}
                 FROM files WHERE applied = 1 AND kind = 'extract' AND processed_at > ?1 AND processed_at <= ?2
                 GROUP BY sender",
                ["new", "updated", "unchanged", "ended", "reopened", "closed_by_absence", "retained"]
                    .map(|c| format!("CAST(sum(CAST(json_extract(report, '$.changes.{c}') AS INTEGER)) AS BIGINT)"))
                    .join(", ")
            ),
            window,
            |f, r| {
                let n = |i: usize| -> Result<u64> { Ok(r.get::<Option<u64>>(i)?.unwrap_or(0)) };
                f.changes = crate::core::report::Changes {
                    new: n(1)?,
                    updated: n(2)?,
                    unchanged: n(3)?,
                    ended: n(4)?,
                    reopened: n(5)?,
                    closed_by_absence: n(6)?,
                    retained: n(7)?,
                };
                Ok(())
            },
        )?;
        each_figure(
            conn,
            &mut out,
            &format!(
                "SELECT {FILE_LA}, f.outcome, count(*), CAST(sum(f.invalid_rows) AS BIGINT) FROM files f
                 WHERE f.kind = 'extract' AND f.outcome != 'duplicate' AND f.processed_at > ?1 AND f.processed_at <= ?2
                 GROUP BY 1, 2"
            ),
            window,
            |f, r| {
                f.files.count(&r.get::<String>(1)?, r.get(2)?);
                f.rows_rejected += r.get::<Option<u64>>(3)?.unwrap_or(0);
                Ok(())
            },
        )?;
        each_figure(
            conn,
            &mut out,
            "SELECT la, code, sum(n) FROM (
               SELECT CAST(f.sender AS INTEGER) AS la, json_extract(e.value, '$.code') AS code, 1 AS n
               FROM files f, json_each(f.report, '$.row_errors') e
               WHERE f.kind = 'extract' AND f.outcome != 'duplicate' AND f.processed_at > ?1 AND f.processed_at <= ?2
                 AND json_extract(e.value, '$.severity') = 'error'
               UNION ALL
               SELECT CAST(f.sender AS INTEGER), json_extract(e.value, '$.code'), CAST(json_extract(e.value, '$.count') AS INTEGER)
               FROM files f, json_each(f.report, '$.row_errors_unlisted') e
               WHERE f.kind = 'extract' AND f.outcome != 'duplicate' AND f.processed_at > ?1 AND f.processed_at <= ?2
                 AND json_extract(e.value, '$.severity') = 'error') AS r
             GROUP BY 1, 2",
            window,
            |f, r| {
                if let Some(code) = Code::parse(&r.get::<String>(1)?) {
                    f.rejected_by_code.insert(code, r.get(2)?);
                }
                Ok(())
            },
        )?;
        each_figure(
            conn,
            &mut out,
            "SELECT CAST(f.sender AS INTEGER), q.id, f.name, q.reason FROM quarantine q JOIN files f ON f.id = q.file_id
             WHERE f.processed_at <= ?1 AND (q.decided_at IS NULL OR q.decided_at > ?1) ORDER BY q.id",
            at_end,
            |f, r| {
                f.quarantined.push(QuarantinedFile {
                    id: r.get(1)?,
                    name: r.get(2)?,
                    reason: r.get(3)?,
                });
                Ok(())
            },
        )?;
        each_figure(
            conn,
            &mut out,
            &format!(
                "WITH {OPEN_AT}, open AS (SELECT la_code, nhs FROM open_at)
                 SELECT la_code, count(*) FROM open WHERE nhs IN
                    (SELECT nhs FROM open GROUP BY nhs HAVING count(DISTINCT la_code) > 1)
                 GROUP BY la_code"
            ),
            at_end,
            |f, r| {
                f.conflicts = r.get(1)?;
                Ok(())
            },
        )?;
        each_figure(
            conn,
            &mut out,
            &format!(
                "WITH {OPEN_AT} SELECT o.la_code, count(*) FROM open_at o
                 JOIN record_versions v ON v.id = o.version
                 WHERE o.plan_type = 'UCPP' AND v.expected_delivery < ?2 GROUP BY o.la_code"
            ),
            args![to_s, edd_before.to_string()],
            |f, r| {
                f.ucpp_past_edd = r.get(1)?;
                Ok(())
            },
        )?;
        each_figure(
            conn,
            &mut out,
            "SELECT n.la_code, count(DISTINCT n.presentation_id), count(*) FROM notifications n
             JOIN notify_batches b ON b.id = n.batch_id
             WHERE b.created_at > ?1 AND b.created_at <= ?2 GROUP BY n.la_code",
            window,
            |f, r| {
                f.attendances = r.get(1)?;
                f.notifications = r.get(2)?;
                Ok(())
            },
        )?;
        // Queued by then (with the attendance file, or at the look-up) and not in a batch
        // written to the outbox by then.
        each_figure(
            conn,
            &mut out,
            // Found from the notifications in no batch and the batches made since or not
            // written (by index), never the years of notifications written long ago.
            "WITH pending AS (
                SELECT n.la_code, n.presentation_id FROM notifications n WHERE n.batch_id IS NULL
                UNION ALL
                SELECT n.la_code, n.presentation_id FROM notifications n
                 WHERE n.batch_id IN (SELECT id FROM notify_batches WHERE created_at > ?1
                                      UNION SELECT id FROM notify_batches WHERE written = 0))
             SELECT q.la_code, count(*) FROM pending q
             JOIN presentations p ON p.id = q.presentation_id
             LEFT JOIN files f ON f.id = p.file_id
             WHERE coalesce(f.processed_at, p.attended_at) <= ?1
             GROUP BY q.la_code",
            at_end,
            |f, r| {
                f.notifications_pending = r.get(1)?;
                Ok(())
            },
        )?;
        let latest = self
            .db()
            .rows(
                &format!(
                    "SELECT id, la, name, outcome FROM files JOIN
                        (SELECT max(f.id) AS latest, {FILE_LA} AS la FROM files f
                         WHERE f.kind = 'extract' AND f.outcome != 'duplicate' AND f.processed_at <= ?1
                         GROUP BY 2) l ON files.id = l.latest
                     WHERE la IS NOT NULL"
                ),
                args![to_s],
            )?
            .iter()
            .map(|r| -> Result<(i64, i64, String, String)> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .collect::<Result<Vec<_>>>()?;
        for (id, la, name, outcome) in latest {
            let codes = self.file_codes(id)?;
            if let Some(f) = out.get_mut(&(la as u16)) {
                f.latest_file = Some(LatestFile {
                    name,
                    outcome,
                    codes,
                });
            }
        }
        Ok(out)
    }

    /// The 30-day (or any) trends, one entry per day window: the nation's files by
    /// outcome, rows rejected and LAs overdue; each LA's files, rows rejected and open
    /// records by plan type at each day's end.
    pub fn trends(
        &mut self,
        las: &[LaCode],
        days: &[DayWindow],
        overdue_hours: u32,
    ) -> Result<Trends> {
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok(Trends::default());
        };
        let ends: Vec<DateTime<Utc>> = days.iter().map(|d| d.to).collect();
        // The day a moment falls in: the first whose end is at or after it.
        let day_of = |t: DateTime<Utc>| ends.partition_point(|end| *end < t);
        let mut national: Vec<Day> = days
            .iter()
            .map(|d| Day {
                date: d.date,
                files: Outcomes::default(),
                rows_rejected: 0,
                overdue: 0,
            })
            .collect();
        let mut per_la: BTreeMap<LaCode, Vec<LaDay>> = las
            .iter()
            .map(|la| {
                (
                    *la,
                    days.iter()
                        .map(|d| LaDay {
                            date: d.date,
                            ..LaDay::default()
                        })
                        .collect(),
                )
            })
            .collect();
        let conn = self.db();
        for r in conn.rows(
            &format!(
                "SELECT f.processed_at, {FILE_LA}, f.outcome, f.invalid_rows FROM files f
                 WHERE f.kind = 'extract' AND f.outcome != 'duplicate' AND f.processed_at > ?1 AND f.processed_at <= ?2"
            ),
            args![ts(first.from), ts(last.to)],
        )? {
            let (at, la, outcome, invalid): (String, Option<i64>, String, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let i = day_of(parse_ts(&at)?);
            let Some(day) = national.get_mut(i) else {
                continue;
            };
            day.files.count(&outcome, 1);
            day.rows_rejected += invalid as u64;
            if let Some(d) = la
                .and_then(la_of)
                .and_then(|la| per_la.get_mut(&la))
                .and_then(|v| v.get_mut(i))
            {
                d.files += 1;
                d.rows_rejected += invalid as u64;
            }
        }
        // Overdue at each day's end: the newest extract applied by then is too old.
        // Per LA: (extracted at, processed at) of each extract applied.
        type Applied = Vec<(DateTime<Utc>, DateTime<Utc>)>;
        let mut applied: BTreeMap<u16, Applied> = BTreeMap::new();
        for r in conn.rows(
            "SELECT CAST(sender AS INTEGER), extracted_at, processed_at FROM files
             WHERE applied = 1 AND kind = 'extract' AND processed_at <= ?1",
            args![ts(last.to)],
        )? {
            let (la, extracted, processed): (i64, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?);
            applied
                .entry(la as u16)
                .or_default()
                .push((parse_ts(&extracted)?, parse_ts(&processed)?));
        }
        for (i, day) in national.iter_mut().enumerate() {
            let end = ends[i];
            day.overdue = las
                .iter()
                .filter(|la| {
                    let newest = applied.get(&la.as_u16()).and_then(|files| {
                        files
                            .iter()
                            .filter(|(_, processed)| *processed <= end)
                            .map(|(extracted, _)| *extracted)
                            .max()
                    });
                    crate::core::dq::is_overdue(newest, end, overdue_hours)
                })
                .count() as u64;
        }
        // Open records at each day's end: those open at the last day's end, with the
        // versions known during the window undone day by day (each replaced its
        // predecessor when the store knew it). Only the window's versions are read.
        let mut open_at_last: BTreeMap<(i64, usize), i64> = BTreeMap::new();
        conn.each_row(
            &format!(
                "WITH {OPEN_AT} SELECT la_code, plan_type, count(*) FROM open_at GROUP BY 1, 2"
            ),
            args![ts(last.to)],
            &mut |r| {
                let (la, plan, n): (i64, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                *open_at_last.entry((la, plan_index(&plan))).or_default() += n;
                Ok(())
            },
        )?;
        // Per (LA, plan type): the change in open records each day made, by day.
        let mut change: BTreeMap<(i64, usize), Vec<i64>> = BTreeMap::new();
        conn.each_row(
            "SELECT v.la_code, v.plan_type, v.known_from,
                    CAST(CASE WHEN v.end_date IS NULL THEN 1 ELSE 0 END AS BIGINT),
                    CAST(CASE WHEN p.id IS NOT NULL AND p.end_date IS NULL THEN 1 ELSE 0 END AS BIGINT)
             FROM record_versions v LEFT JOIN record_versions p ON p.id = v.previous
             WHERE v.known_from > ?1 AND v.known_from <= ?2",
            args![ts(first.to), ts(last.to)],
            &mut |r| {
                let (la, plan, known_from): (i64, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?);
                let (now_open, was_open): (i64, i64) = (r.get(3)?, r.get(4)?);
                let day = day_of(parse_ts(&known_from)?).min(ends.len() - 1);
                change
                    .entry((la, plan_index(&plan)))
                    .or_insert_with(|| vec![0; ends.len()])[day] += now_open - was_open;
                Ok(())
            },
        )?;
        let keys: std::collections::BTreeSet<(i64, usize)> =
            open_at_last.keys().chain(change.keys()).copied().collect();
        for (la, plan) in keys {
            let Some(series) = la_of(la).and_then(|la| per_la.get_mut(&la)) else {
                continue;
            };
            let mut open = open_at_last.get(&(la, plan)).copied().unwrap_or(0);
            let changes = change.get(&(la, plan));
            for (i, d) in series.iter_mut().enumerate().rev() {
                d.open[plan] = u64::try_from(open).unwrap_or(0);
                open -= changes.map_or(0, |c| c[i]);
            }
        }
        Ok(Trends { national, per_la })
    }

    /// The files of health organisations' mailboxes rejected during (`from`, `to`], in
    /// the order they were processed.
    pub fn health_rejected(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HealthRejected>> {
        let rows = self.db().rows(
            &format!(
                "SELECT f.id, f.mailbox, f.name FROM files f
                 WHERE f.outcome = 'rejected' AND f.processed_at > ?1 AND f.processed_at <= ?2
                   AND {FILE_LA} IS NULL ORDER BY f.id"
            ),
            args![ts(from), ts(to)],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push(HealthRejected {
                mailbox: r.get(1)?,
                file: r.get(2)?,
                codes: self.file_codes(r.get(0)?)?,
            });
        }
        Ok(out)
    }

    /// The newest `n` extract files of an LA's mailbox processed by `at`.
    pub fn la_last_files(
        &mut self,
        la: LaCode,
        at: DateTime<Utc>,
        n: u32,
    ) -> Result<Vec<FileLine>> {
        let rows = self.db().rows(
            "SELECT id, name, processed_at, outcome, rows, invalid_rows FROM files
             WHERE kind = 'extract' AND mailbox = 'LA' || ?1
               AND processed_at <= ?2 ORDER BY id DESC LIMIT ?3",
            args![la.to_string(), ts(at), n],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push(FileLine {
                name: r.get(1)?,
                processed_at: parse_ts(&r.get::<String>(2)?)?,
                outcome: r.get(3)?,
                rows: r.get(4)?,
                invalid_rows: r.get(5)?,
                codes: self.file_codes(r.get(0)?)?,
            });
        }
        Ok(out)
    }

    /// Every LA's data-quality items: files rejected whole or quarantined, rows rejected and
    /// records retained during (`from`, `to`]; conflicts and UCPPs past their date at `to`.
    pub fn dq_items(
        &mut self,
        las: &[LaCode],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        edd_before: NaiveDate,
    ) -> Result<BTreeMap<LaCode, Vec<DqItem>>> {
        let (from_s, to_s) = (ts(from), ts(to));
        let mut out: BTreeMap<LaCode, Vec<DqItem>> =
            las.iter().map(|la| (*la, Vec::new())).collect();
        let conn = self.db();
        let window = args![from_s, to_s];
        each_la(
            conn,
            &mut out,
            &format!(
                "SELECT {FILE_LA}, f.name, json_extract(e.value, '$.code'), json_extract(e.value, '$.message')
                 FROM files f, json_each(f.report, '$.file_errors') e
                 WHERE f.kind = 'extract' AND f.outcome = 'rejected' AND f.processed_at > ?1 AND f.processed_at <= ?2
                 ORDER BY f.id"
            ),
            window,
            |r| {
                Ok(Some(DqItem::RejectedFile {
                    file: r.get(1)?,
                    code: r.get(2)?,
                    message: r.get(3)?,
                }))
            },
        )?;
        each_la(
            conn,
            &mut out,
            "SELECT CAST(f.sender AS INTEGER), f.name, q.reason FROM quarantine q JOIN files f ON f.id = q.file_id
             WHERE f.processed_at > ?1 AND f.processed_at <= ?2 ORDER BY q.id",
            window,
            |r| {
                Ok(Some(DqItem::Quarantined {
                    file: r.get(1)?,
                    reason: r.get(2)?,
                }))
            },
        )?;
        each_la(
            conn,
            &mut out,
            "SELECT CAST(f.sender AS INTEGER), f.name, CAST(json_extract(e.value, '$.row') AS INTEGER), json_extract(e.value, '$.column'),
                    json_extract(e.value, '$.code'), json_extract(e.value, '$.message')
             FROM files f, json_each(f.report, '$.row_errors') e
             WHERE f.kind = 'extract' AND f.outcome != 'duplicate'
               AND f.processed_at > ?1 AND f.processed_at <= ?2 AND json_extract(e.value, '$.severity') = 'error'
             ORDER BY f.id, 3",
            window,
            |r| {
                Ok(Some(DqItem::Rejected {
                    file: r.get(1)?,
                    row: r.get(2)?,
                    column: r.get(3)?,
                    code: r.get(4)?,
                    message: r.get(5)?,
                }))
            },
        )?;
        // Row errors past those an acknowledgement lists: counted, by code.
        each_la(
            conn,
            &mut out,
            "SELECT CAST(f.sender AS INTEGER), f.name, json_extract(e.value, '$.code'),
                    CAST(json_extract(e.value, '$.count') AS INTEGER)
             FROM files f, json_each(f.report, '$.row_errors_unlisted') e
             WHERE f.kind = 'extract' AND f.outcome != 'duplicate'
               AND f.processed_at > ?1 AND f.processed_at <= ?2 AND json_extract(e.value, '$.severity') = 'error'
             ORDER BY f.id",
            window,
            |r| {
                Ok(Some(DqItem::RejectedUnlisted {
                    file: r.get(1)?,
                    code: r.get(2)?,
                    count: r.get(3)?,
                }))
            },
        )?;
        each_la(
            conn,
            &mut out,
            "SELECT t.la_code, f.name, t.nhs, t.plan_type FROM retained t JOIN files f ON f.id = t.file_id
             WHERE f.processed_at > ?1 AND f.processed_at <= ?2 ORDER BY t.la_code, t.nhs",
            window,
            |r| {
                Ok(Some(DqItem::Retained {
                    file: r.get(1)?,
                    nhs: full(r.get(2)?),
                    plan_type: r.get(3)?,
                }))
            },
        )?;
        each_la(
            conn,
            &mut out,
            &format!(
                "WITH {OPEN_AT}, open AS (SELECT DISTINCT la_code, nhs FROM open_at)
                 SELECT a.la_code, a.nhs, b.la_code FROM open a JOIN open b ON a.nhs = b.nhs AND b.la_code != a.la_code
                 ORDER BY a.la_code, a.nhs, b.la_code"
            ),
            args![to_s],
            |r| {
                Ok(Some(DqItem::Conflict {
                    nhs: full(r.get(1)?),
                    other_la: la_of(r.get(2)?)
                        .map(|l| l.name().to_owned())
                        .unwrap_or_default(),
                }))
            },
        )?;
        each_la(
            conn,
            &mut out,
            &format!(
                "WITH {OPEN_AT} SELECT o.la_code, o.nhs, v.expected_delivery FROM open_at o
                 JOIN record_versions v ON v.id = o.version
                 WHERE o.plan_type = 'UCPP' AND v.expected_delivery < ?2 ORDER BY o.la_code, o.nhs"
            ),
            args![to_s, edd_before.to_string()],
            |r| {
                let (nhs, edd): (i64, String) = (r.get(1)?, r.get(2)?);
                Ok(
                    crate::core::date::parse_iso_date(&edd).map(|expected_delivery| {
                        DqItem::UcppPastEdd {
                            nhs: full(nhs),
                            expected_delivery,
                        }
                    }),
                )
            },
        )?;
        Ok(out)
    }

    /// The data-quality file already sent to an LA for a report date, if any.
    pub fn dq_file_sent(&mut self, la: LaCode, date: NaiveDate) -> Result<Option<String>> {
        self.db().value(
            "SELECT file_name FROM dq_files WHERE la_code = ?1 AND report_date = ?2",
            args![la.as_u16(), date.to_string()],
        )
    }

    /// Records that an LA's data-quality file for a report date went to its outbox.
    pub fn record_dq_file(
        &mut self,
        la: LaCode,
        date: NaiveDate,
        file_name: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO dq_files (la_code, report_date, file_name, sent_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            args![la.as_u16(), date.to_string(), file_name, ts(at)],
        )?;
        Ok(())
    }

    /// The access log at `at`: entries and head by then, and whether their chain checks.
    /// The chain is walked from the newest checkpoint at or before the head whose entry
    /// still has the hash it had when it was verified (the genesis if none), so a night
    /// walks only what was written since the last; a head that verifies becomes a
    /// checkpoint. `audit verify` still walks the whole chain.
    pub fn access_log_at(&mut self, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<LogCheck> {
        // The entries written by then (entries from before migration 9: by their `at`) are a
        // prefix of the chain: its head is the newest of them, found from the end.
        let last: i64 = self
            .db()
            .value(
                "SELECT id FROM access_log WHERE coalesce(written_at, at) <= ?1
                 ORDER BY id DESC LIMIT 1",
                args![ts(at)],
            )?
            .unwrap_or(0);
        let checkpoint = self
            .db()
            .row(
                "SELECT c.entry_id, c.entries, c.hash, l.hash_version FROM access_log_checkpoints c
                 JOIN access_log l ON l.id = c.entry_id AND l.hash = c.hash
                 WHERE c.entry_id <= ?1 ORDER BY c.entry_id DESC LIMIT 1",
                args![last],
            )?
            .map(|r| -> Result<(u64, ChainPoint)> {
                Ok((
                    r.get(1)?,
                    ChainPoint {
                        entry_id: r.get(0)?,
                        hash: r.get(2)?,
                        hash_version: r.get(3)?,
                    },
                ))
            })
            .transpose()?;
        let (before, from) = checkpoint.unwrap_or((0, ChainPoint::genesis()));
        let walk = self.walk_access_log(from, last)?;
        let entries = before + walk.entries;
        let verified = match walk.broken {
            None => {
                if walk.entries > 0 {
                    self.checkpoint_access_log(entries, &walk.end, now)?;
                }
                Ok(())
            }
            Some(id) => Err(format!(
                "entry {id} does not match its hash or its predecessor (cpis-gateway audit verify)"
            )),
        };
        Ok(LogCheck {
            entries,
            head: walk.end.hash,
            verified,
        })
    }

    /// Records that the chain up to `point` (`entries` entries) verified.
    fn checkpoint_access_log(
        &mut self,
        entries: u64,
        point: &ChainPoint,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write()?;
        tx.execute(
            "INSERT INTO access_log_checkpoints (entry_id, entries, hash, verified_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (entry_id) DO NOTHING",
            args![point.entry_id, entries as i64, point.hash, ts(now)],
        )?;
        tx.commit()
    }
}

/// Runs `sql` (its first column an LA code) and applies each row to that LA's figures.
fn each_figure(
    db: &mut Db,
    out: &mut BTreeMap<u16, LaFigures>,
    sql: &str,
    args: &[&dyn Param],
    apply: impl Fn(&mut LaFigures, &Row) -> Result<()>,
) -> Result<()> {
    db.each_row(sql, args, &mut |r| {
        // A file of no LA (a health organisation's) is not an LA's figure.
        let la = r
            .get::<Option<i64>>(0)?
            .and_then(|la| u16::try_from(la).ok());
        if let Some(f) = la.and_then(|la| out.get_mut(&la)) {
            apply(f, r)?;
        }
        Ok(())
    })
}

/// Runs `sql` (its first column an LA code) and files each row's item under its LA.
fn each_la(
    db: &mut Db,
    out: &mut BTreeMap<LaCode, Vec<DqItem>>,
    sql: &str,
    args: &[&dyn Param],
    item: impl Fn(&Row) -> Result<Option<DqItem>>,
) -> Result<()> {
    db.each_row(sql, args, &mut |r| {
        let la = r.get::<Option<i64>>(0)?.and_then(la_of);
        if let (Some(items), Some(item)) = (la.and_then(|la| out.get_mut(&la)), item(r)?) {
            items.push(item);
        }
        Ok(())
    })
}

fn plan_index(plan: &str) -> usize {
    match plan {
        "CPP" => 0,
        "LAC" => 1,
        _ => 2,
    }
}
