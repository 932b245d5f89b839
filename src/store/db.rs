//! One connection to the store, SQLite or PostgreSQL, and the few calls the store's
//! statements need: read rows, run a statement, insert returning an id, a write
//! transaction, and two bulk writes (ids taken at once, many rows inserted).
//!
//! Every statement is written once, in SQLite's SQL with `?N` parameters; `dialect::pg_sql` gives
//! PostgreSQL's: `$N`, SQLite's JSON functions over the stored reports as jsonb ones, the
//! database clock. What the two really do differently is inside this module (a bulk insert
//! is one prepared statement on SQLite, one `COPY` on PostgreSQL). Parameters are bound
//! borrowed ([`Arg`]); values come back as [`Value`]: integers, text, reals and NULL, which
//! is all the schema holds (flags are integers 0/1 on both, timestamps RFC 3339 text).
//!
//! A write transaction holds the store's write lock from its first statement, as SQLite's
//! `BEGIN IMMEDIATE` does: on PostgreSQL a transaction-scoped advisory lock, so gateway
//! nodes write one at a time exactly as processes do on one SQLite file. Reads take no lock.

use super::dialect::pg_sql;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// A parameter as bound: borrowed, so binding text copies nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

/// Something that can be bound as a parameter.
pub trait Param {
    fn value(&self) -> Arg<'_>;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Arg<'_> {
                Arg::Int(*self as i64)
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8, usize, u64);

impl Param for bool {
    fn value(&self) -> Arg<'_> {
        Arg::Int(i64::from(*self))
    }
}

impl Param for f64 {
    fn value(&self) -> Arg<'_> {
        Arg::Real(*self)
    }
}

impl Param for str {
    fn value(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl Param for String {
    fn value(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Arg<'_> {
        (**self).value()
    }
}

impl Param for Arg<'_> {
    fn value(&self) -> Arg<'_> {
        *self
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Arg<'_> {
        self.as_ref().map_or(Arg::Null, Param::value)
    }
}

/// The parameters of a statement: `args![a, b]`.
macro_rules! args {
    ($($x:expr),* $(,)?) => {
        &[$(&$x as &dyn $crate::store::db::Param),*] as &[&dyn $crate::store::db::Param]
    };
}
pub(crate) use args;

/// A value read from a row, converted to what the caller asked for.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Int(i) => Ok(*i),
            other => bail!("expected an integer, found {other:?}"),
        }
    }
}

