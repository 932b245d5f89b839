//! Holding under concurrency, hostile filesystems and faults: each test puts the real binary
//! in the window where a defect bit (two writers at once, a reader during a write, a file
//! swapped after a scan, a hard link, an endless line, an outbox that cannot be written, a
//! transient failure, a forged log line) and checks that nothing is lost, doubled or leaked.

use crate::daemon::{extract, final_state, read_json, wait_until, Root};
use crate::helpers::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn bin() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"));
    cmd.env("CPIS_GATEWAY_NOW", NOW).env_remove("RUST_LOG");
    cmd
}

/// `ingest --format json` of `file` into `mailbox`, started in the background with an
/// optional injected fault.
fn spawn_ingest(root: &Path, mailbox: &str, file: &Path, fault: Option<&str>) -> Child {
    let mut cmd = bin();
    cmd.current_dir(root)
        .args(["ingest", "--format", "json", "--mailbox", mailbox])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = fault {
        cmd.env("CPIS_GATEWAY_FAULT", f);
    }
    cmd.spawn().unwrap()
}

/// The one report an `ingest` printed.
fn report(out: Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ingest printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v[0].clone()
}

/// Extracts of LA 919 for `days` consecutive days (day 0 on 10 Nov), written under `dir`.
fn days_of_919(dir: &Path, days: u32, rows: u64) -> Vec<PathBuf> {
    (0..days)
        .map(|day| {
            let stamp = format!("202611{:02}T020000", 10 + day);
            let m = gen_extract(
                dir,
                &[
                    "--la",
                    "919",
                    "--rows",
                    &rows.to_string(),
                    "--day",
                    &day.to_string(),
                    "--at",
                    &stamp,
                ],
            );
            dir.join(m["file"].as_str().unwrap())
        })
        .collect()
}

/// Waits for `ms` so that a process started just before is inside its window (the window
/// is held open by an injected pause far longer than this, so a slow machine only makes
/// the test slower, never wrong).
fn settle_into_window() {
    std::thread::sleep(Duration::from_millis(700));
}

/// Ingests `first` into LA 919 of a new root holding its transaction open, and `second`
/// while it does; returns the root and both reports.
fn race(first: &Path, second: &Path) -> (Root, Value, Value) {
    let root = Root::new(0);
    let a = spawn_ingest(
        root.path(),
        "LA919",
        first,
        Some("pause-before-commit:2500"),
    );
    settle_into_window();
    let b = spawn_ingest(root.path(), "LA919", second, None);
    let (a, b) = (
        report(a.wait_with_output().unwrap()),
        report(b.wait_with_output().unwrap()),
    );
    (root, a, b)
}

#[test]
fn a_second_writer_sees_the_first_writers_commit() {
    let src = temp();
    let files = days_of_919(src.path(), 2, 2_000);

    // The reference: day 0, then day 1, one after the other.
    let clean = Root::new(0);
    for f in &files {
        gateway(clean.path())
            .args(["ingest", "--mailbox", "LA919"])
            .arg(f)
            .assert()
            .success();
    }
    let expected = final_state(clean.path());

    // Day 0 holds its transaction open; day 1 arrives meanwhile: it must be judged against
    // day 0's commit, and the end state must be the sequential one.
    let (root, first, second) = race(&files[0], &files[1]);
    assert_eq!(
        (first["outcome"].as_str(), second["outcome"].as_str()),
        (Some("accepted"), Some("accepted"))
    );
    assert_eq!(
        second["changes"]["new"].as_u64(),
        expected_new_of_day1(clean.path())
    );
    assert!(
        final_state(root.path()).1 == expected.1,
        "the same records and history as one after the other"
    );

    // The newer one holds its transaction; the older one arriving meanwhile is STALE.
    let (_, newer, older) = race(&files[1], &files[0]);
    assert_eq!(newer["outcome"], "accepted");
    assert_eq!(older["outcome"], "rejected");
    assert_eq!(file_codes(&older), ["STALE"]);

    // The same bytes twice at once: applied once, the second is a duplicate.
    let (root, a, b) = race(&files[0], &files[0]);
    assert_eq!(
        (a["outcome"].as_str(), b["outcome"].as_str()),
        (Some("accepted"), Some("duplicate"))
    );
    let conn = rusqlite::Connection::open(root.path().join("var/store/cpis.sqlite")).unwrap();
    let applied: i64 = conn
        .query_row("SELECT count(*) FROM files WHERE applied", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied, 1);
}

