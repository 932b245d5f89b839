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
        let dir = temp();
        let d = dir.path();
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
                 UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
                d.display()
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
    let part = inbox.join(".CPIS_EXTRACT_919_20261121T020000.csv.part");
    let start = Instant::now();
    while !fs::metadata(&part).map(|m| m.len() > 0).unwrap_or(false) {
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
