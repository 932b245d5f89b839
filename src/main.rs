//! The `cpis-gateway` binary: clap → command → exit status; nothing else.

use clap::{Parser, Subcommand};
use cpis_gateway::cli::{self, exit};
use cpis_gateway::ingest::Gateway;
use cpis_gateway::{clock, config::Config, logging};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "cpis-gateway",
    version,
    about = "Child protection information sharing gateway between English LAs and the NHS"
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
    /// Check the access log
    Audit(cli::audit::AuditArgs),
    /// Run an archived file again (by sha256, a unique prefix of it, or its name)
    Replay(cli::replay::ReplayArgs),
    /// The archive of processed extracts
    Archive(cli::archive::ArchiveArgs),
    /// Delete what [retention] no longer keeps (the daemon does it nightly)
    Prune(cli::prune::PruneArgs),
    /// Write the reports now
    Report(cli::report::ReportArgs),
    /// Backlog, last extract per LA, overdue LAs, quarantine, pending notifications
    Status(cli::status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
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
    let level = if matches!(cli.command, Command::Run(_)) {
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
            eprintln!("error: {e:#}");
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
        cpis_gateway::owner::ensure(&config.root, cli.as_owner)?;
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
        Command::Audit(args) => cli::audit::run(args, &mut existing()?),
        Command::Replay(args) => cli::replay::run(args, &mut existing()?),
        Command::Archive(args) => cli::archive::run(args, &mut existing()?),
        Command::Prune(args) => cli::prune::run(args, &mut existing()?),
        Command::Report(args) => cli::report::run(args, &mut existing()?),
        Command::Status(args) => cli::status::run(args, &mut existing()?),
    }
}
