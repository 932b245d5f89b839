//! Checking one inbound extract file from disk: the I/O around the pure validator.
//!
//! Opens and hashes the file in one streaming pass, reads rows through the CSV or XML
//! reader, validates each, finds duplicate keys with flat memory, and returns the
//! [`FileReport`] (plus, when asked, the valid rows and the keys of rejected rows, which
//! ingestion needs). Nothing is changed anywhere, except that ingestion may ask for a copy
//! of the bytes read to be written into a new file of a folder it names (the archive).

use crate::config::Config;
use crate::core::attendance::{read_attendance, Attendance, AttendanceRules};
use crate::core::codes::{Code, Severity};
use crate::core::extract::cpis::{self, CpisRows, UploadHeader};
use crate::core::extract::csv::{CsvRecord, CsvRows};
use crate::core::extract::xml::{Prolog, XmlRows};
use crate::core::extract::{Dialect, FileProblem, RawRow, RowBatch, RowSource, SourceError};
use crate::core::filename::{parse_inbound_name, ExtractFormat, InboundKind, InboundName};
use crate::core::ids::MailboxId;
use crate::core::report::{
    error_rate_problem, FileKind, FileReport, UploadCounts, MAX_LISTED_PROBLEMS,
};
use crate::core::validate::{ExtractRules, PlanRow, RowKey, RowProblem, Verdict};
use crate::pipeline::dupes::{DuplicateFinder, MAX_ROWS};
use crate::sys::clock::Clock;
use crate::sys::fsutil::{open_inbound, Opened};
use crate::sys::hashing::HashingReader;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// What to keep besides the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep<'a> {
    /// Keep the valid rows (ingest needs them; validate does not).
    pub rows: bool,
    /// Copy the bytes read into a new file in this folder (the archive), to be kept under
    /// their sha256: what is archived is exactly what was read, hashed and applied, and no
    /// one who can still write to the inbound file can change it.
    pub copy_into: Option<&'a Path>,
}

/// Rows kept for ingestion.
#[derive(Debug, Default)]
pub struct Kept {
    /// Valid rows, duplicates removed (only with `Keep::rows`).
    pub valid: Vec<PlanRow>,
    /// Keys of rejected rows whose NHS number and plan type are valid (only with `Keep::rows`).
    pub rejected_keys: Vec<RowKey>,
    /// The copy of the bytes read (only with `Keep::copy_into`, and not for a file larger
    /// than the gateway takes).
    pub copy: Option<tempfile::NamedTempFile>,
}

/// The result of checking an extract.
#[derive(Debug)]
pub struct CheckedExtract {
    pub report: FileReport,
    pub name: Option<InboundName>,
    pub kept: Kept,
}

/// Checks one file as if it had been dropped into `mailbox` (or its owner's, if `None`).
/// `Err` only for I/O failures; everything wrong with the file is in the report.
pub fn check_file(
    path: &Path,
    mailbox: Option<&MailboxId>,
    config: &Config,
    clock: &dyn Clock,
    keep: Keep,
) -> io::Result<CheckedExtract> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Ok(InboundName {
        kind: InboundKind::Attendance { .. },
        ..
    }) = parse_inbound_name(&name)
    {
        let checked = check_attendance(
            open_or_explain(path)?.file,
            &name,
            mailbox,
            config,
            clock,
            None,
            None,
        )?;
        return Ok(CheckedExtract {
            report: checked.report,
            name: parse_inbound_name(&name).ok(),
            kept: Kept::default(),
        });
    }
    check_named(path, &name, mailbox, config, clock, keep)
}

/// Opens a file to check (never through a link, never blocking on a FIFO).
pub fn open_or_explain(path: &Path) -> io::Result<Opened> {
    open_inbound(path)?
        .map_err(|why| io::Error::other(format!("{}: {why}; name the file itself", path.display())))
}

/// As [`check_file`], for a file whose name is `file_name` wherever it is stored (the
/// archive keeps files by sha256).
pub fn check_named(
    path: &Path,
    file_name: &str,
    mailbox: Option<&MailboxId>,
    config: &Config,
    clock: &dyn Clock,
    keep: Keep,
) -> io::Result<CheckedExtract> {
    check_opened(
        open_or_explain(path)?,
        file_name,
        mailbox,
        config,
        clock,
        keep,
    )
}

