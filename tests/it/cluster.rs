//! Several gateway nodes as one service: `run` daemons on one PostgreSQL store (a real
//! server started by each test on a free 127.0.0.1 port, stopped after it) sharing one root
//! (mailboxes, archive, reports), the work shared by leases. Every file is processed
//! exactly once, notifications and the nightly report are written once, a node killed
//! mid-file is taken over within two lease periods with nothing lost or doubled, and a
//! restart of PostgreSQL under load is ridden out.

use crate::backend::Postgres;
use crate::daemon::{extract, read_json, wait_until};
use crate::helpers::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LAS: [&str; 5] = ["919", "202", "330", "942", "201"];
/// The lease period of these tests, in seconds.
const LEASE_S: u64 = 2;

/// A shared root whose store is database `db` of `pg`.
fn cluster_root(pg: &Postgres, db: &str) -> tempfile::TempDir {
    let dir = temp();
    if db != "postgres" {
        let out = pg.psql("postgres", &format!("CREATE DATABASE {db}"));
        assert!(out.is_empty(), "{out}");
    }
    let las: Vec<String> = LAS.iter().map(|la| format!("{la:?}")).collect();
    fs::write(
        dir.path().join("config.toml"),
        format!(
            "[gateway]\nroot = \"var\"\nsettle_ms = 100\nnotify_interval_s = 1\nlocal_authorities = [{}]\n\n\
             [store]\nurl = {:?}\nlease_s = {LEASE_S}\n\n\
             [[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n",
            las.join(", "),
            pg.url_of(db)
        ),
    )
    .unwrap();
    gateway(dir.path()).arg("init").assert().success();
    dir
}

/// One `run` daemon on the shared root; killed (SIGKILL) when dropped if still running.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    /// Named `name` (as if on a machine of that name: a dead node's work is then taken
    /// over only when its leases expire).
    fn start(root: &Path, name: &str, now: &str, fault: Option<&str>) -> Node {
        let log = root.join(format!("{name}.log"));
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"));
        cmd.current_dir(root)
            .env("CPIS_GATEWAY_NOW", now)
            .env("CPIS_GATEWAY_NODE", name)
            .env("RUST_LOG", "info")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        if let Some(fault) = fault {
            cmd.env("CPIS_GATEWAY_FAULT", fault);
        }
        let node = Node {
            child: cmd.spawn().unwrap(),
            log,
        };
        node.wait_log("gateway running", Duration::from_secs(30));
        node
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, text: &str, limit: Duration) -> Duration {
        wait_until(limit, || self.log().contains(text))
            .unwrap_or_else(|| panic!("never logged {text:?}: {}", self.log()))
    }

    /// How many files it processed.
    fn processed(&self) -> usize {
        self.log().matches(" processed ").count()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}", self.log());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` extracts per LA (later ones bigger, so each changes something), then an attendance
/// file of a child every LA protects: (file name, mailbox) of each.
fn drop_files(root: &Path, per_la: u64) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for k in 0..per_la {
        for la in LAS {
            let (name, bytes) = extract(la, 10 + k, &format!("202611{:02}T0200{:02}", 13 + k, 0));
            put(root, &format!("LA{la}"), &name, &bytes);
            files.push((name, format!("LA{la}")));
        }
    }
    files
}

/// Writes a file into a mailbox's `in/` as a sender would: whole, then renamed into place.
fn put(root: &Path, mailbox: &str, name: &str, bytes: &[u8]) {
    let inbox = root.join("var/mailboxes").join(mailbox).join("in");
    let part = inbox.join(format!("{name}.part"));
    fs::write(&part, bytes).unwrap();
    fs::rename(&part, inbox.join(name)).unwrap();
}

fn attend(root: &Path) -> (String, String) {
    let name = "CPIS_ATTEND_RWG_20261121T101500.csv".to_owned();
    let text = "nhs_number,attended_at,org_ods,org_name,setting,user_name,user_role\n\
                9990000018,2026-11-21T09:42:00+00:00,RWG,West Herts,ED,Dr A,Doctor\n";
    put(root, "RWG", &name, text.as_bytes());
    (name, "RWG".into())
}

fn ack(root: &Path, mailbox: &str, file: &str) -> PathBuf {
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    root.join("var/mailboxes")
        .join(mailbox)
        .join("out")
        .join(format!("CPIS_ACK_{stem}.json"))
}

/// Waits until every file has its acknowledgement.
fn wait_acks(root: &Path, files: &[(String, String)], limit: Duration) {
    wait_until(limit, || {
        files
            .iter()
            .all(|(name, mailbox)| ack(root, mailbox, name).exists())
    })
    .unwrap_or_else(|| {
        let missing: Vec<&String> = files
            .iter()
            .filter(|(n, m)| !ack(root, m, n).exists())
            .map(|(n, _)| n)
            .collect();
        panic!("not acknowledged: {missing:?}")
    });
}

