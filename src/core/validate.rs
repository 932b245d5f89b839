//! Row validation of LA extracts (SPEC 2.2, 2.4): a [`RawRow`] in, a [`PlanRow`] or the
//! reasons it was rejected out. A rejected row is data, not an `Err`.

use super::codes::{Code, Severity};
use super::date::{parse_iso_date, IsoDate};
use super::extract::{shown, Column, Dialect, RawRow, MAX_FIELD_BYTES};
use super::ids::LaCode;
use super::nhs::NhsNumber;
use super::phone::Phone;
use super::plan::PlanType;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// The longest `local_ref`, in characters.
pub const MAX_LOCAL_REF_CHARS: usize = 64;

/// A UCPP whose expected delivery date is more than this many days before the extraction
/// date is reported with `EDD_PASSED`.
pub const EDD_GRACE_DAYS: i64 = 28;

/// The key of a record: (`la_code`, `nhs_number`, `plan_type`); within one file the LA is
/// fixed, so NHS number and plan type identify the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub nhs: NhsNumber,
    pub plan_type: PlanType,
}

impl RowKey {
    /// Packs the key into 36 bits (NHS number < 2^34, plan type in 2 bits).
    pub fn packed(self) -> u64 {
        (self.nhs.value() << 2) | self.plan_type.index()
    }
}

/// The shared fields of a record: what an extract row says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFields {
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub edt_phone: Phone,
    pub office_phone: Phone,
    pub local_ref: Option<String>,
    pub expected_delivery: Option<NaiveDate>,
}

impl RecordFields {
    /// Open means no end date (an end date, even a future one, ends the record's openness
    /// for reconciliation; attendance matching looks at the dates themselves).
    pub fn is_open(&self) -> bool {
        self.end.is_none()
    }

    /// A stable 64-bit fingerprint of every field (FNV-1a over a canonical text), stored
    /// beside each record so that reconciliation compares numbers instead of reading and
    /// parsing every field of every record. Never change the encoding: stores keep it.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h ^= 0x1f;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        let (end, expected) = (
            self.end.map(IsoDate::new),
            self.expected_delivery.map(IsoDate::new),
        );
        eat(IsoDate::new(self.start).as_bytes());
        eat(end.as_ref().map_or(&[], IsoDate::as_bytes));
        eat(self.edt_phone.as_str().as_bytes());
        eat(self.office_phone.as_str().as_bytes());
        eat(self.local_ref.as_deref().unwrap_or("\u{0}").as_bytes());
        eat(expected.as_ref().map_or(&[], IsoDate::as_bytes));
        h
    }
}

/// A valid extract row: its key and what it says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub row: u64,
    pub nhs: NhsNumber,
    pub plan_type: PlanType,
    pub fields: RecordFields,
}

impl PlanRow {
    pub fn key(&self) -> RowKey {
        RowKey {
            nhs: self.nhs,
            plan_type: self.plan_type,
        }
    }
}

/// One row error or warning, as it appears in acknowledgements and CLI output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// 1 = the first data row.
    pub row: u64,
    /// The line of the file the row starts on, when known (CSV).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub column: &'static str,
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// The row as the LA sent it, so its data officer can find it (its own data, echoed
    /// back to it only): set for extract rows, never for attendance files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<Box<Sent>>,
}

/// What an extract row held, as sent (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub nhs_number: String,
    pub plan_type: String,
    pub local_ref: String,
    /// The value of the column the problem is about.
    pub value: String,
}

/// What became of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid(PlanRow),
    /// Rejected; `key` is set when its NHS number and plan type are valid (the record it
    /// names is then retained, never closed by absence).
    Rejected {
        key: Option<RowKey>,
    },
}

/// The rules for the rows of one extract file.
#[derive(Debug, Clone)]
pub struct ExtractRules {
    la_text: String,
    extraction_date: NaiveDate,
    dialect: Dialect,
}

impl ExtractRules {
    pub fn new(la: LaCode, extracted_at: DateTime<Utc>, dialect: Dialect) -> ExtractRules {
        ExtractRules {
            la_text: la.to_string(),
            extraction_date: extracted_at.date_naive(),
            dialect,
        }
    }

