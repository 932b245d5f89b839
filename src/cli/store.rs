//! `store copy --to postgres://…`: move this gateway's SQLite store into an empty
//! PostgreSQL database (the first part of the central store): every table copied in one
//! transaction, each read back and compared row by row (count and sha256) before it is
//! committed; a non-empty target, or an access log that does not verify, is refused.

use super::exit;
use crate::ingest::Gateway;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::io::Write;

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the store into an empty PostgreSQL database and verify it
    Copy {
        /// The target database, e.g. postgres://cpis:PASSWORD@127.0.0.1:5432/cpis (plain
        /// connection: TLS is not built yet)
        #[arg(long)]
        to: String,
    },
}

pub fn run(args: &StoreArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    match &args.command {
        StoreCommand::Copy { to } => {
            let copied = gateway.store.copy_to_postgres(to)?;
            let mut out = std::io::stdout().lock();
            for (table, rows, sha) in &copied.tables {
                writeln!(out, "{table:<16} {rows:>9} row(s)  sha256 {}", &sha[..16])?;
            }
            let total: u64 = copied.tables.iter().map(|t| t.1).sum();
            writeln!(
                out,
                "copied and verified: {} tables, {total} rows, into {}",
                copied.tables.len(),
                crate::store::redact(to)
            )?;
        }
    }
    Ok(exit::OK)
}
