//! The floor for a first ingest (issue 22): a bare program that reads the same extract rows
//! with the `csv` crate (no validation), sorts them by key, and inserts them into tables
//! equivalent to the gateway's (`record_versions` with the same columns, `records` keyed by
//! LA, NHS number and plan type with its index by NHS number) in one transaction, the way
//! the gateway writes each backend: a prepared statement on SQLite (WAL,
//! `synchronous=NORMAL`, the same page cache), `COPY` on PostgreSQL. Nothing else: no
//! registry, no report, no archive.
//!
//! `cargo run --release --example bare_store -- sqlite DB FILE...`
//! `cargo run --release --example bare_store -- postgres URL FILE...` (an empty database)

use anyhow::{bail, Context, Result};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::time::Instant;

/// One extract row: its key, and the record as read (one buffer).
struct Row {
    la: i64,
    nhs: i64,
    record: csv::StringRecord,
}

/// Where each column is in the records.
#[derive(Clone, Copy)]
struct Columns {
    plan: usize,
    start: usize,
    end: Option<usize>,
    edt: Option<usize>,
    office: Option<usize>,
    local_ref: Option<usize>,
    edd: Option<usize>,
}

impl Row {
    fn get(&self, i: Option<usize>) -> &str {
        i.and_then(|i| self.record.get(i)).unwrap_or("")
    }

    fn opt(&self, i: Option<usize>) -> Option<&str> {
        Some(self.get(i)).filter(|s| !s.is_empty())
    }

    fn plan(&self, c: Columns) -> &str {
        self.get(Some(c.plan))
    }

    fn fingerprint(&self, c: Columns) -> i64 {
        let mut h = rustc_hash::FxHasher::default();
        for i in [Some(c.start), c.end, c.edt, c.office, c.local_ref, c.edd] {
            self.get(i).hash(&mut h);
        }
        h.finish() as i64
    }
}

const VERSIONS: &str = "CREATE TABLE record_versions (
    id INTEGER PRIMARY KEY, la_code INTEGER NOT NULL, nhs INTEGER NOT NULL,
    plan_type TEXT NOT NULL, start_date TEXT NOT NULL, end_date TEXT, edt_phone TEXT NOT NULL,
    office_phone TEXT NOT NULL, local_ref TEXT, expected_delivery TEXT, change TEXT NOT NULL,
    file_id INTEGER NOT NULL, known_from TEXT NOT NULL, previous INTEGER)";

fn read(files: &[String]) -> Result<(Vec<Row>, Columns)> {
    let mut rows = Vec::new();
    let mut columns = None;
    for file in files {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(file)
            .with_context(|| format!("cannot read {file}"))?;
        let header = reader.headers()?.clone();
        let col = |name: &str| header.iter().position(|h| h == name);
        let (Some(nhs), Some(plan), Some(start), Some(la)) = (
            col("nhs_number"),
            col("plan_type"),
            col("start_date"),
            col("la_code"),
        ) else {
            bail!("{file}: not an extract");
        };
        let c = Columns {
            plan,
            start,
            end: col("end_date"),
            edt: col("edt_phone"),
            office: col("office_phone"),
            local_ref: col("local_ref"),
            edd: col("expected_delivery_date"),
        };
        columns = Some(c);
        for record in reader.records() {
            let record = record?;
            let number = |i: usize| -> i64 {
                record
                    .get(i)
                    .unwrap_or("")
                    .bytes()
                    .filter(u8::is_ascii_digit)
                    .fold(0, |n, d| n * 10 + i64::from(d - b'0'))
            };
            rows.push(Row {
                la: number(la),
                nhs: number(nhs),
                record,
            });
        }
    }
    let Some(c) = columns else {
        bail!("no files");
    };
    rows.sort_unstable_by(|a, b| (a.la, a.nhs, a.plan(c)).cmp(&(b.la, b.nhs, b.plan(c))));
    Ok((rows, c))
}