    /// Validates one row, appending its errors and warnings to `problems`.
    pub fn check(&self, raw: &RawRow<'_>, problems: &mut Vec<RowProblem>) -> Verdict {
        let mut row = RowCheck {
            rules: self,
            raw,
            problems,
            rejected: false,
        };
        for column in Column::ALL {
            row.check_length(column);
        }
        let nhs = row.nhs();
        let plan_type = row.plan_type();
        let start = row.start_date();
        let end = row.end_date(start);
        row.la_code();
        let edt_phone = row.phone(Column::EdtPhone, "emergency duty team");
        let office_phone = row.phone(Column::OfficePhone, "office-hours");
        let local_ref = row.local_ref();
        let expected_delivery = row.expected_delivery(plan_type);
        let key = match (nhs, plan_type) {
            (Some(nhs), Some(plan_type)) => Some(RowKey { nhs, plan_type }),
            _ => None,
        };
        match (row.rejected, key, start, edt_phone, office_phone) {
            (false, Some(key), Some(start), Some(edt_phone), Some(office_phone)) => {
                Verdict::Valid(PlanRow {
                    row: raw.number,
                    nhs: key.nhs,
                    plan_type: key.plan_type,
                    fields: RecordFields {
                        start,
                        end,
                        edt_phone,
                        office_phone,
                        local_ref,
                        expected_delivery,
                    },
                })
            }
            _ => Verdict::Rejected { key },
        }
    }
}

/// The checks of one row, sharing the row and its problem list.
struct RowCheck<'r, 'a> {
    rules: &'r ExtractRules,
    raw: &'r RawRow<'a>,
    problems: &'r mut Vec<RowProblem>,
    rejected: bool,
}

/// A value as the acknowledgement echoes it: whole up to the longest a field may be, else
/// its first [`MAX_FIELD_BYTES`] bytes and "…" (a row of 64 KiB values, repeated, must not
/// make a report as large as the file).
fn echoed(value: &str) -> String {
    if value.len() <= MAX_FIELD_BYTES {
        return value.to_owned();
    }
    let mut cut = MAX_FIELD_BYTES;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &value[..cut])
}

