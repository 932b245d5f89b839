//! A hostile MESH server on 127.0.0.1, for the answers NHS England's sandbox will not give
//! (issue 19): a listing whose `links.next` leads to another server, a message announcing
//! four billion chunks, a small gzip body that unzips to hundreds of megabytes. The
//! gateway must not follow, fetch or keep any of it, must refuse the message with a
//! reason in `status`, and must finish its poll.

use crate::helpers::*;
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(v: Value) -> Answer {
        Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }

    pub fn empty() -> Answer {
        Answer {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

/// A server answering every request with `handler`, recording what it saw; it runs until
/// the test process ends.
pub struct FakeServer {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, log) = (Arc::clone(&handler), Arc::clone(&log));
                std::thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        FakeServer { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Answers requests on one connection until the client closes it.
fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let seen = Seen {
            method,
            path,
            headers,
        };
        log.lock().unwrap().push(seen.clone());
        let answer = handler(&seen);
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            answer.status,
            answer.body.len()
        );
        for (k, v) in &answer.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).is_err() || out.write_all(&answer.body).is_err() {
            return;
        }
    }
}

const GATEWAY: &str = "X26GW001";

/// A root whose LA919 is reached by the MESH server at `url`; `max_file_bytes` as given.
fn site(url: &str, max_file_bytes: u64) -> tempfile::TempDir {
    let dir = temp();
    fs::write(
        dir.path().join("config.toml"),
        format!(
            "[gateway]\nroot = \"var\"\nsettle_ms = 0\nlocal_authorities = [\"919\"]\nmax_file_bytes = {max_file_bytes}\n\n\
             [mesh]\nurl = \"{url}\"\nmesh_mailbox = \"{GATEWAY}\"\npassword = \"password\"\nshared_key = \"key\"\n\n\
             [[mesh.partner]]\nmailbox = \"LA919\"\nmesh_mailbox = \"X26LA919\"\n"
        ),
    )
    .unwrap();
    assert_ok(&gateway(dir.path()).arg("init").output().unwrap());
    dir
}

/// Every file under `dir` with its size.
fn files_under(dir: &Path) -> Vec<(String, u64)> {
    walk(dir)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(".lock") && !p.contains("/store/"))
        .collect()
}

fn walk(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push((e.path().display().to_string(), m.len()));
        }
    }
    out
}

/// A MESH mailbox holding one message, `id`, answered by `message`; acknowledgements are
/// recorded.
fn one_message(
    id: &'static str,
    message: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
) -> FakeServer {
    let acked = Arc::new(Mutex::new(false));
    FakeServer::start(move |r| {
        let inbox = format!("/messageexchange/{GATEWAY}/inbox");
        if r.path.ends_with("/status/acknowledged") {
            *acked.lock().unwrap() = true;
            Answer::empty()
        } else if r.path == inbox {
            let ids: Vec<&str> = if *acked.lock().unwrap() {
                vec![]
            } else {
                vec![id]
            };
            Answer::json(serde_json::json!({ "messages": ids }))
        } else if r.path.starts_with(&format!("{inbox}/{id}")) {
            message(r)
        } else {
            Answer::empty()
        }
    })
}

