//! A reader that hashes what passes through it (sha256), counts it, moves a progress bar,
//! and can write a copy of every byte as it goes (the archive's copy of an inbound file).
//!
//! With a core to spare (`sys::node::two_cores`), [`HashingReader::new`] reads and hashes
//! on a thread of its own, a few blocks ahead of whoever parses what it reads (attendance
//! files; files only hashed). The blocks in flight are bounded ([`BLOCKS`] of [`BLOCK`]
//! bytes), so memory stays flat whatever the file's size. On one core, where a second
//! thread only adds hand-offs, it all happens as it is read; so it does, with the archive's
//! copy, for a caller that reads on a thread of its own already ([`HashingReader::inline`]).

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// The size of a block read at once.
const BLOCK: usize = 256 * 1024;

/// Blocks read ahead at most (besides the one being parsed).
const BLOCKS: usize = 4;

/// What reading ends with: the hash, the bytes read, the copy (inline only).
type Done = (String, u64, Option<tempfile::NamedTempFile>);

/// A reader that hashes and counts what passes through it, moves a progress bar, and
/// writes a copy of every byte it passes on when given a file to copy into.
pub struct HashingReader {
    mode: Mode,
    bar: ProgressBar,
}

enum Mode {
    /// Read, hashed and copied as it is read.
    Inline {
        inner: Box<dyn Read + Send>,
        hasher: Sha256,
        copy: Option<tempfile::NamedTempFile>,
        read: u64,
    },
    /// By a thread of its own, ahead.
    Ahead(Ahead),
}

struct Ahead {
    blocks: Receiver<io::Result<Vec<u8>>>,
    /// Emptied blocks go back to the reading thread.
    spent: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
    worker: Option<JoinHandle<io::Result<Done>>>,
}

impl HashingReader {
    pub fn new<R: Read + Send + 'static>(inner: R, bar: ProgressBar) -> Self {
        if crate::sys::node::two_cores() {
            Self::ahead(inner, bar)
        } else {
            Self::inline(inner, bar, None)
        }
    }

    /// Hashing (and writing what it reads into `copy`, if given one) on the thread that
    /// reads, always: for a caller that reads on a thread of its own already (an extract's
    /// rows are parsed ahead of the checks), where one more thread would only move every
    /// byte from one core to another.
    pub fn inline<R: Read + Send + 'static>(
        inner: R,
        bar: ProgressBar,
        copy: Option<tempfile::NamedTempFile>,
    ) -> Self {
        HashingReader {
            mode: Mode::Inline {
                inner: Box::new(inner),
                hasher: Sha256::new(),
                copy,
                read: 0,
            },
            bar,
        }
    }

    /// Reading and hashing on a thread of its own, a few blocks ahead.
    fn ahead<R: Read + Send + 'static>(mut inner: R, bar: ProgressBar) -> Self {
        let (send, blocks) = sync_channel::<io::Result<Vec<u8>>>(BLOCKS);
        let (spent, back) = sync_channel::<Vec<u8>>(BLOCKS + 2);
        let progress = bar.clone();
        let worker = std::thread::spawn(move || -> io::Result<Done> {
            let mut hasher = Sha256::new();
            let mut read = 0u64;
            loop {
                let mut block = back
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
                block.resize(BLOCK, 0);
                let n = match fill(&mut inner, &mut block) {
                    Ok(n) => n,
                    Err(e) => {
                        let kind = e.kind();
                        let _ = send.send(Err(e));
                        return Err(io::Error::new(kind, "reading stopped"));
                    }
                };
                block.truncate(n);
                hasher.update(&block);
                read += n as u64;
                progress.inc(n as u64);
                // The last block is the empty one; a dropped reader wants no more.
                if send.send(Ok(block)).is_err() || n == 0 {
                    break;
                }
            }
            Ok((hex::encode(hasher.finalize()), read, None))
        });
        HashingReader {
            mode: Mode::Ahead(Ahead {
                blocks,
                spent,
                current: Vec::new(),
                at: 0,
                ended: false,
                worker: Some(worker),
            }),
            bar,
        }
    }

    /// Reads whatever is left, then returns the hex sha256 of everything read.
    pub fn finish(self) -> io::Result<String> {
        Ok(self.finish_copy()?.0)
    }

    /// Reads whatever is left; the hex sha256 of everything read, how many bytes that was,
    /// and the copy (holding exactly those bytes).
    pub fn finish_copy(mut self) -> io::Result<Done> {
        io::copy(&mut self, &mut io::sink())?;
        self.bar.finish_and_clear();
        match self.mode {
            Mode::Inline {
                hasher, copy, read, ..
            } => Ok((hex::encode(hasher.finalize()), read, copy)),
            Mode::Ahead(mut ahead) => ahead
                .worker
                .take()
                .expect("finished once")
                .join()
                .map_err(|_| io::Error::other("the reading thread panicked"))?,
        }
    }
}

