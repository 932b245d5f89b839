//! Remote transports: they move files between remote mailboxes and the local `in/` and
//! `out/` folders; everything else happens locally.

pub mod sftp;
