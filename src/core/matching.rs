//! Matching a child against the records (SPEC 4.1): which records flag at a moment, which
//! are shown as recently ended, and who is notified.

use super::ids::LaCode;
use super::plan::PlanType;
use super::validate::RecordFields;
use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::Serialize;

/// A record of the child, any LA, as the store holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRecord {
    pub la: LaCode,
    pub plan_type: PlanType,
    pub fields: RecordFields,
}

/// How a record stands at the moment of an attendance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Ended,
}

/// One flag shown to a health professional: what the NHS side may see, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub plan_type: PlanType,
    pub la_code: LaCode,
    pub la_name: &'static str,
    pub edt_phone: String,
    pub office_phone: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub status: Status,
}

/// Open at `day` (start ≤ day ≤ end, or no end), or ended within the 12 months before it.
pub fn status_on(fields: &RecordFields, day: NaiveDate) -> Option<Status> {
    if fields.start > day {
        return None;
    }
    match fields.end {
        None => Some(Status::Open),
        Some(end) if end >= day => Some(Status::Open),
        Some(end) => (end >= ended_shown_from(day)).then_some(Status::Ended),
    }
}

/// The earliest end date a record ended before `day` may have and still be shown at it
/// (ended within the 12 months before it).
pub fn ended_shown_from(day: NaiveDate) -> NaiveDate {
    day.checked_sub_months(Months::new(12))
        .unwrap_or(NaiveDate::MIN)
}

/// The earliest end date a record may have and still be shown at an attendance a file
/// received at `now` may hold: attendances go back at most `max_age_days` (and a day for
/// time zones), records ended within the 12 months before one are shown.
pub fn shown_since(now: chrono::DateTime<chrono::Utc>, max_age_days: u32) -> chrono::NaiveDate {
    let earliest = (now - chrono::Duration::days(i64::from(max_age_days) + 1)).date_naive();
    ended_shown_from(earliest)
        .pred_opt()
        .unwrap_or(NaiveDate::MIN)
}

/// The flags a child's records give at `at` (open first, then ended; by LA and plan).
pub fn flags_at(records: &[ChildRecord], at: DateTime<Utc>) -> Vec<Flag> {
    let day = at.date_naive();
    let mut flags: Vec<Flag> = records
        .iter()
        .filter_map(|r| {
            status_on(&r.fields, day).map(|status| Flag {
                plan_type: r.plan_type,
                la_code: r.la,
                la_name: r.la.name(),
                edt_phone: r.fields.edt_phone.to_string(),
                office_phone: r.fields.office_phone.to_string(),
                start_date: r.fields.start,
                end_date: r.fields.end,
                status,
            })
        })
        .collect();
    flags.sort_by_key(|f| (f.status != Status::Open, f.la_code, f.plan_type));
    flags
}

/// The LAs to notify for flags: those with an open record (ended ones notify nobody).
pub fn las_to_notify(flags: &[Flag]) -> Vec<LaCode> {
    let mut las: Vec<LaCode> = flags
        .iter()
        .filter(|f| f.status == Status::Open)
        .map(|f| f.la_code)
        .collect();
    las.dedup();
    las
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::phone::Phone;

    fn record(la: &str, start: &str, end: Option<&str>) -> ChildRecord {
        ChildRecord {
            la: LaCode::parse(la).unwrap(),
            plan_type: PlanType::Cpp,
            fields: RecordFields {
                start: start.parse().unwrap(),
                end: end.map(|e| e.parse().unwrap()),
                edt_phone: Phone::parse("01632 960001").unwrap(),
                office_phone: Phone::parse("01632 960002").unwrap(),
                local_ref: Some("secret case notes ref".into()),
                expected_delivery: None,
            },
        }
    }

    #[test]
    fn open_ended_and_forgotten() {
        let at: DateTime<Utc> = "2026-11-21T09:42:00Z".parse().unwrap();
        let records = [
            record("919", "2026-01-01", None),
            record("202", "2025-01-01", Some("2026-11-21")),
            record("330", "2025-01-01", Some("2025-12-01")),
            record("942", "2024-01-01", Some("2025-11-20")),
            record("201", "2026-11-22", None),
        ];
        let flags = flags_at(&records, at);
        let got: Vec<(String, Status)> = flags
            .iter()
            .map(|f| (f.la_code.to_string(), f.status))
            .collect();
        assert_eq!(
            got,
            [("202".into(), Status::Open), ("919".into(), Status::Open), ("330".into(), Status::Ended)],
            "ended on the day is still open; ended over 12 months ago or not yet started is not shown"
        );
        assert_eq!(
            las_to_notify(&flags)
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>(),
            ["202", "919"]
        );
        let json = serde_json::to_string(&flags[0]).unwrap();
        assert!(
            !json.contains("secret"),
            "plan contents (local_ref) never reach the NHS side: {json}"
        );
    }
}
