//! The FHIR R4 API through the real binary (`serve`) and a real HTTP client, on both
//! stores: its answers equal `query`'s, every body passes HL7's own R4 schema
//! (`tests/fhir/check.js`), unscheduled and silent reads leave what they must, every
//! refusal is an OperationOutcome with its Spine code, and nothing of an unflagged child
//! is kept.

use crate::backend;
use crate::helpers::*;
use serde_json::Value;
use std::fs;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const TOKEN: &str = "rwg-test-token-1";

/// The i-th valid NHS number of a range no other test file uses.
fn nhs(i: u64) -> String {
    test_nhs(999_720_000, i)
}

/// `serve`, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// `host:port` of a plain-HTTP server.
    fn address(&self) -> String {
        let rest = self.url.trim_start_matches("http://");
        rest.split('/').next().unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A root with 919 and 202: child 1 open in 919; child 2 open in 919 and 202; child 3
/// ended in 202 in 2026-06 (shown, not flagged); child 4 and up unknown. RWG has a token.
fn site() -> tempfile::TempDir {
    let dir = temp();
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
    };
    fs::write(
        dir.path().join("config.toml"),
        format!(
            "[gateway]\nroot = \"var\"\nsettle_ms = 0\nlocal_authorities = [\"919\", \"202\"]\n\
             [api]\nlisten = \"127.0.0.1:0\"\n\
             [[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\napi_token_sha256 = [\"{hash}\"]\n\
             [[health_org]]\nods = \"RQW\"\nname = \"Princess Alexandra\"\n"
        ),
    )
    .unwrap();
    assert_ok(&gateway(dir.path()).arg("init").output().unwrap());
    let header =
        "nhs_number,plan_type,start_date,end_date,la_code,edt_phone,office_phone,local_ref";
    for (la, rows) in [
        (
            "919",
            format!(
                "{},CPP,2026-01-01,,919,01632 960001,01632 960002,H-1\n{},LAC,2025-01-01,,919,01632 960001,01632 960002,H-2\n",
                nhs(1),
                nhs(2)
            ),
        ),
        (
            "202",
            format!(
                "{},CPP,2026-03-01,,202,01632 960101,01632 960102,C-2\n{},CPP,2025-01-01,2026-06-01,202,01632 960101,01632 960102,C-3\n",
                nhs(2),
                nhs(3)
            ),
        ),
    ] {
        let file = dir.path().join(format!("CPIS_EXTRACT_{la}_20261120T020000.csv"));
        fs::write(&file, format!("{header}\n{rows}")).unwrap();
        assert_ok(
            &gateway(dir.path())
                .args(["ingest", "--mailbox", &format!("LA{la}")])
                .arg(&file)
                .output()
                .unwrap(),
        );
    }
    dir
}

/// Adds `lines` to the site's `[api]` table.
fn api_config(dir: &Path, lines: &str) {
    let config = dir.join("config.toml");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("[api]\n", &format!("[api]\n{lines}"));
    fs::write(config, text).unwrap();
}

