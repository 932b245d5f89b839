//! Ingest benchmark driver (SPEC 11), in process as the daemon runs it: one store, files
//! ingested one after another into their owners' mailboxes.
//!
//! `cargo run --release --example ingest_bench -- ROOT DIR...` ingests every extract in each
//! DIR (in name order), one DIR after another, and prints per-DIR time, rows and rows/s.
//! Files are moved into the archive as the daemon moves them out of `in/`: give it copies.
//! With `CPIS_GATEWAY_STORE_URL` set, the store is that PostgreSQL database.

use cpis_gateway::config::Config;
use cpis_gateway::core::filename::{parse_inbound_name, InboundKind};
use cpis_gateway::core::ids::MailboxId;
use cpis_gateway::pipeline::ingest::{Gateway, Intake, Rules};
use cpis_gateway::sys::clock::SystemClock;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: ingest_bench ROOT DIR..."))?,
    );
    let root = std::path::absolute(&root)?;
    let mut text = format!(
        "[gateway]\nroot = {:?}\nmax_file_bytes = 4294967296\n[[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n",
        root.display().to_string()
    );
    // The PostgreSQL store, when given (bench/store.sh).
    if let Some(url) = std::env::var(cpis_gateway::config::STORE_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
    {
        text.push_str(&format!("[store]\nurl = {url:?}\n"));
    }
    let config = Config::parse(&text, &root, "bench")?;
    let clock = SystemClock;
    let mut gateway = Gateway::open(&config, &clock)?;
    // As the daemon does: each folder is a pass, made durable at its end.
    gateway.group_syncs();
    for dir in args {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "csv" || e == "xml"))
            .collect();
        files.sort();
        let start = Instant::now();
        let (mut rows, mut changed) = (0u64, 0u64);
        for path in &files {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let mailbox = match parse_inbound_name(&name).map(|n| n.kind) {
                Ok(InboundKind::Extract { la, .. }) => MailboxId::La(la),
                Ok(InboundKind::Attendance { ods }) => MailboxId::Health(ods),
                Err(_) => continue,
            };
            let rules = Rules {
                intake: Intake::Move,
                ..Rules::default()
            };
            let report = gateway.ingest(path, &mailbox, &rules)?;
            rows += report.rows;
            if let Some(c) = report.changes {
                changed += c.new + c.updated + c.ended + c.reopened + c.closed_by_absence;
            }
            if let Some(a) = report.attendance {
                println!(
                    "  {name}: {} flagged, {} notifications queued, {} silent reads, {} not flagged",
                    a.flagged, a.notifications_queued, a.silent_reads, a.not_flagged
                );
                changed += a.flagged;
            }
            if !report.outcome.is_success() {
                eprintln!("{name}: {}", report.outcome.as_str());
            }
        }
        gateway.settle()?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{dir}: {} files, {rows} rows, {changed} records written, {secs:.3} s, {:.0} rows/s",
            files.len(),
            rows as f64 / secs
        );
    }
    Ok(())
}
