//! The MESH API transport (SPEC 6): the gateway's own MESH mailbox, polled like an SFTP
//! remote, moving files only.
//!
//! Receive: list the inbox; download each message (every chunk, at most `max_file_bytes`
//! unzipped) into a new file in `<root>/mesh/incoming/`, then put it where it belongs — the
//! `in/` of the party its `mex-From` maps to (under a free name only, synced), or
//! `<root>/mesh/kept/` when the sender is unmapped or its file name is unusable — record it,
//! and only then acknowledge it. A message too large is recorded, acknowledged, kept
//! nowhere. A report (non-delivery) is recorded
//! against the message it names and never becomes a file. A message seen before (a crash
//! between recording and acknowledging) is just acknowledged; bytes the gateway already has
//! are not put in `in/` twice.
//!
//! Send: each file in a mapped party's `out/` is recorded (`posting`, with a local id that
//! names no one) before its first POST, which is never retried blindly: if its answer is
//! lost, the next poll asks MESH whether a message with that local id exists and adopts it,
//! or posts again if none does. MESH's message id and each chunk sent are recorded; only a
//! fully sent file moves to `out/sent/`.

pub mod client;

use crate::config::MeshConfig;
use crate::core::ids::MailboxId;
use crate::store::{Inbound, Outbound, Received, Report, Store};
use crate::sys::layout::Layout;
use anyhow::{anyhow, Context, Result};
use client::{CallError, Chunk, Client, Downloaded, Envelope, MessageHeaders};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The service's page size: a listing this long may have more behind it.
const PAGE: usize = 500;
/// The most listings one poll makes (each of up to `PAGE` messages).
const MAX_LISTINGS: usize = 20;
/// How often the handshake is repeated.
const HANDSHAKE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    pub received: usize,
    pub already_had: usize,
    pub kept_aside: usize,
    /// Messages refused and thrown away unkept (too large, too many chunks).
    pub refused: usize,
    pub reports: usize,
    /// Messages left in the MESH inbox because a different file of that name still waits
    /// in `in/`.
    pub waiting: usize,
    pub sent: usize,
}

pub struct Mesh {
    config: MeshConfig,
    client: Client,
    last_handshake: Option<Instant>,
    /// The gateway's clock, for what the store records (as every other record is dated).
    clock: Box<dyn crate::sys::clock::Clock>,
}

impl Mesh {
    pub fn new(config: MeshConfig) -> Result<Mesh> {
        let mut client = Client::new(&config)?;
        match crate::sys::fault::Fault::from_env()? {
            Some(crate::sys::fault::Fault::PauseMeshChunk(pause)) => client.pause = Some(pause),
            Some(crate::sys::fault::Fault::AbortAfterMeshPost) => client.abort_after_post = true,
            _ => {}
        }
        Ok(Mesh {
            config,
            client,
            last_handshake: None,
            clock: crate::sys::clock::from_env()?,
        })
    }

    /// `mesh:<MAILBOX>` (no secrets).
    pub fn name(&self) -> String {
        format!("mesh:{}", self.client.mailbox())
    }

    /// One poll: handshake when due, receive everything waiting, send every `out/` file.
    /// A receive that fails does not stop the send (acknowledgements still go out); the
    /// first error is returned.
    pub fn poll(&mut self, layout: &Layout, store: &mut Store) -> Result<Polled> {
        let mut polled = Polled::default();
        let received = self.receive(layout, store, &mut polled);
        let sent = self.send(layout, store, &mut polled);
        received.and(sent).map(|()| polled)
    }

    /// The handshake now, and how many messages wait in the inbox (`mesh check`).
    pub fn check(&mut self) -> Result<usize> {
        self.client.handshake()?;
        self.last_handshake = Some(Instant::now());
        Ok(self.client.list_inbox()?.len())
    }

    fn handshake_if_due(&mut self) -> Result<()> {
        if self
            .last_handshake
            .is_none_or(|at| at.elapsed() >= HANDSHAKE_EVERY)
        {
            self.client.handshake()?;
            self.last_handshake = Some(Instant::now());
        }
        Ok(())
    }

