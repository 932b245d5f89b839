//! Outbound file content: acknowledgement CSVs and the escaping every outbound CSV gets.

use super::report::FileReport;
use std::borrow::Cow;

/// Escapes a cell against spreadsheet formula injection (SPEC 4.3): a cell starting with
/// `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

/// The stem of an inbound file name: the name without its last extension, with anything
/// but letters, digits, `.`, `-` and `_` replaced by `_` (a refused name may hold anything).
pub fn stem(file: &str) -> String {
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// `CPIS_ACK_<stem>.json`
pub fn ack_json_name(file: &str) -> String {
    format!("CPIS_ACK_{}.json", stem(file))
}

/// `CPIS_ACK_<stem>.csv`
pub fn ack_csv_name(file: &str) -> String {
    format!("CPIS_ACK_{}.csv", stem(file))
}

/// The row errors and warnings of a report as CSV (`row,line,column,code,severity,message`).
pub fn ack_csv(report: &FileReport) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["row", "line", "column", "code", "severity", "message"]);
    for p in &report.row_errors {
        let row = p.row.to_string();
        let line = p.line.map(|l| l.to_string()).unwrap_or_default();
        let severity = if p.severity == super::codes::Severity::Warning {
            "warning"
        } else {
            "error"
        };
        let _ = w.write_record([
            row.as_str(),
            &line,
            &csv_cell(p.column),
            p.code.as_str(),
            severity,
            &csv_cell(&p.message),
        ]);
    }
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_escaped() {
        for (input, expect) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+44", "'+44"),
            ("-1", "'-1"),
            ("@SUM", "'@SUM"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("Dr Who", "Dr Who"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(input), expect);
        }
    }

    #[test]
    fn ack_names() {
        assert_eq!(
            ack_json_name("CPIS_EXTRACT_919_20261121T020000.csv"),
            "CPIS_ACK_CPIS_EXTRACT_919_20261121T020000.json"
        );
        assert_eq!(ack_csv_name("odd"), "CPIS_ACK_odd.csv");
        assert_eq!(ack_json_name("..\nx y/z.csv"), "CPIS_ACK__x_y_z.json");
    }
}
