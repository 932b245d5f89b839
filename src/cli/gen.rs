//! `gen extract ...`: write synthetic extracts (valid, or with chosen faults).
//!
//! Only 999-range NHS numbers and Ofcom drama phone numbers are used. The same seed writes
//! the same bytes. `--manifest` prints, as JSON, the rows and codes the file must produce.

use super::exit;
use crate::core::date::parse_compact_utc;
use crate::core::filename::ExtractFormat;
use crate::core::ids::LaCode;
use crate::core::ids::OdsCode;
use crate::core::synth::{
    file_name, national_specs, write_attendance, write_extract, AttendanceSpec, ExtractSpec, Fault,
    Manifest,
};
use crate::sys::clock::Clock;
use anyhow::{Context, Result};
use chrono::{DateTime, Timelike, Utc};
use clap::{Args, Subcommand, ValueEnum};
use std::io::{BufWriter, Write};
use std::path::Path;
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
    /// One extract for each of the 153 English LAs, children kept apart by LA
    National(NationalArgs),
    /// A health organisation's attendance file, some of whose children are on the national list
    Attendance(AttendArgs),
}

#[derive(Debug, Args)]
pub struct AttendArgs {
    /// ODS code of the health organisation
    #[arg(long, default_value = "RWG")]
    pub ods: String,
    /// The organisation's name, as written in every row
    #[arg(
        long,
        default_value = "West Hertfordshire Teaching Hospitals NHS Trust"
    )]
    pub org_name: String,
    /// Number of attendance rows
    #[arg(long, default_value_t = 100)]
    pub rows: u64,
    /// Seed: the same seed writes the same file
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The file's time, YYYYMMDDTHHMMSS (UTC); attendances fall in the day before it
    #[arg(long)]
    pub at: Option<String>,
    /// Rows of the national list (`gen national --rows`) the flagged children come from
    #[arg(long, default_value_t = 150_000)]
    pub national_rows: u64,
    /// Seed of that national list
    #[arg(long, default_value_t = 1)]
    pub national_seed: u64,
    /// Share of rows that are children on the list
    #[arg(long, default_value_t = 0.02)]
    pub flagged_share: f64,
    /// Folder to write into (created if missing)
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct NationalArgs {
    /// Rows in all, shared out between the LAs
    #[arg(long, default_value_t = 150_000)]
    pub rows: u64,
    /// File format of the extracts
    /// File format of the extract
    #[arg(long, value_enum, default_value = "csv")]
    pub format: GenFormat,
    /// Seed: the same seed writes the same files
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Extraction time, YYYYMMDDTHHMMSS (UTC); default now
    #[arg(long)]
    pub at: Option<String>,
    /// A later day's extracts, meant to be extracted DAY days after day 0's (about 1% gone,
    /// 2% changed, DAY% new against day 0)
    #[arg(long, default_value_t = 0)]
    pub day: u32,
    /// Folder to write into (created if missing)
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenFormat {
    Csv,
    Xml,
    /// CP-IS's own upload (HL7 v3 `File`), named CPIS_UPLOAD_…
    Cpis,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The LA's 3-digit code
    #[arg(long)]
    pub la: String,
    /// Number of data rows
    #[arg(long, default_value_t = 100)]
    pub rows: u64,
    /// File format of the extract
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
    /// A later day's extract, meant to be extracted DAY days after day 0's (about 1% gone,
    /// 2% changed, DAY% new against day 0)
    #[arg(long, default_value_t = 0)]
    pub day: u32,
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

fn extraction_time(at: Option<&str>, clock: &dyn Clock) -> Result<DateTime<Utc>> {
    match at {
        Some(text) => parse_compact_utc(text)
            .ok_or_else(|| anyhow::anyhow!("--at {text:?} is not YYYYMMDDTHHMMSS")),
        None => Ok(clock
            .now()
            .with_nanosecond(0)
            .unwrap_or_else(|| clock.now())),
    }
}

fn format_of(f: GenFormat) -> ExtractFormat {
    match f {
        GenFormat::Csv => ExtractFormat::Csv,
        GenFormat::Xml => ExtractFormat::Xml,
        GenFormat::Cpis => ExtractFormat::Upload,
    }
}

/// Writes one extract atomically into `out`, returning its manifest.
fn write_file(spec: &ExtractSpec, out: &Path) -> Result<(PathBuf, Manifest)> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let name = file_name(spec);
    let path = out.join(&name);
    let tmp = out.join(format!(".{name}.tmp"));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let manifest = write_extract(spec, &mut w)?;
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, manifest))
}

pub fn run(args: &GenArgs, clock: &dyn Clock) -> Result<u8> {
    match &args.what {
        GenWhat::Extract(a) => extract(a, clock),
        GenWhat::National(a) => national(a, clock),
        GenWhat::Attendance(a) => attendance(a, clock),
    }
}

fn extract(a: &ExtractArgs, clock: &dyn Clock) -> Result<u8> {
    let la = LaCode::parse(&a.la).map_err(|e| anyhow::anyhow!("--la: {e}"))?;
    let spec = ExtractSpec {
        la,
        rows: a.rows,
        seed: a.seed,
        extracted_at: extraction_time(a.at.as_deref(), clock)?,
        format: format_of(a.format),
        faults: a.faults.clone(),
        wide: a.wide,
        bom: a.bom,
        crlf: a.crlf,
        offset: a.offset,
        day: a.day,
    };
    let (path, manifest) = write_file(&spec, &a.out)?;
    if a.manifest {
        writeln!(std::io::stdout(), "{}", serde_json::to_string(&manifest)?)?;
    } else {
        writeln!(std::io::stdout(), "{}", path.display())?;
    }
    Ok(exit::OK)
}

fn national(a: &NationalArgs, clock: &dyn Clock) -> Result<u8> {
    let extracted_at = extraction_time(a.at.as_deref(), clock)?;
    let specs = national_specs(a.rows, a.seed, extracted_at, format_of(a.format), a.day);
    let mut total = 0;
    for spec in &specs {
        total += write_file(spec, &a.out)?.1.rows;
    }
    writeln!(
        std::io::stdout(),
        "{} files, {total} rows in {}",
        specs.len(),
        a.out.display()
    )?;
    Ok(exit::OK)
}

fn attendance(a: &AttendArgs, clock: &dyn Clock) -> Result<u8> {
    let ods = OdsCode::parse(&a.ods)
        .ok_or_else(|| anyhow::anyhow!("--ods {:?} is not an ODS code", a.ods))?;
    let spec = AttendanceSpec {
        ods: ods.to_string(),
        org_name: a.org_name.clone(),
        rows: a.rows,
        seed: a.seed,
        at: extraction_time(a.at.as_deref(), clock)?,
        national_rows: a.national_rows,
        national_seed: a.national_seed,
        flagged_share: a.flagged_share,
    };
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let tmp = a.out.join(".attendance.tmp");
    let mut w = BufWriter::with_capacity(1 << 16, std::fs::File::create(&tmp)?);
    let name = write_attendance(&spec, &mut w)?;
    w.flush()?;
    drop(w);
    let path = a.out.join(name);
    std::fs::rename(&tmp, &path)?;
    writeln!(std::io::stdout(), "{}", path.display())?;
    Ok(exit::OK)
}
