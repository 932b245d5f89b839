//! `audit verify`: walk the access log's hash chain and print its head. Exit 0 when intact;
//! 1 naming the first entry that does not match (altered, or an entry before it removed),
//! or when the log no longer extends a head given with `--expect-head` (its newest entries
//! were cut, or the whole log was rewritten and chained anew).

use super::exit;
use crate::pipeline::ingest::Gateway;
use crate::store::LogHead;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::io::Write;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the access log's hash chain and print its head (ENTRIES:HASH).
    /// Exit 0: intact; 1: altered, cut or rewritten; 2: usage or I/O error
    Verify {
        /// A head printed earlier (by `audit verify`, `status --format json` or the nightly
        /// report), as ENTRIES:HASH: the log must still contain that entry with that hash
        #[arg(long, value_name = "ENTRIES:HASH", value_parser = parse_head)]
        expect_head: Option<LogHead>,
    },
}

fn parse_head(text: &str) -> Result<LogHead, String> {
    let (n, hash) = text
        .split_once(':')
        .ok_or("expected ENTRIES:HASH, e.g. 42:3f…")?;
    let entries = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is not a number of entries"))?;
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the hash is 64 hexadecimal digits".into());
    }
    Ok(LogHead { entries, hash })
}

pub fn run(args: &AuditArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let AuditAction::Verify { expect_head } = &args.action;
    let store = &mut gateway.store;
    if let (_, Some(id)) = store.verify_access_log()? {
        writeln!(std::io::stdout(),
            "access log entry {id} does not match its hash: it was altered, or an entry before it was removed"
        )?;
        return Ok(exit::REJECTED);
    }
    let head = store.access_log_head()?;
    if let Some(expected) = expect_head {
        let found = store.access_log_hash_at(expected.entries)?;
        match found {
            None => {
                writeln!(std::io::stdout(),
                    "access log cut: it has {} entries but had at least {} (head {expected}): its newest entries were removed",
                    head.entries, expected.entries
                )?;
                return Ok(exit::REJECTED);
            }
            Some(hash) if hash != expected.hash => {
                writeln!(std::io::stdout(),
                    "access log rewritten: entry {} has hash {hash}, not {} (head {expected}): the log was changed and chained anew",
                    expected.entries, expected.hash
                )?;
                return Ok(exit::REJECTED);
            }
            Some(_) => {}
        }
    }
    writeln!(
        std::io::stdout(),
        "access log intact: {} entries, every hash and link matches{}",
        head.entries,
        if expect_head.is_some() {
            ", and it extends the expected head"
        } else {
            ""
        }
    )?;
    writeln!(std::io::stdout(), "head: {head}")?;
    Ok(exit::OK)
}
