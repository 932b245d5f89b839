//! A cap on the length of one line of a CSV file, applied while reading, so that a file
//! that lost its line breaks (or a hostile one) cannot make the reader buffer it whole:
//! memory stays flat in file size. No valid row comes near the cap: every field is at most
//! 256 bytes and a row has at most a dozen of them.

use super::{FileProblem, SourceError};
use crate::core::codes::Code;
use std::io::{self, Read};

/// The longest line read (bytes between two line feeds).
pub const MAX_LINE_BYTES: u64 = 64 * 1024;

/// The error a [`LineCap`] raises (inside an `io::Error`) when a line is too long. The line's
/// number comes from the CSV reader, which counts lines anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a line is longer than {MAX_LINE_BYTES} bytes")
    }
}

impl std::error::Error for LineTooLong {}

/// Passes bytes through, failing once a line grows past [`MAX_LINE_BYTES`], and ends the
/// stream with a line feed if it lacks one.
pub struct LineCap<R> {
    inner: R,
    /// Bytes of the current line so far.
    run: u64,
    /// The last byte passed on.
    last: u8,
    /// Whether lines end CR LF (known from the first line end).
    crlf: Option<bool>,
    /// The line end still to supply after the input's end (`None` once decided).
    tail: Option<&'static [u8]>,
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
}

impl<R: Read> LineCap<R> {
    pub fn new(inner: R) -> Self {
        LineCap {
            inner,
            run: 0,
            last: 0,
            crlf: None,
            tail: None,
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
        if n == 0 {
            if self.run > 0 && !buf.is_empty() {
                self.run = 0;
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
        self.last = chunk[n - 1];
        match (memchr::memchr(b'\n', chunk), memchr::memrchr(b'\n', chunk)) {
            (Some(first), Some(last)) if n as u64 <= MAX_LINE_BYTES => {
                // A chunk no longer than the cap cannot hold a too-long line between its
                // first and last line feeds: only the line carried in and the one carried
                // out need checking.
                if self.run + first as u64 > MAX_LINE_BYTES {
                    return Err(too_long());
                }
                self.run = (n - last - 1) as u64;
            }
            (None, _) | (_, None) => self.run += n as u64,
            _ => {
                let mut start = 0;
                for nl in memchr::memchr_iter(b'\n', chunk) {
                    if self.run + (nl - start) as u64 > MAX_LINE_BYTES {
                        return Err(too_long());
                    }
                    self.run = 0;
                    start = nl + 1;
                }
                self.run += (n - start) as u64;
            }
        }
        if self.run > MAX_LINE_BYTES {
            return Err(too_long());
        }
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
    let long = format!("line {line} is longer than {MAX_LINE_BYTES} bytes");
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
                "{long}, which no row can be (every field is at most 256 bytes): the file is damaged, check its line breaks and quotes; nothing of it was applied"
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
    fn the_problem_names_the_line_and_the_code() {
        let e = too_long();
        let p = line_problem(&e, false, 7).unwrap();
        assert_eq!(p.code, Code::FieldTooLong);
        assert!(
            p.message.starts_with("line 7 is longer than"),
            "{}",
            p.message
        );
        assert_eq!(line_problem(&e, true, 1).unwrap().code, Code::Header);
        assert!(line_problem(&io::Error::other("disk"), false, 1).is_none());
    }
}
