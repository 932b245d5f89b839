//! The systemd unit: `systemd-analyze verify` is clean (`.ci/run` installs systemd for it),
//! and the hardening the README promises is there.

use crate::helpers::*;
use std::fs;
use std::process::Command;

#[test]
fn the_unit_verifies_and_is_hardened() {
    let unit = fs::read_to_string(repo().join("systemd/cpis-gateway.service")).unwrap();
    for directive in [
        "Type=notify",
        "WatchdogSec=",
        "User=cpis",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/cpis-gateway",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "UMask=0077",
        "MemoryMax=4G",
        " run\n",
    ] {
        assert!(unit.contains(directive), "missing {directive:?}");
    }
    let dir = temp();
    let bin = assert_cmd::cargo::cargo_bin("cpis-gateway");
    let path = dir.path().join("cpis-gateway.service");
    fs::write(
        &path,
        unit.replace("/usr/bin/cpis-gateway", &bin.display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed for this test: apt-get install systemd (.ci/run does)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cpis-gateway.service"))
        .collect();
    assert!(own.is_empty(), "warnings about the unit: {own:?}");
}
