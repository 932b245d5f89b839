//! The long-running service: the daemon's loop (`daemon`), which files in a mailbox are
//! complete (`mailbox`), retention runs (`prune`), and this daemon as a node of a cluster
//! on a PostgreSQL store (`cluster`).

pub mod cluster;
pub mod daemon;
pub mod mailbox;
pub mod prune;