    /// Takes in everything in the MESH inbox. A message that cannot be taken stays in MESH
    /// and does not hold up the others, unless MESH itself is unwell (then this stops); the
    /// first error is returned at the end.
    pub fn receive(
        &mut self,
        layout: &Layout,
        store: &mut Store,
        polled: &mut Polled,
    ) -> Result<()> {
        let _one_at_a_time = poll_lock(layout)?;
        self.handshake_if_due()?;
        let mut first_error: Option<anyhow::Error> = None;
        for _ in 0..MAX_LISTINGS {
            let ids = self.client.list_inbox()?;
            let before = *polled;
            for id in &ids {
                if let Err(e) = self.receive_one(id, layout, store, polled) {
                    let unwell = e
                        .downcast_ref::<CallError>()
                        .is_some_and(CallError::retryable);
                    let e = e.context(format!("message {id}"));
                    tracing::warn!(remote = %self.name(), message_id = %id, error = %format!("{e:#}"), "message not taken: it stays in MESH and is tried again");
                    if unwell {
                        return Err(first_error.unwrap_or(e));
                    }
                    first_error.get_or_insert(e);
                }
            }
            let taken =
                |p: &Polled| p.received + p.already_had + p.kept_aside + p.refused + p.reports;
            // A full page may hide more: list again at once (unless nothing moved).
            if ids.len() < PAGE || taken(polled) == taken(&before) {
                break;
            }
        }
        // What is left waits for the next poll.
        first_error.map_or(Ok(()), Err)
    }

    fn receive_one(
        &self,
        id: &str,
        layout: &Layout,
        store: &mut Store,
        polled: &mut Polled,
    ) -> Result<()> {
        if !crate::transport::movable(id) {
            return Err(anyhow!("MESH listed an unusable message id {id:?}"));
        }
        if store.mesh_received(id)?.is_some() {
            // Safe here already; the acknowledgement was lost.
            return self.client.acknowledge(id);
        }
        let incoming = layout.mesh().join("incoming");
        crate::sys::fsutil::create_private_dir(&incoming)?;
        // A new file of the gateway's own, removed unless it is put somewhere.
        let mut part = crate::sys::fsutil::new_temp(&incoming, ".mesh-")
            .with_context(|| format!("cannot create a file in {}", incoming.display()))?;
        let headers =
            match self
                .client
                .download(id, part.as_file_mut(), self.config.max_message_bytes)?
            {
                Downloaded::Whole(headers) => headers,
                Downloaded::Refused { headers, why } => {
                    return self.refuse(id, &headers, &why, store, polled);
                }
            };
        if headers.message_type.eq_ignore_ascii_case("REPORT") {
            return self.take_report(id, &headers, store, polled);
        }
        part.as_file_mut().seek(SeekFrom::Start(0))?;
        let (sha256, bytes) = hash(part.as_file_mut())?;
        let name = headers
            .file_name
            .clone()
            .unwrap_or_else(|| format!("{id}.dat"));
        let party = self.party_of(&headers.from);
        let mut record = Inbound {
            message_id: id,
            peer: &headers.from,
            mailbox: party.as_ref().map(MailboxId::to_string),
            file_name: &name,
            workflow: headers.workflow.as_deref(),
            sha256: Some(&sha256),
            bytes,
            outcome: Received::Delivered,
            note: None,
        };
        let now = self.clock.now();
        match party {
            Some(mailbox) if crate::transport::movable(&name) && name.len() <= 200 => {
                let inbox = layout.inbox(&mailbox);
                let target = inbox.join(&name);
                let processed = store
                    .find_processed(&sha256, &mailbox.to_string(), &name)?
                    .is_some();
                crate::sys::fsutil::create_private_dir(&inbox)?;
                if processed || crate::sys::fsutil::same_bytes(&target, &sha256)? {
                    record.outcome = Received::AlreadyHad;
                    polled.already_had += 1;
                } else if !crate::sys::fsutil::place_new(part, &inbox, &name)
                    .with_context(|| format!("cannot put {}", target.display()))?
                {
                    // Another file of that name waits to be processed: this one stays in
                    // MESH (unacknowledged) until that one has gone.
                    polled.waiting += 1;
                    tracing::warn!(remote = %self.name(), message_id = id, file = %name, mailbox = %mailbox, "a different file of this name is still waiting in in/: the message stays in MESH until it has been processed");
                    return Ok(());
                } else {
                    polled.received += 1;
                    tracing::info!(remote = %self.name(), message_id = id, from = %headers.from, file = %name, bytes, "received");
                }
            }
            party => {
                let why = match party {
                    None => format!(
                        "from {}, a MESH mailbox no [[mesh.partner]] maps to a party",
                        headers.from
                    ),
                    Some(_) => "its file name cannot be used as one".to_owned(),
                };
                let kept = layout.mesh().join("kept");
                crate::sys::fsutil::create_private_dir(&kept)?;
                part.as_file().sync_all()?;
                part.persist(kept.join(id))
                    .map_err(|e| e.error)
                    .with_context(|| format!("cannot keep {}", kept.join(id).display()))?;
                fs::File::open(&kept)?.sync_all()?;
                record.outcome = Received::KeptAside;
                record.note = Some(format!("{why}; kept as {}", kept.join(id).display()));
                polled.kept_aside += 1;
                tracing::warn!(remote = %self.name(), message_id = id, from = %headers.from, file = %name, "message kept aside (not delivered to any mailbox): {why}");
            }
        }
        store.mesh_record_inbound(&record, now)?;
        self.client.acknowledge(id)
    }