impl Ahead {
    /// Moves to the next block (an empty one at the end).
    fn next_block(&mut self) -> io::Result<()> {
        let spent = std::mem::take(&mut self.current);
        let _ = self.spent.try_send(spent);
        self.at = 0;
        match self.blocks.recv() {
            Ok(Ok(block)) => {
                self.ended = block.is_empty();
                self.current = block;
                Ok(())
            }
            Ok(Err(e)) => {
                self.ended = true;
                Err(e)
            }
            // The thread ended without a last (empty) block: it failed; its error comes
            // through the join.
            Err(_) => {
                self.ended = true;
                match self.worker.take().map(JoinHandle::join) {
                    Some(Ok(Err(e))) => Err(e),
                    _ => Err(io::Error::other("the reading thread stopped")),
                }
            }
        }
    }
}

/// Reads into `block` until it is full or the input ends; how many bytes it holds.
fn fill(inner: &mut impl Read, block: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < block.len() {
        match inner.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.mode {
            Mode::Inline {
                inner,
                hasher,
                copy,
                read,
            } => {
                let n = inner.read(buf)?;
                hasher.update(&buf[..n]);
                if let Some(copy) = copy {
                    copy.write_all(&buf[..n])?;
                }
                *read += n as u64;
                self.bar.inc(n as u64);
                Ok(n)
            }
            Mode::Ahead(ahead) => {
                while ahead.at == ahead.current.len() {
                    if ahead.ended {
                        return Ok(0);
                    }
                    ahead.next_block()?;
                }
                let n = buf.len().min(ahead.current.len() - ahead.at);
                buf[..n].copy_from_slice(&ahead.current[ahead.at..ahead.at + n]);
                ahead.at += n;
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads in uneven pieces, as a parser does.
    fn read_unevenly(r: &mut HashingReader) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 7919];
        let mut size = 1;
        loop {
            let n = r.read(&mut buf[..size]).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
            size = (size * 7 + 997) % 7919 + 1;
        }
    }

    #[test]
    fn passes_on_hashes_and_copies_every_byte_whatever_the_sizes() {
        for len in [
            0,
            1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + 12345,
            11 * BLOCK,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let dir = tempfile::tempdir().unwrap();
            for ahead in [true, false] {
                let input = io::Cursor::new(bytes.clone());
                let mut r = if ahead {
                    HashingReader::ahead(input, ProgressBar::hidden())
                } else {
                    let copy = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
                    HashingReader::inline(input, ProgressBar::hidden(), Some(copy))
                };
                assert_eq!(read_unevenly(&mut r), bytes, "{len} {ahead}");
                let (sha, read, copy) = r.finish_copy().unwrap();
                assert_eq!(sha, hex::encode(Sha256::digest(&bytes)), "{len}");
                assert_eq!(read, len as u64);
                if !ahead {
                    assert_eq!(std::fs::read(copy.unwrap().path()).unwrap(), bytes);
                }
            }
        }
    }

    #[test]
    fn finishing_early_reads_the_rest_and_dropping_early_stops_the_thread() {
        let bytes = vec![7u8; 5 * BLOCK + 3];
        let ahead = |b: Vec<u8>| HashingReader::ahead(io::Cursor::new(b), ProgressBar::hidden());
        let mut r = ahead(bytes.clone());
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        let (sha, read, _) = r.finish_copy().unwrap();
        assert_eq!(sha, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(read, bytes.len() as u64);
        // Dropped with blocks unread: nothing hangs.
        let mut r = ahead(bytes);
        r.read_exact(&mut first).unwrap();
        drop(r);
    }

    /// Fails after `good` bytes.
    struct Failing {
        good: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.good == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad disk"));
            }
            let n = buf.len().min(self.good);
            buf[..n].fill(1);
            self.good -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_reaches_the_reader_and_finish() {
        for ahead in [true, false] {
            let start = |good| {
                let (input, bar) = (Failing { good }, ProgressBar::hidden());
                if ahead {
                    HashingReader::ahead(input, bar)
                } else {
                    HashingReader::inline(input, bar, None)
                }
            };
            let mut all = Vec::new();
            let e = start(BLOCK + 5).read_to_end(&mut all).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert_eq!(e.to_string(), "bad disk");
            assert_eq!(
                start(3).finish().unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
        }
    }
}
