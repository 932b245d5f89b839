//! The daemon loop (`run`): the backlog of every mailbox first, then watch the `in/`
//! folders (with `notify`, and a rescan every tick as a safety net: watch events get lost),
//! flush notifications every `notify_interval_s`, and run the nightly report at
//! `report_time`. On SQLite one daemon per root (a lock file); on PostgreSQL each daemon is
//! a node sharing the work by leases (`cluster`). SIGTERM or SIGINT finishes the file in
//! hand, flushes and exits 0.

use crate::config::Config;
use crate::core::codes::Code;
use crate::core::control::{parse_control, MAX_CONTROL_BYTES};
use crate::core::extract::FileProblem;
use crate::core::ids::MailboxId;
use crate::core::report::FileReport;
use crate::core::schedule::next_run;
use crate::pipeline::ingest::{Gateway, Intake, Rules};
use crate::service::mailbox::{Found, Settler};
use crate::sys::fault::Fault;
use crate::transport::mesh::{run_mesh, Mesh};
use crate::transport::sftp::{poll_and_record, run_remote, Remote};
use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What one run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub outcomes: BTreeMap<&'static str, u64>,
    pub refused: u64,
    pub failed: u64,
}

impl Summary {
    pub fn files(&self) -> u64 {
        self.outcomes.values().sum::<u64>() + self.refused
    }

    /// Whether everything taken was accepted (or a duplicate).
    pub fn all_accepted(&self) -> bool {
        self.refused == 0
            && self.failed == 0
            && self
                .outcomes
                .keys()
                .all(|o| matches!(*o, "accepted" | "duplicate"))
    }
}

/// Holds the root's lock for as long as it lives.
pub struct RootLock {
    _file: File,
}

/// Takes the root's lock, or explains who holds it.
pub fn lock_root(path: &Path) -> Result<RootLock> {
    if let Some(dir) = path.parent() {
        crate::sys::fsutil::create_private_dir(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the lock {}", path.display()))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(anyhow!(
            "another gateway is already running on this root (lock {} held by pid {}): stop it first",
            path.display(),
            holder.trim()
        ));
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(RootLock { _file: file })
}

/// The running daemon.
pub struct Daemon<'a> {
    gateway: Gateway<'a>,
    mailboxes: Vec<MailboxId>,
    settler: Settler,
    stop: Arc<AtomicBool>,
    /// Files whose processing failed (I/O, store): when to try again, and the pause after
    /// that (doubling from RETRY_FIRST to RETRY_MAX), so a full disk is not hammered.
    failed: HashMap<PathBuf, (Instant, Duration)>,
    /// Whether an injected `fail-once` failure was used up (tests only).
    injected_once: bool,
    pub summary: Summary,
    /// This process as a node of a cluster (a PostgreSQL store), sharing the work by leases.
    node: Option<crate::service::cluster::Node>,
    /// Each mailbox's lease, in the order of `mailboxes`.
    leases: Vec<String>,
}

const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// How often the mailboxes are looked at with no watch event (events can be lost).
const SAFETY_RESCAN: Duration = Duration::from_secs(10);
/// Back-off of a failed notification flush: from this, doubling, up to the maximum (and
/// never beyond the configured interval).
const FLUSH_RETRY_FIRST: Duration = Duration::from_secs(5);
const FLUSH_RETRY_MAX: Duration = Duration::from_secs(300);

/// Whether a watch event can mean a file arrived or completed: created, closed after
/// writing, renamed into place, or its metadata changed. Opens, reads and closes after
/// reading (the gateway's own scans among them) are not, or each scan would wake the next.
fn arrival(event: &notify::Event) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    matches!(
        event.kind,
        EventKind::Create(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Metadata(_))
            | EventKind::Any
            | EventKind::Other
    )
}

