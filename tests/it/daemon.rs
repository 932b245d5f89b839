//! The daemon (`run`, `run --once`) against real folders: completeness rules, control
//! files, refusals, one daemon per root, signals, and crash safety under `kill -9`.

use crate::backend;
use crate::helpers::*;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LAS: &str = "[\"919\", \"202\", \"330\", \"942\"]";

/// A root with a config; `settle_ms` as given.
pub(crate) struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    pub(crate) fn new(settle_ms: u64) -> Root {
        Root::with(settle_ms, "")
    }

    /// With more `[gateway]` keys (`extra`, one per line); RWG is a health organisation.
    pub(crate) fn with(settle_ms: u64, extra: &str) -> Root {
        let dir = temp();
        fs::write(
            dir.path().join("config.toml"),
            format!(
                "[gateway]\nroot = \"var\"\nsettle_ms = {settle_ms}\nlocal_authorities = {LAS}\n{extra}\n\
                 [[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n"
            ),
        )
        .unwrap();
        Root { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Puts a file into a mailbox's `in/` as a sender that renames would (interface.md):
    /// written whole as `<name>.part`, then renamed. With `settle_ms = 0` a running daemon
    /// may otherwise take a file written in place before its bytes are there.
    pub(crate) fn put(&self, mailbox: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let part = self.inbox(mailbox).join(format!("{name}.part"));
        fs::write(&part, bytes).unwrap();
        fs::rename(&part, self.inbox(mailbox).join(name)).unwrap();
    }

    pub(crate) fn inbox(&self, mailbox: &str) -> PathBuf {
        let p = self.path().join("var/mailboxes").join(mailbox).join("in");
        fs::create_dir_all(&p).unwrap();
        p
    }

    pub(crate) fn outbox(&self, mailbox: &str) -> PathBuf {
        self.path().join("var/mailboxes").join(mailbox).join("out")
    }

    pub(crate) fn ack(&self, mailbox: &str, file: &str) -> PathBuf {
        let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
        self.outbox(mailbox).join(format!("CPIS_ACK_{stem}.json"))
    }

    /// Starts `run` in the background; returns once it is watching.
    pub(crate) fn start(&self) -> Daemon {
        self.start_at(NOW)
    }

    /// Starts `run` with the clock at `now`; returns once it is watching.
    pub(crate) fn start_at(&self, now: &str) -> Daemon {
        let log = self.path().join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"));
        crate::backend::with_store(&mut cmd, self.path());
        let child = cmd
            .current_dir(self.path())
            .env("CPIS_GATEWAY_NOW", now)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, log };
        d.wait_log("gateway running");
        d
    }

    pub(crate) fn run_once(&self) -> std::process::Output {
        gateway(self.path())
            .args(["run", "--once"])
            .output()
            .unwrap()
    }
}

pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Daemon {
    pub(crate) fn wait_log(&self, text: &str) {
        let log = self.log.clone();
        wait_until(Duration::from_secs(20), || {
            fs::read_to_string(&log).unwrap_or_default().contains(text)
        })
        .unwrap_or_else(|| {
            panic!(
                "daemon never logged {text:?}: {}",
                fs::read_to_string(&self.log).unwrap_or_default()
            )
        });
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 10 ms until it holds (Some(elapsed)) or `limit` passes (None).
pub(crate) fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

pub(crate) fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// A valid extract of `rows` rows for `la` at `stamp`, as bytes, and its file name.
pub(crate) fn extract(la: &str, rows: u64, stamp: &str) -> (String, Vec<u8>) {
    let dir = temp();
    let m = gen_extract(
        dir.path(),
        &["--la", la, "--rows", &rows.to_string(), "--at", stamp],
    );
    let name = m["file"].as_str().unwrap().to_owned();
    (name.clone(), fs::read(dir.path().join(name)).unwrap())
}

pub(crate) fn control(from: &str) -> String {
    format!("<DTSControl><MessageType>Data</MessageType><From_DTS>{from}</From_DTS><To_DTS>X26GW001</To_DTS><WorkflowId>CPIS_EXTRACT</WorkflowId></DTSControl>")
}

#[test]
fn a_part_file_is_left_alone_until_renamed() {
    let root = Root::new(200);
    let d = root.start();
    let (name, bytes) = extract("919", 50, "20261121T020000");
    let inbox = root.inbox("LA919");
    let part = inbox.join(format!("{name}.part"));
    fs::write(&part, &bytes).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        part.exists() && !root.ack("LA919", &name).exists(),
        "a .part file is never taken"
    );
    fs::rename(&part, inbox.join(&name)).unwrap();
    wait_until(Duration::from_secs(10), || {
        root.ack("LA919", &name).exists()
    })
    .expect("acknowledged");
    let ack = read_json(&root.ack("LA919", &name));
    assert_eq!(ack["outcome"], "accepted");
    assert_eq!(ack["rows"], 50);
    wait_until(Duration::from_secs(5), || !inbox.join(&name).exists()).expect("moved out of in/");
    let sha = ack["sha256"].as_str().unwrap();
    assert!(root
        .path()
        .join("var/archive")
        .join(&sha[..2])
        .join(sha)
        .exists());
    drop(d);
}

#[test]
fn a_slowly_written_file_is_taken_once_and_whole() {
    let root = Root::new(600);
    let _d = root.start();
    let (name, bytes) = extract("202", 400, "20261121T020000");
    let path = root.inbox("LA202").join(&name);
    let mut f = fs::File::create(&path).unwrap();
    for chunk in bytes.chunks(bytes.len() / 5 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(f);
    wait_until(Duration::from_secs(10), || {
        root.ack("LA202", &name).exists()
    })
    .expect("acknowledged");
    let ack = read_json(&root.ack("LA202", &name));
    assert_eq!(ack["rows"], 400, "the whole file: {ack}");
    assert_eq!(ack["outcome"], "accepted");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        backend::count(root.path(), "SELECT count(*) FROM files"),
        1,
        "taken once"
    );
}

#[test]
fn a_control_file_completes_its_data_file_and_must_name_the_owner() {
    // Settling would take a minute: only the control file can make these complete.
    let root = Root::new(60_000);
    let _d = root.start();
    let inbox = root.inbox("LA330");
    let (name, bytes) = extract("330", 20, "20261121T020000");
    fs::write(inbox.join(&name), &bytes).unwrap();
    fs::write(inbox.join(name.replace(".csv", ".ctl")), control("LA330")).unwrap();
    wait_until(Duration::from_secs(5), || root.ack("LA330", &name).exists())
        .expect("taken with its control file");
    assert_eq!(read_json(&root.ack("LA330", &name))["outcome"], "accepted");
    wait_until(Duration::from_secs(5), || {
        !inbox.join(name.replace(".csv", ".ctl")).exists()
    })
    .expect("control file removed");

    let (other, bytes) = extract("330", 20, "20261122T020000");
    fs::write(inbox.join(&other), &bytes).unwrap();
    fs::write(inbox.join(other.replace(".csv", ".ctl")), control("LA919")).unwrap();
    wait_until(Duration::from_secs(5), || {
        root.ack("LA330", &other).exists()
    })
    .expect("acknowledged");
    let ack = read_json(&root.ack("LA330", &other));
    assert_eq!(ack["outcome"], "rejected");
    assert_eq!(file_codes(&ack), ["NOT_AUTHORISED"]);
}

#[test]
fn links_and_bad_names_are_refused_unread() {
    let root = Root::new(100);
    let inbox = root.inbox("LA919");
    let secret = root.path().join("secret.txt");
    fs::write(&secret, "not for the gateway").unwrap();
    std::os::unix::fs::symlink(&secret, inbox.join("CPIS_EXTRACT_919_20261121T020000.csv"))
        .unwrap();
    fs::write(inbox.join("extract 919 final (2).csv"), "nhs_number\n").unwrap();
    let out = root.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 refused"));
    assert_eq!(fs::read_dir(&inbox).unwrap().count(), 0, "in/ is cleared");
    let rejected: Vec<String> = fs::read_dir(root.path().join("var/rejected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        "not for the gateway",
        "the link target is untouched"
    );
    let link_ack = read_json(&root.ack("LA919", "CPIS_EXTRACT_919_20261121T020000.csv"));
    assert_eq!(file_codes(&link_ack), ["FILE_NAME"]);
    assert!(link_ack["file_errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("symbolic link"));
    let name_ack = read_json(
        &root
            .outbox("LA919")
            .join("CPIS_ACK_extract_919_final__2_.json"),
    );
    assert_eq!(file_codes(&name_ack), ["FILE_NAME"]);
}

#[test]
fn a_second_daemon_on_the_same_root_is_refused_unless_the_store_is_shared() {
    let root = Root::new(100);
    let _d = root.start();
    let (name, bytes) = extract("919", 5, "20261121T020000");
    let out = root.run_once();
    if backend::postgres() {
        // On PostgreSQL a second daemon is a second node: it joins and shares the work
        // (the first one holds every mailbox, so this one takes nothing of it).
        assert_ok(&out);
        fs::write(root.inbox("LA919").join(&name), bytes).unwrap();
        wait_until(Duration::from_secs(20), || {
            root.ack("LA919", &name).exists()
        })
        .expect("the first node still serves its mailboxes");
        assert_eq!(processed(root.path()), 1);
    } else {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("another gateway is already running"));
        let _ = (name, bytes);
    }
}

#[test]
fn sigterm_and_sigint_stop_it_cleanly() {
    for sig in ["-TERM", "-INT"] {
        let root = Root::new(100);
        let mut d = root.start();
        d.signal(sig);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = d.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{sig}: still running"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "{sig}");
        d.wait_log("stopping");
        // The lock went with it: another run may start.
        assert_eq!(root.run_once().status.code(), Some(0));
    }
}

#[test]
fn a_file_committed_just_before_a_crash_is_finished_not_redone() {
    let root = Root::new(0);
    let (name, bytes) = extract("942", 30, "20261121T020000");
    let inbox = root.inbox("LA942");
    fs::write(inbox.join(&name), &bytes).unwrap();
    let out = gateway(root.path())
        .env("CPIS_GATEWAY_FAULT", "abort-after-commit")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "the process died");
    assert!(inbox.join(&name).exists(), "still in in/");
    assert!(
        !root.ack("LA942", &name).exists(),
        "died before the acknowledgement"
    );
    assert_eq!(processed(root.path()), 1, "but the outcome is committed");

    let out = root.run_once();
    assert_ok(&out);
    assert_eq!(processed(root.path()), 1, "one outcome, not a duplicate");
    assert!(
        root.ack("LA942", &name).exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ack = read_json(&root.ack("LA942", &name));
    assert_eq!(ack["outcome"], "accepted");
    assert_eq!(ack["changes"]["new"], 30);
    assert!(!inbox.join(&name).exists(), "archived");
    assert_eq!(
        backend::count(root.path(), "SELECT count(*) FROM record_versions"),
        30,
        "applied once"
    );
}

#[test]
fn a_pass_stopped_before_its_sync_leaves_its_files_in_in_and_an_ack_lost_with_it_is_written_again()
{
    let root = Root::new(0);
    let files = [
        ("942", extract("942", 30, "20261121T020000")),
        ("919", extract("919", 12, "20261121T020000")),
    ];
    for (la, (name, bytes)) in &files {
        fs::write(root.inbox(&format!("LA{la}")).join(name), bytes).unwrap();
    }
    let out = gateway(root.path())
        .env("CPIS_GATEWAY_FAULT", "abort-before-settle")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "the process died");
    assert_eq!(processed(root.path()), 2, "both outcomes are committed");
    let mut acks = Vec::new();
    for (la, (name, _)) in &files {
        let mailbox = format!("LA{la}");
        assert!(
            root.inbox(&mailbox).join(name).exists(),
            "{name}: an entry leaves in/ only once its outcome is synced"
        );
        acks.push(read_json(&root.ack(&mailbox, name)));
    }
    // A power cut would lose what the pass had not synced: one ack empty, one gone.
    fs::write(root.ack("LA942", &files[0].1 .0), b"").unwrap();
    fs::remove_file(root.ack("LA919", &files[1].1 .0)).unwrap();

    let out = root.run_once();
    assert_ok(&out);
    assert_eq!(processed(root.path()), 2, "finished, not processed again");
    for ((la, (name, _)), ack) in files.iter().zip(&acks) {
        let mailbox = format!("LA{la}");
        assert_eq!(
            &read_json(&root.ack(&mailbox, name)),
            ack,
            "{name}: the same acknowledgement, whole"
        );
        assert!(!root.inbox(&mailbox).join(name).exists(), "{name}: settled");
    }
    assert_eq!(
        backend::count(root.path(), "SELECT count(*) FROM record_versions"),
        42,
        "applied once"
    );
}

/// How many files the registry holds (0 before the store exists), read without creating it.
pub(crate) fn processed(root: &Path) -> usize {
    if !backend::postgres() && !backend::sqlite_path(root).exists() {
        return 0;
    }
    // Before the gateway made its tables, the query fails: nothing processed yet.
    backend::sql(root, "SELECT count(*) FROM files")
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Every file's (name, outcome, changes) in the registry, and the records and history.
pub(crate) fn final_state(root: &Path) -> (Vec<(String, String, String)>, String) {
    let changes = if backend::postgres() {
        "report::jsonb ->> 'changes'"
    } else {
        "json_extract(report, '$.changes')"
    };
    let files = backend::sql(
        root,
        &format!("SELECT name, outcome, {changes} FROM files ORDER BY name, id"),
    )
    .iter()
    .map(|r| {
        let mut f = r.splitn(3, '|').map(str::to_owned);
        let mut next = || f.next().unwrap_or_default();
        (next(), next(), next())
    })
    .collect();
    let mut dump = String::new();
    for sql in [
        "SELECT la_code, nhs, plan_type, open, fingerprint FROM records ORDER BY 1, 2, 3",
        "SELECT la_code, nhs, plan_type, start_date, end_date, edt_phone, office_phone, local_ref, expected_delivery, change FROM record_versions ORDER BY 1, 2, 3, id",
        "SELECT nhs, attended_at, org_ods, setting, user_name FROM presentations ORDER BY 1, 2, 5",
        "SELECT n.la_code, p.nhs, p.attended_at, n.plan_type FROM notifications n JOIN presentations p ON p.id = n.presentation_id ORDER BY 1, 2, 3, 4",
        "SELECT id, at, nhs, user_name, result, hash FROM access_log ORDER BY id",
        "SELECT count(*) FROM notifications WHERE batch_id IS NULL",
    ] {
        for row in backend::sql(root, sql) {
            dump.push_str(&row);
            dump.push('\n');
        }
    }
    (files, dump)
}

/// Crash safety: kill -9 at random moments over a backlog, restart, finish; every file has
/// exactly one outcome, none is lost or applied twice, and the store equals a clean run's.
/// `CPIS_CRASH_SEED` and `CPIS_CRASH_KILLS` choose the moments and how many (CI: the
/// defaults, a small bounded run).
#[test]
fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let seed: u64 = std::env::var("CPIS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let kills: u32 = std::env::var("CPIS_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    // A backlog: 4 LAs x 6 days, each day's extract about 1% gone, 2% changed, 1% new.
    let src = temp();
    for (i, la) in ["919", "202", "330", "942"].iter().enumerate() {
        for day in 0..6u32 {
            let stamp = format!("202611{:02}T020000", 10 + day);
            let offset = (i as u64 * 100_000).to_string();
            let args = [
                "--la",
                la,
                "--rows",
                "3000",
                "--seed",
                "3",
                "--offset",
                &offset,
                "--day",
                &day.to_string(),
                "--at",
                &stamp,
            ];
            gen_extract(src.path(), &args);
        }
    }
    let mut files: Vec<PathBuf> = fs::read_dir(src.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 24);
    // And 16 attendance files from RWG, each naming 6 children of the extracts (some
    // flagged, some ended) among 14 unknown ones.
    let known: Vec<String> = files
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .skip(1)
                .step_by(97)
                .map(|l| l.split(',').next().unwrap().replace(' ', ""))
                .collect::<Vec<_>>()
        })
        .collect();
    for i in 0..16u64 {
        let mut text =
            String::from("nhs_number,attended_at,org_ods,org_name,setting,user_name,user_role\n");
        for j in 0..20u64 {
            let nhs = if j < 6 {
                known[((i * 6 + j) as usize * 7) % known.len()].clone()
            } else {
                test_nhs(999_800_000, i * 20 + j)
            };
            let setting = if j % 5 == 4 { "GP" } else { "ED" };
            text.push_str(&format!(
                "{nhs},2026-11-21T{:02}:{:02}:00+00:00,RWG,West Herts,{setting},Dr {},Doctor\n",
                8 + i / 4,
                j * 2,
                i % 3
            ));
        }
        let name = format!("CPIS_ATTEND_RWG_20261121T12{i:02}00.csv");
        fs::write(src.path().join(&name), text).unwrap();
        files.push(src.path().join(name));
    }
    let mailbox_of = |name: &str| {
        if let Some(rest) = name.strip_prefix("CPIS_EXTRACT_") {
            format!("LA{}", &rest[..3])
        } else {
            "RWG".to_owned()
        }
    };
    let fill = |root: &Root| {
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            fs::copy(f, root.inbox(&mailbox_of(&name)).join(&name)).unwrap();
        }
    };
    let total = files.len();

    let clean = Root::new(0);
    fill(&clean);
    let out = clean.run_once();
    assert_ok(&out);
    let expected = final_state(clean.path());
    assert_eq!(expected.0.len(), total);
    let notified: usize = ["919", "202", "330", "942"]
        .iter()
        .map(|la| notification_rows(&clean, la).len())
        .sum();
    assert!(notified > 0, "some attendances flag and notify");

    let crashed = Root::new(0);
    fill(&crashed);
    let mut random = seed;
    let mut next = || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    let mut interrupted = 0;
    for _ in 0..kills {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"));
        backend::with_store(&mut cmd, crashed.path());
        let mut child = cmd
            .current_dir(crashed.path())
            .env("CPIS_GATEWAY_NOW", NOW)
            .args(["run", "--once"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10 + next() % 150));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let done = processed(crashed.path());
        interrupted += u32::from(done < total);
        eprintln!("kill -9: {done} of {total} files had an outcome");
    }
    assert!(
        interrupted > 0,
        "no kill landed before the backlog was done: make the backlog bigger"
    );
    let out = crashed.run_once();
    assert_ok(&out);
    for mailbox in ["LA919", "LA202", "LA330", "LA942", "RWG"] {
        assert_eq!(
            fs::read_dir(crashed.inbox(mailbox)).unwrap().count(),
            0,
            "{mailbox}: nothing left in in/"
        );
    }
    let got = final_state(crashed.path());
    assert_eq!(
        got.0, expected.0,
        "every file exactly once, with the same outcome and changes"
    );
    assert!(
        got.1 == expected.1,
        "the store equals a clean sequential run's"
    );
    for (name, _, _) in &got.0 {
        assert!(
            crashed.ack(&mailbox_of(name), name).exists(),
            "{name} acknowledged"
        );
    }
    // Every notification written exactly once: the rows of all files, as a clean run's.
    for la in ["919", "202", "330", "942"] {
        assert_eq!(
            notification_rows(&crashed, la),
            notification_rows(&clean, la),
            "LA{la}: every notification once"
        );
    }
}

/// Every row of every notification file an LA received, sorted (duplicates kept).
fn notification_rows(root: &Root, la: &str) -> Vec<String> {
    let mut rows: Vec<String> = files_starting(&root.outbox(&format!("LA{la}")), "CPIS_NOTIFY_")
        .into_iter()
        .flat_map(|p| {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort();
    rows
}
