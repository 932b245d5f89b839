//! `store copy`: move this gateway's SQLite store into an empty PostgreSQL database (the
//! first part of the central store): every table copied in one transaction, each read back
//! and compared row by row (count and sha256) before it is committed; a non-empty target,
//! or an access log that does not verify, is refused. The target's password never goes on
//! the command line (every local user sees it in `ps`): it comes from the environment or a
//! file.

use super::exit;
use crate::pipeline::ingest::Gateway;
use crate::store::Target;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// Where `store copy` takes its target from when `--to` and `--to-file` are absent.
pub const COPY_TO_ENV: &str = "CPIS_GATEWAY_COPY_TO";

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the store into an empty PostgreSQL database and verify it
    Copy {
        /// The target database without a password, e.g.
        /// postgres://cpis@db.example:5432/cpis?sslrootcert=/etc/cpis-gateway/db-ca.pem; with
        /// a password, give it in CPIS_GATEWAY_COPY_TO or --to-file instead
        #[arg(long, conflicts_with = "to_file")]
        to: Option<String>,
        /// A file (the service user's only) whose first line is the target's URL, password
        /// included
        #[arg(long)]
        to_file: Option<PathBuf>,
    },
}

pub fn run(args: &StoreArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    match &args.command {
        StoreCommand::Copy { to, to_file } => {
            let target = copy_target(to.as_deref(), to_file.as_ref(), &gateway.config.base_dir)?;
            let copied = gateway.store.copy_to_postgres(&target)?;
            let mut out = std::io::stdout().lock();
            for (table, rows, sha) in &copied.tables {
                writeln!(out, "{table:<16} {rows:>9} row(s)  sha256 {}", &sha[..16])?;
            }
            let total: u64 = copied.tables.iter().map(|t| t.1).sum();
            writeln!(
                out,
                "copied and verified: {} tables, {total} rows, into {}",
                copied.tables.len(),
                target.shown()
            )?;
        }
    }
    Ok(exit::OK)
}

/// The target of `store copy`: `--to` (refused if it holds a password), `--to-file`, or
/// the environment.
fn copy_target(to: Option<&str>, file: Option<&PathBuf>, base: &std::path::Path) -> Result<Target> {
    let (text, from) = match (to, file) {
        (Some(url), _) => (url.to_owned(), "--to".to_owned()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --to-file {}", path.display()))?;
            let line = text.lines().next().unwrap_or("").to_owned();
            (line, format!("--to-file {}", path.display()))
        }
        (None, None) => match std::env::var(COPY_TO_ENV) {
            Ok(url) if !url.trim().is_empty() => (url, COPY_TO_ENV.to_owned()),
            _ => bail!(
                "name the target database: {COPY_TO_ENV}=postgres://user:password@host:port/database in the environment, --to-file FILE, or --to URL (without a password)"
            ),
        },
    };
    let target = Target::parse(&text, base).map_err(|e| anyhow::anyhow!("{from}: {e:#}"))?;
    if to.is_some() && target.config().get_password().is_some() {
        bail!(
            "--to holds a password, which every local user can read in `ps` while the copy runs: give the URL in {COPY_TO_ENV} or in a file with --to-file"
        );
    }
    Ok(target)
}
