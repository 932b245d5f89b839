//! The health side through the real binary: attendance files, flag responses, notifications
//! (exactly once, across crashes), `query`, data minimisation and the tamper-evident log.

use crate::helpers::*;
use cpis_gateway::core::nhs::NhsNumber;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

struct Site {
    dir: tempfile::TempDir,
}

/// The i-th valid NHS number of a range no other test file uses.
fn nhs(i: u64) -> String {
    test_nhs(999_300_000, i)
}

const ATTEND_HEADER: &str = "nhs_number,attended_at,org_ods,org_name,setting,user_name,user_role";

impl Site {
    /// 919 and 202 with records: child 1 open in 919; child 2 open in 919 and 202; child 3
    /// ended in 202 in 2026-06; child 4 ended long ago; children 5+ unknown.
    fn new() -> Site {
        let dir = temp();
        fs::write(
            dir.path().join("config.toml"),
            "[gateway]\nroot = \"var\"\nsettle_ms = 0\nlocal_authorities = [\"919\", \"202\"]\n\
             [[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n[[health_org]]\nods = \"RQW\"\nname = \"Princess Alexandra\"\n",
        )
        .unwrap();
        let site = Site { dir };
        let header =
            "nhs_number,plan_type,start_date,end_date,la_code,edt_phone,office_phone,local_ref";
        let herts = format!(
            "{header}\n{},CPP,2026-01-01,,919,01632 960001,01632 960002,H-1\n{},LAC,2025-01-01,,919,01632 960001,01632 960002,H-2\n",
            nhs(1),
            nhs(2)
        );
        let camden = format!(
            "{header}\n{},CPP,2026-03-01,,202,01632 960101,01632 960102,C-2\n{},CPP,2025-01-01,2026-06-01,202,01632 960101,01632 960102,C-3\n{},CPP,2020-01-01,2024-01-01,202,01632 960101,01632 960102,C-4\n",
            nhs(2),
            nhs(3),
            nhs(4)
        );
        site.ingest("LA919", "CPIS_EXTRACT_919_20261120T020000.csv", &herts);
        site.ingest("LA202", "CPIS_EXTRACT_202_20261120T020000.csv", &camden);
        site
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ingest(&self, mailbox: &str, name: &str, text: &str) -> Value {
        let file = self.path().join(name);
        fs::write(&file, text).unwrap();
        let out = gateway(self.path())
            .args(["ingest", "--format", "json", "--mailbox", mailbox])
            .arg(&file)
            .output()
            .unwrap();
        let reports: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        reports[0].clone()
    }

    /// An attendance file from RWG with rows (child, time, setting, user).
    fn attend(&self, stamp: &str, rows: &[(u64, &str, &str, &str)]) -> Value {
        let mut text = format!("{ATTEND_HEADER}\n");
        for (child, at, setting, user) in rows {
            text.push_str(&format!(
                "{},{at},RWG,West Herts,{setting},\"{}\",Doctor\n",
                nhs(*child),
                user.replace('"', "\"\"")
            ));
        }
        self.ingest("RWG", &format!("CPIS_ATTEND_RWG_{stamp}.csv"), &text)
    }

    fn out(&self, mailbox: &str) -> PathBuf {
        self.path().join("var/mailboxes").join(mailbox).join("out")
    }

    fn flags(&self, stamp: &str) -> Value {
        serde_json::from_slice(
            &fs::read(
                self.out("RWG")
                    .join(format!("CPIS_FLAGS_CPIS_ATTEND_RWG_{stamp}.json")),
            )
            .unwrap(),
        )
        .unwrap()
    }

    /// Every notification row written to an LA so far (header checked).
    fn notifications(&self, la: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for f in files_starting(&self.out(&format!("LA{la}")), "CPIS_NOTIFY_") {
            let mut r = csv::Reader::from_path(&f).unwrap();
            assert_eq!(
                r.headers().unwrap().iter().collect::<Vec<_>>(),
                [
                    "nhs_number",
                    "local_ref",
                    "plan_type",
                    "attended_at",
                    "org_ods",
                    "org_name",
                    "setting",
                    "user_name",
                    "user_role"
                ]
            );
            rows.extend(
                r.records()
                    .map(|rec| rec.unwrap().iter().map(str::to_owned).collect::<Vec<_>>()),
            );
        }
        rows
    }

    fn flush(&self) -> std::process::Output {
        gateway(self.path())
            .args(["run", "--once"])
            .output()
            .unwrap()
    }

    fn sql(&self, sql: &str) -> i64 {
        crate::backend::count(self.path(), sql)
    }
}

#[test]
fn a_flagged_ed_attendance_gets_flags_and_notifies_once() {
    let site = Site::new();
    let ack = site.attend(
        "20261121T101500",
        &[(1, "2026-11-21T09:42:00+00:00", "ED", "Dr A")],
    );
    assert_eq!(ack["outcome"], "accepted");
    assert_eq!(
        ack["attendance"],
        serde_json::json!({"flagged": 1, "notifications_queued": 1, "silent_reads": 0, "not_flagged": 0})
    );
    let flags = site.flags("20261121T101500");
    let f = &flags["flagged"][0]["flags"][0];
    assert_eq!(
        (
            f["la_code"].as_str(),
            f["plan_type"].as_str(),
            f["status"].as_str()
        ),
        (Some("919"), Some("CPP"), Some("open"))
    );
    assert_eq!(f["edt_phone"], "01632960001");
    assert!(
        !flags.to_string().contains("H-1"),
        "plan contents never go to the NHS side"
    );
    assert!(
        site.notifications("919").is_empty(),
        "queued, not yet written"
    );
    assert_eq!(site.flush().status.code(), Some(0));
    let rows = site.notifications("919");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0],
        [
            nhs(1).as_str(),
            "H-1",
            "CPP",
            "2026-11-21T09:42:00.000Z",
            "RWG",
            "West Herts",
            "ED",
            "Dr A",
            "Doctor"
        ]
    );
    site.flush();
    assert_eq!(site.notifications("919").len(), 1, "never written twice");
}

