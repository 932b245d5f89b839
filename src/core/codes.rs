//! The one list of stable error and warning codes (SPEC 2.4 and 4.1).
//!
//! Validation, acknowledgements, reports and CLI output all speak these codes, so the code a
//! data officer reads is the code a test asserts.

use serde::{Serialize, Serializer};
use std::fmt;

/// How a code affects the row or file it is raised on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The row is rejected; the rest of the file goes on.
    Error,
    /// The row is accepted and the finding reported.
    Warning,
    /// Nothing of the file is applied.
    File,
    /// A file outcome that is not an error (`DUPLICATE_FILE`, `QUARANTINED`).
    Outcome,
}

macro_rules! codes {
    ($($variant:ident => $text:literal, $severity:ident, $sentence:literal;)*) => {
        /// A stable code. `as_str` is the wire form used everywhere.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant,)* }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as it appears in files and output, e.g. `NHS_CHECK_DIGIT`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// Whether the code rejects a row, warns about it, or rejects the file.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// A general sentence a person at the sending organisation can act on.
            pub fn sentence(self) -> &'static str {
                match self { $(Code::$variant => $sentence,)* }
            }

            /// Parses the wire form back (used by tests, replays and reports).
            pub fn parse(text: &str) -> Option<Code> {
                match text { $($text => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    NhsMissing => "NHS_MISSING", Error,
        "the NHS number is empty: every row needs the child's (or, for UCPP, the mother's) NHS number";
    NhsFormat => "NHS_FORMAT", Error,
        "the NHS number must be 10 digits, optionally written in 3-3-4 groups separated by single spaces";
    NhsCheckDigit => "NHS_CHECK_DIGIT", Error,
        "the NHS number fails its Modulus 11 check digit: it has probably been mistyped, check it against the case record";
    PlanType => "PLAN_TYPE", Error,
        "the plan type must be CPP, LAC or UCPP";
    DateMissing => "DATE_MISSING", Error,
        "the start date is empty: every plan needs the date it started";
    DateFormat => "DATE_FORMAT", Error,
        "dates must be real calendar dates written as YYYY-MM-DD";
    DateOrder => "DATE_ORDER", Error,
        "the end date is before the start date";
    DateFuture => "DATE_FUTURE", Error,
        "the start date is after the extraction date of the file";
    LaMismatch => "LA_MISMATCH", Error,
        "the la_code of the row must be the LA named in the file name and owning the mailbox";
    PhoneMissing => "PHONE_MISSING", Error,
        "both the emergency duty team and the office-hours phone numbers are required";
    PhoneFormat => "PHONE_FORMAT", Error,
        "a UK phone number has 10 or 11 digits and starts with 0 (or +44 in place of the 0)";
    FieldTooLong => "FIELD_TOO_LONG", Error,
        "the field is longer than allowed (256 bytes for any field, 64 printable characters for local_ref)";
    Duplicate => "DUPLICATE", Error,
        "the same NHS number and plan type appear more than once in the file: both rows are rejected, send one row per plan";
    Setting => "SETTING", Error,
        "the care-setting code is not one of the published codes";
    AttendedAt => "ATTENDED_AT", Error,
        "attended_at must be an RFC 3339 time with an offset, not later than the time of the file";
    AttendedAtOld => "ATTENDED_AT_OLD", Error,
        "attended_at is further back than the gateway looks (7 days before the file by default): a look-up is for a child being seen now, not a past attendance";
    UserMissing => "USER_MISSING", Error,
        "user_name and user_role are required: every look-up is logged against the person who made it";
    EddNotUcpp => "EDD_NOT_UCPP", Warning,
        "an expected delivery date only means something on an unborn child protection plan (UCPP)";
    EddPassed => "EDD_PASSED", Warning,
        "the expected delivery date is more than 28 days ago: the born child should have a plan of its own";
    FileName => "FILE_NAME", File,
        "the file name must be CPIS_EXTRACT_<la_code>_<YYYYMMDDTHHMMSS>.csv or .xml";
    NotAuthorised => "NOT_AUTHORISED", File,
        "a mailbox may only send files for its own organisation";
    Encoding => "ENCODING", File,
        "the file must be UTF-8 text";
    Header => "HEADER", File,
        "the header row must name each required column once and no unknown columns, and every row must have as many fields as the header";
    Xml => "XML", File,
        "the XML document is not well formed or does not follow the extract schema";
    RecordCount => "RECORD_COUNT", File,
        "recordCount does not match the number of Plan elements: the file may be truncated, send it again";
    Empty => "EMPTY", File,
        "the file is empty: it has no header row";
    TooLarge => "TOO_LARGE", File,
        "the file is larger than the gateway accepts";
    Stale => "STALE", File,
        "the extraction time is not newer than the last extract applied for this LA";
    ErrorRate => "ERROR_RATE", File,
        "too many rows are invalid for the file to be applied: correct the extract and send it again";
    DuplicateFile => "DUPLICATE_FILE", Outcome,
        "the same bytes were already processed from this mailbox: nothing changed";
    Quarantined => "QUARANTINED", Outcome,
        "the file would close too many records (or all of them) and waits for an operator to release or reject it";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert!(seen.insert(code.as_str()), "{code} listed twice");
            assert!(
                !code.sentence().ends_with('.'),
                "{code}: no trailing period"
            );
        }
    }

    #[test]
    fn severities_follow_the_spec() {
        assert_eq!(Code::Duplicate.severity(), Severity::Error);
        assert_eq!(Code::EddPassed.severity(), Severity::Warning);
        assert_eq!(Code::RecordCount.severity(), Severity::File);
        assert_eq!(Code::ErrorRate.severity(), Severity::File);
    }
}
