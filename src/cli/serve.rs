//! `serve`: the FHIR R4 API alone, until SIGTERM or SIGINT. Prints the address it listens
//! on (`listening on https://127.0.0.1:8443/cpis/FHIR/R4`) once it does.

use super::exit;
use crate::config::Config;
use crate::sys::clock::Clock;
use anyhow::Result;
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub fn run(config: &Config, clock: &dyn Clock) -> Result<u8> {
    let base = config
        .api
        .as_ref()
        .map(|a| a.base.clone())
        .unwrap_or_default();
    let scheme = match config.api.as_ref().and_then(|a| a.tls.as_ref()) {
        Some(_) => "https",
        None => "http",
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let mut ready = |address| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {scheme}://{address}{base}");
        let _ = out.flush();
    };
    crate::api::serve(config, clock, &mut ready, stop)?;
    Ok(exit::OK)
}
