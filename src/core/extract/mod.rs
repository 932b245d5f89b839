//! LA extracts (SPEC 2.2, 2.3): the columns, and streaming readers for CSV and XML that both
//! yield numbered [`RawRow`]s into the same validator.

pub mod cpis;
pub mod csv;
pub mod linecap;
pub mod xml;

use super::codes::Code;
use std::fmt;
use std::io;

/// A column of the extract, whatever the file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    NhsNumber,
    PlanType,
    StartDate,
    EndDate,
    LaCode,
    LaName,
    EdtPhone,
    OfficePhone,
    LocalRef,
    ExpectedDeliveryDate,
}

/// Number of columns; the index of a column in [`RawRow`] is `column as usize`.
pub const COLUMN_COUNT: usize = 10;

impl Column {
    pub const ALL: [Column; COLUMN_COUNT] = [
        Column::NhsNumber,
        Column::PlanType,
        Column::StartDate,
        Column::EndDate,
        Column::LaCode,
        Column::LaName,
        Column::EdtPhone,
        Column::OfficePhone,
        Column::LocalRef,
        Column::ExpectedDeliveryDate,
    ];

    /// The CSV header name (lower case; headers match case-insensitively).
    pub fn csv_name(self) -> &'static str {
        match self {
            Column::NhsNumber => "nhs_number",
            Column::PlanType => "plan_type",
            Column::StartDate => "start_date",
            Column::EndDate => "end_date",
            Column::LaCode => "la_code",
            Column::LaName => "la_name",
            Column::EdtPhone => "edt_phone",
            Column::OfficePhone => "office_phone",
            Column::LocalRef => "local_ref",
            Column::ExpectedDeliveryDate => "expected_delivery_date",
        }
    }

    /// The attribute name on an XML `Plan` element.
    pub fn xml_name(self) -> &'static str {
        match self {
            Column::NhsNumber => "nhsNumber",
            Column::PlanType => "type",
            Column::StartDate => "start",
            Column::EndDate => "end",
            Column::LaCode => "laCode",
            Column::LaName => "laName",
            Column::EdtPhone => "edtPhone",
            Column::OfficePhone => "officePhone",
            Column::LocalRef => "localRef",
            Column::ExpectedDeliveryDate => "expectedDeliveryDate",
        }
    }

    /// Where a CP-IS upload holds the column (interface 5A.3).
    pub fn cpis_name(self) -> &'static str {
        match self {
            Column::NhsNumber => "id (NHS number)",
            Column::PlanType => "pertinentInformation",
            Column::StartDate => "StartDate",
            Column::EndDate => "EndDate",
            Column::LaCode => "organisation id",
            Column::LaName => "organisation name",
            Column::EdtPhone => "telecom EC",
            Column::OfficePhone => "telecom WP",
            Column::LocalRef => "id (local)",
            Column::ExpectedDeliveryDate => "expectedDeliveryDate",
        }
    }

    /// Whether a CSV header must name the column. (In XML, `laCode` may be left to the root.)
    pub fn required(self) -> bool {
        matches!(
            self,
            Column::NhsNumber
                | Column::PlanType
                | Column::StartDate
                | Column::LaCode
                | Column::EdtPhone
                | Column::OfficePhone
        )
    }
}

/// Which spelling of column names messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Csv,
    Xml,
    /// CP-IS's own upload (HL7 v3).
    Cpis,
}

impl Dialect {
    pub fn name(self, column: Column) -> &'static str {
        match self {
            Dialect::Csv => column.csv_name(),
            Dialect::Xml => column.xml_name(),
            Dialect::Cpis => column.cpis_name(),
        }
    }

    /// How the format writes a date.
    pub fn date_form(self) -> &'static str {
        match self {
            Dialect::Csv | Dialect::Xml => "YYYY-MM-DD",
            Dialect::Cpis => "YYYYMMDDHHMM",
        }
    }
}

/// The most attributes (namespace declarations included) an XML element may have where
/// the reader could otherwise be made to work in their square (each checked against the
/// others, each declaration searched by every element inside it): CP-IS's elements have
/// at most 3, our `Extract` 4.
pub const MAX_ATTRIBUTES: usize = 32;

