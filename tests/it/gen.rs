//! `gen`: reproducible, safe synthetic extracts.

use crate::helpers::*;
use std::fs;

#[test]
fn same_seed_writes_the_same_bytes_and_only_safe_values() {
    let (a, b) = (temp(), temp());
    for dir in [&a, &b] {
        gen_extract(
            dir.path(),
            &[
                "--la",
                "330",
                "--rows",
                "300",
                "--seed",
                "5",
                "--at",
                "20261121T020000",
            ],
        );
    }
    let name = "CPIS_EXTRACT_330_20261121T020000.csv";
    let first = fs::read(a.path().join(name)).unwrap();
    assert_eq!(first, fs::read(b.path().join(name)).unwrap());
    let text = String::from_utf8(first).unwrap();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        assert!(
            fields[0].replace(' ', "").starts_with("999"),
            "999-range NHS number: {line}"
        );
        assert!(
            fields[6].starts_with("01632 960"),
            "drama-range phone: {line}"
        );
    }
}

#[test]
fn unknown_faults_and_las_are_usage_errors() {
    let dir = temp();
    gateway(dir.path())
        .args(["gen", "extract", "--la", "919", "--fault", "gremlins"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("gremlins"));
    gateway(dir.path())
        .args(["gen", "extract", "--la", "999"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("999"));
}

#[test]
fn bom_and_crlf_files_validate_clean() {
    let dir = temp();
    gen_extract(
        dir.path(),
        &[
            "--la",
            "919",
            "--rows",
            "30",
            "--bom",
            "--crlf",
            "--at",
            "20261121T020000",
        ],
    );
    let file = dir.path().join("CPIS_EXTRACT_919_20261121T020000.csv");
    let bytes = fs::read(&file).unwrap();
    assert!(bytes.starts_with("\u{feff}".as_bytes()) && bytes.windows(2).any(|w| w == b"\r\n"));
    let (code, reports) = validate_json(dir.path(), &[], &[&file]);
    assert_eq!(code, 0, "{:?}", reports);
    assert_eq!(reports[0]["rows"], 30);
}
