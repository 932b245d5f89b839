//! A cap on the length of one CSV record, applied while reading, so that a file that lost
//! its line breaks, or holds a quoted field spanning a million lines (a hostile one), cannot
//! make the reader buffer it whole: memory stays flat in file size. A record is counted as
//! the `csv` crate reads it: a line feed or carriage return ends it only outside quotes, and
//! a quote opens a quoted field only at a field's start (elsewhere it is a character like
//! any other). No valid row comes near the cap: every field is at most 256 bytes and a row
//! has at most a dozen of them.

use super::{FileProblem, SourceError};
use crate::core::codes::Code;
use std::io::{self, Read};

/// The longest record read (bytes between two record ends, quoted line ends included).
pub const MAX_LINE_BYTES: u64 = 64 * 1024;

/// The error a [`LineCap`] raises (inside an `io::Error`) when a record is too long. The
/// line's number comes from the CSV reader, which counts lines anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a record is longer than {MAX_LINE_BYTES} bytes")
    }
}

impl std::error::Error for LineTooLong {}

/// Where the reader stands with respect to quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// Not in a quoted field.
    Out,
    /// Inside a quoted field.
    In,
    /// Just after a quote inside a quoted field: a second quote is an escaped quote,
    /// anything else closes the field.
    Closing,
}

/// Passes bytes through, failing once a record grows past [`MAX_LINE_BYTES`], and ends the
/// stream with a line feed if it lacks one.
pub struct LineCap<R> {
    inner: R,
    /// The longest record allowed ([`MAX_LINE_BYTES`]; smaller in tests).
    max: u64,
    /// Bytes of the current record so far.
    run: u64,
    quote: Quote,
    /// The last byte passed on (a line feed before the first: a record starts there).
    last: u8,
    /// Whether lines end CR LF (known from the first line end).
    crlf: Option<bool>,
    /// The line end still to supply after the input's end (`None` once decided).
    tail: Option<&'static [u8]>,
    /// How many bytes of a UTF-8 byte-order mark the input started with (the csv crate
    /// skips a whole one: a quote right after it opens a quoted field); `None` once past
    /// the start.
    bom: Option<usize>,
    /// The first bytes of the input (to guess an encoding that is not UTF-8).
    head: [u8; 4],
    head_len: usize,
}

impl<R> LineCap<R> {
    /// The first (up to 4) bytes of the input.
    pub fn head(&self) -> &[u8] {
        &self.head[..self.head_len]
    }

    /// Whether the file's lines end CR LF (as its first line does).
    pub fn crlf(&self) -> bool {
        self.crlf == Some(true)
    }

    /// Follows `chunk` through the quoting rules, counting the current record's bytes.
    fn scan(&mut self, chunk: &[u8]) -> io::Result<()> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let n = chunk.len();
        let mut i = 0;
        // A byte-order mark is not part of the first record: skipped as the csv crate
        // skips it, `last` still saying a record starts here.
        while let Some(matched) = self.bom.filter(|_| i < n) {
            if chunk[i] == BOM[matched] {
                i += 1;
                self.bom = (matched + 1 < BOM.len()).then_some(matched + 1);
            } else {
                // Not a mark after all: its bytes were data.
                self.run += matched as u64;
                if matched > 0 {
                    self.last = BOM[matched - 1];
                }
                self.bom = None;
            }
        }
        let start = i;
        while i < n {
            match self.quote {
                Quote::In => match memchr::memchr(b'"', &chunk[i..]) {
                    None => {
                        self.run += (n - i) as u64;
                        i = n;
                    }
                    Some(j) => {
                        self.run += j as u64 + 1;
                        i += j + 1;
                        self.quote = Quote::Closing;
                    }
                },
                Quote::Closing if chunk[i] == b'"' => {
                    self.run += 1;
                    i += 1;
                    self.quote = Quote::In;
                }
                Quote::Closing => self.quote = Quote::Out,
                Quote::Out => match memchr::memchr3(b'"', b'\n', b'\r', &chunk[i..]) {
                    None => {
                        self.run += (n - i) as u64;
                        i = n;
                    }
                    Some(j) => {
                        let at = i + j;
                        if chunk[at] == b'"' {
                            self.run += j as u64 + 1;
                            let before = if at > start { chunk[at - 1] } else { self.last };
                            if matches!(before, b',' | b'\n' | b'\r') {
                                self.quote = Quote::In;
                            }
                        } else {
                            self.run += j as u64;
                            if self.run > self.max {
                                return Err(too_long());
                            }
                            self.run = 0;
                        }
                        i = at + 1;
                    }
                },
            }
            if self.run > self.max {
                return Err(too_long());
            }
        }
        if start < n {
            self.last = chunk[n - 1];
        }
        Ok(())
    }
}

