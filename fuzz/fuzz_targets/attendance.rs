//! Any bytes through the attendance reader and row rules, and the control-file parser: no
//! panic, no hang.
#![no_main]

use cpis_gateway::core::attendance::{read_attendance, AttendanceRules};
use cpis_gateway::core::control::parse_control;
use cpis_gateway::core::ids::OdsCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_control(data);
    let Some(owner) = OdsCode::parse("RWG") else { return };
    let file_time = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let rules = AttendanceRules { owner, file_time };
    let mut problems = Vec::new();
    let _ = read_attendance(data, |row, fields| {
        let _ = rules.check(row, fields, &mut problems)?;
        problems.clear();
        Ok(())
    });
});
