//! `gen extract ...`: write synthetic extracts (valid, or with chosen faults).
//!
//! Only 999-range NHS numbers and Ofcom drama phone numbers are used. The same seed writes
//! the same bytes. `--manifest` prints, as JSON, the rows and codes the file must produce.

use super::exit;
use crate::clock::Clock;
use crate::core::date::parse_compact_utc;
use crate::core::filename::ExtractFormat;
use crate::core::ids::LaCode;
use crate::core::synth::{file_name, write_extract, ExtractSpec, Fault};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct GenArgs {
    #[command(subcommand)]
    pub what: GenWhat,
}

#[derive(Debug, Subcommand)]
pub enum GenWhat {
    /// An LA extract
    Extract(ExtractArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenFormat {
    Csv,
    Xml,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The LA's 3-digit code
    #[arg(long)]
    pub la: String,
    /// Number of data rows
    #[arg(long, default_value_t = 100)]
    pub rows: u64,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: GenFormat,
    /// Seed: the same seed writes the same file
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Extraction time, YYYYMMDDTHHMMSS (UTC); default now
    #[arg(long)]
    pub at: Option<String>,
    /// A fault to inject, as NAME or NAME:COUNT (repeatable). Names: check-digit, nhs-format,
    /// nhs-missing, plan-type, date-missing, date-format, date-order, date-future,
    /// la-mismatch, phone-missing, phone-format, field-too-long, duplicate, edd-not-ucpp,
    /// edd-passed, truncate, unknown-column, empty, doctype
    #[arg(long = "fault", value_parser = parse_fault)]
    pub faults: Vec<(Fault, u64)>,
    /// Fill la_name and local_ref to their limits (for size benchmarks)
    #[arg(long)]
    pub wide: bool,
    /// Start the file with a UTF-8 byte order mark
    #[arg(long)]
    pub bom: bool,
    /// End lines with CRLF
    #[arg(long)]
    pub crlf: bool,
    /// Where this LA's NHS numbers start in the 999 range (keeps LAs' children apart)
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Folder to write into (created if missing)
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Print the manifest (file, rows, expected codes by row) as JSON on stdout
    #[arg(long)]
    pub manifest: bool,
}

fn parse_fault(text: &str) -> Result<(Fault, u64), String> {
    let (name, count) = match text.split_once(':') {
        Some((name, count)) => (
            name,
            count
                .parse::<u64>()
                .map_err(|_| format!("{count:?} is not a count"))?,
        ),
        None => (text, 1),
    };
    Ok((name.parse()?, count))
}

pub fn run(args: &GenArgs, clock: &dyn Clock) -> Result<u8> {
    let GenWhat::Extract(a) = &args.what;
    let la = LaCode::parse(&a.la).map_err(|e| anyhow::anyhow!("--la: {e}"))?;
    let extracted_at = match &a.at {
        Some(text) => parse_compact_utc(text)
            .ok_or_else(|| anyhow::anyhow!("--at {text:?} is not YYYYMMDDTHHMMSS"))?,
        None => {
            let now = clock.now();
            parse_compact_utc(&crate::core::date::format_compact_utc(now)).unwrap_or(now)
        }
    };
    let spec = ExtractSpec {
        la,
        rows: a.rows,
        seed: a.seed,
        extracted_at,
        format: match a.format {
            GenFormat::Csv => ExtractFormat::Csv,
            GenFormat::Xml => ExtractFormat::Xml,
        },
        faults: a.faults.clone(),
        wide: a.wide,
        bom: a.bom,
        crlf: a.crlf,
        offset: a.offset,
    };
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let path = a.out.join(file_name(&spec));
    let tmp = a.out.join(format!("{}.tmp", file_name(&spec)));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let manifest = write_extract(&spec, &mut w)?;
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    if a.manifest {
        println!("{}", serde_json::to_string(&manifest)?);
    } else {
        println!("{}", path.display());
    }
    Ok(exit::OK)
}
