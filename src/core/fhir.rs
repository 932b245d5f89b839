//! FHIR R4 faces of what a look-up finds, as NHS England's CP-IS API draft shapes them
//! (issue 24): a `CareTeam` for each flag, an `AuditEvent` for each earlier presentation at
//! unscheduled care, each search's `searchset` `Bundle`, and the `OperationOutcome` of a
//! refusal with its Spine code. Pure: the look-up itself is the store's.

use super::matching::{Flag, Status};
use super::plan::PlanType;
use super::seen::PresentationView;
use serde_json::{json, Value};

/// The FHIR version the API speaks.
pub const FHIR_VERSION: &str = "4.0.1";
/// Patients are identified by NHS number.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// Health organisations are identified by ODS code.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// LAs are identified by their three-digit LA number (DfE and ONS use the same numbers). No
/// NHS naming system covers LA numbers, so the gateway names its own.
pub const LA_CODE_SYSTEM: &str = "urn:cpis-gateway:la-code";
/// SNOMED CT, which the England-ChildProtectionPlan value set draws from.
pub const SNOMED: &str = "http://snomed.info/sct";
/// The Spine's error codes, as NHS England's APIs give them.
pub const SPINE_ERROR_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode";
/// The care settings the gateway knows (SPEC 4.1's codes).
pub const SETTING_SYSTEM: &str = "urn:cpis-gateway:care-setting";

/// A plan type as SNOMED CT codes it (England-ChildProtectionPlan).
pub fn plan_coding(plan: PlanType) -> (&'static str, &'static str) {
    match plan {
        PlanType::Cpp => ("342191000000101", "Child protection plan"),
        PlanType::Lac => ("764841000000100", "Looked after child"),
        PlanType::Ucpp => ("818901000000100", "Unborn child protection plan"),
    }
}

/// The secret a server's resource ids are keyed with: an id is the same for the same parts
/// while the key lasts, and without the key says nothing of them (an id travels in URLs
/// and logs; an NHS number must not, and a plain hash of one can be reversed by trying
/// every number).
pub struct IdKey(pub [u8; 32]);

impl IdKey {
    fn id(&self, parts: &[&str]) -> String {
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(parts.join("|").as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// One flag as a `CareTeam`: the plan, its dates and status, the LA and its phones.
pub fn care_team(key: &IdKey, nhs_number: &str, flag: &Flag) -> Value {
    let (code, display) = plan_coding(flag.plan_type);
    let mut period = json!({ "start": flag.start_date.to_string() });
    if let Some(end) = flag.end_date {
        period["end"] = json!(end.to_string());
    }
    json!({
        "resourceType": "CareTeam",
        "id": key.id(&[&flag.la_code.to_string(), flag.plan_type.as_str(), nhs_number]),
        "status": match flag.status {
            Status::Open => "active",
            Status::Ended => "inactive",
        },
        "category": [{ "coding": [{ "system": SNOMED, "code": code, "display": display }] }],
        "name": flag.la_name,
        "subject": { "identifier": { "system": NHS_NUMBER_SYSTEM, "value": nhs_number } },
        "period": period,
        "managingOrganization": [{
            "identifier": { "system": LA_CODE_SYSTEM, "value": flag.la_code.to_string() },
            "display": flag.la_name,
        }],
        "telecom": [
            { "system": "phone", "value": flag.office_phone, "use": "work" },
            { "system": "phone", "value": flag.edt_phone, "use": "mobile" },
        ],
    })
}

/// One earlier presentation at unscheduled care as an `AuditEvent`: when, where and in
/// which setting (never who: another organisation's staff are not named).
pub fn audit_event(key: &IdKey, nhs_number: &str, seen: &PresentationView) -> Value {
    json!({
        "resourceType": "AuditEvent",
        "id": key.id(&[nhs_number, &seen.attended_at, &seen.org_ods, &seen.setting]),
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "action": "R",
        "recorded": seen.attended_at,
        "agent": [{
            "type": { "coding": [{ "system": SETTING_SYSTEM, "code": seen.setting }] },
            "who": {
                "identifier": { "system": ODS_SYSTEM, "value": seen.org_ods },
                "display": seen.org_name,
            },
            "requestor": true,
        }],
        "source": {
            "observer": {
                "identifier": { "system": ODS_SYSTEM, "value": seen.org_ods },
                "display": seen.org_name,
            },
        },
        "entity": [{
            "what": { "identifier": { "system": NHS_NUMBER_SYSTEM, "value": nhs_number } },
        }],
    })
}

/// A `searchset` Bundle of `resources`: `total` is the number of entries (no paging).
pub fn search_bundle(resources: Vec<Value>) -> Value {
    let total = resources.len();
    let entry: Vec<Value> = resources
        .into_iter()
        .map(|resource| json!({ "resource": resource, "search": { "mode": "match" } }))
        .collect();
    let mut bundle = json!({ "resourceType": "Bundle", "type": "searchset", "total": total });
    if !entry.is_empty() {
        bundle["entry"] = Value::Array(entry);
    }
    bundle
}

/// What the API serves: the two searches by `patient:identifier`, in FHIR JSON.
pub fn capability_statement() -> Value {
    let search = |kind: &str, what: &str| {
        json!({
            "type": kind,
            "interaction": [{ "code": "search-type" }],
            "searchParam": [{
                "name": "patient",
                "type": "reference",
                "documentation": format!("patient:identifier={NHS_NUMBER_SYSTEM}|<NHS number>: {what}"),
            }],
        })
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-06",
        "publisher": "cpis-gateway",
        "kind": "instance",
        "software": { "name": "cpis-gateway", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "Child Protection - Information Sharing, served by cpis-gateway" },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "resource": [
                search("CareTeam", "the child's plans open now or ended within 12 months"),
                search("AuditEvent", "the child's last 25 presentations at unscheduled care"),
            ],
        }],
    })
}

