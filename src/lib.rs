//! cpis-gateway: a batch file-exchange gateway for child protection information sharing
//! between English local authorities and the NHS. See ARCHITECTURE.md for the map.

pub mod check;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod core;
pub mod daemon;
pub mod dupes;
pub mod fault;
pub mod fsutil;
pub mod health;
pub mod ingest;
pub mod layout;
pub mod logging;
pub mod mailbox;
pub mod owner;
pub mod progress;
pub mod prune;
pub mod reporting;
pub mod store;
pub mod transport;