/// What the store holds, independent of ids and of which node did what: every file's
/// outcome and changes, the records, the history and the notifications.
fn state(pg: &Postgres, db: &str) -> String {
    [
        "SELECT name, outcome, report::jsonb ->> 'changes' FROM files ORDER BY name, id",
        "SELECT la_code, nhs, plan_type, open, fingerprint FROM records ORDER BY 1, 2, 3",
        "SELECT la_code, nhs, plan_type, start_date, end_date, local_ref, change FROM record_versions ORDER BY 1, 2, 3, id",
        "SELECT n.la_code, p.nhs, n.plan_type FROM notifications n JOIN presentations p ON p.id = n.presentation_id ORDER BY 1, 2, 3",
        "SELECT count(*) FROM access_log",
    ]
    .map(|sql| pg.psql(db, sql))
    .join("\n--\n")
}

/// Notification rows written to the LAs' outboxes (headers aside).
fn notification_rows(root: &Path) -> usize {
    LAS.iter()
        .filter_map(|la| fs::read_dir(root.join(format!("var/mailboxes/LA{la}/out"))).ok())
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("CPIS_NOTIFY_"))
        .map(|e| fs::read_to_string(e.path()).unwrap().lines().count() - 1)
        .sum()
}

#[test]
fn two_nodes_share_the_work_and_do_each_piece_once() {
    let pg = Postgres::start();
    let root = cluster_root(&pg, "postgres");
    let root = root.path();
    let a = Node::start(root, "a", NOW, None);
    let b = Node::start(root, "b", NOW, None);
    // The six mailboxes are shared out: three each, once both have seen each other.
    wait_until(Duration::from_secs(20), || {
        let status = gateway(root)
            .args(["status", "--format", "json"])
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let held = |node: &serde_json::Value| {
            status["store"]["leases"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["owner"] == node["name"] && l["expires_in_ms"].as_i64() > Some(0))
                .count()
        };
        let nodes = status["store"]["nodes"].as_array().unwrap().clone();
        nodes.len() == 2 && nodes.iter().all(|n| held(n) == 3)
    })
    .expect("both nodes serve three mailboxes");
    let mut files = drop_files(root, 8);
    files.push(attend(root));
    assert_eq!(files.len(), 41);
    wait_acks(root, &files, Duration::from_secs(120));
    // Each file once: one registry entry, no duplicate, both nodes did some.
    assert_eq!(pg.query("SELECT count(*) FROM files"), "41");
    assert_eq!(pg.query("SELECT count(DISTINCT name) FROM files"), "41");
    assert_eq!(
        pg.query("SELECT count(*) FROM files WHERE outcome NOT IN ('accepted')"),
        "0"
    );
    let (done_a, done_b) = (a.processed(), b.processed());
    assert_eq!(done_a + done_b, 41, "a: {done_a}, b: {done_b}");
    assert!(done_a > 0 && done_b > 0, "a: {done_a}, b: {done_b}");
    for (name, mailbox) in &files {
        let ack = read_json(&ack(root, mailbox, name));
        assert_eq!(ack["outcome"], "accepted", "{name}");
    }
    // Notifications: the child is protected by the five LAs, each hears once.
    wait_until(Duration::from_secs(20), || notification_rows(root) >= 5).expect("notified");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(notification_rows(root), 5);
    assert_eq!(pg.query("SELECT count(*) FROM notifications"), "5");
    assert_eq!(
        pg.query("SELECT count(*) FROM notify_batches WHERE written = 1"),
        pg.query("SELECT count(*) FROM notify_batches")
    );
    // The nightly report: both nodes restart the next morning; the day's report (and each
    // LA's data-quality file) is written by one of them, once.
    a.stop();
    b.stop();
    let next_day = "2026-11-23T09:00:00Z";
    let a = Node::start(root, "a2", next_day, None);
    let b = Node::start(root, "b2", next_day, None);
    wait_until(Duration::from_secs(30), || {
        pg.query("SELECT count(*) FROM reports WHERE report_date = '2026-11-22'") == "1"
    })
    .expect("the report for the 22nd is written");
    std::thread::sleep(Duration::from_secs(LEASE_S * 2));
    assert_eq!(
        pg.query("SELECT count(*) FROM reports WHERE report_date = '2026-11-22'"),
        "1"
    );
    assert_eq!(
        pg.query("SELECT count(*), count(DISTINCT la_code) FROM dq_files WHERE report_date = '2026-11-22'"),
        "5|5"
    );
    let writers = [&a, &b]
        .iter()
        .filter(|n| n.log().contains("reports written"))
        .count();
    assert!(writers <= 1, "written by {writers} nodes");
    assert!(root.join("var/reports/2026-11-22/index.html").is_file());
    a.stop();
    b.stop();
}