macro_rules! narrow {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| anyhow!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrow!(u16, u32, u64);

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => bail!("expected text, found {other:?}"),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| anyhow!("the statement has no column {i}"))?;
        T::from_value(v).with_context(|| format!("column {i}"))
    }

    /// The value as text whatever its type (NULL as `None`), for digests and copies.
    pub fn text(&self, i: usize) -> Option<String> {
        match self.0.get(i)? {
            Value::Null => None,
            Value::Int(n) => Some(n.to_string()),
            Value::Real(r) => Some(r.to_string()),
            Value::Text(s) => Some(s.clone()),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Null => ValueRef::Null,
            Arg::Int(i) => ValueRef::Integer(i),
            Arg::Real(r) => ValueRef::Real(r),
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

impl postgres::types::ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::Type;
        match self {
            Arg::Null => Ok(postgres::types::IsNull::Yes),
            Arg::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
            Arg::Real(r) => r.to_sql(ty, out),
            Arg::Text(s) => s.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A value in `COPY`'s text format: `\N` for NULL; backslash, tab, newline and carriage
/// return escaped.
pub fn copy_text(out: &mut Vec<u8>, v: &Arg<'_>) {
    match *v {
        Arg::Null => out.extend_from_slice(b"\\N"),
        Arg::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Arg::Real(r) => out.extend_from_slice(r.to_string().as_bytes()),
        Arg::Text(s) => {
            for b in s.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b => out.push(b),
                }
            }
        }
    }
}

/// Below this many rows, [`Tx::insert_rows`] sends them to PostgreSQL as JSON, not `COPY`.
/// `COPY`'s two extra round trips cost about 0.25 ms; JSON cost 4.5 µs a row more than
/// `COPY` when each row was built as a map (a national first load's files of 980 rows:
/// 4.44 s against 3.08 s), less now it is written directly: `COPY` pays from somewhere
/// above 55 rows.
const ROWS_AS_JSON: usize = 100;

/// Rows as a JSON array of objects keyed by column (for `json_populate_recordset`, which
/// reads each value as text into its column's type, as `COPY` does).
fn json_rows(columns: &[&str], rows: &[Vec<Arg<'_>>]) -> String {
    // Each column's key, quoted once.
    let keys: Vec<String> = columns
        .iter()
        .map(|c| format!("{}:", serde_json::Value::from(*c)))
        .collect();
    let mut out = String::from("[");
    for (i, row) in rows.iter().enumerate() {
        out.push_str(if i == 0 { "{" } else { ",{" });
        for (j, (key, value)) in keys.iter().zip(row).enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(key);
            match *value {
                Arg::Null => out.push_str("null"),
                Arg::Int(n) => out.push_str(&n.to_string()),
                // JSON has no NaN nor infinities: as text, which a float column reads.
                Arg::Real(r) if r.is_nan() => out.push_str("\"NaN\""),
                Arg::Real(r) if r.is_infinite() => out.push_str(if r > 0.0 {
                    "\"Infinity\""
                } else {
                    "\"-Infinity\""
                }),
                Arg::Real(r) => out.push_str(&serde_json::Value::from(r).to_string()),
                Arg::Text(t) => out.push_str(&serde_json::Value::from(t).to_string()),
            }
        }
        out.push('}');
    }
    out.push(']');
    out
}

fn sqlite_row(r: &rusqlite::Row<'_>, n: usize) -> Result<Row> {
    use rusqlite::types::ValueRef;
    (0..n)
        .map(|i| {
            Ok(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Int(i),
                ValueRef::Real(r) => Value::Real(r),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Value::Text(String::from_utf8_lossy(t).into_owned())
                }
            })
        })
        .collect::<Result<_>>()
        .map(Row)
}

fn pg_row(r: &postgres::Row) -> Result<Row> {
    use postgres::types::Type;
    r.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = match *c.type_() {
                Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(|v| Value::Int(v.into())),
                Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(|v| Value::Int(v.into())),
                Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(|v| Value::Int(v.into())),
                Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
                Type::FLOAT4 => r
                    .try_get::<_, Option<f32>>(i)?
                    .map(|v| Value::Real(v.into())),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    r.try_get::<_, Option<String>>(i)?.map(Value::Text)
                }
                ref other => bail!(
                    "column {} is of type {other}, which the store does not read (cast it to BIGINT or TEXT)",
                    c.name()
                ),
            };
            Ok(v.unwrap_or(Value::Null))
        })
        .collect::<Result<_>>()
        .map(Row)
}

/// The advisory lock every PostgreSQL write transaction takes (the store's write lock).
const WRITE_LOCK: i64 = 0x4350_4953_5752; // "CPISWR"

/// A PostgreSQL connection with its prepared statements, connected again when the server
/// went away (restarted, or the network dropped): the next statement after a failure opens
/// a new connection, so a node goes on once the server is back.
pub struct Pg {
    pub(crate) client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    target: super::Target,
}

impl Pg {
    pub fn connect(target: &super::Target) -> Result<Pg> {
        Ok(Pg {
            client: target.connect(target.config())?,
            statements: HashMap::new(),
            target: target.clone(),
        })
    }

    /// Connects again if the connection was lost.
    fn ready(&mut self) -> Result<&mut Pg> {
        if self.client.is_closed() {
            tracing::warn!(store = %self.target.shown(), "the connection to PostgreSQL was lost: connecting again");
            *self = Pg::connect(&self.target)?;
        }
        Ok(self)
    }
}

