//! Identifiers of the parties: LA codes (with the built-in reference list of the 153 English
//! LAs), ODS codes of health organisations, and mailbox ids.

use serde::{Serialize, Serializer};
use std::fmt;
use std::sync::OnceLock;

/// The reference list, built in from `data/local_authorities.csv`.
const REFERENCE_CSV: &str = include_str!("../../data/local_authorities.csv");

/// One English LA with children's services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAuthority {
    pub code: LaCode,
    pub name: String,
    pub gss_code: String,
    pub region_gss_code: String,
    pub entity_code: String,
}

/// The 153 English LAs, in the order of the source file (by LA number).
pub fn local_authorities() -> &'static [LocalAuthority] {
    static LIST: OnceLock<Vec<LocalAuthority>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut reader = csv::Reader::from_reader(REFERENCE_CSV.as_bytes());
        reader
            .records()
            .map(|record| {
                // The file is ours and checked by a test: a bad line is a build mistake.
                let r = record.expect("built-in LA list is valid CSV");
                let code: u16 = r[0].parse().expect("built-in LA code is a number");
                LocalAuthority {
                    code: LaCode(code),
                    name: r[1].to_owned(),
                    gss_code: r[2].to_owned(),
                    region_gss_code: r[3].to_owned(),
                    entity_code: r[4].to_owned(),
                }
            })
            .collect()
    })
}

/// A DfE 3-digit LA number of a known English LA.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaCode(u16);

/// Why a text is not an LA code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaCodeError {
    #[error("{0:?} is not a 3-digit LA number")]
    Format(String),
    #[error("{0} is not the LA number of an English LA with children's services")]
    Unknown(String),
}

impl LaCode {
    pub fn parse(text: &str) -> Result<LaCode, LaCodeError> {
        if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LaCodeError::Format(text.to_owned()));
        }
        let code: u16 = text.parse().map_err(|_| LaCodeError::Format(text.into()))?;
        local_authorities()
            .iter()
            .find(|la| la.code.0 == code)
            .map(|la| la.code)
            .ok_or_else(|| LaCodeError::Unknown(text.to_owned()))
    }

    /// The reference entry for this code (every `LaCode` has one).
    pub fn authority(self) -> &'static LocalAuthority {
        local_authorities()
            .iter()
            .find(|la| la.code == self)
            .expect("an LaCode is only made from the reference list")
    }

    pub fn name(self) -> &'static str {
        &self.authority().name
    }

    pub fn as_u16(self) -> u16 {
        self.0
    }
}

impl fmt::Display for LaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

impl fmt::Debug for LaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LaCode({:03})", self.0)
    }
}

impl Serialize for LaCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An ODS organisation code (e.g. `RWG`, `Y01234`): 3 to 10 upper-case letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OdsCode(String);

impl OdsCode {
    pub fn parse(text: &str) -> Option<OdsCode> {
        let ok = (3..=10).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && !text.starts_with("LA");
        ok.then(|| OdsCode(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mailbox, named by its owner: `LA919` for an LA, the ODS code for a health organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MailboxId {
    La(LaCode),
    Health(OdsCode),
}

impl MailboxId {
    pub fn parse(text: &str) -> Result<MailboxId, String> {
        if let Some(code) = text.strip_prefix("LA") {
            return LaCode::parse(code)
                .map(MailboxId::La)
                .map_err(|e| format!("mailbox {text:?}: {e}"));
        }
        OdsCode::parse(text).map(MailboxId::Health).ok_or_else(|| {
            format!("mailbox {text:?} is neither LA<la_code> nor an ODS code (3 to 10 upper-case letters and digits)")
        })
    }
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailboxId::La(code) => write!(f, "LA{code}"),
            MailboxId::Health(ods) => write!(f, "{ods}"),
        }
    }
}

impl Serialize for MailboxId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_list_has_the_153_las() {
        let list = local_authorities();
        assert_eq!(list.len(), 153);
        let codes: std::collections::HashSet<_> = list.iter().map(|la| la.code).collect();
        assert_eq!(codes.len(), 153, "codes are unique");
        assert_eq!(LaCode::parse("919").unwrap().name(), "Hertfordshire");
        assert_eq!(LaCode::parse("801").unwrap().name(), "Bristol, City of");
        assert!(LaCode::parse("942").is_ok() && LaCode::parse("943").is_ok());
    }

    #[test]
    fn la_codes_must_be_known() {
        assert!(matches!(LaCode::parse("999"), Err(LaCodeError::Unknown(_))));
        assert!(matches!(LaCode::parse("91"), Err(LaCodeError::Format(_))));
        assert!(matches!(LaCode::parse("９19"), Err(LaCodeError::Format(_))));
        assert_eq!(LaCode::parse("202").unwrap().to_string(), "202");
    }

    #[test]
    fn mailbox_ids() {
        assert_eq!(MailboxId::parse("LA919").unwrap().to_string(), "LA919");
        assert_eq!(MailboxId::parse("RWG").unwrap().to_string(), "RWG");
        assert!(MailboxId::parse("LA999").is_err());
        assert!(MailboxId::parse("rwg").is_err());
        assert!(MailboxId::parse("../x").is_err());
    }
}