#[test]
fn a_gp_attendance_is_a_silent_read() {
    let site = Site::new();
    let ack = site.attend(
        "20261121T101500",
        &[(1, "2026-11-21T09:42:00+00:00", "GP", "Dr G")],
    );
    assert_eq!(ack["attendance"]["silent_reads"], 1);
    assert_eq!(ack["attendance"]["notifications_queued"], 0);
    assert_eq!(
        site.sql("SELECT count(*) FROM access_log WHERE silent = 1"),
        1,
        "audited"
    );
    site.flush();
    assert!(site.notifications("919").is_empty());
}

#[test]
fn repeat_views_within_24_hours_notify_once_and_both_las_hear() {
    let site = Site::new();
    // (Sent just before the tests' "now", 09:00 on the 22nd: nothing may be dated after.)
    site.attend(
        "20261122T085900",
        &[
            (2, "2026-11-21T09:00:00+00:00", "ED", "Dr A"),
            (2, "2026-11-21T20:00:00+00:00", "ED", "Dr A"),
            (2, "2026-11-21T21:00:00+00:00", "ED", "Dr Z"),
            (2, "2026-11-22T08:30:00+00:00", "ED", "Dr A"),
        ],
    );
    site.flush();
    // Child 2 is open in both LAs: each hears of Dr A's first view and of Dr Z's; Dr A's
    // later views each come within 24 hours of a previous view by Dr A, so notify nobody.
    for la in ["919", "202"] {
        let users: Vec<String> = site
            .notifications(la)
            .iter()
            .map(|r| r[7].clone())
            .collect();
        assert_eq!(users, ["Dr A", "Dr Z"], "LA {la}");
    }
    assert_eq!(
        site.sql("SELECT count(*) FROM presentations"),
        4,
        "every view is a presentation"
    );
    assert_eq!(
        site.sql("SELECT count(*) FROM access_log"),
        4,
        "and audited"
    );
}

#[test]
fn recently_ended_records_are_shown_but_notify_nobody() {
    let site = Site::new();
    let ack = site.attend(
        "20261121T101500",
        &[
            (3, "2026-11-21T09:00:00+00:00", "ED", "Dr A"),
            (4, "2026-11-21T09:05:00+00:00", "ED", "Dr A"),
        ],
    );
    // SPEC 4.1: flagged only if a record is open at the attendance. Child 3's only record
    // ended within the year: shown (marked ended) and logged, but not flagged, not kept as
    // a presentation, and nobody notified.
    assert_eq!(
        ack["attendance"],
        serde_json::json!({"flagged": 0, "notifications_queued": 0, "silent_reads": 0, "not_flagged": 2})
    );
    let flags = site.flags("20261121T101500");
    assert_eq!(flags["flagged"], serde_json::json!([]));
    assert_eq!(flags["ended_only"][0]["row"], 1);
    assert_eq!(flags["ended_only"][0]["flagged"], false);
    assert_eq!(flags["ended_only"][0]["flags"][0]["status"], "ended");
    assert_eq!(flags["ended_only"][0]["notified"], serde_json::json!([]));
    assert_eq!(flags["not_flagged_rows"], serde_json::json!([1, 2]));
    assert_eq!(site.sql("SELECT count(*) FROM presentations"), 0);
    assert_eq!(site.sql("SELECT count(*) FROM notifications"), 0);
    assert_eq!(
        site.sql("SELECT count(*) FROM access_log"),
        1,
        "the look-up found a record, so it is logged"
    );
}

