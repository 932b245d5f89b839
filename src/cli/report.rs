//! `report [--date YYYY-MM-DD] [--preview]`: write the morning report of a local day
//! (default: yesterday, the last complete day; with `--preview`, today so far) as it stood at the day's end:
//! `reports/<date>/` under the root (national page, a page per LA, `summary.csv`, copies of
//! the data-quality files) and `reports/index.html`; each LA's `CPIS_DQ_<la>_<date>.csv`
//! goes to its outbox once per date. A future date is refused, and so is today unless
//! previewed: `--preview` writes under `reports/preview/<date>/` and sends nothing.

use super::exit;
use crate::pipeline::ingest::Gateway;
use anyhow::{anyhow, Result};
use chrono::Duration;
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The day to report on, YYYY-MM-DD (default: yesterday where the gateway is; with
    /// --preview, today so far)
    #[arg(long)]
    pub date: Option<String>,
    /// Write to reports/preview/<date>/ and send nothing to LAs (today may be previewed)
    #[arg(long)]
    pub preview: bool,
}

pub fn run(args: &ReportArgs, gateway: &mut Gateway<'_>) -> Result<u8> {
    let date = match &args.date {
        Some(text) => crate::core::date::parse_iso_date(text)
            .ok_or_else(|| anyhow!("--date {text:?} is not a real date written YYYY-MM-DD"))?,
        None if args.preview => gateway.today(),
        None => gateway.today() - Duration::days(1),
    };
    let written = gateway.write_reports(date, args.preview)?;
    writeln!(
        std::io::stdout(),
        "report for {date}: {}\n{} data-quality file(s) sent to LA outboxes{}",
        written.dir.join("index.html").display(),
        written.la_files,
        if args.preview { " (preview: none)" } else { "" }
    )?;
    Ok(exit::OK)
}