impl<'a> RowCheck<'_, 'a> {
    fn report(&mut self, column: Column, code: Code, message: String) {
        if code.severity() == Severity::Error {
            self.rejected = true;
        }
        let text = |c: Column| echoed(self.raw.get(c).unwrap_or(""));
        self.problems.push(RowProblem {
            row: self.raw.number,
            line: self.raw.line,
            column: self.rules.dialect.name(column),
            code,
            severity: code.severity(),
            message,
            sent: Some(Box::new(Sent {
                nhs_number: text(Column::NhsNumber),
                plan_type: text(Column::PlanType),
                local_ref: text(Column::LocalRef),
                value: text(column),
            })),
        });
    }

    fn name(&self, column: Column) -> &'static str {
        self.rules.dialect.name(column)
    }

    /// The column's text if it is present, not empty and not too long.
    fn value(&self, column: Column) -> Option<&'a str> {
        self.raw
            .get(column)
            .filter(|v| !v.is_empty() && v.len() <= MAX_FIELD_BYTES)
    }

    fn too_long(&self, column: Column) -> bool {
        self.raw
            .get(column)
            .is_some_and(|v| v.len() > MAX_FIELD_BYTES)
    }

    fn check_length(&mut self, column: Column) {
        if let Some(v) = self.raw.get(column).filter(|v| v.len() > MAX_FIELD_BYTES) {
            let message = format!(
                "{} is {} bytes long: no field may be longer than {MAX_FIELD_BYTES} bytes",
                self.name(column),
                v.len()
            );
            self.report(column, Code::FieldTooLong, message);
        }
    }

    fn nhs(&mut self) -> Option<NhsNumber> {
        if self.too_long(Column::NhsNumber) {
            return None;
        }
        let text = self.value(Column::NhsNumber).unwrap_or("");
        match NhsNumber::parse(text) {
            Ok(n) => Some(n),
            Err(code) => {
                let name = self.name(Column::NhsNumber);
                let message = match code {
                    Code::NhsMissing => format!("{name} is empty: give the NHS number of the child (for UCPP, of the mother)"),
                    Code::NhsFormat => format!(
                        "{name} is not 10 digits (spaces allowed only as 3-3-4): check that a spreadsheet has not reformatted it"
                    ),
                    _ => format!(
                        "{name} fails the Modulus 11 check digit: it has probably been mistyped, check it against the case record"
                    ),
                };
                self.report(Column::NhsNumber, code, message);
                None
            }
        }
    }

    fn plan_type(&mut self) -> Option<PlanType> {
        if self.too_long(Column::PlanType) {
            return None;
        }
        let text = self.value(Column::PlanType).unwrap_or("");
        let parsed = PlanType::parse(text);
        if parsed.is_none() {
            let message = format!(
                "{} {} is not CPP, LAC or UCPP",
                self.name(Column::PlanType),
                shown(text)
            );
            self.report(Column::PlanType, Code::PlanType, message);
        }
        parsed
    }

    fn date(&mut self, column: Column) -> Option<NaiveDate> {
        let text = self.value(column)?;
        let parsed = parse_iso_date(text);
        if parsed.is_none() {
            let message = format!(
                "{} {} is not a real calendar date written {}{}",
                self.name(column),
                shown(text),
                self.rules.dialect.date_form(),
                match self.rules.dialect {
                    Dialect::Cpis => None,
                    _ => super::hints::date(text),
                }
                .unwrap_or_default()
            );
            self.report(column, Code::DateFormat, message);
        }
        parsed
    }

    fn start_date(&mut self) -> Option<NaiveDate> {
        if self.too_long(Column::StartDate) {
            return None;
        }
        if self.value(Column::StartDate).is_none() {
            let message = format!(
                "{} is empty: give the date the plan started",
                self.name(Column::StartDate)
            );
            self.report(Column::StartDate, Code::DateMissing, message);
            return None;
        }
        let start = self.date(Column::StartDate)?;
        if start > self.rules.extraction_date {
            let message = format!(
                "{} {start} is after the extraction date {}: a plan cannot start after the extract was taken",
                self.name(Column::StartDate),
                self.rules.extraction_date
            );
            self.report(Column::StartDate, Code::DateFuture, message);
            return None;
        }
        Some(start)
    }

    fn end_date(&mut self, start: Option<NaiveDate>) -> Option<NaiveDate> {
        let end = self.date(Column::EndDate)?;
        if let Some(start) = start.filter(|&s| end < s) {
            let message = format!(
                "{} {end} is before {} {start}",
                self.name(Column::EndDate),
                self.name(Column::StartDate)
            );
            self.report(Column::EndDate, Code::DateOrder, message);
            return None;
        }
        Some(end)
    }

    fn la_code(&mut self) {
        if self.too_long(Column::LaCode) {
            return;
        }
        let text = self.value(Column::LaCode).unwrap_or("");
        if text != self.rules.la_text {
            let message = format!(
                "{} {} is not {}, the LA named in the file name: each LA sends only its own children",
                self.name(Column::LaCode),
                shown(text),
                self.rules.la_text
            );
            self.report(Column::LaCode, Code::LaMismatch, message);
        }
    }

    fn phone(&mut self, column: Column, which: &str) -> Option<Phone> {
        if self.too_long(column) {
            return None;
        }
        let text = self.value(column).unwrap_or("");
        match Phone::parse(text) {
            Ok(p) => Some(p),
            Err(code) => {
                let name = self.name(column);
                let message = if code == Code::PhoneMissing {
                    format!(
                        "{name} is empty: give the {which} phone number health staff should call"
                    )
                } else {
                    format!(
                        "{name} {} is not a UK phone number (10 or 11 digits starting 0, or +44 in place of the 0){}",
                        shown(text),
                        super::hints::phone(text).unwrap_or_default()
                    )
                };
                self.report(column, code, message);
                None
            }
        }
    }

    fn local_ref(&mut self) -> Option<String> {
        let text = self.value(Column::LocalRef)?;
        let chars = text.chars().count();
        if chars > MAX_LOCAL_REF_CHARS || text.chars().any(char::is_control) {
            let message = format!(
                "{} must be at most {MAX_LOCAL_REF_CHARS} printable characters (it has {chars}{})",
                self.name(Column::LocalRef),
                if text.chars().any(char::is_control) {
                    ", with control characters"
                } else {
                    ""
                }
            );
            self.report(Column::LocalRef, Code::FieldTooLong, message);
            return None;
        }
        Some(text.to_owned())
    }

    fn expected_delivery(&mut self, plan_type: Option<PlanType>) -> Option<NaiveDate> {
        let edd = self.date(Column::ExpectedDeliveryDate)?;
        let name = self.name(Column::ExpectedDeliveryDate);
        match plan_type {
            Some(PlanType::Ucpp) => {
                let overdue = (self.rules.extraction_date - edd).num_days();
                if overdue > EDD_GRACE_DAYS {
                    let message = format!(
                        "{name} {edd} is {overdue} days before the extraction date: the born child should have a plan of its own"
                    );
                    self.report(Column::ExpectedDeliveryDate, Code::EddPassed, message);
                }
            }
            Some(other) => {
                let message = format!(
                    "{name} is given on a {other} row: it only means something on a UCPP, and is ignored here"
                );
                self.report(Column::ExpectedDeliveryDate, Code::EddNotUcpp, message);
                return None;
            }
            None => {}
        }
        Some(edd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::extract::COLUMN_COUNT;

    const GOOD: [(Column, &str); 7] = [
        (Column::NhsNumber, "9990000018"),
        (Column::PlanType, "CPP"),
        (Column::StartDate, "2026-01-02"),
        (Column::LaCode, "919"),
        (Column::EdtPhone, "01632 960001"),
        (Column::OfficePhone, "01632 960002"),
        (Column::LaName, "Hertfordshire"),
    ];

    fn rules() -> ExtractRules {
        let at = "2026-11-21T02:00:00Z".parse().unwrap();
        ExtractRules::new(LaCode::parse("919").unwrap(), at, Dialect::Csv)
    }

    /// Validates the good row with `changes` applied; returns (valid, codes with columns).
    fn run(changes: &[(Column, &str)]) -> (bool, Vec<(Code, &'static str)>) {
        let mut fields: [Option<&str>; COLUMN_COUNT] = [None; COLUMN_COUNT];
        for (c, v) in GOOD.iter().chain(changes) {
            fields[*c as usize] = Some(v);
        }
        let raw = RawRow {
            number: 3,
            line: Some(4),
            fields,
        };
        let mut problems = Vec::new();
        let verdict = rules().check(&raw, &mut problems);
        assert!(problems.iter().all(|p| p.row == 3 && !p.message.is_empty()));
        let codes = problems.iter().map(|p| (p.code, p.column)).collect();
        (matches!(verdict, Verdict::Valid(_)), codes)
    }

    fn check(changes: &[(Column, &str)], expect: &[(Code, &str)]) {
        let (valid, codes) = run(changes);
        let expect: Vec<(Code, &str)> = expect.to_vec();
        assert_eq!(codes, expect, "changes {changes:?}");
        let has_error = expect.iter().any(|(c, _)| c.severity() == Severity::Error);
        assert_eq!(valid, !has_error, "changes {changes:?}");
    }

    #[test]
    fn a_value_is_echoed_whole_up_to_the_field_limit_then_cut_at_a_character() {
        let long = format!("{}é{}", "r".repeat(MAX_FIELD_BYTES - 1), "x".repeat(60_000));
        let mut fields: [Option<&str>; COLUMN_COUNT] = [None; COLUMN_COUNT];
        for (c, v) in GOOD.iter().chain(&[(Column::LocalRef, long.as_str())]) {
            fields[*c as usize] = Some(v);
        }
        let mut problems = Vec::new();
        rules().check(
            &RawRow {
                number: 1,
                line: Some(2),
                fields,
            },
            &mut problems,
        );
        let sent = problems[0].sent.as_ref().unwrap();
        // The 2-byte "é" straddles the limit: the cut comes before it.
        assert_eq!(sent.value, format!("{}…", "r".repeat(MAX_FIELD_BYTES - 1)));
        assert_eq!(sent.local_ref, sent.value);
        assert_eq!(sent.nhs_number, "9990000018");
        assert_eq!(
            echoed(&"s".repeat(MAX_FIELD_BYTES)),
            "s".repeat(MAX_FIELD_BYTES)
        );
    }

    #[test]
    fn good_rows() {
        check(&[], &[]);
        check(&[(Column::NhsNumber, "999 000 0018")], &[]);
        check(&[(Column::PlanType, "ucpp")], &[]);
        check(&[(Column::StartDate, "2024-02-29")], &[]);
        check(&[(Column::StartDate, "2026-11-21")], &[]);
        check(&[(Column::EndDate, "2026-01-02")], &[]);
        check(&[(Column::EndDate, "2027-01-02")], &[]);
        check(&[(Column::EdtPhone, "+44 1632 960001")], &[]);
        check(&[(Column::LocalRef, &"r".repeat(64))], &[]);
        check(&[(Column::LaName, "Anything at all")], &[]);
        check(
            &[
                (Column::PlanType, "UCPP"),
                (Column::ExpectedDeliveryDate, "2026-10-24"),
            ],
            &[],
        );
    }

    #[test]
    fn one_case_per_row_error() {
        use Code::*;
        check(&[(Column::NhsNumber, "")], &[(NhsMissing, "nhs_number")]);
        check(
            &[(Column::NhsNumber, "99900000")],
            &[(NhsFormat, "nhs_number")],
        );
        check(
            &[(Column::NhsNumber, "9990000019")],
            &[(NhsCheckDigit, "nhs_number")],
        );
        check(&[(Column::PlanType, "CIN")], &[(PlanType, "plan_type")]);
        check(&[(Column::PlanType, "")], &[(PlanType, "plan_type")]);
        check(&[(Column::StartDate, "")], &[(DateMissing, "start_date")]);
        check(
            &[(Column::StartDate, "2025-02-29")],
            &[(DateFormat, "start_date")],
        );
        check(
            &[(Column::StartDate, "02/01/2026")],
            &[(DateFormat, "start_date")],
        );
        check(
            &[(Column::EndDate, "2026-13-01")],
            &[(DateFormat, "end_date")],
        );
        check(
            &[(Column::EndDate, "2026-01-01")],
            &[(DateOrder, "end_date")],
        );
        check(
            &[(Column::StartDate, "2026-11-22")],
            &[(DateFuture, "start_date")],
        );
        check(&[(Column::LaCode, "202")], &[(LaMismatch, "la_code")]);
        check(&[(Column::LaCode, "")], &[(LaMismatch, "la_code")]);
        check(&[(Column::EdtPhone, "")], &[(PhoneMissing, "edt_phone")]);
        check(
            &[(Column::OfficePhone, "999")],
            &[(PhoneFormat, "office_phone")],
        );
        check(
            &[(Column::LaName, &"x".repeat(300))],
            &[(FieldTooLong, "la_name")],
        );
        check(
            &[(Column::NhsNumber, &"9".repeat(300))],
            &[(FieldTooLong, "nhs_number")],
        );
        check(
            &[(Column::LocalRef, &"r".repeat(65))],
            &[(FieldTooLong, "local_ref")],
        );
        check(
            &[(Column::LocalRef, "a\tb")],
            &[(FieldTooLong, "local_ref")],
        );
        check(
            &[
                (Column::ExpectedDeliveryDate, "2026-31-01"),
                (Column::PlanType, "UCPP"),
            ],
            &[(DateFormat, "expected_delivery_date")],
        );
    }

    #[test]
    fn warnings_keep_the_row() {
        use Code::*;
        check(
            &[(Column::ExpectedDeliveryDate, "2026-12-01")],
            &[(EddNotUcpp, "expected_delivery_date")],
        );
        check(
            &[
                (Column::PlanType, "UCPP"),
                (Column::ExpectedDeliveryDate, "2026-10-23"),
            ],
            &[(EddPassed, "expected_delivery_date")],
        );
    }

    #[test]
    fn every_fault_in_a_row_is_reported() {
        use Code::*;
        check(
            &[
                (Column::NhsNumber, "123"),
                (Column::StartDate, "yesterday"),
                (Column::EdtPhone, ""),
            ],
            &[
                (NhsFormat, "nhs_number"),
                (DateFormat, "start_date"),
                (PhoneMissing, "edt_phone"),
            ],
        );
    }

    #[test]
    fn rejected_rows_keep_a_valid_key_for_retention() {
        let mut fields: [Option<&str>; COLUMN_COUNT] = [None; COLUMN_COUNT];
        for (c, v) in GOOD {
            fields[c as usize] = Some(v);
        }
        fields[Column::StartDate as usize] = Some("bad");
        let raw = RawRow {
            number: 1,
            line: None,
            fields,
        };
        let verdict = rules().check(&raw, &mut Vec::new());
        let Verdict::Rejected { key: Some(key) } = verdict else {
            panic!("expected a rejected row with its key, got {verdict:?}");
        };
        assert_eq!(key.nhs.full(), "9990000018");
        assert_eq!(key.plan_type, PlanType::Cpp);
    }
}
