//! Attendance files from health organisations (SPEC 4.1): care settings, the streaming CSV
//! reader and row validation. A rejected row is data, not an `Err`.

use super::codes::{Code, Severity};
use super::extract::linecap::{self, LineCap};
use super::extract::{shown, FileProblem, SourceError, MAX_FIELD_BYTES};
use super::ids::OdsCode;
use super::nhs::NhsNumber;
use super::validate::RowProblem;
use chrono::{DateTime, FixedOffset, Utc};
use csv::{ReaderBuilder, StringRecord};
use std::io::Read;

/// A care setting. Unscheduled settings notify the responsible LA; scheduled ones are a
/// silent read (audited, no notification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Setting(&'static str);

const UNSCHEDULED: [&str; 8] = [
    "ED",
    "UTC",
    "WIC",
    "MIU",
    "OOH_GP",
    "PAED_WARD",
    "MATERNITY",
    "AMBULANCE",
];
const SCHEDULED: [&str; 8] = [
    "GP",
    "CAMHS",
    "SARC",
    "TOP",
    "SCHOOL_NURSING",
    "HEALTH_VISITING",
    "COMMUNITY_PAEDS",
    "DENTAL",
];

impl Setting {
    /// Exactly one of the published codes (upper case).
    pub fn parse(text: &str) -> Option<Setting> {
        UNSCHEDULED
            .iter()
            .chain(SCHEDULED.iter())
            .find(|c| **c == text)
            .map(|c| Setting(c))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Whether attendance here notifies the LA (unscheduled care) rather than being a
    /// silent read.
    pub fn is_unscheduled(self) -> bool {
        UNSCHEDULED.contains(&self.0)
    }
}

/// The columns of an attendance file.
pub const COLUMNS: [&str; 7] = [
    "nhs_number",
    "attended_at",
    "org_ods",
    "org_name",
    "setting",
    "user_name",
    "user_role",
];

/// A valid attendance row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendance {
    pub row: u64,
    pub nhs: NhsNumber,
    pub attended_at: DateTime<Utc>,
    pub org_ods: String,
    pub org_name: String,
    pub setting: Setting,
    pub user_name: String,
    pub user_role: String,
}

/// Parses `attended_at`: RFC 3339 with an explicit offset.
pub fn parse_attended_at(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok()
}

/// The rules for the rows of one attendance file.
pub struct AttendanceRules {
    pub owner: OdsCode,
    /// The owner's name as configured: what notifications and flags say, whatever a row
    /// claims.
    pub owner_name: String,
    /// The time in the file name: nothing may have happened after it.
    pub file_time: DateTime<Utc>,
    /// When the gateway received the file.
    pub received_at: DateTime<Utc>,
    /// How far back an attendance may be (`gateway.attendance_max_age_days`).
    pub max_age_days: u32,
}

/// Whether a user's name or role names someone: a letter or digit, and nothing invisible
/// (a zero-width space, a control character) that would make two entries look alike.
pub fn names_someone(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric) && !text.chars().any(super::render::invisible)
}

/// How far ahead of the gateway's clock a health organisation's clock may run.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Why a look-up at `at` is refused (`ATTENDED_AT_OLD`): more than `max_age_days` before
/// `anchor` (the later of the file's time and when it was received; for `query`, now), so
/// that a sender cannot see how a child's plans stood in the past by claiming an old time.
pub fn too_old(at: DateTime<Utc>, anchor: DateTime<Utc>, max_age_days: u32) -> Option<String> {
    let earliest = anchor - chrono::Duration::days(i64::from(max_age_days));
    (at < earliest).then(|| {
        format!(
            "attended_at {} is more than {max_age_days} days before {}: the gateway answers for children being seen now",
            at.to_rfc3339(),
            anchor.to_rfc3339()
        )
    })
}

