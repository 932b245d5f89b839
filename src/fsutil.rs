//! Filesystem helpers: private folders and files, atomic writes, the content-addressed archive.

use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
/// not synced: after a power cut the rename may be lost, never the content.)
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        fs::rename(&tmp, &path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
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

/// Reads at most `limit` bytes of an opened file; `None` if it holds more.
pub fn read_at_most(file: &mut File, limit: usize) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= limit).then_some(bytes))
}

/// Copies an opened inbound file into the content-addressed archive while hashing it, and
/// syncs the copy: from then on the archive holds exactly the bytes that will be checked,
/// whoever else holds a link to the original. Returns (sha256, archive path).
pub fn archive_from(archive: &Path, opened: &mut Opened) -> Result<(String, PathBuf)> {
    use sha2::Digest;
    use std::io::{Read, Seek};
    create_private_dir(archive)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(archive)
        .with_context(|| format!("cannot create a file in {}", archive.display()))?;
    opened.file.rewind()?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = opened.file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .with_context(|| format!("cannot write into {}", archive.display()))?;
    }
    let sha256 = hex::encode(hasher.finalize());
    let target = archive_path(archive, &sha256);
    if target.exists() {
        return Ok((sha256, target));
    }
    tmp.as_file()
        .sync_data()
        .with_context(|| format!("cannot sync a file in {}", archive.display()))?;
    create_private_dir(target.parent().unwrap_or(archive))?;
    tmp.persist(&target)
        .with_context(|| format!("cannot archive as {}", target.display()))?;
    Ok((sha256, target))
}
