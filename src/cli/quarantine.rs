//! `quarantine list | show ID | release ID | reject ID`: decide quarantined files.
//!
//! `show` says what a release would do now (counts, and the records it would close as the
//! LA would recognise them: its reference, the plan type, the NHS number masked), changing
//! nothing.
//! `release` applies the file as it stands now (against the records as they are now); it is
//! refused if a newer extract of the LA was applied meanwhile. `reject` keeps it unapplied
//! for good. Both write a new acknowledgement to the LA.

use super::{exit, print_reports, Format};
use crate::pipeline::ingest::Gateway;
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
        /// Also list files already released or rejected
        #[arg(long)]
        all: bool,
        /// Output: text for a person, or one JSON document
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// What a release would do now: counts, and the records it would close
    Show {
        /// The entry's id, as `quarantine list` shows it (e.g. Q1)
        id: String,
        /// Output: text for a person, or one JSON document
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Apply a quarantined file
    Release {
        /// The entry's id, as `quarantine list` shows it (e.g. Q1)
        id: String,
        /// Output: text for a person, or one JSON document (the acknowledgement)
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Reject a quarantined file for good (the LA is told)
    Reject {
        /// The entry's id, as `quarantine list` shows it (e.g. Q1)
        id: String,
        /// Output: text for a person, or one JSON document (the acknowledgement)
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
        Action::Show { id, format } => {
            let preview = gateway.preview_release(id)?;
            let mut out = std::io::stdout().lock();
            match format {
                Format::Json => {
                    serde_json::to_writer_pretty(&mut out, &preview)?;
                    writeln!(out)?;
                }
                Format::Text => {
                    let c = &preview.changes;
                    writeln!(out, "{}  {}  {}", preview.id, preview.mailbox, preview.file)?;
                    if preview.superseded {
                        writeln!(out, "a newer extract of this LA was applied since: a release would be refused; reject it")?;
                    }
                    writeln!(
                        out,
                        "a release now would: close {} of {} open records by absence; new {}, updated {}, unchanged {}, ended {}, reopened {}, retained {}",
                        c.closed_by_absence, preview.open_before, c.new, c.updated, c.unchanged, c.ended, c.reopened, c.retained
                    )?;
                    if !preview.closing.is_empty() {
                        writeln!(
                            out,
                            "records it would close (local_ref, plan type, NHS number):"
                        )?;
                        for r in &preview.closing {
                            writeln!(
                                out,
                                "  {:<24} {:<4} {}",
                                r.local_ref.as_deref().unwrap_or("-"),
                                r.plan_type,
                                r.nhs_number
                            )?;
                        }
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
