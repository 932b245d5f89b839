//! The nightly reports' model (SPEC 5): a snapshot of figures in, the national table and
//! per-LA data-quality lists out, with their CSV forms. Rendering the HTML is elsewhere.

use super::codes::Code;
use super::ids::LaCode;
use super::outbound::csv_cell;
use super::report::Changes;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

/// What the store says about one LA for a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaFigures {
    pub last_extract_at: Option<DateTime<Utc>>,
    /// Open records by plan type: CPP, LAC, UCPP.
    pub open: [u64; 3],
    /// Reconciliation outcomes of the files applied since the previous report.
    pub changes: Changes,
    pub rejected_by_code: BTreeMap<Code, u64>,
    pub quarantined: u64,
    pub conflicts: u64,
    pub ucpp_past_edd: u64,
    pub attendances: u64,
    pub notifications: u64,
}

/// Files and rejected rows on one day (for the 30-day trend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub files: u64,
    pub rows_rejected: u64,
}

/// Everything a report is built from.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub date: NaiveDate,
    pub generated_at: DateTime<Utc>,
    /// The previous report's time: changes are counted since then.
    pub since: Option<DateTime<Utc>>,
    pub overdue_hours: u32,
    pub las: Vec<(LaCode, LaFigures)>,
    pub trend: Vec<Day>,
}

/// One LA's line of the national report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaLine {
    pub la: LaCode,
    pub figures: LaFigures,
    /// Hours since the last extract's extraction time.
    pub age_hours: Option<i64>,
    pub overdue: bool,
    pub rows_rejected: u64,
}

/// The national report.
#[derive(Debug, Clone)]
pub struct National {
    pub date: NaiveDate,
    pub generated_at: DateTime<Utc>,
    pub since: Option<DateTime<Utc>>,
    pub overdue_hours: u32,
    /// Every configured LA, overdue ones first (never sent before late), then by code.
    pub lines: Vec<LaLine>,
    pub rejected_by_code: BTreeMap<Code, u64>,
    pub trend: Vec<Day>,
}

impl National {
    pub fn overdue(&self) -> impl Iterator<Item = &LaLine> {
        self.lines.iter().filter(|l| l.overdue)
    }

    pub fn total_open(&self) -> u64 {
        self.lines
            .iter()
            .map(|l| l.figures.open.iter().sum::<u64>())
            .sum()
    }

    /// Whether anything at all happened or is known (a report of nothing says so).
    pub fn has_data(&self) -> bool {
        self.lines
            .iter()
            .any(|l| l.figures.last_extract_at.is_some() || l.figures.open.iter().any(|&n| n > 0))
    }
}

/// Builds the national report from a snapshot.
pub fn build(s: Snapshot) -> National {
    let mut rejected_by_code = BTreeMap::new();
    let mut lines: Vec<LaLine> = s
        .las
        .into_iter()
        .map(|(la, figures)| {
            for (code, n) in &figures.rejected_by_code {
                *rejected_by_code.entry(*code).or_insert(0) += n;
            }
            let age_hours = figures
                .last_extract_at
                .map(|t| (s.generated_at - t).num_hours());
            LaLine {
                la,
                overdue: age_hours.is_none_or(|h| h > i64::from(s.overdue_hours)),
                age_hours,
                rows_rejected: figures.rejected_by_code.values().sum(),
                figures,
            }
        })
        .collect();
    lines.sort_by_key(|l| (!l.overdue, l.age_hours.is_some(), l.la));
    National {
        date: s.date,
        generated_at: s.generated_at,
        since: s.since,
        overdue_hours: s.overdue_hours,
        lines,
        rejected_by_code,
        trend: s.trend,
    }
}

/// `summary.csv`: one row per configured LA.
pub fn summary_csv(n: &National) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "la_code",
        "la_name",
        "last_extract_at",
        "age_hours",
        "overdue",
        "open_cpp",
        "open_lac",
        "open_ucpp",
        "new",
        "updated",
        "unchanged",
        "ended",
        "reopened",
        "closed_by_absence",
        "retained",
        "rows_rejected",
        "quarantined_files",
        "cross_la_conflicts",
        "ucpp_past_edd",
        "attendances",
        "notifications_sent",
    ]);
    let mut lines: Vec<&LaLine> = n.lines.iter().collect();
    lines.sort_by_key(|l| l.la);
    for l in lines {
        let f = &l.figures;
        let c = &f.changes;
        let numbers = [
            f.open[0],
            f.open[1],
            f.open[2],
            c.new,
            c.updated,
            c.unchanged,
            c.ended,
            c.reopened,
            c.closed_by_absence,
            c.retained,
            l.rows_rejected,
            f.quarantined,
            f.conflicts,
            f.ucpp_past_edd,
            f.attendances,
            f.notifications,
        ];
        let mut record = vec![
            l.la.to_string(),
            csv_cell(l.la.name()).into_owned(),
            f.last_extract_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            l.age_hours.map(|h| h.to_string()).unwrap_or_default(),
            l.overdue.to_string(),
        ];
        record.extend(numbers.iter().map(u64::to_string));
        let _ = w.write_record(&record);
    }
    w.into_inner().unwrap_or_default()
}

