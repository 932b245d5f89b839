//! `validate`: samples good and bad, authorisation, limits, exit statuses and output forms.

use crate::helpers::*;
use std::fs;
use std::path::PathBuf;

fn good_samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(samples())
        .expect("samples folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("CPIS_EXTRACT_"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn good_samples_are_accepted_with_exit_0() {
    let dir = temp();
    let files = good_samples();
    assert!(files.len() >= 4, "samples for several LAs, CSV and XML");
    let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, reports) = validate_json(dir.path(), &[], &refs);
    assert_eq!(code, 0);
    assert_eq!(reports.len(), files.len());
    for r in &reports {
        assert_eq!(r["outcome"], "accepted", "{r}");
        assert_eq!(r["response_code"], "CPF02");
        assert_eq!(r["invalid_rows"], 0);
        assert!(r["rows"].as_u64().unwrap() > 0);
        assert!(r["changes"].is_null(), "validate applies nothing");
        assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
    }
    let hertfordshire = reports
        .iter()
        .find(|r| r["file"] == "CPIS_EXTRACT_919_20261121T020000.csv")
        .unwrap();
    assert_eq!(hertfordshire["rows"], 8);
    assert_eq!(hertfordshire["mailbox"], "LA919");
}

#[test]
fn each_bad_sample_reports_the_code_it_is_named_for() {
    let dir = temp();
    let mut seen = 0;
    for entry in fs::read_dir(samples().join("bad")).unwrap() {
        let folder = entry.unwrap().path();
        let code = folder.file_name().unwrap().to_string_lossy().into_owned();
        for file in fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            let (status, reports) = validate_json(dir.path(), &[], &[&file]);
            let r = &reports[0];
            let mut codes = file_codes(r);
            codes.extend(row_codes(r).into_iter().map(|(_, c)| c));
            assert!(codes.contains(&code), "{code}: got {codes:?}");
            let warning_only = code.starts_with("EDD_");
            assert_eq!(status, if warning_only { 0 } else { 1 }, "{code}");
            if warning_only {
                assert_eq!(r["outcome"], "accepted");
                assert_eq!(r["row_errors"][0]["severity"], "warning");
            }
            for e in r["row_errors"].as_array().unwrap() {
                assert!(e["row"].as_u64().unwrap() >= 1);
                assert!(!e["column"].as_str().unwrap().is_empty());
                assert!(e["message"].as_str().unwrap().len() > 20, "a sentence: {e}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 24, "one bad sample per fault, saw {seen}");
}

#[test]
fn row_file_errors_name_row_column_and_code() {
    let dir = temp();
    let file = samples().join("bad/DATE_ORDER/CPIS_EXTRACT_919_20261121T020000.csv");
    let (_, reports) = validate_json(dir.path(), &[], &[&file]);
    let e = &reports[0]["row_errors"][0];
    assert_eq!(e["column"], "end_date");
    assert_eq!(e["code"], "DATE_ORDER");
    assert_eq!(e["severity"], "error");
    let row = e["row"].as_u64().unwrap();
    assert_eq!(
        e["line"].as_u64().unwrap(),
        row + 1,
        "line counts the header"
    );
    assert_eq!(reports[0]["outcome"], "partial");
    assert_eq!(reports[0]["response_code"], "CPF03");
    assert_eq!(reports[0]["valid_rows"], 19);
}

#[test]
fn a_file_sent_through_another_las_mailbox_is_not_authorised() {
    let dir = temp();
    let file = samples().join("CPIS_EXTRACT_919_20261121T020000.csv");
    let (code, reports) = validate_json(dir.path(), &["--mailbox", "LA202"], &[&file]);
    assert_eq!(code, 1);
    assert_eq!(file_codes(&reports[0]), ["NOT_AUTHORISED"]);
    assert_eq!(reports[0]["response_code"], "CPF04");
    assert_eq!(reports[0]["mailbox"], "LA202");
    let (code, reports) = validate_json(dir.path(), &["--mailbox", "RWG"], &[&file]);
    assert_eq!(code, 1);
    assert_eq!(file_codes(&reports[0]), ["NOT_AUTHORISED"]);
}

#[test]
fn only_configured_las_are_parties_and_size_is_limited() {
    let dir = temp();
    fs::write(
        dir.path().join("config.toml"),
        "[gateway]\nlocal_authorities = [\"202\"]\nmax_file_bytes = 400\n",
    )
    .unwrap();
    let herts = samples().join("CPIS_EXTRACT_919_20261121T020000.csv");
    let camden = samples().join("CPIS_EXTRACT_202_20261121T021500.xml");
    let (code, reports) = validate_json(dir.path(), &[], &[&herts, &camden]);
    assert_eq!(code, 1);
    assert_eq!(file_codes(&reports[0]), ["NOT_AUTHORISED"]);
    assert_eq!(file_codes(&reports[1]), ["TOO_LARGE"]);
    assert_eq!(reports[1]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn unreadable_files_exit_2_and_the_others_are_still_checked() {
    let dir = temp();
    let good = samples().join("CPIS_EXTRACT_919_20261121T020000.csv");
    let missing = dir.path().join("CPIS_EXTRACT_919_20261121T030000.csv");
    let (code, reports) = validate_json(dir.path(), &[], &[&missing, &good]);
    assert_eq!(code, 2);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["outcome"], "accepted");
}

#[test]
fn usage_and_configuration_errors_exit_2_naming_the_problem() {
    let dir = temp();
    let good = samples().join("CPIS_EXTRACT_919_20261121T020000.csv");
    gateway(dir.path())
        .args(["validate", "--mailbox", "LA999"])
        .arg(&good)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("LA999"));
    gateway(dir.path()).arg("validate").assert().code(2);
    fs::write(
        dir.path().join("bad.toml"),
        "[gateway]\nmax_error_share = 3\n",
    )
    .unwrap();
    gateway(dir.path())
        .args(["--config", "bad.toml", "validate"])
        .arg(&good)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("gateway.max_error_share"));
    fs::write(dir.path().join("typo.toml"), "[gateway]\nsettle_msec = 3\n").unwrap();
    gateway(dir.path())
        .args(["--config", "typo.toml", "validate"])
        .arg(&good)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("settle_msec"));
    gateway(dir.path())
        .args(["--config", "absent.toml", "validate"])
        .arg(&good)
        .assert()
        .code(2);
}

#[test]
fn text_output_groups_rows_by_code_with_totals() {
    let dir = temp();
    gen_extract(
        dir.path(),
        &[
            "--la",
            "919",
            "--rows",
            "50",
            "--at",
            "20261121T020000",
            "--fault",
            "check-digit:7",
            "--fault",
            "plan-type",
        ],
    );
    let file = dir.path().join("CPIS_EXTRACT_919_20261121T020000.csv");
    let out = gateway(dir.path())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("partial (CPF03)"), "{text}");
    assert!(text.contains("rows: 50 (42 valid, 8 invalid)"), "{text}");
    assert!(text.contains("error NHS_CHECK_DIGIT: 7 rows"), "{text}");
    assert!(text.contains("error PLAN_TYPE: 1 row"), "{text}");
    assert!(
        text.contains("... and 2 more"),
        "only the first rows of each code: {text}"
    );
    assert!(
        out.stderr.is_empty(),
        "no logs by default: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn xml_root_must_match_the_file_name() {
    let dir = temp();
    let original =
        fs::read_to_string(samples().join("CPIS_EXTRACT_202_20261121T021500.xml")).unwrap();
    let wrong_la = dir.path().join("CPIS_EXTRACT_202_20261121T021500.xml");
    fs::write(
        &wrong_la,
        original.replacen("laCode=\"202\"", "laCode=\"919\"", 1),
    )
    .unwrap();
    let (code, reports) = validate_json(dir.path(), &[], &[&wrong_la]);
    assert_eq!(code, 1);
    assert_eq!(file_codes(&reports[0]), ["XML"]);
    assert_eq!(reports[0]["response_code"], "CPF01");
    let renamed = dir.path().join("CPIS_EXTRACT_202_20261121T021501.xml");
    fs::write(&renamed, &original).unwrap();
    let (_, reports) = validate_json(dir.path(), &[], &[&renamed]);
    assert_eq!(file_codes(&reports[0]), ["XML"]);
    assert!(reports[0]["file_errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("extractedAt"));
}

#[test]
fn a_ragged_csv_row_rejects_the_file_rather_than_guess() {
    let dir = temp();
    let file = dir.path().join("CPIS_EXTRACT_919_20261121T020000.csv");
    fs::write(
        &file,
        "nhs_number,plan_type,start_date,la_code,edt_phone,office_phone\n\
         9990000018,CPP,2026-01-02,919,01632 960001,01632 960002\n\
         9990000026,CPP,2026-01-02,919,01632 960001\n",
    )
    .unwrap();
    let (code, reports) = validate_json(dir.path(), &[], &[&file]);
    assert_eq!(code, 1);
    assert_eq!(file_codes(&reports[0]), ["HEADER"]);
    let msg = reports[0]["file_errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("row 2") && msg.contains("line 3"), "{msg}");
}

#[test]
fn header_only_extract_is_a_valid_file_of_zero_rows() {
    let dir = temp();
    let file = dir.path().join("CPIS_EXTRACT_919_20261121T020000.csv");
    fs::write(
        &file,
        "nhs_number,plan_type,start_date,la_code,edt_phone,office_phone\r\n",
    )
    .unwrap();
    let (code, reports) = validate_json(dir.path(), &[], &[&file]);
    assert_eq!(code, 0);
    assert_eq!(reports[0]["rows"], 0);
    assert_eq!(reports[0]["outcome"], "accepted");
}

#[test]
fn one_core_or_two_the_same_report_of_a_file_longer_than_the_hand_offs() {
    // 6,000 rows: several batches of parsed rows and several blocks of bytes in flight.
    let dir = temp();
    for (format, at) in [("csv", "20261121T020000"), ("xml", "20261121T030000")] {
        let mut args = vec![
            "--la", "919", "--rows", "6000", "--seed", "5", "--format", format,
        ];
        args.extend([
            "--at",
            at,
            "--fault",
            "check-digit:40",
            "--fault",
            "duplicate:9",
        ]);
        args.extend(["--fault", "date-order:7", "--fault", "phone-format:5"]);
        let manifest = gen_extract(dir.path(), &args);
        let file = dir.path().join(manifest["file"].as_str().unwrap());
        let run = |one_core: bool| {
            let bin = assert_cmd::cargo::cargo_bin("cpis-gateway");
            let mut cmd = if one_core {
                let mut c = std::process::Command::new("taskset");
                c.args(["-c", "0"]).arg(&bin);
                c
            } else {
                std::process::Command::new(&bin)
            };
            let out = cmd
                .current_dir(dir.path())
                .env("CPIS_GATEWAY_NOW", NOW)
                .args(["validate", "--format", "json"])
                .arg(&file)
                .output()
                .unwrap();
            let mut report: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
            for key in ["received_at", "processed_at"] {
                report[0].as_object_mut().unwrap().remove(key);
            }
            (out.status.code(), report)
        };
        let (two, one) = (run(false), run(true));
        assert_eq!(two.0, Some(1), "{format}");
        assert_eq!(two.1[0]["rows"], 6000, "{format}");
        assert!(two.1[0]["invalid_rows"].as_u64().unwrap() >= 60, "{format}");
        assert_eq!(one, two, "{format}");

        // The same file, unreadable after its last row (a record over the 64 KiB cap, an
        // element never closed): every row before is still checked, on one core or two.
        let intact = std::fs::read_to_string(&file).unwrap();
        let broken = match format {
            "csv" => format!("{intact}\"{}\"\n", "x".repeat(70_000)),
            _ => intact.replace("</Extract>", "<Plan nhsNumber=\"9990000018"),
        };
        std::fs::write(&file, broken).unwrap();
        let (two, one) = (run(false), run(true));
        assert_eq!(two.1[0]["rows"], 6000, "{format}: {:#}", two.1[0]);
        assert_eq!(
            two.1[0]["file_errors"].as_array().unwrap().len(),
            1,
            "{format}"
        );
        assert_eq!(
            two.1[0]["row_errors"].as_array().unwrap().len(),
            one.1[0]["row_errors"].as_array().unwrap().len(),
            "{format}"
        );
        assert_eq!(one, two, "{format}");
    }
}

/// The row faults `gen` can write in every format (CP-IS's upload included).
pub(crate) const FAULTS_IN_EVERY_FORMAT: [&str; 10] = [
    "check-digit:2",
    "nhs-format",
    "nhs-missing",
    "plan-type",
    "date-missing",
    "date-format",
    "date-order",
    "date-future",
    "duplicate:2",
    "edd-passed",
];

#[test]
fn generated_faults_are_found_at_their_rows_in_csv_and_xml() {
    let dir = temp();
    let faults = FAULTS_IN_EVERY_FORMAT.into_iter().chain([
        "la-mismatch",
        "phone-missing",
        "phone-format",
        "field-too-long",
        "edd-not-ucpp",
    ]);
    for (format, at) in [("csv", "20261121T020000"), ("xml", "20261121T030000")] {
        let mut args = vec![
            "--la", "919", "--rows", "400", "--seed", "11", "--format", format, "--at", at,
        ];
        for f in faults.clone() {
            args.extend(["--fault", f]);
        }
        let manifest = gen_extract(dir.path(), &args);
        let file = dir.path().join(manifest["file"].as_str().unwrap());
        let (code, reports) = validate_json(dir.path(), &[], &[&file]);
        assert_eq!(code, 1);
        assert_eq!(
            row_codes(&reports[0]),
            manifest_expected(&manifest),
            "{format}"
        );
        assert_eq!(
            reports[0]["invalid_rows"], 17,
            "{format}: 13 faulty rows and 4 duplicates"
        );
        assert_eq!(reports[0]["warnings"], 2);
    }
}

#[test]
fn attendance_files_validate_too() {
    let dir = temp();
    fs::write(
        dir.path().join("config.toml"),
        "[[health_org]]\nods = \"RWG\"\nname = \"West Herts\"\n",
    )
    .unwrap();
    let sample = samples().join("health/CPIS_ATTEND_RWG_20261121T101500.csv");
    let (code, reports) = validate_json(dir.path(), &[], &[&sample]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["kind"], "attendance");
    assert_eq!(reports[0]["rows"], 3);
    assert_eq!(reports[0]["mailbox"], "RWG");
    let bad = dir.path().join("CPIS_ATTEND_RWG_20261121T101500.csv");
    let text = fs::read_to_string(&sample)
        .unwrap()
        .replacen(",ED,", ",A&E,", 1);
    fs::write(&bad, text).unwrap();
    let (code, reports) = validate_json(dir.path(), &[], &[&bad]);
    assert_eq!(code, 1);
    assert_eq!(row_codes(&reports[0]), [(1, "SETTING".to_owned())]);
    let schema: serde_json::Value =
        serde_json::from_slice(&fs::read(repo().join("schemas/file-report.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&reports[0]));
    // Without the organisation configured, the file is not authorised.
    let other = temp();
    let (code, reports) = validate_json(other.path(), &[], &[&sample]);
    assert_eq!(code, 1);
    assert_eq!(file_codes(&reports[0]), ["NOT_AUTHORISED"]);
}

#[test]
fn duplicates_beyond_the_listed_problems_are_counted_and_the_first_are_listed_in_row_order() {
    let dir = temp();
    let path = dir.path().join("CPIS_EXTRACT_919_20261121T020000.csv");
    let row = |nhs: &str| {
        format!("{nhs},CPP,2026-01-02,,919,Hertfordshire,01632 960001,01632 960002,,\n")
    };
    let mut text = String::from("nhs_number,plan_type,start_date,end_date,la_code,la_name,edt_phone,office_phone,local_ref,expected_delivery_date\n");
    // Rows 1 and 2 repeat a key; rows 3-10,007 have a bad NHS number (one problem each);
    // rows 10,008 and 10,009 repeat another key.
    let (early, late) = (test_nhs(999_700_000, 1), test_nhs(999_700_000, 2));
    text.push_str(&row(&early).repeat(2));
    text.push_str(&row("12345").repeat(10_005));
    text.push_str(&row(&late).repeat(2));
    fs::write(&path, text).unwrap();
    let (code, reports) = validate_json(dir.path(), &[], &[&path]);
    assert_eq!(code, 1);
    let report = &reports[0];
    assert_schema("file-report.schema.json", report);
    assert_eq!(report["rows"], 10_009);
    assert_eq!(report["invalid_rows"], 10_009);
    assert_eq!(report["valid_rows"], 0);
    let codes = row_codes(report);
    assert_eq!(codes.len(), 10_000);
    assert_eq!(codes[0], (1, "DUPLICATE".to_owned()));
    assert_eq!(codes[1], (2, "DUPLICATE".to_owned()));
    assert_eq!(codes[2], (3, "NHS_FORMAT".to_owned()));
    assert_eq!(codes[9_999], (10_000, "NHS_FORMAT".to_owned()));
    assert_eq!(
        report["row_errors_unlisted"],
        serde_json::json!([
            {"code": "NHS_FORMAT", "severity": "error", "count": 7},
            {"code": "DUPLICATE", "severity": "error", "count": 2}
        ])
    );
}
