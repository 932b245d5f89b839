//! `replay SHA256 [--force]`: run an archived file again.
//!
//! Without `--force` it is a no-op for a file that was already applied; otherwise the file
//! runs as if it had just arrived in its original mailbox, except that having been seen
//! before does not make it a duplicate. `--force` also runs it when it is stale.

use super::{exit, print_reports, status_of, Format};
use crate::ingest::{Gateway, Replayed};
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The sha256 of the archived file (as in its acknowledgement)
    pub sha256: String,
    /// Run it even if already applied or stale
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn run(args: &ReplayArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let sha = args.sha256.to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!("{:?} is not a sha256 (64 hex digits)", args.sha256);
    }
    match gateway.replay(&sha, args.force)? {
        Replayed::AlreadyApplied {
            file_id,
            processed_at,
        } => {
            eprintln!(
                "already applied (file {file_id}, processed {processed_at}): nothing done; use --force to run it again"
            );
            Ok(exit::OK)
        }
        Replayed::Ran(report) => {
            print_reports(std::slice::from_ref(&report), args.format)?;
            Ok(status_of(std::slice::from_ref(&report)))
        }
    }
}
