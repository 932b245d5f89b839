//! `report [--date YYYY-MM-DD]`: write the national report (`reports/<date>/index.html` and
//! `summary.csv` under the root) and each LA's `CPIS_DQ_<la>_<date>.csv` now. The date
//! defaults to today in the configured time zone; the report covers the time since the
//! previous one.

use super::exit;
use crate::ingest::Gateway;
use anyhow::{anyhow, Result};
use chrono::NaiveDate;
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The report's date (default: today where the gateway is)
    #[arg(long)]
    pub date: Option<String>,
}

pub fn run(args: &ReportArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let date = match &args.date {
        Some(text) => crate::core::date::parse_iso_date(text)
            .ok_or_else(|| anyhow!("--date {text:?} is not a real date written YYYY-MM-DD"))?,
        None => today(gateway),
    };
    let written = gateway.write_reports(date)?;
    writeln!(
        std::io::stdout(),
        "report for {date}: {}\n{} data-quality file(s) written to LA outboxes",
        written.dir.join("index.html").display(),
        written.la_files
    )?;
    Ok(exit::OK)
}

/// Today's date where the gateway is (its configured time zone).
pub fn today(gateway: &Gateway<'_>) -> NaiveDate {
    gateway
        .clock
        .now()
        .with_timezone(&gateway.config.timezone)
        .date_naive()
}
