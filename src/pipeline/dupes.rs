//! Finding duplicate keys in a file of any size with flat memory.
//!
//! Each row with a valid key is logged as one `u64`: the 36-bit key above a 28-bit row
//! number. Up to [`RUN_ENTRIES`] entries are kept in memory; past that, each full buffer is
//! sorted and spilled to an anonymous temporary file, and the runs are merged at the end.
//! A 1,000,000-row extract never touches the disk; a 1 GiB one uses a few MiB of RAM.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// Entries held in memory before a run is spilled (8 MiB).
pub const RUN_ENTRIES: usize = 1 << 20;

/// Rows are numbered in 28 bits.
pub const MAX_ROWS: u64 = (1 << ROW_BITS) - 1;
const ROW_BITS: u32 = 28;

/// Collects (key, row) pairs and reports the rows whose key occurs more than once.
pub struct DuplicateFinder {
    buffer: Vec<u64>,
    runs: Vec<File>,
}

impl Default for DuplicateFinder {
    fn default() -> Self {
        Self::new()
    }
}

impl DuplicateFinder {
    pub fn new() -> DuplicateFinder {
        DuplicateFinder {
            buffer: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Logs a row's packed key (see `RowKey::packed`). Rows must be at most [`MAX_ROWS`].
    pub fn push(&mut self, key: u64, row: u64) -> io::Result<()> {
        debug_assert!(row <= MAX_ROWS && key < 1 << (64 - ROW_BITS));
        self.buffer.push((key << ROW_BITS) | row);
        if self.buffer.len() >= RUN_ENTRIES {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable();
        let mut file = tempfile::tempfile()?;
        {
            let mut w = BufWriter::with_capacity(1 << 16, &mut file);
            for v in &self.buffer {
                w.write_all(&v.to_le_bytes())?;
            }
            w.flush()?;
        }
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        self.buffer.clear();
        Ok(())
    }

    /// Every (key, row) whose key was logged more than once, sorted by row.
    pub fn finish(mut self) -> io::Result<Vec<(u64, u64)>> {
        let mut dupes = Vec::new();
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            collect_dupes(self.buffer.iter().copied().map(Ok), &mut dupes)?;
        } else {
            if !self.buffer.is_empty() {
                self.spill()?;
            }
            let readers = self
                .runs
                .into_iter()
                .map(|f| RunReader {
                    inner: BufReader::with_capacity(1 << 16, f),
                })
                .collect();
            collect_dupes(Merge::new(readers)?, &mut dupes)?;
        }
        dupes.sort_unstable_by_key(|&(_, row)| row);
        Ok(dupes)
    }
}

/// Walks sorted entries and keeps every entry whose key equals a neighbour's.
fn collect_dupes(
    sorted: impl Iterator<Item = io::Result<u64>>,
    out: &mut Vec<(u64, u64)>,
) -> io::Result<()> {
    let row_mask = (1u64 << ROW_BITS) - 1;
    let mut previous: Option<u64> = None;
    let mut previous_emitted = false;
    for entry in sorted {
        let entry = entry?;
        let (key, row) = (entry >> ROW_BITS, entry & row_mask);
        match previous {
            Some(p) if p >> ROW_BITS == key => {
                if !previous_emitted {
                    out.push((key, p & row_mask));
                    previous_emitted = true;
                }
                out.push((key, row));
            }
            _ => previous_emitted = false,
        }
        previous = Some(entry);
    }
    Ok(())
}

struct RunReader {
    inner: BufReader<File>,
}

impl RunReader {
    fn next(&mut self) -> io::Result<Option<u64>> {
        let mut bytes = [0u8; 8];
        match self.inner.read_exact(&mut bytes) {
            Ok(()) => Ok(Some(u64::from_le_bytes(bytes))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A k-way merge of sorted runs.
struct Merge {
    readers: Vec<RunReader>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

impl Merge {
    fn new(mut readers: Vec<RunReader>) -> io::Result<Merge> {
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(v) = r.next()? {
                heap.push(Reverse((v, i)));
            }
        }
        Ok(Merge { readers, heap })
    }
}

impl Iterator for Merge {
    type Item = io::Result<u64>;
    fn next(&mut self) -> Option<io::Result<u64>> {
        let Reverse((v, i)) = self.heap.pop()?;
        match self.readers[i].next() {
            Ok(Some(next)) => self.heap.push(Reverse((next, i))),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(keys: &[u64]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (i, &k) in keys.iter().enumerate() {
            if keys.iter().filter(|&&x| x == k).count() > 1 {
                out.push((k, i as u64 + 1));
            }
        }
        out
    }

    #[test]
    fn finds_every_row_of_a_repeated_key() {
        let keys = [5, 9, 5, 1, 7, 9, 5, 3];
        let mut f = DuplicateFinder::new();
        for (i, &k) in keys.iter().enumerate() {
            f.push(k, i as u64 + 1).unwrap();
        }
        assert_eq!(f.finish().unwrap(), naive(&keys));
    }

    #[test]
    fn spilled_runs_give_the_same_answer() {
        let n = RUN_ENTRIES * 2 + 1000;
        let key = |i: usize| ((i as u64).wrapping_mul(2_654_435_761) % 3_000_000) + 1;
        let mut f = DuplicateFinder::new();
        for i in 0..n {
            f.push(key(i), i as u64 + 1).unwrap();
        }
        // extra repeats straddling runs
        f.push(key(3), n as u64 + 1).unwrap();
        f.push(key(RUN_ENTRIES + 5), n as u64 + 2).unwrap();
        let got = f.finish().unwrap();
        let mut expect: std::collections::HashMap<u64, Vec<u64>> = Default::default();
        for i in 0..n {
            expect.entry(key(i)).or_default().push(i as u64 + 1);
        }
        expect.entry(key(3)).or_default().push(n as u64 + 1);
        expect
            .entry(key(RUN_ENTRIES + 5))
            .or_default()
            .push(n as u64 + 2);
        let mut want: Vec<(u64, u64)> = expect
            .into_iter()
            .filter(|(_, rows)| rows.len() > 1)
            .flat_map(|(k, rows)| rows.into_iter().map(move |r| (k, r)))
            .collect();
        want.sort_unstable_by_key(|&(_, r)| r);
        assert_eq!(got, want);
    }
}
