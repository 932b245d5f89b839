//! The SFTP transport against a real OpenSSH server on 127.0.0.1, started and stopped by the
//! tests (`.ci/run` installs openssh-server): round trip, partial files, host keys, an
//! outage, a connection cut mid-download and a large file streamed.

use crate::helpers::*;
use serde_json::Value;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn keygen(args: &[&str]) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-N", ""])
        .args(args)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(st.success());
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::with_sftp(None)
    }

    /// A server whose SFTP sessions take `seconds` to start (a slow peer).
    fn slow(seconds: u32) -> Sshd {
        Sshd::with_sftp(Some(seconds))
    }

    fn with_sftp(delay_s: Option<u32>) -> Sshd {
        let dir = temp();
        let d = dir.path();
        let subsystem = match delay_s {
            None => "internal-sftp".to_owned(),
            Some(s) => {
                let script = d.join("slow-sftp.sh");
                fs::write(
                    &script,
                    format!("#!/bin/sh\nsleep {s}\nexec /usr/lib/openssh/sftp-server\n"),
                )
                .unwrap();
                let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
                fs::set_permissions(&script, mode).unwrap();
                script.display().to_string()
            }
        };
        keygen(&[
            "-t",
            "ed25519",
            "-f",
            &d.join("host_key").display().to_string(),
        ]);
        keygen(&[
            "-t",
            "rsa",
            "-b",
            "2048",
            "-m",
            "PEM",
            "-f",
            &d.join("user_key").display().to_string(),
        ]);
        fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        fs::create_dir_all(d.join("remote_in")).unwrap();
        fs::create_dir_all(d.join("remote_out")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nPidFile {0}/sshd.pid\n\
                 AuthorizedKeysFile {0}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp {1}\nLogLevel ERROR\n",
                d.display(),
                subsystem
            ),
        )
        .unwrap();
        let host = fs::read_to_string(d.join("host_key.pub")).unwrap();
        let key: Vec<&str> = host.split_whitespace().take(2).collect();
        fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
        )
        .unwrap();
        let mut sshd = Sshd {
            dir,
            port,
            child: None,
        };
        sshd.up();
        sshd
    }

    fn up(&mut self) {
        fs::create_dir_all("/run/sshd").expect("/run/sshd (the tests run sshd as root)");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd is needed for this test: apt-get install openssh-server (.ci/run does)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            // sshd's sessions start their own sessions (setsid): find them by parentage.
            for pid in descendants(c.id()) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A gateway root whose LA919 mailbox is this server.
    fn gateway_root(&self, poll_s: u64, known_hosts: &Path) -> tempfile::TempDir {
        let root = temp();
        let user =
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        fs::write(
            root.path().join("config.toml"),
            format!(
                "[gateway]\nroot = \"var\"\nsettle_ms = 0\nlocal_authorities = [\"919\"]\n\n[[sftp]]\nmailbox = \"LA919\"\nhost = \"127.0.0.1\"\n\
                 port = {}\nuser = \"{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\nremote_in = \"{}\"\nremote_out = \"{}\"\npoll_s = {poll_s}\n",
                self.port,
                user.trim(),
                self.path("user_key").display(),
                known_hosts.display(),
                self.path("remote_in").display(),
                self.path("remote_out").display()
            ),
        )
        .unwrap();
        root
    }
}

/// Every process below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.down();
    }
}

fn extract(dir: &Path, rows: u64) -> String {
    let m = gen_extract(
        dir,
        &[
            "--la",
            "919",
            "--rows",
            &rows.to_string(),
            "--at",
            "20261121T020000",
        ],
    );
    m["file"].as_str().unwrap().to_owned()
}

fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

const ACK: &str = "CPIS_ACK_CPIS_EXTRACT_919_20261121T020000.json";