impl<'a> Daemon<'a> {
    pub fn new(
        config: &'a Config,
        clock: &'a dyn crate::sys::clock::Clock,
        stop: Arc<AtomicBool>,
    ) -> Result<Daemon<'a>> {
        let mut gateway = Gateway::open(config, clock)?;
        // A pass's files are made durable together at its end (`pipeline::settle`).
        gateway.group_syncs();
        if let Err(e) = gateway.init_mailboxes() {
            // The other mailboxes are served; the failing ones are retried at every write.
            tracing::error!(error = %format!("{e:#}"), "some mailboxes are not usable");
        }
        let las = config.local_authorities.iter().map(|&la| MailboxId::La(la));
        let orgs = config
            .health_orgs
            .iter()
            .map(|h| MailboxId::Health(h.ods.clone()));
        let mailboxes: Vec<MailboxId> = las.chain(orgs).collect();
        let node = config.postgres.is_some().then(|| {
            crate::service::cluster::Node::new(config.lease, crate::store::ts(clock.now()))
        });
        if node.is_some() {
            // Renews this node's leases while it runs, whatever it is busy with.
            crate::store::keeper(&config.store_location(), config.lease);
        }
        Ok(Daemon {
            leases: mailboxes
                .iter()
                .map(crate::service::cluster::lease_of_mailbox)
                .collect(),
            node,
            gateway,
            mailboxes,
            settler: Settler::default(),
            stop,
            failed: HashMap::new(),
            injected_once: false,
            summary: Summary::default(),
        })
    }

    fn config(&self) -> &'a Config {
        self.gateway.config
    }

    /// As a node: says it is alive, renews its leases, takes or gives back mailboxes
    /// (at most every third of a lease period unless `now`). Whether it took a mailbox.
    fn beat(&mut self, now: bool) -> bool {
        let Some(node) = &mut self.node else {
            return false;
        };
        node.beat(&mut self.gateway.store, &self.leases, now)
            .unwrap_or_else(|e| {
                tracing::error!(node = %node.name, error = %format!("{e:#}"), "cannot renew this node's leases: its mailboxes go to the others when they expire");
                false
            })
    }

    /// Runs `work` holding `lease` (as a node; at once on a single gateway), its writes
    /// checked against the lease; `None` while another node holds it.
    fn under_lease<T>(&mut self, lease: &str, work: impl FnOnce(&mut Self) -> T) -> Option<T> {
        let Some(node) = &self.node else {
            return Some(work(self));
        };
        let guard = match node.claim(&mut self.gateway.store, lease) {
            Ok(Some(guard)) => guard,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(lease, error = %format!("{e:#}"), "cannot claim the lease");
                return None;
            }
        };
        let owner = guard.owner.clone();
        self.gateway.store.set_guard(Some(guard));
        let done = work(self);
        self.gateway.store.set_guard(None);
        if let Err(e) = self.gateway.store.release(lease, &owner) {
            tracing::warn!(lease, error = %format!("{e:#}"), "cannot give the lease back: it expires by itself");
        }
        Some(done)
    }

    /// One pass over every mailbox; returns how many files are still settling (or held
    /// behind one that is): the daemon must look again soon. Files waiting for a retry are
    /// looked at again when it is due ([`Daemon::retry_due`]). What the pass wrote is made
    /// durable at its end, one sync for all, and only then do its entries leave `in/`.
    pub fn pass(&mut self) -> usize {
        let settling = self.pass_files();
        if let Err(e) = self.gateway.settle() {
            tracing::error!(error = %format!("{e:#}"), "the pass's files stay in in/ and are finished by the next pass: their outcome could not be made durable");
        }
        settling
    }

    fn pass_files(&mut self) -> usize {
        let settle = self.config().settle;
        let mut settling = 0;
        for (mailbox, lease) in self.mailboxes.clone().into_iter().zip(self.leases.clone()) {
            // As a node: keep the leases renewed through a long pass, serve only the
            // mailboxes it holds, each write checked against the lease.
            self.beat(false);
            let guard = match &self.node {
                None => None,
                Some(node) => match node.guard(&lease) {
                    Some(guard) => Some(guard),
                    None => continue,
                },
            };
            self.gateway.store.set_guard(guard);
            let inbox = self.gateway.layout.inbox(&mailbox);
            let found = match self.settler.scan(&inbox, settle) {
                Ok((found, _)) => found,
                Err(e) => {
                    // One unreadable folder must not stop the others.
                    tracing::error!(inbox = %inbox.display(), error = %e, "cannot scan the mailbox");
                    continue;
                }
            };
            // An LA's extracts are applied in extraction-time order: while an earlier one
            // is still arriving or settling for a retry, the later ones wait too (taken first,
            // they would make it STALE and its changes would be lost).
            let in_order = matches!(mailbox, MailboxId::La(_));
            let mut held = false;
            for f in found {
                if self.stop.load(Ordering::SeqCst) {
                    self.gateway.store.set_guard(None);
                    return settling + 1;
                }
                match f {
                    Found::Ready { path, control } => {
                        if !held && !self.take(&path, control.as_deref(), &mailbox) {
                            held = in_order;
                        }
                    }
                    Found::Settling { .. } => {
                        settling += 1;
                        held = in_order;
                    }
                    Found::Refuse { path, reason } => self.refuse(&path, &mailbox, &reason),
                }
            }
        }
        self.gateway.store.set_guard(None);
        // Files that failed and then went away (taken back by their sender) are forgotten.
        self.failed.retain(|path, _| path.exists());
        tracing::debug!(
            mailboxes = self.mailboxes.len(),
            settling,
            "scanned the mailboxes"
        );
        settling
    }

    /// When the next failed file may be tried again, if any waits.
    fn retry_due(&self) -> Option<Instant> {
        self.failed.values().map(|(next, _)| *next).min()
    }

    /// Processes one complete file; false if it failed (or still waits for its retry) and
    /// stays in `in/`.
    fn take(&mut self, path: &Path, control: Option<&Path>, mailbox: &MailboxId) -> bool {
        if self
            .failed
            .get(path)
            .is_some_and(|(next, _)| Instant::now() < *next)
        {
            return false;
        }
        match &self.gateway.fault {
            Some(Fault::PauseBeforeTake(pause)) => {
                tracing::info!(file = %path.display(), "pausing before taking the file (injected)");
                std::thread::sleep(*pause);
            }
            Some(Fault::FailOnce(name))
                if !self.injected_once && path.file_name().is_some_and(|n| n == name.as_str()) =>
            {
                self.injected_once = true;
                tracing::error!(file = %path.display(), mailbox = %mailbox, "processing failed (injected): the file stays in in/ and is retried (later files of this LA wait for it)");
                self.failed_again(path);
                return false;
            }
            _ => {}
        }
        let started = Instant::now();
        let rules = Rules {
            intake: Intake::Move,
            refusal: control.and_then(|c| control_problem(c, mailbox)),
            ..Rules::default()
        };
        match self.gateway.ingest(path, mailbox, &rules) {
            Ok(report) => {
                if let Some(c) = control {
                    self.gateway.remove_control(c);
                }
                self.failed.remove(path);
                self.settler.forget(path);
                self.log_processed(&report, mailbox, started);
                *self
                    .summary
                    .outcomes
                    .entry(report.outcome.as_str())
                    .or_default() += 1;
                true
            }
            Err(e) => {
                tracing::error!(file = %path.display(), mailbox = %mailbox, error = %format!("{e:#}"), "processing failed: the file stays in in/ and is retried (later files of this LA wait for it)");
                self.failed_again(path);
                false
            }
        }
    }

    /// Records a failure of `path`: the next try waits twice as long as the last.
    fn failed_again(&mut self, path: &Path) {
        let delay = self
            .failed
            .get(path)
            .map_or(RETRY_FIRST, |(_, d)| (*d * 2).min(RETRY_MAX));
        self.failed
            .insert(path.to_path_buf(), (Instant::now() + delay, delay));
        self.summary.failed += 1;
    }

    fn refuse(&mut self, path: &Path, mailbox: &MailboxId, reason: &str) {
        match self.gateway.refuse(path, mailbox, reason) {
            Ok(_) => self.summary.refused += 1,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %format!("{e:#}"), "could not set a refused file aside");
                self.summary.failed += 1;
            }
        }
    }

    fn log_processed(&self, r: &FileReport, mailbox: &MailboxId, started: Instant) {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let codes: Vec<&str> = r.file_errors.iter().map(|p| p.code.as_str()).collect();
        tracing::info!(
            file = %r.file,
            mailbox = %mailbox,
            outcome = r.outcome.as_str(),
            response_code = r.response_code,
            rows = r.rows,
            invalid_rows = r.invalid_rows,
            file_errors = %codes.join(","),
            ms = format!("{ms:.1}"),
            "processed"
        );
    }

    /// Writes queued attendance notifications, one file per LA. A failure (disk full, an
    /// unwritable `out/`) is logged and the batches stay queued in the store for the next
    /// try: nothing is lost, and the daemon goes on. Returns whether it succeeded.
    pub fn flush_notifications(&mut self) -> bool {
        // As a node: one flush at a time in the cluster (another node's counts as done).
        self.under_lease("flush", |d| match d.gateway.flush_notifications() {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "notifications could not all be written: they stay queued and are retried");
                false
            }
        })
        .unwrap_or(true)
    }

    /// The nightly report: for the last complete local day before it falls due, and any
    /// of the six days before it that has none (the daemon was down at report time, or the
    /// report failed).
    pub fn nightly_report(&mut self, due: DateTime<Utc>) -> Result<()> {
        let date =
            due.with_timezone(&self.config().timezone).date_naive() - chrono::Duration::days(1);
        // As a node: written once in the cluster, by whichever node claims it first (the
        // others then find the days written).
        let Some(done) = self.under_lease("report", |d| d.write_missed_reports(date)) else {
            return Ok(());
        };
        done?;
        // Retention after the report (which still sees the day's files).
        if let Err(e) = self.gateway.prune(false) {
            tracing::error!(error = %format!("{e:#}"), "retention failed; it runs again tomorrow, or now with `prune`");
        }
        Ok(())
    }

    /// Writes the reports of `last` and of the days before it that have none (a week):
    /// every day it can. A day that fails is logged and recorded (`status` shows it until
    /// it is written) and does not stop the others; the first failure is returned.
    fn write_missed_reports(&mut self, last: chrono::NaiveDate) -> Result<()> {
        let mut first_error = None;
        for day in self.gateway.unreported_days(last)? {
            if let Err(e) = self.gateway.write_reports(day, false) {
                let why = format!("{e:#}");
                tracing::error!(date = %day, error = %why, "the report of this day could not be written: the other days go on; fix the cause, then run `report --date {day}`");
                let now = self.gateway.clock.now();
                if let Err(e) = self.gateway.store.report_failed(day, now, &why) {
                    tracing::error!(error = %format!("{e:#}"), "cannot record the report's failure");
                }
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// `run --once` for remotes: list, list again (files must hold still between two
    /// listings), pulling what held; pushing `out/`.
    fn poll_remotes_once(&mut self) {
        if self.config().sftp.is_empty() {
            return;
        }
        let layout = self.gateway.layout.clone();
        let mut remotes: Vec<Remote> = self
            .config()
            .sftp
            .iter()
            .cloned()
            .map(Remote::new)
            .collect();
        for round in 0..2 {
            for remote in &mut remotes {
                let lease = format!("remote:{}", remote.name());
                self.under_lease(&lease, |d| {
                    poll_and_record(remote, &layout, &mut d.gateway.store, 0)
                });
            }
            if round == 0 {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    /// `run --once` for the MESH mailbox: one receive (before the backlog) or one send
    /// (after the flush).
    fn mesh_once(&mut self, receive: bool) {
        let Some(config) = self.config().mesh.clone() else {
            return;
        };
        let name = self.mesh_name();
        let layout = self.gateway.layout.clone();
        let lease = format!("remote:{name}");
        let failed = self.under_lease(&lease, |d| d.mesh_poll(config, &name, &layout, receive));
        if failed == Some(true) {
            self.summary.failed += 1;
        }
    }

    /// One MESH receive or send; whether it failed.
    fn mesh_poll(
        &mut self,
        config: crate::config::MeshConfig,
        name: &str,
        layout: &crate::sys::layout::Layout,
        receive: bool,
    ) -> bool {
        let store = &mut self.gateway.store;
        let outcome = Mesh::new(config).and_then(|mut mesh| {
            let mut polled = crate::transport::mesh::Polled::default();
            let done = if receive {
                mesh.receive(layout, store, &mut polled)
            } else {
                mesh.send(layout, store, &mut polled)
            };
            if polled != crate::transport::mesh::Polled::default() {
                tracing::info!(remote = %mesh.name(), received = polled.received, sent = polled.sent, already_had = polled.already_had, kept_aside = polled.kept_aside, refused = polled.refused, reports = polled.reports, waiting = polled.waiting, "polled");
            }
            done.map_err(|e| e.context(mesh.name()))
        });
        crate::transport::record_outcome(name, outcome, store, 0) > 0
    }

    fn mesh_name(&self) -> String {
        self.config()
            .mesh
            .as_ref()
            .map(|m| format!("mesh:{}", m.mesh_mailbox.to_ascii_uppercase()))
            .unwrap_or_default()
    }

    /// `run --once`: poll remotes, the backlog (waiting for files still settling), a
    /// flush, then push what was written.
    pub fn run_once(&mut self) -> Result<()> {
        self.beat(true);
        self.poll_remotes_once();
        self.mesh_once(true);
        let limit = Instant::now() + self.config().settle * 4 + Duration::from_secs(2);
        loop {
            self.beat(false);
            let settling = self.pass();
            let retry_in_time = self.retry_due().is_some_and(|at| at < limit);
            if (settling == 0 && !retry_in_time)
                || Instant::now() >= limit
                || self.stop.load(Ordering::SeqCst)
            {
                break;
            }
            std::thread::sleep(self.tick());
        }
        if !self.flush_notifications() {
            self.summary.failed += 1;
        }
        if !self.config().sftp.is_empty() {
            let layout = self.gateway.layout.clone();
            for c in self.config().sftp.clone() {
                let mut remote = Remote::new(c);
                let lease = format!("remote:{}", remote.name());
                self.under_lease(&lease, |d| {
                    poll_and_record(&mut remote, &layout, &mut d.gateway.store, 0)
                });
            }
        }
        self.mesh_once(false);
        self.leave();
        Ok(())
    }

    /// As a node: gives back every lease (a clean stop), for the others to take at once.
    fn leave(&mut self) {
        if let Some(node) = &mut self.node {
            if let Err(e) = node.leave(&mut self.gateway.store) {
                tracing::warn!(error = %format!("{e:#}"), "cannot give the leases back: they expire by themselves");
            }
        }
    }

    fn tick(&self) -> Duration {
        (self.config().settle / 2).clamp(Duration::from_millis(20), Duration::from_millis(500))
    }

    /// The daemon: backlog, then watch until stopped.
    pub fn run(&mut self) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.as_ref().map_or(true, arrival) {
                    let _ = tx.send(());
                }
            })
            .context("cannot start the file watcher")?;
        for mailbox in &self.mailboxes {
            let inbox = self.gateway.layout.inbox(mailbox);
            notify::Watcher::watch(&mut watcher, &inbox, notify::RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", inbox.display()))?;
        }
        let remotes: Vec<std::thread::JoinHandle<()>> = self
            .config()
            .sftp
            .iter()
            .cloned()
            .map(|c| {
                let (layout, store, stop) = (
                    self.gateway.layout.clone(),
                    self.config().store_location(),
                    Arc::clone(&self.stop),
                );
                let lease = self.node.as_ref().map(|_| self.config().lease);
                std::thread::spawn(move || run_remote(Remote::new(c), layout, store, lease, stop))
            })
            .collect();
        let mesh = match self.config().mesh.clone().map(Mesh::new).transpose() {
            Ok(mesh) => mesh.map(|mesh| {
                let (layout, store, stop) = (
                    self.gateway.layout.clone(),
                    self.config().store_location(),
                    Arc::clone(&self.stop),
                );
                let lease = self.node.as_ref().map(|_| self.config().lease);
                std::thread::spawn(move || run_mesh(mesh, layout, store, lease, stop))
            }),
            Err(e) => {
                self.stop.store(true, Ordering::SeqCst);
                for handle in remotes {
                    let _ = handle.join();
                }
                return Err(e.context("the MESH transport cannot start"));
            }
        };
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut watchdog_usec = 0;
        let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec)
            .then(|| Duration::from_micros(watchdog_usec / 2));
        let mut last_ping = Instant::now();
        let config = self.config();
        let mut next_flush = Instant::now() + config.notify_interval;
        let mut flush_backoff = FLUSH_RETRY_FIRST;
        // Look at the mailboxes when told something arrived, while files settle or wait for
        // a retry, and every SAFETY_RESCAN in case the watcher missed an event.
        let mut look = true;
        let mut last_look = Instant::now();
        let mut next_report = next_run(
            self.gateway.clock.now(),
            config.report_time,
            config.timezone,
        );
        tracing::info!(
            root = %self.gateway.layout.root().display(),
            mailboxes = self.mailboxes.len(),
            next_report = %next_report.to_rfc3339(),
            "gateway running"
        );
        // Days whose report was missed while the daemon was down (the last week's).
        self.beat(true);
        let yesterday = self.gateway.today() - chrono::Duration::days(1);
        let missed = self.under_lease("report", |d| {
            with_watchdog(watchdog, || d.write_missed_reports(yesterday))
        });
        if let Some(Err(e)) = missed {
            tracing::error!(error = %format!("{e:#}"), "a missed report could not be written: run `report --date`");
        }
        while !self.stop.load(Ordering::SeqCst) {
            look |= self.beat(false);
            let retry = self.retry_due().is_some_and(|at| Instant::now() >= at);
            if look || retry || last_look.elapsed() >= SAFETY_RESCAN {
                look = self.pass() > 0;
                last_look = Instant::now();
            }
            if Instant::now() >= next_flush {
                if self.flush_notifications() {
                    flush_backoff = FLUSH_RETRY_FIRST;
                    next_flush = Instant::now() + config.notify_interval;
                } else {
                    next_flush = Instant::now() + flush_backoff.min(config.notify_interval);
                    flush_backoff = (flush_backoff * 2).min(FLUSH_RETRY_MAX);
                }
            }
            let now = self.gateway.clock.now();
            if now >= next_report {
                let due = next_report;
                // The report can take a while on a big store: keep the watchdog fed.
                let done = with_watchdog(watchdog, || self.nightly_report(due));
                if let Err(e) = done {
                    tracing::error!(error = %format!("{e:#}"), "the nightly report failed; the next night's run writes it too, or now with `report --date`");
                }
                next_report = next_run(now, config.report_time, config.timezone);
            }
            if watchdog.is_some_and(|every| last_ping.elapsed() >= every) {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                last_ping = Instant::now();
            }
            // Wake on a watch event or at the next tick, whichever comes first.
            if rx.recv_timeout(self.tick()).is_ok() {
                while rx.try_recv().is_ok() {}
                look = true;
            }
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        tracing::info!("stopping: finishing up");
        self.flush_notifications();
        self.leave();
        for handle in remotes.into_iter().chain(mesh) {
            let _ = handle.join();
        }
        Ok(())
    }
}

/// Runs `work` while another thread pings systemd's watchdog every `every` (if enabled).
fn with_watchdog<T>(every: Option<Duration>, work: impl FnOnce() -> T) -> T {
    let Some(every) = every else {
        return work();
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last = Instant::now();
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200).min(every));
                if last.elapsed() >= every {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                    last = Instant::now();
                }
            }
        });
        let result = work();
        done.store(true, Ordering::SeqCst);
        result
    })
}