fn prepared<'a>(
    statements: &'a mut HashMap<String, postgres::Statement>,
    client: &mut impl postgres::GenericClient,
    sql: &str,
) -> Result<&'a postgres::Statement> {
    if !statements.contains_key(sql) {
        let stmt = client
            .prepare(&pg_sql(sql))
            .with_context(|| format!("PostgreSQL refused the statement: {}", one_line(sql)))?;
        statements.insert(sql.to_owned(), stmt);
    }
    Ok(&statements[sql])
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn pg_each(
    statements: &mut HashMap<String, postgres::Statement>,
    client: &mut impl postgres::GenericClient,
    sql: &str,
    args: &[&dyn Param],
    f: &mut dyn FnMut(&Row) -> Result<()>,
) -> Result<()> {
    use postgres::fallible_iterator::FallibleIterator;
    let stmt = prepared(statements, client, sql)?.clone();
    let values: Vec<Arg<'_>> = args.iter().map(|a| a.value()).collect();
    let mut rows = client
        .query_raw(&stmt, values.iter())
        .with_context(|| format!("PostgreSQL: {}", one_line(sql)))?;
    while let Some(r) = rows.next()? {
        f(&pg_row(&r)?)?;
    }
    Ok(())
}

fn pg_execute(
    statements: &mut HashMap<String, postgres::Statement>,
    client: &mut impl postgres::GenericClient,
    sql: &str,
    args: &[&dyn Param],
) -> Result<u64> {
    let stmt = prepared(statements, client, sql)?.clone();
    let values: Vec<Arg<'_>> = args.iter().map(|a| a.value()).collect();
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect();
    client
        .execute(&stmt, &refs)
        .with_context(|| format!("PostgreSQL: {}", one_line(sql)))
}

fn sqlite_each(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn Param],
    f: &mut dyn FnMut(&Row) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql)?;
    let n = stmt.column_count();
    let values: Vec<Arg<'_>> = args.iter().map(|a| a.value()).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
    while let Some(r) = rows.next()? {
        f(&sqlite_row(r, n)?)?;
    }
    Ok(())
}

fn sqlite_execute(conn: &rusqlite::Connection, sql: &str, args: &[&dyn Param]) -> Result<u64> {
    let values: Vec<Arg<'_>> = args.iter().map(|a| a.value()).collect();
    Ok(conn
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(values.iter()))? as u64)
}

