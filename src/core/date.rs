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

/// A date's text as its `Display` writes it (`YYYY-MM-DD`), without the formatting
/// machinery or an allocation: for per-row loops (record fingerprints, binding millions of
/// dates into the store).
#[derive(Clone, Copy)]
pub struct IsoDate {
    text: [u8; 16],
    len: u8,
}

impl IsoDate {
    pub fn new(date: NaiveDate) -> IsoDate {
        use chrono::Datelike;
        let mut text = [0u8; 16];
        let year = date.year();
        if !(0..=9999).contains(&year) {
            // Signed, wider years (chrono's own text, at most 13 bytes).
            let shown = date.to_string();
            text[..shown.len()].copy_from_slice(shown.as_bytes());
            return IsoDate {
                text,
                len: shown.len() as u8,
            };
        }
        let digits = |n: u32, into: &mut [u8]| {
            let mut n = n;
            for b in into.iter_mut().rev() {
                *b = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        digits(year as u32, &mut text[0..4]);
        text[4] = b'-';
        digits(date.month(), &mut text[5..7]);
        text[7] = b'-';
        digits(date.day(), &mut text[8..10]);
        IsoDate { text, len: 10 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
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
    fn a_date_is_written_as_its_display_writes_it() {
        let days = [
            NaiveDate::MIN,
            NaiveDate::from_ymd_opt(-1, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(0, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(7, 3, 9).unwrap(),
            NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(10000, 1, 1).unwrap(),
            NaiveDate::MAX,
        ];
        let mut day = NaiveDate::from_ymd_opt(1890, 1, 1).unwrap();
        let every = std::iter::from_fn(|| {
            day = day.succ_opt()?;
            (chrono::Datelike::year(&day) < 2200).then_some(day)
        });
        for d in days.into_iter().chain(every) {
            assert_eq!(IsoDate::new(d).as_str(), d.to_string(), "{d}");
        }
    }

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