impl<R: Read> LineCap<R> {
    pub fn new(inner: R) -> Self {
        LineCap::with_max(inner, MAX_LINE_BYTES)
    }

    fn with_max(inner: R, max: u64) -> Self {
        LineCap {
            inner,
            max,
            run: 0,
            quote: Quote::Out,
            last: b'\n',
            crlf: None,
            tail: None,
            bom: Some(0),
            head: [0; 4],
            head_len: 0,
        }
    }
}

impl<R: Read> Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(tail) = self.tail {
            // A last line without a line end gets one (in the file's style), so that every
            // row ends alike and the reader's line count stays true. The file's bytes and
            // hash are untouched: this is after hashing.
            let n = tail.len().min(buf.len());
            buf[..n].copy_from_slice(&tail[..n]);
            self.tail = Some(&tail[n..]);
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if let Some(matched) = self.bom.filter(|m| n == 0 && *m > 0) {
            // The input ended inside what looked like a byte-order mark: it was data.
            self.bom = None;
            self.run += matched as u64;
            self.last = b"\xEF\xBB"[matched - 1];
            if self.run > self.max {
                return Err(too_long());
            }
        }
        if n == 0 {
            if !matches!(self.last, b'\n' | b'\r') && !buf.is_empty() {
                self.last = b'\n';
                self.tail = Some(if self.crlf() { b"\r\n" } else { b"\n" });
                return self.read(buf);
            }
            return Ok(0);
        }
        let chunk = &buf[..n];
        if self.head_len < 4 {
            let take = (4 - self.head_len).min(n);
            self.head[self.head_len..self.head_len + take].copy_from_slice(&chunk[..take]);
            self.head_len += take;
        }
        if self.crlf.is_none() {
            if let Some(i) = memchr::memchr(b'\n', chunk) {
                let before = if i > 0 { chunk[i - 1] } else { self.last };
                self.crlf = Some(before == b'\r');
            }
        }
        self.scan(chunk)?;
        Ok(n)
    }
}

fn too_long() -> io::Error {
    io::Error::other(LineTooLong)
}

/// The file problem for a line that is too long, if `e` is one: `HEADER` when it is the
/// header line (`in_header`), else `FIELD_TOO_LONG`. `line` is where the reader stood.
pub fn line_problem(e: &io::Error, in_header: bool, line: u64) -> Option<FileProblem> {
    e.get_ref()?.downcast_ref::<LineTooLong>()?;
    let long = format!("the record at line {line} is longer than {MAX_LINE_BYTES} bytes");
    Some(if in_header {
        FileProblem::new(
            Code::Header,
            format!(
                "the header ({long}) is not a list of the extract's columns: check that the file has line breaks and is the extract itself"
            ),
        )
    } else {
        FileProblem::new(
            Code::FieldTooLong,
            format!(
                "{long}, which no row can be (every field is at most 256 bytes): the file is damaged, check its line breaks and quotes (a quote left open runs on over the lines after it); nothing of it was applied"
            ),
        )
    })
}