/// As [`check_named`], for a file already opened.
pub fn check_opened(
    opened: Opened,
    file_name: &str,
    mailbox: Option<&MailboxId>,
    config: &Config,
    clock: &dyn Clock,
    keep: Keep,
) -> io::Result<CheckedExtract> {
    let received_at = clock.now();
    let file_name = file_name.to_owned();
    let Opened { file, meta } = opened;
    let parsed = parse_inbound_name(&file_name);
    let mailbox = mailbox.cloned().or_else(|| match &parsed {
        Ok(InboundName {
            kind: InboundKind::Extract { la, .. },
            ..
        }) => Some(MailboxId::La(*la)),
        Ok(InboundName {
            kind: InboundKind::Attendance { ods },
            ..
        }) => Some(MailboxId::Health(ods.clone())),
        Err(_) => None,
    });
    let kind = match &parsed {
        Ok(InboundName {
            kind: InboundKind::Attendance { .. },
            ..
        }) => FileKind::Attendance,
        _ => FileKind::Extract,
    };
    let mut report = FileReport::new(
        &file_name,
        mailbox.as_ref().map(ToString::to_string),
        kind,
        received_at,
    );
    let mut kept = Kept::default();
    // Never more than the gateway takes, even from a file that grows while it is read.
    let limit = config.max_file_bytes;
    let bar = crate::sys::progress::file_bar(meta.len(), &file_name);
    let input = file.take(limit.saturating_add(1));
    // An extract's rows are parsed ahead on a thread of their own, which reads, hashes and
    // copies too: the bytes stay on one core (measured faster than a third thread).
    let copy = match keep.copy_into {
        Some(dir) if meta.len() <= limit => {
            crate::sys::fsutil::create_private_dir(dir).map_err(io::Error::other)?;
            Some(crate::sys::fsutil::new_temp(dir, ".incoming-")?)
        }
        _ => None,
    };
    let mut reader = HashingReader::inline(input, bar, copy);

    let problem = match &parsed {
        Err(message) => Some(FileProblem::new(Code::FileName, message.clone())),
        Ok(name) => {
            report.extracted_at = Some(name.at);
            authorise(name, mailbox.as_ref(), config)
        }
    }
    .or_else(|| {
        (meta.len() > config.max_file_bytes).then(|| {
            FileProblem::new(
                Code::TooLarge,
                format!(
                    "the file is {} bytes, more than the {} bytes the gateway accepts: split the work with the gateway team",
                    meta.len(),
                    config.max_file_bytes
                ),
            )
        })
    });
    if let Ok(InboundName {
        kind: InboundKind::Extract { la, .. },
        ..
    }) = &parsed
    {
        report.sender = Some(la.to_string());
    }
    match (problem, &parsed) {
        (Some(p), _) => report.file_errors.push(p),
        (None, Ok(name)) => {
            if let InboundKind::Extract { format, .. } = name.kind {
                read_rows(&mut reader, name, format, keep, &mut report, &mut kept)?;
            }
        }
        (None, Err(_)) => {}
    }
    let (sha256, read, copy) = reader.finish_copy()?;
    report.sha256 = sha256;
    if read > limit && meta.len() <= limit {
        report.file_errors.push(FileProblem::new(
            Code::TooLarge,
            format!("the file grew past the {limit} bytes the gateway accepts while it was read"),
        ));
    }
    kept.copy = copy.filter(|_| read <= limit);
    if report.file_errors.is_empty() {
        if let Some(p) =
            error_rate_problem(report.rows, report.invalid_rows, config.max_error_share)
        {
            report.file_errors.push(p);
        }
    }
    report.warnings = report.count_warnings();
    report.conclude();
    report.processed_at = clock.now();
    Ok(CheckedExtract {
        report,
        name: parsed.ok(),
        kept,
    })
}

/// `NOT_AUTHORISED` unless the file's owner is the mailbox's owner and a configured party.
fn authorise(
    name: &InboundName,
    mailbox: Option<&MailboxId>,
    config: &Config,
) -> Option<FileProblem> {
    let owner = match &name.kind {
        InboundKind::Extract { la, .. } => MailboxId::La(*la),
        InboundKind::Attendance { .. } => {
            return Some(FileProblem::new(
                Code::FileName,
                "an attendance file is not an extract: it is checked as an attendance file",
            ))
        }
    };
    let mailbox = mailbox.unwrap_or(&owner);
    if *mailbox != owner {
        return Some(FileProblem::new(
            Code::NotAuthorised,
            format!("the file is for {owner} but arrived in mailbox {mailbox}: a mailbox may only send its own organisation's files"),
        ));
    }
    if !config.is_party(mailbox) {
        return Some(FileProblem::new(
            Code::NotAuthorised,
            format!("{mailbox} is not a party of this gateway (see local_authorities and health_org in the configuration)"),
        ));
    }
    None
}

