//! Streaming reader for CSV extracts (SPEC 2.2).
//!
//! UTF-8 (a BOM is tolerated), RFC 4180 quoting, LF or CRLF, a header row whose names match
//! case-insensitively in any order. Rows whose fields are all blank (spreadsheet exports end
//! with them) are skipped; any other row must have as many fields as the header, because a
//! ragged row cannot be read reliably and guessing could close a child's record by absence.

use super::linecap::{self, LineCap};
use super::{Column, Dialect, FileProblem, RawRow, RowSource, SourceError, COLUMN_COUNT};
use crate::core::codes::Code;
use crate::core::hints;
use ::csv::{ByteRecord, ReaderBuilder, StringRecord};
use std::io::Read;

/// Reads rows of a CSV extract one at a time, reusing one record buffer. In two halves, so
/// that reading ahead can parse on one thread and map fields to columns on another:
/// [`CsvRecords`] reads records (the bare parse), [`CsvMapper`] makes them rows.
pub struct CsvRows<R: Read> {
    records: CsvRecords<R>,
    mapper: CsvMapper,
    record: CsvRecord,
}

/// The reading half of [`CsvRows`]: records as the csv crate parses them.
pub struct CsvRecords<R: Read> {
    reader: ::csv::Reader<LineCap<R>>,
}

/// A record as read, with where the reader stood before and after it.
#[derive(Debug, Default)]
pub struct CsvRecord {
    text: StringRecord,
    /// Where the text stopped being UTF-8 (the field and the byte), which ends the file.
    not_utf8: Option<(usize, usize)>,
    /// The reader's line before and after the record.
    before: u64,
    after: u64,
    /// Whether it is the end of the file rather than a record.
    end: bool,
}

/// The mapping half of [`CsvRows`]: which column each field is, row numbers and lines.
pub struct CsvMapper {
    /// For each column of the file, which extract column it is.
    columns: Vec<Column>,
    /// Facts of the file's first line: its first bytes, and whether lines end CR LF.
    head: Vec<u8>,
    crlf: bool,
    row: u64,
    blank_rows: u64,
    /// The line the current row begins on.
    line: u64,
}

/// Why reading stopped at the record that began on line `start`; `in_header` whether it
/// was the header.
fn csv_error(err: ::csv::Error, start: u64, in_header: bool) -> SourceError {
    match err.into_kind() {
        ::csv::ErrorKind::Io(e) => linecap::source_error(e, in_header, start),
        // Not met reading bytes, flexibly: kept whole rather than guessed at.
        other => SourceError::File(FileProblem::new(
            Code::Header,
            format!("line {start}: the CSV could not be read ({other:?})"),
        )),
    }
}

fn is_blank<'r, F: AsRef<[u8]> + 'r>(fields: impl IntoIterator<Item = F>) -> bool {
    fields
        .into_iter()
        .all(|f| f.as_ref().iter().all(u8::is_ascii_whitespace))
}

impl<R: Read> CsvRows<R> {
    /// Reads the header row. A file with no header (0 bytes, or only blank lines) is `EMPTY`.
    pub fn new(input: R) -> Result<CsvRows<R>, SourceError> {
        let mut reader = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(LineCap::new(input));
        let mut header = ByteRecord::new();
        loop {
            if !reader
                .read_byte_record(&mut header)
                .map_err(|e| csv_error(e, reader.position().line(), true))?
            {
                return Err(FileProblem::new(
                    Code::Empty,
                    "the file has no header row: send the extract with its header, even when it lists no children",
                )
                .into());
            }
            if !is_blank(&header) {
                break;
            }
        }
        let cap = reader.get_ref();
        let columns = map_header(&header, cap.head())?;
        let mapper = CsvMapper {
            columns,
            head: cap.head().to_vec(),
            crlf: cap.crlf(),
            row: 0,
            blank_rows: 0,
            line: 1,
        };
        Ok(CsvRows {
            records: CsvRecords { reader },
            mapper,
            record: CsvRecord::default(),
        })
    }