/// Reads a control file; a problem with it refuses the data file.
/// Like a data file, it is opened without following a link, never blocks on a FIFO, and
/// no more than the limit is read from the open handle.
fn control_problem(path: &Path, mailbox: &MailboxId) -> Option<FileProblem> {
    let read = crate::sys::fsutil::open_inbound(path).and_then(|opened| match opened {
        Ok(mut o) => crate::sys::fsutil::read_at_most(&mut o.file, MAX_CONTROL_BYTES).map(Ok),
        Err(why) => Ok(Err(why)),
    });
    let bytes = match read {
        Ok(Ok(Some(b))) => b,
        Ok(Ok(None)) => {
            return Some(FileProblem::new(
                Code::Xml,
                format!("the control file is larger than {MAX_CONTROL_BYTES} bytes: send a DTSControl document"),
            ))
        }
        Ok(Err(why)) => {
            return Some(FileProblem::new(
                Code::Xml,
                format!("the control file was not read ({why})"),
            ))
        }
        Err(e) => {
            return Some(FileProblem::new(
                Code::Xml,
                format!("the control file cannot be read: {e}"),
            ))
        }
    };
    match parse_control(&bytes) {
        Err(why) => Some(FileProblem::new(
            Code::Xml,
            format!("{why}: send the control file again"),
        )),
        Ok(c) if c.from_dts != mailbox.to_string() => Some(FileProblem::new(
            Code::NotAuthorised,
            format!(
                "the control file says it is from {:?} but it arrived in mailbox {mailbox}",
                c.from_dts
            ),
        )),
        Ok(_) => None,
    }
}
