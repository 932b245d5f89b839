//! SFTP (ssh2) transport for one `[[sftp]]` remote (SPEC 6).
//!
//! Pull: list `remote_in`, skip `.part`/`.tmp`/hidden names and files whose size or mtime
//! changed since the previous listing, download each into a new file of the gateway's own
//! private `sftp/incoming/` (streamed, synced, size checked) and put it into `in/` only if
//! its name is free there (a rename that never replaces); only then delete the remote file
//! (or move it to `remote_done`). A file the gateway already has (the same bytes waiting in
//! `in/`, or processed from this mailbox) is not taken twice, so a re-download after a
//! crash is harmless. A file that cannot be put into `in/` (a different one of that name
//! waits there, a name too long for the local disk) stays on the remote, said in `status`,
//! and the others go on. Push: each file of the local `out/` goes to `remote_out` as
//! `<name>.part`, is renamed, and the local copy moves to `out/sent/`. Host keys are always
//! verified against `known_hosts`; key material and passwords are never logged.

use super::movable;
use crate::config::SftpRemote;
use crate::store::Store;
use crate::sys::layout::Layout;
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, KnownHostFileKind, RenameFlags, Session, Sftp};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a connection attempt or a stalled transfer may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    pub pulled: usize,
    pub pushed: usize,
    pub already_had: usize,
    pub waiting: usize,
    /// Left on the remote for a reason (see `status`).
    pub left: usize,
}

/// A remote and what it looked like at the previous listing.
pub struct Remote {
    pub config: SftpRemote,
    seen: HashMap<String, (u64, u64)>,
}

impl Remote {
    pub fn new(config: SftpRemote) -> Remote {
        Remote {
            config,
            seen: HashMap::new(),
        }
    }

    /// `sftp:<user>@<host>:<port>` (no secrets).
    pub fn name(&self) -> String {
        format!(
            "sftp:{}@{}:{}",
            self.config.user, self.config.host, self.config.port
        )
    }

