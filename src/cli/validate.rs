//! `validate [--mailbox ID] [--format text|json] FILE...`: check files, change nothing.
//!
//! Without `--mailbox`, each file is checked as if its named owner's mailbox had sent it.
//! Exit 0 when every file is accepted, 1 when any file or row is rejected, 2 when a file
//! could not be read at all (the others are still checked and reported).

use super::{exit, Format};
use crate::check::{check_file, Keep};
use crate::clock::Clock;
use crate::config::Config;
use crate::core::ids::MailboxId;
use crate::core::render::file_report_text;
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Check the files as if dropped into this mailbox (e.g. LA919)
    #[arg(long)]
    pub mailbox: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Extract files to check
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: &ValidateArgs, config: &Config, clock: &dyn Clock) -> Result<u8> {
    let mailbox = match &args.mailbox {
        Some(text) => Some(MailboxId::parse(text).map_err(|e| anyhow::anyhow!("--mailbox: {e}"))?),
        None => None,
    };
    let mut status = exit::OK;
    let mut reports = Vec::new();
    let stdout = std::io::stdout();
    for path in &args.files {
        match check_file(path, mailbox.as_ref(), config, clock, Keep::default()) {
            Ok(checked) => {
                let report = checked.report;
                tracing::info!(
                    file = %report.file,
                    outcome = report.outcome.as_str(),
                    rows = report.rows,
                    invalid = report.invalid_rows,
                    "validated"
                );
                if !report.outcome.is_success() {
                    status = status.max(exit::REJECTED);
                }
                if args.format == Format::Text {
                    write!(stdout.lock(), "{}", file_report_text(&report))?;
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                status = exit::ERROR;
            }
        }
    }
    if args.format == Format::Json {
        let mut out = stdout.lock();
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
    } else if reports.len() > 1 {
        let accepted = reports.iter().filter(|r| r.outcome.is_success()).count();
        writeln!(
            stdout.lock(),
            "{} files: {accepted} accepted, {} not",
            reports.len(),
            reports.len() - accepted
        )?;
    }
    Ok(status)
}
