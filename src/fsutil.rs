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

/// Copies a file into the content-addressed archive (idempotent: same bytes, same place).
/// The original is left where it is, so the copy needs no sync of its own: until the page
/// cache reaches the disk, the original is still there.
pub fn archive_copy(archive: &Path, sha256: &str, source: &Path) -> Result<PathBuf> {
    let target = archive_path(archive, sha256);
    if target.exists() {
        return Ok(target);
    }
    let dir = target.parent().unwrap_or(archive);
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".{sha256}.tmp"));
    let copy = || -> io::Result<()> {
        let mut from = File::open(source)?;
        let mut to = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        io::copy(&mut from, &mut to)?;
        fs::rename(&tmp, &target)
    };
    copy().with_context(|| {
        format!(
            "cannot archive {} as {}",
            source.display(),
            target.display()
        )
    })?;
    Ok(target)
}

/// Moves an inbound file into the archive (after its outcome is committed). If the archive
/// already holds the same bytes, the inbound copy is simply removed.
pub fn archive_move(archive: &Path, sha256: &str, source: &Path) -> Result<PathBuf> {
    let target = archive_path(archive, sha256);
    if target.exists() {
        fs::remove_file(source).with_context(|| format!("cannot remove {}", source.display()))?;
        return Ok(target);
    }
    create_private_dir(target.parent().unwrap_or(archive))?;
    match fs::rename(source, &target) {
        Ok(()) => Ok(target),
        // Another filesystem: copy, then remove the original.
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            archive_copy(archive, sha256, source)?;
            fs::remove_file(source)
                .with_context(|| format!("cannot remove {}", source.display()))?;
            Ok(target)
        }
        Err(e) => Err(e).with_context(|| format!("cannot archive {}", source.display())),
    }
}
