//! Who may work on a root. A command run as root on a root folder that belongs to the
//! service user (`cpis`) would leave root-owned files (a report folder, an ack, a WAL file)
//! that the service cannot write later: refused, unless `--as-owner` asks to become the
//! owner first.

use anyhow::{bail, Result};
use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Checks (and with `as_owner`, takes) the identity a command should have on `root`.
pub fn ensure(root: &Path, as_owner: bool) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let Ok(meta) = std::fs::metadata(root) else {
        return Ok(()); // a new root: whoever creates it owns it
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    if euid != 0 || uid == 0 {
        return Ok(());
    }
    let name = user_name(uid).unwrap_or_else(|| uid.to_string());
    if !as_owner {
        bail!(
            "{} belongs to {name}, but this command runs as root: files it wrote would belong to root and the service could not use them later; run it as the owner (`sudo -u {name} cpis-gateway ...`) or add --as-owner",
            root.display()
        );
    }
    // SAFETY: plain system calls on integers; the order (groups, group, user) is the only one
    // that works once the user is no longer root.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if !dropped {
        bail!(
            "cannot become {name} (uid {uid}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The login name of `uid`, if the system knows it.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value to be overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory of the stated size; getpwuid_r writes only
    // within it and sets `result` to `&pwd` or null.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`.
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}
