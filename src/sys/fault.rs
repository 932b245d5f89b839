//! Injected failures, for tests only: `CPIS_GATEWAY_FAULT` names one. They let the
//! integration tests put the real binary in the windows where crashes, races and I/O errors
//! bite, deterministically.

use anyhow::{anyhow, Result};
use std::time::Duration;

/// Environment variable that injects a failure (tests only).
pub const FAULT_ENV: &str = "CPIS_GATEWAY_FAULT";

/// An injected failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `apply-after:N`: fail after N record writes, inside the transaction.
    ApplyAfter(u64),
    /// `abort-after-commit`: kill the process right after a file's transaction commits,
    /// before its acknowledgement is written and the inbound file leaves `in/`.
    AbortAfterCommit,
    /// `abort-before-settle`: kill the daemon at the end of a pass that processed files,
    /// before what it wrote is synced and its entries leave `in/` (`pipeline::settle`).
    AbortBeforeSettle,
    /// `abort-after-notify-write`: kill the process right after a notification file is
    /// written, before the batch is marked written.
    AbortAfterNotifyWrite,
    /// `pause-before-commit:MS`: hold a file's write transaction open this long before
    /// committing it (another command can then try to read or write meanwhile).
    PauseBeforeCommit(Duration),
    /// `pause-before-take:MS`: the daemon waits this long between finding a file complete
    /// and opening it (the file can then be swapped under it).
    PauseBeforeTake(Duration),
    /// `fail-once:NAME`: the first attempt to process the file NAME fails as an I/O error
    /// would (the file stays in `in/` for a retry).
    FailOnce(String),
    /// `pause-mesh-chunk:MS`: the MESH transport waits this long between the chunks of
    /// each download and upload (MESH can then be stopped mid-transfer).
    PauseMeshChunk(Duration),
    /// `abort-after-mesh-post`: kill the process as soon as MESH has answered the first POST
    /// of a message, before its message id is recorded (the answer is "lost").
    AbortAfterMeshPost,
}

impl Fault {
    /// The fault named in the environment, if any.
    pub fn from_env() -> Result<Option<Fault>> {
        match std::env::var(FAULT_ENV) {
            Ok(text) => Fault::parse(&text).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn parse(text: &str) -> Result<Fault> {
        let ms = |n: &str| n.parse().ok().map(Duration::from_millis);
        let fault = match text.split_once(':') {
            None if text == "abort-after-commit" => Some(Fault::AbortAfterCommit),
            None if text == "abort-after-notify-write" => Some(Fault::AbortAfterNotifyWrite),
            None if text == "abort-before-settle" => Some(Fault::AbortBeforeSettle),
            None if text == "abort-after-mesh-post" => Some(Fault::AbortAfterMeshPost),
            Some(("apply-after", n)) => n.parse().ok().map(Fault::ApplyAfter),
            Some(("pause-before-commit", n)) => ms(n).map(Fault::PauseBeforeCommit),
            Some(("pause-before-take", n)) => ms(n).map(Fault::PauseBeforeTake),
            Some(("pause-mesh-chunk", n)) => ms(n).map(Fault::PauseMeshChunk),
            Some(("fail-once", name)) => Some(Fault::FailOnce(name.to_owned())),
            _ => None,
        };
        fault.ok_or_else(|| {
            anyhow!(
                "{FAULT_ENV}={text:?}: expected apply-after:N, abort-after-commit, abort-before-settle, abort-after-notify-write, abort-after-mesh-post, pause-before-commit:MS, pause-before-take:MS, pause-mesh-chunk:MS or fail-once:NAME"
            )
        })
    }
}

/// Sleeps for an injected `pause-mesh-chunk` (between two chunks of a MESH transfer).
pub fn pause_mesh_chunk(pause: Option<Duration>) {
    if let Some(pause) = pause {
        tracing::info!("pausing between MESH chunks (injected)");
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault() {
        assert_eq!(Fault::parse("apply-after:3").unwrap(), Fault::ApplyAfter(3));
        assert_eq!(
            Fault::parse("pause-before-commit:250").unwrap(),
            Fault::PauseBeforeCommit(Duration::from_millis(250))
        );
        assert_eq!(
            Fault::parse("fail-once:a.csv").unwrap(),
            Fault::FailOnce("a.csv".into())
        );
        assert!(Fault::parse("apply-after:x").is_err());
        assert!(Fault::parse("nonsense").is_err());
    }
}
