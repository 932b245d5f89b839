//! Logging setup: `tracing` to stderr, so stdout stays for command output. NHS numbers are
//! never logged in full (`NhsNumber`'s `Display` masks them); secrets are never logged.

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the subscriber. `RUST_LOG` overrides the default level (`warn` for one-off
/// commands, so their output stays readable; `info` for the daemon).
pub fn init(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
