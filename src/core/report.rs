//! The per-file result (SPEC 3.4 and 7.1): the same object is printed by `validate` and
//! `ingest` and written as the acknowledgement.

use super::codes::{Code, Severity};
use super::extract::FileProblem;
use super::validate::RowProblem;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// What happened to a file as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Accepted,
    Partial,
    Rejected,
    Quarantined,
    Duplicate,
}

impl Outcome {
    /// The national service's file response code.
    pub fn response_code(self, file_errors: &[FileProblem]) -> &'static str {
        match self {
            Outcome::Accepted | Outcome::Duplicate => "CPF02",
            Outcome::Partial => "CPF03",
            Outcome::Quarantined => "CPF04",
            Outcome::Rejected if file_errors.iter().any(|p| is_corrupt(p.code)) => "CPF01",
            Outcome::Rejected => "CPF04",
        }
    }

    /// Whether the CLI should exit 0 for it.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Accepted | Outcome::Duplicate)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Partial => "partial",
            Outcome::Rejected => "rejected",
            Outcome::Quarantined => "quarantined",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// File errors that mean the file is corrupt or badly formed (CPF01) rather than refused
/// (`FIELD_TOO_LONG` is a file error only for a line longer than any row can be).
fn is_corrupt(code: Code) -> bool {
    matches!(
        code,
        Code::FileName
            | Code::Encoding
            | Code::Header
            | Code::FieldTooLong
            | Code::Xml
            | Code::RecordCount
            | Code::Empty
            | Code::TooLarge
    )
}

/// The outcome of a file that was read to the end (or stopped by a file error).
pub fn decide(file_errors: &[FileProblem], rows: u64, invalid_rows: u64) -> Outcome {
    if !file_errors.is_empty() || (rows > 0 && invalid_rows == rows) {
        Outcome::Rejected
    } else if invalid_rows > 0 {
        Outcome::Partial
    } else {
        Outcome::Accepted
    }
}

/// `ERROR_RATE` when more than `max_share` of the rows are invalid.
pub fn error_rate_problem(rows: u64, invalid_rows: u64, max_share: f64) -> Option<FileProblem> {
    (rows > 0 && invalid_rows as f64 > max_share * rows as f64).then(|| {
        FileProblem::new(
            Code::ErrorRate,
            format!(
                "{invalid_rows} of {rows} rows ({:.1}%) are invalid, more than the {:.0}% the gateway accepts: nothing was applied, correct the extract and send it again",
                100.0 * invalid_rows as f64 / rows as f64,
                100.0 * max_share
            ),
        )
    })
}

/// Counts of reconciliation outcomes (SPEC 3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub ended: u64,
    pub reopened: u64,
    pub closed_by_absence: u64,
    pub retained: u64,
}

/// The earlier processing a duplicate file repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateOf {
    pub file_id: i64,
    pub file: String,
    pub outcome: String,
    pub processed_at: String,
    /// The response code the repeated processing had: a duplicate repeats it (a duplicate of
    /// a rejected file did not load anything either).
    pub response_code: String,
}

impl DuplicateOf {
    /// The repeated processing's response code, as the duplicate's own.
    pub fn response_code(&self) -> &'static str {
        match self.response_code.as_str() {
            "CPF01" => "CPF01",
            "CPF03" => "CPF03",
            "CPF04" => "CPF04",
            _ => "CPF02",
        }
    }
}

/// What an attendance file did (SPEC 7.1), in place of reconciliation counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceCounts {
    pub flagged: u64,
    pub notifications_queued: u64,
    pub silent_reads: u64,
    pub not_flagged: u64,
}

/// What a CP-IS upload (HL7 v3 `File`) said of itself and held, beside the rows counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadCounts {
    /// `File/id@extension`: the LA's file sequence number.
    pub sequence: u64,
    /// The `record` elements read (a record holds one to three plans, each a row).
    pub records: u64,
    /// Plans sent with a delete date: not rows, and treated as no longer sent.
    pub deleted_plans: u64,
}