/// Maps an I/O error of a capped reader to a file problem where it is one.
pub fn source_error(e: io::Error, in_header: bool, line: u64) -> SourceError {
    match line_problem(&e, in_header, line) {
        Some(p) => SourceError::File(p),
        None => SourceError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything in chunks of `chunk`: Ok(bytes) or Err(offset of the failing read).
    fn read_all(bytes: &[u8], chunk: usize) -> Result<Vec<u8>, usize> {
        let mut r = LineCap::new(bytes);
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert!(line_problem(&e, false, 3).is_some(), "{e}");
                    return Err(out.len());
                }
            }
        }
    }

    #[test]
    fn short_lines_pass_whatever_the_chunking() {
        let text = "a,b\n".repeat(50_000);
        for chunk in [1, 7, 4096, 1 << 16, 1 << 20] {
            assert_eq!(read_all(text.as_bytes(), chunk).unwrap(), text.as_bytes());
        }
        let exact = vec![b'x'; MAX_LINE_BYTES as usize];
        assert!(read_all(&exact, 1000).is_ok());
    }

    #[test]
    fn a_long_line_fails_before_much_more_is_read() {
        let mut text = b"h\nok\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES as usize + 1));
        text.extend_from_slice(b"\nmore\n");
        text.extend(std::iter::repeat_n(b'y', 1 << 20));
        for chunk in [1, 999, 1 << 16, 1 << 20] {
            let read = read_all(&text, chunk).unwrap_err();
            assert!(
                read <= MAX_LINE_BYTES as usize + (1 << 20) + 6,
                "chunk {chunk}: {read}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_a_quote() {
        let mut text = b"\xEF\xBB\xBF\"".to_vec();
        text.extend("x\n".repeat(40_000).as_bytes());
        text.extend(b"\"\n");
        for chunk in [1, 2, 3, 4096] {
            assert!(read_all(&text, chunk).is_err(), "chunk {chunk}");
        }
        let fine = format!("\u{feff}h\n{}", "a,b\n".repeat(40_000));
        assert!(read_all(fine.as_bytes(), 3).is_ok());
    }

    #[test]
    fn a_quoted_field_over_many_lines_is_one_record() {
        let line = "x".repeat(63);
        let mut text = format!("h\nok,\"{line}");
        for _ in 0..1100 {
            text.push('\n');
            text.push_str(&line);
        }
        text.push_str("\"\n");
        for chunk in [1, 999, 1 << 16] {
            assert!(read_all(text.as_bytes(), chunk).is_err(), "chunk {chunk}");
        }
        // Under the cap, and with quotes that escape quotes: read whole.
        let short = "h\n\"a\nb \"\"c\"\"\nd\",e\n".repeat(2000);
        assert_eq!(read_all(short.as_bytes(), 7).unwrap(), short.as_bytes());
        // A quote inside an unquoted field opens nothing: the lines after it stay lines.
        let stray = format!("h\nO\"Brien,x\n{}", "a,b\n".repeat(40_000));
        assert!(read_all(stray.as_bytes(), 4096).is_ok());
    }

    /// Whatever the `csv` crate would read as one record longer than the cap makes the cap
    /// fail (so the reader never buffers more), on many random inputs made of the
    /// characters that matter.
    #[test]
    fn no_record_the_csv_crate_reads_escapes_the_cap() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut input: Vec<u8> = match next() % 4 {
                0 => b"\xEF\xBB\xBF".to_vec(),
                1 => b"\xEF\xBB".to_vec(),
                _ => Vec::new(),
            };
            input.extend((0..len).map(|_| b"ab\",\n\r"[(next() % 6) as usize]));
            // The longest record the csv crate reads: its span, line ends around it excluded.
            let mut reader = ::csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&input[..]);
            let mut record = ::csv::ByteRecord::new();
            // A whole byte-order mark is skipped by the csv crate, not part of a record.
            let (mut longest, mut start) = (
                0,
                if input.starts_with(b"\xEF\xBB\xBF") {
                    3
                } else {
                    0
                },
            );
            while let Ok(true) = reader.read_byte_record(&mut record) {
                let end = (reader.position().byte() as usize).max(start);
                let span = &input[start..end];
                let is_end = |b: &&u8| matches!(b, b'\n' | b'\r');
                let body = span.iter().skip_while(is_end).count();
                let body = span[span.len() - body..]
                    .iter()
                    .rev()
                    .skip_while(is_end)
                    .count();
                longest = longest.max(body as u64);
                start = end;
            }
            for max in [0, 1, 2, 3, 5, 8] {
                if longest <= max {
                    continue;
                }
                let mut cap = LineCap::with_max(&input[..], max);
                let mut buf = [0u8; 3];
                let failed = loop {
                    match cap.read(&mut buf) {
                        Ok(0) => break false,
                        Ok(_) => {}
                        Err(_) => break true,
                    }
                };
                assert!(
                    failed,
                    "{:?}: a record of {longest} bytes passed a cap of {max}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }

    #[test]
    fn the_problem_names_the_line_and_the_code() {
        let e = too_long();
        let p = line_problem(&e, false, 7).unwrap();
        assert_eq!(p.code, Code::FieldTooLong);
        assert!(
            p.message.starts_with("the record at line 7 is longer than"),
            "{}",
            p.message
        );
        assert_eq!(line_problem(&e, true, 1).unwrap().code, Code::Header);
        assert!(line_problem(&io::Error::other("disk"), false, 1).is_none());
    }
}
