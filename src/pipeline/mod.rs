//! What happens to one file: the checks of an extract (`check`), its ingest into the store
//! (`ingest`, whose `Gateway` every step runs in), an operator's later decisions about it
//! (`decisions`: quarantine, replay), an attendance file and a look-up on the health side
//! (`health`), duplicate keys with flat memory (`dupes`), inbound entries leaving `in/` once
//! their outcome is durable, a pass at a time in the daemon (`settle`).

pub mod check;
mod cpis_ack;
pub mod decisions;
pub mod dupes;
pub mod health;
pub mod ingest;
pub mod settle;