/// An HTTPS client trusting `pki`'s CA, presenting its client certificate if `as_client`.
fn tls_agent(pki: &Pki, as_client: bool) -> ureq::Agent {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = if as_client {
        let certs = CertificateDer::pem_file_iter(pki.path("client.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(pki.path("client.key")).unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(config))
        .build()
}

fn serve(dir: &Path) -> Server {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"));
    cmd.current_dir(dir)
        .env("CPIS_GATEWAY_NOW", NOW)
        .env_remove("RUST_LOG")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(fs::File::create(dir.join("serve.log")).unwrap());
    if let Some(url) = backend::store_url(dir) {
        cmd.env("CPIS_GATEWAY_STORE_URL", url);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!(
                "serve said {line:?}: {}",
                fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
            )
        })
        .to_owned();
    Server { child, url }
}

/// An answer: status, the `TraceID` header, the content type and the body.
struct Answer {
    status: u16,
    trace: Option<String>,
    content_type: String,
    body: Value,
}

fn call(request: ureq::Request) -> Answer {
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = response.status();
    let trace = response.header("TraceID").map(str::to_owned);
    let content_type = response.header("Content-Type").unwrap_or("").to_owned();
    assert!(response.header("Date").is_some(), "every answer has a Date");
    let text = response.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        trace,
        content_type,
        body,
    }
}

/// A search by a professional at RWG's ED, `extra` headers added.
fn search(server: &Server, kind: &str, nhs: &str, extra: &[(&str, &str)]) -> Answer {
    let mut request = ureq::get(&format!(
        "{}/{kind}?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{nhs}",
        server.url
    ))
    .set("Authorization", &format!("Bearer {TOKEN}"))
    .set("NHSD-End-User-Name", "Dr A Example")
    .set("NHSD-End-User-Role", "Emergency Department Doctor")
    .set("NHSD-Care-Setting", "ED");
    for (k, v) in extra {
        request = request.set(k, v);
    }
    call(request)
}

/// Asserts every body passes HL7's FHIR R4 JSON Schema.
fn assert_fhir(bodies: &[&Value]) {
    let dir = temp();
    let files: Vec<std::path::PathBuf> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let f = dir.path().join(format!("{i}.json"));
            fs::write(&f, body.to_string()).unwrap();
            f
        })
        .collect();
    let out = Command::new("node")
        .arg(repo().join("tests/fhir/check.js"))
        .args(&files)
        .output()
        .expect("Node.js (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count(dir: &Path, sql: &str) -> u64 {
    backend::sql(dir, sql)[0].trim().parse().unwrap()
}