/// The files of [`alone_inside_a_transaction`], run by one node alone on database `single`
/// (to compare stores with).
fn run_alone(pg: &Postgres) -> tempfile::TempDir {
    let single = cluster_root(pg, "single");
    let alone = drop_files(single.path(), 2);
    assert_ok(
        &gateway(single.path())
            .args(["run", "--once"])
            .output()
            .unwrap(),
    );
    wait_acks(single.path(), &alone, Duration::from_secs(5));
    single
}

/// Node a, alone (so it holds every mailbox), with two extracts per LA dropped: returned
/// once it is inside its first file's write transaction, which it holds open `pause_ms`.
fn alone_inside_a_transaction(root: &Path, pause_ms: u64) -> (Node, Vec<(String, String)>) {
    let fault = format!("pause-before-commit:{pause_ms}");
    let a = Node::start(root, "a", NOW, Some(&fault));
    let files = drop_files(root, 2);
    a.wait_log("pausing before commit", Duration::from_secs(30));
    (a, files)
}

#[test]
fn a_node_killed_mid_file_is_taken_over_and_nothing_is_lost_or_doubled() {
    let pg = Postgres::start();
    let shared = cluster_root(&pg, "cluster");
    let root = shared.path();
    // A holds every mailbox, and holds each file's transaction open for 30 s.
    let (mut a, files) = alone_inside_a_transaction(root, 30_000);
    let b = Node::start(root, "b", NOW, None);
    a.kill(); // kill -9, mid-file: its transaction is rolled back with its connection
    let killed = Instant::now();
    b.wait_log("took a mailbox", Duration::from_secs(30));
    let takeover = killed.elapsed();
    wait_acks(root, &files, Duration::from_secs(60));
    assert!(
        takeover <= Duration::from_secs(2 * LEASE_S),
        "taken over after {takeover:?}"
    );
    assert_eq!(pg.psql("cluster", "SELECT count(*) FROM files"), "10");
    // The same store as one node running the same files alone.
    let _single = run_alone(&pg);
    assert_eq!(state(&pg, "cluster"), state(&pg, "single"));
    drop(b);
}

#[test]
fn postgresql_restarted_under_load_both_nodes_reconnect_and_go_on() {
    let pg = Postgres::start();
    let shared = cluster_root(&pg, "postgres");
    let root = shared.path();
    let a = Node::start(root, "a", NOW, None);
    let b = Node::start(root, "b", NOW, None);
    let files = drop_files(root, 6);
    wait_until(Duration::from_secs(30), || {
        pg.query("SELECT count(*) FROM files")
            .parse::<u32>()
            .unwrap_or(0)
            > 0
    })
    .expect("processing started");
    pg.pg_ctl("restart");
    wait_acks(root, &files, Duration::from_secs(120));
    assert_eq!(pg.query("SELECT count(*) FROM files"), "30");
    assert_eq!(pg.query("SELECT count(DISTINCT name) FROM files"), "30");
    for node in [&a, &b] {
        node.wait_log("connecting again", Duration::from_secs(30));
    }
    // Both still serve: a new file in each LA is taken.
    let mut more = Vec::new();
    for la in LAS {
        let (name, bytes) = extract(la, 30, "20261121T020000");
        put(root, &format!("LA{la}"), &name, &bytes);
        more.push((name, format!("LA{la}")));
    }
    wait_acks(root, &more, Duration::from_secs(60));
    a.stop();
    b.stop();
}