    /// Rows skipped because every field was blank.
    pub fn blank_rows(&self) -> u64 {
        self.mapper.blank_rows
    }

    /// The two halves, to read on one thread and map on another.
    pub fn split(&mut self) -> (&mut CsvRecords<R>, &mut CsvMapper) {
        (&mut self.records, &mut self.mapper)
    }
}

impl<R: Read> CsvRecords<R> {
    /// Reads the next record into `record` (or marks it the end of the file, which a
    /// record that is not UTF-8 is too).
    pub fn read(&mut self, record: &mut CsvRecord) -> Result<(), SourceError> {
        record.before = self.reader.position().line();
        record.not_utf8 = None;
        record.end = match self.reader.read_record(&mut record.text) {
            Ok(more) => !more,
            Err(e) => match e.kind() {
                ::csv::ErrorKind::Utf8 { err, .. } => {
                    record.not_utf8 = Some((err.field(), err.valid_up_to()));
                    true
                }
                _ => return Err(csv_error(e, record.before, false)),
            },
        };
        record.after = self.reader.position().line();
        Ok(())
    }
}

impl CsvRecord {
    /// Its bytes, to bound what a batch of records holds.
    pub fn len(&self) -> usize {
        self.text.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Whether it holds more than a usual row (so that a buffer kept for reuse is dropped
    /// instead: a few long rows must not leave every buffer long).
    pub fn is_large(&self) -> bool {
        self.len() > 4096 || self.text.len() > 64
    }

    /// Whether it is the end of the file rather than a record.
    pub fn is_end(&self) -> bool {
        self.end
    }
}

impl CsvMapper {
    /// Whether `record` is a row, counting it; `false` at the end of the file or for a
    /// blank row (counted as one). A row that cannot be read is an error.
    pub fn accept(&mut self, record: &CsvRecord) -> Result<bool, SourceError> {
        let (before, after) = (record.before, record.after);
        if let Some((field, valid_up_to)) = record.not_utf8 {
            return Err(self.not_utf8(field, valid_up_to, after));
        }
        if record.end {
            // Empty lines at the end (with CR LF, the last row's LF is read here).
            self.blank_rows += (after - before).saturating_sub(u64::from(self.crlf));
            return Ok(false);
        }
        // The reader skips empty lines before a record without a word. With LF ends a
        // read takes those lines, the record's own line feeds and its LF; with CR LF it
        // takes the previous record's LF, those lines, the record's line feeds and CR.
        let feeds = line_feeds(record);
        self.blank_rows += (after - before).saturating_sub(1 + feeds);
        let text = &record.text;
        if is_blank(text.iter()) {
            self.blank_rows += 1;
            return Ok(false);
        }
        self.row += 1;
        self.line = after - feeds - u64::from(!self.crlf);
        if text.len() != self.columns.len() {
            return Err(FileProblem::new(
                Code::Header,
                format!(
                    "row {} (line {}): has {} fields but the header has {}: check for an unquoted comma or a cut-off line",
                    self.row,
                    self.line,
                    text.len(),
                    self.columns.len()
                ),
            )
            .into());
        }
        Ok(true)
    }

    /// The row of a record [`accept`](Self::accept) took.
    pub fn row<'r>(&self, record: &'r CsvRecord) -> RawRow<'r> {
        let mut fields: [Option<&str>; COLUMN_COUNT] = [None; COLUMN_COUNT];
        for (text, &column) in record.text.iter().zip(&self.columns) {
            fields[column as usize] = Some(text.trim_ascii());
        }
        RawRow {
            number: self.row,
            line: Some(self.line),
            fields,
        }
    }

