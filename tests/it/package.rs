//! The Debian package: `cargo deb` builds it (scripts/test.sh installs cargo-deb) from the
//! binary the tests run, and it holds what the README's service section promises: the
//! binary, the unit, a configuration for /etc rooted in /var/lib, the documents and schemas,
//! and maintainer scripts that create the `cpis` user and its state folder.

use crate::helpers::*;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("runs (scripts/test.sh installs cargo-deb and dpkg)");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_debian_package_holds_the_service() {
    let out = temp();
    // The test binary's own profile: no second build of the whole tree.
    run(Command::new("cargo")
        .current_dir(repo())
        .args([
            "deb",
            "--no-build",
            "--profile",
            "dev",
            "--no-strip",
            "--fast",
            "--output",
        ])
        .arg(out.path()));
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/cpis-gateway",
        "./lib/systemd/system/cpis-gateway.service",
        "./etc/cpis-gateway/config.toml",
        "./usr/share/doc/cpis-gateway/README.md",
        "./usr/share/doc/cpis-gateway/operations.md",
        "./usr/share/doc/cpis-gateway/interface.md",
        "./usr/share/cpis-gateway/schemas/file-report.schema.json",
    ] {
        assert!(contents.contains(path), "{path} missing:\n{contents}");
    }
    assert!(
        contents
            .lines()
            .any(|l| l.starts_with("-rw-r-----") && l.ends_with("./etc/cpis-gateway/config.toml")),
        "the configuration is not world-readable:\n{contents}"
    );
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains("Package: cpis-gateway"), "{info}");
    assert!(info.contains("Depends: adduser"), "{info}");
    let control = temp();
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(control.path()));
    let postinst = std::fs::read_to_string(control.path().join("postinst")).unwrap();
    assert!(
        postinst.contains("adduser --system") && postinst.contains(" cpis"),
        "{postinst}"
    );
    assert!(
        postinst.contains("-o cpis -g cpis /var/lib/cpis-gateway"),
        "{postinst}"
    );
    // Purging keeps the user that owns the state it keeps: run the real script with every
    // command it could call replaced by one that only writes down that it was called.
    let stubs = temp();
    let calls = stubs.path().join("calls");
    for cmd in [
        "deluser",
        "userdel",
        "delgroup",
        "groupdel",
        "getent",
        "systemctl",
        "rm",
    ] {
        let stub = stubs.path().join(cmd);
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\necho {cmd} \"$@\" >> {}\nexit 0\n",
                calls.display()
            ),
        )
        .unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&stub, mode).unwrap();
    }
    run(Command::new("/bin/sh")
        .arg(control.path().join("postrm"))
        .arg("purge")
        .env("PATH", stubs.path()));
    let called = std::fs::read_to_string(&calls).unwrap_or_default();
    for removal in ["deluser", "userdel", "delgroup", "groupdel", "rm"] {
        assert!(
            !called.lines().any(|l| l.starts_with(removal)),
            "purge removes what owns or is the kept state: {called}"
        );
    }
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/cpis-gateway/config.toml");
    // The shipped configuration is valid and roots the gateway in /var/lib/cpis-gateway.
    let files = temp();
    run(Command::new("dpkg-deb")
        .arg("--extract")
        .arg(&deb)
        .arg(files.path()));
    let config = files.path().join("etc/cpis-gateway/config.toml");
    let parsed = cpis_gateway::config::Config::load(Some(&config)).expect("a valid configuration");
    assert_eq!(parsed.root, std::path::Path::new("/var/lib/cpis-gateway"));
    let unit =
        std::fs::read_to_string(files.path().join("lib/systemd/system/cpis-gateway.service"))
            .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/cpis-gateway --config /etc/cpis-gateway/config.toml"));
}
