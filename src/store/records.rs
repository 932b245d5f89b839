//! Records: current versions per LA, writing a file's changes, and the point-in-time view.

use super::{parse_ts, ts, Store};
use crate::core::date::parse_iso_date;
use crate::core::ids::LaCode;
use crate::core::nhs::NhsNumber;
use crate::core::phone::Phone;
use crate::core::plan::PlanType;
use crate::core::reconcile::{Change, RecordFields, StoredRecord};
use crate::core::validate::RowKey;
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Row, Transaction};
use std::collections::BTreeMap;

/// One version of one record, with when the store knew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordVersion {
    pub id: i64,
    pub la: LaCode,
    pub key: RowKey,
    pub fields: RecordFields,
    /// The outcome that wrote it (`new`, `updated`, `ended`, `reopened`, `closed_by_absence`).
    pub change: String,
    pub file_id: i64,
    pub known_from: DateTime<Utc>,
    pub known_to: Option<DateTime<Utc>>,
}

const FIELDS: &str = "start_date, end_date, edt_phone, office_phone, local_ref, expected_delivery";

/// Reads the six field columns starting at `at`.
fn fields(r: &Row<'_>, at: usize) -> Result<RecordFields> {
    let date = |i: usize| -> Result<Option<chrono::NaiveDate>> {
        let text: Option<String> = r.get(at + i)?;
        text.map(|t| parse_iso_date(&t).ok_or_else(|| anyhow!("bad date {t:?} in the store")))
            .transpose()
    };
    let phone = |i: usize| -> Result<Phone> {
        let text: String = r.get(at + i)?;
        Phone::parse(&text).map_err(|_| anyhow!("bad phone {text:?} in the store"))
    };
    Ok(RecordFields {
        start: date(0)?.ok_or_else(|| anyhow!("a record without start date in the store"))?,
        end: date(1)?,
        edt_phone: phone(2)?,
        office_phone: phone(3)?,
        local_ref: r.get(at + 4)?,
        expected_delivery: date(5)?,
    })
}

fn key(nhs: i64, plan: &str) -> Result<RowKey> {
    Ok(RowKey {
        nhs: u64::try_from(nhs)
            .ok()
            .and_then(NhsNumber::from_value)
            .ok_or_else(|| anyhow!("bad NHS number in the store"))?,
        plan_type: PlanType::parse(plan)
            .ok_or_else(|| anyhow!("bad plan type {plan:?} in the store"))?,
    })
}

impl Store {
    /// The current version of every record of an LA, open or closed.
    pub fn current_records(&mut self, la: LaCode) -> Result<Vec<StoredRecord>> {
        let sql = format!(
            "SELECT id, nhs, plan_type, {FIELDS} FROM record_versions
             WHERE la_code = ?1 AND known_to IS NULL"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![la.as_u16()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let nhs: i64 = r.get(1)?;
            let plan: String = r.get(2)?;
            out.push(StoredRecord {
                version: r.get(0)?,
                key: key(nhs, &plan)?,
                fields: fields(r, 3)?,
            });
        }
        Ok(out)
    }

    /// Every version of every record for an NHS number, all LAs, oldest first: the history.
    pub fn versions(&mut self, nhs: NhsNumber) -> Result<Vec<RecordVersion>> {
        let sql = format!(
            "SELECT id, la_code, nhs, plan_type, {FIELDS}, change, file_id, known_from, known_to
             FROM record_versions WHERE nhs = ?1 ORDER BY known_from, id"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let mut rows = stmt.query(params![nhs.value() as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let la: u16 = r.get(1)?;
            let nhs: i64 = r.get(2)?;
            let plan: String = r.get(3)?;
            let known_to: Option<String> = r.get(13)?;
            out.push(RecordVersion {
                id: r.get(0)?,
                la: LaCode::parse(&format!("{la:03}"))
                    .map_err(|e| anyhow!("bad LA in the store: {e}"))?,
                key: key(nhs, &plan)?,
                fields: fields(r, 4)?,
                change: r.get(10)?,
                file_id: r.get(11)?,
                known_from: parse_ts(&r.get::<_, String>(12)?)?,
                known_to: known_to.as_deref().map(parse_ts).transpose()?,
            });
        }
        Ok(out)
    }

    /// The records of an NHS number as the store held them at `at` (all LAs): for each
    /// (LA, plan type), the version known then, if any.
    pub fn records_at(&mut self, nhs: NhsNumber, at: DateTime<Utc>) -> Result<Vec<RecordVersion>> {
        let mut latest: BTreeMap<(LaCode, PlanType), RecordVersion> = BTreeMap::new();
        for v in self.versions(nhs)? {
            let known = v.known_from <= at && v.known_to.is_none_or(|to| at < to);
            if known {
                latest.insert((v.la, v.key.plan_type), v);
            }
        }
        Ok(latest.into_values().collect())
    }

    /// Open records (no end date) per LA and plan type.
    pub fn open_counts(&mut self) -> Result<BTreeMap<(u16, String), u64>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT la_code, plan_type, count(*) FROM record_versions
             WHERE known_to IS NULL AND end_date IS NULL GROUP BY la_code, plan_type",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Writes a file's changes: supersede each previous version, insert the next.
pub(super) fn write_changes(
    tx: &Transaction<'_>,
    la: LaCode,
    file_id: i64,
    changes: &[Change],
    known_from: DateTime<Utc>,
    fail_after: Option<u64>,
) -> Result<()> {
    let now = ts(known_from);
    let mut supersede = tx.prepare_cached(
        "UPDATE record_versions SET known_to = ?2 WHERE id = ?1 AND known_to IS NULL",
    )?;
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO record_versions (la_code, nhs, plan_type, {FIELDS}, change, file_id, known_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?;
    for (written, c) in changes.iter().enumerate() {
        if fail_after.is_some_and(|n| written as u64 >= n) {
            bail!("injected failure after {written} record writes (CPIS_GATEWAY_FAULT)");
        }
        if let Some(previous) = c.previous {
            let n = supersede.execute(params![previous, now])?;
            if n != 1 {
                bail!("record version {previous} changed under this file: nothing was applied, run it again");
            }
        }
        let f = &c.next;
        insert
            .execute(params![
                la.as_u16(),
                c.key.nhs.value() as i64,
                c.key.plan_type.as_str(),
                f.start.to_string(),
                f.end.map(|d| d.to_string()),
                f.edt_phone.as_str(),
                f.office_phone.as_str(),
                f.local_ref,
                f.expected_delivery.map(|d| d.to_string()),
                c.kind.as_str(),
                file_id,
                now,
            ])
            .context("cannot write a record")?;
    }
    Ok(())
}
