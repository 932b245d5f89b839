//! `audit verify`: walk the access log's hash chain. Exit 0 when intact; 1 naming the first
//! entry that does not match (altered, or an entry before it removed).

use super::exit;
use crate::ingest::Gateway;
use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the access log's hash chain
    Verify,
}

pub fn run(args: &AuditArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let AuditAction::Verify = args.action;
    match gateway.store.verify_access_log()? {
        (n, None) => {
            println!("access log intact: {n} entries, every hash and link matches");
            Ok(exit::OK)
        }
        (_, Some(id)) => {
            println!(
                "access log entry {id} does not match its hash: it was altered, or an entry before it was removed"
            );
            Ok(exit::REJECTED)
        }
    }
}
