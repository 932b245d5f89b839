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

/// Reads rows of a CSV extract one at a time, reusing one record buffer.
pub struct CsvRows<R: Read> {
    reader: ::csv::Reader<LineCap<R>>,
    record: StringRecord,
    /// For each column of the file, which extract column it is.
    columns: Vec<Column>,
    row: u64,
    blank_rows: u64,
    /// The line the current record starts on.
    line: u64,
}

/// `line` is where the reader stands, `start` the line the record began on; `cap` is the
/// capped input (for the file's first bytes and line ends).
fn csv_error<R>(
    err: ::csv::Error,
    row: u64,
    (line, start): (u64, u64),
    columns: &[Column],
    cap: &LineCap<R>,
) -> SourceError {
    let head = cap.head();
    match err.into_kind() {
        ::csv::ErrorKind::Io(e) => linecap::source_error(e, columns.is_empty(), start),
        // The record was read whole, its LF (not a CR LF's) with it.
        ::csv::ErrorKind::Utf8 { err, .. } => SourceError::File(FileProblem::new(
            Code::Encoding,
            format!(
                "row {row} (line {}), column {}, character {}: the text is not UTF-8 (it looks like {}): save the file as UTF-8 (in Excel: CSV UTF-8)",
                line.saturating_sub(u64::from(!cap.crlf())).max(1),
                columns.get(err.field()).map_or("?", |c| c.csv_name()),
                err.valid_up_to() + 1,
                hints::encoding(head, 0x80)
            ),
        )),
        other => SourceError::File(FileProblem::new(
            Code::Header,
            format!("row {row}: the CSV could not be read ({other:?})"),
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
            if !reader.read_byte_record(&mut header).map_err(|e| {
                let at = reader.position().line();
                csv_error(e, 0, (at, at), &[], reader.get_ref())
            })? {
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
        let columns = map_header(&header, reader.get_ref().head())?;
        Ok(CsvRows {
            reader,
            record: StringRecord::new(),
            columns,
            row: 0,
            blank_rows: 0,
            line: 1,
        })
    }

    /// Rows skipped because every field was blank.
    pub fn blank_rows(&self) -> u64 {
        self.blank_rows
    }
}

/// Line feeds inside a record's fields (quoted fields may span lines).
fn line_feeds(record: &StringRecord) -> u64 {
    // The fields lie end to end in one buffer: one vectorised search over them all.
    memchr::memchr_iter(b'\n', record.as_slice().as_bytes()).count() as u64
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
            let before = self.reader.position().line();
            if !self.reader.read_record(&mut self.record).map_err(|e| {
                csv_error(
                    e,
                    self.row + 1,
                    (self.reader.position().line(), before),
                    &self.columns,
                    self.reader.get_ref(),
                )
            })? {
                // Empty lines at the end (with CR LF, the last row's LF is read here).
                let consumed = self.reader.position().line().saturating_sub(before);
                let crlf = u64::from(self.reader.get_ref().crlf());
                self.blank_rows += consumed.saturating_sub(crlf);
                return Ok(None);
            }
            // The reader skips empty lines before a record without a word. With LF ends a
            // read takes those lines, the record's own line feeds and its LF; with CR LF it
            // takes the previous record's LF, those lines, the record's line feeds and CR.
            let after = self.reader.position().line();
            let feeds = line_feeds(&self.record);
            let crlf = self.reader.get_ref().crlf();
            self.blank_rows += (after - before).saturating_sub(1 + feeds);
            self.line = after - feeds - u64::from(!crlf);
            if !is_blank(&self.record) {
                break;
            }
            self.blank_rows += 1;
        }
        self.row += 1;
        let line = Some(self.line);
        if self.record.len() != self.columns.len() {
            return Err(FileProblem::new(
                Code::Header,
                format!(
                    "row {}{}: has {} fields but the header has {}: check for an unquoted comma or a cut-off line",
                    self.row,
                    line.map(|l| format!(" (line {l})")).unwrap_or_default(),
                    self.record.len(),
                    self.columns.len()
                ),
            )
            .into());
        }
        let mut fields: [Option<&str>; COLUMN_COUNT] = [None; COLUMN_COUNT];
        for (text, &column) in self.record.iter().zip(&self.columns) {
            fields[column as usize] = Some(text.trim_ascii());
        }
        Ok(Some(RawRow {
            number: self.row,
            line,
            fields,
        }))
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