    fn connect(&self) -> Result<(Session, Sftp)> {
        let c = &self.config;
        let addr = (c.host.as_str(), c.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", c.host))?
            .next()
            .ok_or_else(|| anyhow!("{} has no address", c.host))?;
        let tcp = TcpStream::connect_timeout(&addr, TIMEOUT)
            .with_context(|| format!("cannot connect to {addr}"))?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        let mut session = Session::new()?;
        session.set_tcp_stream(tcp);
        session.set_timeout(TIMEOUT.as_millis() as u32);
        session.handshake().context("SSH handshake failed")?;
        let (key, _) = session
            .host_key()
            .ok_or_else(|| anyhow!("the server sent no host key"))?;
        let mut known = session.known_hosts()?;
        known
            .read_file(&c.known_hosts, KnownHostFileKind::OpenSSH)
            .with_context(|| format!("cannot read known_hosts {}", c.known_hosts.display()))?;
        match known.check_port(&c.host, c.port, key) {
            CheckResult::Match => {}
            CheckResult::Mismatch => bail!("the host key of {}:{} has CHANGED from the one in known_hosts: refusing to connect", c.host, c.port),
            CheckResult::NotFound => bail!("the host key of {}:{} is not in known_hosts: refusing to connect", c.host, c.port),
            CheckResult::Failure => bail!("the host key of {}:{} could not be checked: refusing to connect", c.host, c.port),
        }
        session
            .userauth_pubkey_file(&c.user, None, &c.key, None)
            .with_context(|| format!("key authentication as {} failed", c.user))?;
        let sftp = session.sftp().context("cannot start SFTP")?;
        Ok((session, sftp))
    }

    /// One poll: pull complete remote files into `in/`, push `out/` files.
    /// A pull that fails does not stop the push (acknowledgements still go out); the first
    /// error is returned.
    pub fn poll(&mut self, layout: &Layout, store: &mut Store) -> Result<Polled> {
        let (_session, sftp) = self.connect()?;
        let mut polled = Polled::default();
        let pulled = self.pull(&sftp, layout, store, &mut polled);
        let pushed = self.push(&sftp, layout, &mut polled);
        pulled.and(pushed).map(|()| polled)
    }

    fn pull(
        &mut self,
        sftp: &Sftp,
        layout: &Layout,
        store: &mut Store,
        polled: &mut Polled,
    ) -> Result<()> {
        let mailbox = &self.config.mailbox;
        let inbox = layout.inbox(mailbox);
        crate::sys::fsutil::create_private_dir(&inbox)?;
        let incoming = layout.sftp().join("incoming");
        crate::sys::fsutil::create_private_dir(&incoming)?;
        let remote_in = PathBuf::from(&self.config.remote_in);
        let listing = list(sftp, &remote_in)?;
        let previous = std::mem::replace(&mut self.seen, listing.clone());
        let mut names: Vec<&String> = listing.keys().collect();
        names.sort();
        // What was said of a file stays until it is taken or gone from the remote.
        let mut still_there: Vec<&str> = Vec::new();
        for name in names {
            let (size, mtime) = listing[name];
            if previous.get(name) != Some(&(size, mtime)) {
                polled.waiting += 1;
                still_there.push(name);
                continue;
            }
            let pulled = if size > self.config.max_file_bytes {
                Ok(Pulled::Left(format!(
                    "it is {size} bytes, more than the {} the gateway takes (gateway.max_file_bytes): not fetched; tell the sender",
                    self.config.max_file_bytes
                )))
            } else {
                self.pull_one(sftp, &incoming, &inbox, store, name, size)
            };
            // One file that cannot be taken is left, and said; only a broken connection
            // stops the pull.
            let pulled = match pulled {
                Err(e) if !connection_lost(&e) => Pulled::Left(format!("{e:#}")),
                other => other?,
            };
            match pulled {
                Pulled::Taken => {
                    polled.pulled += 1;
                    tracing::info!(remote = %self.name(), file = %name, bytes = size, "pulled");
                }
                Pulled::AlreadyHad => polled.already_had += 1,
                Pulled::Left(why) => {
                    polled.left += 1;
                    tracing::warn!(remote = %self.name(), file = %name, "left on the remote: {why}");
                    store.remote_file_left(&self.name(), name, &why, chrono::Utc::now())?;
                    still_there.push(name);
                }
            }
            self.seen.remove(name);
        }
        store.remote_files_settled(&self.name(), &still_there)?;
        Ok(())
    }

    /// Downloads one remote file into the gateway's private `incoming` folder (a new file
    /// of its own: nothing planted anywhere is opened), then puts it into `in/` if its
    /// name is free there. The remote copy goes only once its bytes are safely here, or
    /// the gateway has them already (processed from this mailbox, or the very same bytes
    /// waiting in `in/`); otherwise it stays, and why is said.
    fn pull_one(
        &self,
        sftp: &Sftp,
        incoming: &Path,
        inbox: &Path,
        store: &mut Store,
        name: &str,
        size: u64,
    ) -> Result<Pulled> {
        let remote = Path::new(&self.config.remote_in).join(name);
        let mut tmp = crate::sys::fsutil::new_temp(incoming, ".sftp-")
            .with_context(|| format!("cannot create a file in {}", incoming.display()))?;
        let sha = download(
            sftp,
            &remote,
            tmp.as_file_mut(),
            size,
            self.config.max_file_bytes,
        )?;
        let mailbox = self.config.mailbox.to_string();
        let pulled = if store.find_processed(&sha, &mailbox, name)?.is_some()
            || crate::sys::fsutil::same_bytes(&inbox.join(name), &sha)?
        {
            Pulled::AlreadyHad
        } else {
            match crate::sys::fsutil::place_new(tmp, inbox, name) {
                Ok(true) => Pulled::Taken,
                Ok(false) => {
                    return Ok(Pulled::Left(format!(
                        "a different file named {name:?} waits in {}: this one is taken once that one has been processed",
                        inbox.display()
                    )))
                }
                Err(e) => {
                    return Ok(Pulled::Left(format!(
                        "it cannot be put into {}: {e}",
                        inbox.display()
                    )))
                }
            }
        };
        // Safe locally: now, and only now, the remote copy goes.
        match &self.config.remote_done {
            Some(done) => sftp
                .rename(
                    &remote,
                    &Path::new(done).join(name),
                    Some(RenameFlags::OVERWRITE | RenameFlags::ATOMIC | RenameFlags::NATIVE),
                )
                .context("cannot move the remote file to remote_done")?,
            None => sftp
                .unlink(&remote)
                .context("cannot delete the remote file")?,
        }
        Ok(pulled)
    }

    fn push(&mut self, sftp: &Sftp, layout: &Layout, polled: &mut Polled) -> Result<()> {
        let _turn = crate::sys::fsutil::write_lock(&layout.out_lock(&self.config.mailbox))?;
        let out = layout.outbox(&self.config.mailbox);
        let Ok(entries) = fs::read_dir(&out) else {
            return Ok(());
        };
        let mut files: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().to_str().map(|n| (n.to_owned(), e.path())))
            .filter(|(n, _)| movable(n))
            .collect();
        files.sort();
        let sent = out.join("sent");
        for (name, path) in files {
            let remote_out = Path::new(&self.config.remote_out);
            let part = remote_out.join(format!("{name}.part"));
            let mut local = File::open(&path)?;
            let mut remote = sftp
                .create(&part)
                .with_context(|| format!("cannot create {}", part.display()))?;
            io::copy(&mut local, &mut remote).context("upload failed")?;
            remote.fsync().ok();
            drop(remote);
            sftp.rename(
                &part,
                &remote_out.join(&name),
                Some(RenameFlags::OVERWRITE | RenameFlags::ATOMIC | RenameFlags::NATIVE),
            )
            .context("cannot rename the uploaded file")?;
            crate::sys::fsutil::create_private_dir(&sent)?;
            fs::rename(&path, sent.join(&name))?;
            polled.pushed += 1;
            tracing::info!(remote = %self.name(), file = %name, "pushed");
        }
        Ok(())
    }
}