    /// `ENCODING`: a record's `field` is not UTF-8 from byte `valid_up_to` (`after`: the
    /// line the reader stands on).
    fn not_utf8(&self, field: usize, valid_up_to: usize, after: u64) -> SourceError {
        // The record was read whole, its LF (not a CR LF's) with it.
        FileProblem::new(
            Code::Encoding,
            format!(
                "row {} (line {}), column {}, character {}: the text is not UTF-8 (it looks like {}): save the file as UTF-8 (in Excel: CSV UTF-8)",
                self.row + 1,
                after.saturating_sub(u64::from(!self.crlf)).max(1),
                self.columns.get(field).map_or("?", |c| c.csv_name()),
                valid_up_to + 1,
                hints::encoding(&self.head, 0x80)
            ),
        )
        .into()
    }
}

/// Line feeds inside a record's fields (quoted fields may span lines).
fn line_feeds(record: &CsvRecord) -> u64 {
    // The fields lie end to end in one buffer: one vectorised search over them all (most
    // rows have none: one search finds that).
    let text = record.text.as_slice().as_bytes();
    match memchr::memchr(b'\n', text) {
        None => 0,
        Some(at) => memchr::memchr_iter(b'\n', &text[at..]).count() as u64,
    }
}

/// The first `n` items joined, and " and K more" for the rest.
fn at_most(items: &[String], n: usize) -> (String, String) {
    let more = items.len().saturating_sub(n);
    (
        items[..items.len().min(n)].join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
    )
}

/// Maps header names to columns; unknown, repeated or missing required names are `HEADER`.
fn map_header(header: &ByteRecord, head: &[u8]) -> Result<Vec<Column>, FileProblem> {
    let names: Vec<&str> = header
        .iter()
        .map(|f| std::str::from_utf8(f).unwrap_or(""))
        .collect();
    if let Some(hint) = hints::semicolons(&names) {
        return Err(FileProblem::new(Code::Header, hint));
    }
    let mut columns = Vec::with_capacity(header.len());
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(raw) else {
            return Err(FileProblem::new(
                Code::Encoding,
                format!(
                    "header column {}: the name is not UTF-8 text (the file looks like {}): save the file as UTF-8 (in Excel: CSV UTF-8)",
                    i + 1,
                    hints::encoding(head, 0x80)
                ),
            ));
        };
        let name = name.trim();
        match Column::ALL
            .iter()
            .find(|c| c.csv_name().eq_ignore_ascii_case(name))
        {
            Some(&c) if columns.contains(&c) => problems.push(format!(
                "column {} repeats {:?}: each column may appear once",
                i + 1,
                c.csv_name()
            )),
            Some(&c) => columns.push(c),
            None => unknown.push(format!("column {} {}", i + 1, super::shown(name))),
        }
    }
    if !unknown.is_empty() {
        let (shown, more) = at_most(&unknown, 10);
        problems.insert(
            0,
            if unknown.len() == 1 {
                format!("{shown} is not an extract column")
            } else {
                format!("{shown}{more} are not extract columns")
            } + &format!(
                " (allowed: {})",
                Column::ALL.map(Column::csv_name).join(", ")
            ),
        );
    }
    if problems.len() > 12 {
        let extra = problems.len() - 12;
        problems.truncate(12);
        problems.push(format!("and {extra} more problems"));
    }
    let missing: Vec<&str> = Column::ALL
        .iter()
        .filter(|c| c.required() && !columns.contains(c))
        .map(|c| c.csv_name())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "required column{} missing: {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(columns)
    } else {
        Err(FileProblem::new(
            Code::Header,
            format!("the header row is not valid: {}", problems.join("; ")),
        ))
    }
}

impl<R: Read> RowSource for CsvRows<R> {
    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, SourceError> {
        loop {
            self.records.read(&mut self.record)?;
            if self.mapper.accept(&self.record)? {
                return Ok(Some(self.mapper.row(&self.record)));
            }
            if self.record.end {
                return Ok(None);
            }
        }
    }

