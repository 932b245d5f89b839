//! `quarantine list | release ID | reject ID`: decide quarantined files.
//!
//! `release` applies the file as it stands now (against the records as they are now); it is
//! refused if a newer extract of the LA was applied meanwhile. `reject` keeps it unapplied
//! for good. Both write a new acknowledgement to the LA.

use super::{exit, print_reports, Format};
use crate::ingest::Gateway;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::io::Write;

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Pending files (with --all, decided ones too)
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Apply a quarantined file
    Release {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Reject a quarantined file
    Reject {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(args: &QuarantineArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    match &args.action {
        Action::List { all, format } => {
            let entries = gateway.store.quarantine(!all)?;
            let mut out = std::io::stdout().lock();
            match format {
                Format::Json => {
                    serde_json::to_writer_pretty(&mut out, &entries)?;
                    writeln!(out)?;
                }
                Format::Text if entries.is_empty() => writeln!(out, "no files in quarantine")?,
                Format::Text => {
                    for q in &entries {
                        writeln!(
                            out,
                            "{}  {}  {}  {}  since {}\n    {}",
                            q.id, q.state, q.mailbox, q.file, q.quarantined_at, q.reason
                        )?;
                    }
                }
            }
            Ok(exit::OK)
        }
        Action::Release { id, format } => {
            let report = gateway.release(id)?;
            print_reports(std::slice::from_ref(&report), *format)?;
            Ok(exit::OK)
        }
        Action::Reject { id, format } => {
            let report = gateway.reject(id)?;
            print_reports(std::slice::from_ref(&report), *format)?;
            Ok(exit::OK)
        }
    }
}
