//! CP-IS's acknowledgement of an upload, `FileResponse` (REPC_MT000003GB01): what an LA
//! case system that sends CP-IS's own upload reads back (interface 9.4), written beside
//! our JSON acknowledgement. The pieces are written in the order the message's schema
//! fixes; the caller streams the records between them (reading the archived upload again),
//! so no piece holds more than one record.

use super::extract::cpis::{LOCALISATION, NAMESPACE};
use super::report::RefusedRows;
use chrono::{DateTime, Utc};
use quick_xml::escape::escape;
use std::fmt::Write;

/// CP-IS's record response codes (vocabulary `…4.17.473`).
pub const RECORD_RESPONSE_SYSTEM: &str = "2.16.840.1.113883.2.1.3.2.4.17.473";

/// What CP-IS's acknowledgement says of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResponse {
    /// CPR06: every plan of it applied (or removed, for a delete date).
    Applied,
    /// CPR04: refused for its NHS number (not 10 digits, or a failed check digit).
    NhsNumber,
    /// CPR07: refused for anything else.
    Refused,
}

impl RecordResponse {
    pub fn code(self) -> &'static str {
        match self {
            RecordResponse::Applied => "CPR06",
            RecordResponse::NhsNumber => "CPR04",
            RecordResponse::Refused => "CPR07",
        }
    }

    /// The vocabulary's own text (its typo in CPR07 too: systems may compare it).
    pub fn display_name(self) -> &'static str {
        match self {
            RecordResponse::Applied => "Successful Record Upload",
            RecordResponse::NhsNumber => "PDS Error - NHS Number Format Incorrect",
            RecordResponse::Refused => "Unsucessful Record Upload",
        }
    }

    /// The response for a record whose rows are `rows` rows from `first`, from what was
    /// decided of each row.
    pub fn of(refused: &RefusedRows, first: u64, rows: u64) -> RecordResponse {
        let rows = first..first + rows;
        if !rows.clone().any(|r| refused.is_refused(r)) {
            RecordResponse::Applied
        } else if rows.clone().any(|r| refused.for_nhs_number(r)) {
            RecordResponse::NhsNumber
        } else {
            RecordResponse::Refused
        }
    }
}

/// The display name CP-IS's vocabulary gives a file response code.
pub fn file_display_name(code: &str) -> &'static str {
    match code {
        "CPF01" => "File Level Error",
        "CPF02" => "Successful File Upload",
        "CPF03" => "Partial File Upload",
        _ => "Unsuccessful File Upload",
    }
}

/// The LA the acknowledgement goes to, as its upload named itself (or as the gateway
/// knows it, when the upload could not be read that far).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub la_code: String,
    pub la_name: String,
    /// `(use, number)`: `WP` office hours, `EC` emergency duty.
    pub phones: Vec<(&'static str, String)>,
}

/// What the acknowledgement says of the file.
#[derive(Debug, Clone)]
pub struct Head<'a> {
    pub created: DateTime<Utc>,
    /// `File/id@extension`, when the upload was read that far.
    pub sequence: Option<u64>,
    /// The records read, when the upload was read to its end.
    pub records: Option<u64>,
    /// CPF01 to CPF04, as our acknowledgement says.
    pub response_code: &'a str,
}

/// From the declaration to the file's response code; then `acknowledgementRecord` (if
/// any record is reported: [`start_records`], [`detail`], [`end_records`]), then
/// [`receiver`].
pub fn head(out: &mut String, head: &Head<'_>) {
    let number = |n: Option<u64>| n.map_or("-1".to_owned(), |n| n.to_string());
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <FileResponse xmlns=\"{NAMESPACE}\" xmlns:npfitlc=\"{LOCALISATION}\">\n \
         <creationTime value=\"{}\"/>\n \
         <id extension=\"{}\"/>\n \
         <transmissionQuantity value=\"{}\"/>\n \
         <acknowledgementFile>\n  \
         <acknowledgementFileDetail><code code=\"{}\" displayName=\"{}\"/></acknowledgementFileDetail>\n \
         </acknowledgementFile>\n",
        head.created.format("%Y%m%d%H%M%S"),
        number(head.sequence),
        number(head.records),
        escape(head.response_code),
        file_display_name(head.response_code),
    );
}

pub fn start_records(out: &mut String) {
    out.push_str(" <acknowledgementRecord>\n");
}

/// One record's response; `position` counts records from 1, `nhs` is its NHS number as
/// sent. The location is the LA's way back to the record: `record 3: NHS number …`.
pub fn detail(out: &mut String, response: RecordResponse, position: u64, nhs: Option<&str>) {
    let _ = writeln!(
        out,
        "  <acknowledgementRecordDetail><code code=\"{}\" codeSystem=\"{RECORD_RESPONSE_SYSTEM}\" displayName=\"{}\"/>\
         <location>{}</location></acknowledgementRecordDetail>",
        response.code(),
        response.display_name(),
        escape(location(position, nhs).as_str())
    );
}

/// Where a record is: its position among the upload's records, and its NHS number.
pub fn location(position: u64, nhs: Option<&str>) -> String {
    match nhs.filter(|n| !n.is_empty()) {
        Some(nhs) => format!("record {position}: NHS number {nhs}"),
        None => format!("record {position}: no NHS number"),
    }
}

pub fn end_records(out: &mut String) {
    out.push_str(" </acknowledgementRecord>\n");
}