#[test]
fn the_api_answers_as_query_does_and_every_body_is_fhir_r4() {
    let dir = site();
    let server = serve(dir.path());
    let metadata = call(ureq::get(&format!("{}/metadata", server.url)));
    assert_eq!(metadata.status, 200);
    assert_eq!(metadata.body["fhirVersion"], "4.0.1");
    assert_eq!(
        metadata.content_type,
        "application/fhir+json; charset=utf-8"
    );

    let both = search(&server, "CareTeam", &nhs(2), &[("TraceID", "trace-42")]);
    assert_eq!(both.status, 200);
    assert_eq!(both.trace.as_deref(), Some("trace-42"));
    assert_eq!(both.body["total"], 2);
    let ended = search(&server, "CareTeam", &nhs(3), &[]);
    assert_eq!(ended.body["total"], 1);
    assert_eq!(ended.body["entry"][0]["resource"]["status"], "inactive");
    assert_eq!(
        ended.body["entry"][0]["resource"]["period"]["end"],
        "2026-06-01"
    );
    let unknown = search(&server, "CareTeam", &nhs(4), &[]);
    assert_eq!(unknown.body["total"], 0);
    assert!(unknown.body.get("entry").is_none());
    assert!(
        unknown.trace.is_some_and(|t| !t.is_empty()),
        "a trace id is made"
    );

    // One truth, two faces: the CareTeams are query's flags.
    let query = gateway(dir.path())
        .args([
            "query",
            &nhs(2),
            "--org",
            "RWG",
            "--user",
            "Dr B",
            "--role",
            "Nurse",
        ])
        .args(["--setting", "GP", "--format", "json"])
        .output()
        .unwrap();
    assert_ok(&query);
    let query: Value = serde_json::from_slice(&query.stdout).unwrap();
    let as_flags: Vec<(String, String, String, String, String, String)> = both.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let t = &e["resource"];
            let plan = match t["category"][0]["coding"][0]["code"].as_str().unwrap() {
                "342191000000101" => "CPP",
                "764841000000100" => "LAC",
                _ => "UCPP",
            };
            (
                t["managingOrganization"][0]["identifier"]["value"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                plan.to_owned(),
                t["period"]["start"].as_str().unwrap().to_owned(),
                t["telecom"][0]["value"].as_str().unwrap().to_owned(),
                t["telecom"][1]["value"].as_str().unwrap().to_owned(),
                t["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let from_query: Vec<(String, String, String, String, String, String)> = query["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["la_code"].as_str().unwrap().to_owned(),
                f["plan_type"].as_str().unwrap().to_owned(),
                f["start_date"].as_str().unwrap().to_owned(),
                f["office_phone"].as_str().unwrap().to_owned(),
                f["edt_phone"].as_str().unwrap().to_owned(),
                f["la_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(as_flags, from_query);
    assert_fhir(&[&metadata.body, &both.body, &ended.body, &unknown.body]);
}

#[test]
fn unscheduled_reads_notify_once_and_silent_reads_leave_only_the_log() {
    let dir = site();
    let server = serve(dir.path());
    let d = dir.path();
    let child = nhs(1);
    let n = child.trim_start_matches('0');
    let presentations = format!("SELECT count(*) FROM presentations WHERE nhs = {n}");
    let notifications = "SELECT count(*) FROM notifications".to_owned();
    let log = format!("SELECT count(*) FROM access_log WHERE nhs = {n}");

    let silent = search(
        &server,
        "CareTeam",
        &child,
        &[("IsUnscheduledAccessEvent", "false")],
    );
    assert_eq!(silent.body["total"], 1);
    assert_eq!(
        (
            count(d, &presentations),
            count(d, &notifications),
            count(d, &log)
        ),
        (0, 0, 1)
    );
    // Missing means true: stored, and 919 told; again by the same person: told once.
    search(&server, "CareTeam", &child, &[]);
    search(
        &server,
        "CareTeam",
        &child,
        &[("IsUnscheduledAccessEvent", "true")],
    );
    assert_eq!(
        (
            count(d, &presentations),
            count(d, &notifications),
            count(d, &log)
        ),
        (2, 1, 3)
    );
    // The AuditEvent search shows the presentations and adds none.
    let events = search(&server, "AuditEvent", &child, &[]);
    assert_eq!(events.status, 200);
    assert_eq!(events.body["total"], 2);
    let event = &events.body["entry"][0]["resource"];
    assert_eq!(event["agent"][0]["who"]["identifier"]["value"], "RWG");
    assert!(!events.body.to_string().contains("Dr A"), "no staff names");
    assert_eq!(
        (
            count(d, &presentations),
            count(d, &notifications),
            count(d, &log)
        ),
        (2, 1, 4)
    );
    assert_fhir(&[&silent.body, &events.body]);
    drop(server);
    assert_ok(&gateway(d).args(["audit", "verify"]).output().unwrap());
}

#[test]
fn every_refusal_is_an_operation_outcome_with_its_spine_code() {
    let dir = site();
    let server = serve(dir.path());
    let careteam = |query: &str| format!("{}/CareTeam?{query}", server.url);
    let ok_query = format!(
        "patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{}",
        nhs(1)
    );
    let with_people = |r: ureq::Request| {
        r.set("NHSD-End-User-Name", "Dr A")
            .set("NHSD-End-User-Role", "Doctor")
            .set("NHSD-Care-Setting", "ED")
    };
    let authed =
        |url: &str| with_people(ureq::get(url).set("Authorization", &format!("Bearer {TOKEN}")));
    let cases: Vec<(Answer, u16, &str)> = vec![
        (
            call(with_people(ureq::get(&careteam(&ok_query)))),
            401,
            "ACCESS_DENIED",
        ),
        (
            call(with_people(
                ureq::get(&careteam(&ok_query)).set("Authorization", "Bearer wrong"),
            )),
            403,
            "ACCESS_DENIED",
        ),
        (
            call(authed(&careteam(
                "patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990000019",
            ))),
            400,
            "INVALID_SEARCH_DATA",
        ),
        (call(authed(&careteam(""))), 400, "INVALID_SEARCH_DATA"),
        (
            call(authed(&careteam(&format!("{ok_query}&name=x")))),
            400,
            "INVALID_SEARCH_DATA",
        ),
        (
            call(ureq::get(&careteam(&ok_query)).set("Authorization", &format!("Bearer {TOKEN}"))),
            400,
            "PRECONDITION_FAILED",
        ),
        (
            call(authed(&careteam(&ok_query)).set("IsUnscheduledAccessEvent", "maybe")),
            400,
            "PRECONDITION_FAILED",
        ),
        (
            call(authed(&format!("{}/Patient", server.url))),
            404,
            "RESOURCE_NOT_FOUND",
        ),
        (
            call(authed(&careteam(&format!("{ok_query}&_format=xml")))),
            406,
            "NOT_ACCEPTABLE",
        ),
        (
            call(authed(&careteam(&ok_query)).set("Accept", "application/fhir+xml")),
            406,
            "NOT_ACCEPTABLE",
        ),
        (
            call(ureq::post(&careteam(&ok_query)).set("Authorization", &format!("Bearer {TOKEN}"))),
            405,
            "NOT_IMPLEMENTED",
        ),
    ];
    for (answer, status, code) in &cases {
        assert_eq!(answer.status, *status, "{}", answer.body);
        assert_eq!(answer.content_type, "application/fhir+json; charset=utf-8");
        assert_eq!(answer.body["resourceType"], "OperationOutcome");
        assert_eq!(
            answer.body["issue"][0]["details"]["coding"][0]["code"],
            *code
        );
    }
    assert_fhir(&cases.iter().map(|(a, _, _)| &a.body).collect::<Vec<_>>());
    // HEAD is not GET: it looks nothing up.
    let head = ureq::head(&careteam(&ok_query))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .set("NHSD-End-User-Name", "Dr A")
        .set("NHSD-End-User-Role", "Doctor")
        .set("NHSD-Care-Setting", "ED")
        .call();
    assert!(matches!(head, Err(ureq::Error::Status(405, _))), "{head:?}");
    // Nothing was looked up: no entry in the log, nothing stored.
    assert_eq!(count(dir.path(), "SELECT count(*) FROM access_log"), 0);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM presentations"), 0);
}

/// Sends `request` (a whole HTTP/1.1 request) on its own connection; the status and body.
fn raw(server: &Server, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let address = server.address();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[test]
fn headers_in_utf8_are_taken_and_a_repeated_one_is_refused() {
    let dir = site();
    let server = serve(dir.path());
    let path = format!(
        "/cpis/FHIR/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{}",
        nhs(1)
    );
    let request = |extra: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
             NHSD-End-User-Name: Dr Zoë Siân\r\nNHSD-End-User-Role: Médecin\r\nNHSD-Care-Setting: ED\r\n{extra}\r\n"
        )
    };
    let (status, body) = raw(&server, &request(""));
    assert_eq!(status, 200, "{body}");
    let n = nhs(1);
    let n = n.trim_start_matches('0');
    assert_eq!(
        backend::sql(
            dir.path(),
            &format!("SELECT user_name, user_role FROM access_log WHERE nhs = {n}")
        ),
        ["Dr Zoë Siân|Médecin"]
    );
    let (status, body) = raw(
        &server,
        &request("IsUnscheduledAccessEvent: false\r\nIsUnscheduledAccessEvent: false\r\n"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("PRECONDITION_FAILED"), "{body}");
    let (status, _) = raw(
        &server,
        &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 405);
    assert_eq!(
        count(
            dir.path(),
            &format!("SELECT count(*) FROM access_log WHERE nhs = {n}")
        ),
        1
    );
}

#[test]
fn a_token_belongs_to_one_organisation() {
    let dir = site();
    let config = dir.path().join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    let hash = text
        .split("api_token_sha256 = [\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    fs::write(
        &config,
        text.replace(
            "name = \"Princess Alexandra\"\n",
            &format!("name = \"Princess Alexandra\"\napi_token_sha256 = [\"{hash}\"]\n"),
        ),
    )
    .unwrap();
    refused_config(dir.path(), "health_org[1].api_token_sha256[0]");
}

/// Asserts the configuration in `dir` is refused, naming `says`. Any command reads it
/// first; `init` is one that ends (`serve` would run for ever if it took it).
fn refused_config(dir: &Path, says: &str) {
    let out = gateway(dir).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(says), "{stderr}");
}

#[test]
fn nothing_of_an_unflagged_child_is_kept() {
    let dir = site();
    let server = serve(dir.path());
    let child = nhs(5);
    for kind in ["CareTeam", "AuditEvent"] {
        let answer = search(&server, kind, &child, &[]);
        assert_eq!(answer.body["total"], 0);
        assert_fhir(&[&answer.body]);
    }
    drop(server);
    let n = child.trim_start_matches('0');
    for table in ["presentations", "access_log"] {
        assert_eq!(
            count(
                dir.path(),
                &format!("SELECT count(*) FROM {table} WHERE nhs = {n}")
            ),
            0,
            "{table}"
        );
    }
    let log = fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(!log.contains(&child) && !log.contains(&child[6..]), "{log}");
}

#[test]
fn over_https_with_and_without_a_client_certificate() {
    let dir = site();
    let pki = Pki::new("localhost", "rwg-ed-system");
    api_config(
        dir.path(),
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            pki.path("server.pem"),
            pki.path("server.key")
        ),
    );
    let server = serve(dir.path());
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let url = server.url.replace("127.0.0.1", "localhost");
    let found = call(
        tls_agent(&pki, false)
            .get(&format!(
                "{url}/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{}",
                nhs(1)
            ))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .set("NHSD-End-User-Name", "Dr A")
            .set("NHSD-End-User-Role", "Doctor")
            .set("NHSD-Care-Setting", "ED"),
    );
    assert_eq!((found.status, found.body["total"].as_u64()), (200, Some(1)));
    // Plain HTTP to the HTTPS port gets no answer.
    let plain = ureq::get(&format!("{}/metadata", server.url.replace("https", "http"))).call();
    assert!(plain.is_err());
    drop(server);

    // With client_ca, a client without a certificate is refused in the handshake.
    api_config(
        dir.path(),
        &format!("client_ca = \"{}\"\n", pki.path("ca.pem")),
    );
    let server = serve(dir.path());
    let url = server.url.replace("127.0.0.1", "localhost");
    let metadata = format!("{url}/metadata");
    assert!(matches!(
        tls_agent(&pki, false).get(&metadata).call(),
        Err(ureq::Error::Transport(_))
    ));
    let answer = call(tls_agent(&pki, true).get(&metadata));
    assert_eq!(answer.status, 200);
    assert_fhir(&[&found.body, &answer.body]);
}

#[test]
fn plain_http_is_for_this_machine_only() {
    let dir = site();
    let config = dir.path().join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\""),
    )
    .unwrap();
    refused_config(
        dir.path(),
        "api.listen: 0.0.0.0:0 is not a loopback address",
    );
}

