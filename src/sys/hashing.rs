//! A reader that hashes what passes through it (sha256), counts it, moves a progress bar,
//! and can write a copy of every byte as it goes (the archive's copy of an inbound file).

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// A reader that hashes and counts what passes through it, moves a progress bar, and
/// writes a copy of every byte it passes on when given a file to copy into.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bar: ProgressBar,
    copy: Option<tempfile::NamedTempFile>,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, bar: ProgressBar) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bar,
            copy: None,
            read: 0,
        }
    }

    /// As [`HashingReader::new`], writing what it reads into `copy` as well.
    pub fn copying(inner: R, bar: ProgressBar, copy: tempfile::NamedTempFile) -> Self {
        HashingReader {
            copy: Some(copy),
            ..HashingReader::new(inner, bar)
        }
    }

    /// Reads whatever is left, then returns the hex sha256 of everything read.
    pub fn finish(self) -> io::Result<String> {
        Ok(self.finish_copy()?.0)
    }

    /// Reads whatever is left; the hex sha256 of everything read, how many bytes that was,
    /// and the copy (holding exactly those bytes).
    pub fn finish_copy(mut self) -> io::Result<(String, u64, Option<tempfile::NamedTempFile>)> {
        io::copy(&mut self, &mut io::sink())?;
        self.bar.finish_and_clear();
        Ok((hex::encode(self.hasher.finalize()), self.read, self.copy))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(copy) = &mut self.copy {
            std::io::Write::write_all(copy, &buf[..n])?;
        }
        self.read += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