#[test]
fn round_trip_and_partial_files() {
    let sshd = Sshd::start();
    let root = sshd.gateway_root(60, &sshd.path("known_hosts"));
    let name = extract(&sshd.path("remote_in"), 30);
    fs::write(
        sshd.path("remote_in/CPIS_EXTRACT_919_20261122T020000.csv.part"),
        "half a file",
    )
    .unwrap();
    let out = gateway(root.path())
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        !sshd.path("remote_in").join(&name).exists(),
        "taken off the remote once safe"
    );
    assert!(
        sshd.path("remote_in/CPIS_EXTRACT_919_20261122T020000.csv.part")
            .exists(),
        "a .part file is left alone"
    );
    let ack: Value =
        serde_json::from_slice(&fs::read(sshd.path("remote_out").join(ACK)).unwrap()).unwrap();
    assert_eq!(ack["outcome"], "accepted");
    assert_eq!(ack["rows"], 30);
    assert!(fs::read_dir(sshd.path("remote_out")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".part")));
    assert!(
        root.path()
            .join("var/mailboxes/LA919/out/sent")
            .join(ACK)
            .exists(),
        "pushed once, kept in sent/"
    );
    let status: Value = serde_json::from_slice(
        &gateway(root.path())
            .args(["status", "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(status["remotes"][0]["last_success"].is_string(), "{status}");
    // The same bytes sent again are harmless: not applied twice.
    extract(&sshd.path("remote_in"), 30);
    gateway(root.path())
        .args(["run", "--once"])
        .assert()
        .success();
    let conn = rusqlite::Connection::open(root.path().join("var/store/cpis.sqlite")).unwrap();
    let applied: i64 = conn
        .query_row("SELECT count(*) FROM files WHERE applied", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied, 1);
}

#[test]
fn an_unknown_or_changed_host_key_is_refused() {
    let sshd = Sshd::start();
    let other = temp();
    keygen(&[
        "-t",
        "ed25519",
        "-f",
        &other.path().join("k").display().to_string(),
    ]);
    let key: Vec<String> = fs::read_to_string(other.path().join("k.pub"))
        .unwrap()
        .split_whitespace()
        .take(2)
        .map(str::to_owned)
        .collect();
    let wrong = other.path().join("known_hosts");
    fs::write(
        &wrong,
        format!("[127.0.0.1]:{} {}\n", sshd.port, key.join(" ")),
    )
    .unwrap();
    let root = sshd.gateway_root(60, &wrong);
    let name = extract(&sshd.path("remote_in"), 5);
    let out = gateway(root.path())
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CHANGED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sshd.path("remote_in").join(&name).exists(), "nothing taken");
    let status: Value = serde_json::from_slice(
        &gateway(root.path())
            .args(["status", "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        status["remotes"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("refusing"),
        "{status}"
    );
    assert!(status["remotes"][0]["last_success"].is_null());
    let empty = other.path().join("empty_known_hosts");
    fs::write(&empty, "").unwrap();
    let root = sshd.gateway_root(60, &empty);
    let out = gateway(root.path())
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in known_hosts"));
}

#[test]
fn an_outage_is_retried_and_a_cut_download_is_fetched_again_whole() {
    let mut sshd = Sshd::start();
    let root = sshd.gateway_root(1, &sshd.path("known_hosts"));
    // A large file (about 200 MB) whose content is refused quickly: streamed, not held.
    let big = sshd.path("remote_in/CPIS_EXTRACT_919_20261121T020000.csv");
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&big).unwrap());
        std::io::Write::write_all(&mut f, b"colour,shade\n").unwrap();
        let line = [b'x'; 99];
        for _ in 0..2_000_000 {
            std::io::Write::write_all(&mut f, &line).unwrap();
            std::io::Write::write_all(&mut f, b"\n").unwrap();
        }
    }
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = Command::new("pkill")
                .args(["-P", &self.0.id().to_string()])
                .status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let daemon = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(root.path().join("rss.txt"))
        .arg(assert_cmd::cargo::cargo_bin("cpis-gateway"))
        .arg("run")
        .current_dir(root.path())
        .stdout(Stdio::null())
        .stderr(fs::File::create(root.path().join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Guard(daemon);
    let inbox = root.path().join("var/mailboxes/LA919/in");
    // The download goes into the gateway's own folder, never into in/.
    let incoming = root.path().join("var/sftp/incoming");
    let downloading = || {
        fs::read_dir(&incoming)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 0))
    };
    let start = Instant::now();
    while !downloading() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the download never started"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    sshd.down(); // cut mid-download
    std::thread::sleep(Duration::from_secs(2));
    assert!(big.exists(), "the remote file is still there");
    assert!(
        !inbox.join("CPIS_EXTRACT_919_20261121T020000.csv").exists(),
        "nothing partial was dropped into in/"
    );
    sshd.up();
    let ack = sshd.path("remote_out").join(ACK);
    assert!(
        wait_for(Duration::from_secs(90), || ack.exists()),
        "{}",
        fs::read_to_string(root.path().join("daemon.log")).unwrap_or_default()
    );
    // /usr/bin/time passes the signal on; its report is the daemon's peak memory.
    let _ = Command::new("pkill")
        .args(["-TERM", "-P", &daemon.0.id().to_string()])
        .status();
    let _ = daemon.0.wait();
    let ack: Value = serde_json::from_slice(&fs::read(&ack).unwrap()).unwrap();
    assert_eq!(
        file_codes(&ack),
        ["HEADER"],
        "the whole file arrived and was read"
    );
    assert!(!big.exists(), "taken off the remote");
    let log = fs::read_to_string(root.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("remote unavailable"),
        "the outage was retried: {log}"
    );
    let rss_kb: u64 = fs::read_to_string(root.path().join("rss.txt"))
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        rss_kb < 150_000,
        "a 200 MB file streamed, not loaded: peak RSS {rss_kb} KB"
    );
    let conn = rusqlite::Connection::open(root.path().join("var/store/cpis.sqlite")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "one outcome");
}

