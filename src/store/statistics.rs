//! Planner statistics on PostgreSQL, kept up with the store's own bulk writes.
//!
//! PostgreSQL plans from statistics that autovacuum refreshes a minute or more after a
//! table changes. A national first load (or a big attendance file) leaves tables of
//! hundreds of thousands of rows described as empty, and the plans chosen meanwhile scan
//! them whole: 70 ms for a look-up of 500 children instead of 2. So the store analyzes a
//! table itself once the rows it wrote since the table was last analyzed reach what the
//! table held then (at least [`FIRST`]): a doubling, so loading n rows analyzes it about
//! log2(n / FIRST) times, each sampling a bounded number of rows. A daily refresh of a
//! large store writes far less than it holds, and leaves autovacuum to it. (Until
//! migration 22 it vacuumed `records` in the same go, for the covering index of open
//! records the report read alone, which a bulk write left full of entries for rows no
//! longer open; the index is gone, records ended long ago being kept cold, and a first
//! load's three vacuums with it.)
//!
//! Rows moved out of `records` (kept cold) count apart: once they reach a fifth of what it
//! held (where autovacuum would start, a minute or more later), it is vacuumed and
//! analyzed, since until then its index of end dates still lists every row moved out,
//! which the next file's move reads through (the first day after the upgrade to migration
//! 18 moves every long-ended record out: 473 ms a file at 1.5 M moved, measured); and if
//! its live rows then fit in a quarter of its pages, it is rewritten ([`bloated`]).
//! SQLite plans without statistics and reuses freed pages at once; nothing is done there.

use super::db::{args, Sql};
use super::Store;
use std::collections::HashMap;

/// The columns analyzed of a table whose other columns no statement filters, joins or
/// sorts by: the history's versions are read by id, by predecessor, by when they were
/// known, and filtered by end and expected delivery dates and (the report's state at a
/// day's end, where PostgreSQL pushes its filter down) plan type (`store/reports.rs`,
/// `store/records.rs`, `store/health.rs`). The statistics of its eight other columns
/// (LA, NHS number, start date, phones, reference, change, file) made each analysis in
/// the file's path two and a half to three times as long (at 150,000 versions, in pairs:
/// whole 100–120 ms against 35–39 for this list without `plan_type`; 137–183 against
/// 57–61 with it). Autovacuum still analyzes the whole table later, off that path (an
/// analysis of some columns leaves the table's count of changes for it). The other
/// tables are analyzed whole.
const ANALYZED: [(&str, &str); 1] = [(
    "record_versions",
    "(id, previous, known_from, end_date, expected_delivery, plan_type)",
)];

/// Rows written before a table never analyzed (or nearly empty) is analyzed.
const FIRST: f64 = 20_000.0;

/// Rows written since each table was last analyzed, and the rows it held then.
#[derive(Debug, Default)]
pub struct Statistics {
    tables: HashMap<&'static str, (f64, f64)>,
    /// Rows moved out of `records` since it was last vacuumed.
    moved_out: f64,
}

/// The share of `records` moved out that has it vacuumed (autovacuum's own default).
const MOVED_OUT_SHARE: f64 = 0.2;