fn mesh_poll(dir: &Path) -> std::process::Output {
    gateway(dir)
        .args(["mesh", "poll"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
}

fn status(dir: &Path) -> Value {
    let out = gateway(dir)
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_next_link_to_another_server_is_not_followed() {
    let elsewhere = FakeServer::start(|_| Answer::json(serde_json::json!({ "messages": [] })));
    let next = format!("{}/messageexchange/{GATEWAY}/inbox?page=2", elsewhere.url());
    let mesh = FakeServer::start(move |r| {
        if r.path.ends_with("/inbox") {
            Answer::json(serde_json::json!({ "messages": [], "links": { "next": next } }))
        } else {
            Answer::empty()
        }
    });
    let dir = site(&mesh.url(), 1 << 20);
    let out = mesh_poll(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("leaves the mailbox's own server"), "{err}");
    assert!(
        elsewhere.requests().is_empty(),
        "the token went to another server: {:?}",
        elsewhere.requests()
    );
    assert!(mesh
        .requests()
        .iter()
        .any(|r| r.headers["authorization"].starts_with("NHSMESH ")));
}

#[test]
fn a_message_of_four_billion_chunks_is_refused_before_any_is_fetched() {
    let mesh = one_message("20261121000000000001_ABCDEF", |_| Answer {
        status: 200,
        headers: vec![
            ("Mex-From".into(), "X26LA919".into()),
            (
                "Mex-FileName".into(),
                "CPIS_EXTRACT_919_20261121T020000.csv".into(),
            ),
            ("Mex-Total-Chunks".into(), "4000000000".into()),
            ("Mex-Chunk-Range".into(), "1:4000000000".into()),
        ],
        body: b"nhs_number\n".to_vec(),
    });
    let dir = site(&mesh.url(), 1 << 20);
    let out = mesh_poll(dir.path());
    assert_ok(&out);
    let chunk_requests = mesh
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("_ABCDEF/"))
        .count();
    assert_eq!(chunk_requests, 0, "no chunk after the first is fetched");
    let s = status(dir.path());
    let refused = &s["mesh"]["refused"];
    assert_eq!(
        refused[0]["message_id"], "20261121000000000001_ABCDEF",
        "{s}"
    );
    assert!(refused[0]["note"]
        .as_str()
        .unwrap()
        .contains("4000000000 chunks"));
    assert_schema("status.schema.json", &s);
    assert!(mesh
        .requests()
        .iter()
        .any(|r| r.method == "PUT" && r.path.ends_with("/status/acknowledged")));
    assert!(files_under(&dir.path().join("var/mailboxes")).is_empty());
}

/// A gzip body of 300 MiB of zeros: about 300 KB on the wire.
fn bomb() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap()
}

#[test]
fn a_zip_bomb_is_refused_unkept_from_a_party_or_a_stranger() {
    let body = Arc::new(bomb());
    assert!(body.len() < 1_000_000);
    for from in ["X26LA919", "X26NOBODY"] {
        let body = Arc::clone(&body);
        let mesh = one_message("20261121000000000002_BOMB01", move |_| Answer {
            status: 200,
            headers: vec![
                ("Mex-From".into(), from.into()),
                (
                    "Mex-FileName".into(),
                    "CPIS_EXTRACT_919_20261121T020000.csv".into(),
                ),
                ("Content-Encoding".into(), "gzip".into()),
            ],
            body: body.to_vec(),
        });
        let dir = site(&mesh.url(), 1 << 20);
        let out = mesh_poll(dir.path());
        assert_ok(&out);
        let kept = files_under(&dir.path().join("var"));
        assert!(
            kept.iter().all(|(_, len)| *len <= 1 << 20),
            "{from}: oversized bytes were kept: {kept:?}"
        );
        assert!(
            !kept
                .iter()
                .any(|(p, _)| p.contains("/in/") || p.contains("/kept/")),
            "{from}: {kept:?}"
        );
        let s = status(dir.path());
        let note = s["mesh"]["refused"][0]["note"].as_str().unwrap_or("");
        assert!(note.contains("max_file_bytes"), "{from}: {s}");
        let text = gateway(dir.path()).arg("status").output().unwrap();
        assert!(String::from_utf8_lossy(&text.stdout).contains("refused"));
    }
}

#[test]
fn a_listing_of_millions_of_ids_cannot_fill_memory() {
    // 200 pages of 60,000 ids each, every page linking to the next.
    let mesh = FakeServer::start(|r| {
        let inbox = format!("/messageexchange/{GATEWAY}/inbox");
        if !r.path.starts_with(&inbox) {
            return Answer::empty();
        }
        let page: usize = r
            .path
            .rsplit_once("page=")
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0);
        let ids: Vec<String> = (0..60_000).map(|i| format!("p{page}m{i}")).collect();
        let mut answer = serde_json::json!({ "messages": ids });
        if page < 199 {
            answer["links"] = serde_json::json!({ "next": format!("{inbox}?page={}", page + 1) });
        }
        Answer::json(answer)
    });
    let dir = site(&mesh.url(), 1 << 20);
    let out = under_ulimit(dir.path(), 600_000, "mesh check");
    assert_ok(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("5000 message(s) waiting"), "{said}");
    let pages = mesh
        .requests()
        .iter()
        .filter(|r| r.path.contains("/inbox"))
        .count();
    assert_eq!(pages, 1, "no page is fetched beyond what a poll takes");
}

#[test]
fn a_huge_answer_to_a_send_is_not_read_whole() {
    // The first POST of a send is answered with 200 MB of one JSON string.
    let huge = Arc::new({
        let mut body = b"{\"message_id\": \"".to_vec();
        body.resize(200 << 20, b'x');
        body
    });
    let mesh = FakeServer::start(move |r| {
        if r.method == "POST" && r.path.ends_with("/outbox") {
            Answer {
                status: 202,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: huge.to_vec(),
            }
        } else if r.path.ends_with("/inbox") {
            Answer::json(serde_json::json!({ "messages": [] }))
        } else {
            Answer::empty()
        }
    });
    let dir = site(&mesh.url(), 1 << 20);
    let out = dir.path().join("var/mailboxes/LA919/out");
    fs::write(out.join("CPIS_DQ_919_2026-11-21.csv"), "la_code\n919\n").unwrap();
    let run = under_ulimit(dir.path(), 150_000, "mesh poll");
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains("not JSON"), "{err}");
    assert!(!err.contains("memory allocation"), "{err}");
    assert!(
        out.join("CPIS_DQ_919_2026-11-21.csv").exists(),
        "still to send"
    );
}
