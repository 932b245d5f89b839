//! `replay FILE [--force [--yes]]`: run an archived file again. FILE is the sha256 of the
//! archived file, a unique prefix of it, or the file's original name.
//!
//! Without `--force` it is a no-op for a file that was already applied; otherwise the file
//! runs as if it had just arrived in its original mailbox, except that having been seen
//! before does not make it a duplicate. `--force` also runs it when it is stale; a file
//! older than the LA's latest applied extract rolls the LA's records back to that older
//! list, so that needs `--yes` as well.

use super::{exit, print_reports, status_of, Format};
use crate::pipeline::decisions::Replayed;
use crate::pipeline::ingest::Gateway;
use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The archived file: its sha256 (as in its acknowledgement), a unique prefix of it, or
    /// its original file name (see `archive list`)
    pub file: String,
    /// Run it even if already applied or stale
    #[arg(long)]
    pub force: bool,
    /// With --force, confirm running a file older than the LA's latest applied extract
    /// (the LA's records go back to that older list)
    #[arg(long)]
    pub yes: bool,
    /// Output: text for a person, or one JSON document (the acknowledgement)
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The one sha256 that `wanted` names.
pub fn resolve(gateway: &mut Gateway<'_>, wanted: &str) -> Result<String> {
    let found = gateway.store.find_files(wanted.trim())?;
    let mut shas: Vec<&str> = found.iter().map(|(s, _)| s.as_str()).collect();
    shas.dedup();
    match shas.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => bail!(
            "no processed file has the sha256 (prefix) or name {wanted:?}: see `archive list`"
        ),
        many => bail!(
            "{wanted:?} names {} different files: give more of the sha256 ({})",
            many.len(),
            found
                .iter()
                .map(|(s, n)| format!("{} {n}", &s[..12]))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn run(args: &ReplayArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let sha = resolve(gateway, &args.file)?;
    if args.force && !args.yes {
        if let Some(f) = gateway.store.files_by_sha(&sha)?.last() {
            let la = f
                .sender
                .as_deref()
                .and_then(|s| crate::core::ids::LaCode::parse(s).ok());
            if let (Some(la), Some(at)) = (la, f.extracted_at) {
                if let Some(last) = gateway.store.last_applied_extract(la)? {
                    if at < last {
                        bail!(
                            "{} was extracted at {} but LA {la}'s latest applied extract is of {}: running it now rolls the LA's records back to that older list (records added since are closed by absence). Add --yes if that is what you want",
                            f.name,
                            at.to_rfc3339(),
                            last.to_rfc3339()
                        );
                    }
                }
            }
        }
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
