//! `archive list [--mailbox ID]`: the extracts the gateway has processed, newest first, with
//! the sha256 that `replay` takes (any unique prefix of it will do).

use super::{exit, Format};
use crate::core::render::printable;
use crate::ingest::Gateway;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::io::Write;

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    pub action: ArchiveAction,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveAction {
    /// Processed extracts, newest first (attendance files are never archived)
    List {
        /// Only this mailbox's (e.g. LA919)
        #[arg(long)]
        mailbox: Option<String>,
        /// Output: text for a person, or one JSON document
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub fn run(args: &ArchiveArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let ArchiveAction::List { mailbox, format } = &args.action;
    let files = gateway.store.archived(mailbox.as_deref())?;
    let archive = gateway.layout.archive();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &files)?;
            writeln!(out)?;
        }
        Format::Text if files.is_empty() => writeln!(out, "no extracts processed")?,
        Format::Text => {
            writeln!(
                out,
                "{:<12}  {:<7}  {:<41}  {:<11}  {:<10}  in archive",
                "sha256", "mailbox", "file", "outcome", "processed"
            )?;
            for f in &files {
                let kept = crate::fsutil::archive_path(&archive, &f.sha256).exists();
                writeln!(
                    out,
                    "{:<12}  {:<7}  {:<41}  {:<11}  {:<10}  {}",
                    &f.sha256[..12.min(f.sha256.len())],
                    printable(&f.mailbox),
                    printable(&f.file),
                    f.outcome,
                    f.processed_at.get(..10).unwrap_or(&f.processed_at),
                    if kept {
                        "yes"
                    } else {
                        "no (pruned or refused)"
                    }
                )?;
            }
        }
    }
    Ok(exit::OK)
}
