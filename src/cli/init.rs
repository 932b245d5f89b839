//! `init`: create the store and every party's mailbox folders (idempotent).

use super::exit;
use crate::pipeline::ingest::Gateway;
use anyhow::Result;
use std::io::Write;

pub fn run(gateway: &Gateway<'_>) -> Result<u8> {
    let n = gateway.init_mailboxes()?;
    writeln!(
        std::io::stdout(),
        "store {}\n{n} mailboxes under {}",
        gateway.store.path().display(),
        gateway.layout.root().join("mailboxes").display()
    )?;
    Ok(exit::OK)
}