impl Store {
    /// Notes the rows written (and committed) to each table, analyzing those that have
    /// grown enough. Never fails: stale statistics make plans slower, not wrong.
    pub fn wrote(&mut self, written: &[(&'static str, usize)]) {
        if !self.db().is_pg() {
            return;
        }
        for &(table, rows) in written.iter().filter(|(_, rows)| *rows > 0) {
            if let Err(e) = self.note_written(table, rows as f64) {
                tracing::warn!(table, error = %format!("{e:#}"), "cannot refresh the table's planner statistics");
            }
        }
    }

    /// Notes rows moved out of `records` (committed), vacuuming it once they are many.
    pub fn moved_out(&mut self, rows: usize) {
        if !self.db().is_pg() || rows == 0 {
            return;
        }
        self.statistics.moved_out += rows as f64;
        if let Err(e) = self.note_written("records", 0.0) {
            tracing::warn!(table = "records", error = %format!("{e:#}"), "cannot refresh the table's planner statistics");
        }
    }

    fn note_written(&mut self, table: &'static str, rows: f64) -> anyhow::Result<()> {
        let held = match self.statistics.tables.get(&table) {
            Some(&(_, held)) => held,
            None => reltuples(self, table)?,
        };
        let entry = self.statistics.tables.entry(table).or_insert((0.0, held));
        entry.0 += rows;
        let moved_out =
            table == "records" && self.statistics.moved_out >= (held * MOVED_OUT_SHARE).max(FIRST);
        if entry.0 < held.max(FIRST) && !moved_out {
            return Ok(());
        }
        let vacuum = if moved_out {
            "VACUUM (ANALYZE)"
        } else {
            "ANALYZE"
        };
        let columns = ANALYZED
            .iter()
            .find(|(t, _)| *t == table)
            .map_or("", |(_, columns)| columns);
        self.db().batch(&format!("{vacuum} {table} {columns}"))?;
        if moved_out && bloated(self, table)? {
            // Its live rows fit in a quarter of its pages: rewritten, or every read of the
            // open records goes through the pages the history left (ACCESS EXCLUSIVE: a
            // look-up waits for it; 0.65 s for 150,000 rows left of 1.65 million).
            self.db()
                .batch(&format!("VACUUM (FULL, ANALYZE) {table}"))?;
            tracing::info!(
                table,
                "rewrote the table: most of its rows had moved out (kept cold)"
            );
        }
        let held = reltuples(self, table)?;
        self.statistics.tables.insert(table, (0.0, held));
        if table == "records" {
            self.statistics.moved_out = 0.0;
        }
        tracing::debug!(table, rows = held, "analyzed");
        Ok(())
    }
}

/// Pages below which a table is never rewritten (1 MiB).
const REWRITE_PAGES: i64 = 128;

/// Whether `table` (just analyzed) takes more than four times the pages its live rows
/// need, by the planner's count and average widths (a tuple's header and pointer: 28
/// bytes; pages 90 % full). Rows moved out leave their pages empty but in the file, so
/// a table that held years of history keeps their size, and every read that is not by
/// an index alone goes through them: after the store's own first day past migration 18
/// (1.5 million of 1.65 million records moved out), `records` was 271 MB for 12 MB of
/// rows, and the refresh took 1.28 to 1.50 times and the report 1.23 to 1.38 times as
/// long as on a store that never held them (two runs of `bench/scale.sh`).
fn bloated(store: &mut Store, table: &str) -> anyhow::Result<bool> {
    let row = store.db().one(
        "SELECT CAST(c.relpages AS BIGINT), CAST(greatest(c.reltuples, 0) AS BIGINT),
                CAST((SELECT sum(s.avg_width) FROM pg_stats s
                       WHERE s.schemaname = current_schema() AND s.tablename = c.relname)
                     AS BIGINT)
         FROM pg_class c WHERE c.oid = CAST(CAST(?1 AS TEXT) AS regclass)",
        args![table],
    )?;
    let (pages, rows): (i64, i64) = (row.get(0)?, row.get(1)?);
    let width = row.get::<Option<i64>>(2)?.unwrap_or(0) + 28;
    let needed = (rows * width) as f64 / (8192.0 * 0.9);
    Ok(pages >= REWRITE_PAGES && pages as f64 > 4.0 * needed)
}

/// The rows the planner believes `table` holds (none if it was never analyzed).
fn reltuples(store: &mut Store, table: &str) -> anyhow::Result<f64> {
    let n: Option<i64> = store.db().value(
        "SELECT CAST(greatest(reltuples, 0) AS BIGINT) FROM pg_class
         WHERE oid = CAST(CAST(?1 AS TEXT) AS regclass)",
        args![table],
    )?;
    Ok(n.unwrap_or(0) as f64)
}