/// The Spine codes a refusal carries, with their HL7 issue type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpineError {
    /// A bad NHS number or search parameter (400).
    InvalidSearchData,
    /// A missing or invalid header (400).
    PreconditionFailed,
    /// No or unknown credentials (401, 403).
    AccessDenied,
    /// Another path (404).
    NotFound,
    /// Another method (405).
    NotSupported,
    /// Another format than FHIR JSON (406).
    NotAcceptable,
    /// The gateway cannot answer now (503).
    ServiceUnavailable,
}

impl SpineError {
    /// The Spine code and the HL7 issue type.
    pub fn codes(self) -> (&'static str, &'static str) {
        match self {
            SpineError::InvalidSearchData => ("INVALID_SEARCH_DATA", "invalid"),
            SpineError::PreconditionFailed => ("PRECONDITION_FAILED", "invalid"),
            SpineError::AccessDenied => ("ACCESS_DENIED", "forbidden"),
            SpineError::NotFound => ("RESOURCE_NOT_FOUND", "not-found"),
            SpineError::NotSupported => ("NOT_IMPLEMENTED", "not-supported"),
            SpineError::NotAcceptable => ("NOT_ACCEPTABLE", "not-supported"),
            SpineError::ServiceUnavailable => ("SERVICE_UNAVAILABLE", "transient"),
        }
    }
}