impl AttendanceRules {
    /// Validates one row given as `COLUMNS`-ordered text; appends its problems.
    pub fn check(
        &self,
        row: u64,
        fields: [&str; 7],
        problems: &mut Vec<RowProblem>,
    ) -> Result<Option<Attendance>, FileProblem> {
        let mut bad = false;
        let mut report = |column: &'static str, code: Code, message: String| {
            bad = true;
            problems.push(RowProblem {
                row,
                line: None,
                column,
                code,
                severity: Severity::Error,
                message,
                sent: None,
            });
        };
        for (i, value) in fields.iter().enumerate() {
            if value.len() > MAX_FIELD_BYTES {
                report(
                    COLUMNS[i],
                    Code::FieldTooLong,
                    format!(
                        "{} is {} bytes long: no field may be longer than {MAX_FIELD_BYTES} bytes",
                        COLUMNS[i],
                        value.len()
                    ),
                );
            }
        }
        let [nhs, attended_at, org_ods, _org_name, setting, user_name, user_role] = fields;
        if org_ods != self.owner.as_str() {
            return Err(FileProblem::new(
                Code::NotAuthorised,
                format!(
                    "row {row}: org_ods {} is not {}, the organisation owning the mailbox: a mailbox may only send its own attendances",
                    shown(org_ods),
                    self.owner
                ),
            ));
        }
        let nhs = match NhsNumber::parse(nhs) {
            Ok(n) => Some(n),
            Err(code) => {
                let message = match code {
                    Code::NhsMissing => "nhs_number is empty".to_owned(),
                    Code::NhsFormat => "nhs_number is not 10 digits (spaces allowed only as 3-3-4)".to_owned(),
                    _ => "nhs_number fails the Modulus 11 check digit: check it against the patient record".to_owned(),
                };
                report("nhs_number", code, message);
                None
            }
        };
        let anchor = self.file_time.max(self.received_at);
        let latest = self.file_time.min(self.received_at + CLOCK_SKEW);
        let at = match parse_attended_at(attended_at) {
            Some(t) if t.with_timezone(&Utc) <= latest => {
                let t = t.with_timezone(&Utc);
                match too_old(t, anchor, self.max_age_days) {
                    None => Some(t),
                    Some(why) => {
                        report("attended_at", Code::AttendedAtOld, why);
                        None
                    }
                }
            }
            Some(t) => {
                report(
                    "attended_at",
                    Code::AttendedAt,
                    format!(
                        "attended_at {} is later than the file's time {} or than when the gateway received it ({})",
                        t.to_rfc3339(),
                        self.file_time.to_rfc3339(),
                        self.received_at.to_rfc3339()
                    ),
                );
                None
            }
            None => {
                report(
                    "attended_at",
                    Code::AttendedAt,
                    format!("attended_at {} is not an RFC 3339 time with an offset, such as 2026-11-21T09:42:00+00:00", shown(attended_at)),
                );
                None
            }
        };
        for (column, value) in [("user_name", user_name), ("user_role", user_role)] {
            if !names_someone(value) {
                report(
                    column,
                    Code::UserMissing,
                    format!("{column} {} names no one: every look-up is logged against the person who made it (their name and role, in letters or digits)", shown(value)),
                );
            }
        }
        let setting_code = Setting::parse(setting);
        if setting_code.is_none() {
            report(
                "setting",
                Code::Setting,
                format!(
                    "setting {} is not a care-setting code ({} for unscheduled care; {} for scheduled care)",
                    shown(setting),
                    UNSCHEDULED.join(", "),
                    SCHEDULED.join(", ")
                ),
            );
        }
        Ok(match (bad, nhs, at, setting_code) {
            (false, Some(nhs), Some(attended_at), Some(setting)) => Some(Attendance {
                row,
                nhs,
                attended_at,
                org_ods: org_ods.to_owned(),
                // The configured name: a row cannot name itself something else.
                org_name: self.owner_name.clone(),
                setting,
                user_name: user_name.to_owned(),
                user_role: user_role.to_owned(),
            }),
            _ => None,
        })
    }
}

