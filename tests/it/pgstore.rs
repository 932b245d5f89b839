//! `store copy` into a real PostgreSQL server (Debian's `postgresql`), started by each test
//! in a temporary folder on a free 127.0.0.1 port and stopped after it: a store built from
//! the samples is copied and verified, a second copy is refused, PostgreSQL's triggers keep
//! the history append-only, and a store whose access log was tampered with is not copied.

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

fn sqlite_count(root: &Root, table: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(root.path().join("var/store/cpis.sqlite"))
        .arg(format!("SELECT count(*) FROM {table}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
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
        stdout.contains("copied and verified: 18 tables"),
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
    assert_eq!(pg.query("SELECT version FROM schema_version"), "10");
    // The same history, hash chain and all.
    let chain = "SELECT string_agg(hash, ',' ORDER BY id) FROM access_log";
    let sqlite_chain = Command::new("sqlite3")
        .arg(root.path().join("var/store/cpis.sqlite"))
        .arg("SELECT group_concat(hash, ',') FROM (SELECT hash FROM access_log ORDER BY id)")
        .output()
        .unwrap();
    assert_eq!(
        pg.query(chain),
        String::from_utf8_lossy(&sqlite_chain.stdout).trim()
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
