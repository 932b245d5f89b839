//! Hints for the mistakes spreadsheets make with extracts, appended to the message a data
//! officer reads: a date in the British order, a phone number that lost its leading 0, a
//! file saved with semicolons or in another encoding.

use chrono::NaiveDate;

/// `21/11/2026`, `21-11-2026`, `21.11.2026`, `2026/11/21` → "write 2026-11-21".
pub fn date(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(['/', '-', '.']).collect();
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    let num = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|_| !s.is_empty() && s.len() <= 4)
    };
    let (a, b, c) = (num(a)?, num(b)?, num(c)?);
    let date = if a > 31 {
        NaiveDate::from_ymd_opt(a as i32, b, c)
    } else {
        NaiveDate::from_ymd_opt(c as i32, b, a).filter(|_| c >= 1900)
    }?;
    Some(format!(": write {}", date.format("%Y-%m-%d")))
}

/// A number of 9 or 10 digits not starting 0: a spreadsheet kept it as a number.
pub fn phone(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let plausible = matches!(digits.len(), 9 | 10)
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    plausible.then(|| {
        format!(": it looks as if a spreadsheet dropped the leading 0: write 0{digits}, and keep the column as text")
    })
}

/// A header that is one field holding semicolons: the file was saved with `;` separators.
pub fn semicolons(header: &[&str]) -> Option<&'static str> {
    (header.len() == 1 && header[0].contains(';')).then_some(
        "the file is separated by semicolons: save it as CSV with commas (in Excel: CSV UTF-8 (Comma delimited))",
    )
}

/// What encoding a file that is not UTF-8 probably is, from its first bytes and the first
/// bad byte: UTF-16 (a BOM, or NULs between letters) or Windows-1252.
pub fn encoding(start: &[u8], bad: u8) -> &'static str {
    match start {
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] => "UTF-16",
        [a, 0, ..] | [0, a, ..] if a.is_ascii() => "UTF-16",
        _ if bad >= 0x80 => "Windows-1252 (or Latin-1)",
        _ => "not text",
    }
}

/// Line (1-based) and character (1-based) of byte `offset` in `bytes`.
pub fn line_and_char(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let chars = String::from_utf8_lossy(&before[start..]).chars().count();
    (line, chars + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn british_dates_get_their_iso_form() {
        for (text, want) in [
            ("21/11/2026", Some(": write 2026-11-21")),
            ("1/2/2026", Some(": write 2026-02-01")),
            ("21.11.2026", Some(": write 2026-11-21")),
            ("2026/11/21", Some(": write 2026-11-21")),
            ("31/02/2026", None),
            ("2026-13-01", None),
            ("soon", None),
        ] {
            assert_eq!(date(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn a_lost_leading_zero_is_named() {
        assert!(phone("1632 960001").unwrap().contains("write 01632960001"));
        assert!(phone("207946000").unwrap().contains("write 0207946000"));
        assert!(phone("01632 96000").is_none());
        assert!(phone("abc").is_none());
    }

    #[test]
    fn encodings_are_guessed() {
        assert_eq!(encoding(&[0xFF, 0xFE, b'n', 0], 0xFF), "UTF-16");
        assert_eq!(encoding(b"n\0h\0", 0), "UTF-16");
        assert_eq!(encoding(b"nhs", 0xE9), "Windows-1252 (or Latin-1)");
        assert_eq!(line_and_char("ab\ncdé".as_bytes(), 6), (2, 4));
        assert!(semicolons(&["nhs_number;plan_type"]).is_some());
    }
}