/// Reads and validates every row; file problems go into the report.
fn read_rows(
    reader: &mut HashingReader,
    name: &InboundName,
    format: ExtractFormat,
    keep: Keep,
    report: &mut FileReport,
    kept: &mut Kept,
) -> io::Result<()> {
    let InboundKind::Extract { la, .. } = name.kind else {
        return Ok(());
    };
    let mut dupes = DuplicateFinder::new();
    let mut dialect = match format {
        ExtractFormat::Csv => Dialect::Csv,
        ExtractFormat::Xml | ExtractFormat::Upload => Dialect::Xml,
    };
    let result = match format {
        ExtractFormat::Csv => CsvRows::new(reader).and_then(|mut source| {
            let r = validate_rows(&mut source, la, name, keep, report, kept, &mut dupes);
            report.blank_rows = source.blank_rows();
            r
        }),
        // The root decides which reader follows.
        ExtractFormat::Xml | ExtractFormat::Upload => {
            Prolog::read(BufReader::with_capacity(1 << 16, reader)).and_then(|prolog| {
                if prolog.root_is("File", cpis::NAMESPACE) {
                    dialect = Dialect::Cpis;
                    report.root_is_upload = true;
                    let mut source = CpisRows::from_prolog(prolog)?;
                    check_sender(source.header(), la)?;
                    let read = validate_rows(&mut source, la, name, keep, report, kept, &mut dupes);
                    // Read to its end, though its record count may be wrong.
                    if source.at_end() {
                        report.upload = Some(UploadCounts {
                            sequence: source.header().sequence,
                            records: source.records(),
                            deleted_plans: source.deleted(),
                        });
                    }
                    return read;
                }
                let mut source = XmlRows::from_prolog(prolog)?;
                let header = source.header().clone();
                if header.la_code != la.to_string() {
                    return Err(FileProblem::new(
                        Code::Xml,
                        format!(
                            "Extract laCode {:?} does not match LA {la} of the file name",
                            header.la_code
                        ),
                    )
                    .into());
                }
                if header.extracted_at != name.at {
                    return Err(FileProblem::new(
                        Code::Xml,
                        format!(
                            "Extract extractedAt {} does not match the time {} in the file name",
                            header.extracted_at.to_rfc3339(),
                            name.at.to_rfc3339()
                        ),
                    )
                    .into());
                }
                validate_rows(&mut source, la, name, keep, report, kept, &mut dupes)
            })
        }
    };
    match result {
        Ok(()) => {}
        Err(SourceError::File(p)) => report.file_errors.push(p),
        Err(SourceError::Io(e)) => return Err(e),
    }
    mark_duplicates(
        dupes.finish()?,
        report,
        kept,
        dialect.name(crate::core::extract::Column::NhsNumber),
    );
    Ok(())
}

/// `NOT_AUTHORISED` unless a CP-IS upload's sending organisation is the LA whose file it
/// is (by its name, which the mailbox has already matched).
fn check_sender(header: &UploadHeader, la: crate::core::ids::LaCode) -> Result<(), SourceError> {
    if header.la_code == la.to_string() {
        return Ok(());
    }
    Err(FileProblem::new(
        Code::NotAuthorised,
        format!(
            "the upload's sending organisation (communicationFunctionSnd/organisation/id) is {}, not LA {la} whose file this is: an LA may only send its own children",
            crate::core::extract::shown(&header.la_code)
        ),
    )
    .into())
}

