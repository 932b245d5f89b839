//! Any bytes through the CSV extract reader and the row validator: no panic, no hang.
#![no_main]

use cpis_gateway::core::extract::csv::CsvRows;
use cpis_gateway::core::extract::RowSource;
use cpis_gateway::core::ids::LaCode;
use cpis_gateway::core::validate::ExtractRules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(la) = LaCode::parse("919") else { return };
    let at = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let Ok(mut rows) = CsvRows::new(data) else { return };
    let rules = ExtractRules::new(la, at, rows.dialect());
    let mut problems = Vec::new();
    while let Ok(Some(row)) = rows.next_row() {
        let _ = rules.check(&row, &mut problems);
        problems.clear();
    }
});
