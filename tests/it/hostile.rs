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
