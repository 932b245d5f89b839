//! NHS numbers: parsed once at the edge, valid by construction.

use super::codes::Code;
use std::fmt;

/// A valid NHS number (10 digits, Modulus 11 check digit correct).
///
/// `Display` masks it for logs (`943***5919`); use [`NhsNumber::full`] or
/// [`NhsNumber::spaced`] where the reader may see it in full.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber(u64);

/// The check digit that nine leading digits call for, or `None` when the weighted sum leaves
/// remainder 1 (check digit 10): no valid NHS number starts with those nine digits.
pub fn check_digit(first_nine: [u8; 9]) -> Option<u8> {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        digit => Some(digit as u8),
    }
}

impl NhsNumber {
    /// Parses `9990000018` or `999 000 0018` (surrounding spaces are the caller's to trim).
    pub fn parse(text: &str) -> Result<NhsNumber, Code> {
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(Code::NhsMissing);
        }
        let mut digits = [0u8; 10];
        let mut n = 0;
        match bytes.len() {
            10 => {}
            12 if bytes[3] == b' ' && bytes[7] == b' ' => {}
            _ => return Err(Code::NhsFormat),
        }
        for (i, &b) in bytes.iter().enumerate() {
            if bytes.len() == 12 && (i == 3 || i == 7) {
                continue;
            }
            if !b.is_ascii_digit() {
                return Err(Code::NhsFormat);
            }
            digits[n] = b - b'0';
            n += 1;
        }
        let mut first_nine = [0u8; 9];
        first_nine.copy_from_slice(&digits[..9]);
        if check_digit(first_nine) != Some(digits[9]) {
            return Err(Code::NhsCheckDigit);
        }
        Ok(NhsNumber(
            digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d)),
        ))
    }

    /// Builds a number from nine leading digits as an integer (0..=999_999_999), adding the
    /// check digit; `None` when no check digit exists for them.
    pub fn from_first_nine(value: u64) -> Option<NhsNumber> {
        if value > 999_999_999 {
            return None;
        }
        let mut first_nine = [0u8; 9];
        let mut rest = value;
        for slot in first_nine.iter_mut().rev() {
            *slot = (rest % 10) as u8;
            rest /= 10;
        }
        check_digit(first_nine).map(|d| NhsNumber(value * 10 + u64::from(d)))
    }

    /// The number as an integer, for compact keys.
    pub fn value(self) -> u64 {
        self.0
    }

    /// Rebuilds a number from [`NhsNumber::value`]; `None` if it is not a valid number.
    pub fn from_value(value: u64) -> Option<NhsNumber> {
        if value > 9_999_999_999 {
            return None;
        }
        // The check digit again, by arithmetic (the store reads millions of these).
        NhsNumber::from_first_nine(value / 10).filter(|n| n.0 == value)
    }

    /// All ten digits, e.g. `9990000018`.
    pub fn full(self) -> String {
        format!("{:010}", self.0)
    }

    /// The 3-3-4 form people read, e.g. `999 000 0018`.
    pub fn spaced(self) -> String {
        let s = self.full();
        format!("{} {} {}", &s[..3], &s[3..6], &s[6..])
    }
}

impl fmt::Display for NhsNumber {
    /// Masked: the first three and last four digits, as SPEC 9 asks for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.full();
        write!(f, "{}***{}", &s[..3], &s[6..])
    }
}

impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NhsNumber({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<&str, Code>) {
        assert_eq!(
            NhsNumber::parse(input).map(NhsNumber::full),
            expect.map(str::to_owned),
            "input {input:?}"
        );
    }

    #[test]
    fn parses_valid_and_spaced_numbers() {
        check("9990000018", Ok("9990000018"));
        check("999 000 0018", Ok("9990000018"));
        check("9434765919", Ok("9434765919"));
        check("943 476 5919", Ok("9434765919"));
    }

    #[test]
    fn rejects_bad_shapes() {
        check("", Err(Code::NhsMissing));
        check("999000001", Err(Code::NhsFormat));
        check("99900000188", Err(Code::NhsFormat));
        check("9990 000 018", Err(Code::NhsFormat));
        check("999-000-0018", Err(Code::NhsFormat));
        check("999  0000018", Err(Code::NhsFormat));
        check("9.99E+09", Err(Code::NhsFormat));
        check("99900000１8", Err(Code::NhsFormat));
    }

    #[test]
    fn check_digit_rules() {
        // 943476591: sum 299, remainder 2, check digit 9.
        check("9434765918", Err(Code::NhsCheckDigit));
        // remainder 0 gives check 11, written 0: 999000005 sums to 253 = 23*11.
        assert_eq!(check_digit([9, 9, 9, 0, 0, 0, 0, 0, 5]), Some(0));
        check("9990000050", Ok("9990000050"));
        // remainder 1 gives check 10: no valid number, whatever the last digit.
        let nine = (0..1000u64)
            .map(|i| 999_000_000 + i)
            .find(|&v| NhsNumber::from_first_nine(v).is_none())
            .expect("some nine digits have check digit 10");
        for last in 0..10 {
            check(&format!("{nine}{last}"), Err(Code::NhsCheckDigit));
        }
    }

    #[test]
    fn display_masks_and_value_round_trips() {
        let n = NhsNumber::parse("9434765919").unwrap();
        assert_eq!(n.to_string(), "943***5919");
        assert_eq!(format!("{n:?}"), "NhsNumber(943***5919)");
        assert_eq!(n.spaced(), "943 476 5919");
        assert_eq!(NhsNumber::from_value(n.value()), Some(n));
        assert_eq!(NhsNumber::from_value(9434765918), None);
    }

    #[test]
    fn from_value_agrees_with_parsing_the_digits() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let value = x % 12_000_000_000;
            let parsed = (value <= 9_999_999_999)
                .then(|| NhsNumber::parse(&format!("{value:010}")).ok())
                .flatten();
            assert_eq!(NhsNumber::from_value(value), parsed, "{value}");
        }
        for value in [0, 10, 9_999_999_999, 10_000_000_000, u64::MAX] {
            let parsed = NhsNumber::parse(&format!("{value:010}")).ok();
            assert_eq!(NhsNumber::from_value(value), parsed, "{value}");
        }
    }
}