#[test]
fn health_text_is_escaped_against_formula_injection() {
    let site = Site::new();
    site.attend(
        "20261121T101500",
        &[(
            1,
            "2026-11-21T09:42:00+00:00",
            "ED",
            "=HYPERLINK(\"http://x\",\"y\")",
        )],
    );
    site.flush();
    let rows = site.notifications("919");
    assert_eq!(rows[0][7], "'=HYPERLINK(\"http://x\",\"y\")");
}

#[test]
fn bad_rows_and_other_organisations_rows() {
    let site = Site::new();
    let ack = site.attend(
        "20261121T101500",
        &[
            (1, "2026-11-21T09:42:00", "ED", "Dr A"),
            (1, "2026-11-21T09:42:00Z", "A&E", "Dr A"),
            (1, "2026-11-21T11:00:00Z", "ED", "Dr A"),
            (1, "2026-11-21T09:00:00Z", "ED", "Dr A"),
            (5, "2026-11-21T09:01:00Z", "ED", "Dr A"),
            (6, "2026-11-21T09:02:00Z", "ED", "Dr A"),
        ],
    );
    assert_eq!(ack["outcome"], "partial");
    assert_eq!(
        row_codes(&ack),
        [
            (1, "ATTENDED_AT".into()),
            (2, "SETTING".into()),
            (3, "ATTENDED_AT".into())
        ]
    );
    let text = format!(
        "{ATTEND_HEADER}\n{},2026-11-21T09:42:00Z,RQW,Other,ED,Dr A,Doctor\n",
        nhs(1)
    );
    let ack = site.ingest("RWG", "CPIS_ATTEND_RWG_20261121T111500.csv", &text);
    assert_eq!(file_codes(&ack), ["NOT_AUTHORISED"]);
    let ack = site.ingest(
        "RQW",
        "CPIS_ATTEND_RWG_20261121T121500.csv",
        &format!("{ATTEND_HEADER}\n"),
    );
    assert_eq!(
        file_codes(&ack),
        ["NOT_AUTHORISED"],
        "RWG's file in RQW's mailbox"
    );
}

#[test]
fn unflagged_children_leave_no_trace_in_the_store() {
    let site = Site::new();
    let unknown: Vec<u64> = (50..60).collect();
    let rows: Vec<(u64, &str, &str, &str)> = unknown
        .iter()
        .map(|&c| (c, "2026-11-21T09:00:00+00:00", "ED", "Dr A"))
        .collect();
    let ack = site.attend("20261121T101500", &rows);
    assert_eq!(ack["attendance"]["not_flagged"], 10);
    gateway(site.path())
        .args([
            "query",
            &nhs(77),
            "--org",
            "RWG",
            "--user",
            "Dr Q",
            "--role",
            "Doctor",
            "--setting",
            "ED",
        ])
        .assert()
        .success();
    let dump = crate::backend::dump(site.path());
    assert!(
        dump.contains(&nhs(1)),
        "a child with a record is there, so the search below would find one"
    );
    for c in unknown.iter().chain([&77]) {
        let full = nhs(*c);
        let n = NhsNumber::parse(&full).unwrap();
        for form in [
            full.clone(),
            n.spaced(),
            format!("{}***{}", &full[..3], &full[6..]),
        ] {
            assert!(!dump.contains(&form), "unflagged child {form} left a trace");
        }
    }
    assert_eq!(
        site.sql("SELECT sum(not_found) FROM lookup_counts"),
        11,
        "only counted"
    );
    let archived: usize = fs::read_dir(site.path().join("var/archive"))
        .unwrap()
        .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(
        archived, 2,
        "only the two extracts: attendance files are never archived"
    );
}

