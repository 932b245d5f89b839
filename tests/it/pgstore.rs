//! `store copy` into a real PostgreSQL server (Debian's `postgresql`), started by each test
//! in a temporary folder on a free 127.0.0.1 port and stopped after it: a store built from
//! the samples is copied and verified, a second copy is refused, PostgreSQL's triggers keep
//! the history append-only, and a store whose access log was tampered with is not copied.
//! A bulk load leaves the planner statistics the store's statements read by.

use crate::backend::Postgres;
use crate::daemon::Root;
use crate::helpers::*;
use std::fs;
use std::process::Command;

/// A root with the samples processed and one look-up in the access log.
fn sample_store() -> Root {
    let root = Root::new(100);
    for f in fs::read_dir(samples()).unwrap().flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        if let Some(la) = name.strip_prefix("CPIS_EXTRACT_").and_then(|r| r.get(..3)) {
            fs::copy(f.path(), root.inbox(&format!("LA{la}")).join(&name)).unwrap();
        }
    }
    assert_ok(&root.run_once());
    let query = gateway(root.path())
        .args([
            "query",
            "9990000018",
            "--org",
            "RWG",
            "--user",
            "Dr A",
            "--role",
            "Doctor",
            "--setting",
            "ED",
        ])
        .output()
        .unwrap();
    assert_ok(&query);
    root
}

