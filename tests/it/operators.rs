//! An operator's commands through the real binary: nothing created by commands that only
//! look, root refused on a service-owned root, `status` in the order an operator acts,
//! `quarantine show`, `replay` by name or prefix, `archive list`, and quiet broken pipes.

use crate::helpers::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

const HEADER: &str = "nhs_number,plan_type,start_date,la_code,edt_phone,office_phone,local_ref";

fn nhs(i: u64) -> String {
    test_nhs(999_600_000, i)
}

/// An extract of `la` at `stamp` naming children `children` (all CPP, open).
fn extract(
    dir: &Path,
    la: &str,
    stamp: &str,
    children: std::ops::Range<u64>,
) -> std::path::PathBuf {
    let mut text = format!("{HEADER}\n");
    for i in children {
        text.push_str(&format!(
            "{},CPP,2026-01-01,{la},01632 960001,01632 960002,REF-{i}\n",
            nhs(i)
        ));
    }
    let path = dir.join(format!("CPIS_EXTRACT_{la}_{stamp}.csv"));
    fs::write(&path, text).unwrap();
    path
}

fn config(dir: &Path) {
    fs::write(
        dir.join("config.toml"),
        "[gateway]\nroot = \"var\"\nlocal_authorities = [\"919\", \"202\", \"330\"]\n",
    )
    .unwrap();
}

/// A temporary folder with the configuration above.
fn site() -> tempfile::TempDir {
    let dir = temp();
    config(dir.path());
    dir
}

fn ingest(dir: &Path, mailbox: &str, file: &Path) -> i32 {
    gateway(dir)
        .args(["ingest", "--mailbox", mailbox])
        .arg(file)
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

/// Ingests an extract of LA 919 at `stamp` naming `children`; the exit code.
fn ingest_919(dir: &Path, stamp: &str, children: std::ops::Range<u64>) -> i32 {
    ingest(dir, "LA919", &extract(dir, "919", stamp, children))
}

/// A command's JSON output.
fn json_of(dir: &Path, args: &[&str]) -> Value {
    let out = gateway(dir).args(args).output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn commands_that_only_look_create_nothing_and_say_where_they_looked() {
    let dir = site();
    for args in [
        &["status"][..],
        &["report"],
        &[
            "query",
            "9990000018",
            "--org",
            "RWG",
            "--user",
            "u",
            "--role",
            "r",
            "--setting",
            "ED",
        ],
        &["quarantine", "list"],
        &["replay", "abc"],
        &["audit", "verify"],
        &["archive", "list"],
    ] {
        let out = gateway(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no gateway store at") || err.contains("no gateway root at"),
            "{args:?}: {err}"
        );
        assert!(err.contains("config.toml"), "{args:?}: {err}");
        assert!(
            !dir.path().join("var").exists(),
            "{args:?} created the root"
        );
    }
    gateway(dir.path()).arg("init").assert().success();
    let out = gateway(dir.path()).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    assert!(
        first.contains("config.toml") && first.contains("var"),
        "{first}"
    );
}

#[test]
fn root_on_a_service_owned_root_is_refused_unless_it_becomes_the_owner() {
    // The tests run as root (as CI does); `nobody` stands for the service user.
    let dir = site();
    gateway(dir.path()).arg("init").assert().success();
    let st = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(dir.path().join("var"))
        .status()
        .unwrap();
    assert!(st.success());
    // The temporary folder itself must be reachable by nobody.
    let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
    let out = gateway(dir.path()).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("belongs to nobody") && err.contains("sudo -u nobody"),
        "{err}"
    );
    let out = gateway(dir.path())
        .args(["--as-owner", "report", "--date", "2026-11-21"])
        .output()
        .unwrap();
    assert_ok(&out);
    let made = fs::metadata(dir.path().join("var/reports/2026-11-21")).unwrap();
    use std::os::unix::fs::MetadataExt;
    let nobody = fs::metadata(dir.path().join("var")).unwrap().uid();
    assert_eq!(
        made.uid(),
        nobody,
        "the report folder belongs to the service user"
    );
}

#[test]
fn status_puts_what_needs_attention_first() {
    let dir = site();
    let d = dir.path();
    // 919: applied, then a file that would close most of its records (quarantined), then a
    // newer one applied (so the quarantined one is superseded).
    assert_eq!(ingest_919(d, "20261120T020000", 0..10), 0);
    assert_eq!(ingest_919(d, "20261121T000000", 0..2), 1);
    assert_eq!(ingest_919(d, "20261121T020000", 0..11), 0);
    // 202: its latest file was rejected (an unknown column).
    let bad = d.join("CPIS_EXTRACT_202_20261121T020000.csv");
    fs::write(&bad, format!("{HEADER},colour\n")).unwrap();
    assert_eq!(ingest(d, "LA202", &bad), 1);
    // 330 never sent anything.
    let out = gateway(d).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
    };
    assert!(at("NEEDS ATTENTION") < at("quarantined Q1"));
    assert!(at("quarantined Q1") < at("superseded by a newer extract"));
    assert!(at("superseded") < at("LA 202 Camden: its latest file was rejected"));
    assert!(at("its latest file was rejected") < at("1 file(s) rejected in the last 24 hours"));
    assert!(at("rejected in the last 24 hours") < at("no extract applied yet: 202 330"));
    assert!(at("no extract applied yet: 202 330") < at("daemon: not running"));
    assert!(text.contains("HEADER"), "the codes are shown");
    assert!(
        !text.contains("Hertfordshire "),
        "no LA table without --all:\n{text}"
    );
    let all = gateway(d).args(["status", "--all"]).output().unwrap();
    assert!(String::from_utf8_lossy(&all.stdout).contains("Hertfordshire"));
    let json = json_of(d, &["status", "--format", "json"]);
    assert_eq!(json["quarantine"][0]["superseded"], true);
    assert_eq!(json["last_file_rejected"][0]["sender"], "202");
    assert_eq!(json["last_file_rejected"][0]["codes"], "HEADER");
}

