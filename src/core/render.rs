//! Human-readable text for file reports (grouped by code, the first rows of each, totals),
//! and text from outside made safe for a terminal (`printable`).

use super::codes::{Code, Severity};
use super::outbound::unlisted_message;
use super::report::FileReport;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Whether a character is invisible or moves text about: C0 and C1 controls, DEL, soft
/// hyphens, zero-width characters, line and paragraph separators, bidirectional marks and
/// overrides, the byte-order mark. Never printed raw, and no name may be made of them.
pub fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
        )
}

fn unsafe_char(c: char) -> bool {
    invisible(c)
}

/// Text from outside (a file name, a peer's message) made safe for a terminal: unsafe
/// characters are written as escapes (`\n`, `\u{1b}`), so a name can neither colour the
/// screen, move the cursor nor forge a line of its own.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// How many rows of each code are listed before "and N more".
pub const ROWS_PER_CODE: usize = 5;

/// Renders one file's report for a terminal or a log.
pub fn file_report_text(report: &FileReport) -> String {
    let mut out = String::new();
    let mailbox = report.mailbox.as_deref().unwrap_or("-");
    let _ = writeln!(
        out,
        "{}  [{}]  {} ({})",
        printable(&report.file),
        printable(mailbox),
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
        let _ = writeln!(out, "  file error {}: {}", p.code, printable(&p.message));
    }
    let mut by_code: BTreeMap<(bool, Code), Vec<usize>> = BTreeMap::new();
    for (i, p) in report.row_errors.iter().enumerate() {
        by_code
            .entry((p.severity == Severity::Warning, p.code))
            .or_default()
            .push(i);
    }
    for u in &report.row_errors_unlisted {
        by_code
            .entry((u.severity == Severity::Warning, u.code))
            .or_default();
    }
    for ((warning, code), indexes) in &by_code {
        // Rows, not problems: one row can have the same code in two columns.
        let rows: std::collections::BTreeSet<u64> =
            indexes.iter().map(|&i| report.row_errors[i].row).collect();
        let unlisted = report
            .row_errors_unlisted
            .iter()
            .find(|u| u.code == *code && (u.severity == Severity::Warning) == *warning);
        let counted = match (rows.len(), unlisted) {
            (0, Some(u)) => unlisted_message(u),
            (n, u) => format!(
                "{n} row{}{}",
                if n == 1 { "" } else { "s" },
                u.map(|u| format!(", and {}", unlisted_message(u)))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(
            out,
            "  {} {code}: {counted} - {}",
            if *warning { "warning" } else { "error" },
            code.sentence()
        );
        for &i in indexes.iter().take(ROWS_PER_CODE) {
            let p = &report.row_errors[i];
            let line = p.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            let _ = writeln!(
                out,
                "      row {}{line}, {}: {}",
                p.row,
                p.column,
                printable(&p.message)
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
        // Problems past the listed ones are counted, under their code.
        r.count_unlisted(Code::DateFormat, Severity::Error, 4);
        r.count_unlisted(Code::PhoneFormat, Severity::Error, 1);
        let text = file_report_text(&r);
        assert!(
            text.contains("error DATE_FORMAT: 1 row, and 4 more DATE_FORMAT errors not listed"),
            "{text}"
        );
        assert!(
            text.contains("error PHONE_FORMAT: 1 more PHONE_FORMAT error not listed"),
            "{text}"
        );
    }

    #[test]
    fn names_cannot_reach_the_terminal_raw() {
        assert_eq!(printable("CPIS_EXTRACT_919.csv"), "CPIS_EXTRACT_919.csv");
        assert_eq!(printable("ok é ü"), "ok é ü");
        let shown = printable("a\u{1b}[31mred\nfake log.csv\u{9b}\u{202e}\u{2028}\u{200f}");
        assert_eq!(
            shown,
            "a\\u{1b}[31mred\\nfake log.csv\\u{9b}\\u{202e}\\u{2028}\\u{200f}"
        );
        assert!(!shown.chars().any(unsafe_char));
    }
}