fn validate_rows(
    source: &mut dyn ReadAhead,
    la: crate::core::ids::LaCode,
    name: &InboundName,
    keep: Keep,
    report: &mut FileReport,
    kept: &mut Kept,
    dupes: &mut DuplicateFinder,
) -> Result<(), SourceError> {
    let rules = ExtractRules::new(la, name.at, source.dialect());
    let mut problems = Vec::new();
    let mut check = |raw: RawRow<'_>| {
        if raw.number > MAX_ROWS {
            return Err(FileProblem::new(
                Code::TooLarge,
                format!("the file has more than {MAX_ROWS} rows"),
            )
            .into());
        }
        report.rows += 1;
        let verdict = rules.check(&raw, &mut problems);
        if let Verdict::Rejected { .. } = verdict {
            report.refused_rows.mark(raw.number, &problems);
        }
        report.add_row_problems(problems.drain(..));
        match verdict {
            Verdict::Valid(row) => {
                report.valid_rows += 1;
                dupes.push(row.key().packed(), row.row)?;
                if keep.rows {
                    kept.valid.push(row);
                }
            }
            Verdict::Rejected { key } => {
                report.invalid_rows += 1;
                if let Some(key) = key {
                    dupes.push(key.packed(), raw.number)?;
                    if keep.rows {
                        kept.rejected_keys.push(key);
                    }
                }
            }
        }
        Ok(())
    };
    if crate::sys::node::two_cores() {
        source.each_row_read_ahead(&mut check)?;
    } else {
        while let Some(raw) = source.next_row()? {
            check(raw)?;
        }
    }
    source.finish()
}

/// Rows a batch holds at most, and bytes of text (a batch ends at the row that passes
/// them: rows are capped at 64 KiB, so a batch stays under 1.1 MiB, whatever the rows).
const BATCH_ROWS: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;

