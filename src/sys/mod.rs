//! The machine under the gateway: files (private folders, new temporary files, placing,
//! the archive, what waits for a pass's sync), reading while hashing (and copying), where things live under the root,
//! the clock, this process's node name, logs, progress bars, injected faults, who owns the
//! root. Uses only `core`.

pub mod clock;
pub mod durable;
pub mod fault;
pub mod fsutil;
pub mod hashing;
pub mod layout;
pub mod logging;
pub mod node;
pub mod owner;
pub mod pem;
pub mod progress;
