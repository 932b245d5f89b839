//! Human-readable text for file reports: grouped by code, the first rows of each, totals.

use super::codes::{Code, Severity};
use super::report::FileReport;
use std::collections::BTreeMap;
use std::fmt::Write;

/// How many rows of each code are listed before "and N more".
pub const ROWS_PER_CODE: usize = 5;

/// Renders one file's report for a terminal or a log.
pub fn file_report_text(report: &FileReport) -> String {
    let mut out = String::new();
    let mailbox = report.mailbox.as_deref().unwrap_or("-");
    let _ = writeln!(
        out,
        "{}  [{mailbox}]  {} ({})",
        report.file,
        report.outcome.as_str(),
        report.response_code
    );
    let _ = writeln!(
        out,
        "  rows: {} ({} valid, {} invalid), warnings: {}{}",
        report.rows,
        report.valid_rows,
        report.invalid_rows,
        report.warnings,
        if report.blank_rows > 0 {
            format!(", blank rows skipped: {}", report.blank_rows)
        } else {
            String::new()
        }
    );
    if let Some(c) = &report.changes {
        let _ = writeln!(
            out,
            "  changes: new {}, updated {}, unchanged {}, ended {}, reopened {}, closed by absence {}, retained {}",
            c.new, c.updated, c.unchanged, c.ended, c.reopened, c.closed_by_absence, c.retained
        );
    }
    if let Some(id) = &report.quarantine_id {
        let _ = writeln!(out, "  quarantined as {id}");
    }
    for p in &report.file_errors {
        let _ = writeln!(out, "  file error {}: {}", p.code, p.message);
    }
    let mut by_code: BTreeMap<(bool, Code), Vec<usize>> = BTreeMap::new();
    for (i, p) in report.row_errors.iter().enumerate() {
        by_code
            .entry((p.severity == Severity::Warning, p.code))
            .or_default()
            .push(i);
    }
    for ((warning, code), indexes) in &by_code {
        // Rows, not problems: one row can have the same code in two columns.
        let rows: std::collections::BTreeSet<u64> =
            indexes.iter().map(|&i| report.row_errors[i].row).collect();
        let _ = writeln!(
            out,
            "  {} {code}: {} row{} - {}",
            if *warning { "warning" } else { "error" },
            rows.len(),
            if rows.len() == 1 { "" } else { "s" },
            code.sentence()
        );
        for &i in indexes.iter().take(ROWS_PER_CODE) {
            let p = &report.row_errors[i];
            let line = p.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            let _ = writeln!(
                out,
                "      row {}{line}, {}: {}",
                p.row, p.column, p.message
            );
        }
        if indexes.len() > ROWS_PER_CODE {
            let _ = writeln!(out, "      ... and {} more", indexes.len() - ROWS_PER_CODE);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::report::FileKind;
    use crate::core::validate::RowProblem;

    #[test]
    fn counts_rows_not_problems_and_shows_lines() {
        let mut r = FileReport::new(
            "CPIS_EXTRACT_919_20261121T020000.csv",
            Some("LA919".into()),
            FileKind::Extract,
            chrono::DateTime::UNIX_EPOCH,
        );
        for column in ["start_date", "end_date"] {
            r.row_errors.push(RowProblem {
                row: 3,
                line: Some(5),
                column,
                code: Code::DateFormat,
                severity: Severity::Error,
                message: "not a date".into(),
                sent: None,
            });
        }
        let text = file_report_text(&r);
        assert!(text.contains("error DATE_FORMAT: 1 row -"), "{text}");
        assert!(text.contains("row 3 (line 5), end_date"), "{text}");
    }
}