/// Statements, on a connection or inside a transaction.
pub trait Sql {
    /// Runs `f` on each row, as they come.
    fn each_row(
        &mut self,
        sql: &str,
        args: &[&dyn Param],
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<()>;

    /// Runs a statement that returns no rows; how many rows it changed.
    fn execute(&mut self, sql: &str, args: &[&dyn Param]) -> Result<u64>;

    /// Whether this is PostgreSQL (for the few statements written twice).
    fn is_pg(&self) -> bool;

    /// Every row.
    fn rows(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        self.each_row(sql, args, &mut |r| {
            out.push(r.clone());
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, if any.
    fn row(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Option<Row>> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }

    /// The first row, which must exist.
    fn one(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Row> {
        self.row(sql, args)?
            .ok_or_else(|| anyhow!("no row from: {}", one_line(sql)))
    }

    /// The first column of every row.
    fn column<T: FromValue>(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each_row(sql, args, &mut |r| {
            out.push(r.get(0)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first column of the first row, if there is a row.
    fn value<T: FromValue>(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Option<T>> {
        self.row(sql, args)?.map(|r| r.get(0)).transpose()
    }

    /// An `INSERT … RETURNING id`: the id.
    fn insert(&mut self, sql: &str, args: &[&dyn Param]) -> Result<i64> {
        self.one(sql, args)?.get(0)
    }
}

/// The store's connection.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Pg(Box<Pg>),
}

impl Db {
    /// Starts a write transaction (holding the store's write lock until it ends).
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        Ok(match self {
            Db::Sqlite(conn) => Tx::Sqlite(conn.transaction()?),
            Db::Pg(pg) => {
                let Pg {
                    client, statements, ..
                } = pg.ready()?;
                let mut tx = PgTx { client, open: true };
                // The transaction and its lock in one round trip.
                tx.batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
                ))?;
                Tx::Pg(tx, statements)
            }
        })
    }

    /// Runs statements with no parameters outside any transaction (what PostgreSQL will
    /// not run inside one, such as `VACUUM`).
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(conn) => conn.execute_batch(sql)?,
            Db::Pg(pg) => pg.ready()?.client.batch_execute(sql)?,
        }
        Ok(())
    }

    /// The SQLite connection (SQLite-only settings); `None` on PostgreSQL.
    pub fn sqlite(&mut self) -> Option<&mut rusqlite::Connection> {
        match self {
            Db::Sqlite(conn) => Some(conn),
            Db::Pg(_) => None,
        }
    }
}

impl Sql for Db {
    fn each_row(
        &mut self,
        sql: &str,
        args: &[&dyn Param],
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        match self {
            Db::Sqlite(conn) => sqlite_each(conn, sql, args, f),
            Db::Pg(pg) => {
                let pg = pg.ready()?;
                pg_each(&mut pg.statements, &mut pg.client, sql, args, f)
            }
        }
    }

    fn execute(&mut self, sql: &str, args: &[&dyn Param]) -> Result<u64> {
        match self {
            Db::Sqlite(conn) => sqlite_execute(conn, sql, args),
            Db::Pg(pg) => {
                let pg = pg.ready()?;
                pg_execute(&mut pg.statements, &mut pg.client, sql, args)
            }
        }
    }

    fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

/// Keys looked up by one `IN (...)` statement at most (far below both backends' limits
/// on parameters; a length [`padded`] leaves as it is).
pub const KEYS_PER_STATEMENT: usize = 512;

/// `values` for an `IN (...)` list, padded by repeating the last to the next power of two,
/// which changes no answer: lists of any length are then a few statement texts (ten up
/// to [`KEYS_PER_STATEMENT`]), each prepared once. PostgreSQL prepares each new text (a
/// round trip, a plan); a national refresh had 2 to 3 new ones a file.
pub fn padded<T: Clone>(values: &[T]) -> Vec<T> {
    let mut out = values.to_vec();
    if let Some(last) = values.last() {
        out.resize(values.len().next_power_of_two(), last.clone());
    }
    out
}

/// `n` parameter marks numbered from `first`, for an `IN (...)` list.
pub fn marks(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A write transaction: rolled back when dropped without [`Tx::commit`].
pub enum Tx<'a> {
    Sqlite(rusqlite::Transaction<'a>),
    Pg(PgTx<'a>, &'a mut HashMap<String, postgres::Statement>),
}

/// A PostgreSQL transaction on the connection, begun by us (the `postgres` crate's
/// `Transaction` sends its `BEGIN` alone: a round trip of its own for every file):
/// rolled back when dropped open.
pub struct PgTx<'a> {
    client: &'a mut postgres::Client,
    open: bool,
}

impl PgTx<'_> {
    fn commit(mut self) -> Result<()> {
        self.open = false;
        self.client.batch_execute("COMMIT")?;
        Ok(())
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // As the crate's own: a connection that is gone has nothing to roll back.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

impl std::ops::Deref for PgTx<'_> {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        self.client
    }
}

impl std::ops::DerefMut for PgTx<'_> {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.client
    }
}

/// A write transaction that must still hold its leases (and turns) when it commits.
pub struct Guarded<'a> {
    pub tx: Tx<'a>,
    pub guards: Vec<super::Guard>,
}

impl<'a> std::ops::Deref for Guarded<'a> {
    type Target = Tx<'a>;
    fn deref(&self) -> &Tx<'a> {
        &self.tx
    }
}