    fn dialect(&self) -> Dialect {
        Dialect::Csv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(input: &str) -> Result<Vec<Vec<(Column, String)>>, SourceError> {
        let mut source = CsvRows::new(input.as_bytes())?;
        let mut out = Vec::new();
        while let Some(row) = source.next_row()? {
            out.push(
                Column::ALL
                    .iter()
                    .filter_map(|&c| row.get(c).map(|v| (c, v.to_owned())))
                    .collect(),
            );
        }
        Ok(out)
    }

    fn file_code(input: &str) -> Code {
        match rows(input) {
            Err(SourceError::File(p)) => p.code,
            other => panic!("expected a file problem, got {other:?}"),
        }
    }

    const HEADER: &str = "nhs_number,plan_type,start_date,la_code,edt_phone,office_phone";

    #[test]
    fn header_any_case_any_order_with_bom_and_crlf() {
        let input = "\u{feff} Plan_Type ,NHS_NUMBER,start_date,la_code,edt_phone,office_phone\r\nCPP,999 000 0018,2026-01-02,919,01632 960001,01632 960002\r\n";
        let got = rows(input).unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].contains(&(Column::NhsNumber, "999 000 0018".into())));
        assert!(got[0].contains(&(Column::PlanType, "CPP".into())));
    }

    #[test]
    fn empty_and_header_only_files() {
        assert_eq!(file_code(""), Code::Empty);
        assert_eq!(file_code("\n\n  \n"), Code::Empty);
        assert_eq!(rows(&format!("{HEADER}\n")).unwrap().len(), 0);
    }

    #[test]
    fn header_problems() {
        assert_eq!(file_code(&format!("{HEADER},colour\n")), Code::Header);
        assert_eq!(file_code(&format!("{HEADER},nhs_number\n")), Code::Header);
        assert_eq!(file_code("nhs_number,plan_type\n"), Code::Header);
        assert_eq!(file_code(&format!("{HEADER}\na,b,c\n")), Code::Header);
    }

    #[test]
    fn blank_rows_quotes_and_encoding() {
        let input =
            format!("{HEADER}\n\"999 000 0018\",\"C\"\"PP\",2026-01-02,919,x,y\n,,,,,\n\n   \n");
        let got = rows(&input).unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].contains(&(Column::PlanType, "C\"PP".into())));
        let latin1 = [
            HEADER.as_bytes(),
            b"\n9990000018,CPP,2026-01-02,919,\xe9,x\n",
        ]
        .concat();
        let mut source = CsvRows::new(&latin1[..]).unwrap();
        assert!(matches!(source.next_row(), Err(SourceError::File(p)) if p.code == Code::Encoding));
    }

    /// (line of each row, blank rows) of a file.
    fn lines(input: &str) -> (Vec<u64>, u64) {
        let mut source = CsvRows::new(input.as_bytes()).unwrap();
        let mut lines = Vec::new();
        while let Some(row) = source.next_row().unwrap() {
            lines.push(row.line.unwrap());
        }
        (lines, source.blank_rows())
    }

    #[test]
    fn rows_know_their_lines_and_blank_lines_are_counted() {
        let r = "9990000018,CPP,2026-01-02,919,x,y";
        for eol in ["\n", "\r\n"] {
            let t = |s: &str| s.replace('\n', eol);
            assert_eq!(lines(&t(&format!("{HEADER}\n{r}\n{r}\n"))), (vec![2, 3], 0));
            assert_eq!(
                lines(&t(&format!("{HEADER}\n{r}\n{r}"))),
                (vec![2, 3], 0),
                "no final line feed"
            );
            assert_eq!(
                lines(&t(&format!("{HEADER}\n{r}\n\n\n{r}\n"))),
                (vec![2, 5], 2)
            );
            assert_eq!(
                lines(&t(&format!("{HEADER}\n{r}\n,,,,,\n{r}\n\n\n"))),
                (vec![2, 4], 3)
            );
            assert_eq!(lines(&t(&format!("\n{HEADER}\n\n{r}\n"))), (vec![4], 1));
            let quoted = "9990000018,CPP,2026-01-02,919,\"two\nlines\",y";
            assert_eq!(
                lines(&t(&format!("{HEADER}\n{quoted}\n\n{r}\n"))),
                (vec![2, 5], 1)
            );
        }
    }
}
