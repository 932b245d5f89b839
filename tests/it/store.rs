//! Store and reconciliation: `ingest`, acknowledgements, history, quarantine, replay, status,
//! run through the real binary against a real SQLite file.

use crate::backend;
use crate::helpers::*;
use cpis_gateway::core::nhs::NhsNumber;
use cpis_gateway::store::{Location, Store};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// A working folder with a config, and helpers to write extracts and run commands.
struct Work {
    dir: tempfile::TempDir,
}

/// The i-th valid 999-range NHS number.
fn nhs(i: u64) -> String {
    test_nhs(999_100_000, i)
}

const HEADER: &str =
    "nhs_number,plan_type,start_date,end_date,la_code,edt_phone,office_phone,local_ref";

/// One CSV row: child i, plan, start, end, LA, EDT phone, local ref.
fn row(i: u64, plan: &str, start: &str, end: &str, la: &str, edt: &str, local_ref: &str) -> String {
    format!(
        "{},{plan},{start},{end},{la},{edt},01632 960999,{local_ref}",
        nhs(i)
    )
}

impl Work {
    fn new() -> Work {
        let dir = temp();
        fs::write(
            dir.path().join("config.toml"),
            "[gateway]\nlocal_authorities = [\"919\", \"202\"]\n",
        )
        .unwrap();
        Work { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes an extract under drop/ and returns its path.
    fn extract(&self, la: &str, stamp: &str, rows: &[String]) -> PathBuf {
        let drop = self.path().join("drop");
        fs::create_dir_all(&drop).unwrap();
        let path = drop.join(format!("CPIS_EXTRACT_{la}_{stamp}.csv"));
        let mut text = format!("{HEADER}\n");
        for r in rows {
            text.push_str(r);
            text.push('\n');
        }
        fs::write(&path, text).unwrap();
        path
    }

    /// `ingest --format json` at a given clock; returns (exit code, the one report).
    fn ingest_at(
        &self,
        now: &str,
        mailbox: &str,
        file: &Path,
        env: &[(&str, &str)],
    ) -> (i32, Value) {
        let out = gateway(self.path())
            .env("CPIS_GATEWAY_NOW", now)
            .envs(env.iter().copied())
            .args(["ingest", "--format", "json", "--mailbox", mailbox])
            .arg(file)
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let reports: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
        (code, reports.get(0).cloned().unwrap_or(Value::Null))
    }

    fn ingest(&self, mailbox: &str, file: &Path) -> (i32, Value) {
        self.ingest_at(NOW, mailbox, file, &[])
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = gateway(self.path()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn store(&self) -> PathBuf {
        self.path().join("var/store/cpis.sqlite")
    }

    fn outbox(&self, mailbox: &str) -> PathBuf {
        self.path().join("var/mailboxes").join(mailbox).join("out")
    }

    /// Every row of every table, as text: equal dumps mean an unchanged store.
    fn dump(&self) -> String {
        let mut out = String::new();
        for table in [
            "files",
            "record_versions",
            "records",
            "records_cold",
            "quarantine",
        ] {
            let order = match table {
                "records" => "la_code, nhs, plan_type",
                "records_cold" => "version",
                _ => "id",
            };
            for r in backend::sql(
                self.path(),
                &format!("SELECT * FROM {table} ORDER BY {order}"),
            ) {
                out.push_str(&format!("{table}: {r}\n"));
            }
        }
        out
    }
}

fn changes(report: &Value) -> [u64; 7] {
    let c = &report["changes"];
    [
        "new",
        "updated",
        "unchanged",
        "ended",
        "reopened",
        "closed_by_absence",
        "retained",
    ]
    .map(|k| {
        c[k].as_u64()
            .unwrap_or_else(|| panic!("changes.{k} in {report}"))
    })
}

const P1: &str = "01632 960001";
const P2: &str = "01632 960002";

fn day1(w: &Work) -> PathBuf {
    let mut rows: Vec<String> = (1..=10)
        .map(|i| row(i, "CPP", "2026-01-01", "", "919", P1, &format!("R{i}")))
        .collect();
    rows.push(row(11, "LAC", "2025-01-01", "2026-02-01", "919", P1, "R11"));
    w.extract("919", "20261119T020000", &rows)
}

fn day2(w: &Work) -> PathBuf {
    let mut rows = vec![
        row(1, "CPP", "2026-01-01", "", "919", P1, "R1"), // unchanged
        row(2, "CPP", "2026-01-01", "", "919", P2, "R2"), // updated (phone)
        row(3, "CPP", "2026-01-01", "2026-11-19", "919", P1, "R3"), // ended
        // 4 absent: closed by absence
        row(5, "CPP", "2026-13-01", "", "919", P1, "R5"), // rejected row, key valid: retained
        row(11, "LAC", "2025-01-01", "", "919", P1, "R11"), // reopened
        row(12, "UCPP", "2026-10-01", "", "919", P1, "R12"), // new
    ];
    rows.extend((6..=10).map(|i| row(i, "CPP", "2026-01-01", "", "919", P1, &format!("R{i}")))); // unchanged
    w.extract("919", "20261120T020000", &rows)
}

#[test]
fn a_multi_day_scenario_gives_exact_counts_for_every_outcome() {
    let w = Work::new();
    let (code, r1) = w.ingest("LA919", &day1(&w));
    assert_eq!(code, 0, "{r1}");
    assert_eq!(r1["outcome"], "accepted");
    assert_eq!(changes(&r1), [11, 0, 0, 0, 0, 0, 0]);

    let (code, r2) = w.ingest("LA919", &day2(&w));
    assert_eq!(code, 1, "a rejected row makes the file partial: {r2}");
    assert_eq!(r2["outcome"], "partial");
    assert_eq!(r2["response_code"], "CPF03");
    //                         new upd unch end reop closed retained
    assert_eq!(changes(&r2), [1, 1, 6, 1, 1, 1, 1]);
    assert_eq!(r2["row_errors"][0]["code"], "DATE_FORMAT");
    assert_schema("file-report.schema.json", &r2);

    // The acknowledgement is in the LA's outbox, with the CSV of row errors.
    let ack: Value = serde_json::from_slice(
        &fs::read(
            w.outbox("LA919")
                .join("CPIS_ACK_CPIS_EXTRACT_919_20261120T020000.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ack["changes"], r2["changes"]);
    assert_eq!(ack["sha256"], r2["sha256"]);
    let csv = fs::read_to_string(
        w.outbox("LA919")
            .join("CPIS_ACK_CPIS_EXTRACT_919_20261120T020000.csv"),
    )
    .unwrap();
    assert!(csv.starts_with(
        "row,line,column,code,severity,value,nhs_number,plan_type,local_ref,message\n"
    ));
    assert!(csv.contains(",start_date,DATE_FORMAT,error,"), "{csv}");
    assert!(
        !w.outbox("LA919")
            .join("CPIS_ACK_CPIS_EXTRACT_919_20261119T020000.csv")
            .exists(),
        "no CSV without errors"
    );

    // Status: open records per plan type for 919 (2, 5-10 open CPP = 7; 11 LAC; 12 UCPP).
    let status = w.json(&["status", "--format", "json"]);
    let herts = status["local_authorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["la_code"] == "919")
        .unwrap();
    assert_eq!(
        herts["open"],
        serde_json::json!({"CPP": 8, "LAC": 1, "UCPP": 1})
    );
    assert_eq!(herts["last_extract_at"], "2026-11-20T02:00:00.000Z");
    assert_eq!(herts["overdue"], true, "55 hours before NOW, more than 36");
    let out = gateway(w.path())
        .env("CPIS_GATEWAY_NOW", "2026-11-21T13:00:00Z")
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    let early: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(early["local_authorities"][0]["la_code"], "919");
    assert_eq!(early["local_authorities"][0]["overdue"], false, "35 hours");
    let camden = status["local_authorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["la_code"] == "202")
        .unwrap();
    assert_eq!(camden["overdue"], true, "never sent");
    assert!(camden["last_extract_at"].is_null());
}

#[test]
fn a_child_may_be_open_in_two_las_and_las_send_only_their_own() {
    let w = Work::new();
    let herts = w.extract(
        "919",
        "20261121T020000",
        &[row(1, "CPP", "2026-01-01", "", "919", P1, "H1")],
    );
    let camden = w.extract(
        "202",
        "20261121T020000",
        &[row(1, "CPP", "2026-06-01", "", "202", P2, "C1")],
    );
    assert_eq!(w.ingest("LA919", &herts).0, 0);
    assert_eq!(w.ingest("LA202", &camden).0, 0);
    let open = backend::count(
        w.path(),
        &format!(
            "SELECT count(*) FROM records WHERE nhs = {} AND open = 1",
            nhs(1)
        ),
    );
    assert_eq!(open, 2);

    // Camden's extract sent through Hertfordshire's mailbox changes nothing.
    let before = w.dump();
    let other = w.extract("202", "20261122T020000", &[]);
    let (code, r) = w.ingest("LA919", &other);
    assert_eq!(code, 1);
    assert_eq!(file_codes(&r), ["NOT_AUTHORISED"]);
    assert!(r["changes"].is_null());
    let after = w.dump();
    assert_eq!(
        before
            .lines()
            .filter(|l| l.starts_with("record_versions"))
            .collect::<Vec<_>>(),
        after
            .lines()
            .filter(|l| l.starts_with("record_versions"))
            .collect::<Vec<_>>()
    );
    assert!(
        w.outbox("LA919")
            .join("CPIS_ACK_CPIS_EXTRACT_202_20261122T020000.json")
            .exists(),
        "the sender is told"
    );
}

#[test]
fn duplicate_and_stale_files_change_nothing() {
    let w = Work::new();
    let d1 = day1(&w);
    let d2 = day2(&w);
    assert_eq!(w.ingest("LA919", &d2).0, 1);
    let before = w.dump();
    let (code, dup) = w.ingest("LA919", &d2);
    assert_eq!(code, 0, "a duplicate counts as accepted");
    assert_schema("file-report.schema.json", &dup);
    assert_eq!(dup["outcome"], "duplicate");
    // It repeats the response code of what it duplicates: the rejected rows were not
    // loaded this time either.
    assert_eq!(dup["response_code"], "CPF03");
    assert_eq!(dup["duplicate_of"]["outcome"], "partial");
    assert!(dup["changes"].is_null());
    let (code, stale) = w.ingest("LA919", &d1);
    assert_eq!(code, 1);
    assert_eq!(file_codes(&stale), ["STALE"]);
    assert_eq!(stale["response_code"], "CPF04");
    let records = |d: &str| {
        d.lines()
            .filter(|l| l.starts_with("record_versions"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(records(&before), records(&w.dump()));
}

#[test]
fn quarantine_then_release_and_quarantine_then_reject() {
    let w = Work::new();
    assert_eq!(w.ingest("LA919", &day1(&w)).0, 0);
    // Keeps 3 of 10 open records: 7 closures by absence = 70% > 20%.
    let few: Vec<String> = (1..=3)
        .map(|i| row(i, "CPP", "2026-01-01", "", "919", P1, &format!("R{i}")))
        .collect();
    let f = w.extract("919", "20261120T020000", &few);
    let before = w.dump();
    let (code, q) = w.ingest("LA919", &f);
    assert_eq!(code, 1);
    assert_eq!(q["outcome"], "quarantined");
    assert_eq!(q["response_code"], "CPF04");
    let id = q["quarantine_id"].as_str().unwrap().to_owned();
    assert!(q["quarantine_reason"]
        .as_str()
        .unwrap()
        .contains("7 of the LA's 10"));
    let records = |d: &str| {
        d.lines()
            .filter(|l| l.starts_with("record_versions"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(records(&before), records(&w.dump()), "nothing applied");
    let list = w.json(&["quarantine", "list", "--format", "json"]);
    assert_eq!(list[0]["id"], id.as_str());
    let status = w.json(&["status", "--format", "json"]);
    assert_eq!(status["quarantine"][0]["id"], id.as_str());
    assert_schema("status.schema.json", &status);
    assert_schema("file-report.schema.json", &q);
    let (backend, location) = match backend::store_url(w.path()) {
        Some(url) => ("postgres", url),
        None => ("sqlite", w.store().display().to_string()),
    };
    assert_eq!(status["store"]["backend"], backend);
    assert_eq!(status["store"]["location"], location.as_str());

    // Released later in the day: processed then, but received when it arrived.
    let out = gateway(w.path())
        .env("CPIS_GATEWAY_NOW", "2026-11-22T15:00:00Z")
        .args(["quarantine", "release", &id, "--format", "json"])
        .output()
        .unwrap();
    let released: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(released[0]["received_at"], q["received_at"]);
    assert_eq!(released[0]["processed_at"], "2026-11-22T15:00:00.000Z");
    assert_schema("file-report.schema.json", &released[0]);
    assert_eq!(released[0]["outcome"], "accepted");
    assert_eq!(changes(&released[0]), [0, 0, 3, 0, 0, 7, 0]);
    let ack: Value = serde_json::from_slice(
        &fs::read(
            w.outbox("LA919")
                .join("CPIS_ACK_CPIS_EXTRACT_919_20261120T020000.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ack["outcome"], "accepted", "the LA is told of the release");
    assert_eq!(
        w.json(&["quarantine", "list", "--format", "json"]),
        serde_json::json!([])
    );
    gateway(w.path())
        .args(["quarantine", "release", &id])
        .assert()
        .code(2);

    // An empty extract while the LA has open records: quarantined, then rejected.
    let empty = w.extract("919", "20261121T020000", &[]);
    let (code, q) = w.ingest("LA919", &empty);
    assert_eq!(code, 1);
    assert_eq!(q["outcome"], "quarantined");
    assert!(q["quarantine_reason"]
        .as_str()
        .unwrap()
        .contains("no children"));
    let id = q["quarantine_id"].as_str().unwrap().to_owned();
    let before = w.dump();
    let rejected = w.json(&["quarantine", "reject", &id, "--format", "json"]);
    assert_eq!(rejected[0]["outcome"], "rejected");
    assert_schema("file-report.schema.json", &rejected[0]);
    assert_eq!(file_codes(&rejected[0]), ["QUARANTINED"]);
    assert_eq!(records(&before), records(&w.dump()));
    let all = w.json(&["quarantine", "list", "--all", "--format", "json"]);
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .map(|q| q["state"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["released", "rejected"]
    );
}

#[test]
fn a_header_only_extract_is_accepted_when_the_la_has_nothing_open() {
    let w = Work::new();
    let (code, r) = w.ingest("LA202", &w.extract("202", "20261121T020000", &[]));
    assert_eq!(code, 0);
    assert_eq!(r["outcome"], "accepted");
    assert_eq!(changes(&r), [0; 7]);
}

#[test]
fn replay_is_a_no_op_unless_forced_and_reruns_rejected_files() {
    let w = Work::new();
    let d1 = day1(&w);
    let (_, r1) = w.ingest("LA919", &d1);
    let sha = r1["sha256"].as_str().unwrap().to_owned();
    let out = gateway(w.path()).args(["replay", &sha]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already applied"));
    let before = w.dump();
    assert_eq!(before, w.dump());

    // A newer file applied, then the old one forced back: only with --yes (it rolls the
    // records back); then it reconciles again (its snapshot wins), and the replay is
    // recorded as a new processing. A unique prefix of the sha256 names the file.
    assert_eq!(w.ingest("LA919", &day2(&w)).0, 1);
    let before = w.dump();
    let out = gateway(w.path())
        .args(["replay", &sha[..10], "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rolls the LA's records back"));
    assert_eq!(before, w.dump(), "nothing done without --yes");
    let out = gateway(w.path())
        .args(["replay", &sha[..10], "--force", "--yes", "--format", "json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed[0]["outcome"], "accepted");
    assert_eq!(replayed[0]["file"], "CPIS_EXTRACT_919_20261119T020000.csv");
    // 2 updated back, 3 and 4 reopened, 11 ended again, 12 closed by absence, the rest as is.
    assert_eq!(changes(&replayed[0]), [0, 1, 7, 1, 2, 1, 0]);

    // A rejected file replays without --force once its cause is gone (here: not stale).
    gateway(w.path())
        .args(["replay", &"0".repeat(64)])
        .assert()
        .code(2);
    gateway(w.path()).args(["replay", "abc"]).assert().code(2);
}

#[test]
fn a_failure_part_way_through_applying_leaves_the_store_as_before() {
    let w = Work::new();
    assert_eq!(w.ingest("LA919", &day1(&w)).0, 0);
    let d2 = day2(&w);
    let before = w.dump();
    let out = gateway(w.path())
        .env("CPIS_GATEWAY_FAULT", "apply-after:3")
        .args(["ingest", "--mailbox", "LA919"])
        .arg(&d2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing of it was applied"));
    assert_eq!(
        before,
        w.dump(),
        "no partial application, not even in the registry"
    );
    assert!(d2.exists(), "the operator's file is still there");
    let sha = hex_sha256(&fs::read(&d2).unwrap());
    assert!(
        w.path()
            .join("var/archive")
            .join(&sha[..2])
            .join(&sha)
            .exists(),
        "and archived"
    );
    // Run again without the fault: applied once, as if nothing had happened.
    let (code, r) = w.ingest("LA919", &d2);
    assert_eq!(code, 1);
    assert_eq!(r["outcome"], "partial");
    assert_eq!(changes(&r), [1, 1, 6, 1, 1, 1, 1]);
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn history_answers_what_was_known_at_any_moment() {
    let w = Work::new();
    let child = 3;
    let d1 = w.extract(
        "919",
        "20261119T020000",
        &[row(child, "CPP", "2026-01-01", "", "919", P1, "A")],
    );
    let d2 = w.extract(
        "919",
        "20261120T020000",
        &[row(child, "CPP", "2026-01-01", "", "919", P2, "A")],
    );
    let d3 = w.extract(
        "919",
        "20261121T020000",
        &[row(
            child,
            "CPP",
            "2026-01-01",
            "2026-11-20",
            "919",
            P2,
            "A",
        )],
    );
    assert_eq!(w.ingest_at("2026-11-19T03:00:00Z", "LA919", &d1, &[]).0, 0);
    assert_eq!(w.ingest_at("2026-11-20T03:00:00Z", "LA919", &d2, &[]).0, 0);
    assert_eq!(w.ingest_at("2026-11-21T03:00:00Z", "LA919", &d3, &[]).0, 0);

    let mut store = open_store(&w);
    let n = NhsNumber::parse(&nhs(child)).unwrap();
    let mut at = |t: &str| {
        let v = store.records_at(n, t.parse().unwrap()).unwrap();
        v.iter()
            .map(|v| {
                (
                    v.change.clone(),
                    v.fields.edt_phone.to_string(),
                    v.fields.end.map(|d| d.to_string()),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(at("2026-11-19T02:59:59Z"), vec![], "before the first file");
    assert_eq!(
        at("2026-11-19T12:00:00Z"),
        vec![("new".into(), "01632960001".into(), None)]
    );
    assert_eq!(
        at("2026-11-20T03:00:00Z"),
        vec![("updated".into(), "01632960002".into(), None)]
    );
    assert_eq!(
        at("2026-11-20T23:00:00Z"),
        vec![("updated".into(), "01632960002".into(), None)]
    );
    assert_eq!(
        at("2026-11-22T00:00:00Z"),
        vec![(
            "ended".into(),
            "01632960002".into(),
            Some("2026-11-20".into())
        )]
    );
    let history = store.versions(n).unwrap();
    assert_eq!(history.len(), 3, "append-only: every version kept");
    assert!(history[..2].iter().all(|v| v.known_to.is_some()) && history[2].known_to.is_none());
    // And the history cannot be rewritten, even by hand.
    for statement in [
        "DELETE FROM record_versions",
        "UPDATE record_versions SET edt_phone = '0'",
    ] {
        let said = backend::try_sql(w.path(), statement);
        assert!(
            said.contains("record history is append-only"),
            "{statement}: {said}"
        );
    }
    assert_eq!(
        backend::count(w.path(), "SELECT count(*) FROM record_versions"),
        3
    );
}

/// The store as this process opens it (SQLite, or PostgreSQL when the tests run on it).
fn open_store(w: &Work) -> Store {
    match backend::store_url(w.path()) {
        Some(url) => Store::open_at(&Location::Postgres(Box::new(
            cpis_gateway::store::Target::parse(&url, Path::new(".")).unwrap(),
        )))
        .unwrap(),
        None => Store::open(&w.store()).unwrap(),
    }
}

#[test]
fn records_ended_long_ago_go_cold_and_come_back_when_named_again() {
    let w = Work::new();
    let open = |i: u64| row(i, "CPP", "2023-06-01", "", "919", P1, &format!("A{i}"));
    let steady: Vec<String> = std::iter::once(1).chain(4..=12).map(open).collect();
    let with = |extra: &[String]| [&steady[..], extra].concat();
    let child2 = |start: &str, end: &str| row(2, "CPP", start, end, "919", P1, "A2");
    let file = |stamp: &str, rows: &[String]| w.extract("919", stamp, rows);
    let count = |sql: &str| backend::count(w.path(), sql);
    let nhs2: i64 = nhs(2).parse().unwrap();

    // 2024: child 2 ended a week ago; child 3 open.
    let a = file(
        "20240110T020000",
        &with(&[
            child2("2023-06-01", "2024-01-05"),
            row(3, "LAC", "2023-06-01", "", "919", P1, "A3"),
        ]),
    );
    assert_eq!(w.ingest_at("2024-01-10T03:00:00Z", "LA919", &a, &[]).0, 0);
    assert_eq!(count("SELECT count(*) FROM records_cold"), 0);
    // Mid-2025: child 3 is gone (closed by absence, today); child 2 ended before any
    // look-up from now on could show it, so it leaves the current records, kept cold.
    let b = file("20250601T020000", &steady);
    let (code, report) = w.ingest_at("2025-06-01T03:00:00Z", "LA919", &b, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(changes(&report), [0, 0, 10, 0, 0, 1, 0]);
    let cold = |sql: &str| backend::sql(w.path(), sql);
    assert_eq!(
        cold("SELECT nhs, la_code, plan_type, end_date FROM records_cold"),
        vec![format!("{nhs2}|919|CPP|2024-01-05")]
    );
    assert_eq!(
        count(&format!("SELECT count(*) FROM records WHERE nhs = {nhs2}")),
        0
    );
    assert_eq!(count("SELECT count(*) FROM records"), 11);
    // Neither the cold rows nor the current records can be deleted or changed by hand.
    for (statement, refusal) in [
        (
            "DELETE FROM records_cold",
            "ended records are kept, never deleted",
        ),
        (
            "UPDATE records_cold SET fingerprint = 0",
            "ended records are kept as they ended",
        ),
        ("DELETE FROM records", "records are closed, never deleted"),
    ] {
        let said = backend::try_sql(w.path(), statement);
        assert!(said.contains(refusal), "{statement}: {said}");
    }

    // Late 2026: child 2 is named again, open: reopened from its cold row, which stays
    // (when it ended before); child 3, ended mid-2025, goes cold in the same file.
    let c = file("20261120T020000", &with(&[child2("2026-10-01", "")]));
    let (code, report) = w.ingest_at("2026-11-20T03:00:00Z", "LA919", &c, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(changes(&report), [0, 0, 10, 0, 1, 0, 0]);
    assert_eq!(count("SELECT count(*) FROM records_cold"), 2);
    let first = count(&format!(
        "SELECT version FROM records_cold WHERE nhs = {nhs2}"
    ));
    assert_eq!(
        count(&format!(
            "SELECT v.previous FROM records r JOIN record_versions v ON v.id = r.version
             WHERE r.nhs = {nhs2} AND r.open = 1"
        )),
        first,
        "the reopened record's new version follows the one kept cold"
    );

    // 2028: it ends again and goes cold in the same file; named again, the reopening
    // follows the latest time it ended, not the first.
    let d = file(
        "20280110T020000",
        &with(&[child2("2026-10-01", "2026-12-01")]),
    );
    assert_eq!(w.ingest_at("2028-01-10T03:00:00Z", "LA919", &d, &[]).0, 0);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM records_cold WHERE nhs = {nhs2}"
        )),
        2
    );
    assert_eq!(
        count(&format!("SELECT count(*) FROM records WHERE nhs = {nhs2}")),
        0
    );
    let second = count(&format!(
        "SELECT max(version) FROM records_cold WHERE nhs = {nhs2}"
    ));
    let e = file("20280201T020000", &with(&[child2("2028-01-20", "")]));
    let (code, report) = w.ingest_at("2028-02-01T03:00:00Z", "LA919", &e, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(changes(&report)[4], 1, "reopened: {report}");
    assert_eq!(
        count(&format!(
            "SELECT v.previous FROM records r JOIN record_versions v ON v.id = r.version
             WHERE r.nhs = {nhs2}"
        )),
        second
    );

    // The history walks through the cold rows: every version once, each replaced when
    // its successor was known.
    let mut store = open_store(&w);
    let n = NhsNumber::parse(&nhs(2)).unwrap();
    let history = store.versions(n).unwrap();
    let seen: Vec<(String, Option<String>)> = history
        .iter()
        .map(|v| (v.change.clone(), v.known_to.map(|t| t.to_rfc3339())))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("new".into(), Some("2026-11-20T03:00:00+00:00".into())),
            ("reopened".into(), Some("2028-01-10T03:00:00+00:00".into())),
            ("ended".into(), Some("2028-02-01T03:00:00+00:00".into())),
            ("reopened".into(), None),
        ]
    );
    let between = store
        .records_at(n, "2027-06-01T00:00:00Z".parse().unwrap())
        .unwrap();
    assert_eq!(between.len(), 1);
    assert_eq!(between[0].change, "reopened");
}

/// A file with more keys not open than one statement looks up (a first load's size) asks
/// first whether its LA has any closed record: 919 has one only kept cold, 202 one only
/// among the current records; named again, each is reopened after its last version.
#[test]
fn a_large_file_reopens_closed_records_current_and_cold() {
    let w = Work::new();
    let child =
        |i: u64, la: &str, end: &str| row(i, "CPP", "2023-06-01", end, la, P1, &format!("A{i}"));
    let count = |sql: &str| backend::count(w.path(), sql);
    let ingest = |la: &str, stamp: &str, at: &str, rows: &[String]| {
        let file = w.extract(la, stamp, rows);
        let (code, report) = w.ingest_at(at, &format!("LA{la}"), &file, &[]);
        assert_eq!(code, 0, "{report}");
        report
    };
    let last_version = |i: u64| {
        count(&format!(
            "SELECT max(id) FROM record_versions WHERE nhs = {}",
            nhs(i)
        ))
    };
    ingest(
        "919",
        "20240110T020000",
        "2024-01-10T03:00:00Z",
        &[child(2, "919", "2024-01-05"), child(3, "919", "")],
    );
    // Mid-2025: 919's child 2 goes cold (its child 3 stays open); 202's child 50 ends.
    ingest(
        "919",
        "20250601T020000",
        "2025-06-01T03:00:00Z",
        &[child(3, "919", "")],
    );
    ingest(
        "202",
        "20250601T020000",
        "2025-06-01T03:00:00Z",
        &[child(50, "202", "2025-05-01")],
    );
    assert_eq!(count("SELECT count(*) FROM records_cold"), 1);
    assert_eq!(count("SELECT count(*) FROM records WHERE open = 0"), 1);
    // 600 children new to the store, the child named again, and the LA's open ones.
    let cases: [(&str, u64, std::ops::Range<u64>, &[u64]); 2] =
        [("919", 2, 100..700, &[3]), ("202", 50, 1000..1600, &[])];
    for (la, named, new, open) in cases {
        let previous = last_version(named);
        let rows: Vec<String> = new
            .chain([named])
            .chain(open.iter().copied())
            .map(|i| child(i, la, ""))
            .collect();
        let report = ingest(la, "20250610T020000", "2025-06-10T03:00:00Z", &rows);
        assert_eq!(
            changes(&report)[..5],
            [600, 0, open.len() as u64, 0, 1],
            "{report}"
        );
        assert_eq!(
            count(&format!(
                "SELECT v.previous FROM records r JOIN record_versions v ON v.id = r.version
                 WHERE r.nhs = {} AND r.open = 1",
                nhs(named)
            )),
            previous,
            "LA {la}"
        );
    }
}

#[test]
fn init_creates_every_mailbox_and_a_private_store() {
    use std::os::unix::fs::PermissionsExt;
    let w = Work::new();
    gateway(w.path()).arg("init").assert().success();
    gateway(w.path()).arg("init").assert().success();
    for mailbox in ["LA919", "LA202", "RWG"] {
        let exists = w
            .path()
            .join("var/mailboxes")
            .join(mailbox)
            .join("in")
            .is_dir();
        assert_eq!(
            exists,
            mailbox != "RWG",
            "{mailbox}: only configured parties"
        );
    }
    if backend::postgres() {
        // The store is the database: nothing of it is written under the root.
        assert!(!w.store().exists());
        assert_eq!(
            backend::count(w.path(), "SELECT max(version) FROM schema_version"),
            23,
            "every migration in src/store/mod.rs"
        );
    } else {
        let mode = fs::metadata(w.store()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
