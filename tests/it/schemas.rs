//! The shipped schemas agree with the product: JSON output validates against the JSON
//! Schema, the Table Schema lists the columns the reader knows, and the XML samples validate
//! against the XSD (with xmllint, which `.ci/run` installs).

use crate::helpers::*;
use cpis_gateway::core::extract::Column;
use serde_json::Value;
use std::fs;
use std::process::Command;

fn json_schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(
        &fs::read_to_string(repo().join("schemas/file-report.schema.json")).unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).expect("the schema itself is valid")
}

#[test]
fn validate_json_output_matches_the_json_schema() {
    let validator = json_schema();
    let dir = temp();
    let mut files: Vec<std::path::PathBuf> = fs::read_dir(samples().join("bad"))
        .unwrap()
        .map(|e| {
            fs::read_dir(e.unwrap().path())
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
        })
        .collect();
    files.push(samples().join("CPIS_EXTRACT_919_20261121T020000.csv"));
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let (_, reports) = validate_json(dir.path(), &[], &refs);
    assert_eq!(reports.len(), files.len());
    for r in &reports {
        let errors: Vec<String> = validator
            .iter_errors(r)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", r["file"]);
    }
    // And the schema is not vacuous: a report missing a field or with a bad code fails.
    let mut broken = reports[0].clone();
    broken["outcome"] = Value::from("fine");
    assert!(!validator.is_valid(&broken));
    broken = reports[0].clone();
    broken.as_object_mut().unwrap().remove("sha256");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn table_schema_lists_exactly_the_extract_columns() {
    let schema: Value = serde_json::from_str(
        &fs::read_to_string(repo().join("schemas/extract.tableschema.json")).unwrap(),
    )
    .unwrap();
    let fields = schema["fields"].as_array().unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    let ours: Vec<&str> = Column::ALL.iter().map(|c| c.csv_name()).collect();
    assert_eq!(names, ours);
    for (field, column) in fields.iter().zip(Column::ALL) {
        let required = field["constraints"]["required"].as_bool().unwrap_or(false);
        assert_eq!(required, column.required(), "{}", column.csv_name());
    }
}

/// `xmllint` checking `file` against `schema` (a file of `schemas/`).
pub(crate) fn xmllint(schema: &str, file: &std::path::Path) -> std::process::Output {
    Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(repo().join("schemas").join(schema))
        .arg(file)
        .output()
        .expect("xmllint is needed for this test: apt-get install libxml2-utils (.ci/run does)")
}

#[test]
fn xml_samples_validate_against_the_xsd() {
    let mut checked = 0;
    for entry in fs::read_dir(samples()).unwrap() {
        let path = entry.unwrap().path();
        let extract = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("CPIS_EXTRACT_"));
        if extract && path.extension().is_some_and(|e| e == "xml") {
            let out = xmllint("extract.xsd", &path);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2);
    // The XSD is not vacuous: the truncated-record sample still parses, but a bad plan type fails.
    let dir = temp();
    let bad = dir.path().join("bad.xml");
    let text = fs::read_to_string(samples().join("CPIS_EXTRACT_202_20261121T021500.xml")).unwrap();
    fs::write(&bad, text.replacen("type=\"", "type=\"X", 1)).unwrap();
    assert!(!xmllint("extract.xsd", &bad).status.success());
    // Phones as the gateway takes them: +44 in place of the 0, never both.
    let phone = |value: &str| {
        let file = dir.path().join("phone.xml");
        let with = regex_free_replace(&text, "edtPhone=\"", value);
        fs::write(&file, with).unwrap();
        xmllint("extract.xsd", &file).status.success()
    };
    assert!(phone("+44 1632 960001"));
    assert!(phone("01632 960001"));
    assert!(!phone("+44 01632 960001"));
    let table = fs::read_to_string(repo().join("schemas/extract.tableschema.json")).unwrap();
    assert!(table.contains(r#"0 *([0-9] *){9,10}|\\+44 *[1-9] *([0-9] *){8,9}"#));
}

/// `text` with the value of the first attribute starting `prefix` replaced by `value`.
fn regex_free_replace(text: &str, prefix: &str, value: &str) -> String {
    let start = text.find(prefix).expect("the attribute") + prefix.len();
    let end = start + text[start..].find('"').expect("its closing quote");
    format!("{}{value}{}", &text[..start], &text[end..])
}