/// Row errors and warnings listed in full at most, in row order: those beyond are only
/// counted by code (`row_errors_unlisted`), so that a file of bad rows costs the gateway
/// (and its acknowledgement) no more than this many.
pub const MAX_LISTED_PROBLEMS: usize = 10_000;

/// Row problems of one code and severity beyond the first [`MAX_LISTED_PROBLEMS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Unlisted {
    pub code: Code,
    pub severity: Severity,
    pub count: u64,
}

/// Which rows were refused, and which of those for their NHS number (`NHS_FORMAT`,
/// `NHS_CHECK_DIGIT`): a bit a row, so that what is decided of every row is known however
/// many of its problems are listed.
#[derive(Debug, Clone, Default)]
pub struct RefusedRows {
    refused: bit_set::BitSet,
    nhs_number: bit_set::BitSet,
}

impl RefusedRows {
    /// Marks `row` refused, with `problems` its own (for its NHS number if one says so).
    pub fn mark(&mut self, row: u64, problems: &[RowProblem]) {
        self.refused.insert(row as usize);
        if problems.iter().any(|p| {
            p.severity == Severity::Error && matches!(p.code, Code::NhsFormat | Code::NhsCheckDigit)
        }) {
            self.nhs_number.insert(row as usize);
        }
    }

    /// Marks `row` refused for a reason other than its NHS number.
    pub fn mark_refused(&mut self, row: u64) {
        self.refused.insert(row as usize);
    }

    pub fn is_refused(&self, row: u64) -> bool {
        self.refused.contains(row as usize)
    }

    /// Whether `row` was refused for its NHS number.
    pub fn for_nhs_number(&self, row: u64) -> bool {
        self.nhs_number.contains(row as usize)
    }
}

/// Whether the file is an LA extract or a health organisation's attendance file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Extract,
    Attendance,
}

fn rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn rfc3339_opt<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, s),
        None => s.serialize_none(),
    }
}

/// The result for one inbound file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: String,
    pub sha256: String,
    pub mailbox: Option<String>,
    pub kind: FileKind,
    pub outcome: Outcome,
    pub response_code: &'static str,
    #[serde(serialize_with = "rfc3339")]
    pub received_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub processed_at: DateTime<Utc>,
    /// The LA (for an extract) or ODS code (attendance) named in the file name.
    pub sender: Option<String>,
    /// The extraction time stated in the file name.
    #[serde(serialize_with = "rfc3339_opt")]
    pub extracted_at: Option<DateTime<Utc>>,
    pub rows: u64,
    pub valid_rows: u64,
    pub invalid_rows: u64,
    pub warnings: u64,
    /// Rows skipped because every field was blank (not counted in `rows`).
    pub blank_rows: u64,
    /// Reconciliation counts of an applied extract (null otherwise, and for attendances).
    pub changes: Option<Changes>,
    /// For an attendance file: what matching did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendance: Option<AttendanceCounts>,
    /// For a CP-IS upload read to its end: its sequence number and records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadCounts>,
    pub file_errors: Vec<FileProblem>,
    pub row_errors: Vec<RowProblem>,
    /// Row problems beyond the first [`MAX_LISTED_PROBLEMS`], counted by code.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub row_errors_unlisted: Vec<Unlisted>,
    pub quarantine_id: Option<String>,
    /// Why the file waits for an operator (with `quarantine_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_reason: Option<String>,
    /// For a duplicate: the processing it repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<DuplicateOf>,
    /// The file was refused for something outside its bytes (its control file): the same
    /// bytes sent again (with a good control file) are not a duplicate of it.
    #[serde(skip)]
    pub refused_outside: bool,
    /// The file's root is CP-IS's `File`: it is answered with CP-IS's acknowledgement too,
    /// however far it could be read.
    #[serde(skip)]
    pub root_is_upload: bool,
    /// Every refused row, listed or not (extracts only).
    #[serde(skip)]
    pub refused_rows: RefusedRows,
}