/// A source whose rows can be parsed ahead, on a thread of its own, of the checks.
trait ReadAhead: RowSource + Send {
    /// Calls `each` on every row, in order, while another thread parses the rows ahead (a
    /// few batches of bounded bytes at most: memory stays flat). The first error, the
    /// source's or `each`'s, ends both; the rows before a source's error are all seen.
    fn each_row_read_ahead(
        &mut self,
        each: &mut dyn FnMut(RawRow<'_>) -> Result<(), SourceError>,
    ) -> Result<(), SourceError>;
}

/// CSV: the other thread only parses records (what the bare csv pass does); which field
/// is which column, and whether it is text, is found beside the checks.
impl<R: io::Read + Send> ReadAhead for CsvRows<R> {
    fn each_row_read_ahead(
        &mut self,
        each: &mut dyn FnMut(RawRow<'_>) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        let (records, mapper) = self.split();
        read_ahead(
            &mut |batch: &mut CsvBatch| {
                batch.clear();
                while batch.len < BATCH_ROWS && batch.bytes < BATCH_BYTES {
                    if batch.records.len() == batch.len {
                        batch.records.push(CsvRecord::default());
                    }
                    let record = &mut batch.records[batch.len];
                    records.read(record)?;
                    batch.len += 1;
                    batch.bytes += record.len();
                    if record.is_end() {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
            &mut |batch: &CsvBatch| {
                for record in &batch.records[..batch.len] {
                    if mapper.accept(record)? {
                        each(mapper.row(record))?;
                    }
                }
                Ok(())
            },
        )
    }
}

/// XML and CP-IS uploads: the other thread parses rows whole and copies them over.
fn read_rows_ahead(
    source: &mut (dyn RowSource + Send),
    each: &mut dyn FnMut(RawRow<'_>) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    read_ahead(
        &mut |batch: &mut RowBatch| {
            batch.clear();
            while batch.len() < BATCH_ROWS && batch.bytes() < BATCH_BYTES {
                match source.next_row()? {
                    Some(raw) => batch.push(&raw),
                    None => return Ok(false),
                }
            }
            Ok(true)
        },
        &mut |batch: &RowBatch| batch.rows().try_for_each(&mut *each),
    )
}

impl<R: io::BufRead + Send> ReadAhead for XmlRows<R> {
    fn each_row_read_ahead(
        &mut self,
        each: &mut dyn FnMut(RawRow<'_>) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        read_rows_ahead(self, each)
    }
}

impl<R: io::BufRead + Send> ReadAhead for CpisRows<R> {
    fn each_row_read_ahead(
        &mut self,
        each: &mut dyn FnMut(RawRow<'_>) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        read_rows_ahead(self, each)
    }
}

/// Records as read, kept for reuse (but for long ones: memory stays flat).
#[derive(Default)]
struct CsvBatch {
    records: Vec<CsvRecord>,
    /// How many of `records` this batch holds, and their bytes.
    len: usize,
    bytes: usize,
}

impl CsvBatch {
    fn clear(&mut self) {
        for record in &mut self.records[..self.len] {
            if record.is_large() {
                *record = CsvRecord::default();
            }
        }
        self.len = 0;
        self.bytes = 0;
    }
}

/// What a batch says of itself to [`read_ahead`].
trait Batch: Default + Send {
    fn is_empty(&self) -> bool;
}

impl Batch for CsvBatch {
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Batch for RowBatch {
    fn is_empty(&self) -> bool {
        RowBatch::is_empty(self)
    }
}

/// Batches `fill`ed on a thread of its own (`Ok(false)` after the last), `drain`ed in
/// order on the caller's: two batches ahead at most, and four kept for reuse.
fn read_ahead<B: Batch>(
    fill: &mut (dyn FnMut(&mut B) -> Result<bool, SourceError> + Send),
    drain: &mut dyn FnMut(&B) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    std::thread::scope(|scope| {
        let (send, batches) = std::sync::mpsc::sync_channel::<Result<B, SourceError>>(2);
        let (spent, back) = std::sync::mpsc::sync_channel::<B>(4);
        scope.spawn(move || loop {
            let mut batch = back.try_recv().unwrap_or_default();
            let filled = fill(&mut batch);
            // A checker that stopped wants no more.
            if !batch.is_empty() && send.send(Ok(batch)).is_err() {
                return;
            }
            match filled {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = send.send(Err(e));
                    return;
                }
            }
        });
        // Returning drops `batches`: a reader waiting to hand over a batch stops too.
        for batch in batches {
            let batch = batch?;
            drain(&batch)?;
            let _ = spent.try_send(batch);
        }
        Ok(())
    })
}

/// Rejects every row of a repeated key (SPEC 2.4: both rows are rejected), listing the
/// `DUPLICATE`s among the first problems in row order and counting the rest.
/// `dupes` is sorted by row; `column` is the NHS number's name in the file's format.
fn mark_duplicates(
    dupes: Vec<(u64, u64)>,
    report: &mut FileReport,
    kept: &mut Kept,
    column: &'static str,
) {
    if dupes.is_empty() {
        return;
    }
    let mut rows_of: HashMap<u64, Vec<u64>> = HashMap::new();
    for &(key, row) in &dupes {
        rows_of.entry(key).or_default().push(row);
    }
    let mut newly_invalid = 0;
    for &(_, row) in &dupes {
        if !report.refused_rows.is_refused(row) {
            newly_invalid += 1;
            report.refused_rows.mark_refused(row);
        }
    }
    let duplicate = |key: u64, row: u64| {
        let others: Vec<String> = rows_of[&key]
            .iter()
            .filter(|&&r| r != row)
            .take(5)
            .map(u64::to_string)
            .collect();
        RowProblem {
            row,
            line: None,
            column,
            code: Code::Duplicate,
            severity: Severity::Error,
            message: format!(
                "the same NHS number and plan type are also in row {}: all of these rows are rejected, send one row per child and plan",
                others.join(", ")
            ),
            sent: None,
        }
    };
    // Both lists are in row order (a row's own problems before its `DUPLICATE`): merged,
    // the first `MAX_LISTED_PROBLEMS` are listed and the rest counted.
    let listed = std::mem::take(&mut report.row_errors);
    let mut merged = Vec::with_capacity(
        listed.len().min(MAX_LISTED_PROBLEMS) + dupes.len().min(MAX_LISTED_PROBLEMS),
    );
    let mut listed = listed.into_iter().peekable();
    let mut dupes = dupes.into_iter().peekable();
    loop {
        let next = match (listed.peek(), dupes.peek()) {
            (Some(p), Some(&(_, row))) if row < p.row => dupes.next().map(Err),
            (Some(_), _) => listed.next().map(Ok),
            (None, _) => dupes.next().map(Err),
        };
        let Some(next) = next else { break };
        match next {
            Ok(p) if merged.len() < MAX_LISTED_PROBLEMS => merged.push(p),
            Ok(p) => report.count_unlisted(p.code, p.severity, 1),
            Err((key, row)) if merged.len() < MAX_LISTED_PROBLEMS => {
                merged.push(duplicate(key, row))
            }
            Err(_) => report.count_unlisted(Code::Duplicate, Severity::Error, 1),
        }
    }
    report.row_errors = merged;
    report.valid_rows -= newly_invalid;
    report.invalid_rows += newly_invalid;
    let (refused, rejected_keys) = (&report.refused_rows, &mut kept.rejected_keys);
    kept.valid.retain(|r| {
        let dup = refused.is_refused(r.row);
        if dup {
            rejected_keys.push(r.key());
        }
        !dup
    });
}

/// The result of checking an attendance file.
#[derive(Debug)]
pub struct CheckedAttendance {
    pub report: FileReport,
    /// Valid rows worth looking up.
    pub valid: Vec<Attendance>,
    /// Valid rows of children `interesting` said have no record: (row, day attended).
    pub unknown: Vec<(u64, chrono::NaiveDate)>,
}

/// Which children have any record (a look-up of any other finds nothing).
pub type Interesting<'a> = Option<&'a dyn Fn(crate::core::nhs::NhsNumber) -> bool>;

/// Checks an attendance file (SPEC 4.1) as if dropped into `mailbox` (or its owner's):
/// the owner, size, header and every row. `refusal` is a file error found outside the file.
/// With `interesting`, valid rows of children it rejects are only counted (a big file of
/// mostly unknown children then keeps almost nothing in memory).
pub fn check_attendance(
    file: File,
    name: &str,
    mailbox: Option<&MailboxId>,
    config: &Config,
    clock: &dyn Clock,
    refusal: Option<&FileProblem>,
    interesting: Interesting<'_>,
) -> io::Result<CheckedAttendance> {
    let received_at = clock.now();
    let parsed = parse_inbound_name(name).map_err(io::Error::other)?;
    let InboundKind::Attendance { ods } = &parsed.kind else {
        return Err(io::Error::other(format!(
            "{name} is not an attendance file"
        )));
    };
    let owner = MailboxId::Health(ods.clone());
    let mailbox = mailbox.unwrap_or(&owner);
    let mut report = FileReport::new(
        name,
        Some(mailbox.to_string()),
        FileKind::Attendance,
        received_at,
    );
    report.sender = Some(ods.to_string());
    report.extracted_at = Some(parsed.at);
    let size = file.metadata()?.len();
    let limit = config.max_file_bytes.saturating_add(1);
    let mut reader = HashingReader::new(file.take(limit), ProgressBar::hidden());
    let mut valid = Vec::new();
    let mut unknown = Vec::new();
    let mut valid_rows = 0u64;
    let owner_problem = if *mailbox != owner {
        Some(format!("the file is from {ods} but arrived in mailbox {mailbox}: a mailbox may only send its own organisation's files"))
    } else if !config.is_party(mailbox) {
        Some(format!("{mailbox} is not a configured health organisation ([[health_org]] in the configuration)"))
    } else {
        None
    };
    if let Some(why) = owner_problem {
        report
            .file_errors
            .push(FileProblem::new(Code::NotAuthorised, why));
    } else if let Some(p) = refusal {
        report.file_errors.push(p.clone());
        report.refused_outside = true;
    } else if size > config.max_file_bytes {
        report.file_errors.push(FileProblem::new(
            Code::TooLarge,
            format!(
                "the file is {size} bytes, more than the {} bytes the gateway accepts",
                config.max_file_bytes
            ),
        ));
    } else {
        let rules = AttendanceRules {
            owner: ods.clone(),
            owner_name: config
                .health_orgs
                .iter()
                .find(|h| &h.ods == ods)
                .map(|h| h.name.clone())
                .unwrap_or_default(),
            file_time: parsed.at,
            received_at,
            max_age_days: config.attendance_max_age_days,
        };
        let mut problems = Vec::new();
        let read = read_attendance(&mut reader, |row, fields| {
            let checked = rules.check(row, fields, &mut problems);
            report.add_row_problems(problems.drain(..));
            if let Some(a) = checked? {
                valid_rows += 1;
                match interesting {
                    Some(wanted) if !wanted(a.nhs) => {
                        unknown.push((a.row, a.attended_at.date_naive()))
                    }
                    _ => valid.push(a),
                }
            }
            Ok(())
        });
        match read {
            Ok(rows) => report.rows = rows,
            Err(SourceError::File(p)) => report.file_errors.push(p),
            Err(SourceError::Io(e)) => return Err(e),
        }
    }
    report.sha256 = reader.finish()?;
    report.valid_rows = valid_rows;
    report.invalid_rows = report.rows - report.valid_rows;
    if report.file_errors.is_empty() {
        if let Some(p) =
            error_rate_problem(report.rows, report.invalid_rows, config.max_error_share)
        {
            report.file_errors.push(p);
        }
    }
    report.conclude();
    report.processed_at = clock.now();
    Ok(CheckedAttendance {
        report,
        valid,
        unknown,
    })
}
