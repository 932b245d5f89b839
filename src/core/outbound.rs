//! Outbound file content: acknowledgement CSVs and the escaping every outbound CSV gets.

use super::codes::Severity;
use super::report::{FileReport, Unlisted, MAX_LISTED_PROBLEMS};
use std::borrow::Cow;

/// Escapes a cell against spreadsheet formula injection (SPEC 4.3): a cell starting with
/// `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

/// The longest stem an outbound name carries: with its prefix and extension the name stays
/// well inside the 255 bytes a file system allows.
const MAX_STEM: usize = 200;

/// The stem of an inbound file name: the name without its last extension, with anything
/// but letters, digits, `.`, `-` and `_` replaced by `_` (a refused name may hold anything).
/// A stem longer than [`MAX_STEM`] is cut, and ends with 16 hex digits of its sha256 so
/// that two long names still differ.
pub fn stem(file: &str) -> String {
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let stem = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned();
    if stem.len() <= MAX_STEM {
        return stem;
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(stem.as_bytes()));
    format!("{}-{}", &stem[..MAX_STEM - 17], &hash[..16])
}

/// `CPIS_ACK_<stem>.json`
pub fn ack_json_name(file: &str) -> String {
    format!("CPIS_ACK_{}.json", stem(file))
}

/// `CPIS_ACK_<stem>.xml`: CP-IS's own acknowledgement (`FileResponse`), for an upload.
pub fn ack_xml_name(file: &str) -> String {
    format!("CPIS_ACK_{}.xml", stem(file))
}

/// `CPIS_ACK_<stem>.csv`
pub fn ack_csv_name(file: &str) -> String {
    format!("CPIS_ACK_{}.csv", stem(file))
}

/// The columns of an acknowledgement CSV (and of `validate --format csv`, after `file`).
pub const ACK_COLUMNS: [&str; 10] = [
    "row",
    "line",
    "column",
    "code",
    "severity",
    "value",
    "nhs_number",
    "plan_type",
    "local_ref",
    "message",
];

/// Whether a report has anything for an acknowledgement CSV.
pub fn has_problems(report: &FileReport) -> bool {
    !report.file_errors.is_empty() || !report.row_errors.is_empty()
}

/// Writes one report's problems: first the file errors (severity `file`: the whole file
/// was refused, no row is named), then every row error and warning with the row as the LA
/// sent it. Every text cell is escaped against formula injection.
fn write_problems(w: &mut csv::Writer<Vec<u8>>, report: &FileReport, lead: Option<&str>) {
    let mut record = |cells: [&str; 10]| {
        let escaped = cells.iter().map(|c| csv_cell(c));
        let _ = match lead {
            Some(file) => w.write_record(
                std::iter::once(csv_cell(file))
                    .chain(escaped)
                    .map(|c| c.into_owned()),
            ),
            None => w.write_record(escaped.map(|c| c.into_owned())),
        };
    };
    for p in &report.file_errors {
        record([
            "",
            "",
            "",
            p.code.as_str(),
            "file",
            "",
            "",
            "",
            "",
            &p.message,
        ]);
    }
    for p in &report.row_errors {
        let row = p.row.to_string();
        let line = p.line.map(|l| l.to_string()).unwrap_or_default();
        let severity = severity_name(p.severity);
        let sent = p.sent.as_deref();
        let get = |f: fn(&super::validate::Sent) -> &str| sent.map_or("", f);
        record([
            &row,
            &line,
            p.column,
            p.code.as_str(),
            severity,
            get(|s| &s.value),
            get(|s| &s.nhs_number),
            get(|s| &s.plan_type),
            get(|s| &s.local_ref),
            &p.message,
        ]);
    }
    for u in &report.row_errors_unlisted {
        record([
            "",
            "",
            "",
            u.code.as_str(),
            severity_name(u.severity),
            "",
            "",
            "",
            "",
            &unlisted_message(u),
        ]);
    }
}

fn severity_name(severity: Severity) -> &'static str {
    if severity == Severity::Warning {
        "warning"
    } else {
        "error"
    }
}

/// What an acknowledgement says of problems it does not list.
pub fn unlisted_message(u: &Unlisted) -> String {
    let plural = if u.count == 1 { "" } else { "s" };
    format!(
        "{} more {} {}{plural} not listed: an acknowledgement lists only the first {MAX_LISTED_PROBLEMS} row errors and warnings",
        u.count,
        u.code,
        severity_name(u.severity),
    )
}

/// A report's problems as the acknowledgement CSV (`CPIS_ACK_<stem>.csv`).
pub fn ack_csv(report: &FileReport) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(ACK_COLUMNS);
    write_problems(&mut w, report, None);
    w.into_inner().unwrap_or_default()
}

/// Several reports' problems as one CSV with a leading `file` column (`validate`).
pub fn problems_csv(reports: &[FileReport]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(std::iter::once("file").chain(ACK_COLUMNS));
    for r in reports {
        write_problems(&mut w, r, Some(&r.file));
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
        let long = ack_json_name(&format!("{}.csv", "a".repeat(250)));
        assert!(long.len() <= 220, "{long}");
        assert_ne!(long, ack_json_name(&format!("{}b.csv", "a".repeat(250))));
    }
}
