//! `status [--format text|json]`: backlog, last extract per LA, overdue LAs, quarantine,
//! pending notifications (SPEC 7.1 JSON).

use super::{exit, Format};
use crate::core::ids::MailboxId;
use crate::core::plan::PlanType;
use crate::ingest::Gateway;
use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct Status {
    backlog: u64,
    pending_notifications: u64,
    quarantine: Vec<QuarantineView>,
    local_authorities: Vec<LaStatus>,
    remotes: Vec<crate::store::TransportStatus>,
    /// The access log's head (entries and newest hash), to be kept elsewhere and checked
    /// later with `audit verify --expect-head`.
    access_log: crate::store::LogHead,
}

#[derive(Debug, Serialize)]
struct QuarantineView {
    id: String,
    file: String,
    mailbox: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct LaStatus {
    la_code: String,
    la_name: String,
    last_extract_at: Option<String>,
    overdue: bool,
    open: BTreeMap<&'static str, u64>,
}

/// Whether an LA is overdue: no extract, or the last one older than `hours`.
pub fn is_overdue(last: Option<DateTime<Utc>>, now: DateTime<Utc>, hours: u32) -> bool {
    last.is_none_or(|at| now - at > Duration::hours(i64::from(hours)))
}

/// Files waiting in the `in/` folders (not `.part`, `.tmp` or hidden).
fn backlog(gateway: &Gateway<'_>) -> u64 {
    let config = gateway.config;
    let las = config.local_authorities.iter().map(|&la| MailboxId::La(la));
    let orgs = config
        .health_orgs
        .iter()
        .map(|h| MailboxId::Health(h.ods.clone()));
    las.chain(orgs)
        .filter_map(|id| std::fs::read_dir(gateway.layout.inbox(&id)).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && !name.ends_with(".part") && !name.ends_with(".tmp")
        })
        .count() as u64
}

pub fn run(args: &StatusArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let now = gateway.clock.now();
    let last = gateway.store.last_applied_extracts()?;
    let open = gateway.store.open_counts()?;
    let quarantine = gateway
        .store
        .quarantine(true)?
        .into_iter()
        .map(|q| QuarantineView {
            id: q.id,
            file: q.file,
            mailbox: q.mailbox,
            reason: q.reason,
        })
        .collect();
    let local_authorities = gateway
        .config
        .local_authorities
        .iter()
        .map(|&la| {
            let at = last.get(&la.to_string()).copied();
            LaStatus {
                la_code: la.to_string(),
                la_name: la.name().to_owned(),
                last_extract_at: at.map(crate::store::ts),
                overdue: is_overdue(at, now, gateway.config.overdue_hours),
                open: PlanType::ALL
                    .iter()
                    .map(|p| {
                        let n = open
                            .get(&(la.as_u16(), p.as_str().to_owned()))
                            .copied()
                            .unwrap_or(0);
                        (p.as_str(), n)
                    })
                    .collect(),
            }
        })
        .collect();
    let status = Status {
        backlog: backlog(gateway),
        pending_notifications: gateway.store.pending_notifications()?,
        quarantine,
        local_authorities,
        remotes: gateway.store.transports()?,
        access_log: gateway.store.access_log_head()?,
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &status)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&mut out, &status)?,
    }
    Ok(exit::OK)
}

fn write_text(out: &mut impl Write, s: &Status) -> std::io::Result<()> {
    writeln!(
        out,
        "backlog: {} file(s) waiting; pending notifications: {}",
        s.backlog, s.pending_notifications
    )?;
    if s.quarantine.is_empty() {
        writeln!(out, "quarantine: empty")?;
    } else {
        writeln!(
            out,
            "quarantine: {} pending (decide with `quarantine release|reject ID`)",
            s.quarantine.len()
        )?;
        for q in &s.quarantine {
            writeln!(
                out,
                "  {}  {}  {}\n      {}",
                q.id, q.mailbox, q.file, q.reason
            )?;
        }
    }
    let (sent, never): (Vec<&LaStatus>, Vec<&LaStatus>) = s
        .local_authorities
        .iter()
        .partition(|la| la.last_extract_at.is_some());
    writeln!(
        out,
        "local authorities: {} configured, {} overdue",
        s.local_authorities.len(),
        s.local_authorities.iter().filter(|l| l.overdue).count()
    )?;
    writeln!(
        out,
        "  {:<4} {:<32} {:<26} {:<8} {:>6} {:>6} {:>6}",
        "LA", "name", "last extract", "", "CPP", "LAC", "UCPP"
    )?;
    for la in sent {
        writeln!(
            out,
            "  {:<4} {:<32} {:<26} {:<8} {:>6} {:>6} {:>6}",
            la.la_code,
            la.la_name.chars().take(32).collect::<String>(),
            la.last_extract_at.as_deref().unwrap_or("-"),
            if la.overdue { "OVERDUE" } else { "" },
            la.open["CPP"],
            la.open["LAC"],
            la.open["UCPP"]
        )?;
    }
    for r in &s.remotes {
        writeln!(
            out,
            "remote {}: last success {}; last error {}",
            r.name,
            r.last_success.as_deref().unwrap_or("never"),
            match (&r.last_error, &r.last_error_at) {
                (Some(e), Some(at)) => format!("{at}: {e}"),
                _ => "none".into(),
            }
        )?;
    }
    if !never.is_empty() {
        let codes: Vec<&str> = never.iter().map(|l| l.la_code.as_str()).collect();
        writeln!(
            out,
            "  never sent an extract ({}): {}",
            codes.len(),
            codes.join(" ")
        )?;
    }
    writeln!(out, "access log head: {}", s.access_log)?;
    Ok(())
}
