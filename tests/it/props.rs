//! Property tests over the generator and the checker (in-process, through the library):
//! any file the generator makes valid validates clean, and any single fault it injects is
//! found with the right code at the right row.

use cpis_gateway::config::Config;
use cpis_gateway::core::filename::ExtractFormat;
use cpis_gateway::core::ids::{local_authorities, LaCode};
use cpis_gateway::core::synth::{write_extract, ExtractSpec, Fault};
use cpis_gateway::pipeline::check::{check_file, Keep};
use cpis_gateway::sys::clock::FixedClock;
use proptest::prelude::*;
use std::path::Path;

fn check(
    spec: &ExtractSpec,
) -> (
    cpis_gateway::core::synth::Manifest,
    cpis_gateway::core::report::FileReport,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    let manifest = write_extract(spec, &mut bytes).unwrap();
    let path = dir.path().join(&manifest.file);
    std::fs::write(&path, bytes).unwrap();
    let config = Config::parse("", Path::new("/nowhere"), "test").unwrap();
    let clock = FixedClock("2026-11-22T09:00:00Z".parse().unwrap());
    let report = check_file(&path, None, &config, &clock, Keep::default())
        .unwrap()
        .report;
    (manifest, report)
}

fn spec_strategy() -> impl Strategy<Value = ExtractSpec> {
    (
        0..local_authorities().len(),
        1u64..300,
        any::<u64>(),
        prop::bool::ANY,
        prop::bool::ANY,
        prop::bool::ANY,
        0u64..1_000_000,
        1_700_000_000i64..1_800_000_000,
    )
        .prop_map(
            |(la, rows, seed, xml, bom, crlf, offset, secs)| ExtractSpec {
                la: local_authorities()[la].code,
                rows,
                seed,
                extracted_at: chrono::DateTime::from_timestamp(secs, 0).unwrap(),
                format: if xml {
                    ExtractFormat::Xml
                } else {
                    ExtractFormat::Csv
                },
                faults: Vec::new(),
                wide: false,
                bom,
                crlf,
                offset,
                day: 0,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn generated_valid_files_validate_clean(spec in spec_strategy()) {
        let (_, report) = check(&spec);
        prop_assert!(report.file_errors.is_empty(), "{:?}", report.file_errors);
        prop_assert!(report.row_errors.is_empty(), "{:?}", report.row_errors);
        prop_assert_eq!(report.rows, spec.rows);
    }

    #[test]
    fn a_single_injected_fault_is_found(mut spec in spec_strategy(), fault in prop::sample::select(Fault::ALL.to_vec())) {
        prop_assume!(fault != Fault::Doctype || spec.format == ExtractFormat::Xml);
        prop_assume!(spec.rows >= 10, "a duplicate in fewer rows trips ERROR_RATE");
        spec.faults = vec![(fault, 1)];
        // Some faults need a row to carry them (EDD_PASSED a UCPP row): skip specs without.
        prop_assume!(write_extract(&spec, &mut Vec::new()).is_ok());
        let (manifest, report) = check(&spec);
        if let Some(code) = manifest.file_error {
            prop_assert_eq!(report.file_errors.iter().map(|p| p.code).collect::<Vec<_>>(), vec![code]);
        } else {
            prop_assert!(report.file_errors.is_empty(), "{:?}", report.file_errors);
            let got: Vec<(u64, _)> = report.row_errors.iter().map(|p| (p.row, p.code)).collect();
            prop_assert_eq!(got, manifest.expected);
        }
    }
}

#[test]
fn la_codes_of_the_strategy_parse() {
    assert!(LaCode::parse(&local_authorities()[0].code.to_string()).is_ok());
}

// The MESH rules read what a server (or anything between) sends: none may panic, and the
// chunks of a message always cover it exactly once.
proptest! {
    #[test]
    fn mesh_rules_take_any_input(text in "\\PC{0,300}", len in 0u64..10_000_000, size in 0u64..5_000_000) {
        use cpis_gateway::core::mesh::{chunk_range, chunks, excerpt, uses_tls, workflow};
        let _ = uses_tls(&text);
        let _ = workflow(&text);
        if let Some((n, total)) = chunk_range(&text) {
            prop_assert!(1 <= n && n <= total);
        }
        prop_assert!(excerpt(&text).chars().count() <= 200);
        prop_assert!(!excerpt(&text).contains('\n'));
        let parts = chunks(len, size);
        prop_assert!(!parts.is_empty());
        prop_assert_eq!(parts[0].start, 0);
        prop_assert_eq!(parts.last().unwrap().end, len);
        for pair in parts.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start);
        }
    }
}