#[test]
fn query_json_and_usage_errors() {
    let site = Site::new();
    let q = |args: &[&str]| {
        gateway(site.path())
            .arg("query")
            .args(args)
            .output()
            .unwrap()
    };
    let out = q(&[
        &nhs(2),
        "--org",
        "RWG",
        "--user",
        "Dr Q",
        "--role",
        "Doctor",
        "--setting",
        "UTC",
        "--at",
        "2026-11-21T09:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flagged"], true);
    assert_eq!(v["notified"], serde_json::json!(["202", "919"]));
    let schema: Value =
        serde_json::from_slice(&fs::read(repo().join("schemas/query.schema.json")).unwrap())
            .unwrap();
    let errors: Vec<String> = jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(&v)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let out = q(&[
        &nhs(60),
        "--org",
        "RWG",
        "--user",
        "Dr Q",
        "--role",
        "Doctor",
        "--setting",
        "ED",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["flagged"].as_bool(), v["flags"].as_array().map(Vec::len)),
        (Some(false), Some(0))
    );
    assert_eq!(
        q(&[
            "9990000019",
            "--org",
            "RWG",
            "--user",
            "u",
            "--role",
            "r",
            "--setting",
            "ED"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        q(&[
            &nhs(1),
            "--org",
            "XYZ",
            "--user",
            "u",
            "--role",
            "r",
            "--setting",
            "ED"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        q(&[
            &nhs(1),
            "--org",
            "RWG",
            "--user",
            "u",
            "--role",
            "r",
            "--setting",
            "A&E"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn a_stop_between_queueing_writing_and_marking_loses_and_doubles_nothing() {
    let site = Site::new();
    // Queued (committed with the attendance), not yet flushed: a stop here loses nothing.
    site.attend(
        "20261121T101500",
        &[
            (1, "2026-11-21T09:42:00+00:00", "ED", "Dr A"),
            (2, "2026-11-21T09:43:00+00:00", "ED", "Dr A"),
        ],
    );
    // Killed after writing the files, before marking them written.
    let out = gateway(site.path())
        .env("CPIS_GATEWAY_FAULT", "abort-after-notify-write")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "the process died");
    assert_eq!(
        site.sql("SELECT count(*) FROM notify_batches WHERE written = 0"),
        2
    );
    site.flush();
    site.flush();
    assert_eq!(
        site.sql("SELECT count(*) FROM notify_batches WHERE written = 0"),
        0
    );
    assert_eq!(
        site.notifications("919").len(),
        2,
        "child 1 and child 2, once each"
    );
    assert_eq!(site.notifications("202").len(), 1);
    let status: Value = serde_json::from_slice(
        &gateway(site.path())
            .args(["status", "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["pending_notifications"], 0);
}

#[test]
fn a_tampered_access_log_is_caught_and_named() {
    let site = Site::new();
    site.attend(
        "20261121T101500",
        &[
            (1, "2026-11-21T09:42:00+00:00", "ED", "Dr A"),
            (2, "2026-11-21T09:43:00+00:00", "GP", "Dr B"),
            (1, "2026-11-21T09:50:00+00:00", "ED", "Dr C"),
        ],
    );
    let out = gateway(site.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 entries"));
    crate::backend::tamper(
        site.path(),
        "access_log",
        "UPDATE access_log SET user_name = 'Dr D' WHERE id = 2",
    );
    let out = gateway(site.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("entry 2 does not match"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_daemon_takes_attendance_files_and_deletes_them_after_commit() {
    let site = Site::new();
    let inbox = site.path().join("var/mailboxes/RWG/in");
    fs::create_dir_all(&inbox).unwrap();
    let name = "CPIS_ATTEND_RWG_20261121T101500.csv";
    fs::write(
        inbox.join(name),
        format!(
            "{ATTEND_HEADER}\n{},2026-11-21T09:42:00Z,RWG,West Herts,ED,Dr A,Doctor\n",
            nhs(1)
        ),
    )
    .unwrap();
    let out = site.flush();
    assert_ok(&out);
    assert!(!inbox.join(name).exists());
    assert!(site
        .out("RWG")
        .join("CPIS_FLAGS_CPIS_ATTEND_RWG_20261121T101500.json")
        .exists());
    assert_eq!(
        site.notifications("919").len(),
        1,
        "flushed by the same run"
    );
}

#[test]
fn an_attendance_file_committed_just_before_a_crash_is_finished_not_redone() {
    let site = Site::new();
    let inbox = site.path().join("var/mailboxes/RWG/in");
    fs::create_dir_all(&inbox).unwrap();
    let name = "CPIS_ATTEND_RWG_20261121T101500.csv";
    fs::write(
        inbox.join(name),
        format!(
            "{ATTEND_HEADER}\n{},2026-11-21T09:42:00Z,RWG,West Herts,ED,Dr A,Doctor\n",
            nhs(1)
        ),
    )
    .unwrap();
    let out = gateway(site.path())
        .env("CPIS_GATEWAY_FAULT", "abort-after-commit")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "the process died");
    assert!(inbox.join(name).exists(), "still in in/");
    assert!(
        !site
            .out("RWG")
            .join("CPIS_FLAGS_CPIS_ATTEND_RWG_20261121T101500.json")
            .exists(),
        "died before the flags went"
    );
    let out = site.flush();
    assert_ok(&out);
    assert!(!inbox.join(name).exists());
    assert!(
        site.out("RWG")
            .join("CPIS_FLAGS_CPIS_ATTEND_RWG_20261121T101500.json")
            .exists(),
        "the stored flag response is sent"
    );
    assert!(site
        .out("RWG")
        .join("CPIS_ACK_CPIS_ATTEND_RWG_20261121T101500.json")
        .exists());
    assert_eq!(
        site.sql("SELECT count(*) FROM files WHERE kind = 'attendance'"),
        1,
        "one outcome"
    );
    assert_eq!(
        site.sql("SELECT count(*) FROM presentations"),
        1,
        "recorded once"
    );
    assert_eq!(site.notifications("919").len(), 1, "notified once");
}

impl Site {
    /// `query` for child `child` as Dr Q at RWG, JSON, at `at`.
    fn query(&self, child: u64, setting: &str, at: &str) -> Value {
        let out = gateway(self.path())
            .args(["query", &nhs(child), "--org", "RWG", "--user", "Dr Q"])
            .args(["--role", "Doctor", "--setting", setting, "--at", at])
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn audit(&self, extra: &[&str]) -> (i32, String) {
        let out = gateway(self.path())
            .args(["audit", "verify"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The head `audit verify` prints (`ENTRIES:HASH`).
    fn head(&self) -> String {
        let (code, text) = self.audit(&[]);
        assert_eq!(code, 0, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix("head: "))
            .expect("a head line")
            .to_owned()
    }

    /// Alters the access log behind the gateway's back.
    fn tamper(&self, statement: &str) {
        crate::backend::tamper(self.path(), "access_log", statement);
    }
}

#[test]
fn a_child_whose_records_all_ended_is_shown_but_not_flagged() {
    let site = Site::new();
    let v = site.query(3, "ED", "2026-11-21T09:00:00Z");
    assert_eq!(v["flagged"], false);
    assert_eq!(v["flags"][0]["status"], "ended");
    assert_eq!(v["notified"], serde_json::json!([]));
    assert_eq!(site.sql("SELECT count(*) FROM presentations"), 0);
    assert_eq!(site.sql("SELECT count(*) FROM notifications"), 0);
    assert_eq!(site.sql("SELECT count(*) FROM access_log"), 1);
    let text = gateway(site.path())
        .args(["query", &nhs(3), "--org", "RWG", "--user", "Dr Q"])
        .args(["--role", "Doctor", "--setting", "ED"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("not flagged"), "{text}");
    assert!(!text.contains("FLAGGED"), "{text}");
}

#[test]
fn a_query_never_shows_presentations_after_its_moment() {
    let site = Site::new();
    // Processed first (say, after downtime), but it happened at 10:00.
    site.attend(
        "20261121T101500",
        &[(1, "2026-11-21T10:00:00+00:00", "ED", "Dr A")],
    );
    let early = site.query(1, "UTC", "2026-11-21T08:00:00Z");
    assert_eq!(early["flagged"], true);
    assert_eq!(early["presentations"], serde_json::json!([]));
    let late = site.query(1, "UTC", "2026-11-21T11:00:00Z");
    let shown: Vec<&str> = late["presentations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["attended_at"].as_str().unwrap())
        .collect();
    // Newest first; the 08:00 query was itself a presentation at urgent care.
    assert_eq!(
        shown,
        ["2026-11-21T10:00:00.000Z", "2026-11-21T08:00:00.000Z"]
    );
}

#[test]
fn each_row_sees_exactly_the_presentations_before_it_whatever_the_order_of_the_rows() {
    let site = Site::new();
    // Thirty presentations of child 1 long before the next file (more than a flag shows),
    // one within its window and one after two of its rows' moments.
    let mut earlier: Vec<(u64, String, &str, String)> = (0..30)
        .map(|i| {
            (
                1,
                format!("2026-11-15T{:02}:{:02}:00+00:00", 10 + i / 6, i % 6 * 10),
                "ED",
                format!("Dr A{i}"),
            )
        })
        .collect();
    earlier.push((1, "2026-11-20T06:00:00+00:00".into(), "ED", "Dr C".into()));
    earlier.push((1, "2026-11-21T13:00:00+00:00".into(), "ED", "Dr D".into()));
    earlier.push((1, "2026-11-21T11:00:00+00:00".into(), "GP", "Dr E".into()));
    let rows: Vec<(u64, &str, &str, &str)> = earlier
        .iter()
        .map(|(c, at, s, u)| (*c, at.as_str(), *s, u.as_str()))
        .collect();
    assert_eq!(
        site.attend("20261122T080000", &rows)["attendance"]["flagged"],
        33
    );
    // Out of time order: each row sees what the store held before it, its own file's
    // earlier rows included, never a later row's.
    let later = [
        (1, "2026-11-21T12:00:00+00:00", "ED", "Dr B"),
        (1, "2026-11-20T12:00:00+00:00", "ED", "Dr B"),
        (1, "2026-11-21T12:30:00+00:00", "ED", "Dr B"),
        (1, "2026-11-19T12:00:00+00:00", "GP", "Dr B"),
    ];
    site.attend("20261122T085900", &later);
    let flags = site.flags("20261122T085900");
    let flagged = flags["flagged"].as_array().unwrap();
    assert_eq!(flagged.len(), 4);
    // The model: every unscheduled presentation so far, newest first up to the moment.
    let stamp = |at: &str| {
        chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut so_far: Vec<String> = earlier
        .iter()
        .filter(|(_, _, s, _)| *s == "ED")
        .map(|(_, at, _, _)| stamp(at))
        .collect();
    for (row, (_, at, setting, _)) in flagged.iter().zip(later) {
        let mut expect: Vec<String> = so_far
            .iter()
            .filter(|t| **t <= stamp(at))
            .cloned()
            .collect();
        expect.sort_unstable_by(|a, b| b.cmp(a));
        expect.truncate(25);
        let shown: Vec<&str> = row["presentations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["attended_at"].as_str().unwrap())
            .collect();
        assert_eq!(shown, expect, "row {}", row["row"]);
        if setting == "ED" {
            so_far.push(stamp(at));
        }
    }
    // Dr B's first two views are more than a day apart; the third is within a day of the
    // first; the GP view is a silent read.
    let notified: Vec<&Value> = flagged.iter().map(|r| &r["notified"]).collect();
    assert_eq!(
        notified,
        [
            &serde_json::json!(["919"]),
            &serde_json::json!(["919"]),
            &serde_json::json!([]),
            &serde_json::json!([])
        ]
    );
    assert_eq!(site.sql("SELECT count(*) FROM presentations"), 37);
    assert_eq!(site.sql("SELECT count(*) FROM access_log"), 37);
    let out = gateway(site.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_ok(&out);
}

#[test]
fn the_access_log_head_catches_a_cut_or_a_rewritten_log() {
    let site = Site::new();
    site.attend(
        "20261121T101500",
        &[
            (1, "2026-11-21T09:42:00+00:00", "ED", "Dr A"),
            (2, "2026-11-21T09:43:00+00:00", "GP", "Dr B"),
        ],
    );
    let head = site.head();
    assert!(head.starts_with("2:"), "{head}");
    // The head is carried by status (JSON) and the nightly report.
    let status: Value = serde_json::from_slice(
        &gateway(site.path())
            .args(["status", "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        format!(
            "{}:{}",
            status["access_log"]["entries"],
            status["access_log"]["hash"].as_str().unwrap()
        ),
        head
    );
    // Today so far (the clock is fixed at NOW): the head as it stands.
    gateway(site.path())
        .args(["report", "--preview"])
        .assert()
        .success();
    let page = fs::read_to_string(
        site.path()
            .join("var/reports/preview/2026-11-22/index.html"),
    )
    .unwrap();
    assert!(page.contains(&head), "the report carries the head");
    // The day before: the look-ups happened then (`at`), but were written today, so that
    // day's report knew none of them; its head checks out against the log.
    gateway(site.path())
        .args(["report", "--date", "2026-11-21"])
        .assert()
        .success();
    let before = fs::read_to_string(site.path().join("var/reports/2026-11-21/index.html")).unwrap();
    let genesis = format!("0:{}", "0".repeat(64));
    assert!(
        before.contains(&genesis),
        "nothing written by the end of the 21st"
    );
    assert_eq!(site.audit(&["--expect-head", &genesis]).0, 0);
    // A later entry extends the head: still fine.
    site.query(1, "UTC", "2026-11-21T12:00:00Z");
    assert_eq!(site.audit(&["--expect-head", &head]).0, 0);
    // Cut the newest two entries: the chain alone still verifies, the head does not.
    site.tamper(
        "DELETE FROM access_log WHERE id IN (SELECT id FROM access_log ORDER BY id DESC LIMIT 2)",
    );
    assert_eq!(site.audit(&[]).0, 0, "a cut chain is still a valid chain");
    let (code, text) = site.audit(&["--expect-head", &head]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("access log cut"), "{text}");
    // Rewrite everything and chain it anew with the same count: caught too.
    site.tamper("DELETE FROM access_log");
    site.query(1, "UTC", "2026-11-21T13:00:00Z");
    site.query(2, "UTC", "2026-11-21T13:00:00Z");
    assert_eq!(site.audit(&[]).0, 0);
    let (code, text) = site.audit(&["--expect-head", &head]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("access log rewritten"), "{text}");
    assert_eq!(
        site.audit(&["--expect-head", "2:xyz"]).0,
        2,
        "a bad head is a usage error"
    );
}

#[test]
fn a_hospital_controls_neither_the_time_nor_the_identity_of_a_look_up() {
    let site = Site::new();
    // Child 4's plan in 202 was open from 2020 to 2024: a row claiming 2021 must not see it.
    // Child 1 is open in 919: a row without a user, and one naming another organisation.
    let text = format!(
        "{ATTEND_HEADER}\n\
         {},2021-06-01T10:00:00+01:00,RWG,West Herts,ED,Dr A,Doctor\n\
         {},2026-11-21T09:42:00Z,RWG,West Herts,ED,,Doctor\n\
         {},2026-11-21T09:43:00Z,RWG,West Herts,ED,Dr B,\n\
         {},2026-11-21T09:44:00Z,RWG,Totally Legit Hospital,ED,Dr C,Doctor\n\
         {},2026-11-21T09:45:00Z,RWG,West Herts,ED,Dr D,Doctor\n\
         {},2026-11-21T09:46:00Z,RWG,West Herts,ED,Dr D,Doctor\n\
         {},2026-11-21T09:47:00Z,RWG,West Herts,ED,Dr D,Doctor\n",
        nhs(4),
        nhs(1),
        nhs(1),
        nhs(1),
        nhs(5),
        nhs(6),
        nhs(7)
    );
    let ack = site.ingest("RWG", "CPIS_ATTEND_RWG_20261121T101500.csv", &text);
    let codes = row_codes(&ack);
    assert!(codes.contains(&(1, "ATTENDED_AT_OLD".to_owned())), "{ack}");
    assert!(codes.contains(&(2, "USER_MISSING".to_owned())), "{ack}");
    assert!(codes.contains(&(3, "USER_MISSING".to_owned())), "{ack}");
    let flags = site.flags("20261121T101500");
    assert_eq!(flags["flagged"].as_array().unwrap().len(), 1, "{flags}");
    assert!(
        !flags.to_string().contains(&nhs(4)),
        "nothing of the old plan is shown: {flags}"
    );
    assert_ok(&site.flush());
    assert!(
        site.notifications("202").is_empty(),
        "202 is not told of 2021"
    );
    let told = site.notifications("919");
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        told[0][5], "West Herts",
        "the configured name, not the row's"
    );
    assert!(!fs::read_dir(site.out("LA919"))
        .unwrap()
        .flatten()
        .any(|e| fs::read_to_string(e.path())
            .unwrap_or_default()
            .contains("Legit")));
    // No anonymous entry in the access log.
    assert_eq!(
        site.sql("SELECT count(*) FROM access_log WHERE user_name = '' OR user_role = ''"),
        0
    );
    // query: the same bounds.
    for args in [
        vec![
            "--user",
            "Dr Q",
            "--role",
            "Doctor",
            "--at",
            "2021-06-01T10:00:00Z",
        ],
        vec![
            "--user",
            "Dr Q",
            "--role",
            "Doctor",
            "--at",
            "2026-11-23T10:00:00Z",
        ],
        vec!["--user", "", "--role", "Doctor"],
        vec!["--user", "Dr Q", "--role", " "],
    ] {
        let out = gateway(site.path())
            .args(["query", &nhs(4), "--org", "RWG", "--setting", "ED"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn the_access_log_hashes_when_each_entry_was_written_and_its_silent_flag_exactly() {
    let site = Site::new();
    site.attend(
        "20261121T101500",
        &[
            (1, "2026-11-21T09:42:00+00:00", "ED", "Dr A"),
            (1, "2026-11-21T09:50:00+00:00", "GP", "Dr B"),
        ],
    );
    assert_eq!(site.audit(&[]).0, 0);
    // The real time of a look-up cannot be moved.
    site.tamper("UPDATE access_log SET written_at = '2020-06-01T10:00:00.000Z' WHERE id = 1");
    let (code, text) = site.audit(&[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("entry 1 does not match"), "{text}");
    // A silent read cannot be turned into anything else, even a value read as true.
    let site = Site::new();
    site.attend(
        "20261121T101500",
        &[(1, "2026-11-21T09:50:00+00:00", "GP", "Dr B")],
    );
    assert_eq!(
        site.sql("SELECT count(*) FROM access_log WHERE silent = 1"),
        1
    );
    site.tamper("UPDATE access_log SET silent = 2 WHERE id = 1");
    let (code, text) = site.audit(&[]);
    assert_eq!(code, 1, "{text}");
}

#[test]
fn a_file_dated_in_the_future_and_invisible_users_are_refused() {
    let site = Site::new();
    // A file named for 2030 whose row is in 2030: the look-up cannot be moved there.
    let ack = site.attend(
        "20300101T101500",
        &[(1, "2030-01-01T09:00:00+00:00", "ED", "Dr A")],
    );
    assert_eq!(row_codes(&ack), [(1, "ATTENDED_AT".to_owned())], "{ack}");
    assert_eq!(site.sql("SELECT count(*) FROM access_log"), 0);
    // Names made of nothing visible.
    for (user, role) in [
        ("\u{200b}", "Doctor"),
        ("Dr Q", "\u{1}"),
        ("Dr \u{202e}Q", "Doctor"),
    ] {
        let out = gateway(site.path())
            .args(["query", &nhs(1), "--org", "RWG", "--setting", "ED"])
            .args(["--user", user, "--role", role])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{user:?} {role:?}");
    }
    let ack = site.attend(
        "20261121T101500",
        &[
            (1, "2026-11-21T09:42:00+00:00", "ED", "\u{200b}"),
            (5, "2026-11-21T09:43:00+00:00", "ED", "Dr B"),
            (6, "2026-11-21T09:44:00+00:00", "ED", "Dr B"),
        ],
    );
    assert_eq!(row_codes(&ack), [(1, "USER_MISSING".to_owned())], "{ack}");
    assert_eq!(site.sql("SELECT count(*) FROM access_log"), 0);
}

#[test]
fn an_entry_turned_back_to_an_older_hash_version_is_caught() {
    let site = Site::new();
    site.attend(
        "20261121T101500",
        &[
            (1, "2026-11-21T09:42:00+00:00", "ED", "Dr A"),
            (1, "2026-11-21T09:50:00+00:00", "GP", "Dr B"),
        ],
    );
    let head = site.head();
    // Version 1 did not hash written_at: move its text into the hashed result, behind the
    // separator, and rewrite it, as someone with the database's rights could.
    let sep = if crate::backend::postgres() {
        "chr(31)"
    } else {
        "char(31)"
    };
    site.tamper(&format!(
        "UPDATE access_log SET hash_version = 1, result = result || {sep} || written_at, \
         written_at = '2020-01-01T00:00:00.000Z' WHERE id = 2"
    ));
    let (code, text) = site.audit(&["--expect-head", &head]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("entry 2"), "{text}");
}

#[test]
fn a_record_kept_cold_is_shown_again_when_older_attendances_are_allowed() {
    // Child 9 ended in June 2025: by November 2026 no attendance of the last 7 days can
    // show it, so the extract that says so keeps it cold. Allowed attendances of a year
    // back, a look-up dated December 2025 must show it again, ended.
    let dir = temp();
    let config = |max_age: u32| {
        fs::write(
            dir.path().join("config.toml"),
            format!(
                "[gateway]\nroot = \"var\"\nlocal_authorities = [\"202\"]\n\
                 attendance_max_age_days = {max_age}\n\
                 [[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n"
            ),
        )
        .unwrap()
    };
    config(7);
    let extract = dir.path().join("CPIS_EXTRACT_202_20261120T020000.csv");
    fs::write(
        &extract,
        format!(
            "nhs_number,plan_type,start_date,end_date,la_code,edt_phone,office_phone,local_ref\n\
             {},CPP,2026-03-01,,202,01632 960101,01632 960102,C-1\n\
             {},CPP,2024-01-01,2025-06-01,202,01632 960101,01632 960102,C-9\n",
            nhs(1),
            nhs(9)
        ),
    )
    .unwrap();
    let now = "2026-11-21T10:00:00Z";
    let out = gateway(dir.path())
        .env("CPIS_GATEWAY_NOW", now)
        .args(["ingest", "--mailbox", "LA202"])
        .arg(&extract)
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(
        crate::backend::count(dir.path(), "SELECT count(*) FROM records_cold"),
        1
    );
    let query = |at: &str| -> Value {
        let out = gateway(dir.path())
            .env("CPIS_GATEWAY_NOW", now)
            .args(["query", &nhs(9), "--org", "RWG", "--user", "Dr Q"])
            .args(["--role", "Doctor", "--setting", "ED", "--at", at])
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        query("2026-11-21T09:00:00Z")["flags"],
        serde_json::json!([]),
        "ended over a year before: not shown"
    );
    config(366);
    let v = query("2025-12-01T09:00:00Z");
    assert_eq!(v["flagged"], false, "{v}");
    assert_eq!(v["flags"][0]["status"], "ended", "{v}");
    assert_eq!(v["flags"][0]["end_date"], "2025-06-01", "{v}");
}

#[test]
fn rejected_rows_beyond_those_listed_are_counted_in_the_flag_response() {
    let site = Site::new();
    // 30,000 rows, 10,002 with a setting that is not one: the first 10,000 problems are
    // listed, the rest counted, so every row is accounted for.
    let mut text = format!("{ATTEND_HEADER}\n");
    for i in 1..=30_000u64 {
        let setting = if i <= 2 || i % 3 == 0 { "XX" } else { "ED" };
        text.push_str(&format!(
            "{},2026-11-22T08:00:00+00:00,RWG,West Herts,{setting},Dr A,Doctor\n",
            nhs(100 + i)
        ));
    }
    let ack = site.ingest("RWG", "CPIS_ATTEND_RWG_20261122T085900.csv", &text);
    assert_eq!(ack["invalid_rows"], 10_002);
    let flags = site.flags("20261122T085900");
    assert_eq!(flags["rejected"].as_array().unwrap().len(), 10_000);
    assert_eq!(
        flags["rejected_unlisted"],
        serde_json::json!([{"code": "SETTING", "severity": "error", "count": 2}])
    );
    assert_eq!(
        flags["not_flagged_rows"].as_array().unwrap().len(),
        30_000 - 10_002
    );
}