#[test]
fn quarantine_show_lists_what_a_release_would_close_as_the_la_knows_it() {
    let dir = site();
    let d = dir.path();
    assert_eq!(ingest_919(d, "20261120T020000", 0..10), 0);
    assert_eq!(ingest_919(d, "20261121T020000", 0..3), 1);
    let out = gateway(d)
        .args(["quarantine", "show", "Q1"])
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("close 7 of 10 open records"), "{text}");
    assert!(
        text.contains("REF-3") && text.contains("REF-9") && !text.contains("REF-2 "),
        "{text}"
    );
    assert!(!text.contains(&nhs(3)), "NHS numbers are masked: {text}");
    let json = json_of(d, &["quarantine", "show", "Q1", "--format", "json"]);
    assert_eq!(json["changes"]["closed_by_absence"], 7);
    assert_eq!(json["closing"].as_array().unwrap().len(), 7);
    // Showing changed nothing: the entry is still pending.
    let list = gateway(d).args(["quarantine", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("pending"));
}

#[test]
fn replay_takes_a_name_or_a_prefix_and_archive_list_shows_them() {
    let dir = site();
    let d = dir.path();
    let first = extract(d, "919", "20261120T020000", 0..4);
    assert_eq!(ingest(d, "LA919", &first), 0);
    let list = gateway(d).args(["archive", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("CPIS_EXTRACT_919_20261120T020000.csv"),
        "{text}"
    );
    let json = json_of(
        d,
        &["archive", "list", "--mailbox", "LA919", "--format", "json"],
    );
    let sha = json[0]["sha256"].as_str().unwrap().to_owned();
    for name in [&sha[..8], "CPIS_EXTRACT_919_20261120T020000.csv"] {
        let out = gateway(d).args(["replay", name]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stderr).contains("already applied"));
    }
    let out = gateway(d).args(["replay", "ffffffff"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("archive list"));
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let dir = site();
    let d = dir.path();
    assert_eq!(ingest_919(d, "20261120T020000", 0..3), 0);
    for args in [
        vec!["status", "--all"],
        vec!["archive", "list"],
        vec![
            "gen",
            "extract",
            "--la",
            "919",
            "--rows",
            "5",
            "--manifest",
            "--out",
            "gen",
        ],
        vec!["validate", "--format", "json"],
    ] {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"));
        crate::backend::with_store(&mut cmd, d);
        cmd.current_dir(d)
            .env("CPIS_GATEWAY_NOW", NOW)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if args[0] == "validate" {
            // Enough output that the pipe is closed while it is still writing.
            for k in 0..200 {
                cmd.arg(extract(
                    d,
                    "919",
                    &format!("202611{:02}T0200{:02}", 1 + k / 60, k % 60),
                    0..3,
                ));
            }
        }
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take()); // the reader goes away at once, as `| head -0` would
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("Broken pipe") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// `validate` of one file written with `text` as `name`: (exit code, stdout).
fn validate_text(dir: &Path, name: &str, text: &[u8], format: &str) -> (i32, String) {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    let out = gateway(dir)
        .args(["validate", "--format", format])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_data_officer_finds_every_row_as_the_la_knows_it() {
    let dir = temp();
    let d = dir.path();
    let name = "CPIS_EXTRACT_919_20261121T020000.csv";
    let text = format!(
        "{HEADER}\n{},CPP,2026-01-01,919,01632 960001,01632 960002,REF-1\n\n\n{},CPP,21/11/2025,919,1632 960001,01632 960002,REF-2\n,,,,,,\n",
        nhs(1),
        nhs(2)
    );
    // Text: row and line (the line an editor shows), the hints, blank rows counted.
    let (code, out) = validate_text(d, name, text.as_bytes(), "text");
    assert_eq!(code, 1);
    assert!(out.contains("row 2 (line 5), start_date"), "{out}");
    assert!(out.contains("write 2025-11-21"), "{out}");
    assert!(
        out.contains("dropped the leading 0: write 01632960001"),
        "{out}"
    );
    assert!(out.contains("blank rows skipped: 3"), "{out}");
    // CSV: the row as sent, the offending value.
    let (_, csv) = validate_text(d, name, text.as_bytes(), "csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "file,row,line,column,code,severity,value,nhs_number,plan_type,local_ref,message"
    );
    let date_row = lines.find(|l| l.contains("DATE_FORMAT")).unwrap();
    assert!(
        date_row.starts_with(&format!(
            "{name},2,5,start_date,DATE_FORMAT,error,21/11/2025,{},CPP,REF-2,",
            nhs(2)
        )),
        "{date_row}"
    );
    // The acknowledgement CSV says the same; a refused file has one too.
    let root = temp();
    let file = root.path().join(name);
    fs::write(&file, &text).unwrap();
    assert_eq!(ingest(root.path(), "LA919", &file), 1);
    let ack = fs::read_to_string(
        root.path()
            .join("var/mailboxes/LA919/out/CPIS_ACK_CPIS_EXTRACT_919_20261121T020000.csv"),
    )
    .unwrap();
    assert!(
        ack.contains(&format!(
            "2,5,start_date,DATE_FORMAT,error,21/11/2025,{},CPP,REF-2,",
            nhs(2)
        )),
        "{ack}"
    );
    let refused = root.path().join("CPIS_EXTRACT_919_20261122T020000.csv");
    fs::write(&refused, HEADER.replace(',', ";")).unwrap();
    assert_eq!(ingest(root.path(), "LA919", &refused), 1);
    let ack = fs::read_to_string(
        root.path()
            .join("var/mailboxes/LA919/out/CPIS_ACK_CPIS_EXTRACT_919_20261122T020000.csv"),
    )
    .unwrap();
    assert!(
        ack.lines().nth(1).unwrap().starts_with(",,,HEADER,file,"),
        "{ack}"
    );
    assert!(ack.contains("separated by semicolons"), "{ack}");
}

#[test]
fn other_encodings_are_named_with_where_they_go_wrong() {
    let dir = temp();
    let d = dir.path();
    let name = "CPIS_EXTRACT_919_20261121T020000.csv";
    let latin1 = [
        HEADER.as_bytes(),
        format!(
            "\n{},CPP,2026-01-01,919,01632 960001,01632 960002,Ren",
            nhs(1)
        )
        .as_bytes(),
        b"\xe9e\n",
    ]
    .concat();
    let (code, out) = validate_text(d, name, &latin1, "text");
    assert_eq!(code, 1);
    assert!(out.contains("ENCODING"), "{out}");
    assert!(
        out.contains("Windows-1252")
            && out.contains("line 2")
            && out.contains("local_ref, character 4"),
        "{out}"
    );
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(HEADER.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let (_, out) = validate_text(d, name, &utf16, "text");
    assert!(out.contains("ENCODING") && out.contains("UTF-16"), "{out}");
}

#[test]
fn validate_reads_standard_input() {
    let dir = temp();
    let text = format!(
        "{HEADER}\n{},CPP,2026-01-01,919,01632 960001,01632 960002,R\n",
        nhs(1)
    );
    let out = gateway(dir.path())
        .args([
            "validate",
            "--format",
            "json",
            "--name",
            "CPIS_EXTRACT_919_20261121T020000.csv",
            "-",
        ])
        .write_stdin(text)
        .output()
        .unwrap();
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["file"], "CPIS_EXTRACT_919_20261121T020000.csv");
    assert_eq!(v[0]["rows"], 1);
    let out = gateway(dir.path())
        .args(["validate", "-"])
        .write_stdin("x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
}

#[test]
fn retention_deletes_only_what_is_past_its_time() {
    let dir = site();
    let d = dir.path();
    // An applied extract (archived), a quarantined one (archived, pending), a refused name,
    // a delivered outbox file and a report.
    assert_eq!(ingest_919(d, "20261120T020000", 0..10), 0);
    assert_eq!(ingest_919(d, "20261121T020000", 0..2), 1);
    let sent = d.join("var/mailboxes/LA919/out/sent");
    fs::create_dir_all(&sent).unwrap();
    fs::write(sent.join("CPIS_ACK_old.json"), "{}").unwrap();
    fs::create_dir_all(d.join("var/rejected")).unwrap();
    fs::write(d.join("var/rejected/20261101T000000_1_x"), "x").unwrap();
    gateway(d)
        .args(["report", "--date", "2026-11-21"])
        .assert()
        .success();
    let count = |dir: &str| {
        walkdir::WalkDir::new(d.join(dir))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .count()
    };
    assert_eq!(count("var/archive"), 2);
    let prune = |now: &str, extra: &[&str]| {
        let out = gateway(d)
            .env("CPIS_GATEWAY_NOW", now)
            .arg("prune")
            .args(extra)
            .output()
            .unwrap();
        assert_ok(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Ten days on: nothing is old enough.
    assert!(prune("2026-12-02T09:00:00Z", &[])
        .contains("deleted: 0 archived file(s), 0 sent file(s), 0 report day(s), 0 refused"));
    // 100 days on: a dry run counts, deletes nothing.
    let later = "2027-03-01T09:00:00Z";
    let dry = prune(later, &["--dry-run"]);
    assert!(
        dry.contains(
            "would delete: 1 archived file(s), 1 sent file(s), 0 report day(s), 1 refused"
        ),
        "{dry}"
    );
    assert_eq!(count("var/archive"), 2);
    // Then for real: the quarantined file stays (it may yet be released), the rest goes.
    prune(later, &[]);
    assert_eq!(
        count("var/archive"),
        1,
        "the pending quarantine's file stays"
    );
    assert_eq!(count("var/mailboxes/LA919/out/sent"), 0);
    assert_eq!(count("var/rejected"), 0);
    assert!(
        d.join("var/reports/2026-11-21").exists(),
        "reports are kept 400 days"
    );
    let status: Value = serde_json::from_slice(
        &gateway(d)
            .env("CPIS_GATEWAY_NOW", later)
            .args(["status", "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["last_prune"]["deleted"]["archive"], 1);
    // Record history is never pruned; a report past 400 days is.
    assert_eq!(
        crate::backend::count(d, "SELECT count(*) FROM record_versions"),
        10
    );
    assert!(fs::read_to_string(d.join("var/reports/index.html"))
        .unwrap()
        .contains("2026-11-21/index.html"));
    assert!(prune("2028-01-01T09:00:00Z", &[]).contains("1 report day(s)"));
    assert!(!d.join("var/reports/2026-11-21").exists());
    assert!(
        !fs::read_to_string(d.join("var/reports/index.html"))
            .unwrap()
            .contains("2026-11-21/index.html"),
        "the history page lists only the days left"
    );
}

#[test]
fn a_file_committed_before_a_stop_is_already_archived_and_is_finished_once() {
    let dir = site();
    let d = dir.path();
    // Committed, then the process dies before the inbound file leaves in/.
    let inbox = d.join("var/mailboxes/LA919/in");
    fs::create_dir_all(&inbox).unwrap();
    let file = extract(d, "919", "20261120T020000", 0..5);
    fs::copy(&file, inbox.join(file.file_name().unwrap())).unwrap();
    let out = gateway(d)
        .env("CPIS_GATEWAY_FAULT", "abort-after-commit")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The archive got its copy before the commit: nothing depends on the entry in in/.
    let bytes = fs::read(&file).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let kept = d.join("var/archive").join(&sha[..2]).join(&sha);
    assert_eq!(fs::read(&kept).unwrap(), bytes);
    // The next run finishes this very entry: no second processing.
    let out = gateway(d).args(["run", "--once"]).output().unwrap();
    assert_ok(&out);
    assert!(!inbox.join(file.file_name().unwrap()).exists());
    let files = crate::backend::count(d, "SELECT count(*) FROM files");
    assert_eq!(files, 1);
}

#[test]
fn an_unchanged_list_under_a_new_name_is_a_new_extract_and_a_control_refusal_is_not_a_duplicate() {
    let dir = site();
    let d = dir.path();
    let day = |stamp: &str, kids: std::ops::Range<u64>| extract(d, "919", stamp, kids);
    // Day 1: children 0-9; day 2: 0-10; day 3: the same bytes as day 1 under day 3's name.
    let one = day("20261119T020000", 0..10);
    let bytes = fs::read(&one).unwrap();
    assert_eq!(ingest(d, "LA919", &one), 0);
    assert_eq!(ingest(d, "LA919", &day("20261120T020000", 0..11)), 0);
    let three = d.join("CPIS_EXTRACT_919_20261121T020000.csv");
    fs::write(&three, &bytes).unwrap();
    let out = gateway(d)
        .args(["ingest", "--format", "json", "--mailbox", "LA919"])
        .arg(&three)
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r[0]["outcome"], "accepted", "{r}");
    assert_eq!(
        r[0]["changes"]["closed_by_absence"], 1,
        "child 10 closed: {r}"
    );
    // The very same file again is a duplicate.
    let again = gateway(d)
        .args(["ingest", "--format", "json", "--mailbox", "LA919"])
        .arg(&three)
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(r[0]["outcome"], "duplicate");

    // A file refused for its control file is taken when it comes back with a good one.
    let root = crate::daemon::Root::new(0);
    let name = "CPIS_EXTRACT_919_20261121T020000.csv";
    let inbox = root.inbox("LA919");
    fs::write(inbox.join(name), &bytes).unwrap();
    fs::write(
        inbox.join(name.replace(".csv", ".ctl")),
        "<DTSControl><From_DTS>LA919</From_DTS><From_DTS>LA919</From_DTS></DTSControl>",
    )
    .unwrap();
    assert_eq!(root.run_once().status.code(), Some(1));
    let ack = crate::daemon::read_json(&root.ack("LA919", name));
    assert_eq!(file_codes(&ack), ["XML"]);
    fs::write(inbox.join(name), &bytes).unwrap();
    fs::write(
        inbox.join(name.replace(".csv", ".ctl")),
        crate::daemon::control("LA919"),
    )
    .unwrap();
    assert_eq!(root.run_once().status.code(), Some(0));
    let ack = crate::daemon::read_json(&root.ack("LA919", name));
    assert_eq!(ack["outcome"], "accepted", "{ack}");
}

#[test]
fn every_xml_problem_names_the_attribute() {
    let dir = temp();
    let m = gen_extract(
        dir.path(),
        &[
            "--la",
            "919",
            "--rows",
            "20",
            "--format",
            "xml",
            "--fault",
            "duplicate",
            "--fault",
            "date-format",
        ],
    );
    let file = dir.path().join(m["file"].as_str().unwrap());
    let (_, reports) = validate_json(dir.path(), &[], &[&file]);
    let columns: Vec<&str> = reports[0]["row_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["column"].as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"nhsNumber") && columns.contains(&"start"),
        "{columns:?}"
    );
    assert!(!columns.iter().any(|c| c.contains('_')), "{columns:?}");
}
