//! Records: current versions per LA, writing a file's changes, and the point-in-time view.

use super::db::{args, Arg, Param, Row, Sql, Tx};
use super::{parse_ts, ts, Store};
use crate::core::date::{parse_iso_date, IsoDate};
use crate::core::ids::LaCode;
use crate::core::nhs::NhsNumber;
use crate::core::phone::Phone;
use crate::core::plan::PlanType;
use crate::core::reconcile::{Change, Next, RecordFields, StoredRecord};
use crate::core::validate::RowKey;
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
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
    /// When its successor replaced it (`None` for the current version).
    pub known_to: Option<DateTime<Utc>>,
    pub previous: Option<i64>,
}

const FIELDS: &str = "start_date, end_date, edt_phone, office_phone, local_ref, expected_delivery";

/// Reads the six field columns starting at `at`.
pub(super) fn fields(r: &Row, at: usize) -> Result<RecordFields> {
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

fn la(code: u16) -> Result<LaCode> {
    LaCode::parse(&format!("{code:03}")).map_err(|e| anyhow!("bad LA in the store: {e}"))
}

/// Above this many keys, an LA's closed records are read whole rather than looked up.
const KEYS_LOOKED_UP: usize = 5_000;

fn stored(r: &Row, open: bool) -> Result<StoredRecord> {
    let nhs: i64 = r.get(1)?;
    let plan: String = r.get(2)?;
    Ok(StoredRecord {
        version: r.get(0)?,
        key: key(nhs, &plan)?,
        open,
        fingerprint: r.get::<i64>(3)? as u64,
    })
}

impl Store {
    /// The current version of every open record of an LA (read through the partial index
    /// of open records: closed ones, however many, are not read).
    pub fn open_records(&mut self, la: LaCode) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::new();
        self.db().each_row(
            "SELECT version, nhs, plan_type, fingerprint FROM records
             WHERE la_code = ?1 AND open = 1",
            args![la.as_u16()],
            &mut |r| {
                out.push(stored(r, true)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The closed records of an LA among `keys` (an extract's keys that are not open: a
    /// closed record named again is reopened): in `records`, or else the last time the
    /// key ended among the records kept cold. Looked up by key, so the cost follows the
    /// keys, not the LA's history; past [`KEYS_LOOKED_UP`] keys (a first load), the LA's
    /// closed records in `records` are read instead, which costs no more than the keys.
    /// An LA with no closed record (a first load) has none of its keys looked up.
    pub fn closed_records(&mut self, la: LaCode, keys: &[RowKey]) -> Result<Vec<StoredRecord>> {
        let code = la.as_u16();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Keys of one statement are looked up at once; before more, whether there can be
        // anything to find.
        let (hot, cold_rows) = if keys.len() <= super::db::KEYS_PER_STATEMENT {
            (true, true)
        } else {
            self.any_closed(code)?
        };
        if !(hot || cold_rows) {
            return Ok(Vec::new());
        }
        let wanted: rustc_hash::FxHashSet<RowKey> = keys.iter().copied().collect();
        // Each key's row in `records`, else its latest cold row (the highest version).
        let mut found: rustc_hash::FxHashMap<RowKey, StoredRecord> = Default::default();
        let mut cold: rustc_hash::FxHashMap<RowKey, StoredRecord> = Default::default();
        let mut take = |r: &Row| {
            let record = stored(r, false)?;
            if wanted.contains(&record.key) {
                let into = if r.get::<i64>(4)? == 0 {
                    &mut found
                } else {
                    &mut cold
                };
                if into
                    .get(&record.key)
                    .is_none_or(|c| c.version < record.version)
                {
                    into.insert(record.key, record);
                }
            }
            Ok(())
        };
        let mut numbers: Vec<i64> = keys.iter().map(|k| k.nhs.value() as i64).collect();
        numbers.sort_unstable();
        numbers.dedup();
        if keys.len() <= KEYS_LOOKED_UP {
            // Both tables in one statement a chunk (a round trip each on PostgreSQL).
            self.each_by_nhs(
                &|list| {
                    format!(
                        "SELECT version, nhs, plan_type, fingerprint, 0 FROM records
                          WHERE la_code = ?1 AND open = 0 AND nhs IN ({list})
                         UNION ALL
                         SELECT version, nhs, plan_type, fingerprint, 1 FROM records_cold
                          WHERE la_code = ?1 AND nhs IN ({list})"
                    )
                },
                code,
                &numbers,
                &mut take,
            )?;
        } else {
            if hot {
                self.db().each_row(
                    "SELECT version, nhs, plan_type, fingerprint, 0 FROM records
                     WHERE la_code = ?1 AND open = 0",
                    args![code],
                    &mut take,
                )?;
            }
            if cold_rows {
                self.each_by_nhs(
                    &|list| {
                        format!(
                            "SELECT version, nhs, plan_type, fingerprint, 1 FROM records_cold
                              WHERE la_code = ?1 AND nhs IN ({list})"
                        )
                    },
                    code,
                    &numbers,
                    &mut take,
                )?;
            }
        }
        cold.retain(|key, _| !found.contains_key(key));
        Ok(found.into_values().chain(cold.into_values()).collect())
    }

    /// Whether the LA has a closed record in `records`, and whether it has any kept cold
    /// (a first load has neither). Each a `min` over the LA's range of an index, which
    /// both planners read from its start (a `LIMIT 1` may be planned as a scan).
    fn any_closed(&mut self, code: u16) -> Result<(bool, bool)> {
        let row = self.db().one(
            "SELECT (SELECT min(la_code) FROM records WHERE la_code = ?1 AND open = 0),
                    (SELECT min(la_code) FROM records_cold WHERE la_code = ?1)",
            args![code],
        )?;
        let found = |i| -> Result<bool> { Ok(row.get::<Option<i64>>(i)?.is_some()) };
        Ok((found(0)?, found(1)?))
    }

    /// Runs the statement `sql` makes of a list of marks (`?2`, ...; the LA is `?1`) for
    /// `numbers`, a statement a chunk.
    fn each_by_nhs(
        &mut self,
        sql: &dyn Fn(&str) -> String,
        code: u16,
        numbers: &[i64],
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        for chunk in numbers.chunks(super::db::KEYS_PER_STATEMENT) {
            let chunk = super::db::padded(chunk);
            let mut params: Vec<&dyn Param> = vec![&code];
            params.extend(chunk.iter().map(|n| n as &dyn Param));
            let sql = sql(&super::db::marks(2, chunk.len()));
            self.db().each_row(&sql, &params, f)?;
        }
        Ok(())
    }

    pub fn version(&mut self, id: i64) -> Result<Option<RecordVersion>> {
        let sql = format!(
            "SELECT id, la_code, nhs, plan_type, {FIELDS}, change, file_id, known_from, previous
             FROM record_versions WHERE id = ?1"
        );
        let Some(r) = self.db().row(&sql, args![id])? else {
            return Ok(None);
        };
        let nhs: i64 = r.get(2)?;
        let plan: String = r.get(3)?;
        Ok(Some(RecordVersion {
            id: r.get(0)?,
            la: la(r.get(1)?)?,
            key: key(nhs, &plan)?,
            fields: fields(&r, 4)?,
            change: r.get(10)?,
            file_id: r.get(11)?,
            known_from: parse_ts(&r.get::<String>(12)?)?,
            known_to: None,
            previous: r.get(13)?,
        }))
    }

    /// The last version ids of every record (all LAs) for an NHS number, and of every
    /// time one of them ended and was kept cold, newest first.
    fn last_versions(&mut self, nhs: NhsNumber) -> Result<Vec<i64>> {
        let mut ids: Vec<i64> = self.db().column(
            "SELECT version FROM records WHERE nhs = ?1
             UNION ALL SELECT version FROM records_cold WHERE nhs = ?1",
            args![nhs.value() as i64],
        )?;
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Every version of every record for an NHS number, all LAs, oldest first: the history.
    /// Walked back from each last version, newest first, each version once: a record
    /// reopened after it was kept cold walks through the cold row's version, which is
    /// then not walked again (and keeps the time its successor replaced it).
    pub fn versions(&mut self, nhs: NhsNumber) -> Result<Vec<RecordVersion>> {
        let mut out = Vec::new();
        let mut walked = rustc_hash::FxHashSet::default();
        for last in self.last_versions(nhs)? {
            let mut next_from: Option<DateTime<Utc>> = None;
            let mut id = Some(last);
            while let Some(this) = id.filter(|id| walked.insert(*id)) {
                let mut v = self
                    .version(this)?
                    .ok_or_else(|| anyhow!("record version {this} is missing from the history"))?;
                v.known_to = next_from;
                next_from = Some(v.known_from);
                id = v.previous;
                out.push(v);
            }
        }
        out.sort_by_key(|v| (v.known_from, v.id));
        Ok(out)
    }

    /// The records of an NHS number as the store held them at `at` (all LAs): for each
    /// record, the version known then, if any.
    pub fn records_at(&mut self, nhs: NhsNumber, at: DateTime<Utc>) -> Result<Vec<RecordVersion>> {
        let mut known: Vec<RecordVersion> = self
            .versions(nhs)?
            .into_iter()
            .filter(|v| v.known_from <= at && v.known_to.is_none_or(|to| at < to))
            .collect();
        known.sort_by_key(|v| (v.la, v.key.plan_type));
        Ok(known)
    }

    /// Open records (no end date) per LA and plan type.
    pub fn open_counts(&mut self) -> Result<BTreeMap<(u16, String), u64>> {
        self.db()
            .rows(
                "SELECT la_code, plan_type, count(*) FROM records WHERE open = 1
                 GROUP BY la_code, plan_type",
                args![],
            )?
            .iter()
            .map(|r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
            .collect()
    }
}

/// A record's columns, as written.
const RECORD_COLUMNS: [&str; 7] = [
    "la_code",
    "nhs",
    "plan_type",
    "version",
    "open",
    "fingerprint",
    "end_date",
];

/// One version to write, with its dates as text.
struct NewVersion<'c> {
    change: &'c Change,
    fields: std::borrow::Cow<'c, RecordFields>,
    start: IsoDate,
    end: Option<IsoDate>,
    edd: Option<IsoDate>,
}

/// Writes a file's changes: a new version for each, and the current record moved to it.
/// In phases, so that each backend writes them in bulk: the fields of records being closed,
/// ids for the new versions, the versions, the new records, the records moved on.
///
/// The foreign keys PostgreSQL does not check (migration 13) hold by construction: a
/// version's file is `file_id`, registered in this transaction; a record's version is one
/// written just before in it; a version's previous one is the version its record was at,
/// which the move proves (a record no longer at it fails the file).
pub(super) fn write_changes(
    tx: &mut Tx<'_>,
    la: LaCode,
    file_id: i64,
    changes: &[Change],
    known_from: DateTime<Utc>,
    fail_after: Option<u64>,
) -> Result<()> {
    let now = ts(known_from);
    let failing = fail_after.filter(|n| (*n as usize) < changes.len());
    let changes = &changes[..failing.map_or(changes.len(), |n| n as usize)];
    // The current fields of the records being closed, read in batches.
    let closing: Vec<i64> = changes
        .iter()
        .filter(|c| matches!(c.next, Next::EndOn(_)))
        .filter_map(|c| c.previous)
        .collect();
    let mut current = std::collections::HashMap::with_capacity(closing.len());
    for ids in closing.chunks(super::db::KEYS_PER_STATEMENT) {
        let ids = super::db::padded(ids);
        let params: Vec<&dyn Param> = ids.iter().map(|id| id as &dyn Param).collect();
        tx.each_row(
            &format!(
                "SELECT id, {FIELDS} FROM record_versions WHERE id IN ({})",
                super::db::marks(1, ids.len())
            ),
            &params,
            &mut |r| {
                current.insert(r.get::<i64>(0)?, fields(r, 1)?);
                Ok(())
            },
        )?;
    }
    let mut versions = Vec::with_capacity(changes.len());
    for c in changes {
        let fields = match (&c.next, c.previous) {
            (Next::Fields(f), _) => std::borrow::Cow::Borrowed(f),
            (Next::EndOn(day), Some(previous)) => {
                let mut f = current.get(&previous).cloned().ok_or_else(|| {
                    anyhow!("record version {previous} is missing from the history")
                })?;
                f.end = Some((*day).max(f.start));
                std::borrow::Cow::Owned(f)
            }
            (Next::EndOn(_), None) => bail!("a closure without a record to close"),
        };
        versions.push(NewVersion {
            change: c,
            start: IsoDate::new(fields.start),
            end: fields.end.map(IsoDate::new),
            edd: fields.expected_delivery.map(IsoDate::new),
            fields,
        });
    }
    let ids = tx.allocate_ids("record_versions", versions.len())?;
    let la_code = Arg::Int(la.as_u16().into());
    tx.insert_rows(
        "record_versions",
        &[
            "id",
            "la_code",
            "nhs",
            "plan_type",
            "start_date",
            "end_date",
            "edt_phone",
            "office_phone",
            "local_ref",
            "expected_delivery",
            "change",
            "file_id",
            "known_from",
            "previous",
        ],
        versions.iter().zip(&ids).map(|(v, id)| {
            let f = &v.fields;
            vec![
                Arg::Int(*id),
                la_code,
                Arg::Int(v.change.key.nhs.value() as i64),
                Arg::Text(v.change.key.plan_type.as_str()),
                Arg::Text(v.start.as_str()),
                v.end.as_ref().map_or(Arg::Null, |d| Arg::Text(d.as_str())),
                Arg::Text(f.edt_phone.as_str()),
                Arg::Text(f.office_phone.as_str()),
                f.local_ref.as_deref().map_or(Arg::Null, Arg::Text),
                v.edd.as_ref().map_or(Arg::Null, |d| Arg::Text(d.as_str())),
                Arg::Text(v.change.kind.as_str()),
                Arg::Int(file_id),
                Arg::Text(&now),
                v.change.previous.map_or(Arg::Null, Arg::Int),
            ]
        }),
    )
    .context("cannot write the record versions")?;
    let (mut new, moved): (Vec<_>, Vec<_>) = versions
        .iter()
        .zip(ids.iter().copied())
        .partition(|(v, _)| v.change.previous.is_none());
    let (from_cold, moved) = from_cold(tx, la, moved)?;
    new.extend(from_cold);
    tx.insert_rows(
        "records",
        &RECORD_COLUMNS,
        new.iter().map(|(v, id)| record_row(la_code, v, *id)),
    )
    .context("cannot write the records (if one was reopened under this file, run it again)")?;
    move_records(tx, la, &moved)?;
    if let Some(n) = failing {
        bail!("injected failure after {n} record writes (CPIS_GATEWAY_FAULT)");
    }
    Ok(())
}

type Moved<'a, 'c> = Vec<(&'a NewVersion<'c>, i64)>;

/// Splits the records a file moves into those replacing a version kept cold, which come
/// back into `records` as new rows (the cold row stays: it is when the record ended
/// before), and those moved in `records`. A cold version is the last of its record when
/// no row in `records` has the key, which the new row's unique key proves at insert.
fn from_cold<'a, 'c>(
    tx: &mut Tx<'_>,
    la: LaCode,
    moved: Moved<'a, 'c>,
) -> Result<(Moved<'a, 'c>, Moved<'a, 'c>)> {
    let closed: Vec<i64> = moved
        .iter()
        .filter(|(v, _)| !v.change.kind.replaces_open(v.fields.is_open()))
        .filter_map(|(v, _)| v.change.previous)
        .collect();
    let mut cold = rustc_hash::FxHashMap::default();
    for ids in closed.chunks(super::db::KEYS_PER_STATEMENT) {
        let ids = super::db::padded(ids);
        let params: Vec<&dyn Param> = ids.iter().map(|id| id as &dyn Param).collect();
        tx.each_row(
            &format!(
                "SELECT version, nhs, plan_type FROM records_cold
                 WHERE la_code = ?1 AND version IN ({})",
                super::db::marks(2, ids.len())
            ),
            &[&[&la.as_u16() as &dyn Param], &params[..]].concat(),
            &mut |r| {
                cold.insert(r.get::<i64>(0)?, key(r.get(1)?, &r.get::<String>(2)?)?);
                Ok(())
            },
        )?;
    }
    if cold.is_empty() {
        return Ok((Vec::new(), moved));
    }
    for (v, _) in &moved {
        let previous = v.change.previous.unwrap_or(0);
        if cold.get(&previous).is_some_and(|k| *k != v.change.key) {
            bail!("record version {previous} kept cold is another record's");
        }
    }
    Ok(moved
        .into_iter()
        .partition(|(v, _)| v.change.previous.is_some_and(|p| cold.contains_key(&p))))
}

/// Whether any record kept cold ended on or after `since` (a date as text): the latest
/// end date, read from the end of its index (a `LIMIT 1` over a range that holds nothing
/// made PostgreSQL scan the table: 114 ms at 1.5 million rows).
pub(super) fn cold_reaches(db: &mut impl Sql, since: &str) -> Result<bool> {
    let last: Option<String> = db
        .value("SELECT max(end_date) FROM records_cold", args![])?
        .flatten();
    Ok(last.is_some_and(|last| last.as_str() >= since))
}

/// Moves the LA's closed records that ended before `before` out of `records` into
/// `records_cold`, in the file's transaction: no look-up made from now on can show them
/// (`core::matching::shown_since`), and a reader that might still asks `records_cold`
/// too. Returns how many moved.
pub(super) fn keep_cold(tx: &mut Tx<'_>, la: LaCode, before: chrono::NaiveDate) -> Result<u64> {
    let before = IsoDate::new(before);
    let code = la.as_u16();
    // Found through the index of end dates (`records_ended`), which holds only the few
    // records past `before` not yet moved; `la_code + 0` keeps the planners off the key,
    // whose LA range is every record of the LA (on PostgreSQL 4.6 ms a file, measured).
    let n = tx.execute(
        "INSERT INTO records_cold (version, la_code, nhs, plan_type, fingerprint, end_date)
         SELECT version, la_code, nhs, plan_type, fingerprint, end_date FROM records
          WHERE end_date < ?2 AND la_code + 0 = ?1",
        args![code, before.as_str()],
    )?;
    if n > 0 {
        let gone = tx.execute(
            "DELETE FROM records WHERE end_date < ?2 AND la_code + 0 = ?1",
            args![code, before.as_str()],
        )?;
        if gone != n {
            bail!("{n} records kept cold but {gone} left the current records");
        }
    }
    Ok(n)
}

/// A record's row, in the order of [`RECORD_COLUMNS`].
fn record_row<'v>(la_code: Arg<'v>, v: &'v NewVersion<'_>, id: i64) -> Vec<Arg<'v>> {
    vec![
        la_code,
        Arg::Int(v.change.key.nhs.value() as i64),
        Arg::Text(v.change.key.plan_type.as_str()),
        Arg::Int(id),
        Arg::Int(i64::from(v.fields.is_open())),
        Arg::Int(v.fields.fingerprint() as i64),
        v.end.as_ref().map_or(Arg::Null, |d| Arg::Text(d.as_str())),
    ]
}

/// Moves existing records to their new versions (each a new version and its id: the
/// record moves to that id, and must still be at the version the new one replaces, in
/// the open state that version had); none may have moved under this file. On SQLite each
/// record is found by its key (one seek); on PostgreSQL one statement moves them all,
/// from arrays of their columns.
fn move_records(tx: &mut Tx<'_>, la: LaCode, moved: &[(&NewVersion<'_>, i64)]) -> Result<()> {
    if moved.is_empty() {
        return Ok(());
    }
    let n = if tx.is_pg() {
        let column = |f: &dyn Fn(&NewVersion<'_>, i64) -> i64| -> Vec<i64> {
            moved.iter().map(|(v, id)| f(v, *id)).collect()
        };
        let nhs = column(&|v, _| v.change.key.nhs.value() as i64);
        let version = column(&|_, id| id);
        let open = column(&|v, _| i64::from(v.fields.is_open()));
        let fingerprint = column(&|v, _| v.fields.fingerprint() as i64);
        let previous = column(&|v, _| v.change.previous.unwrap_or(0));
        let plan: Vec<&str> = moved
            .iter()
            .map(|(v, _)| v.change.key.plan_type.as_str())
            .collect();
        let end: Vec<Option<&str>> = moved
            .iter()
            .map(|(v, _)| v.end.as_ref().map(|d| d.as_str()))
            .collect();
        tx.execute_pg(
            "UPDATE records r SET version = m.version, open = m.open,
                 fingerprint = m.fingerprint, end_date = m.end_date
             FROM unnest(?2::bigint[], ?3::text[], ?4::bigint[], ?5::bigint[], ?6::bigint[],
                         ?7::text[], ?8::bigint[])
                  AS m (nhs, plan_type, version, open, fingerprint, end_date, previous)
             WHERE r.la_code = ?1 AND r.nhs = m.nhs AND r.plan_type = m.plan_type
               AND r.version = m.previous",
            &[
                &i64::from(la.as_u16()),
                &nhs,
                &plan,
                &version,
                &open,
                &fingerprint,
                &end,
                &previous,
            ],
        )?
    } else {
        let mut n = 0;
        for (v, id) in moved {
            // The record's new row, then the version it must still be at and the open
            // state that version had.
            let mut row = record_row(Arg::Int(la.as_u16().into()), v, *id);
            row.push(v.change.previous.map_or(Arg::Null, Arg::Int));
            let was_open = v.change.kind.replaces_open(v.fields.is_open());
            row.push(Arg::Int(i64::from(was_open)));
            let params: Vec<&dyn Param> = row.iter().map(|a| a as &dyn Param).collect();
            n += tx.execute(
                "UPDATE records SET version = ?4, open = ?5, fingerprint = ?6, end_date = ?7
                 WHERE open = ?9 AND la_code = ?1 AND nhs = ?2 AND plan_type = ?3 AND version = ?8",
                &params,
            )?;
        }
        n
    };
    if n != moved.len() as u64 {
        bail!("a record changed under this file: nothing was applied, run it again");
    }
    Ok(())
}