    /// A message the gateway will not take (too large): nothing of it is kept; it is
    /// recorded (for `status`) and acknowledged, so it leaves the inbox.
    fn refuse(
        &self,
        id: &str,
        headers: &MessageHeaders,
        why: &str,
        store: &mut Store,
        polled: &mut Polled,
    ) -> Result<()> {
        let name = headers.file_name.as_deref().unwrap_or("");
        let record = Inbound {
            message_id: id,
            peer: &headers.from,
            mailbox: self.party_of(&headers.from).map(|m| m.to_string()),
            file_name: name,
            workflow: headers.workflow.as_deref(),
            sha256: None,
            bytes: 0,
            outcome: Received::Refused,
            note: Some(format!("refused unkept: {why}")),
        };
        store.mesh_record_inbound(&record, self.clock.now())?;
        polled.refused += 1;
        tracing::warn!(remote = %self.name(), message_id = id, from = %headers.from, file = %name, "message refused, nothing of it kept: {why}; the sender is not told by MESH: tell them");
        self.client.acknowledge(id)
    }

    /// The party a MESH mailbox is mapped to.
    fn party_of(&self, mesh_mailbox: &str) -> Option<MailboxId> {
        self.config
            .partners
            .iter()
            .find(|(_, mbx)| mbx.eq_ignore_ascii_case(mesh_mailbox))
            .map(|(mailbox, _)| mailbox.clone())
    }

    fn take_report(
        &self,
        id: &str,
        h: &MessageHeaders,
        store: &mut Store,
        polled: &mut Polled,
    ) -> Result<()> {
        let report = Report {
            message_id: id.to_owned(),
            linked_message_id: h.linked_message_id.clone(),
            local_id: h.local_id.clone(),
            status_code: h.status_code.clone(),
            event: h.status_event.clone(),
            description: h.status_description.clone(),
        };
        store.mesh_record_report(&report, self.clock.now())?;
        polled.reports += 1;
        tracing::warn!(
            remote = %self.name(),
            report_id = id,
            linked_message = report.linked_message_id.as_deref().unwrap_or("?"),
            code = report.status_code.as_deref().unwrap_or("?"),
            description = report.description.as_deref().unwrap_or(""),
            "MESH reported a message undelivered"
        );
        self.client.acknowledge(id)
    }