/// How many records day 1 adds in the clean run (from its acknowledgement).
fn expected_new_of_day1(root: &Path) -> Option<u64> {
    let conn = rusqlite::Connection::open(root.join("var/store/cpis.sqlite")).unwrap();
    conn.query_row(
        "SELECT json_extract(report, '$.changes.new') FROM files WHERE name LIKE '%20261111%'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .map(|n| n as u64)
}

#[test]
fn readers_wait_for_a_writer_and_a_new_root_is_created_once() {
    let src = temp();
    let files = days_of_919(src.path(), 1, 500);
    let root = Root::new(0);
    let writer = spawn_ingest(
        root.path(),
        "LA919",
        &files[0],
        Some("pause-before-commit:2500"),
    );
    settle_into_window();
    // While the write transaction is open: a query (which writes the access log) and a status.
    let q = bin()
        .current_dir(root.path())
        .args(["query", "9990000018", "--org", "RWG", "--user", "Dr Q"])
        .args(["--role", "Doctor", "--setting", "ED", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        q.status.code(),
        Some(0),
        "query waits for the writer instead of failing: {}",
        String::from_utf8_lossy(&q.stderr)
    );
    let s = bin()
        .current_dir(root.path())
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        s.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&s.stderr)
    );
    assert_eq!(
        report(writer.wait_with_output().unwrap())["outcome"],
        "accepted"
    );

    // Commands racing on a brand-new root: every one succeeds, the schema is made once.
    for _ in 0..4 {
        let root = Root::new(0);
        let children: Vec<Child> = (0..4)
            .map(|_| {
                bin()
                    .current_dir(root.path())
                    .arg("init")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// CPU time (user + system) a process has used so far, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

#[test]
fn an_idle_daemon_with_153_mailboxes_sleeps() {
    let dir = temp();
    fs::write(
        dir.path().join("config.toml"),
        "[gateway]\nroot = \"var\"\nsettle_ms = 500\n",
    )
    .unwrap();
    let (mut child, log) = spawn_logged(
        dir.path(),
        ("RUST_LOG", "cpis_gateway=debug"),
        &["run"],
        "gateway running",
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_time(child.id());
    let scans_before = fs::read_to_string(&log)
        .unwrap()
        .matches("scanned the mailboxes")
        .count();
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_time(child.id()) - before;
    let scans = fs::read_to_string(&log)
        .unwrap()
        .matches("scanned the mailboxes")
        .count()
        - scans_before;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        scans <= 2,
        "{scans} scans of 153 mailboxes in 3 idle seconds: its own scans wake it"
    );
    assert!(
        used < Duration::from_millis(300),
        "{used:?} of CPU in 3 idle seconds"
    );
}

/// Starts `run --once` with a pause between finding a file and opening it; returns once it
/// is in that pause.
fn paused_once(root: &Root) -> (Child, PathBuf) {
    spawn_logged(
        root.path(),
        ("CPIS_GATEWAY_FAULT", "pause-before-take:2000"),
        &["run", "--once"],
        "pausing before taking",
    )
}

/// Starts the gateway in `dir` with one environment variable set, its log in a file;
/// returns once the log says `ready`.
fn spawn_logged(dir: &Path, env: (&str, &str), args: &[&str], ready: &str) -> (Child, PathBuf) {
    let log = dir.join("gateway.log");
    let child = bin()
        .current_dir(dir)
        .env(env.0, env.1)
        .args(args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), || {
        fs::read_to_string(&log).unwrap_or_default().contains(ready)
    })
    .unwrap_or_else(|| panic!("the gateway never logged {ready:?}"));
    (child, log)
}

/// Waits for a child, killing it (and failing) if it hangs.
fn finish(mut child: Child, what: &str) {
    let done = wait_until(Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    if done.is_none() {
        let _ = child.kill();
        panic!("{what}: the gateway hung");
    }
}

/// Every byte the gateway wrote for senders (all outboxes), as text.
fn all_outboxes(root: &Path) -> String {
    walk(&root.join("var/mailboxes"))
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "out"))
        .map(|p| String::from_utf8_lossy(&fs::read(p).unwrap()).into_owned())
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_file_swapped_for_a_link_or_a_fifo_after_the_scan_is_refused_unread() {
    for swap in ["symlink", "fifo"] {
        let root = Root::new(0);
        let secret = root.path().join("secret.csv");
        fs::write(&secret, "SECRET-FIRST-LINE,of,a,private,file\n").unwrap();
        let (name, bytes) = extract("919", 10, "20261121T020000");
        let path = root.inbox("LA919").join(&name);
        fs::write(&path, &bytes).unwrap();
        let (child, _) = paused_once(&root);
        fs::remove_file(&path).unwrap();
        match swap {
            "symlink" => std::os::unix::fs::symlink(&secret, &path).unwrap(),
            _ => assert!(Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap()
                .success()),
        }
        finish(child, swap);
        let ack = read_json(&root.ack("LA919", &name));
        assert_eq!(file_codes(&ack), ["FILE_NAME"], "{swap}: {ack}");
        assert!(
            !all_outboxes(root.path()).contains("SECRET"),
            "{swap}: the private file leaked"
        );
        assert!(
            walk(&root.path().join("var/archive")).is_empty(),
            "{swap}: nothing archived"
        );
        assert_eq!(
            fs::read_to_string(&secret).unwrap(),
            "SECRET-FIRST-LINE,of,a,private,file\n"
        );
        assert!(
            !path.exists() && fs::symlink_metadata(&path).is_err(),
            "{swap}: set aside"
        );
    }
}

#[test]
fn control_files_are_not_followed_and_not_read_whole() {
    let root = Root::new(0);
    let inbox = root.inbox("LA919");
    // A link to a valid control file elsewhere: refused, not followed.
    let (name, bytes) = extract("919", 10, "20261121T020000");
    fs::write(inbox.join(&name), &bytes).unwrap();
    let elsewhere = root.path().join("elsewhere.ctl");
    fs::write(&elsewhere, crate::daemon::control("LA919")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, inbox.join(name.replace(".csv", ".ctl"))).unwrap();
    // A 1 GiB (sparse) control file: refused after reading no more than the limit. The
    // address-space limit makes reading it whole fail outright.
    let (big, bytes) = extract("919", 10, "20261122T020000");
    fs::write(inbox.join(&big), &bytes).unwrap();
    fs::File::create(inbox.join(big.replace(".csv", ".ctl")))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    // From_DTS twice: refused.
    let (twice, bytes) = extract("919", 10, "20261123T020000");
    fs::write(inbox.join(&twice), &bytes).unwrap();
    fs::write(
        inbox.join(twice.replace(".csv", ".ctl")),
        "<DTSControl><From_DTS>LA919</From_DTS><From_DTS>LA202</From_DTS></DTSControl>",
    )
    .unwrap();
    with_memory_limit(root.path(), 600_000, "run --once");
    for (file, says) in [
        (&name, "symbolic link"),
        (&big, "larger than"),
        (&twice, "more than once"),
    ] {
        let ack = read_json(&root.ack("LA919", file));
        assert_eq!(ack["outcome"], "rejected", "{file}");
        assert_eq!(file_codes(&ack), ["XML"], "{file}");
        assert!(ack.to_string().contains(says), "{file}: {ack}");
    }
}

#[test]
fn a_hard_linked_file_is_refused_so_nobody_else_can_change_what_is_kept() {
    let root = Root::new(0);
    let (name, bytes) = extract("919", 20, "20261121T020000");
    let outside = root.path().join("kept-by-someone-else.csv");
    fs::write(&outside, &bytes).unwrap();
    fs::hard_link(&outside, root.inbox("LA919").join(&name)).unwrap();
    let out = root.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ack = read_json(&root.ack("LA919", &name));
    assert_eq!(file_codes(&ack), ["FILE_NAME"]);
    assert!(ack.to_string().contains("other hard links"), "{ack}");
    assert!(
        walk(&root.path().join("var/archive")).is_empty(),
        "nothing archived"
    );
    let conn = rusqlite::Connection::open(root.path().join("var/store/cpis.sqlite")).unwrap();
    let records: i64 = conn
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(records, 0, "nothing applied");
    assert_eq!(
        fs::read(&outside).unwrap(),
        bytes,
        "the other link is untouched"
    );
}

#[test]
fn a_quoted_field_over_many_lines_is_refused_with_flat_memory() {
    let dir = temp();
    // A header, a row, then a row whose last field is a quote left open over 200 MB of
    // short lines: each line is short, the record is not.
    let name = "CPIS_EXTRACT_919_20261121T020000.csv";
    let (_, bytes) = extract("919", 1, "20261121T020000");
    let path = dir.path().join(name);
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        f.write_all(&bytes).unwrap();
        let first = String::from_utf8_lossy(&bytes)
            .lines()
            .nth(1)
            .unwrap()
            .to_owned();
        let cut = first.rfind(',').unwrap();
        writeln!(f, "{},\"started", &first[..cut]).unwrap();
        let line = [b'x'; 399];
        for _ in 0..500_000 {
            f.write_all(&line).unwrap();
            f.write_all(b"\n").unwrap();
        }
        f.write_all(b"\"\n").unwrap();
    }
    // The same from the first byte after a byte-order mark (which the csv crate skips, so
    // the quote opens a quoted field there).
    let bom = dir.path().join("CPIS_EXTRACT_919_20261122T020000.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(fs::File::create(&bom).unwrap());
        f.write_all(b"\xEF\xBB\xBF\"").unwrap();
        for _ in 0..500_000 {
            f.write_all(&[b'x'; 399]).unwrap();
            f.write_all(b"\n").unwrap();
        }
        f.write_all(b"\"\n").unwrap();
    }
    let out = with_memory_limit(
        dir.path(),
        400_000,
        &format!(
            "validate --format json {} {}",
            path.display(),
            bom.display()
        ),
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(file_codes(&reports[0]), ["FIELD_TOO_LONG"]);
    let message = reports[0]["file_errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("record at line 3"), "{message}");
    assert_eq!(file_codes(&reports[1]), ["HEADER"]);
}

#[test]
fn rows_near_the_record_cap_are_parsed_ahead_with_flat_memory() {
    // 4,000 rows each just under the 64 KiB record cap (a 60,000-byte local reference):
    // what is parsed ahead of the checks is bounded by bytes, not only by rows, and the
    // rows echoed in the report keep at most 256 bytes of a value.
    let dir = temp();
    let name = "CPIS_EXTRACT_919_20261121T020000.csv";
    let (_, bytes) = extract("919", 1, "20261121T020000");
    let text = String::from_utf8(bytes).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap();
    let cut = row.rfind(',').unwrap();
    let path = dir.path().join(name);
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        writeln!(f, "{header}").unwrap();
        let wide = "x".repeat(60_000);
        for _ in 0..4_000 {
            writeln!(f, "{},{wide}", &row[..cut]).unwrap();
        }
    }
    let out = with_memory_limit(
        dir.path(),
        200_000,
        &format!("validate --format json {}", path.display()),
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["rows"], 4_000);
    assert_eq!(reports[0]["invalid_rows"], 4_000);
}

#[test]
fn an_endless_line_is_refused_with_flat_memory() {
    let dir = temp();
    // A header, a row, then 300 MiB without a line break (sparse: costs no disk).
    let name = "CPIS_EXTRACT_919_20261121T020000.csv";
    let (_, bytes) = extract("919", 1, "20261121T020000");
    let path = dir.path().join(name);
    fs::write(&path, &bytes).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(bytes.len() as u64 + (300 << 20))
        .unwrap();
    let out = with_memory_limit(
        dir.path(),
        400_000,
        &format!("validate --format json {}", path.display()),
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(file_codes(&reports[0]), ["FIELD_TOO_LONG"]);
    let message = reports[0]["file_errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("line 3 is longer than"), "{message}");

    // A header line that long: HEADER. A header of 10,000 unknown columns: a short message.
    let long_header = format!("{}\n", "x".repeat(100_000));
    let wide_header = format!(
        "nhs_number,plan_type,start_date,la_code,edt_phone,office_phone,{}\n",
        (0..10_000)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for (text, expect) in [(long_header, "longer than"), (wide_header, "and 9990 more")] {
        fs::write(&path, text).unwrap();
        let (code, reports) = validate_json(dir.path(), &[], &[&path]);
        assert_eq!(code, 1);
        assert_eq!(file_codes(&reports[0]), ["HEADER"]);
        let message = reports[0]["file_errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{message}");
        assert!(message.len() < 1_000, "{} bytes: {message}", message.len());
        assert!(message.matches("allowed:").count() <= 1, "{message}");
    }
}

const ATTEND_HEADER: &str = "nhs_number,attended_at,org_ods,org_name,setting,user_name,user_role";

/// An attendance file from RWG naming `nhs` at urgent care.
fn attendance(stamp: &str, nhs: &[&str]) -> (String, String) {
    let mut text = format!("{ATTEND_HEADER}\n");
    for n in nhs {
        text.push_str(&format!(
            "{n},2026-11-21T09:00:00+00:00,RWG,West Herts,ED,Dr A,Doctor\n"
        ));
    }
    (format!("CPIS_ATTEND_RWG_{stamp}.csv"), text)
}

/// The first NHS number of an extract's first data row.
fn first_child(extract: &[u8]) -> String {
    let text = String::from_utf8_lossy(extract);
    text.lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn an_unwritable_outbox_keeps_notifications_queued_and_the_daemon_going() {
    let root = Root::with(0, "notify_interval_s = 1");
    let (name, bytes) = extract("919", 20, "20261121T020000");
    let file = root.path().join(&name);
    fs::write(&file, &bytes).unwrap();
    gateway(root.path())
        .args(["ingest", "--mailbox", "LA919"])
        .arg(&file)
        .assert()
        .success();
    // LA 919's outbox becomes a plain file: nothing can be written into it.
    let out = root.outbox("LA919");
    fs::rename(&out, root.path().join("out-away")).unwrap();
    fs::write(&out, "in the way").unwrap();
    let d = root.start();
    let (attend, text) = attendance("20261121T101500", &[&first_child(&bytes)]);
    root.put("RWG", &attend, text);
    d.wait_log("notifications could not all be written");
    // The daemon goes on: another LA's file is taken meanwhile.
    let (other, bytes) = extract("202", 5, "20261121T020000");
    root.put("LA202", &other, bytes);
    wait_until(Duration::from_secs(15), || {
        root.ack("LA202", &other).exists()
    })
    .expect("other mailboxes are still served");
    // The outbox comes back: the queued notification is written, once.
    fs::remove_file(&out).unwrap();
    fs::rename(root.path().join("out-away"), &out).unwrap();
    let notify = || {
        fs::read_dir(&out)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with("CPIS_NOTIFY_919_")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    wait_until(Duration::from_secs(20), || notify() == 1).expect("written after the outage");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(notify(), 1, "written once");
    let mut child = d;
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );
}

#[test]
fn a_transient_failure_does_not_let_a_newer_extract_overtake() {
    let src = temp();
    let files = days_of_919(src.path(), 4, 300);
    let clean = Root::new(0);
    let fill = |root: &Root| {
        for f in &files {
            fs::copy(f, root.inbox("LA919").join(f.file_name().unwrap())).unwrap();
        }
    };
    fill(&clean);
    assert_eq!(clean.run_once().status.code(), Some(0));
    let expected = final_state(clean.path());

    let root = Root::new(0);
    fill(&root);
    let day1 = files[1].file_name().unwrap().to_string_lossy().into_owned();
    let out = gateway(root.path())
        .env("CPIS_GATEWAY_FAULT", format!("fail-once:{day1}"))
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a failure is not success");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("later files of this LA wait for it"), "{log}");
    // Day 1 is retried (within this run or the next); days 2 and 3 never overtake it.
    let out = root.run_once();
    assert_ok(&out);
    let got = final_state(root.path());
    assert_eq!(got.0, expected.0, "every day applied, none STALE");
    assert!(
        got.1 == expected.1,
        "the same records and history as a clean run"
    );
}

#[test]
fn text_logs_cannot_be_forged_and_carry_no_colour_off_a_terminal() {
    let root = Root::new(0);
    let inbox = root.inbox("LA919");
    fs::write(inbox.join("x.csv\nERROR forged: every file was lost"), "a").unwrap();
    fs::write(inbox.join("y.csv\u{1b}[2J\u{1b}[31mred"), "a").unwrap();
    let out = gateway(root.path())
        .args(["run", "--once"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("refused"), "{log}");
    assert!(!log.contains('\u{1b}'), "no raw escape sequence: {log:?}");
    assert!(
        log.lines().all(|l| !l.starts_with("ERROR forged")),
        "no forged line: {log}"
    );
    assert!(log.contains("x.csv\\nERROR forged"), "{log}");
}

#[test]
fn a_store_that_is_not_a_database_is_named_with_what_to_do() {
    let root = Root::new(0);
    gateway(root.path()).arg("init").assert().success();
    let store = root.path().join("var/store/cpis.sqlite");
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", store.display()));
    }
    fs::write(
        &store,
        "this is not an SQLite file, it is a note someone left here....",
    )
    .unwrap();
    let out = gateway(root.path()).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&store.display().to_string()), "{err}");
    assert!(err.contains("not a gateway store"), "{err}");
    assert!(err.contains("restore the store from a backup"), "{err}");
}

/// A tmpfs mounted for one test, unmounted when dropped (the test runs as root, as CI does).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI and scripts/test.sh run as root)"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills a filesystem until a write fails, then frees `slack` bytes.
fn fill(filler: &Path, slack: u64) {
    use std::io::Write;
    let mut f = fs::File::create(filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.flush();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(slack)).unwrap();
}

#[test]
fn a_full_disk_loses_nothing_and_lets_nothing_overtake() {
    let src = temp();
    let files = days_of_919(src.path(), 3, 3_000);
    // LA 202's children are apart from 919's (--offset).
    let m = gen_extract(
        src.path(),
        &[
            "--la",
            "202",
            "--rows",
            "3000",
            "--offset",
            "500000",
            "--at",
            "20261121T020000",
        ],
    );
    let other = m["file"].as_str().unwrap().to_owned();
    let other_bytes = fs::read(src.path().join(&other)).unwrap();
    // The attended child is on day 0's extract, applied before anything else, so the
    // attendance flags whenever it is processed (across mailboxes, order is not defined).
    let (attend, attend_text) = attendance(
        "20261121T101500",
        &[&first_child(&fs::read(&files[0]).unwrap())],
    );
    let put = |root: &Root| {
        gateway(root.path())
            .args(["ingest", "--mailbox", "LA919"])
            .arg(&files[0])
            .assert()
            .success();
        for f in &files[1..] {
            fs::copy(f, root.inbox("LA919").join(f.file_name().unwrap())).unwrap();
        }
        fs::write(root.inbox("LA202").join(&other), &other_bytes).unwrap();
        fs::write(root.inbox("RWG").join(&attend), &attend_text).unwrap();
    };
    let clean = Root::new(0);
    put(&clean);
    assert_eq!(clean.run_once().status.code(), Some(0));
    let expected = final_state(clean.path());
    let presentations: i64 = rusqlite::Connection::open(clean.path().join("var/store/cpis.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM presentations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(presentations, 1, "the attendance flags");

    let root = Root::with(0, "notify_interval_s = 1");
    let _tmpfs = Tmpfs::mount(&root.path().join("var"), "24m");
    put(&root);
    let filler = root.path().join("var/filler");
    fill(&filler, 128 * 1024);
    let d = root.start();
    d.wait_log("processing failed");
    std::thread::sleep(Duration::from_secs(3));
    let mut d = d;
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon goes on");
    let waiting = fs::read_dir(root.inbox("LA919")).unwrap().count();
    assert!(
        waiting >= 1,
        "nothing taken half-way is lost: {waiting} still in in/"
    );
    // Space again: everything goes through, in order, once.
    fs::remove_file(&filler).unwrap();
    wait_until(Duration::from_secs(60), || {
        ["LA919", "LA202", "RWG"]
            .iter()
            .all(|m| fs::read_dir(root.inbox(m)).unwrap().count() == 0)
    })
    .expect("every file taken once the disk has room");
    wait_until(Duration::from_secs(30), || {
        fs::read_dir(root.outbox("LA919")).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("CPIS_NOTIFY_")
        })
    })
    .expect("the notification is written");
    let got = final_state(root.path());
    assert_eq!(got.0, expected.0, "every file once, none STALE");
    if got.1 != expected.1 {
        let (a, b): (Vec<&str>, Vec<&str>) =
            (got.1.lines().collect(), expected.1.lines().collect());
        let only_got: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).take(10).collect();
        let only_expected: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).take(10).collect();
        panic!("the same store as without the outage: only after the outage {only_got:?}, only without {only_expected:?}");
    }
    drop(d);
}

/// The records (current versions) of a store, for comparison.
fn records(root: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(root.join("var/store/cpis.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT la_code, nhs, plan_type, open, fingerprint FROM records ORDER BY 1, 2, 3")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(format!(
            "{}|{}|{}|{}|{}",
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Campaign: many `ingest`s of several LAs' days at once, in a shuffled order, with
/// `query`s among them. No command may fail for another's sake; each LA's applied extracts
/// must have been applied in extraction-time order (older ones arriving late are STALE);
/// no bytes applied twice; and the store must equal a sequential run of the applied files
/// in the order they were committed. `CPIS_RACE_ROUNDS` (default 1) repeats it.
#[test]
fn concurrent_ingests_and_queries_campaign() {
    let rounds: u64 = std::env::var("CPIS_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let src = temp();
    let mut files = Vec::new();
    for (i, la) in ["919", "202", "330"].iter().enumerate() {
        for day in 0..4u32 {
            let m = gen_extract(
                src.path(),
                &[
                    "--la",
                    la,
                    "--rows",
                    "1500",
                    "--offset",
                    &(i as u64 * 100_000).to_string(),
                    "--day",
                    &day.to_string(),
                    "--at",
                    &format!("202611{:02}T020000", 10 + day),
                ],
            );
            files.push((
                format!("LA{la}"),
                src.path().join(m["file"].as_str().unwrap()),
            ));
        }
    }
    let (mut ingests, mut queries, mut stale) = (0, 0, 0);
    for round in 0..rounds {
        let root = Root::new(0);
        gateway(root.path()).arg("init").assert().success();
        // A shuffled order, every file twice (the same bytes at once must apply once).
        let mut order: Vec<usize> = (0..files.len() * 2).map(|i| i % files.len()).collect();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ round;
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let mut children: Vec<(bool, Child)> = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            let (mailbox, file) = &files[i];
            children.push((true, spawn_ingest(root.path(), mailbox, file, None)));
            if k % 3 == 0 {
                let q = bin()
                    .current_dir(root.path())
                    .args(["query", "9990000018", "--org", "RWG", "--user", "Dr Q"])
                    .args(["--role", "Doctor", "--setting", "ED", "--format", "json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                children.push((false, q));
            }
        }
        for (is_ingest, child) in children {
            let out = child.wait_with_output().unwrap();
            let code = out.status.code();
            if is_ingest {
                ingests += 1;
                assert!(
                    matches!(code, Some(0 | 1)),
                    "an ingest failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let r = report(out);
                assert!(
                    matches!(
                        r["outcome"].as_str(),
                        Some("accepted" | "duplicate" | "rejected")
                    ),
                    "{r}"
                );
                if r["outcome"] == "rejected" {
                    assert_eq!(file_codes(&r), ["STALE"], "{r}");
                    stale += 1;
                }
            } else {
                queries += 1;
                assert_eq!(
                    code,
                    Some(0),
                    "a query failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        // Applied files, in commit order: strictly newer per LA, never the same bytes twice.
        let conn = rusqlite::Connection::open(root.path().join("var/store/cpis.sqlite")).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT sender, extracted_at, sha256, name FROM files WHERE applied ORDER BY id",
            )
            .unwrap();
        let applied: Vec<(String, String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut last: std::collections::HashMap<&str, &str> = Default::default();
        let mut shas = std::collections::HashSet::new();
        for (la, at, sha, _) in &applied {
            if let Some(prev) = last.insert(la, at) {
                assert!(prev < at.as_str(), "LA {la}: {at} applied after {prev}");
            }
            assert!(shas.insert(sha), "the same bytes applied twice");
        }
        // The store equals the applied files run one after the other.
        let replay = Root::new(0);
        for (la, _, _, name) in &applied {
            gateway(replay.path())
                .args(["ingest", "--mailbox", &format!("LA{la}")])
                .arg(src.path().join(name))
                .assert()
                .code(predicates::ord::le(1));
        }
        assert_eq!(
            records(root.path()),
            records(replay.path()),
            "round {round}"
        );
    }
    eprintln!("campaign: {rounds} round(s), {ingests} concurrent ingests ({stale} STALE), {queries} queries, none failed");
}

/// Runs the gateway with `args` in `dir` under `ulimit -v <kib>` (a runaway allocation
/// fails instead of taking the machine); it must exit 1 (something refused).
fn with_memory_limit(dir: &std::path::Path, kib: u64, args: &str) -> std::process::Output {
    let out = under_ulimit(dir, kib, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_file_of_bad_rows_lists_its_first_problems_and_counts_the_rest_in_flat_memory() {
    // 150,000 rows with many problems each: every problem listed, with the row as sent,
    // took gigabytes; the first 10,000 are listed and the rest counted by code.
    let dir = temp();
    let path = dir.path().join("CPIS_EXTRACT_919_20261121T020000.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        writeln!(f, "nhs_number,plan_type,start_date,end_date,la_code,la_name,edt_phone,office_phone,local_ref,expected_delivery_date").unwrap();
        let local_ref = "r".repeat(65);
        for _ in 0..150_000 {
            writeln!(
                f,
                "12345,XX,2026-13-01,2026-13-02,123,Somewhere,0,0,{local_ref},2026-13-03"
            )
            .unwrap();
        }
    }
    let out = with_memory_limit(
        dir.path(),
        400_000,
        &format!("validate --format json {}", path.display()),
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = &reports[0];
    assert_schema("file-report.schema.json", report);
    assert_eq!(report["invalid_rows"], 150_000);
    let listed = report["row_errors"].as_array().unwrap();
    assert_eq!(listed.len(), 10_000);
    let per_row = listed.iter().filter(|p| p["row"] == 1).count() as u64;
    assert!(per_row >= 5, "{per_row} problems in row 1");
    // The first rows' problems, in row order.
    let rows: Vec<u64> = listed.iter().map(|p| p["row"].as_u64().unwrap()).collect();
    assert!(rows.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(rows[9_999], 10_000_u64.div_ceil(per_row));
    let unlisted: u64 = report["row_errors_unlisted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["count"].as_u64().unwrap())
        .sum();
    assert_eq!(10_000 + unlisted, 150_000 * per_row);
}
