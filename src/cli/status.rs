//! `status [--all] [--format text|json]`: what needs an operator's attention first
//! (quarantined files, files rejected in the last day, LAs whose latest file was rejected,
//! overdue LAs, failing remotes and files left on them, reports that failed), then the
//! state of the gateway (daemon, backlog, pending notifications, last report, access-log
//! head, MESH, the store and its nodes and leases) and, with `--all`, every LA. The JSON
//! (SPEC 7.1, `schemas/status.schema.json`) always has everything.

use super::{exit, Format};
use crate::core::dq::is_overdue;
use crate::core::ids::MailboxId;
use crate::core::plan::PlanType;
use crate::core::render::printable;
use crate::pipeline::ingest::Gateway;
use crate::store::{FileBrief, TransportStatus};
use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output: text for a person (what needs attention first), or one JSON document
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Also list every configured LA (text; the JSON always has them)
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Serialize)]
struct Status {
    config: String,
    root: String,
    /// Where the store is: `sqlite` (a file under the root) or `postgres` (shared).
    store: StoreView,
    /// The pid of the daemon holding the root's lock, if one runs.
    daemon_pid: Option<u32>,
    backlog: u64,
    pending_notifications: u64,
    quarantine: Vec<QuarantineView>,
    rejected_last_day: Vec<FileBrief>,
    /// LAs whose most recent extract was rejected.
    last_file_rejected: Vec<FileBrief>,
    last_report_at: Option<String>,
    /// Nightly reports that failed and have not been written since.
    failed_reports: Vec<crate::store::ReportFailure>,
    /// The last retention run: when, and what it deleted.
    last_prune: Option<PruneView>,
    local_authorities: Vec<LaStatus>,
    remotes: Vec<RemoteView>,
    /// The gateway's MESH mailbox, when one is configured.
    mesh: Option<MeshView>,
    /// The access log's head (entries and newest hash), to be kept elsewhere and checked
    /// later with `audit verify --expect-head`.
    access_log: crate::store::LogHead,
}

#[derive(Debug, Serialize)]
struct StoreView {
    backend: &'static str,
    /// The SQLite file, or the PostgreSQL URL without its password.
    location: String,
    /// The nodes seen in the last minute (PostgreSQL: the cluster; none on SQLite).
    nodes: Vec<crate::store::NodeView>,
    /// Who holds which piece of work (expired leases are free to take).
    leases: Vec<crate::store::LeaseView>,
}

#[derive(Debug, Serialize)]
struct MeshView {
    mailbox: String,
    url: String,
    last_success: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
    failing: bool,
    #[serde(flatten)]
    counts: crate::store::MeshCounts,
}

#[derive(Debug, Serialize)]
struct PruneView {
    at: String,
    deleted: crate::store::PruneCounts,
}

#[derive(Debug, Serialize)]
struct QuarantineView {
    id: String,
    file: String,
    mailbox: String,
    reason: String,
    quarantined_at: String,
    /// A newer extract of the LA was applied since: releasing is refused, reject it.
    superseded: bool,
}