    /// Sends every file waiting in a mapped party's `out/`. A file MESH refuses does not
    /// hold up the others; the first error is returned at the end.
    pub fn send(&mut self, layout: &Layout, store: &mut Store, polled: &mut Polled) -> Result<()> {
        let _one_at_a_time = poll_lock(layout)?;
        self.handshake_if_due()?;
        let mut first_error = None;
        'partners: for (mailbox, peer) in self.config.partners.clone() {
            let _turn = crate::sys::fsutil::write_lock(&layout.out_lock(&mailbox))?;
            let out = layout.outbox(&mailbox);
            for (name, path) in outbox_files(&out) {
                let Some(workflow) = crate::core::mesh::workflow(&name) else {
                    tracing::warn!(file = %path.display(), "not a gateway file (CPIS_ACK_, CPIS_NOTIFY_, CPIS_FLAGS_ or CPIS_DQ_): not sent by MESH");
                    continue;
                };
                match self.send_one(&mailbox, &peer, workflow, &name, &path, store) {
                    Ok(()) => polled.sent += 1,
                    Err(e) => {
                        let in_doubt = e
                            .downcast_ref::<CallError>()
                            .is_none_or(CallError::retryable);
                        tracing::warn!(remote = %self.name(), file = %name, to = %peer, error = %format!("{e:#}"), "not sent: it stays in out/ and is tried again");
                        first_error.get_or_insert(e);
                        if in_doubt {
                            // MESH is unwell: stop, back off.
                            break 'partners;
                        }
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn send_one(
        &self,
        mailbox: &MailboxId,
        peer: &str,
        workflow: &str,
        name: &str,
        path: &Path,
        store: &mut Store,
    ) -> Result<()> {
        let mut file = File::open(path)?;
        let (sha256, len) = hash(&mut file)?;
        let ranges = crate::core::mesh::chunks(len, self.config.chunk_bytes);
        let total = ranges.len() as u32;
        let now = || self.clock.now();
        let sent = path.parent().unwrap_or(Path::new(".")).join("sent");
        let previous = store.mesh_outbound(&mailbox.to_string(), name, &sha256)?;
        // Sent, yet the copy in out/sent/ is there too: an operator put it back in out/ to
        // send it again. (Sent and never moved to out/sent/ — a crash just after, or the
        // move failed — it is not sent again.)
        let again = matches!(&previous, Some(o) if o.state == "sent")
            && crate::sys::fsutil::same_bytes(&sent.join(name), &sha256)?;
        let mut o = match previous {
            Some(o) if !again && o.state == "posting" => self.settle_in_doubt(o, store)?,
            Some(o) if !again => o,
            _ => store.mesh_outbound_begin(
                peer,
                &mailbox.to_string(),
                name,
                workflow,
                &sha256,
                len,
                total,
                now(),
            )?,
        };
        if o.message_id.is_none() {
            let body = gzip_range(&mut file, &ranges[0])?;
            let envelope = Envelope {
                to: peer,
                workflow,
                file_name: name,
                local_id: &o.local_id,
                subject: subject(workflow),
                checksum: &format!("sha256:{sha256}"),
            };
            let first = Chunk {
                number: 1,
                total,
                body: &body,
            };
            match self.client.post_first(&envelope, &first) {
                Ok(message_id) => {
                    o.message_id = Some(message_id);
                    o.chunks_done = 1;
                    o.state = "uploading".into();
                    store.mesh_outbound_progress(&o, now())?;
                }
                Err(e) if !e.retryable() => {
                    // Refused outright: nothing was created; tried afresh next poll.
                    store.mesh_outbound_refused(o.id, &e.to_string(), now())?;
                    return Err(e.into());
                }
                // Lost or failed answer: `posting` stays, settled by tracking next time.
                Err(e) => return Err(e.into()),
            }
        }
        let message_id = o.message_id.clone().expect("posted");
        while o.chunks_done < total {
            crate::sys::fault::pause_mesh_chunk(self.client.pause);
            let number = o.chunks_done + 1;
            let body = gzip_range(&mut file, &ranges[number as usize - 1])?;
            self.client.post_chunk(
                &message_id,
                &Chunk {
                    number,
                    total,
                    body: &body,
                },
            )?;
            o.chunks_done = number;
            store.mesh_outbound_progress(&o, now())?;
        }
        if o.state != "sent" {
            o.state = "sent".into();
            store.mesh_outbound_progress(&o, now())?;
            tracing::info!(remote = %self.name(), file = %name, to = %peer, workflow, message_id = %message_id, chunks = total, "sent");
        }
        crate::sys::fsutil::create_private_dir(&sent)?;
        fs::rename(path, sent.join(name))?;
        Ok(())
    }

    /// A first POST whose answer was never recorded: adopt the message if MESH has it,
    /// otherwise it is posted again (under the same local id).
    fn settle_in_doubt(&self, mut o: Outbound, store: &mut Store) -> Result<Outbound> {
        if let Some(message_id) = self.client.find_by_local_id(&o.local_id)? {
            tracing::info!(remote = %self.name(), local_id = %o.local_id, message_id = %message_id, "a send whose answer was lost had reached MESH: carrying on with it");
            o.message_id = Some(message_id);
            o.chunks_done = 1;
            o.state = "uploading".into();
            store.mesh_outbound_progress(&o, self.clock.now())?;
        }
        Ok(o)
    }
}

/// One MESH poll at a time per root (the daemon's thread, `run --once`, `mesh poll`): two
/// at once could post the same `out/` file twice.
fn poll_lock(layout: &Layout) -> Result<crate::sys::fsutil::WriteLock> {
    crate::sys::fsutil::write_lock(&layout.mesh().join("poll.lock"))
}

fn subject(workflow: &str) -> &'static str {
    match workflow {
        "CPIS_ACK" => "CP-IS acknowledgement",
        "CPIS_NOTIFY" => "CP-IS attendance notifications",
        "CPIS_FLAGS" => "CP-IS flags",
        _ => "CP-IS data-quality report",
    }
}

/// The files waiting in an `out/`, by name.
fn outbox_files(out: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(out) else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().to_str().map(|n| (n.to_owned(), e.path())))
        .filter(|(n, _)| crate::transport::movable(n))
        .collect();
    files.sort();
    files
}

/// sha256 and length of what `file` holds from where it stands.
fn hash(file: &mut File) -> Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let n = io::copy(file, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), n))
}

