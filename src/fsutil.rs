//! Filesystem helpers: private folders and files, atomic writes, the content-addressed archive.

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
    create_private_dir(dir)?;
    let path = dir.join(name);
    let write = || -> io::Result<()> {
        let mut tmp = new_temp(dir, &format!(".{name}."))?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_data()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
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
        Ok(Ok(opened)) => Ok(crate::check::HashingReader::new(
            opened.file,
            indicatif::ProgressBar::hidden(),
        )
        .finish()?
            == sha256),
        Ok(Err(_)) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
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

/// Copies an opened file into the content-addressed archive while hashing it (from its
/// start), and returns (sha256, archive path). `sync`: flush the copy to disk first (when
/// the original is about to go).
fn archive_from(archive: &Path, file: &mut File, sync: bool) -> Result<(String, PathBuf)> {
    use std::io::Seek;
    create_private_dir(archive)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(archive)
        .with_context(|| format!("cannot create a file in {}", archive.display()))?;
    file.rewind()?;
    let mut reader = crate::check::HashingReader::new(&mut *file, indicatif::ProgressBar::hidden());
    io::copy(&mut reader, &mut tmp)
        .with_context(|| format!("cannot copy into {}", archive.display()))?;
    let sha256 = reader.finish()?;
    let target = archive_path(archive, &sha256);
    if target.exists() {
        return Ok((sha256, target));
    }
    if sync {
        tmp.as_file()
            .sync_data()
            .with_context(|| format!("cannot sync a file in {}", archive.display()))?;
    }
    create_private_dir(target.parent().unwrap_or(archive))?;
    tmp.persist(&target)
        .with_context(|| format!("cannot archive as {}", target.display()))?;
    Ok((sha256, target))
}

/// Copies `file` into the archive, and fails unless its bytes are still those of `sha256`.
pub fn archive_copy(archive: &Path, file: &mut File, sha256: &str, sync: bool) -> Result<()> {
    let (copied, target) = archive_from(archive, file, sync)?;
    if copied != sha256 {
        let _ = fs::remove_file(&target);
        anyhow::bail!(
            "the file changed while it was being processed (sha256 {sha256} when read, {copied} now): it is processed again"
        );
    }
    Ok(())
}

/// Moves a processed inbound file (`path`, opened as `file`, described by `identity` when
/// it was opened) into the archive under `sha256`, after its outcome is committed.
///
/// The cheap way is a rename, which keeps the inode that was read. It is used only when the
/// path still names that inode and nobody else holds a link to it; otherwise the bytes
/// are copied from the open handle (and checked against `sha256`), and whatever the path
/// names by now is left alone. Returns false when the path was left in place.
pub fn archive_inbound(
    archive: &Path,
    path: &Path,
    identity: &fs::Metadata,
    file: &mut File,
    sha256: &str,
) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let target = archive_path(archive, sha256);
    let ours = still_at(identity, path);
    let linked_elsewhere = file.metadata()?.nlink() > 1;
    if target.exists() || !ours || linked_elsewhere {
        if !target.exists() {
            archive_copy(archive, file, sha256, true)?;
        }
        if ours {
            fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
        return Ok(ours);
    }
    create_private_dir(target.parent().unwrap_or(archive))?;
    fs::rename(path, &target).with_context(|| format!("cannot archive {}", path.display()))?;
    if !still_at(identity, &target) {
        // Swapped in the instant between the look and the rename: that file is not ours.
        // Set it aside beside the archive and keep our own bytes.
        let foreign = archive.join(format!(".foreign-{sha256}"));
        fs::rename(&target, &foreign)?;
        archive_copy(archive, file, sha256, true)?;
        tracing::warn!(file = %path.display(), kept = %foreign.display(), "the inbound file was swapped while it was archived: the stranger is kept aside");
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(bytes))
    }

    /// An inbound file opened as the gateway opens it.
    fn inbound(dir: &Path, bytes: &[u8]) -> (PathBuf, Opened) {
        let path = dir.join("in.csv");
        fs::write(&path, bytes).unwrap();
        let opened = open_inbound(&path).unwrap().unwrap();
        (path, opened)
    }

    #[test]
    fn a_plain_inbound_file_is_renamed_into_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive");
        let (path, mut o) = inbound(dir.path(), b"abc");
        assert!(archive_inbound(&archive, &path, &o.meta, &mut o.file, &sha(b"abc")).unwrap());
        assert!(!path.exists());
        let kept = archive_path(&archive, &sha(b"abc"));
        assert!(still_at(&o.meta, &kept), "the same inode, not a copy");
    }

    #[test]
    fn a_link_made_meanwhile_or_a_swapped_path_gets_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive");
        // Someone links the file while it is processed, then rewrites it.
        let (path, mut o) = inbound(dir.path(), b"abc");
        let other = dir.path().join("other-link");
        fs::hard_link(&path, &other).unwrap();
        assert!(archive_inbound(&archive, &path, &o.meta, &mut o.file, &sha(b"abc")).unwrap());
        fs::write(&other, b"xyz").unwrap();
        assert_eq!(
            fs::read(archive_path(&archive, &sha(b"abc"))).unwrap(),
            b"abc"
        );
        assert!(!path.exists());
        // The path names another file by now: it is left alone, our bytes are archived.
        let (path, mut o) = inbound(dir.path(), b"def");
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"stranger").unwrap();
        assert!(!archive_inbound(&archive, &path, &o.meta, &mut o.file, &sha(b"def")).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"stranger");
        assert_eq!(
            fs::read(archive_path(&archive, &sha(b"def"))).unwrap(),
            b"def"
        );
    }

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