#[derive(Debug, Serialize)]
struct LaStatus {
    la_code: String,
    la_name: String,
    last_extract_at: Option<String>,
    overdue: bool,
    open: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
struct RemoteView {
    #[serde(flatten)]
    transport: TransportStatus,
    /// The last attempt failed (no success since the last error).
    failing: bool,
    /// Files it left on the remote, and why.
    left_on_remote: Vec<crate::store::LeftOnRemote>,
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

/// The daemon holding the root's lock: the pid written in it, if that process is alive and
/// is a gateway (the lock file keeps the last pid after a daemon stops).
fn daemon_pid(lock: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(lock).ok()?.trim().parse().ok()?;
    crate::sys::node::is_gateway(pid).then_some(pid)
}

pub fn run(args: &StatusArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let now = gateway.clock.now();
    let last = gateway.store.last_applied_extracts()?;
    let open = gateway.store.open_counts()?;
    let quarantine = gateway
        .store
        .quarantine(true)?
        .into_iter()
        .map(|q| {
            let superseded = gateway
                .store
                .file(q.file_id)
                .ok()
                .flatten()
                .and_then(|f| Some((f.sender?, f.extracted_at?)))
                .and_then(|(la, at)| Some(*last.get(&la)? > at))
                .unwrap_or(false);
            QuarantineView {
                id: q.id,
                file: q.file,
                mailbox: q.mailbox,
                reason: q.reason,
                quarantined_at: q.quarantined_at,
                superseded,
            }
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
    let last_file_rejected = gateway
        .store
        .last_extract_files()?
        .into_values()
        .filter(|f| f.outcome == "rejected")
        .collect();
    let mut remotes = Vec::new();
    for t in gateway.store.transports()? {
        remotes.push(RemoteView {
            failing: match (&t.last_error_at, &t.last_success) {
                (Some(e), Some(s)) => e > s,
                (Some(_), None) => true,
                _ => false,
            },
            left_on_remote: gateway.store.remote_files_left(&t.name)?,
            transport: t,
        });
    }
    let mesh = match &gateway.config.mesh {
        None => None,
        Some(m) => {
            let name = format!("mesh:{}", m.mesh_mailbox.to_ascii_uppercase());
            let seen = remotes.iter().find(|r| r.transport.name == name);
            let tz = gateway.config.timezone;
            let midnight =
                crate::reporting::day_window(now.with_timezone(&tz).date_naive(), tz).from;
            let mut counts = gateway
                .store
                .mesh_counts(midnight, now - Duration::days(7))?;
            // A kept-aside message is dealt with once its file has left mesh/kept/.
            let kept = gateway.layout.mesh().join("kept");
            counts
                .kept_aside
                .retain(|k| kept.join(&k.message_id).exists());
            Some(MeshView {
                mailbox: m.mesh_mailbox.to_ascii_uppercase(),
                url: m.url.clone(),
                last_success: seen.and_then(|r| r.transport.last_success.clone()),
                last_error: seen.and_then(|r| r.transport.last_error.clone()),
                last_error_at: seen.and_then(|r| r.transport.last_error_at.clone()),
                failing: seen.is_some_and(|r| r.failing),
                counts,
            })
        }
    };
    let status = Status {
        mesh,
        config: gateway.config.origin.clone(),
        root: gateway.layout.root().display().to_string(),
        store: StoreView {
            backend: gateway.store.backend(),
            location: gateway.store.location().to_string(),
            nodes: gateway
                .store
                .nodes_seen(std::time::Duration::from_secs(60))?,
            leases: gateway.store.leases()?,
        },
        daemon_pid: daemon_pid(&gateway.layout.lock()),
        backlog: backlog(gateway),
        pending_notifications: gateway.store.pending_notifications()?,
        quarantine,
        rejected_last_day: gateway.store.rejected_since(now - Duration::hours(24))?,
        last_file_rejected,
        last_report_at: gateway.store.last_report_at()?.map(crate::store::ts),
        failed_reports: gateway.store.failed_reports()?,
        last_prune: gateway
            .store
            .last_prune()?
            .map(|(at, deleted)| PruneView { at, deleted }),
        local_authorities,
        remotes,
        access_log: gateway.store.access_log_head()?,
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &status)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&mut out, &status, args.all, now)?,
    }
    Ok(exit::OK)
}

fn write_text(
    out: &mut impl Write,
    s: &Status,
    all: bool,
    now: DateTime<Utc>,
) -> std::io::Result<()> {
    writeln!(out, "configuration: {}; root: {}", s.config, s.root)?;
    writeln!(out)?;
    let attention = needs_attention(s, now);
    if attention.is_empty() {
        writeln!(out, "NEEDS ATTENTION: nothing")?;
    } else {
        writeln!(out, "NEEDS ATTENTION")?;
        // Lines name files and quote peers: escaped, so a name cannot forge a line.
        for line in attention {
            writeln!(out, "  {}", printable(&line))?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "daemon: {}",
        s.daemon_pid.map_or("not running".to_owned(), |pid| format!(
            "running (pid {pid})"
        ))
    )?;
    writeln!(
        out,
        "backlog: {} file(s) waiting in in/; pending notifications: {}",
        s.backlog, s.pending_notifications
    )?;
    writeln!(
        out,
        "last report: {}",
        s.last_report_at.as_deref().unwrap_or("never")
    )?;
    match &s.last_prune {
        Some(p) => writeln!(
            out,
            "last retention run: {}: deleted {} archived, {} sent, {} report day(s), {} refused",
            p.at, p.deleted.archive, p.deleted.sent, p.deleted.reports, p.deleted.rejected
        )?,
        None => writeln!(out, "last retention run: never")?,
    }
    for r in &s.remotes {
        writeln!(
            out,
            "remote {}: last success {}{}",
            r.transport.name,
            r.transport.last_success.as_deref().unwrap_or("never"),
            if r.failing {
                " (failing, see above)"
            } else {
                ""
            }
        )?;
    }
    if let Some(m) = &s.mesh {
        writeln!(
            out,
            "MESH mailbox {} ({}): last success {}; today {} received, {} sent; {} outbound pending; {} kept aside; {} undelivered report(s)",
            m.mailbox,
            m.url,
            m.last_success.as_deref().unwrap_or("never"),
            m.counts.received_today,
            m.counts.sent_today,
            m.counts.pending_outbound,
            m.counts.kept_aside.len(),
            m.counts.undelivered.len()
        )?;
        if let Some(e) = m.last_error.as_ref().filter(|_| m.failing) {
            writeln!(
                out,
                "  failing: last error {}: {}",
                m.last_error_at.as_deref().unwrap_or("?"),
                printable(e)
            )?;
        }
    }
    writeln!(out, "access log head: {}", s.access_log)?;
    writeln!(out, "store: {} {}", s.store.backend, s.store.location)?;
    for node in &s.store.nodes {
        let held: Vec<&str> = s
            .store
            .leases
            .iter()
            .filter(|l| l.owner == node.name && l.expires_in_ms > 0)
            .map(|l| l.name.as_str())
            .collect();
        writeln!(
            out,
            "  node {} (seen {:.1} s ago, started {}): {} lease(s){}{}",
            printable(&node.name),
            node.seen_ms_ago as f64 / 1000.0,
            node.started_at,
            held.len(),
            if held.is_empty() { "" } else { ": " },
            held.join(" ")
        )?;
    }
    let overdue = s.local_authorities.iter().filter(|l| l.overdue).count();
    writeln!(
        out,
        "local authorities: {} configured, {} sent in time, {overdue} overdue or never sent{}",
        s.local_authorities.len(),
        s.local_authorities.len() - overdue,
        if all { "" } else { " (--all lists them)" }
    )?;
    if all {
        writeln!(
            out,
            "  {:<4} {:<32} {:<26} {:<8} {:>6} {:>6} {:>6}",
            "LA", "name", "last extract", "", "CPP", "LAC", "UCPP"
        )?;
        for la in &s.local_authorities {
            writeln!(
                out,
                "  {:<4} {:<32} {:<26} {:<8} {:>6} {:>6} {:>6}",
                la.la_code,
                la.la_name.chars().take(32).collect::<String>(),
                la.last_extract_at.as_deref().unwrap_or("never"),
                if la.overdue { "OVERDUE" } else { "" },
                la.open["CPP"],
                la.open["LAC"],
                la.open["UCPP"]
            )?;
        }
    }
    Ok(())
}

/// One line per thing an operator should act on, most urgent first.
fn needs_attention(s: &Status, now: DateTime<Utc>) -> Vec<String> {
    let mut lines = Vec::new();
    for q in &s.quarantine {
        lines.push(if q.superseded {
            format!(
                "quarantined {} ({}, {}), superseded by a newer extract: `quarantine reject {}`",
                q.id, q.mailbox, q.file, q.id
            )
        } else {
            format!(
                "quarantined {} ({}, {}): {}; see `quarantine show {}`, then release or reject it",
                q.id, q.mailbox, q.file, q.reason, q.id
            )
        });
    }
    for f in &s.last_file_rejected {
        let la = f.sender.as_deref().unwrap_or("?");
        let name = crate::core::ids::LaCode::parse(la).map_or("", |l| l.name());
        lines.push(format!(
            "LA {la} {name}: its latest file was rejected ({}, {}): tell the LA's data officer",
            f.file,
            codes_or_outcome(f)
        ));
    }
    if !s.rejected_last_day.is_empty() {
        lines.push(format!(
            "{} file(s) rejected in the last 24 hours:",
            s.rejected_last_day.len()
        ));
        for f in s.rejected_last_day.iter().take(10) {
            lines.push(format!(
                "  {}  {}  {}",
                f.mailbox,
                f.file,
                codes_or_outcome(f)
            ));
        }
        if s.rejected_last_day.len() > 10 {
            lines.push(format!(
                "  ... and {} more (status --format json lists them all)",
                s.rejected_last_day.len() - 10
            ));
        }
    }
    for f in &s.failed_reports {
        lines.push(format!(
            "the report of {} could not be written (at {}): {}; fix the cause, then `report --date {}`",
            f.date, f.failed_at, f.error, f.date
        ));
    }
    let (never, late): (Vec<&LaStatus>, Vec<&LaStatus>) = s
        .local_authorities
        .iter()
        .filter(|l| l.overdue)
        .partition(|l| l.last_extract_at.is_none());
    if !late.is_empty() {
        let shown: Vec<String> = late
            .iter()
            .map(|l| {
                let hours = l
                    .last_extract_at
                    .as_deref()
                    .and_then(|t| crate::store::parse_ts(t).ok())
                    .map_or(0, |t| (now - t).num_hours());
                format!("{} {} ({hours} h)", l.la_code, l.la_name)
            })
            .collect();
        lines.push(format!(
            "{} LA(s) overdue (last extract too old): {}",
            late.len(),
            shown.join(", ")
        ));
    }
    if !never.is_empty() {
        let codes: Vec<&str> = never.iter().map(|l| l.la_code.as_str()).collect();
        lines.push(format!(
            "{} LA(s) have no extract applied yet: {}",
            never.len(),
            codes.join(" ")
        ));
    }
    for r in s.remotes.iter().filter(|r| r.failing) {
        lines.push(format!(
            "remote {} failing (last error at {}): {}",
            r.transport.name,
            r.transport.last_error_at.as_deref().unwrap_or("?"),
            r.transport.last_error.as_deref().unwrap_or("?")
        ));
    }
    for r in &s.remotes {
        for f in &r.left_on_remote {
            lines.push(format!(
                "remote {} left {} there (since {}): {}",
                r.transport.name, f.file_name, f.at, f.note
            ));
        }
    }
    if let Some(m) = &s.mesh {
        for k in &m.counts.kept_aside {
            lines.push(format!(
                "MESH message {} ({}) from {} kept aside, not delivered: {}; find out who sent it, then map the mailbox in [[mesh.partner]] and put the file in that party's in/, or delete it",
                k.message_id,
                k.file_name,
                k.from,
                k.note.as_deref().unwrap_or("")
            ));
        }
        for r in &m.counts.refused {
            lines.push(format!(
                "MESH message {} ({}) from {} refused at {}: {}; the sender was not told: tell them to split the work with the gateway team",
                r.message_id,
                r.file_name,
                r.from,
                r.at,
                r.note.as_deref().unwrap_or("")
            ));
        }
        // Non-delivery reports of the last 7 days (the JSON has the 50 newest).
        let week_ago = crate::store::ts(now - Duration::days(7));
        for u in m
            .counts
            .undelivered
            .iter()
            .filter(|u| u.reported_at >= week_ago)
        {
            lines.push(format!(
                "MESH reported {} to {} undelivered (code {}: {}) at {}; the file is in out/sent/: ask the recipient, and send it again by copying it back to out/ once they can take it",
                u.file_name.as_deref().unwrap_or("a message"),
                u.to.as_deref().unwrap_or("?"),
                u.status_code.as_deref().unwrap_or("?"),
                u.description.as_deref().unwrap_or(""),
                u.reported_at
            ));
        }
    }
    lines
}

fn codes_or_outcome(f: &FileBrief) -> String {
    if f.codes.is_empty() {
        f.outcome.clone()
    } else {
        f.codes.clone()
    }
}
