//! The baseline for the validate benchmark: a bare `csv`-crate pass that only reads every
//! record of a file (no validation), as SPEC 11 measures it.
//!
//! `cargo run --release --example bare_csv -- FILE`

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: bare_csv FILE")?;
    let start = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(&path)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    while reader.read_byte_record(&mut record)? {
        rows += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{rows} rows in {secs:.3} s ({:.0} rows/s)",
        rows as f64 / secs
    );
    Ok(())
}
