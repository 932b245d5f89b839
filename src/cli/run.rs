//! `run [--once]`: the daemon. `--once` processes the backlog (waiting for files that are
//! still being written), flushes queued notifications and exits, printing what it did:
//! exit 0 when every file taken was accepted, 1 otherwise. Without `--once` it runs until
//! SIGTERM or SIGINT and exits 0, serving the FHIR API beside it when `[api]` is configured.

use super::exit;
use crate::config::Config;
use crate::service::daemon::{lock_root, Daemon};
use crate::sys::clock::Clock;
use crate::sys::layout::Layout;
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Process the backlog and flush, then exit
    #[arg(long)]
    pub once: bool,
}

pub fn run(args: &RunArgs, config: &Config, clock: &dyn Clock) -> Result<u8> {
    let layout = Layout::new(&config.root);
    // One daemon per root on SQLite; on a PostgreSQL store several nodes share one root
    // (on shared storage) and the work, by leases (see `cluster`).
    let _lock = match config.postgres {
        None => Some(lock_root(&layout.lock())?),
        Some(_) => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let mut daemon = Daemon::new(config, clock, Arc::clone(&stop))?;
    if !args.once {
        if config.api.is_none() {
            daemon.run()?;
            return Ok(exit::OK);
        }
        // The FHIR API beside the daemon, stopped with it.
        return std::thread::scope(|scope| {
            let (listening, ready) = std::sync::mpsc::channel();
            let api_stop = Arc::clone(&stop);
            let api = scope.spawn(move || {
                let mut told = |address| {
                    let _ = listening.send(address);
                };
                crate::api::serve(config, clock, &mut told, api_stop)
            });
            if ready.recv().is_err() {
                // It stopped before listening: its error says why.
                return match api.join() {
                    Ok(Err(e)) => Err(e.context("the FHIR API cannot start")),
                    _ => Err(anyhow::anyhow!("the FHIR API stopped before it listened")),
                };
            }
            let ran = daemon.run();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let served = api
                .join()
                .map_err(|_| anyhow::anyhow!("the FHIR API panicked"))?;
            ran.and(served).map(|()| exit::OK)
        });
    }
    daemon.run_once()?;
    let s = &daemon.summary;
    let outcomes: Vec<String> = s.outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
    let mut line = format!("{} file(s) taken", s.files());
    if !outcomes.is_empty() {
        line.push_str(&format!(": {}", outcomes.join(", ")));
    }
    if s.refused > 0 {
        line.push_str(&format!(", {} refused (see rejected/)", s.refused));
    }
    if s.failed > 0 {
        line.push_str(&format!(
            ", {} failed and left in place (see the log)",
            s.failed
        ));
    }
    writeln!(std::io::stdout(), "{line}")?;
    writeln!(
        std::io::stdout(),
        "acknowledgements: {}/<mailbox>/out/\narchive: {}\nstore: {}",
        layout.root().join("mailboxes").display(),
        layout.archive().display(),
        config.store_location()
    )?;
    Ok(if s.all_accepted() {
        exit::OK
    } else {
        exit::REJECTED
    })
}