impl std::ops::DerefMut for Guarded<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Guarded<'_> {
    /// Commits, if nobody took its leases meanwhile (the work may have taken long, and
    /// another node may have taken one over meanwhile).
    pub fn commit(mut self) -> Result<()> {
        super::Guard::check_all(&self.guards, &mut self.tx)?;
        self.tx.commit()
    }
}

impl Tx<'_> {
    /// `n` fresh ids for `table`'s `id` column (none is handed out twice: the write lock
    /// is held, and on PostgreSQL they come from the column's sequence).
    pub fn allocate_ids(&mut self, table: &str, n: usize) -> Result<Vec<i64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        // The last of `n` ids taken at once (no one else takes any meanwhile: the write
        // lock is held, and every insert of a bulk-written table goes through here).
        let last: i64 = if self.is_pg() {
            self.value(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                         nextval(pg_get_serial_sequence('{table}', 'id')) + CAST(?1 AS BIGINT) - 1)"
                ),
                args![n as i64],
            )?
            .unwrap_or(0)
        } else {
            self.value::<i64>(
                &format!("SELECT coalesce(max(id), 0) FROM {table}"),
                args![],
            )?
            .unwrap_or(0)
                + n as i64
        };
        Ok((last - n as i64 + 1..=last).collect())
    }

    /// Inserts many rows into `table` (`columns` in order): on SQLite one prepared
    /// statement run for each, on PostgreSQL one `COPY` (a round trip for them all).
    pub fn insert_rows<'r>(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: impl Iterator<Item = Vec<Arg<'r>>>,
    ) -> Result<u64> {
        let mut rows = rows.peekable();
        if rows.peek().is_none() {
            return Ok(0);
        }
        let list = columns.join(", ");
        match self {
            Tx::Sqlite(tx) => {
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO {table} ({list}) VALUES ({})",
                    marks.join(", ")
                ))?;
                let mut n = 0;
                for row in rows {
                    n += stmt.execute(rusqlite::params_from_iter(row.iter()))? as u64;
                }
                Ok(n)
            }
            Tx::Pg(tx, statements) => {
                use std::io::Write;
                // A few rows go as one parameter of a prepared statement (one round trip);
                // `COPY` costs three (its statement, its start, its end) but is faster
                // row for row.
                let mut few = Vec::new();
                while few.len() < ROWS_AS_JSON {
                    match rows.next() {
                        Some(row) => few.push(row),
                        None => {
                            let sql = format!(
                                "INSERT INTO {table} ({list}) SELECT {list}
                                 FROM json_populate_recordset(CAST(NULL AS {table}), CAST(?1 AS json))"
                            );
                            let json = json_rows(columns, &few);
                            return pg_execute(statements, &mut **tx, &sql, args![json]);
                        }
                    }
                }
                let mut writer = tx
                    .copy_in(&format!("COPY {table} ({list}) FROM STDIN"))
                    .with_context(|| format!("cannot start copying into {table}"))?;
                let mut line = Vec::with_capacity(256);
                for row in few.into_iter().chain(rows) {
                    line.clear();
                    for (i, v) in row.iter().enumerate() {
                        if i > 0 {
                            line.push(b'\t');
                        }
                        copy_text(&mut line, v);
                    }
                    line.push(b'\n');
                    writer.write_all(&line)?;
                }
                Ok(writer
                    .finish()
                    .with_context(|| format!("copying into {table} failed"))?)
            }
        }
    }

    /// PostgreSQL only: a statement whose parameters [`Param`] does not carry (arrays, for
    /// `unnest`); how many rows it changed.
    pub fn execute_pg(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        match self {
            Tx::Pg(tx, statements) => {
                let stmt = prepared(statements, &mut **tx, sql)?.clone();
                tx.execute(&stmt, params)
                    .with_context(|| format!("PostgreSQL: {}", one_line(sql)))
            }
            Tx::Sqlite(_) => bail!("a PostgreSQL statement on an SQLite store"),
        }
    }

    /// Runs several statements (a migration) with no parameters.
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.execute_batch(sql)?,
            Tx::Pg(tx, _) => tx.batch_execute(sql)?,
        }
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit()?,
            Tx::Pg(tx, _) => tx.commit()?,
        }
        Ok(())
    }
}

