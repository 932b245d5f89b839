//! One module per subcommand: its arguments and `run()`.

pub mod gen;
pub mod validate;

use clap::ValueEnum;

/// Output format of commands that print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Exit statuses (SPEC 7).
pub mod exit {
    /// Everything was accepted.
    pub const OK: u8 = 0;
    /// A file or row was rejected or quarantined.
    pub const REJECTED: u8 = 1;
    /// A usage, configuration or I/O error.
    pub const ERROR: u8 = 2;
}
