//! CP-IS's own upload (HL7 v3 `File`): read into the same rows as our extracts, and the
//! same children sent either way give the same store.

use crate::backend;
use crate::helpers::*;
use crate::schemas::xmllint;
use serde_json::Value;
use std::fs;
use std::path::Path;

const UPLOAD: &str = "CPIS_UPLOAD_908_20261121T023000.xml";

/// The children of the sample upload, as our CSV (its deleted plan left out).
const AS_CSV: &str = "nhs_number,plan_type,start_date,end_date,la_code,la_name,edt_phone,office_phone,local_ref,expected_delivery_date
9997770005,CPP,2024-03-11,,908,Cornwall Council,01632960450,01632960451,908-C-0001,
9997770013,CPP,2025-02-20,,908,Cornwall Council,01632960450,01632960451,908-C-0002,
9997770013,LAC,2025-07-01,,908,Cornwall Council,01632960450,01632960451,908-C-0002,
9997770021,LAC,2023-09-04,2026-12-31,908,Cornwall Council,01632960450,01632960451,908-C-0003,
9997770048,UCPP,2026-10-05,,908,Cornwall Council,01632960450,01632960451,908-U-0001,2027-03-02
";

fn sample() -> String {
    fs::read_to_string(samples().join(UPLOAD)).unwrap()
}

#[test]
fn a_cpis_upload_is_read_as_the_rows_of_an_extract_whatever_its_name() {
    let dir = temp();
    let (code, reports) = validate_json(dir.path(), &[], &[&samples().join(UPLOAD)]);
    assert_eq!(code, 0, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r["outcome"], "accepted", "{r}");
    assert_eq!(r["mailbox"], "LA908");
    // Five plans in four records that are not deleted (one record holds two plans).
    assert_eq!(r["rows"], 5);
    assert_eq!(r["valid_rows"], 5);
    // The root decides: the same document named as an XML extract is read the same way.
    let renamed = dir.path().join("CPIS_EXTRACT_908_20261121T023000.xml");
    fs::write(&renamed, sample()).unwrap();
    let (code, reports) = validate_json(dir.path(), &[], &[&renamed]);
    assert_eq!((code, &reports[0]["rows"]), (0, &Value::from(5)));
    // And an upload must be XML.
    let csv = dir.path().join("CPIS_UPLOAD_908_20261121T023000.csv");
    fs::write(&csv, AS_CSV).unwrap();
    let (_, reports) = validate_json(dir.path(), &[], &[&csv]);
    assert_eq!(file_codes(&reports[0]), ["FILE_NAME"]);
}

#[test]
fn a_bad_record_is_reported_where_the_la_can_find_it() {
    let dir = temp();
    let file = samples().join("bad/NHS_CHECK_DIGIT").join(UPLOAD);
    let (code, reports) = validate_json(dir.path(), &[], &[&file]);
    assert_eq!(code, 1);
    let r = &reports[0];
    assert_eq!(r["response_code"], "CPF03", "{r}");
    assert_eq!(
        row_codes(r),
        [
            (2, "NHS_CHECK_DIGIT".to_owned()),
            (3, "DATE_ORDER".to_owned())
        ]
    );
    assert_eq!(r["row_errors"][1]["column"], "EndDate");
    // A date that is not HL7's is echoed as the LA wrote it, in HL7's terms.
    let month_13 = dir.path().join(UPLOAD);
    fs::write(
        &month_13,
        fs::read_to_string(&file)
            .unwrap()
            .replacen("202509040000", "202513040000", 1),
    )
    .unwrap();
    let (_, reports) = validate_json(dir.path(), &[], &[&month_13]);
    let date = &reports[0]["row_errors"][1];
    assert_eq!(date["code"], "DATE_FORMAT", "{date}");
    assert_eq!(date["column"], "StartDate");
    let message = date["message"].as_str().unwrap();
    assert!(
        message.contains("\"202513040000\"") && message.contains("YYYYMMDDHHMM"),
        "{message}"
    );
    // Twelve bytes with a character across where the time starts: refused, not a crash.
    fs::write(
        &month_13,
        fs::read_to_string(&file)
            .unwrap()
            .replacen("202509040000", "2025090é000", 1),
    )
    .unwrap();
    let (code, reports) = validate_json(dir.path(), &[], &[&month_13]);
    assert_eq!(code, 1);
    assert_eq!(reports[0]["row_errors"][1]["code"], "DATE_FORMAT");
}

