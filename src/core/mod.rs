//! The pure domain: identifiers, parsing, validation, reconciliation and report models.
//!
//! Nothing here touches the filesystem, a database, the network or the clock: readers take
//! any `std::io::Read`, and times come in as arguments.

pub mod access_notification;
pub mod api_request;
pub mod attendance;
pub mod codes;
pub mod control;
pub mod date;
pub mod dq;
pub mod dq_files;
pub mod extract;
pub mod fhir;
pub mod filename;
pub mod fileresponse;
pub mod hints;
pub mod ids;
pub mod matching;
pub mod mesh;
pub mod nhs;
pub mod outbound;
pub mod phone;
pub mod plan;
pub mod reconcile;
pub mod render;
pub mod report;
pub mod retention;
pub mod schedule;
pub mod seen;
pub mod synth;
pub mod validate;
