//! `prune [--dry-run]`: delete what `[retention]` no longer keeps (archived inbound files,
//! delivered outbox files, report folders, refused entries, MESH messages kept aside, partial
//! MESH and SFTP downloads). The daemon does the same every
//! night after the report. Record history and the access log are never pruned.

use super::exit;
use crate::pipeline::ingest::Gateway;
use anyhow::Result;
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only list what would be deleted (in the log, at info level) and count it
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &PruneArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let c = gateway.prune(args.dry_run)?;
    writeln!(
        std::io::stdout(),
        "{}: {} archived file(s), {} sent file(s), {} report day(s), {} refused file(s)",
        if args.dry_run {
            "would delete"
        } else {
            "deleted"
        },
        c.archive,
        c.sent,
        c.reports,
        c.rejected
    )?;
    Ok(exit::OK)
}
