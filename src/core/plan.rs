//! The three categories of protected record (SPEC 1).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A plan type. The NHS number of a `Ucpp` record belongs to the pregnant woman.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PlanType {
    #[serde(rename = "CPP")]
    Cpp,
    #[serde(rename = "LAC")]
    Lac,
    #[serde(rename = "UCPP")]
    Ucpp,
}

impl PlanType {
    pub const ALL: [PlanType; 3] = [PlanType::Cpp, PlanType::Lac, PlanType::Ucpp];

    /// Case-insensitive: `cpp`, `Lac` and `UCPP` are all accepted.
    pub fn parse(text: &str) -> Option<PlanType> {
        match text.len() {
            3 if text.eq_ignore_ascii_case("CPP") => Some(PlanType::Cpp),
            3 if text.eq_ignore_ascii_case("LAC") => Some(PlanType::Lac),
            4 if text.eq_ignore_ascii_case("UCPP") => Some(PlanType::Ucpp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PlanType::Cpp => "CPP",
            PlanType::Lac => "LAC",
            PlanType::Ucpp => "UCPP",
        }
    }

    /// A small stable number, for compact keys.
    pub fn index(self) -> u64 {
        self as u64
    }
}

impl fmt::Display for PlanType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_nothing_else() {
        assert_eq!(PlanType::parse("cpp"), Some(PlanType::Cpp));
        assert_eq!(PlanType::parse("Lac"), Some(PlanType::Lac));
        assert_eq!(PlanType::parse("UCPP"), Some(PlanType::Ucpp));
        for bad in ["", "CP", "CPPP", "ucp", "C P P", "LAC "] {
            assert_eq!(PlanType::parse(bad), None, "{bad:?}");
        }
    }
}