/// A root whose only LA is Cornwall (908), closures unguarded.
fn root() -> tempfile::TempDir {
    let dir = temp();
    fs::write(
        dir.path().join("config.toml"),
        "[gateway]\nroot = \"var\"\nsettle_ms = 0\nlocal_authorities = [\"908\"]\nmax_closure_share = 1.0\n",
    )
    .unwrap();
    assert_ok(&gateway(dir.path()).arg("init").output().unwrap());
    dir
}

/// Drops `name` into Cornwall's mailbox, runs the daemon once (which exits 1 when it
/// refused a file), returns the ack.
fn send(dir: &Path, name: &str, bytes: &str) -> Value {
    let inbox = dir.join("var/mailboxes/LA908/in");
    fs::write(inbox.join(name), bytes).unwrap();
    let out = gateway(dir).args(["run", "--once"]).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stem = name.rsplit_once('.').unwrap().0;
    let ack = dir.join(format!("var/mailboxes/LA908/out/CPIS_ACK_{stem}.json"));
    serde_json::from_str(&fs::read_to_string(ack).unwrap()).unwrap()
}

/// The records and their versions, as the store holds them.
fn store(dir: &Path) -> Vec<String> {
    [
        "SELECT la_code, nhs, plan_type, open, fingerprint FROM records ORDER BY 1, 2, 3",
        "SELECT la_code, nhs, plan_type, start_date, end_date, edt_phone, office_phone, local_ref, expected_delivery, change FROM record_versions ORDER BY 1, 2, 3, id",
    ]
    .iter()
    .flat_map(|q| backend::sql(dir, q))
    .collect()
}

#[test]
fn the_same_children_as_a_cpis_upload_and_as_csv_give_the_same_store() {
    let (upload, csv) = (root(), root());
    let by_upload = send(upload.path(), UPLOAD, &sample());
    let by_csv = send(csv.path(), "CPIS_EXTRACT_908_20261121T023000.csv", AS_CSV);
    assert_eq!(by_upload["outcome"], "accepted", "{by_upload}");
    assert_eq!(by_upload["changes"], by_csv["changes"]);
    assert_eq!(by_upload["changes"]["new"], 5, "{by_upload}");
    assert_eq!(store(upload.path()), store(csv.path()));
    assert!(
        store(upload.path())
            .iter()
            .any(|r| r.contains("|UCPP|") && r.contains("2027-03-02")),
        "the unborn child's plan, its end date kept as the expected delivery"
    );

    // The next day a plan comes with its delete date: as if it were no longer sent.
    let deleted = sample()
        .replacen("<id extension=\"118\"/>", "<id extension=\"119\"/>", 1)
        .replacen(
            "<cPPStartDate><value value=\"202403110000\"/></cPPStartDate></component>",
            "<cPPStartDate><value value=\"202403110000\"/></cPPStartDate></component>\n     <component2><cPPDeleteDate><value value=\"202611210000\"/></cPPDeleteDate></component2>",
            1,
        );
    assert_ne!(deleted, sample());
    let day2 = "CPIS_UPLOAD_908_20261122T023000.xml";
    let by_upload = send(upload.path(), day2, &deleted);
    let without: String = AS_CSV
        .lines()
        .filter(|l| !l.starts_with("9997770005"))
        .map(|l| format!("{l}\n"))
        .collect();
    let by_csv = send(csv.path(), "CPIS_EXTRACT_908_20261122T023000.csv", &without);
    assert_eq!(by_upload["changes"], by_csv["changes"]);
    assert_eq!(by_upload["changes"]["closed_by_absence"], 1, "{by_upload}");
    assert_eq!(store(upload.path()), store(csv.path()));
}

