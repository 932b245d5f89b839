//! `validate [--mailbox ID] [--format text|json] FILE...`: check files, change nothing.
//!
//! Without `--mailbox`, each file is checked as if its named owner's mailbox had sent it.
//! Exit 0 when every file is accepted, 1 when any file or row is rejected, 2 when a file
//! could not be read at all (the others are still checked and reported).

use super::{exit, print_reports, status_of, Format};
use crate::check::{check_file, Keep};
use crate::clock::Clock;
use crate::config::Config;
use crate::core::ids::MailboxId;
use anyhow::Result;
use clap::Args;
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
    let mailbox = args.mailbox.as_deref().map(parse_mailbox).transpose()?;
    let mut io_failed = false;
    let mut reports = Vec::new();
    for path in &args.files {
        match check_file(path, mailbox.as_ref(), config, clock, Keep::default()) {
            Ok(checked) => {
                let report = checked.report;
                tracing::info!(file = %report.file, outcome = report.outcome.as_str(), rows = report.rows, "validated");
                reports.push(report);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                io_failed = true;
            }
        }
    }
    print_reports(&reports, args.format)?;
    Ok(if io_failed {
        exit::ERROR
    } else {
        status_of(&reports)
    })
}

/// Parses `--mailbox`, naming the option in the error.
pub fn parse_mailbox(text: &str) -> Result<MailboxId> {
    MailboxId::parse(text).map_err(|e| anyhow::anyhow!("--mailbox: {e}"))
}
