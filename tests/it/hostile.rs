//! Hostile parties on the gateway's own machine and in its mailboxes (issue 19): what an
//! LA, a hospital or a local account can put in front of the gateway, and what the gateway
//! must refuse, bound or escape. The SFTP, MESH and PostgreSQL cases, which need their
//! peers, live beside those peers' other tests.

use crate::daemon::Root;
use crate::helpers::*;
use std::fs;

/// A name that would colour the terminal and forge a line of its own.
const FORGED: &str = "a\u{1b}[31mred\nfake log.csv";

fn no_raw_controls(what: &str, text: &str) {
    assert!(
        !text.contains('\u{1b}'),
        "{what}: an ESC reached the terminal:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("fake log")),
        "{what}: the name forged a line:\n{text}"
    );
}

#[test]
fn refused_names_are_escaped_in_every_human_output() {
    let root = Root::new(0);
    fs::write(root.inbox("LA919").join(FORGED), "x").unwrap();
    let out = root.run_once();
    assert_eq!(out.status.code(), Some(1), "refused, so the run says so");
    let text = |args: &[&str]| {
        let out = gateway(root.path()).args(args).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let status = text(&["status"]);
    assert!(status.contains("rejected in the last 24 hours"), "{status}");
    assert!(
        status.contains("a\\u{1b}[31mred\\nfake log.csv"),
        "{status}"
    );
    no_raw_controls("status", &status);
    no_raw_controls("archive list", &text(&["archive", "list"]));
    // An operator checks the file where it was set aside.
    let set_aside = fs::read_dir(root.path().join("var/rejected"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let copy = root.path().join(FORGED);
    fs::copy(&set_aside, &copy).unwrap();
    let validate = text(&["validate", copy.to_str().unwrap()]);
    assert!(validate.contains("FILE_NAME"), "{validate}");
    no_raw_controls("validate", &validate);
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The archived copy of a file whose acknowledgement says `sha`.
fn archived(root: &Root, sha: &str) -> std::path::PathBuf {
    root.path().join("var/archive").join(&sha[..2]).join(sha)
}

#[test]
fn the_sender_cannot_change_what_was_archived_and_an_altered_copy_is_never_used() {
    use std::io::{Seek, Write};
    let root = Root::new(0);
    // The LA writes its extract and keeps the file open for writing.
    let (name, bytes) = crate::daemon::extract("919", 20, "20261121T020000");
    let path = root.inbox("LA919").join(&name);
    let mut held = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    held.write_all(&bytes).unwrap();
    held.flush().unwrap();
    assert_ok(&root.run_once());
    let ack = crate::daemon::read_json(&root.ack("LA919", &name));
    let sha = ack["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha, sha256(&bytes));
    // Through the handle it kept, the LA rewrites the file after it was archived.
    let (_, other) = crate::daemon::extract("919", 3, "20261121T020000");
    held.rewind().unwrap();
    held.set_len(0).unwrap();
    held.write_all(&other).unwrap();
    held.flush().unwrap();
    let kept = fs::read(archived(&root, &sha)).unwrap();
    assert_eq!(sha256(&kept), sha, "the archive holds what was received");
    let list = |root: &Root| {
        let out = gateway(root.path())
            .args(["archive", "list", "--format", "json"])
            .output()
            .unwrap();
        assert_ok(&out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(list(&root)[0]["archive"], "kept");
    // replay --force applies what was received: 20 rows, not the 3 written since.
    let out = gateway(root.path())
        .args(["replay", "--force", "--format", "json", &sha])
        .output()
        .unwrap();
    let replayed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed[0]["rows"], 20, "{replayed}");

    // Someone with the service's rights alters the archived copy: it is shown, and refused.
    fs::write(archived(&root, &sha), &other).unwrap();
    assert_eq!(list(&root)[0]["archive"], "altered");
    let text = gateway(root.path())
        .args(["archive", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("ALTERED"));
    refused_as_altered(&root, &["replay", "--force", &sha]);
}

/// Runs `args` on `root` and asserts it refused an altered archived copy.
fn refused_as_altered(root: &Root, args: &[&str]) {
    let out = gateway(root.path()).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has been altered since it was received"),
        "{err}"
    );
}

#[test]
fn an_altered_quarantined_file_is_not_released() {
    let root = Root::new(0);
    let (name, bytes) = crate::daemon::extract("919", 20, "20261120T020000");
    fs::write(root.inbox("LA919").join(&name), bytes).unwrap();
    assert_ok(&root.run_once());
    // A file closing most of the LA's records: quarantined.
    let (small, bytes) = crate::daemon::extract("919", 2, "20261121T020000");
    fs::write(root.inbox("LA919").join(&small), &bytes).unwrap();
    root.run_once();
    let ack = crate::daemon::read_json(&root.ack("LA919", &small));
    assert_eq!(ack["outcome"], "quarantined");
    let sha = ack["sha256"].as_str().unwrap();
    fs::write(archived(&root, sha), "nhs_number\n").unwrap();
    refused_as_altered(&root, &["quarantine", "release", "Q1"]);
}
