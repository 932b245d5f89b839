//! One module per subcommand: its arguments and `run()`.

pub mod archive;
pub mod audit;
pub mod gen;
pub mod ingest;
pub mod init;
pub mod mesh;
pub mod prune;
pub mod quarantine;
pub mod query;
pub mod replay;
pub mod report;
pub mod run;
pub mod serve;
pub mod status;
pub mod store;
pub mod validate;

use crate::core::render::file_report_text;
use crate::core::report::FileReport;
use clap::ValueEnum;
use std::io::Write;

/// Output format of commands that print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Exit statuses (SPEC 7).
pub mod exit {
    /// Everything was accepted.
    pub const OK: u8 = 0;
    /// A file or row was rejected or quarantined.
    pub const REJECTED: u8 = 1;
    /// A usage, configuration or I/O error.
    pub const ERROR: u8 = 2;
}

/// Prints file reports: a block each (and a total line) as text, or one JSON array.
pub fn print_reports(reports: &[FileReport], format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, reports)?;
            writeln!(out)?;
        }
        Format::Text => {
            for r in reports {
                write!(out, "{}", file_report_text(r))?;
            }
            if reports.len() > 1 {
                let accepted = reports.iter().filter(|r| r.outcome.is_success()).count();
                writeln!(
                    out,
                    "{} files: {accepted} accepted, {} not",
                    reports.len(),
                    reports.len() - accepted
                )?;
            }
        }
    }
    Ok(())
}

/// The exit status for a set of reports (0 all accepted, 1 otherwise).
pub fn status_of(reports: &[FileReport]) -> u8 {
    if reports.iter().all(|r| r.outcome.is_success()) {
        exit::OK
    } else {
        exit::REJECTED
    }
}