#[test]
fn metrics_count_requests_and_look_ups_and_name_no_one() {
    let dir = site();
    let server = serve(dir.path());
    search(&server, "CareTeam", &nhs(1), &[]);
    search(&server, "CareTeam", &nhs(6), &[]);
    search(&server, "CareTeam", "9990000019", &[]);
    let answer = ureq::get(&server.url.replace("/cpis/FHIR/R4", "/metrics"))
        .call()
        .unwrap();
    assert!(answer.content_type().starts_with("text/plain"));
    let text = answer.into_string().unwrap();
    for line in [
        "cpis_api_requests_total{endpoint=\"CareTeam\",status=\"200\"} 2",
        "cpis_api_requests_total{endpoint=\"CareTeam\",status=\"400\"} 1",
        "cpis_api_lookups_total{flagged=\"true\"} 1",
        "cpis_api_lookups_total{flagged=\"false\"} 1",
        "cpis_api_request_seconds_count 3",
        "cpis_api_store_errors_total 0",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    for personal in [nhs(1), nhs(6), "Dr A".into(), "RWG".into()] {
        assert!(!text.contains(&personal), "{personal} in\n{text}");
    }
    let health = ureq::get(&server.url.replace("/cpis/FHIR/R4", "/healthz"))
        .call()
        .unwrap();
    assert_eq!(health.into_string().unwrap(), "ok\n");
}

#[test]
fn the_daemon_serves_the_api_beside_its_work_and_stops_it_with_itself() {
    let dir = site();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cpis-gateway"));
    cmd.current_dir(dir.path())
        .env("CPIS_GATEWAY_NOW", NOW)
        .env_remove("RUST_LOG")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(url) = backend::store_url(dir.path()) {
        cmd.env("CPIS_GATEWAY_STORE_URL", url);
    }
    let mut child = cmd.spawn().unwrap();
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut address = None;
    let mut seen = String::new();
    for _ in 0..200 {
        let mut line = String::new();
        if log.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains("FHIR API listening") {
            address = line
                .split("address=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned);
            break;
        }
    }
    let Some(address) = address else {
        let _ = child.kill();
        panic!("run never said it serves the API:\n{seen}");
    };
    let server = Server {
        child,
        url: format!("http://{address}/cpis/FHIR/R4"),
    };
    let found = search(&server, "CareTeam", &nhs(1), &[]);
    assert_eq!(found.body["total"], 1);
    assert_fhir(&[&found.body]);
    let mut server = server;
    // SIGTERM stops both, and the daemon exits 0.
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_thousand_idle_connections_do_not_stop_a_look_up_and_past_the_slots_is_503() {
    // This test holds over 2,000 sockets (both ends).
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads and writes this process's own limit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let dir = site();
    let server = serve(dir.path());
    let address = server.address();
    let mut idle: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    let found = search(&server, "CareTeam", &nhs(1), &[]);
    assert_eq!(found.status, 200);
    assert_eq!(found.body["total"], 1);
    assert_fhir(&[&found.body]);
    // Every slot taken (1,024): the next client is told so at once.
    idle.extend((0..40).map(|_| std::net::TcpStream::connect(&address).unwrap()));
    let mut told = None;
    for _ in 0..20 {
        let answer = call(ureq::get(&format!("{}/metadata", server.url)));
        if answer.status == 503 {
            told = Some(answer);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let told = told.expect("a 503 once every slot is taken");
    assert_eq!(
        told.body["issue"][0]["details"]["coding"][0]["code"],
        "SERVICE_UNAVAILABLE"
    );
    assert_fhir(&[&told.body]);
    drop(idle);
    // The slots free again; the 503s were counted.
    let metrics = server.url.replace("/cpis/FHIR/R4", "/metrics");
    let mut text = String::new();
    for _ in 0..50 {
        if let Ok(r) = ureq::get(&metrics).call() {
            text = r.into_string().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        text.contains("cpis_api_requests_total{endpoint=\"busy\",status=\"503\"}"),
        "{text}"
    );
}

#[test]
fn a_client_that_sends_a_byte_a_second_or_stays_idle_is_cut_off() {
    use std::io::{Read, Write};
    let dir = site();
    let server = serve(dir.path());
    let address = server.address();
    // Beside it, a client idle after one answer on a kept-alive connection.
    let idle = {
        let address = address.clone();
        std::thread::spawn(move || {
            let mut idle = std::net::TcpStream::connect(&address).unwrap();
            idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            idle.set_read_timeout(Some(std::time::Duration::from_secs(120)))
                .unwrap();
            let mut answer = [0u8; 1024];
            let n = idle.read(&mut answer).unwrap();
            assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
            let waited = std::time::Instant::now();
            // The server closes it: a read returns 0 (not the 120 s read timeout's error).
            assert_eq!(idle.read(&mut answer).unwrap(), 0);
            waited.elapsed()
        })
    };
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_millis(900)))
        .unwrap();
    let request = b"GET /cpis/FHIR/R4/metadata HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = std::time::Instant::now();
    let mut closed = false;
    for byte in request.iter().cycle() {
        if started.elapsed() > std::time::Duration::from_secs(120) {
            break;
        }
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "the server still waits after {:?}",
        started.elapsed()
    );
    // It was the headers' 30 s, not an early cut.
    assert!(started.elapsed() >= std::time::Duration::from_secs(29));
    assert!(idle.join().unwrap() >= std::time::Duration::from_secs(29));
}

#[test]
fn the_access_log_verifies_after_a_burst_of_look_ups() {
    let dir = site();
    let server = serve(dir.path());
    std::thread::scope(|scope| {
        for t in 0..8 {
            let server = &server;
            scope.spawn(move || {
                for i in 0..10 {
                    let user = format!("Nurse {t}-{i}");
                    let child = nhs(1 + (i % 3));
                    let answer =
                        search(server, "CareTeam", &child, &[("NHSD-End-User-Name", &user)]);
                    assert_eq!(answer.status, 200);
                }
            });
        }
    });
    drop(server);
    // Children 1, 2 and 3 all have something to show: 80 entries, chained.
    assert_eq!(count(dir.path(), "SELECT count(*) FROM access_log"), 80);
    assert_ok(
        &gateway(dir.path())
            .args(["audit", "verify"])
            .output()
            .unwrap(),
    );
}
