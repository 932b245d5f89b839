//! Logging setup: `tracing` to stderr, so stdout stays for command output.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. `RUST_LOG` overrides the default level (`warn` for one-off
/// commands, so their stdout and stderr stay readable).
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
