//! `archive list [--mailbox ID]`: the extracts the gateway has processed, newest first, with
//! the sha256 that `replay` takes (any unique prefix of it will do), and whether the
//! archive still holds each one's bytes: every archived file is read and hashed, so a copy
//! altered since it was received shows as such (`replay` and `quarantine release` refuse it).

use super::{exit, Format};
use crate::core::render::printable;
use crate::pipeline::ingest::Gateway;
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

/// One processed extract and what the archive holds of it.
#[derive(serde::Serialize)]
struct Listed {
    #[serde(flatten)]
    file: crate::store::ArchivedFile,
    /// `kept` (the bytes received), `altered` (changed since), or `missing` (pruned, or
    /// never kept: refused unread, or too large).
    archive: &'static str,
}

pub fn run(args: &ArchiveArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let ArchiveAction::List { mailbox, format } = &args.action;
    let archive = gateway.layout.archive();
    let mut files = Vec::new();
    for file in gateway.store.archived(mailbox.as_deref())? {
        let path = crate::sys::fsutil::archive_path(&archive, &file.sha256);
        let state = if std::fs::symlink_metadata(&path).is_err() {
            "missing"
        } else if crate::sys::fsutil::same_bytes(&path, &file.sha256)? {
            "kept"
        } else {
            "altered"
        };
        files.push(Listed {
            file,
            archive: state,
        });
    }
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
            for Listed { file: f, archive } in &files {
                writeln!(
                    out,
                    "{:<12}  {:<7}  {:<41}  {:<11}  {:<10}  {}",
                    &f.sha256[..12.min(f.sha256.len())],
                    printable(&f.mailbox),
                    printable(&f.file),
                    f.outcome,
                    f.processed_at.get(..10).unwrap_or(&f.processed_at),
                    match *archive {
                        "kept" => "yes",
                        "altered" => "ALTERED since received: not used",
                        _ => "no (pruned or refused)",
                    }
                )?;
            }
        }
    }
    Ok(exit::OK)
}
