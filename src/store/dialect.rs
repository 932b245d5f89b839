//! One statement text for both backends: the SQLite dialect every statement is written in,
//! turned into PostgreSQL's (`?N` → `$N`, SQLite's JSON functions over the stored reports
//! → `jsonb`, the database's clock).

/// A statement in PostgreSQL's dialect: `?N` → `$N` (no literal of ours holds a `?`), and
/// SQLite's JSON functions over the stored reports in PostgreSQL's (see [`pg_json`]).
pub fn pg_sql(sql: &str) -> String {
    pg_json(&sql.replace('?', "$"))
        .replace(NOW_MS, PG_NOW_MS)
        .replace(UNSYNCED, PG_UNSYNCED)
}

/// The database's clock in milliseconds since 1970 (SQLite's; PostgreSQL's is [`PG_NOW_MS`]).
pub const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
const PG_NOW_MS: &str = "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)";

/// A one-row source (`FROM {UNSYNCED}`) that makes the statement's own commit one that does
/// not wait for the disk, for a statement run on its own (autocommit): on PostgreSQL it
/// sets `synchronous_commit` off for that statement's transaction only; SQLite has nothing
/// to set (its durability is per connection, and leases on SQLite are the root's). Only for
/// writes whose loss in a crash of the database is harmless (see `store::leases`).
pub const UNSYNCED: &str = "(SELECT 1) AS unsynced";
const PG_UNSYNCED: &str = "(SELECT set_config('synchronous_commit', 'off', true)) AS unsynced";

/// SQLite's `json_extract(x, '$.a.b')` → `(x::jsonb #>> '{a,b}')` (text: a number is
/// asked for with `CAST(… AS INTEGER)`, which both read alike), `json_each(x, '$.a')` →
/// `jsonb_array_elements(x::jsonb #> '{a}')` (whose rows also have a `value` column), and
/// `group_concat` → `string_agg`.
pub fn pg_json(sql: &str) -> String {
    let sql = rewrite_calls(sql, "json_extract(", |x, path| {
        format!("({x}::jsonb #>> '{{{path}}}')")
    });
    let sql = rewrite_calls(&sql, "json_each(", |x, path| {
        format!("jsonb_array_elements({x}::jsonb #> '{{{path}}}')")
    });
    sql.replace("group_concat(", "string_agg(")
}

/// Rewrites each `name(x, '$.a.b')` with `to(x, "a,b")`.
fn rewrite_calls(sql: &str, name: &str, to: impl Fn(&str, &str) -> String) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(start) = rest.find(name) {
        out.push_str(&rest[..start]);
        let args = &rest[start + name.len()..];
        let mut depth = 0usize;
        let mut end = None;
        let mut comma = None;
        for (i, c) in args.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                ')' => depth -= 1,
                ',' if depth == 0 => comma = Some(i),
                _ => {}
            }
        }
        let (Some(end), Some(comma)) = (end, comma) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let x = args[..comma].trim();
        let path = args[comma + 1..end]
            .trim()
            .trim_matches('\'')
            .trim_start_matches('$')
            .trim_start_matches('.')
            .replace('.', ",");
        out.push_str(&to(x, &path));
        rest = &args[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_json_becomes_postgres_json() {
        assert_eq!(
            pg_sql(
                "SELECT group_concat(json_extract(e.value, '$.code'), ','), \
                 sum(CAST(json_extract(report, '$.changes.new') AS INTEGER)) \
                 FROM files f, json_each(f.report, '$.row_errors') e WHERE f.id = ?1"
            ),
            "SELECT string_agg((e.value::jsonb #>> '{code}'), ','), \
             sum(CAST((report::jsonb #>> '{changes,new}') AS INTEGER)) \
             FROM files f, jsonb_array_elements(f.report::jsonb #> '{row_errors}') e WHERE f.id = $1"
        );
        assert_eq!(
            pg_json("SELECT json_extract(broken"),
            "SELECT json_extract(broken"
        );
    }

    #[test]
    fn an_unsynced_statement_sets_synchronous_commit_off_on_postgres_only() {
        let sql = format!("UPDATE leases SET expires_ms = 0 FROM {UNSYNCED} WHERE name = ?1");
        assert_eq!(
            pg_sql(&sql),
            "UPDATE leases SET expires_ms = 0 FROM \
             (SELECT set_config('synchronous_commit', 'off', true)) AS unsynced WHERE name = $1"
        );
    }

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            pg_sql("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
    }
}
