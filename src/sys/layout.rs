//! Where things live under the configured root (SPEC 6 and 8).

use crate::core::ids::MailboxId;
use std::path::{Path, PathBuf};

/// Paths under the root.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite store.
    pub fn store(&self) -> PathBuf {
        self.root.join("store").join("cpis.sqlite")
    }

    /// The content-addressed archive of processed inbound files.
    pub fn archive(&self) -> PathBuf {
        self.root.join("archive")
    }

    pub fn mailbox(&self, id: &MailboxId) -> PathBuf {
        self.root.join("mailboxes").join(id.to_string())
    }

    /// Files for the gateway.
    pub fn inbox(&self, id: &MailboxId) -> PathBuf {
        self.mailbox(id).join("in")
    }

    /// Files from the gateway.
    pub fn outbox(&self, id: &MailboxId) -> PathBuf {
        self.mailbox(id).join("out")
    }

    /// The MESH transport's own folders: `incoming/` (downloads in progress) and `kept/`
    /// (messages from unmapped senders).
    pub fn mesh(&self) -> PathBuf {
        self.root.join("mesh")
    }

    /// The SFTP transport's own folder: downloads in progress (`incoming/`), renamed into
    /// `in/` only when complete.
    pub fn sftp(&self) -> PathBuf {
        self.root.join("sftp")
    }

    /// Held by a transport while it sends a party's `out/` (SFTP and MESH may both serve
    /// one party: they take turns, so no file goes twice).
    pub fn out_lock(&self, id: &MailboxId) -> PathBuf {
        self.root.join("locks").join(format!("out-{id}.lock"))
    }

    /// Inbound files refused without being processed (bad names, links, ...).
    pub fn rejected(&self) -> PathBuf {
        self.root.join("rejected")
    }

    /// The lock that keeps a second daemon off this root.
    pub fn lock(&self) -> PathBuf {
        self.root.join("gateway.lock")
    }

    /// The lock every command holds while it decides and commits a file (or flushes
    /// notifications), so two writers on one root never judge a file against a store the
    /// other is about to change.
    pub fn write_lock(&self) -> PathBuf {
        self.root.join("write.lock")
    }

    pub fn reports(&self) -> PathBuf {
        self.root.join("reports")
    }
}