/// The bytes `range` of `file`, gzipped.
fn gzip_range(file: &mut File, range: &std::ops::Range<u64>) -> Result<Vec<u8>> {
    file.seek(SeekFrom::Start(range.start))?;
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(((range.end - range.start) / 4) as usize),
        flate2::Compression::fast(),
    );
    io::copy(&mut (&mut *file).take(range.end - range.start), &mut gz)?;
    Ok(gz.finish()?)
}

/// One poll with its outcome recorded for `status`; returns the failure count to carry
/// into the next try (0 after a success).
pub fn poll_and_record(mesh: &mut Mesh, layout: &Layout, store: &mut Store, failures: u32) -> u32 {
    let outcome = mesh.poll(layout, store);
    crate::transport::record_outcome(&mesh.name(), outcome.map(|p| {
        if p != Polled::default() {
            tracing::info!(remote = %mesh.name(), received = p.received, sent = p.sent, already_had = p.already_had, kept_aside = p.kept_aside, refused = p.refused, reports = p.reports, waiting = p.waiting, "polled");
        }
    }), store, failures)
}

/// The daemon's thread for the MESH mailbox: poll every `poll_s`, back off while it fails.
pub fn run_mesh(
    mut mesh: Mesh,
    layout: Layout,
    store: crate::store::Location,
    lease: Option<std::time::Duration>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let poll = mesh.config.poll;
    crate::transport::run_polling(
        &mesh.name(),
        poll,
        &store,
        lease,
        stop,
        |store, failures| poll_and_record(&mut mesh, &layout, store, failures),
    );
}
