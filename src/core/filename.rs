//! Inbound file names (SPEC 2.1 and 4.1): what kind of file, whose, and when it was made.

use super::date::parse_compact_utc;
use super::ids::{LaCode, OdsCode};
use chrono::{DateTime, Utc};

/// The format of an LA extract, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractFormat {
    Csv,
    Xml,
    /// CP-IS's own upload (HL7 v3 `File`), named `CPIS_UPLOAD_…`. (An `.xml` extract is
    /// read as one too when its root says so.)
    Upload,
}

/// What an inbound file claims to be, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundKind {
    Extract { la: LaCode, format: ExtractFormat },
    Attendance { ods: OdsCode },
}

/// A parsed inbound file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundName {
    /// The name without its extension, e.g. `CPIS_EXTRACT_919_20261121T020000`.
    pub stem: String,
    pub kind: InboundKind,
    /// The extraction (or sending) time stated in the name, UTC.
    pub at: DateTime<Utc>,
}

/// Parses a bare file name (no folders). The error is a sentence for the sender.
pub fn parse_inbound_name(name: &str) -> Result<InboundName, String> {
    if name.is_empty()
        || name.contains(['/', '\\'])
        || name.contains("..")
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "{:?} is not a plain file name: names may not contain path separators, '..' or control characters",
            name.escape_debug().to_string()
        ));
    }
    let expected = "expected CPIS_EXTRACT_<la_code>_<YYYYMMDDTHHMMSS>.csv|.xml, CPIS_UPLOAD_<la_code>_<YYYYMMDDTHHMMSS>.xml or CPIS_ATTEND_<ods_code>_<YYYYMMDDTHHMMSS>.csv";
    let (stem, ext) = name
        .rsplit_once('.')
        .ok_or_else(|| format!("{name:?} has no extension: {expected}"))?;
    let parts: Vec<&str> = stem.split('_').collect();
    let [prefix, kind, owner, stamp] = parts[..] else {
        return Err(format!(
            "{name:?} does not follow the naming rule: {expected}"
        ));
    };
    if prefix != "CPIS" {
        return Err(format!("{name:?} does not start with CPIS_: {expected}"));
    }
    let at = parse_compact_utc(stamp).ok_or_else(|| {
        format!("{name:?}: {stamp:?} is not a real UTC time written YYYYMMDDTHHMMSS")
    })?;
    let kind = match (kind, ext) {
        ("EXTRACT", "csv" | "xml") => {
            let la = LaCode::parse(owner).map_err(|e| format!("{name:?}: {e}"))?;
            let format = if ext == "csv" {
                ExtractFormat::Csv
            } else {
                ExtractFormat::Xml
            };
            InboundKind::Extract { la, format }
        }
        // CP-IS's own upload (HL7 v3): an extract in XML whose root says which it is.
        ("UPLOAD", "xml") => InboundKind::Extract {
            la: LaCode::parse(owner).map_err(|e| format!("{name:?}: {e}"))?,
            format: ExtractFormat::Upload,
        },
        ("UPLOAD", _) => {
            return Err(format!(
                "{name:?}: a CP-IS upload must be a .xml file, not .{ext}"
            ))
        }
        ("EXTRACT", _) => {
            return Err(format!(
                "{name:?}: an extract must be a .csv or .xml file, not .{ext}"
            ))
        }
        ("ATTEND", "csv") => {
            let ods = OdsCode::parse(owner)
                .ok_or_else(|| format!("{name:?}: {owner:?} is not an ODS code"))?;
            InboundKind::Attendance { ods }
        }
        ("ATTEND", _) => {
            return Err(format!(
                "{name:?}: an attendance file must be a .csv file, not .{ext}"
            ))
        }
        _ => {
            return Err(format!(
                "{name:?} is not a file the gateway takes: {expected}"
            ))
        }
    };
    Ok(InboundName {
        stem: stem.to_owned(),
        kind,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_and_attendance_names() {
        let n = parse_inbound_name("CPIS_EXTRACT_919_20261121T020000.csv").unwrap();
        assert_eq!(n.stem, "CPIS_EXTRACT_919_20261121T020000");
        assert_eq!(n.at.to_rfc3339(), "2026-11-21T02:00:00+00:00");
        assert!(matches!(
            n.kind,
            InboundKind::Extract { format: ExtractFormat::Csv, la } if la.to_string() == "919"
        ));
        let x = parse_inbound_name("CPIS_EXTRACT_202_20261121T020000.xml").unwrap();
        assert!(matches!(
            x.kind,
            InboundKind::Extract {
                format: ExtractFormat::Xml,
                ..
            }
        ));
        let a = parse_inbound_name("CPIS_ATTEND_RWG_20261121T101500.csv").unwrap();
        assert!(matches!(a.kind, InboundKind::Attendance { ref ods } if ods.as_str() == "RWG"));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "CPIS_EXTRACT_919_20261121T020000",
            "CPIS_EXTRACT_919_20261121T020000.txt",
            "CPIS_EXTRACT_999_20261121T020000.csv",
            "CPIS_EXTRACT_919_20261321T020000.csv",
            "CPIS_EXTRACT_919_2026-11-21.csv",
            "cpis_extract_919_20261121T020000.csv",
            "CPIS_EXTRACT_919_20261121T020000.csv.part",
            "../CPIS_EXTRACT_919_20261121T020000.csv",
            "CPIS_EXTRACT_919_20261121T020000\n.csv",
            "CPIS_ATTEND_RWG_20261121T101500.xml",
            "CPIS_ACK_919_20261121T020000.json",
        ] {
            assert!(parse_inbound_name(bad).is_err(), "{bad:?}");
        }
    }
}
