//! The `cpis-gateway` binary: clap → command → exit status; nothing else.

use clap::{Parser, Subcommand};
use cpis_gateway::cli::{self, exit};
use cpis_gateway::config::Config;
use cpis_gateway::pipeline::ingest::Gateway;
use cpis_gateway::sys::{clock, logging};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "cpis-gateway",
    version,
    about = "Child protection information sharing gateway between English LAs and the NHS",
    after_help = "Exit status: 0 everything accepted; 1 a file or row rejected or quarantined (or, for audit verify, the log altered); 2 a usage, configuration or I/O error. Each command's --help says which apply.\nOperators: docs/operations.md. LA suppliers: docs/interface.md."
)]
struct Cli {
    /// Configuration file (default: ./config.toml if it exists, else built-in defaults)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr: human-readable text, or JSON lines for log shippers
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: logging::LogFormat,
    /// When run as root on a root folder that belongs to the service user: become that
    /// user first (without it the command is refused, so it cannot leave root-owned files)
    #[arg(long, global = true)]
    as_owner: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The daemon: process the backlog, then watch mailboxes (--once: backlog, flush, exit)
    Run(cli::run::RunArgs),
    /// Check files, change nothing
    Validate(cli::validate::ValidateArgs),
    /// Write synthetic extracts (valid, with chosen faults)
    Gen(cli::gen::GenArgs),
    /// Create the store and every party's mailbox folders (idempotent)
    Init,
    /// Process files now, as if dropped into a mailbox
    Ingest(cli::ingest::IngestArgs),
    /// Decide quarantined files
    Quarantine(cli::quarantine::QuarantineArgs),
    /// Look a child up, as a health professional would at registration
    Query(cli::query::QueryArgs),
    /// Serve the FHIR R4 API ([api] in the configuration) until SIGTERM/SIGINT
    Serve,
    /// Check the access log
    Audit(cli::audit::AuditArgs),
    /// Run an archived file again (by sha256, a unique prefix of it, or its name)
    Replay(cli::replay::ReplayArgs),
    /// The archive of processed extracts
    Archive(cli::archive::ArchiveArgs),
    /// Delete what [retention] no longer keeps (the daemon does it nightly)
    Prune(cli::prune::PruneArgs),
    /// The gateway's MESH mailbox: check it, or poll it now
    Mesh(cli::mesh::MeshArgs),
    /// Write the reports now
    Report(cli::report::ReportArgs),
    /// Backlog, last extract per LA, overdue LAs, quarantine, pending notifications
    Status(cli::status::StatusArgs),
    /// The store itself: copy it into PostgreSQL
    Store(cli::store::StoreArgs),
}

/// The exit statuses each command can end with, shown under its --help.
fn exit_statuses(path: &str) -> &'static str {
    match path {
        "validate" | "ingest" | "replay" | "quarantine release" | "quarantine reject" => {
            "Exit status: 0 every file accepted (warnings allowed; a duplicate counts as accepted); 1 a file or row rejected, or a file quarantined; 2 a usage, configuration or I/O error"
        }
        "run" => {
            "Exit status: 0 stopped by SIGTERM/SIGINT, or with --once every file taken accepted; 1 with --once a file or row rejected, quarantined or failed; 2 a usage, configuration, lock or I/O error"
        }
        "serve" => {
            "Exit status: 0 stopped by SIGTERM/SIGINT; 2 a usage, configuration or I/O error (no [api], no store, the address taken)"
        }
        "audit verify" => {
            "Exit status: 0 the log is intact (and extends --expect-head); 1 an entry was altered, or the log was cut or rewritten; 2 a usage, configuration or I/O error"
        }
        _ => "Exit status: 0 done; 2 a usage, configuration or I/O error (no store where the configuration says, for commands other than init, run, ingest and gen)",
    }
}

/// The command line, with every leaf command's exit statuses under its --help.
fn command() -> clap::Command {
    fn add(cmd: clap::Command, path: &str) -> clap::Command {
        let here = if path.is_empty() {
            String::new()
        } else {
            path.to_owned()
        };
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        if names.is_empty() {
            return cmd.after_help(exit_statuses(&here));
        }
        names.into_iter().fold(cmd, |cmd, name| {
            let sub_path = if here.is_empty() {
                name.clone()
            } else {
                format!("{here} {name}")
            };
            cmd.mut_subcommand(&name, |sub| add(sub, &sub_path))
        })
    }
    add(<Cli as clap::CommandFactory>::command(), "")
}

fn main() -> ExitCode {
    let parsed = command()
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            });
        }
    };
    let level = if matches!(cli.command, Command::Run(_) | Command::Serve) {
        "info"
    } else {
        "warn"
    };
    logging::init(level, cli.log_format);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        // `... | head`: the reader has all it wanted.
        Err(e) if broken_pipe(&e) => ExitCode::from(exit::OK),
        Err(e) => {
            // An error may quote a file name or a peer: never raw on the terminal.
            let printable = cpis_gateway::core::render::printable;
            eprintln!("error: {}", printable(&format!("{e:#}")));
            if let Some(hint) = cpis_gateway::store::hint(&e) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(exit::ERROR)
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
    })
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let clock = clock::from_env()?;
    // gen needs no configuration (a broken config.toml must not stop it).
    if let Command::Gen(args) = &cli.command {
        return cli::gen::run(args, clock.as_ref());
    }
    let config = Config::load(cli.config.as_deref())?;
    let clock = clock.as_ref();
    if !matches!(cli.command, Command::Validate(_)) {
        cpis_gateway::sys::owner::ensure(&config.root, cli.as_owner)?;
    }
    // Commands that only look or decide never create a store; init, run and ingest do.
    let creating = || Gateway::open(&config, clock);
    let existing = || Gateway::open_existing(&config, clock);
    match &cli.command {
        Command::Gen(args) => cli::gen::run(args, clock),
        Command::Validate(args) => cli::validate::run(args, &config, clock),
        Command::Run(args) => cli::run::run(args, &config, clock),
        Command::Init => cli::init::run(&creating()?),
        Command::Ingest(args) => cli::ingest::run(args, &mut creating()?),
        Command::Quarantine(args) => cli::quarantine::run(args, &mut existing()?),
        Command::Query(args) => cli::query::run(args, &mut existing()?),
        Command::Serve => cli::serve::run(&config, clock),
        Command::Audit(args) => cli::audit::run(args, &mut existing()?),
        Command::Replay(args) => cli::replay::run(args, &mut existing()?),
        Command::Archive(args) => cli::archive::run(args, &mut existing()?),
        Command::Prune(args) => cli::prune::run(args, &mut existing()?),
        Command::Mesh(args) => cli::mesh::run(args, &config, existing),
        Command::Report(args) => cli::report::run(args, &mut existing()?),
        Command::Status(args) => cli::status::run(args, &mut existing()?),
        Command::Store(args) => cli::store::run(args, &mut existing()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option and argument of every command says what it is for, every command says
    /// its exit statuses, and every --format names its values.
    #[test]
    fn help_describes_everything() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{here}: {id} has no help"));
                }
                if id == "format" && arg.get_possible_values().is_empty() {
                    missing.push(format!("{here}: --format names no values"));
                }
            }
            if cmd.get_subcommands().next().is_none()
                && !cmd
                    .get_after_help()
                    .is_some_and(|h| h.to_string().contains("Exit status"))
            {
                missing.push(format!("{here}: no exit statuses"));
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