/// The LA, and how many records are returned as refused; then each [`message`], then
/// [`tail`].
pub fn receiver(out: &mut String, to: &Receiver, failed: u64) {
    let _ = write!(
        out,
        " <communicationFunctionRcv>\n  <organisation>\n   \
         <id root=\"2.16.840.1.113883.2.1.3.2.4.19.1\" extension=\"{}\"/>\n   <name>{}</name>\n",
        escape(to.la_code.as_str()),
        escape(to.la_name.as_str())
    );
    // At least one phone, digits only after `tel:` (the schema's pattern).
    let phones: Vec<(&str, String)> = if to.phones.is_empty() {
        vec![("WP", String::new())]
    } else {
        to.phones
            .iter()
            .take(2)
            .map(|(use_, n)| {
                let digits: String = n
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == '+')
                    .collect();
                (*use_, digits)
            })
            .collect()
    };
    for (use_, number) in phones {
        let _ = writeln!(
            out,
            "   <telecom value=\"tel:{}\" use=\"{use_}\"/>",
            escape(number.as_str())
        );
    }
    let _ = writeln!(
        out,
        "  </organisation>\n </communicationFunctionRcv>\n \
         <failedReturnedCP-ISRecords><value value=\"{failed}\"/></failedReturnedCP-ISRecords>"
    );
}

/// A refused record, returned as the LA sent it (`echo`: its plans and people, as
/// `UploadRecord::echo` writes them).
pub fn message(out: &mut String, echo: &str) {
    out.push_str(
        " <message><cP-ISLAAcknowledgementResponse><pertinentInformation1><invalidCP-ISRecord>",
    );
    out.push_str(echo);
    out.push_str("</invalidCP-ISRecord></pertinentInformation1></cP-ISLAAcknowledgementResponse></message>\n");
}

/// How many records were applied, and the end.
pub fn tail(out: &mut String, successful: u64) {
    let _ = write!(
        out,
        " <successfulReturnedCP-ISRecords><value value=\"{successful}\"/></successfulReturnedCP-ISRecords>\n\
         </FileResponse>\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::codes::Code;
    use crate::core::validate::RowProblem;

    fn problem(row: u64, code: Code) -> RowProblem {
        RowProblem {
            row,
            line: None,
            column: "x",
            code,
            severity: code.severity(),
            message: String::new(),
            sent: None,
        }
    }

    #[test]
    fn a_record_is_refused_for_any_error_of_its_rows_and_for_its_number_first() {
        let mut refused = RefusedRows::default();
        refused.mark(2, &[problem(2, Code::DateFormat)]);
        refused.mark(4, &[problem(4, Code::PlanType)]);
        refused.mark(
            5,
            &[problem(5, Code::EddPassed), problem(5, Code::NhsCheckDigit)],
        );
        // Row 3 had only a warning: it was not refused, so it is not marked.
        let of = |first, rows| RecordResponse::of(&refused, first, rows);
        assert_eq!(of(1, 1), RecordResponse::Applied);
        assert_eq!(of(2, 1), RecordResponse::Refused);
        // A warning alone applies the row.
        assert_eq!(of(3, 1), RecordResponse::Applied);
        assert_eq!(of(4, 2), RecordResponse::NhsNumber);
        assert_eq!(of(6, 3), RecordResponse::Applied);
        // A record whose plans were all deleted gives no row: it was applied.
        assert_eq!(of(4, 0), RecordResponse::Applied);
    }

    #[test]
    fn the_pieces_make_one_document_in_the_schemas_order() {
        let mut out = String::new();
        head(
            &mut out,
            &Head {
                created: DateTime::parse_from_rfc3339("2026-11-21T03:04:05Z")
                    .unwrap()
                    .with_timezone(&Utc),
                sequence: Some(118),
                records: Some(2),
                response_code: "CPF03",
            },
        );
        start_records(&mut out);
        detail(&mut out, RecordResponse::Applied, 1, Some("9997770005"));
        detail(&mut out, RecordResponse::Refused, 2, None);
        end_records(&mut out);
        receiver(
            &mut out,
            &Receiver {
                la_code: "908".into(),
                la_name: "Cornwall & Isles".into(),
                phones: vec![("WP", "01632 960451".into())],
            },
            1,
        );
        message(&mut out, "<subject/>");
        tail(&mut out, 1);
        let order = [
            "<creationTime value=\"20261121030405\"/>",
            "<id extension=\"118\"/>",
            "<transmissionQuantity value=\"2\"/>",
            "code=\"CPF03\" displayName=\"Partial File Upload\"",
            "code=\"CPR06\"",
            "<location>record 1: NHS number 9997770005</location>",
            "<location>record 2: no NHS number</location>",
            "<name>Cornwall &amp; Isles</name>",
            "<telecom value=\"tel:01632960451\" use=\"WP\"/>",
            "<failedReturnedCP-ISRecords><value value=\"1\"/>",
            "<invalidCP-ISRecord><subject/></invalidCP-ISRecord>",
            "<successfulReturnedCP-ISRecords><value value=\"1\"/>",
            "</FileResponse>",
        ];
        let mut at = 0;
        for piece in order {
            let found = out[at..]
                .find(piece)
                .unwrap_or_else(|| panic!("{piece} after {at}: {out}"));
            at += found + piece.len();
        }
    }

    #[test]
    fn what_was_not_read_is_minus_one_and_a_phone_is_always_given() {
        let mut out = String::new();
        head(
            &mut out,
            &Head {
                created: Utc::now(),
                sequence: None,
                records: None,
                response_code: "CPF01",
            },
        );
        receiver(
            &mut out,
            &Receiver {
                la_code: "908".into(),
                la_name: "Cornwall".into(),
                phones: vec![],
            },
            0,
        );
        assert!(out.contains("<id extension=\"-1\"/>"));
        assert!(out.contains("<transmissionQuantity value=\"-1\"/>"));
        assert!(out.contains("displayName=\"File Level Error\""));
        assert!(out.contains("<telecom value=\"tel:\" use=\"WP\"/>"));
    }
}
