//! Shared helpers: the binary with a fixed clock, temporary working folders, JSON output.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The fixed "now" of every test run (a day after the samples' extraction time).
pub const NOW: &str = "2026-11-22T09:00:00Z";

/// The repository root (for samples and schemas).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn samples() -> PathBuf {
    repo().join("inbox-samples")
}

/// The binary, run in `dir` (so no stray config.toml is picked up) with the clock fixed.
pub fn gateway(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("cpis-gateway").expect("binary is built");
    cmd.current_dir(dir)
        .env("CPIS_GATEWAY_NOW", NOW)
        .env_remove("RUST_LOG");
    if let Some(url) = crate::backend::store_url(dir) {
        cmd.env("CPIS_GATEWAY_STORE_URL", url);
    }
    cmd
}

/// A fresh temporary folder.
pub fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

/// Runs `validate --format json` on `files`, returning (exit code, parsed output).
pub fn validate_json(dir: &Path, extra: &[&str], files: &[&Path]) -> (i32, Vec<Value>) {
    let out = gateway(dir)
        .arg("validate")
        .args(["--format", "json"])
        .args(extra)
        .args(files)
        .output()
        .expect("runs");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    let parsed: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}): {stdout}"));
    let Value::Array(reports) = parsed else {
        panic!("validate prints an array: {stdout}");
    };
    (out.status.code().expect("exit code"), reports)
}

/// (row, code) of every row error and warning of a report.
pub fn row_codes(report: &Value) -> Vec<(u64, String)> {
    report["row_errors"]
        .as_array()
        .expect("row_errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().expect("row"),
                e["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect()
}

/// Codes of the file errors of a report.
pub fn file_codes(report: &Value) -> Vec<String> {
    report["file_errors"]
        .as_array()
        .expect("file_errors")
        .iter()
        .map(|e| e["code"].as_str().expect("code").to_owned())
        .collect()
}

/// Writes `gen extract` output into `dir`, returning the manifest.
pub fn gen_extract(dir: &Path, args: &[&str]) -> Value {
    let out = gateway(dir)
        .args(["gen", "extract", "--manifest", "--out"])
        .arg(dir)
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "gen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("manifest JSON")
}

/// The i-th valid NHS number from `base` (a nine-digit 999-range start): each test file
/// uses its own base so their children never meet.
/// The `(row, code)` pairs a `gen --manifest` says its file must produce.
pub fn manifest_expected(manifest: &Value) -> Vec<(u64, String)> {
    manifest["expected"]
        .as_array()
        .expect("a manifest lists what it expects")
        .iter()
        .map(|e| (e[0].as_u64().unwrap(), e[1].as_str().unwrap().to_owned()))
        .collect()
}

pub fn test_nhs(base: u64, i: u64) -> String {
    (0..)
        .filter_map(|k| cpis_gateway::core::nhs::NhsNumber::from_first_nine(base + i * 10 + k))
        .next()
        .expect("some check digit exists within ten numbers")
        .full()
}

/// Asserts that a command exited 0, showing its stderr if it did not.
pub fn assert_ok(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that `value` validates against a shipped schema.
pub fn assert_schema(schema: &str, value: &Value) {
    let schema: Value =
        serde_json::from_slice(&std::fs::read(repo().join("schemas").join(schema)).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:?} in {value}");
}

/// A certificate authority (`ca.pem`) with a server certificate (`server.pem`, `server.key`)
/// for `server_name` (and 127.0.0.1 when it is `localhost`) and a client certificate
/// (`client.pem`, `client.key`) whose common name is `client_name`.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(server_name: &str, client_name: &str) -> Pki {
        let dir = temp();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl (scripts/test.sh installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3",
            "-subj",
            "/CN=cpis test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        let san = if server_name == "localhost" {
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n".to_owned()
        } else {
            format!("subjectAltName=DNS:{server_name}\n")
        };
        for (who, cn, usage, san) in [
            ("server", server_name, "serverAuth", san.as_str()),
            ("client", client_name, "clientAuth", ""),
        ] {
            std::fs::write(
                d.join(format!("{who}.ext")),
                format!("{san}basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"),
            )
            .unwrap();
            openssl(&[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{who}.pem"),
                "-extfile",
                &format!("{who}.ext"),
            ]);
        }
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Runs the gateway with `args` (words split on spaces) in `dir` under `ulimit -v <kib>`
/// (a runaway allocation fails instead of taking the machine), the clock fixed.
pub fn under_ulimit(dir: &Path, kib: u64, args: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib}; exec {} {args}",
            assert_cmd::cargo::cargo_bin("cpis-gateway").display()
        ))
        .current_dir(dir)
        .env("CPIS_GATEWAY_NOW", NOW)
        .output()
        .unwrap()
}

/// The files in folder `dir` whose names start with `prefix`, sorted; none if `dir` is
/// missing.
pub fn files_starting(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    files
}
