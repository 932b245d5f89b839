//! What the MESH transport records: every message received (so a re-download after a crash
//! is acknowledged, not delivered again), every message sent with the state of its upload
//! (so a crash never makes the gateway post a message twice blindly), and the non-delivery
//! reports MESH returns.

use super::db::{args, Row, Sql};
use super::{ts, Store};
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What became of a message received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Written into the `in/` of the party its sender maps to.
    Delivered,
    /// The gateway already had these bytes (waiting in `in/`, or processed).
    AlreadyHad,
    /// From an unmapped sender or under an unusable name: kept aside, not in any `in/`.
    KeptAside,
    /// Too large: nothing of it kept.
    Refused,
}

impl Received {
    fn as_str(self) -> &'static str {
        match self {
            Received::Delivered => "delivered",
            Received::AlreadyHad => "already_had",
            Received::KeptAside => "kept_aside",
            Received::Refused => "refused",
        }
    }
}

/// One message received.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub message_id: &'a str,
    pub peer: &'a str,
    pub mailbox: Option<String>,
    pub file_name: &'a str,
    pub workflow: Option<&'a str>,
    pub sha256: Option<&'a str>,
    pub bytes: u64,
    pub outcome: Received,
    /// Where a kept-aside message is, and why.
    pub note: Option<String>,
}

/// A non-delivery (or error) report MESH put in the gateway's inbox.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub message_id: String,
    pub linked_message_id: Option<String>,
    pub local_id: Option<String>,
    pub status_code: Option<String>,
    pub event: Option<String>,
    pub description: Option<String>,
}

/// An outbound message: where its upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub id: i64,
    pub local_id: String,
    /// MESH's id, once the first POST has answered.
    pub message_id: Option<String>,
    /// `posting` (first POST sent, answer not recorded: in doubt), `uploading` (later chunks
    /// to go), `sent`.
    pub state: String,
    pub chunks_done: u32,
    pub chunks_total: u32,
}

/// A message kept aside, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct KeptAside {
    pub message_id: String,
    pub from: String,
    pub file_name: String,
    pub at: String,
    pub note: Option<String>,
}

/// An outbound message MESH reported undelivered, for `status` and the nightly report.
#[derive(Debug, Clone, Serialize)]
pub struct Undelivered {
    pub message_id: Option<String>,
    pub file_name: Option<String>,
    pub to: Option<String>,
    pub status_code: Option<String>,
    pub description: Option<String>,
    pub reported_at: String,
}

/// The MESH mailbox's traffic, for `status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MeshCounts {
    pub received_today: u64,
    pub sent_today: u64,
    /// Outbound messages started and not finished (in doubt or with chunks to go).
    pub pending_outbound: u64,
    pub kept_aside: Vec<KeptAside>,
    /// Messages refused unkept in the last 7 days (too large), newest first.
    pub refused: Vec<KeptAside>,
    pub undelivered: Vec<Undelivered>,
}

impl Store {
    /// Whether a message has been received before (and what became of it).
    pub fn mesh_received(&mut self, message_id: &str) -> Result<Option<String>> {
        self.db().value(
            "SELECT state FROM mesh_messages WHERE direction = 'in' AND message_id = ?1",
            args![message_id],
        )
    }