/// One line of an LA's data-quality file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DqItem {
    Rejected {
        file: String,
        row: u64,
        column: String,
        code: String,
        message: String,
    },
    Retained {
        file: String,
        nhs: String,
        plan_type: String,
    },
    Conflict {
        nhs: String,
        other_la: String,
    },
    UcppPastEdd {
        nhs: String,
        expected_delivery: NaiveDate,
    },
}

/// `CPIS_DQ_<la>_<date>.csv`: the LA's rejected rows, retained records, conflicts with other
/// LAs (NHS number and the other LA's name only) and UCPPs past their expected delivery date.
pub fn la_dq_csv(items: &[DqItem]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "kind",
        "file",
        "row",
        "column",
        "code",
        "nhs_number",
        "plan_type",
        "detail",
    ]);
    for item in items {
        let record: [String; 8] = match item {
            DqItem::Rejected { file, row, column, code, message } => [
                "rejected_row".into(), file.clone(), row.to_string(), column.clone(), code.clone(), String::new(), String::new(), message.clone(),
            ],
            DqItem::Retained { file, nhs, plan_type } => [
                "retained".into(), file.clone(), String::new(), String::new(), String::new(), nhs.clone(), plan_type.clone(),
                "kept open: the extract's row for it was rejected, so it was not closed by absence".into(),
            ],
            DqItem::Conflict { nhs, other_la } => [
                "conflict".into(), String::new(), String::new(), String::new(), String::new(), nhs.clone(), String::new(),
                format!("also open with {other_la}"),
            ],
            DqItem::UcppPastEdd { nhs, expected_delivery } => [
                "ucpp_past_edd".into(), String::new(), String::new(), String::new(), String::new(), nhs.clone(), "UCPP".into(),
                format!("expected delivery {expected_delivery}: the born child should have a plan of its own"),
            ],
        };
        let _ = w.write_record(record.iter().map(|c| csv_cell(c).into_owned()));
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn la(code: &str) -> LaCode {
        LaCode::parse(code).unwrap()
    }

    #[test]
    fn overdue_first_and_totals() {
        let now: DateTime<Utc> = "2026-11-22T02:00:00Z".parse().unwrap();
        let fresh = LaFigures {
            last_extract_at: Some("2026-11-21T02:00:00Z".parse().unwrap()),
            open: [3, 2, 1],
            rejected_by_code: [(Code::NhsCheckDigit, 2), (Code::DateFormat, 1)].into(),
            ..Default::default()
        };
        let stale = LaFigures {
            last_extract_at: Some("2026-11-20T01:00:00Z".parse().unwrap()),
            open: [1, 0, 0],
            rejected_by_code: [(Code::NhsCheckDigit, 1)].into(),
            ..Default::default()
        };
        let n = build(Snapshot {
            date: "2026-11-22".parse().unwrap(),
            generated_at: now,
            since: None,
            overdue_hours: 36,
            las: vec![
                (la("919"), fresh),
                (la("202"), stale),
                (la("330"), LaFigures::default()),
            ],
            trend: vec![],
        });
        let order: Vec<(String, bool, Option<i64>)> = n
            .lines
            .iter()
            .map(|l| (l.la.to_string(), l.overdue, l.age_hours))
            .collect();
        assert_eq!(
            order,
            [
                ("330".into(), true, None),
                ("202".into(), true, Some(49)),
                ("919".into(), false, Some(24))
            ]
        );
        assert_eq!(n.rejected_by_code[&Code::NhsCheckDigit], 3);
        assert_eq!(n.total_open(), 7);
        let csv = String::from_utf8(summary_csv(&n)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1].starts_with("202,Camden,2026-11-20T01:00:00+00:00,49,true,1,0,0,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with("330,Birmingham,,,true,0,0,0,"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn an_empty_snapshot_says_so() {
        let n = build(Snapshot {
            date: "2026-11-22".parse().unwrap(),
            generated_at: "2026-11-22T02:00:00Z".parse().unwrap(),
            since: None,
            overdue_hours: 36,
            las: vec![(la("919"), LaFigures::default())],
            trend: vec![],
        });
        assert!(!n.has_data());
    }

    #[test]
    fn dq_rows_are_escaped() {
        let csv = String::from_utf8(la_dq_csv(&[DqItem::Rejected {
            file: "f.csv".into(),
            row: 3,
            column: "local_ref".into(),
            code: "FIELD_TOO_LONG".into(),
            message: "=1+1".into(),
        }]))
        .unwrap();
        assert!(csv.contains("'=1+1"), "{csv}");
    }
}
