//! The store, SQLite (a file under the root, the default) or PostgreSQL (shared by the
//! nodes of a cluster): the only module that speaks SQL. One statement text for both
//! (`db`, `dialect`), migrations numbered alike (here for SQLite, `pg` for PostgreSQL).
//!
//! SQLite: ordered migrations under `PRAGMA user_version`; WAL so readers (status, query)
//! never wait for a file being applied; a busy timeout; the file created with mode 0600;
//! `synchronous = NORMAL` in WAL mode keeps every committed transaction across a crash of
//! the process (not across a power cut, which would lose the last commits but never corrupt).

pub(crate) mod db;
mod dialect;
mod files;
mod health;
mod leases;
mod mesh;
pub mod pg;
mod pgconnect;
mod prune;
mod records;
mod reports;
mod statistics;
mod turn;

pub use files::{
    quarantine_label, ArchivedFile, FileBrief, FileRow, Injected, LeftOnRemote, QuarantineEntry,
    TransportStatus,
};
pub use health::{HealthTx, LogHead, NotifyRow, PresentationView};
pub use leases::{Guard, LeaseView, NodeView};
pub use mesh::{Inbound, KeptAside, MeshCounts, Outbound, Received, Report, Undelivered};
pub use pgconnect::{SslMode, Target};
pub use prune::{ArchiveFacts, PruneCounts};
pub use records::RecordVersion;
pub use reports::{DayWindow, FileLine, ReportFailure, Trends};
pub use turn::{claim_or_take_over, keeper, take_turn, Keeper, Turn};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use db::Db;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// Schema migrations, applied in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: file registry, versioned records (append-only history), quarantine.
    r#"
    CREATE TABLE files (
        id            INTEGER PRIMARY KEY,
        sha256        TEXT NOT NULL,
        mailbox       TEXT NOT NULL,
        name          TEXT NOT NULL,
        kind          TEXT NOT NULL,
        sender        TEXT,
        extracted_at  TEXT,
        received_at   TEXT NOT NULL,
        processed_at  TEXT NOT NULL,
        outcome       TEXT NOT NULL,
        response_code TEXT NOT NULL,
        applied       INTEGER NOT NULL DEFAULT 0,
        rows          INTEGER NOT NULL,
        valid_rows    INTEGER NOT NULL,
        invalid_rows  INTEGER NOT NULL,
        report        TEXT NOT NULL
    );
    CREATE INDEX files_by_sha ON files (sha256, mailbox);
    CREATE INDEX files_applied ON files (sender, extracted_at) WHERE applied = 1;

    -- Every version of every record, append-only: a change inserts the next version, which
    -- points at the one it supersedes. A version was current from its known_from until its
    -- successor's known_from.
    CREATE TABLE record_versions (
        id                INTEGER PRIMARY KEY,
        la_code           INTEGER NOT NULL,
        nhs               INTEGER NOT NULL,
        plan_type         TEXT NOT NULL,
        start_date        TEXT NOT NULL,
        end_date          TEXT,
        edt_phone         TEXT NOT NULL,
        office_phone      TEXT NOT NULL,
        local_ref         TEXT,
        expected_delivery TEXT,
        change            TEXT NOT NULL,
        file_id           INTEGER NOT NULL REFERENCES files (id),
        known_from        TEXT NOT NULL,
        previous          INTEGER REFERENCES record_versions (id)
    );
    CREATE TRIGGER record_versions_no_delete BEFORE DELETE ON record_versions
    BEGIN SELECT RAISE(ABORT, 'record history is append-only'); END;
    CREATE TRIGGER record_versions_no_update BEFORE UPDATE ON record_versions
    BEGIN SELECT RAISE(ABORT, 'record history is append-only'); END;

    -- The current version of each record, clustered by LA for reconciliation, with an
    -- index by NHS number for look-ups: the version id, whether it is open (no end date)
    -- and the fingerprint of its fields, so that a daily extract is compared without reading
    -- the fields. Rows are never deleted: a closed record stays, pointing at its last version.
    CREATE TABLE records (
        la_code     INTEGER NOT NULL,
        nhs         INTEGER NOT NULL,
        plan_type   TEXT NOT NULL,
        version     INTEGER NOT NULL REFERENCES record_versions (id),
        open        INTEGER NOT NULL,
        fingerprint INTEGER NOT NULL,
        PRIMARY KEY (la_code, nhs, plan_type)
    ) WITHOUT ROWID;
    CREATE INDEX records_by_nhs ON records (nhs);
    CREATE TRIGGER records_no_delete BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'records are closed, never deleted'); END;

    CREATE TABLE quarantine (
        id         INTEGER PRIMARY KEY,
        file_id    INTEGER NOT NULL UNIQUE REFERENCES files (id),
        reason     TEXT NOT NULL,
        state      TEXT NOT NULL DEFAULT 'pending',
        decided_at TEXT
    );
    "#,
    // 2: whether a file's inbound copy has left its mailbox's in/ (for crash recovery), and
    // whether later identical bytes from the same mailbox are duplicates of it (not when it
    // was refused for its name or its sender: then it was never really looked at).
    r#"
    ALTER TABLE files ADD COLUMN settled INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE files ADD COLUMN dedup INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX files_unsettled ON files (sha256) WHERE NOT settled;
    "#,
    // 3: the health side. Presentations are attendances of flagged children only; other
    // look-ups leave nothing but a count. Notifications are queued with the presentation and
    // written in batches whose file name is recorded before the file is written. The access
    // log is append-only and hash-chained.
    r#"
    CREATE TABLE presentations (
        id          INTEGER PRIMARY KEY,
        nhs         INTEGER NOT NULL,
        attended_at TEXT NOT NULL,
        org_ods     TEXT NOT NULL,
        org_name    TEXT NOT NULL,
        setting     TEXT NOT NULL,
        unscheduled INTEGER NOT NULL,
        user_name   TEXT NOT NULL,
        user_role   TEXT NOT NULL,
        file_id     INTEGER REFERENCES files (id)
    );
    CREATE INDEX presentations_by_nhs ON presentations (nhs, attended_at);

    CREATE TABLE notify_batches (
        id         INTEGER PRIMARY KEY,
        la_code    INTEGER NOT NULL,
        file_name  TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        written    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE notifications (
        id              INTEGER PRIMARY KEY,
        la_code         INTEGER NOT NULL,
        presentation_id INTEGER NOT NULL REFERENCES presentations (id),
        plan_type       TEXT NOT NULL,
        local_ref       TEXT,
        batch_id        INTEGER REFERENCES notify_batches (id)
    );
    CREATE INDEX notifications_pending ON notifications (la_code) WHERE batch_id IS NULL;
    CREATE INDEX notifications_by_batch ON notifications (batch_id);

    CREATE TABLE access_log (
        id        INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        nhs       INTEGER NOT NULL,
        org_ods   TEXT NOT NULL,
        user_name TEXT NOT NULL,
        user_role TEXT NOT NULL,
        setting   TEXT NOT NULL,
        silent    INTEGER NOT NULL,
        result    TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    );
    CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
    BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
    CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
    BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;

    -- The flag response sent for an attendance file (flagged children only), so that a
    -- restart can send it again if it was lost.
    ALTER TABLE files ADD COLUMN response TEXT;

    -- Look-ups that found nothing: counts only, never who.
    CREATE TABLE lookup_counts (
        day       TEXT NOT NULL,
        org_ods   TEXT NOT NULL,
        not_found INTEGER NOT NULL,
        PRIMARY KEY (day, org_ods)
    ) WITHOUT ROWID;
    "#,
    // 4: reports. Which open records each file kept only because a rejected row named them,
    // and when each report was written (a report covers the time since the previous one).
    r#"
    CREATE TABLE retained (
        file_id   INTEGER NOT NULL REFERENCES files (id),
        la_code   INTEGER NOT NULL,
        nhs       INTEGER NOT NULL,
        plan_type TEXT NOT NULL
    );
    CREATE INDEX retained_by_file ON retained (file_id);
    CREATE TABLE reports (
        id           INTEGER PRIMARY KEY,
        report_date  TEXT NOT NULL,
        generated_at TEXT NOT NULL,
        covers_from  TEXT
    );
    "#,
    // 5: remote transports' health, for `status`.
    r#"
    CREATE TABLE transports (
        name          TEXT PRIMARY KEY,
        last_success  TEXT,
        last_error    TEXT,
        last_error_at TEXT
    ) WITHOUT ROWID;
    "#,
    // 6: what each retention run deleted, for `status`.
    r#"
    CREATE TABLE prunes (
        id       INTEGER PRIMARY KEY,
        at       TEXT NOT NULL,
        archive  INTEGER NOT NULL,
        sent     INTEGER NOT NULL,
        reports  INTEGER NOT NULL,
        rejected INTEGER NOT NULL
    );
    "#,
    // 7: MESH messages in and out (so a crash never delivers one twice nor sends one twice
    // blindly) and the non-delivery reports MESH sent back.
    r#"
    CREATE TABLE mesh_messages (
        id           INTEGER PRIMARY KEY,
        direction    TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        message_id   TEXT UNIQUE,
        local_id     TEXT UNIQUE,
        peer         TEXT NOT NULL,
        mailbox      TEXT,
        file_name    TEXT NOT NULL,
        workflow     TEXT,
        sha256       TEXT,
        bytes        INTEGER,
        state        TEXT NOT NULL,
        chunks_done  INTEGER NOT NULL DEFAULT 0,
        chunks_total INTEGER NOT NULL DEFAULT 1,
        note         TEXT,
        at           TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX mesh_messages_out ON mesh_messages (direction, mailbox, file_name, sha256);
    CREATE TABLE mesh_reports (
        message_id        TEXT PRIMARY KEY,
        linked_message_id TEXT,
        local_id          TEXT,
        status_code       TEXT,
        event             TEXT,
        description       TEXT,
        received_at       TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 8: reports rebuilt as at the end of any day (a version's successor, found by index),
    // and each LA's data-quality file sent once per report date.
    r#"
    CREATE INDEX record_versions_by_previous ON record_versions (previous);
    CREATE TABLE dq_files (
        la_code     INTEGER NOT NULL,
        report_date TEXT NOT NULL,
        file_name   TEXT NOT NULL,
        sent_at     TEXT NOT NULL,
        PRIMARY KEY (la_code, report_date)
    ) WITHOUT ROWID;
    "#,
    // 9: when each access-log entry was written (its `at` is when the look-up happened,
    // which can be earlier), so a day's report knows the log's head at the day's end.
    // Not part of the entry's hash; adding a column is not an update.
    r#"
    ALTER TABLE access_log ADD COLUMN written_at TEXT;
    "#,
    // 10: several nodes on one store: the nodes seen, and the leases that give each piece
    // of work (a mailbox, a remote, the notification flush, the nightly report) to one node
    // at a time. `fence` grows each time a lease changes hands; expiry is in milliseconds
    // since 1970 by the database's clock, so the nodes' clocks never need to agree.
    r#"
    CREATE TABLE nodes (
        name       TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        seen_ms    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE leases (
        name       TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        fence      INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 11: hostile peers. The files a transport leaves on a remote for a reason (a different
    // file of that name waits in in/, a name the local file system refuses), for `status`
    // until they are taken.
    r#"
    CREATE TABLE remote_files (
        remote    TEXT NOT NULL,
        file_name TEXT NOT NULL,
        note      TEXT NOT NULL,
        at        TEXT NOT NULL,
        PRIMARY KEY (remote, file_name)
    ) WITHOUT ROWID;
    -- Access-log entries from now on are hashed with the time they were written (version
    -- 2); earlier ones keep version 1. Adding a column is not an update.
    ALTER TABLE access_log ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
    -- Which mailbox entry (device, inode, change time) each file came from: its outcome is
    -- committed with it (settled at once), and after a stop this very entry is told from a
    -- new arrival of the same bytes.
    ALTER TABLE files ADD COLUMN inbound TEXT;
    -- Nightly reports that could not be written, for `status` until one is.
    CREATE TABLE report_failures (
        report_date TEXT PRIMARY KEY,
        failed_at   TEXT NOT NULL,
        error       TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 12: costs that follow the day's work, not the years behind it. Each record carries
    // its current version's end date, so the records a day touches (the open ones; those
    // ended within the year a look-up shows) are read through partial indexes, never the
    // closed ones or their history. Versions are found by when the store knew them, so the
    // state at a past moment is today's with the few later versions undone. Notification
    // batches by when they were made, files by when they were processed. A verified point
    // of the access-log chain lets a night check only the entries written since.
    r#"
    ALTER TABLE records ADD COLUMN end_date TEXT;
    UPDATE records SET end_date = (SELECT v.end_date FROM record_versions v WHERE v.id = records.version)
        WHERE open = 0;
    CREATE INDEX records_open ON records (la_code, nhs, plan_type, version, fingerprint) WHERE open = 1;
    CREATE INDEX records_ended ON records (end_date, nhs) WHERE open = 0;
    CREATE INDEX record_versions_by_known_from ON record_versions (known_from);
    CREATE INDEX notify_batches_by_created ON notify_batches (created_at);
    CREATE INDEX notify_batches_unwritten ON notify_batches (id) WHERE written = 0;
    CREATE INDEX files_by_processed ON files (processed_at);
    CREATE TABLE access_log_checkpoints (
        entry_id    INTEGER PRIMARY KEY,
        entries     INTEGER NOT NULL,
        hash        TEXT NOT NULL,
        verified_at TEXT NOT NULL
    );
    "#,
    // 13: PostgreSQL checks a foreign key row by row (a trigger each): half the cost of a
    // national load and of a big attendance file. On the hot paths the writes prove them
    // in their own transaction instead (ARCHITECTURE.md, "Foreign keys"); SQLite keeps
    // them, its checks costing next to nothing, so every test on it checks the proofs.
    r#"
    -- postgres: ALTER TABLE record_versions DROP CONSTRAINT record_versions_file_id_fkey;
    -- postgres: ALTER TABLE record_versions DROP CONSTRAINT record_versions_previous_fkey;
    -- postgres: ALTER TABLE records DROP CONSTRAINT records_version_fkey;
    -- postgres: ALTER TABLE presentations DROP CONSTRAINT presentations_file_id_fkey;
    -- postgres: ALTER TABLE notifications DROP CONSTRAINT notifications_presentation_id_fkey;
    "#,
    // 14 (SQLite only): records ordered open first, so an LA's open records are one range
    // of the table itself and the closed ones another, instead of a partial index that
    // copied every open record (a first load wrote each record twice). A record's key
    // stays unique through the index by NHS number, which look-ups read anyway. PostgreSQL
    // keeps its heap, its primary key and `records_open` (its covering index). A record
    // has an end date exactly when it is closed (checked), so the records ended since a
    // day are found by the end date alone (15 does the same on PostgreSQL).
    r#"-- sqlite only
    DROP TRIGGER records_no_delete;
    CREATE TABLE records_by_open (
        la_code     INTEGER NOT NULL,
        nhs         INTEGER NOT NULL,
        plan_type   TEXT NOT NULL,
        version     INTEGER NOT NULL REFERENCES record_versions (id),
        open        INTEGER NOT NULL,
        fingerprint INTEGER NOT NULL,
        end_date    TEXT,
        PRIMARY KEY (open, la_code, nhs, plan_type),
        CHECK ((open = 0) = (end_date IS NOT NULL))
    ) WITHOUT ROWID;
    INSERT INTO records_by_open (la_code, nhs, plan_type, version, open, fingerprint, end_date)
        SELECT la_code, nhs, plan_type, version, open, fingerprint, end_date FROM records;
    DROP TABLE records;
    ALTER TABLE records_by_open RENAME TO records;
    CREATE UNIQUE INDEX records_by_nhs ON records (nhs, la_code, plan_type);
    CREATE INDEX records_ended ON records (end_date, nhs) WHERE end_date IS NOT NULL;
    CREATE TRIGGER records_no_delete BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'records are closed, never deleted'); END;
    "#,
    // 15: on PostgreSQL, what 14 did to `records_ended` and the end date's check.
    r#"
    -- postgres: ALTER TABLE records ADD CONSTRAINT records_end_date_when_closed CHECK ((open = 0) = (end_date IS NOT NULL));
    -- postgres: DROP INDEX records_ended;
    -- postgres: CREATE INDEX records_ended ON records (end_date, nhs) WHERE end_date IS NOT NULL;
    "#,
    // 16: nothing looks a version up by its predecessor (the report joins a version to its
    // predecessor by the predecessor's id), and history is never deleted, so the index
    // only cost a write for every version.
    r#"
    DROP INDEX record_versions_by_previous;
    "#,
    // 17 (PostgreSQL only): the notification flush set each pending notification's batch
    // through a foreign-key check each (620 of 3,080 ms for a 40,000-row attendance file's
    // flush; 147 ms without): the flush proves it instead, setting only a batch it has just
    // inserted in its own transaction. And an attendance file's flag response (22 MB for
    // 40,000 rows) is compressed by lz4 rather than pglz (175 ms to 34 ms to store, and
    // smaller), where the server has lz4; where it has not, or is older than 14 (no
    // SET COMPRESSION: run by EXECUTE, so the block parses and the error is caught),
    // nothing changes.
    r#"
    -- postgres: ALTER TABLE notifications DROP CONSTRAINT notifications_batch_id_fkey;
    -- postgres: DO $$ BEGIN EXECUTE 'ALTER TABLE files ALTER COLUMN response SET COMPRESSION lz4'; EXCEPTION WHEN feature_not_supported OR syntax_error THEN NULL; END $$;
    "#,
    // 18: records ended before any look-up could show them (ARCHITECTURE.md, "Costs at
    // scale") leave `records` for `records_cold`, by the LA's next file, so what a day reads
    // and writes stays the size of what is open or recently ended. A row there is the
    // last version of one ended record, never changed or deleted; one named again is
    // reopened into `records` (its new version's predecessor is this one) and its row
    // stays, so a key may have several rows there, each an earlier time it ended. A record
    // leaves `records` only kept here (on SQLite, migration 19).
    r#"
    CREATE TABLE records_cold (
        version     INTEGER PRIMARY KEY,
        la_code     INTEGER NOT NULL,
        nhs         INTEGER NOT NULL,
        plan_type   TEXT NOT NULL,
        fingerprint INTEGER NOT NULL,
        end_date    TEXT NOT NULL
    );
    CREATE INDEX records_cold_by_nhs ON records_cold (nhs, la_code, plan_type);
    CREATE INDEX records_cold_ended ON records_cold (end_date);
    CREATE TRIGGER records_cold_no_delete BEFORE DELETE ON records_cold
    BEGIN SELECT RAISE(ABORT, 'ended records are kept, never deleted'); END;
    CREATE TRIGGER records_cold_no_update BEFORE UPDATE ON records_cold
    BEGIN SELECT RAISE(ABORT, 'ended records are kept as they ended'); END;
    -- postgres: DROP TRIGGER records_no_delete ON records;
    -- postgres: CREATE FUNCTION cpis_records_kept() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NOT EXISTS (SELECT 1 FROM records_cold c WHERE c.version = OLD.version AND c.la_code = OLD.la_code AND c.nhs = OLD.nhs AND c.plan_type = OLD.plan_type) THEN RAISE EXCEPTION 'records are closed, never deleted'; END IF; RETURN OLD; END $$;
    -- postgres: CREATE TRIGGER records_no_delete BEFORE DELETE ON records FOR EACH ROW EXECUTE FUNCTION cpis_records_kept();
    "#,
    // 19 (SQLite only): what 18 did to PostgreSQL's `records_no_delete`.
    r#"-- sqlite only
    DROP TRIGGER records_no_delete;
    CREATE TRIGGER records_no_delete BEFORE DELETE ON records
    WHEN NOT EXISTS (SELECT 1 FROM records_cold c WHERE c.version = OLD.version
        AND c.la_code = OLD.la_code AND c.nhs = OLD.nhs AND c.plan_type = OLD.plan_type)
    BEGIN SELECT RAISE(ABORT, 'records are closed, never deleted'); END;
    "#,
    // 20 (SQLite only): records keyed by LA and key again, undoing 14's open-first order.
    // 14 kept an LA's open records one range among years of closed ones; those now leave
    // for `records_cold` (18), and with `open` in the key every closure and reopening
    // rewrote the record's entry in `records_by_nhs`, at random among them, in each file's
    // commit (a quarter of a refresh's WAL frames). Now a closure changes the row in place.
    r#"-- sqlite only
    DROP TRIGGER records_no_delete;
    CREATE TABLE records_by_key (
        la_code     INTEGER NOT NULL,
        nhs         INTEGER NOT NULL,
        plan_type   TEXT NOT NULL,
        version     INTEGER NOT NULL REFERENCES record_versions (id),
        open        INTEGER NOT NULL,
        fingerprint INTEGER NOT NULL,
        end_date    TEXT,
        PRIMARY KEY (la_code, nhs, plan_type),
        CHECK ((open = 0) = (end_date IS NOT NULL))
    ) WITHOUT ROWID;
    INSERT INTO records_by_key (la_code, nhs, plan_type, version, open, fingerprint, end_date)
        SELECT la_code, nhs, plan_type, version, open, fingerprint, end_date FROM records;
    DROP TABLE records;
    ALTER TABLE records_by_key RENAME TO records;
    CREATE INDEX records_by_nhs ON records (nhs);
    CREATE INDEX records_ended ON records (end_date, nhs) WHERE end_date IS NOT NULL;
    CREATE TRIGGER records_no_delete BEFORE DELETE ON records
    WHEN NOT EXISTS (SELECT 1 FROM records_cold c WHERE c.version = OLD.version
        AND c.la_code = OLD.la_code AND c.nhs = OLD.nhs AND c.plan_type = OLD.plan_type)
    BEGIN SELECT RAISE(ABORT, 'records are closed, never deleted'); END;
    "#,
    // 21: the records kept cold by LA, so a reconciliation asks whether its LA has any
    // before looking its keys up one by one (a first load has none; every key of it was
    // looked up, 150,000 for a national load). A cold row is written once, so its entry
    // costs once.
    r#"
    CREATE INDEX records_cold_by_la ON records_cold (la_code);
    "#,
    // 22 (PostgreSQL only): `records_open` goes. It kept the open records one range among
    // years of closed ones, which are kept cold now (SQLite dropped its own in 14). It
    // copied every open record, and with the version in it every change to a record wrote
    // an entry in each index; without it, a change that keeps the record open and its end
    // date rewrites no index entry where its page has room (a HOT update: hence the room
    // left in new pages).
    r#"
    -- postgres: DROP INDEX records_open;
    -- postgres: ALTER TABLE records SET (fillfactor = 90);
    "#,
    // 23: a CP-IS upload's file sequence number (`File/id@extension`), kept with the file
    // so that a repeated or lower number is refused as stale (interface 5A.5).
    r#"
    ALTER TABLE files ADD COLUMN sequence INTEGER;
    "#,
];

/// How long a command waits for another one's write to finish before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The store most recently opened by this process, for [`hint`].
static OPENED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// What to do about an SQLite error that concerns the store file itself, naming it.
fn advice(e: &rusqlite::Error, path: &Path) -> Option<String> {
    let path = path.display();
    Some(match e.sqlite_error_code()? {
        rusqlite::ErrorCode::NotADatabase => format!(
            "{path} is not a gateway store (not an SQLite database, or damaged): check `root` in the configuration, or restore the store from a backup"
        ),
        rusqlite::ErrorCode::SystemIoFailure => format!(
            "the disk failed while reading or writing {path} (full, read-only or failing): free space or fix the disk, then run the command again; nothing was half-applied"
        ),
        rusqlite::ErrorCode::DiskFull => format!(
            "the disk holding {path} is full: free space, then run the command again; nothing was half-applied"
        ),
        rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen => format!(
            "{path} cannot be opened for writing: check that it and its folder belong to the service user (run commands as that user, e.g. `sudo -u cpis`)"
        ),
        _ => return None,
    })
}

fn explain(e: rusqlite::Error, path: &Path) -> anyhow::Error {
    match advice(&e, path) {
        Some(what) => anyhow::Error::new(e).context(what),
        None => anyhow::Error::new(e),
    }
}

/// For an error that reached the top of a command: if an SQLite error about the store
/// file is behind it, what to do about it (naming the file).
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let path = OPENED.get()?;
    e.chain()
        .find_map(|c| c.downcast_ref::<rusqlite::Error>())
        .and_then(|s| advice(s, path))
        .filter(|advice| !format!("{e:#}").contains(advice.as_str()))
}

/// The page cache, in KiB (negative: SQLite's unit for KiB).
pub(crate) const CACHE_KIB: i64 = -16384;

/// Where the store is: an SQLite file under the root (the default) or a PostgreSQL
/// database (`[store] url`), shared by every node of a cluster.
#[derive(Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(Box<Target>),
}

impl std::fmt::Display for Location {
    /// The file, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(target) => f.write_str(&target.shown()),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// The store, open.
pub struct Store {
    db: Db,
    path: PathBuf,
    location: Location,
    /// The lease writes are made under (see `leases`), if any.
    guard: Option<Guard>,
    /// The write turns held (see `store::Turn`): every write checks them too.
    turns: std::sync::Arc<std::sync::Mutex<Vec<Guard>>>,
    /// What this process wrote since PostgreSQL last analyzed each table (`statistics`).
    statistics: statistics::Statistics,
}

/// RFC 3339 with milliseconds in UTC: sorts as text in time order.
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a time written by [`ts`].
pub fn parse_ts(text: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("bad time {text:?} in the store"))?
        .with_timezone(&Utc))
}

impl Store {
    /// Opens (creating if needed, with mode 0600) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            crate::sys::fsutil::create_private_dir(dir)?;
        }
        // Creating the file, switching it to WAL and migrating are done by one process at a
        // time: on a brand-new store SQLite can refuse the WAL switch at once ("database is
        // locked") without waiting, whatever the busy timeout.
        let _opening = crate::sys::fsutil::write_lock(&path.with_extension("lock"))?;
        if !path.exists() {
            crate::sys::fsutil::create_private_file(path)?;
        }
        let mut conn = Connection::open(path)
            .map_err(|e| explain(e, path))
            .with_context(|| format!("cannot open the store {}", path.display()))?;
        // Another command may be writing (an ingest, the daemon): wait for it rather than
        // fail. Every write transaction takes the write lock when it begins (IMMEDIATE), so
        // a reader never has to upgrade to a writer mid-transaction, which SQLite refuses
        // at once ("database is locked") without consulting the busy timeout.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        // Room for every statement the hot paths use, so none is ever prepared twice.
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| explain(e, path))
            .with_context(|| format!("cannot open the store {}", path.display()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        // Checkpoint every 32 MiB of WAL rather than 4: each checkpoint syncs the database,
        // and a national load would otherwise pay for dozens of them.
        conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
        let _ = OPENED.set(path.to_path_buf());
        let mut store = Store {
            db: Db::Sqlite(conn),
            path: path.to_path_buf(),
            location: Location::Sqlite(path.to_path_buf()),
            guard: None,
            turns: Default::default(),
            statistics: Default::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens the store wherever it is (and migrates it).
    pub fn open_at(location: &Location) -> Result<Store> {
        match location {
            Location::Sqlite(path) => Store::open(path),
            Location::Postgres(target) => {
                let mut store = Store {
                    db: Db::Pg(Box::new(db::Pg::connect(target)?)),
                    path: PathBuf::from(target.shown()),
                    location: location.clone(),
                    guard: None,
                    turns: Default::default(),
                    statistics: Default::default(),
                };
                pg::migrate(&mut store.db).with_context(|| {
                    format!("cannot prepare the PostgreSQL store {}", target.shown())
                })?;
                Ok(store)
            }
        }
    }

    /// Where this store is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// `sqlite` or `postgres`, for `status`.
    pub fn backend(&self) -> &'static str {
        match self.location {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }

    /// Brings the schema up to date. The version is read inside the write transaction, so
    /// two commands opening a brand-new store at once never both run a migration.
    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let conn = self.conn()?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| explain(e, &path))
            .with_context(|| format!("cannot read the store {}", path.display()))?;
        if usize::try_from(version).unwrap_or(usize::MAX) == MIGRATIONS.len() {
            return Ok(());
        }
        let tx = conn.transaction()?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            bail!(
                "the store {} has schema version {version}, newer than this gateway knows ({}): upgrade the gateway",
                path.display(),
                MIGRATIONS.len()
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)
                .with_context(|| format!("migration {} failed", i + 1))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, whichever the backend.
    pub(crate) fn db(&mut self) -> &mut Db {
        &mut self.db
    }

    /// A write transaction: the store's write lock, and the guard's lease and turns still
    /// held when it commits (checked then, where it counts: nothing it wrote is seen by
    /// anyone before; a check at its start too would cost every file a round trip).
    pub(crate) fn write(&mut self) -> Result<db::Guarded<'_>> {
        let tx = self.db.transaction()?;
        let mut guards: Vec<Guard> = self.guard.iter().cloned().collect();
        guards.extend(self.turns.lock().map(|t| t.clone()).unwrap_or_default());
        Ok(db::Guarded { tx, guards })
    }

    /// The SQLite connection, for what only SQLite has (pragmas, its catalogue).
    pub(crate) fn conn(&mut self) -> Result<&mut Connection> {
        let location = self.location.to_string();
        self.db
            .sqlite()
            .ok_or_else(|| anyhow!("{location} is not an SQLite store"))
    }
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn records_ordered_open_first_keep_every_row_and_one_row_per_key() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..13] {
            conn.execute_batch(sql).unwrap();
        }
        // Rows as migration 13 left them (versions are not what this is about).
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO records VALUES (919, 9990000018, 'CPP', 1, 1, 11, NULL);
             INSERT INTO records VALUES (919, 9990000018, 'LAC', 2, 0, 12, '2025-01-02');
             INSERT INTO records VALUES (201, 9991000046, 'UCPP', 3, 0, 13, '2024-05-06');
             INSERT INTO records VALUES (201, 9992000074, 'CPP', 4, 1, 14, NULL);",
        )
        .unwrap();
        let rows = |conn: &rusqlite::Connection| -> Vec<String> {
            let mut st = conn
                .prepare(
                    "SELECT la_code || ' ' || nhs || ' ' || plan_type || ' ' || version || ' '
                        || open || ' ' || fingerprint || ' ' || ifnull(end_date, '-')
                     FROM records ORDER BY la_code, nhs, plan_type",
                )
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let before = rows(&conn);
        conn.execute_batch(MIGRATIONS[13]).unwrap();
        assert_eq!(rows(&conn), before);
        assert_eq!(before.len(), 4);
        // A key is still one record, open or closed; records are still never deleted.
        let again = conn.execute(
            "INSERT INTO records VALUES (919, 9990000018, 'LAC', 5, 1, 15, NULL)",
            [],
        );
        assert!(again.is_err(), "{again:?}");
        let delete = conn.execute("DELETE FROM records WHERE la_code = 201", []);
        assert!(delete.is_err(), "{delete:?}");
        // An end date exactly when closed.
        let ended_open = conn.execute(
            "INSERT INTO records VALUES (202, 9993000018, 'CPP', 6, 1, 16, '2026-01-01')",
            [],
        );
        assert!(ended_open.is_err(), "{ended_open:?}");
        // Closing a record moves it to the closed ones.
        conn.execute(
            "UPDATE records SET open = 0, end_date = '2026-11-20' WHERE la_code = 919 AND nhs = 9990000018 AND plan_type = 'CPP'",
            [],
        )
        .unwrap();
        let open: i64 = conn
            .query_row("SELECT count(*) FROM records WHERE open = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(open, 1);
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'records_open'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 0);
        // Migration 20 keys them by LA and key again: the same rows, the same rules.
        for sql in &MIGRATIONS[14..] {
            conn.execute_batch(sql).unwrap();
        }
        let after = rows(&conn);
        assert_eq!(after.len(), 4);
        assert!(
            after.contains(&"919 9990000018 CPP 1 0 11 2026-11-20".to_owned()),
            "{after:?}"
        );
        for refused in [
            "INSERT INTO records VALUES (919, 9990000018, 'LAC', 5, 1, 15, NULL)",
            "DELETE FROM records WHERE la_code = 201",
            "INSERT INTO records VALUES (202, 9993000018, 'CPP', 6, 1, 16, '2026-01-01')",
        ] {
            let said = conn.execute(refused, []);
            assert!(said.is_err(), "{refused}: {said:?}");
        }
        let table: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'records'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            table.contains("PRIMARY KEY (la_code, nhs, plan_type)"),
            "{table}"
        );
    }
}
