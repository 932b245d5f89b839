//! What happens to one file: the checks of an extract (`check`), its ingest into the store
//! and the operator's decisions about it (`ingest`), an attendance file and a look-up on the
//! health side (`health`), duplicate keys with flat memory (`dupes`).

pub mod check;
pub mod decisions;
pub mod dupes;
pub mod health;
pub mod ingest;