    /// Records a message received (once: a second record of the same id is ignored).
    pub fn mesh_record_inbound(&mut self, m: &Inbound<'_>, at: DateTime<Utc>) -> Result<()> {
        self.db().execute(
            "INSERT INTO mesh_messages (direction, message_id, peer, mailbox,
                 file_name, workflow, sha256, bytes, state, note, at, updated_at)
             VALUES ('in', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) ON CONFLICT DO NOTHING",
            args![
                m.message_id,
                m.peer,
                m.mailbox,
                m.file_name,
                m.workflow,
                m.sha256,
                m.bytes as i64,
                m.outcome.as_str(),
                m.note,
                ts(at)
            ],
        )?;
        Ok(())
    }

    /// Records a report (once).
    pub fn mesh_record_report(&mut self, r: &Report, at: DateTime<Utc>) -> Result<()> {
        self.db().execute(
            "INSERT INTO mesh_reports (message_id, linked_message_id, local_id,
                 status_code, event, description, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            args![
                r.message_id,
                r.linked_message_id,
                r.local_id,
                r.status_code,
                r.event,
                r.description,
                ts(at)
            ],
        )?;
        Ok(())
    }

    /// The newest unfinished or finished (not refused) send of these bytes under this name
    /// to this party, if any.
    pub fn mesh_outbound(
        &mut self,
        mailbox: &str,
        file_name: &str,
        sha256: &str,
    ) -> Result<Option<Outbound>> {
        self.db()
            .row(
                "SELECT id, local_id, message_id, state, chunks_done, chunks_total
                 FROM mesh_messages
                 WHERE direction = 'out' AND mailbox = ?1 AND file_name = ?2 AND sha256 = ?3
                   AND state IN ('posting', 'uploading', 'sent')
                 ORDER BY id DESC LIMIT 1",
                args![mailbox, file_name, sha256],
            )?
            .map(|r| {
                Ok(Outbound {
                    id: r.get(0)?,
                    local_id: r.get(1)?,
                    message_id: r.get(2)?,
                    state: r.get(3)?,
                    chunks_done: r.get(4)?,
                    chunks_total: r.get(5)?,
                })
            })
            .transpose()
    }

    /// Records that a message is about to be posted (state `posting`), with a local id
    /// that names no one: `CPISGW-<row>-<first 8 of the sha256>`.
    #[allow(clippy::too_many_arguments)]
    pub fn mesh_outbound_begin(
        &mut self,
        peer: &str,
        mailbox: &str,
        file_name: &str,
        workflow: &str,
        sha256: &str,
        bytes: u64,
        chunks_total: u32,
        at: DateTime<Utc>,
    ) -> Result<Outbound> {
        let mut tx = self.write()?;
        let id = tx.insert(
            "INSERT INTO mesh_messages (direction, peer, mailbox, file_name, workflow, sha256,
                 bytes, state, chunks_total, at, updated_at)
             VALUES ('out', ?1, ?2, ?3, ?4, ?5, ?6, 'posting', ?7, ?8, ?8) RETURNING id",
            args![
                peer,
                mailbox,
                file_name,
                workflow,
                sha256,
                bytes as i64,
                chunks_total,
                ts(at)
            ],
        )?;
        let local_id = format!("CPISGW-{id}-{}", &sha256[..8.min(sha256.len())]);
        tx.execute(
            "UPDATE mesh_messages SET local_id = ?1 WHERE id = ?2",
            args![local_id, id],
        )?;
        tx.commit()?;
        Ok(Outbound {
            id,
            local_id,
            message_id: None,
            state: "posting".into(),
            chunks_done: 0,
            chunks_total,
        })
    }

    /// Records how far an upload got: MESH's id, chunks done, and `sent` once all are.
    pub fn mesh_outbound_progress(&mut self, o: &Outbound, at: DateTime<Utc>) -> Result<()> {
        self.db().execute(
            "UPDATE mesh_messages SET message_id = ?1, chunks_done = ?2, state = ?3,
                 updated_at = ?4 WHERE id = ?5",
            args![o.message_id, o.chunks_done, o.state, ts(at), o.id],
        )?;
        Ok(())
    }

    /// Records that MESH refused a send outright (nothing was created; it is tried again).
    pub fn mesh_outbound_refused(&mut self, id: i64, why: &str, at: DateTime<Utc>) -> Result<()> {
        self.db().execute(
            "UPDATE mesh_messages SET state = 'refused', note = ?1, updated_at = ?2 WHERE id = ?3",
            args![why, ts(at), id],
        )?;
        Ok(())
    }

    /// Traffic since `since` (the start of today), what is pending, kept aside, refused
    /// since `refused_since`, undelivered.
    pub fn mesh_counts(
        &mut self,
        since: DateTime<Utc>,
        refused_since: DateTime<Utc>,
    ) -> Result<MeshCounts> {
        let since = ts(since);
        let db = self.db();
        let counts = db.one(
            "SELECT (SELECT count(*) FROM mesh_messages WHERE direction = 'in' AND at >= ?1),
                    (SELECT count(*) FROM mesh_messages WHERE direction = 'out' AND state = 'sent'
                       AND updated_at >= ?1),
                    (SELECT count(*) FROM mesh_messages WHERE direction = 'out'
                       AND state IN ('posting', 'uploading'))",
            args![since],
        )?;
        let (received_today, sent_today, pending_outbound) =
            (counts.get(0)?, counts.get(1)?, counts.get(2)?);
        let mut set_aside = |state: &str, since: &str| {
            db.rows(
                "SELECT message_id, peer, file_name, at, note FROM mesh_messages
                 WHERE direction = 'in' AND state = ?1 AND at >= ?2 ORDER BY at DESC LIMIT 50",
                args![state, since],
            )?
            .iter()
            .map(|r| {
                Ok(KeptAside {
                    message_id: r.get(0)?,
                    from: r.get(1)?,
                    file_name: r.get(2)?,
                    at: r.get(3)?,
                    note: r.get(4)?,
                })
            })
            .collect::<Result<Vec<_>>>()
        };
        let kept_aside = set_aside("kept_aside", "")?;
        let refused = set_aside("refused", &ts(refused_since))?;
        let undelivered = self.mesh_undelivered("", "~", 50)?;
        Ok(MeshCounts {
            received_today,
            sent_today,
            pending_outbound,
            kept_aside,
            refused,
            undelivered,
        })
    }

    /// Non-delivery reports received in (`from`, `to`] (timestamps as the store writes
    /// them), newest first, at most `limit`, with the outbound message each names.
    pub fn mesh_undelivered(
        &mut self,
        from: &str,
        to: &str,
        limit: u32,
    ) -> Result<Vec<Undelivered>> {
        self.db()
            .rows(
                "SELECT coalesce(m.message_id, r.linked_message_id), m.file_name, m.peer, r.status_code, r.description,
                        r.received_at
                 FROM mesh_reports r
                 LEFT JOIN mesh_messages m ON m.direction = 'out'
                      AND (m.message_id = r.linked_message_id OR m.local_id = r.local_id)
                 WHERE r.received_at > ?1 AND r.received_at <= ?2
                 ORDER BY r.received_at DESC LIMIT ?3",
                args![from, to, limit],
            )?
            .iter()
            .map(undelivered)
            .collect()
    }
}

fn undelivered(r: &Row) -> Result<Undelivered> {
    Ok(Undelivered {
        message_id: r.get(0)?,
        file_name: r.get(1)?,
        to: r.get(2)?,
        status_code: r.get(3)?,
        description: r.get(4)?,
        reported_at: r.get(5)?,
    })
}