/// The largest field the gateway accepts, in bytes (SPEC 2.2).
pub const MAX_FIELD_BYTES: usize = 256;

/// One data row as read, before validation: each column's text, trimmed, if the file has it.
#[derive(Debug, Clone, Copy)]
pub struct RawRow<'a> {
    /// 1 = the first data row.
    pub number: u64,
    /// The line of the file the row starts on, where the reader knows it.
    pub line: Option<u64>,
    pub fields: [Option<&'a str>; COLUMN_COUNT],
}

impl<'a> RawRow<'a> {
    pub fn get(&self, column: Column) -> Option<&'a str> {
        self.fields[column as usize]
    }
}

/// Rows as read, owned, in one buffer: what the reading thread hands the checking one.
/// Cleared and filled again, it allocates nothing once it has held its largest rows.
#[derive(Debug, Default)]
pub struct RowBatch {
    text: String,
    rows: Vec<BatchedRow>,
}

/// A row of a [`RowBatch`]: its number, its line, where each field is in the text.
type BatchedRow = (u64, Option<u64>, [Option<(u32, u32)>; COLUMN_COUNT]);

impl RowBatch {
    pub fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The bytes of text it holds.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    /// Copies a row in. A batch holds at most 4 GiB of text (rows are capped far below).
    pub fn push(&mut self, row: &RawRow<'_>) {
        let spans = row.fields.map(|field| {
            field.map(|text| {
                let start = self.text.len();
                self.text.push_str(text);
                (start as u32, self.text.len() as u32)
            })
        });
        self.rows.push((row.number, row.line, spans));
    }

    /// The rows, as they were read.
    pub fn rows(&self) -> impl Iterator<Item = RawRow<'_>> {
        self.rows.iter().map(|(number, line, spans)| RawRow {
            number: *number,
            line: *line,
            fields: spans.map(|span| span.map(|(a, b)| &self.text[a as usize..b as usize])),
        })
    }
}

/// A problem that rejects the whole file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileProblem {
    pub code: Code,
    pub message: String,
}

impl FileProblem {
    pub fn new(code: Code, message: impl Into<String>) -> FileProblem {
        FileProblem {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Why a reader stopped: the file is bad, or reading it failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    File(FileProblem),
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

impl From<FileProblem> for SourceError {
    fn from(p: FileProblem) -> Self {
        SourceError::File(p)
    }
}

/// A streaming source of numbered rows. Rows borrow the reader's buffer, so this is a
/// lending "iterator": call `next_row` until it returns `Ok(None)`.
pub trait RowSource {
    fn next_row(&mut self) -> Result<Option<RawRow<'_>>, SourceError>;

    /// Spelling of column names for messages about this source.
    fn dialect(&self) -> Dialect;

    /// Checks made once the last row is read (e.g. XML `recordCount`).
    fn finish(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Shortens a value for echoing in a message.
pub fn shown(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_each_row_as_it_was_pushed_and_can_be_refilled() {
        let mut batch = RowBatch::default();
        for round in 0..2 {
            batch.clear();
            let rows: Vec<(u64, Option<u64>, [Option<String>; COLUMN_COUNT])> = (0..50u64)
                .map(|i| {
                    let fields = std::array::from_fn(|c| {
                        (!(c as u64 + i + round).is_multiple_of(3))
                            .then(|| format!("r{i}c{c}é{round}"))
                    });
                    (i + 1, (i % 2 == 0).then_some(i * 3), fields)
                })
                .collect();
            for (number, line, fields) in &rows {
                batch.push(&RawRow {
                    number: *number,
                    line: *line,
                    fields: std::array::from_fn(|c| fields[c].as_deref()),
                });
            }
            assert_eq!(batch.len(), rows.len());
            for (got, (number, line, fields)) in batch.rows().zip(&rows) {
                assert_eq!((got.number, got.line), (*number, *line));
                let want: [Option<&str>; COLUMN_COUNT] =
                    std::array::from_fn(|c| fields[c].as_deref());
                assert_eq!(got.fields, want);
            }
        }
    }
}