#[test]
fn names_and_birth_dates_in_an_upload_are_never_kept() {
    let dir = root();
    send(dir.path(), UPLOAD, &sample());
    let everything = backend::dump(dir.path());
    assert!(everything.contains("9997770013"), "the store was dumped");
    for read_past in ["Sample", "Mother", "20150314", "2015-03-14", "19980702"] {
        assert!(
            !everything.contains(read_past),
            "{read_past} is in the store"
        );
    }
}

#[test]
fn an_upload_whose_sequence_number_is_not_above_the_last_applied_is_stale() {
    let dir = root();
    let first = send(dir.path(), UPLOAD, &sample());
    assert_eq!(first["upload"]["sequence"], 118, "{first}");
    assert_eq!(first["upload"]["records"], 5);
    assert_eq!(first["upload"]["deleted_plans"], 1);
    // Later names, so only the number can make them stale.
    for (stamp, sequence, outcome) in [
        ("20261122T020000", 118, "rejected"),
        ("20261122T030000", 117, "rejected"),
        ("20261122T040000", 119, "accepted"),
        ("20261122T050000", 119, "rejected"),
    ] {
        let again = sample().replacen(
            "<id extension=\"118\"/>",
            &format!("<id extension=\"{sequence}\"/>"),
            1,
        );
        let ack = send(dir.path(), &format!("CPIS_UPLOAD_908_{stamp}.xml"), &again);
        assert_eq!(ack["outcome"], outcome, "{sequence}: {ack}");
        if outcome == "rejected" {
            assert_eq!(file_codes(&ack), ["STALE"], "{ack}");
            assert!(ack["file_errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("sequence number"));
        }
    }
    // An extract in our own formats carries no number and is not held to one.
    let csv = send(dir.path(), "CPIS_EXTRACT_908_20261123T020000.csv", AS_CSV);
    assert_eq!(csv["outcome"], "accepted", "{csv}");
    assert!(csv.get("upload").is_none());
}

/// Sends `bytes` as `name` and returns CP-IS's acknowledgement, checked against our schema.
fn file_response(dir: &Path, name: &str, bytes: &str) -> String {
    send(dir, name, bytes);
    let stem = name.rsplit_once('.').unwrap().0;
    let path = dir.join(format!("var/mailboxes/LA908/out/CPIS_ACK_{stem}.xml"));
    let out = xmllint("cpis-file-response.xsd", &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::read_to_string(path).unwrap()
}

/// The text of each `<location>`, with its record response code.
fn details(response: &str) -> Vec<(String, String)> {
    response
        .split("<acknowledgementRecordDetail>")
        .skip(1)
        .map(|d| {
            let code = d
                .split("code=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let location = d
                .split("<location>")
                .nth(1)
                .unwrap()
                .split("</location>")
                .next()
                .unwrap();
            (code.to_owned(), location.to_owned())
        })
        .collect()
}

fn count(response: &str, element: &str) -> String {
    response
        .split(&format!("<{element}><value value=\""))
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn an_upload_is_answered_with_cp_iss_own_file_response_too() {
    let dir = root();
    let clean = file_response(dir.path(), UPLOAD, &sample());
    for piece in [
        "<id extension=\"118\"/>",
        "<transmissionQuantity value=\"5\"/>",
        "code=\"CPF02\" displayName=\"Successful File Upload\"",
        "<id root=\"2.16.840.1.113883.2.1.3.2.4.19.1\" extension=\"908\"/>",
        "<name>Cornwall Council</name>",
        "<telecom value=\"tel:01632960450\" use=\"EC\"/>",
    ] {
        assert!(clean.contains(piece), "{piece}: {clean}");
    }
    // Every record applied, the deleted plan's too; none returned.
    let applied: Vec<_> = (1..=5).map(|_| "CPR06".to_owned()).collect();
    assert_eq!(
        details(&clean).into_iter().map(|d| d.0).collect::<Vec<_>>(),
        applied
    );
    assert_eq!(details(&clean)[1].1, "record 2: NHS number 9997770013");
    assert_eq!(count(&clean, "failedReturnedCP-ISRecords"), "0");
    assert_eq!(count(&clean, "successfulReturnedCP-ISRecords"), "5");
    assert!(!clean.contains("<message>"));

    // Bad records: each found by position and number, the refused ones returned as sent.
    let bad = fs::read_to_string(samples().join("bad/NHS_CHECK_DIGIT").join(UPLOAD))
        .unwrap()
        .replacen("<id extension=\"118\"/>", "<id extension=\"119\"/>", 1);
    let partial = file_response(dir.path(), "CPIS_UPLOAD_908_20261122T023000.xml", &bad);
    assert!(partial.contains("code=\"CPF03\" displayName=\"Partial File Upload\""));
    assert_eq!(
        details(&partial),
        [
            ("CPR06", "record 1: NHS number 9997770005"),
            ("CPR04", "record 2: NHS number 9997770014"),
            ("CPR07", "record 3: NHS number 9997770021"),
            ("CPR06", "record 4: NHS number 9997770048"),
        ]
        .map(|(c, l)| (c.to_owned(), l.to_owned()))
    );
    assert_eq!(count(&partial, "failedReturnedCP-ISRecords"), "2");
    assert_eq!(count(&partial, "successfulReturnedCP-ISRecords"), "2");
    let returned = partial.split("<message>").skip(1).collect::<Vec<_>>();
    assert_eq!(returned.len(), 2);
    assert!(returned[0].contains("extension=\"9997770014\""));
    assert!(returned[1].contains("<lACEndDate><value value=\"202309040000\"/>"));
    assert!(
        !partial.contains("9997770005\"/>"),
        "applied records are not returned"
    );

    // Nothing applied: the file's code alone.
    let stale = file_response(dir.path(), "CPIS_UPLOAD_908_20261123T023000.xml", &sample());
    assert!(stale.contains("code=\"CPF04\""), "{stale}");
    assert!(!stale.contains("<acknowledgementRecord>"));
    let other = fs::read_to_string(samples().join("bad/NOT_AUTHORISED").join(UPLOAD)).unwrap();
    let refused = file_response(dir.path(), "CPIS_UPLOAD_908_20261124T023000.xml", &other);
    assert!(refused.contains("code=\"CPF04\""), "{refused}");
    assert!(
        refused.contains("extension=\"908\"/>") && !refused.contains("extension=\"886\"/>"),
        "it goes to the mailbox's LA, not the organisation the file named: {refused}"
    );

    // Unreadable: what is not known is -1.
    let cut = &sample()[..900];
    let broken = file_response(dir.path(), "CPIS_UPLOAD_908_20261125T023000.xml", cut);
    assert!(broken.contains("code=\"CPF01\" displayName=\"File Level Error\""));
    assert!(
        broken.contains("<transmissionQuantity value=\"-1\"/>"),
        "{broken}"
    );
    // Read to its end with a wrong count: the records read are known.
    let miscounted = sample()
        .replacen(
            "<transmissionQuantity value=\"5\"/>",
            "<transmissionQuantity value=\"6\"/>",
            1,
        )
        .replacen("<id extension=\"118\"/>", "<id extension=\"120\"/>", 1);
    let counted = file_response(
        dir.path(),
        "CPIS_UPLOAD_908_20261126T023000.xml",
        &miscounted,
    );
    assert!(counted.contains("code=\"CPF01\""), "{counted}");
    assert!(
        counted.contains("<transmissionQuantity value=\"5\"/>"),
        "{counted}"
    );
}

#[test]
fn every_upload_sample_validates_against_our_schema_of_cp_iss() {
    let mut samples_seen = 0;
    let mut folders = vec![samples()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("CPIS_UPLOAD_"))
            {
                let out = xmllint("cpis-upload.xsd", &path);
                assert!(
                    out.status.success(),
                    "{}: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                samples_seen += 1;
            }
        }
    }
    assert_eq!(samples_seen, 3);
    // Not vacuous: what CP-IS's schema refuses, ours does.
    let dir = temp();
    for (what, from, to) in [
        ("a date to the day", "202403110000", "20240311"),
        (
            "a phone with a space",
            "tel:01632960451",
            "tel:01632 960451",
        ),
        (
            "an unborn child's plan without its end",
            "<component1><uCPEndDate>",
            "<component3><uCPEndDate>",
        ),
        (
            "a name with family first",
            "<given>Sample</given><family>Child</family>",
            "<family>Child</family><given>Sample</given>",
        ),
    ] {
        let file = dir.path().join("mutated.xml");
        let mutated = sample().replacen(from, to, 1);
        assert_ne!(mutated, sample(), "{what}");
        fs::write(&file, mutated).unwrap();
        assert!(
            !xmllint("cpis-upload.xsd", &file).status.success(),
            "{what}"
        );
    }
}

#[test]
fn gen_writes_uploads_whose_faults_are_found_at_their_rows() {
    let dir = temp();
    let mut args = vec![
        "--la",
        "908",
        "--rows",
        "400",
        "--seed",
        "11",
        "--format",
        "cpis",
        "--at",
        "20261121T020000",
    ];
    for f in crate::validate::FAULTS_IN_EVERY_FORMAT {
        args.extend(["--fault", f]);
    }
    let manifest = gen_extract(dir.path(), &args);
    assert_eq!(manifest["file"], "CPIS_UPLOAD_908_20261121T020000.xml");
    let file = dir.path().join(manifest["file"].as_str().unwrap());
    let (code, reports) = validate_json(dir.path(), &[], &[&file]);
    assert_eq!(code, 1);
    assert_eq!(row_codes(&reports[0]), manifest_expected(&manifest));
    assert_eq!(
        reports[0]["invalid_rows"], 13,
        "9 faulty rows and 4 duplicates"
    );
    assert_eq!(reports[0]["upload"]["records"], 400);

    // A clean one is what CP-IS's schema (as ours says it) allows; a fault of the file's
    // phones cannot be written.
    let clean = gen_extract(
        dir.path(),
        &[
            "--la",
            "908",
            "--rows",
            "50",
            "--format",
            "cpis",
            "--at",
            "20261121T030000",
        ],
    );
    let out = xmllint(
        "cpis-upload.xsd",
        &dir.path().join(clean["file"].as_str().unwrap()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = gateway(dir.path())
        .args([
            "gen", "extract", "--la", "908", "--rows", "5", "--format", "cpis",
        ])
        .args(["--fault", "phone-missing", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("cannot carry the phone-missing fault")
    );
}

#[test]
fn elements_before_the_first_record_cannot_make_the_reader_hold_the_file() {
    let dir = temp();
    // 2 million header elements (50 MB) before the records: refused with memory flat.
    let at = sample().find(" <communicationFunctionSnd>").unwrap();
    let mut bytes = sample()[..at].to_owned();
    bytes.push_str(&" <creationTime value=\"1\"/>\n".repeat(2_000_000));
    bytes.push_str(&sample()[at..]);
    let path = dir.path().join(UPLOAD);
    fs::write(&path, bytes).unwrap();
    let out = under_ulimit(
        dir.path(),
        400_000,
        &format!("validate --format json {}", path.display()),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(file_codes(&reports[0]), ["XML"]);
}

/// `xmllint --noout`: whether `file` is well-formed XML.
fn well_formed(file: &Path) -> bool {
    std::process::Command::new("xmllint")
        .args(["--noout", "--nonet"])
        .arg(file)
        .output()
        .expect("xmllint")
        .status
        .success()
}

#[test]
fn a_hostile_upload_is_refused_by_code_and_answered_with_well_formed_xml() {
    let refused_record = |inside: &str| {
        // The second record's number fails its check digit: it is returned as sent.
        sample().replacen("9997770013", "9997770014", 1).replacen(
            "<birthTime value=\"20150314\"/>",
            inside,
            2,
        )
    };
    let cases: Vec<(&str, String, &str)> =
        vec![
        (
            "a control character in the header",
            sample().replacen("Cornwall Council</name>", "Corn&#1;wall</name>", 1),
            "XML",
        ),
        (
            "a raw control character in a record",
            sample().replacen("<given>Sample</given>", "<given>Sa\u{1}mple</given>", 1),
            "XML",
        ),
        (
            "a name XML does not allow",
            sample().replacen("<subject>", "<subject><_1abc/><1abc/>", 1),
            "XML",
        ),
        (
            "forty attributes on one element",
            sample().replacen(
                "<subject>",
                &format!(
                    "<subject {}>",
                    (0..40).map(|i| format!("a{i}=\"x\"")).collect::<Vec<_>>().join(" ")
                ),
                1,
            ),
            "XML",
        ),
        (
            "a root declaring forty namespaces",
            sample().replacen(
                "<File ",
                &format!(
                    "<File {} ",
                    (0..40).map(|i| format!("xmlns:p{i}=\"urn:p\"")).collect::<Vec<_>>().join(" ")
                ),
                1,
            ),
            "XML",
        ),
        (
            "two CP-ISRecord elements in one record",
            sample().replacen(
                "</CP-ISRecord>\n </record>",
                "</CP-ISRecord>\n  <CP-ISRecord/>\n </record>",
                1,
            ),
            "XML",
        ),
        (
            "attributes of one name under two prefixes, in a record returned",
            refused_record(
                "<birthTime xmlns:p=\"urn:p\" p:value=\"1\" xml:lang=\"en\" value=\"20150314\"/>",
            ),
            "NHS_CHECK_DIGIT",
        ),
    ];
    for (i, (what, bytes, code)) in cases.iter().enumerate() {
        let dir = root();
        let name = format!("CPIS_UPLOAD_908_20261121T02300{i}.xml");
        let ack = send(dir.path(), &name, bytes);
        let mut codes = file_codes(&ack);
        codes.extend(row_codes(&ack).into_iter().map(|(_, c)| c));
        assert!(codes.contains(&code.to_string()), "{what}: {ack}");
        let stem = name.rsplit_once('.').unwrap().0;
        let response = dir
            .path()
            .join(format!("var/mailboxes/LA908/out/CPIS_ACK_{stem}.xml"));
        assert!(
            well_formed(&response),
            "{what}: {}",
            fs::read_to_string(&response).unwrap()
        );
    }
    // An upload named as an extract and refused is answered as an upload all the same.
    let dir = root();
    let other = fs::read_to_string(samples().join("bad/NOT_AUTHORISED").join(UPLOAD)).unwrap();
    let ack = send(dir.path(), "CPIS_EXTRACT_908_20261121T023000.xml", &other);
    assert_eq!(file_codes(&ack), ["NOT_AUTHORISED"]);
    let response = dir
        .path()
        .join("var/mailboxes/LA908/out/CPIS_ACK_CPIS_EXTRACT_908_20261121T023000.xml");
    assert!(response.exists(), "no FileResponse");
}

#[test]
fn every_record_is_answered_for_even_when_its_problems_are_not_listed() {
    // About 11,000 refused records of 24,000: the JSON acknowledgement lists 10,000
    // problems, CP-IS's answers each record and returns every refused one.
    let dir = root();
    let manifest = gen_extract(
        dir.path(),
        &[
            "--la",
            "908",
            "--rows",
            "24000",
            "--format",
            "cpis",
            "--at",
            "20261121T020000",
            "--fault",
            "check-digit:10010",
            "--fault",
            "date-order:990",
        ],
    );
    let expected = manifest_expected(&manifest);
    let mut refused: Vec<u64> = expected.iter().map(|(row, _)| *row).collect();
    refused.dedup();
    let for_number = expected
        .iter()
        .filter(|(_, code)| code == "NHS_CHECK_DIGIT")
        .count();
    assert!(refused.len() > 10_000 && refused.len() < 12_000);
    let name = manifest["file"].as_str().unwrap();
    let bytes = fs::read_to_string(dir.path().join(name)).unwrap();
    let response = file_response(dir.path(), name, &bytes);
    let ack: Value = serde_json::from_str(
        &fs::read_to_string(
            dir.path()
                .join("var/mailboxes/LA908/out/CPIS_ACK_CPIS_UPLOAD_908_20261121T020000.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ack["outcome"], "partial");
    assert_eq!(ack["invalid_rows"], refused.len());
    assert_eq!(ack["row_errors"].as_array().unwrap().len(), 10_000);
    assert!(ack["row_errors_unlisted"].is_array());
    let details = details(&response);
    assert_eq!(details.len(), 24_000);
    let with = |code: &str| details.iter().filter(|(c, _)| c == code).count();
    assert_eq!(
        (with("CPR04"), with("CPR07"), with("CPR06")),
        (
            for_number,
            refused.len() - for_number,
            24_000 - refused.len()
        )
    );
    // Each refused record is where the manifest put its fault.
    let answered: Vec<u64> = details
        .iter()
        .filter(|(c, _)| c != "CPR06")
        .map(|(_, l)| {
            l["record ".len()..]
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(answered, refused);
    assert_eq!(
        count(&response, "failedReturnedCP-ISRecords"),
        refused.len().to_string()
    );
    assert_eq!(
        count(&response, "successfulReturnedCP-ISRecords"),
        (24_000 - refused.len()).to_string()
    );
}

/// Drops `text` into `mailbox`'s inbox as `name` and runs the daemon once.
fn drop_and_run(dir: &Path, mailbox: &str, name: &str, text: &str) {
    fs::write(
        dir.join("var/mailboxes")
            .join(mailbox)
            .join("in")
            .join(name),
        text,
    )
    .unwrap();
    let out = gateway(dir).args(["run", "--once"]).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The notification files in `mailbox`'s outbox, by name.
fn notifications(dir: &Path, mailbox: &str) -> Vec<(String, String)> {
    files_starting(
        &dir.join("var/mailboxes").join(mailbox).join("out"),
        "CPIS_NOTIFY_",
    )
    .into_iter()
    .map(|p| {
        (
            p.file_name().unwrap().to_string_lossy().into_owned(),
            fs::read_to_string(&p).unwrap(),
        )
    })
    .collect()
}

#[test]
fn an_la_that_asks_is_told_of_attendances_in_cp_iss_own_notification() {
    let dir = temp();
    fs::write(
        dir.path().join("config.toml"),
        "[gateway]\nroot = \"var\"\nsettle_ms = 0\nlocal_authorities = [\"908\", \"919\"]\nasid = \"918273645501\"\n\
         [[la]]\ncode = \"908\"\nnotify_format = \"cpis\"\n\
         [[health_org]]\nods = \"RWG\"\nname = \"West Herts & Watford\"\n",
    )
    .unwrap();
    assert_ok(&gateway(dir.path()).arg("init").output().unwrap());
    drop_and_run(dir.path(), "LA908", UPLOAD, &sample());
    let herts = test_nhs(999_710_000, 1);
    drop_and_run(
        dir.path(),
        "LA919",
        "CPIS_EXTRACT_919_20261121T020000.csv",
        &format!("nhs_number,plan_type,start_date,end_date,la_code,edt_phone,office_phone,local_ref\n{herts},CPP,2026-01-01,,919,01632 960001,01632 960002,H-1\n"),
    );
    // Two children of Cornwall's upload at the ED (the second has two plans), one of
    // Hertfordshire's; a GP look-up of the first is a silent read.
    let attend = |nhs: &str, at: &str, setting: &str| {
        format!("{nhs},{at},RWG,West Herts,{setting},Dr A <Example>,Emergency Department Doctor\n")
    };
    let text = format!(
        "nhs_number,attended_at,org_ods,org_name,setting,user_name,user_role\n{}{}{}{}",
        attend("9997770005", "2026-11-21T09:42:00+00:00", "ED"),
        attend("9997770013", "2026-11-21T09:50:00+00:00", "ED"),
        attend(&herts, "2026-11-21T09:55:00+00:00", "ED"),
        attend("9997770005", "2026-11-21T10:00:00+00:00", "GP"),
    );
    drop_and_run(
        dir.path(),
        "RWG",
        "CPIS_ATTEND_RWG_20261121T101500.csv",
        &text,
    );

    let cornwall = notifications(dir.path(), "LA908");
    assert_eq!(cornwall.len(), 1, "{cornwall:?}");
    let (name, xml) = &cornwall[0];
    assert!(
        name.starts_with("CPIS_NOTIFY_908_") && name.ends_with(".xml"),
        "{name}"
    );
    let path = dir.path().join("var/mailboxes/LA908/out").join(name);
    let out = xmllint("cpis-access-notification.xsd", &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One record access a child looked up (the second's two plans in one), each with its
    // look-up, and nothing else.
    assert!(
        xml.contains("<pertinentTotalReturnedRecords><value value=\"2\"/>"),
        "{xml}"
    );
    assert_eq!(xml.matches("<pertinentCP-ISRecordAccess>").count(), 2);
    assert_eq!(xml.matches("<pertinentCP-ISNHSQuery>").count(), 2);
    assert_eq!(xml.matches("extension=\"9997770013\"").count(), 1);
    assert_eq!(xml.matches("extension=\"9997770005\"").count(), 1);
    assert!(!xml.contains(&herts));
    assert!(xml.contains("<effectiveTime value=\"20261121094200+0000\"/>"));
    assert!(xml.contains("extension=\"908-C-0002\""));
    // Who looked: the person and role as sent, their organisation as configured, through
    // the gateway's system.
    assert!(xml.contains("<originalText>Emergency Department Doctor</originalText>"));
    assert!(xml.contains("<name>Dr A &lt;Example&gt;</name>"));
    assert!(xml.contains("extension=\"RWG\"/><name>West Herts &amp; Watford</name>"));
    assert!(xml.contains("<id root=\"1.2.826.0.1285.0.2.0.107\" extension=\"918273645501\"/>"));
    // The upload the records came in, and the LA it goes to.
    assert_eq!(
        xml.matches("<referredToLAUploadFile><value extension=\"118\"/>")
            .count(),
        2
    );
    assert!(xml.contains("extension=\"908\"/><name>Cornwall</name>"));
    // An LA that did not ask keeps the CSV.
    let herts_files = notifications(dir.path(), "LA919");
    assert_eq!(herts_files.len(), 1);
    assert!(herts_files[0].0.ends_with(".csv"));
    assert!(herts_files[0].1.contains(&herts));
}

#[test]
fn cp_iss_notification_needs_the_gateways_system_id() {
    let dir = temp();
    fs::write(
        dir.path().join("config.toml"),
        "[gateway]\nroot = \"var\"\nlocal_authorities = [\"908\"]\n[[la]]\ncode = \"908\"\nnotify_format = \"cpis\"\n",
    )
    .unwrap();
    let out = gateway(dir.path()).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway.asid"));
    for (la, asid, says) in [
        (
            "919",
            "918273645501",
            "la[0].code: 919 is not in gateway.local_authorities",
        ),
        ("908", "12345", "gateway.asid: \"12345\" is not"),
    ] {
        fs::write(
            dir.path().join("config.toml"),
            format!("[gateway]\nroot = \"var\"\nlocal_authorities = [\"908\"]\nasid = \"{asid}\"\n[[la]]\ncode = \"{la}\"\nnotify_format = \"cpis\"\n"),
        )
        .unwrap();
        let out = gateway(dir.path()).arg("init").output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
