//! The files the morning report yields besides its pages: `summary.csv` (one row per LA,
//! for a spreadsheet) and each LA's `CPIS_DQ_<la>_<date>.csv` (its data-quality items).

use super::dq::{ActionKind, LaLine, National};
use super::outbound::csv_cell;
use chrono::NaiveDate;

/// `summary.csv`: one row per configured LA, dated so that days can be joined.
pub fn summary_csv(n: &National) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "report_date",
        "la_code",
        "la_name",
        "last_extract_at",
        "age_hours",
        "overdue",
        "needs_action",
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
        "files_accepted",
        "files_partial",
        "files_rejected",
        "files_quarantined",
        "rows_rejected",
        "quarantined_pending",
        "cross_la_conflicts",
        "ucpp_past_edd",
        "attendances",
        "notifications_sent",
        "notifications_pending",
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
            f.files.accepted,
            f.files.partial,
            f.files.rejected,
            f.files.quarantined,
            f.rows_rejected,
            f.quarantined.len() as u64,
            f.conflicts,
            f.ucpp_past_edd,
            f.attendances,
            f.notifications,
            f.notifications_pending,
        ];
        let mut record = vec![
            n.date.to_string(),
            l.la.to_string(),
            csv_cell(l.la.name()).into_owned(),
            f.last_extract_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            l.age_hours.map(|h| h.to_string()).unwrap_or_default(),
            l.overdue.to_string(),
            l.needs.map(ActionKind::label).unwrap_or("").to_owned(),
        ];
        record.extend(numbers.iter().map(u64::to_string));
        let _ = w.write_record(&record);
    }
    w.into_inner().unwrap_or_default()
}

/// One line of an LA's data-quality file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DqItem {
    /// No extract applied for too long (or ever): sent so that "no file" means "all fine".
    Overdue {
        last_extract_at: Option<String>,
        hours: Option<i64>,
        allowed: u32,
    },
    /// A file rejected whole (a file error: nothing of it was applied).
    RejectedFile {
        file: String,
        code: String,
        message: String,
    },
    /// A file held for the gateway's operators (nothing of it applied yet).
    Quarantined {
        file: String,
        reason: String,
    },
    Rejected {
        file: String,
        row: u64,
        column: String,
        code: String,
        message: String,
    },
    /// Row errors of a file beyond those its acknowledgement lists, for one code.
    RejectedUnlisted {
        file: String,
        code: String,
        count: u64,
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

impl DqItem {
    /// (kind, file, row, column, code, NHS number, plan type, detail)
    pub fn cells(&self) -> [String; 8] {
        let e = String::new;
        match self {
            DqItem::Overdue { last_extract_at, hours, allowed } => [
                "overdue".into(), e(), e(), e(), e(), e(), e(),
                match (last_extract_at, hours) {
                    (Some(at), Some(h)) => format!("no extract applied for {h} hours (the last was extracted {at}); one is expected at least every {allowed} hours"),
                    _ => format!("no extract of yours has been applied yet; one is expected at least every {allowed} hours"),
                },
            ],
            DqItem::RejectedFile { file, code, message } => [
                "rejected_file".into(), file.clone(), e(), e(), code.clone(), e(), e(), message.clone(),
            ],
            DqItem::Quarantined { file, reason } => [
                "quarantined".into(), file.clone(), e(), e(), "QUARANTINED".into(), e(), e(),
                format!("{reason}; nothing of it is applied until the gateway's operators decide (they may call you)"),
            ],
            DqItem::Rejected { file, row, column, code, message } => [
                "rejected_row".into(), file.clone(), row.to_string(), column.clone(), code.clone(), e(), e(), message.clone(),
            ],
            DqItem::RejectedUnlisted { file, code, count } => [
                "rejected_rows_unlisted".into(), file.clone(), e(), e(), code.clone(), e(), e(),
                format!("{count} more row errors with this code, not listed: an acknowledgement lists the first {} row errors and warnings of a file", super::report::MAX_LISTED_PROBLEMS),
            ],
            DqItem::Retained { file, nhs, plan_type } => [
                "retained".into(), file.clone(), e(), e(), e(), nhs.clone(), plan_type.clone(),
                "kept open: the extract's row for it was rejected, so it was not closed by absence".into(),
            ],
            DqItem::Conflict { nhs, other_la } => [
                "conflict".into(), e(), e(), e(), e(), nhs.clone(), e(), format!("also open with {other_la}"),
            ],
            DqItem::UcppPastEdd { nhs, expected_delivery } => [
                "ucpp_past_edd".into(), e(), e(), e(), e(), nhs.clone(), "UCPP".into(),
                format!("expected delivery {expected_delivery}: the born child should have a plan of its own"),
            ],
        }
    }
}

/// `CPIS_DQ_<la>_<date>.csv`: the LA's overdue notice, files rejected whole or quarantined,
/// rejected rows, retained records,
/// conflicts with other LAs (NHS number and the other LA's name only) and UCPPs past
/// their expected delivery date.
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
        let _ = w.write_record(item.cells().iter().map(|c| csv_cell(c).into_owned()));
    }
    w.into_inner().unwrap_or_default()
}
