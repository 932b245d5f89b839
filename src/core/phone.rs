//! UK phone numbers as the LA's duty and office lines (SPEC 2.2).

use super::codes::Code;
use std::fmt;

/// A UK phone number in national form (`0` then 9 or 10 digits), stored without spaces.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Phone {
    digits: [u8; 11],
    len: u8,
}

impl Phone {
    /// Accepts spaces anywhere and `+44` in place of the leading `0`.
    pub fn parse(text: &str) -> Result<Phone, Code> {
        if text.is_empty() {
            return Err(Code::PhoneMissing);
        }
        let (mut digits, mut len, rest) = match text.strip_prefix("+44") {
            Some(rest) => ([b'0'; 11], 1usize, rest),
            None => ([0u8; 11], 0usize, text),
        };
        for &b in rest.as_bytes() {
            match b {
                b' ' => {}
                b'0'..=b'9' if len < 11 => {
                    digits[len] = b;
                    len += 1;
                }
                _ => return Err(Code::PhoneFormat),
            }
        }
        if len < 10 || digits[0] != b'0' || (text.starts_with("+44") && digits[1] == b'0') {
            return Err(Code::PhoneFormat);
        }
        Ok(Phone {
            digits,
            len: len as u8,
        })
    }

    /// The digits in national form, e.g. `01632960001`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<&str, Code>) {
        let got = Phone::parse(input);
        assert_eq!(
            got.as_ref().map(Phone::as_str).map_err(|c| *c),
            expect,
            "input {input:?}"
        );
    }

    #[test]
    fn national_and_international_forms() {
        check("01632 960001", Ok("01632960001"));
        check("01632960001", Ok("01632960001"));
        check("+44 1632 960001", Ok("01632960001"));
        check("+447700900123", Ok("07700900123"));
        check("0207 946 0000", Ok("02079460000"));
        check("0800 123456", Ok("0800123456"));
    }

    #[test]
    fn rejects_what_is_not_a_uk_number() {
        check("", Err(Code::PhoneMissing));
        check("1632 960001", Err(Code::PhoneFormat));
        check("01632 9600", Err(Code::PhoneFormat));
        check("01632 9600011", Err(Code::PhoneFormat));
        check("01632-960001", Err(Code::PhoneFormat));
        check("+44 01632 960001", Err(Code::PhoneFormat));
        check("+33 1 23 45 67 89", Err(Code::PhoneFormat));
        check("ext 123", Err(Code::PhoneFormat));
    }
}
