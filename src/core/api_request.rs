//! What a FHIR API request asks and who asks it (issue 24), read from its query string and
//! headers: the child's NHS number, the person looking and their setting, whether the
//! access is unscheduled, its trace id. Each refusal comes with its Spine code and a
//! sentence; none depends on the child.

use super::attendance::{names_someone, Setting};
use super::fhir::{SpineError, NHS_NUMBER_SYSTEM};
use super::nhs::NhsNumber;

/// A refusal: its Spine code and what to change.
pub type Refusal = (SpineError, String);

/// The child a search is for: `patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}`,
/// once, and nothing else but `_format`.
pub fn patient(query: Option<&str>) -> Result<NhsNumber, Refusal> {
    let invalid = |why: String| (SpineError::InvalidSearchData, why);
    let mut found = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "patient:identifier" if found.is_none() => found = Some(value.into_owned()),
            "patient:identifier" => {
                return Err(invalid("patient:identifier is given more than once".into()))
            }
            "_format" => {}
            other => {
                return Err(invalid(format!(
                    "the search parameter {:?} is not supported: search by patient:identifier only",
                    shown(other)
                )))
            }
        }
    }
    let value = found.ok_or_else(|| {
        invalid(format!(
            "the search needs patient:identifier={NHS_NUMBER_SYSTEM}|<NHS number>"
        ))
    })?;
    let nhs = value
        .strip_prefix(NHS_NUMBER_SYSTEM)
        .and_then(|rest| rest.strip_prefix('|'))
        .ok_or_else(|| {
            invalid(format!(
                "patient:identifier must be {NHS_NUMBER_SYSTEM}|<NHS number>"
            ))
        })?;
    // Ten digits exactly: the API takes no spaced form.
    if nhs.len() != 10 || !nhs.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("Invalid NHS number: it must be 10 digits".into()));
    }
    NhsNumber::parse(nhs)
        .map_err(|_| invalid("Invalid NHS number: its check digit is wrong".into()))
}

/// Who looks, from the request's headers (`get` gives a header's value, if it is there
/// once and readable): the person, their role, their care setting, and whether the access
/// is unscheduled (`IsUnscheduledAccessEvent`, true when missing).
pub struct Looker {
    pub user: String,
    pub role: String,
    pub setting: Setting,
    pub unscheduled: bool,
}

/// The headers that say who looks and how.
pub const LOOKER_HEADERS: [&str; 4] = [
    "NHSD-End-User-Name",
    "NHSD-End-User-Role",
    "NHSD-Care-Setting",
    "IsUnscheduledAccessEvent",
];

pub fn looker(get: &dyn Fn(&str) -> Option<String>) -> Result<Looker, Refusal> {
    let failed = |why: String| (SpineError::PreconditionFailed, why);
    let person = |header: &str| {
        let value = get(header).unwrap_or_default();
        if value.len() > 256 || !names_someone(&value) {
            Err(failed(format!(
                "the {header} header is missing or names no one (at most 256 bytes, with a letter or digit): every look-up is logged against the person who made it"
            )))
        } else {
            Ok(value)
        }
    };
    let user = person("NHSD-End-User-Name")?;
    let role = person("NHSD-End-User-Role")?;
    let setting = get("NHSD-Care-Setting")
        .as_deref()
        .and_then(Setting::parse)
        .ok_or_else(|| {
            failed("the NHSD-Care-Setting header is missing or not a care-setting code (ED, UTC, ... GP, ...)".into())
        })?;
    let unscheduled = match get("IsUnscheduledAccessEvent").as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => {
            return Err(failed(
                "the IsUnscheduledAccessEvent header must be true or false".into(),
            ))
        }
    };
    Ok(Looker {
        user,
        role,
        setting,
        unscheduled,
    })
}