/// What `sqlite3` prints for `sql` on the root's SQLite store.
fn sqlite_value(root: &Root, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(root.path().join("var/store/cpis.sqlite"))
        .arg(sql)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn sqlite_count(root: &Root, table: &str) -> String {
    sqlite_value(root, &format!("SELECT count(*) FROM {table}"))
}

#[test]
fn store_copy_moves_a_store_into_postgres_verified_once() {
    let pg = Postgres::start();
    let root = sample_store();
    let out = gateway(root.path())
        .args(["store", "copy", "--to", &pg.url()])
        .output()
        .unwrap();
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("copied and verified: 22 tables"),
        "{stdout}"
    );
    for table in [
        "files",
        "record_versions",
        "records",
        "access_log",
        "notifications",
    ] {
        let n = sqlite_count(&root, table);
        assert_ne!(n, "0", "{table} has rows to copy");
        assert_eq!(
            pg.query(&format!("SELECT count(*) FROM {table}")),
            n,
            "{table}"
        );
    }
    // At the schema the SQLite store was at (both apply every migration).
    assert_eq!(
        pg.query("SELECT version FROM schema_version"),
        sqlite_value(&root, "PRAGMA user_version")
    );
    // The same history, hash chain and all.
    assert_eq!(
        pg.query("SELECT string_agg(hash, ',' ORDER BY id) FROM access_log"),
        sqlite_value(
            &root,
            "SELECT group_concat(hash, ',') FROM (SELECT hash FROM access_log ORDER BY id)"
        )
    );
    // PostgreSQL keeps the history and the log append-only too.
    assert!(pg
        .query("UPDATE record_versions SET change = 'x'")
        .contains("record history is append-only"));
    assert!(pg
        .query("DELETE FROM access_log")
        .contains("the access log is append-only"));
    // New rows get new ids after the copied ones.
    assert_eq!(
        pg.query(
            "SELECT nextval(pg_get_serial_sequence('files', 'id')) > (SELECT max(id) FROM files)"
        ),
        "t"
    );
    // A second copy is refused: the target is not empty.
    let again = gateway(root.path())
        .args(["store", "copy", "--to", &pg.url()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("the target database is not empty"));
}

#[test]
fn a_store_whose_access_log_was_altered_is_not_copied() {
    let pg = Postgres::start();
    let root = sample_store();
    let tamper = Command::new("sqlite3")
        .arg(root.path().join("var/store/cpis.sqlite"))
        .arg("DROP TRIGGER access_log_no_update; UPDATE access_log SET user_name = 'someone else' WHERE id = 1;")
        .status()
        .unwrap();
    assert!(tamper.success());
    let out = gateway(root.path())
        .args(["store", "copy", "--to", &pg.url()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the access log does not verify (entry 1)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"),
        "0",
        "nothing was created"
    );
}

#[test]
fn a_copied_store_answers_query_and_status_as_the_original() {
    let pg = Postgres::start();
    let root = sample_store();
    assert_ok(
        &gateway(root.path())
            .args(["store", "copy", "--to", &pg.url()])
            .output()
            .unwrap(),
    );
    // The same root, once on its SQLite store and once on the copy.
    let on = |postgres: bool, args: &[&str]| {
        let mut cmd = gateway(root.path());
        if postgres {
            cmd.env("CPIS_GATEWAY_STORE_URL", pg.url());
        }
        let out = cmd.args(args).output().unwrap();
        assert_ok(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    let status = |postgres: bool| {
        let mut v: serde_json::Value =
            serde_json::from_str(&on(postgres, &["status", "--format", "json"])).unwrap();
        assert_eq!(
            v["store"]["backend"],
            if postgres { "postgres" } else { "sqlite" }
        );
        v.as_object_mut().unwrap().remove("store");
        v
    };
    assert_eq!(status(false), status(true));
    let query = [
        "query",
        "9990000018",
        "--org",
        "RWG",
        "--user",
        "Dr B",
        "--role",
        "Doctor",
        "--setting",
        "ED",
        "--format",
        "json",
    ];
    let (sqlite, postgres) = (on(false, &query), on(true, &query));
    assert!(sqlite.contains("9990000018"), "{sqlite}");
    assert_eq!(sqlite, postgres);
    // Both logged the look-up alike: the same chain head.
    assert_eq!(status(false), status(true));
    assert_eq!(
        on(false, &["audit", "verify"]),
        on(true, &["audit", "verify"])
    );
}

/// Runs `status` on `root` with the store at `url`: (exit code, stderr).
fn status_on(root: &Root, url: &str) -> (i32, String) {
    let out = gateway(root.path())
        .env("CPIS_GATEWAY_STORE_URL", url)
        .arg("status")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_store_connection_is_encrypted_and_its_certificate_checked() {
    // The server's certificate names db.example, not the address the gateway dials.
    let pki = Pki::new("db.example", "postgres");
    let other = Pki::new("db.example", "postgres");
    let pg = Postgres::start_tls(&pki);
    assert_eq!(pg.psql("postgres", "CREATE DATABASE certdb"), "");
    let root = Root::new(100);
    fs::create_dir_all(root.path().join("var")).unwrap();
    let url =
        |db: &str, query: String| format!("postgres://postgres@127.0.0.1:{}/{db}?{query}", pg.port);
    let ca = |p: &Pki| format!("sslrootcert={}", p.path("ca.pem"));
    let ok = |u: String| {
        let (code, err) = status_on(&root, &u);
        assert_eq!(code, 0, "{u}: {err}");
    };
    let refused = |u: String, why: &str| {
        let (code, err) = status_on(&root, &u);
        assert_eq!(code, 2, "{u}");
        assert!(
            err.to_lowercase().contains(why),
            "{u}: {why:?} not in {err}"
        );
    };
    // In clear: the server refuses (the default on a loopback address is clear text).
    refused(url("postgres", String::new()), "no encryption");
    refused(url("postgres", "sslmode=disable".into()), "no encryption");
    // The right CA: accepted by verify-ca; verify-full wants the name too.
    ok(url("postgres", format!("sslmode=verify-ca&{}", ca(&pki))));
    refused(
        url("postgres", format!("sslmode=verify-full&{}", ca(&pki))),
        "certificate",
    );
    // Another CA: refused however it is asked.
    refused(
        url("postgres", format!("sslmode=verify-ca&{}", ca(&other))),
        "certificate",
    );
    // require without a CA (libpq's meaning): encrypted, unchecked.
    ok(url("postgres", "sslmode=require".into()));
    // A database that wants a client certificate: without one refused, with one accepted.
    refused(
        url("certdb", format!("sslmode=verify-ca&{}", ca(&pki))),
        "certificate",
    );
    ok(url(
        "certdb",
        format!(
            "sslmode=verify-ca&{}&sslcert={}&sslkey={}",
            ca(&pki),
            pki.path("client.pem"),
            pki.path("client.key")
        ),
    ));
    // A name off this machine needs verification by default.
    refused(
        format!("postgres://postgres@db.example:{}/postgres", pg.port),
        "sslrootcert",
    );
}

#[test]
fn the_store_password_is_never_shown_nor_put_on_a_command_line() {
    let pg = Postgres::start();
    let root = sample_store();
    // A password with a '?' in it, to a server that is not there.
    let (code, err) = status_on(&root, "postgres://cpis:pa?ss-s3cret@127.0.0.1:1/cpis");
    assert_eq!(code, 2);
    assert!(err.contains("postgres://cpis@127.0.0.1:1/cpis"), "{err}");
    assert!(!err.contains("s3cret") && !err.contains("pa?"), "{err}");
    // store copy refuses a password on its command line (every local user sees it in ps)...
    let with_password = format!("postgres://postgres:s3cret@127.0.0.1:{}/postgres", pg.port);
    let out = gateway(root.path())
        .args(["store", "copy", "--to", &with_password])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CPIS_GATEWAY_COPY_TO"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert_eq!(
        pg.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"),
        "0"
    );
    // ... and takes it from a file, or from the environment.
    let file = root.path().join("target-url");
    fs::write(&file, format!("{with_password}\n")).unwrap();
    let out = gateway(root.path())
        .args(["store", "copy", "--to-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("s3cret"), "{stdout}");
    let again = gateway(root.path())
        .env("CPIS_GATEWAY_COPY_TO", &with_password)
        .args(["store", "copy"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("the target database is not empty"));
}

/// After a bulk load the store analyzes what it wrote itself (`store/statistics.rs`):
/// `records` whole, the history only by the columns statements read it by,
/// and the planner then knows each table's size.
#[test]
fn a_bulk_load_leaves_the_planner_statistics_it_reads_by() {
    let pg = Postgres::start();
    let root = Root::new(0);
    let on_pg = |args: &[&str]| {
        let out = gateway(root.path())
            .env("CPIS_GATEWAY_STORE_URL", pg.url())
            .args(args)
            .output()
            .unwrap();
        assert_ok(&out);
    };
    on_pg(&["init"]);
    // Only the store's own analyses: autovacuum would analyze these whole, when it wakes.
    assert_eq!(
        pg.query(
            "ALTER TABLE records SET (autovacuum_enabled = false);
             ALTER TABLE record_versions SET (autovacuum_enabled = false)"
        ),
        ""
    );
    // Fewer rows than an analysis samples (30,000), so the planner's counts are exact.
    gen_extract(
        &root.inbox("LA919"),
        &["--la", "919", "--rows", "25000", "--at", "20261121T020000"],
    );
    on_pg(&["run", "--once"]);
    // Past the rows written before a first analysis (20,000), whatever `gen` left invalid.
    let held: i64 = pg.query("SELECT count(*) FROM records").parse().unwrap();
    assert!(held > 20_000, "{held}");
    assert_eq!(
        pg.query(
            "SELECT string_agg(attname, ',' ORDER BY attname) FROM pg_stats
             WHERE tablename = 'record_versions'"
        ),
        "end_date,expected_delivery,id,known_from,plan_type,previous"
    );
    assert_eq!(
        pg.query(
            "SELECT string_agg(attname, ',' ORDER BY attname) FROM pg_stats
             WHERE tablename = 'records'"
        ),
        "end_date,fingerprint,la_code,nhs,open,plan_type,version"
    );
    // (Those of `gen`'s records that ended long ago are kept cold, out of `records`.)
    for table in ["records", "record_versions"] {
        assert_eq!(
            pg.query(&format!(
                "SELECT CAST(reltuples AS BIGINT) FROM pg_class WHERE relname = '{table}'"
            )),
            pg.query(&format!("SELECT count(*) FROM {table}")),
            "{table}"
        );
    }
}

/// Records moved out cold by the thousand leave `records` mostly empty pages, which every
/// read of the open records would go through: the store rewrites the table then
/// (`store/statistics.rs`), so it stays the size of what is hot.
#[test]
fn a_table_most_of_whose_rows_went_cold_is_rewritten() {
    let pg = Postgres::start();
    let root = Root::with(0, "max_closure_share = 1.0");
    let on_pg = |now: &str, args: &[&str]| {
        let out = gateway(root.path())
            .env("CPIS_GATEWAY_STORE_URL", pg.url())
            .env("CPIS_GATEWAY_NOW", now)
            .args(args)
            .output()
            .unwrap();
        assert_ok(&out);
    };
    let extract = |rows: &str, at: &str| {
        gen_extract(
            &root.inbox("LA919"),
            &["--la", "919", "--rows", rows, "--at", at],
        );
    };
    on_pg("2024-09-10T03:00:00Z", &["init"]);
    // 2024: 30,000 children; 2025: a list of 100, the others closed by absence.
    extract("30000", "20240910T020000");
    on_pg("2024-09-10T03:00:00Z", &["run", "--once"]);
    extract("100", "20251010T020000");
    on_pg("2025-10-10T03:00:00Z", &["run", "--once"]);
    let size = || -> i64 {
        pg.query("SELECT pg_relation_size('records')")
            .parse()
            .unwrap()
    };
    let before = size();
    // 2026: those closed more than a year ago go cold, all in this one file.
    extract("100", "20261120T020000");
    on_pg("2026-11-20T03:00:00Z", &["run", "--once"]);
    let cold: i64 = pg
        .query("SELECT count(*) FROM records_cold")
        .parse()
        .unwrap();
    assert!(cold > 25_000, "{cold}");
    let after = size();
    assert!(
        after * 20 < before,
        "records: {before} bytes before, {after} after"
    );
    // What is left is what is hot: open, or ended within the year a look-up shows.
    assert_eq!(
        pg.query("SELECT count(*) FROM records"),
        pg.query("SELECT count(*) FROM records WHERE open = 1 OR end_date >= '2025-11-01'")
    );
}