/// Sends `sig` (STOP, CONT) to a node.
fn signal(node: &Node, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn a_node_frozen_inside_its_write_transaction_holds_nobody_up() {
    let pg = Postgres::start();
    let shared = cluster_root(&pg, "cluster");
    let root = shared.path();
    // A holds every mailbox, and its first file's write transaction stays open (2 s).
    let (mut a, files) = alone_inside_a_transaction(root, 2_000);
    // Frozen there (as a stalled, swapped-out or partitioned node would be), for longer
    // than three lease periods.
    signal(&a, "STOP");
    let frozen = Instant::now();
    // Commands from a third process answer meanwhile: they never wait for A.
    let limit = Duration::from_secs(3 * LEASE_S);
    let started = Instant::now();
    let status = gateway(root)
        .args(["status", "--format", "json"])
        .timeout(limit)
        .output()
        .unwrap();
    assert_ok(&status);
    let status_took = started.elapsed();
    let started = Instant::now();
    let query = gateway(root)
        .args(["query", "9990000018", "--org", "RWG", "--user", "Dr Q"])
        .args(["--role", "Doctor", "--setting", "GP"])
        .timeout(limit)
        .output()
        .unwrap();
    assert_ok(&query);
    let query_took = started.elapsed();
    // B takes A's mailboxes over and does all the work while A is still frozen.
    let b = Node::start(root, "b", NOW, None);
    b.wait_log("took a mailbox", Duration::from_secs(30));
    let takeover = frozen.elapsed();
    wait_acks(root, &files, Duration::from_secs(60));
    assert!(
        frozen.elapsed() < Duration::from_secs(30),
        "while A was frozen"
    );
    eprintln!(
        "frozen inside the write transaction: status {status_took:?}, query {query_took:?}, mailboxes taken over after {takeover:?}"
    );
    assert!(
        takeover <= Duration::from_secs(3 * LEASE_S),
        "taken over after {takeover:?}"
    );
    // A wakes up: its late write is refused, nothing is doubled.
    signal(&a, "CONT");
    std::thread::sleep(Duration::from_secs(2 * LEASE_S));
    assert_eq!(pg.psql("cluster", "SELECT count(*) FROM files"), "10");
    assert_eq!(
        pg.psql("cluster", "SELECT count(DISTINCT name) FROM files"),
        "10"
    );
    let _single = run_alone(&pg);
    let without_log = |db: &str| {
        // The third process's look-up is one more access-log entry on the cluster.
        state(&pg, db).rsplit_once("\n--\n").unwrap().0.to_owned()
    };
    assert_eq!(without_log("cluster"), without_log("single"));
    a.kill();
    drop(b);
}

/// One `run --once` as node `name` that dies right after its first file's commit.
fn commit_and_die(root: &Path, name: &str) {
    let out = Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"))
        .current_dir(root)
        .env("CPIS_GATEWAY_NOW", NOW)
        .env("CPIS_GATEWAY_NODE", name)
        .env("CPIS_GATEWAY_FAULT", "abort-after-commit")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "it was to die after the commit");
}

#[test]
fn a_file_committed_before_a_stop_is_finished_and_a_resend_of_its_bytes_is_a_file_of_its_own() {
    let pg = Postgres::start();
    let shared = cluster_root(&pg, "cluster");
    let root = shared.path();
    let inbox = root.join("var/mailboxes/LA919/in");
    let count = |name: &str| {
        pg.psql(
            "cluster",
            &format!(
                "SELECT string_agg(outcome, ',' ORDER BY id) FROM files WHERE name = '{name}'"
            ),
        )
    };
    // This very entry, committed before a stop (and PostgreSQL restarted since): finished
    // by the next node, once.
    let (first, bytes) = extract("919", 12, "20261120T020000");
    put(root, "LA919", &first, &bytes);
    commit_and_die(root, "a");
    pg.pg_ctl("restart");
    let b = Node::start(root, "b", NOW, None);
    b.wait_log(
        "finished a file processed before a stop",
        Duration::from_secs(30),
    );
    wait_until(Duration::from_secs(10), || !inbox.join(&first).exists()).expect("out of in/");
    assert_eq!(count(&first), "accepted");
    b.stop();
    // Committed, archived and taken out of in/, and then the stop (before the old settle
    // mark): the LA later sends the same bytes again. That is a new arrival: a file of its
    // own, a duplicate of the first, not "finished".
    let (second, bytes) = extract("919", 14, "20261121T020000");
    put(root, "LA919", &second, &bytes);
    commit_and_die(root, "c");
    fs::remove_file(inbox.join(&second)).unwrap();
    pg.pg_ctl("restart");
    put(root, "LA919", &second, &bytes);
    let d = Node::start(root, "d", NOW, None);
    wait_until(Duration::from_secs(30), || {
        count(&second) == "accepted,duplicate"
    })
    .unwrap_or_else(|| panic!("{}: {}", count(&second), d.log()));
    assert!(!d.log().contains("finished a file processed before a stop"));
    d.stop();
}

#[test]
fn a_file_longer_to_apply_than_the_lease_is_applied() {
    let pg = Postgres::start();
    let shared = cluster_root(&pg, "cluster");
    let root = shared.path();
    let a = Node::start(root, "a", NOW, None);
    // Longer to apply than a lease period here (2 s): about 3 s in a debug build.
    let (name, bytes) = extract("919", 150_000, "20261121T020000");
    put(root, "LA919", &name, &bytes);
    let started = Instant::now();
    wait_acks(
        root,
        &[(name.clone(), "LA919".into())],
        Duration::from_secs(240),
    );
    eprintln!("150,000 rows applied in {:?}", started.elapsed());
    assert_eq!(read_json(&ack(root, "LA919", &name))["outcome"], "accepted");
    assert!(!a.log().contains("lost its lease"), "{}", a.log());
    assert_eq!(
        pg.psql(
            "cluster",
            "SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM records_cold)"
        ),
        "150000"
    );
    a.stop();
}
