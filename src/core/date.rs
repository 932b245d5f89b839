//! Strict ISO calendar dates (`YYYY-MM-DD`) and the compact timestamps of file names.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Parses exactly `YYYY-MM-DD` as a real calendar date (no 2026-02-30, no 2026-2-3).
pub fn parse_iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
}

/// Parses the `YYYYMMDDTHHMMSS` stamp of a file name as a UTC time.
pub fn parse_compact_utc(text: &str) -> Option<DateTime<Utc>> {
    if text.len() != 15 || !text.is_ascii() {
        return None;
    }
    NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

/// Formats a UTC time as a file-name stamp.
pub fn format_compact_utc(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_calendar_dates_only() {
        let ok = |s: &str| parse_iso_date(s).map(|d| d.to_string());
        assert_eq!(ok("2024-02-29").as_deref(), Some("2024-02-29"));
        assert_eq!(ok("2026-11-21").as_deref(), Some("2026-11-21"));
        for bad in [
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "2026-1-01",
            "21/11/2026",
            "2026-11-21T00:00",
            "",
            "２026-01-01",
            "+026-01-01",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn compact_stamps() {
        let t = parse_compact_utc("20261121T020000").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-21T02:00:00+00:00");
        assert_eq!(format_compact_utc(t), "20261121T020000");
        assert_eq!(parse_compact_utc("20261321T020000"), None);
        assert_eq!(parse_compact_utc("20261121 020000"), None);
        assert_eq!(parse_compact_utc("2026112T1020000"), None);
    }
}
