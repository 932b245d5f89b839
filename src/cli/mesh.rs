//! `mesh check` (the handshake, and how many messages wait) and `mesh poll` (one receive
//! and one send now, without processing anything): for an operator setting up or mending
//! the MESH mailbox, and for the MESH benchmark.

use super::exit;
use crate::config::Config;
use crate::pipeline::ingest::Gateway;
use crate::transport::mesh::{Mesh, Polled};
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use std::io::Write;

#[derive(Debug, Args)]
pub struct MeshArgs {
    #[command(subcommand)]
    pub command: MeshCommand,
}

#[derive(Debug, Subcommand)]
pub enum MeshCommand {
    /// Handshake with MESH (checks the URL, TLS, mailbox, password and shared key) and
    /// count the messages waiting
    Check,
    /// Receive everything waiting and send every out/ file now (files received are
    /// processed by the daemon, or by `run --once`)
    Poll,
}

/// `check` needs no store (it can run before `init`); `poll` opens the existing one.
pub fn run<'c>(
    args: &MeshArgs,
    config: &Config,
    gateway: impl FnOnce() -> Result<Gateway<'c>>,
) -> Result<u8> {
    let mesh_config = config.mesh.clone().ok_or_else(|| {
        anyhow!(
            "no [mesh] in the configuration {}: there is no MESH mailbox",
            config.origin
        )
    })?;
    let mut mesh = Mesh::new(mesh_config)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        MeshCommand::Check => {
            let waiting = mesh.check()?;
            writeln!(
                out,
                "{}: handshake accepted; {waiting} message(s) waiting",
                mesh.name()
            )?;
        }
        MeshCommand::Poll => {
            let mut gateway = gateway()?;
            let layout = gateway.layout.clone();
            let started = std::time::Instant::now();
            let mut p = Polled::default();
            let received = mesh.receive(&layout, &mut gateway.store, &mut p);
            let outcome = received.and(mesh.send(&layout, &mut gateway.store, &mut p));
            crate::transport::record_outcome(
                &mesh.name(),
                outcome.as_ref().map(|_| ()).map_err(|e| anyhow!("{e:#}")),
                &mut gateway.store,
                0,
            );
            outcome?;
            writeln!(
                out,
                "{}: received {}, already had {}, kept aside {}, refused {}, reports {}, waiting {}; sent {} ({:.2} s)",
                mesh.name(),
                p.received,
                p.already_had,
                p.kept_aside,
                p.refused,
                p.reports,
                p.waiting,
                p.sent,
                started.elapsed().as_secs_f64()
            )?;
        }
    }
    Ok(exit::OK)
}
