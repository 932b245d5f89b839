//! `validate [--mailbox ID] [--format text|json|csv] FILE...`: check files, change nothing.
//!
//! Without `--mailbox`, each file is checked as if its named owner's mailbox had sent it.
//! `-` reads standard input (its name, which carries the LA and the extraction time, is
//! given with `--name`). Exit 0 when every file is accepted, 1 when any file or row is
//! rejected, 2 when a file could not be read at all (the others are still checked and
//! reported).

use super::{exit, print_reports, status_of, Format};
use crate::config::Config;
use crate::core::ids::MailboxId;
use crate::pipeline::check::{check_file, Keep};
use crate::sys::clock::Clock;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

/// What `validate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ValidateFormat {
    /// For a person: grouped by code, the first rows of each
    #[default]
    Text,
    /// One JSON array, one acknowledgement object per file
    Json,
    /// One CSV of the problems (file errors too; the first 10,000 row problems of a file, then a count by code), the row as the LA sent it
    Csv,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Check the files as if dropped into this mailbox (e.g. LA919)
    #[arg(long)]
    pub mailbox: Option<String>,
    /// Output: text for a person, one JSON array, or one CSV of the problems
    #[arg(long, value_enum, default_value_t)]
    pub format: ValidateFormat,
    /// With `-`: the file's name (CPIS_EXTRACT_<la>_<YYYYMMDDTHHMMSS>.csv|xml), which says
    /// whose it is and when it was extracted
    #[arg(long)]
    pub name: Option<String>,
    /// Extract (or attendance) files to check; `-` reads standard input
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: &ValidateArgs, config: &Config, clock: &dyn Clock) -> Result<u8> {
    let mailbox = args.mailbox.as_deref().map(parse_mailbox).transpose()?;
    let spool = tempfile::tempdir()?;
    let mut io_failed = false;
    let mut reports = Vec::new();
    for path in &args.files {
        let path = if path.as_os_str() == "-" {
            stdin_file(spool.path(), args.name.as_deref())?
        } else {
            path.clone()
        };
        match check_file(&path, mailbox.as_ref(), config, clock, Keep::default()) {
            Ok(checked) => {
                let report = checked.report;
                tracing::info!(file = %report.file, outcome = report.outcome.as_str(), rows = report.rows, "validated");
                reports.push(report);
            }
            Err(e) => {
                let what = format!("{}: {e}", path.display());
                eprintln!("error: {}", crate::core::render::printable(&what));
                io_failed = true;
            }
        }
    }
    match args.format {
        ValidateFormat::Text => print_reports(&reports, Format::Text)?,
        ValidateFormat::Json => print_reports(&reports, Format::Json)?,
        ValidateFormat::Csv => std::io::stdout()
            .lock()
            .write_all(&crate::core::outbound::problems_csv(&reports))?,
    }
    Ok(if io_failed {
        exit::ERROR
    } else {
        status_of(&reports)
    })
}

/// Copies standard input into `dir` under the name given with `--name`.
fn stdin_file(dir: &std::path::Path, name: Option<&str>) -> Result<PathBuf> {
    let Some(name) = name else {
        bail!("validate -: give the file's name with --name (e.g. --name CPIS_EXTRACT_919_20261121T020000.csv): it says whose file it is and when it was extracted");
    };
    if name.contains('/') || name.starts_with('.') {
        bail!("--name {name:?}: a file name, without folders");
    }
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path)?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file).context("cannot read standard input")?;
    Ok(path)
}

/// Parses `--mailbox`, naming the option in the error.
pub fn parse_mailbox(text: &str) -> Result<MailboxId> {
    MailboxId::parse(text).map_err(|e| anyhow::anyhow!("--mailbox: {e}"))
}