fn sqlite(path: &str, rows: &[Row], c: Columns, now: &str) -> Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
    conn.execute_batch(&format!(
        "{VERSIONS};
         CREATE TABLE records (la_code INTEGER NOT NULL, nhs INTEGER NOT NULL,
            plan_type TEXT NOT NULL, version INTEGER NOT NULL, open INTEGER NOT NULL,
            fingerprint INTEGER NOT NULL, PRIMARY KEY (la_code, nhs, plan_type)) WITHOUT ROWID;
         CREATE INDEX records_by_nhs ON records (nhs);"
    ))?;
    let tx = conn.transaction()?;
    {
        let mut versions = tx.prepare(
            "INSERT INTO record_versions (id, la_code, nhs, plan_type, start_date, end_date,
                edt_phone, office_phone, local_ref, expected_delivery, change, file_id, known_from,
                previous) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'new', 1, ?11, NULL)",
        )?;
        let mut records = tx.prepare(
            "INSERT INTO records (la_code, nhs, plan_type, version, open, fingerprint)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (id, r) in (1i64..).zip(rows) {
            versions.execute(rusqlite::params![
                id,
                r.la,
                r.nhs,
                r.plan(c),
                r.get(Some(c.start)),
                r.opt(c.end),
                r.get(c.edt),
                r.get(c.office),
                r.opt(c.local_ref),
                r.opt(c.edd),
                now
            ])?;
        }
        for (id, r) in (1i64..).zip(rows) {
            records.execute(rusqlite::params![
                r.la,
                r.nhs,
                r.plan(c),
                id,
                r.opt(c.end).is_none(),
                r.fingerprint(c)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A field for `COPY ... FROM STDIN` text format.
fn field(line: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => line.extend_from_slice(b"\\N"),
        Some(v) => {
            for b in v.bytes() {
                match b {
                    b'\\' => line.extend_from_slice(b"\\\\"),
                    b'\t' => line.extend_from_slice(b"\\t"),
                    b'\n' => line.extend_from_slice(b"\\n"),
                    b'\r' => line.extend_from_slice(b"\\r"),
                    _ => line.push(b),
                }
            }
        }
    }
}

fn postgres(url: &str, rows: &[Row], c: Columns, now: &str) -> Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(
        &VERSIONS
            .replace("INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY")
            .replace("INTEGER", "BIGINT"),
    )?;
    client.batch_execute(
        "CREATE TABLE records (la_code BIGINT NOT NULL, nhs BIGINT NOT NULL,
            plan_type TEXT NOT NULL, version BIGINT NOT NULL,
            open BIGINT NOT NULL, fingerprint BIGINT NOT NULL, PRIMARY KEY (la_code, nhs, plan_type));
         CREATE INDEX records_by_nhs ON records (nhs);",
    )?;
    let mut tx = client.transaction()?;
    let mut line = Vec::with_capacity(256);
    let mut writer = tx.copy_in(
        "COPY record_versions (id, la_code, nhs, plan_type, start_date, end_date, edt_phone,
            office_phone, local_ref, expected_delivery, change, file_id, known_from, previous)
         FROM STDIN",
    )?;
    for (id, r) in (1i64..).zip(rows) {
        line.clear();
        let (id, la, nhs) = (id.to_string(), r.la.to_string(), r.nhs.to_string());
        let cols = [
            Some(id.as_str()),
            Some(&la),
            Some(&nhs),
            Some(r.plan(c)),
            Some(r.get(Some(c.start))),
            r.opt(c.end),
            Some(r.get(c.edt)),
            Some(r.get(c.office)),
            r.opt(c.local_ref),
            r.opt(c.edd),
            Some("new"),
            Some("1"),
            Some(now),
            None,
        ];
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                line.push(b'\t');
            }
            field(&mut line, *c);
        }
        line.push(b'\n');
        writer.write_all(&line)?;
    }
    writer.finish()?;
    let mut writer = tx
        .copy_in("COPY records (la_code, nhs, plan_type, version, open, fingerprint) FROM STDIN")?;
    for (id, r) in (1i64..).zip(rows) {
        writeln!(
            writer,
            "{}\t{}\t{}\t{id}\t{}\t{}",
            r.la,
            r.nhs,
            r.plan(c),
            i64::from(r.opt(c.end).is_none()),
            r.fingerprint(c)
        )?;
    }
    writer.finish()?;
    tx.commit()?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, target, files @ ..] = args.as_slice() else {
        bail!("usage: bare_store sqlite|postgres DB|URL FILE...");
    };
    let start = Instant::now();
    let (rows, columns) = read(files)?;
    let read_s = start.elapsed().as_secs_f64();
    let now = "2026-11-21T03:00:00.000Z";
    match backend.as_str() {
        "sqlite" => sqlite(target, &rows, columns, now)?,
        "postgres" => postgres(target, &rows, columns, now)?,
        other => bail!("unknown backend {other:?}"),
    }
    let total = start.elapsed().as_secs_f64();
    println!(
        "{} rows in {total:.3} s (read and sort {read_s:.3} s, insert and commit {:.3} s)",
        rows.len(),
        total - read_s
    );
    Ok(())
}
