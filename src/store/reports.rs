//! The figures behind the nightly reports, read in one go.

use super::{parse_ts, ts, Store};
use crate::core::codes::Code;
use crate::core::dq::{Day, DqItem, LaFigures};
use crate::core::ids::LaCode;
use crate::core::nhs::NhsNumber;
use anyhow::Result;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};
use std::collections::BTreeMap;

fn full(nhs: i64) -> String {
    u64::try_from(nhs)
        .ok()
        .and_then(NhsNumber::from_value)
        .map(NhsNumber::full)
        .unwrap_or_default()
}

impl Store {
    /// When the previous report was written.
    pub fn last_report_at(&mut self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self
            .conn()
            .query_row(
                "SELECT generated_at FROM reports ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        t.as_deref().map(parse_ts).transpose()
    }

    pub fn record_report(
        &mut self,
        date: NaiveDate,
        at: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO reports (report_date, generated_at, covers_from) VALUES (?1, ?2, ?3)",
            params![date.to_string(), ts(at), since.map(ts)],
        )?;
        Ok(())
    }

    /// Every LA's figures for the window (`since`, `until`].
    pub fn la_figures(
        &mut self,
        las: &[LaCode],
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        edd_before: NaiveDate,
    ) -> Result<BTreeMap<u16, LaFigures>> {
        let from = since.map(ts).unwrap_or_default();
        let to = ts(until);
        let mut out: BTreeMap<u16, LaFigures> = las
            .iter()
            .map(|la| (la.as_u16(), LaFigures::default()))
            .collect();
        let last = self.last_applied_extracts()?;
        for (code, f) in out.iter_mut() {
            f.last_extract_at = last.get(&format!("{code:03}")).copied();
        }
        for ((la, plan), n) in self.open_counts()? {
            if let Some(f) = out.get_mut(&la) {
                let i = match plan.as_str() {
                    "CPP" => 0,
                    "LAC" => 1,
                    _ => 2,
                };
                f.open[i] = n;
            }
        }
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT CAST(sender AS INTEGER), sum(json_extract(report, '$.changes.new')), sum(json_extract(report, '$.changes.updated')),
                    sum(json_extract(report, '$.changes.unchanged')), sum(json_extract(report, '$.changes.ended')),
                    sum(json_extract(report, '$.changes.reopened')), sum(json_extract(report, '$.changes.closed_by_absence')),
                    sum(json_extract(report, '$.changes.retained'))
             FROM files WHERE applied AND kind = 'extract' AND processed_at > ?1 AND processed_at <= ?2 GROUP BY sender",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            let n = |i: usize| -> rusqlite::Result<u64> {
                Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0) as u64)
            };
            Ok((
                r.get::<_, i64>(0)?,
                [n(1)?, n(2)?, n(3)?, n(4)?, n(5)?, n(6)?, n(7)?],
            ))
        })?;
        for row in rows {
            let (la, c) = row?;
            if let Some(f) = out.get_mut(&(la as u16)) {
                f.changes = crate::core::report::Changes {
                    new: c[0],
                    updated: c[1],
                    unchanged: c[2],
                    ended: c[3],
                    reopened: c[4],
                    closed_by_absence: c[5],
                    retained: c[6],
                };
            }
        }
        let mut stmt = conn.prepare(
            "SELECT CAST(f.sender AS INTEGER), json_extract(e.value, '$.code'), count(*)
             FROM files f, json_each(f.report, '$.row_errors') e
             WHERE f.kind = 'extract' AND f.outcome != 'duplicate' AND f.processed_at > ?1 AND f.processed_at <= ?2
               AND json_extract(e.value, '$.severity') = 'error'
             GROUP BY 1, 2",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (la, code, n) = row?;
            if let (Some(f), Some(code)) = (out.get_mut(&(la as u16)), Code::parse(&code)) {
                f.rejected_by_code.insert(code, n as u64);
            }
        }
        let mut stmt = conn.prepare(
            "SELECT CAST(f.sender AS INTEGER), count(*) FROM quarantine q JOIN files f ON f.id = q.file_id
             WHERE q.state = 'pending' GROUP BY 1",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (la, n) = row?;
            if let Some(f) = out.get_mut(&(la as u16)) {
                f.quarantined = n as u64;
            }
        }
        let mut stmt = conn.prepare(
            "SELECT la_code, count(*) FROM records WHERE open AND nhs IN
                (SELECT nhs FROM records WHERE open GROUP BY nhs HAVING count(DISTINCT la_code) > 1)
             GROUP BY la_code",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, u16>(0)?, r.get::<_, i64>(1)?)))? {
            let (la, n) = row?;
            if let Some(f) = out.get_mut(&la) {
                f.conflicts = n as u64;
            }
        }
        let mut stmt = conn.prepare(
            "SELECT r.la_code, count(*) FROM records r JOIN record_versions v ON v.id = r.version
             WHERE r.open AND r.plan_type = 'UCPP' AND v.expected_delivery < ?1 GROUP BY r.la_code",
        )?;
        for row in stmt.query_map(params![edd_before.to_string()], |r| {
            Ok((r.get::<_, u16>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (la, n) = row?;
            if let Some(f) = out.get_mut(&la) {
                f.ucpp_past_edd = n as u64;
            }
        }
        let mut stmt = conn.prepare(
            "SELECT n.la_code, count(DISTINCT n.presentation_id), count(*) FROM notifications n
             JOIN notify_batches b ON b.id = n.batch_id
             WHERE b.created_at > ?1 AND b.created_at <= ?2 GROUP BY n.la_code",
        )?;
        for row in stmt.query_map(params![from, to], |r| {
            Ok((
                r.get::<_, u16>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (la, attendances, notifications) = row?;
            if let Some(f) = out.get_mut(&la) {
                f.attendances = attendances as u64;
                f.notifications = notifications as u64;
            }
        }
        Ok(out)
    }

    /// Files received and rows rejected on each of the `days` days up to `until`.
    pub fn trend(&mut self, until: DateTime<Utc>, days: i64) -> Result<Vec<Day>> {
        let first = until.date_naive() - Duration::days(days - 1);
        let mut stmt = self.conn().prepare(
            "SELECT substr(received_at, 1, 10), count(*), sum(invalid_rows) FROM files
             WHERE received_at >= ?1 AND received_at <= ?2 AND outcome != 'duplicate' GROUP BY 1",
        )?;
        let found: BTreeMap<String, (u64, u64)> = stmt
            .query_map(params![first.to_string(), ts(until)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                    ),
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok((0..days)
            .map(|i| {
                let date = first + Duration::days(i);
                let (files, rows_rejected) =
                    found.get(&date.to_string()).copied().unwrap_or((0, 0));
                Day {
                    date,
                    files,
                    rows_rejected,
                }
            })
            .collect())
    }

    /// One LA's data-quality items for the window.
    pub fn la_dq_items(
        &mut self,
        la: LaCode,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        edd_before: NaiveDate,
    ) -> Result<Vec<DqItem>> {
        let (from, to) = (since.map(ts).unwrap_or_default(), ts(until));
        let code = la.as_u16();
        let conn = self.conn();
        let mut items = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT f.name, json_extract(e.value, '$.row'), json_extract(e.value, '$.column'),
                    json_extract(e.value, '$.code'), json_extract(e.value, '$.message')
             FROM files f, json_each(f.report, '$.row_errors') e
             WHERE f.kind = 'extract' AND f.sender = ?1 AND f.outcome != 'duplicate'
               AND f.processed_at > ?2 AND f.processed_at <= ?3 AND json_extract(e.value, '$.severity') = 'error'
             ORDER BY f.id, 2",
        )?;
        for row in stmt.query_map(params![la.to_string(), from, to], |r| {
            Ok(DqItem::Rejected {
                file: r.get(0)?,
                row: r.get::<_, i64>(1)? as u64,
                column: r.get(2)?,
                code: r.get(3)?,
                message: r.get(4)?,
            })
        })? {
            items.push(row?);
        }
        let mut stmt = conn.prepare(
            "SELECT f.name, t.nhs, t.plan_type FROM retained t JOIN files f ON f.id = t.file_id
             WHERE t.la_code = ?1 AND f.processed_at > ?2 AND f.processed_at <= ?3 ORDER BY t.nhs",
        )?;
        for row in stmt.query_map(params![code, from, to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (file, nhs, plan_type) = row?;
            items.push(DqItem::Retained {
                file,
                nhs: full(nhs),
                plan_type,
            });
        }
        let mut stmt = conn.prepare(
            "SELECT DISTINCT a.nhs, b.la_code FROM records a JOIN records b ON a.nhs = b.nhs AND b.la_code != a.la_code
             WHERE a.la_code = ?1 AND a.open AND b.open ORDER BY a.nhs, b.la_code",
        )?;
        for row in stmt.query_map(params![code], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, u16>(1)?))
        })? {
            let (nhs, other) = row?;
            let other_la = LaCode::parse(&format!("{other:03}"))
                .map(|l| l.name().to_owned())
                .unwrap_or_default();
            items.push(DqItem::Conflict {
                nhs: full(nhs),
                other_la,
            });
        }
        let mut stmt = conn.prepare(
            "SELECT r.nhs, v.expected_delivery FROM records r JOIN record_versions v ON v.id = r.version
             WHERE r.la_code = ?1 AND r.open AND r.plan_type = 'UCPP' AND v.expected_delivery < ?2 ORDER BY r.nhs",
        )?;
        for row in stmt.query_map(params![code, edd_before.to_string()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })? {
            let (nhs, edd) = row?;
            if let Some(expected_delivery) = crate::core::date::parse_iso_date(&edd) {
                items.push(DqItem::UcppPastEdd {
                    nhs: full(nhs),
                    expected_delivery,
                });
            }
        }
        Ok(items)
    }
}