impl FileReport {
    /// A report for a file not yet read: nothing counted, outcome to be concluded.
    pub fn new(
        file: &str,
        mailbox: Option<String>,
        kind: FileKind,
        received_at: DateTime<Utc>,
    ) -> FileReport {
        FileReport {
            file: file.to_owned(),
            sha256: String::new(),
            mailbox,
            kind,
            outcome: Outcome::Rejected,
            response_code: "",
            received_at,
            processed_at: received_at,
            sender: None,
            extracted_at: None,
            rows: 0,
            valid_rows: 0,
            invalid_rows: 0,
            warnings: 0,
            blank_rows: 0,
            changes: None,
            attendance: None,
            upload: None,
            file_errors: Vec::new(),
            row_errors: Vec::new(),
            row_errors_unlisted: Vec::new(),
            quarantine_id: None,
            quarantine_reason: None,
            duplicate_of: None,
            refused_outside: false,
            root_is_upload: false,
            refused_rows: RefusedRows::default(),
        }
    }

    /// Sets outcome and response code from the errors and counts gathered so far.
    pub fn conclude(&mut self) {
        self.outcome = decide(&self.file_errors, self.rows, self.invalid_rows);
        self.response_code = self.outcome.response_code(&self.file_errors);
    }

    /// Takes a row's problems: listed while fewer than [`MAX_LISTED_PROBLEMS`] are, counted
    /// by code after.
    pub fn add_row_problems(&mut self, problems: impl IntoIterator<Item = RowProblem>) {
        for p in problems {
            if self.row_errors.len() < MAX_LISTED_PROBLEMS {
                self.row_errors.push(p);
            } else {
                self.count_unlisted(p.code, p.severity, 1);
            }
        }
    }

    /// Counts `n` problems of `code` as not listed.
    pub fn count_unlisted(&mut self, code: Code, severity: Severity, n: u64) {
        match self
            .row_errors_unlisted
            .iter_mut()
            .find(|u| u.code == code && u.severity == severity)
        {
            Some(u) => u.count += n,
            None => self.row_errors_unlisted.push(Unlisted {
                code,
                severity,
                count: n,
            }),
        }
    }

    /// Row warnings, listed or not.
    pub fn count_warnings(&self) -> u64 {
        let listed = self
            .row_errors
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .count() as u64;
        let unlisted: u64 = self
            .row_errors_unlisted
            .iter()
            .filter(|u| u.severity == Severity::Warning)
            .map(|u| u.count)
            .sum();
        listed + unlisted
    }

    /// Row errors only (not warnings).
    pub fn errors(&self) -> impl Iterator<Item = &RowProblem> {
        self.row_errors
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_response_codes() {
        let none: &[FileProblem] = &[];
        assert_eq!(decide(none, 10, 0), Outcome::Accepted);
        assert_eq!(decide(none, 0, 0), Outcome::Accepted);
        assert_eq!(decide(none, 10, 3), Outcome::Partial);
        assert_eq!(decide(none, 10, 10), Outcome::Rejected);
        assert_eq!(Outcome::Accepted.response_code(none), "CPF02");
        assert_eq!(Outcome::Partial.response_code(none), "CPF03");
        assert_eq!(Outcome::Rejected.response_code(none), "CPF04");
        let corrupt = [FileProblem::new(Code::Xml, "x")];
        assert_eq!(decide(&corrupt, 0, 0).response_code(&corrupt), "CPF01");
        let stale = [FileProblem::new(Code::Stale, "x")];
        assert_eq!(decide(&stale, 5, 0).response_code(&stale), "CPF04");
    }

    #[test]
    fn error_rate_is_strictly_above_the_share() {
        assert!(error_rate_problem(10, 5, 0.5).is_none());
        assert_eq!(
            error_rate_problem(10, 6, 0.5).unwrap().code,
            Code::ErrorRate
        );
        assert!(error_rate_problem(0, 0, 0.5).is_none());
        assert!(error_rate_problem(10, 10, 1.0).is_none());
    }
}
