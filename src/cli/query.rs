//! `query NHS_NUMBER --org ODS --user NAME --role ROLE --setting CODE [--at TIME]`: look one
//! child up as a health professional would at registration, with the same notification and
//! silent-read rules as an attendance file. Exit 0 whether or not the child is flagged; 2
//! for an invalid NHS number, an unknown organisation or setting, a bad time, or a user or
//! role that names no one.

use super::{exit, Format};
use crate::core::attendance::{names_someone, parse_attended_at, too_old, Attendance, Setting};
use crate::core::matching::Status;
use crate::core::nhs::NhsNumber;
use crate::pipeline::health::query_org;
use crate::pipeline::ingest::Gateway;
use anyhow::{anyhow, bail, Result};
use chrono::Utc;
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The NHS number (10 digits, or 3-3-4)
    pub nhs_number: String,
    /// ODS code of the organisation looking (a configured health organisation)
    #[arg(long)]
    pub org: String,
    /// Name of the health professional
    #[arg(long)]
    pub user: String,
    /// Their role
    #[arg(long)]
    pub role: String,
    /// Care-setting code (ED, UTC, ... GP, ...)
    #[arg(long)]
    pub setting: String,
    /// When the child presented (RFC 3339 with offset; default now)
    #[arg(long)]
    pub at: Option<String>,
    /// Output: text for a person, or one JSON document
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn run(args: &QueryArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let nhs = NhsNumber::parse(args.nhs_number.trim()).map_err(|code| {
        anyhow!(
            "{:?} is not a valid NHS number ({code}: {})",
            args.nhs_number,
            code.sentence()
        )
    })?;
    let org = query_org(gateway, &args.org)?;
    let setting = Setting::parse(&args.setting)
        .ok_or_else(|| anyhow!("--setting {:?} is not a care-setting code", args.setting))?;
    let now = gateway.clock.now();
    let attended_at = match &args.at {
        Some(text) => parse_attended_at(text)
            .ok_or_else(|| anyhow!("--at {text:?} is not an RFC 3339 time with an offset"))?
            .with_timezone(&Utc),
        None => now,
    };
    if attended_at > now {
        bail!(
            "--at {} is in the future: a look-up is for a child being seen now",
            attended_at.to_rfc3339()
        );
    }
    if let Some(why) = too_old(attended_at, now, gateway.config.attendance_max_age_days) {
        bail!("--at: {why} (gateway.attendance_max_age_days)");
    }
    for (option, value) in [("--user", &args.user), ("--role", &args.role)] {
        if !names_someone(value) {
            bail!("{option} names no one (letters or digits, nothing invisible): every look-up is logged against the person who made it");
        }
    }
    let org_name = gateway
        .config
        .health_orgs
        .iter()
        .find(|h| h.ods == org)
        .map(|h| h.name.clone())
        .unwrap_or_default();
    let attendance = Attendance {
        row: 0,
        nhs,
        attended_at,
        org_ods: org.to_string(),
        org_name,
        setting,
        user_name: args.user.clone(),
        user_role: args.role.clone(),
    };
    let found = gateway.query(&attendance)?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &found)?;
            writeln!(out)?;
        }
        Format::Text if found.flags.is_empty() => {
            writeln!(out, "{}: no child protection information", nhs.spaced())?;
        }
        Format::Text => {
            if found.flagged {
                writeln!(out, "{}: FLAGGED", nhs.spaced())?;
            } else {
                writeln!(
                    out,
                    "{}: not flagged (no plan open on {}); recently ended:",
                    nhs.spaced(),
                    attended_at.date_naive()
                )?;
            }
            for f in &found.flags {
                let state = match (f.status, f.end_date) {
                    (Status::Open, None) => format!("open since {}", f.start_date),
                    (Status::Open, Some(end)) => format!("open {} to {end}", f.start_date),
                    (Status::Ended, end) => {
                        format!("ended {}", end.map(|d| d.to_string()).unwrap_or_default())
                    }
                };
                writeln!(
                    out,
                    "  {:<4} {} ({})  {state}  emergency duty team {}  office hours {}",
                    f.plan_type.as_str(),
                    f.la_name,
                    f.la_code,
                    f.edt_phone,
                    f.office_phone
                )?;
            }
            if !found.presentations.is_empty() {
                writeln!(out, "  last presentations at unscheduled care:")?;
                for p in &found.presentations {
                    writeln!(
                        out,
                        "    {}  {} {}  {}",
                        p.attended_at, p.org_ods, p.org_name, p.setting
                    )?;
                }
            }
            let notified: Vec<String> = found.notified.iter().map(ToString::to_string).collect();
            if !found.flagged {
                writeln!(out, "  no LA notified (every record shown has ended)")?;
            } else if found.silent {
                writeln!(out, "  silent read ({}): no LA notified", setting.as_str())?;
            } else if notified.is_empty() {
                writeln!(out, "  no LA notified (already notified of this view within 24 hours, or no open record)")?;
            } else {
                writeln!(out, "  LA notified: {}", notified.join(", "))?;
            }
        }
    }
    Ok(exit::OK)
}
