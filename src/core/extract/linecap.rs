//! A cap on the length of one line of a CSV file, applied while reading, so that a file
//! that lost its line breaks (or a hostile one) cannot make the reader buffer it whole:
//! memory stays flat in file size. No valid row comes near the cap: every field is at most
//! 256 bytes and a row has at most a dozen of them.

use super::{FileProblem, SourceError};
use crate::core::codes::Code;
use std::io::{self, Read};

/// The longest line read (bytes between two line feeds).
pub const MAX_LINE_BYTES: u64 = 64 * 1024;

/// The error a [`LineCap`] raises (inside an `io::Error`) when a line is too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The line of the file (1 = first line) that is too long.
    pub line: u64,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} is longer than {MAX_LINE_BYTES} bytes",
            self.line
        )
    }
}

impl std::error::Error for LineTooLong {}

/// Passes bytes through, failing once a line grows past [`MAX_LINE_BYTES`].
pub struct LineCap<R> {
    inner: R,
    /// Bytes of the current line so far.
    run: u64,
    /// Line feeds seen so far.
    lines: u64,
}

impl<R: Read> LineCap<R> {
    pub fn new(inner: R) -> Self {
        LineCap {
            inner,
            run: 0,
            lines: 0,
        }
    }
}

impl<R: Read> Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &buf[..n]) {
            if self.run + (nl - start) as u64 > MAX_LINE_BYTES {
                break;
            }
            self.run = 0;
            self.lines += 1;
            start = nl + 1;
        }
        self.run += (n - start) as u64;
        if self.run > MAX_LINE_BYTES {
            return Err(io::Error::other(LineTooLong {
                line: self.lines + 1,
            }));
        }
        Ok(n)
    }
}

/// The file problem for a line that is too long, if `e` is one: `HEADER` when it is the
/// header line (`in_header`), else `FIELD_TOO_LONG`.
pub fn line_problem(e: &io::Error, in_header: bool) -> Option<FileProblem> {
    let long = e.get_ref()?.downcast_ref::<LineTooLong>()?;
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
pub fn source_error(e: io::Error, in_header: bool) -> SourceError {
    match line_problem(&e, in_header) {
        Some(p) => SourceError::File(p),
        None => SourceError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], chunk: usize) -> Result<Vec<u8>, u64> {
        let mut r = LineCap::new(bytes);
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(line_problem_line(&e)),
            }
        }
    }

    fn line_problem_line(e: &io::Error) -> u64 {
        e.get_ref()
            .and_then(|i| i.downcast_ref::<LineTooLong>())
            .map(|l| l.line)
            .expect("a LineTooLong")
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
    fn a_long_line_fails_with_its_number() {
        let mut text = b"h\nok\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES as usize + 1));
        text.extend_from_slice(b"\nmore\n");
        for chunk in [1, 999, 1 << 16, 1 << 20] {
            assert_eq!(read_all(&text, chunk), Err(3), "chunk {chunk}");
        }
    }
}