/// The status of the root in `dir`, as JSON.
fn status_json(dir: &Path) -> Value {
    serde_json::from_slice(
        &gateway(dir)
            .args(["status", "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

#[test]
fn a_link_planted_in_in_is_never_written_through() {
    // A local account that may write into LA919's in/ plants links where the gateway
    // used to put its partial download and its temporary files.
    let sshd = Sshd::start();
    let root = sshd.gateway_root(60, &sshd.path("known_hosts"));
    let r = root.path();
    assert_ok(&gateway(r).arg("init").output().unwrap());
    let store = r.join("var/store/cpis.sqlite");
    let store_before = fs::read(&store).unwrap();
    let victim = r.join("var/mailboxes/LA202/out/CPIS_ACK_CPIS_EXTRACT_202_20261120T020000.json");
    fs::create_dir_all(victim.parent().unwrap()).unwrap();
    fs::write(&victim, "LA202's acknowledgement").unwrap();
    let inbox = r.join("var/mailboxes/LA919/in");
    let outbox = r.join("var/mailboxes/LA919/out");
    std::os::unix::fs::symlink(
        &store,
        inbox.join(format!(".{}.part", "CPIS_EXTRACT_919_20261121T020000.csv")),
    )
    .unwrap();
    std::os::unix::fs::symlink(&victim, outbox.join(format!(".{ACK}.tmp"))).unwrap();
    // The remote file: any bytes under that name.
    let name = extract(&sshd.path("remote_in"), 12);
    assert_eq!(name, "CPIS_EXTRACT_919_20261121T020000.csv");
    let out = gateway(r).args(["run", "--once"]).output().unwrap();
    assert_ok(&out);
    let store_after = fs::read(&store).unwrap();
    assert!(
        store_after.starts_with(b"SQLite format 3\0"),
        "the store was overwritten"
    );
    assert_ne!(store_after, b"", "{}", store_before.len());
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "LA202's acknowledgement"
    );
    let ack: Value =
        serde_json::from_slice(&fs::read(sshd.path("remote_out").join(ACK)).unwrap()).unwrap();
    assert_eq!(ack["outcome"], "accepted");
    assert_eq!(status_json(r)["store"]["backend"], "sqlite");
}

#[test]
fn a_remote_file_is_deleted_only_when_its_bytes_are_safely_here() {
    let sshd = Sshd::start();
    let root = sshd.gateway_root(60, &sshd.path("known_hosts"));
    let r = root.path();
    assert_ok(&gateway(r).arg("init").output().unwrap());
    let inbox = r.join("var/mailboxes/LA919/in");
    // A different file of the same name waits in in/, held there by an empty control file.
    let name = "CPIS_EXTRACT_919_20261121T020000.csv";
    fs::write(inbox.join(name), "the LA's own copy, still being sent").unwrap();
    fs::write(inbox.join("CPIS_EXTRACT_919_20261121T020000.ctl"), "").unwrap();
    extract(&sshd.path("remote_in"), 7);
    let remote = sshd.path("remote_in").join(name);
    let remote_bytes = fs::read(&remote).unwrap();
    let out = gateway(r).args(["run", "--once"]).output().unwrap();
    assert_eq!(
        fs::read(&remote).unwrap(),
        remote_bytes,
        "its bytes exist nowhere else: it stays: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(inbox.join(name)).unwrap(),
        "the LA's own copy, still being sent"
    );
    let status = status_json(r);
    let left = &status["remotes"][0]["left_on_remote"];
    assert_eq!(left[0]["file_name"], name, "{status}");
    assert!(left[0]["note"]
        .as_str()
        .unwrap()
        .contains("a different file"));
    assert_schema("status.schema.json", &status);
    let text = gateway(r).arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains(&format!("left {name} there")));
    // The same bytes waiting in in/: the gateway has them, so the remote copy may go.
    fs::write(inbox.join(name), &remote_bytes).unwrap();
    let out = gateway(r).args(["run", "--once"]).output().unwrap();
    assert!(!remote.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read(inbox.join(name)).unwrap(), remote_bytes);
    assert_eq!(
        status_json(r)["remotes"][0]["left_on_remote"],
        serde_json::json!([]),
        "nothing left behind any more"
    );
}

#[test]
fn a_name_too_long_for_the_disk_holds_up_nothing() {
    let sshd = Sshd::start();
    let root = sshd.gateway_root(60, &sshd.path("known_hosts"));
    let r = root.path();
    let long = format!("{}.csv", "L".repeat(246));
    assert_eq!(long.len(), 250);
    fs::write(sshd.path("remote_in").join(&long), "whatever").unwrap();
    extract(&sshd.path("remote_in"), 9);
    let out = gateway(r).args(["run", "--once"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("too long"), "{err}");
    let ack: Value =
        serde_json::from_slice(&fs::read(sshd.path("remote_out").join(ACK)).unwrap()).unwrap();
    assert_eq!(ack["outcome"], "accepted", "the later file was pulled");
    // The long one was taken too, and refused with an acknowledgement of its own.
    assert!(!sshd.path("remote_in").join(&long).exists(), "{err}");
    let refusal = fs::read_dir(sshd.path("remote_out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("CPIS_ACK_LLL") && n.ends_with(".json"))
        .unwrap_or_else(|| panic!("no acknowledgement for the long name: {err}"));
    assert!(refusal.len() < 255);
    let refused: Value =
        serde_json::from_slice(&fs::read(sshd.path("remote_out").join(refusal)).unwrap()).unwrap();
    assert_eq!(file_codes(&refused), ["FILE_NAME"]);
    let status = status_json(r);
    assert_eq!(
        status["rejected_last_day"][0]["file"],
        long.as_str(),
        "{status}"
    );
}

#[test]
fn a_poll_longer_than_the_lease_keeps_its_lease_on_a_shared_store() {
    let pg = crate::backend::Postgres::start();
    // Every SFTP session takes 8 s (four lease periods) to start.
    let sshd = Sshd::slow(8);
    let root = sshd.gateway_root(1, &sshd.path("known_hosts"));
    let r = root.path();
    let config = r.join("config.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    text = text.replacen(
        "[[sftp]]",
        &format!("[store]\nurl = \"{}\"\nlease_s = 2\n\n[[sftp]]", pg.url()),
        1,
    );
    fs::write(&config, text).unwrap();
    assert_ok(&gateway(r).arg("init").output().unwrap());
    extract(&sshd.path("remote_in"), 5);
    let remote_lease = |status: &Value| {
        status["store"]["leases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"].as_str().unwrap().starts_with("remote:sftp:"))
            .cloned()
    };
    // Node a: one run, whose poll of the slow remote lasts longer than a lease.
    /// Killed when dropped (a failed assertion must not leave a gateway running).
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let a_log = r.join("a.log");
    let mut a = Killed(
        Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"))
            .current_dir(r)
            .env("CPIS_GATEWAY_NOW", NOW)
            .env("CPIS_GATEWAY_NODE", "a")
            .args(["run", "--once"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&a_log).unwrap())
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_for(Duration::from_secs(30), || remote_lease(&status_json(r))
            .is_some_and(|l| l["owner"].as_str().unwrap().starts_with("a:")
                && l["expires_in_ms"].as_i64().unwrap() > 0)),
        "node a never polled: {}",
        fs::read_to_string(&a_log).unwrap_or_default()
    );
    // Node b, a daemon polling the same remote every second, must wait for a's poll.
    let b_log = r.join("b.log");
    let b = Killed(
        Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"))
            .current_dir(r)
            .env("CPIS_GATEWAY_NOW", NOW)
            .env("CPIS_GATEWAY_NODE", "b")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&b_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let status = status_json(r);
        let remote = remote_lease(&status).unwrap_or_else(|| panic!("no remote lease: {status}"));
        assert!(
            remote["owner"].as_str().unwrap().starts_with("a:")
                && remote["expires_in_ms"].as_i64().unwrap() > 0,
            "node a's poll lost its lease while it ran: {remote}\n{}",
            fs::read_to_string(&a_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        a.0.wait().unwrap().success(),
        "{}",
        fs::read_to_string(&a_log).unwrap()
    );
    drop(b);
    let b_said = fs::read_to_string(&b_log).unwrap();
    assert!(
        !b_said.contains("pulled"),
        "node b polled the remote too: {b_said}"
    );
    let ack: Value =
        serde_json::from_slice(&fs::read(sshd.path("remote_out").join(ACK)).unwrap()).unwrap();
    assert_eq!(ack["outcome"], "accepted");
}

#[test]
fn one_remote_file_that_cannot_be_taken_holds_up_neither_the_others_nor_the_push() {
    let sshd = Sshd::start();
    let root = sshd.gateway_root(60, &sshd.path("known_hosts"));
    let r = root.path();
    // Taken files move to remote_done; the LA already has a file of that name there. And a
    // file larger than the gateway takes.
    let done = sshd.path("remote_done");
    fs::create_dir_all(&done).unwrap();
    let config = r.join("config.toml");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("[gateway]\n", "[gateway]\nmax_file_bytes = 20000\n")
        .replace(
            "poll_s = 60",
            &format!("poll_s = 60\nremote_done = \"{}\"", done.display()),
        );
    fs::write(&config, text).unwrap();
    assert_ok(&gateway(r).arg("init").output().unwrap());
    let first = extract(&sshd.path("remote_in"), 5);
    fs::write(done.join(&first), "an older copy").unwrap();
    // OpenSSH's SFTP will not rename over an existing file: that move fails.
    let big = "CPIS_EXTRACT_919_20261119T020000.csv";
    fs::write(sshd.path("remote_in").join(big), vec![b'x'; 30_000]).unwrap();
    let later = gen_extract(
        &sshd.path("remote_in"),
        &["--la", "919", "--rows", "5", "--at", "20261122T020000"],
    )["file"]
        .as_str()
        .unwrap()
        .to_owned();
    // Something to push: a file waiting in LA919's out/.
    let out_dir = r.join("var/mailboxes/LA919/out");
    fs::write(out_dir.join("CPIS_DQ_919_2026-11-21.csv"), "la_code\n919\n").unwrap();
    let out = gateway(r).args(["run", "--once"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        sshd.path("remote_out")
            .join("CPIS_DQ_919_2026-11-21.csv")
            .exists(),
        "pushed: {err}"
    );
    let later_ack = sshd
        .path("remote_out")
        .join(format!("CPIS_ACK_{}.json", later.trim_end_matches(".csv")));
    assert!(
        later_ack.exists(),
        "the later file was pulled and answered: {err}"
    );
    assert!(
        sshd.path("remote_in").join(big).exists(),
        "too large: not fetched"
    );
    let status = status_json(r);
    let left = status["remotes"][0]["left_on_remote"]
        .as_array()
        .unwrap()
        .clone();
    let notes: Vec<String> = left
        .iter()
        .map(|f| format!("{}: {}", f["file_name"], f["note"]))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(big) && n.contains("max_file_bytes")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&first) && n.contains("remote_done")),
        "{notes:?}"
    );
    let kept: Vec<(PathBuf, u64)> = walk_sizes(&r.join("var"))
        .into_iter()
        .filter(|(p, len)| *len >= 30_000 && !p.starts_with(r.join("var/store")))
        .collect();
    assert!(
        kept.is_empty(),
        "nothing of the large file was kept: {kept:?}"
    );
}

/// Every file below `dir` with its size.
fn walk_sizes(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(walk_sizes(&e.path()));
        } else {
            out.push((e.path(), m.len()));
        }
    }
    out
}