/// A refusal as an `OperationOutcome`; `diagnostics` says what to change.
pub fn operation_outcome(error: SpineError, diagnostics: &str) -> Value {
    let (code, issue) = error.codes();
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": issue,
            "details": { "coding": [{ "system": SPINE_ERROR_SYSTEM, "code": code }] },
            "diagnostics": diagnostics,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::LaCode;

    const KEY: IdKey = IdKey([7; 32]);

    fn flag(status: Status, end: Option<&str>) -> Flag {
        Flag {
            plan_type: PlanType::Ucpp,
            la_code: LaCode::parse("908").unwrap(),
            la_name: "Cornwall",
            edt_phone: "01632 960450".into(),
            office_phone: "01632 960451".into(),
            start_date: "2026-10-05".parse().unwrap(),
            end_date: end.map(|e| e.parse().unwrap()),
            status,
        }
    }

    /// The bodies HL7's FHIR R4 JSON Schema finds fault with, by index (its checker,
    /// `tests/fhir/check.js`, run with Node.js over the package `scripts/test.sh` installs).
    pub(crate) fn faulty(bodies: &[Value]) -> Vec<usize> {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<std::path::PathBuf> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let file = dir.path().join(format!("{i}.json"));
                std::fs::write(&file, body.to_string()).unwrap();
                file
            })
            .collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new("node")
            .arg(root.join("tests/fhir/check.js"))
            .args(&files)
            .output()
            .expect("Node.js: scripts/test.sh --deps-only installs it and the FHIR schema");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.code() == Some(0) || !said.is_empty(),
            "the checker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        files
            .iter()
            .enumerate()
            .filter(|(_, f)| said.contains(&format!("{}: ", f.display())))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn every_body_is_fhir_r4_as_hl7_defines_it() {
        let open = care_team(&KEY, "9997770048", &flag(Status::Open, None));
        let ended = care_team(&KEY, "9997770048", &flag(Status::Ended, Some("2026-11-01")));
        let seen = PresentationView {
            attended_at: "2026-11-21T09:42:00.000Z".into(),
            org_ods: "RWG".into(),
            org_name: "West Herts".into(),
            setting: "ED".into(),
        };
        // The checker is not a rubber stamp: a status CareTeam does not have is found.
        let mut wrong = care_team(&KEY, "9997770048", &flag(Status::Open, None));
        wrong["status"] = json!("flagged");
        let mut bodies = vec![
            search_bundle(vec![open, ended]),
            search_bundle(Vec::new()),
            search_bundle(vec![audit_event(&KEY, "9997770048", &seen)]),
            wrong,
            capability_statement(),
        ];
        for error in [
            SpineError::InvalidSearchData,
            SpineError::PreconditionFailed,
            SpineError::AccessDenied,
            SpineError::NotFound,
            SpineError::NotSupported,
            SpineError::NotAcceptable,
            SpineError::ServiceUnavailable,
        ] {
            bodies.push(operation_outcome(error, "what to change"));
        }
        assert_eq!(faulty(&bodies), [3]);
    }

    #[test]
    fn a_care_team_says_the_plan_its_la_and_how_to_reach_it() {
        let team = care_team(&KEY, "9997770048", &flag(Status::Ended, Some("2026-11-01")));
        assert_eq!(team["status"], "inactive");
        assert_eq!(team["category"][0]["coding"][0]["code"], "818901000000100");
        assert_eq!(team["category"][0]["coding"][0]["system"], SNOMED);
        assert_eq!(team["subject"]["identifier"]["value"], "9997770048");
        assert_eq!(team["subject"]["identifier"]["system"], NHS_NUMBER_SYSTEM);
        assert_eq!(team["period"]["end"], "2026-11-01");
        assert_eq!(
            team["managingOrganization"][0]["identifier"]["value"],
            "908"
        );
        assert_eq!(team["telecom"][0]["use"], "work");
        assert_eq!(team["telecom"][0]["value"], "01632 960451");
        assert_eq!(team["telecom"][1]["use"], "mobile");
        assert_eq!(team["telecom"][1]["value"], "01632 960450");
        assert!(
            care_team(&KEY, "9997770048", &flag(Status::Open, None))["period"]
                .get("end")
                .is_none()
        );
        let id = team["id"].as_str().unwrap();
        assert!(id.len() == 32 && !id.contains("9997770048"), "{id}");
        // Keyed: another key, another id; the same key, the same id.
        let other = care_team(
            &IdKey([8; 32]),
            "9997770048",
            &flag(Status::Ended, Some("2026-11-01")),
        );
        assert_ne!(other["id"], team["id"]);
        assert_eq!(
            care_team(&KEY, "9997770048", &flag(Status::Ended, Some("2026-11-01")))["id"],
            team["id"]
        );
        assert_eq!(search_bundle(vec![team])["total"], 1);
        assert_eq!(search_bundle(Vec::new())["total"], 0);
    }
}