/// What became of one remote file.
enum Pulled {
    Taken,
    AlreadyHad,
    /// Left on the remote, and why.
    Left(String),
}

/// The most entries one listing of `remote_in` reads (the rest wait for a later poll).
const MAX_LISTED: usize = 10_000;

/// The plain files of `remote_in` with a name the gateway may move: (size, mtime) by name.
fn list(sftp: &Sftp, remote_in: &Path) -> Result<HashMap<String, (u64, u64)>> {
    // libssh2's codes: the end of a listing, and "try again".
    const END: i32 = -16;
    const AGAIN: i32 = -37;
    let mut dir = sftp.opendir(remote_in).context("cannot list remote_in")?;
    let mut listing = HashMap::new();
    let mut read = 0;
    while read < MAX_LISTED {
        let (path, stat) = match dir.readdir() {
            Ok(entry) => entry,
            Err(e) if e.code() == ssh2::ErrorCode::Session(END) => break,
            Err(e) if e.code() == ssh2::ErrorCode::Session(AGAIN) => continue,
            Err(e) => return Err(e).context("cannot list remote_in"),
        };
        read += 1;
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if stat.is_file() && movable(&name) {
            listing.insert(name, (stat.size.unwrap_or(0), stat.mtime.unwrap_or(0)));
        }
    }
    Ok(listing)
}

/// Whether an error means the connection itself is gone (the poll stops and backs off),
/// rather than one file's trouble (that file is left, the others go on).
fn connection_lost(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let ssh = c.downcast_ref::<ssh2::Error>().or_else(|| {
            c.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<ssh2::Error>())
        });
        matches!(
            ssh.map(ssh2::Error::code),
            Some(ssh2::ErrorCode::Session(_))
        )
    })
}

/// Streams a remote file into `to` (synced), checks its size, returns its sha256. A file
/// that grows past `max` while it is read is refused there.
fn download(sftp: &Sftp, remote: &Path, to: &mut File, size: u64, max: u64) -> Result<String> {
    let from = sftp
        .open(remote)
        .with_context(|| format!("cannot open {}", remote.display()))?;
    let mut from = from.take(max.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).context("download failed")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
    to.sync_all()?;
    if total > max {
        bail!("it grew past the {max} bytes the gateway takes (gateway.max_file_bytes) while it was fetched: not taken");
    }
    if total != size {
        bail!(
            "{} arrived with {total} bytes of {size}: it will be fetched again",
            remote.display()
        );
    }
    Ok(hex::encode(hasher.finalize()))
}

/// One poll of a remote with its outcome recorded for `status`; returns the failure count
/// to carry into the next try (0 after a success).
pub fn poll_and_record(
    remote: &mut Remote,
    layout: &Layout,
    store: &mut Store,
    failures: u32,
) -> u32 {
    let outcome = remote.poll(layout, store).map(|p| {
        if p.pulled + p.pushed + p.already_had > 0 {
            tracing::info!(remote = %remote.name(), pulled = p.pulled, pushed = p.pushed, already_had = p.already_had, "polled");
        }
    });
    super::record_outcome(&remote.name(), outcome, store, failures)
}

/// The daemon's thread for one remote: poll every `poll_s`, back off while it is down.
pub fn run_remote(
    mut remote: Remote,
    layout: Layout,
    store: crate::store::Location,
    lease: Option<std::time::Duration>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let poll = remote.config.poll;
    super::run_polling(
        &remote.name(),
        poll,
        &store,
        lease,
        stop,
        |store, failures| poll_and_record(&mut remote, &layout, store, failures),
    );
}
