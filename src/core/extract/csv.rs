//! Streaming reader for CSV extracts (SPEC 2.2).
//!
//! UTF-8 (a BOM is tolerated), RFC 4180 quoting, LF or CRLF, a header row whose names match
//! case-insensitively in any order. Rows whose fields are all blank (spreadsheet exports end
//! with them) are skipped; any other row must have as many fields as the header, because a
//! ragged row cannot be read reliably and guessing could close a child's record by absence.

use super::linecap::{self, LineCap};
use super::{Column, Dialect, FileProblem, RawRow, RowSource, SourceError, COLUMN_COUNT};
use crate::core::codes::Code;
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
}

fn csv_error(err: ::csv::Error, row: u64, line: u64, columns: &[Column]) -> SourceError {
    match err.into_kind() {
        ::csv::ErrorKind::Io(e) => linecap::source_error(e, columns.is_empty(), line),
        ::csv::ErrorKind::Utf8 { err, .. } => SourceError::File(FileProblem::new(
            Code::Encoding,
            format!(
                "row {row}, column {}: the text is not UTF-8: save the file as UTF-8",
                columns.get(err.field()).map_or("?", |c| c.csv_name())
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
            if !reader
                .read_byte_record(&mut header)
                .map_err(|e| csv_error(e, 0, reader.position().line(), &[]))?
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
        let columns = map_header(&header)?;
        Ok(CsvRows {
            reader,
            record: StringRecord::new(),
            columns,
            row: 0,
            blank_rows: 0,
        })
    }

    /// Rows skipped because every field was blank.
    pub fn blank_rows(&self) -> u64 {
        self.blank_rows
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
fn map_header(header: &ByteRecord) -> Result<Vec<Column>, FileProblem> {
    let mut columns = Vec::with_capacity(header.len());
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(raw) else {
            return Err(FileProblem::new(
                Code::Encoding,
                format!(
                    "header column {}: the name is not UTF-8 text: save the file as UTF-8",
                    i + 1
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
            if !self.reader.read_record(&mut self.record).map_err(|e| {
                csv_error(
                    e,
                    self.row + 1,
                    self.reader.position().line(),
                    &self.columns,
                )
            })? {
                return Ok(None);
            }
            if !is_blank(&self.record) {
                break;
            }
            self.blank_rows += 1;
        }
        self.row += 1;
        let line = self.record.position().map(|p| p.line());
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
}
