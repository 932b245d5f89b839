//! Remote transports: they move files between remote mailboxes and the local `in/` and
//! `out/` folders; everything else happens locally. What they share: which names may be
//! moved, the back-off after failures, and the polling thread that records each outcome
//! for `status`.

pub mod mesh;
pub mod sftp;

use crate::store::Store;
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A name a transport may move: plain, not partial or temporary, not hidden.
pub fn movable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with(".part")
        && !name.ends_with(".tmp")
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// The delay before the next try after `failures` failures in a row: doubling from the
/// poll interval up to 15 minutes (or the poll interval, if longer), with ±20% jitter so
/// remotes do not retry in step.
pub fn backoff(poll: Duration, failures: u32, jitter_seed: u64) -> Duration {
    let base = poll
        .saturating_mul(1u32 << failures.min(10))
        .min(Duration::from_secs(900).max(poll));
    let mut x = jitter_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let factor = 0.8 + (x % 1000) as f64 / 2500.0;
    base.mul_f64(factor)
}

/// Records a poll's outcome for `status` and logs a failure; returns the failure count to
/// carry into the next try (0 after a success).
pub fn record_outcome(name: &str, outcome: Result<()>, store: &mut Store, failures: u32) -> u32 {
    let now = chrono::Utc::now();
    match outcome {
        Ok(()) => {
            if let Err(e) = store.transport_ok(name, now) {
                tracing::warn!(error = %e, "cannot record the transport's status");
            }
            0
        }
        Err(e) => {
            let message = format!("{e:#}");
            tracing::warn!(remote = %name, error = %message, failures = failures + 1, "remote unavailable: retrying with back-off, local processing goes on");
            let _ = store.transport_failed(name, now, &message);
            failures + 1
        }
    }
}

/// A transport's daemon thread: `poll` every `every`, backing off (with jitter) while it
/// fails, until `stop`. As a node of a cluster (`lease`: the lease period), each poll is
/// made holding the remote's lease, so one node at a time polls it.
pub fn run_polling(
    name: &str,
    every: Duration,
    store: &crate::store::Location,
    lease: Option<Duration>,
    stop: Arc<AtomicBool>,
    mut poll: impl FnMut(&mut Store, u32) -> u32,
) {
    let mut store = match Store::open_at(store) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(remote = %name, error = %format!("{e:#}"), "the transport cannot open the store");
            return;
        }
    };
    let mut failures = 0;
    let mut seed = 0u64;
    let (node, lease_name) = (crate::sys::node::node_name(), format!("remote:{name}"));
    while !stop.load(Ordering::SeqCst) {
        match lease.map(|ttl| store.claim(&lease_name, &node, ttl)) {
            None => failures = poll(&mut store, failures),
            Some(Ok(Some(guard))) => {
                store.set_guard(Some(guard));
                failures = poll(&mut store, failures);
                store.set_guard(None);
                if let Err(e) = store.release(&lease_name, &node) {
                    tracing::warn!(remote = %name, error = %format!("{e:#}"), "cannot give the remote's lease back: it expires by itself");
                }
            }
            Some(Ok(None)) => tracing::debug!(remote = %name, "another node is polling it"),
            Some(Err(e)) => {
                tracing::error!(remote = %name, error = %format!("{e:#}"), "cannot claim the remote's lease");
            }
        }
        seed += 1;
        let wait = if failures == 0 {
            every
        } else {
            backoff(every, failures, seed)
        };
        let until = Instant::now() + wait;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100).min(wait));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_backoff() {
        assert!(movable("CPIS_EXTRACT_919_20261121T020000.csv"));
        for bad in ["", ".hidden", "x.part", "x.tmp", "a/b", "a\nb"] {
            assert!(!movable(bad), "{bad:?}");
        }
        let poll = Duration::from_secs(60);
        let b1 = backoff(poll, 1, 7);
        assert!(
            b1 >= Duration::from_secs(96) && b1 <= Duration::from_secs(144),
            "{b1:?}"
        );
        assert!(backoff(poll, 30, 7) <= Duration::from_secs(1080));
        let hourly = Duration::from_secs(3600);
        assert!(
            backoff(hourly, 1, 7) >= hourly.mul_f64(0.8),
            "never sooner than the poll, less jitter"
        );
        assert_ne!(backoff(poll, 3, 1), backoff(poll, 3, 2), "jitter");
    }
}
