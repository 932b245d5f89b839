//! The MESH transport against NHS England's own `mesh-sandbox` (file store, full HMAC
//! authentication) on 127.0.0.1, started and stopped by each test, with the LAs and the
//! hospital played by NHS England's `mesh-client` (`tests/mesh/party.py`). `scripts/test.sh`
//! installs both, pinned, into `target/mesh-venv`.

use crate::daemon::{read_json, wait_until};
use crate::helpers::*;
use serde_json::Value;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "TestKey";
const GATEWAY: &str = "X26GW001";
const LA919: &str = "X26LA919";
const LA202: &str = "X26LA202";
const HOSPITAL: &str = "X26RWG01";
const STRANGER: &str = "X26ZZZ99";

fn venv() -> PathBuf {
    std::env::var_os("CPIS_MESH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/mesh-venv"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sandbox: its data folder survives a restart (`down` then `up`).
struct Sandbox {
    data: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    tls: Option<Pki>,
}

impl Sandbox {
    fn start() -> Sandbox {
        Sandbox::with_tls(None)
    }

    fn with_tls(tls: Option<Pki>) -> Sandbox {
        let data = temp();
        for mailbox in [GATEWAY, LA919, LA202, HOSPITAL, STRANGER] {
            fs::create_dir_all(data.path().join(mailbox).join("in")).unwrap();
        }
        let mut sandbox = Sandbox {
            data,
            port: free_port(),
            child: None,
            tls,
        };
        sandbox.up();
        sandbox
    }

    fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    fn up(&mut self) {
        let uvicorn = venv().join("bin/uvicorn");
        let mut cmd = Command::new(&uvicorn);
        cmd.args(["mesh_sandbox.api:app", "--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .env("STORE_MODE", "file")
            .env("MAILBOXES_DATA_DIR", self.data.path())
            .env("AUTH_MODE", "full")
            .env("SHARED_KEY", KEY)
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.data.path().join("sandbox.log")).unwrap());
        if let Some(pki) = &self.tls {
            cmd.args(["--ssl-keyfile", &pki.path("server.key")])
                .args(["--ssl-certfile", &pki.path("server.pem")])
                .args(["--ssl-ca-certs", &pki.path("ca.pem")])
                .args(["--ssl-cert-reqs", "2"]);
        }
        self.child = Some(cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the MESH tests need mesh-sandbox; scripts/test.sh --deps-only installs it",
                uvicorn.display()
            )
        }));
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the sandbox did not start: {}",
                fs::read_to_string(self.data.path().join("sandbox.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `party.py` as `mailbox`; its JSON answer.
    fn party(&self, mailbox: &str, args: &[&str]) -> Value {
        let mut cmd = Command::new(venv().join("bin/python"));
        cmd.arg(repo().join("tests/mesh/party.py"))
            .args([&self.url(), mailbox, KEY])
            .args(args);
        if let Some(pki) = &self.tls {
            cmd.env("CPIS_MESH_CA", pki.path("ca.pem"))
                .env("CPIS_MESH_CERT", pki.path("client.pem"))
                .env("CPIS_MESH_KEY", pki.path("client.key"));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "party.py {mailbox} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `mailbox` sends `file` to the gateway (in chunks of `chunk` bytes when given).
    fn send(&self, mailbox: &str, file: &Path, chunk: Option<usize>) -> String {
        let mut args = vec!["send", GATEWAY, file.to_str().unwrap(), "CPIS_EXTRACT"];
        let chunk = chunk.map(|c| c.to_string());
        args.extend(chunk.as_deref());
        self.party(mailbox, &args)["message_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Everything waiting for `mailbox`, saved into `dir` and acknowledged.
    fn collect(&self, mailbox: &str, dir: &Path) -> Vec<Value> {
        fs::create_dir_all(dir).unwrap();
        self.party(mailbox, &["inbox", dir.to_str().unwrap()])
            .as_array()
            .unwrap()
            .clone()
    }

    fn count(&self, mailbox: &str) -> u64 {
        self.party(mailbox, &["count"])["count"].as_u64().unwrap()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.down();
    }
}

/// A gateway root whose mailboxes LA919, LA202 and RWG are reached by MESH.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(sandbox: &Sandbox, shared_key: &str, chunk_bytes: u64) -> Site {
        let dir = temp();
        let tls = match &sandbox.tls {
            Some(pki) => format!(
                "ca = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
                pki.path("ca.pem"),
                pki.path("client.pem"),
                pki.path("client.key")
            ),
            None => String::new(),
        };
        fs::write(
            dir.path().join("config.toml"),
            format!(
                "[gateway]\nroot = \"var\"\nsettle_ms = 100\nlocal_authorities = [\"919\", \"202\"]\n\n\
                 [[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n\n\
                 [mesh]\nurl = \"{}\"\nmesh_mailbox = \"{GATEWAY}\"\npassword = \"password\"\n\
                 shared_key = \"{shared_key}\"\npoll_s = 1\nchunk_bytes = {chunk_bytes}\n{tls}\n\
                 [[mesh.partner]]\nmailbox = \"LA919\"\nmesh_mailbox = \"{LA919}\"\n\
                 [[mesh.partner]]\nmailbox = \"LA202\"\nmesh_mailbox = \"{LA202}\"\n\
                 [[mesh.partner]]\nmailbox = \"RWG\"\nmesh_mailbox = \"{HOSPITAL}\"\n",
                sandbox.url()
            ),
        )
        .unwrap();
        assert_ok(&gateway(dir.path()).arg("init").output().unwrap());
        Site { dir }
    }

    /// With the default (production) chunk size.
    fn standard(sandbox: &Sandbox) -> Site {
        Site::new(sandbox, KEY, 20 * 1024 * 1024)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run_once(&self) -> Output {
        gateway(self.path())
            .args(["run", "--once"])
            .output()
            .unwrap()
    }

    fn status(&self) -> Value {
        let out = gateway(self.path())
            .args(["status", "--format", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn mailbox(&self, mailbox: &str, side: &str) -> PathBuf {
        self.path().join("var/mailboxes").join(mailbox).join(side)
    }

    /// Names of the files directly in a folder.
    fn names(&self, dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_type().unwrap().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// How many files of this name the registry has processed, and their outcomes.
    fn outcomes(&self, name: &str) -> Vec<String> {
        let out = Command::new("sqlite3")
            .arg(self.path().join("var/store/cpis.sqlite"))
            .arg(format!("SELECT outcome FROM files WHERE name = '{name}'"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `mailbox` sends 919's sample extract to the gateway; its path and MESH message id.
fn send_sample(sandbox: &Sandbox, mailbox: &str) -> (PathBuf, String) {
    let extract = samples().join("CPIS_EXTRACT_919_20261121T020000.csv");
    let id = sandbox.send(mailbox, &extract, None);
    (extract, id)
}

/// A generated extract of `rows` rows for `la`, written into `dir`.
fn extract_file(dir: &Path, la: &str, rows: u64, stamp: &str) -> PathBuf {
    let (name, bytes) = crate::daemon::extract(la, rows, stamp);
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn las_send_a_small_and_a_chunked_extract_and_receive_their_acks_by_mesh() {
    let sandbox = Sandbox::start();
    // Outbound chunks of 300 bytes: every acknowledgement goes in several.
    let site = Site::new(&sandbox, KEY, 300);
    let files = temp();
    let small = extract_file(files.path(), "919", 20, "20261121T020000");
    let big = extract_file(files.path(), "202", 20_000, "20261121T021500");
    assert!(fs::metadata(&big).unwrap().len() > 1_000_000);
    sandbox.send(LA919, &small, None);
    sandbox.send(LA202, &big, Some(200_000));

    let out = site.run_once();
    assert_ok(&out);
    for file in [&small, &big] {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert_eq!(site.outcomes(name), ["accepted"], "{}", stderr(&out));
    }
    assert_eq!(sandbox.count(GATEWAY), 0, "both acknowledged in MESH");

    for (la, mailbox, file) in [(LA919, "LA919", &small), (LA202, "LA202", &big)] {
        let got_dir = files.path().join(la);
        let got = sandbox.collect(la, &got_dir);
        assert_eq!(got.len(), 1, "{la}: {got:?}");
        let m = &got[0];
        assert_eq!(m["from"], GATEWAY);
        assert_eq!(m["workflow"], "CPIS_ACK");
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let ack = format!("CPIS_ACK_{stem}.json");
        assert_eq!(m["file_name"], ack.as_str());
        assert!(m["local_id"].as_str().unwrap().starts_with("CPISGW-"));
        // Reassembled from its chunks, byte for byte what the gateway wrote.
        let sent = site.mailbox(mailbox, "out").join("sent").join(&ack);
        assert_eq!(
            fs::read(got_dir.join(&ack)).unwrap(),
            fs::read(&sent).unwrap()
        );
        assert!(fs::read(&sent).unwrap().len() > 300, "the ack was chunked");
        assert_eq!(read_json(&sent)["outcome"], "accepted");
        assert!(site.names(&site.mailbox(mailbox, "out")).is_empty());
    }

    // A second run sends nothing again and receives nothing.
    let again = site.run_once();
    assert_ok(&again);
    assert!(!stderr(&again).contains(" sent "), "{}", stderr(&again));
    for la in [LA919, LA202] {
        assert_eq!(sandbox.count(la), 0, "{la} got nothing more");
    }
    let status = site.status();
    assert_eq!(status["mesh"]["received_today"], 2);
    assert_eq!(status["mesh"]["sent_today"], 2);
    assert_eq!(status["mesh"]["pending_outbound"], 0);
    assert!(status["mesh"]["last_success"].is_string());
    assert_eq!(status["mesh"]["failing"], false);
}

#[test]
fn attendance_by_mesh_returns_flags_and_notifies_the_la_by_mesh() {
    let sandbox = Sandbox::start();
    let site = Site::standard(&sandbox);
    send_sample(&sandbox, LA919);
    assert_ok(&site.run_once());
    let got = temp();
    assert_eq!(sandbox.collect(LA919, got.path()).len(), 1, "the ack");

    let attendance = fs::read_dir(samples().join("health"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("CPIS_ATTEND_RWG_"))
        .unwrap();
    sandbox.send(HOSPITAL, &attendance, None);
    let out = site.run_once();
    assert_ok(&out);

    let mut back = sandbox.collect(HOSPITAL, got.path());
    back.sort_by_key(|m| m["workflow"].as_str().unwrap().to_owned());
    let workflows: Vec<&str> = back
        .iter()
        .map(|m| m["workflow"].as_str().unwrap())
        .collect();
    assert_eq!(workflows, ["CPIS_ACK", "CPIS_FLAGS"], "{back:?}");
    let name = back[1]["file_name"].as_str().unwrap();
    let body = read_json(&got.path().join(name));
    assert!(
        !body["flagged"].as_array().unwrap().is_empty(),
        "a child of the extract is flagged: {body}"
    );

    let notes = sandbox.collect(LA919, got.path());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["workflow"], "CPIS_NOTIFY");
    let csv = fs::read_to_string(got.path().join(notes[0]["file_name"].as_str().unwrap())).unwrap();
    assert!(csv.contains("RWG"), "{csv}");
}

#[test]
fn a_message_from_an_unmapped_mailbox_is_kept_aside_acknowledged_and_shown() {
    let sandbox = Sandbox::start();
    let site = Site::standard(&sandbox);
    let (extract, id) = send_sample(&sandbox, STRANGER);
    let out = site.run_once();
    assert_ok(&out);
    assert_eq!(sandbox.count(GATEWAY), 0, "acknowledged");
    for mailbox in ["LA919", "LA202", "RWG"] {
        assert!(site.names(&site.mailbox(mailbox, "in")).is_empty());
        assert!(site
            .outcomes("CPIS_EXTRACT_919_20261121T020000.csv")
            .is_empty());
    }
    let kept = site.path().join("var/mesh/kept").join(&id);
    assert_eq!(fs::read(&kept).unwrap(), fs::read(&extract).unwrap());
    let status = site.status();
    assert_schema("status.schema.json", &status);
    let k = &status["mesh"]["kept_aside"][0];
    assert_eq!(k["message_id"], id.as_str());
    assert_eq!(k["from"], STRANGER);
    let text = gateway(site.path()).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("MESH message {id}")) && text.contains("kept aside"),
        "{text}"
    );
}

#[test]
fn a_wrong_shared_key_is_a_clear_error_and_loses_nothing() {
    let sandbox = Sandbox::start();
    let wrong = Site::new(&sandbox, "NotTheKey", 20 * 1024 * 1024);
    send_sample(&sandbox, LA919);
    // Something for the LA is waiting in out/ too.
    let out_dir = wrong.mailbox("LA919", "out");
    fs::write(
        out_dir.join("CPIS_DQ_919_2026-11-21.csv"),
        "la_code,item\n919,x\n",
    )
    .unwrap();

    let check = gateway(wrong.path())
        .args(["mesh", "check"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    assert!(stderr(&check).contains("403"), "{}", stderr(&check));
    let out = wrong.run_once();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("MESH refused the mailbox's credentials (403")
            && err.contains("mesh.shared_key"),
        "{err}"
    );
    assert!(!err.contains("NotTheKey"), "the key is never logged");
    assert_eq!(sandbox.count(LA919), 0);
    let status = wrong.status();
    assert_eq!(status["mesh"]["failing"], true);
    assert!(status["mesh"]["last_error"]
        .as_str()
        .unwrap()
        .contains("403"));
    assert_eq!(wrong.names(&out_dir), ["CPIS_DQ_919_2026-11-21.csv"]);

    // With the right key, everything goes through.
    let config = wrong.path().join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, text.replace("NotTheKey", KEY)).unwrap();
    let check = gateway(wrong.path())
        .args(["mesh", "check"])
        .output()
        .unwrap();
    assert_ok(&check);
    assert!(String::from_utf8_lossy(&check.stdout)
        .contains("mesh:X26GW001: handshake accepted; 1 message(s) waiting"));
    assert_ok(&wrong.run_once());
    assert_eq!(
        wrong.outcomes("CPIS_EXTRACT_919_20261121T020000.csv"),
        ["accepted"]
    );
    let got = temp();
    let names: Vec<String> = sandbox
        .collect(LA919, got.path())
        .iter()
        .map(|m| m["file_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "the DQ file and the ack, once each: {names:?}"
    );
    assert_eq!(wrong.status()["mesh"]["failing"], false);
}

#[test]
fn mesh_stopped_mid_download_and_mid_send_loses_nothing_and_delivers_once() {
    let mut sandbox = Sandbox::start();
    // Outbound chunks of 200 bytes: the ack goes in several.
    let site = Site::new(&sandbox, KEY, 200);
    let files = temp();
    let big = extract_file(files.path(), "919", 20_000, "20261121T020000");
    let name = big.file_name().unwrap().to_str().unwrap().to_owned();
    sandbox.send(LA919, &big, Some(100_000));

    // The daemon pauses 1.5 s between chunks; MESH is stopped during a pause of the download.
    let log = site.path().join("daemon.log");
    // Killed when dropped, should an assertion fail first.
    let mut daemon = crate::daemon::Daemon {
        child: Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"))
            .current_dir(site.path())
            .env("CPIS_GATEWAY_NOW", NOW)
            .env("CPIS_GATEWAY_FAULT", "pause-mesh-chunk:1500")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log: log.clone(),
    };
    let pausing = "pausing between MESH chunks";
    assert!(wait_until(Duration::from_secs(30), log_has_at(site.path(), pausing, 1)).is_some());
    sandbox.down();
    std::thread::sleep(Duration::from_secs(6));
    sandbox.up();
    // The message arrives (downloaded again from the start), is applied, and its ack is
    // being sent in chunks: stop MESH again during a pause of the upload.
    assert!(
        wait_until(Duration::from_secs(90), || !site.outcomes(&name).is_empty()).is_some(),
        "{}",
        fs::read_to_string(site.path().join("daemon.log")).unwrap()
    );
    let before = fs::read_to_string(&log).unwrap().matches(pausing).count();
    assert!(wait_until(
        Duration::from_secs(30),
        log_has_at(site.path(), pausing, before + 1)
    )
    .is_some());
    sandbox.down();
    std::thread::sleep(Duration::from_secs(3));
    sandbox.up();
    let stem = big.file_stem().unwrap().to_str().unwrap();
    let ack = format!("CPIS_ACK_{stem}.json");
    let sent = site.mailbox("LA919", "out").join("sent").join(&ack);
    assert!(
        wait_until(Duration::from_secs(120), || sent.exists()).is_some(),
        "{}",
        fs::read_to_string(site.path().join("daemon.log")).unwrap()
    );
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status();
    let _ = daemon.child.wait();

    let daemon_log = fs::read_to_string(site.path().join("daemon.log")).unwrap();
    assert!(daemon_log.contains("no answer from MESH"), "{daemon_log}");
    assert_eq!(site.outcomes(&name), ["accepted"], "applied exactly once");
    assert_eq!(sandbox.count(GATEWAY), 0);
    let got = temp();
    let acks = sandbox.collect(LA919, got.path());
    // One MESH message. (The sandbox's file store, restarted while a message is still being
    // uploaded, lists that message twice once it is complete: the same message id twice.)
    let mut ids: Vec<&str> = acks
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "the ack is sent exactly once: {acks:?}\n{daemon_log}"
    );
    let rows = Command::new("sqlite3")
        .arg(site.path().join("var/store/cpis.sqlite"))
        .arg("SELECT count(*), min(state) FROM mesh_messages WHERE direction = 'out'")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "1|sent");
    assert_eq!(
        fs::read(got.path().join(&ack)).unwrap(),
        fs::read(&sent).unwrap()
    );
}

#[test]
fn a_first_post_whose_answer_is_lost_is_found_by_its_local_id_not_sent_twice() {
    let sandbox = Sandbox::start();
    let site = Site::standard(&sandbox);
    send_sample(&sandbox, LA919);
    // MESH accepts the ack, and the gateway dies before it records the answer.
    let crashed = gateway(site.path())
        .env("CPIS_GATEWAY_FAULT", "abort-after-mesh-post")
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_eq!(crashed.status.code(), None, "killed: {}", stderr(&crashed));
    let out_dir = site.mailbox("LA919", "out");
    assert_eq!(site.names(&out_dir).len(), 1, "the ack is still in out/");

    let out = site.run_once();
    assert_ok(&out);
    assert!(
        stderr(&out).contains("a send whose answer was lost had reached MESH"),
        "{}",
        stderr(&out)
    );
    assert!(site.names(&out_dir).is_empty());
    let got = temp();
    let acks = sandbox.collect(LA919, got.path());
    assert_eq!(acks.len(), 1, "sent exactly once: {acks:?}");
    assert_eq!(acks[0]["workflow"], "CPIS_ACK");
}

fn log_has_at(dir: &Path, text: &str, n: usize) -> impl FnMut() -> bool {
    let log = dir.join("daemon.log");
    let text = text.to_owned();
    move || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(&text)
            .count()
            >= n
    }
}

#[test]
fn an_undelivered_report_is_recorded_against_the_message_and_shown() {
    let sandbox = Sandbox::start();
    let site = Site::standard(&sandbox);
    send_sample(&sandbox, LA919);
    assert_ok(&site.run_once());
    let got = temp();
    let ack = sandbox.collect(LA919, got.path());
    let ack_id = ack[0]["message_id"].as_str().unwrap();
    sandbox.party(
        GATEWAY,
        &[
            "report",
            ack_id,
            "14",
            "Message not collected by recipient after 5 days",
        ],
    );
    let out = site.run_once();
    assert_ok(&out);
    assert_eq!(sandbox.count(GATEWAY), 0, "the report is acknowledged");
    let status = site.status();
    assert_schema("status.schema.json", &status);
    let u = &status["mesh"]["undelivered"][0];
    assert_eq!(u["message_id"], ack_id);
    assert_eq!(u["file_name"], ack[0]["file_name"]);
    assert_eq!(u["to"], LA919);
    assert_eq!(u["status_code"], "14");
    let text = gateway(site.path()).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "MESH reported {} to {LA919} undelivered (code 14",
            ack[0]["file_name"].as_str().unwrap()
        )),
        "{text}"
    );
    // Never delivered as a file.
    for mailbox in ["LA919", "LA202", "RWG"] {
        assert!(site.names(&site.mailbox(mailbox, "in")).is_empty());
    }
    // The day's report names it (today, so far: the clock is fixed at NOW).
    assert_ok(
        &gateway(site.path())
            .args(["report", "--preview"])
            .output()
            .unwrap(),
    );
    let page = fs::read_to_string(
        site.path()
            .join("var/reports/preview/2026-11-22/index.html"),
    )
    .unwrap();
    assert!(
        page.contains(&format!(
            "{} to {LA919} was not delivered by MESH (code 14",
            ack[0]["file_name"].as_str().unwrap()
        )),
        "report page"
    );
}

#[test]
fn tls_with_a_client_certificate_and_a_refusal_without_one() {
    let sandbox = Sandbox::with_tls(Some(Pki::new("localhost", "client")));
    let site = Site::standard(&sandbox);
    send_sample(&sandbox, LA919);

    // Without the client certificate the server refuses the connection; nothing is lost.
    let config = site.path().join("config.toml");
    let with_cert = fs::read_to_string(&config).unwrap();
    let without: String = with_cert
        .lines()
        .filter(|l| !l.starts_with("client_"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&config, &without).unwrap();
    let out = site.run_once();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("no answer from MESH"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sandbox.count(GATEWAY), 1, "still waiting in MESH");

    // A CA that did not sign the server's certificate: refused too.
    let other = Pki::new("localhost", "client");
    fs::write(
        &config,
        with_cert.replace(
            &sandbox.tls.as_ref().unwrap().path("ca.pem"),
            &other.path("ca.pem"),
        ),
    )
    .unwrap();
    let out = site.run_once();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );

    fs::write(&config, &with_cert).unwrap();
    assert_ok(&site.run_once());
    assert_eq!(
        site.outcomes("CPIS_EXTRACT_919_20261121T020000.csv"),
        ["accepted"]
    );
    let got = temp();
    assert_eq!(
        sandbox.collect(LA919, got.path())[0]["workflow"],
        "CPIS_ACK"
    );
}

#[test]
fn plain_http_to_another_host_is_refused() {
    let dir = temp();
    fs::write(
        dir.path().join("config.toml"),
        "[gateway]\nroot = \"var\"\n[mesh]\nurl = \"http://10.1.2.3:8700\"\nmesh_mailbox = \"X\"\npassword = \"p\"\nshared_key = \"k\"\n",
    )
    .unwrap();
    let out = gateway(dir.path()).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("plain http is allowed only to a loopback address"));
}

#[test]
fn a_message_that_cannot_be_taken_waits_in_mesh_and_holds_up_nothing_else() {
    let sandbox = Sandbox::start();
    let site = Site::standard(&sandbox);
    let files = temp();
    send_sample(&sandbox, LA919);
    let other = extract_file(files.path(), "202", 5, "20261121T021500");
    sandbox.send(LA202, &other, None);
    // LA919's in/ cannot be written: a plain file where the folder should be.
    let inbox = site.mailbox("LA919", "in");
    fs::remove_dir_all(&inbox).unwrap();
    fs::write(&inbox, "not a folder").unwrap();

    let out = site.run_once();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("message not taken: it stays in MESH"),
        "{}",
        stderr(&out)
    );
    let name = other.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        site.outcomes(name),
        ["accepted"],
        "the other LA's file went on"
    );
    let got = temp();
    let acks = sandbox.collect(LA202, got.path());
    assert_eq!(acks.len(), 1, "and its ack was sent: {acks:?}");
    assert_eq!(sandbox.count(GATEWAY), 1, "LA919's message waits in MESH");

    fs::remove_file(&inbox).unwrap();
    fs::create_dir_all(&inbox).unwrap();
    assert_ok(&site.run_once());
    assert_eq!(
        site.outcomes("CPIS_EXTRACT_919_20261121T020000.csv"),
        ["accepted"]
    );
    assert_eq!(sandbox.count(GATEWAY), 0);
}