impl Sql for Tx<'_> {
    fn each_row(
        &mut self,
        sql: &str,
        args: &[&dyn Param],
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => sqlite_each(tx, sql, args, f),
            Tx::Pg(tx, statements) => pg_each(statements, &mut **tx, sql, args, f),
        }
    }

    fn execute(&mut self, sql: &str, args: &[&dyn Param]) -> Result<u64> {
        match self {
            Tx::Sqlite(tx) => sqlite_execute(tx, sql, args),
            Tx::Pg(tx, statements) => pg_execute(statements, &mut **tx, sql, args),
        }
    }

    fn is_pg(&self) -> bool {
        matches!(self, Tx::Pg(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_as_json_keep_every_value_exactly() {
        let rows = vec![
            vec![
                Arg::Int(i64::MIN),
                Arg::Text("a \"quoted\"\n\\ line"),
                Arg::Null,
            ],
            vec![Arg::Int(7), Arg::Text(""), Arg::Real(0.5)],
            vec![Arg::Int(8), Arg::Text("x"), Arg::Real(f64::NAN)],
            vec![Arg::Int(9), Arg::Text("y"), Arg::Real(f64::NEG_INFINITY)],
        ];
        let json: serde_json::Value =
            serde_json::from_str(&json_rows(&["id", "text", "other"], &rows)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"id": i64::MIN, "text": "a \"quoted\"\n\\ line", "other": null},
                {"id": 7, "text": "", "other": 0.5},
                {"id": 8, "text": "x", "other": "NaN"},
                {"id": 9, "text": "y", "other": "-Infinity"}
            ])
        );
    }

    #[test]
    fn in_lists_are_padded_to_a_few_lengths_with_their_last_value() {
        assert_eq!(padded::<i64>(&[]), Vec::<i64>::new());
        assert_eq!(padded(&[1, 2, 3]), [1, 2, 3, 3]);
        let lengths: Vec<usize> = [1, 2, 5, 8, 9, 100, 500, KEYS_PER_STATEMENT]
            .iter()
            .map(|&n| padded(&(0..n).collect::<Vec<_>>()).len())
            .collect();
        assert_eq!(lengths, [1, 2, 8, 8, 16, 128, 512, KEYS_PER_STATEMENT]);
        // Nothing an `IN` list would answer changes: the same values, in their order.
        let values: Vec<i64> = (0..37).map(|i| i * 7 % 11).collect();
        let out = padded(&values);
        assert_eq!(out[..values.len()], values[..]);
        assert!(out[values.len()..].iter().all(|v| *v == values[36]));
    }

    #[test]
    fn parameters_and_rows_round_trip_on_sqlite() {
        let mut db = Db::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)",
            args![],
        )
        .unwrap();
        let none: Option<&str> = None;
        let id = db
            .insert(
                "INSERT INTO t (a, b) VALUES (?1, ?2) RETURNING id",
                args!["x", true],
            )
            .unwrap();
        db.insert(
            "INSERT INTO t (a, b) VALUES (?1, ?2) RETURNING id",
            args![none, 7u32],
        )
        .unwrap();
        let rows = db.rows("SELECT a, b FROM t ORDER BY id", args![]).unwrap();
        assert_eq!(id, 1);
        assert_eq!(rows[0].get::<String>(0).unwrap(), "x");
        assert!(rows[0].get::<bool>(1).unwrap());
        assert_eq!(rows[1].get::<Option<String>>(0).unwrap(), None);
        assert_eq!(rows[1].get::<u32>(1).unwrap(), 7);
        assert!(rows[1].get::<String>(1).is_err(), "an integer is not text");
        assert!(rows[0].get::<i64>(5).is_err(), "no such column");
    }
}