/// Reads an attendance file: every row in `COLUMNS` order (any column order in the file,
/// header names case-insensitive; all columns required, no others).
pub fn read_attendance(
    input: impl Read,
    mut each: impl FnMut(u64, [&str; 7]) -> Result<(), FileProblem>,
) -> Result<u64, SourceError> {
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(LineCap::new(input));
    let mut header = StringRecord::new();
    let mut in_header = true;
    let map_err = |e: csv::Error, in_header: bool, line: u64| match e.into_kind() {
        csv::ErrorKind::Io(e) => linecap::source_error(e, in_header, line),
        csv::ErrorKind::Utf8 { .. } => SourceError::File(FileProblem::new(
            Code::Encoding,
            "the file is not UTF-8 text: save it as UTF-8",
        )),
        other => SourceError::File(FileProblem::new(
            Code::Header,
            format!("the CSV could not be read ({other:?})"),
        )),
    };
    loop {
        if !reader
            .read_record(&mut header)
            .map_err(|e| map_err(e, in_header, reader.position().line()))?
        {
            return Err(FileProblem::new(Code::Empty, "the file has no header row").into());
        }
        if header.iter().any(|f| !f.trim().is_empty()) {
            break;
        }
    }
    let mut index = [usize::MAX; 7];
    for (i, name) in header.iter().enumerate() {
        let name = name.trim();
        match COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) {
            Some(c) if index[c] == usize::MAX => index[c] = i,
            _ => {
                return Err(FileProblem::new(
                    Code::Header,
                    format!(
                        "header column {} {} is unknown or repeated (the columns are: {})",
                        i + 1,
                        shown(name),
                        COLUMNS.join(", ")
                    ),
                )
                .into())
            }
        }
    }
    if let Some(missing) = index.iter().position(|&i| i == usize::MAX) {
        return Err(FileProblem::new(
            Code::Header,
            format!("the header has no {} column", COLUMNS[missing]),
        )
        .into());
    }
    let mut record = StringRecord::new();
    let mut row = 0;
    in_header = false;
    loop {
        // Where the record starts (a quoted field may run on over later lines).
        let start = reader.position().line();
        if !reader
            .read_record(&mut record)
            .map_err(|e| map_err(e, in_header, start))?
        {
            break;
        }
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        row += 1;
        if record.len() != header.len() {
            return Err(FileProblem::new(
                Code::Header,
                format!(
                    "row {row} has {} fields but the header has {}",
                    record.len(),
                    header.len()
                ),
            )
            .into());
        }
        let fields = index.map(|i| record.get(i).unwrap_or("").trim());
        each(row, fields)?;
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AttendanceRules {
        AttendanceRules {
            owner: OdsCode::parse("RWG").unwrap(),
            owner_name: "West Herts".into(),
            file_time: "2026-11-21T10:15:00Z".parse().unwrap(),
            received_at: "2026-11-21T10:16:00Z".parse().unwrap(),
            max_age_days: 7,
        }
    }

    fn check(change: (usize, &str)) -> (bool, Vec<Code>) {
        let mut fields = [
            "9990000018",
            "2026-11-21T09:42:00+00:00",
            "RWG",
            "West Herts",
            "ED",
            "Dr A",
            "Doctor",
        ];
        fields[change.0] = change.1;
        let mut problems = Vec::new();
        let got = rules().check(3, fields, &mut problems).unwrap();
        (got.is_some(), problems.iter().map(|p| p.code).collect())
    }

    #[test]
    fn rows() {
        assert_eq!(check((0, "9990000018")), (true, vec![]));
        assert_eq!(
            check((1, "2026-11-21T10:15:00+00:00")),
            (true, vec![]),
            "at the file's time"
        );
        assert_eq!(
            check((1, "2026-11-21T11:00:00+01:00")),
            (true, vec![]),
            "offsets count"
        );
        assert_eq!(check((0, "9990000019")), (false, vec![Code::NhsCheckDigit]));
        assert_eq!(check((0, "")), (false, vec![Code::NhsMissing]));
        assert_eq!(
            check((1, "2026-11-21T09:42:00")),
            (false, vec![Code::AttendedAt]),
            "no offset"
        );
        assert_eq!(
            check((1, "2026-11-21T10:16:00Z")),
            (false, vec![Code::AttendedAt]),
            "after the file"
        );
        assert_eq!(
            check((1, "2026-11-14T10:16:00Z")),
            (true, vec![]),
            "7 days before it was received"
        );
        assert_eq!(
            check((1, "2026-11-14T10:15:59Z")),
            (false, vec![Code::AttendedAtOld]),
            "further back"
        );
        assert_eq!(
            check((1, "2020-06-01T10:00:00+01:00")),
            (false, vec![Code::AttendedAtOld])
        );
        assert_eq!(check((5, "")), (false, vec![Code::UserMissing]));
        assert_eq!(check((5, "\u{200b}")), (false, vec![Code::UserMissing]));
        assert_eq!(check((6, "\u{1}")), (false, vec![Code::UserMissing]));
        assert_eq!(check((5, "Dr \u{200f}A")), (false, vec![Code::UserMissing]));
        assert_eq!(check((5, "Dr Ó Súilleabháin")), (true, vec![]));
        assert_eq!(check((6, "")), (false, vec![Code::UserMissing]));
        assert_eq!(check((4, "A&E")), (false, vec![Code::Setting]));
        assert_eq!(check((4, "ed")), (false, vec![Code::Setting]));
        assert_eq!(
            check((5, &"x".repeat(300))),
            (false, vec![Code::FieldTooLong])
        );
    }

    #[test]
    fn a_file_dated_in_the_future_cannot_move_a_look_up_there() {
        let future = AttendanceRules {
            file_time: "2030-01-01T10:15:00Z".parse().unwrap(),
            ..rules()
        };
        let fields = |at| ["9990000018", at, "RWG", "x", "ED", "Dr A", "Doctor"];
        let mut problems = Vec::new();
        let row = future.check(1, fields("2030-01-01T09:00:00Z"), &mut problems);
        assert!(row.unwrap().is_none());
        assert_eq!(problems[0].code, Code::AttendedAt);
        // A file whose time is wrong answers for nobody: a row of now is 3 years before it.
        problems.clear();
        let row = future.check(1, fields("2026-11-21T10:19:00Z"), &mut problems);
        assert!(row.unwrap().is_none());
        assert_eq!(problems[0].code, Code::AttendedAtOld);
        // An honest file: a row a minute after the file was received is within the skew.
        let row = rules().check(1, fields("2026-11-21T10:15:00Z"), &mut Vec::new());
        assert!(row.unwrap().is_some());
    }

    #[test]
    fn another_organisations_row_rejects_the_file() {
        let fields = [
            "9990000018",
            "2026-11-21T09:42:00+00:00",
            "RXX",
            "x",
            "ED",
            "Dr A",
            "Doctor",
        ];
        let err = rules().check(1, fields, &mut Vec::new()).unwrap_err();
        assert_eq!(err.code, Code::NotAuthorised);
    }

    #[test]
    fn settings() {
        assert!(Setting::parse("ED").unwrap().is_unscheduled());
        assert!(!Setting::parse("GP").unwrap().is_unscheduled());
        assert_eq!(Setting::parse("XX"), None);
    }

    #[test]
    fn reading() {
        let text = "USER_NAME,nhs_number,attended_at,org_ods,org_name,setting,user_role\nDr A,9990000018,2026-11-21T09:42:00Z,RWG,W,ED,Doc\n,,,,,,\n";
        let mut rows = Vec::new();
        let n = read_attendance(text.as_bytes(), |row, f| {
            rows.push((row, f[0].to_owned(), f[5].to_owned()));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(rows, [(1, "9990000018".to_owned(), "Dr A".to_owned())]);
        assert!(
            matches!(read_attendance("nhs_number\n".as_bytes(), |_, _| Ok(())), Err(SourceError::File(p)) if p.code == Code::Header)
        );
        assert!(
            matches!(read_attendance("".as_bytes(), |_, _| Ok(())), Err(SourceError::File(p)) if p.code == Code::Empty)
        );
    }
}