/// The request's trace id if it is a usable one: 1 to 64 printable ASCII characters.
pub fn trace_id(value: Option<&str>) -> Option<String> {
    value
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// Whether the client takes FHIR JSON: its `Accept` (absent, or naming FHIR JSON, JSON or
/// anything) and its `_format` (absent, `json`, or a JSON media type).
pub fn takes_fhir_json(accept: Option<&str>, query: Option<&str>) -> bool {
    let json = |media: &str| {
        let media = media.split(';').next().unwrap_or("").trim();
        matches!(
            media.to_ascii_lowercase().as_str(),
            "application/fhir+json" | "application/json" | "application/*" | "*/*" | "json"
        )
    };
    let accept_ok = accept.is_none_or(|a| a.split(',').any(json));
    let format_ok = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "_format")
        .all(|(_, v)| json(&v));
    accept_ok && format_ok
}

/// The bearer token of an `Authorization` header.
pub fn bearer(value: Option<&str>) -> Option<&str> {
    let value = value?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// A value from outside, cut short and made printable for a message.
fn shown(text: &str) -> String {
    text.chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patient_is_one_nhs_number_in_nhs_englands_system() {
        let ok = "patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018";
        assert_eq!(patient(Some(ok)).unwrap().full(), "9990000018");
        let encoded = "patient%3Aidentifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9990000018&_format=json";
        assert_eq!(patient(Some(encoded)).unwrap().full(), "9990000018");
        for bad in [
            None,
            Some("patient:identifier=9990000018"),
            Some("patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9990000019"),
            Some("patient:identifier=https://fhir.nhs.uk/Id/nhs-number|999 000 0018"),
            Some("patient:identifier=https://fhir.nhs.uk/Id/nhs-number|99900000181"),
            Some(&format!("{ok}&{ok}")),
            Some(&format!("{ok}&name=x")),
        ] {
            assert_eq!(
                patient(bad).unwrap_err().0,
                SpineError::InvalidSearchData,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_looker_is_named_with_a_setting_and_an_access_kind() {
        let headers = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_string())
            }
        };
        let full = headers(&[
            ("NHSD-End-User-Name", "Dr A"),
            ("NHSD-End-User-Role", "ED Doctor"),
            ("NHSD-Care-Setting", "ED"),
        ]);
        let who = looker(&full).ok().unwrap();
        assert!(who.unscheduled && who.user == "Dr A" && who.setting.as_str() == "ED");
        let silent = headers(&[
            ("NHSD-End-User-Name", "Dr A"),
            ("NHSD-End-User-Role", "ED Doctor"),
            ("NHSD-Care-Setting", "ED"),
            ("IsUnscheduledAccessEvent", "false"),
        ]);
        assert!(!looker(&silent).ok().unwrap().unscheduled);
        for bad in [
            headers(&[("NHSD-End-User-Role", "x"), ("NHSD-Care-Setting", "ED")]),
            headers(&[
                ("NHSD-End-User-Name", "\u{200b}"),
                ("NHSD-End-User-Role", "x"),
                ("NHSD-Care-Setting", "ED"),
            ]),
            headers(&[
                ("NHSD-End-User-Name", "A"),
                ("NHSD-End-User-Role", "x"),
                ("NHSD-Care-Setting", "CLINIC"),
            ]),
            headers(&[
                ("NHSD-End-User-Name", "A"),
                ("NHSD-End-User-Role", "x"),
                ("NHSD-Care-Setting", "ED"),
                ("IsUnscheduledAccessEvent", "yes"),
            ]),
        ] {
            assert_eq!(
                looker(&bad).err().unwrap().0,
                SpineError::PreconditionFailed
            );
        }
    }

    #[test]
    fn formats_tokens_and_trace_ids() {
        assert!(takes_fhir_json(None, None));
        assert!(takes_fhir_json(
            Some("application/fhir+json; charset=utf-8"),
            None
        ));
        assert!(takes_fhir_json(
            Some("text/html, */*;q=0.1"),
            Some("_format=json")
        ));
        assert!(!takes_fhir_json(Some("application/fhir+xml"), None));
        assert!(!takes_fhir_json(None, Some("_format=xml")));
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(trace_id(Some("a-b")), Some("a-b".into()));
        assert_eq!(trace_id(Some("a b")), None);
        assert_eq!(trace_id(Some(&"x".repeat(65))), None);
    }
}
