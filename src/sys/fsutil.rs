//! Filesystem helpers: private folders and files, new temporary files (`O_EXCL`), atomic
//! writes, placing a file under a free name only, inbound files opened without following a
//! link, a root's write lock, the content-addressed archive.

use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates a folder (and parents) readable by the service user only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Creates an empty file with mode 0600 if it does not exist.
pub fn create_private_file(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `dir/name` atomically: a hidden temporary file, synced, then renamed
/// (SPEC 6). Readers see the whole file or nothing, after a crash too. (The folder itself is
/// not synced: after a power cut the rename may be lost, never the content.) The temporary
/// file is a new one (`O_EXCL`, a random name, mode 0600): nothing planted in `dir` under
/// any name is opened, followed or truncated.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    write_renamed_with(dir, name, true, |w| w.write_all(bytes))
}

/// As [`write_atomic`], for what `write` writes piece by piece rather than holds whole;
/// with `sync` false, not synced: for a file made durable later, with the others of its
/// pass, by [`sync_file_systems`]. Until then a power cut (not a crash of the process) may
/// leave it empty, so whatever depends on it must wait for that sync.
pub fn write_renamed_with(
    dir: &Path,
    name: &str,
    sync: bool,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PathBuf> {
    create_private_dir(dir)?;
    let path = dir.join(name);
    let write = || -> io::Result<()> {
        let mut tmp = new_temp(dir, &format!(".{name}."))?;
        {
            let mut buffered = io::BufWriter::new(tmp.as_file_mut());
            write(&mut buffered)?;
            buffered.flush()?;
        }
        if sync {
            tmp.as_file().sync_data()?;
        }
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Flushes to disk everything written on the file systems holding `dirs` (`syncfs`, once
/// for each file system): one sync for a pass's files instead of one for each.
pub fn sync_file_systems<'p>(dirs: impl IntoIterator<Item = &'p Path>) -> Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let mut synced = std::collections::BTreeSet::new();
    for dir in dirs {
        let handle = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
        if !synced.insert(handle.metadata()?.dev()) {
            continue;
        }
        // SAFETY: syncfs only reads the descriptor, which `handle` keeps open.
        if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("cannot sync the file system of {}", dir.display()));
        }
    }
    Ok(())
}

/// Whether `path` is a plain file holding exactly `bytes` (not followed if a link; read no
/// further than one byte past their length).
pub fn holds_exactly(path: &Path, bytes: &[u8]) -> bool {
    match open_inbound(path) {
        Ok(Ok(mut opened)) => {
            read_at_most(&mut opened.file, bytes.len()).is_ok_and(|b| b.as_deref() == Some(bytes))
        }
        _ => false,
    }
}

/// A new hidden file in `dir` (`O_CREAT | O_EXCL`, so never a file or link already there;
/// mode 0600), removed when dropped unless persisted.
pub fn new_temp(dir: &Path, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
}

/// Puts a complete file the gateway downloaded into a private folder (`tmp`, synced) into
/// `dir` as `name`, where another party may write: only if `name` is free there (a rename
/// that never replaces; across file systems, a copy into a new file of the gateway's
/// own first), then `dir` is synced. `Ok(false)`: a file of that name is there already, and
/// `tmp` is dropped.
pub fn place_new(tmp: tempfile::NamedTempFile, dir: &Path, name: &str) -> io::Result<bool> {
    let target = dir.join(name);
    let placed = match tmp.persist_noclobber(&target) {
        Ok(_) => true,
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.error.raw_os_error() == Some(libc::EXDEV) => {
            let mut from = e.file.reopen()?;
            let mut copy = new_temp(dir, ".incoming-")?;
            io::copy(&mut from, &mut copy)?;
            copy.as_file().sync_all()?;
            match copy.persist_noclobber(&target) {
                Ok(_) => true,
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(e.error),
            }
        }
        Err(e) => return Err(e.error),
    };
    if placed {
        File::open(dir)?.sync_all()?;
    }
    Ok(placed)
}

/// Where the archive keeps a file with this sha256.
pub fn archive_path(archive: &Path, sha256: &str) -> PathBuf {
    archive.join(&sha256[..2.min(sha256.len())]).join(sha256)
}

/// Held while a file is decided and committed: one writer per root at a time, across
/// processes (the daemon, `ingest`, `replay`, `quarantine`). Released when dropped.
#[must_use]
pub struct WriteLock {
    _file: File,
}

/// Waits for, then takes, the root's write lock at `path`.
pub fn write_lock(path: &Path) -> Result<WriteLock> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open the lock {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot take the lock {}", path.display()))?;
    Ok(WriteLock { _file: file })
}

/// An inbound file, opened without following a link and without blocking on a FIFO, with
/// what `fstat` said of the open handle (not of whatever the path names by now).
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub meta: fs::Metadata,
}

/// A mailbox entry's identity: device, inode and change time (to the nanosecond). Recorded
/// with a file's outcome, it tells this very entry, still in `in/` after a stop, from a
/// new one bringing the same bytes.
pub fn inbound_identity(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{}:{}:{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// Whether `path` still names the file `meta` describes (same device and inode).
pub fn still_at(meta: &fs::Metadata, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
}

/// Opens a file the gateway did not write (a mailbox's `in/`, a control file, a file named
/// on the command line) for reading: `O_NOFOLLOW` so a link swapped in after a scan is never
/// followed, `O_NONBLOCK` so a FIFO cannot hang the gateway, then `fstat` of the handle.
/// `Ok(Err(reason))`: not a plain file, refused unread.
pub fn open_inbound(path: &Path) -> io::Result<std::result::Result<Opened, String>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Err(
                "it is a symbolic link: mailboxes take only plain files".into(),
            ))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Err("it is not a plain file".into()));
    }
    Ok(Ok(Opened { file, meta }))
}

/// Whether `path` (perhaps in a folder another party writes) is a plain file holding
/// exactly the bytes of `sha256`: opened without following a link, read through that
/// handle. Missing, or not a plain file: `false`.
pub fn same_bytes(path: &Path, sha256: &str) -> Result<bool> {
    match open_inbound(path) {
        Ok(Ok(opened)) => Ok(crate::sys::hashing::HashingReader::new(
            opened.file,
            indicatif::ProgressBar::hidden(),
        )
        .finish()?
            == sha256),
        Ok(Err(_)) => Ok(false),
        // Missing, or a name this file system cannot even hold: not here.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENAMETOOLONG) =>
        {
            Ok(false)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Reads at most `limit` bytes of an opened file; `None` if it holds more.
pub fn read_at_most(file: &mut File, limit: usize) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= limit).then_some(bytes))
}

/// Keeps `copy` (a new file in `archive` holding the bytes of `sha256`) in the
/// content-addressed archive, unless the archive has those bytes already. `sync`: flush it
/// to disk first (when the inbound file is about to go).
pub fn keep_copy(
    archive: &Path,
    copy: tempfile::NamedTempFile,
    sha256: &str,
    sync: bool,
) -> Result<()> {
    let target = archive_path(archive, sha256);
    if target.exists() {
        return Ok(());
    }
    if sync {
        copy.as_file()
            .sync_data()
            .with_context(|| format!("cannot sync a file in {}", archive.display()))?;
    }
    create_private_dir(target.parent().unwrap_or(archive))?;
    copy.persist(&target)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot archive as {}", target.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_fifos_are_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert!(open_inbound(&link)
            .unwrap()
            .unwrap_err()
            .contains("symbolic link"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(open_inbound(&fifo)
            .unwrap()
            .unwrap_err()
            .contains("not a plain file"));
    }
}
