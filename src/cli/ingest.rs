//! `ingest --mailbox ID [--format text|json] FILE...`: process files now, as if dropped into
//! that mailbox. The files themselves are copied into the archive and left where they are.
//! Exit 0 when all were accepted (a duplicate counts as accepted), 1 when a file or row was
//! rejected or quarantined, 2 when a file could not be processed at all (nothing of it was
//! applied; the other files still are).

use super::validate::parse_mailbox;
use super::{exit, print_reports, status_of, Format};
use crate::pipeline::ingest::{Gateway, Rules};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The mailbox the files arrive in (e.g. LA919)
    #[arg(long)]
    pub mailbox: String,
    /// Output: text for a person, or one JSON document
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Files to process
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: &IngestArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let mailbox = parse_mailbox(&args.mailbox)?;
    let mut failed = false;
    let mut reports = Vec::new();
    for path in &args.files {
        match gateway.ingest(path, &mailbox, &Rules::default()) {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!(
                    "error: {}: {e:#}: nothing of it was applied",
                    path.display()
                );
                failed = true;
            }
        }
    }
    print_reports(&reports, args.format)?;
    Ok(if failed {
        exit::ERROR
    } else {
        status_of(&reports)
    })
}
